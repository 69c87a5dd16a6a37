-- lua-dms: the client.
--
--   local dms = require "dms"
--   local client = assert(dms.new{ region = "us-east-1" })
--   local resp, err = client:start_replication{ ReplicationConfigArn = arn,
--                                               StartReplicationType = "start-replication" }
--
-- One call: core.build (validate, serialize) -> core.sign -> transport ->
-- core.parse -> retry decides. Every method returns result or nil, err; none
-- raises on a runtime failure.
local type, pairs, ipairs, tostring, setmetatable, pcall =
      type, pairs, ipairs, tostring, setmetatable, pcall
local math_floor, string_format = math.floor, string.format

local core = require "dms.core"
local sign_headers = core.sign_headers
local model = require "dms.model"
local config_mod = require "dms.config"
local credentials = require "dms.credentials"
local retry = require "dms.retry"
local errors = require "dms.errors"

local M = { _VERSION = "0.2.0", core = core, model = model }

local LUA_NAME = (type(jit) == "table" and jit.version) or _VERSION
local USER_AGENT = "lua-dms/" .. M._VERSION .. " (" .. LUA_NAME:gsub(" ", "/") .. ")"

local function config_error(code, message)
  return core.error({ kind = "config", code = code, message = message })
end

-- snake_case method names for every operation of a model
local function method_names(m)
  local out = {}
  for name in pairs(m.operations) do
    local snake = name:gsub("(%l)(%u)", "%1_%2"):gsub("(%u)(%u%l)", "%1_%2"):lower()
    out[snake] = name
  end
  return out
end
local METHODS = method_names(model)

-- nginx phases where cosockets may be used
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

local function in_cosocket_phase()
  local ngx = _G.ngx
  if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" then return false end
  local ok, phase = pcall(ngx.get_phase)
  return ok and COSOCKET_PHASES[phase] or false
end
M.in_cosocket_phase = in_cosocket_phase

local function default_sleep(seconds)
  if in_cosocket_phase() then return _G.ngx.sleep(seconds) end
  return core.sleep(seconds)
end

-- HTTP Date header ("Wed, 25 Nov 2026 12:00:00 GMT") -> epoch seconds
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
local function http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, hh, mm, ss = s:match("^%a+, (%d%d?) (%a+) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then return nil end
  return core.timestamp(string_format("%s-%02d-%02dT%s:%s:%sZ", y, MONTHS[mon], d, hh, mm, ss))
end

local function check_types(config)
  local spec = {
    region = "string", profile = "string", endpoint = "string", timeout = "table",
    retry = "table", logger = "function", max_response_bytes = "number",
    ca_file = "string", insecure = "boolean", clock = "function", sleep = "function",
    random = "function", env = "table", user_agent = "string", http_client = "string",
  }
  for k, t in pairs(spec) do
    if config[k] ~= nil and type(config[k]) ~= t then
      return config_error("InvalidConfig", "config." .. k .. " must be a " .. t)
    end
  end
  local c = config.credentials
  if c ~= nil and type(c) ~= "table" and type(c) ~= "function" then
    return config_error("InvalidConfig", "config.credentials must be a table or a function")
  end
  local hc = config.http_client
  if hc ~= nil and hc ~= "auto" and hc ~= "builtin" and hc ~= "resty.http" then
    return config_error("InvalidConfig", "config.http_client must be \"auto\", \"builtin\" or \"resty.http\"")
  end
  local tr = config.transport
  if tr ~= nil and tr ~= "curl" and tr ~= "ngx" and tr ~= "auto" and type(tr) ~= "function"
     and type(tr) ~= "table" then
    return config_error("InvalidConfig", "config.transport must be \"curl\", \"ngx\", a function or an object")
  end
  if config.timeout then
    for _, k in ipairs({ "connect", "total" }) do
      local v = config.timeout[k]
      if v ~= nil and (type(v) ~= "number" or not (v > 0 and v <= 7 * 86400)) then
        return config_error("InvalidConfig", "config.timeout." .. k .. " must be a number of seconds in (0, 604800]")
      end
    end
  end
  local mrb = config.max_response_bytes
  if mrb and not (mrb >= 1 and mrb <= 2 ^ 40) then
    return config_error("InvalidConfig", "config.max_response_bytes must be between 1 and 2^40")
  end
  return nil
end

local Client = {}
Client.__index = Client

function Client:__tostring()
  local name = self.model == model and "dms" or tostring(self.model.endpoint_prefix)
  return string_format("%s.client(region=%s, endpoint=%s, credentials=%s)",
    name, self.region, self.endpoint.url, self.credentials.description)
end

function Client:log(level, message, fields)
  if self.logger then pcall(self.logger, level, message, fields or {}) end
end

-- The transport for this call: a fixed one, or (auto) cosockets inside an
-- nginx request phase and libcurl elsewhere.
function Client:transport()
  if self.fixed_transport then return self.fixed_transport end
  local want = self.transport_name
  if want == "ngx" or (want == "auto" and in_cosocket_phase()) then
    if not self.ngx_transport then
      local ok, mod = pcall(require, "dms.transport.ngx")
      if not ok then return nil, config_error("NoTransport", "dms.transport.ngx: " .. tostring(mod)) end
      self.ngx_transport = mod.new(self.transport_opts)
    end
    return self.ngx_transport
  end
  if not self.curl_transport then
    local ok, mod = pcall(require, "dms.transport.curl")
    if not ok then return nil, config_error("NoTransport", "dms.transport.curl: " .. tostring(mod)) end
    local t, err = mod.new(self.transport_opts)
    if not t then return nil, err end
    self.curl_transport = t
  end
  return self.curl_transport
end

-- Releases the libcurl handle (and its connections). Safe to call twice.
function Client:close()
  if self.curl_transport then
    self.curl_transport:close()
    self.curl_transport = nil
  end
  -- a client made for another service from this one shares its credentials
  if not self.shared_credentials and type(self.credentials.close) == "function" then self.credentials:close() end
end
Client.__close = Client.close

-- The metatable of the clients of another service's model: the methods of
-- Client, and one snake_case method per operation of that model.
local service_classes = setmetatable({}, { __mode = "k" })
local function service_class(m)
  local class = service_classes[m]
  if class then return class end
  local methods, cached = method_names(m), {}
  class = { __tostring = Client.__tostring, __close = Client.close }
  class.__index = function(_, k)
    local v = Client[k]
    if v ~= nil and not METHODS[k] then return v end
    v = cached[k]
    if v then return v end
    local op = methods[k]
    if op then
      v = function(self_, params, opts) return self_:call(op, params, opts) end
      cached[k] = v
      return v
    end
    return nil
  end
  service_classes[m] = class
  return class
end

-- Replaces every occurrence of the given secrets in the error's strings: a
-- service may echo what it was sent (an InvalidSignatureException repeats the
-- canonical request, session token included).
local redact_text = require("dms.util").redact_text
local function redact(err, secrets, depth)
  depth = depth or 0
  for k, v in pairs(err) do
    if type(v) == "string" then
      err[k] = redact_text(v, secrets)
    elseif type(v) == "table" and depth < 8 and getmetatable(v) == nil then
      redact(v, secrets, depth + 1)      -- the modeled members (err.fields) too
    end
  end
  return err
end
M.redact = redact

local copy = require("dms.util").copy

-- Answers that say the request was signed at the wrong time.
local SKEW_CODES = { RequestTimeTooSkewed = true, RequestExpired = true, RequestInTheFuture = true }
local function clock_skew(err)
  if SKEW_CODES[err.code] then return true end
  local m = err.message
  return err.code == "InvalidSignatureException" and type(m) == "string"
    and (m:find("Signature expired", 1, true) or m:find("not yet current", 1, true)) ~= nil
end

-- the largest correction taken from a server's Date header: beyond it the
-- header is not believed (a proxy's nonsense, year 0) and the call fails as is
M.MAX_CLOCK_OFFSET = 24 * 3600

-- operations that only read: nothing happened when their answer was lost
local function read_only(op)
  return op:find("^Describe") ~= nil or op:find("^List") ~= nil
end

-- The time to sign with: the injected clock plus the measured offset.
local core_now = core.now
function Client:signing_time()
  local clock = self.clock
  local ok, now
  if clock == core_now then
    ok, now = true, core_now()      -- the system clock cannot fail
  else
    ok, now = pcall(clock)
  end
  if not ok or type(now) ~= "number" or now ~= now or now == math.huge or now == -math.huge then
    return nil, errors.new("config", "InvalidClock", "config.clock did not return a number of seconds")
  end
  return math_floor(now + self.clock_offset), now
end

-- After a skew error: measure the offset again from the answer's Date (both
-- directions, replacing the previous one, so a server clock that comes back
-- is followed too). Returns true when the offset changed (sign again).
function Client:measure_clock(resp, now)
  local server = http_date(resp.headers and resp.headers["date"])
  if not server then return false end
  local offset = server - now
  if offset ~= offset or offset > M.MAX_CLOCK_OFFSET or offset < -M.MAX_CLOCK_OFFSET then
    self:log("warn", "ignoring an implausible Date header after a clock skew error", { date = resp.headers["date"] })
    return false
  end
  if math.abs(offset - self.clock_offset) < 1 then return false end
  self:log("warn", string_format("clock skew: signing with the server's clock, %+.0f s from this host's", offset),
    { offset = offset })
  self.clock_offset = offset
  return true
end

-- Sends through the transport; a transport that raises or answers nonsense
-- is an error value, never a raise.
local function send(transport, treq)
  local ok, resp, herr
  if type(transport) == "function" then
    ok, resp, herr = pcall(transport, treq)
  else
    ok, resp, herr = pcall(transport.request, transport, treq)
  end
  if not ok then
    return nil, errors.transport("TransportFailed", "the transport raised: " .. tostring(resp), true)
  end
  if not resp then
    if type(herr) ~= "table" then herr = errors.transport("HTTPError", tostring(herr), true) end
    return nil, herr
  end
  local status = type(resp) == "table" and resp.status
  if type(status) ~= "number" or status % 1 ~= 0 or status < 100 or status > 599
     or (resp.body ~= nil and type(resp.body) ~= "string")
     or (resp.headers ~= nil and type(resp.headers) ~= "table") then
    return nil, errors.transport("MalformedResponse", "the transport answered no HTTP status, headers and body "
      .. "(status " .. tostring(status) .. ")", true)
  end
  return resp
end

-- Signs and sends one attempt; returns result or nil, err. `timeout` (seconds)
-- bounds this attempt's exchange.
function Client:attempt(req, op, unsafe, timeout)
  local time, now = self:signing_time()
  if not time then return nil, now end
  local cok, creds, cerr = pcall(self.credentials.get, self.credentials)
  if not cok then
    return nil, errors.new("credentials", "ProviderError", "the credentials provider raised: " .. tostring(creds))
  end
  if not creds then return nil, cerr end
  local transport, terr = self:transport()
  if not transport then return nil, terr end
  -- the Host and User-Agent pairs are the client's, made once (and again
  -- should the endpoint or the user agent change)
  local endpoint = self.endpoint
  local host = self.host_pair
  if not host or host[2] ~= endpoint.host_header then
    host = { "Host", endpoint.host_header }
    self.host_pair = host
  end
  -- the headers and the request handed to the transport: the libcurl
  -- transport's are the client's own, filled again for each attempt (it
  -- reads them during the exchange, which runs no Lua); any other transport
  -- gets tables of its own, which it may keep
  local own = transport == self.curl_transport
  local headers, treq
  if own then
    headers, treq = self.send_headers, self.send_request
    if not headers then
      headers, treq = {}, {}
      self.send_headers, self.send_request = headers, treq
    end
  else
    headers, treq = {}, {}
  end
  headers[1] = host
  local rh = req.headers
  local n = #rh
  for i = 1, n do headers[i + 1] = rh[i] end
  n = n + 1
  -- one request table for core.sign_headers per client, filled for each
  -- signature and emptied of the request and the secret after it (it keeps
  -- nothing of it, and nothing can run between the filling and the call);
  -- the pairs it adds go into headers after the first n
  local sreq = self.sign_request
  if not sreq then
    sreq = {}
    self.sign_request = sreq
  end
  sreq.method, sreq.path, sreq.body = req.method, endpoint.path, req.body
  sreq.region, sreq.service, sreq.time = self.region, self.model.signing_name, time
  sreq.access_key, sreq.secret_key, sreq.session_token = creds.access_key, creds.secret_key, creds.session_token
  local ok, auth = pcall(sign_headers, sreq, headers, n)
  sreq.body, sreq.secret_key, sreq.session_token = nil, nil, nil
  if not ok then
    -- the signer names the field at fault, never a secret
    return nil, errors.new("credentials", "SigningFailed", tostring(auth))
  end
  local ua = self.ua_pair
  if not ua or ua[2] ~= self.user_agent then
    ua = { "User-Agent", self.user_agent }
    self.ua_pair = ua
  end
  headers[#headers + 1] = ua
  -- fresh_connect: an HTTP client may re-send a request by itself when a
  -- kept-alive connection turns out dead; a start or stop must not ride on one
  treq.url, treq.method, treq.headers, treq.body = endpoint.url, req.method, headers, req.body
  treq.fresh_connect, treq.timeout = unsafe or nil, timeout
  local resp, herr = send(transport, treq)
  if not resp then
    if read_only(op) then herr.outcome_unknown = false end
    return nil, herr
  end
  local pok, result, perr = pcall(core.parse, self.model, req.operation, resp.status, resp.headers or {},
    resp.body or "")
  if not pok then
    return nil, errors.transport("MalformedResponse", "the answer could not be read: " .. tostring(result), true)
  end
  if result then
    result.ResponseMetadata = {
      RequestId = resp.headers and resp.headers["x-amzn-requestid"],
      HTTPStatusCode = resp.status,
      RetryAttempts = 0,      -- call() sets it: made with room for it
    }
    return result
  end
  errors.classify(perr)
  if read_only(op) then perr.outcome_unknown = false end
  redact(perr, { creds.secret_key, creds.session_token or "", auth:sub(-64) })    -- the signature
  -- temporary credentials refused as expired: the next call fetches new ones
  if (perr.code == "ExpiredTokenException" or perr.code == "ExpiredToken")
     and type(self.credentials.invalidate) == "function" then
    self.credentials:invalidate()
  end
  -- a signature refused for clock skew: take the server's clock and try again
  if clock_skew(perr) then perr.retryable = self:measure_clock(resp, now) end
  return nil, perr
end

-- client:call(OperationName, params [, opts]) -> result | nil, err
-- opts.timeout (seconds) bounds the whole call, retries and their pauses
-- included (a runbook passes what is left of its deadline).
function Client:call(op, params, opts)
  local m = self.model
  if type(op) ~= "string" or not m.operations[op] then
    return nil, errors.new("validation", "UnknownOperation", "unknown operation '" .. tostring(op) .. "'")
  end
  local deadline
  if opts ~= nil then
    if type(opts) ~= "table" or (opts.timeout ~= nil and (type(opts.timeout) ~= "number"
        or not (opts.timeout > 0))) then -- luacheck: ignore 581 (NaN too)
      return nil, errors.new("validation", "InvalidOption", "call options must be a table with timeout > 0 seconds")
    end
    if opts.timeout then deadline = core.monotonic() + opts.timeout end
  end
  local bok, req, err = pcall(core.build, m, op, params)
  if not bok then
    return nil, errors.new("validation", "InvalidParameter", "the parameters could not be read: " .. tostring(req))
  end
  if not req then return nil, err end
  local unsafe = m.operations[op].unsafe_retry
  local attempt, last_cost = 0, nil
  while true do
    attempt = attempt + 1
    local timeout = deadline and deadline - core.monotonic()
    local result, aerr
    if timeout and timeout <= 0 then
      aerr = errors.transport("Timeout", op .. " ran out of its time before attempt " .. attempt, false)
    else
      result, aerr = self:attempt(req, op, unsafe, timeout)
    end
    if result then
      self.retry:succeeded(last_cost)
      result.ResponseMetadata.RetryAttempts = attempt - 1
      if self.logger then
        self:log("debug", op .. " succeeded", { operation = op, attempts = attempt,
          request_id = result.ResponseMetadata.RequestId })
      end
      return result
    end
    aerr.attempts = attempt
    aerr.operation = op
    if aerr.kind ~= "transport" and aerr.kind ~= "service" then return nil, aerr end
    local delay, why = self.retry:decide(aerr, attempt, unsafe)
    if delay and deadline and core.monotonic() + delay >= deadline then
      delay, why = nil, "deadline"
    end
    if not delay then
      if why == "outcome unknown" then
        aerr.not_resent = true
        aerr.message = aerr.message .. "; " .. op .. " may have reached DMS, so it was not sent again:"
          .. " describe the replication before starting or stopping it again"
      end
      self:log(aerr.retryable and "warn" or "debug", op .. " failed", {
        operation = op, attempts = attempt, code = aerr.code, status = aerr.status,
        request_id = aerr.request_id, reason = why })
      return nil, aerr
    end
    last_cost = why
    self:log("warn", op .. " will be retried", { operation = op, attempt = attempt, code = aerr.code,
      status = aerr.status, request_id = aerr.request_id, delay = delay })
    self.sleep(delay)
  end
end

-- A client of `svc.model`: the endpoint from svc.endpoint(config, region,
-- profile) -> url | nil, message; svc.credentials, when given, a provider
-- shared with another client (that client closes it).
local function construct(config, svc)
  if config ~= nil and type(config) ~= "table" then
    return nil, config_error("InvalidConfig", "config must be a table")
  end
  config = copy(config or {})
  local cerr = check_types(config)
  if cerr then return nil, cerr end

  local profile_name, explicit = config_mod.profile_name(config)
  local profile, shared = config_mod.load_profile(config, profile_name)
  if shared.config_error then return nil, config_error("ConfigParseError", shared.config_error) end
  -- a profile named (config.profile or AWS_PROFILE) must exist, as in the AWS SDKs
  if explicit and not profile and config.credentials == nil and not svc.credentials then
    return nil, config_error("ProfileNotFound", "profile '" .. profile_name .. "' is in neither "
      .. config_mod.config_file(config) .. " nor " .. config_mod.credentials_file(config))
  end
  local region = config_mod.region(config, profile)
  if not region then
    return nil, config_error("NoRegion", "no region: set config.region, AWS_REGION or a profile region")
  end
  if not region:match("^[%w][%w%-]*$") then
    return nil, config_error("InvalidRegion", "region '" .. region .. "' is not a valid region name")
  end
  local url, eerr = svc.endpoint(config, region, profile)
  if not url then return nil, config_error("InvalidEndpoint", eerr) end
  local endpoint, perr = config_mod.parse_url(url)
  if not endpoint then return nil, config_error("InvalidEndpoint", perr .. ": " .. tostring(url)) end

  local timeout = config.timeout or {}
  -- the chain is walked on the first call that needs credentials, not here
  local provider, crerr = svc.credentials, nil
  if not provider then provider, crerr = credentials.resolve(config, profile, profile_name,
      explicit and config.profile ~= nil, {
    region = region, clock = config.clock, sleep = config.sleep or default_sleep, random = config.random,
    logger = config.logger, connect_timeout = timeout.connect, timeout = timeout.total,
    ca_file = config.ca_file, insecure = config.insecure, http_client = config.http_client,
    user_agent = config.user_agent and (USER_AGENT .. " " .. config.user_agent) or USER_AGENT,
  }) end
  if not provider then return nil, crerr end

  local policy, rerr = retry.new({ mode = config.retry and config.retry.mode,
    max_attempts = config.retry and config.retry.max_attempts, random = config.random })
  if not policy then return nil, config_error("InvalidConfig", rerr) end

  local self = setmetatable({
    model = svc.model,
    shared_credentials = svc.credentials ~= nil or nil,
    region = region,
    endpoint = endpoint,
    credentials = provider,
    retry = policy,
    logger = config.logger,
    clock = config.clock or core.now,
    clock_offset = 0,
    sleep = config.sleep or default_sleep,
    user_agent = config.user_agent and (USER_AGENT .. " " .. config.user_agent) or USER_AGENT,
    transport_name = type(config.transport) == "string" and config.transport or "auto",
    fixed_transport = (type(config.transport) == "function" or type(config.transport) == "table")
      and config.transport or nil,
    transport_opts = {
      connect_timeout = timeout.connect or 5, timeout = timeout.total or 60,
      max_response_bytes = config.max_response_bytes or 8 * 1024 * 1024,
      ca_file = config.ca_file, insecure = config.insecure == true,
      http_client = config.http_client,   -- cosockets: "auto" | "builtin" | "resty.http"
    },
  }, svc.model == model and Client or service_class(svc.model))
  if config.insecure then
    self:log("warn", "TLS verification is off (insecure = true): use this only against a test endpoint",
      { endpoint = endpoint.url })
    if not config.logger and not M.insecure_warned then
      M.insecure_warned = true     -- once per process
      io.stderr:write("lua-dms: warning: TLS verification is off (insecure = true)\n")
    end
  end
  if endpoint.scheme == "http" and not endpoint.host:match("^127%.") and endpoint.host ~= "localhost"
     and endpoint.host ~= "[::1]" then
    self:log("warn", "the endpoint is plain HTTP: requests are signed but not encrypted",
      { endpoint = endpoint.url })
  end
  return self
end

-- dms.new(config) -> client | nil, err
function M.new(config)
  return construct(config, { model = model, endpoint = config_mod.endpoint })
end

-- dms.new_service(model, config, opts) -> client | nil, err: a client of
-- another service that speaks a JSON protocol (a model generated by
-- tools/gen_model.py), with the same signer, retries and transports.
-- opts.endpoint(config, region, profile) -> url | nil, message resolves its
-- endpoint when config.endpoint is not set; opts.credentials is a provider
-- to share (a DMS client's `credentials`), else config's are resolved.
function M.new_service(svc_model, config, opts)
  if type(svc_model) ~= "table" or type(svc_model.operations) ~= "table"
     or type(svc_model.signing_name) ~= "string" then
    return nil, config_error("InvalidConfig", "new_service needs a service model (tools/gen_model.py)")
  end
  opts = opts or {}
  local function endpoint(c, region, profile)
    if c.endpoint then return c.endpoint end
    if opts.endpoint then return opts.endpoint(c, region, profile) end
    return nil, "no endpoint for " .. tostring(svc_model.endpoint_prefix)
  end
  return construct(config, { model = svc_model, endpoint = endpoint, credentials = opts.credentials })
end

---------------------------------------------------------------------------
-- Paging: every operation whose input has Marker and MaxRecords and whose
-- output has Marker pages as DMS does (the Marker of an answer asks for the
-- next page; the last page has none).

local function snake_case(name)
  return (name:gsub("(%l)(%u)", "%1_%2"):gsub("(%u)(%u%l)", "%1_%2"):lower())
end

-- operation name -> the list member of its output (nil when there is not
-- exactly one) for the pageable operations
local PAGEABLE = {}
for name, op in pairs(model.operations) do
  local input = op.input and model.shapes[op.input]
  local output = op.output and model.shapes[op.output]
  local im, om = input and input.members, output and output.members
  if im and om and im.Marker and im.MaxRecords and om.Marker then
    local key, lists = nil, 0
    for member, shape in pairs(om) do
      local s = model.shapes[shape]
      if member ~= "Marker" and s and s.type == "list" then key, lists = member, lists + 1 end
    end
    PAGEABLE[name] = lists == 1 and key or false
  end
end
M.PAGEABLE = PAGEABLE

-- dms.paginate(client, operation, params [, opts]) -> iterator over the pages
-- (the answers). Each step gives page | false, err (then the iteration ends):
--
--   for page, err in client:paginate("DescribeReplications", { MaxRecords = 100 }) do
--     if not page then return nil, err end
--     for _, r in ipairs(page.Replications or {}) do ... end
--   end
--
-- The client is any object with the operation's snake_case method (a client
-- of this module has them all). `params` is copied, never changed; a Marker
-- in it starts there. An answer repeating a Marker ends the paging with an
-- error instead of looping.
function M.paginate(client, operation, params, opts)
  local failed
  if type(operation) ~= "string" or PAGEABLE[operation] == nil then
    failed = errors.new("validation", "NotPageable", tostring(operation) .. " is not an operation of DMS that "
      .. "pages with Marker and MaxRecords")
  elseif params ~= nil and type(params) ~= "table" then
    failed = errors.new("validation", "InvalidParameter", "params must be a table")
  end
  local p = failed and {} or copy(params or {})
  local method = failed and "" or snake_case(operation)
  local seen, done = {}, false
  return function()
    if done then return nil end
    if failed then
      done = true
      return false, failed
    end
    local f = type(client) == "table" and client[method]
    if type(f) ~= "function" then
      done = true
      return false, errors.new("validation", "InvalidClient", "the client has no " .. method .. " method")
    end
    local page, err = f(client, p, opts)
    if not page then
      done = true
      return false, err
    end
    local marker = page.Marker
    if type(marker) ~= "string" or marker == "" then
      done = true
    elseif seen[marker] then
      done = true
      return false, errors.new("service", "RepeatedMarker", operation .. " answered a Marker it had answered "
        .. "before: paging stopped")
    else
      seen[marker] = true
      p = copy(p)
      p.Marker = marker
    end
    return page
  end
end

-- dms.describe_all(client, operation, params [, key [, opts]]) -> list | nil, err:
-- the items of every page, in order. `key` is the list member of the answer
-- (ReplicationConfigs, Replications, ...); it may be left out for the
-- operations whose answer has one list.
function M.describe_all(client, operation, params, key, opts)
  if key == nil then key = PAGEABLE[operation] end
  if type(key) ~= "string" then
    if PAGEABLE[operation] == false then
      return nil, errors.new("validation", "InvalidParameter", "name the list member of " .. operation
        .. " to collect")
    end
  end
  local out = {}
  for page, err in M.paginate(client, operation, params, opts) do
    if not page then return nil, err end
    local items = page[key]
    if type(items) == "table" then
      for _, item in ipairs(items) do out[#out + 1] = item end
    end
  end
  return out
end

function Client:paginate(operation, params, opts) return M.paginate(self, operation, params, opts) end
function Client:describe_all(operation, params, key, opts) return M.describe_all(self, operation, params, key, opts) end

-- one method per operation (client:describe_replications(params [, opts])),
-- unless a method of the client has that name
for snake, op in pairs(METHODS) do
  if Client[snake] == nil then
    Client[snake] = function(self, params, opts) return self:call(op, params, opts) end
  end
end

M.Client = Client
return M
