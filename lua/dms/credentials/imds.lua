-- EC2 instance metadata (IMDSv2 only): PUT /latest/api/token, then with that
-- token GET /latest/meta-data/iam/security-credentials/ (the role's name)
-- and GET /latest/meta-data/iam/security-credentials/<role>.
--
-- A deliberate difference from botocore, which falls back to IMDSv1 (GETs
-- without a token) unless AWS_EC2_METADATA_V1_DISABLED is set: no token, no
-- credentials. Settings, as botocore reads them (environment, then profile):
--   AWS_EC2_METADATA_DISABLED=true                   skip this provider (environment only)
--   AWS_EC2_METADATA_SERVICE_ENDPOINT / ec2_metadata_service_endpoint
--   AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE / ec2_metadata_service_endpoint_mode (IPv4 | IPv6),
--   AWS_IMDS_USE_IPV6 / imds_use_ipv6
--   AWS_METADATA_SERVICE_TIMEOUT / metadata_service_timeout         seconds, default 1
--   AWS_METADATA_SERVICE_NUM_ATTEMPTS / metadata_service_num_attempts  default 1
-- The 1 s timeout keeps a laptop, where nothing answers, from waiting long.
local type, tostring, tonumber, pcall, ipairs = type, tostring, tonumber, pcall, ipairs
local math_random = math.random

local errors = require "dms.errors"
local config_mod = require "dms.config"
local http = require "dms.credentials.http"

local M = {
  name = "instance metadata", canonical = "Ec2InstanceMetadata",
  ENDPOINT_IPV4 = "http://169.254.169.254/",
  ENDPOINT_IPV6 = "http://[fd00:ec2::254]/",
  TOKEN_PATH = "latest/api/token",
  TOKEN_TTL = "21600",
  ROLE_PATH = "latest/meta-data/iam/security-credentials/",
  -- botocore's static stability: credentials that expire within this many
  -- seconds (plus 2 to 10 minutes of jitter) have their expiry pushed out
  REFRESH_WINDOW = 15 * 60,
}

local function cred_error(code, message)
  return errors.new("credentials", code, message)
end

-- The settings, or nil and an error.
function M.settings(ctx)
  local s = {}
  local endpoint = http.setting(ctx, "AWS_EC2_METADATA_SERVICE_ENDPOINT", "ec2_metadata_service_endpoint")
  local mode = http.setting(ctx, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ec2_metadata_service_endpoint_mode")
  if mode ~= nil then
    mode = mode:lower()
    if mode ~= "ipv4" and mode ~= "ipv6" then
      return nil, cred_error("InvalidConfig", "the instance metadata endpoint mode '" .. tostring(mode)
        .. "' is neither IPv4 nor IPv6")
    end
  elseif http.is_true(http.setting(ctx, "AWS_IMDS_USE_IPV6", "imds_use_ipv6")) then
    mode = "ipv6"
  end
  if endpoint == nil or endpoint == "" then
    endpoint = mode == "ipv6" and M.ENDPOINT_IPV6 or M.ENDPOINT_IPV4
  end
  if not config_mod.parse_url(endpoint) then
    return nil, cred_error("InvalidConfig", "the instance metadata endpoint '" .. endpoint .. "' is not a URL")
  end
  s.base = endpoint:sub(-1) == "/" and endpoint or (endpoint .. "/")
  s.timeout = tonumber(http.setting(ctx, "AWS_METADATA_SERVICE_TIMEOUT", "metadata_service_timeout")) or 1
  s.attempts = math.max(1, math.floor(tonumber(
    http.setting(ctx, "AWS_METADATA_SERVICE_NUM_ATTEMPTS", "metadata_service_num_attempts")) or 1))
  return s
end

local function request(ctx, s, method, path, headers)
  return ctx.http:request({ url = s.base .. path, method = method, headers = headers },
    { connect_timeout = s.timeout, timeout = s.timeout, max_response_bytes = 64 * 1024 })
end

local function describe(resp, err)
  if not resp then return (err.code == "Timeout" and "no answer in time" or tostring(err.code)) end
  return "HTTP " .. tostring(resp.status)
end

-- GET with the token, tried `attempts` times while the answer is not a
-- 200 with a body (and, for the credentials, JSON): body or nil, why
local function get(ctx, s, path, token, json)
  local why
  for _ = 1, s.attempts do
    local resp, err = request(ctx, s, "GET", path, { { "x-aws-ec2-metadata-token", token } })
    if resp and resp.status == 200 and resp.body ~= "" then
      if not json then return resp.body end
      local ok, doc = pcall(require("cjson").decode, resp.body)
      if ok and type(doc) == "table" then return doc end
      why = "an answer that is not JSON"
    else
      why = describe(resp, err)
    end
  end
  return nil, why
end

-- One fetch: a credentials table (with role_name), or nil and why (a string).
function M.fetch(ctx, s)
  local token, why
  for _ = 1, s.attempts do
    local resp, err = request(ctx, s, "PUT", M.TOKEN_PATH,
      { { "x-aws-ec2-metadata-token-ttl-seconds", M.TOKEN_TTL } })
    if resp and resp.status == 200 then token = resp.body break end
    if resp and (resp.status == 403 or resp.status == 404 or resp.status == 405) then
      return nil, s.base .. " issued no IMDSv2 token (HTTP " .. resp.status .. "); IMDSv1 is not used"
    end
    if resp and resp.status == 400 then return nil, s.base .. " refused the token request (HTTP 400)" end
    why = describe(resp, err)
    if err and err.code == "Timeout" then break end
  end
  if not token or token == "" then
    return nil, s.base .. " issued no IMDSv2 token: " .. tostring(why or "an empty token")
  end
  if token:find("[%c]") then return nil, s.base .. " issued a token with control characters" end
  local role, rwhy = get(ctx, s, M.ROLE_PATH, token, false)
  if not role then return nil, s.base .. " named no instance role: " .. rwhy end
  if role:find("[%c/]") then return nil, s.base .. " named a role that is not a name" end
  local doc, cwhy = get(ctx, s, M.ROLE_PATH .. role, token, true)
  if not doc then return nil, s.base .. " gave no credentials for role " .. role .. ": " .. cwhy end
  for _, k in ipairs({ "AccessKeyId", "SecretAccessKey", "Token", "Expiration" }) do
    if type(doc[k]) ~= "string" then
      return nil, s.base .. " answered for role " .. role .. " without " .. k
        .. (type(doc.Code) == "string" and (" (" .. doc.Code .. ")") or "")
    end
  end
  local t = { access_key = doc.AccessKeyId, secret_key = doc.SecretAccessKey, session_token = doc.Token,
              expiration = doc.Expiration, role_name = role }
  -- static stability, as botocore: credentials about to expire (the service
  -- could not rotate them) are used for a while longer
  local exp = require("dms.core").timestamp(doc.Expiration)
  local now = ctx.clock()
  if exp then
    local offset = M.REFRESH_WINDOW + (ctx.random and math.floor(ctx.random() * 480 + 120) or math_random(120, 600))
    if now >= exp - offset then
      t.expiration = now + offset
      if ctx.logger then
        pcall(ctx.logger, "warn", "instance metadata gave credentials about to expire: using them for a while longer",
          { provider = M.name, expires_in = exp - now, next_refresh_in = offset })
      end
    end
  end
  return t
end

function M.load(ctx)
  local disabled = ctx.getenv("AWS_EC2_METADATA_DISABLED")
  if disabled ~= nil and disabled:lower() == "true" then return nil, "AWS_EC2_METADATA_DISABLED is true" end
  local s, serr = M.settings(ctx)
  if not s then return nil, serr end
  local t, why = M.fetch(ctx, s)
  if not t then return nil, why end
  return {
    description = "instance metadata (role " .. t.role_name .. ")",
    initial = t,
    fetch = function()
      local c, w = M.fetch(ctx, s)
      if not c then return nil, cred_error("InstanceMetadataFailed", "instance metadata: " .. w) end
      return c
    end,
  }
end

return M
