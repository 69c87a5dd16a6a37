-- The default transport: one libcurl handle per client (dms.curl.http), so
-- that connections are kept alive across calls.
local curl = require "dms.curl"   -- libcurl is mapped when this transport is first used
local errors = require "dms.errors"
local setmetatable = setmetatable

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
    connect_timeout = o.connect_timeout, timeout = o.timeout,
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
