-- Credentials: a provider chain with caching and refresh.
--
-- Sources, in order: config.credentials (a table, or a function returning one),
-- the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
-- skipped when a profile was chosen explicitly, as the AWS SDKs do), then the
-- shared files (~/.aws/credentials and ~/.aws/config, AWS_PROFILE,
-- AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE): static keys, or a
-- credential_process whose JSON answer is cached until 5 minutes before its
-- Expiration. Not supported: role_arn/source_profile, SSO, container and
-- instance metadata credentials.
local type, setmetatable, tostring, tonumber, pcall = type, setmetatable, tostring, tonumber, pcall
local core = require "dms.core"
local config_mod = require "dms.config"

local M = {}

-- Credentials values print without their secrets.
local creds_mt = {
  __tostring = function(c)
    local id = c.access_key or "?"
    return "credentials(" .. id:sub(1, 4) .. string.rep("*", math.max(#id - 8, 0)) .. id:sub(-4)
      .. (c.session_token and ", with session token" or "") .. ", from " .. (c.source or "?") .. ")"
  end,
}

local function cred_error(code, message)
  return core.error({ kind = "credentials", code = code, message = message })
end

-- Checks and copies a credentials table; returns creds or nil, err.
local function normalize(t, source)
  if type(t) ~= "table" then
    return nil, cred_error("InvalidCredentials", source .. " did not give a credentials table")
  end
  local ak = t.access_key or t.access_key_id or t.AccessKeyId
  local sk = t.secret_key or t.secret_access_key or t.SecretAccessKey
  local tok = t.session_token or t.SessionToken
  if type(ak) ~= "string" or ak == "" or type(sk) ~= "string" or sk == "" then
    return nil, cred_error("InvalidCredentials", source .. " gave no access key and secret key")
  end
  if tok ~= nil and (type(tok) ~= "string" or tok == "") then tok = nil end
  for _, v in ipairs({ ak, sk, tok or "" }) do
    if v:find("[%c]") then
      return nil, cred_error("InvalidCredentials", source .. " gave a key with control characters")
    end
  end
  local exp = t.expiration or t.Expiration
  if type(exp) == "string" then exp = core.timestamp(exp) end
  return setmetatable({ access_key = ak, secret_key = sk, session_token = tok,
                        expiration = tonumber(exp), source = source }, creds_mt)
end
M.normalize = normalize

local function from_env(config)
  local getenv = config_mod.getenv
  local ak, sk = getenv(config, "AWS_ACCESS_KEY_ID"), getenv(config, "AWS_SECRET_ACCESS_KEY")
  if not ak or ak == "" then return nil end
  if not sk or sk == "" then
    return nil, cred_error("IncompleteCredentials",
      "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
  end
  return normalize({ access_key = ak, secret_key = sk,
                     session_token = getenv(config, "AWS_SESSION_TOKEN") }, "environment")
end

-- Runs a profile's credential_process (blocking: io.popen) and reads its
-- JSON answer ({"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken",
-- "Expiration"}). Its output is never quoted in an error: it holds secrets.
local function credential_process(command, name)
  return function()
    -- the exit status travels on a last line: Lua 5.1's close() does not report it
    local p = io.popen("{ " .. command .. "\n}; printf '\\n%d\\n' \"$?\"", "r")
    if not p then
      return nil, cred_error("ProcessFailed", "profile '" .. name .. "': cannot run credential_process")
    end
    local all = p:read("*a") or ""
    p:close()
    local out, code = all:match("^(.*)\n(%d+)\n$")
    if code ~= "0" then
      return nil, cred_error("ProcessFailed", "profile '" .. name .. "': credential_process exited with status "
        .. tostring(code))
    end
    local dok, doc = pcall(require("cjson").decode, out or "")
    if not dok or type(doc) ~= "table" or doc.Version ~= 1 then
      return nil, cred_error("ProcessFailed", "profile '" .. name
        .. "': credential_process did not print a JSON document with Version 1")
    end
    return doc
  end
end

local function from_profile(profile, name, clock)
  if profile and profile.credential_process and not profile.aws_access_key_id then
    return M.provider(credential_process(profile.credential_process, name),
                      "credential_process of profile " .. name, clock)
  end
  if not profile or not profile.aws_access_key_id then return nil end
  if not profile.aws_secret_access_key then
    return nil, cred_error("IncompleteCredentials",
      "profile '" .. name .. "' has aws_access_key_id but no aws_secret_access_key")
  end
  return normalize({ access_key = profile.aws_access_key_id,
                     secret_key = profile.aws_secret_access_key,
                     session_token = profile.aws_session_token }, "profile " .. name)
end

-- A provider: provider:get() -> creds | nil, err, caching until 5 minutes
-- before expiration (credentials without expiration are cached for good).
local Provider = {}
Provider.__index = Provider
Provider.__tostring = function(p) return "dms.credentials.provider(" .. p.description .. ")" end

function Provider:get()
  local now = self.clock()
  local c = self.cached
  if c and (not c.expiration or c.expiration - 300 > now) then return c end
  local ok, t, err = pcall(self.fetch)
  if not ok then
    return nil, cred_error("ProviderError", "credentials provider failed: " .. tostring(t))
  end
  if not t then
    return nil, err or cred_error("NoCredentials", "credentials provider returned nothing")
  end
  local creds, nerr = normalize(t, self.description)
  if not creds then return nil, nerr end
  if creds.expiration and creds.expiration <= now then
    return nil, cred_error("ExpiredCredentials", "the credentials of " .. self.description .. " have expired")
  end
  self.cached = creds
  return creds
end

function Provider:invalidate() self.cached = nil end

function M.provider(fetch, description, clock)
  return setmetatable({ fetch = fetch, description = description, clock = clock or core.now }, Provider)
end

-- Resolves the chain once and returns a provider, or nil, err when no
-- source has credentials. `profile` is the loaded profile table (or nil).
function M.resolve(config, profile, profile_name, explicit_profile)
  local clock = config.clock or core.now
  local c = config.credentials
  if type(c) == "function" then
    return M.provider(c, "credentials function", clock)
  elseif type(c) == "table" and getmetatable(c) == Provider then
    return c
  elseif c ~= nil then
    local creds, err = normalize(c, "config.credentials")
    if not creds then return nil, err end
    return M.provider(function() return creds end, "config.credentials", clock)
  end
  if not explicit_profile then
    local creds, err = from_env(config)
    if err then return nil, err end
    if creds then return M.provider(function() return creds end, "environment", clock) end
  end
  local creds, err = from_profile(profile, profile_name, clock)
  if err then return nil, err end
  if creds and getmetatable(creds) == Provider then return creds end
  if creds then return M.provider(function() return creds end, creds.source, clock) end
  return nil, cred_error("NoCredentials", "no credentials found: set config.credentials, "
    .. "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a profile in "
    .. config_mod.credentials_file(config) .. " (profile '" .. profile_name .. "')")
end

return M
