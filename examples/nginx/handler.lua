-- An ops endpoint for DMS Serverless replications, served by nginx + lua-nginx-module
-- (OpenResty). See nginx.conf next to this file.
--
--   POST /replications/start   {"arn": "...", "type": "start-replication",
--                               "assessment": {...}}          -> the StartReplication response
--   GET  /replications/status?arn=...                         -> the DescribeReplications response
--
-- Every request needs "Authorization: Bearer <token>" (the token comes from the
-- $dms_ops_token variable, the DMS_OPS_TOKEN environment variable, or the file
-- named by DMS_OPS_TOKEN_FILE, read again when it changes). DMS calls go
-- through cosockets (dms.transport.ngx), so a slow DMS answer never blocks the
-- worker. One client per worker, created on the first request and kept here.
--
-- Settings: an nginx variable when it is set (set $dms_region us-east-1;), else
-- the environment (declare each name with `env NAME;` in the main block: nginx
-- clears the environment of its workers otherwise).
--   $dms_region           AWS_REGION                     region
--   $dms_endpoint         AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE
--   $dms_ops_token        DMS_OPS_TOKEN (or DMS_OPS_TOKEN_FILE)   the bearer token
--   $dms_connect_timeout  DMS_CONNECT_TIMEOUT            seconds (default 3)
--   $dms_timeout          DMS_TIMEOUT                    seconds per attempt (default 10)
--   $dms_max_attempts     DMS_MAX_ATTEMPTS               attempts per call (default 3)
--   $dms_http_client      DMS_HTTP_CLIENT                auto | builtin | resty.http
--   $dms_allow_reload_target  DMS_ALLOW_RELOAD_TARGET    "on" lets "type": "reload-target" through
-- AWS credentials come from the usual chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
-- AWS_SESSION_TOKEN, or AWS_PROFILE with the shared files).
--
-- Logs name the route, the replication ARN, the status, the error code, the
-- DMS request id, nginx's request id (ops_request_id, also in the X-Request-Id
-- header of every answer) and why a request was refused; never the
-- Authorization header, AWS keys, session tokens or the bearer token.
--
-- Every failure is answered with the JSON error shape, a Lua error in a route
-- too (500 InternalError, logged with its traceback and the request id).
local ngx = ngx
local type, tostring, tonumber, pairs, ipairs, pcall, xpcall, next =
      type, tostring, tonumber, pairs, ipairs, pcall, xpcall, next
local io_open, os_getenv = io.open, os.getenv
local debug_traceback = debug.traceback
local table_concat, table_sort = table.concat, table.sort

local bit = require "bit"
local cjson = require("cjson.safe").new()
local dms = require "dms"
local ngx_transport = require "dms.transport.ngx"


local M = {
  -- seconds a worker keeps what it read from DMS_OPS_TOKEN_FILE before reading
  -- the file again: a rotated token takes effect (and the old one stops
  -- working) within this time, without a reload
  TOKEN_FILE_TTL = 1,
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

---------------------------------------------------------------------------
-- settings and the per-worker client

local function setting(var, env)
  local ok, v = pcall(function() return ngx.var[var] end)
  if ok and type(v) == "string" and v ~= "" then return v end
  v = env and os_getenv(env)
  if v and v ~= "" then return v end
  return nil
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

-- What this worker last read from the token file. There is no stat() in Lua
-- or in the nginx Lua API, so the file is read again once TOKEN_FILE_TTL has
-- passed: one open and read of a small file a second, and a change is seen
-- whatever happened to the file (rewritten in place, renamed over, mtime
-- kept), which an mtime/size/inode check could miss.
local token_file = { path = nil, token = nil, why = nil, read_at = nil }

-- the bearer token, or nil and why none is configured
local function bearer_token()
  local t = setting("dms_ops_token", "DMS_OPS_TOKEN")
  if t then return t end
  local path = os_getenv("DMS_OPS_TOKEN_FILE")
  if not path or path == "" then
    return nil, "no bearer token configured (set $dms_ops_token, DMS_OPS_TOKEN or DMS_OPS_TOKEN_FILE)"
  end
  local now = ngx.now()
  if token_file.path ~= path or not token_file.read_at or now - token_file.read_at >= M.TOKEN_FILE_TTL then
    token_file.path, token_file.read_at = path, now
    token_file.token, token_file.why = read_token_file(path)
  end
  return token_file.token, token_file.why
end

-- nginx's id of this request ($request_id: 32 hex digits)
local function request_id()
  local ok, id = pcall(function() return ngx.var.request_id end)
  return ok and id or nil
end

-- fields a log line may carry; anything that looks like a secret is dropped
local function loggable(k)
  k = tostring(k):lower()
  return not (k:find("authorization", 1, true) or k:find("secret", 1, true)
    or k:find("token", 1, true) or k:find("password", 1, true)
    or k:find("signature", 1, true) or k:find("credential", 1, true))
end

local function render(fields)
  local keys = {}
  for k in pairs(fields or {}) do
    if loggable(k) then keys[#keys + 1] = tostring(k) end
  end
  table_sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = fields[k]
    if type(v) ~= "table" and v ~= nil then
      -- values may come from the request: one line, bounded
      out[#out + 1] = k .. "=" .. tostring(v):sub(1, 256):gsub("[%c\"]", "?")
    end
  end
  return table_concat(out, " ")
end

local LOG_LEVELS = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN, error = ngx.ERR }

local function logger(level, message, fields)
  ngx.log(LOG_LEVELS[level] or ngx.NOTICE, "dms: ", message, " ", render(fields))
end

local clients = {}   -- settings signature -> client, one table per worker

local function number_setting(var, env, default)
  local v = setting(var, env)
  return v and tonumber(v) or default
end

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
    transport = transport,
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

local function respond(status, doc, headers)
  local rid = request_id()
  if doc.error then doc.error.ops_request_id = rid end
  ngx.status = status
  ngx.header["X-Request-Id"] = rid
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  for k, v in pairs(headers or {}) do ngx.header[k] = v end
  ngx.say(cjson.encode(doc) or '{"error":{"kind":"internal","code":"EncodeFailed"}}')
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
  return { error = e }
end

local function status_for(err)
  if err.kind == "validation" then return 400 end
  if err.kind == "transport" then return err.code == "Timeout" and 504 or 502 end
  if err.kind == "service" then return SERVICE_STATUS[err.code] or 502 end
  return 500   -- config, credentials: this server's problem
end

local function log_request(level, route, fields)
  fields.ops_request_id = request_id()
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

---------------------------------------------------------------------------
-- authentication

-- compares in time that depends on the length only
local function same(a, b)
  if #a ~= #b then return false end
  local acc = 0
  for i = 1, #a do acc = bit.bor(acc, bit.bxor(a:byte(i), b:byte(i))) end
  return acc == 0
end

-- why an Authorization header is refused: nil when it carries `expected`
local function refusal(header, expected)
  if header == nil then return "missing" end
  if type(header) ~= "string" then return "duplicate-header" end
  local given = header:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(%S+)%s*$")
  if not given then return "not-bearer" end
  if not same(given, expected) then return "wrong-token" end
  return nil
end

-- true, or a response already sent
local function authorized(route, fields)
  local expected, why = bearer_token()
  if not expected then
    fields.status = 500
    fields.auth = "not-configured"
    fields.reason = why
    log_request(ngx.ERR, route, fields)
    respond(500, { error = { kind = "config", code = "NotConfigured",
      message = "the endpoint has no bearer token configured" } })
    return false
  end
  local refused = refusal(ngx.req.get_headers()["authorization"], expected)
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
-- routes

-- POST /replications/start
local function start()
  local route = "POST /replications/start"
  local fields = { client = ngx.var.remote_addr }
  if not method_is(route, "POST", fields) then return end
  if not authorized(route, fields) then return end

  ngx.req.read_body()
  local raw = ngx.req.get_body_data()
  if not raw then
    if ngx.req.get_body_file() then
      fields.status = 413
      log_request(ngx.WARN, route, fields)
      return respond(413, { error = { kind = "validation", code = "BodyTooLarge",
        message = "the request body must be at most " .. MAX_BODY_BYTES .. " bytes" } })
    end
    return bad_request(route, "MissingBody", "the request body must be a JSON object", nil, fields)
  end
  if #raw > MAX_BODY_BYTES then
    fields.status = 413
    log_request(ngx.WARN, route, fields)
    return respond(413, { error = { kind = "validation", code = "BodyTooLarge",
      message = "the request body must be at most " .. MAX_BODY_BYTES .. " bytes" } })
  end
  local doc, jerr = cjson.decode(raw)
  if type(doc) ~= "table" or (next(doc) ~= nil and type(next(doc)) ~= "string") then
    return bad_request(route, "InvalidJSON", "the request body must be a JSON object"
      .. (jerr and (": " .. tostring(jerr)) or ""), nil, fields)
  end
  local params = {}
  for k, v in pairs(doc) do
    local member = START_FIELDS[k]
    if not member then
      return bad_request(route, "UnknownParameter", "unknown field '" .. tostring(k) .. "'", tostring(k), fields)
    end
    if v ~= cjson.null then params[member] = v end
  end
  fields.arn = type(params.ReplicationConfigArn) == "string" and params.ReplicationConfigArn or nil
  fields.type = type(params.StartReplicationType) == "string" and params.StartReplicationType or nil
  if params.StartReplicationType == "reload-target"
     and setting("dms_allow_reload_target", "DMS_ALLOW_RELOAD_TARGET") ~= "on" then
    fields.status = 403
    log_request(ngx.WARN, route, fields)
    return respond(403, { error = { kind = "validation", code = "ReloadTargetNotAllowed", member = "type",
      message = "reload-target reloads every table of the target: enable it with $dms_allow_reload_target on" } })
  end

  local client, cerr = get_client()
  if not client then return fail(route, cerr, fields) end
  local started = ngx.now()
  local resp, err = client:start_replication(params)
  ngx.update_time()
  fields.elapsed = string.format("%.3f", ngx.now() - started)
  if not resp then return fail(route, err, fields, MEMBER_FIELDS) end
  fields.status = 200
  fields.request_id = resp.ResponseMetadata and resp.ResponseMetadata.RequestId
  fields.replication_status = resp.Replication and resp.Replication.Status
  log_request(ngx.NOTICE, route, fields)
  return respond(200, resp)
end

-- GET /replications/status?arn=
local function status()
  local route = "GET /replications/status"
  local fields = { client = ngx.var.remote_addr }
  if not method_is(route, "GET", fields) then return end
  if not authorized(route, fields) then return end
  local arn = ngx.req.get_uri_args()["arn"]
  if type(arn) == "table" then
    return bad_request(route, "InvalidParameterValue", "give arn once", "arn", fields)
  end
  if type(arn) ~= "string" or arn == "" then
    return bad_request(route, "MissingParameter", "arn is required (?arn=...)", "arn", fields)
  end
  fields.arn = arn
  local client, cerr = get_client()
  if not client then return fail(route, cerr, fields) end
  local started = ngx.now()
  local resp, err = client:describe_replications({
    Filters = { { Name = "replication-config-arn", Values = { arn } } },
  })
  ngx.update_time()
  fields.elapsed = string.format("%.3f", ngx.now() - started)
  if not resp then return fail(route, err, fields, MEMBER_FIELDS) end
  fields.status = 200
  fields.request_id = resp.ResponseMetadata and resp.ResponseMetadata.RequestId
  local first = resp.Replications and resp.Replications[1]
  fields.replication_status = first and first.Status
  log_request(ngx.NOTICE, route, fields)
  return respond(200, resp)
end

-- Any other path under the endpoint.
local function not_found()
  return respond(404, { error = { kind = "validation", code = "NotFound",
    message = "no such route: " .. ngx.req.get_method() .. " " .. ngx.var.uri } })
end

M.start = M.guard("POST /replications/start", start)
M.status = M.guard("GET /replications/status", status)
M.not_found = M.guard("not found", not_found)

return M
