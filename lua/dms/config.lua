-- Configuration: the shared AWS files, the profile, the region and the endpoint.
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
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
-- Option names are lower-cased, as Python's configparser (botocore's reader)
-- does; section names are kept as written. The second result lists the
-- section names in the order they first appear.
function M.parse_ini(text)
  local sections, order, current, parent = {}, {}, nil, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    local indented = line:match("^%s+%S") ~= nil
    local s = trim(line)
    local blank_or_comment = s == "" or s:match("^[#;]")
    if not blank_or_comment and s:match("^%[.*%]$") then
      local name = trim(s:sub(2, -2))
      current = sections[name]
      if not current then
        current = {}
        sections[name] = current
        order[#order + 1] = name
      end
      parent = nil
    elseif not blank_or_comment and current then
      local k, v = s:match("^([^=]+)=(.*)$")
      if k then
        k, v = trim(k):lower(), trim(v)
        if indented and parent then
          current[parent] = current[parent] .. "\n" .. k .. "=" .. v
        else
          current[k] = v
          parent = (v == "") and k or nil
        end
      end
    end
  end
  return sections, order
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

-- The profile name: config.profile, AWS_DEFAULT_PROFILE, AWS_PROFILE (in
-- botocore's order), "default". The second value says whether it was named.
function M.profile_name(config)
  if config.profile then return config.profile, true end
  for _, name in ipairs({ "AWS_DEFAULT_PROFILE", "AWS_PROFILE" }) do
    local env = M.getenv(config, name)
    if env and env ~= "" then return env, true end
  end
  return "default", false
end

-- Splits a string into words as a POSIX shell (and Python's shlex.split) does:
-- blanks separate words, single quotes keep everything, double quotes keep all
-- but the escapes \\ and \", a backslash outside quotes escapes the next
-- character. nil and a message for an unterminated quote.
function M.shell_split(s)
  local words, word, i, n = {}, nil, 1, #s
  while i <= n do
    local ch = s:sub(i, i)
    if ch:match("%s") then
      if word then words[#words + 1] = word; word = nil end
    elseif ch == "'" then
      local close = s:find("'", i + 1, true)
      if not close then return nil, "unterminated single quote" end
      word = (word or "") .. s:sub(i + 1, close - 1)
      i = close
    elseif ch == '"' then
      word = word or ""
      i = i + 1
      while true do
        if i > n then return nil, "unterminated double quote" end
        local c = s:sub(i, i)
        if c == '"' then break end
        if c == "\\" and i < n and s:sub(i + 1, i + 1):match('[\\"]') then
          i = i + 1
          c = s:sub(i, i)
        end
        word = word .. c
        i = i + 1
      end
    elseif ch == "\\" then
      if i == n then return nil, "a backslash ends the string" end
      word = (word or "") .. s:sub(i + 1, i + 1)
      i = i + 1
    else
      word = (word or "") .. ch
    end
    i = i + 1
  end
  if word then words[#words + 1] = word end
  return words
end

-- The shared files as the AWS SDKs (botocore's full_config) read them:
--   profiles              name -> settings: the config file's [profile NAME] and
--                         [default] sections, overlaid key by key by the
--                         credentials file's [NAME] sections
--   config_profiles       the config file's profiles alone
--   credentials_profiles  the credentials file's sections alone
--   sso_sessions          [sso-session NAME] sections of the config file
--   services              [services NAME] sections of the config file
--   config_file, credentials_file   the paths read
--   config_file_read, credentials_file_read   whether each could be read
-- A missing or unreadable file counts as empty. Of two sections naming the
-- same profile ([default] and [profile default]) the later one is kept.
function M.load_shared(config)
  local out = { profiles = {}, config_profiles = {}, credentials_profiles = {}, sso_sessions = {},
                services = {}, config_file = M.config_file(config),
                credentials_file = M.credentials_file(config) }
  local ctext = read_file(out.config_file)
  out.config_file_read = ctext ~= nil
  if ctext then
    local sections, order = M.parse_ini(ctext)
    for _, key in ipairs(order) do
      local values = sections[key]
      local kind, words = nil, M.shell_split(key)
      if key == "default" then
        out.config_profiles.default = values
      elseif words and #words == 2 then
        if key:sub(1, 7) == "profile" then kind = out.config_profiles
        elseif key:sub(1, 11) == "sso-session" then kind = out.sso_sessions
        elseif key:sub(1, 8) == "services" then kind = out.services end
        if kind then kind[words[2]] = values end
      end
    end
  end
  for name, values in pairs(out.config_profiles) do
    local copy = {}
    for k, v in pairs(values) do copy[k] = v end
    out.profiles[name] = copy
  end
  local cred_text = read_file(out.credentials_file)
  out.credentials_file_read = cred_text ~= nil
  if cred_text then
    local sections = M.parse_ini(cred_text)
    for name, values in pairs(sections) do
      out.credentials_profiles[name] = values
      local merged = out.profiles[name] or {}
      for k, v in pairs(values) do merged[k] = v end
      out.profiles[name] = merged
    end
  end
  return out
end

-- The endpoint_url a [services NAME] section sets for one service (its
-- lower-case, underscored service id: "database_migration_service", "sts",
-- "sso"), for the profile's `services = NAME`.
function M.service_endpoint(shared, profile, service)
  local services = profile and profile.services and shared.services[profile.services]
  local block = services and services[service]
  return type(block) == "string" and block:match("\nendpoint_url=([^\n]+)") or nil
end

-- The merged settings of a profile (see load_shared), with
-- service_endpoint_url set from its [services] section; nil when neither
-- file has the profile. `shared` is load_shared's result (read when absent).
function M.load_profile(config, name, shared)
  shared = shared or M.load_shared(config)
  local profile = shared.profiles[name]
  if not profile then return nil end
  local out = {}
  for k, v in pairs(profile) do out[k] = v end
  out.service_endpoint_url = M.service_endpoint(shared, profile, "database_migration_service")
  return out
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
-- when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, or else the profile's
-- ignore_configured_endpoint_urls, is "true" as botocore reads it), else the
-- AWS endpoint rules. Returns url, or nil and a message.
function M.endpoint(config, region, profile)
  local url = config.endpoint
  local ignore = M.getenv(config, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
  if ignore == nil and profile then ignore = profile.ignore_configured_endpoint_urls end
  if not url and not (type(ignore) == "string" and ignore:lower() == "true") then
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
