-- The built-in HTTP/1.1 client of the cosocket transport (dms.transport.ngx),
-- and the deadline socket that both of its HTTP clients (this one and
-- lua-resty-http) read and write through.
--
--   local http11 = require "dms.transport.http11"
--   local sock = http11.socket(ngx.socket.tcp(), deadline, connect_timeout)
--   local headers, why = http11.headers(req, host)       -- validated, Host and Content-Length added
--   local resp, code, message, sent = http11.request(sock, req, url, headers, opts)
--
-- The deadline is per request, as curl's CURLOPT_TIMEOUT is: every connect,
-- handshake, send and read is bounded by what is left of it. nginx re-arms a
-- cosocket's timer after every partial read or write, so a timeout given to
-- one receive(n) or send(data) bounds the pauses, not the whole operation: a
-- peer trickling a byte every 200 ms would hold it for ever. The deadline
-- socket therefore reads with receiveany() (it returns as soon as any bytes
-- arrive) and sends in slices of SEND_SIZE bytes (Linux wakes a blocked writer
-- once half its send buffer is free, which takes a whole slice), and sets the
-- timer to the time left before each.
--
-- Failures are returned as (nil, code, message, sent) with the transport codes
-- of dms.errors (Timeout, ConnectionError, TLSError, ConnectionLost, HTTPError,
-- ResponseTooLarge); `sent` says that the whole request went out, so that it
-- may have been acted on. The adapter (dms.transport.ngx) makes the errors.
local type, tostring, tonumber, pairs, ipairs, setmetatable =
      type, tostring, tonumber, pairs, ipairs, setmetatable
local math_max, math_min, math_floor, math_huge = math.max, math.min, math.floor, math.huge
local string_format, string_lower, string_find, string_sub, string_gsub, string_byte =
      string.format, string.lower, string.find, string.sub, string.gsub, string.byte
local table_concat = table.concat

-- luacheck: read globals ngx
local ngx = ngx   -- nil outside nginx: only the functions that do I/O touch it

local M = {
  -- largest response head (status line and headers) read before giving up
  MAX_HEAD_BYTES = 64 * 1024,
  -- largest chunk-size line of a chunked body
  MAX_LINE_BYTES = 4 * 1024,
  -- bytes asked of the socket at a time
  READ_SIZE = 16 * 1024,
  -- bytes handed to one send(): small enough that the kernel takes a slice
  -- in one go once the socket is writable, so one timer covers it
  SEND_SIZE = 16 * 1024,
}

---------------------------------------------------------------------------
-- the deadline socket

local Socket = {}
Socket.__index = Socket

local function now()
  ngx.update_time()
  return ngx.now()
end

-- Wraps a cosocket. deadline: ngx.now() seconds by which the whole request
-- must be done; connect_timeout: seconds, a further bound on connect().
function M.socket(sock, deadline, connect_timeout)
  return setmetatable({
    sock = sock, deadline = deadline, connect_timeout = connect_timeout or math_huge,
    buf = "", pos = 1,
    line_run = 0,           -- bytes of consecutive receive("*l") lines (a response head)
    connected = false,      -- connect() succeeded (a later failure of a connect is TLS's)
    send_failed = false,    -- a send did not complete: the request did not go out whole
    head_too_large = false, -- receive("*l") gave up on a head over MAX_HEAD_BYTES
  }, Socket)
end

-- milliseconds left before the deadline (at least 1), or nil once it passed
function Socket:left_ms()
  local left = self.deadline - now()
  if left <= 0 then return nil end
  return math_max(1, math_floor(left * 1000))
end

function Socket:connect(...)
  local left = self:left_ms()
  if not left then return nil, "timeout" end
  self.sock:settimeouts(math_min(math_floor(self.connect_timeout * 1000), left), left, left)
  local ok, err = self.sock:connect(...)
  if not ok then return nil, err end
  self.connected = true
  return ok
end

-- the TLS handshake runs on the connect timer of the cosocket
function Socket:sslhandshake(...)
  local left = self:left_ms()
  if not left then return nil, "timeout" end
  self.sock:settimeouts(left, left, left)
  local session, err = self.sock:sslhandshake(...)
  if not session then return nil, err end
  return session
end

-- Sends a string (or a flat list of strings) in slices; the byte count, or
-- nil and "timeout", "closed", ...
function Socket:send(data)
  if type(data) == "table" then data = table_concat(data) end
  data = tostring(data)
  local n, pos = #data, 1
  while pos <= n do
    local left = self:left_ms()
    if not left then
      self.send_failed = true
      return nil, "timeout"
    end
    self.sock:settimeout(left)
    local piece = (pos == 1 and n <= M.SEND_SIZE) and data or string_sub(data, pos, pos + M.SEND_SIZE - 1)
    local ok, err = self.sock:send(piece)
    if not ok then
      self.send_failed = true
      return nil, err
    end
    pos = pos + #piece
  end
  return n
end

-- bytes buffered and not consumed yet
function Socket:buffered()
  return #self.buf - self.pos + 1
end

-- reads more bytes into the buffer; true, or nil and "timeout", "closed", ...
function Socket:fill()
  local left = self:left_ms()
  if not left then return nil, "timeout" end
  self.sock:settimeout(left)
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
function Socket:line(max)
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

-- exactly n bytes; nil, err, partial
function Socket:take(n)
  local parts, have = {}, 0
  while true do
    local avail = self:buffered()
    if have + avail >= n then
      local want = n - have
      parts[#parts + 1] = string_sub(self.buf, self.pos, self.pos + want - 1)
      self.pos = self.pos + want
      return table_concat(parts)
    end
    if avail > 0 then
      parts[#parts + 1] = string_sub(self.buf, self.pos)
      have = have + avail
    end
    self.buf, self.pos = "", 1
    local ok, err = self:fill()
    if not ok then return nil, err, table_concat(parts) end
  end
end

-- everything until the peer closes, at most max bytes; nil, "too large" | err
function Socket:rest(max)
  local parts = { string_sub(self.buf, self.pos) }
  local size = #parts[1]
  self.buf, self.pos = "", 1
  while true do
    if size > max then return nil, "too large" end
    local left = self:left_ms()
    if not left then return nil, "timeout" end
    self.sock:settimeout(left)
    local data, err = self.sock:receiveany(M.READ_SIZE)
    if not data then
      if err == "closed" then return table_concat(parts) end
      return nil, err
    end
    parts[#parts + 1] = data
    size = size + #data
  end
end

-- The cosocket receive() patterns, for lua-resty-http: "*l" (a line, CRs
-- dropped; consecutive lines, a response head, are capped at MAX_HEAD_BYTES),
-- "*a" (until the peer closes, capped at max_bytes when set) and a byte count.
function Socket:receive(pattern)
  if pattern == nil or pattern == "*l" then
    local line, err, too_long = self:line(M.MAX_HEAD_BYTES - self.line_run)
    if not line then
      if too_long then
        self.head_too_large = true
        return nil, "response head larger than " .. M.MAX_HEAD_BYTES .. " bytes", ""
      end
      return nil, err, ""
    end
    self.line_run = self.line_run + #line + 2
    return (string_gsub(line, "\r", ""))
  end
  self.line_run = 0
  if pattern == "*a" then
    local data, err = self:rest(self.max_bytes or math_huge)
    if not data then return nil, err, "" end
    return data
  end
  local n = tonumber(pattern)
  if not n or n < 0 then return nil, "bad pattern argument: " .. tostring(pattern) end
  return self:take(n)
end

function Socket:receiveany(max)
  self.line_run = 0
  if self:buffered() == 0 then
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
  local n = math_min(max, self:buffered())
  local s = string_sub(self.buf, self.pos, self.pos + n - 1)
  self.pos = self.pos + n
  return s
end

-- The deadline sets the timers: timeouts given to the wrapper are ignored.
function Socket:settimeout() return true end    -- luacheck: ignore 212
function Socket:settimeouts() return true end   -- luacheck: ignore 212

function Socket:getreusedtimes() return self.sock:getreusedtimes() end
function Socket:setoption(...) return self.sock:setoption(...) end
function Socket:close() return self.sock:close() end

-- Pools the connection, unless bytes past the response were read (the next
-- response would start with them): then it is closed.
function Socket:setkeepalive(...)
  if self:buffered() > 0 then
    self.sock:close()
    return nil, "unread bytes after the response"
  end
  return self.sock:setkeepalive(...)
end

---------------------------------------------------------------------------
-- the request head

-- CR, LF or NUL in a header value (three plain searches: far cheaper than
-- one search for a set of characters)
local function bad_header_text(s)
  return string_find(s, "\r", 1, true) ~= nil or string_find(s, "\n", 1, true) ~= nil
    or string_find(s, "\0", 1, true) ~= nil
end

-- The names of headers checked once (a request names the same few headers
-- every time): name -> its lower case, or false for an invalid name. Bounded:
-- emptied when full.
local MAX_KNOWN_NAMES = 256

local function name_checker(invalid)
  local known, count = {}, 0
  return function(name)
    local lower = known[name]
    if lower == nil then
      lower = not string_find(name, invalid) and string_lower(name) or false
      if count >= MAX_KNOWN_NAMES then known, count = {}, 0 end
      known[name], count = lower, count + 1
    end
    return lower
  end
end
local request_name = name_checker("[%c%s:]")
local response_name = name_checker("%s")

-- The request headers as a flat list (name, value, name, value ...):
-- req.headers (a list of {name, value} pairs or a name -> value map)
-- validated, with Host (from `host`) and Content-Length added when missing;
-- the strings are taken once, so that nothing can change them between the
-- check and the send. nil and a message on bad input.
-- Appends a checked header to the flat list out (n entries so far); returns
-- the new count and its lower-case name, or nil and a message.
local function add_header(out, n, name, value)
  local lower = type(name) == "string" and name ~= "" and request_name(name)
  if not lower then
    return nil, "invalid header name " .. string_format("%q", tostring(name))
  end
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" or bad_header_text(value) then
    return nil, "header " .. name .. ": the value must be a string without CR, LF or NUL"
  end
  out[n + 1], out[n + 2] = name, value
  return n + 2, lower
end

function M.headers(req, host)
  local method = req.method
  if type(method) ~= "string" or not method:match("^%u+$") then
    return nil, "method must be an upper-case token"
  end
  local body = req.body or ""
  if type(body) ~= "string" then return nil, "body must be a string" end
  local out, n, has_host, has_length = {}, 0, false, false
  local headers = req.headers or {}
  if type(headers) ~= "table" then return nil, "headers must be a table" end
  local lower
  if headers[1] ~= nil then
    for _, h in ipairs(headers) do
      if type(h) ~= "table" then return nil, "headers must be {name, value} pairs" end
      n, lower = add_header(out, n, h[1], h[2])
      if not n then return nil, lower end
      if lower == "host" then has_host = true elseif lower == "content-length" then has_length = true end
    end
  else
    for name, value in pairs(headers) do
      n, lower = add_header(out, n, name, value)
      if not n then return nil, lower end
      if lower == "host" then has_host = true elseif lower == "content-length" then has_length = true end
    end
  end
  if not has_host then n = add_header(out, n, "Host", host) or n end
  if not has_length and (#body > 0 or method == "POST" or method == "PUT") then
    add_header(out, n, "Content-Length", #body)
  end
  return out
end

-- The request head, and the body after it when one is given.
local function format_head(method, target, headers, body)
  local parts, k = { method, " ", target, " HTTP/1.1\r\n" }, 4
  for i = 1, #headers, 2 do
    parts[k + 1], parts[k + 2], parts[k + 3], parts[k + 4] = headers[i], ": ", headers[i + 1], "\r\n"
    k = k + 4
  end
  parts[k + 1] = "\r\n"
  parts[k + 2] = body
  return table_concat(parts)
end

---------------------------------------------------------------------------
-- the response

-- An error from reading the response: the request went out, so its outcome is unknown.
local function read_error(err, what, reused)
  if err == "timeout" then
    return nil, "Timeout", "timed out reading the " .. what .. " (the request was sent)", true
  end
  return nil, "ConnectionLost", "connection lost while reading the " .. what .. ": " .. tostring(err)
    .. (reused and reused > 0 and " (on a kept-alive connection)" or ""), true
end
M.read_error = read_error

local function protocol_error(message) return nil, "HTTPError", message, true end
local function too_large(message) return nil, "ResponseTooLarge", message, true end

local function body_too_large(max, length)
  if length then
    return too_large(string_format(
      "response larger than max_response_bytes (%d): Content-Length is %d, transfer aborted", max, length))
  end
  return too_large(string_format("response larger than max_response_bytes (%d): transfer aborted", max))
end
M.body_too_large = body_too_large

-- the bytes %s matches
local SPACE = { [9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true }

-- "HTTP/1.1 200 OK" -> version (11), status, reason
local function status_line(line)
  local major, minor, status, reason = line:match("^HTTP/(%d)%.(%d) (%d%d%d) ?(.*)$")
  if not major then return nil end
  return major * 10 + minor, tonumber(status), reason
end

-- the status line and headers of one response (1xx responses are skipped);
-- returns {status=, reason=, version=, headers=} or nil, code, message, sent
local function read_head(sock, reused)
  local head_bytes = 0
  while true do
    local line, err, long = sock:line(M.MAX_HEAD_BYTES)
    if not line then
      if long then return too_large("response status line longer than " .. M.MAX_HEAD_BYTES .. " bytes") end
      return read_error(err, "response status line", reused)
    end
    head_bytes = head_bytes + #line + 2
    local version, status, reason = status_line(line)
    if not version then
      return protocol_error("not an HTTP/1.x response: " .. string_format("%q", line:sub(1, 80)))
    end
    local headers, last = {}, nil
    while true do
      local h, herr, hlong = sock:line(M.MAX_HEAD_BYTES - head_bytes)
      if not h then
        if hlong then return too_large("response headers larger than " .. M.MAX_HEAD_BYTES .. " bytes") end
        return read_error(herr, "response headers", reused)
      end
      head_bytes = head_bytes + #h + 2
      if head_bytes > M.MAX_HEAD_BYTES then
        return too_large("response headers larger than " .. M.MAX_HEAD_BYTES .. " bytes")
      end
      if h == "" then break end
      local first = string_byte(h, 1)
      if (first == 32 or first == 9) and last then
        -- obsolete line folding: a continuation of the previous value
        headers[last] = headers[last] .. " " .. h:match("^%s*(.-)%s*$")
      else
        -- name: value, the name without white space, the value trimmed
        local colon = string_find(h, ":", 1, true)
        local name = colon and colon > 1 and response_name(string_sub(h, 1, colon - 1))
        if not name then return protocol_error("malformed response header line") end
        local from = colon + 1
        local b = string_byte(h, from)
        if b == 32 then
          from = from + 1
          b = string_byte(h, from)
        end
        local value
        if not SPACE[b] and not SPACE[string_byte(h, -1)] then
          value = string_sub(h, from)             -- the usual "Name: value"
        else
          value = string_sub(h, from):match("^%s*(.-)%s*$")
        end
        local had = headers[name]
        headers[name] = had and (had .. ", " .. value) or value
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
  if value == token then return true end
  if not string_find(value, ",", 1, true) and not string_find(value, " ", 1, true)
     and not string_find(value, "\t", 1, true) then
    return string_lower(value) == token     -- one token, the usual Connection value
  end
  for t in value:gmatch("[^,%s]+") do
    if string_lower(t) == token then return true end
  end
  return false
end
M.has_token = has_token

local function read_chunked(sock, max, reused)
  local parts, size = {}, 0
  while true do
    local line, err, long = sock:line(M.MAX_LINE_BYTES)
    if not line then
      if long then return protocol_error("chunk-size line too long") end
      return read_error(err, "chunked response body", reused)
    end
    local hex = line:match("^(%x+)%s*;?") or line:match("^(%x+)%s*$")
    if not hex or #hex > 12 then return protocol_error("malformed chunk size in the response body") end
    local n = tonumber(hex, 16)
    if n == 0 then break end
    size = size + n
    if size > max then return body_too_large(max) end
    local data, derr = sock:take(n)
    if not data then return read_error(derr, "chunked response body", reused) end
    parts[#parts + 1] = data
    local crlf, cerr, clong = sock:line(2)
    if crlf ~= "" then
      if not crlf and not clong then return read_error(cerr, "chunked response body", reused) end
      return protocol_error("chunk not followed by CRLF in the response body")
    end
  end
  -- trailers, then the empty line
  local trailer_bytes = 0
  while true do
    local line, err = sock:line(M.MAX_LINE_BYTES)
    if not line then return read_error(err, "response trailers", reused) end
    trailer_bytes = trailer_bytes + #line
    if line == "" then break end
    if trailer_bytes > M.MAX_HEAD_BYTES then return protocol_error("response trailers too large") end
  end
  return table_concat(parts), true
end

-- the body of a response whose head was read; returns body, keepalive_ok or
-- nil, code, message, sent
local function read_body(sock, head, method, max, reused)
  local status, h = head.status, head.headers
  if method == "HEAD" or status == 204 or status == 304 then return "", true end
  local te = h["transfer-encoding"]
  if te and has_token(te, "chunked") then return read_chunked(sock, max, reused) end
  if te and te ~= "" and string_lower(te) ~= "identity" then
    return protocol_error("unsupported Transfer-Encoding in the response: " .. te)
  end
  local cl = h["content-length"]
  if cl then
    local n = cl:match("^%s*(%d+)%s*$")
    n = n and tonumber(n)
    if not n then return protocol_error("invalid Content-Length in the response") end
    if n > max then return body_too_large(max, n) end
    local data, err = sock:take(n)
    if not data then return read_error(err, "response body", reused) end
    return data, true
  end
  -- neither: the body runs until the server closes the connection
  local data, err = sock:rest(max)
  if not data then
    if err == "too large" then return body_too_large(max) end
    return read_error(err, "response body", reused)
  end
  return data, false
end

-- must the connection be closed after this response?
function M.wants_close(version, connection)
  if has_token(connection, "close") then return true end
  if version < 11 and not has_token(connection, "keep-alive") then return true end
  return false
end

---------------------------------------------------------------------------
-- one exchange

-- sock: from M.socket; url: {scheme=, host=, port=, connect_host=, target=};
-- headers: from M.headers; o: pool (connect options), verify,
-- max_response_bytes, keepalive_timeout (seconds), pool_size.
-- -> {status=, reason=, headers= {lowercase = value}, body=, reused=} | nil, code, message, sent
function M.request(sock, req, url, headers, o)
  local ok, err = sock:connect(url.connect_host, url.port, o.pool)
  if not ok then
    if err == "timeout" then
      return nil, "Timeout", "timed out connecting to " .. url.host .. ":" .. url.port, false
    end
    return nil, "ConnectionError",
      "could not connect to " .. url.host .. ":" .. url.port .. ": " .. tostring(err), false
  end
  local reused = sock:getreusedtimes() or 0
  if url.scheme == "https" and reused == 0 then
    local session, herr = sock:sslhandshake(nil, url.host, o.verify)
    if not session then
      sock:close()
      if herr == "timeout" then return nil, "Timeout", "timed out in the TLS handshake", false end
      return nil, "TLSError", "TLS failed: " .. tostring(herr), false
    end
  end

  -- send: a failed or partial send never delivers a whole request (the body
  -- is framed by Content-Length), so nothing can have been acted on
  local body = req.body or ""
  local sent, werr
  if #body <= M.SEND_SIZE then
    -- one segment for the usual small request
    sent, werr = sock:send(format_head(req.method, url.target, headers, body))
  else
    sent, werr = sock:send(format_head(req.method, url.target, headers))   -- no copy of a large body
    if sent then sent, werr = sock:send(body) end
  end
  if not sent then
    sock:close()
    if werr == "timeout" then return nil, "Timeout", "timed out sending the request", false end
    return nil, "ConnectionError", "could not send the request: " .. tostring(werr)
      .. (reused > 0 and " (on a kept-alive connection)" or ""), false
  end

  local head, code, message = read_head(sock, reused)
  if not head then sock:close(); return nil, code, message, true end
  local data, reusable, bmessage = read_body(sock, head, req.method, o.max_response_bytes, reused)
  if not data then sock:close(); return nil, reusable, bmessage, true end
  local keep = reusable and not req.fresh_connect and not M.wants_close(head.version, head.headers["connection"])
  if keep then
    local kok = sock:setkeepalive(math_floor(o.keepalive_timeout * 1000), o.pool_size)
    if not kok then sock:close() end
  else
    sock:close()
  end
  return { status = head.status, reason = head.reason, headers = head.headers, body = data, reused = reused }
end

return M
