-- dms.core.build and dms.core.parse fed random input, with a fixed seed.
--
-- build gets random parameter tables for random operations of dms.model (and
-- of a small model of its own that has the shape kinds dms.model lacks: maps,
-- ISO-8601 timestamps, limits, enums, ARNs, exclusive members): values that
-- mostly follow the input shape but with wrong types, huge strings, NaN and
-- infinities, cycles, deep nesting, keys that are not strings. It must never
-- raise, and must return either a request whose body cjson decodes to an
-- object, or nil and an error of kind "validation".
--
-- parse gets random bytes and random JSON (most of it shaped like the
-- operation's output) with random statuses and headers. It must never raise,
-- and must return a table, or nil and an error value.
--
-- Hostile tables where dms.core reads through metamethods (response headers,
-- date tables) or must not (the model, params): an __index that builds each
-- value afresh (and collects garbage), one that raises, one that yields from a
-- coroutine. A value read from Lua must stay reachable while C uses it; a
-- raise or a yield from the caller's own metamethod comes back as a Lua error,
-- never as a crash. And the values out of range: times of 1e308, ARNs of
-- megabytes, invalid UTF-8, NULs inside enum values and member names,
-- statuses beyond any HTTP status.
--
-- Meant to run under the ASan/UBSan build of dms.core as well (see
-- tools/test.sh), where a memory error aborts the run.
local core = require "dms.core"
local model = require "dms.model"
local cjson = require "cjson"

local BUILD_CASES = 2000
local PARSE_CASES = 2000

local rnd = math.random
local maxint = math.maxinteger or 2 ^ 53
local minint = math.mininteger or -2 ^ 53

local function pick(t) return t[rnd(#t)] end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t or {}) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

-- a small model with what dms.model does not have
local synth = {
  target_prefix = "Fuzz",
  operations = {
    Op = { input = "In", output = "In" },
    NoShapes = {},
    Missing = { input = "NoSuchShape", output = "NoSuchShape" },
  },
  shapes = {
    In = {
      type = "structure",
      members = {
        S = "Str", Short = "Short", I = "Int", L = "Long", D = "Dbl", F = "Flt", B = "Bool",
        T = "TS", TI = "TSIso", Bl = "Blob", M = "Map", Li = "List", Few = "FewList", Nest = "In",
        J = "Str", E = "Str", A = "Str", A2 = "Str", U = "NoSuchShape",
      },
      required = { "S" },
      exclusive = { { "I", "L" }, { "E", "A", "A2" } },
      traits = { J = { json = true }, E = { enum = { "a", "b", "c" } }, A = { arn = "replication-config" },
                 A2 = { arn = true } },
    },
    Str = { type = "string" },
    Short = { type = "string", min = 2, max = 5 },
    Int = { type = "integer", min = -10, max = 1000 },
    Long = { type = "long" },
    Dbl = { type = "double" },
    Flt = { type = "float" },
    Bool = { type = "boolean" },
    TS = { type = "timestamp" },
    TSIso = { type = "timestamp", format = "iso8601" },
    Blob = { type = "blob" },
    Map = { type = "map", key = "Str", value = "In" },
    List = { type = "list", member = "In" },
    FewList = { type = "list", member = "Int", min = 1, max = 3 },
  },
}

local MODELS = { model, model, model, synth }
local OPS = {}
for _, m in ipairs(MODELS) do
  if not OPS[m] then OPS[m] = sorted_keys(m.operations) end
end

local NUMBERS = {
  0, -0.0, 1, -1, 0.5, -0.5, 1 / 0, -1 / 0, 0 / 0, 2 ^ 31, 2 ^ 31 - 1, -2 ^ 31, -2 ^ 31 - 1,
  2 ^ 53, 2 ^ 53 + 2, -2 ^ 53, 2 ^ 63, -2 ^ 63, 2 ^ 64, 1e14, 1e14 - 1, -1e14, 99999999999999,
  1e308, -1e308, 5e-324, 1e-300, 253402300800, 253402300799.9996, -62135596800, -62135596800.0004,
  -62135596801, 1e15, 3.0, 1795608000, maxint, minint, 1e10, -1e10, 2 ^ 40,
}

local STRINGS = {
  "", "a", "start-replication", "arn:aws:dms:us-east-1:123456789012:replication-config:X",
  "arn:aws:dms:us-east-1:123456789012:replication-config:", "arn:::::", "arn:aws:dms:r:1:x",
  "arn:AWS:dms:us-east-1:123456789012:replication-config:X", "arn:aws:dms:us-east-1:12345678901x:rep:X",
  "2026-11-25T12:00:00Z", "2026-02-30", "2024-02-29T23:59:60.999999+23:59", "9999-12-31T23:59:59.9999Z",
  "0000-01-01", "0001-01-01T00:00:00-23:59", "2026-11-25T12:00", "2026-11-25t12:00:00z", "2026-11-25 12:00:00,5",
  "2026-11-25T12:00:00.", "2026-13-01", "12", "0x1p99999", "1e999", "-nan", "inf", "{", "{}", "{\"a\":1}",
  "  {\"a\":[1,2,{\"b\":null}]}", "{\"a\":", "[1]", "null", "%s%s%s%n", "\0\0\0", "a\0b", "\255\254\253",
  "\r\n", "AAAA", "AA==", "====", "A===", "    ", "a", "b",
}

local function rand_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(rnd(0, 255)) end
  return table.concat(t)
end

local function rand_string()
  local r = rnd(100)
  if r <= 40 then return pick(STRINGS) end
  if r <= 75 then return rand_bytes(rnd(0, 24)) end
  if r <= 90 then return string.rep(pick({ "a", "%", "/", "x", "\0", "[" }), rnd(60, 3000)) end
  if r <= 97 then return rand_bytes(rnd(200, 5000)) end
  return string.rep("z", rnd(2 ^ 16, 2 ^ 18))             -- huge
end

local function rand_number()
  local r = rnd(4)
  if r == 1 then return pick(NUMBERS) end
  if r == 2 then return rnd(-1000, 1000) end
  if r == 3 then return (rnd() - 0.5) * 10 ^ rnd(-10, 20) end
  return rnd(minint > -2 ^ 53 and minint or -2 ^ 53, maxint < 2 ^ 53 and maxint or 2 ^ 53)
end

local function nested(depth, leaf, as_map)
  local t = leaf
  for _ = 1, depth do t = as_map and { a = t } or { t } end
  return t
end

local any  -- forward

local function rand_key()
  local r = rnd(10)
  if r <= 5 then return rand_string() end
  if r == 6 then return rand_number() == rand_number() and 1 or rnd(-3, 10) end
  if r == 7 then return rnd(2) == 1 end
  if r == 8 then return {} end
  if r == 9 then return print end
  return (rnd() - 0.5) * 100   -- a float key
end

local function date_table()
  local t = {}
  local function field(lo, hi)
    local r = rnd(4)
    if r == 1 then return rand_number() end
    if r == 2 then return pick({ -1e10, 1e10, 2 ^ 31, -2 ^ 31 - 1, 2 ^ 53, 1 / 0, 0 / 0, 1.5, "1", maxint, minint }) end
    return rnd(lo, hi)
  end
  t.year = field(-5, 10005)
  t.month = field(0, 13)
  t.day = field(0, 32)
  if rnd(2) == 1 then t.hour = field(-1, 24) end
  if rnd(2) == 1 then t.min = field(-1, 60) end
  if rnd(2) == 1 then t.sec = field(-1, 61) end
  if rnd(2) == 1 then t.isdst = rnd(2) == 1 end
  return t
end

local function rand_table(depth)
  local t = {}
  local r = rnd(8)
  if r == 1 then                            -- a list
    for i = 1, rnd(0, 6) do t[i] = any(depth + 1) end
  elseif r == 2 then                        -- a sparse list
    t[1] = any(depth + 1); t[rnd(3, 40)] = any(depth + 1)
  elseif r == 3 then                        -- a cycle
    t.a = t; t[1] = t; t.Nest = t
  elseif r == 4 then                        -- deep nesting
    return nested(rnd(60, 150), any(depth + 1), rnd(2) == 1)
  elseif r == 5 then                        -- a date table, fields of any kind
    return date_table()
  else                                      -- random keys
    for _ = 1, rnd(0, 5) do
      local k = rand_key()
      if k == k then t[k] = any(depth + 1) end
    end
  end
  return t
end

any = function(depth)
  depth = depth or 0
  local r = rnd(20)
  if depth > 4 and r > 12 then r = rnd(12) end
  if r <= 4 then return rand_string() end
  if r <= 8 then return rand_number() end
  if r == 9 then return rnd(2) == 1 end
  if r == 10 then return pick({ print, coroutine.create(print), io.stdout, cjson.null }) end
  if r == 11 then return cjson.null end
  return rand_table(depth)
end

-- a value that follows shape_name in model m, with a mutation now and then
local function shaped(m, shape_name, depth)
  local shape = m.shapes[shape_name]
  if not shape or rnd(100) <= 7 or depth > 7 then return any(depth) end
  local t = shape.type
  if t == "structure" then
    local out = {}
    for _, name in ipairs(sorted_keys(shape.members)) do
      if rnd(3) == 1 then out[name] = shaped(m, shape.members[name], depth + 1) end
    end
    if shape.traits and rnd(3) == 1 then
      for _, name in ipairs(sorted_keys(shape.traits)) do
        local tr = shape.traits[name]
        if tr.enum then out[name] = rnd(2) == 1 and pick(tr.enum) or rand_string() end
        if tr.arn then
          out[name] = "arn:aws:dms:us-east-1:123456789012:" .. tostring(tr.arn) .. ":" .. (rnd(2) == 1 and "N" or "")
        end
        if tr.json then out[name] = rnd(2) == 1 and rand_table(depth) or pick(STRINGS) end
      end
    end
    for _, name in ipairs(shape.required or {}) do
      if rnd(4) > 1 then out[name] = shaped(m, shape.members[name], depth + 1) end
    end
    if rnd(15) == 1 then out[rand_key()] = any(depth + 1) end
    return out
  elseif t == "list" then
    local out = {}
    for i = 1, rnd(0, 4) do out[i] = shaped(m, shape.member, depth + 1) end
    if rnd(15) == 1 then out[#out + 2] = 1 end
    return out
  elseif t == "map" then
    local out = {}
    for _ = 1, rnd(0, 3) do out[rand_string()] = shaped(m, shape.value, depth + 1) end
    return out
  elseif t == "string" then
    return rand_string()
  elseif t == "integer" or t == "long" or t == "double" or t == "float" then
    return rand_number()
  elseif t == "boolean" then
    return rnd(2) == 1
  elseif t == "timestamp" then
    local r = rnd(3)
    if r == 1 then return rand_number() end
    if r == 2 then return pick(STRINGS) end
    return rnd(4) == 1 and rand_table(0) or date_table()
  elseif t == "blob" then
    return rand_string()
  end
  return any(depth)
end

local tree = require "support.json_tree"

-- strict JSON (no NaN, control characters escaped, valid escapes), an object
local function decodes_to_object(text)
  local v = tree.decode(text)
  return type(v) == "table" and v.kind == "object"
end

local function check_error(err, kinds, where)
  assert(type(err) == "table", where .. ": the error is not a table: " .. tostring(err))
  assert(kinds[err.kind], where .. ": unexpected error kind " .. tostring(err.kind))
  assert(type(err.code) == "string", where .. ": error without a code")
  assert(type(err.message) == "string", where .. ": error without a message")
  local s = tostring(err)
  assert(type(s) == "string" and not s:find("[\r\n]"), where .. ": tostring(err) is not one line")
end

describe("core.build with random parameters", function()
  it("returns a request whose body cjson decodes, or a validation error; never raises", function()
    math.randomseed(1234)
    local built, refused = 0, 0
    for case = 1, BUILD_CASES do
      local m = pick(MODELS)
      local op = rnd(30) == 1 and rand_string() or pick(OPS[m])
      local params
      local r = rnd(20)
      if r == 1 then
        params = any(0)                     -- not necessarily a table
      elseif r == 2 then
        params = nil
      else
        local opdef = m.operations[op]
        params = shaped(m, opdef and opdef.input or "", 0)
        if type(params) ~= "table" then params = { params } end
      end
      local where = ("build case %d (%s)"):format(case, op)
      local ok, req, err = pcall(core.build, m, op, params)
      assert(ok, where .. " raised: " .. tostring(req))
      if req ~= nil then
        assert(err == nil, where .. ": a request and an error")
        assert(type(req) == "table" and type(req.body) == "string", where .. ": no body")
        assert(decodes_to_object(req.body), where .. ": the body is not a JSON object: " .. req.body:sub(1, 200))
        assert(req.method == "POST" and req.path == "/" and req.operation == op, where .. ": request fields")
        assert(type(req.headers) == "table" and #req.headers == 2, where .. ": headers")
        built = built + 1
      else
        check_error(err, { validation = true }, where)
        refused = refused + 1
      end
    end
    -- both outcomes were exercised
    assert.is_true(built > BUILD_CASES / 20, "built " .. built)
    assert.is_true(refused > BUILD_CASES / 20, "refused " .. refused)
  end)

  it("raises only for arguments of the wrong type", function()
    math.randomseed(1234)
    for _, op in ipairs({ {}, print, true }) do
      assert.has_error(function() core.build(model, op, {}) end)
    end
    for _ = 1, 200 do
      local v = any(0)
      local ok, req, err = pcall(core.build, model, "StartReplication", v)
      assert(ok, "raised: " .. tostring(req))
      if req == nil then check_error(err, { validation = true }, "build with " .. type(v)) end
    end
  end)
end)

-- metatables whose __index misbehaves
local function afresh(make)
  return { __index = function(_, k)
    collectgarbage()
    return make(k)
  end }
end
local RAISES = { __index = function(_, k) error("raised reading " .. tostring(k)) end }
local YIELDS = { __index = function(_, k) return coroutine.yield(k) end }

-- runs f in a coroutine (so that a yield has somewhere to go); returns
-- pcall-like results: true, ... or false, message
local unpack = table.unpack or unpack
local function run(f)
  local co = coroutine.create(function() return f() end)
  local res = { n = 0 }
  local function keep(...) res = { n = select("#", ...), ... } end
  keep(coroutine.resume(co))
  if res[1] and coroutine.status(co) == "suspended" then
    return false, "yielded"     -- a yield through dms.core that came back out (not allowed)
  end
  return unpack(res, 1, res.n)
end

local ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:X"

describe("hostile tables", function()
  it("in response headers: values built afresh stay reachable; raises and yields come back as Lua errors", function()
    math.randomseed(99)
    for case = 1, 300 do
      local mt = pick({ afresh(function(k)
        if k == "x-amzn-errortype" then return pick({ "aws#ThrottlingException", "::::", rand_string() }) end
        return rand_string() .. string.rep("r", rnd(0, 64))
      end), RAISES, YIELDS })
      local headers = setmetatable({}, mt)
      local status = pick({ 200, 400, 500, 503, 2 ^ 40, 0 })
      local body = pick({ "", "{}", "{", '{"__type":"X","message":"m"}', "<html>" })
      local ok, r, err = run(function() return core.parse(model, "StartReplication", status, headers, body) end)
      local where = ("headers case %d"):format(case)
      if mt == RAISES or mt == YIELDS then
        if not ok then assert(type(r) == "string", where .. ": the error is not a message") end
      else
        assert(ok, where .. " raised: " .. tostring(r))
      end
      if ok then
        if r == nil then
          check_error(err, { service = true, transport = true }, where)
          if mt ~= RAISES and mt ~= YIELDS and err.request_id then
            assert(not err.request_id:find("[%c]"), where .. ": request id not on one line")
          end
        else
          assert(type(r) == "table", where)
        end
      end
    end
  end)

  it("as date tables: read through __index, refused or raised, never a crash", function()
    math.randomseed(98)
    for case = 1, 300 do
      local mt = pick({ afresh(function(k)
        if k == "year" then return pick({ 2026, 2026.0, 1e308, -1e300, 0 / 0, "2026" }) end
        if k == "month" then return rnd(0, 13) end
        if k == "day" then return rnd(0, 32) end
        return pick({ nil, 0, 12, 59, 1e10 })
      end), RAISES, YIELDS })
      local params = { ReplicationConfigArn = ARN, StartReplicationType = "start-replication",
                       CdcStartTime = setmetatable({}, mt) }
      local ok, req, err = run(function() return core.build(model, "StartReplication", params) end)
      local where = ("date table case %d"):format(case)
      if mt == RAISES or mt == YIELDS then
        if not ok then assert(type(req) == "string", where) end
      else
        assert(ok, where .. " raised: " .. tostring(req))
      end
      if ok and req == nil then check_error(err, { validation = true }, where) end
      if ok and req then assert(decodes_to_object(req.body), where) end
    end
  end)

  it("as params and the model: read raw, so their metamethods never run", function()
    local ran = 0
    local function mt() return { __index = function() ran = ran + 1 error("must not run") end,
                                 __pairs = function() ran = ran + 1 error("must not run") end,
                                 __len = function() ran = ran + 1 error("must not run") end } end
    local params = setmetatable({ ReplicationConfigArn = ARN, StartReplicationType = "start-replication",
                                  CdcStartTime = 1795608000 }, mt())
    assert(core.build(model, "StartReplication", params))
    local filters = setmetatable({ setmetatable({ Name = "n", Values = setmetatable({ "v" }, mt()) }, mt()) }, mt())
    assert(core.build(model, "DescribeReplications", { Filters = filters }))
    local proxy = setmetatable({ operations = model.operations, shapes = setmetatable({}, mt()) }, mt())
    local req, err = core.build(proxy, "StartReplication", { ReplicationConfigArn = ARN, StartReplicationType = "x" })
    assert.is_nil(req)
    assert.are.equal("ModelError", err.code)
    local r, perr = core.parse(proxy, "StartReplication", 200, {}, '{"Replication":{"Status":"running"}}')
    assert(r or perr)
    assert.are.equal(0, ran)
  end)
end)

describe("values out of range", function()
  local function refused(params, member)
    local p = { ReplicationConfigArn = ARN, StartReplicationType = "start-replication" }
    for k, v in pairs(params) do p[k] = v end
    local ok, req, err = pcall(core.build, model, "StartReplication", p)
    assert(ok, req)
    assert.is_nil(req, member)
    check_error(err, { validation = true }, member)
    assert.are.equal(member, err.member)
  end

  it("are refused before any I/O, naming the member", function()
    math.randomseed(97)
    for _ = 1, 200 do
      refused({ CdcStartTime = pick({ 1e308, -1e300, 2 ^ 63, -2 ^ 63, 253402300800, -62135596801, 1 / 0, 0 / 0,
                                      rnd() * 1e300 + 1e12 }) }, "CdcStartTime")
      refused({ ReplicationConfigArn = ARN .. string.rep("x", rnd(2049, 2 ^ 20)) }, "ReplicationConfigArn")
      refused({ CdcStopPosition = rand_string() .. pick({ "\255", "\192\128", "\237\160\128", "\244\144\128\128" }) },
              "CdcStopPosition")
      refused({ StartReplicationType = pick({ "reload-target", "start-replication", "resume-processing" })
                                       .. "\0" .. rand_string() }, "StartReplicationType")
    end
  end)

  it("in statuses give a MalformedResponse error value", function()
    for _, status in ipairs({ 2 ^ 40, 2 ^ 53, 2 ^ 62, -2 ^ 62, 600, 99, 0, -1 }) do
      local r, err = core.parse(model, "StartReplication", status, {}, '{"__type":"X"}')
      assert.is_nil(r)
      assert.are.equal("MalformedResponse", err.code)
    end
  end)
end)

describe("core.timestamp with random values", function()
  it("returns a number, or nil and an error value; never raises", function()
    math.randomseed(1234)
    for case = 1, 1000 do
      local v = rnd(2) == 1 and date_table() or any(0)
      local ok, t, why = pcall(core.timestamp, v)
      assert(ok, ("timestamp case %d raised: %s"):format(case, tostring(t)))
      assert(type(t) == "number" or (t == nil and type(why) == "table" and why.code == "InvalidTimestamp"),
        ("timestamp case %d"):format(case))
    end
  end)
end)

local JSON_TEXTS = {
  "", " ", "{}", "[]", "null", "1", "\"x\"", "{", "}", "[", "{\"a\":}", "{\"__type\":\"x#Y:z\"}",
  "{\"__type\":\"#\"}", "{\"__type\":\":\"}", "{\"__type\":\"\",\"message\":\"\"}", "{\"code\":1}",
  "{\"message\":\"The Canonical String for this request should have been\\nX\"}",
  "{\"Message\":\"\\r\\n\\n   The String-to-Sign should have been\"}", "{\"a\":1e400,\"b\":-1e400}",
  "{\"a\":123456789012345678901234567890}", "{\"a\":-0}", "{\"a\":nan}", "{\"a\":Infinity}",
  "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}", "<html><body>\0\r\n bad   gateway </body></html>",
}

local wire_cjson = cjson.new()
wire_cjson.encode_invalid_numbers(true)
wire_cjson.encode_sparse_array(true)

-- a Lua value shaped like the wire form of shape_name (JSON-able), with mutations
local function wire(m, shape_name, depth)
  local shape = m.shapes[shape_name or ""]
  if not shape or rnd(100) <= 8 or depth > 7 then
    local r = rnd(6)
    if r == 1 then return rand_bytes(rnd(0, 16)) end
    if r == 2 then return rand_number() end
    if r == 3 then return rnd(2) == 1 end
    if r == 4 then return cjson.null end
    if r == 5 then return { rand_number(), rand_bytes(3) } end
    return { [rand_bytes(rnd(1, 6))] = rand_number() }
  end
  local t = shape.type
  if t == "structure" then
    local out = {}
    for _, name in ipairs(sorted_keys(shape.members)) do
      if rnd(2) == 1 then out[name] = wire(m, shape.members[name], depth + 1) end
    end
    if rnd(8) == 1 then out[rand_bytes(rnd(0, 8))] = wire(m, nil, depth + 1) end
    if rnd(8) == 1 then out.Null = cjson.null end
    return out
  elseif t == "list" then
    local out = {}
    for i = 1, rnd(0, 4) do out[i] = wire(m, shape.member, depth + 1) end
    return out
  elseif t == "map" then
    local out = {}
    for _ = 1, rnd(0, 3) do out[rand_bytes(rnd(0, 6))] = wire(m, shape.value, depth + 1) end
    return out
  elseif t == "timestamp" then
    return rnd(2) == 1 and rand_number() or pick(STRINGS)
  elseif t == "blob" then
    return pick({ "", "AAAA", "AA==", "AAA=", "QUJD", "====", "A===", "    AA==", "AA==    ", "QQ", rand_string() })
  elseif t == "string" then
    return rand_string()
  elseif t == "boolean" then
    return rnd(2) == 1
  end
  return rand_number()
end

local function mutate(text)
  local r = rnd(6)
  if r == 1 and #text > 0 then return text:sub(1, rnd(0, #text)) end          -- truncated
  if r == 2 and #text > 0 then                                               -- a byte changed
    local i = rnd(#text)
    return text:sub(1, i - 1) .. string.char(rnd(0, 255)) .. text:sub(i + 1)
  end
  return text
end

-- what a proxy might answer: words, blanks and control characters
local function rand_text(n)
  local t = {}
  for i = 1, n do
    local r = rnd(8)
    t[i] = r == 1 and pick({ " ", "  ", "\t", "\r\n", "\0", "\127", "\200" }) or string.char(rnd(33, 126))
  end
  return table.concat(t)
end

local function rand_body(m, op)
  local r = rnd(11)
  if r == 11 then return rand_text(rnd(0, 300)) end
  if r == 1 then return rand_bytes(rnd(0, 64)) end
  if r == 2 then return pick(JSON_TEXTS) end
  if r == 3 then                                                             -- deep nesting
    local n = rnd(50, 1100)
    return pick({ string.rep("[", n) .. string.rep("]", n),
                  string.rep("{\"a\":", n) .. "1" .. string.rep("}", n) })
  end
  local opdef = m.operations[op]
  local ok, text = pcall(wire_cjson.encode, wire(m, opdef and opdef.output, 0))
  if not ok then text = "{}" end
  return r <= 5 and mutate(text) or text
end

local STATUSES = { 200, 200, 200, 200, 201, 204, 299, 300, 199, 100, 0, -1, 400, 400, 403, 404, 408, 413, 429,
                   500, 502, 503, 504, 599, 2 ^ 31, -2 ^ 31 - 1, 2 ^ 40, 2 ^ 53 }

local function rand_headers()
  local r = rnd(6)
  if r == 1 then return nil end
  if r == 2 then return any(3) end
  local h = {}
  if rnd(2) == 1 then h["x-amzn-requestid"] = rnd(3) == 1 and any(5) or rand_string() end
  if rnd(2) == 1 then
    h["x-amzn-errortype"] = rnd(3) == 1 and any(5)
      or pick({ "", ":", "#", "a#", "#b", "ThrottlingException:http://x", "aws#Throttling", rand_string() })
  end
  return h
end

describe("core.parse with random responses", function()
  it("returns a table, or nil and an error value; never raises", function()
    math.randomseed(1234)
    local results, errors = 0, 0
    for case = 1, PARSE_CASES do
      local m = pick(MODELS)
      local op = pick(OPS[m])
      local status = pick(STATUSES)
      if rnd(4) == 1 then status = rnd(-1000, 1000) end
      local body = rand_body(m, op)
      local where = ("parse case %d (%s, %d)"):format(case, op, status)
      local ok, r, err = pcall(core.parse, m, op, status, rand_headers(), body)
      assert(ok, where .. " raised: " .. tostring(r))
      if r ~= nil then
        assert(err == nil, where .. ": a result and an error")
        assert(type(r) == "table", where .. ": the result is a " .. type(r))
        assert(status >= 200 and status < 300, where .. ": a result for a non-2xx status")
        results = results + 1
      else
        check_error(err, { service = true, transport = true }, where)
        errors = errors + 1
      end
    end
    assert.is_true(results > PARSE_CASES / 20, "results " .. results)
    assert.is_true(errors > PARSE_CASES / 20, "errors " .. errors)
  end)

  it("raises only for an unknown operation or arguments of the wrong type", function()
    math.randomseed(1234)
    for _ = 1, 200 do
      local op = rand_string()
      local ok, msg = pcall(core.parse, model, op, 200, {}, "{}")
      if not ok then
        assert(model.operations[op] == nil and tostring(msg):find("unknown operation", 1, true), tostring(msg))
      end
    end
    if math.type then   -- LuaJIT truncates a fractional status
      assert.has_error(function() core.parse(model, "StartReplication", 200.5, {}, "{}") end)
    end
    assert.has_error(function() core.parse(model, "StartReplication", 200, {}, {}) end)
    assert.has_error(function() core.parse(model, "StartReplication", "x", {}, "{}") end)
  end)
end)

describe("a proxy table (empty, its values behind __index)", function()
  it("is refused where a structure, list or map is expected, never sent as empty", function()
    local function proxy(t) return setmetatable({}, { __index = t, __len = function() return #t end }) end
    local cases = {
      { "DescribeReplications", proxy({ Filters = { { Name = "replication-config-arn", Values = { ARN } } } }), "" },
      { "DescribeReplications", { Filters = proxy({ { Name = "replication-config-arn", Values = { ARN } } }) },
        "Filters" },
      { "DescribeReplications", { Filters = { { Name = "replication-config-arn", Values = proxy({ ARN }) } } },
        "Filters[1].Values" },
    }
    for i, c in ipairs(cases) do
      local req, err = core.build(model, c[1], c[2])
      assert.is_nil(req, "case " .. i)
      assert.are.equal("InvalidParameterType", err.code, "case " .. i)
      assert.truthy(err.message:find("proxy", 1, true), "case " .. i)
    end
    -- an empty plain table is an empty list, as before
    local req = assert(core.build(model, "DescribeReplications", { Filters = {} }))
    assert.truthy(req.body:find('"Filters":[]', 1, true))
  end)
end)
