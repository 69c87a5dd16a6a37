-- The default transport: one libcurl handle per client (dms.curl.http), so
-- that connections are kept alive across calls.
local curl = require "dms.curl"   -- libcurl is mapped when this transport is first used
local errors = require "dms.errors"
local setmetatable, math_min = setmetatable, math.min

local M = {}
local Transport = {}
Transport.__index = Transport

-- opts: connect_timeout, timeout (seconds), max_response_bytes, ca_file, insecure:
-- the handle's defaults, so that a call passes only what is its own
function M.new(opts)
  local handle, err = curl.http({
    connect_timeout = opts.connect_timeout, timeout = opts.timeout,
    max_response_bytes = opts.max_response_bytes, ca_file = opts.ca_file, insecure = opts.insecure,
  })
  if not handle then return nil, err end
  return setmetatable({ handle = handle, opts = opts }, Transport)
end

-- req: {url=, method=, headers= {{name, value}...}, body=, fresh_connect=, timeout=}
-- -> {status=, headers= {lowercase = value}, body=} | nil, err
function Transport:request(req)
  local resp, err
  local t = req.timeout
  if t == nil and req.connect_timeout == nil and req.max_response_bytes == nil and req.ca_file == nil
     and req.insecure == nil then
    -- nothing in it that the handle's defaults would not give: as it is
    resp, err = self.handle:request(req)
  elseif t == nil then
    resp, err = self.handle:request({ url = req.url, method = req.method, headers = req.headers,
                                      body = req.body, fresh_connect = req.fresh_connect })
  else
    -- what is left of the caller's deadline, when it is shorter
    local o = self.opts
    resp, err = self.handle:request({ url = req.url, method = req.method, headers = req.headers,
      body = req.body, fresh_connect = req.fresh_connect,
      connect_timeout = math_min(o.connect_timeout, t), timeout = math_min(o.timeout, t) })
  end
  if not resp then return nil, errors.classify(err) end
  return resp
end

function Transport:close()
  self.handle:close()
end

Transport.__close = Transport.close

return M
