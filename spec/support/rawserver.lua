-- Starts spec/support/rawserver.py with a canned answer; returns
-- { url =, requests = function() -> count, stop = function() }.
local cjson = require "cjson"
local files = require "support.files"

local M = {}

function M.start(spec)
  local dir = files.tmpdir()
  spec.count_file = dir .. "/count"
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/support"
  files.write(dir .. "/spec.json", cjson.encode(spec))
  local p = assert(io.popen("sh -c 'echo $$; exec python3 " .. here .. "/rawserver.py " .. dir .. "/spec.json'"))
  local pid = p:read("*l")
  local url = p:read("*l")
  assert(url and url:match("^http://"), "rawserver did not start")
  return {
    url = url,
    requests = function()
      local data = files.read(spec.count_file) or ""
      local n = 0
      for _ in data:gmatch("request\n") do n = n + 1 end
      return n
    end,
    stop = function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      p:close()
      os.execute("rm -rf " .. dir)
    end,
  }
end

return M
