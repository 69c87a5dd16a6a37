-- The two STS calls of the provider chain, over the query protocol:
--
--   AssumeRole                  signed (SigV4, service "sts") with the source credentials
--   AssumeRoleWithWebIdentity   unsigned: the web identity token is the proof
--
--   local sts = require "dms.credentials.sts"
--   local t, err = sts.assume_role(ctx, { role_arn = arn, session_name = "s", external_id = nil,
--                                         duration_seconds = nil, credentials = source_creds })
--   local t, err = sts.assume_role_with_web_identity(ctx, { role_arn = arn, session_name = "s",
--                                                           token = jwt })
--
-- Both return {AccessKeyId=, SecretAccessKey=, SessionToken=, Expiration=, AccountId=} or
-- nil and an error of kind "credentials" carrying STS's own code (AccessDenied,
-- ExpiredToken, InvalidIdentityToken, ...), status and request id. STS answers
-- XML; it is read with lua-expat (lxp), never by pattern matching. Throttling,
-- 5xx answers and connection failures are tried up to 3 times, as the SDKs'
-- standard retry mode does.
local tostring, pairs, ipairs, pcall = tostring, pairs, ipairs, pcall
local table_concat, table_sort, string_format = table.concat, table.sort, string.format
local math_floor, math_min, math_random = math.floor, math.min, math.random

local core = require "dms.core"
local errors = require "dms.errors"
local http = require "dms.credentials.http"

local M = {
  VERSION = "2011-06-15",
  MAX_ATTEMPTS = 3,
  MAX_RESPONSE_BYTES = 256 * 1024,
}

local function cred_error(code, message, fields)
  return errors.new("credentials", code, message, fields)
end

---------------------------------------------------------------------------
-- XML

-- The text of every element of a small XML document, by its path of element
-- names ("AssumeRoleResponse/AssumeRoleResult/Credentials/AccessKeyId").
-- nil and a message when the document is not well-formed or declares a DTD.
function M.parse_xml(text)
  local ok, lxp = pcall(require, "lxp")
  if not ok then return nil, "lua-expat (the lxp module) is not installed: apt-get install lua-expat" end
  local stack, texts, values, dtd = {}, {}, {}, false
  local parser = lxp.new({
    StartElement = function(_, name)
      stack[#stack + 1] = name
      texts[#stack] = {}
    end,
    EndElement = function()
      values[table_concat(stack, "/")] = table_concat(texts[#stack])
      texts[#stack] = nil
      stack[#stack] = nil
    end,
    CharacterData = function(_, s)
      local t = texts[#stack]
      if t then t[#t + 1] = s end
    end,
    StartDoctypeDecl = function() dtd = true end,
  })
  local res, msg = parser:parse(text)
  if res then res, msg = parser:parse() end
  parser:close()
  if not res then return nil, "not well-formed XML (" .. tostring(msg) .. ")" end
  if dtd then return nil, "the document declares a DTD" end
  return values
end

---------------------------------------------------------------------------
-- the query protocol

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string_format("%%%02X", c:byte()) end))
end

local function form(params)
  local keys = {}
  for k in pairs(params) do keys[#keys + 1] = k end
  table_sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = urlencode(k) .. "=" .. urlencode(params[k]) end
  return table_concat(out, "&")
end

-- Replaces the secrets (and what is derived from them) in a message.
local redact = require("dms.util").redact_text

-- One call; returns the XML values or nil, err.
local function call(ctx, action, params, creds, secrets)
  local url, signing_region = http.endpoint(ctx, "sts", ctx.region)
  if not url then return nil, cred_error("InvalidEndpoint", "STS endpoint: " .. tostring(signing_region)) end
  params.Action, params.Version = action, M.VERSION
  local body = form(params)
  local what = action .. " (" .. url.url .. ")"
  local attempt = 0
  while true do
    attempt = attempt + 1
    local headers = {
      { "Host", url.host_header },
      { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" },
    }
    local signature
    if creds then
      local ok, signed = pcall(core.sign, {
        method = "POST", path = url.path, headers = headers, body = body,
        region = signing_region, service = "sts",
        access_key = creds.access_key, secret_key = creds.secret_key, session_token = creds.session_token,
        time = math_floor(ctx.clock()),
      })
      if not ok then return nil, cred_error("SigningFailed", what .. ": " .. tostring(signed)) end
      for _, h in ipairs(signed.headers) do headers[#headers + 1] = h end
      signature = signed.signature
    end
    headers[#headers + 1] = { "Accept", "text/xml" }
    if ctx.user_agent then headers[#headers + 1] = { "User-Agent", ctx.user_agent } end
    local resp, terr = ctx.http:request({ url = url.url, method = "POST", headers = headers, body = body },
      { connect_timeout = ctx.connect_timeout, timeout = ctx.timeout, max_response_bytes = M.MAX_RESPONSE_BYTES })
    local all_secrets = { signature, creds and creds.secret_key, creds and creds.session_token }
    for _, s in ipairs(secrets or {}) do all_secrets[#all_secrets + 1] = s end
    local err, retryable
    if not resp then
      err = cred_error(terr.code or "HTTPError", what .. ": " .. tostring(terr.message),
        { status = terr.status })
      retryable = terr.retryable
    else
      local values, xerr = M.parse_xml(resp.body or "")
      local request_id = resp.headers and resp.headers["x-amzn-requestid"]
      if resp.status == 200 and values then
        return values, request_id
      end
      if values and values["ErrorResponse/Error/Code"] then
        local code = values["ErrorResponse/Error/Code"]
        err = cred_error(code, what .. ": " .. code .. ": " .. (values["ErrorResponse/Error/Message"] or ""),
          { status = resp.status, request_id = values["ErrorResponse/RequestId"] or request_id })
        retryable = errors.THROTTLING[code] or errors.TRANSIENT[code] or errors.TRANSIENT_STATUS[resp.status]
      elseif resp.status == 200 then
        err = cred_error("MalformedResponse", what .. ": the answer is " .. tostring(xerr),
          { status = resp.status, request_id = request_id })
        retryable = false
      else
        err = cred_error(tostring(resp.status), what .. ": HTTP " .. resp.status
          .. (values and "" or (" with a body that is " .. tostring(xerr))),
          { status = resp.status, request_id = request_id })
        retryable = errors.TRANSIENT_STATUS[resp.status]
      end
    end
    err.message = redact(err.message, all_secrets)
    err.attempts = attempt
    if not retryable or attempt >= M.MAX_ATTEMPTS then return nil, err end
    -- the standard mode's backoff: rand(0,1) * min(2^(attempt-1), 20)
    local random = ctx.random or math_random
    ctx.sleep(random() * math_min(2 ^ (attempt - 1), 20))
  end
end

-- the credentials of an AssumeRole* answer
local function credentials_of(values, prefix, what)
  local c = prefix .. "/Credentials/"
  local t = {
    AccessKeyId = values[c .. "AccessKeyId"], SecretAccessKey = values[c .. "SecretAccessKey"],
    SessionToken = values[c .. "SessionToken"], Expiration = values[c .. "Expiration"],
  }
  for _, k in ipairs({ "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration" }) do
    if not t[k] or t[k] == "" then
      return nil, cred_error("MalformedResponse", what .. ": the answer has no Credentials/" .. k)
    end
  end
  local arn = values[prefix .. "/AssumedRoleUser/Arn"]
  t.AccountId = arn and arn:match("^arn:[^:]+:[^:]*:[^:]*:(%d+):") or nil
  return t
end

-- params: role_arn, session_name, external_id, duration_seconds, credentials (the source's)
function M.assume_role(ctx, p)
  local params = { RoleArn = p.role_arn, RoleSessionName = p.session_name }
  if p.external_id then params.ExternalId = p.external_id end
  if p.duration_seconds then params.DurationSeconds = tostring(p.duration_seconds) end
  local values, err = call(ctx, "AssumeRole", params, p.credentials)
  if not values then return nil, err end
  return credentials_of(values, "AssumeRoleResponse/AssumeRoleResult", "AssumeRole of " .. p.role_arn)
end

-- params: role_arn, session_name, token (the web identity token)
function M.assume_role_with_web_identity(ctx, p)
  local values, err = call(ctx, "AssumeRoleWithWebIdentity",
    { RoleArn = p.role_arn, RoleSessionName = p.session_name, WebIdentityToken = p.token }, nil, { p.token })
  if not values then return nil, err end
  return credentials_of(values, "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult",
    "AssumeRoleWithWebIdentity of " .. p.role_arn)
end

M.form = form
M.redact = redact
return M
