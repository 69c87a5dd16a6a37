-- The hot path's own machinery: the compiled form of a model that core.build
-- and core.parse keep per model table, core.sign_headers (the client's
-- signature, written into its headers), and core.decode_model (the generated
-- models are JSON text).
--
-- Meant to run under the ASan/UBSan build of dms.core as well (see
-- tools/test.sh), where a memory error aborts the run.
local core = require "dms.core"
local model = require "dms.model"
local cjson = require "cjson"

local ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX01"

local function decode(req) return cjson.decode(req.body) end

describe("the compiled form of a model", function()
  -- two models with an operation of the same name and different shapes
  local function model_a()
    return {
      target_prefix = "A", operations = { Op = { input = "In", output = "Out" } },
      shapes = {
        In = { type = "structure", members = { X = "Str" }, required = { "X" } },
        Out = { type = "structure", members = { T = "Time", N = "Int" } },
        Str = { type = "string", max = 3 }, Time = { type = "timestamp" }, Int = { type = "integer" },
      },
    }
  end
  local function model_b()
    return {
      target_prefix = "B", json_version = "1.0", operations = { Op = { input = "In", output = "Out" } },
      shapes = {
        In = { type = "structure", members = { Y = "Str" } },
        Out = { type = "structure", members = { T = "Str" } },
        Str = { type = "string" },
      },
    }
  end

  it("is each model table's own: the same operation name reads each model's shapes", function()
    local a, b = model_a(), model_b()
    for _ = 1, 3 do
      local ra = assert(core.build(a, "Op", { X = "abc" }))
      assert.are.same({ X = "abc" }, decode(ra))
      assert.are.same({ "X-Amz-Target", "A.Op" }, ra.headers[2])
      assert.are.same({ "Content-Type", "application/x-amz-json-1.1" }, ra.headers[1])
      local rb = assert(core.build(b, "Op", { Y = "abcdef" }))
      assert.are.same({ Y = "abcdef" }, decode(rb))
      assert.are.same({ "X-Amz-Target", "B.Op" }, rb.headers[2])
      assert.are.same({ "Content-Type", "application/x-amz-json-1.0" }, rb.headers[1])
      local _, err = core.build(a, "Op", { Y = "a" })
      assert.are.equal("UnknownParameter", err.code)
      _, err = core.build(b, "Op", { X = "a" })
      assert.are.equal("UnknownParameter", err.code)
      _, err = core.build(a, "Op", { X = "abcd" })     -- a's Str has max = 3
      assert.are.equal("InvalidParameterValue", err.code)
      _, err = core.build(a, "Op", {})
      assert.are.equal("MissingParameter", err.code)
      assert.are.equal("X", err.member)
      local body = '{"T":"2026-11-25T12:00:00Z","N":7}'
      assert.are.same({ T = 1795608000, N = 7 }, assert(core.parse(a, "Op", 200, {}, body)))
      assert.are.same({ T = "2026-11-25T12:00:00Z" }, assert(core.parse(b, "Op", 200, {}, body)))
    end
  end)

  it("goes with its model: a model nobody holds is collected", function()
    local held = setmetatable({}, { __mode = "k" })
    for _ = 1, 5 do
      local m = model_a()
      assert(core.build(m, "Op", { X = "a" }))
      assert(core.parse(m, "Op", 200, {}, '{"N":1}'))
      held[m] = true
    end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(held), "a model table outlived every reference to it")
  end)

  it("reads the model raw, once: members whose name or shape is not a string are not members", function()
    local m = {
      target_prefix = "O", operations = { Op = { input = "In", output = "In" } },
      shapes = {
        In = { type = "structure", members = { Good = "Str", Bad = 5, [1] = "Str", L = "List", M = "Map" } },
        Str = { type = "string" }, List = { type = "list", member = "Nope" },
        Map = { type = "map", key = "Str", value = "Nope" },
      },
    }
    assert(core.build(m, "Op", { Good = "g" }))
    local _, err = core.build(m, "Op", { Bad = "b" })
    assert.are.equal("UnknownParameter", err.code)
    _, err = core.build(m, "Op", { "x" })
    assert.are.equal("UnknownParameter", err.code)
    -- a shape the model lacks is an error only where a value needs it
    assert(core.build(m, "Op", { L = {} }))
    assert(core.build(m, "Op", { M = {} }))
    _, err = core.build(m, "Op", { L = { "x" } })
    assert.are.equal("ModelError", err.code)
    assert.truthy(err.message:find("'Nope'", 1, true), err.message)
    _, err = core.build(m, "Op", { M = { k = "x" } })
    assert.are.equal("ModelError", err.code)
    -- and is read as it came in an answer
    assert.are.same({ Good = "g", L = { 1, "two" } },
      assert(core.parse(m, "Op", 200, {}, '{"Good":"g","L":[1,"two"],"Bad":1}')))
  end)

  it("keeps every rule of a structure of more members than a small one has", function()
    local members, required = {}, {}
    for i = 1, 100 do members["M" .. i] = "Str" end
    required[1], required[2] = "M99", "M7"
    local m = { target_prefix = "W", operations = { Op = { input = "In" } },
      shapes = { In = { type = "structure", members = members, required = required,
                        exclusive = { { "M50", "M51", "Nope" } }, idempotency_tokens = { "M100" } },
                 Str = { type = "string" } } }
    local _, err = core.build(m, "Op", { M7 = "x", M1 = "y" })
    assert.are.equal("MissingParameter", err.code)
    assert.are.equal("M99", err.member)
    local req = assert(core.build(m, "Op", { M7 = "x", M99 = "y", M50 = "z" }))
    local sent = decode(req)
    assert.are.equal("z", sent.M50)
    assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", sent.M100)
    _, err = core.build(m, "Op", { M7 = "x", M99 = "y", M50 = "z", M51 = "w" })
    assert.are.equal("InvalidParameterCombination", err.code)
    assert.are.equal("M50", err.member)
    assert.are.equal("given", decode(assert(core.build(m, "Op", { M7 = "x", M99 = "y", M100 = "given" }))).M100)
  end)

  it("writes and reads member names that need escaping in JSON", function()
    local m = { target_prefix = "E", operations = { Op = { input = "In", output = "In" } },
      shapes = { In = { type = "structure", members = { ['we"ird'] = "Str", ["tab\tbed"] = "Str" } },
                 Str = { type = "string" } } }
    local req = assert(core.build(m, "Op", { ['we"ird'] = "a", ["tab\tbed"] = "b" }))
    assert.truthy(req.body:find('"we\\"ird":"a"', 1, true), req.body)
    assert.truthy(req.body:find('"tab\\tbed":"b"', 1, true), req.body)
    assert.are.same({ ['we"ird'] = "a", ["tab\tbed"] = "b" },
      assert(core.parse(m, "Op", 200, {}, '{"we\\"ird":"a","tab\\u0009bed":"b"}')))
  end)

  it("never raises nor crashes on a model of random shapes, whatever the params and answers", function()
    math.randomseed(4242)
    local rnd = math.random
    local function pick(t) return t[rnd(#t)] end
    local names = { "A", "B", "C", "D", "E", "Missing" }
    local kinds = { "structure", "list", "map", "string", "integer", "long", "double", "float", "boolean",
                    "timestamp", "blob", "weird", 7 }
    local junk = { 1, "x", true, {}, { 1, 2 }, { "A", 3, "B" }, cjson.null, 2.5 }
    local function random_model()
      local shapes = {}
      for i = 1, 5 do
        local s = { type = pick(kinds) }
        if rnd(2) == 1 then s.members = { a = pick(names), b = pick(names), [pick({ "c", 1, true })] = pick(names) } end
        if rnd(3) == 1 then s.members = pick(junk) end
        if rnd(3) == 1 then s.required = rnd(2) == 1 and { pick({ "a", "b", "z", 1 }) } or pick(junk) end
        if rnd(4) == 1 then s.exclusive = rnd(2) == 1 and { { "a", "b" }, pick(junk) } or pick(junk) end
        if rnd(4) == 1 then s.idempotency_tokens = rnd(2) == 1 and { "a", "t" } or pick(junk) end
        if rnd(4) == 1 then
          s.traits = { a = { enum = rnd(2) == 1 and { "x", 1, "y" } or pick(junk), arn = pick({ true, "thing", 1 }),
                             json = rnd(2) == 1 }, b = pick(junk) }
        end
        if rnd(3) == 1 then s.member = pick(names) end
        if rnd(3) == 1 then s.key, s.value = pick(names), pick(names) end
        if rnd(3) == 1 then s.min, s.max = pick({ 0, 1, "x" }), pick({ 2, 1e9, {} }) end
        if rnd(4) == 1 then s.document, s.union = rnd(2) == 1, rnd(2) == 1 end
        if rnd(4) == 1 then s.format = pick({ "iso8601", "rfc822", 3 }) end
        shapes[names[i]] = rnd(10) == 1 and pick(junk) or s
      end
      return { target_prefix = "R", arn_service = pick({ "dms", 5 }),
               operations = { Op = { input = pick(names), output = pick(names) }, Bare = {} }, shapes = shapes }
    end
    local function random_value(depth)
      local r = rnd(depth > 3 and 6 or 9)
      if r == 1 then return "x" end
      if r == 2 then return rnd(100) end
      if r == 3 then return 2.5 end
      if r == 4 then return true end
      if r == 5 then return cjson.null end
      if r == 6 then return "arn:aws:dms:us-east-1:123456789012:thing:x" end
      local t = {}
      for _ = 1, rnd(3) do
        if rnd(2) == 1 then t[#t + 1] = random_value(depth + 1)
        else t[pick({ "a", "b", "c", "t", "z" })] = random_value(depth + 1) end
      end
      return t
    end
    local bodies = { '{"a":1,"b":[1,2],"c":{"a":"x"}}', '{"a":"2026-11-25T12:00:00Z","b":null}', "[]", "{",
                     '{"a":{"a":{"a":[{"b":"eA=="}]}}}', '{"__type":"X","zz":1}', "", '{"a":1e999}' }
    for case = 1, 400 do
      local m = random_model()
      for _ = 1, 5 do
        local ok, req, err = pcall(core.build, m, pick({ "Op", "Bare", "Nope" }), random_value(0))
        assert(ok, "build raised on case " .. case .. ": " .. tostring(req))
        if req then
          assert.is_table(cjson.decode(req.body))
        else
          assert.is_table(err)
        end
        local pok, res, perr = pcall(core.parse, m, pick({ "Op", "Bare" }), pick({ 200, 400, 500 }),
          { ["x-amzn-errortype"] = pick({ "X", "a" }) }, pick(bodies))
        assert(pok, "parse raised on case " .. case .. ": " .. tostring(res))
        assert(res or perr)
      end
    end
  end)
end)

describe("core.sign_headers", function()
  local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
  local function request(token)
    return { method = "POST", path = "/", body = '{"MaxRecords":20}', region = "us-east-1", service = "dms",
             access_key = "AKIDEXAMPLE", secret_key = SECRET, session_token = token, time = 1795608000 }
  end
  local function base_headers()
    return { { "Host", "dms.us-east-1.amazonaws.com" }, { "Content-Type", "application/x-amz-json-1.1" },
             { "X-Amz-Target", "AmazonDMSv20160101.DescribeReplications" } }
  end

  it("signs as core.sign does and writes the pairs core.sign gives after the first n", function()
    for _, token in ipairs({ false, "a-session-token" }) do
      local req = request(token or nil)
      req.headers = base_headers()
      local signed = core.sign(req)
      req.headers = nil
      local headers = base_headers()
      local auth = core.sign_headers(req, headers, 3)
      assert.are.equal(signed.authorization, auth)
      local want = base_headers()
      for _, h in ipairs(signed.headers) do want[#want + 1] = h end
      assert.are.same(want, headers)
    end
  end)

  it("updates the pairs of the same name already in place, and leaves nothing after its own", function()
    local headers = base_headers()
    core.sign_headers(request("tok"), headers, 3)
    assert.are.equal(6, #headers)
    local date, tok, auth = headers[4], headers[5], headers[6]
    headers[7] = { "User-Agent", "ua" }
    local req = request(nil)
    req.time = 1795608060
    local a2 = core.sign_headers(req, headers, 3)
    assert.are.equal(5, #headers)
    assert.are.equal(date, headers[4])                      -- the same table, a new value
    assert.are.equal("20261125T120100Z", headers[4][2])
    assert.are_not.equal(tok, headers[5])                   -- no token now: a new pair
    assert.are.same({ "Authorization", a2 }, headers[5])
    assert.is_nil(headers[6])
    assert.are.same({ "Authorization", auth[2] }, auth)     -- the old pair was not written to
  end)

  it("signs only the first n pairs", function()
    local headers = base_headers()
    headers[4] = { "X-Not-Signed", "v" }
    local auth = core.sign_headers(request(), headers, 3)
    assert.is_nil(auth:find("x-not-signed", 1, true))
    assert.is_nil(headers[6])
  end)

  it("raises on bad input as core.sign does, naming the field and never the secret", function()
    local req = request()
    req.region = nil
    local ok, err = pcall(core.sign_headers, req, base_headers(), 3)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("region", 1, true))
    ok, err = pcall(core.sign_headers, request(), { { "Host", 5 } }, 1)
    assert.is_false(ok)
    assert.is_nil(tostring(err):find(SECRET, 1, true))
    assert.has_error(function() core.sign_headers(request(), base_headers(), 4) end)
    assert.has_error(function() core.sign_headers(request(), base_headers(), -1) end)
    assert.has_error(function() core.sign_headers(request(), "x", 0) end)
  end)
end)

describe("core.decode_model", function()
  it("gives the tables of a JSON object, as lua-cjson reads them (nulls left out)", function()
    local text = '{"a":{"b":[1,2.5,"x",true,false],"c":{}},"d":"\\u00e9\\n","e":null,"f":[]}'
    local want = cjson.decode(text)
    want.e = nil
    assert.are.same(want, core.decode_model(text))
  end)

  it("raises on text that is not one JSON object", function()
    for _, bad in ipairs({ "", "[]", "{", '{"a":1} x', '{"a":01}', "null" }) do
      assert.has_error(function() core.decode_model(bad) end, nil, bad)
    end
    assert.has_error(function() core.decode_model({}) end)
  end)

  it("loads the generated DMS model: the operations the client has, their shapes", function()
    assert.are.equal("AmazonDMSv20160101", model.target_prefix)
    assert.are.equal("StartReplicationMessage", model.operations.StartReplication.input)
    assert.is_true(model.operations.StartReplication.unsafe_retry)
    assert.are.same({ "start-replication", "resume-processing", "reload-target" },
      model.shapes.StartReplicationMessage.traits.StartReplicationType.enum)
    assert(core.build(model, "StartReplication",
      { ReplicationConfigArn = ARN, StartReplicationType = "start-replication" }))
  end)
end)
