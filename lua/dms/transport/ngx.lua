-- The OpenResty transport: one HTTP/1.1 exchange over an nginx cosocket, so a
-- call made in a request handler or a timer yields to the event loop instead
-- of blocking the worker the way a libcurl call would.
--
--   local transport = require("dms.transport.ngx").new{ timeout = 10 }
--   local resp, err = transport:request{ url = url, method = "POST",
--                                        headers = { {"Host", host}, ... }, body = body }
--
-- The client builds, signs and parses (dms.core); this file only moves bytes.
-- Two ways to move them:
--   * lua-resty-http (resty.http >= 0.16), when it is installed;
--   * a small built-in HTTP/1.1 client (request writer, response reader for
--     Content-Length, chunked and read-until-close bodies, keep-alive).
-- opts.http_client picks one: "auto" (the default: resty.http if it loads),
-- "builtin" or "resty.http".
--
-- TLS: the certificate chain and the host name are always verified unless
-- opts.insecure is set. Cosockets verify against the CA bundle named by the
-- lua_ssl_trusted_certificate directive in nginx.conf (there is no per-socket
-- CA file), so opts.ca_file cannot be honoured here: a warning says so once.
--
-- Errors are dms.core errors of kind "transport" with the codes the curl
-- transport uses: Timeout, ConnectionError, TLSError, ResponseTooLarge,
-- ConnectionLost, HTTPError, BadRequest.
local type, tostring, tonumber, pairs, ipairs, setmetatable, pcall, error =
      type, tostring, tonumber, pairs, ipairs, setmetatable, pcall, error
local math_max, math_min, math_floor = math.max, math.min, math.floor
local string_format, string_lower, string_find, string_sub =
      string.format, string.lower, string.find, string.sub
local table_concat = table.concat

local errors = require "dms.errors"

local ngx = ngx   -- nil when the module is loaded outside nginx: checked at call time

local M = {
  -- largest response head (status line and headers) read before giving up
  MAX_HEAD_BYTES = 64 * 1024,
  -- largest chunk-size line of a chunked body
  MAX_LINE_BYTES = 4 * 1024,
  -- bytes asked of the socket at a time while looking for the end of a line
  READ_SIZE = 16 * 1024,
}

local Transport = {}
Transport.__index = Transport

local DEFAULTS = {
  connect_timeout = 5, timeout = 60, max_response_bytes = 8 * 1024 * 1024,
  keepalive_timeout = 30, pool_size = 32, http_client = "auto",
}

local warned_ca_file = false

---------------------------------------------------------------------------
-- errors

-- the flags of each code are dms.errors' (the curl transport reads the same table)
local transport_error = errors.transport
local function err_timeout(message, sent) return transport_error("Timeout", message, sent) end
local function err_connect(message) return transport_error("ConnectionError", message, false) end
local function err_tls(message) return transport_error("TLSError", message, false) end
local function err_too_large(message) return transport_error("ResponseTooLarge", message, true) end
local function err_lost(message) return transport_error("ConnectionLost", message, true) end
local function err_protocol(message) return transport_error("HTTPError", message, true) end
local function err_input(message) return transport_error("BadRequest", message, false) end

---------------------------------------------------------------------------
-- clock: a deadline for the whole exchange, like libcurl's CURLOPT_TIMEOUT

local function now()
  ngx.update_time()
  return ngx.now()
end

-- milliseconds left before the deadline (at least 1), or nil once it passed
local function remaining_ms(deadline)
  local left = deadline - now()
  if left <= 0 then return nil end
  return math_max(1, math_floor(left * 1000))
end

---------------------------------------------------------------------------
-- URL and request head

-- "https://host:port/path?query" -> scheme, host (no brackets), port, target
local function parse_url(url)
  if type(url) ~= "string" then return nil, "url must be a string" end
  local scheme, authority, target = url:match("^(https?)://([^/?#]+)([^#]*)$")
  if not scheme then return nil, "url must be http:// or https:// with a host: " .. url end
  if authority:find("@", 1, true) then return nil, "url must not contain user info" end
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host then return nil, "url has no valid host: " .. url end
  port = tonumber(port ~= "" and port or nil) or (scheme == "https" and 443 or 80)
  if port < 1 or port > 65535 then return nil, "url port out of range: " .. url end
  if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
  return { scheme = scheme, host = host, port = port, target = target, authority = authority }
end

local function bad_header_text(s)
  return string_find(s, "[%z\r\n]") ~= nil
end

-- The request head as a list of strings (cosockets send a table without
-- concatenating it first). Adds Host and Content-Length when they are missing.
local function request_head(req, url)
  local method = req.method
  if type(method) ~= "string" or not method:match("^%u+$") then
    return nil, "method must be an upper-case token"
  end
  local body = req.body or ""
  if type(body) ~= "string" then return nil, "body must be a string" end
  local parts = { method, " ", url.target, " HTTP/1.1\r\n" }
  local has_host, has_length = false, false
  local function add(name, value)
    if type(name) ~= "string" or name == "" or name:find("[%c%s:]") then
      return "invalid header name " .. string_format("%q", tostring(name))
    end
    if type(value) == "number" then value = tostring(value) end
    if type(value) ~= "string" or bad_header_text(value) then
      return "header " .. name .. ": the value must be a string without CR, LF or NUL"
    end
    local lower = string_lower(name)
    if lower == "host" then has_host = true end
    if lower == "content-length" then has_length = true end
    parts[#parts + 1] = name
    parts[#parts + 1] = ": "
    parts[#parts + 1] = value
    parts[#parts + 1] = "\r\n"
    return nil
  end
  local headers = req.headers or {}
  if type(headers) ~= "table" then return nil, "headers must be a table" end
  if headers[1] ~= nil then
    for _, h in ipairs(headers) do
      if type(h) ~= "table" then return nil, "headers must be {name, value} pairs" end
      local e = add(h[1], h[2])
      if e then return nil, e end
    end
  else
    for name, value in pairs(headers) do
      local e = add(name, value)
      if e then return nil, e end
    end
  end
  if not has_host then add("Host", url.authority) end
  if not has_length and (#body > 0 or method == "POST" or method == "PUT") then
    add("Content-Length", #body)
  end
  parts[#parts + 1] = "\r\n"
  return parts, body
end

---------------------------------------------------------------------------
-- the built-in response reader: a small buffer over receiveany(), so that
-- no line (status, header, chunk size) can grow without bound

local Reader = {}
Reader.__index = Reader

local function new_reader(sock, deadline)
  return setmetatable({ sock = sock, deadline = deadline, buf = "", pos = 1 }, Reader)
end

-- bytes buffered and not consumed yet
function Reader:buffered()
  return #self.buf - self.pos + 1
end

-- reads more bytes into the buffer; nil, err ("timeout", "closed", ...)
function Reader:fill()
  local ms = remaining_ms(self.deadline)
  if not ms then return nil, "timeout" end
  self.sock:settimeout(ms)
  local data, err = self.sock:receiveany(M.READ_SIZE)
  if not data then return nil, err end
  if self.pos > 1 then
    self.buf = string_sub(self.buf, self.pos) .. data
    self.pos = 1
  else
    self.buf = self.buf .. data
  end
  return true
end

-- one line without its CRLF (a bare LF is accepted); nil, err, too_long
function Reader:line(max)
  local scanned = 0   -- bytes after pos already searched for LF
  while true do
    local lf = string_find(self.buf, "\n", self.pos + scanned, true)
    if lf then
      local stop = lf - 1
      if stop >= self.pos and string_sub(self.buf, stop, stop) == "\r" then stop = stop - 1 end
      local line = string_sub(self.buf, self.pos, stop)
      self.pos = lf + 1
      return line
    end
    scanned = self:buffered()
    if scanned > max then return nil, "line too long", true end
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
end

-- exactly n bytes; nil, err, partial_length
function Reader:take(n)
  local have = self:buffered()
  if have >= n then
    local s = string_sub(self.buf, self.pos, self.pos + n - 1)
    self.pos = self.pos + n
    return s
  end
  local head = string_sub(self.buf, self.pos)
  self.buf, self.pos = "", 1
  local ms = remaining_ms(self.deadline)
  if not ms then return nil, "timeout", have end
  self.sock:settimeout(ms)
  local data, err, partial = self.sock:receive(n - have)
  if not data then return nil, err, have + #(partial or "") end
  return head .. data
end

-- everything until the peer closes, at most max bytes; nil, err
function Reader:rest(max)
  local parts = { string_sub(self.buf, self.pos) }
  local size = #parts[1]
  self.buf, self.pos = "", 1
  while true do
    if size > max then return nil, "too large" end
    local ms = remaining_ms(self.deadline)
    if not ms then return nil, "timeout" end
    self.sock:settimeout(ms)
    local data, err = self.sock:receiveany(M.READ_SIZE)
    if not data then
      if err == "closed" then return table_concat(parts) end
      return nil, err
    end
    parts[#parts + 1] = data
    size = size + #data
  end
end

-- an error from reading the response: the request went out, so its outcome is unknown
local function read_error(err, what, reused)
  if err == "timeout" then
    return err_timeout("timed out reading the " .. what .. " (the request was sent)", true)
  end
  return err_lost("connection lost while reading the " .. what .. ": " .. tostring(err)
    .. (reused and reused > 0 and " (on a kept-alive connection)" or ""))
end

-- "HTTP/1.1 200 OK" -> version, status, reason
local function status_line(line)
  local major, minor, status, reason = line:match("^HTTP/(%d)%.(%d) (%d%d%d) ?(.*)$")
  if not major then return nil end
  return major * 10 + minor, tonumber(status), reason
end

-- the status line and headers of one response (1xx responses are skipped);
-- returns {status=, reason=, version=, headers=} or nil, err
local function read_head(rd, reused)
  local head_bytes = 0
  while true do
    local line, err, too_long = rd:line(M.MAX_HEAD_BYTES)
    if not line then
      if too_long then
        return nil, err_too_large("response status line longer than " .. M.MAX_HEAD_BYTES .. " bytes")
      end
      return nil, read_error(err, "response status line", reused)
    end
    head_bytes = head_bytes + #line + 2
    local version, status, reason = status_line(line)
    if not version then
      return nil, err_protocol("not an HTTP/1.x response: " .. string_format("%q", line:sub(1, 80)))
    end
    local headers, last = {}, nil
    while true do
      local h, herr, hlong = rd:line(M.MAX_HEAD_BYTES - head_bytes)
      if not h then
        if hlong then return nil, err_too_large("response headers larger than " .. M.MAX_HEAD_BYTES .. " bytes") end
        return nil, read_error(herr, "response headers", reused)
      end
      head_bytes = head_bytes + #h + 2
      if head_bytes > M.MAX_HEAD_BYTES then
        return nil, err_too_large("response headers larger than " .. M.MAX_HEAD_BYTES .. " bytes")
      end
      if h == "" then break end
      local first = string_sub(h, 1, 1)
      if (first == " " or first == "\t") and last then
        -- obsolete line folding: a continuation of the previous value
        headers[last] = headers[last] .. " " .. h:match("^%s*(.-)%s*$")
      else
        local name, value = h:match("^([^:%s]+):%s*(.-)%s*$")
        if not name then return nil, err_protocol("malformed response header line") end
        name = string_lower(name)
        headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
        last = name
      end
    end
    if status >= 200 or status < 100 or status == 101 then
      return { version = version, status = status, reason = reason, headers = headers }
    end
    -- 100 Continue and friends: a final response follows
  end
end

local function has_token(value, token)
  if not value then return false end
  for t in value:gmatch("[^,%s]+") do
    if string_lower(t) == token then return true end
  end
  return false
end

-- the body of a response whose head was read; returns body, keepalive_ok or nil, err
local function read_body(rd, head, method, max, reused)
  local status, h = head.status, head.headers
  if method == "HEAD" or status == 204 or status == 304 then return "", true end
  local te = h["transfer-encoding"]
  if te and has_token(te, "chunked") then
    local parts, size = {}, 0
    while true do
      local line, err, too_long = rd:line(M.MAX_LINE_BYTES)
      if not line then
        if too_long then return nil, err_protocol("chunk-size line too long") end
        return nil, read_error(err, "chunked response body", reused)
      end
      local hex = line:match("^(%x+)%s*;?") or line:match("^(%x+)%s*$")
      if not hex or #hex > 12 then
        return nil, err_protocol("malformed chunk size in the response body")
      end
      local n = tonumber(hex, 16)
      if n == 0 then break end
      size = size + n
      if size > max then
        return nil, err_too_large(string_format(
          "response larger than max_response_bytes (%d): transfer aborted", max))
      end
      local data, derr = rd:take(n)
      if not data then return nil, read_error(derr, "chunked response body", reused) end
      parts[#parts + 1] = data
      local crlf, cerr = rd:line(2)
      if crlf ~= "" then
        if not crlf and cerr ~= "line too long" then
          return nil, read_error(cerr, "chunked response body", reused)
        end
        return nil, err_protocol("chunk not followed by CRLF in the response body")
      end
    end
    -- trailers, then the empty line
    local trailer_bytes = 0
    while true do
      local line, err = rd:line(M.MAX_LINE_BYTES)
      if not line then return nil, read_error(err, "response trailers", reused) end
      trailer_bytes = trailer_bytes + #line
      if line == "" then break end
      if trailer_bytes > M.MAX_HEAD_BYTES then return nil, err_protocol("response trailers too large") end
    end
    return table_concat(parts), true
  elseif te and te ~= "" and string_lower(te) ~= "identity" then
    return nil, err_protocol("unsupported Transfer-Encoding in the response: " .. te)
  end
  local cl = h["content-length"]
  if cl then
    local n = cl:match("^%s*(%d+)%s*$")
    n = n and tonumber(n)
    if not n then return nil, err_protocol("invalid Content-Length in the response") end
    if n > max then
      return nil, err_too_large(string_format(
        "response larger than max_response_bytes (%d): Content-Length is %d, transfer aborted", max, n))
    end
    local data, err = rd:take(n)
    if not data then return nil, read_error(err, "response body", reused) end
    return data, true
  end
  -- neither: the body runs until the server closes the connection
  local data, err = rd:rest(max)
  if not data then
    if err == "too large" then
      return nil, err_too_large(string_format(
        "response larger than max_response_bytes (%d): transfer aborted", max))
    end
    return nil, read_error(err, "response body", reused)
  end
  return data, false
end

local function wants_close(head)
  local conn = head.headers["connection"]
  if has_token(conn, "close") then return true end
  if head.version < 11 and not has_token(conn, "keep-alive") then return true end
  return false
end

-- Pooled connections are keyed by scheme, host, port and verification on or
-- off; not by the trust store, which cosockets cannot see: give opts.pool a
-- name of its own where locations trust different CA bundles.
local function pool_name(url, verify, prefix)
  return string_format("%s:%s:%s:%d:%s", prefix or "lua-dms", url.scheme, url.host, url.port,
    url.scheme == "https" and (verify and "verify" or "noverify") or "-")
end

local function is_tls_message(err)
  err = string_lower(tostring(err))
  return err:find("handshake", 1, true) or err:find("certificate", 1, true)
    or err:find("ssl", 1, true) or err:find("verify", 1, true) or err:find("tls", 1, true)
end

local function connect_error(err, url)
  local msg = "could not connect to " .. url.host .. ":" .. url.port .. ": " .. tostring(err)
  if tostring(err):find("resolve", 1, true) or tostring(err):find("resolver", 1, true) then
    msg = msg .. " (cosockets resolve names with the resolver directive of nginx.conf)"
  end
  return err_connect(msg)
end

local function tls_error(err)
  return err_tls("TLS failed: " .. tostring(err)
    .. " (cosockets verify against lua_ssl_trusted_certificate in nginx.conf)")
end

-- Pool options of a connect(): a request with fresh_connect (StartReplication,
-- StopReplication) never rides on a pooled connection, so that a connection the
-- peer closed while idle cannot make its outcome unknown; its connection is
-- closed afterwards instead of pooled (a pool name nothing is ever put in).
local function pool_options(o, url, verify, fresh)
  if fresh then return { pool = pool_name(url, verify, o.pool) .. "#fresh" } end
  return { pool = pool_name(url, verify, o.pool), pool_size = o.pool_size }
end

---------------------------------------------------------------------------
-- the built-in client

function Transport:request_builtin(req, url, parts, body, deadline)
  local o = self.opts
  local made, sock, serr = pcall(ngx.socket.tcp)
  if not made or not sock then
    return nil, err_input("cannot create a cosocket here (" .. tostring(sock or serr)
      .. "): call from a request handler or a timer")
  end
  local connect_ms = math_floor(o.connect_timeout * 1000)
  local left = remaining_ms(deadline)
  if not left then return nil, err_timeout("timed out before connecting", false) end
  sock:settimeouts(math_min(connect_ms, left), left, left)
  local verify = not o.insecure
  local ok, err = sock:connect(url.host, url.port, pool_options(o, url, verify, req.fresh_connect))
  if not ok then
    if err == "timeout" then
      return nil, err_timeout("timed out connecting to " .. url.host .. ":" .. url.port, false)
    end
    return nil, connect_error(err, url)
  end
  local reused = sock:getreusedtimes() or 0
  if url.scheme == "https" and reused == 0 then
    left = remaining_ms(deadline)
    if not left then sock:close(); return nil, err_timeout("timed out before the TLS handshake", false) end
    sock:settimeout(left)
    local session, herr = sock:sslhandshake(nil, url.host, verify)
    if not session then
      sock:close()
      if herr == "timeout" then return nil, err_timeout("timed out in the TLS handshake", false) end
      return nil, tls_error(herr)
    end
  end

  -- send: a failed or partial send never delivers a whole request (the body
  -- is framed by Content-Length), so nothing can have been acted on
  left = remaining_ms(deadline)
  if not left then sock:close(); return nil, err_timeout("timed out before sending", false) end
  sock:settimeout(left)
  if body ~= "" then parts[#parts + 1] = body end
  local sent, werr = sock:send(parts)
  if not sent then
    sock:close()
    if werr == "timeout" then return nil, err_timeout("timed out sending the request", false) end
    return nil, err_connect("could not send the request: " .. tostring(werr)
      .. (reused > 0 and " (on a kept-alive connection)" or ""))
  end

  local rd = new_reader(sock, deadline)
  local head, herr = read_head(rd, reused)
  if not head then sock:close(); return nil, herr end
  local data, reusable = read_body(rd, head, req.method, o.max_response_bytes, reused)
  if not data then sock:close(); return nil, reusable end
  local keep = reusable and not req.fresh_connect and not wants_close(head) and rd:buffered() == 0
  if keep then
    local kok = sock:setkeepalive(math_floor(o.keepalive_timeout * 1000), o.pool_size)
    if not kok then sock:close() end
  else
    sock:close()
  end
  return {
    status = head.status, reason = head.reason, headers = head.headers, body = data,
    reused = reused, new_connections = reused == 0 and 1 or 0, http_client = "builtin",
  }
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

function Transport:request_resty(http, req, url, body, deadline)
  local o = self.opts
  local made, httpc, nerr = pcall(http.new)
  if not made or not httpc then
    return nil, err_input("cannot create a resty.http client here (" .. tostring(httpc or nerr)
      .. "): call from a request handler or a timer")
  end
  local left = remaining_ms(deadline)
  if not left then return nil, err_timeout("timed out before connecting", false) end
  httpc:set_timeouts(math_min(math_floor(o.connect_timeout * 1000), left), left, left)
  local verify = not o.insecure
  local popts = pool_options(o, url, verify, req.fresh_connect)
  local ok, err = httpc:connect({
    scheme = url.scheme, host = url.host, port = url.port,
    pool = popts.pool, pool_size = popts.pool_size,
    ssl_verify = verify, ssl_server_name = url.host,   -- no host check without a server name
  })
  if not ok then
    httpc:close()
    if err == "timeout" then
      return nil, err_timeout("timed out connecting to " .. url.host .. ":" .. url.port, false)
    end
    if url.scheme == "https" and is_tls_message(err) then return nil, tls_error(err) end
    return nil, connect_error(err, url)
  end
  local reused = httpc:get_reused_times() or 0
  local headers = {}
  for _, h in ipairs(req.headers or {}) do
    local name, value = h[1], h[2]
    if type(name) ~= "string" or name:find("[%c%s:]") or type(value) ~= "string" or bad_header_text(value) then
      httpc:close()
      return nil, err_input("invalid request header " .. string_format("%q", tostring(name)))
    end
    headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
  end
  left = remaining_ms(deadline)
  if not left then httpc:close(); return nil, err_timeout("timed out before sending", false) end
  httpc:set_timeouts(left, left, left)
  -- request() sends and then reads the status line and headers: a failure
  -- here cannot tell which of the two went wrong, so the outcome is unknown
  local res, rerr = httpc:request({ method = req.method, path = url.target, headers = headers, body = body })
  if not res then
    httpc:close()
    return nil, read_error(rerr, "response", reused)
  end
  local rh = {}
  for k, v in pairs(res.headers or {}) do
    if type(k) == "string" then
      rh[string_lower(k)] = type(v) == "table" and table_concat(v, ", ") or tostring(v)
    end
  end
  local max = o.max_response_bytes
  local cl = tonumber(rh["content-length"] or "")
  if cl and cl > max then
    httpc:close()
    return nil, err_too_large(string_format(
      "response larger than max_response_bytes (%d): Content-Length is %d, transfer aborted", max, cl))
  end
  local parts, size = {}, 0
  if res.has_body and res.body_reader then
    while true do
      left = remaining_ms(deadline)
      if not left then
        httpc:close()
        return nil, err_timeout("timed out reading the response body (the request was sent)", true)
      end
      httpc:set_timeouts(left, left, left)
      local chunk, cerr = res.body_reader(64 * 1024)
      if cerr and not (cerr == "closed" and not cl and not rh["transfer-encoding"]) then
        httpc:close()
        return nil, read_error(cerr, "response body", reused)
      end
      if not chunk then break end
      size = size + #chunk
      if size > max then
        httpc:close()
        return nil, err_too_large(string_format(
          "response larger than max_response_bytes (%d): transfer aborted", max))
      end
      parts[#parts + 1] = chunk
      if cerr then break end
    end
  end
  if req.fresh_connect then
    httpc:close()
  else
    httpc:set_keepalive(math_floor(o.keepalive_timeout * 1000), o.pool_size)
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

-- req: {url=, method=, headers= {{name, value}...}, body=}
-- -> {status=, reason=, headers= {lowercase = value}, body=, reused=} | nil, err
function Transport:request(req)
  if type(req) ~= "table" then return nil, err_input("request must be a table") end
  if type(ngx) ~= "table" or not ngx.socket or not ngx.socket.tcp then
    return nil, err_input("dms.transport.ngx needs OpenResty / ngx_http_lua_module")
  end
  local url, uerr = parse_url(req.url)
  if not url then return nil, err_input(uerr) end
  local parts, body = request_head(req, url)
  if not parts then return nil, err_input(body) end
  local deadline = now() + self.opts.timeout
  local which, mod = self:http_client()
  if which == "resty.http" then return self:request_resty(mod, req, url, body, deadline) end
  if self.opts.http_client == "resty.http" then
    return nil, err_input("http_client is \"resty.http\" but lua-resty-http >= 0.16 is not installed")
  end
  return self:request_builtin(req, url, parts, body, deadline)
end

-- Pooled connections belong to the worker, not to this object: nothing to release.
function Transport:close() end   -- luacheck: ignore 212

Transport.__close = Transport.close

M.parse_url = parse_url
return M
