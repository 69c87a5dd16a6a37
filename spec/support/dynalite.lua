-- Starts dynalite (a DynamoDB-compatible server, installed by
-- tools/dynalite.sh into tools/dynalite/node_modules) on a free loopback
-- port for a spec, and optionally the fault proxy in front of it
-- (spec/support/ddb_proxy.py).
--
--   local dynalite = require "support.dynalite"
--   local why = dynalite.unavailable()         -- nil, or why the specs skip
--   local d = dynalite.start()                 -- d.url
--   local p = d:proxy()                        -- p.url, p:fault{...}, p:counts()
--   d:stop()
local cjson = require "cjson"

local M = {}

local function sh(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p and p:read("*a") or ""
  if p then p:close() end
  return out
end

-- nil when node is there, else why the specs skip (where node is there and
-- dynalite is not, start fails: make test installs it)
function M.unavailable()
  if sh("command -v node") == "" then
    return "node is not installed (apt-get install nodejs npm): the DynamoDB journal specs need dynalite"
  end
  return nil
end

local Server = {}
Server.__index = Server

local function spawn(cmd)
  local pipe = assert(io.popen("sh -c 'echo $$; exec " .. cmd:gsub("'", "'\\''") .. "'", "r"))
  local pid = pipe:read("*l")
  local url = pipe:read("*l")
  if not url or not url:match("^http://127%.0%.0%.1:%d+$") then
    pipe:close()
    error("could not start: " .. cmd .. ": " .. tostring(url))
  end
  return pid, url, pipe
end

-- opts.path: a directory for LevelDB (default in memory)
function M.start(opts)
  opts = opts or {}
  local f = io.open("tools/dynalite/node_modules/dynalite/package.json", "r")
  if not f then error("dynalite is not installed in tools/dynalite/node_modules: run sh tools/dynalite.sh "
    .. "(make test and tools/deps.sh do)") end
  f:close()
  local cmd = "node tools/dynalite/serve.js" .. (opts.path and (" --path " .. opts.path) or "")
  local pid, url, pipe = spawn(cmd)
  return setmetatable({ pid = pid, url = url, pipe = pipe, proxies = {} }, Server)
end

local Proxy = {}
Proxy.__index = Proxy

function Server:proxy()
  -- (its stderr: the tracebacks of connections the clients cut, dropped answers included)
  local pid, url, pipe = spawn("python3 spec/support/ddb_proxy.py " .. self.url .. " 2>/dev/null")
  local p = setmetatable({ pid = pid, url = url, pipe = pipe, http = assert(require("dms.curl").http()) }, Proxy)
  self.proxies[#self.proxies + 1] = p
  return p
end

function Proxy:admin(method, path, body)
  local resp, err = self.http:request({ url = self.url .. "/_proxy/" .. path, method = method,
    headers = { { "Content-Type", "application/json" } }, body = body and cjson.encode(body) or "", timeout = 10 })
  assert(resp, err and tostring(err))
  assert(resp.status < 300, "proxy admin " .. path .. ": HTTP " .. resp.status)
  return cjson.decode(resp.body)
end

function Proxy:fault(spec) return self:admin("POST", "faults", spec) end
function Proxy:clear_faults() return self:admin("DELETE", "faults") end
function Proxy:counts() return self:admin("GET", "counts") end
function Proxy:clear_counts() return self:admin("DELETE", "counts") end
function Proxy:log() return self:admin("GET", "log") end

function Proxy:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    self.http:close()
    self.pid = nil
  end
end

function Server:stop()
  for _, p in ipairs(self.proxies) do p:stop() end
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    self.pid = nil
  end
end

return M
