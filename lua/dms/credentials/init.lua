-- Credentials: the provider chain of the AWS SDKs, with caching and refresh.
--
-- In botocore's order (the first that applies wins, for the life of the client):
--
--   config.credentials     a table, or a function returning one (lua-dms's own)
--   environment            env.lua           (not when config.profile is set)
--   assume role            assume_role.lua   role_arn + source_profile / credential_source
--   web identity           web_identity.lua  AWS_WEB_IDENTITY_TOKEN_FILE or web_identity_token_file
--   sso                    sso.lua           sso_session or legacy sso_start_url profiles
--   credentials file       profile.lua       static keys of ~/.aws/credentials
--   login session          profile.lua       refused by name (aws login)
--   credential_process     process.lua
--   config file            profile.lua       static keys of ~/.aws/config
--   container              container.lua     ECS / EKS Pod Identity
--   instance metadata      imds.lua          EC2, IMDSv2 only
--
-- dms.new does no I/O for credentials: the chain is walked on the first call
-- that needs them. When nothing applies the error (kind "credentials", code
-- NoCredentials) names each provider tried and why it did not apply
-- (err.tried); a provider that applies but fails (an STS AccessDenied, a
-- source profile loop, a malformed answer) returns its own error and stops
-- the chain, as in botocore. Caching and refresh: cache.lua; HTTP: http.lua
-- (cosockets inside nginx); STS: sts.lua.
local type, ipairs, tostring = type, ipairs, tostring
local table_concat = table.concat

local core = require "dms.core"
local errors = require "dms.errors"
local config_mod = require "dms.config"
local cache = require "dms.credentials.cache"

local M = {}

M.normalize = cache.normalize

-- The providers are loaded when a chain is first walked (a client given its
-- credentials never loads them):
--   M.CHAIN          the chain after config.credentials
--   M.PROFILE_CHAIN  what a source_profile's credentials are looked for in
--                    (botocore's profile providers)
local env
local function load_chains()
  env = require "dms.credentials.env"
  local assume_role = require "dms.credentials.assume_role"
  local web_identity = require "dms.credentials.web_identity"
  local sso = require "dms.credentials.sso"
  local profile = require "dms.credentials.profile"
  local process = require "dms.credentials.process"
  local container = require "dms.credentials.container"
  local imds = require "dms.credentials.imds"
  M.CHAIN = { env, assume_role, web_identity, sso, profile.credentials_file, profile.login, process,
              profile.config_file, container, imds }
  M.PROFILE_CHAIN = { web_identity, sso, profile.credentials_file, profile.login, process, profile.config_file }
end
setmetatable(M, { __index = function(_, k)
  if k == "CHAIN" or k == "PROFILE_CHAIN" then
    load_chains()
    return rawget(M, k)
  end
end })

-- A cache over a function (lua-dms's credentials function): refreshed 5
-- minutes before the expiration it returns.
function M.provider(fetch, description, clock)
  return cache.new({ fetch = fetch, description = description, clock = clock or core.now,
                     advisory = 300, mandatory = 300 })
end

-- Walks `chain` for profile p: a source, or nil, err.
local function walk(ctx, chain, p)
  local tried = {}
  for _, prov in ipairs(chain) do
    local source, why
    if prov == env and p.disable_env then
      why = "skipped: the profile was chosen explicitly"
    else
      source, why = prov.load(ctx, p)
    end
    if source then return source end
    if type(why) == "table" then
      why.provider = why.provider or prov.name
      return nil, why
    end
    tried[#tried + 1] = prov.name .. ": " .. tostring(why)
  end
  return nil, table_concat(tried, "; "), tried
end

-- The context every provider reads: the environment, the shared files, the
-- client's region, clock, HTTP and logger.
local function context(config, opts, profile_name, explicit)
  local shared = config_mod.load_shared(config)
  local ctx
  ctx = {
    config = config,
    getenv = function(name) return config_mod.getenv(config, name) end,
    shared = shared,
    profile_name = profile_name,
    explicit_profile = explicit,
    profile = shared.profiles[profile_name] or {},
    region = opts.region,
    clock = opts.clock,
    sleep = opts.sleep,
    random = opts.random,
    logger = opts.logger,
    http = opts.http,
    connect_timeout = opts.connect_timeout,
    timeout = opts.timeout,
    process_timeout = opts.timeout,
    user_agent = opts.user_agent,
  }
  -- a cache over a source (the credentials another provider signs with)
  ctx.cache = function(source)
    if cache.is_cache(source) then return source end
    return cache.new({ fetch = source.fetch, initial = source.initial, description = source.description,
                       clock = ctx.clock, logger = ctx.logger })
  end
  -- a source profile's own credentials: the profile providers, no environment
  ctx.profile_source = function(name)
    local settings = shared.profiles[name] or {}
    return walk(ctx, M.PROFILE_CHAIN, { name = name, settings = settings, disable_env = true })
  end
  return ctx
end

-- Resolves config.credentials or prepares the chain; returns a credentials
-- object (obj:get() -> creds | nil, err; obj:invalidate(); obj:close();
-- obj.description), or nil, err for an invalid config.credentials table.
--   opts: region, clock, sleep, random, logger, connect_timeout, timeout,
--         user_agent, ca_file, insecure, http_client
function M.resolve(config, _, profile_name, explicit_profile, opts)
  opts = opts or {}
  local clock = opts.clock or config.clock or core.now
  local c = config.credentials
  if type(c) == "function" then
    return M.provider(c, "credentials function", clock)
  elseif cache.is_cache(c) then
    return c
  elseif c ~= nil then
    local creds, err = cache.normalize(c, "config.credentials")
    if not creds then return nil, err end
    return cache.new({ description = "config.credentials", clock = clock, initial = creds,
                       fetch = function() return creds end })
  end

  -- the chain's HTTP (and the providers) are made on its first walk
  local http
  local copts = {
    region = opts.region, clock = clock, sleep = opts.sleep or core.sleep, random = opts.random,
    logger = opts.logger, connect_timeout = opts.connect_timeout or 5, timeout = opts.timeout or 30,
    user_agent = opts.user_agent,
  }
  local source
  local chain = cache.new({ description = "credential chain (profile " .. profile_name .. ")", clock = clock,
                            logger = opts.logger })
  chain.fetch = function()
    if not source then
      if not http then
        http = require("dms.credentials.http").new({ ca_file = opts.ca_file, insecure = opts.insecure,
                                                     http_client = opts.http_client })
        copts.http = http
      end
      local ctx = context(config, copts, profile_name, explicit_profile)
      local parse_error = ctx.shared.credentials_error or ctx.shared.config_error
      if parse_error then return nil, errors.new("credentials", "ConfigParseError", parse_error) end
      local found, why, tried = walk(ctx, M.CHAIN, { name = profile_name, settings = ctx.profile,
                                                    disable_env = explicit_profile })
      if not found then
        if type(why) == "table" then return nil, why end
        return nil, errors.new("credentials", "NoCredentials", "no credentials found for profile '"
          .. profile_name .. "'; tried " .. why, { tried = tried })
      end
      source = found
      chain.description = found.description
      if found.initial then
        local t = found.initial
        found.initial = nil
        return t
      end
    end
    return source.fetch()
  end
  chain.close = function() if http then http:close() end end
  return chain
end

return M
