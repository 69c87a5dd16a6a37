-- The default transport: one libcurl handle per client (dms.curl.http), so
-- that connections are kept alive across calls.
local curl = require "dms.curl"   -- libcurl is mapped when this transport is first used
local errors = require "dms.errors"
local setmetatable, math_min = setmetatable, math.min

local M = {}
local Transport = {}
Transport.__index = Transport

-- opts: connect_timeout, timeout (seconds), max_response_bytes, ca_file, insecure
function M.new(opts)
  local handle, err = curl.http()
  if not handle then return nil, err end
  return setmetatable({ handle = handle, opts = opts }, Transport)
end

-- req: {url=, method=, headers= {{name, value}...}, body=, fresh_connect=}
-- -> {status=, headers= {lowercase = value}, body=} | nil, err
function Transport:request(req)
  local o = self.opts
  local resp, err = self.handle:request({
    url = req.url, method = req.method, headers = req.headers, body = req.body,
    -- req.timeout: what is left of the caller's deadline, when it is shorter
    connect_timeout = req.timeout and math_min(o.connect_timeout, req.timeout) or o.connect_timeout,
    timeout = req.timeout and math_min(o.timeout, req.timeout) or o.timeout,
    max_response_bytes = o.max_response_bytes, ca_file = o.ca_file, insecure = o.insecure,
    fresh_connect = req.fresh_connect,
  })
  if not resp then return nil, errors.classify(err) end
  return resp
end

function Transport:close()
  self.handle:close()
end

Transport.__close = Transport.close

return M
