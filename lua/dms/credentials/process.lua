-- A profile's credential_process: a command whose standard output is
-- {"Version": 1, "AccessKeyId": ..., "SecretAccessKey": ..., "SessionToken": ...,
--  "Expiration": ...}. The command line is split as a POSIX shell splits
-- words (botocore's shlex.split) and run without a shell.
--
-- Outside nginx it runs through io.popen (which blocks, as it may there).
-- Inside an nginx request phase it runs through ngx.pipe, which yields; where
-- ngx.pipe is missing it is refused with an error rather than blocking the
-- worker. Its output is never quoted in an error: it holds secrets.
local type, tostring, pcall, ipairs = type, tostring, pcall, ipairs
local table_concat = table.concat

local errors = require "dms.errors"
local config_mod = require "dms.config"
local cache = require "dms.credentials.cache"

local M = { name = "credential_process", TIMEOUT = 60 }

local function process_error(name, message)
  return errors.new("credentials", "ProcessFailed", "profile '" .. name .. "': credential_process " .. message)
end

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- -> stdout, or nil and an error
local function run_popen(argv, name)
  local quoted = {}
  for i, a in ipairs(argv) do quoted[i] = sh_quote(a) end
  -- the exit status travels on a last line: Lua 5.1's close() does not report it
  local p = io.popen("{ " .. table_concat(quoted, " ") .. "\n}; printf '\\n%d\\n' \"$?\"", "r")
  if not p then return nil, process_error(name, "could not be started") end
  local all = p:read("*a") or ""
  p:close()
  local out, code = all:match("^(.*)\n(%d+)\n$")
  if code == "127" or code == "126" then
    return nil, process_error(name, "could not be run (status " .. code .. "): " .. argv[1])
  end
  if code ~= "0" then return nil, process_error(name, "exited with status " .. tostring(code)) end
  return out
end

local function run_pipe(argv, name, timeout)
  local ok, pipe = pcall(require, "ngx.pipe")
  if not ok or type(pipe) ~= "table" or type(pipe.spawn) ~= "function" then
    return nil, errors.new("credentials", "Unsupported", "profile '" .. name .. "': credential_process cannot"
      .. " run inside nginx without ngx.pipe (lua-nginx-module >= 0.10.15 with lua-resty-core), and"
      .. " running it with io.popen would block the worker")
  end
  local proc, err = pipe.spawn(argv, { merge_stderr = false, buffer_size = 64 * 1024 })
  if not proc then return nil, process_error(name, "could not be started: " .. tostring(err)) end
  local ms = math.floor(timeout * 1000)
  proc:set_timeouts(ms, ms, ms, ms)
  proc:shutdown("stdin")
  local out, rerr = proc:stdout_read_all()
  if not out then
    proc:kill(9)
    return nil, process_error(name, "output could not be read: " .. tostring(rerr))
  end
  local exited, reason, status = proc:wait()
  if not exited then
    return nil, process_error(name, (reason == "signal" and "was killed by signal " or "exited with status ")
      .. tostring(status))
  end
  return out
end

-- Runs the command and reads its answer: a credentials table or nil, err.
function M.run(ctx, command, name, settings)
  local argv, serr = config_mod.shell_split(command)
  if not argv or #argv == 0 then
    return nil, process_error(name, "is not a valid command line: " .. tostring(serr or "empty"))
  end
  local out, err
  if cache.in_cosocket_phase() then
    out, err = run_pipe(argv, name, ctx.process_timeout or M.TIMEOUT)
  else
    out, err = run_popen(argv, name)
  end
  if not out then return nil, err end
  local ok, doc = pcall(require("cjson").decode, out)
  if not ok or type(doc) ~= "table" then
    return nil, process_error(name, "did not print a JSON document")
  end
  if doc.Version ~= 1 then
    return nil, process_error(name, "printed Version " .. tostring(doc.Version) .. ": only Version 1 is supported")
  end
  for _, k in ipairs({ "AccessKeyId", "SecretAccessKey" }) do
    if type(doc[k]) ~= "string" then return nil, process_error(name, "printed no " .. k) end
  end
  return {
    access_key = doc.AccessKeyId, secret_key = doc.SecretAccessKey,
    session_token = type(doc.SessionToken) == "string" and doc.SessionToken or nil,
    expiration = type(doc.Expiration) == "string" and doc.Expiration or nil,
    account_id = type(doc.AccountId) == "string" and doc.AccountId or settings.aws_account_id,
  }
end

-- p: {name = profile name, settings = merged settings}
function M.load(ctx, p)
  local command = p.settings.credential_process
  if command == nil then return nil, "profile '" .. p.name .. "' has no credential_process" end
  return {
    description = "credential_process of profile " .. p.name,
    fetch = function() return M.run(ctx, command, p.name, p.settings) end,
  }
end

return M
