-- The OpenResty transport: one HTTP/1.1 exchange over an nginx cosocket, so a
-- call made in a request handler or a timer yields to the event loop instead
-- of blocking the worker the way a libcurl call would.
--
--   local transport = require("dms.transport.ngx").new{ timeout = 10 }
--   local resp, err = transport:request{ url = url, method = "POST",
--                                        headers = { {"Host", host}, ... }, body = body }
--
-- The client builds, signs and parses (dms.core); this file picks the HTTP
-- client that moves the bytes and turns its failures into dms.errors:
--   * lua-resty-http (resty.http >= 0.16), when it is installed;
--   * the built-in HTTP/1.1 client of dms.transport.http11.
-- opts.http_client picks one: "auto" (the default: resty.http if it loads),
-- "builtin" or "resty.http".
--
-- Both clients read and write through the deadline socket of
-- dms.transport.http11, so that opts.timeout bounds the whole request (connect,
-- TLS handshake, send, response) as curl's total timeout does, however slowly
-- the peer trickles bytes.
--
-- TLS: the certificate chain and the host name are always verified unless
-- opts.insecure is set. Cosockets verify against the CA bundle named by the
-- lua_ssl_trusted_certificate directive in nginx.conf (there is no per-socket
-- CA file), so opts.ca_file cannot be honoured here: a warning says so once.
--
-- Errors are dms.errors transport errors with the codes the curl transport
-- uses: Timeout, ConnectionError, TLSError, ResponseTooLarge, ConnectionLost,
-- HTTPError, BadRequest.
local type, tostring, tonumber, pairs, ipairs, setmetatable, pcall, error, select =
      type, tostring, tonumber, pairs, ipairs, setmetatable, pcall, error, select
local math_floor = math.floor
local string_format, string_lower, string_find = string.format, string.lower, string.find
local table_concat = table.concat

local errors = require "dms.errors"
local http11 = require "dms.transport.http11"
local url_mod = require "dms.url"

local ngx = ngx   -- nil when the module is loaded outside nginx: checked at call time

local M = {}

local Transport = {}
Transport.__index = Transport

local DEFAULTS = {
  connect_timeout = 5, timeout = 60, max_response_bytes = 8 * 1024 * 1024,
  keepalive_timeout = 30, pool_size = 32, http_client = "auto",
}

-- bytes asked of lua-resty-http's body reader at a time
local RESTY_CHUNK = 64 * 1024

local warned_ca_file = false

---------------------------------------------------------------------------
-- errors: codes and flags are dms.errors' (the curl transport reads the same table)

local function fail(code, message, sent)
  if code == "TLSError" then
    message = message .. " (cosockets verify against lua_ssl_trusted_certificate in nginx.conf)"
  elseif code == "ConnectionError" and string_find(message, "resolve", 1, true) then
    message = message .. " (cosockets resolve names with the resolver directive of nginx.conf)"
  end
  return errors.transport(code, message, sent)
end

local function err_input(message) return errors.transport("BadRequest", message, false) end

---------------------------------------------------------------------------
-- URL

-- "https://host:port/path?query" (dms.url) -> {scheme=, host= (no brackets),
-- connect_host= (IPv6 in brackets), port=, target= ("/path?query"),
-- authority= (the Host header)}, or nil and a message
local function parse_url(s)
  local u, err = url_mod.parse(s)
  if not u then return nil, "url " .. err .. ": " .. tostring(s) end
  if u.scheme ~= "http" and u.scheme ~= "https" then
    return nil, "url must be http:// or https:// with a host: " .. s
  end
  if u.userinfo then return nil, "url must not contain user info" end
  if u.fragment then return nil, "url must not have a fragment: " .. s end
  local literal = url_mod.host_literal(u)
  return {
    scheme = u.scheme, host = u.host, connect_host = literal, port = u.port or u.default_port,
    target = (u.path == "" and "/" or u.path) .. (u.query and ("?" .. u.query) or ""),
    authority = u.port and (literal .. ":" .. u.port) or literal,
  }
end

---------------------------------------------------------------------------
-- connection pools

-- Pooled connections are keyed by scheme, host, port and verification on or
-- off; not by the trust store, which cosockets cannot see: give opts.pool a
-- name of its own where locations trust different CA bundles.
local function pool_name(url, verify, prefix)
  return string_format("%s:%s:%s:%d:%s", prefix or "lua-dms", url.scheme, url.host, url.port,
    url.scheme == "https" and (verify and "verify" or "noverify") or "-")
end

-- Pool options of a connect(): a request with fresh_connect (StartReplication,
-- StopReplication) never rides on a pooled connection, so that a connection the
-- peer closed while idle cannot make its outcome unknown; its connection is
-- closed afterwards instead of pooled (a pool name nothing is ever put in).
local function pool_options(o, url, verify, fresh)
  if fresh then return { pool = pool_name(url, verify, o.pool) .. "#fresh" } end
  return { pool = pool_name(url, verify, o.pool), pool_size = o.pool_size }
end

-- a deadline socket over a new cosocket; nil and an error outside a request or timer
local function new_socket(o, deadline, tcp)
  local made, sock, serr = pcall(tcp or ngx.socket.tcp)
  if not made or not sock then
    return nil, err_input("cannot create a cosocket here (" .. tostring(sock or serr)
      .. "): call from a request handler or a timer")
  end
  return http11.socket(sock, deadline, o.connect_timeout)
end

---------------------------------------------------------------------------
-- the built-in client

-- the options of http11.request for url (made once per URL and kind of request)
function Transport:builtin_options(url, fresh)
  local key = fresh and "fresh_options" or "options"
  local opts = url[key]
  if not opts then
    local o = self.opts
    local verify = not o.insecure
    opts = { pool = pool_options(o, url, verify, fresh), verify = verify,
             max_response_bytes = o.max_response_bytes, keepalive_timeout = o.keepalive_timeout,
             pool_size = o.pool_size }
    url[key] = opts
  end
  return opts
end

function Transport:request_builtin(req, url, headers, deadline)
  local sock, serr = new_socket(self.opts, deadline)
  if not sock then return nil, serr end
  local resp, code, message, sent = http11.request(sock, req, url, headers,
    self:builtin_options(url, req.fresh_connect and true or false))
  if not resp then return nil, fail(code, message, sent) end
  resp.new_connections = resp.reused == 0 and 1 or 0
  resp.http_client = "builtin"
  return resp
end

---------------------------------------------------------------------------
-- lua-resty-http

local resty_http_mod, resty_http_checked

local function load_resty_http()
  if resty_http_checked then return resty_http_mod end
  resty_http_checked = true
  local ok, mod = pcall(require, "resty.http")
  if not ok or type(mod) ~= "table" or type(mod.new) ~= "function" then return nil end
  -- the options-table connect() (scheme, ssl_verify, pool_size) came with 0.16
  local major, minor = tostring(mod._VERSION or ""):match("^(%d+)%.(%d+)")
  if not major or (tonumber(major) == 0 and tonumber(minor) < 16) then
    ngx.log(ngx.WARN, "lua-dms: resty.http ", tostring(mod._VERSION),
      " is older than 0.16: using the built-in HTTP client")
    return nil
  end
  resty_http_mod = mod
  return mod
end

-- an error of httpc:request() (it sends, then reads the status line and headers)
local function resty_request_error(sock, err, reused)
  if sock.send_failed then
    -- a partial send never delivers a whole request: nothing can have been acted on
    if err == "timeout" then return fail("Timeout", "timed out sending the request", false) end
    return fail("ConnectionError", "could not send the request: " .. tostring(err)
      .. (reused > 0 and " (on a kept-alive connection)" or ""), false)
  end
  if sock.head_too_large then return fail("ResponseTooLarge", tostring(err), true) end
  if string_find(tostring(err), "couldn't parse", 1, true) then
    return fail("HTTPError", "not an HTTP/1.x response: " .. tostring(err), true)
  end
  return fail(select(2, http11.read_error(err, "response", reused)))
end

-- an error of the body reader
local function resty_body_error(err, reused)
  if string_find(tostring(err), "chunksize", 1, true) then
    return fail("HTTPError", "malformed chunk size in the response body", true)
  end
  return fail(select(2, http11.read_error(err, "response body", reused)))
end

function Transport:request_resty(http, req, url, headers, deadline)
  local o = self.opts
  local made, httpc, nerr = pcall(http.new)
  if not made or not httpc then
    return nil, err_input("cannot create a resty.http client here (" .. tostring(httpc or nerr)
      .. "): call from a request handler or a timer")
  end
  if type(httpc.sock) ~= "table" then
    return nil, err_input("this lua-resty-http keeps no cosocket in httpc.sock: use http_client = \"builtin\"")
  end
  -- resty.http reads and writes through the deadline socket
  local sock = new_socket(o, deadline, function() return httpc.sock end)
  httpc.sock = sock
  local verify = not o.insecure
  local popts = pool_options(o, url, verify, req.fresh_connect)
  local ok, err = httpc:connect({
    scheme = url.scheme, host = url.connect_host, port = url.port,
    pool = popts.pool, pool_size = popts.pool_size,
    ssl_verify = verify, ssl_server_name = url.host,   -- no host check without a server name
  })
  if not ok then
    sock:close()
    local where = url.host .. ":" .. url.port
    if err == "timeout" then
      return nil, fail("Timeout", sock.connected and "timed out in the TLS handshake"
        or ("timed out connecting to " .. where), false)
    end
    if sock.connected then return nil, fail("TLSError", "TLS failed: " .. tostring(err), false) end
    return nil, fail("ConnectionError", "could not connect to " .. where .. ": " .. tostring(err), false)
  end
  local reused = httpc:get_reused_times() or 0

  local map = {}
  for i = 1, #headers, 2 do
    local name, value = headers[i], headers[i + 1]
    map[name] = map[name] and (map[name] .. ", " .. value) or value
  end
  local body = req.body or ""
  local params = { method = req.method, path = url.target, headers = map, body = body ~= "" and body or nil }
  local res, rerr = httpc:request(params)
  -- 100 Continue and friends: the final response follows
  while res and res.status >= 100 and res.status < 200 and res.status ~= 101 do
    res, rerr = httpc:read_response(params)
  end
  if not res then
    sock:close()
    return nil, resty_request_error(sock, rerr, reused)
  end

  local rh = {}
  for k, v in pairs(res.headers or {}) do
    if type(k) == "string" then
      rh[string_lower(k)] = type(v) == "table" and table_concat(v, ", ") or tostring(v)
    end
  end
  local max = o.max_response_bytes
  local cl = rh["content-length"]
  local chunked = http11.has_token(rh["transfer-encoding"], "chunked")
  if cl and not chunked then
    local n = cl:match("^%s*(%d+)%s*$")
    n = n and tonumber(n)
    if not n then
      sock:close()
      return nil, fail("HTTPError", "invalid Content-Length in the response", true)
    end
    if n > max then
      sock:close()
      return nil, fail(select(2, http11.body_too_large(max, n)))
    end
  end
  local parts, size = {}, 0
  if res.has_body and res.body_reader then
    -- asked for RESTY_CHUNK bytes at a time, the reader never receives "*a";
    -- should it, the deadline socket stops past the cap. A read-until-close
    -- body ends with "closed".
    sock.max_bytes = max + 1
    while true do
      local chunk, cerr = res.body_reader(RESTY_CHUNK)
      if chunk then
        size = size + #chunk
        if size > max then
          sock:close()
          return nil, fail(select(2, http11.body_too_large(max)))
        end
        parts[#parts + 1] = chunk
      end
      if cerr then
        if cerr == "closed" and not cl and not chunked then break end
        sock:close()
        return nil, resty_body_error(cerr, reused)
      end
      if not chunk then break end
    end
  end
  -- set_keepalive() closes instead when the response asked for it (resty.http
  -- reads Connection and the HTTP version); a read-until-close body is never pooled
  if not req.fresh_connect and (cl ~= nil or chunked) then
    local kok = httpc:set_keepalive(math_floor(o.keepalive_timeout * 1000), o.pool_size)
    if not kok then sock:close() end
  else
    sock:close()
  end
  return {
    status = res.status, reason = res.reason, headers = rh, body = table_concat(parts),
    reused = reused, new_connections = reused == 0 and 1 or 0, http_client = "resty.http",
  }
end

---------------------------------------------------------------------------
-- public

-- opts: connect_timeout, timeout (seconds, the whole exchange), max_response_bytes,
-- ca_file (see above), insecure, keepalive_timeout (seconds a pooled connection
-- may stay idle), pool_size (per host and port, per worker), pool (a name for
-- the connection pools, default "lua-dms"), http_client ("auto" | "builtin" |
-- "resty.http")
function M.new(opts)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.http_client ~= "auto" and o.http_client ~= "builtin" and o.http_client ~= "resty.http" then
    error("dms.transport.ngx: http_client must be \"auto\", \"builtin\" or \"resty.http\"", 2)
  end
  for _, k in ipairs({ "connect_timeout", "timeout", "max_response_bytes", "keepalive_timeout", "pool_size" }) do
    if type(o[k]) ~= "number" or o[k] <= 0 then
      error("dms.transport.ngx: " .. k .. " must be a positive number", 2)
    end
  end
  if o.pool_size % 1 ~= 0 then error("dms.transport.ngx: pool_size must be an integer", 2) end
  if o.pool ~= nil and type(o.pool) ~= "string" then
    error("dms.transport.ngx: pool must be a string", 2)
  end
  if o.ca_file and not warned_ca_file and type(ngx) == "table" and ngx.log then
    warned_ca_file = true
    ngx.log(ngx.WARN, "lua-dms: ca_file is not used by cosockets: name the CA bundle with ",
      "lua_ssl_trusted_certificate in nginx.conf")
  end
  return setmetatable({ opts = o }, Transport)
end

-- The HTTP client this transport uses: "builtin" or "resty.http".
function Transport:http_client()
  local want = self.opts.http_client
  if want == "builtin" then return "builtin" end
  local mod = load_resty_http()
  if mod then return "resty.http", mod end
  return "builtin"
end

-- req: {url=, method=, headers= {{name, value}...}, body=, fresh_connect=}
-- -> {status=, reason=, headers= {lowercase = value}, body=, reused=} | nil, err
function Transport:request(req)
  if type(req) ~= "table" then return nil, err_input("request must be a table") end
  if type(ngx) ~= "table" or not ngx.socket or not ngx.socket.tcp then
    return nil, err_input("dms.transport.ngx needs OpenResty / ngx_http_lua_module")
  end
  -- the URL of the last request, parsed (a client sends every request to one)
  local url = self.url
  if not url or self.url_text ~= req.url then
    local uerr
    url, uerr = parse_url(req.url)
    if not url then return nil, err_input(uerr) end
    self.url, self.url_text = url, req.url
  end
  local headers, herr = http11.headers(req, url.authority)
  if not headers then return nil, err_input(herr) end
  ngx.update_time()
  -- req.timeout: what is left of the caller's deadline, when it is shorter
  local timeout = self.opts.timeout
  if type(req.timeout) == "number" and req.timeout > 0 and req.timeout < timeout then timeout = req.timeout end
  local deadline = ngx.now() + timeout
  local which, mod = self:http_client()
  if which == "resty.http" then return self:request_resty(mod, req, url, headers, deadline) end
  if self.opts.http_client == "resty.http" then
    return nil, err_input("http_client is \"resty.http\" but lua-resty-http >= 0.16 is not installed")
  end
  return self:request_builtin(req, url, headers, deadline)
end

-- Pooled connections belong to the worker, not to this object: nothing to release.
function Transport:close() end   -- luacheck: ignore 212

Transport.__close = Transport.close

M.parse_url = parse_url
return M
