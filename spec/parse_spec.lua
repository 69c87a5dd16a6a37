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

local function ok(op, body, status, headers, m)
  local r, err = core.parse(m or model, op, status or 200, headers or {}, body)
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
  return (cjson.encode(t):gsub('"LONG"', "1234567890123456789"))
end

-- a long beyond 2^53: an integer on Lua 5.3+, an int64 cdata on LuaJIT
local function exact(v)
  if math.type then return string.format("%d", v) end
  return (tostring(v):gsub("LL$", ""))
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
      for k, v in pairs({ FullLoadProgressPercent = 42, TablesLoaded = 10,
                          TablesLoading = 2, TablesQueued = 3, TablesErrored = 0 }) do
        assert.are.equal(v, s[k], k)
        assert.is_true(is_integer(s[k]), k)
      end
      assert.are.equal("1234567890123456789", exact(s.ElapsedTimeMillis))
      assert.are.equal(16, r.ProvisionData.ProvisionedCapacityUnits)
      assert.is_true(is_integer(r.ProvisionData.ProvisionedCapacityUnits))
      local p = r.PremigrationAssessmentStatuses[1]
      assert.are.equal(5, p.AssessmentProgress.IndividualAssessmentCompletedCount)
      assert.is_true(is_integer(p.ResultStatistic.Warning))
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

  describe("members the model does not define", function()
    it("are dropped, at the top and nested, as botocore drops them", function()
      local r = ok("StartReplication", [[{"Replication":{"Status":"running","NewThing":{"a":1,"b":[1,2,"x"]},
        "ReplicationStats":{"TablesLoaded":1,"RowsPerSecond":12.5}},"Future":"yes"}]])
      assert.are.same({ Replication = { Status = "running", ReplicationStats = { TablesLoaded = 1 } } }, r)
    end)

    it("are read through, however deep, and must still be JSON", function()
      local deep = string.rep('{"a":[', 400) .. "1" .. string.rep("]}", 400)
      assert.are.same({ Marker = "m" }, ok("DescribeReplications", '{"Future":' .. deep .. ',"Marker":"m"}'))
      local r, err = core.parse(model, "DescribeReplications", 200, {}, '{"Future":{"a":tru},"Marker":"m"}')
      assert.is_nil(r)
      assert.are.equal("MalformedResponse", err.code)
    end)

    it("make the whole answer of an operation without output", function()
      local m = { operations = { Op = {} }, shapes = {} }
      assert.are.same({}, select(1, core.parse(m, "Op", 200, {}, '{"foo":true,"bar":[1,2]}')))
      assert.are.same({}, select(1, core.parse(m, "Op", 200, {}, "")))
      assert.is_nil(core.parse(m, "Op", 200, {}, "[1]"))
    end)
  end)

  describe("shapes DMS does not use", function()
    local M = {
      operations = { Op = { output = "Out" } },
      shapes = {
        Out = { type = "structure", members = { Doc = "Document", U = "Union", D = "Double", F = "Float", L = "Long",
                                                I = "Iso", H = "Http", T = "Epoch", B = "Blob", List = "List", Map = "Map" } },
        Document = { type = "structure", members = {}, document = true },
        Union = { type = "structure", members = { A = "String", B = "String" }, union = true },
        Double = { type = "double" }, Float = { type = "float" }, Long = { type = "long" },
        Iso = { type = "timestamp", format = "iso8601" }, Http = { type = "timestamp", format = "rfc822" },
        Epoch = { type = "timestamp" }, Blob = { type = "blob" }, String = { type = "string" },
        List = { type = "list", member = "String" }, Map = { type = "map", key = "String", value = "Long" },
      },
    }
    local function parsed(body) return ok("Op", body, 200, {}, M) end

    it("keep documents as they came, JSON nulls as cjson.null", function()
      local r = parsed('{"Doc":{"a":[1,null,{"b":null}],"c":"x"}}')
      assert.are.same({ a = { 1, cjson.null, { b = cjson.null } }, c = "x" }, r.Doc)
      local deep = string.rep('{"a":', 900) .. "1" .. string.rep("}", 900)
      local t, n = parsed('{"Doc":' .. deep .. "}").Doc, 0
      while type(t) == "table" do t, n = t.a, n + 1 end
      assert.are.equal(900, n)
      assert.are.equal(1, t)
    end)

    it("read NaN and the infinities of doubles and floats", function()
      local r = parsed('{"D":"NaN","F":"-Infinity"}')
      assert.is_true(r.D ~= r.D)
      assert.are.equal(-math.huge, r.F)
      assert.are.equal(math.huge, parsed('{"D":"Infinity"}').D)
      assert.are.equal(123456789.12345679, parsed('{"D":123456789.12345679}').D)
    end)

    it("read longs exactly", function()
      assert.are.equal("1234567890123456789", exact(parsed('{"L":1234567890123456789}').L))
      assert.are.equal("-9223372036854775808", exact(parsed('{"L":-9223372036854775808}').L))
      assert.are.equal("9007199254740993", exact(parsed('{"Map":{"k":9007199254740993}}').Map.k))
      assert.are.equal(12, parsed('{"L":12}').L)
      assert.are.equal(1e300, parsed('{"L":1e300}').L)       -- no integer: the nearest double
    end)

    it("turn iso8601, rfc822 and epoch timestamps into epoch seconds", function()
      local r = parsed('{"I":"2019-12-16T22:48:18-01:00","H":"Sun, 02 Jan 2000 20:34:56 GMT","T":946845296.123}')
      assert.are.equal(1576540098, r.I)
      assert.are.equal(946845296, r.H)
      assert.are.equal(946845296.123, r.T)
      assert.are.equal(946845296.5, parsed('{"I":"2000-01-02T20:34:56.5Z"}').I)
      assert.are.equal("soon", parsed('{"H":"soon"}').H)
    end)

    it("name a union member the model does not know, as botocore does", function()
      assert.are.same({ A = "a" }, parsed('{"U":{"__type":"x#U","A":"a","B":null}}').U)
      assert.are.same({ SDK_UNKNOWN_MEMBER = { name = "C" } }, parsed('{"U":{"C":1}}').U)
    end)

    it("keep a null list item in its place, and decode blobs", function()
      assert.are.same({ "a", cjson.null, "b" }, parsed('{"List":["a",null,"b"]}').List)
      assert.are.equal("binary-value", parsed('{"B":"YmluYXJ5LXZhbHVl"}').B)
      assert.are.equal("not base64!", parsed('{"B":"not base64!"}').B)
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

    it("come from the x-amzn-errortype header first, as the protocol says", function()
      assert.are.equal("InvalidResourceStateFault", code_of("{}", { ["x-amzn-errortype"] = "InvalidResourceStateFault" }))
      assert.are.equal("ResourceNotFoundFault", code_of("", { ["x-amzn-errortype"] = "ResourceNotFoundFault:http://internal.amazon.com/" }))
      assert.are.equal("AccessDeniedException", code_of("<html></html>", { ["x-amzn-errortype"] = "AccessDeniedException" }, 403))
      assert.are.equal("FromHeader", code_of('{"__type":"FromBody"}', { ["x-amzn-errortype"] = "FromHeader" }))
      assert.are.equal("FromBody", code_of('{"__type":"FromBody"}', { ["x-amzn-errortype"] = "::" }))
      assert.are.equal("FromHeader", code_of('{"__type":"FromBody"}', { ["X-Amzn-ErrorType"] = "FromHeader" }))
    end)

    it("are never empty nor junk: the next source, or the status", function()
      assert.are.equal("400", code_of('{"__type":"::::"}'))
      assert.are.equal("400", code_of('{"__type":"#"}'))
      assert.are.equal("400", code_of('{"__type":"a#b c"}'))
      assert.are.equal("400", code_of('{"__type":"a\\r\\nb"}'))
      assert.are.equal("Y", code_of('{"__type":":x","code":"Y"}'))
      assert.are.equal("400", code_of('{"__type":' .. string.format("%q", string.rep("x", 300)) .. '}'))
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

    it("stays on one line when the message has line breaks, and so does err.message", function()
      local err = service_error(400, '{"__type":"X","message":"first line\\r\\nsecond\\nthird\\rfourth\\u0000\\tend"}')
      assert.are.equal("first line second third fourth  end", err.message)
      assert.are.equal("service error X: first line second third fourth  end (HTTP 400)", tostring(err))
      err = service_error(400, '{"__type":"X"}', { ["x-amzn-requestid"] = "rid\r\n\0x" })
      assert.are.equal("rid  x", err.request_id)
      assert.is_nil(tostring(err):find("[%z\r\n]"))
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
      assert.are.same({ Replications = { {} } }, r)
      for _, n in ipairs({ 1001, 100000 }) do
        local text = '{"Marker":' .. string.rep("[", n) .. string.rep("]", n) .. "}"
        local res, err = core.parse(model, "DescribeReplications", 200, {}, text)
        assert.is_nil(res)
        assert.are.equal("MalformedResponse", err.code)
      end
    end)
  end)

  describe("modeled errors", function()
    it("carry the members of their shape in err.fields", function()
      local err = service_error(400, '{"__type":"ResourceAlreadyExistsFault","message":"exists","resourceArn":"' .. ARN .. '"}',
                                nil, "CreateReplicationConfig")
      assert.are.equal("ResourceAlreadyExistsFault", err.code)
      assert.are.same({ message = "exists", resourceArn = ARN }, err.fields)
      err = service_error(400, '{"__type":"aws.dms#InvalidResourceStateFault","message":"m\\nn","Unknown":1}')
      assert.are.same({ message = "m n" }, err.fields)
      err = service_error(400, "", { ["x-amzn-errortype"] = "ResourceNotFoundFault" })
      assert.are.same({}, err.fields)
    end)

    it("and only those: an error the model does not define has no fields", function()
      assert.is_nil(service_error(400, '{"__type":"ThrottlingException","message":"slow"}').fields)
      assert.is_nil(service_error(502, "<html></html>").fields)
    end)
  end)

  describe("the HTTP status", function()
    it("outside 100..599 makes a MalformedResponse error value (no server sends it)", function()
      for _, status in ipairs({ 2 ^ 40, 2 ^ 53, 0, -1, 99, 600, 2 ^ 31, -2 ^ 31 - 1 }) do
        local r, err = core.parse(model, "StartReplication", status, { ["x-amzn-requestid"] = "rid" }, "{}")
        assert.is_nil(r, tostring(status))
        assert.are.equal("transport", err.kind)
        assert.are.equal("MalformedResponse", err.code)
        assert.is_nil(err.status)
        assert.are.equal("rid", err.request_id)
        assert.truthy(err.message:find(string.format("%.0f", status), 1, true), err.message)
      end
    end)

    it("of the wrong type is a programming error, which raises", function()
      assert.has_error(function() core.parse(model, "StartReplication", "two hundred", {}, "{}") end)
      assert.has_error(function() core.parse(model, "StartReplication", {}, {}, "{}") end)
      assert.has_error(function() core.parse(model, "StartReplication", nil, {}, "{}") end)
    end)
  end)

  describe("response headers", function()
    it("may be a proxy whose __index builds each value afresh", function()
      local calls = 0
      local headers = setmetatable({}, { __index = function(_, k)
        calls = calls + 1
        collectgarbage()
        if k == "x-amzn-requestid" then return "rid-" .. string.rep("x", 40) .. calls end
        if k == "x-amzn-errortype" then return "aws#Throttling" .. ("Exception"):sub(1, 9) end
      end })
      local r, err = core.parse(model, "StartReplication", 400, headers, "")
      assert.is_nil(r)
      assert.are.equal("ThrottlingException", err.code)
      assert.truthy(err.request_id:find("^rid%-x+%d+$"), err.request_id)
      r, err = core.parse(model, "StartReplication", 200, headers, "{")
      assert.is_nil(r)
      assert.truthy(err.request_id:find("^rid%-x+%d+$"), err.request_id)
    end)
  end)
end)
