-- Reads the AWS SigV4 test suite from shared/reference/aws4_testsuite.
local files = require "support.files"
local M = {}

local read = files.read
M.read = read

-- The reference data lives beside the repository (../shared/reference), or
-- wherever DMS_REFERENCE points.
function M.reference_dir()
  local candidates = { os.getenv("DMS_REFERENCE") or "../shared/reference", "../shared/reference" }
  for _, dir in ipairs(candidates) do
    if read(dir .. "/aws4_testsuite/get-vanilla/get-vanilla.req") then return dir end
  end
  return nil
end

-- Every case directory (those holding a .req), recursively.
function M.cases(dir)
  local out = {}
  local p = io.popen('find "' .. dir .. '/aws4_testsuite" -name "*.req" | sort')
  for line in p:lines() do
    local d, name = line:match("^(.*)/([^/]+)%.req$")
    out[#out + 1] = { name = name, dir = d, base = d .. "/" .. name }
  end
  p:close()
  return out
end

-- Parses a .req file as an HTTP/1.1 server would: the request line, the
-- header lines (an obs-fold continuation line is replaced by one space, as
-- RFC 7230 3.2.4 says), a blank line, then the body.
function M.parse_request(text)
  local lines, pos = {}, 1
  while true do
    local s, e = text:find("\r?\n", pos)
    if not s then lines[#lines + 1] = text:sub(pos); break end
    lines[#lines + 1] = text:sub(pos, s - 1)
    pos = e + 1
  end
  local method, target = lines[1]:match("^(%S+) (.*) HTTP/1%.1$")
  local path, query = target:match("^([^?]*)%?(.*)$")
  path = path or target
  local headers, i = {}, 2
  while i <= #lines and lines[i] ~= "" do
    local line = lines[i]
    if line:match("^[ \t]") and #headers > 0 then
      local h = headers[#headers]
      h[2] = h[2] .. " " .. line:gsub("^[ \t]+", "")
    else
      local name, value = line:match("^([^:]+):(.*)$")
      headers[#headers + 1] = { name, value }
    end
    i = i + 1
  end
  local body = table.concat(lines, "\n", i + 1)
  return { method = method, path = path, query = query, headers = headers, body = body }
end

return M
