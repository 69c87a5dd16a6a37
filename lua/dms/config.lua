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

-- Parses an AWS shared config/credentials file as botocore reads it (Python's
-- strict RawConfigParser): returns {section = {key = value}} and the section
-- names in the order they appear, or nil and why the file is malformed (a
-- line before the first section, a section or an option given twice, a line
-- that is neither), as botocore answers ConfigParseError for it.
--   * "key = value" or "key: value", the key lower-cased, the value trimmed
--     (a "#" inside a value is part of it);
--   * section names kept as written between the brackets ("[ x ]" is " x ");
--   * lines indented deeper than their option continue its value; a value that
--     starts on the next line is a nested block ("s3 =\n  key = v"), kept as
--     "\nkey=value" lines;
--   * "#" and ";" start a comment line; [DEFAULT] values reach every section.
function M.parse_ini(text)
  local sections, order, seen = {}, {}, {}
  local defaults = {}
  local current, name, key, key_indent = nil, nil, nil, nil
  local lineno = 0
  local function fail(why) return nil, nil, "line " .. lineno .. ": " .. why end
  for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    local line = raw:gsub("\r$", "")
    local value = trim(line)
    local indent = #line:match("^%s*")
    if value:match("^[#;]") then      -- luacheck: ignore 542 (a comment: skipped, no part of a value)
    elseif value == "" then
      if current and key and current[key] then current[key][#current[key] + 1] = "" end
    elseif current and key and indent > key_indent then
      current[key][#current[key] + 1] = value
    else
      key_indent = indent
      local header = value:match("^%[(.+)%]")
      if header then
        name, key = header, nil
        if header == "DEFAULT" then
          current = defaults
        else
          if seen[header] then return fail("section [" .. header .. "] twice") end
          seen[header] = true
          current = {}
          sections[header] = current
          order[#order + 1] = header
        end
      elseif not current then
        return fail("a line before the first [section]")
      else
        local k, v = value:match("^(.-)%s*[=:]%s*(.*)$")
        if not k or k == "" then return fail("neither a [section] nor key = value") end
        k = k:lower()
        if current[k] then return fail("'" .. k .. "' twice in [" .. name .. "]") end
        current[k] = { v }
        key = k
      end
    end
  end
  -- values: lines joined; a nested block ("\nkey = value" lines) normalized
  local function finish(t)
    local out = {}
    for k, lines in pairs(t) do
      local v = table.concat(lines, "\n"):gsub("%s+$", "")
      if v:sub(1, 1) == "\n" then
        local block = {}
        for l in v:gmatch("[^\n]+") do
          if l:match("%S") then
            local nk, nv = l:match("^([^=]*)=(.*)$")
            if not nk then return nil, "'" .. k .. "' holds a nested line without '='" end
            block[#block + 1] = "\n" .. trim(nk) .. "=" .. trim(nv)
          end
        end
        v = table.concat(block)
      end
      out[k] = v
    end
    return out
  end
  local err
  defaults, err = finish(defaults)
  if not defaults then return nil, nil, err end
  for n, t in pairs(sections) do
    local done
    done, err = finish(t)
    if not done then return nil, nil, err end
    for k, v in pairs(defaults) do
      if done[k] == nil then done[k] = v end
    end
    sections[n] = done
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
    if env then return env, true end     -- even empty: botocore then finds no such profile
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
-- A missing or unreadable file counts as empty; a malformed one too, with
-- config_error or credentials_error saying why (botocore's ConfigParseError). Of two sections naming the
-- same profile ([default] and [profile default]) the later one is kept.
function M.load_shared(config)
  local out = { profiles = {}, config_profiles = {}, credentials_profiles = {}, sso_sessions = {},
                services = {}, config_file = M.config_file(config),
                credentials_file = M.credentials_file(config) }
  local ctext = read_file(out.config_file)
  out.config_file_read = ctext ~= nil
  local sections, order, perr
  if ctext then
    sections, order, perr = M.parse_ini(ctext)
    if not sections then
      out.config_error = "Unable to parse config file: " .. out.config_file .. " (" .. perr .. ")"
      order = {}
    end
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
    local csections, _, cperr = M.parse_ini(cred_text)
    if not csections then
      out.credentials_error = "Unable to parse config file: " .. out.credentials_file .. " (" .. cperr .. ")"
      csections = {}
    end
    for name, values in pairs(csections) do
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
  if not profile then return nil, shared end
  local out = {}
  for k, v in pairs(profile) do out[k] = v end
  out.service_endpoint_url = M.service_endpoint(shared, profile, "database_migration_service")
  return out, shared
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
