-- A profile's role_arn: AssumeRole signed with the credentials of its
-- source_profile (which may itself assume a role: role chaining) or of its
-- credential_source (Environment, Ec2InstanceMetadata, EcsContainer), with the
-- profile's external_id, role_session_name and duration_seconds.
--
-- As botocore (AssumeRoleProvider): a profile with web_identity_token_file is
-- left to the web identity provider; source_profile and credential_source
-- together are refused; a source profile that leads back to a profile already
-- visited is refused (a loop), except a profile naming itself that also holds
-- static keys; a source profile with static keys, or without a role of its
-- own, gets its credentials from the profile providers (web identity, SSO,
-- static keys, credential_process) without the environment. mfa_serial is
-- refused by name: there is no one to type the code.
local tostring, tonumber, math_floor, ipairs = tostring, tonumber, math.floor, ipairs
local table_concat = table.concat

local errors = require "dms.errors"
local sts = require "dms.credentials.sts"

local M = { name = "assume role" }

local function cred_error(code, message)
  return errors.new("credentials", code, message)
end

local SOURCES = {
  Environment = "dms.credentials.env",
  Ec2InstanceMetadata = "dms.credentials.imds",
  EcsContainer = "dms.credentials.container",
}

function M.applies(settings)
  return settings.role_arn ~= nil and settings.web_identity_token_file == nil
end

local function has_static(settings)
  return settings.aws_access_key_id ~= nil or settings.aws_secret_access_key ~= nil
end

-- the source credentials of a credential_source: a cache, or nil, err
local function from_credential_source(ctx, name, source)
  local provider = require(SOURCES[source])
  local src, why = provider.load(ctx)
  if not src then
    if type(why) == "table" then return nil, why end
    return nil, cred_error("NoCredentials", "profile '" .. name .. "' has credential_source " .. source
      .. ", which found no credentials: " .. tostring(why))
  end
  return ctx.cache(src)
end

-- The source for profile `name` (which has a role): {description, fetch} or
-- nil, err. `visited` lists the profiles already on the way.
function M.source(ctx, name, visited)
  local profiles = ctx.shared.profiles
  local s = profiles[name]
  local role_arn = s.role_arn
  local source_profile, credential_source = s.source_profile, s.credential_source
  if source_profile ~= nil and credential_source ~= nil then
    return nil, cred_error("InvalidProfile", "profile '" .. name .. "' has both source_profile and credential_source")
  end
  if source_profile == nil and credential_source == nil then
    return nil, cred_error("IncompleteCredentials", "profile '" .. name
      .. "' has role_arn but neither source_profile nor credential_source")
  end
  if credential_source ~= nil and not SOURCES[credential_source] then
    return nil, cred_error("InvalidProfile", "the credential_source '" .. credential_source .. "' of profile '"
      .. name .. "' is not valid: use Environment, Ec2InstanceMetadata or EcsContainer")
  end
  if source_profile ~= nil then
    if not profiles[source_profile] then
      return nil, cred_error("InvalidProfile", "the source_profile '" .. source_profile .. "' of profile '"
        .. name .. "' does not exist")
    end
    for _, v in ipairs(visited) do
      if v == source_profile and (source_profile ~= name or not has_static(profiles[source_profile])) then
        local path = {}
        for i, p in ipairs(visited) do path[i] = p end
        path[#path + 1] = source_profile
        return nil, cred_error("SourceProfileLoop", "the source profiles loop: " .. table_concat(path, " -> "))
      end
    end
  end
  if s.mfa_serial ~= nil then
    return nil, cred_error("Unsupported", "profile '" .. name .. "' sets mfa_serial: lua-dms cannot prompt for an"
      .. " MFA code; use a credential_process or temporary keys for MFA-protected roles")
  end

  -- the credentials AssumeRole is signed with
  local source, err
  if credential_source ~= nil then
    source, err = from_credential_source(ctx, name, credential_source)
  else
    visited[#visited + 1] = source_profile
    local src = profiles[source_profile]
    if has_static(src) or not M.applies(src) then
      local found, why = ctx.profile_source(source_profile)
      if not found then
        if type(why) == "table" then return nil, why end
        return nil, cred_error("InvalidProfile", "the source profile '" .. source_profile .. "' of profile '"
          .. name .. "' has no credentials (" .. tostring(why) .. ")")
      end
      source = ctx.cache(found)
    else
      local inner
      inner, err = M.source(ctx, source_profile, visited)
      source = inner and ctx.cache(inner)
    end
  end
  if not source then return nil, err end

  -- botocore passes int(duration_seconds) and ignores a value int() refuses
  local duration = s.duration_seconds and s.duration_seconds:match("^%s*([+-]?%d+)%s*$")
  duration = duration and tonumber(duration)
  local session_name = s.role_session_name
  if session_name == nil then session_name = "lua-dms-session-" .. math_floor(ctx.clock()) end
  return {
    description = "assume role " .. role_arn .. " (profile " .. name .. ")",
    fetch = function()
      local creds, cerr = source:get()
      if not creds then return nil, cerr end
      return sts.assume_role(ctx, { role_arn = role_arn, session_name = session_name,
        external_id = s.external_id, duration_seconds = duration, credentials = creds })
    end,
  }
end

-- p: {name = profile name, settings = merged settings}
function M.load(ctx, p)
  if p.settings.role_arn == nil then return nil, "profile '" .. p.name .. "' has no role_arn" end
  if not M.applies(p.settings) then
    return nil, "profile '" .. p.name .. "' has web_identity_token_file (left to the web identity provider)"
  end
  return M.source(ctx, p.name, { p.name })
end

return M
