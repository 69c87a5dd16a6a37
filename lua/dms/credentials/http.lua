-- HTTP for the credential providers, and where their AWS calls go.
--
--   local http = require("dms.credentials.http").new{ ca_file = ..., insecure = false }
--   local resp, err = http:request({ url = url, method = "GET", headers = {{"Accept", "application/json"}} },
--                                  { connect_timeout = 1, timeout = 1, max_response_bytes = 65536 })
--   local url, signing_region = http.endpoint(ctx, "sts", "eu-west-1")
--
-- Inside an nginx request phase the exchange goes through a cosocket
-- (dms.transport.ngx), so a metadata, container, STS or SSO fetch yields
-- instead of blocking the worker; elsewhere through a libcurl handle of its
-- own (dms.curl), kept for the connections' sake.
local type, tostring, setmetatable, pcall, ipairs = type, tostring, setmetatable, pcall, ipairs

local errors = require "dms.errors"
local config_mod = require "dms.config"
local cache = require "dms.credentials.cache"

local M = {
  MAX_RESPONSE_BYTES = 1024 * 1024,
}

local Http = {}
Http.__index = Http

-- opts: ca_file, insecure, http_client (cosockets: "auto" | "builtin" | "resty.http")
function M.new(opts)
  return setmetatable({ opts = opts or {} }, Http)
end

-- req: {url=, method=, headers= {{name, value}...}, body=}
-- limits: {connect_timeout=, timeout= (seconds), max_response_bytes=}
-- -> {status=, headers= {lowercase = value}, body=} | nil, err (a transport error)
function Http:request(req, limits)
  local o = self.opts
  local connect = limits.connect_timeout or 5
  local total = limits.timeout or 30
  local max = limits.max_response_bytes or M.MAX_RESPONSE_BYTES
  if cache.in_cosocket_phase() then
    local ok, mod = pcall(require, "dms.transport.ngx")
    if not ok then return nil, errors.transport("BadRequest", "dms.transport.ngx: " .. tostring(mod), false) end
    local tok, transport = pcall(mod.new, { connect_timeout = connect, timeout = total, max_response_bytes = max,
                                            insecure = o.insecure == true, http_client = o.http_client,
                                            pool = "lua-dms-credentials" })
    if not tok then return nil, errors.transport("BadRequest", tostring(transport), false) end
    return transport:request(req)
  end
  if not self.handle then
    local ok, curl = pcall(require, "dms.curl")
    if not ok then return nil, errors.transport("BadRequest", "dms.curl: " .. tostring(curl), false) end
    local handle, herr = curl.http()
    if not handle then return nil, herr end
    self.handle = handle
  end
  local resp, err = self.handle:request({
    url = req.url, method = req.method, headers = req.headers, body = req.body,
    connect_timeout = connect, timeout = total, max_response_bytes = max,
    ca_file = o.ca_file, insecure = o.insecure == true,
  })
  if not resp then return nil, errors.classify(err) end
  return resp
end

function Http:close()
  if self.handle then
    self.handle:close()
    self.handle = nil
  end
end

---------------------------------------------------------------------------
-- endpoints of the credential services

-- botocore's ensure_boolean: only "true" (any case) is true
local function is_true(v)
  return type(v) == "string" and v:lower() == "true"
end

-- A setting read as botocore reads its config variables: the environment
-- variable first (when set), then the profile's key.
local function setting(ctx, env_name, key)
  local v = ctx.getenv(env_name)
  if v ~= nil then return v end
  return ctx.profile and ctx.profile[key]
end
M.setting = setting
M.is_true = is_true

-- the regions STS answered on its global endpoint before regional endpoints
-- became the default (AWS_STS_REGIONAL_ENDPOINTS=legacy)
local STS_LEGACY_GLOBAL = {}
for _, r in ipairs({ "ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "aws-global",
                     "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
                     "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2" }) do
  STS_LEGACY_GLOBAL[r] = true
end

-- The rules' answer for STS and the SSO portal (those of botocore 1.43).
local function rules_endpoint(ctx, service, region)
  local p = require("dms.endpoint").partition(region)
  if not p then return nil, "no region for " .. service end
  if not region:match("^[%w][%w%-]*$") then return nil, "region '" .. region .. "' is not a valid host label" end
  local fips = is_true(setting(ctx, "AWS_USE_FIPS_ENDPOINT", "use_fips_endpoint"))
  local dual = is_true(setting(ctx, "AWS_USE_DUALSTACK_ENDPOINT", "use_dualstack_endpoint"))
  if fips and not p.supportsFIPS then return nil, "FIPS is enabled but this partition does not support FIPS" end
  if dual and not p.supportsDualStack then
    return nil, "DualStack is enabled but this partition does not support DualStack"
  end
  if service == "sts" then
    local mode = setting(ctx, "AWS_STS_REGIONAL_ENDPOINTS", "sts_regional_endpoints")
    if not fips and not dual and (region == "aws-global" or (mode == "legacy" and STS_LEGACY_GLOBAL[region])) then
      return "https://sts.amazonaws.com", "us-east-1"
    end
    if fips and dual then return "https://sts-fips." .. region .. "." .. p.dualStackDnsSuffix, region end
    if fips then
      if p.name == "aws-us-gov" then return "https://sts." .. region .. ".amazonaws.com", region end
      return "https://sts-fips." .. region .. "." .. p.dnsSuffix, region
    end
    if dual then return "https://sts." .. region .. "." .. p.dualStackDnsSuffix, region end
    return "https://sts." .. region .. "." .. p.dnsSuffix, region
  end
  -- sso: the portal
  local host = fips and "portal.sso-fips." or "portal.sso."
  return "https://" .. host .. region .. "." .. (dual and p.dualStackDnsSuffix or p.dnsSuffix), region
end

-- The URL for a call to `service` ("sts" or "sso") in `region`, as
-- botocore's clients of the same session find it: AWS_ENDPOINT_URL_STS /
-- AWS_ENDPOINT_URL_SSO, AWS_ENDPOINT_URL, the profile's [services] block,
-- the profile's endpoint_url (all ignored when
-- AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the profile's
-- ignore_configured_endpoint_urls is true), else the endpoint rules
-- (regional STS endpoints; AWS_STS_REGIONAL_ENDPOINTS=legacy, FIPS and
-- dual-stack honoured). Returns the parsed URL (dms.config.parse_url) and
-- the signing region, or nil and a message.
function M.endpoint(ctx, service, region)
  local url, signing_region
  if not is_true(setting(ctx, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "ignore_configured_endpoint_urls")) then
    local candidates = { ctx.getenv("AWS_ENDPOINT_URL_" .. service:upper()), ctx.getenv("AWS_ENDPOINT_URL"),
                         ctx.shared and config_mod.service_endpoint(ctx.shared, ctx.profile, service),
                         ctx.profile and ctx.profile.endpoint_url }
    for i = 1, 4 do
      local v = candidates[i]
      if type(v) == "string" and v ~= "" then url = v break end
    end
    signing_region = region
  end
  if not url then
    local why
    url, why = rules_endpoint(ctx, service, region)
    if not url then return nil, why end
    signing_region = why
  end
  local parsed, perr = config_mod.parse_url(url)
  if not parsed then return nil, perr .. ": " .. url end
  return parsed, signing_region
end

return M
