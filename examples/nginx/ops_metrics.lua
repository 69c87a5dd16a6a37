-- Metrics of the ops endpoint, kept in a lua_shared_dict so that every nginx
-- worker reports the same numbers, and written in the Prometheus text
-- exposition format (version 0.0.4).
--
--   local metrics = require "ops_metrics"
--   local store = metrics.store("dms_ops_metrics")        -- nil, why without the dict
--   store:observe_call("DescribeReplications", "success", 0.042)
--   local text = store:render({ { "version", "0.1.0" } })
--   local transport = metrics.metered(require("dms.transport.ngx").new(opts), get_store)
--
-- Counters and histogram buckets are incremented atomically (shdict incr);
-- the per-replication gauges are one block of text that one worker renders
-- after one paged DescribeReplications round and stores for all (refresh()
-- below: at most one round per TTL, one worker at a time).
--
-- Written by hand: no maintained Prometheus client for Lua is packaged by
-- Debian (nginx-lua-prometheus is not, and prometheus-nginx-exporter only
-- scrapes stub_status). What the format asks for is small and done here:
-- HELP and TYPE once per family before its samples, label values escaped
-- (backslash, double quote, newline), histogram buckets cumulative with a
-- le="+Inf" bucket equal to _count, and _sum.
local ngx = ngx
local type, tostring, tonumber, pairs, ipairs, setmetatable, pcall =
      type, tostring, tonumber, pairs, ipairs, setmetatable, pcall
local string_format = string.format
local table_concat, table_sort = table.concat, table.sort
local math_huge, math_floor = math.huge, math.floor

local cjson = require("cjson.safe").new()
local dms_errors = require "dms.errors"

local M = {}

local function now()
  ngx.update_time()
  return ngx.now()
end

M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

-- seconds: DMS answers in tens of milliseconds when well, a timeout is 10 s by
-- default, a retried call can take longer
M.BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 }

-- the outcomes of one exchange with DMS (a closed set: a label value each)
M.OUTCOMES = { "success", "client_error", "throttled", "server_error", "timeout", "network_error" }

---------------------------------------------------------------------------
-- the text format

local LABEL_ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }
local HELP_ESCAPES = { ["\\"] = "\\\\", ["\n"] = "\\n" }

function M.escape_label(v)
  return (tostring(v):gsub('[\\"\n]', LABEL_ESCAPES))
end

function M.escape_help(s)
  return (tostring(s):gsub("[\\\n]", HELP_ESCAPES))
end

-- a sample value: integers without a fraction, others in the fewest digits
-- that read back as the same number, and the format's names for the rest
function M.format_value(v)
  v = tonumber(v)
  if v == nil or v ~= v then return "NaN" end
  if v == math_huge then return "+Inf" end
  if v == -math_huge then return "-Inf" end
  if v == math_floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return string_format("%d", v) end
  local s = string_format("%.15g", v)
  if tonumber(s) ~= v then s = string_format("%.17g", v) end
  return s
end

-- {{"name", value}, ...} -> '{name="value",...}' ("" without labels)
function M.labels(list)
  if not list or #list == 0 then return "" end
  local out = {}
  for i, kv in ipairs(list) do out[i] = kv[1] .. '="' .. M.escape_label(kv[2]) .. '"' end
  return "{" .. table_concat(out, ",") .. "}"
end

-- the HELP and TYPE lines of a family
function M.header(name, kind, help)
  return "# HELP " .. name .. " " .. M.escape_help(help) .. "\n# TYPE " .. name .. " " .. kind .. "\n"
end

function M.sample(name, labels, value)
  return name .. labels .. " " .. M.format_value(value) .. "\n"
end

-- "le" values: the bucket bounds as written (0.005, 1, 10)
local function le_text(bound)
  if bound == math_huge then return "+Inf" end
  return M.format_value(bound)
end

-- the lines of one histogram series: `counts` holds the observations per
-- bucket (not cumulative; #BUCKETS + 1 entries, the last above every bound)
function M.histogram_lines(name, label_list, buckets, counts, sum)
  local out, acc = {}, 0
  local base = M.labels(label_list)
  local inner = base == "" and "" or base:sub(2, -2) .. ","
  for i = 1, #buckets + 1 do
    acc = acc + (counts[i] or 0)
    out[#out + 1] = name .. "_bucket{" .. inner .. 'le="' .. le_text(buckets[i] or math_huge) .. '"} '
      .. M.format_value(acc) .. "\n"
  end
  out[#out + 1] = name .. "_sum" .. base .. " " .. M.format_value(sum or 0) .. "\n"
  out[#out + 1] = name .. "_count" .. base .. " " .. M.format_value(acc) .. "\n"
  return table_concat(out)
end

---------------------------------------------------------------------------
-- the families kept in the shared dict

-- counters and histograms, in the order they are written
M.FAMILIES = {
  { key = "calls", name = "dms_ops_dms_calls_total", kind = "counter",
    help = "HTTP exchanges with DMS (each attempt, retries included), by operation and outcome",
    labels = { "operation", "outcome" } },
  { key = "duration", name = "dms_ops_dms_call_duration_seconds", kind = "histogram",
    help = "Time of one HTTP exchange with DMS (connect, send, answer), by operation and outcome",
    labels = { "operation", "outcome" } },
  { key = "errors", name = "dms_ops_dms_errors_total", kind = "counter",
    help = "Failed exchanges with DMS by operation and error code (the DMS error type, or the transport's code)",
    labels = { "operation", "code" } },
  { key = "http", name = "dms_ops_http_requests_total", kind = "counter",
    help = "Requests answered by the ops endpoint, by route and HTTP status",
    labels = { "route", "status" } },
  { key = "refreshes", name = "dms_ops_metrics_refreshes_total", kind = "counter",
    help = "Rounds of DescribeReplications that refreshed the replication gauges, by outcome",
    labels = { "outcome" } },
}
local FAMILY = {}
for _, f in ipairs(M.FAMILIES) do FAMILY[f.key] = f end

-- a label value that is safe as part of a dict key and bounded in length
local function clean(v)
  v = tostring(v == nil and "" or v)
  v = v:gsub("[^%w%._:%-/ ]", "_")
  if #v > 64 then v = v:sub(1, 64) end
  return v
end
M.clean = clean

---------------------------------------------------------------------------
-- the store

local Store = {}
Store.__index = Store

-- The store over lua_shared_dict `name`, or nil and why not.
function M.store(name)
  local dict = ngx.shared and ngx.shared[name]
  if not dict then
    return nil, "no lua_shared_dict " .. tostring(name) .. " in nginx.conf (lua_shared_dict "
      .. tostring(name) .. " 10m;)"
  end
  return setmetatable({ dict = dict, name = name }, Store)
end

-- dict keys: "c\t<family>\t<v1>\t<v2>" for a counter, "h\t<family>\t<v1>\t<v2>\t<i>"
-- for histogram bucket i, "s\t<family>\t<v1>\t<v2>" for its sum; values cleaned,
-- so they hold no tab
local SEP = "\t"

local function series_key(kind, family, values)
  return kind .. SEP .. family.key .. SEP .. table_concat(values, SEP)
end

function Store:incr(key, by)
  local _, err, forcible = self.dict:incr(key, by, 0)
  if err then
    ngx.log(ngx.ERR, "dms-ops: metrics: cannot count ", key:gsub(SEP, " "), ": ", err,
      " (make lua_shared_dict ", self.name, " larger)")
  elseif forcible then
    ngx.log(ngx.WARN, "dms-ops: metrics: lua_shared_dict ", self.name,
      " is full and dropped older entries: make it larger")
  end
end

function Store:count(family_key, values, by)
  local f = FAMILY[family_key]
  for i, v in ipairs(values) do values[i] = clean(v) end
  self:incr(series_key("c", f, values), by or 1)
end

-- One exchange with DMS: its operation, outcome, time and (when it failed) code.
function Store:observe_call(operation, outcome, seconds, code)
  operation, outcome = clean(operation), clean(outcome)
  local f = FAMILY.duration
  local buckets = M.BUCKETS
  local i = #buckets + 1
  for b = 1, #buckets do
    if seconds <= buckets[b] then i = b break end
  end
  self:incr(series_key("c", FAMILY.calls, { operation, outcome }), 1)
  self:incr(series_key("h", f, { operation, outcome }) .. SEP .. i, 1)
  self:incr(series_key("s", f, { operation, outcome }), seconds)
  if code then self:incr(series_key("c", FAMILY.errors, { operation, clean(code) }), 1) end
end

function Store:get(key) return self.dict:get(key) end

-- The counters and histograms, rendered: one block per family, series sorted.
function Store:render_counters()
  local keys = self.dict:get_keys(0)
  local series = {}       -- family key -> labels text -> {value=} or {counts=, sum=}
  for _, key in ipairs(keys) do
    local kind, fkey, rest = key:match("^([chs])\t([^\t]+)\t(.*)$")
    local f = kind and FAMILY[fkey]
    if f then
      local bucket
      if kind == "h" then rest, bucket = rest:match("^(.*)\t(%d+)$") end
      if rest then
        local values = {}
        for v in (rest .. SEP):gmatch("([^\t]*)\t") do values[#values + 1] = v end
        local list = {}
        for n, label in ipairs(f.labels) do list[n] = { label, values[n] or "" } end
        local text = M.labels(list)
        series[fkey] = series[fkey] or {}
        local s = series[fkey][text] or { list = list, counts = {}, value = 0, sum = 0 }
        series[fkey][text] = s
        local v = tonumber(self.dict:get(key)) or 0
        if kind == "c" then s.value = v
        elseif kind == "s" then s.sum = v
        else s.counts[tonumber(bucket)] = v end
      end
    end
  end
  local out = {}
  for _, f in ipairs(M.FAMILIES) do
    out[#out + 1] = M.header(f.name, f.kind, f.help)
    local by_text = series[f.key] or {}
    local texts = {}
    for text in pairs(by_text) do texts[#texts + 1] = text end
    table_sort(texts)
    for _, text in ipairs(texts) do
      local s = by_text[text]
      if f.kind == "histogram" then
        out[#out + 1] = M.histogram_lines(f.name, s.list, M.BUCKETS, s.counts, s.sum)
      else
        out[#out + 1] = f.name .. text .. " " .. M.format_value(s.value) .. "\n"
      end
    end
  end
  return table_concat(out)
end

---------------------------------------------------------------------------
-- a transport that counts and times each exchange with DMS

-- "AmazonDMSv20160101.StartReplication" -> "StartReplication"
local function operation_of(req)
  for _, h in ipairs(type(req.headers) == "table" and req.headers or {}) do
    if type(h) == "table" and type(h[1]) == "string" and h[1]:lower() == "x-amz-target" then
      return tostring(h[2]):match("([%w_]+)$") or "unknown"
    end
  end
  return "unknown"
end
M.operation_of = operation_of

-- the error type of a DMS error answer ("prefix#Code:extra" -> "Code")
local function error_type(resp)
  local t = resp.headers and resp.headers["x-amzn-errortype"]
  if type(t) ~= "string" or t == "" then
    local body = resp.body
    if type(body) == "string" and #body <= 65536 then
      local doc = cjson.decode(body)
      t = type(doc) == "table" and (doc.__type or doc.code or doc.Code) or nil
    end
  end
  if type(t) ~= "string" or t == "" then return "HTTP" .. tostring(resp.status) end
  return (t:match("#(.*)$") or t):match("^([^:]*)")
end

-- the outcome of one exchange (one of OUTCOMES), and its error code when it failed
function M.outcome_of(resp, err)
  if not resp then
    local code = type(err) == "table" and err.code or "TransportFailed"
    return code == "Timeout" and "timeout" or "network_error", code
  end
  local status = resp.status
  if status < 400 then return "success" end
  local code = error_type(resp)
  if status >= 500 then return "server_error", code end
  if dms_errors.is_throttling(code) then return "throttled", code end
  return "client_error", code
end

-- Wraps a transport (dms.transport.ngx): each request is timed and counted in
-- the store get_store() returns (nothing is counted without one). What the
-- transport answers is passed on untouched; counting never fails a request.
function M.metered(transport, get_store)
  local w = {}
  function w.request(_, req)
    local started = now()
    local resp, err = transport:request(req)
    local elapsed = now() - started
    local ok, merr = pcall(function()
      local s = get_store()
      if s then
        local outcome, code = M.outcome_of(resp, err)
        s:observe_call(operation_of(req), outcome, elapsed, code)
      end
    end)
    if not ok then ngx.log(ngx.ERR, "dms-ops: metrics: ", tostring(merr)) end
    return resp, err
  end
  function w.http_client() return transport:http_client() end
  return w
end

---------------------------------------------------------------------------
-- the per-replication gauges

-- keys of the refresh (values, not series)
local K = {
  text = "g\ttext",              -- the rendered gauges of the last good round
  count = "g\tcount",            -- replications in it
  ok_at = "g\tok_at",            -- when that round ended (epoch seconds)
  gate = "r\tgate",              -- present for TTL seconds after a round started
  running = "r\trunning",        -- present while a round runs (expires in case its worker dies)
  last_ok = "r\tlast_ok",        -- 1 when the last round succeeded, 0 when it failed
  last_duration = "r\tlast_duration",
  last_error = "r\tlast_error",  -- the code of the last failure
}
M.KEYS = K

-- Brings the gauges up to date when they are older than `ttl` seconds: at
-- most one round starts per TTL (an add() with that expiry is the gate, for
-- all workers), and never two at once. fetch() runs the round and returns
-- the rendered text and the number of replications, or nil and an error
-- table. A request that finds no gauges yet (the first scrape) waits for the
-- round under way, up to `wait` seconds; otherwise the last good gauges are
-- served at once while a round runs, and their age is in
-- dms_ops_metrics_refresh_timestamp_seconds.
-- Returns true when this request ran a round.
function Store:refresh(ttl, wait, fetch)
  local d = self.dict
  local ran = false
  -- the lock first, then the gate: a request that cannot take the lock knows
  -- a round may be under way and waits for it when there is nothing to serve.
  -- The lock expires should its worker die in the middle of a round.
  if d:add(K.running, ngx.worker.pid(), wait + 5) then
    if d:add(K.gate, true, ttl) then
      ran = true
      self:run_round(fetch)
    end
    d:delete(K.running)
  end
  if not ran and d:get(K.text) == nil then
    -- nothing to serve yet: wait for the round under way
    local until_ = now() + wait
    while d:get(K.running) and now() < until_ do ngx.sleep(0.02) end
  end
  return ran
end

function Store:run_round(fetch)
  local d = self.dict
  local started = now()
  local ok, text, count = pcall(fetch)
  d:set(K.last_duration, now() - started)
  if ok and text then
    local stored, serr = d:safe_set(K.text, text)
    if stored then
      d:set(K.count, count or 0)
      d:set(K.ok_at, ngx.now())
      d:set(K.last_ok, 1)
      d:delete(K.last_error)
      self:count("refreshes", { "success" })
      return
    end
    ngx.log(ngx.ERR, "dms-ops: metrics: cannot keep the replication gauges (", #text, " bytes): ",
      tostring(serr), ": make lua_shared_dict ", self.name, " larger")
    count = { code = "NoMemory" }
  elseif not ok then
    ngx.log(ngx.ERR, "dms-ops: metrics: the refresh raised: ", (tostring(text):gsub("\n%s*", " | ")))
    count = { code = "InternalError" }
  end
  d:set(K.last_ok, 0)
  d:set(K.last_error, clean(type(count) == "table" and count.code or "Unknown"))
  self:count("refreshes", { "error" })
end

-- the families that describe the refresh itself
function Store:render_refresh_state()
  local d = self.dict
  local out = {}
  local ok_at = d:get(K.ok_at)
  out[#out + 1] = M.header("dms_ops_metrics_refresh_timestamp_seconds", "gauge",
    "When the replication gauges were last read from DMS (epoch seconds); absent before the first good round")
  if ok_at then out[#out + 1] = M.sample("dms_ops_metrics_refresh_timestamp_seconds", "", ok_at) end
  out[#out + 1] = M.header("dms_ops_metrics_refresh_success", "gauge",
    "1 when the last round of DescribeReplications succeeded, 0 when it failed "
    .. "(the gauges are then the last good ones)")
  local last_ok = d:get(K.last_ok)
  if last_ok then
    local err = d:get(K.last_error)
    out[#out + 1] = M.sample("dms_ops_metrics_refresh_success",
      M.labels(err and { { "error", err } } or nil), last_ok)
  end
  out[#out + 1] = M.header("dms_ops_metrics_refresh_duration_seconds", "gauge",
    "Time the last round of DescribeReplications took")
  local dur = d:get(K.last_duration)
  if dur then out[#out + 1] = M.sample("dms_ops_metrics_refresh_duration_seconds", "", dur) end
  out[#out + 1] = M.header("dms_ops_replications", "gauge",
    "Replications in the last good round of DescribeReplications")
  local count = d:get(K.count)
  if count then out[#out + 1] = M.sample("dms_ops_replications", "", count) end
  return table_concat(out)
end

-- The whole exposition: the endpoint's own families, then the gauges of the
-- replications (as the last good round rendered them).
function Store:render(info_labels)
  local out = {
    M.header("dms_ops_build_info", "gauge", "The lua-dms version serving this endpoint (always 1)"),
    M.sample("dms_ops_build_info", M.labels(info_labels), 1),
    self:render_counters(),
    self:render_refresh_state(),
    self.dict:get(K.text) or "",
  }
  return table_concat(out)
end

---------------------------------------------------------------------------
-- rendering the replications of one DescribeReplications round

local STATS_TABLES = {
  { "loaded", "TablesLoaded" }, { "loading", "TablesLoading" },
  { "queued", "TablesQueued" }, { "errored", "TablesErrored" },
}

local GAUGES = {
  { "dms_replication_info", "Each replication (always 1): its type" },
  { "dms_replication_status", "The replication's status (1, for the current status only)" },
  { "dms_replication_stop_reason", "Why the last run ended (1), for stopped and failed replications" },
  { "dms_replication_full_load_progress_percent", "Full load progress of the current or last run (0..100)" },
  { "dms_replication_tables", "Tables of the current or last run by state: loaded, loading, queued, errored" },
  { "dms_replication_capacity_state",
    "The capacity's provision state (1, for the current state only; none before the first provisioning)" },
  { "dms_replication_capacity_units", "Provisioned capacity units (DCU), while provisioned" },
  { "dms_replication_status_change_timestamp_seconds",
    "When the replication last changed (ReplicationUpdateTime, epoch seconds): time() minus this is how long "
    .. "it has been in its status" },
  { "dms_replication_start_timestamp_seconds", "When the current or last run started (epoch seconds)" },
}

local function num(v) return type(v) == "number" and v == v and v or nil end

-- the Replication shapes of a round -> exposition text (every family once)
function M.render_replications(replications)
  local lines = {}
  for i = 1, #GAUGES do lines[i] = { M.header(GAUGES[i][1], "gauge", GAUGES[i][2]) } end
  local function add(i, extra, value, base)
    local l = lines[i]
    local labels = base
    if extra then
      labels = {}
      for n, kv in ipairs(base) do labels[n] = kv end
      for _, kv in ipairs(extra) do labels[#labels + 1] = kv end
    end
    l[#l + 1] = M.sample(GAUGES[i][1], M.labels(labels), value)
  end
  for _, r in ipairs(replications) do
    if type(r) == "table" and type(r.ReplicationConfigArn) == "string" then
      local base = { { "arn", r.ReplicationConfigArn }, { "id", r.ReplicationConfigIdentifier or "" } }
      local st = type(r.ReplicationStats) == "table" and r.ReplicationStats or {}
      local prov = type(r.ProvisionData) == "table" and r.ProvisionData or {}
      add(1, { { "type", r.ReplicationType or "" } }, 1, base)
      add(2, { { "status", r.Status or "unknown" } }, 1, base)
      if (r.Status == "stopped" or r.Status == "failed") and type(r.StopReason) == "string" then
        add(3, { { "reason", (r.StopReason:gsub("^Stop Reason ", "")) } }, 1, base)
      end
      if num(st.FullLoadProgressPercent) then add(4, nil, st.FullLoadProgressPercent, base) end
      for _, t in ipairs(STATS_TABLES) do
        if num(st[t[2]]) then add(5, { { "state", t[1] } }, st[t[2]], base) end
      end
      local ps = prov.ProvisionState
      add(6, { { "state", (type(ps) == "string" and ps ~= "") and ps or "none" } }, 1, base)
      if num(prov.ProvisionedCapacityUnits) and ps == "provisioned" then
        add(7, nil, prov.ProvisionedCapacityUnits, base)
      end
      if num(r.ReplicationUpdateTime) then add(8, nil, r.ReplicationUpdateTime, base) end
      if num(st.StartDate) then add(9, nil, st.StartDate, base) end
    end
  end
  local out = {}
  for i = 1, #lines do out[i] = table_concat(lines[i]) end
  return table_concat(out)
end

return M
