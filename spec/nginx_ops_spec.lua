-- The ops endpoint's operations routes and metrics (examples/nginx/), in a
-- real nginx with two workers against the emulator, once with each HTTP
-- client of dms.transport.ngx (the built-in one, and lua-resty-http from
-- ../shared/vendor or $DMS_VENDOR; that run is skipped, and says so, without
-- it): POST /replications/stop, GET /replications, GET /replications/tables,
-- GET /healthz, GET /metrics and the "wait" of a start. The Prometheus text
-- is read by a strict reader of the spec's own (support/exposition.lua) and,
-- where python3 has prometheus_client (Debian: python3-prometheus-client),
-- by its parser too.
local cjson = require "cjson"
local core = require "dms.core"
local dms = require "dms"
local emulator = require "support.emulator"
local exposition = require "support.exposition"
local files = require "support.files"
local nginx = require "support.nginx"

local available, info = nginx.available()
local resty_lib, resty_why = nginx.resty_http_lib()

local ACCESS_KEY = "AKIDNGINXOPSROUTES"
local SECRET_KEY = "nginxOpsRoutesSecret/K7MDENG+bPxRfiCYEXAMPLE"
local BEARER = string.format("ops-%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
local METRICS_BEARER = string.format("metrics-%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
local AUTH = { Authorization = "Bearer " .. BEARER }
local METRICS_AUTH = { Authorization = "Bearer " .. METRICS_BEARER }
local MISSING_ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:NOSUCHCONFIGXXXXXXXXXXXX99"
local TTL = 2            -- $dms_metrics_ttl of the spec's nginx
local FLEET = 150        -- CDC replications added to the seed's three
-- a stop reason with every character a label value must escape
local ODD_REASON = 'QUOTE"BACKSLASH\\NEWLINE\nEND'

-- python3 interpreters that can import prometheus_client, the first found
local function prometheus_python()
  for _, py in ipairs({ "python3", "/usr/bin/python3" }) do
    if nginx.run(py .. " -c 'import prometheus_client' 2>/dev/null") then return py end
  end
  return nil
end

-- prometheus_client's reading of `text`: {sample key = value}, label values of
-- the stop reasons; nil and why without it
local PY_PARSE = [[
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"samples": [], "families": {}}
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    out["families"][f.name] = f.type
    for s in f.samples:
        out["samples"].append([s.name, s.labels, s.value])
print(json.dumps(out))
]]

local function python_parse(py, text)
  local dir = files.tmpdir()
  files.write(dir .. "/parse.py", PY_PARSE)
  files.write(dir .. "/metrics.txt", text)
  local ok, out = nginx.run(py .. " " .. nginx.quote(dir .. "/parse.py") .. " " .. nginx.quote(dir .. "/metrics.txt"))
  nginx.run("rm -rf " .. nginx.quote(dir))
  assert(ok, "prometheus_client could not parse the exposition: " .. out)
  return cjson.decode(out)
end

---------------------------------------------------------------------------
-- the writer, outside nginx (no shared dict needed)

describe("ops_metrics: the text format writer", function()
  local saved = package.path
  local m
  setup(function()
    package.path = "examples/nginx/?.lua;" .. package.path
    m = require "ops_metrics"
  end)
  teardown(function() package.path = saved end)

  it("escapes backslash, double quote and newline in label values, and nothing else", function()
    assert.are.equal([[a\\b\"c\nd]], m.escape_label('a\\b"c\nd'))
    assert.are.equal("tab\there {x}=,", m.escape_label("tab\there {x}=,"))
    assert.are.equal([[line\nnext \\ "quoted"]], m.escape_help('line\nnext \\ "quoted"'))
    assert.are.equal([[{a="1",b="x\"y"}]], m.labels({ { "a", 1 }, { "b", 'x"y' } }))
    assert.are.equal("", m.labels({}))
  end)

  it("writes values the format reads back exactly", function()
    assert.are.equal("3", m.format_value(3))
    assert.are.equal("-7", m.format_value(-7.0))
    assert.are.equal("0.1", m.format_value(0.1))
    assert.are.equal("+Inf", m.format_value(math.huge))
    assert.are.equal("-Inf", m.format_value(-math.huge))
    assert.are.equal("NaN", m.format_value(0 / 0))
    for _, v in ipairs({ 1 / 3, 1795778470.342, 2 ^ 60, 1e-300, 0.010000228881835938 }) do
      assert.are.equal(v, tonumber(m.format_value(v)), tostring(v))
    end
  end)

  it("writes a histogram with cumulative buckets, +Inf equal to _count, and _sum", function()
    local text = m.header("t_seconds", "histogram", "test") .. m.histogram_lines("t_seconds",
      { { "op", "A" } }, { 0.1, 1 }, { 2, 0, 3 }, 7.5)
    local doc = exposition.parse(text)
    assert.are.equal(2, exposition.value(doc, "t_seconds_bucket", { op = "A", le = "0.1" }))
    assert.are.equal(2, exposition.value(doc, "t_seconds_bucket", { op = "A", le = "1" }))
    assert.are.equal(5, exposition.value(doc, "t_seconds_bucket", { op = "A", le = "+Inf" }))
    assert.are.equal(5, exposition.value(doc, "t_seconds_count", { op = "A" }))
    assert.are.equal(7.5, exposition.value(doc, "t_seconds_sum", { op = "A" }))
  end)

  it("tells the outcome of an exchange and its error code", function()
    local function resp(status, body, headers)
      return { status = status, body = body or "", headers = headers or {} }
    end
    assert.are.same({ "success" }, { m.outcome_of(resp(200, "{}")) })
    assert.are.same({ "throttled", "ThrottlingException" },
      { m.outcome_of(resp(400, '{"__type":"ThrottlingException","message":"Rate exceeded"}')) })
    assert.are.same({ "client_error", "ResourceNotFoundFault" }, { m.outcome_of(resp(400, "",
      { ["x-amzn-errortype"] = "ResourceNotFoundFault:http://internal.amazon.com/" })) })
    assert.are.same({ "client_error", "AccessDeniedException" },
      { m.outcome_of(resp(400, '{"__type":"com.amazon.coral#AccessDeniedException"}')) })
    assert.are.same({ "server_error", "HTTP503" }, { m.outcome_of(resp(503, "<html>busy</html>")) })
    assert.are.same({ "timeout", "Timeout" }, { m.outcome_of(nil, { code = "Timeout" }) })
    assert.are.same({ "network_error", "ConnectionLost" }, { m.outcome_of(nil, { code = "ConnectionLost" }) })
    assert.are.equal("StopReplication", m.operation_of({ headers = { { "Host", "x" },
      { "X-Amz-Target", "AmazonDMSv20160101.StopReplication" } } }))
  end)

  it("renders the replications of a round: every family once, the current status and capacity state", function()
    local text = m.render_replications({
      { ReplicationConfigArn = "arn:a", ReplicationConfigIdentifier = "a", ReplicationType = "cdc",
        Status = "stopped", StopReason = "Stop Reason " .. ODD_REASON,
        ReplicationStats = { FullLoadProgressPercent = 40, TablesLoaded = 1, TablesLoading = 2,
                             TablesQueued = 3, TablesErrored = 4, StartDate = 1700000000.5 },
        ProvisionData = { ProvisionState = "deprovisioning", ProvisionedCapacityUnits = 4 },
        ReplicationUpdateTime = 1700000100.25 },
      { ReplicationConfigArn = "arn:b", ReplicationConfigIdentifier = "b", Status = "created" },
    })
    local doc = exposition.parse(text)
    assert.are.equal(1, exposition.value(doc, "dms_replication_status", { arn = "arn:a", status = "stopped" }))
    assert.are.equal(1, exposition.value(doc, "dms_replication_stop_reason", { arn = "arn:a", reason = ODD_REASON }))
    assert.are.equal(40, exposition.value(doc, "dms_replication_full_load_progress_percent", { arn = "arn:a" }))
    assert.are.equal(4, exposition.value(doc, "dms_replication_tables", { arn = "arn:a", state = "errored" }))
    assert.are.equal(3, exposition.value(doc, "dms_replication_tables", { arn = "arn:a", state = "queued" }))
    assert.are.equal(1, exposition.value(doc, "dms_replication_capacity_state",
      { arn = "arn:a", state = "deprovisioning" }))
    -- units only while provisioned
    assert.are.equal(0, #exposition.find(doc, "dms_replication_capacity_units", { arn = "arn:a" }))
    assert.are.equal(1, exposition.value(doc, "dms_replication_capacity_state", { arn = "arn:b", state = "none" }))
    assert.are.equal(1700000100.25, exposition.value(doc, "dms_replication_status_change_timestamp_seconds",
      { arn = "arn:a" }))
    assert.are.equal(1, #exposition.find(doc, "dms_replication_status", { arn = "arn:b" }))
    local py = prometheus_python()
    if not py then
      print("\nspec/nginx_ops_spec.lua: the prometheus_client cross-check is NOT RUN: no python3 with "
        .. "prometheus_client (Debian: apt-get install python3-prometheus-client)\n")
      return
    end
    local parsed = python_parse(py, text)
    local reasons = {}
    for _, s in ipairs(parsed.samples) do
      if s[1] == "dms_replication_stop_reason" then reasons[#reasons + 1] = s[2].reason end
    end
    assert.are.same({ ODD_REASON }, reasons)
  end)
end)

if not available then
  print("\nspec/nginx_ops_spec.lua: NOT RUN: " .. tostring(info) .. "\n")
end

---------------------------------------------------------------------------
-- in nginx

for _, client in ipairs({ "builtin", "resty.http" }) do
describe("nginx ops routes and metrics, 2 workers, http_client = " .. client, function()
  if not available then return end
  if client == "resty.http" and not resty_lib then
    print("\nspec/nginx_ops_spec.lua: the resty.http run is NOT RUN: " .. tostring(resty_why) .. "\n")
    return
  end

  local emu, srv, ports

  local function url_of(port) return "http://127.0.0.1:" .. port end
  local function get(path, headers, url)
    return srv:http({ method = "GET", path = path, headers = headers, url = url })
  end
  local function post(path, body, headers, url)
    local h = { ["Content-Type"] = "application/json" }
    for k, v in pairs(headers or {}) do h[k] = v end
    return srv:http({ method = "POST", path = path, headers = h, url = url,
      body = type(body) == "table" and cjson.encode(body) or body })
  end
  local function scrape(headers, url)
    local r = get("/metrics", headers or METRICS_AUTH, url)
    assert.are.equal(200, r.status, r.body)
    return r, exposition.parse(r.body)
  end
  -- the rounds of the metrics: DescribeReplications without a filter
  local function rounds_log()
    local n = 0
    for _, e in ipairs(emu:requests("DescribeReplications")) do
      if type(e.body) == "table" and e.body.Filters == nil then n = n + 1 end
    end
    return n
  end
  -- a replication of this test alone: cdc, running
  local seq = 0
  local function own(extra)
    seq = seq + 1
    local spec = { identifier = "ops-" .. client:gsub("%W", "") .. "-" .. seq, type = "cdc", status = "running" }
    for k, v in pairs(extra or {}) do spec[k] = v end
    local r = emu:replication(spec)
    return r.ReplicationConfigArn, r
  end
  local function replication_of(arn)
    for _, r in ipairs(emu:replications().replications) do
      if r.ReplicationConfigArn == arn then return r end
    end
  end
  local function log_count(op, arn)
    local n = 0
    for _, e in ipairs(emu:requests(op)) do
      if not arn or (type(e.body) == "table" and (e.body.ReplicationConfigArn == arn
          or (e.body.Filters and e.body.Filters[1] and e.body.Filters[1].Values[1] == arn))) then
        n = n + 1
      end
    end
    return n
  end

  lazy_setup(function()
    emu = emulator.start({ speed = 1000, keys = { ACCESS_KEY .. ":" .. SECRET_KEY } })
    emu:replication({ count = FLEET, identifier = "fleet-{n:03}", type = "cdc", status = "running" })
    ports = { PIDS = nginx.free_port(), SHORT = nginx.free_port(), FAULT = nginx.free_port() }
    srv = nginx.start({
      env = {
        AWS_REGION = "us-east-1",
        AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE = emu.url,
        AWS_ACCESS_KEY_ID = ACCESS_KEY, AWS_SECRET_ACCESS_KEY = SECRET_KEY,
        DMS_OPS_TOKEN = BEARER, DMS_METRICS_TOKEN = METRICS_BEARER,
        DMS_HTTP_CLIENT = client,
        DMS_METRICS_TTL = tostring(TTL),
        DMS_WAIT_INTERVAL = "0.05",
        DMS_WAIT_TIMEOUT = "30",
      },
      workers = 2,
      vendor = client == "resty.http" and resty_lib or nil,
      extra_http = ([[
    server {
        # the same handler, each answer naming the worker that gave it; reuseport
        # spreads the connections over both workers
        listen 127.0.0.1:@PIDS@ reuseport;
        add_header X-Worker-Pid $pid always;
        location = /metrics { content_by_lua_block { require("handler").metrics() } }
        location = /replications/tables { content_by_lua_block { require("handler").tables() } }
    }
    server {
        listen 127.0.0.1:@SHORT@;
        set $dms_timeout 1;
        set $dms_max_attempts 1;
        location = /replications/status { content_by_lua_block { require("handler").status() } }
    }
    server {
        listen 127.0.0.1:@FAULT@;
        # /metrics with its renderer broken for this one request
        location = /metrics {
            content_by_lua_block {
                local m = require "ops_metrics"
                local Store = getmetatable(assert(m.store("dms_ops_metrics"))).__index
                local render = Store.render
                Store.render = function() local broken; return broken.field end
                require("handler").metrics()
                Store.render = render
            }
        }
    }
  ]]):gsub("@(%u+)@", function(k) return tostring(ports[k]) end),
    })
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if emu then emu:stop() end
  end)

  before_each(function() emu:clear_faults() end)

  -------------------------------------------------------------------------
  describe("GET /metrics", function()
    it("answers 50 concurrent scrapes of a cold endpoint with one round of DescribeReplications, "
      .. "every answer holding the gauges", function()
      -- the round takes 2 pages x 300 ms: the 49 others wait for it
      emu:clear_requests()
      emu:fault({ operation = "DescribeReplications", fault = "delay", seconds = 0.3, count = 2 })
      local dir = files.tmpdir()
      local n = 50
      local args = { "curl", "-sS", "--parallel", "--parallel-immediate", "--parallel-max", tostring(n),
        "-H", nginx.quote("Authorization: Bearer " .. METRICS_BEARER) }
      for i = 1, n do
        args[#args + 1] = "-o " .. nginx.quote(dir .. "/" .. i .. ".txt")
        args[#args + 1] = nginx.quote(srv.url .. "/metrics")
      end
      local t0 = core.now()
      local ok, out = nginx.run(table.concat(args, " "))
      local elapsed = core.now() - t0
      assert(ok, out)
      local total = 3 + FLEET
      for i = 1, n do
        local text = files.read(dir .. "/" .. i .. ".txt")
        local doc = exposition.parse(text)
        assert.are.equal(total, exposition.value(doc, "dms_ops_replications"), "answer " .. i)
        assert.are.equal(total, #exposition.find(doc, "dms_replication_status"), "answer " .. i)
      end
      nginx.run("rm -rf " .. nginx.quote(dir))
      print(string.format("\n  nginx, 2 workers, http_client %s: %d concurrent scrapes of a cold /metrics"
        .. " (%d replications, 2 pages x 300 ms): %.2f s, %d DescribeReplications", client, n, total,
        elapsed, rounds_log()))
      assert.are.equal(2, rounds_log())
    end)

    it("is valid Prometheus text: the spec's strict reader and prometheus_client agree on every sample", function()
      -- a label value with \, " and a newline (a stop reason), read in the next round
      local arn = own()
      emu:stop_replication({ arn = arn, reason = ODD_REASON })
      nginx.run("sleep " .. TTL + 0.1)
      local r, doc = scrape()
      assert.are.equal("text/plain; version=0.0.4; charset=utf-8", r.headers["content-type"])
      assert.are.equal(1, exposition.value(doc, "dms_replication_stop_reason", { arn = arn, reason = ODD_REASON }))
      for _, name in ipairs({ "dms_ops_build_info", "dms_ops_dms_calls_total", "dms_ops_dms_call_duration_seconds",
          "dms_ops_dms_errors_total", "dms_ops_http_requests_total", "dms_ops_metrics_refreshes_total",
          "dms_ops_metrics_refresh_timestamp_seconds", "dms_ops_metrics_refresh_success",
          "dms_ops_replications", "dms_replication_status", "dms_replication_tables",
          "dms_replication_capacity_state", "dms_replication_full_load_progress_percent" }) do
        local f = doc.families[name]
        assert.is_table(f, name)
        assert.is_string(f.help, name)
        assert.is_string(f.type, name)
      end
      assert.are.equal("histogram", doc.families.dms_ops_dms_call_duration_seconds.type)
      assert.are.equal(dms._VERSION, exposition.find(doc, "dms_ops_build_info")[1].labels.version)
      local py = prometheus_python()
      if not py then
        print("\nspec/nginx_ops_spec.lua: the prometheus_client cross-check is NOT RUN: no python3 with "
          .. "prometheus_client (Debian: apt-get install python3-prometheus-client)\n")
        return
      end
      local parsed = python_parse(py, r.body)
      local theirs = {}
      for _, s in ipairs(parsed.samples) do theirs[exposition.series_key(s[1], s[2])] = s[3] end
      local n = 0
      for _, s in ipairs(doc.samples) do
        local key = exposition.series_key(s.name, s.labels)
        assert.is_not_nil(theirs[key], "prometheus_client has no " .. key:gsub("%z", " "))
        assert.are.equal(s.value, theirs[key], key:gsub("%z", " "))
        n = n + 1
      end
      assert.are.equal(#parsed.samples, n)
      assert.are.equal("histogram", parsed.families.dms_ops_dms_call_duration_seconds)
      assert.are.equal("counter", parsed.families.dms_ops_dms_calls)
    end)

    it("reads DMS at most once per $dms_metrics_ttl, however often it is scraped", function()
      nginx.run("sleep " .. TTL + 0.1)           -- past the gate of any earlier round
      emu:clear_requests()
      local before = exposition.value(select(2, scrape()), "dms_ops_metrics_refreshes_total", { outcome = "success" })
      for _ = 1, 5 do scrape() end
      assert.are.equal(2, rounds_log())            -- one round: two pages
      nginx.run("sleep " .. TTL + 0.1)
      local _, doc = scrape()
      assert.are.equal(4, rounds_log())
      assert.are.equal(before + 1, exposition.value(doc, "dms_ops_metrics_refreshes_total", { outcome = "success" }))
      local pages = {}
      for _, e in ipairs(emu:requests("DescribeReplications")) do pages[#pages + 1] = e.body.Marker ~= nil end
      assert.are.same({ false, true, false, true }, pages)   -- each round follows the Marker
    end)

    it("reports the same numbers from both workers (counted in a lua_shared_dict)", function()
      local pids_url = url_of(ports.PIDS)
      local arn = own()
      local base = exposition.value(select(2, scrape()), "dms_ops_dms_calls_total",
        { operation = "DescribeReplicationTableStatistics", outcome = "success" })
      -- 20 calls, served by both workers
      local served = {}
      for _ = 1, 20 do
        local r = get("/replications/tables?arn=" .. arn, AUTH, pids_url)
        assert.are.equal(200, r.status, r.body)
        served[r.headers["x-worker-pid"]] = true
      end
      -- 20 scrapes, answered by both workers: each sees the 20 calls
      local answered = {}
      for _ = 1, 20 do
        local r, doc = scrape(METRICS_AUTH, pids_url)
        answered[r.headers["x-worker-pid"]] = true
        assert.are.equal(base + 20, exposition.value(doc, "dms_ops_dms_calls_total",
          { operation = "DescribeReplicationTableStatistics", outcome = "success" }))
      end
      local function count(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end
      assert.are.equal(2, count(served), "the calls were not spread over both workers")
      assert.are.equal(2, count(answered), "the scrapes were not answered by both workers")
    end)

    it("puts each DMS exchange in its latency bucket: a 300 ms answer counts from le=0.5, not le=0.25", function()
      local arn = own()
      local series = { operation = "DescribeReplicationTableStatistics", outcome = "success" }
      local function hist(doc)
        local function b(le)
          local labels = { le = le }
          for k, v in pairs(series) do labels[k] = v end
          return exposition.value(doc, "dms_ops_dms_call_duration_seconds_bucket", labels)
        end
        return { b("0.25"), b("0.5"), b("+Inf"), exposition.value(doc, "dms_ops_dms_call_duration_seconds_sum", series),
          exposition.value(doc, "dms_ops_dms_call_duration_seconds_count", series),
          exposition.value(doc, "dms_ops_dms_calls_total", series) }
      end
      local before = hist(select(2, scrape()))
      emu:fault({ operation = "DescribeReplicationTableStatistics", fault = "delay", seconds = 0.3, count = 1 })
      assert.are.equal(200, get("/replications/tables?arn=" .. arn, AUTH).status)
      local _, doc = scrape()
      local after = hist(doc)
      assert.are.equal(before[1], after[1])           -- le=0.25: not there
      assert.are.equal(before[2] + 1, after[2])       -- le=0.5: there
      assert.are.equal(before[3] + 1, after[3])
      assert.are.equal(before[5] + 1, after[5])
      assert.are.equal(before[6] + 1, after[6])       -- the counter agrees with the histogram
      assert.are.equal(after[3], after[5])
      local added = after[4] - before[4]
      assert.is_true(added >= 0.29 and added < 0.5, "the sum grew by " .. added)
      -- the buckets of every series: the strict reader checked them cumulative, +Inf = _count
      local f = doc.families.dms_ops_dms_call_duration_seconds
      for _, h in pairs(f.series) do assert.are.equal(14, #h.buckets) end
    end)

    it("counts DMS exchanges by outcome and error code: client error, throttled, server error, network, timeout",
      function()
        local _, d0 = scrape()
        local function v(doc, name, labels) return exposition.value(doc, name, labels) end
        local op = "DescribeReplications"
        -- ResourceNotFoundFault: one exchange, a client error
        assert.are.equal(404, get("/replications/status?arn=" .. MISSING_ARN, AUTH).status)
        -- throttled three times (every attempt)
        emu:fault({ operation = op, fault = "throttle", count = 3 })
        assert.are.equal(429, get("/replications/status?arn=" .. MISSING_ARN, AUTH).status)
        -- 503 three times
        emu:fault({ operation = op, fault = "503", count = 3 })
        assert.are.equal(502, get("/replications/status?arn=" .. MISSING_ARN, AUTH).status)
        -- a dropped connection, then a success
        local arn = own()
        emu:fault({ operation = op, fault = "drop_before", count = 1 })
        assert.are.equal(200, get("/replications/status?arn=" .. arn, AUTH).status)
        -- a timeout ($dms_timeout 1, one attempt)
        emu:fault({ operation = op, fault = "delay", seconds = 1.6, count = 1 })
        assert.are.equal(504, get("/replications/status?arn=" .. arn, AUTH, url_of(ports.SHORT)).status)
        local _, d1 = scrape()
        local function grew(name, labels) return v(d1, name, labels) - v(d0, name, labels) end
        local calls = "dms_ops_dms_calls_total"
        local errs = "dms_ops_dms_errors_total"
        assert.are.equal(1, grew(calls, { operation = op, outcome = "client_error" }))
        assert.are.equal(1, grew(errs, { operation = op, code = "ResourceNotFoundFault" }))
        assert.are.equal(3, grew(calls, { operation = op, outcome = "throttled" }))
        assert.are.equal(3, grew(errs, { operation = op, code = "ThrottlingException" }))
        assert.are.equal(3, grew(calls, { operation = op, outcome = "server_error" }))
        assert.are.equal(3, grew(errs, { operation = op, code = "ServiceUnavailable" }))
        assert.are.equal(1, grew(calls, { operation = op, outcome = "network_error" }))
        assert.are.equal(1, grew(errs, { operation = op, code = "ConnectionLost" }))
        assert.are.equal(1, grew(calls, { operation = op, outcome = "timeout" }))
        assert.are.equal(1, grew(errs, { operation = op, code = "Timeout" }))
        -- the timed-out exchange took its second: it is above le=0.5
        assert.are.equal(0, grew("dms_ops_dms_call_duration_seconds_bucket",
          { operation = op, outcome = "timeout", le = "0.5" }))
        assert.are.equal(1, grew("dms_ops_dms_call_duration_seconds_bucket",
          { operation = op, outcome = "timeout", le = "2.5" }))
        core.sleep(0.7)   -- the delayed call ends before the next test
      end)

    it("needs the metrics token or the ops token (Prometheus gets the read-only one); counts answers by route",
      function()
        local r = get("/metrics")
        assert.are.equal(401, r.status)
        assert.are.equal("Unauthorized", r.json.error.code)
        assert.matches("^Bearer", r.headers["www-authenticate"])
        assert.are.equal(401, get("/metrics", { Authorization = "Bearer " .. METRICS_BEARER .. "x" }).status)
        assert.are.equal(200, get("/metrics", AUTH).status)
        assert.are.equal(404, get("/no/such/route", AUTH).status)
        -- the metrics token opens /metrics and nothing else
        assert.are.equal(401, get("/replications", METRICS_AUTH).status)
        assert.are.equal(401, post("/replications/stop", { arn = MISSING_ARN }, METRICS_AUTH).status)
        local _, doc = scrape()
        local http = "dms_ops_http_requests_total"
        assert.is_true(exposition.value(doc, http, { route = "/metrics", status = "401" }) >= 2)
        assert.is_true(exposition.value(doc, "dms_ops_http_requests_total", { route = "other", status = "404" }) >= 1)
        assert.is_true(exposition.value(doc, "dms_ops_http_requests_total",
          { route = "/replications/stop", status = "401" }) >= 1)
        assert.matches("dms%-ops: GET /metrics [^\n]*auth=missing", srv:error_log())
      end)

    it("keeps the last good gauges when a round fails, and says so", function()
      nginx.run("sleep " .. TTL + 0.1)
      emu:fault({ operation = "DescribeReplications", fault = "503", count = 3 })
      local _, doc = scrape()
      assert.are.equal(0, exposition.value(doc, "dms_ops_metrics_refresh_success", { error = "ServiceUnavailable" }))
      assert.is_true(exposition.value(doc, "dms_ops_replications") >= 3 + FLEET)
      assert.is_true(#exposition.find(doc, "dms_replication_status") >= 3 + FLEET)
      assert.is_true(exposition.value(doc, "dms_ops_metrics_refreshes_total", { outcome = "error" }) >= 1)
      nginx.run("sleep " .. TTL + 0.1)
      _, doc = scrape()
      assert.are.equal(1, exposition.value(doc, "dms_ops_metrics_refresh_success"))
    end)

    it("answers a Lua error with the JSON error shape and the request id, and logs it", function()
      local r = get("/metrics", METRICS_AUTH, url_of(ports.FAULT))
      assert.are.equal(500, r.status, r.body)
      assert.are.equal("application/json", r.headers["content-type"])
      assert.are.same({ "internal", "InternalError" }, { r.json.error.kind, r.json.error.code })
      local rid = r.json.error.ops_request_id
      assert.matches("^%x+$", rid)
      assert.are.equal(rid, r.headers["x-request-id"])
      assert.matches("dms%-ops: GET /metrics internal error ops_request_id=" .. rid .. ": [^\n]*attempt to index",
        srv:error_log())
      -- the worker goes on
      scrape()
    end)
  end)

  -------------------------------------------------------------------------
  describe("GET /healthz", function()
    it("answers 200 with the worker's pid and the library version, without a token or a DMS call", function()
      emu:clear_requests()
      local r = get("/healthz")
      assert.are.equal(200, r.status, r.body)
      assert.are.equal("ok", r.json.status)
      assert.are.equal(dms._VERSION, r.json.version)
      assert.is_number(r.json.pid)
      assert.are_not.equal(tonumber(srv.pid), r.json.pid)           -- a worker's, not the master's
      assert.is_true(nginx.run("kill -0 " .. math.floor(r.json.pid)))
      assert.are.equal(200, get("/healthz", { Authorization = "Bearer wrong" }).status)
      assert.are.equal(405, post("/healthz", "{}").status)
      assert.are.equal(0, #emu:requests())
    end)
  end)

  -------------------------------------------------------------------------
  describe("POST /replications/stop", function()
    it("stops a replication", function()
      local arn = own()
      emu:clear_requests()
      local r = post("/replications/stop", { arn = arn }, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal("stopping", r.json.Replication.Status)
      local log = emu:requests("StopReplication")
      assert.are.equal(1, #log)
      assert.is_true(log[1].signature_ok)
      assert.are.same({ ReplicationConfigArn = arn }, log[1].body)
      assert.matches("dms%-ops: POST /replications/stop [^\n]*arn=" .. arn:gsub("%p", "%%%0") .. "[^\n]*status=200",
        srv:error_log())
    end)

    it("waits until stopped, or until the capacity is released", function()
      local arn = own()
      local r = post("/replications/stop", { arn = arn, wait = "stopped" }, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal("stopped", r.json.Replication.Status)
      assert.are.equal("stopping", r.json.StopResponse.Status)
      assert.are.equal("stopped", r.json.wait)
      assert.is_number(r.json.waited)
      assert.are_not.equal("deprovisioned", r.json.Replication.ProvisionData.ProvisionState)

      arn = own()
      emu:clear_requests()
      local t0 = core.now()
      r = post("/replications/stop", { arn = arn, wait = "deprovisioned" }, AUTH)
      local elapsed = core.now() - t0
      assert.are.equal(200, r.status, r.body)
      assert.are.equal("stopped", r.json.Replication.Status)
      assert.are.equal("deprovisioned", r.json.Replication.ProvisionData.ProvisionState)
      -- stopping 2 min, deprovisioning 10 min of emulated time: about 0.7 s
      assert.is_true(elapsed > 0.5 and elapsed < 5, "took " .. elapsed .. " s")
      assert.are.equal(1, log_count("StopReplication", arn))
      assert.is_true(log_count("DescribeReplications", arn) >= 3)
    end)

    it("answers 502 with outcome_unknown when the stop's answer is lost, and never sends it again", function()
      local arn = own()
      emu:clear_requests()
      emu:fault({ operation = "StopReplication", fault = "drop_after", count = 1 })
      local r = post("/replications/stop", { arn = arn, wait = "stopped" }, AUTH)
      assert.are.equal(502, r.status, r.body)
      assert.are.equal("transport", r.json.error.kind)
      assert.are.equal("ConnectionLost", r.json.error.code)
      assert.is_true(r.json.error.outcome_unknown)
      assert.matches("was not sent again", r.json.error.message)
      assert.are.equal(1, log_count("StopReplication"))
      assert.are.equal(0, log_count("DescribeReplications"))     -- no wait after an unknown outcome
      -- it did reach DMS: a second stop would have been refused or stopped it twice
      assert.are_not.equal("running", replication_of(arn).Status)
    end)

    it("answers 504 with the last state seen when the wait runs out, the stop having been sent", function()
      local arn = own()
      local t0 = core.now()
      local r = post("/replications/stop", { arn = arn, wait = "deprovisioned", wait_timeout = 0.2 }, AUTH)
      local elapsed = core.now() - t0
      assert.are.equal(504, r.status, r.body)
      assert.are.same({ "wait", "WaitTimeout" }, { r.json.error.kind, r.json.error.code })
      assert.is_true(r.json.error.stop_sent)
      assert.are.equal(arn, r.json.error.replication.ReplicationConfigArn)
      assert.matches("not deprovisioned after", r.json.error.message)
      assert.is_true(elapsed < 1.5, "a 0.2 s wait took " .. elapsed .. " s")
    end)

    it("answers 409 for a replication that is not running", function()
      local arn = own({ status = "stopped" })
      local r = post("/replications/stop", { arn = arn }, AUTH)
      assert.are.equal(409, r.status, r.body)
      assert.are.equal("InvalidResourceStateFault", r.json.error.code)
      assert.are.equal(404, post("/replications/stop", { arn = MISSING_ARN }, AUTH).status)
    end)

    it("answers 400 for a bad request, before any DMS call", function()
      emu:clear_requests()
      local arn = emulator.ARN_CDC
      local cases = {
        { { arn = arn, force = true }, "UnknownParameter", "force" },
        { { arn = arn, wait = "gone" }, "InvalidParameterValue", "wait" },
        { { arn = arn, wait = "stopped", wait_timeout = 31 }, "InvalidParameterValue", "wait_timeout" },
        { { arn = arn, wait = "stopped", wait_timeout = -1 }, "InvalidParameterValue", "wait_timeout" },
        { { arn = arn, wait = "stopped", wait_timeout = "5" }, "InvalidParameterValue", "wait_timeout" },
        { { arn = arn, wait_timeout = 5 }, "InvalidParameterCombination", "wait_timeout" },
        { {}, "MissingParameter", "arn" },
        { { arn = 7 }, "InvalidParameterType", "arn" },
      }
      for _, c in ipairs(cases) do
        local r = post("/replications/stop", c[1], AUTH)
        assert.are.equal(400, r.status, r.body)
        assert.are.equal(c[2], r.json.error.code, r.body)
        assert.are.equal(c[3], r.json.error.member, r.body)
      end
      assert.are.equal(400, post("/replications/stop", "{nope", AUTH).status)
      assert.are.equal(405, get("/replications/stop", AUTH).status)
      assert.are.equal(401, post("/replications/stop", { arn = arn }).status)
      assert.are.equal(0, #emu:requests())
    end)
  end)

  -------------------------------------------------------------------------
  describe('POST /replications/start with "wait": "deprovisioned"', function()
    -- a replication whose last run just ended: its capacity is deprovisioning
    local function just_stopped()
      local arn = own()
      local r = post("/replications/stop", { arn = arn, wait = "stopped" }, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal("deprovisioning", r.json.Replication.ProvisionData.ProvisionState)
      return arn
    end

    it("waits for the previous run's capacity to be released, then starts", function()
      local arn = just_stopped()
      local r = post("/replications/start", { arn = arn, type = "resume-processing" }, AUTH)
      assert.are.equal(409, r.status, r.body)                 -- without the wait, DMS refuses
      assert.matches("DEPROVISIONING", r.json.error.message)

      emu:clear_requests()
      r = post("/replications/start", { arn = arn, type = "resume-processing", wait = "deprovisioned" }, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal(arn, r.json.Replication.ReplicationConfigArn)
      local log = emu:requests()
      assert.are.equal(1, log_count("StartReplication", arn))
      -- looked (and looked again) before the start, never after
      assert.are.equal("StartReplication", log[#log].operation)
      assert.is_true(#log >= 3)
      for i = 1, #log - 1 do assert.are.equal("DescribeReplications", log[i].operation) end
    end)

    it("answers 504 when the bound is reached, and does not start", function()
      local arn = just_stopped()
      emu:clear_requests()
      local r = post("/replications/start", { arn = arn, type = "resume-processing", wait = "deprovisioned",
        wait_timeout = 0.15 }, AUTH)
      assert.are.equal(504, r.status, r.body)
      assert.are.equal("WaitTimeout", r.json.error.code)
      assert.are.equal("deprovisioning", r.json.error.replication.ProvisionData.ProvisionState)
      core.sleep(1)                                   -- released by now
      assert.are.equal(0, log_count("StartReplication"))
      assert.are.equal("stopped", replication_of(arn).Status)
    end)

    it("does not start when its client goes away while it waits", function()
      local arn = just_stopped()
      emu:clear_requests()
      local ok = nginx.run("curl -sS --max-time 0.25 -H " .. nginx.quote("Authorization: Bearer " .. BEARER)
        .. " -d " .. nginx.quote(cjson.encode({ arn = arn, type = "resume-processing", wait = "deprovisioned" }))
        .. " " .. nginx.quote(srv.url .. "/replications/start"))
      assert.is_false(ok)                             -- curl gave up
      core.sleep(1)                                   -- the capacity was released meanwhile
      assert.are.equal(0, log_count("StartReplication"))
      assert.are.equal("stopped", replication_of(arn).Status)
      assert.matches("dms%-ops: POST /replications/start the client went away while waiting: the start was not sent",
        srv:error_log())
    end)

    it("does not wait for a replication that runs: DMS refuses the start at once", function()
      local arn = own()
      emu:clear_requests()
      local t0 = core.now()
      local r = post("/replications/start", { arn = arn, type = "resume-processing", wait = "deprovisioned" }, AUTH)
      assert.are.equal(409, r.status, r.body)
      assert.matches("RUNNING", r.json.error.message)
      assert.is_true(core.now() - t0 < 2, "it waited")
      assert.are.equal(1, log_count("StartReplication"))
      assert.are.equal(1, log_count("DescribeReplications"))
    end)

    it("checks the start before waiting: a bad request is answered at once", function()
      emu:clear_requests()
      local arn = emulator.ARN_CDC
      local r = post("/replications/start", { arn = arn, type = "restart", wait = "deprovisioned" }, AUTH)
      assert.are.equal(400, r.status, r.body)
      assert.are.equal("type", r.json.error.member)
      r = post("/replications/start", { arn = arn, type = "start-replication", wait = "stopped" }, AUTH)
      assert.are.equal(400, r.status, r.body)
      assert.are.equal("wait", r.json.error.member)
      r = post("/replications/start", { arn = arn, type = "start-replication", wait = "deprovisioned",
        wait_timeout = 1000 }, AUTH)
      assert.are.equal(400, r.status, r.body)
      assert.are.equal("wait_timeout", r.json.error.member)
      assert.are.equal(0, #emu:requests())
    end)
  end)

  -------------------------------------------------------------------------
  describe("GET /replications", function()
    -- every page from max_items at a time
    local function all_items(query)
      local items, pages, token, sizes = {}, 0, nil, {}
      repeat
        local r = get("/replications?" .. query .. (token and ("&next_token=" .. token) or ""), AUTH)
        assert.are.equal(200, r.status, r.body)
        pages = pages + 1
        sizes[pages] = r.json.count
        assert.are.equal(#r.json.items, r.json.count)
        for _, it_ in ipairs(r.json.items) do items[#items + 1] = it_ end
        token = r.json.next_token
        if token == cjson.null then token = nil end        -- the last page
        assert.is_true(pages < 100)
      until not token
      return items, pages, sizes
    end

    it("lists every config with its replication, page by page", function()
      emu:clear_requests()
      local items, pages, sizes = all_items("max_items=40")
      local configs = emu:replications().replications
      assert.are.equal(#configs, #items)
      -- full pages across the pages of DMS (100 configs each), the last one short
      assert.are.equal(math.ceil(#configs / 40), pages)
      for i = 1, pages - 1 do assert.are.equal(40, sizes[i]) end
      assert.are.equal(#configs - 40 * (pages - 1), sizes[pages])
      local seen = {}
      for _, item in ipairs(items) do
        local arn = item.ReplicationConfig.ReplicationConfigArn
        assert.is_nil(seen[arn], "listed twice: " .. arn)
        seen[arn] = true
        assert.is_string(item.ReplicationConfig.ReplicationConfigIdentifier)
        assert.is_string(item.ReplicationConfig.TableMappings)
        assert.are.equal(arn, item.Replication.ReplicationConfigArn)
        assert.is_string(item.Replication.Status)
      end
      for _, c in ipairs(configs) do assert.is_true(seen[c.ReplicationConfigArn], c.ReplicationConfigArn) end
      -- configs read 100 at a time; each page's replications with one filter naming its configs
      for _, e in ipairs(emu:requests("DescribeReplicationConfigs")) do assert.are.equal(100, e.body.MaxRecords) end
      for _, e in ipairs(emu:requests("DescribeReplications")) do
        assert.is_true(#e.body.Filters[1].Values <= 40)
      end
    end)

    it("filters by status", function()
      local items = all_items("status=created,failed")
      local want = {}
      for _, r in ipairs(emu:replications().replications) do
        if r.Status == "created" or r.Status == "failed" then want[r.ReplicationConfigArn] = true end
      end
      local got = {}
      for _, item in ipairs(items) do
        assert.is_true(item.Replication.Status == "created" or item.Replication.Status == "failed")
        got[item.ReplicationConfig.ReplicationConfigArn] = true
      end
      assert.are.same(want, got)
      assert.is_true(got[emulator.ARN_CDC])
      local r = get("/replications?status=no-such-status", AUTH)
      assert.are.equal(200, r.status)
      assert.are.equal(0, r.json.count)
      assert.matches('"items":%[%]', r.body)
    end)

    it("answers 400 for bad paging, before any DMS call", function()
      emu:clear_requests()
      for _, q in ipairs({ "max_items=0", "max_items=101", "max_items=2.5", "max_items=x", "next_token=zzz",
          "next_token=" .. string.rep("A", 5000), "sort=name", "max_items=5&max_items=6" }) do
        local r = get("/replications?" .. q, AUTH)
        assert.are.equal(400, r.status, q .. ": " .. r.body)
        assert.are.equal("validation", r.json.error.kind)
      end
      assert.are.equal(0, #emu:requests())
    end)
  end)

  -------------------------------------------------------------------------
  describe("GET /replications/tables", function()
    it("reads every page of the table statistics, and the errored tables alone with errored=1", function()
      local arn = own({ tables = 600 })
      emu:admin("POST", "table_error", { arn = arn, table = "public.orders" })
      emu:clear_requests()
      local r = get("/replications/tables?arn=" .. arn, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal(600, r.json.count)
      assert.are.equal(600, #r.json.ReplicationTableStatistics)
      assert.are.same({ ["Table completed"] = 599, ["Table error"] = 1 }, r.json.table_states)
      assert.are.equal(2, log_count("DescribeReplicationTableStatistics"))   -- 500 a page
      local names = {}
      for _, t in ipairs(r.json.ReplicationTableStatistics) do names[t.SchemaName .. "." .. t.TableName] = true end
      assert.is_true(names["public.orders"])

      r = get("/replications/tables?errored=1&arn=" .. arn, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal(1, r.json.count)
      assert.are.equal("orders", r.json.ReplicationTableStatistics[1].TableName)
      assert.are.equal("Table error", r.json.ReplicationTableStatistics[1].TableState)
      local log = emu:requests("DescribeReplicationTableStatistics")
      assert.are.same({ { Name = "table-state", Values = { "Table error" } } }, log[#log].body.Filters)
    end)

    it("answers [] when no table is errored, 400, 404 and 409 as DMS does", function()
      local arn = own()
      local r = get("/replications/tables?errored=1&arn=" .. arn, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal(0, r.json.count)
      assert.matches('"ReplicationTableStatistics":%[%]', r.body)
      assert.are.equal(400, get("/replications/tables", AUTH).status)
      assert.are.equal(400, get("/replications/tables?errored=maybe&arn=" .. arn, AUTH).status)
      assert.are.equal(404, get("/replications/tables?arn=" .. MISSING_ARN, AUTH).status)
      r = get("/replications/tables?arn=" .. emulator.ARN_FULL_LOAD, AUTH)    -- never started
      assert.are.equal(409, r.status, r.body)
      assert.are.equal("InvalidResourceStateFault", r.json.error.code)
    end)
  end)

  it("keeps secrets out of the logs", function()
    local logs = srv:error_log() .. srv:access_log()
    assert.is_true(#logs > 0)
    for _, secret in ipairs({ SECRET_KEY, BEARER, METRICS_BEARER, "Signature=", "AWS4-HMAC-SHA256", "Bearer" }) do
      assert.is_nil(logs:find(secret, 1, true), "the logs contain " .. secret)
    end
  end)
end)
end
