-- The AWS SDK "standard" retry mode.
--
--   attempts   max_attempts (default 3) in all, first included
--   delay      random(0, 1) * min(2 ^ (attempt - 1), 20) seconds
--   quota      500 tokens per client; a retry costs 5 (10 after a timeout);
--              a success gives back what its retries cost, or 1 token
--
-- One exception: an operation marked unsafe_retry in the model
-- (StartReplication, StopReplication) is never sent again when the outcome of
-- an attempt is unknown (timeout after sending, 5xx, lost connection): the
-- caller describes the replication and decides.
local math_min, math_random, setmetatable = math.min, math.random, setmetatable

local is_timeout = require("dms.errors").is_timeout

local M = {}

M.INITIAL_TOKENS = 500
M.RETRY_COST = 5
M.TIMEOUT_RETRY_COST = 10
M.NO_RETRY_INCREMENT = 1
M.MAX_BACKOFF = 20

local Policy = {}
Policy.__index = Policy

function M.new(opts)
  opts = opts or {}
  local max_attempts = opts.max_attempts or 3
  if type(max_attempts) ~= "number" or max_attempts < 1 or max_attempts % 1 ~= 0 then
    return nil, "retry.max_attempts must be a positive integer"
  end
  if opts.mode and opts.mode ~= "standard" then
    return nil, "retry.mode must be \"standard\""
  end
  return setmetatable({
    max_attempts = max_attempts,
    tokens = M.INITIAL_TOKENS,
    random = opts.random or math_random,
    max_backoff = opts.max_backoff or M.MAX_BACKOFF,
  }, Policy)
end


-- Decides after a failed attempt. Returns delay (seconds) to retry, or nil
-- and the reason not to. `attempt` is the number of attempts made so far;
-- `unsafe` says the operation must not be re-sent on an unknown outcome.
-- On a retry the second value is the token cost to give back on success.
function Policy:decide(err, attempt, unsafe)
  if not err.retryable then return nil, "not retryable" end
  if unsafe and err.outcome_unknown then return nil, "outcome unknown" end
  if attempt >= self.max_attempts then return nil, "attempts exhausted" end
  local cost = is_timeout(err) and M.TIMEOUT_RETRY_COST or M.RETRY_COST
  if self.tokens < cost then return nil, "retry quota exhausted" end
  self.tokens = self.tokens - cost
  local delay = self.random() * math_min(2 ^ (attempt - 1), self.max_backoff)
  return delay, cost
end

-- After a success: give back what the call's retries cost, or a token.
function Policy:succeeded(retry_cost)
  local back = (retry_cost and retry_cost > 0) and retry_cost or M.NO_RETRY_INCREMENT
  self.tokens = math_min(M.INITIAL_TOKENS, self.tokens + back)
end

return M
