-- Configuration: the shared AWS files, the profile, the region and the endpoint.
local type, pairs, tostring = type, pairs, tostring
local io_open, os_getenv = io.open, os.getenv

local M = {}

-- The environment, swappable by tests (config.env = {NAME = value}).
function M.getenv(config, name)
  if config and type(config.env) == "table" then return config.env[name] end
  return os_getenv(name)
end

local function home(config)
  return M.getenv(config, "HOME") or ""
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Parses an AWS shared config/credentials file into {section = {key = value}}.
-- Nested sub-sections (lines indented under "s3 =") are kept as their raw text;
-- comments start with '#' or ';' at the start of a line.
function M.parse_ini(text)
  local sections, current, parent = {}, nil, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    local indented = line:match("^%s+%S") ~= nil
    local s = trim(line)
    local blank_or_comment = s == "" or s:match("^[#;]")
    if not blank_or_comment and s:match("^%[.*%]$") then
      local name = trim(s:sub(2, -2))
      current = sections[name] or {}
      sections[name] = current
      parent = nil
    elseif not blank_or_comment and current then
      local k, v = s:match("^([^=]+)=(.*)$")
      if k then
        k, v = trim(k), trim(v)
        if indented and parent then
          current[parent] = current[parent] .. "\n" .. k .. "=" .. v
        else
          current[k] = v
          parent = (v == "") and k or nil
        end
      end
    end
  end
  return sections
end

-- The whole file, or nil when it cannot be read.
local function read_file(path)
  local f = io_open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

local function expand(config, path)
  if path:sub(1, 2) == "~/" then return home(config) .. path:sub(2) end
  return path
end

function M.credentials_file(config)
  return expand(config, M.getenv(config, "AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")
end

function M.config_file(config)
  return expand(config, M.getenv(config, "AWS_CONFIG_FILE") or "~/.aws/config")
end

-- The profile name: config.profile, AWS_PROFILE, AWS_DEFAULT_PROFILE, "default".
-- The second value says whether it was chosen explicitly.
function M.profile_name(config)
  if config.profile then return config.profile, true end
  local env = M.getenv(config, "AWS_PROFILE") or M.getenv(config, "AWS_DEFAULT_PROFILE")
  if env and env ~= "" then return env, true end
  return "default", false
end

-- The merged settings of a profile: the config file's [profile NAME] (or
-- [default]) overlaid by the credentials file's [NAME]. Files are read once
-- per call; nil when neither file has the profile.
function M.load_profile(config, name)
  local found, out = false, {}
  local ctext = read_file(M.config_file(config))
  if ctext then
    local sections = M.parse_ini(ctext)
    local sec = sections[name == "default" and "default" or ("profile " .. name)]
      or (name == "default" and sections["profile default"]) or nil
    if sec then
      found = true
      for k, v in pairs(sec) do out[k] = v end
      -- services = NAME points at a [services NAME] section whose nested
      -- "database_migration_service =" block may set this service's endpoint_url
      local services = sec.services and sections["services " .. sec.services]
      local block = services and services.database_migration_service
      out.service_endpoint_url = block and block:match("\nendpoint_url=([^\n]+)") or nil
    end
  end
  local cred_text = read_file(M.credentials_file(config))
  if cred_text then
    local sec = M.parse_ini(cred_text)[name]
    if sec then
      found = true
      for k, v in pairs(sec) do out[k] = v end
    end
  end
  return found and out or nil
end

-- Region: config.region, AWS_REGION, AWS_DEFAULT_REGION, then the profile's.
function M.region(config, profile)
  local r = config.region or M.getenv(config, "AWS_REGION") or M.getenv(config, "AWS_DEFAULT_REGION")
  if (not r or r == "") and profile then r = profile.region end
  if r == "" then r = nil end
  return r
end

local function truthy(v)
  if v == nil then return nil end
  if type(v) == "boolean" then return v end
  v = tostring(v):lower()
  return v == "true" or v == "1" or v == "yes"
end

-- The endpoint URL, in the AWS SDKs' order: config.endpoint,
-- AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE, AWS_ENDPOINT_URL, the profile's
-- [services] section, the profile's endpoint_url (all but the first ignored
-- when AWS_IGNORE_CONFIGURE_ENDPOINT_URLS is true), else the AWS endpoint
-- rules. Returns url, or nil and a message.
function M.endpoint(config, region, profile)
  local url = config.endpoint
  if not url and not truthy(M.getenv(config, "AWS_IGNORE_CONFIGURE_ENDPOINT_URLS")) then
    url = M.getenv(config, "AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE")
      or M.getenv(config, "AWS_ENDPOINT_URL")
      or (profile and (profile.service_endpoint_url or profile.endpoint_url))
  end
  if url == "" then url = nil end
  local use_fips = truthy(config.use_fips_endpoint)
  if use_fips == nil then use_fips = truthy(M.getenv(config, "AWS_USE_FIPS_ENDPOINT")) end
  local use_dualstack = truthy(config.use_dualstack_endpoint)
  if use_dualstack == nil then use_dualstack = truthy(M.getenv(config, "AWS_USE_DUALSTACK_ENDPOINT")) end
  return require("dms.endpoint").resolve({ region = region, endpoint = url,
    use_fips = use_fips or false, use_dualstack = use_dualstack or false })
end

-- Splits an endpoint URL into scheme, host, port, path (dms.url parses it);
-- nil and a message when it is not an http(s) URL without user info, query
-- or fragment.
function M.parse_url(url)
  local url_mod = require "dms.url"
  local u, err = url_mod.parse(url)
  if not u then return nil, "endpoint " .. err end
  if u.scheme ~= "http" and u.scheme ~= "https" then
    return nil, "endpoint must start with http:// or https://"
  end
  if u.userinfo then return nil, "endpoint must not contain user info" end
  if u.query or u.fragment then return nil, "endpoint must not have a query or fragment" end
  local host = url_mod.host_literal(u)
  local path = u.path == "" and "/" or u.path
  return {
    scheme = u.scheme, host = host, port = u.port or u.default_port,
    host_header = (u.port and u.port ~= u.default_port) and (host .. ":" .. u.port) or host,
    path = path,
    url = u.scheme .. "://" .. u.authority .. path,
  }
end

return M
