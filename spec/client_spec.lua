-- The client end to end: dms.core over real libcurl against the local DMS
-- endpoint (emulator/), which verifies every signature with its own code.
local cjson = require "cjson"
local dms = require "dms"
local emulator = require "support.emulator"

local ARN = emulator.ARN_FULL_LOAD_AND_CDC

-- A transport that records what the real curl transport sends and receives.
local function recording_transport(opts)
  local inner = require("dms.transport.curl").new(opts or { timeout = 10, connect_timeout = 5 })
  local t = { sent = {}, received = {}, connections = 0 }
  function t.request(_, req)
    t.sent[#t.sent + 1] = req
    local resp, err = inner:request(req)
    if resp then
      t.connections = t.connections + resp.new_connections
      t.received[#t.received + 1] = resp
    end
    return resp, err
  end
  function t.close() inner:close() end
  return t
end

local function header(req, name)
  for _, h in ipairs(req.headers) do
    if h[1]:lower() == name:lower() then return h[2] end
  end
end

describe("client against the local DMS endpoint", function()
  local emu

  setup(function() emu = emulator.start({ speed = 1000 }) end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function()
    emu:reset()
    emu:clear_faults()
    emu:clear_requests()
  end)

  it("starts a replication: the server received exactly what was signed", function()
    local rec = recording_transport()
    local client = emu:client({ transport = rec })
    local resp, err = client:start_replication({
      ReplicationConfigArn = ARN,
      StartReplicationType = "start-replication",
      PremigrationAssessmentSettings = { ResultLocationFolder = "assess", FailOnAssessmentFailure = true },
    })
    assert.is_nil(err)
    assert.are.equal(ARN, resp.Replication.ReplicationConfigArn)
    assert.are.equal("initializing", resp.Replication.Status)
    assert.are.equal("number", type(resp.Replication.ReplicationCreateTime))
    assert.are.equal(0, resp.ResponseMetadata.RetryAttempts)
    assert.truthy(resp.ResponseMetadata.RequestId:match("^%x+%-"))

    local log = emu:requests("StartReplication")
    assert.are.equal(1, #log)
    local got, sent = log[1], rec.sent[1]
    assert.is_true(got.signature_ok)
    assert.are.equal(sent.body, got.raw_body)
    -- every signed header arrived with the value that was signed
    local signed = header(sent, "Authorization"):match("SignedHeaders=([^,]+)")
    assert.are.equal("content-type;host;x-amz-date;x-amz-target", signed)
    local received = {}
    for k, v in pairs(got.headers) do received[k:lower()] = v end
    for name in signed:gmatch("[^;]+") do
      assert.are.equal(header(sent, name), received[name], name)
    end
    assert.are.equal("AmazonDMSv20160101.StartReplication", received["x-amz-target"])
    -- the assessment settings travel as a JSON object string
    local body = cjson.decode(got.raw_body)
    assert.are.same({ ResultLocationFolder = "assess", FailOnAssessmentFailure = true },
                    cjson.decode(body.PremigrationAssessmentSettings))
    rec:close()
  end)

  it("describes with filters and keeps response members as Lua values", function()
    local client = emu:client()
    local resp = assert(client:describe_replications({
      Filters = { { Name = "replication-config-arn", Values = { emulator.ARN_CDC } } } }))
    assert.are.equal(1, #resp.Replications)
    assert.are.equal("created", resp.Replications[1].Status)
    local _, err = client:describe_replications({
      Filters = { { Name = "replication-config-id", Values = { "no-such-config" } } } })
    assert.are.equal("service", err.kind)
    assert.are.equal("ResourceNotFoundFault", err.code)
    assert.are.equal(400, err.status)
    assert.truthy(err.request_id)
    client:close()
  end)

  it("refuses an HTTP method that would inject a header", function()
    local h = assert(require("dms.curl").http())
    local resp, err = h:request({ url = emu.url .. "/_emulator/health",
                                  method = "GET / HTTP/1.1\r\nX-Injected: yes\r\nY:" })
    assert.is_nil(resp)
    assert.are.equal("BadRequest", err.code)
    assert.is_false(err.sent)
    assert.truthy(tostring(err):find("HTTP method", 1, true))
    assert.are.equal(0, #emu:requests())
    h:close()
  end)

  it("calls any operation of the model through client:call", function()
    local client = emu:client()
    local resp = assert(client:call("DescribeReplicationConfigs", {}))
    assert.are.equal(3, #resp.ReplicationConfigs)
    local _, err = client:call("DescribeCertificates", {})
    assert.are.equal("UnknownOperationException", err.code)
    local _, verr = client:call("NoSuchOperation", {})
    assert.are.equal("validation", verr.kind)
    client:close()
  end)

  it("keeps one TCP connection for 1,000 calls", function()
    local rec = recording_transport()
    local client = emu:client({ transport = rec })
    for _ = 1, 1000 do assert(client:describe_replications({ MaxRecords = 20 })) end
    assert.are.equal(1, rec.connections)
    local port = rec.received[1].local_port
    assert.are.equal(port, rec.received[1000].local_port)
    assert.are.equal(1000, #emu:requests("DescribeReplications"))
    rec:close()
  end)

  it("returns validation errors before any network I/O", function()
    local client = emu:client()
    local _, err = client:start_replication({ ReplicationConfigArn = ARN, StartReplicationType = "restart" })
    assert.are.equal("validation", err.kind)
    assert.are.equal("StartReplicationType", err.member)
    _, err = client:start_replication({ ReplicationConfigArn = ARN, StartReplicationType = "start-replication",
      CdcStartTime = 1700000000, CdcStartPosition = "checkpoint:V1#27" })
    assert.are.equal("InvalidParameterCombination", err.code)
    assert.are.equal(0, #emu:requests())
    client:close()
  end)

  describe("retries", function()
    it("retries throttling with jittered backoff and succeeds", function()
      local delays = {}
      local client = emu:client({ sleep = function(s) delays[#delays + 1] = s end,
                                  random = function() return 0.5 end })
      emu:fault({ operation = "DescribeReplications", fault = "throttle", count = 2 })
      local resp = assert(client:describe_replications({}))
      assert.are.equal(2, resp.ResponseMetadata.RetryAttempts)
      assert.are.same({ 0.5 * 1, 0.5 * 2 }, delays)
      assert.are.equal(3, #emu:requests("DescribeReplications"))
      client:close()
    end)

    it("gives up after max_attempts with the last error and the attempt count", function()
      local client = emu:client({ retry = { max_attempts = 2 } })
      emu:fault({ operation = "DescribeReplications", fault = "503", count = 5 })
      local _, err = client:describe_replications({})
      assert.are.equal("ServiceUnavailable", err.code)
      assert.are.equal(2, err.attempts)
      assert.is_true(err.retryable)
      assert.are.equal(2, #emu:requests("DescribeReplications"))
      client:close()
    end)

    it("retries an HTML 502 from a proxy and reports its status as the code", function()
      local client = emu:client()
      emu:fault({ operation = "DescribeReplications", fault = "html502", count = 3 })
      local _, err = client:describe_replications({})
      assert.are.equal("502", err.code)
      assert.are.equal(502, err.status)
      assert.are.equal(3, err.attempts)
      assert.truthy(err.message:find("Bad Gateway", 1, true))
      client:close()
    end)

    it("does not send StartReplication again after a 500: the outcome is unknown", function()
      local client = emu:client()
      emu:fault({ operation = "StartReplication", fault = "500", count = 1 })
      local _, err = client:start_replication({ ReplicationConfigArn = ARN,
                                                StartReplicationType = "start-replication" })
      assert.are.equal("InternalFailure", err.code)
      assert.is_true(err.not_resent)
      assert.truthy(err.message:find("not sent again", 1, true))
      assert.are.equal(1, #emu:requests("StartReplication"))
      client:close()
    end)

    it("does not send StartReplication again when the connection drops after the state change", function()
      local client = emu:client()
      emu:fault({ operation = "StartReplication", fault = "drop_after", count = 1 })
      local _, err = client:start_replication({ ReplicationConfigArn = ARN,
                                                StartReplicationType = "start-replication" })
      assert.are.equal("transport", err.kind)
      assert.are.equal("ConnectionLost", err.code)
      assert.is_true(err.outcome_unknown)
      assert.are.equal(1, #emu:requests("StartReplication"))
      -- the start did happen: describing shows it
      local d = assert(client:describe_replications({
        Filters = { { Name = "replication-config-arn", Values = { ARN } } } }))
      assert.are_not.equal("created", d.Replications[1].Status)
      client:close()
    end)

    it("never lets the HTTP client re-send a start on a kept-alive connection that died", function()
      local client = emu:client()
      assert(client:describe_replications({}))        -- a kept-alive connection now exists
      emu:fault({ operation = "StartReplication", fault = "drop_after", count = 1 })
      local _, err = client:start_replication({ ReplicationConfigArn = ARN,
                                                StartReplicationType = "start-replication" })
      assert.are.equal("ConnectionLost", err.code)
      assert.are.equal(1, #emu:requests("StartReplication"))
      assert(client:describe_replications({}))        -- and calls go on afterwards
      client:close()
    end)

    it("retries StartReplication after throttling: DMS did not act on it", function()
      local client = emu:client()
      emu:fault({ operation = "StartReplication", fault = "throttle", count = 1 })
      local resp = assert(client:start_replication({ ReplicationConfigArn = ARN,
                                                     StartReplicationType = "start-replication" }))
      assert.are.equal(1, resp.ResponseMetadata.RetryAttempts)
      assert.are.equal(2, #emu:requests("StartReplication"))
      client:close()
    end)

    it("retries a dropped DescribeReplications connection", function()
      local client = emu:client()
      emu:fault({ operation = "DescribeReplications", fault = "drop_before", count = 1 })
      local resp = assert(client:describe_replications({}))
      assert.are.equal(1, resp.ResponseMetadata.RetryAttempts)
      client:close()
    end)

    it("times out with the total timeout and does not resend a start", function()
      local client = emu:client({ timeout = { total = 0.3 } })
      emu:fault({ operation = "StartReplication", fault = "delay", seconds = 1.5, count = 1 })
      local t0 = require("dms.core").monotonic()
      local _, err = client:start_replication({ ReplicationConfigArn = ARN,
                                                StartReplicationType = "start-replication" })
      assert.are.equal("Timeout", err.code)
      assert.is_true(err.outcome_unknown)
      assert.is_true(require("dms.core").monotonic() - t0 < 1.4)
      assert.are.equal(1, #emu:requests("StartReplication"))
      client:close()
    end)

    it("caps the response size and aborts the transfer", function()
      local client = emu:client({ max_response_bytes = 64 * 1024 })
      emu:fault({ operation = "DescribeReplications", fault = "oversized", bytes = 1024 * 1024, count = 1 })
      local _, err = client:describe_replications({})
      assert.are.equal("ResponseTooLarge", err.code)
      assert.truthy(err.message:find("65536", 1, true))
      assert.are.equal(1, err.attempts)
      client:close()
    end)

    it("reports a malformed 200 body as a transport error", function()
      local client = emu:client({ retry = { max_attempts = 1 } })
      emu:fault({ operation = "DescribeReplications", fault = "malformed", count = 1 })
      local _, err = client:describe_replications({})
      assert.are.equal("MalformedResponse", err.code)
      client:close()
    end)

    it("reports a truncated body as a lost connection", function()
      local client = emu:client({ retry = { max_attempts = 1 } })
      emu:fault({ operation = "DescribeReplications", fault = "truncated", count = 1 })
      local _, err = client:describe_replications({})
      assert.are.equal("ConnectionLost", err.code)
      client:close()
    end)

    it("corrects its clock from the server's Date after a skew error", function()
      local client = emu:client()
      emu:clock({ skew = 3600 })
      local resp, err = client:describe_replications({})
      assert.is_nil(err)
      assert.are.equal(1, resp.ResponseMetadata.RetryAttempts)
      assert.is_true(math.abs(client.clock_offset - 3600) < 5)
      client:close()
    end)

    it("spends the retry quota and stops retrying when it is empty", function()
      local client = emu:client({ retry = { max_attempts = 3 } })
      client.retry.tokens = 7
      emu:fault({ operation = "DescribeReplications", fault = "503", count = 10 })
      local _, err = client:describe_replications({})
      assert.are.equal(2, err.attempts)      -- one retry (5 tokens), then 2 left
      assert.are.equal(2, client.retry.tokens)
      emu:clear_faults()
      assert(client:describe_replications({}))
      assert.are.equal(3, client.retry.tokens)   -- a success without retries gives back 1
      client:close()
    end)
  end)

  describe("signatures", function()
    it("is refused with a wrong secret and not retried", function()
      local client = emu:client({ credentials = { access_key = emulator.ACCESS_KEY, secret_key = "wrong" } })
      local _, err = client:describe_replications({})
      assert.are.equal("InvalidSignatureException", err.code)
      assert.are.equal(1, err.attempts)
      assert.falsy(tostring(err):find("wrong", 1, true))
      client:close()
    end)

    it("is refused with an unknown access key", function()
      local client = emu:client({ credentials = { access_key = "AKIDUNKNOWN", secret_key = "x" } })
      local _, err = client:describe_replications({})
      assert.are.equal("UnrecognizedClientException", err.code)
      client:close()
    end)

    it("signs the session token of temporary credentials", function()
      local client = emu:client({ credentials = { access_key = "ASIAEXAMPLETEMP",
        secret_key = "tempSecretKeyEXAMPLE", session_token = "FwoGZXIvYXdzEXAMPLETOKEN" } })
      assert(client:describe_replications({}))
      local bad = emu:client({ credentials = { access_key = "ASIAEXAMPLETEMP",
        secret_key = "tempSecretKeyEXAMPLE", session_token = "another-token" } })
      local _, err = bad:describe_replications({})
      assert.are.equal("service", err.kind)
      assert.truthy(err.code == "UnrecognizedClientException" or err.code == "InvalidSignatureException"
                    or err.code == "InvalidClientTokenId", err.code)
      client:close()
      bad:close()
    end)
  end)

  it("keeps secrets out of logs, errors and tostring", function()
    local lines = {}
    local rec = recording_transport()
    local creds = { access_key = "ASIAEXAMPLETEMP", secret_key = "tempSecretKeyEXAMPLE",
                    session_token = "FwoGZXIvYXdzEXAMPLETOKEN" }
    local client = emu:client({ credentials = creds, transport = rec, retry = { max_attempts = 2 },
      logger = function(level, msg, fields)
        local parts = { level, msg }
        for k, v in pairs(fields) do parts[#parts + 1] = k .. "=" .. tostring(v) end
        lines[#lines + 1] = table.concat(parts, " ")
      end })
    emu:fault({ operation = "DescribeReplications", fault = "throttle", count = 2 })
    local _, err = client:describe_replications({})
    assert(client:describe_replications({}))
    emu:fault({ operation = "StartReplication", fault = "500", count = 1 })
    local _, serr = client:start_replication({ ReplicationConfigArn = ARN, StartReplicationType = "start-replication" })
    assert.truthy(#lines >= 3)
    local signatures = {}
    for _, req in ipairs(rec.sent) do
      signatures[#signatures + 1] = header(req, "Authorization"):match("Signature=(%x+)")
    end
    local texts = { tostring(err), tostring(serr), tostring(client) }
    for _, t in ipairs({ err, serr }) do
      for k, v in pairs(t) do texts[#texts + 1] = tostring(k) .. "=" .. tostring(v) end
    end
    for _, l in ipairs(lines) do texts[#texts + 1] = l end
    for _, text in ipairs(texts) do
      for _, secret in ipairs({ creds.secret_key, creds.session_token }) do
        assert.falsy(text:find(secret, 1, true), text)
      end
      for _, sig in ipairs(signatures) do assert.falsy(text:find(sig, 1, true), text) end
    end
    rec:close()
  end)

  it("leaves the session token out of a refused signature's error, which echoes it", function()
    local token = "FwoGZXIvYXdzEXAMPLETOKEN"
    local client = emu:client({ credentials = { access_key = "ASIAEXAMPLETEMP", secret_key = "wrong-secret",
                                                session_token = token } })
    local _, err = client:describe_replications({})
    assert.are.equal("InvalidSignatureException", err.code)
    -- the server did send the canonical request back, token and all
    local log = emu:requests("DescribeReplications")
    assert.are.equal(false, log[#log].signature_ok)
    assert.falsy(tostring(err):find(token, 1, true))
    assert.falsy(err.message:find(token, 1, true))
    assert.truthy(err.message:find("left out", 1, true))
    client:close()
  end)

  it("refuses a connection on a closed port without sending anything", function()
    local client = assert(dms.new({ region = "us-east-1", endpoint = "http://127.0.0.1:1",
      credentials = { access_key = "A", secret_key = "S" }, sleep = function() end }))
    local _, err = client:describe_replications({})
    assert.are.equal("ConnectionError", err.code)
    assert.are.equal(3, err.attempts)
    assert.is_false(err.sent)
    client:close()
  end)
end)
