-- One classification of error codes, read by the retry policy, the workflow
-- and both transports.
--
-- dms.core reports what it saw and nothing more: a service error carries
-- kind "service", code, message, status and request_id (core.parse), and for
-- an error the model defines, its members in `fields`; a failed
-- HTTP exchange carries kind "transport", code, message and `sent` (the
-- request started to go out). classify() adds what the policy reads:
--
--   retryable        the standard retry mode may send it again
--   throttling       the service asked us to slow down
--   outcome_unknown  the request may have been acted on (it went out and no
--                    answer says what happened)
--
-- The codes below are those of the AWS SDKs' standard retry mode.
local type, pairs, ipairs = type, pairs, ipairs

local core = require "dms.core"

local M = {}

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- a service asking us to slow down
M.THROTTLING = set {
  "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
  "TooManyRequestsException", "ProvisionedThroughputExceededException",
  "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
  "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
  "EC2ThrottledException",
}

-- a service failing for a while
M.TRANSIENT = set {
  "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure", "ServiceUnavailable",
}
M.TRANSIENT_STATUS = { [500] = true, [502] = true, [503] = true, [504] = true }

-- a retry after these costs more of the retry quota
M.TIMEOUT = set { "Timeout", "RequestTimeout", "RequestTimeoutException" }

-- Transport failures, by code: may it be sent again, and is its outcome
-- unknown ("sent": unknown once the request started to go out).
M.TRANSPORT = {
  Timeout           = { retryable = true,  unknown = "sent" },
  ConnectionError   = { retryable = true,  unknown = false },    -- no connection: nothing went out
  TLSError          = { retryable = false, unknown = false },
  ConnectionLost    = { retryable = true,  unknown = true },     -- sent, the answer lost or cut
  ResponseTooLarge  = { retryable = false, unknown = true },
  MalformedResponse = { retryable = true,  unknown = true },     -- an answer, but not one we can read
  HTTPError         = { retryable = true,  unknown = "sent" },
  TransportFailed   = { retryable = true,  unknown = "sent" },   -- a transport of the caller's raised
  BadRequest        = { retryable = false, unknown = false },
  OutOfMemory       = { retryable = false, unknown = false },
}

function M.is_throttling(code)
  return M.THROTTLING[code] == true
end

function M.is_timeout(err)
  return type(err) == "table" and M.TIMEOUT[err.code] == true
end

-- Sets retryable, throttling and outcome_unknown on `err` (in place) from its
-- kind, code, status and sent; returns err.
function M.classify(err)
  if err.kind == "service" then
    local throttling = M.THROTTLING[err.code] == true
    local status = err.status
    err.throttling = throttling
    err.retryable = throttling or M.TRANSIENT[err.code] == true or M.TRANSIENT_STATUS[status] == true
    -- a 5xx leaves unknown whether the request took effect
    err.outcome_unknown = type(status) == "number" and status >= 500 and not throttling
  elseif err.kind == "transport" then
    local t = M.TRANSPORT[err.code] or M.TRANSPORT.HTTPError
    err.throttling = false
    err.retryable = t.retryable
    if t.unknown == "sent" then err.outcome_unknown = err.sent == true else err.outcome_unknown = t.unknown end
  end
  return err
end

-- An error value: {kind=, code=, message=, ...fields} with the error metatable.
function M.new(kind, code, message, fields)
  local e = { kind = kind, code = code, message = message }
  for k, v in pairs(fields or {}) do e[k] = v end
  return core.error(e)
end

-- A classified transport error; `sent` says the request started to go out.
function M.transport(code, message, sent, fields)
  local e = M.new("transport", code, message, fields)
  e.sent = sent == true
  return M.classify(e)
end

return M
