-- Container credentials (ECS tasks, EKS Pod Identity): a GET of
-- http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or of
-- $AWS_CONTAINER_CREDENTIALS_FULL_URI, with the Authorization header read
-- from $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (again at every fetch) or
-- $AWS_CONTAINER_AUTHORIZATION_TOKEN.
--
-- As botocore (ContainerMetadataFetcher): a FULL_URI over plain HTTP must
-- name a loopback address or one of the ECS/EKS hosts (169.254.170.2,
-- 169.254.170.23, fd00:ec2::23, localhost); HTTPS may name any host. Each
-- fetch has a 2 s timeout and is tried 3 times, 1 s apart.
local type, tostring, tonumber, pcall, ipairs = type, tostring, tonumber, pcall, ipairs

local errors = require "dms.errors"

local M = {
  name = "container", canonical = "EcsContainer",
  HOST = "169.254.170.2",
  ALLOWED_HOSTS = { ["169.254.170.2"] = true, ["169.254.170.23"] = true, ["fd00:ec2::23"] = true,
                    ["localhost"] = true },
  TIMEOUT = 2, ATTEMPTS = 3, PAUSE = 1,
}

local function cred_error(code, message)
  return errors.new("credentials", code, message)
end

-- a loopback address as Python's ipaddress reads it: 127.0.0.0/8 or ::1
local function is_loopback(host)
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    return a == 127 and b <= 255 and c <= 255 and d <= 255
  end
  local h = host:lower()
  return h == "::1" or h:match("^[0:]*:0*1$") ~= nil
end
M.is_loopback = is_loopback

-- The URL to fetch, from the environment: url, or nil and why not
-- (a string when neither variable is set, an error when the URL is refused).
function M.url(getenv)
  local relative, full = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
  if relative ~= nil then return "http://" .. M.HOST .. relative end
  if full == nil then
    return nil, "neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor AWS_CONTAINER_CREDENTIALS_FULL_URI is set"
  end
  -- the host as Python's urlparse finds it (a query is allowed here)
  local scheme, authority = full:match("^(https?)://([^/?#]+)")
  local host = authority and (authority:match("^%[([%x:.]+)%]") or authority:match("^([^:]+)"))
  if not host or authority:find("@", 1, true) or full:find("[%c%s]") then
    return nil, cred_error("InvalidContainerUri", "AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http(s) URL")
  end
  if scheme == "https" then return full end
  host = host:lower()
  if is_loopback(host) or M.ALLOWED_HOSTS[host] then return full end
  return nil, cred_error("InvalidContainerUri", "AWS_CONTAINER_CREDENTIALS_FULL_URI names host '" .. host
    .. "': over plain HTTP only a loopback address or 169.254.170.2, 169.254.170.23, fd00:ec2::23 or"
    .. " localhost is allowed")
end

-- the Authorization header's value, or nil; nil, err when it cannot be used
local function authorization(getenv)
  local file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
  local token
  if file ~= nil then
    local f = io.open(file, "rb")
    if not f then
      return nil, cred_error("ContainerTokenUnreadable", "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE "
        .. file)
    end
    token = f:read("*a")
    f:close()
  else
    token = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
  end
  if token ~= nil and token:find("[\r\n]") then
    return nil, cred_error("InvalidContainerToken", "the container authorization token contains CR or LF"
      .. " (is there a newline at the end of " .. tostring(file or "AWS_CONTAINER_AUTHORIZATION_TOKEN") .. "?)")
  end
  return token
end

-- One fetch, with its attempts: a credentials table or nil, err.
function M.fetch(ctx, url)
  local last
  for attempt = 1, M.ATTEMPTS do
    local token, terr = authorization(ctx.getenv)
    if terr then return nil, terr end
    local headers = { { "Accept", "application/json" } }
    if token then headers[#headers + 1] = { "Authorization", token } end
    local resp, err = ctx.http:request({ url = url, method = "GET", headers = headers },
      { connect_timeout = M.TIMEOUT, timeout = M.TIMEOUT, max_response_bytes = 64 * 1024 })
    if not resp then
      last = "no answer (" .. tostring(err.code) .. ": " .. tostring(err.message) .. ")"
    elseif resp.status ~= 200 then
      last = "HTTP " .. tostring(resp.status)
    else
      local ok, doc = pcall(require("cjson").decode, resp.body or "")
      if not ok or type(doc) ~= "table" then
        last = "an answer that is not JSON"
      else
        for _, k in ipairs({ "AccessKeyId", "SecretAccessKey", "Token", "Expiration" }) do
          if type(doc[k]) ~= "string" then
            return nil, cred_error("ContainerCredentialsFailed", "the container credentials endpoint " .. url
              .. " answered without " .. k)
          end
        end
        return { access_key = doc.AccessKeyId, secret_key = doc.SecretAccessKey, session_token = doc.Token,
                 expiration = doc.Expiration, account_id = type(doc.AccountId) == "string" and doc.AccountId or nil }
      end
    end
    if attempt < M.ATTEMPTS then ctx.sleep(M.PAUSE) end
  end
  return nil, cred_error("ContainerCredentialsFailed", "the container credentials endpoint " .. url .. " gave "
    .. last .. " (" .. M.ATTEMPTS .. " attempts)")
end

function M.load(ctx)
  local url, why = M.url(ctx.getenv)
  if not url then return nil, why end
  return { description = "container credentials (" .. url .. ")",
           fetch = function() return M.fetch(ctx, url) end }
end

return M
