-- IAM Identity Center (SSO) profiles: sso_account_id and sso_role_name, with
-- the portal's sso_start_url and sso_region either in the profile (legacy) or
-- in the [sso-session NAME] section it names with sso_session.
--
-- The access token is the one `aws sso login` cached in
-- ~/.aws/sso/cache/<sha1>.json, the sha1 of the session name (sso_session) or
-- of the start URL (legacy), as the AWS CLI names the file. An expired or
-- missing token is an error that says to run `aws sso login`, and nothing is
-- sent; lua-dms does not refresh the token itself. With a valid token,
-- GetRoleCredentials (GET /federation/credentials on the portal,
-- AWS_ENDPOINT_URL_SSO honoured) gives the role's credentials.
local type, tostring, pairs, ipairs, pcall = type, tostring, pairs, ipairs, pcall
local table_concat, string_format = table.concat, string.format

local core = require "dms.core"
local errors = require "dms.errors"
local config_mod = require "dms.config"
local http = require "dms.credentials.http"
local sha1 = require "dms.credentials.sha1"

local M = { name = "sso" }

local function cred_error(code, message, fields)
  return errors.new("credentials", code, message, fields)
end

-- The profile's SSO settings (merged with its sso-session), or nil and why it
-- does not apply, or nil and an error.
function M.settings(ctx, p)
  local s = p.settings
  if s.sso_role_name == nil and s.sso_account_id == nil then
    return nil, "profile '" .. p.name .. "' has no sso_account_id or sso_role_name"
  end
  local out = {}
  for k, v in pairs(s) do out[k] = v end
  local required = { "sso_role_name", "sso_account_id", "sso_start_url", "sso_region" }
  if s.sso_session ~= nil then
    local session = ctx.shared.sso_sessions[s.sso_session]
    if not session then
      return nil, cred_error("InvalidProfile", "profile '" .. p.name .. "' names sso_session '" .. s.sso_session
        .. "', which has no [sso-session " .. s.sso_session .. "] section in " .. ctx.shared.config_file)
    end
    for k, v in pairs(session) do
      if out[k] ~= nil and out[k] ~= v then
        return nil, cred_error("InvalidProfile", "the value of " .. k .. " differs between profile '" .. p.name
          .. "' (" .. tostring(out[k]) .. ") and sso-session '" .. s.sso_session .. "' (" .. tostring(v) .. ")")
      end
      out[k] = v
    end
    required[#required + 1] = "sso_session"
  end
  local missing = {}
  for _, k in ipairs(required) do
    if out[k] == nil then missing[#missing + 1] = k end
  end
  if #missing > 0 then
    return nil, cred_error("InvalidProfile", "profile '" .. p.name .. "' is configured to use SSO but is missing "
      .. table_concat(missing, ", "))
  end
  return out
end

-- The cache file of the token: ~/.aws/sso/cache/<sha1 of the session name or start URL>.json
function M.cache_file(ctx, s)
  local home = ctx.getenv("HOME") or ""
  return home .. "/.aws/sso/cache/" .. sha1.hex(s.sso_session or s.sso_start_url) .. ".json"
end

local function login_hint(p, s)
  return "run `aws sso login --profile " .. p.name .. "`" .. (s.sso_session and
    (" (or --sso-session " .. s.sso_session .. ")") or "")
end

-- The cached access token, or nil and an error; no request is made.
function M.token(ctx, p, s)
  local path = M.cache_file(ctx, s)
  local what = s.sso_session and ("sso-session '" .. s.sso_session .. "'") or ("start URL " .. s.sso_start_url)
  local text = config_mod.read_file(path)
  if not text then
    return nil, cred_error("SSOTokenMissing", "no cached SSO token for " .. what .. " (" .. path .. "): "
      .. login_hint(p, s))
  end
  local ok, doc = pcall(require("cjson").decode, text)
  if not ok or type(doc) ~= "table" or type(doc.accessToken) ~= "string" or type(doc.expiresAt) ~= "string" then
    return nil, cred_error("SSOTokenInvalid", "the cached SSO token " .. path .. " has no accessToken and"
      .. " expiresAt: " .. login_hint(p, s))
  end
  local expires = core.timestamp((doc.expiresAt:gsub("UTC$", "Z")))
  if not expires then
    return nil, cred_error("SSOTokenInvalid", "the cached SSO token " .. path .. " has an expiresAt that is not"
      .. " a time: " .. login_hint(p, s))
  end
  if expires <= ctx.clock() then
    return nil, cred_error("SSOTokenExpired", "the SSO token for " .. what .. " expired at " .. doc.expiresAt
      .. ": " .. login_hint(p, s))
  end
  return doc.accessToken
end

local function urlencode(v)
  return (tostring(v):gsub("[^%w%-%._~]", function(c) return string_format("%%%02X", c:byte()) end))
end

-- GetRoleCredentials: a credentials table or nil, err.
function M.get_role_credentials(ctx, p, s, token)
  local url, why = http.endpoint(ctx, "sso", s.sso_region)
  if not url then return nil, cred_error("InvalidEndpoint", "SSO portal endpoint: " .. tostring(why)) end
  local base = url.url:gsub("/$", "")
  local full = base .. "/federation/credentials?account_id=" .. urlencode(s.sso_account_id)
    .. "&role_name=" .. urlencode(s.sso_role_name)
  local what = "GetRoleCredentials (" .. base .. ", account " .. s.sso_account_id .. ", role "
    .. s.sso_role_name .. ")"
  local resp, terr = ctx.http:request({ url = full, method = "GET", headers = {
      { "Host", url.host_header }, { "Accept", "application/json" }, { "x-amz-sso_bearer_token", token } } },
    { connect_timeout = ctx.connect_timeout, timeout = ctx.timeout, max_response_bytes = 64 * 1024 })
  if not resp then
    return nil, cred_error(terr.code or "HTTPError", what .. ": " .. tostring(terr.message))
  end
  local ok, doc = pcall(require("cjson").decode, resp.body or "")
  if not ok or type(doc) ~= "table" then doc = nil end
  local request_id = resp.headers and resp.headers["x-amzn-requestid"]
  if resp.status ~= 200 then
    local code = resp.headers and resp.headers["x-amzn-errortype"]
    code = code and code:match("^[^:]+") or (doc and (doc.__type or doc.code)) or tostring(resp.status)
    if resp.status == 401 or code == "UnauthorizedException" then
      return nil, cred_error("SSOTokenExpired", what .. ": the portal refused the SSO token (" .. code .. "): "
        .. login_hint(p, s), { status = resp.status, request_id = request_id })
    end
    local message = doc and type(doc.message or doc.Message) == "string" and (doc.message or doc.Message) or ""
    message = require("dms.credentials.sts").redact(message, { token })
    return nil, cred_error(code, what .. ": " .. code .. (message ~= "" and (": " .. message) or ""),
      { status = resp.status, request_id = request_id })
  end
  local rc = doc and doc.roleCredentials
  if type(rc) ~= "table" or type(rc.accessKeyId) ~= "string" or type(rc.secretAccessKey) ~= "string"
     or type(rc.sessionToken) ~= "string" or type(rc.expiration) ~= "number" then
    return nil, cred_error("MalformedResponse", what .. ": the answer has no roleCredentials",
      { status = resp.status, request_id = request_id })
  end
  return { access_key = rc.accessKeyId, secret_key = rc.secretAccessKey, session_token = rc.sessionToken,
           expiration = rc.expiration / 1000, account_id = s.sso_account_id }
end

-- p: {name = profile name, settings = merged settings}
function M.load(ctx, p)
  local s, why = M.settings(ctx, p)
  if not s then return nil, why end
  return {
    description = "sso (account " .. s.sso_account_id .. ", role " .. s.sso_role_name .. ")",
    fetch = function()
      local token, err = M.token(ctx, p, s)
      if not token then return nil, err end
      return M.get_role_credentials(ctx, p, s, token)
    end,
  }
end

return M
