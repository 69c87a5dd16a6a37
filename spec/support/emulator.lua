-- Starts the local DMS endpoint (emulator/dms-emulator) for a spec and talks
-- to its admin API over a real libcurl handle.
--
--   local emulator = require "support.emulator"
--   local emu = emulator.start{ seed = "emulator/seed.example.json", speed = 1000 }
--   emu:fault{ operation = "StartReplication", fault = "throttle", count = 2 }
--   local log = emu:requests()
--   emu:stop()
local cjson = require "cjson"

local M = {}
M.ACCESS_KEY = "AKIDEXAMPLE"
M.SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
M.SEED = "emulator/seed.example.json"
M.ARN_FULL_LOAD = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX01"
M.ARN_CDC = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX02"
M.ARN_FULL_LOAD_AND_CDC = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX03"

local Emulator = {}
Emulator.__index = Emulator

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- the emulator's stderr: one file per user, so that a run as another user
-- (root before, say) does not leave a file this one cannot write
local function log_path()
  local p = io.popen("id -u")
  local uid = p and p:read("*l")
  if p then p:close() end
  return "/tmp/dms-emulator-spec-" .. (uid or "x") .. ".log"
end
M.LOG = log_path()

-- opts: seed, speed, auto_create (bool), keys ({"AK:SK", ...}), args (extra string)
function M.start(opts)
  opts = opts or {}
  local args = { "--port", "0" }
  if opts.seed ~= false then args[#args + 1] = "--seed " .. shell_quote(opts.seed or M.SEED) end
  if opts.speed then args[#args + 1] = "--speed " .. tostring(opts.speed) end
  if opts.auto_create then args[#args + 1] = "--auto-create" end
  for _, k in ipairs(opts.keys or {}) do args[#args + 1] = "--key " .. shell_quote(k) end
  if opts.args then args[#args + 1] = opts.args end
  local cmd = "sh -c 'echo $$; exec python3 emulator/dms-emulator " .. table.concat(args, " "):gsub("'", "'\\''")
    .. " 2>>" .. M.LOG .. "'"
  local pipe = assert(io.popen(cmd, "r"))
  local pid = pipe:read("*l")
  local url = pipe:read("*l")
  if not url or not url:match("^https?://127%.0%.0%.1:%d+$") then
    pipe:close()
    error("the emulator did not start (see " .. M.LOG .. "): " .. tostring(url))
  end
  return setmetatable({ url = url, pid = pid, pipe = pipe, http = assert(require("dms.curl").http()) }, Emulator)
end

function Emulator:admin(method, path, body)
  local resp, err = self.http:request({
    url = self.url .. "/_emulator/" .. path, method = method,
    headers = { { "Content-Type", "application/json" } },
    body = body and cjson.encode(body) or "", timeout = 10,
  })
  assert(resp, err and tostring(err))
  assert(resp.status < 300, "admin " .. method .. " " .. path .. ": HTTP " .. resp.status .. " " .. resp.body)
  return resp.body ~= "" and cjson.decode(resp.body) or nil
end

function Emulator:fault(spec) return self:admin("POST", "faults", spec) end
function Emulator:clear_faults() return self:admin("DELETE", "faults") end
function Emulator:clock(spec) return self:admin("POST", "clock", spec) end
function Emulator:replication(spec) return self:admin("POST", "replications", spec) end
function Emulator:replications() return self:admin("GET", "replications") end
function Emulator:stop_replication(spec) return self:admin("POST", "stop", spec) end
function Emulator:assessment(spec) return self:admin("POST", "assessment", spec) end
function Emulator:reset() return self:admin("POST", "reset") end
function Emulator:clear_requests() return self:admin("DELETE", "requests") end

-- The request log; with an operation name, only the entries of that operation.
function Emulator:requests(operation)
  local all = self:admin("GET", "requests")
  if all and all.requests then all = all.requests end
  if not operation then return all end
  local out = {}
  for _, r in ipairs(all) do
    if r.operation == operation then out[#out + 1] = r end
  end
  return out
end

-- A client for this emulator; extra config merged in.
function Emulator:client(extra)
  local dms = require "dms"
  local config = {
    region = "us-east-1", endpoint = self.url,
    credentials = { access_key = M.ACCESS_KEY, secret_key = M.SECRET_KEY },
    sleep = function() end,       -- retries back off without waiting in specs
  }
  for k, v in pairs(extra or {}) do config[k] = v end
  return assert(require("dms").new(config)), dms
end

function Emulator:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    self.http:close()
    self.pid = nil
  end
end

return M
