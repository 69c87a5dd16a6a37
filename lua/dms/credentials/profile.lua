-- Static keys of a profile: aws_access_key_id, aws_secret_access_key and a
-- session token (aws_security_token or aws_session_token, the first one
-- present) in the credentials file, or in the config file. The two are
-- different links of the chain: the credentials file's keys come before a
-- credential_process, the config file's after it, as in the AWS SDKs.
local errors = require "dms.errors"

local M = {}

local function static(section, file, name)
  if not section or section.aws_access_key_id == nil then return nil end
  if section.aws_secret_access_key == nil then
    return nil, errors.new("credentials", "IncompleteCredentials", "profile '" .. name .. "' in " .. file
      .. " has aws_access_key_id but no aws_secret_access_key")
  end
  local token = section.aws_security_token
  if token == nil then token = section.aws_session_token end
  return { access_key = section.aws_access_key_id, secret_key = section.aws_secret_access_key,
           session_token = token, account_id = section.aws_account_id }
end

local function provider(name, sections_key, file_key, read_key)
  return {
    name = name,
    -- p: {name = profile name, settings = merged settings}
    load = function(ctx, p)
      local file = ctx.shared[file_key]
      local section = ctx.shared[sections_key][p.name]
      if not ctx.shared[read_key] then return nil, file .. " cannot be read" end
      if not section then return nil, file .. " has no profile '" .. p.name .. "'" end
      local t, err = static(section, file, p.name)
      if err then return nil, err end
      if not t then return nil, "profile '" .. p.name .. "' in " .. file .. " has no aws_access_key_id" end
      local source = name .. " (" .. file .. ", profile " .. p.name .. ")"
      return { description = source, initial = t, fetch = function() return t end }
    end,
  }
end

M.credentials_file = provider("credentials file", "credentials_profiles", "credentials_file",
                              "credentials_file_read")
M.config_file = provider("config file", "config_profiles", "config_file", "config_file_read")

-- `aws login` sessions (login_session) need a DPoP-signed token refresh that
-- lua-dms does not do: such a profile says so instead of being passed over.
M.login = {
  name = "login session",
  load = function(_, p)
    if p.settings.login_session == nil then return nil, "profile '" .. p.name .. "' has no login_session" end
    return nil, errors.new("credentials", "Unsupported", "profile '" .. p.name .. "' uses login_session"
      .. " (aws login), which lua-dms does not support: use an SSO profile, a role or keys")
  end,
}

return M
