-- Keys in the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a session
-- token in AWS_SECURITY_TOKEN or AWS_SESSION_TOKEN (the first one set, as
-- botocore reads them), AWS_CREDENTIAL_EXPIRATION and AWS_ACCOUNT_ID.
-- Skipped when the profile was chosen explicitly (config.profile), as the
-- AWS SDKs skip it.
local errors = require "dms.errors"

local M = { name = "environment", canonical = "Environment" }

local function nonempty(v) return v ~= nil and v ~= "" and v or nil end

-- The keys as a credentials table; nil when AWS_ACCESS_KEY_ID is not set;
-- nil, err when it is set without a secret key.
function M.read(getenv)
  local ak = nonempty(getenv("AWS_ACCESS_KEY_ID"))
  if not ak then return nil end
  local sk = nonempty(getenv("AWS_SECRET_ACCESS_KEY"))
  if not sk then
    return nil, errors.new("credentials", "IncompleteCredentials",
      "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
  end
  return {
    access_key = ak, secret_key = sk,
    session_token = nonempty(getenv("AWS_SECURITY_TOKEN")) or nonempty(getenv("AWS_SESSION_TOKEN")),
    expiration = nonempty(getenv("AWS_CREDENTIAL_EXPIRATION")),
    account_id = nonempty(getenv("AWS_ACCOUNT_ID")),
  }
end

-- ctx: see dms.credentials. Returns a source, or nil and why it does not apply,
-- or nil and an error.
function M.load(ctx)
  local t, err = M.read(ctx.getenv)
  if err then return nil, err end
  if not t then return nil, "AWS_ACCESS_KEY_ID is not set" end
  -- with AWS_CREDENTIAL_EXPIRATION a refresh reads the environment again
  return { description = "environment", initial = t, fetch = function() return M.read(ctx.getenv) end }
end

return M
