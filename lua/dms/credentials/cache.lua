-- Cached credentials and their refresh.
--
--   local cache = require "dms.credentials.cache"
--   local c = cache.new{ fetch = function() return {access_key=, secret_key=, session_token=,
--                                                   expiration=} end,
--                        description = "instance metadata", clock = core.now, logger = log }
--   local creds, err = c:get()
--
-- Credentials without an expiration are kept for good. Temporary ones are
-- refreshed as the AWS SDKs (botocore) refresh them: from `advisory` seconds
-- before they expire (15 minutes) a refresh is tried and, when it fails, the
-- current credentials are used on; from `mandatory` seconds before (10
-- minutes) callers wait for the refresh. A failed refresh while the current
-- credentials have not expired yet keeps them and logs a warning; once they
-- have expired the failure is the caller's error.
--
-- One refresh at a time: inside an nginx request phase concurrent requests of
-- the worker queue on an ngx.semaphore, and those that waited take the result
-- of the refresh they waited for instead of starting another one. In the
-- advisory window a request that finds a refresh under way does not wait: it
-- signs with the current credentials. Plain Lua runs one call at a time, so
-- there nothing needs a lock.
local type, tostring, tonumber, setmetatable, getmetatable, pcall, ipairs =
      type, tostring, tonumber, setmetatable, getmetatable, pcall, ipairs
local string_rep, math_max = string.rep, math.max

local core = require "dms.core"
local errors = require "dms.errors"

local M = {
  ADVISORY = 15 * 60,   -- botocore's _DEFAULT_ADVISORY_REFRESH_TIMEOUT
  MANDATORY = 10 * 60,  -- botocore's _DEFAULT_MANDATORY_REFRESH_TIMEOUT
  WAIT = 60,            -- longest wait, in seconds, for another request's refresh
}

local function cred_error(code, message, fields)
  return errors.new("credentials", code, message, fields)
end
M.error = cred_error

---------------------------------------------------------------------------
-- credentials values

-- Credentials print without their secrets: the access key is masked too.
local creds_mt = {
  __tostring = function(c)
    local id = c.access_key or "?"
    return "credentials(" .. id:sub(1, 4) .. string_rep("*", math_max(#id - 8, 0)) .. id:sub(-4)
      .. (c.session_token and ", with session token" or "") .. ", from " .. (c.source or "?") .. ")"
  end,
}

-- Checks and copies a credentials table (lua-dms names, or the AWS ones:
-- AccessKeyId, SecretAccessKey, SessionToken/Token, Expiration); returns
-- creds or nil, err. The error never quotes a value.
function M.normalize(t, source)
  if type(t) ~= "table" then
    return nil, cred_error("InvalidCredentials", source .. " did not give a credentials table")
  end
  local ak = t.access_key or t.access_key_id or t.AccessKeyId
  local sk = t.secret_key or t.secret_access_key or t.SecretAccessKey
  local tok = t.session_token or t.SessionToken or t.Token
  if type(ak) ~= "string" or ak == "" or type(sk) ~= "string" or sk == "" then
    return nil, cred_error("InvalidCredentials", source .. " gave no access key and secret key")
  end
  if tok ~= nil and (type(tok) ~= "string" or tok == "") then tok = nil end
  -- the access key and the token travel in headers: no control character
  -- there; the secret only feeds the HMAC (botocore takes a continued value
  -- of the shared files, newline included, as it is): no NUL there
  if sk:find("%z") then
    return nil, cred_error("InvalidCredentials", source .. " gave a secret key with a NUL")
  end
  for _, v in ipairs({ ak, tok or "" }) do
    if v:find("[%c]") then
      return nil, cred_error("InvalidCredentials", source .. " gave a key with control characters")
    end
  end
  local exp = t.expiration
  if exp == nil then exp = t.Expiration end
  if type(exp) == "string" then
    local parsed = core.timestamp(exp)
    if not parsed then
      return nil, cred_error("InvalidCredentials", source .. " gave an expiration that is not an ISO-8601 time")
    end
    exp = parsed
  elseif exp ~= nil and type(exp) ~= "number" then
    return nil, cred_error("InvalidCredentials", source .. " gave an expiration that is neither a time nor a number")
  end
  return setmetatable({ access_key = ak, secret_key = sk, session_token = tok,
                        expiration = tonumber(exp), source = source,
                        account_id = type(t.account_id or t.AccountId) == "string"
                          and (t.account_id or t.AccountId) or nil }, creds_mt)
end

---------------------------------------------------------------------------
-- the semaphore of one cache, in the nginx worker that uses it

-- true inside an nginx phase where cosockets (and semaphore waits) work; the
-- client's own test, read when needed (dms requires this module)
function M.in_cosocket_phase()
  return require("dms").in_cosocket_phase() == true
end

local function semaphore(self)
  if not M.in_cosocket_phase() then return nil end
  if self.sema == nil then
    local ok, mod = pcall(require, "ngx.semaphore")
    self.sema = ok and mod.new(1) or false
  end
  return self.sema or nil
end

---------------------------------------------------------------------------
-- the cache

local Cache = {}
Cache.__index = Cache
Cache.__tostring = function(c) return "dms.credentials(" .. c.description .. ")" end

-- opts: fetch (function() -> creds table | nil, err; may raise), description,
-- clock, logger (function(level, message, fields)), advisory, mandatory
-- (seconds), initial (credentials already fetched, a table for normalize)
function M.new(opts)
  local self = setmetatable({
    fetch = opts.fetch, description = opts.description or "credentials", clock = opts.clock or core.now,
    logger = opts.logger, advisory = opts.advisory or M.ADVISORY, mandatory = opts.mandatory or M.MANDATORY,
    generation = 0, refreshing = false,
  }, Cache)
  -- credentials a provider fetched while the chain was resolved: the first
  -- "refresh" takes them instead of fetching again
  self.initial = opts.initial
  return self
end

function M.is_cache(x)
  return getmetatable(x) == Cache
end

function Cache:log(level, message, fields)
  if self.logger then pcall(self.logger, level, message, fields or {}) end
end

-- "fresh", "advisory" (refresh, but these still serve), "mandatory" (refresh
-- first) or "missing"
function Cache:state(now)
  local c = self.current
  if not c then return "missing" end
  if not c.expiration then return "fresh" end
  local left = c.expiration - now
  if left >= self.advisory then return "fresh" end
  if left >= self.mandatory then return "advisory" end
  return "mandatory"
end

local function usable(c, now)
  return c ~= nil and (not c.expiration or c.expiration > now)
end

-- One refresh; the caller holds the lock (if any). Returns creds or nil, err.
function Cache:refresh(state)
  local ok, t, ferr
  if self.initial then
    ok, t, self.initial = true, self.initial, nil
  else
    ok, t, ferr = pcall(self.fetch)
  end
  local now = self.clock()
  local creds, err
  if not ok then
    err = cred_error("ProviderError", self.description .. " failed: " .. tostring(t))
  elseif not t then
    err = ferr
    if type(err) ~= "table" then
      err = cred_error("NoCredentials", self.description .. " returned no credentials"
        .. (err and (": " .. tostring(err)) or ""))
    end
  else
    creds, err = M.normalize(t, t.source or self.description)
    if creds and creds.expiration and creds.expiration <= now then
      creds, err = nil, cred_error("ExpiredCredentials", "the credentials " .. self.description
        .. " returned have already expired")
    end
  end
  self.generation = self.generation + 1
  if creds then
    self.current, self.last_error = creds, nil
    return creds
  end
  self.last_error = err
  local c = self.current
  if usable(c, now) then
    self:log("warn", "refreshing credentials failed; the current ones are used until they expire",
      { provider = self.description, window = state, code = err.code, message = err.message,
        expires_in = c.expiration and (c.expiration - now) or nil })
    return c
  end
  return nil, err
end

-- creds | nil, err
function Cache:get()
  local now = self.clock()
  local state = self:state(now)
  if state == "fresh" then return self.current end
  local sema = semaphore(self)
  if not sema then return self:refresh(state) end
  -- a refresh is under way in another request of this worker
  if self.refreshing and state == "advisory" then return self.current end
  local generation = self.generation
  local ok, werr = sema:wait(M.WAIT)
  if not ok then
    if usable(self.current, self.clock()) then return self.current end
    return nil, cred_error("RefreshTimeout", "waited " .. M.WAIT .. " s for " .. self.description
      .. " to refresh: " .. tostring(werr))
  end
  if self.generation ~= generation then
    -- the refresh we waited for is done: take its outcome
    sema:post(1)
    now = self.clock()
    if usable(self.current, now) then return self.current end
    return nil, self.last_error or cred_error("NoCredentials", self.description .. " has no credentials")
  end
  self.refreshing = true
  local rok, creds, err = pcall(self.refresh, self, state)
  self.refreshing = false
  sema:post(1)
  if not rok then
    return nil, cred_error("ProviderError", self.description .. " failed: " .. tostring(creds))
  end
  return creds, err
end

-- Drops the cached credentials: the next get() fetches.
function Cache:invalidate()
  self.current = nil
end

return M
