-- The standard retry policy on its own (the client specs drive it end to end).
local retry = require "dms.retry"
local core = require "dms.core"

local function err(t) t.kind = t.kind or "service"; return core.error(t) end

describe("standard retry mode", function()
  it("backs off rand * min(2^(attempt-1), 20)", function()
    local p = retry.new({ random = function() return 1 end, max_attempts = 10 })
    local e = err({ code = "ThrottlingException", retryable = true })
    local delays = {}
    for attempt = 1, 7 do delays[attempt] = p:decide(e, attempt, false) end
    assert.are.same({ 1, 2, 4, 8, 16, 20, 20 }, delays)
  end)

  it("stops at max_attempts", function()
    local p = retry.new({ max_attempts = 3 })
    local e = err({ code = "ThrottlingException", retryable = true })
    assert.truthy(p:decide(e, 2, false))
    local d, why = p:decide(e, 3, false)
    assert.is_nil(d)
    assert.are.equal("attempts exhausted", why)
  end)

  it("never retries what is not retryable", function()
    local p = retry.new()
    local d, why = p:decide(err({ code = "InvalidResourceStateFault", retryable = false }), 1, false)
    assert.is_nil(d)
    assert.are.equal("not retryable", why)
  end)

  it("does not resend an unsafe operation whose outcome is unknown", function()
    local p = retry.new()
    local e = err({ code = "Timeout", kind = "transport", retryable = true, outcome_unknown = true })
    local d, why = p:decide(e, 1, true)
    assert.is_nil(d)
    assert.are.equal("outcome unknown", why)
    assert.truthy(p:decide(e, 1, false))   -- an idempotent operation is retried
  end)

  it("charges 5 tokens a retry, 10 after a timeout, and refunds on success", function()
    local p = retry.new({ max_attempts = 1000 })
    p:decide(err({ code = "ThrottlingException", retryable = true }), 1, false)
    assert.are.equal(495, p.tokens)
    local _, cost = p:decide(err({ code = "Timeout", kind = "transport", retryable = true }), 1, false)
    assert.are.equal(10, cost)
    assert.are.equal(485, p.tokens)
    p:succeeded(cost)
    assert.are.equal(495, p.tokens)
    p:succeeded(nil)
    assert.are.equal(496, p.tokens)
    for _ = 1, 10 do p:succeeded(nil) end
    assert.are.equal(500, p.tokens)       -- never above the initial quota
    p.tokens = 4
    local d, why = p:decide(err({ code = "ThrottlingException", retryable = true }), 1, false)
    assert.is_nil(d)
    assert.are.equal("retry quota exhausted", why)
  end)

  it("refuses bad settings", function()
    assert.is_nil(retry.new({ max_attempts = 0 }))
    assert.is_nil(retry.new({ max_attempts = 1.5 }))
    assert.is_nil(retry.new({ mode = "adaptive" }))
  end)
end)
