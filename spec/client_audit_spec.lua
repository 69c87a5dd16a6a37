-- The client against hostile peers and hostile callers: clocks that lie,
-- transports that raise or answer nonsense, answers over the limits, and
-- deadlines. Nothing a call does raises; nothing is sent that should not be.
local dms = require "dms"
local core = require "dms.core"
local emulator = require "support.emulator"
local rawserver = require "support.rawserver"

local KEYS = { access_key = emulator.ACCESS_KEY, secret_key = emulator.SECRET_KEY }
local ARN = emulator.ARN_FULL_LOAD_AND_CDC

describe("client clock", function()
  local emu
  setup(function() emu = emulator.start() end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("follows a server whose clock is behind (Signature not yet current)", function()
    local client = emu:client()
    emu:clock({ skew = -3600 })
    local resp, err = client:describe_replications({})
    assert.is_nil(err)
    assert.are.equal(1, resp.ResponseMetadata.RetryAttempts)
    assert.is_true(math.abs(client.clock_offset + 3600) < 5)
    client:close()
  end)

  it("measures again when the server's clock comes back, instead of failing every call", function()
    local client = emu:client()
    emu:clock({ skew = 3600 })
    assert(client:describe_replications({}))
    assert.is_true(math.abs(client.clock_offset - 3600) < 5)
    emu:clock({ skew = 0 })
    local resp, err = client:describe_replications({})
    assert.is_nil(err)
    assert.are.equal(1, resp.ResponseMetadata.RetryAttempts)
    assert.is_true(math.abs(client.clock_offset) < 5)
    for _ = 1, 3 do
      resp = assert(client:describe_replications({}))
      assert.are.equal(0, resp.ResponseMetadata.RetryAttempts)
    end
    client:close()
  end)

  it("never takes its clock from a nonsense Date", function()
    for _, date in ipairs({ "Mon, 01 Jan 0000 00:00:00 GMT", "Fri, 01 Jan 2100 00:00:00 GMT", "yesterday" }) do
      local srv = rawserver.start({ status = 400, reason = "Bad Request",
        headers = { { "Date", date }, { "Content-Type", "application/x-amz-json-1.1" } },
        body = '{"__type":"InvalidSignatureException","message":"Signature expired: 20261127T000000Z is now '
          .. 'earlier than 20261127T010000Z"}' })
      local client = assert(dms.new({ region = "us-east-1", endpoint = srv.url, credentials = KEYS,
                                      sleep = function() end }))
      local _, err = client:describe_replications({})
      assert.are.equal("InvalidSignatureException", err.code, date)
      assert.are.equal(0, client.clock_offset, date)
      assert.are.equal(1, srv.requests(), date)        -- not retried: nothing to correct with
      client:close()
      srv.stop()
    end
  end)

  it("answers an injected clock that returns no number with an error, before any request", function()
    local clocks = { function() return "now" end, function() return 0 / 0 end, function() error("broken") end }
    for _, bad in ipairs(clocks) do
      local requests = 0
      local client = assert(dms.new({ region = "us-east-1", endpoint = "http://127.0.0.1:9", credentials = KEYS,
        clock = bad, transport = function() requests = requests + 1 end }))
      local ok, resp, err = pcall(client.describe_replications, client, {})
      assert.is_true(ok)
      assert.is_nil(resp)
      assert.are.equal("InvalidClock", err.code)
      assert.are.equal(0, requests)
    end
  end)
end)

describe("client with hostile callers", function()
  local function client_with(transport)
    return assert(dms.new({ region = "us-east-1", endpoint = "http://127.0.0.1:9", credentials = KEYS,
                            transport = transport, sleep = function() end }))
  end

  it("returns an error when a transport raises, and never re-sends a start", function()
    local calls = 0
    local client = client_with(function() calls = calls + 1; error("socket exploded") end)
    local ok, resp, err = pcall(client.start_replication, client, { ReplicationConfigArn = ARN,
      StartReplicationType = "start-replication" })
    assert.is_true(ok)
    assert.is_nil(resp)
    assert.are.equal("TransportFailed", err.code)
    assert.is_true(err.outcome_unknown)
    assert.is_true(err.not_resent)
    assert.are.equal(1, calls)
  end)

  it("returns an error for a transport's answer that is no HTTP answer", function()
    for _, answer in ipairs({ { status = 200.5, headers = {}, body = "{}" }, { status = "200", body = "{}" },
                              { status = 99 }, { status = 200, body = 5 }, { status = 200, headers = "x" }, 42 }) do
      local client = client_with(function() return answer end)
      local ok, resp, err = pcall(client.describe_replications, client, {})
      assert.is_true(ok)
      assert.is_nil(resp)
      assert.are.equal("MalformedResponse", err.code)
    end
  end)

  it("returns an error when a parameter table raises or yields while it is read", function()
    local client = client_with(function() error("must not be reached") end)
    local raising = setmetatable({}, { __index = function() error("no such field") end })
    local ok, resp, err = pcall(client.start_replication, client, { ReplicationConfigArn = ARN,
      StartReplicationType = "start-replication", CdcStartTime = raising })
    assert.is_true(ok)
    assert.is_nil(resp)
    assert.are.equal("validation", err.kind)
    local co = coroutine.wrap(function()
      local yielding = setmetatable({}, { __index = function() return coroutine.yield() end })
      return client:start_replication({ ReplicationConfigArn = ARN, StartReplicationType = "start-replication",
        CdcStartTime = yielding })
    end)
    local r2, e2 = co()
    assert.is_nil(r2)
    assert.are.equal("validation", e2.kind)
  end)

  it("refuses an unknown http_client at dms.new", function()
    local c, err = dms.new({ region = "us-east-1", credentials = KEYS, http_client = "foo" })
    assert.is_nil(c)
    assert.are.equal("InvalidConfig", err.code)
  end)
end)

describe("client answers", function()
  it("says a 502 on a read left nothing unknown, and on a start that it may have reached DMS", function()
    local srv = rawserver.start({ status = 502, reason = "Bad Gateway", body = "<html>bad gateway</html>" })
    local client = assert(dms.new({ region = "us-east-1", endpoint = srv.url, credentials = KEYS,
                                    sleep = function() end }))
    local _, err = client:describe_replications({})
    assert.are.equal("502", err.code)
    assert.is_false(err.outcome_unknown)
    local _, serr = client:start_replication({ ReplicationConfigArn = ARN, StartReplicationType = "start-replication" })
    assert.is_true(serr.outcome_unknown)
    assert.is_true(serr.not_resent)
    client:close()
    srv.stop()
  end)

  it("does not retry an answer whose head is over the limit", function()
    local srv = rawserver.start({ status = 200, big_header = 1024 * 1024, body = "{}" })
    local client = assert(dms.new({ region = "us-east-1", endpoint = srv.url, credentials = KEYS,
                                    sleep = function() end }))
    local _, err = client:describe_replications({})
    assert.are.equal("ResponseTooLarge", err.code)
    assert.is_false(err.retryable)
    assert.are.equal(1, srv.requests())
    client:close()
    srv.stop()
  end)

  it("bounds a whole call, retries included, by opts.timeout", function()
    local srv = rawserver.start({ mode = "hold" })
    local client = assert(dms.new({ region = "us-east-1", endpoint = srv.url, credentials = KEYS,
                                    timeout = { total = 30 } }))
    local t0 = core.monotonic()
    local _, err = client:describe_replications({}, { timeout = 0.5 })
    local took = core.monotonic() - t0
    assert.are.equal("Timeout", err.code)
    assert.is_true(took < 3, took)
    local _, verr = client:describe_replications({}, { timeout = -1 })
    assert.are.equal("InvalidOption", verr.code)
    client:close()
    srv.stop()
  end)
end)

describe("client errors", function()
  it("redact secrets the service echoes in modeled error members too", function()
    local token = "SESSIONTOKEN-" .. string.rep("z", 40)
    local srv = rawserver.start({ status = 400, reason = "Bad Request",
      headers = { { "Content-Type", "application/x-amz-json-1.1" } },
      body = '{"__type":"ResourceAlreadyExistsFault","message":"exists: ' .. token .. '","resourceArn":"'
        .. token .. '"}' })
    local client = assert(dms.new({ region = "us-east-1", endpoint = srv.url, sleep = function() end,
      credentials = { access_key = KEYS.access_key, secret_key = KEYS.secret_key, session_token = token } }))
    local _, err = client:call("CreateReplicationConfig", {
      ReplicationConfigIdentifier = "x", SourceEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:S",
      TargetEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:T", ReplicationType = "cdc",
      ComputeConfig = { MaxCapacityUnits = 2 }, TableMappings = '{"rules":[]}' })
    assert.are.equal("ResourceAlreadyExistsFault", err.code)
    assert.is_table(err.fields)
    assert.are.equal("[redacted]", err.fields.resourceArn)
    assert.is_nil(tostring(err):find(token, 1, true))
    assert.is_nil(err.message:find(token, 1, true))
    client:close()
    srv.stop()
  end)
end)

describe("dms.curl", function()
  it("refuses a URL with a NUL inside, before any request", function()
    local srv = rawserver.start({ status = 200, body = "{}" })
    local h = assert(require("dms.curl").http())
    local resp, err = h:request({ url = srv.url .. "/\0evil", method = "GET" })
    assert.is_nil(resp)
    assert.are.equal("BadRequest", err.code)
    assert.are.equal(0, srv.requests())
    h:close()
    srv.stop()
  end)
end)
