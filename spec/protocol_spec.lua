-- botocore's own protocol tests for awsJson1_1 and awsJson1_0 (in
-- ../shared/reference/protocol-tests, or $DMS_REFERENCE/protocol-tests), run
-- through core.build and core.parse with a model per suite that
-- tools/gen_model.py makes from the suite's shapes at test time.
--
-- Input cases: method, URI, the headers the case names and the body (compared
-- as JSON, arrays apart from objects and long integers exactly). Output
-- cases: the result, or the error's code, message and modeled members
-- (err.fields). Cases about host prefixes, endpoint paths and request
-- compression test an HTTP client, not the JSON protocol: they are pending,
-- with the reason.
local core = require "dms.core"
local cjson = require "cjson"
local files = require "support.files"
local tree = require "support.json_tree"

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local root = here .. "../"
local REF = os.getenv("DMS_REFERENCE") or (root .. "../shared/reference")
local SUITE_FILES = { "input_json.json", "input_json_1_0.json", "output_json.json", "output_json_1_0.json" }

local function succeeded(...)
  local a, b, c = ...
  if type(a) == "number" then return a == 0 end -- Lua 5.1 / LuaJIT
  return a == true and (b == nil or b == "exit") and (c == nil or c == 0)
end

-- a chunk of generated Lua with NULL and I() defined
local function load_cases(path)
  local env = {
    NULL = cjson.null,
    I = function(digits)
      if math.type then return math.tointeger(tonumber(digits)) end
      return { exact_integer = digits }       -- LuaJIT compares these by their digits
    end,
  }
  local text = assert(files.read(path))
  local chunk
  if setfenv then
    chunk = assert(loadstring(text, "=" .. path))
    setfenv(chunk, env)
  else
    chunk = assert(load(text, "=" .. path, "t", env))
  end
  return chunk()
end

local function reason_to_skip(case)
  local given = case.given
  if given.endpoint and given.endpoint.hostPrefix then
    return "host prefix (" .. given.endpoint.hostPrefix .. "): the endpoint's host is the client's, not dms.core's"
  end
  if given.requestcompression then
    return "request compression (" .. table.concat(given.requestcompression.encodings, ", ") .. ") is not done"
  end
  local s = case.serialized
  if s and (s.uri ~= "/" or (s.host and s.host:find("/", 1, true))) then
    return "endpoint path (" .. tostring(s.host) .. "): the endpoint URL is the client's, not dms.core's"
  end
end

local function header(headers, name)
  for _, h in ipairs(headers) do
    if h[1]:lower() == name:lower() then return h[2] end
  end
end

-- expected (from the case) against ours (from core.parse)
local function same(want, got, where)
  where = where or "$"
  if type(want) == "table" and want.exact_integer then
    -- LuaJIT: a long beyond 2^53 comes back as an int64 cdata
    local text = tostring(got):gsub("U?LL$", "")
    if text == want.exact_integer then return true end
    return false, where .. ": " .. want.exact_integer .. " vs " .. tostring(got)
  end
  if want == "NaN" and type(got) == "number" then
    if got ~= got then return true end
    return false, where .. ": NaN vs " .. tostring(got)
  end
  if (want == "Infinity" or want == "-Infinity") and type(got) == "number" then
    if got == (want == "Infinity" and math.huge or -math.huge) then return true end
    return false, where .. ": " .. want .. " vs " .. tostring(got)
  end
  if type(want) ~= type(got) then
    return false, where .. ": a " .. type(want) .. " expected, got " .. type(got) .. " " .. tostring(got)
  end
  if type(want) ~= "table" then
    if want == got then return true end
    if type(want) == "number" and math.abs(want - got) <= 1e-6 * math.max(1, math.abs(want)) and want % 1 ~= 0 then
      return true       -- fractional epoch seconds: the nearest double either way
    end
    return false, where .. ": " .. tostring(want) .. " vs " .. tostring(got)
  end
  for k, v in pairs(want) do
    local ok, why = same(v, got[k], where .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(got) do
    if want[k] == nil then return false, where .. "." .. tostring(k) .. " is not expected" end
  end
  return true
end

local function lower_headers(h)
  local out = {}
  for k, v in pairs(h or {}) do out[k:lower()] = v end
  return out
end

local function run_input(model, case)
  local req, err = core.build(model, case.given.name, case.params)
  assert(req, err and tostring(err))
  local s = case.serialized
  assert.are.equal(s.method, req.method)
  assert.are.equal(s.uri, req.path)
  for name, value in pairs(s.headers or {}) do
    assert.are.equal(value, header(req.headers, name), "header " .. name)
  end
  for _, name in ipairs(s.requireHeaders or {}) do
    if name:lower() == "content-length" then
      -- every transport sends Content-Length from the body, which must be text
      assert.is_string(req.body)
    else
      assert.is_not_nil(header(req.headers, name), "header " .. name)
    end
  end
  for _, name in ipairs(s.forbidHeaders or {}) do
    assert.is_nil(header(req.headers, name), "header " .. name)
  end
  if s.body ~= nil then
    local ok, why = tree.same_text(s.body, req.body)
    assert(ok, (why or "") .. "\n  expected " .. s.body .. "\n  got      " .. req.body)
  end
end

local function run_output(model, case)
  local resp = case.response
  local r, err = core.parse(model, case.given.name, resp.status_code, lower_headers(resp.headers), resp.body or "")
  if case.errorCode or case.error then
    assert.is_nil(r, "a result for an error response")
    assert.are.equal("service", err.kind)
    assert.are.equal(case.errorCode, err.code)
    if case.errorMessage then assert.are.equal(case.errorMessage, err.message) end
    if case.error then
      local ok, why = same(case.error, err.fields or {}, "err.fields")
      assert(ok, why)
    end
  else
    assert(r, err and tostring(err))
    local ok, why = same(case.result, r)
    assert(ok, why)
  end
end

local has_python = succeeded(os.execute("python3 -c 'import json' >/dev/null 2>&1"))
local available = has_python and files.exists(REF .. "/protocol-tests/input_json.json")

if not available then
  io.stderr:write("protocol_spec: python3 or " .. REF .. "/protocol-tests is missing: the protocol tests are skipped\n")
  describe("botocore's JSON protocol tests (skipped: python3 or the reference data is missing)", function() end)
  return
end

local dir = files.tmpdir()
local paths = {}
for i, f in ipairs(SUITE_FILES) do paths[i] = string.format("%q", REF .. "/protocol-tests/" .. f) end
local cmd = string.format("python3 %q %q %s 2>&1", here .. "support/protocol_suites.py", dir, table.concat(paths, " "))
local p = assert(io.popen(cmd))
local out = p:read("*a")
local made = succeeded(p:close())
local index = made and files.exists(dir .. "/index.lua") and dofile(dir .. "/index.lua")

describe("botocore's JSON protocol tests", function()
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("have a model per suite made by tools/gen_model.py", function()
    assert(index, "protocol_suites.py failed: " .. out)
    assert.is_true(#index >= 40, #index .. " suites")
  end)
  if not index then return end

  local counts = {}
  for _, suite in ipairs(index) do
    local model = dofile(dir .. "/" .. suite.name .. ".model.lua")
    local cases = load_cases(dir .. "/" .. suite.name .. ".cases.lua")
    local protocol = suite.json_version == "1.0" and "awsJson1_0" or "awsJson1_1"
    local input = suite.file:find("^input") ~= nil
    counts[protocol] = counts[protocol] or { run = 0, skipped = 0 }
    describe(protocol .. " " .. suite.file .. " #" .. suite.suite .. ": " .. suite.description, function()
      for _, case in ipairs(cases) do
        local why = input and reason_to_skip(case)
        if why then
          counts[protocol].skipped = counts[protocol].skipped + 1
          pending(case.id .. ": " .. why)
        else
          counts[protocol].run = counts[protocol].run + 1
          it(case.id, function()
            if input then run_input(model, case) else run_output(model, case) end
          end)
        end
      end
    end)
  end

  it("ran every case of both protocols but those about host prefixes, endpoint paths and compression", function()
    for _, protocol in ipairs({ "awsJson1_1", "awsJson1_0" }) do
      local c = counts[protocol]
      assert(c and c.run > 0, protocol .. " has no cases")
      io.stderr:write(string.format("protocol_spec: %s: %d cases run, %d skipped\n", protocol, c.run, c.skipped))
      assert.is_true(c.skipped <= 6, protocol .. ": " .. c.skipped .. " skipped")
    end
  end)
end)
