-- bin/dms-runbook as a subprocess, for the specs: the environment it runs in
-- (this checkout's modules, the emulator's keys, no shared files, no
-- terminal), a run to the end, a run in the background, and its JSON events.
local cjson = require "cjson"
local core = require "dms.core"
local emulator = require "support.emulator"
local files = require "support.files"

local M = {}

M.JIT = type(jit) == "table"
M.LUA = M.JIT and "luajit" or "lua5.4"
M.CPATH = M.JIT and "build/luajit/?.so;;" or "build/?.so;;"
M.ENV = table.concat({
  "LUA_PATH='lua/?.lua;lua/?/init.lua;;'",
  "LUA_CPATH='" .. M.CPATH .. "'",
  "AWS_ACCESS_KEY_ID=" .. emulator.ACCESS_KEY,
  "AWS_SECRET_ACCESS_KEY='" .. emulator.SECRET_KEY .. "'",
  "AWS_REGION=us-east-1",
  "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
  "TERM=dumb",
}, " ")

function M.lines(text)
  local out = {}
  for line in (text or ""):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- the JSON events of an output (lines that are not JSON, such as stderr's, are skipped)
function M.events(stdout)
  local out = {}
  for _, line in ipairs(M.lines(stdout)) do
    if line:sub(1, 1) == "{" then out[#out + 1] = cjson.decode(line) end
  end
  return out
end

function M.wait_until(pred, seconds)
  local deadline = core.monotonic() + (seconds or 10)
  while not pred() do
    assert(core.monotonic() < deadline, "timed out waiting")
    core.sleep(0.01)
  end
end

-- A runner against `endpoint` (a URL, or a function giving it) with its lock
-- directory and scratch files in `dir`.
function M.runner(dir, endpoint)
  local r = {}
  local function url(e)
    e = e or endpoint
    return type(e) == "function" and e() or e
  end
  function r.command(args, e)
    return M.ENV .. " " .. M.LUA .. " bin/dms-runbook " .. args .. " --endpoint " .. url(e) .. " --lock-dir " .. dir
  end
  -- runs to the end; returns exit code, stdout, stderr
  function r.run(args, e)
    local err_file = dir .. "/stderr"
    local p = assert(io.popen(r.command(args, e) .. " 2>" .. err_file .. "; echo \"__exit=$?\""))
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("__exit=(%d+)%s*$"))
    return code, (out:gsub("__exit=%d+%s*$", "")), files.read(err_file) or ""
  end
  -- starts in the background; returns its pid and the file its output goes to
  function r.background(args, e, name)
    local out = dir .. "/" .. name .. ".out"
    local p = assert(io.popen(r.command(args, e) .. " >" .. out .. " 2>&1 & echo $!"))
    local pid = p:read("*l")
    p:close()
    return pid, out
  end
  return r
end

return M
