-- Differential tests against botocore (python3): the same inputs through
-- dms.core and through botocore's serializer, SigV4 signer and JSON parser
-- (spec/support/botocore_oracle.py). All oracle cases go to one python3 run.
-- luacheck: max line length 160 (request and response bodies are kept on one line)
local core = require "dms.core"
local model = require "dms.model"
local cjson = require "cjson"

local function succeeded(...)
  local a, b, c = ...
  if type(a) == "number" then return a == 0 end -- Lua 5.1 / LuaJIT
  return a == true and (b == nil or b == "exit") and (c == nil or c == 0)
end

local has_botocore = succeeded(os.execute("python3 -c 'import botocore' >/dev/null 2>&1"))

if has_botocore then
  local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
  local ORACLE = here .. "support/botocore_oracle.py"

  local ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX01"
  local T0 = 1795608000 -- 2026-11-25T12:00:00Z
  local AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
  local TOKEN = "IQoJb3JpZ2luX2VjEHEaCXVzLWVhc3QtMSJHMEUCIQD/+example+session/token=="

  local function start(extra)
    local p = { ReplicationConfigArn = ARN, StartReplicationType = "start-replication" }
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
  end

  local SETTINGS = { IncludeOnly = { "unsupported-data-types-in-source" }, FailOnAssessmentFailure = true,
                     ResultLocationBucket = "assessments", Nested = { depth = 2, list = { 1, 2.5, "x" } } }

  -- (a) serialization: params for lua-dms, and botocore's equivalent when it differs
  -- (date tables and Lua tables for JSON documents are lua-dms conveniences)
  local SERIALIZE = {
    { "minimal start", "StartReplication", start() },
    { "resume with a stop position", "StartReplication",
      start({ StartReplicationType = "resume-processing", CdcStopPosition = "server_time:2026-11-26T00:00:00" }) },
    { "reload-target with an epoch CdcStartTime", "StartReplication",
      start({ StartReplicationType = "reload-target", CdcStartTime = T0 }) },
    { "CdcStartTime with an offset", "StartReplication", start({ CdcStartTime = "2026-11-25T14:00:00+02:00" }) },
    { "CdcStartTime with milliseconds", "StartReplication", start({ CdcStartTime = "2026-11-25T12:00:00.250Z" }),
      precision = "millisecond" },
    { "CdcStartTime without a zone (UTC)", "StartReplication", start({ CdcStartTime = "2026-11-25T12:00:00" }) },
    { "CdcStartTime as a date only", "StartReplication", start({ CdcStartTime = "2026-11-25" }) },
    { "CdcStartTime as an os.date table", "StartReplication", start({ CdcStartTime = os.date("*t", T0) }),
      botocore = start({ CdcStartTime = T0 }) },
    { "CdcStartPosition and assessment settings text", "StartReplication",
      start({ CdcStartPosition = "mysql-bin-changelog.000024:373",
              PremigrationAssessmentSettings = '{"IncludeOnly":["a"],"FailOnAssessmentFailure":false}' }) },
    { "assessment settings as a Lua table", "StartReplication", start({ PremigrationAssessmentSettings = SETTINGS }),
      botocore = start({ PremigrationAssessmentSettings = cjson.encode(SETTINGS) }),
      json = { "PremigrationAssessmentSettings" } },
    { "strings with escapes and UTF-8", "StartReplication",
      start({ CdcStopPosition = 'a "q" \\ / \n\t\1 é 日本 \u{1F600} </script>' }) },
    { "stop", "StopReplication", { ReplicationConfigArn = ARN } },
    { "describe replications with filters", "DescribeReplications",
      { Filters = { { Name = "replication-config-arn", Values = { ARN, ARN .. "2" } },
                    { Name = "replication-type", Values = { "cdc" } } }, MaxRecords = 20, Marker = "page-2" } },
    { "describe replications without params", "DescribeReplications", nil, botocore = {} },
    { "describe with an integral float", "DescribeReplications", { MaxRecords = 20.0 }, botocore = { MaxRecords = 20 } },
    { "describe replication configs", "DescribeReplicationConfigs",
      { Filters = { { Name = "replication-config-id", Values = { "orders-cdc" } } }, MaxRecords = 100 } },
    { "describe endpoints", "DescribeEndpoints",
      { Filters = { { Name = "endpoint-type", Values = { "source", "target" } },
                    { Name = "engine-name", Values = { "postgres" } } }, MaxRecords = 50 } },
    { "create a replication config", "CreateReplicationConfig",
      { ReplicationConfigIdentifier = "orders-cdc",
        SourceEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:SRC",
        TargetEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:TGT",
        ReplicationType = "full-load-and-cdc",
        ComputeConfig = { MaxCapacityUnits = 16, MinCapacityUnits = 2, MultiAZ = false,
                          VpcSecurityGroupIds = { "sg-1", "sg-2" }, ReplicationSubnetGroupId = "default" },
        TableMappings = { rules = { { ["rule-type"] = "selection", ["rule-id"] = "1", ["rule-action"] = "include" } } },
        ReplicationSettings = '{"Logging":{"EnableLogging":true}}',
        Tags = { { Key = "team", Value = "data" }, { Key = "env", Value = "prod" } } },
      botocore = { ReplicationConfigIdentifier = "orders-cdc",
        SourceEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:SRC",
        TargetEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:TGT",
        ReplicationType = "full-load-and-cdc",
        ComputeConfig = { MaxCapacityUnits = 16, MinCapacityUnits = 2, MultiAZ = false,
                          VpcSecurityGroupIds = { "sg-1", "sg-2" }, ReplicationSubnetGroupId = "default" },
        TableMappings = '{"rules":[{"rule-type":"selection","rule-id":"1","rule-action":"include"}]}',
        ReplicationSettings = '{"Logging":{"EnableLogging":true}}',
        Tags = { { Key = "team", Value = "data" }, { Key = "env", Value = "prod" } } },
      json = { "TableMappings" } },
    { "modify a replication config", "ModifyReplicationConfig",
      { ReplicationConfigArn = ARN, ComputeConfig = { MaxCapacityUnits = 32 }, ReplicationType = "cdc" } },
    { "describe events with timestamps", "DescribeEvents",
      { StartTime = T0 - 3600, EndTime = "2026-11-25T12:00:00Z", Duration = 60, SourceType = "replication-instance",
        EventCategories = { "failure", "state change" } } },
    { "create an endpoint with nested settings", "CreateEndpoint",
      { EndpointIdentifier = "tgt", EndpointType = "target", EngineName = "s3", Port = 443,
        S3Settings = { BucketName = "b", BucketFolder = "f", CdcMaxBatchInterval = 60, AddColumnName = true,
                       CompressionType = "gzip", DataFormat = "parquet" } } },
    { "ISO-8601 timestamps of a data migration", "CreateDataMigration",
      { MigrationProjectIdentifier = "project", DataMigrationType = "full-load-and-cdc", NumberOfJobs = 2,
        ServiceAccessRoleArn = "arn:aws:iam::123456789012:role/dms-access", EnableCloudwatchLogs = true,
        SourceDataSettings = { { CDCStartTime = T0, CDCStopTime = "2026-11-26T02:00:00+02:00", SlotName = "slot" } } } },
    { "tag a resource", "AddTagsToResource",
      { ResourceArn = ARN, Tags = { { Key = "a", Value = "1" }, { Key = "b", Value = "" } } } },
  }

  -- both refuse (botocore's own validation against lua-dms's)
  local REFUSE = {
    { "a missing ARN", "StartReplication", { StartReplicationType = "start-replication" } },
    { "a filter without values", "DescribeReplications", { Filters = { { Name = "x" } } } },
    { "MaxRecords as text", "DescribeReplications", { MaxRecords = "20" } },
    { "an unknown member", "StartReplication", start({ Bogus = "x" }) },
    { "a number among filter values", "DescribeReplications", { Filters = { { Name = "x", Values = { "a", 7 } } } } },
    { "a boolean as text", "ModifyReplicationConfig", { ReplicationConfigArn = ARN, ComputeConfig = { MultiAZ = "yes" } } },
  }

  -- (b) signing: the body comes from core.build of the named operation and params
  local SIGN = {
    { "us-east-1", "StartReplication", start(), time = T0, region = "us-east-1" },
    { "with a session token", "StartReplication", start(), time = T0, region = "us-east-1", token = TOKEN },
    { "eu-west-1 just before midnight", "DescribeReplications", { MaxRecords = 20 },
      time = T0 + 12 * 3600 - 1, region = "eu-west-1" },
    { "cn-north-1", "StopReplication", { ReplicationConfigArn = "arn:aws-cn:dms:cn-north-1:123456789012:replication-config:X" },
      time = 1440938160, region = "cn-north-1", host = "dms.cn-north-1.amazonaws.com.cn", token = "short" },
    { "a UTF-8 body", "StartReplication", start({ CdcStopPosition = "é 日本 \u{1F600}" }), time = T0 + 1, region = "us-west-2" },
    { "an empty body", "DescribeReplications", nil, time = 0, region = "ap-southeast-2" },
    { "a larger body", "DescribeEndpoints",
      { Filters = { { Name = "endpoint-arn", Values = (function()
          local v = {}
          for i = 1, 200 do v[i] = "arn:aws:dms:us-east-1:123456789012:endpoint:E" .. i end
          return v
        end)() } } }, time = T0, region = "us-gov-west-1", host = "dms.us-gov-west-1.amazonaws.com", token = TOKEN },
  }

  local REPLICATION = {
    ReplicationConfigIdentifier = "orders-cdc", ReplicationConfigArn = ARN,
    SourceEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:SRC",
    TargetEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:TGT",
    ReplicationType = "full-load-and-cdc", Status = "running", StartReplicationType = "start-replication",
    CdcStartPosition = "mysql-bin-changelog.000024:373", FailureMessages = { "a", "b" }, IsReadOnly = false,
    CdcStartTime = T0 - 3600, ReplicationCreateTime = T0 - 86400.5, ReplicationUpdateTime = "2026-11-25T12:00:00Z",
    ReplicationLastStopTime = "2026-11-25T14:00:00.250+02:00", ReplicationDeprovisionTime = T0 + 60,
    StopReason = "Stop Reason RECOVERABLE_ERROR",
    ProvisionData = { ProvisionState = "provisioned", ProvisionedCapacityUnits = 16, DateProvisioned = T0 - 600,
                      IsNewProvisioningAvailable = true },
    ReplicationStats = { FullLoadProgressPercent = 42, ElapsedTimeMillis = 1234567890123, TablesLoaded = 10,
                         TablesLoading = 2, TablesQueued = 3, TablesErrored = 0, FreshStartDate = T0 - 500,
                         StartDate = T0 - 400.125, StopDate = T0, FullLoadStartDate = T0 - 300,
                         FullLoadFinishDate = T0 - 100 },
    PremigrationAssessmentStatuses = { { PremigrationAssessmentRunArn = "arn:aws:dms:us-east-1:123456789012:assessment-run:A",
      PremigrationAssessmentRunCreationDate = T0 - 7200, Status = "passed", FailOnAssessmentFailure = true,
      ResultStatistic = { Passed = 4, Failed = 0, Error = 0, Warning = 1, Cancelled = 0, Skipped = 0 } } },
  }
  local RID = { ["x-amzn-requestid"] = "7e1e1c5a-d7a4-4b8b-9d0e-123456789abc" }

  -- (c) responses: op, status, headers, body (members the model does not define
  -- are dropped by both); generic = botocore's message is the reason phrase, ours starts with it;
  -- excerpt = botocore's message is the body, ours quotes it
  local PARSE = {
    { "a started replication", "StartReplication", 200, RID, cjson.encode({ Replication = REPLICATION }) },
    { "a stopped replication", "StopReplication", 200, RID,
      '{"Replication":{"Status":"stopping","ReplicationConfigArn":"' .. ARN .. '","ReplicationLastStopTime":1795608000.5}}' },
    { "a page of replications", "DescribeReplications", 200, RID,
      cjson.encode({ Replications = { REPLICATION, { Status = "stopped", ReplicationConfigArn = ARN .. "2" } }, Marker = "next" }) },
    { "replication configs", "DescribeReplicationConfigs", 200, RID,
      cjson.encode({ ReplicationConfigs = { { ReplicationConfigArn = ARN, ReplicationConfigCreateTime = T0,
        ComputeConfig = { MaxCapacityUnits = 16, MultiAZ = true, VpcSecurityGroupIds = { "sg-1" } },
        TableMappings = '{"rules":[]}' } } }) },
    { "endpoints", "DescribeEndpoints", 200, RID,
      cjson.encode({ Endpoints = { { EndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:S", Port = 5432,
        EngineName = "postgres", SslMode = "require",
        PostgreSQLSettings = { HeartbeatEnable = true, HeartbeatFrequency = 5, DatabaseName = "orders" } } } }) },
    { "JSON nulls", "StartReplication", 200, RID,
      '{"Replication":{"Status":"running","CdcStartTime":null,"ReplicationStats":{"TablesLoaded":1,"StopDate":null}},"Extra":null}' },
    { "unknown members", "StartReplication", 200, RID,
      '{"Replication":{"Status":"running","NewMember":{"x":1},"ReplicationStats":{"TablesLoaded":1,"NewCount":7}},"Future":"yes"}' },
    { "a long beyond 2^53", "StartReplication", 200, RID,
      '{"Replication":{"ReplicationStats":{"ElapsedTimeMillis":1234567890123456789}}}', long = true },
    { "a modeled error with its members", "CreateReplicationConfig", 400, RID,
      '{"__type":"ResourceAlreadyExistsFault","message":"already there","resourceArn":"' .. ARN .. '"}', fields = true },
    { "an empty 200", "StopReplication", 200, RID, "" },
    { "a plain __type", "StartReplication", 400, RID,
      '{"__type":"InvalidResourceStateFault","message":"Replication is in MODIFYING state and cannot start"}' },
    { "a namespaced __type", "StartReplication", 400, RID,
      '{"__type":"aws.dms#InvalidResourceStateFault","message":"Replication is in STARTING state"}' },
    { "a coral __type with a URL", "DescribeReplications", 400, RID,
      '{"__type":"com.amazon.coral.service#ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.service/","message":"Rate exceeded"}' },
    { "a Message key", "StopReplication", 404, RID,
      '{"__type":"ResourceNotFoundFault","Message":"Replication config not found"}' },
    { "an access denial", "StartReplication", 400, RID,
      '{"__type":"AccessDeniedFault","message":"User is not authorized to perform: dms:StartReplication"}' },
    { "a 503 JSON body", "StartReplication", 503, RID, '{"__type":"ServiceUnavailable","message":"Please retry"}' },
    { "a 500 without body", "StartReplication", 500, RID, "", generic = true },
    { "an HTML 502", "StartReplication", 502, {},
      "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center></body>\r\n</html>\r\n",
      generic = true },
    { "an HTML 504", "DescribeReplications", 504, {}, "<html><body>Gateway Timeout</body></html>", generic = true },
    { "a 400 that is not JSON", "StartReplication", 400, RID, "oops", excerpt = true },
  }

  -- the client's own request, with a frozen clock, to sign again through botocore
  local dms = require "dms"
  local client_request
  do
    local c = assert(dms.new({ region = "us-east-1", endpoint = "https://dms.us-east-1.amazonaws.com", env = {},
      credentials = { access_key = AK, secret_key = SK, session_token = TOKEN },
      clock = function() return T0 + 0.75 end,
      transport = function(req)
        client_request = req
        return { status = 200, headers = {}, body = '{"Replication":{"Status":"starting"}}' }
      end }))
    assert(c:start_replication(start({ CdcStartTime = "2026-11-25T10:00:00Z" })))
  end
  local function header_of(req, name)
    for _, h in ipairs(req.headers) do
      if h[1]:lower() == name:lower() then return h[2] end
    end
  end

  -- builds the oracle's cases, remembering which is which
  local cases, index = {}, {}
  local function add(kind, name, case)
    cases[#cases + 1] = case
    index[kind .. ":" .. name] = #cases
  end

  local function to_botocore(params)
    if params == nil then return cjson.decode("{}") end
    return params
  end

  for _, c in ipairs(SERIALIZE) do
    add("serialize", c[1], { op = c[2], params = to_botocore(c.botocore or c[3]), timestamp_precision = c.precision })
  end
  for _, c in ipairs(REFUSE) do
    add("refuse", c[1], { op = c[2], params = c[3] })
  end
  local signed_requests = {}
  for _, c in ipairs(SIGN) do
    local req = assert(core.build(model, c[2], c[3]))
    local host = c.host or ("dms." .. c.region .. ".amazonaws.com")
    signed_requests[c[1]] = { req = req, host = host }
    add("sign", c[1], { op = c[2], sign = { time = c.time, region = c.region, host = host, access_key = AK,
      secret_key = SK, session_token = c.token, body = req.body } })
  end
  add("sign", "the client's request", { op = "StartReplication", sign = { time = T0, region = "us-east-1",
    host = "dms.us-east-1.amazonaws.com", access_key = AK, secret_key = SK, session_token = TOKEN,
    body = client_request.body } })
  for _, c in ipairs(PARSE) do
    add("parse", c[1], { op = c[2], response = { status = c[3], headers = c[4], body = c[5] } })
  end

  local results
  local function oracle(kind, name)
    assert(results, "the botocore oracle did not run")
    local r = results[index[kind .. ":" .. name]]
    assert(r, "no oracle answer for " .. kind .. ":" .. name)
    assert(r.oracle_error == nil, "botocore failed: " .. tostring(r.oracle_error))
    return r
  end

  -- decoded JSON bodies, with JSON document members decoded too
  local function decoded(text, json_members)
    local t = cjson.decode(text)
    for _, k in ipairs(json_members or {}) do
      if type(t[k]) == "string" then t[k] = cjson.decode(t[k]) end
    end
    return t
  end


  describe("botocore differential", function()
    lazy_setup(function()
      local input = os.tmpname()
      local output = os.tmpname()
      local f = assert(io.open(input, "wb"))
      f:write(cjson.encode(cases))
      f:close()
      local cmd = string.format("python3 %q < %q > %q", ORACLE, input, output)
      local ran = succeeded(os.execute(cmd))
      f = assert(io.open(output, "rb"))
      local text = f:read("*a")
      f:close()
      os.remove(input)
      os.remove(output)
      assert(ran, "the botocore oracle failed: " .. cmd .. "\n" .. text)
      results = cjson.decode(text)
      assert.are.equal(#cases, #results)
    end)

    describe("request bodies", function()
      for _, c in ipairs(SERIALIZE) do
        it("agree for " .. c[1] .. " (" .. c[2] .. ")", function()
          local r = oracle("serialize", c[1])
          assert(r.body, "botocore refused the params: " .. tostring(r.validation_error))
          local req, err = core.build(model, c[2], c[3])
          assert(req, err and tostring(err))
          assert.are.same(decoded(r.body, c.json), decoded(req.body, c.json))
          assert.are.equal(r.target, req.headers[2][2])
          assert.are.equal(r.content_type, req.headers[1][2])
        end)
      end
    end)

    describe("refused params", function()
      for _, c in ipairs(REFUSE) do
        it("are refused by both for " .. c[1], function()
          local r = oracle("refuse", c[1])
          assert.is_string(r.validation_error, "botocore accepted the params")
          local req, err = core.build(model, c[2], c[3])
          assert.is_nil(req)
          assert.are.equal("validation", err.kind)
        end)
      end
    end)

    describe("SigV4 signatures", function()
      for _, c in ipairs(SIGN) do
        it("are byte for byte botocore's for " .. c[1], function()
          local r = oracle("sign", c[1])
          local s = signed_requests[c[1]]
          local headers = { { "Host", s.host } }
          for _, h in ipairs(s.req.headers) do headers[#headers + 1] = h end
          local signed = core.sign({ method = s.req.method, path = s.req.path, headers = headers, body = s.req.body,
            region = c.region, service = model.signing_name, access_key = AK, secret_key = SK,
            session_token = c.token, time = c.time })
          assert.are.equal(r.canonical_request, signed.canonical_request)
          assert.are.equal(r.authorization, signed.authorization)
          assert.are.equal(r.x_amz_date, signed.amz_date)
          local token
          for _, h in ipairs(signed.headers) do
            if h[1] == "X-Amz-Security-Token" then token = h[2] end
          end
          assert.are.equal(r.security_token, token)
        end)
      end

      it("are byte for byte botocore's for the client's own request", function()
        local r = oracle("sign", "the client's request")
        assert.are.equal(r.authorization, header_of(client_request, "Authorization"))
        assert.are.equal(r.x_amz_date, header_of(client_request, "X-Amz-Date"))
        assert.are.equal(TOKEN, header_of(client_request, "X-Amz-Security-Token"))
      end)
    end)

    describe("responses", function()
      for _, c in ipairs(PARSE) do
        it("agree for " .. c[1], function()
          local r = oracle("parse", c[1])
          local ours, err = core.parse(model, c[2], c[3], c[4], c[5])
          if r.error then
            assert.is_nil(ours)
            assert.are.equal(r.error.code, err.code)
            if r.error.message ~= "" then
              if c.generic then
                assert.are.equal(r.error.message, err.message:sub(1, #r.error.message))
              elseif c.excerpt then
                -- botocore's message is the body itself; ours quotes it after the reason phrase
                assert.truthy(err.message:find(r.error.message, 1, true), err.message)
              else
                assert.are.equal(r.error.message, err.message)
              end
            end
            if r.request_id then assert.are.equal(r.request_id, err.request_id) end
            if c.fields then assert.are.same(r.error.fields, err.fields) end
          elseif c.long then
            -- cjson reads the oracle's answer as doubles: compare the exact value with the body's text
            assert(ours, err and tostring(err))
            local v = ours.Replication.ReplicationStats.ElapsedTimeMillis
            assert.are.equal("1234567890123456789", math.type and string.format("%d", v) or tostring(v):gsub("LL$", ""))
            assert.are.equal(1234567890123456789.0, r.parsed.Replication.ReplicationStats.ElapsedTimeMillis + 0.0)
          else
            assert(ours, err and tostring(err))
            assert.are.same(r.parsed, ours)
          end
        end)
      end
    end)
  end)
else
  io.stderr:write("botocore_spec: python3 cannot import botocore: the differential tests are skipped\n")
  describe("botocore differential (skipped: botocore is not installed)", function() end)
end
