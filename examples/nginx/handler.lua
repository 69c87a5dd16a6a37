-- An ops endpoint for DMS Serverless replications, served by nginx + lua-nginx-module
-- (OpenResty). See nginx.conf and README.md next to this file.
--
--   POST /replications/start    {"arn", "type", "assessment", ..., "wait": "deprovisioned"}
--   POST /replications/stop     {"arn", "wait": "stopped" | "deprovisioned", "wait_timeout"}
--   GET  /replications          ?max_items=&next_token=&status=   configs joined with their replication
--   GET  /replications/status   ?arn=                              the DescribeReplications response
--   GET  /replications/tables   ?arn=&errored=1                    table statistics (every page)
--   GET  /healthz               no token, no DMS call
--   GET  /metrics               Prometheus text format (the metrics token or the ops token)
--
-- Every request but /healthz needs "Authorization: Bearer <token>" (the token
-- comes from the $dms_ops_token variable, the DMS_OPS_TOKEN environment
-- variable, or the file named by DMS_OPS_TOKEN_FILE, read again when it
-- changes; /metrics also takes the read-only metrics token, $dms_metrics_token,
-- DMS_METRICS_TOKEN or DMS_METRICS_TOKEN_FILE). DMS calls go through cosockets
-- (dms.transport.ngx), so a slow DMS answer never blocks the worker. One
-- client per worker, created on the first request and kept here.
--
-- Settings: an nginx variable when it is set (set $dms_region us-east-1;), else
-- the environment (declare each name with `env NAME;` in the main block: nginx
-- clears the environment of its workers otherwise).
--   $dms_region           AWS_REGION                     region
--   $dms_endpoint         AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE
--   $dms_ops_token        DMS_OPS_TOKEN (or DMS_OPS_TOKEN_FILE)   the bearer token
--   $dms_metrics_token    DMS_METRICS_TOKEN (or DMS_METRICS_TOKEN_FILE)  a token for /metrics only
--   $dms_connect_timeout  DMS_CONNECT_TIMEOUT            seconds (default 3)
--   $dms_timeout          DMS_TIMEOUT                    seconds per attempt (default 10)
--   $dms_max_attempts     DMS_MAX_ATTEMPTS               attempts per call (default 3)
--   $dms_http_client      DMS_HTTP_CLIENT                auto | builtin | resty.http
--   $dms_allow_reload_target  DMS_ALLOW_RELOAD_TARGET    "on" lets "type": "reload-target" through
--   $dms_wait_timeout     DMS_WAIT_TIMEOUT               seconds a "wait" may take, at most (default 900)
--   $dms_wait_interval    DMS_WAIT_INTERVAL              seconds between two looks while waiting (default 5)
--   $dms_metrics_ttl      DMS_METRICS_TTL                seconds the replication gauges are kept (default 30)
--   $dms_metrics_timeout  DMS_METRICS_TIMEOUT            seconds one refresh round may take (default 20)
-- AWS credentials come from the usual chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
-- AWS_SESSION_TOKEN, or AWS_PROFILE with the shared files).
--
-- Logs name the route, the replication ARN, the status, the error code, the
-- DMS request id, nginx's request id (ops_request_id, also in the X-Request-Id
-- header of every answer) and why a request was refused; never the
-- Authorization header, AWS keys, session tokens or the bearer tokens.
--
-- Every failure is answered with the JSON error shape, a Lua error in a route
-- too (500 InternalError, logged with its traceback and the request id).
local ngx = ngx
local type, tostring, tonumber, pairs, ipairs, pcall, xpcall, next =
      type, tostring, tonumber, pairs, ipairs, pcall, xpcall, next
local io_open, os_getenv = io.open, os.getenv
local debug_traceback = debug.traceback
local table_concat, table_sort = table.concat, table.sort
local string_format = string.format

local bit = require "bit"
local cjson = require("cjson.safe").new()
local dms = require "dms"
local dms_errors = require "dms.errors"
local replication = require "dms.workflow.replication"
local ngx_transport = require "dms.transport.ngx"
local ops_metrics = require "ops_metrics"


local M = {
  -- seconds a worker keeps what it read from a token file before reading
  -- the file again: a rotated token takes effect (and the old one stops
  -- working) within this time, without a reload
  TOKEN_FILE_TTL = 1,
  -- the lua_shared_dict of the metrics (nginx.conf)
  METRICS_DICT = "dms_ops_metrics",
  -- pages one answer may read from DMS (a marker that never ends stops here)
  MAX_PAGES = 1000,
}

local MAX_BODY_BYTES = 16 * 1024

-- start request fields -> StartReplication members
local START_FIELDS = {
  arn = "ReplicationConfigArn",
  type = "StartReplicationType",
  assessment = "PremigrationAssessmentSettings",
  cdc_start_time = "CdcStartTime",
  cdc_start_position = "CdcStartPosition",
  cdc_stop_position = "CdcStopPosition",
}
local MEMBER_FIELDS = {}
for field, member in pairs(START_FIELDS) do MEMBER_FIELDS[member] = field end
MEMBER_FIELDS.Filters = "arn"

-- what a "wait" of each route may name
local START_WAITS = { deprovisioned = true }
local STOP_WAITS = { stopped = true, deprovisioned = true }

-- DMS error codes -> HTTP status of this endpoint
local SERVICE_STATUS = {
  ResourceNotFoundFault = 404,
  InvalidResourceStateFault = 409,
  ResourceAlreadyExistsFault = 409,
  ThrottlingException = 429, Throttling = 429, TooManyRequestsException = 429,
  RequestLimitExceeded = 429, ProvisionedThroughputExceededException = 429,
  AccessDeniedException = 403, AccessDeniedFault = 403, AccessDenied = 403,
  InvalidParameterValueException = 400, InvalidParameterCombinationException = 400,
  ValidationException = 400,
}

-- the routes, by path (the label of dms_ops_http_requests_total; others are "other")
local ROUTES = {
  ["/replications/start"] = true, ["/replications/stop"] = true, ["/replications"] = true,
  ["/replications/status"] = true, ["/replications/tables"] = true, ["/healthz"] = true,
  ["/metrics"] = true,
}

local function now()
  ngx.update_time()
  return ngx.now()
end

---------------------------------------------------------------------------
-- settings

local function setting(var, env)
  local ok, v = pcall(function() return ngx.var[var] end)
  if ok and type(v) == "string" and v ~= "" then return v end
  v = env and os_getenv(env)
  if v and v ~= "" then return v end
  return nil
end

local function number_setting(var, env, default)
  local v = setting(var, env)
  v = v and tonumber(v)
  if v and v > 0 then return v end
  return default
end

-- The token in the file, or nil and why there is none (never the contents).
local function read_token_file(path)
  local f, err = io_open(path, "rb")
  if not f then
    local why = "cannot read the bearer token file " .. tostring(err)
    if tostring(err):find("Permission denied", 1, true) then
      why = why .. " (nginx workers run as the user named by the user directive: let it read the file)"
    end
    return nil, why
  end
  local s = f:read("*a")
  f:close()
  local token = s and s:match("^%s*(.-)%s*$")
  if not token or token == "" then return nil, "the bearer token file " .. path .. " is empty" end
  if token:find("%s") then return nil, "the bearer token file " .. path .. " holds more than one word" end
  return token
end

-- What this worker last read from each token file. There is no stat() in Lua
-- or in the nginx Lua API, so a file is read again once TOKEN_FILE_TTL has
-- passed: one open and read of a small file a second, and a change is seen
-- whatever happened to the file (rewritten in place, renamed over, mtime
-- kept), which an mtime/size/inode check could miss.
local token_files = {}   -- environment variable -> {path=, token=, why=, read_at=}

-- a token from var, env or the file env_file names; nil and why when none is configured
local function configured_token(var, env, env_file)
  local t = setting(var, env)
  if t then return t end
  local path = os_getenv(env_file)
  if not path or path == "" then return nil, "not set" end
  local cache = token_files[env_file]
  if not cache then
    cache = {}
    token_files[env_file] = cache
  end
  local t_now = ngx.now()
  if cache.path ~= path or not cache.read_at or t_now - cache.read_at >= M.TOKEN_FILE_TTL then
    cache.path, cache.read_at = path, t_now
    cache.token, cache.why = read_token_file(path)
  end
  if not cache.token then return nil, cache.why, true end
  return cache.token
end

-- the ops token, or nil and why none is configured
local function bearer_token()
  local t, why, from_file = configured_token("dms_ops_token", "DMS_OPS_TOKEN", "DMS_OPS_TOKEN_FILE")
  if t then return t end
  if from_file then return nil, why end
  return nil, "no bearer token configured (set $dms_ops_token, DMS_OPS_TOKEN or DMS_OPS_TOKEN_FILE)"
end

-- the metrics token: nil when none is configured; nil and why when its file fails
local function metrics_token()
  local t, why, from_file = configured_token("dms_metrics_token", "DMS_METRICS_TOKEN", "DMS_METRICS_TOKEN_FILE")
  if t then return t end
  if from_file then return nil, why end
  return nil
end

-- nginx's id of this request ($request_id: 32 hex digits)
local function read_request_id() return ngx.var.request_id end
local function request_id()
  local ok, id = pcall(read_request_id)
  return ok and id or nil
end

-- fields a log line may carry; anything that looks like a secret is dropped.
-- The answer for each key is kept (log lines name the same few keys), in a
-- table emptied should it ever grow large.
local loggable_keys, loggable_count = {}, 0
local function loggable(k)
  local yes = loggable_keys[k]
  if yes == nil then
    local l = tostring(k):lower()
    yes = not (l:find("authorization", 1, true) or l:find("secret", 1, true)
      or l:find("token", 1, true) or l:find("password", 1, true)
      or l:find("signature", 1, true) or l:find("credential", 1, true))
    if loggable_count >= 256 then loggable_keys, loggable_count = {}, 0 end
    loggable_keys[k], loggable_count = yes, loggable_count + 1
  end
  return yes
end

-- a value on one line, bounded (values may come from the request)
local function log_value(v)
  local s = tostring(v)
  if #s > 256 then s = s:sub(1, 256) end
  if s:find("[%c\"]") then s = s:gsub("[%c\"]", "?") end
  return s
end

local function render(fields)
  local keys, n = {}, 0
  for k in pairs(fields or {}) do
    if loggable(k) then
      n = n + 1
      keys[n] = tostring(k)
    end
  end
  table_sort(keys)
  local out, m = {}, 0
  for i = 1, n do
    local k = keys[i]
    local v = fields[k]
    if type(v) ~= "table" and v ~= nil then
      m = m + 1
      out[m] = k .. "=" .. log_value(v)
    end
  end
  return table_concat(out, " ")
end

local LOG_LEVELS = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN, error = ngx.ERR }

local function logger(level, message, fields)
  ngx.log(LOG_LEVELS[level] or ngx.NOTICE, "dms: ", message, " ", render(fields))
end

---------------------------------------------------------------------------
-- the metrics store of this worker

local store, store_why   -- the shared-dict store of this worker (nil without the dict)
local store_warned = false

local function get_store()
  if store then return store end
  store, store_why = ops_metrics.store(M.METRICS_DICT)
  if not store and not store_warned then
    store_warned = true
    ngx.log(ngx.WARN, "dms-ops: metrics are off: ", store_why)
  end
  return store, store_why
end

---------------------------------------------------------------------------
-- the per-worker client

local clients = {}   -- settings signature -> client, one table per worker

-- The client for the current settings: created on first use in this worker.
local function get_client()
  local region = setting("dms_region", "AWS_REGION")
  local endpoint = setting("dms_endpoint", "AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE")
  local connect_timeout = number_setting("dms_connect_timeout", "DMS_CONNECT_TIMEOUT", 3)
  local timeout = number_setting("dms_timeout", "DMS_TIMEOUT", 10)
  local max_attempts = number_setting("dms_max_attempts", "DMS_MAX_ATTEMPTS", 3)
  local http_client = setting("dms_http_client", "DMS_HTTP_CLIENT") or "auto"
  local key = table_concat({ tostring(region), tostring(endpoint), connect_timeout, timeout,
    max_attempts, http_client }, "|")
  local client = clients[key]
  if client then return client end
  if http_client ~= "auto" and http_client ~= "builtin" and http_client ~= "resty.http" then
    return nil, { kind = "config", code = "InvalidConfig",
                  message = "dms_http_client must be auto, builtin or resty.http" }
  end
  local ok, transport = pcall(ngx_transport.new, {
    connect_timeout = connect_timeout, timeout = timeout, http_client = http_client,
  })
  if not ok then return nil, { kind = "config", code = "InvalidConfig", message = tostring(transport) } end
  local err
  client, err = dms.new({
    region = region, endpoint = endpoint,
    timeout = { connect = connect_timeout, total = timeout },
    retry = { max_attempts = max_attempts },
    -- each exchange counted and timed in the shared dict
    transport = ops_metrics.metered(transport, get_store),
    logger = logger,
  })
  if not client then return nil, err end
  clients[key] = client
  ngx.log(ngx.NOTICE, "dms: client ready ", render({ region = client.region, endpoint = client.endpoint.url,
    http_client = transport:http_client(), worker = ngx.worker.pid() }))
  return client
end

---------------------------------------------------------------------------
-- responses

local function send_json(status, body, headers)
  ngx.status = status
  ngx.header["X-Request-Id"] = request_id()
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  for k, v in pairs(headers or {}) do ngx.header[k] = v end
  ngx.say(body)
end

local function respond(status, doc, headers)
  if doc.error then doc.error.ops_request_id = request_id() end
  return send_json(status, cjson.encode(doc) or '{"error":{"kind":"internal","code":"EncodeFailed"}}', headers)
end

-- A JSON object from {{key, value, "array"?}, ...}, in that order: lua-cjson
-- writes an empty table as {}, so lists are written here.
local function encode_object(members)
  local out = {}
  for _, m in ipairs(members) do
    local v = m[2]
    local text
    if m[3] == "array" then
      local parts = {}
      for i, item in ipairs(v) do parts[i] = cjson.encode(item) or "null" end
      text = "[" .. table_concat(parts, ",") .. "]"
    elseif v == nil then
      text = "null"
    else
      text = cjson.encode(v) or "null"
    end
    out[#out + 1] = cjson.encode(m[1]) .. ":" .. text
  end
  return "{" .. table_concat(out, ",") .. "}"
end

local function error_doc(err, field_of)
  local e = {
    kind = err.kind, code = err.code, message = err.message,
    request_id = err.request_id, retryable = err.retryable, attempts = err.attempts,
  }
  if err.kind == "transport" or err.outcome_unknown then
    e.outcome_unknown = err.outcome_unknown == true
  end
  if err.member then
    local field = field_of and field_of[err.member]
    if field then
      e.member = field
      e.parameter = err.member
      if type(e.message) == "string" then
        -- speak of the request's field names, not the AWS member names
        e.message = e.message:gsub(err.member, field, 1)
      end
    else
      e.member = err.member
    end
  end
  if err.status and err.kind == "service" then e.dms_status = err.status end
  -- a wait that ran out: what the replication looked like last, and for how long it was watched
  if err.replication then e.replication = err.replication end
  if err.waited then e.waited = err.waited end
  if err.stop_sent ~= nil then e.stop_sent = err.stop_sent end
  return { error = e }
end

local function status_for(err)
  if err.kind == "validation" then return 400 end
  if err.kind == "transport" then return err.code == "Timeout" and 504 or 502 end
  if err.kind == "service" then return SERVICE_STATUS[err.code] or 502 end
  if err.kind == "wait" then return 504 end
  return 500   -- config, credentials: this server's problem
end

-- the level below which error_log writes nothing: a line it would drop is
-- not built (lua-resty-core's ngx.errlog; without it every line is built)
local errlog_ok, errlog = pcall(require, "ngx.errlog")
local function logged(level)
  if not errlog_ok then return true end
  local ok, filter = pcall(errlog.get_sys_filter_level)
  return not ok or type(filter) ~= "number" or level <= filter
end

local function log_request(level, route, fields)
  fields.ops_request_id = request_id()
  if not logged(level) then return end
  ngx.log(level, "dms-ops: ", route, " ", render(fields))
end

local function fail(route, err, fields, field_of)
  local status = status_for(err)
  fields.status = status
  fields.kind, fields.code = err.kind, err.code
  fields.request_id = err.request_id
  fields.attempts = err.attempts
  fields.outcome_unknown = err.outcome_unknown
  log_request(status >= 500 and ngx.ERR or ngx.WARN, route, fields)
  local headers = status == 429 and { ["Retry-After"] = "2" } or nil
  return respond(status, error_doc(err, field_of), headers)
end

local function bad_request(route, code, message, member, fields)
  return fail(route, { kind = "validation", code = code, message = message, member = member }, fields)
end

local function succeed(route, fields, doc_or_text)
  fields.status = 200
  log_request(ngx.NOTICE, route, fields)
  if type(doc_or_text) == "string" then return send_json(200, doc_or_text) end
  return respond(200, doc_or_text)
end

---------------------------------------------------------------------------
-- authentication

-- compares in time that depends on the length only
local function same(a, b)
  if #a ~= #b then return false end
  local acc = 0
  for i = 1, #a do acc = bit.bor(acc, bit.bxor(a:byte(i), b:byte(i))) end
  return acc == 0
end

-- why an Authorization header is refused: nil when it carries one of `accepted`
local function refusal(header, accepted)
  if header == nil then return "missing" end
  if type(header) ~= "string" then return "duplicate-header" end
  local given = header:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(%S+)%s*$")
  if not given then return "not-bearer" end
  local ok = false
  for _, expected in ipairs(accepted) do
    -- every token is compared, whichever matches
    if same(given, expected) then ok = true end
  end
  if not ok then return "wrong-token" end
  return nil
end

local function not_configured(route, fields, why)
  fields.status = 500
  fields.auth = "not-configured"
  fields.reason = why
  log_request(ngx.ERR, route, fields)
  respond(500, { error = { kind = "config", code = "NotConfigured",
    message = "the endpoint has no bearer token configured" } })
  return false
end

-- true, or a response already sent. With `metrics`, the metrics token is
-- accepted too (it is accepted nowhere else).
local function authorized(route, fields, metrics)
  local expected, why = bearer_token()
  local accepted = { expected }
  if metrics then
    local mt, mwhy = metrics_token()
    if mwhy then return not_configured(route, fields, mwhy) end
    if mt then accepted[#accepted + 1] = mt end
    if not expected and mt then accepted = { mt } end
  end
  if #accepted == 0 then return not_configured(route, fields, why) end
  local refused = refusal(ngx.req.get_headers()["authorization"], accepted)
  if refused then
    fields.status = 401
    fields.auth = refused
    log_request(ngx.WARN, route, fields)
    respond(401, { error = { kind = "auth", code = "Unauthorized",
      message = "a valid bearer token is required" } },
      { ["WWW-Authenticate"] = 'Bearer realm="dms-ops"' })
    return false
  end
  return true
end

local function method_is(route, want, fields)
  if ngx.req.get_method() == want then return true end
  fields.status = 405
  log_request(ngx.WARN, route, fields)
  respond(405, { error = { kind = "validation", code = "MethodNotAllowed",
    message = route .. " accepts " .. want .. " only" } }, { Allow = want })
  return false
end

---------------------------------------------------------------------------
-- the edge

-- Returns a content handler that runs fn(); a Lua error in it is logged with
-- its traceback and the request id and answered 500 with the JSON error shape.
function M.guard(route, fn)
  return function()
    local ok, err = xpcall(fn, debug_traceback)
    if ok then return end
    local rid = request_id()
    ngx.log(ngx.ERR, "dms-ops: ", route, " internal error ops_request_id=", tostring(rid), ": ",
      (tostring(err):sub(1, 4096):gsub("\n%s*", " | ")))
    if ngx.headers_sent then return ngx.exit(ngx.ERROR) end
    return respond(500, { error = { kind = "internal", code = "InternalError",
      message = "internal error: the error log has its details under ops_request_id " .. tostring(rid) } })
  end
end

---------------------------------------------------------------------------
-- request bodies and query strings

local function too_large(route, fields)
  fields.status = 413
  log_request(ngx.WARN, route, fields)
  return respond(413, { error = { kind = "validation", code = "BodyTooLarge",
    message = "the request body must be at most " .. MAX_BODY_BYTES .. " bytes" } })
end

-- the request's JSON object, or nil (an answer was sent)
local function json_body(route, fields)
  ngx.req.read_body()
  local raw = ngx.req.get_body_data()
  if not raw then
    if ngx.req.get_body_file() then return too_large(route, fields) end
    return bad_request(route, "MissingBody", "the request body must be a JSON object", nil, fields)
  end
  if #raw > MAX_BODY_BYTES then return too_large(route, fields) end
  local doc, jerr = cjson.decode(raw)
  if type(doc) ~= "table" or (next(doc) ~= nil and type(next(doc)) ~= "string") then
    return bad_request(route, "InvalidJSON", "the request body must be a JSON object"
      .. (jerr and (": " .. tostring(jerr)) or ""), nil, fields)
  end
  for k, v in pairs(doc) do
    if v == cjson.null then doc[k] = nil end
  end
  return doc
end

-- checks "wait" and "wait_timeout"; returns the wait, its bound (seconds),
-- or nil (an answer was sent)
local function wait_fields(route, doc, allowed, fields)
  local wait, bound = doc.wait, doc.wait_timeout
  if wait == nil then
    if bound ~= nil then
      return bad_request(route, "InvalidParameterCombination", "wait_timeout needs wait", "wait_timeout", fields)
    end
    return false
  end
  if type(wait) ~= "string" or not allowed[wait] then
    local names = {}
    for k in pairs(allowed) do names[#names + 1] = '"' .. k .. '"' end
    table_sort(names)
    return bad_request(route, "InvalidParameterValue", "wait must be " .. table_concat(names, " or "),
      "wait", fields)
  end
  local cap = number_setting("dms_wait_timeout", "DMS_WAIT_TIMEOUT", 900)
  if bound == nil then return wait, cap end
  if type(bound) ~= "number" or not (bound > 0 and bound <= cap) then
    return bad_request(route, "InvalidParameterValue", string_format(
      "wait_timeout must be a number of seconds in (0, %s] ($dms_wait_timeout)", ops_metrics.format_value(cap)),
      "wait_timeout", fields)
  end
  return wait, bound
end

-- the single value of a query argument; nil, or false when it was sent twice
local function query_arg(args, name)
  local v = args[name]
  if type(v) == "table" then return false end
  if v == true then return "" end
  return v
end

local function the_arn(route, fields)
  local arn = query_arg(ngx.req.get_uri_args(), "arn")
  if arn == false then
    return bad_request(route, "InvalidParameterValue", "give arn once", "arn", fields)
  end
  if type(arn) ~= "string" or arn == "" then
    return bad_request(route, "MissingParameter", "arn is required (?arn=...)", "arn", fields)
  end
  fields.arn = arn
  return arn
end

---------------------------------------------------------------------------
-- waiting for a replication (cosockets: the worker serves others meanwhile)

local function arn_filter(arn)
  return { { Name = "replication-config-arn", Values = { arn } } }
end

-- Looks at the replication every $dms_wait_interval seconds until done(repl)
-- or `deadline` (epoch seconds). Returns the replication, or nil and an error
-- (kind "wait", code "WaitTimeout", with the last replication seen), or
-- "aborted" when the client went away. A call that fails in a way that may
-- pass (throttling, 5xx, the network) is looked at again; any other ends the wait.
local function wait_until(client, arn, done, deadline, what, state)
  local interval = number_setting("dms_wait_interval", "DMS_WAIT_INTERVAL", 5)
  local started = now()
  local last, last_err
  while true do
    if state.aborted then return nil, "aborted" end
    local remaining = deadline - now()
    if remaining <= 0 then break end
    local resp, err = client:describe_replications({ Filters = arn_filter(arn) }, { timeout = remaining })
    if resp then
      last = resp.Replications and resp.Replications[1]
      if type(last) == "table" and done(last) then return last end
    elseif err.kind == "service" and not err.retryable then
      return nil, err
    elseif err.kind ~= "service" and err.kind ~= "transport" then
      return nil, err
    else
      last_err = err
    end
    if state.aborted then return nil, "aborted" end
    remaining = deadline - now()
    if remaining <= 0 then break end
    ngx.sleep(remaining < interval and remaining or interval)
  end
  local waited = now() - started
  local shown = type(last) == "table" and string_format("status %s, capacity %s", tostring(last.Status),
    tostring(replication.provision_state(last) or "none")) or ("no answer: " .. tostring(last_err and last_err.code))
  return nil, { kind = "wait", code = "WaitTimeout", waited = tonumber(string_format("%.3f", waited)),
    message = string_format("the replication was not %s after %.1f s (%s)", what, waited, shown),
    replication = last }
end

-- the request's client went away: state.aborted (lua_check_client_abort on)
local function watch_abort(state)
  local ok = pcall(ngx.on_abort, function() state.aborted = true end)
  return ok
end

local function aborted(route, fields, what)
  fields.status = 499
  fields.aborted = "client"
  log_request(ngx.WARN, route, fields)
  ngx.log(ngx.WARN, "dms-ops: ", route, " the client went away while waiting: ", what)
  return ngx.exit(499)
end

-- The start of every route ("METHOD /path"): its log fields, its method and
-- its token checked (auth: nil for the ops token, "metrics" for the metrics
-- token too, false for none). Returns the fields, or nil (an answer was sent).
local function open_route(route, auth)
  local fields = { client = ngx.var.remote_addr }
  if not method_is(route, route:match("^%u+"), fields) then return nil end
  if auth ~= false and not authorized(route, fields, auth == "metrics") then return nil end
  return fields
end

-- The start of a POST route that may wait: open_route, the client's going
-- away watched, and the JSON body. The watch is registered before the body is
-- read: a client that goes away does not cut a DMS call short (the call ends
-- and is logged), it only ends a wait. Returns fields, state, doc, or nil.
local function open_post(route)
  local fields = open_route(route)
  if not fields then return nil end
  local state = {}
  watch_abort(state)
  local doc = json_body(route, fields)
  if not doc then return nil end
  return fields, state, doc
end

---------------------------------------------------------------------------
-- routes

-- The end of a start's wait: the capacity is released, or the replication
-- runs or is starting (no capacity will be released: the start goes now, and
-- DMS answers why it refuses it).
local function start_can_go(r)
  if replication.capacity_released(r) then return true end
  return replication.ACTIVE[r.Status] == true and r.Status ~= "stopping"
end

-- POST /replications/start
local function start()
  local route = "POST /replications/start"
  local fields, state, doc = open_post(route)
  if not fields then return end

  local params = {}
  for k, v in pairs(doc) do
    local member = START_FIELDS[k]
    if not member and k ~= "wait" and k ~= "wait_timeout" then
      return bad_request(route, "UnknownParameter", "unknown field '" .. tostring(k) .. "'", tostring(k), fields)
    end
    if member then params[member] = v end
  end
  local wait, bound = wait_fields(route, doc, START_WAITS, fields)
  if wait == nil then return end
  fields.arn = type(params.ReplicationConfigArn) == "string" and params.ReplicationConfigArn or nil
  fields.type = type(params.StartReplicationType) == "string" and params.StartReplicationType or nil
  fields.wait = wait or nil
  if params.StartReplicationType == "reload-target"
     and setting("dms_allow_reload_target", "DMS_ALLOW_RELOAD_TARGET") ~= "on" then
    fields.status = 403
    log_request(ngx.WARN, route, fields)
    return respond(403, { error = { kind = "validation", code = "ReloadTargetNotAllowed", member = "type",
      message = "reload-target reloads every table of the target: enable it with $dms_allow_reload_target on" } })
  end

  local client, cerr = get_client()
  if not client then return fail(route, cerr, fields) end
  local started = now()
  if wait then
    -- the start is checked before the wait: a bad request must not wait minutes to fail
    local bok, req, berr = pcall(dms.core.build, dms.model, "StartReplication", params)
    if not bok then
      return bad_request(route, "InvalidParameter", "the parameters could not be read: " .. tostring(req), nil, fields)
    end
    if not req then return fail(route, berr, fields, MEMBER_FIELDS) end
    local repl, werr = wait_until(client, params.ReplicationConfigArn, start_can_go, started + bound,
      "deprovisioned", state)
    fields.waited = string_format("%.3f", now() - started)
    if werr == "aborted" then
      return aborted(route, fields, "the start was not sent")
    end
    if not repl then return fail(route, werr, fields, MEMBER_FIELDS) end
    if state.aborted then return aborted(route, fields, "the start was not sent") end
  end
  local resp, err = client:start_replication(params)
  fields.elapsed = string_format("%.3f", now() - started)
  if not resp then return fail(route, err, fields, MEMBER_FIELDS) end
  fields.request_id = resp.ResponseMetadata and resp.ResponseMetadata.RequestId
  fields.replication_status = resp.Replication and resp.Replication.Status
  return succeed(route, fields, resp)
end

-- POST /replications/stop
local function stop()
  local route = "POST /replications/stop"
  local fields, state, doc = open_post(route)
  if not fields then return end
  for k in pairs(doc) do
    if k ~= "arn" and k ~= "wait" and k ~= "wait_timeout" then
      return bad_request(route, "UnknownParameter", "unknown field '" .. tostring(k) .. "'", tostring(k), fields)
    end
  end
  local wait, bound = wait_fields(route, doc, STOP_WAITS, fields)
  if wait == nil then return end
  fields.arn = type(doc.arn) == "string" and doc.arn or nil
  fields.wait = wait or nil

  local client, cerr = get_client()
  if not client then return fail(route, cerr, fields) end
  local started = now()
  -- StopReplication is never sent twice: when its answer is lost the client
  -- does not send it again (outcome_unknown), and neither does this route
  local resp, err = client:stop_replication({ ReplicationConfigArn = doc.arn })
  fields.elapsed = string_format("%.3f", now() - started)
  if not resp then return fail(route, err, fields, MEMBER_FIELDS) end
  fields.request_id = resp.ResponseMetadata and resp.ResponseMetadata.RequestId
  fields.replication_status = resp.Replication and resp.Replication.Status
  if not wait then return succeed(route, fields, resp) end

  local done = function(r) return replication.STARTABLE[r.Status] == true end
  if wait == "deprovisioned" then
    done = function(r) return replication.STARTABLE[r.Status] == true and replication.capacity_released(r) end
  end
  local repl, werr = wait_until(client, doc.arn, done, started + bound, wait, state)
  fields.waited = string_format("%.3f", now() - started)
  if werr == "aborted" then return aborted(route, fields, "the stop was sent") end
  if not repl then
    werr.stop_sent = true
    return fail(route, werr, fields, MEMBER_FIELDS)
  end
  fields.replication_status = repl.Status
  return succeed(route, fields, { Replication = repl, StopResponse = resp.Replication,
    wait = wait, waited = tonumber(fields.waited) })
end

-- GET /replications/status?arn=
local function status()
  local route = "GET /replications/status"
  local fields = open_route(route)
  if not fields then return end
  local arn = the_arn(route, fields)
  if not arn then return end
  local client, cerr = get_client()
  if not client then return fail(route, cerr, fields) end
  local started = now()
  local resp, err = client:describe_replications({ Filters = arn_filter(arn) })
  fields.elapsed = string_format("%.3f", now() - started)
  if not resp then return fail(route, err, fields, MEMBER_FIELDS) end
  fields.request_id = resp.ResponseMetadata and resp.ResponseMetadata.RequestId
  local first = resp.Replications and resp.Replications[1]
  fields.replication_status = first and first.Status
  return succeed(route, fields, resp)
end

-- next_token: base64url of "<offset>:<DMS marker>" (offset into the page of
-- 100 configs that starts at that marker)
local PAGE = 100

local function encode_token(marker, offset)
  return (ngx.encode_base64(tostring(offset) .. ":" .. (marker or ""), true):gsub("[+/]",
    { ["+"] = "-", ["/"] = "_" }))
end

local function decode_token(token)
  if type(token) ~= "string" or #token > 4096 or not token:match("^[%w_%-]+$") then return nil end
  local raw = ngx.decode_base64((token:gsub("[-_]", { ["-"] = "+", ["_"] = "/" }))
    .. string.rep("=", (4 - #token % 4) % 4))
  local offset, marker = (raw or ""):match("^(%d+):(.*)$")
  offset = tonumber(offset)
  if not offset or offset >= PAGE then return nil end
  return marker ~= "" and marker or nil, offset
end

-- every page of an operation: the list member of each answer, appended; nil, err
local function all_pages(client, op, params, list_member, deadline)
  local out, marker, seen = {}, nil, {}
  for _ = 1, M.MAX_PAGES do
    local remaining = deadline - now()
    if remaining <= 0 then
      return nil, dms_errors.transport("Timeout", op .. ": the pages took longer than allowed", false)
    end
    params.Marker = marker
    local resp, err = client:call(op, params, { timeout = remaining })
    if not resp then return nil, err end
    for _, item in ipairs(type(resp[list_member]) == "table" and resp[list_member] or {}) do
      out[#out + 1] = item
    end
    marker = resp.Marker
    if marker == nil or marker == "" then return out, resp end
    if seen[marker] then
      return nil, dms_errors.new("service", "MarkerLoop", op .. " answered a Marker it had answered before")
    end
    seen[marker] = true
  end
  return nil, dms_errors.new("service", "TooManyPages", op .. " answered more than " .. M.MAX_PAGES .. " pages")
end

-- the bound of a request that reads many pages: $dms_timeout per page, within reason
local function pages_deadline()
  return now() + number_setting("dms_metrics_timeout", "DMS_METRICS_TIMEOUT", 20)
    + number_setting("dms_timeout", "DMS_TIMEOUT", 10)
end

-- GET /replications?max_items=&next_token=&status=
local function list()
  local route = "GET /replications"
  local fields = open_route(route)
  if not fields then return end
  local args = ngx.req.get_uri_args()
  for k in pairs(args) do
    if k ~= "max_items" and k ~= "next_token" and k ~= "status" then
      return bad_request(route, "UnknownParameter", "unknown query argument '" .. tostring(k) .. "'",
        tostring(k), fields)
    end
  end
  local max_items = query_arg(args, "max_items")
  if max_items ~= nil then
    local n = tonumber(max_items)
    if not n or n % 1 ~= 0 or n < 1 or n > PAGE then
      return bad_request(route, "InvalidParameterValue", "max_items must be an integer from 1 to " .. PAGE,
        "max_items", fields)
    end
    max_items = n
  else
    max_items = PAGE
  end
  local marker, offset = nil, 0
  local token = query_arg(args, "next_token")
  if token ~= nil then
    marker, offset = decode_token(token)
    if not offset then
      return bad_request(route, "InvalidParameterValue", "next_token is not one this endpoint gave",
        "next_token", fields)
    end
  end
  local statuses
  local status_arg = query_arg(args, "status")
  if status_arg == false then
    return bad_request(route, "InvalidParameterValue", "give status once (a comma-separated list)", "status", fields)
  end
  if status_arg and status_arg ~= "" then
    statuses = {}
    for s in status_arg:gmatch("[^,%s]+") do statuses[s] = true end
  end

  local client, cerr = get_client()
  if not client then return fail(route, cerr, fields) end
  local started = now()
  local deadline = pages_deadline()
  -- the configs from the token on: the rest of its DMS page, and the next
  -- page when this answer is not full yet (two pages at most: max_items <= 100)
  local slice, next_token, pages = {}, nil, 0
  while true do
    pages = pages + 1
    if pages > 10 then   -- empty pages that go on: DMS would not
      return fail(route, dms_errors.new("service", "TooManyPages",
        "DescribeReplicationConfigs answered empty pages with markers"), fields)
    end
    local page, err = client:call("DescribeReplicationConfigs", { MaxRecords = PAGE, Marker = marker },
      { timeout = deadline - now() })
    if not page then return fail(route, err, fields) end
    local configs = type(page.ReplicationConfigs) == "table" and page.ReplicationConfigs or {}
    local take = math.min(#configs, offset + max_items - #slice)
    for i = offset + 1, take do slice[#slice + 1] = configs[i] end
    if take < #configs then
      next_token = encode_token(marker, take)
      break
    end
    if page.Marker == nil or page.Marker == "" then break end   -- the last page
    marker, offset = page.Marker, 0
    if #slice >= max_items then
      next_token = encode_token(marker, 0)
      break
    end
  end

  -- their replications: one filter naming the ARNs of this slice (paged too)
  local by_arn = {}
  if #slice > 0 then
    local arns = {}
    for i, c in ipairs(slice) do arns[i] = c.ReplicationConfigArn end
    local repls, rerr = all_pages(client, "DescribeReplications",
      { Filters = { { Name = "replication-config-arn", Values = arns } }, MaxRecords = PAGE },
      "Replications", deadline)
    if not repls then
      -- no replication for any of them yet is not a failure of the listing
      if rerr.code ~= "ResourceNotFoundFault" then return fail(route, rerr, fields) end
      repls = {}
    end
    for _, r in ipairs(repls) do
      if type(r) == "table" and r.ReplicationConfigArn then by_arn[r.ReplicationConfigArn] = r end
    end
  end
  local items = {}
  for _, c in ipairs(slice) do
    local r = by_arn[c.ReplicationConfigArn]
    if not statuses or (r and statuses[r.Status]) then
      items[#items + 1] = { ReplicationConfig = c, Replication = r or cjson.null }
    end
  end
  fields.elapsed = string_format("%.3f", now() - started)
  fields.items = #items
  return succeed(route, fields, encode_object({ { "items", items, "array" }, { "count", #items },
    { "next_token", next_token } }))
end

-- GET /replications/tables?arn=&errored=1
local function tables()
  local route = "GET /replications/tables"
  local fields = open_route(route)
  if not fields then return end
  local arn = the_arn(route, fields)
  if not arn then return end
  local errored = query_arg(ngx.req.get_uri_args(), "errored")
  if errored ~= nil and errored ~= "0" and errored ~= "1" and errored ~= "true" and errored ~= "false" then
    return bad_request(route, "InvalidParameterValue", "errored must be 1 or 0", "errored", fields)
  end
  errored = errored == "1" or errored == "true"
  local client, cerr = get_client()
  if not client then return fail(route, cerr, fields) end
  local started = now()
  local params = { ReplicationConfigArn = arn, MaxRecords = 500 }
  if errored then params.Filters = { { Name = "table-state", Values = { "Table error" } } } end
  local stats, err = all_pages(client, "DescribeReplicationTableStatistics", params,
    "ReplicationTableStatistics", pages_deadline())
  if not stats then return fail(route, err, fields, MEMBER_FIELDS) end
  local out, counts = {}, {}
  for _, t in ipairs(stats) do
    if type(t) == "table" and (not errored or t.TableState == "Table error") then
      out[#out + 1] = t
      local s = tostring(t.TableState)
      counts[s] = (counts[s] or 0) + 1
    end
  end
  fields.elapsed = string_format("%.3f", now() - started)
  fields.tables = #out
  return succeed(route, fields, encode_object({ { "ReplicationConfigArn", arn },
    { "ReplicationTableStatistics", out, "array" }, { "count", #out },
    { "table_states", next(counts) and counts or nil } }))
end

-- GET /healthz: this worker answers; no token, no DMS call
local function healthz()
  local route = "GET /healthz"
  if not open_route(route, false) then return end
  return respond(200, { status = "ok", pid = ngx.worker.pid(), worker = ngx.worker.id(),
    version = dms._VERSION })
end

-- one round of DescribeReplications over every page -> the gauges' text, count
local function fetch_gauges(client, budget)
  local started = now()
  local repls, err = all_pages(client, "DescribeReplications", { MaxRecords = PAGE }, "Replications",
    started + budget)
  if not repls then
    if err.code ~= "ResourceNotFoundFault" then
      ngx.log(ngx.ERR, "dms-ops: metrics: DescribeReplications failed ", render({ code = err.code,
        request_id = err.request_id, attempts = err.attempts, message = err.message }))
      return nil, err
    end
    repls = {}   -- no replication at all
  end
  table_sort(repls, function(a, b)
    return tostring(a.ReplicationConfigArn) < tostring(b.ReplicationConfigArn)
  end)
  return ops_metrics.render_replications(repls), #repls
end

-- GET /metrics
local function metrics()
  local route = "GET /metrics"
  local fields = open_route(route, "metrics")
  if not fields then return end
  local s, why = get_store()
  if not s then
    fields.status = 500
    fields.reason = why
    log_request(ngx.ERR, route, fields)
    return respond(500, { error = { kind = "config", code = "NotConfigured", message = why } })
  end
  local ttl = number_setting("dms_metrics_ttl", "DMS_METRICS_TTL", 30)
  local budget = number_setting("dms_metrics_timeout", "DMS_METRICS_TIMEOUT", 20)
  s:refresh(ttl, budget, function()
    local client, cerr = get_client()
    if not client then
      ngx.log(ngx.ERR, "dms-ops: metrics: no client ", render({ code = cerr.code, message = cerr.message }))
      return nil, cerr
    end
    return fetch_gauges(client, budget)
  end)
  local text = s:render({ { "version", dms._VERSION } })
  ngx.status = 200
  ngx.header["Content-Type"] = ops_metrics.CONTENT_TYPE
  ngx.header["Cache-Control"] = "no-store"
  ngx.header["X-Request-Id"] = request_id()
  ngx.print(text)
end

-- Any other path under the endpoint.
local function not_found()
  return respond(404, { error = { kind = "validation", code = "NotFound",
    message = "no such route: " .. ngx.req.get_method() .. " " .. ngx.var.uri } })
end

-- log_by_lua: counts the answer by route and status
function M.log()
  local ok, err = pcall(function()
    local s = get_store()
    if not s then return end
    local uri = ngx.var.uri
    s:count("http", { ROUTES[uri] and uri or "other", tostring(ngx.status) })
  end)
  if not ok then ngx.log(ngx.ERR, "dms-ops: metrics: ", tostring(err)) end
end

M.start = M.guard("POST /replications/start", start)
M.stop = M.guard("POST /replications/stop", stop)
M.status = M.guard("GET /replications/status", status)
M.list = M.guard("GET /replications", list)
M.tables = M.guard("GET /replications/tables", tables)
M.healthz = M.guard("GET /healthz", healthz)
M.metrics = M.guard("GET /metrics", metrics)
M.not_found = M.guard("not found", not_found)

return M
