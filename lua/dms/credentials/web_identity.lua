-- Web identity (EKS IRSA, CI systems with OIDC): AssumeRoleWithWebIdentity
-- with the token read from a file, again at every refresh (the file is
-- rotated under us).
--
-- Each setting is read as botocore reads it: the environment first
-- (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME; not when
-- the profile was chosen explicitly), then the profile
-- (web_identity_token_file, role_arn, role_session_name).
local tostring, math_floor = tostring, math.floor

local errors = require "dms.errors"
local sts = require "dms.credentials.sts"

local M = { name = "web identity" }

local ENV = {
  web_identity_token_file = "AWS_WEB_IDENTITY_TOKEN_FILE",
  role_arn = "AWS_ROLE_ARN",
  role_session_name = "AWS_ROLE_SESSION_NAME",
}

local function read_token(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local token = f:read("*a")
  f:close()
  return token
end

-- p: {name = profile name, settings = merged settings, disable_env = bool}
function M.load(ctx, p)
  local function get(key)
    if not p.disable_env then
      local v = ctx.getenv(ENV[key])
      if v ~= nil then return v end
    end
    return p.settings[key]
  end
  local path = get("web_identity_token_file")
  if path == nil or path == "" then
    return nil, (p.disable_env and "" or "AWS_WEB_IDENTITY_TOKEN_FILE is not set and ")
      .. "profile '" .. p.name .. "' has no web_identity_token_file"
  end
  local role_arn = get("role_arn")
  if role_arn == nil or role_arn == "" then
    return nil, errors.new("credentials", "InvalidProfile", "a web identity token file is configured ("
      .. path .. ") but no role: set AWS_ROLE_ARN or the profile's role_arn")
  end
  local session_name = get("role_session_name")
  if session_name == nil then session_name = "lua-dms-session-" .. math_floor(ctx.clock()) end
  return {
    description = "web identity (" .. role_arn .. ")",
    fetch = function()
      local token = read_token(path)
      if not token then
        return nil, errors.new("credentials", "WebIdentityTokenUnreadable",
          "cannot read the web identity token file " .. tostring(path))
      end
      return sts.assume_role_with_web_identity(ctx, { role_arn = role_arn, session_name = session_name,
                                                      token = token })
    end,
  }
end

return M
