-- Differential over the whole DMS model: seeded random valid inputs for every
-- operation, serialized by botocore (spec/support/botocore_oracle.py) and by
-- core.build, compared as JSON (arrays apart from objects, longs exactly);
-- and random valid responses (results and modeled errors) for every
-- operation, parsed by both. All equal, but for one difference the protocol
-- allows: epoch-seconds timestamps keep their milliseconds in lua-dms, where
-- botocore drops them.
--
--   DMS_DIFF_SEED  the seed (default 20261125); DMS_DIFF_N  inputs and
--   responses per operation (default 8 each, and 2 error responses).
-- luacheck: max line length 130
local core = require "dms.core"
local model = require "dms.model"
local tree = require "support.json_tree"

local function succeeded(...)
  local a, b, c = ...
  if type(a) == "number" then return a == 0 end -- Lua 5.1 / LuaJIT
  return a == true and (b == nil or b == "exit") and (c == nil or c == 0)
end

local has_botocore = succeeded(os.execute("python3 -c 'import botocore' >/dev/null 2>&1"))
if not has_botocore then
  io.stderr:write("differential_spec: python3 cannot import botocore: the differential is skipped\n")
  describe("differential against botocore (skipped: botocore is not installed)", function() end)
  return
end

local SEED = tonumber(os.getenv("DMS_DIFF_SEED") or "") or 20261125
local N = tonumber(os.getenv("DMS_DIFF_N") or "") or 8
local N_ERRORS = math.max(1, math.floor(N / 4))
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local ORACLE = here .. "support/botocore_oracle.py"
local HAS_INT64 = math.type ~= nil        -- Lua 5.3+: 64-bit integers; LuaJIT: doubles

local rnd = math.random
local function pick(t) return t[rnd(#t)] end
local function sorted_keys(t)
  local ks = {}
  for k in pairs(t or {}) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

-- base64, to hand bytes to the oracle
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = { math.floor(n / 262144) % 64, math.floor(n / 4096) % 64, math.floor(n / 64) % 64, n % 64 }
    for j = 1, 4 do out[#out + 1] = B64:sub(q[j] + 1, q[j] + 1) end
    if not b then out[#out] = "="; out[#out - 1] = "=" elseif not c then out[#out] = "=" end
  end
  return table.concat(out)
end

-- characters: ASCII, JSON's special characters, control characters, UTF-8 of 2, 3 and 4 bytes
local CHARS = { "a", "Z", "0", " ", "-", "_", ":", "/", '"', "\\", "\n", "\t", "\1", "\127", "é", "ß", "日", "本",
                "\240\159\152\128", "\226\130\172", "x", "y", "r", "n" }
local function rand_text(min, max)
  local t = {}
  for i = 1, rnd(min, math.max(min, max)) do t[i] = pick(CHARS) end
  return table.concat(t)
end

local function iso(secs, micro, offset_min)
  local t = secs + (offset_min or 0) * 60
  local s = os.date("!%Y-%m-%dT%H:%M:%S", t)
  if micro and micro > 0 then s = s .. string.format(".%06d", micro) end
  if not offset_min then return s .. "Z" end
  local sign = offset_min < 0 and "-" or "+"
  local a = math.abs(offset_min)
  return s .. string.format("%s%02d:%02d", sign, math.floor(a / 60), a % 60)
end

local function rand_long()
  if HAS_INT64 then
    local r = rnd(4)
    if r == 1 then return rnd(-1000, 1000) end
    if r == 2 then return math.random(0) end                 -- any 64-bit integer
    return rnd(-2 ^ 53, 2 ^ 53)
  end
  return rnd(-2 ^ 31, 2 ^ 31) * (rnd(2) == 1 and 1 or 2 ^ 21) -- integral doubles up to 2^52
end

local function rand_double()
  local r = rnd(12)
  if r == 1 then return rnd(-1000, 1000) + 0.0 end
  if r == 2 then return pick({ 0 / 0, 1 / 0, -1 / 0 }) end
  if r == 3 then return (rnd() - 0.5) * 10 ^ rnd(-300, 300) end
  return (rnd() - 0.5) * 10 ^ rnd(-6, 12)
end

local ARN_TYPES = { "replication-config", "endpoint", "rep", "task", "subgrp", "cert" }

-- A valid value of shape_name: the Lua value for core.build and the JSON
-- value for botocore (tree.encode), built side by side.
local function valid(shape_name, depth, traits)
  local shape = model.shapes[shape_name]
  local t = shape.type
  if traits and traits.enum then
    local v = pick(traits.enum)
    return v, v
  end
  if traits and traits.arn then
    local v = "arn:" .. pick({ "aws", "aws-cn", "aws-us-gov" }) .. ":" .. model.arn_service .. ":"
      .. pick({ "us-east-1", "eu-west-1", "cn-north-1" }) .. ":" .. string.format("%012d", rnd(0, 999999999)) .. ":"
      .. (type(traits.arn) == "string" and traits.arn or pick(ARN_TYPES)) .. ":" .. rand_text(1, 8):gsub("[^%w]", "X")
    return v, v
  end
  if traits and traits.json then
    local v = pick({ "{}", '{"a":1}', '{"rules":[{"rule-type":"selection","rule-id":"1"}]}',
                     '  {"IncludeOnly":["x"],"FailOnAssessmentFailure":true}\n' })
    return v, v
  end
  if t == "structure" then
    local lua, json = {}, {}
    local names = sorted_keys(shape.members)
    local required = {}
    for _, m in ipairs(shape.required or {}) do required[m] = true end
    local given
    if shape.union then given = { [pick(names)] = true } end
    local exclusive_out = {}
    for _, group in ipairs(shape.exclusive or {}) do
      for i = 2, #group do exclusive_out[group[i]] = rnd(2) == 1 end
      if exclusive_out[group[2]] == false then exclusive_out[group[1]] = true end
    end
    for _, m in ipairs(names) do
      local want
      if given then want = given[m] else want = required[m] or (depth < 4 and rnd(2) == 1) end
      if want and not exclusive_out[m] then
        lua[m], json[m] = valid(shape.members[m], depth + 1, shape.traits and shape.traits[m])
      end
    end
    return lua, json
  elseif t == "list" then
    local lua, json = {}, tree.array()
    local n = rnd(shape.min or 0, math.max(shape.min or 0, depth < 4 and 3 or 0))
    for i = 1, n do lua[i], json[i] = valid(shape.member, depth + 1) end
    return lua, json
  elseif t == "map" then
    local lua, json = {}, {}
    for _ = 1, rnd(0, depth < 4 and 3 or 0) do
      local k = rand_text(1, 6)
      lua[k], json[k] = valid(shape.value, depth + 1)
    end
    return lua, json
  elseif t == "string" then
    local v = rand_text(shape.min or 0, shape.max and math.min(shape.max, 24) or 16)
    return v, v
  elseif t == "integer" then
    local v = rnd(shape.min or -2 ^ 31, shape.max or 2 ^ 31 - 1)
    return v, v
  elseif t == "long" then
    local v = rand_long()
    return v, v
  elseif t == "double" or t == "float" then
    local v = rand_double()
    if v ~= v then return v, { __float__ = "NaN" } end
    if v == 1 / 0 or v == -1 / 0 then return v, { __float__ = v > 0 and "Infinity" or "-Infinity" } end
    return v, v
  elseif t == "boolean" then
    local v = rnd(2) == 1
    return v, v
  elseif t == "timestamp" then
    -- 1970..2100; epoch members to the millisecond, iso8601 ones to the microsecond
    local secs = rnd(0, 4102444800)
    local micro = shape.format == "iso8601" and pick({ 0, rnd(1, 999999) }) or pick({ 0, rnd(1, 999) * 1000 })
    local text = iso(secs, micro)
    local r = rnd(3)
    if r == 1 then return text, text end
    if r == 2 then
      local off = rnd(-12 * 60, 14 * 60)
      local t2 = iso(secs, micro, off)
      return t2, t2
    end
    local epoch = secs + micro / 1e6
    return epoch, text
  elseif t == "blob" then
    local bytes = {}
    for i = 1, rnd(0, 20) do bytes[i] = string.char(rnd(0, 255)) end
    local v = table.concat(bytes)
    return v, { __bytes__ = base64(v) }
  end
  error("no generator for " .. t)
end

-- JSON text of a valid response value of shape_name
local function wire(shape_name, depth)
  local shape = model.shapes[shape_name]
  local t = shape.type
  if t == "structure" then
    local parts = {}
    local names = sorted_keys(shape.members)
    if shape.union then names = { pick(names) } end           -- a union has exactly one member set
    for _, m in ipairs(names) do
      if shape.union or (depth < 5 and rnd(depth < 2 and 3 or 6) <= 2) then
        parts[#parts + 1] = tree.encode(m) .. ":" .. wire(shape.members[m], depth + 1)
      end
    end
    return "{" .. table.concat(parts, pick({ ",", ", ", " ,\n " })) .. "}"
  elseif t == "list" then
    local parts = {}
    for i = 1, rnd(0, depth < 4 and 3 or 0) do parts[i] = wire(shape.member, depth + 1) end
    return "[" .. table.concat(parts, ",") .. "]"
  elseif t == "map" then
    local parts = {}
    for i = 1, rnd(0, depth < 4 and 3 or 0) do
      parts[i] = tree.encode(rand_text(1, 6) .. i) .. ":" .. wire(shape.value, depth + 1)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" then
    return tree.encode(rand_text(0, 16))
  elseif t == "integer" then
    return string.format("%d", rnd(-2 ^ 31, 2 ^ 31 - 1))
  elseif t == "long" then
    if rnd(2) == 1 then                                      -- any 64-bit integer, as text
      local digits = tostring(rnd(1, 9)) .. string.format("%09d", rnd(0, 999999999)) .. string.format("%08d", rnd(0, 99999999))
      return (rnd(2) == 1 and "-" or "") .. digits:sub(1, rnd(1, 18))
    end
    return string.format("%d", rnd(-2 ^ 31, 2 ^ 31))
  elseif t == "double" or t == "float" then
    local v = (rnd() - 0.5) * 10 ^ rnd(-8, 15)
    local r = rnd(10)
    if r == 1 then return pick({ '"NaN"', '"Infinity"', '"-Infinity"' }) end
    if r == 2 then return string.format("%d", rnd(-1000, 1000)) end
    return string.format("%.17g", v)
  elseif t == "boolean" then
    return tostring(rnd(2) == 1)
  elseif t == "timestamp" then
    local secs = rnd(0, 4102444800)
    local r = rnd(4)
    if r == 1 then return string.format("%d", secs) end
    if r == 2 then return string.format("%d.%03d", secs, rnd(0, 999)) end
    return '"' .. iso(secs, pick({ 0, rnd(1, 999) * 1000, rnd(1, 999999) }), r == 4 and rnd(-600, 600) or nil) .. '"'
  elseif t == "blob" then
    local bytes = {}
    for i = 1, rnd(0, 20) do bytes[i] = string.char(rnd(0, 255)) end
    return '"' .. base64(table.concat(bytes)) .. '"'
  end
  error("no generator for " .. t)
end

local function digits_of(v)
  if type(v) == "number" then
    if math.type then return string.format("%d", v) end
    return string.format("%.0f", v)
  end
  return (tostring(v):gsub("U?LL$", ""))      -- an int64 cdata on LuaJIT
end

local compare_input
-- ours and theirs: tree nodes of the two bodies
compare_input = function(shape_name, ours, theirs, where)
  local shape = model.shapes[shape_name]
  local t = shape.type
  if t == "timestamp" and (shape.format == nil or shape.format == "unixTimestamp") then
    -- the one difference: botocore writes whole seconds, lua-dms keeps the milliseconds
    if type(ours) ~= "table" or ours.kind ~= "number" or type(theirs) ~= "table" or theirs.kind ~= "number" then
      return false, where .. ": an epoch timestamp is not a number"
    end
    if theirs.value == math.floor(ours.value) then return true end
    return false, where .. ": " .. ours.text .. " vs " .. theirs.text
  end
  if t == "structure" and not shape.document and type(ours) == "table" and ours.kind == "object"
     and type(theirs) == "table" and theirs.kind == "object" then
    for k in pairs(theirs.map) do
      if ours.map[k] == nil then return false, where .. "." .. k .. ": only botocore sends it" end
    end
    for k, v in pairs(ours.map) do
      if theirs.map[k] == nil then return false, where .. "." .. k .. ": only lua-dms sends it" end
      if not shape.members[k] then return false, where .. "." .. k .. ": not a member" end
      local ok, why = compare_input(shape.members[k], v, theirs.map[k], where .. "." .. k)
      if not ok then return false, why end
    end
    return true
  end
  if t == "list" and type(ours) == "table" and ours.kind == "array" and type(theirs) == "table" and theirs.kind == "array" then
    if #ours ~= #theirs then return false, where .. ": " .. #ours .. " items vs " .. #theirs end
    for i = 1, #ours do
      local ok, why = compare_input(shape.member, ours[i], theirs[i], where .. "[" .. i .. "]")
      if not ok then return false, why end
    end
    return true
  end
  if t == "map" and type(ours) == "table" and ours.kind == "object" and type(theirs) == "table" and theirs.kind == "object" then
    for k in pairs(theirs.map) do
      if ours.map[k] == nil then return false, where .. "[" .. k .. "]: only botocore sends it" end
    end
    for k, v in pairs(ours.map) do
      local ok, why = compare_input(shape.value, v, theirs.map[k], where .. "[" .. k .. "]")
      if not ok then return false, why end
    end
    return true
  end
  return tree.same(ours, theirs, where)
end

-- ours: core.parse's Lua value; theirs: the tree node of botocore's parsed value
local compare_output
compare_output = function(shape_name, ours, theirs, where)
  local shape = model.shapes[shape_name]
  local t = shape.type
  local function differ(a, b) return false, where .. ": " .. tostring(a) .. " vs " .. tostring(b) end
  if t == "structure" or t == "map" then
    if type(ours) ~= "table" or type(theirs) ~= "table" or theirs.kind ~= "object" then return differ(ours, theirs) end
    for k in pairs(theirs.map) do
      if ours[k] == nil then return false, where .. "." .. k .. ": only botocore has it" end
    end
    for k, v in pairs(ours) do
      if theirs.map[k] == nil then return false, where .. "." .. tostring(k) .. ": only lua-dms has it" end
      local ok, why = compare_output(t == "map" and shape.value or shape.members[k], v, theirs.map[k], where .. "." .. k)
      if not ok then return false, why end
    end
    return true
  elseif t == "list" then
    if type(ours) ~= "table" or type(theirs) ~= "table" or theirs.kind ~= "array" then return differ(ours, theirs) end
    if #ours ~= #theirs then return false, where .. ": " .. #ours .. " items vs " .. #theirs end
    for i = 1, #ours do
      local ok, why = compare_output(shape.member, ours[i], theirs[i], where .. "[" .. i .. "]")
      if not ok then return false, why end
    end
    return true
  elseif t == "timestamp" then
    if type(ours) == "number" and type(theirs) == "table" and theirs.kind == "number"
       and math.abs(ours - theirs.value) <= 1e-6 then
      return true
    end
    return differ(ours, theirs and theirs.text)
  elseif t == "long" or t == "integer" then
    if type(theirs) == "table" and theirs.kind == "number" and digits_of(ours) == theirs.text then return true end
    return differ(digits_of(ours), theirs and theirs.text)
  elseif t == "double" or t == "float" then
    if type(ours) ~= "number" then return differ(ours, theirs) end
    if theirs == "NaN" and ours ~= ours then return true end
    if (theirs == "Infinity" and ours == math.huge) or (theirs == "-Infinity" and ours == -math.huge) then return true end
    if type(theirs) == "table" and theirs.kind == "number" and theirs.value == ours then return true end
    return differ(ours, theirs and (theirs.text or theirs))
  elseif t == "blob" then
    if type(ours) == "string" and type(theirs) == "table" and theirs.kind == "object"
       and theirs.map.__bytes__ == base64(ours) then
      return true
    end
    return differ(ours and base64(ours), theirs)
  end
  if ours == theirs then return true end
  return differ(ours, theirs)
end

describe("differential against botocore over the DMS model (seed " .. SEED .. ", " .. N .. " per operation)", function()
  local ops = sorted_keys(model.operations)
  local errors = sorted_keys(model.errors)
  local cases, inputs, outputs = {}, {}, {}

  math.randomseed(SEED)
  for _, op in ipairs(ops) do
    local def = model.operations[op]
    for i = 1, N do
      local lua, json = {}, {}                -- an operation without input sends {}
      if def.input then lua, json = valid(def.input, 0) end
      inputs[#inputs + 1] = { op = op, i = i, params = lua, case = #cases + 1 }
      cases[#cases + 1] = { op = op, params = json }
      -- an operation without output ignores whatever object comes
      local body = def.output and wire(def.output, 0) or pick({ "{}", '{"foo":true}', "" })
      outputs[#outputs + 1] = { op = op, i = i, status = 200, body = body, case = #cases + 1 }
      cases[#cases + 1] = { op = op, response = { status = 200, headers = {}, body = body } }
    end
    for i = 1, N_ERRORS do
      local code = pick(errors)
      local members = wire(model.errors[code], 0)
      local body = '{"__type":' .. tree.encode(pick({ "", "aws.dms#", "com.amazonaws.dms#" }) .. code)
        .. (members == "{}" and "}" or "," .. members:sub(2))
      local status = pick({ 400, 404, 409, 500 })
      local headers = { ["x-amzn-requestid"] = "rid-" .. i }
      outputs[#outputs + 1] = { op = op, i = i, status = status, body = body, headers = headers, case = #cases + 1,
                                error_shape = model.errors[code] }
      cases[#cases + 1] = { op = op, response = { status = status, headers = headers, body = body } }
    end
  end

  local results
  lazy_setup(function()
    local input, output = os.tmpname(), os.tmpname()
    local f = assert(io.open(input, "wb"))
    local encoded = {}
    for i, c in ipairs(cases) do
      encoded[i] = tree.encode(c.params and { op = c.op, params = c.params } or { op = c.op, response = c.response })
    end
    f:write("[" .. table.concat(encoded, ",\n") .. "]")
    f:close()
    local ran = succeeded(os.execute(string.format("python3 %q < %q > %q", ORACLE, input, output)))
    f = assert(io.open(output, "rb"))
    local text = f:read("*a")
    f:close()
    os.remove(input)
    os.remove(output)
    assert(ran, "the botocore oracle failed: " .. text:sub(1, 2000))
    local why
    results, why = tree.decode(text)
    assert(results, why)
    assert.are.equal(#cases, #results)
  end)

  local function answer(i)
    local r = results[i]
    assert(r and r.kind == "object", "no oracle answer")
    assert(r.map.oracle_error == nil, "botocore failed: " .. tostring(r.map.oracle_error))
    return r.map
  end

  it("serializes " .. N .. " random valid inputs of every operation as botocore does", function()
    local agreed, by_op = 0, {}
    for _, c in ipairs(inputs) do
      local where = c.op .. " input " .. c.i
      local r = answer(c.case)
      assert(r.body, where .. ": botocore refused the params: " .. tostring(r.validation_error))
      local req, err = core.build(model, c.op, c.params)
      assert(req, where .. ": " .. tostring(err))
      local ours = assert(tree.decode(req.body))
      local theirs = assert(tree.decode(r.body))
      local ok, why
      if model.operations[c.op].input then
        ok, why = compare_input(model.operations[c.op].input, ours, theirs, "$")
      else
        ok, why = tree.same(ours, theirs)
      end
      assert(ok, where .. ": " .. tostring(why) .. "\n  lua-dms:  " .. req.body .. "\n  botocore: " .. r.body)
      assert.are.equal(r.content_type, req.headers[1][2])
      assert.are.equal(r.target, req.headers[2][2])
      agreed = agreed + 1
      by_op[c.op] = true
    end
    local nops = 0
    for _ in pairs(by_op) do nops = nops + 1 end
    io.stderr:write(string.format("differential_spec: %d inputs of %d operations serialized alike\n", agreed, nops))
    assert.are.equal(#ops, nops)
  end)

  it("parses " .. N .. " random valid responses and " .. N_ERRORS .. " modeled errors of every operation as botocore does",
     function()
    local agreed, errs = 0, 0
    for _, c in ipairs(outputs) do
      local where = c.op .. " response " .. c.i .. " (" .. c.status .. ")"
      local r = answer(c.case)
      local ours, err = core.parse(model, c.op, c.status, c.headers or {}, c.body)
      if c.status == 200 then
        assert(ours, where .. ": " .. tostring(err) .. "\n  body: " .. c.body)
        assert(r.parsed, where .. ": botocore found an error")
        local ok, why
        if model.operations[c.op].output then
          ok, why = compare_output(model.operations[c.op].output, ours, r.parsed, "$")
        else
          ok, why = next(ours) == nil and next(r.parsed.map) == nil, "an operation without output gave a result"
        end
        assert(ok, where .. ": " .. tostring(why) .. "\n  body: " .. c.body)
      else
        assert.is_nil(ours, where)
        local e = r.error and r.error.map
        assert(e, where .. ": botocore found no error")
        assert.are.equal(e.code, err.code, where)
        if e.message ~= "" then assert.are.equal(e.message:gsub("[%c]", " "), err.message, where) end
        assert.are.equal("rid-" .. c.i, err.request_id)
        -- a message member reads as err.message does: on one line
        for _, k in ipairs({ "message", "Message" }) do
          if e.fields and type(e.fields.map[k]) == "string" then e.fields.map[k] = e.fields.map[k]:gsub("[%c]", " ") end
        end
        local ok, why = compare_output(c.error_shape, err.fields, e.fields, "err.fields")
        assert(ok, where .. ": " .. tostring(why) .. "\n  body: " .. c.body)
        errs = errs + 1
      end
      agreed = agreed + 1
    end
    io.stderr:write(string.format("differential_spec: %d responses (%d of them errors) parsed alike\n", agreed, errs))
    assert.are.equal(#ops * (N + N_ERRORS), agreed)
  end)
end)
