-- Helpers of the credential specs: temporary homes with real shared files,
-- lua-dms and botocore (spec/support/credentials_oracle.py) run in the same
-- environment, and the emulator's credential endpoints.
--
--   local cs = require "support.credentials"
--   local home = cs.home{ config = "[default]\n...", credentials = "..." }
--   local env = cs.env(home, { AWS_PROFILE = "x" })   -- IMDS disabled unless an endpoint is set
--   local creds, err, client = cs.lua(env)             -- lua-dms
--   local b = cs.botocore(env)                         -- {access_key=, ...} | {error=} | {none=true}
local cjson = require "cjson"
local files = require "support.files"

local M = {}

M.REGION = "us-east-1"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

local function succeeded(...)
  local a, b, c = ...
  if type(a) == "number" then return a == 0 end -- Lua 5.1 / LuaJIT
  return a == true and (b == nil or b == "exit") and (c == nil or c == 0)
end

M.has_botocore = succeeded(os.execute("python3 -c 'import botocore' >/dev/null 2>&1"))

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
M.ORACLE = here .. "credentials_oracle.py"

-- A temporary home: opts.config and opts.credentials are the texts of
-- ~/.aws/config and ~/.aws/credentials; opts.sso = {[file name] = text} under
-- ~/.aws/sso/cache/. Returns its path.
function M.home(opts)
  opts = opts or {}
  local dir = files.tmpdir()
  os.execute("mkdir -p " .. quote(dir .. "/.aws/sso/cache"))
  if opts.config then files.write(dir .. "/.aws/config", opts.config) end
  if opts.credentials then files.write(dir .. "/.aws/credentials", opts.credentials) end
  for name, text in pairs(opts.sso or {}) do files.write(dir .. "/.aws/sso/cache/" .. name, text) end
  return dir
end

function M.remove(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf " .. quote(dir)) end
end

-- The environment of a scenario: HOME and `extra`. Instance metadata is
-- switched off unless the scenario names an endpoint for it, so that no test
-- ever talks to 169.254.169.254.
function M.env(home, extra)
  local e = { HOME = home }
  for k, v in pairs(extra or {}) do e[k] = v end
  if not e.AWS_EC2_METADATA_SERVICE_ENDPOINT and e.AWS_EC2_METADATA_DISABLED == nil then
    e.AWS_EC2_METADATA_DISABLED = "true"
  end
  assert(not e.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, "RELATIVE_URI would reach 169.254.170.2")
  return e
end

-- lua-dms in that environment: creds, err, client
function M.lua(env, extra)
  local dms = require "dms"
  local config = { env = env, region = M.REGION, sleep = function() end }
  for k, v in pairs(extra or {}) do config[k] = v end
  local client, err = dms.new(config)
  if not client then return nil, err end
  local creds, cerr = client.credentials:get()
  return creds, cerr, client
end

-- botocore in that environment (a fresh python3 with exactly these variables)
function M.botocore(env, opts)
  opts = opts or {}
  local parts = { "env -i", "PATH=" .. quote(os.getenv("PATH") or "/usr/bin:/bin") }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. quote(v) end
  local input = files.tmpdir() .. "/in.json"
  files.write(input, cjson.encode({ region = opts.region or M.REGION, profile = opts.profile,
                                    endpoints = opts.endpoints }))
  local p = assert(io.popen(table.concat(parts, " ") .. " python3 " .. quote(M.ORACLE) .. " < " .. quote(input)
    .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  M.remove(input:match("^(.*)/in%.json$"))
  local ok, doc = pcall(cjson.decode, out)
  assert(ok and type(doc) == "table", "the botocore oracle answered: " .. tostring(out))
  return doc
end

-- the emulator's credential state: settings, issued keys, request log
function M.state(emu) return emu:admin("GET", "credentials") end
function M.settings(emu, spec) return emu:admin("POST", "credentials", spec) end
function M.reset(emu) return emu:admin("DELETE", "credentials") end

-- The issued record of an access key (nil for a key the emulator did not issue).
function M.issued(emu, access_key)
  for _, i in ipairs(M.state(emu).issued) do
    if i.access_key == access_key then return i end
  end
  return nil
end

-- Whether two keys stand for the same identity: the same static key, or keys
-- the emulator issued from the same endpoint for the same role (and account,
-- external id), signed in their turn by keys of the same identity. Session
-- names differ (each SDK generates its own) and are not compared.
function M.same_identity(emu, a, b)
  if a == b then return true end
  local state = M.state(emu)
  local by = {}
  for _, i in ipairs(state.issued) do by[i.access_key] = i end
  local function same(x, y)
    if x == y then return true end
    local ix, iy = by[x], by[y]
    if not ix or not iy then return false end
    for _, k in ipairs({ "issuer", "role_arn", "role_name", "account_id", "external_id", "subject" }) do
      if ix[k] ~= iy[k] then return false end
    end
    if ix.source_access_key or iy.source_access_key then
      return same(ix.source_access_key, iy.source_access_key)
    end
    return true
  end
  return same(a, b)
end

-- the credential requests the emulator logged for an endpoint ("sts", "sso", "imds", "container")
function M.requests(emu, endpoint)
  local out = {}
  for _, r in ipairs(M.state(emu).requests) do
    if not endpoint or r.endpoint == endpoint then out[#out + 1] = r end
  end
  return out
end

-- a logger that keeps its lines
function M.logger()
  local lines = {}
  return function(level, message, fields)
    lines[#lines + 1] = { level = level, message = message, fields = fields }
  end, lines
end

return M
