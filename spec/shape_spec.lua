-- dms.core.build: every validation rule of the request side, and the
-- serialization of what passes (AWS JSON 1.1 and 1.0 bodies).
-- luacheck: max line length 160 (request and response bodies are kept on one line)
local core = require "dms.core"
local model = require "dms.model"
local cjson = require "cjson"

local ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX01"
local T0 = 1795608000 -- 2026-11-25T12:00:00Z

-- a StartReplication request with extra (or replaced) members
local function start(extra)
  local p = { ReplicationConfigArn = ARN, StartReplicationType = "start-replication" }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

-- the decoded JSON body of a request that must pass
local function body(op, params, m)
  local req, err = core.build(m or model, op, params)
  assert(req, err and tostring(err))
  return cjson.decode(req.body), req
end

-- asserts that build refuses params with code, naming member
local function refused(op, params, code, member, m)
  local req, err = core.build(m or model, op, params)
  assert.is_nil(req, "expected " .. code .. " but the request was built: " .. (req and req.body or ""))
  assert.is_table(err)
  assert.are.equal("validation", err.kind)
  assert.are.equal(code, err.code, tostring(err))
  assert.are.equal(member, err.member, tostring(err))
  assert.are.equal(false, err.retryable)
  assert.is_string(err.message)
  assert.is_nil(tostring(err):find("\n"), "tostring(err) is one line")
  return err
end

local function deep_copy(t, seen)
  if type(t) ~= "table" then return t end
  seen = seen or {}
  if seen[t] then return seen[t] end
  local c = {}
  seen[t] = c
  for k, v in pairs(t) do c[deep_copy(k, seen)] = deep_copy(v, seen) end
  return setmetatable(c, getmetatable(t))
end

local function is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

-- a tiny model for the shape types and limits the DMS input shapes do not use
local TOY = {
  target_prefix = "Toy20240101",
  operations = {
    Op = { input = "In", output = "Out" },
    NoInput = { output = "Out" },
  },
  shapes = {
    In = { type = "structure", members = {
      Node = "Node", Big = "Long", Small = "Int", Ratio = "Dbl", Flag = "Bool", Data = "Blob",
      Labels = "LabelMap", Few = "FewList", Name = "Name", Rank = "Rank", When = "IsoTime",
      Doc = "String", Nodes = "NodeList",
    }, traits = { Doc = { json = true } } },
    Out = { type = "structure", members = {} },
    Node = { type = "structure", members = { Child = "Node", Kids = "NodeList", Value = "String" } },
    NodeList = { type = "list", member = "Node" },
    Long = { type = "long" },
    Int = { type = "integer" },
    Rank = { type = "integer", min = 1, max = 10 },
    Dbl = { type = "double" },
    Bool = { type = "boolean" },
    Blob = { type = "blob" },
    LabelMap = { type = "map", key = "String", value = "Int" },
    FewList = { type = "list", member = "String", min = 1, max = 2 },
    Name = { type = "string", min = 2, max = 5 },
    IsoTime = { type = "timestamp", format = "iso8601" },
    String = { type = "string" },
  },
}

-- base64 in plain Lua, to check blobs independently of OpenSSL
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return B64:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

describe("core.build", function()
  describe("the request", function()
    it("is a POST of the JSON 1.1 protocol with the operation's target", function()
      local b, req = body("StartReplication", start())
      assert.are.equal("POST", req.method)
      assert.are.equal("/", req.path)
      assert.are.equal("StartReplication", req.operation)
      assert.are.same({ { "Content-Type", "application/x-amz-json-1.1" },
                        { "X-Amz-Target", "AmazonDMSv20160101.StartReplication" } }, req.headers)
      assert.are.same(start(), b)
    end)

    it("serializes nil params and {} to an empty object", function()
      local _, req = body("DescribeReplications", nil)
      assert.are.equal("{}", req.body)
      _, req = body("DescribeReplications", {})
      assert.are.equal("{}", req.body)
    end)

    it("refuses params that are not a table", function()
      for _, p in ipairs({ "x", 42, true, function() end }) do
        refused("DescribeReplications", p, "InvalidParameterType", nil)
      end
    end)

    it("refuses an operation the model does not have", function()
      refused("StartReplications", {}, "UnknownOperation", nil)
      refused("startReplication", {}, "UnknownOperation", nil)
      refused("", {}, "UnknownOperation", nil)
    end)

    it("serializes an operation without input shape to {}", function()
      local _, req = body("NoInput", nil, TOY)
      assert.are.equal("{}", req.body)
      assert.are.equal("Toy20240101.NoInput", req.headers[2][2])
    end)

    it("builds {} or reports a missing member for every operation of the model", function()
      local n = 0
      for op in pairs(model.operations) do
        local req, err = core.build(model, op, {})
        if req then
          assert.are.equal("AmazonDMSv20160101." .. op, req.headers[2][2])
        else
          assert.are.equal("MissingParameter", err.code, op .. ": " .. tostring(err))
          assert.is_string(err.member)
        end
        n = n + 1
      end
      assert.is_true(n >= 100, "the model has " .. n .. " operations")
    end)

    it("keeps strings byte for byte (quotes, backslashes, control characters, UTF-8)", function()
      local s = 'a "quoted" \\ back/slash\n\t\1 é 日本 \u{1F600}'
      local b = body("StartReplication", start({ CdcStopPosition = s }))
      assert.are.equal(s, b.CdcStopPosition)
    end)
  end)

  describe("required members", function()
    it("are refused when missing at the top level", function()
      refused("StartReplication", { StartReplicationType = "start-replication" },
              "MissingParameter", "ReplicationConfigArn")
      refused("StartReplication", { ReplicationConfigArn = ARN }, "MissingParameter", "StartReplicationType")
      refused("StartReplication", {}, "MissingParameter", "ReplicationConfigArn")
      refused("StartReplication", nil, "MissingParameter", "ReplicationConfigArn")
      refused("StopReplication", {}, "MissingParameter", "ReplicationConfigArn")
      refused("DescribeReplicationTableStatistics", { MaxRecords = 20 }, "MissingParameter", "ReplicationConfigArn")
    end)

    it("are refused when missing in nested structures and lists", function()
      refused("DescribeReplications", { Filters = { { Values = { "x" } } } }, "MissingParameter", "Filters[1].Name")
      refused("DescribeReplications", { Filters = { { Name = "x" } } }, "MissingParameter", "Filters[1].Values")
      refused("DescribeReplications", { Filters = { { Name = "a", Values = { "b" } }, { Values = { "x" } } } },
              "MissingParameter", "Filters[2].Name")
    end)

    it("are given when they are empty lists (sent as [])", function()
      local b, req = body("DescribeReplications", { Filters = { { Name = "replication-config-arn", Values = {} } } })
      assert.truthy(req.body:find('"Values":[]', 1, true), req.body)
      assert.are.equal("replication-config-arn", b.Filters[1].Name)
      local _, r2 = body("AddTagsToResource", { ResourceArn = ARN, Tags = {} })
      assert.truthy(r2.body:find('"Tags":[]', 1, true), r2.body)
    end)

    it("are missing when they are JSON null (cjson.null), as when they are nil", function()
      refused("StartReplication", start({ ReplicationConfigArn = cjson.null }), "MissingParameter", "ReplicationConfigArn")
      local _, req = body("StartReplication", start({ CdcStopPosition = cjson.null }))
      assert.is_nil(req.body:find("CdcStopPosition", 1, true))
    end)

    it("name the member in the message", function()
      local err = refused("StartReplication", { ReplicationConfigArn = ARN }, "MissingParameter", "StartReplicationType")
      assert.truthy(err.message:find("StartReplicationType", 1, true))
      assert.truthy(tostring(err):find("MissingParameter", 1, true))
    end)
  end)

  describe("types", function()
    it("are checked at the top level", function()
      refused("StartReplication", start({ ReplicationConfigArn = 42 }), "InvalidParameterType", "ReplicationConfigArn")
      refused("StartReplication", start({ StartReplicationType = true }), "InvalidParameterType", "StartReplicationType")
      refused("StartReplication", start({ CdcStopPosition = {} }), "InvalidParameterType", "CdcStopPosition")
      refused("DescribeReplications", { MaxRecords = "20" }, "InvalidParameterType", "MaxRecords")
      refused("DescribeReplications", { MaxRecords = true }, "InvalidParameterType", "MaxRecords")
      refused("DescribeReplications", { Marker = 1 }, "InvalidParameterType", "Marker")
    end)

    it("are checked for lists: a table, a sequence without holes", function()
      refused("DescribeReplications", { Filters = "x" }, "InvalidParameterType", "Filters")
      refused("DescribeReplications", { Filters = { Name = "a", Values = { "b" } } }, "InvalidParameterType", "Filters")
      refused("DescribeReplications", { Filters = { [1] = { Name = "a", Values = { "b" } }, [3] = { Name = "a", Values = { "b" } } } },
              "InvalidParameterType", "Filters")
      refused("DescribeReplications", { Filters = { { Name = "a", Values = { "b" } }, x = 1 } }, "InvalidParameterType", "Filters")
      refused("DescribeReplications", { Filters = { [0] = { Name = "a", Values = { "b" } } } }, "InvalidParameterType", "Filters")
    end)

    it("are checked at every level of Filters", function()
      local ok = { Name = "a", Values = { "b" } }
      refused("DescribeReplications", { Filters = { ok, "x" } }, "InvalidParameterType", "Filters[2]")
      refused("DescribeReplications", { Filters = { ok, { Name = 5, Values = { "b" } } } }, "InvalidParameterType", "Filters[2].Name")
      refused("DescribeReplications", { Filters = { ok, { Name = "a", Values = "b" } } }, "InvalidParameterType", "Filters[2].Values")
      refused("DescribeReplications", { Filters = { ok, { Name = "a", Values = { 7 } } } }, "InvalidParameterType", "Filters[2].Values[1]")
      refused("DescribeReplications", { Filters = { ok, { Name = "a", Values = { {} } } } }, "InvalidParameterType", "Filters[2].Values[1]")
      refused("DescribeReplications", { Filters = { ok, { Name = "a", Values = { "b", false } } } }, "InvalidParameterType", "Filters[2].Values[2]")
    end)

    it("are checked in nested structures of other operations", function()
      local base = { ReplicationConfigIdentifier = "cfg", SourceEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:S",
                     TargetEndpointArn = "arn:aws:dms:us-east-1:123456789012:endpoint:T", ReplicationType = "full-load",
                     TableMappings = "{}", ComputeConfig = { MaxCapacityUnits = 16 } }
      local function with(k, v)
        local p = deep_copy(base)
        p[k] = v
        return p
      end
      body("CreateReplicationConfig", base)
      refused("CreateReplicationConfig", with("ComputeConfig", "x"), "InvalidParameterType", "ComputeConfig")
      refused("CreateReplicationConfig", with("ComputeConfig", { MultiAZ = "yes" }), "InvalidParameterType", "ComputeConfig.MultiAZ")
      refused("CreateReplicationConfig", with("ComputeConfig", { MaxCapacityUnits = 1.5 }), "InvalidParameterType", "ComputeConfig.MaxCapacityUnits")
      refused("CreateReplicationConfig", with("ComputeConfig", { VpcSecurityGroupIds = { "sg-1", 3 } }),
              "InvalidParameterType", "ComputeConfig.VpcSecurityGroupIds[2]")
      refused("CreateReplicationConfig", with("Tags", { { Key = "k", Value = "v" }, { Key = false } }), "InvalidParameterType", "Tags[2].Key")
    end)

    it("are checked for booleans, doubles, maps and blobs", function()
      refused("Op", { Flag = "true" }, "InvalidParameterType", "Flag", TOY)
      refused("Op", { Flag = 1 }, "InvalidParameterType", "Flag", TOY)
      refused("Op", { Ratio = "1.5" }, "InvalidParameterType", "Ratio", TOY)
      refused("Op", { Ratio = "nan" }, "InvalidParameterType", "Ratio", TOY)
      refused("Op", { Labels = "x" }, "InvalidParameterType", "Labels", TOY)
      refused("Op", { Labels = { 1, 2 } }, "InvalidParameterType", "Labels", TOY)
      refused("Op", { Labels = { a = 1, b = "2" } }, "InvalidParameterType", "Labels[b]", TOY)
      refused("Op", { Data = 12 }, "InvalidParameterType", "Data", TOY)
      local b = body("Op", { Flag = false, Ratio = 0.25, Labels = { a = 1, b = 2 } }, TOY)
      assert.are.same({ Flag = false, Ratio = 0.25, Labels = { a = 1, b = 2 } }, b)
    end)

    it("encode blobs as base64", function()
      for _, s in ipairs({ "", "a", "ab", "abc", "hello", string.rep("\0\1\255xyz", 40) }) do
        local b = body("Op", { Data = s }, TOY)
        assert.are.equal(base64(s), b.Data or "")
      end
    end)

    it("check string and list lengths of the model", function()
      body("Op", { Name = "ab", Few = { "x", "y" } }, TOY)
      refused("Op", { Name = "a" }, "InvalidParameterValue", "Name", TOY)
      refused("Op", { Name = "abcdef" }, "InvalidParameterValue", "Name", TOY)
      refused("Op", { Few = { "x", "y", "z" } }, "InvalidParameterValue", "Few", TOY)
      refused("Op", { Few = {} }, "InvalidParameterValue", "Few", TOY)
      refused("ExportMetadataModelAssessment", { MigrationProjectIdentifier = "p", SelectionRules = "{}",
                                                 AssessmentReportTypes = {} }, "InvalidParameterValue", "AssessmentReportTypes")
      refused("DescribeDataMigrations", { Marker = string.rep("m", 1025) }, "InvalidParameterValue", "Marker")
      body("DescribeDataMigrations", { Marker = string.rep("m", 1024) })
    end)

    it("serialize iso8601 timestamps of the model as text, to the microsecond as botocore", function()
      assert.are.equal("2026-11-25T12:00:00Z", body("Op", { When = T0 }, TOY).When)
      assert.are.equal("2026-11-25T12:00:00.250000Z", body("Op", { When = T0 + 0.25 }, TOY).When)
      assert.are.equal("2026-11-25T11:00:00.500000Z", body("Op", { When = "2026-11-25T12:00:00.5+01:00" }, TOY).When)
      assert.are.equal("2026-11-25T12:00:00.999600Z", body("Op", { When = T0 + 0.9996 }, TOY).When)
      assert.are.equal("2026-11-25T12:00:00.123456Z", body("Op", { When = "2026-11-25T12:00:00.123456Z" }, TOY).When)
      assert.are.equal("2026-11-25T12:00:00.123457Z", body("Op", { When = "2026-11-25T12:00:00.1234567Z" }, TOY).When)
      assert.are.equal("2026-11-25T12:00:01Z", body("Op", { When = T0 + 0.9999996 }, TOY).When)
      assert.are.equal("1969-12-31T23:59:59.500000Z", body("Op", { When = -0.5 }, TOY).When)
      assert.are.equal("0001-01-01T00:00:00Z", body("Op", { When = -62135596800 }, TOY).When)
      assert.are.equal("9999-12-31T23:59:59Z", body("Op", { When = 253402300799 }, TOY).When)
      local b = body("CreateDataMigration", { MigrationProjectIdentifier = "p", DataMigrationType = "full-load",
        ServiceAccessRoleArn = "arn:aws:iam::123456789012:role/dms", SourceDataSettings = { { CDCStartTime = T0 } } })
      assert.are.equal("2026-11-25T12:00:00Z", b.SourceDataSettings[1].CDCStartTime)
    end)

    it("refuse iso8601 timestamps outside the years 0001..9999", function()
      for _, v in ipairs({ 1e12, -62135596801, 253402300800, 1e300 }) do
        refused("Op", { When = v }, "InvalidParameterValue", "When", TOY)
      end
    end)
  end)

  describe("unknown members", function()
    it("are refused at the top level, naming the member", function()
      local err = refused("StartReplication", start({ Bogus = 1 }), "UnknownParameter", "Bogus")
      assert.truthy(err.message:find("Bogus", 1, true))
      refused("StartReplication", start({ replicationConfigArn = ARN }), "UnknownParameter", "replicationConfigArn")
      refused("StopReplication", { ReplicationConfigArn = ARN, StartReplicationType = "start-replication" },
              "UnknownParameter", "StartReplicationType")
    end)

    it("are refused in nested structures", function()
      refused("DescribeReplications", { Filters = { { Name = "a", Values = { "b" }, Extra = 1 } } },
              "UnknownParameter", "Filters[1].Extra")
      refused("CreateReplicationConfig", { ComputeConfig = { Foo = true } }, "UnknownParameter", "ComputeConfig.Foo")
    end)

    it("include keys that are not strings", function()
      refused("StartReplication", { [1] = "x" }, "UnknownParameter", nil)
      refused("StartReplication", start({ [true] = 1 }), "UnknownParameter", nil)
      refused("DescribeReplications", { Filters = { { Name = "a", Values = { "b" }, [1] = "c" } } },
              "UnknownParameter", "Filters[1]")
    end)
  end)

  describe("StartReplicationType", function()
    it("accepts the three values of the API", function()
      for _, v in ipairs({ "start-replication", "resume-processing", "reload-target" }) do
        assert.are.equal(v, body("StartReplication", start({ StartReplicationType = v })).StartReplicationType)
      end
    end)

    it("refuses anything else, listing the values", function()
      for _, v in ipairs({ "START-REPLICATION", "start", "", "resume_processing", " reload-target",
                           "reload-target ", "stop-replication" }) do
        local err = refused("StartReplication", start({ StartReplicationType = v }), "InvalidParameterValue",
                            "StartReplicationType")
        assert.truthy(err.message:find("start-replication | resume-processing | reload-target", 1, true), err.message)
      end
      refused("StartReplication", start({ StartReplicationType = 1 }), "InvalidParameterType", "StartReplicationType")
    end)
  end)

  describe("CdcStartTime and CdcStartPosition", function()
    it("are refused together", function()
      local err = refused("StartReplication", start({ CdcStartTime = T0, CdcStartPosition = "checkpoint:V1#27" }),
                          "InvalidParameterCombination", "CdcStartTime")
      assert.truthy(err.message:find("CdcStartTime", 1, true))
      assert.truthy(err.message:find("CdcStartPosition", 1, true))
      refused("StartReplication", start({ CdcStartTime = os.date("*t", T0), CdcStartPosition = "x" }),
              "InvalidParameterCombination", "CdcStartTime")
      refused("StartReplication", start({ CdcStartTime = "2026-11-25T12:00:00Z", CdcStartPosition = "x",
                                          CdcStopPosition = "server_time:2026-11-26T00:00:00" }),
              "InvalidParameterCombination", "CdcStartTime")
    end)

    it("are each accepted alone, and with CdcStopPosition", function()
      assert.are.equal(T0, body("StartReplication", start({ CdcStartTime = T0 })).CdcStartTime)
      assert.are.equal("x", body("StartReplication", start({ CdcStartPosition = "x" })).CdcStartPosition)
      local b = body("StartReplication", start({ CdcStartPosition = "x", CdcStopPosition = "y" }))
      assert.are.same({ "x", "y" }, { b.CdcStartPosition, b.CdcStopPosition })
      b = body("StartReplication", start({ CdcStartTime = T0, CdcStopPosition = "y" }))
      assert.are.same({ T0, "y" }, { b.CdcStartTime, b.CdcStopPosition })
    end)

    it("are checked after the members themselves", function()
      refused("StartReplication", start({ CdcStartTime = "not a time", CdcStartPosition = "x" }),
              "InvalidParameterValue", "CdcStartTime")
    end)
  end)

  describe("ReplicationConfigArn", function()
    it("accepts replication-config ARNs of every partition", function()
      for _, arn in ipairs({
        ARN,
        "arn:aws-cn:dms:cn-north-1:123456789012:replication-config:X",
        "arn:aws-us-gov:dms:us-gov-west-1:123456789012:replication-config:my-config-1",
        "arn:aws:dms:eu-west-3:000000000000:replication-config:ABC:extra",
      }) do
        assert.are.equal(arn, body("StartReplication", start({ ReplicationConfigArn = arn })).ReplicationConfigArn)
        assert.are.equal(arn, body("StopReplication", { ReplicationConfigArn = arn }).ReplicationConfigArn)
      end
    end)

    local bad = {
      ["wrong service"] = "arn:aws:rds:us-east-1:123456789012:replication-config:ABC",
      ["wrong resource type (endpoint)"] = "arn:aws:dms:us-east-1:123456789012:endpoint:ABC",
      ["wrong resource type (task)"] = "arn:aws:dms:us-east-1:123456789012:task:ABC",
      ["resource type with a suffix"] = "arn:aws:dms:us-east-1:123456789012:replication-configs:ABC",
      ["slash after the resource type"] = "arn:aws:dms:us-east-1:123456789012:replication-config/ABC",
      ["account of 11 digits"] = "arn:aws:dms:us-east-1:12345678901:replication-config:ABC",
      ["account of 13 digits"] = "arn:aws:dms:us-east-1:1234567890123:replication-config:ABC",
      ["account with a letter"] = "arn:aws:dms:us-east-1:12345678901a:replication-config:ABC",
      ["empty account"] = "arn:aws:dms:us-east-1::replication-config:ABC",
      ["empty region"] = "arn:aws:dms::123456789012:replication-config:ABC",
      ["empty partition"] = "arn::dms:us-east-1:123456789012:replication-config:ABC",
      ["upper-case partition"] = "arn:AWS:dms:us-east-1:123456789012:replication-config:ABC",
      ["upper-case prefix"] = "ARN:aws:dms:us-east-1:123456789012:replication-config:ABC",
      ["no resource name"] = "arn:aws:dms:us-east-1:123456789012:replication-config:",
      ["no resource name nor colon"] = "arn:aws:dms:us-east-1:123456789012:replication-config",
      ["no resource"] = "arn:aws:dms:us-east-1:123456789012",
      ["only a prefix"] = "arn:aws:dms",
      ["a bare name"] = "ABCDEFGHIJKLMNOPQRSTUVWX01",
      ["empty"] = "",
      ["leading space"] = " " .. ARN,
      ["trailing space"] = ARN .. " ",
      ["inner space"] = "arn:aws:dms:us-east-1:123456789012:replication-config:AB C",
      ["tab"] = "arn:aws:dms:us-east-1:123456789012:replication-config:AB\tC",
      ["newline"] = ARN .. "\n",
      ["NUL"] = ARN .. "\0",
    }
    for what, arn in pairs(bad) do
      it("refuses an ARN with " .. what, function()
        local err = refused("StartReplication", start({ ReplicationConfigArn = arn }), "InvalidParameterValue",
                            "ReplicationConfigArn")
        assert.truthy(err.message:find("replication-config", 1, true))
        refused("StopReplication", { ReplicationConfigArn = arn }, "InvalidParameterValue", "ReplicationConfigArn")
      end)
    end
  end)

  describe("PremigrationAssessmentSettings", function()
    it("keeps a JSON object string as it is", function()
      for _, s in ipairs({ '{"IncludeOnly":["a","b"],"FailOnAssessmentFailure":true}', "{}", '  {"x": {"y": [1, 2.5, null]}}\n' }) do
        assert.are.equal(s, body("StartReplication", start({ PremigrationAssessmentSettings = s })).PremigrationAssessmentSettings)
      end
    end)

    it("refuses strings that are not a JSON object", function()
      for _, s in ipairs({ "{bad", '{"a":1', '{"a":1} x', "{}{}", "", "   ", "null", "42", '"text"', "[1,2]", " [ ]",
                           "[{}]", "true" }) do
        refused("StartReplication", start({ PremigrationAssessmentSettings = s }), "InvalidParameterValue",
                "PremigrationAssessmentSettings")
      end
    end)

    it("encodes a Lua table to a JSON object string", function()
      local settings = { IncludeOnly = { "a", "b" }, FailOnAssessmentFailure = true, Nested = { x = 1, y = "z" } }
      local s = body("StartReplication", start({ PremigrationAssessmentSettings = settings })).PremigrationAssessmentSettings
      assert.is_string(s)
      assert.are.equal("{", s:sub(1, 1))
      assert.are.same(settings, cjson.decode(s))
      assert.are.equal("{}", body("StartReplication", start({ PremigrationAssessmentSettings = {} })).PremigrationAssessmentSettings)
    end)

    it("refuses a Lua sequence, or any table that would encode to a JSON array", function()
      for _, t in ipairs({ { 1, 2 }, { "a" }, { { x = 1 } }, { [2] = "x" }, { [1] = "a", [3] = "c" }, { 1, x = 2 } }) do
        refused("StartReplication", start({ PremigrationAssessmentSettings = t }), "InvalidParameterValue",
                "PremigrationAssessmentSettings")
      end
    end)

    it("refuses tables JSON cannot hold, and other types", function()
      refused("StartReplication", start({ PremigrationAssessmentSettings = { f = print } }), "InvalidParameterValue",
              "PremigrationAssessmentSettings")
      refused("StartReplication", start({ PremigrationAssessmentSettings = { x = 0 / 0 } }), "InvalidParameterValue",
              "PremigrationAssessmentSettings")
      refused("StartReplication", start({ PremigrationAssessmentSettings = 1 }), "InvalidParameterType",
              "PremigrationAssessmentSettings")
      refused("StartReplication", start({ PremigrationAssessmentSettings = true }), "InvalidParameterType",
              "PremigrationAssessmentSettings")
    end)

    it("refuses a cyclic table without crashing", function()
      local t = { a = {} }
      t.a.back = t
      local err = refused("StartReplication", start({ PremigrationAssessmentSettings = t }), "InvalidParameterValue",
                          "PremigrationAssessmentSettings")
      assert.truthy(err.message:find("JSON", 1, true))
    end)

    it("is one of several JSON document members of the model", function()
      local b = body("ModifyReplicationConfig", { ReplicationConfigArn = ARN,
        TableMappings = { rules = { { ["rule-type"] = "selection", ["rule-id"] = "1" } } }, ReplicationSettings = "{}" })
      assert.are.same({ rules = { { ["rule-type"] = "selection", ["rule-id"] = "1" } } }, cjson.decode(b.TableMappings))
      assert.are.equal("{}", b.ReplicationSettings)
      refused("ModifyReplicationConfig", { ReplicationConfigArn = ARN, SupplementalSettings = "[]" },
              "InvalidParameterValue", "SupplementalSettings")
    end)
  end)

  describe("CdcStartTime", function()
    local function cdc(v) return body("StartReplication", start({ CdcStartTime = v })).CdcStartTime end
    local function bad_cdc(v, code) return refused("StartReplication", start({ CdcStartTime = v }), code or "InvalidParameterValue", "CdcStartTime") end

    it("takes an epoch number as it is", function()
      assert.are.equal(T0, cdc(T0))
      assert.are.equal(T0 + 0.5, cdc(T0 + 0.5))
      assert.are.equal(0, cdc(0))
      assert.are.equal(T0, cdc(T0 + 0.0))
      local _, req = body("StartReplication", start({ CdcStartTime = T0 + 0.0 }))
      assert.truthy(req.body:find('"CdcStartTime":1795608000[,}]'), req.body)
    end)

    it("parses ISO-8601 strings: Z, offsets, fractions, no zone as UTC", function()
      local cases = {
        ["2026-11-25T12:00:00Z"] = T0,
        ["2026-11-25T12:00:00z"] = T0,
        ["2026-11-25t12:00:00Z"] = T0,
        ["2026-11-25 12:00:00Z"] = T0,
        ["2026-11-25T14:00:00+02:00"] = T0,
        ["2026-11-25T14:00:00+0200"] = T0,
        ["2026-11-25T07:00:00-05:00"] = T0,
        ["2026-11-25T17:30:00+05:30"] = T0,
        ["2026-11-25T12:00:00+00:00"] = T0,
        ["2026-11-25T12:00:00-00:00"] = T0,
        ["2026-11-25T12:00:00.250Z"] = T0 + 0.25,
        ["2026-11-25T12:00:00,5Z"] = T0 + 0.5,
        ["2026-11-25T14:00:00.125+02:00"] = T0 + 0.125,
        ["2026-11-25T12:00:00"] = T0,
        ["2026-11-25T12:00"] = T0,
        ["2026-11-25"] = T0 - 12 * 3600,
        ["1970-01-01T00:00:00Z"] = 0,
        ["2024-02-29T00:00:00Z"] = 1709164800,
        ["2000-02-29T00:00:00Z"] = 951782400,
        ["2026-12-31T23:59:59Z"] = 1798761599,
      }
      for s, want in pairs(cases) do
        assert.are.equal(want, cdc(s), s)
        assert.are.equal(want, core.timestamp(s), s)
      end
    end)

    it("refuses invalid dates and malformed strings", function()
      for _, s in ipairs({
        "2026-02-29T00:00:00Z", "2026-02-30T00:00:00Z", "1900-02-29", "2026-04-31", "2026-13-01", "2026-00-10",
        "2026-11-00", "2026-11-25T24:00:00Z", "2026-11-25T12:60:00Z", "2026-11-25T12:00:61Z",
        "2026-11-25T12:00:00+24:00", "2026-11-25T12:00:00+02:60", "2026-11-25T12:00:00+02",
        "2026/11/25", "26-11-25", "2026-1-5", "tomorrow", "", "2026-11-25T12:00:00Zjunk", "2026-11-25T12:00:00.",
        "2026-11-25T12", "2026-11-25T", " 2026-11-25", "2026-11-25Z", "-2026-11-25", "1764072000x",
      }) do
        local err = bad_cdc(s)
        assert.truthy(err.message:find("ISO-8601", 1, true), s)
        local v, terr = core.timestamp(s)
        assert.is_nil(v, s)
        assert.are.equal("InvalidTimestamp", terr.code)
      end
    end)

    it("refuses numbers that are not finite and values of other types", function()
      bad_cdc(0 / 0)
      bad_cdc(math.huge)
      bad_cdc(-math.huge)
      bad_cdc(true, "InvalidParameterType")
      bad_cdc(print, "InvalidParameterType")
    end)

    it("reads an os.date('*t') table as os.time does (local time)", function()
      local t = os.date("*t", T0)
      assert.are.equal(os.time(t), cdc(t))
      assert.are.equal(T0, cdc(t))
      local now = os.date("*t")
      assert.are.equal(os.time(now), cdc(now))
      local d = { year = 2026, month = 11, day = 25 }
      assert.are.equal(os.time(d), cdc(d)) -- hour defaults to 12, as for os.time
      d = { year = 2026, month = 11, day = 25, hour = 0, min = 30, sec = 15, isdst = false }
      assert.are.equal(os.time(d), cdc(d))
      d = { year = 2024, month = 2, day = 29, hour = 23, min = 59, sec = 59 }
      assert.are.equal(os.time(d), core.timestamp(d))
    end)

    it("reads a date table in the zone of the process (TZ)", function()
      local lua = (type(jit) == "table") and "luajit" or "lua5.4"
      local script = "local core = require 'dms.core'; local t = {year=2026, month=11, day=25, hour=12}; "
        .. "io.write(string.format('%.0f %.0f', core.timestamp(t), os.time(t)))"
      local cmd = string.format("TZ=XST-5:30 LUA_CPATH=%q LUA_PATH=%q %s -e %q 2>&1",
                                package.cpath, package.path, lua, script)
      local p = io.popen(cmd)
      local out = p:read("*a")
      p:close()
      local ours, theirs = out:match("^(%-?%d+) (%-?%d+)$")
      assert(ours, "the child printed: " .. out)
      assert.are.equal(theirs, ours)
      assert.are.equal(tostring(T0 - 19800), ours)
    end)

    it("accepts integral floats in a date table", function()
      local d = { year = 2026.0, month = 11.0, day = 25.0, hour = 12.0, min = 0.0, sec = 0.0 }
      assert.are.equal(os.time({ year = 2026, month = 11, day = 25, hour = 12, min = 0, sec = 0 }), cdc(d))
    end)

    it("refuses date tables that os.time would silently normalise", function()
      for _, t in ipairs({
        {}, { year = 2026 }, { year = 2026, month = 11 }, { month = 11, day = 25 },
        { year = 2026, month = 13, day = 1 }, { year = 2026, month = 0, day = 1 },
        { year = 2026, month = 11, day = 31 }, { year = 2026, month = 2, day = 29 }, { year = 2026, month = 11, day = 0 },
        { year = 2026, month = 11, day = 25, hour = 24 }, { year = 2026, month = 11, day = 25, min = 60 },
        { year = 2026, month = 11, day = 25, sec = 61 }, { year = 2026, month = 11, day = 25, hour = -1 },
        { year = "2026", month = 11, day = 25 }, { year = 2026, month = 1.5, day = 25 },
        { year = 2026, month = 11, day = 25, hour = "12" }, { year = 0, month = 1, day = 1 },
      }) do
        local err = bad_cdc(t)
        assert.truthy(err.message:find("date table", 1, true))
        assert.is_nil(core.timestamp(t))
      end
    end)

    it("is available as core.timestamp", function()
      assert.are.equal(T0, core.timestamp(T0))
      assert.are.equal(T0 + 0.75, core.timestamp("2026-11-25T12:00:00.75Z"))
      assert.is_true(is_integer(core.timestamp("2026-11-25T12:00:00Z")))
      local v, terr = core.timestamp(true)
      assert.is_nil(v)
      assert.are.equal("validation", terr.kind)
      assert.truthy(terr.message:find("^timestamp "))
    end)
  end)

  describe("integers", function()
    it("must be integral", function()
      assert.are.equal(20, body("DescribeReplications", { MaxRecords = 20 }).MaxRecords)
      refused("DescribeReplications", { MaxRecords = 20.5 }, "InvalidParameterType", "MaxRecords")
      refused("DescribeReplications", { MaxRecords = 0 / 0 }, "InvalidParameterType", "MaxRecords")
      refused("DescribeReplications", { MaxRecords = math.huge }, "InvalidParameterType", "MaxRecords")
    end)

    it("accept integral floats and send them without a fraction", function()
      local b, req = body("DescribeReplications", { MaxRecords = 20.0 })
      assert.are.equal(20, b.MaxRecords)
      assert.are.equal('{"MaxRecords":20}', req.body)
    end)

    it("are in the 32-bit range for integer members", function()
      assert.are.equal(2147483647, body("DescribeReplications", { MaxRecords = 2147483647 }).MaxRecords)
      assert.are.equal(-2147483648, body("DescribeReplications", { MaxRecords = -2147483648 }).MaxRecords)
      refused("DescribeReplications", { MaxRecords = 2147483648 }, "InvalidParameterValue", "MaxRecords")
      refused("DescribeReplications", { MaxRecords = -2147483649 }, "InvalidParameterValue", "MaxRecords")
      refused("DescribeReplications", { MaxRecords = 2 ^ 53 }, "InvalidParameterValue", "MaxRecords")
      refused("CreateReplicationConfig", { ComputeConfig = { MinCapacityUnits = 2 ^ 40 } }, "InvalidParameterValue",
              "ComputeConfig.MinCapacityUnits")
    end)

    it("are sent exactly for long members, to the 64-bit range", function()
      local function sent(v) return select(2, body("Op", { Big = v }, TOY)).body end
      assert.are.equal('{"Big":99999999999999}', sent(99999999999999))
      assert.are.equal('{"Big":-99999999999999}', sent(-99999999999999))
      assert.are.equal('{"Big":4294967296}', sent(4294967296))
      assert.are.equal('{"Big":100000000000000}', sent(1e14))
      assert.are.equal('{"Big":9007199254740994}', sent(2 ^ 53 + 2))
      assert.are.equal('{"Big":-9223372036854775808}', sent(-2 ^ 63))
      if math.type then
        assert.are.equal('{"Big":1234567890123456789}', sent(1234567890123456789))
        assert.are.equal('{"Big":9223372036854775807}', sent(math.maxinteger))
        assert.are.equal('{"Big":-9223372036854775808}', sent(math.mininteger))
      end
      refused("Op", { Big = 2 ^ 63 }, "InvalidParameterValue", "Big", TOY)
      refused("Op", { Big = 1e19 }, "InvalidParameterValue", "Big", TOY)
      refused("Op", { Big = 1.5 }, "InvalidParameterType", "Big", TOY)
      refused("Op", { Big = "12" }, "InvalidParameterType", "Big", TOY)
    end)

    it("take LuaJIT's int64 cdata for long members, exactly", function()
      local has_ffi, ffi = pcall(require, "ffi")
      if not has_ffi then return end
      local function sent(v) return select(2, body("Op", { Big = v }, TOY)).body end
      assert.are.equal('{"Big":1234567890123456789}', sent(ffi.new("int64_t", 1234567890) * 1000000000 + 123456789))
      assert.are.equal('{"Big":-5}', sent(ffi.new("int64_t", -5)))
      assert.are.equal('{"Big":18}', sent(ffi.new("uint64_t", 18)))
      refused("Op", { Big = ffi.new("uint64_t", 2) ^ 63 }, "InvalidParameterValue", "Big", TOY)
      refused("Op", { Small = ffi.new("int64_t", 2) ^ 40 }, "InvalidParameterValue", "Small", TOY)
      refused("Op", { Big = ffi.new("double", 1) }, "InvalidParameterType", "Big", TOY)
    end)

    it("respect the model's min and max", function()
      body("Op", { Rank = 1 }, TOY)
      body("Op", { Rank = 10 }, TOY)
      refused("Op", { Rank = 0 }, "InvalidParameterValue", "Rank", TOY)
      refused("Op", { Rank = 11 }, "InvalidParameterValue", "Rank", TOY)
    end)
  end)

  describe("empty lists and maps", function()
    it("are sent as [] and {}", function()
      local _, req = body("DescribeReplications", { Filters = {} })
      assert.are.equal('{"Filters":[]}', req.body)
      _, req = body("CreateReplicationConfig", { ReplicationConfigIdentifier = "c",
        SourceEndpointArn = "s", TargetEndpointArn = "t", ReplicationType = "cdc", TableMappings = "{}",
        ComputeConfig = { VpcSecurityGroupIds = {} }, Tags = {} })
      assert.truthy(req.body:find('"Tags":[]', 1, true), req.body)
      assert.truthy(req.body:find('"ComputeConfig":{"VpcSecurityGroupIds":[]}', 1, true), req.body)
      _, req = body("Op", { Labels = {} }, TOY)
      assert.are.equal('{"Labels":{}}', req.body)
    end)
  end)

  describe("doubles", function()
    it("are written with up to 17 significant digits: the shortest text that reads back the same", function()
      local function sent(v) return select(2, body("Op", { Ratio = v }, TOY)).body:match('"Ratio":(.*)}$') end
      for _, v in ipairs({ 0.1, 0.1 + 0.2, 1 / 3, 123456789.12345679, 2 ^ -1074, 1.7976931348623157e308, -2.5e-7,
                           1e15 + 0.5, 12345678901234567890.0 }) do
        local text = sent(v)
        assert.are.equal(v, tonumber(text), text)
        local mantissa = text:gsub("^%-", ""):gsub("e.*", ""):gsub("%.", ""):gsub("^0+", "")
        assert.is_true(#mantissa <= 17, text)
      end
      assert.are.equal("0.1", sent(0.1))
      assert.are.equal("0.30000000000000004", sent(0.1 + 0.2))
      assert.are.equal("1234.5", sent(1234.5))
      assert.are.equal("3", sent(3.0))
    end)

    it("send NaN and the infinities as the protocol writes them", function()
      local function sent(v) return select(2, body("Op", { Ratio = v }, TOY)).body end
      assert.are.equal('{"Ratio":"NaN"}', sent(0 / 0))
      assert.are.equal('{"Ratio":"Infinity"}', sent(math.huge))
      assert.are.equal('{"Ratio":"-Infinity"}', sent(-math.huge))
      assert.are.equal('{"Ratio":"NaN"}', sent("NaN"))
      assert.are.equal('{"Ratio":"-Infinity"}', sent("-Infinity"))
    end)
  end)

  describe("strings", function()
    it("count their length in characters, not bytes", function()
      local accented = string.rep("é", 255)                        -- 510 bytes
      body("ExportMetadataModelAssessment", { MigrationProjectIdentifier = accented, SelectionRules = "{}" })
      refused("ExportMetadataModelAssessment", { MigrationProjectIdentifier = accented .. "e", SelectionRules = "{}" },
              "InvalidParameterValue", "MigrationProjectIdentifier")
      body("Op", { Name = "日本" }, TOY)                              -- 2 characters, 6 bytes
      body("Op", { Name = "\240\159\152\128\240\159\152\128\240\159\152\128\240\159\152\128\240\159\152\128" }, TOY)
      refused("Op", { Name = "\240\159\152\128" }, "InvalidParameterValue", "Name", TOY)
    end)

    it("must be valid UTF-8 (else the body would not be JSON)", function()
      for _, s in ipairs({ "\255", "a\128b", "\192\175", "\224\128\175", "\237\160\128", "\244\144\128\128", "é\195" }) do
        local err = refused("StartReplication", start({ CdcStopPosition = s }), "InvalidParameterValue", "CdcStopPosition")
        assert.truthy(err.message:find("UTF-8", 1, true))
      end
      refused("Op", { Labels = { ["k\255"] = 1 } }, "InvalidParameterValue", "Labels[k\255]", TOY)
      refused("StartReplication", start({ PremigrationAssessmentSettings = { ["\255"] = 1 } }), "InvalidParameterValue",
              "PremigrationAssessmentSettings")
      refused("StartReplication", start({ PremigrationAssessmentSettings = '{"a":"\255"}' }), "InvalidParameterValue",
              "PremigrationAssessmentSettings")
    end)

    it("compare with their length: a NUL inside an enum value or a member name does not pass", function()
      refused("StartReplication", start({ StartReplicationType = "reload-target\0" }), "InvalidParameterValue",
              "StartReplicationType")
      refused("StartReplication", start({ StartReplicationType = "start-replication\0junk" }), "InvalidParameterValue",
              "StartReplicationType")
      local err = refused("StartReplication", { ["ReplicationConfigArn\0x"] = ARN, StartReplicationType = "start-replication" },
                          "UnknownParameter", "ReplicationConfigArn?x")
      assert.truthy(err.message:find("ReplicationConfigArn?x", 1, true))
      refused("StartReplication", start({ ReplicationConfigArn = ARN .. "\0" }), "InvalidParameterValue",
              "ReplicationConfigArn")
      local _, req = body("StartReplication", start({ CdcStopPosition = "a\0b" }))
      assert.truthy(req.body:find('"a\\u0000b"', 1, true), req.body)
    end)
  end)

  describe("traits the model does not state", function()
    it("refuse ARNs longer than any ARN (2048 characters), before any I/O", function()
      local long = ARN .. string.rep("x", 2048 - #ARN)
      body("StartReplication", start({ ReplicationConfigArn = long }))
      refused("StartReplication", start({ ReplicationConfigArn = long .. "x" }), "InvalidParameterValue",
              "ReplicationConfigArn")
      local err = refused("StopReplication", { ReplicationConfigArn = ARN .. string.rep("y", 4 * 1024 * 1024) },
                          "InvalidParameterValue", "ReplicationConfigArn")
      assert.is_true(#err.message < 300)
    end)
  end)

  describe("timestamp formats", function()
    local FMT = {
      target_prefix = "Fmt", json_version = "1.0",
      operations = { Op = { input = "In" } },
      shapes = {
        In = { type = "structure", members = { E = "Epoch", I = "Iso", H = "Http", D = "Default" } },
        Epoch = { type = "timestamp", format = "unixTimestamp" }, Iso = { type = "timestamp", format = "iso8601" },
        Http = { type = "timestamp", format = "rfc822" }, Default = { type = "timestamp" },
      },
    }
    it("follow the model: unixTimestamp (the default) with milliseconds, iso8601, rfc822", function()
      local b = body("Op", { E = T0 + 0.25, I = T0 + 0.25, H = T0 + 0.75, D = T0 + 0.0004 }, FMT)
      assert.are.same({ E = T0 + 0.25, I = "2026-11-25T12:00:00.250000Z", H = "Wed, 25 Nov 2026 12:00:00 GMT", D = T0 }, b)
      b = body("Op", { E = -62135596800, I = -62135596800, H = -62135596800, D = 253402300799.5 }, FMT)
      assert.are.same({ E = -62135596800, I = "0001-01-01T00:00:00Z", H = "Mon, 01 Jan 0001 00:00:00 GMT",
                        D = 253402300799.5 }, b)
      local _, req = body("Op", { E = -0.25, H = 0 }, FMT)
      assert.truthy(req.body:find('"E":-0.25', 1, true), req.body)
      assert.truthy(req.body:find('"H":"Thu, 01 Jan 1970 00:00:00 GMT"', 1, true), req.body)
    end)

    it("refuse times outside the years 0001..9999 in every format, before any I/O", function()
      for _, v in ipairs({ 1e308, -1e300, 253402300800, -62135596801, 2 ^ 63 }) do
        for _, m in ipairs({ "E", "I", "H", "D" }) do
          refused("Op", { [m] = v }, "InvalidParameterValue", m, FMT)
        end
        refused("StartReplication", start({ CdcStartTime = v }), "InvalidParameterValue", "CdcStartTime")
        assert.is_nil(core.timestamp(v))
      end
    end)

    it("give the Content-Type of the model's jsonVersion", function()
      local _, req = body("Op", {}, FMT)
      assert.are.same({ { "Content-Type", "application/x-amz-json-1.0" }, { "X-Amz-Target", "Fmt.Op" } }, req.headers)
      assert.has_error(function()
        core.build({ json_version = "2.0", operations = FMT.operations, shapes = FMT.shapes }, "Op", {})
      end)
    end)
  end)

  describe("documents, unions and idempotency tokens", function()
    local M = {
      target_prefix = "Doc", json_version = "1.1",
      operations = { Op = { input = "In" } },
      shapes = {
        In = { type = "structure", members = { Doc = "Document", U = "Union", Token = "String", S = "String" },
               idempotency_tokens = { "Token" } },
        Document = { type = "structure", members = {}, document = true },
        Union = { type = "structure", members = { A = "String", B = "Int" }, union = true },
        String = { type = "string" }, Int = { type = "integer" },
      },
    }
    it("write any JSON value for a document", function()
      local tree = require "support.json_tree"
      local function sent(doc) return select(2, body("Op", { Doc = doc, Token = "t" }, M)).body end
      local ok, why = tree.same_text('{"Doc":{"a":[1,2.5,"x",true,null,{}],"b":{"c":false}},"Token":"t"}',
                                     sent({ a = { 1, 2.5, "x", true, cjson.null, {} }, b = { c = false } }))
      assert(ok, why)
      assert.truthy(sent("text"):find('"Doc":"text"', 1, true))
      assert.truthy(sent(12):find('"Doc":12', 1, true))
      assert.truthy(sent({}):find('"Doc":{}', 1, true))
      refused("Op", { Doc = { 1, x = 2 } }, "InvalidParameterValue", "Doc", M)
      refused("Op", { Doc = { f = print } }, "InvalidParameterValue", "Doc", M)
      refused("Op", { Doc = { n = 0 / 0 } }, "InvalidParameterValue", "Doc", M)
    end)

    it("take exactly one member of a union", function()
      body("Op", { U = { A = "a" }, Token = "t" }, M)
      body("Op", { U = { B = 1, A = cjson.null }, Token = "t" }, M)
      refused("Op", { U = {} }, "InvalidParameterValue", "U", M)
      refused("Op", { U = { A = "a", B = 1 } }, "InvalidParameterValue", "U", M)
    end)

    it("fill an idempotency token the caller did not give with a fresh UUID", function()
      local a = body("Op", {}, M).Token
      local b = body("Op", {}, M).Token
      assert.truthy(a:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"), a)
      assert.are_not.equal(a, b)
      assert.are.equal("mine", body("Op", { Token = "mine" }, M).Token)
    end)
  end)

  describe("params", function()
    it("are never mutated, whether the request is built or refused", function()
      local date = os.date("*t", T0)
      local settings = { IncludeOnly = { "a" }, Deep = { x = { y = 1 } } }
      local meta = { __index = function() return nil end }
      local filters = setmetatable({ { Name = "a", Values = { "b", "c" } } }, meta)
      local inputs = {
        { "StartReplication", start({ CdcStartTime = date, PremigrationAssessmentSettings = settings }) },
        { "StartReplication", start({ CdcStartTime = "2026-11-25T14:00:00+02:00" }) },
        { "StartReplication", start({ CdcStartTime = date, CdcStartPosition = "x" }) },
        { "DescribeReplications", { Filters = filters, MaxRecords = 20.0 } },
        { "DescribeReplications", { Filters = { { Name = "a", Values = { "b", 3 } } } } },
        { "CreateReplicationConfig", { ComputeConfig = { VpcSecurityGroupIds = {} }, Tags = {} } },
      }
      for _, input in ipairs(inputs) do
        local before = deep_copy(input[2])
        local nested = {}
        for k, v in pairs(input[2]) do nested[k] = v end
        core.build(model, input[1], input[2])
        assert.are.same(before, input[2])
        for k, v in pairs(nested) do assert.are.equal(v, input[2][k], k) end
      end
      assert.are.equal(meta, getmetatable(filters))
      assert.are.same(os.date("*t", T0), date)
    end)
  end)

  describe("nesting", function()
    local function chain(n)
      local root = {}
      local node = root
      for _ = 1, n - 1 do
        node.Child = {}
        node = node.Child
      end
      return root
    end

    it("follows recursive shapes to a reasonable depth", function()
      local b = body("Op", { Node = chain(50) }, TOY)
      local node, n = b.Node, 0
      while node do n, node = n + 1, node.Child end
      assert.are.equal(50, n)
    end)

    it("refuses nesting that is too deep, naming where it stopped", function()
      local err = refused("Op", { Node = chain(200) }, "InvalidParameterValue",
                          "Node" .. string.rep(".Child", 63), TOY)
      assert.truthy(err.message:find("nested too deeply", 1, true))
    end)

    it("refuses cyclic params without crashing", function()
      local n = {}
      n.Child = n
      local err = refused("Op", { Node = n }, "InvalidParameterValue", "Node" .. string.rep(".Child", 63), TOY)
      assert.truthy(err.message:find("cycle", 1, true))
      local m = {}
      m.Kids = { m }
      err = select(2, core.build(TOY, "Op", { Node = m }))
      assert.are.equal("InvalidParameterValue", err.code)
      assert.truthy(err.member:find("^Node%.Kids%[1%]%.Kids%[1%]"))
      local list = {}
      list[1] = { Kids = list }
      err = select(2, core.build(TOY, "Op", { Nodes = list }))
      assert.are.equal("InvalidParameterValue", err.code)
    end)

    it("keeps the member path bounded, marking a path too long to name", function()
      local err = select(2, core.build(TOY, "Op", { Node = chain(200) }))
      assert.is_true(#err.member < 512)
      assert.is_true(#tostring(err) < 1024)
      err = select(2, core.build(TOY, "Op", { Labels = { [string.rep("k", 5000)] = "not an integer" } }))
      assert.are.equal("InvalidParameterType", err.code)
      assert.are.equal("Labels[kkk", err.member:sub(1, 10))
      assert.are.equal("...", err.member:sub(-3))
      assert.is_true(#err.member < 4096)
      assert.is_true(#tostring(err) < 4096)
    end)

    it("handles deeply nested JSON documents (and refuses absurd depth)", function()
      local doc = {}
      local t = doc
      for _ = 1, 100 do t.x = {} t = t.x end
      local s = body("StartReplication", start({ PremigrationAssessmentSettings = doc })).PremigrationAssessmentSettings
      assert.are.same(doc, cjson.decode(s))
      doc = {}
      t = doc
      for _ = 1, 1100 do t.x = {} t = t.x end
      refused("StartReplication", start({ PremigrationAssessmentSettings = doc }), "InvalidParameterValue",
              "PremigrationAssessmentSettings")
    end)
  end)

  describe("validation errors", function()
    it("carry the error metatable and print on one line", function()
      local _, err = core.build(model, "DescribeReplications", { Filters = { { Name = "a", Values = { 1 } } } })
      assert.are.equal("dms.error", getmetatable(err).__name)
      local line = tostring(err)
      assert.truthy(line:find("^validation error InvalidParameterType: "))
      assert.truthy(line:find("Filters[1].Values[1]", 1, true))
      assert.is_nil(line:find("\n"))
    end)
  end)
end)

describe("client:call", function()
  local dms = require "dms"

  local function client()
    local sent = {}
    local c = assert(dms.new({
      region = "us-east-1", endpoint = "http://127.0.0.1:9", env = {},
      credentials = { access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
      transport = function(req)
        sent[#sent + 1] = req
        local op = nil
        for _, h in ipairs(req.headers) do
          if h[1] == "X-Amz-Target" then op = h[2]:match("%.(%w+)$") end
        end
        local bodies = {
          DescribeReplicationConfigs = '{"ReplicationConfigs":[{"ReplicationConfigArn":"' .. ARN .. '","ReplicationConfigCreateTime":1795608000}]}',
          DescribeEndpoints = '{"Endpoints":[{"EndpointArn":"arn:aws:dms:us-east-1:123456789012:endpoint:S","Port":5432}]}',
        }
        return { status = 200, headers = { ["x-amzn-requestid"] = "req-1" }, body = bodies[op] or "{}" }
      end,
    }))
    return c, sent
  end

  local function header(req, name)
    for _, h in ipairs(req.headers) do
      if h[1] == name then return h[2] end
    end
  end

  it("sends DescribeReplicationConfigs with Filters and parses the answer", function()
    local c, sent = client()
    local r, err = c:call("DescribeReplicationConfigs", {
      Filters = { { Name = "replication-config-arn", Values = { ARN } } }, MaxRecords = 20 })
    assert.is_nil(err)
    assert.are.equal(1, #sent)
    assert.are.equal("AmazonDMSv20160101.DescribeReplicationConfigs", header(sent[1], "X-Amz-Target"))
    assert.are.same({ Filters = { { Name = "replication-config-arn", Values = { ARN } } }, MaxRecords = 20 },
                    cjson.decode(sent[1].body))
    assert.are.equal(ARN, r.ReplicationConfigs[1].ReplicationConfigArn)
    assert.are.equal(T0, r.ReplicationConfigs[1].ReplicationConfigCreateTime)
    assert.are.equal("req-1", r.ResponseMetadata.RequestId)
  end)

  it("sends DescribeEndpoints with Filters, through call and the snake_case method", function()
    local c, sent = client()
    local params = { Filters = { { Name = "endpoint-type", Values = { "source", "target" } } } }
    local r = assert(c:call("DescribeEndpoints", params))
    assert.are.equal(5432, r.Endpoints[1].Port)
    assert.is_true(is_integer(r.Endpoints[1].Port))
    r = assert(c:describe_endpoints(params))
    assert.are.equal("S", r.Endpoints[1].EndpointArn:sub(-1))
    assert.are.equal(2, #sent)
    for _, req in ipairs(sent) do
      assert.are.equal("AmazonDMSv20160101.DescribeEndpoints", header(req, "X-Amz-Target"))
      assert.are.same(params, cjson.decode(req.body))
      assert.truthy(header(req, "Authorization"):find("/us-east-1/dms/aws4_request", 1, true))
    end
  end)

  it("returns validation errors before any request is sent", function()
    local c, sent = client()
    local r, err = c:call("DescribeEndpoints", { Filters = { { Name = "endpoint-type", Values = { 1 } } } })
    assert.is_nil(r)
    assert.are.equal("InvalidParameterType", err.code)
    assert.are.equal("Filters[1].Values[1]", err.member)
    r, err = c:start_replication(start({ StartReplicationType = "restart" }))
    assert.is_nil(r)
    assert.are.equal("StartReplicationType", err.member)
    r, err = c:call("NoSuchOperation", {})
    assert.is_nil(r)
    assert.are.equal("UnknownOperation", err.code)
    assert.are.equal(0, #sent)
  end)
end)
