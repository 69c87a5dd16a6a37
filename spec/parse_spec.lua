-- dms.core.parse: responses of the JSON 1.1 protocol into Lua tables, and
-- every form of error body into an error value with its retry flags.
-- luacheck: max line length 160 (request and response bodies are kept on one line)
local core = require "dms.core"
local model = require "dms.model"
local cjson = require "cjson"
local errors = require "dms.errors"

local ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX01"
local T0 = 1795608000 -- 2026-11-25T12:00:00Z

local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

local function ok(op, body, status, headers)
  local r, err = core.parse(model, op, status or 200, headers or {}, body)
  assert(r, err and tostring(err))
  assert.is_nil(err)
  return r
end

local function service_error(status, body, headers, op)
  local r, err = core.parse(model, op or "StartReplication", status, headers or {}, body)
  assert.is_nil(r)
  assert.is_table(err)
  errors.classify(err)     -- core.parse reports; dms.errors gives the retry flags
  assert.are.equal("service", err.kind)
  assert.are.equal(status, err.status)
  return err
end

-- the README's lists
local THROTTLING = {
  "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
  "TooManyRequestsException", "ProvisionedThroughputExceededException",
  "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
  "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
  "EC2ThrottledException",
}
local TRANSIENT_CODES = { "RequestTimeout", "RequestTimeoutException" }
local TRANSIENT_STATUSES = { 500, 502, 503, 504 }

local REPLICATION = {
  ReplicationConfigIdentifier = "orders-cdc",
  ReplicationConfigArn = ARN,
  SourceEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:SRC",
  TargetEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:TGT",
  ReplicationType = "full-load-and-cdc",
  Status = "running",
  StartReplicationType = "start-replication",
  CdcStartPosition = "mysql-bin-changelog.000024:373",
  CdcStopPosition = "server_time:2026-11-26T00:00:00",
  RecoveryCheckpoint = "checkpoint:V1#27#mysql-bin-changelog.000024:373",
  FailureMessages = { "first", "second" },
  IsReadOnly = false,
  CdcStartTime = T0 - 3600,
  ReplicationCreateTime = T0 - 86400.5,
  ReplicationUpdateTime = "2026-11-25T12:00:00Z",
  ReplicationLastStopTime = "2026-11-25T14:00:00.250+02:00",
  ReplicationDeprovisionTime = T0 + 60,
  StopReason = "Stop Reason NORMAL",
  ProvisionData = {
    ProvisionState = "provisioned", ProvisionedCapacityUnits = 16,
    DateProvisioned = T0 - 600, DateNewProvisioningDataAvailable = "2026-11-25T11:00:00Z",
    IsNewProvisioningAvailable = true, ReasonForNewProvisioningData = "load",
  },
  ReplicationStats = {
    FullLoadProgressPercent = 42, ElapsedTimeMillis = "LONG",
    TablesLoaded = 10, TablesLoading = 2, TablesQueued = 3, TablesErrored = 0,
    FreshStartDate = T0 - 500, StartDate = T0 - 400.125, StopDate = "2026-11-25T12:00:01Z",
    FullLoadStartDate = T0 - 300, FullLoadFinishDate = T0 - 100,
  },
  PremigrationAssessmentStatuses = {
    { PremigrationAssessmentRunArn = "arn:aws:dms:us-east-1:123456789012:assessment-run:A",
      PremigrationAssessmentRunCreationDate = T0 - 7200, Status = "passed", FailOnAssessmentFailure = true,
      AssessmentProgress = { IndividualAssessmentCount = 5, IndividualAssessmentCompletedCount = 5 },
      ResultStatistic = { Passed = 4, Failed = 0, Error = 0, Warning = 1, Cancelled = 0, Skipped = 0 } },
  },
}

-- cjson writes 14 significant digits: the long member goes in as text
local function encode(t)
  return (cjson.encode(t):gsub('"LONG"', "123456789012345"))
end

describe("core.parse", function()
  describe("a Replication", function()
    local r

    before_each(function()
      r = ok("StartReplication", encode({ Replication = REPLICATION })).Replication
    end)

    it("keeps strings, booleans and lists", function()
      for _, k in ipairs({ "ReplicationConfigIdentifier", "ReplicationConfigArn", "Status", "StartReplicationType",
                           "CdcStartPosition", "CdcStopPosition", "RecoveryCheckpoint", "StopReason",
                           "ReplicationType", "SourceEndpointArn", "TargetEndpointArn" }) do
        assert.are.equal(REPLICATION[k], r[k], k)
      end
      assert.are.same({ "first", "second" }, r.FailureMessages)
      assert.are.equal(false, r.IsReadOnly)
      assert.are.equal(true, r.ProvisionData.IsNewProvisioningAvailable)
      assert.are.equal("provisioned", r.ProvisionData.ProvisionState)
    end)

    it("turns every timestamp into epoch seconds, numbers and ISO-8601 strings alike", function()
      assert.are.equal(T0 - 3600, r.CdcStartTime)
      assert.are.equal(T0 - 86400.5, r.ReplicationCreateTime)
      assert.are.equal(T0, r.ReplicationUpdateTime)
      assert.are.equal(T0 + 0.25, r.ReplicationLastStopTime)
      assert.are.equal(T0 + 60, r.ReplicationDeprovisionTime)
      assert.are.equal(T0 - 600, r.ProvisionData.DateProvisioned)
      assert.are.equal(T0 - 3600, r.ProvisionData.DateNewProvisioningDataAvailable)
      local s = r.ReplicationStats
      assert.are.equal(T0 - 500, s.FreshStartDate)
      assert.are.equal(T0 - 400.125, s.StartDate)
      assert.are.equal(T0 + 1, s.StopDate)
      assert.are.equal(T0 - 300, s.FullLoadStartDate)
      assert.are.equal(T0 - 100, s.FullLoadFinishDate)
      assert.are.equal(T0 - 7200, r.PremigrationAssessmentStatuses[1].PremigrationAssessmentRunCreationDate)
      assert.is_true(is_integer(r.CdcStartTime))
      assert.is_true(is_integer(r.ReplicationUpdateTime))
    end)

    it("makes integer and long members integers", function()
      local s = r.ReplicationStats
      for k, v in pairs({ FullLoadProgressPercent = 42, ElapsedTimeMillis = 123456789012345, TablesLoaded = 10,
                          TablesLoading = 2, TablesQueued = 3, TablesErrored = 0 }) do
        assert.are.equal(v, s[k], k)
        assert.is_true(is_integer(s[k]), k)
      end
      assert.are.equal(16, r.ProvisionData.ProvisionedCapacityUnits)
      assert.is_true(is_integer(r.ProvisionData.ProvisionedCapacityUnits))
      local p = r.PremigrationAssessmentStatuses[1]
      assert.are.equal(5, p.AssessmentProgress.IndividualAssessmentCompletedCount)
      assert.is_true(is_integer(p.ResultStatistic.Warning))
      if math.type then
        assert.are.equal("123456789012345", string.format("%d", s.ElapsedTimeMillis))
      end
    end)

    it("is the same through StopReplication and DescribeReplications", function()
      local stop = ok("StopReplication", encode({ Replication = REPLICATION })).Replication
      assert.are.same(r, stop)
      local d = ok("DescribeReplications", encode({ Replications = { REPLICATION, REPLICATION }, Marker = "m2" }))
      assert.are.equal("m2", d.Marker)
      assert.are.equal(2, #d.Replications)
      assert.are.same(r, d.Replications[2])
    end)
  end)

  describe("members the model does not know", function()
    it("are kept, at the top and nested", function()
      local r = ok("StartReplication", [[{"Replication":{"Status":"running","NewThing":{"a":1,"b":[1,2,"x"]},
        "ReplicationStats":{"TablesLoaded":1,"RowsPerSecond":12.5}},"Future":"yes"}]])
      assert.are.equal("yes", r.Future)
      assert.are.same({ a = 1, b = { 1, 2, "x" } }, r.Replication.NewThing)
      assert.are.equal(12.5, r.Replication.ReplicationStats.RowsPerSecond)
    end)

    it("lose their JSON nulls too", function()
      local r = ok("StartReplication", '{"Replication":{"NewThing":{"a":null,"b":{"c":null,"d":2}}},"Future":null}')
      assert.are.same({ b = { d = 2 } }, r.Replication.NewThing)
      assert.is_nil(r.Future)
    end)
  end)

  describe("JSON nulls", function()
    it("are dropped at every level", function()
      local r = ok("StartReplication", [[{"Replication":{"Status":"running","CdcStartPosition":null,"CdcStartTime":null,
        "ReplicationStats":{"TablesLoaded":3,"StopDate":null,"FullLoadProgressPercent":null},
        "ProvisionData":null,"FailureMessages":null},"Marker":null}]])
      assert.are.same({ Replication = { Status = "running", ReplicationStats = { TablesLoaded = 3 } } }, r)
      for k, v in pairs(r.Replication) do
        assert.are_not.equal(cjson.null, v, k)
      end
    end)
  end)

  describe("2xx bodies", function()
    it("may be empty or an empty object", function()
      assert.are.same({}, ok("StopReplication", ""))
      assert.are.same({}, ok("StopReplication", "{}"))
      assert.are.same({}, ok("StopReplication", "  {}\n"))
      assert.are.same({ Replication = { Status = "stopping" } }, ok("StopReplication", '{"Replication":{"Status":"stopping"}}', 201))
    end)

    it("keep timestamps that are not dates as they came", function()
      local r = ok("StartReplication", '{"Replication":{"CdcStartTime":"soon","ReplicationCreateTime":"1795608000"}}')
      assert.are.equal("soon", r.Replication.CdcStartTime)
      assert.are.equal(T0, r.Replication.ReplicationCreateTime)
    end)

    it("that are not a JSON object are a MalformedResponse whose outcome is unknown", function()
      for _, b in ipairs({ "<html><body>OK</body></html>", '{"Replication":', "null", "42", '"text"', "[1,2]", " []",
                           '[{"Replication":{}}]', "\0" }) do
        local r, err = core.parse(model, "StartReplication", 200, { ["x-amzn-requestid"] = "rid-9" }, b)
        assert.is_nil(r, b)
        errors.classify(err)
        assert.are.equal("transport", err.kind)
        assert.are.equal("MalformedResponse", err.code)
        assert.are.equal(true, err.outcome_unknown)
        assert.are.equal(true, err.retryable)
        assert.are.equal(200, err.status)
        assert.are.equal("rid-9", err.request_id)
        assert.truthy(tostring(err):find("MalformedResponse", 1, true))
      end
    end)
  end)

  describe("error codes", function()
    local function code_of(body, headers, status)
      return service_error(status or 400, body, headers).code
    end

    it("come from __type in all its forms", function()
      assert.are.equal("InvalidResourceStateFault", code_of('{"__type":"InvalidResourceStateFault","message":"m"}'))
      assert.are.equal("InvalidResourceStateFault", code_of('{"__type":"aws.dms#InvalidResourceStateFault","message":"m"}'))
      assert.are.equal("ThrottlingException", code_of(
        '{"__type":"com.amazon.coral.service#ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.service/","message":"Rate exceeded"}'))
      assert.are.equal("ResourceNotFoundFault", code_of('{"__type":"ResourceNotFoundFault:http://internal.amazon.com/x#y"}'))
      assert.are.equal("AccessDeniedException", code_of('{"__type":"a.b#c#AccessDeniedException"}'))
    end)

    it("come from a code or Code key", function()
      assert.are.equal("InvalidParameterValueException", code_of('{"code":"InvalidParameterValueException","message":"m"}'))
      assert.are.equal("ResourceNotFoundFault", code_of('{"Code":"ResourceNotFoundFault","Message":"m"}'))
      assert.are.equal("ResourceNotFoundFault", code_of('{"code":"aws.dms#ResourceNotFoundFault"}'))
      assert.are.equal("KMSKeyNotAccessibleFault", code_of('{"__type":"KMSKeyNotAccessibleFault","code":"Other"}'))
    end)

    it("come from the x-amzn-errortype header when the body has none", function()
      assert.are.equal("InvalidResourceStateFault", code_of("{}", { ["x-amzn-errortype"] = "InvalidResourceStateFault" }))
      assert.are.equal("ResourceNotFoundFault", code_of("", { ["x-amzn-errortype"] = "ResourceNotFoundFault:http://internal.amazon.com/" }))
      assert.are.equal("AccessDeniedException", code_of("<html></html>", { ["x-amzn-errortype"] = "AccessDeniedException" }, 403))
      assert.are.equal("FromBody", code_of('{"__type":"FromBody"}', { ["x-amzn-errortype"] = "FromHeader" }))
    end)

    it("fall back to the HTTP status", function()
      assert.are.equal("500", code_of("", nil, 500))
      assert.are.equal("502", code_of("<html><body>Bad Gateway</body></html>", nil, 502))
      assert.are.equal("400", code_of("not json", nil, 400))
      assert.are.equal("403", code_of('{"__type":""}', nil, 403))
      assert.are.equal("404", code_of('"just a string"', nil, 404))
    end)
  end)

  describe("error messages", function()
    it("come from message, Message or errorMessage", function()
      assert.are.equal("lower", service_error(400, '{"__type":"X","message":"lower"}').message)
      assert.are.equal("Upper", service_error(400, '{"__type":"X","Message":"Upper"}').message)
      assert.are.equal("lambda", service_error(400, '{"__type":"X","errorMessage":"lambda"}').message)
      assert.are.equal("lower", service_error(400, '{"__type":"X","Message":"Upper","message":"lower"}').message)
    end)

    it("fall back to the reason phrase", function()
      assert.are.equal("Bad Request", service_error(400, '{"__type":"X"}').message)
      assert.are.equal("Bad Request", service_error(400, '{"__type":"X","message":""}').message)
      assert.are.equal("Internal Server Error", service_error(500, "").message)
      assert.are.equal("Service Unavailable", service_error(503, "").message)
      assert.are.equal("Too Many Requests", service_error(429, "").message)
    end)

    it("carry the reason phrase and a short single-line excerpt of a body that is not JSON", function()
      local html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n"
        .. string.rep("<!-- padding -->\n", 100) .. "</body>\n</html>\n"
      local err = service_error(502, html, { ["x-amzn-requestid"] = "rid-502" })
      assert.are.equal("502", err.code)
      assert.truthy(err.message:find("^Bad Gateway"))
      assert.truthy(err.message:find("<title>502 Bad Gateway</title>", 1, true))
      assert.is_nil(err.message:find("[\r\n]"))
      assert.is_true(#err.message < 250, #err.message)
      assert.are.equal("rid-502", err.request_id)
      local line = tostring(err)
      assert.is_nil(line:find("[\r\n]"))
    end)
  end)

  describe("503 with a JSON body", function()
    it("keeps the code and message and may be retried", function()
      local err = service_error(503, '{"__type":"ServiceUnavailable","message":"Service is unavailable"}',
                                { ["x-amzn-requestid"] = "rid-503" })
      assert.are.equal("ServiceUnavailable", err.code)
      assert.are.equal("Service is unavailable", err.message)
      assert.are.equal(true, err.retryable)
      assert.are.equal(false, err.throttling)
      assert.are.equal(true, err.outcome_unknown)
    end)
  end)

  describe("retry flags", function()
    for _, code in ipairs(THROTTLING) do
      it("mark " .. code .. " as throttling", function()
        for _, status in ipairs({ 400, 429 }) do
          local err = service_error(status, cjson.encode({ __type = "aws.dms#" .. code, message = "slow down" }))
          assert.are.equal(code, err.code)
          assert.are.equal(true, err.retryable)
          assert.are.equal(true, err.throttling)
          assert.are.equal(false, err.outcome_unknown)
        end
        local err = service_error(400, "", { ["x-amzn-errortype"] = code })
        assert.are.equal(true, err.throttling)
      end)
    end

    for _, code in ipairs(TRANSIENT_CODES) do
      it("mark " .. code .. " as transient", function()
        local err = service_error(400, cjson.encode({ __type = code, message = "timed out" }))
        assert.are.equal(true, err.retryable)
        assert.are.equal(false, err.throttling)
      end)
    end

    for _, status in ipairs(TRANSIENT_STATUSES) do
      it("mark HTTP " .. status .. " as transient with an unknown outcome", function()
        for _, b in ipairs({ "", "<html>oops</html>", '{"__type":"InternalFailure","message":"x"}',
                             '{"__type":"InvalidResourceStateFault","message":"odd"}' }) do
          local err = service_error(status, b)
          assert.are.equal(true, err.retryable, b)
          assert.are.equal(false, err.throttling, b)
          assert.are.equal(true, err.outcome_unknown, b)
        end
      end)
    end

    it("mark a throttling code on a 5xx as throttling, not as an unknown outcome", function()
      local err = service_error(503, '{"__type":"SlowDown"}')
      assert.are.equal(true, err.retryable)
      assert.are.equal(true, err.throttling)
      assert.are.equal(false, err.outcome_unknown)
    end)

    it("leave other faults alone", function()
      for _, code in ipairs({ "InvalidResourceStateFault", "ResourceNotFoundFault", "AccessDeniedFault",
                              "AccessDeniedException", "InvalidParameterValueException", "ValidationException",
                              "ResourceQuotaExceededFault", "KMSKeyNotAccessibleFault", "InvalidSignatureException",
                              "UnrecognizedClientException", "ThrottlingExceptionNot", "throttling" }) do
        local err = service_error(400, cjson.encode({ __type = code, message = "no" }))
        assert.are.equal(false, err.retryable, code)
        assert.are.equal(false, err.throttling, code)
        assert.are.equal(false, err.outcome_unknown, code)
      end
      local err = service_error(404, "")
      assert.are.equal(false, err.retryable)
      assert.are.equal(false, err.outcome_unknown)
    end)
  end)

  describe("request ids", function()
    it("come from x-amzn-requestid", function()
      local err = service_error(400, '{"__type":"X"}', { ["x-amzn-requestid"] = "4a6e3c2f-0000-4c5e-9c1d-123456789abc" })
      assert.are.equal("4a6e3c2f-0000-4c5e-9c1d-123456789abc", err.request_id)
      assert.is_nil(service_error(400, '{"__type":"X"}', {}).request_id)
      assert.is_nil(service_error(400, '{"__type":"X"}', { ["x-amz-request-id"] = "other" }).request_id)
    end)
  end)

  describe("tostring of an error", function()
    it("gives code, message, HTTP status and request id on one line", function()
      local err = service_error(400, '{"__type":"aws.dms#InvalidResourceStateFault","message":"Replication is in MODIFYING state and cannot start"}',
                                { ["x-amzn-requestid"] = "rid-1" })
      assert.are.equal("service error InvalidResourceStateFault: Replication is in MODIFYING state and cannot start"
                       .. " (HTTP 400, request id rid-1)", tostring(err))
      err.attempts = 3
      assert.are.equal("service error InvalidResourceStateFault: Replication is in MODIFYING state and cannot start"
                       .. " (HTTP 400, request id rid-1, attempts 3)", tostring(err))
    end)

    it("copes with long messages (longer than a luaL_Buffer)", function()
      local m = string.rep("Replication is in MODIFYING state. ", 200)
      local err = service_error(400, cjson.encode({ __type = "InvalidResourceStateFault", message = m }),
                                { ["x-amzn-requestid"] = "rid-2" })
      err.attempts = 2
      for _ = 1, 3 do
        collectgarbage()
        assert.are.equal("service error InvalidResourceStateFault: " .. m .. " (HTTP 400, request id rid-2, attempts 2)",
                         tostring(err))
      end
    end)

    it("stays on one line when the message has line breaks", function()
      local err = service_error(400, '{"__type":"X","message":"first line\r\nsecond\nthird\rfourth"}')
      assert.are.equal("first line\r\nsecond\nthird\rfourth", err.message)
      assert.are.equal("service error X: first line second third fourth (HTTP 400)", tostring(err))
    end)

    it("leaves out what is not known", function()
      local err = service_error(500, "")
      assert.are.equal("service error 500: Internal Server Error (HTTP 500)", tostring(err))
    end)
  end)

  describe("core.error", function()
    it("gives a table the error metatable and a retryable flag", function()
      local e = core.error({ kind = "transport", code = "Timeout", message = "timed out after 60 s" })
      assert.are.equal("dms.error", getmetatable(e).__name)
      assert.are.equal(false, e.retryable)
      assert.are.equal("transport error Timeout: timed out after 60 s", tostring(e))
      local r = core.error({ kind = "service", code = "X", retryable = true, status = 503, request_id = "r" })
      assert.are.equal(true, r.retryable)
      assert.are.equal("service error X (HTTP 503, request id r)", tostring(r))
      assert.are.equal("unknown error ?", tostring(core.error({})))
    end)

    it("refuses what is not a table", function()
      assert.has_error(function() core.error("x") end)
    end)
  end)

  describe("deep responses", function()
    it("do not crash, however deep", function()
      local deep = string.rep('{"a":', 900) .. "1" .. string.rep("}", 900)
      local r = ok("DescribeReplications", '{"Replications":[{"NewThing":' .. deep .. "}]}")
      local t, n = r.Replications[1].NewThing, 0
      while type(t) == "table" do t, n = t.a, n + 1 end
      assert.are.equal(900, n)
      assert.are.equal(1, t)
    end)
  end)
end)
