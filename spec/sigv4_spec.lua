-- dms.core.sign against the AWS SigV4 test suite, byte for byte.
local core = require "dms.core"
local suite = require "support.aws4suite"

local ref = suite.reference_dir()
local SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

local function base_request(req)
  req.region, req.service = "us-east-1", "service"
  req.access_key, req.secret_key = "AKIDEXAMPLE", SECRET
  req.time = 1440938160 -- 20150830T123600Z
  return req
end

describe("SigV4 test suite", function()
  assert(ref, "the AWS reference data (../shared/reference) is missing: set DMS_REFERENCE")
  local cases = suite.cases(ref)

  it("has every case of the suite", function()
    assert.is_true(#cases >= 30, "found " .. #cases .. " cases")
  end)

  for _, case in ipairs(cases) do
    it(case.name, function()
      local req = base_request(suite.parse_request(suite.read(case.base .. ".req")))
      local sreq = suite.read(case.base .. ".sreq")
      local authz = suite.read(case.base .. ".authz")
      -- a token in the signed request but not in the request: sign() adds it,
      -- inside the signature or after it as the expected Authorization says
      local token = sreq:match("X%-Amz%-Security%-Token:([^\r\n]+)")
      if token and not suite.read(case.base .. ".req"):find("X-Amz-Security-Token", 1, true) then
        req.session_token = token
        req.sign_session_token = authz:find("x-amz-security-token", 1, true) ~= nil
      end
      local signed = core.sign(req)
      assert.are.equal(suite.read(case.base .. ".creq"), signed.canonical_request)
      assert.are.equal(suite.read(case.base .. ".sts"), signed.string_to_sign)
      assert.are.equal(authz, signed.authorization)
      -- the signed request holds the headers sign() adds (its Authorization
      -- line is checked against .authz above: one case's .sreq disagrees with it)
      assert.are.equal("Authorization", signed.headers[#signed.headers][1])
      for i = 1, #signed.headers - 1 do
        local h = signed.headers[i]
        assert.truthy(sreq:find(h[1] .. ":" .. h[2], 1, true), h[1] .. " missing from .sreq")
      end
    end)
  end
end)

describe("dms.core.sign", function()
  local function vanilla(extra)
    local req = base_request({ method = "POST", path = "/", body = "{}",
      headers = { { "Host", "dms.us-east-1.amazonaws.com" } } })
    for k, v in pairs(extra or {}) do req[k] = v end
    return req
  end

  it("adds X-Amz-Date when the request has none", function()
    local s = core.sign(vanilla())
    assert.are.same({ "X-Amz-Date", "20150830T123600Z" }, s.headers[1])
    assert.are.equal("Authorization", s.headers[2][1])
    assert.truthy(s.canonical_request:find("\nx-amz-date:20150830T123600Z\n", 1, true))
  end)

  it("signs the session token by default and returns it as a header", function()
    local s = core.sign(vanilla({ session_token = "tok" }))
    assert.are.same({ "X-Amz-Security-Token", "tok" }, s.headers[2])
    assert.truthy(s.authorization:find("SignedHeaders=host;x-amz-date;x-amz-security-token", 1, true))
  end)

  it("accepts headers as a name -> value map", function()
    local a = core.sign(vanilla({ headers = { Host = "h", ["X-Amz-Target"] = "T" } }))
    local b = core.sign(vanilla({ headers = { { "X-Amz-Target", "T" }, { "Host", "h" } } }))
    assert.are.equal(a.signature, b.signature)
  end)

  it("changes the signature when the body changes", function()
    assert.are_not.equal(core.sign(vanilla()).signature, core.sign(vanilla({ body = "{ }" })).signature)
  end)

  it("keeps S3-style paths as they are when normalize_path is false", function()
    local s = core.sign(vanilla({ path = "/a//b/../c", normalize_path = false }))
    assert.are.equal("/a//b/../c", s.canonical_request:match("^POST\n([^\n]*)"))
    local n = core.sign(vanilla({ path = "/a//b/../c" }))
    assert.are.equal("/a/c", n.canonical_request:match("^POST\n([^\n]*)"))
  end)

  it("caches the derived key per secret, date, region and service", function()
    local before = core.sign_cache_stats()
    core.sign(vanilla({ secret_key = "cache-test-secret" }))
    core.sign(vanilla({ secret_key = "cache-test-secret", body = "x" }))
    core.sign(vanilla({ secret_key = "cache-test-secret", time = 1440938160 + 60 }))
    local mid = core.sign_cache_stats()
    assert.are.equal(before.misses + 1, mid.misses)
    assert.are.equal(before.hits + 2, mid.hits)
    core.sign(vanilla({ secret_key = "cache-test-secret", region = "eu-west-1" }))
    core.sign(vanilla({ secret_key = "cache-test-secret", time = 1440938160 + 86400 }))
    core.sign(vanilla({ secret_key = "other-secret" }))
    assert.are.equal(mid.misses + 3, core.sign_cache_stats().misses)
  end)

  for _, bad in ipairs({ "a\r\nX-Injected: 1", "a\nb", "a\0b" }) do
    it("refuses a header value with CR, LF or NUL: " .. bad:gsub("%c", "?"), function()
      local err = select(2, pcall(core.sign, vanilla({ headers = { { "Host", "h" }, { "X-A", bad } } })))
      assert.truthy(tostring(err):find("X-A", 1, true))
      assert.truthy(tostring(err):find("CR, LF or NUL", 1, true))
    end)
  end

  it("refuses CR, LF or NUL in the access key, region, service, path and token", function()
    for field, bad in pairs({ access_key = "AK\r\nX-Evil: 1", region = "us-east-1\n", service = "dms\r",
                              path = "/a\nb", session_token = "tok\r\nX: y" }) do
      local ok, err = pcall(core.sign, vanilla({ [field] = bad }))
      assert.is_false(ok, field)
      assert.truthy(tostring(err):find("CR, LF or NUL", 1, true), err)
    end
    for _, field in ipairs({ "access_key", "region", "service", "path", "query", "session_token", "secret_key" }) do
      local ok, err = pcall(core.sign, vanilla({ [field] = "a\0b" }))
      assert.is_false(ok, field)
      assert.truthy(tostring(err):find("'" .. field .. "' contains NUL", 1, true), err)
    end
    -- a body is bytes: NUL is fine there and changes the signature
    assert.are_not.equal(core.sign(vanilla({ body = "a\0b" })).signature, core.sign(vanilla({ body = "a" })).signature)
  end)

  it("refuses a header name with CR, LF, NUL, space or ':'", function()
    for _, name in ipairs({ "X\r\nA", "X\0A", "X A", "X:A", "" }) do
      local ok, err = pcall(core.sign, vanilla({ headers = { { name, "v" } } }))
      assert.is_false(ok)
      assert.truthy(tostring(err):find("invalid name", 1, true))
    end
  end)

  it("names a missing or mistyped field", function()
    for field, value in pairs({ method = false, region = false, service = false,
                                access_key = false, secret_key = false }) do
      local req = vanilla()
      req[field] = nil
      local ok, err = pcall(core.sign, req)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("'" .. field .. "'", 1, true), err)
      req[field] = value
      ok, err = pcall(core.sign, req)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("'" .. field .. "' must be a string", 1, true), err)
    end
    local ok, err = pcall(core.sign, vanilla({ time = 1.5 }))
    assert.is_false(ok)
    assert.truthy(err:find("'time'", 1, true))
  end)

  it("signs alike through a proxy whose __index builds every value afresh (and collects between reads)", function()
    local plain = vanilla({ session_token = string.rep("T", 300), secret_key = string.rep("k", 64) })
    local want = core.sign(plain).signature
    local reversed = {}
    for k, v in pairs(plain) do reversed[k] = type(v) == "string" and v:reverse() or v end
    local proxy = setmetatable({}, { __index = function(_, k)
      collectgarbage()
      local v = reversed[k]
      if type(v) == "string" then return v:reverse() end      -- a new string, held by nobody else
      return v
    end })
    for _ = 1, 20 do
      assert.are.equal(want, core.sign(proxy).signature)
    end
  end)

  it("refuses a time out of range or with a fraction, and takes an integral float", function()
    for _, t in ipairs({ math.maxinteger or 2 ^ 63, -(2 ^ 63), 2 ^ 53, -1, 1.5, 1 / 0, 0 / 0, 253402300800 }) do
      local ok, err = pcall(core.sign, vanilla({ time = t }))
      assert.is_false(ok, tostring(t))
      assert.truthy(tostring(err):find("'time'", 1, true), err)
    end
    assert.are.equal(core.sign(vanilla({ time = 1700000000 })).signature,
                     core.sign(vanilla({ time = 1700000000.0 })).signature)
    assert.truthy(core.sign(vanilla({ time = 253402300799 })).amz_date:find("^99991231T235959Z$"))
  end)

  it("never puts the secret key in an error", function()
    local ok, err = pcall(core.sign, vanilla({ secret_key = "SECRET-123", headers = { { "X", "a\nb" } } }))
    assert.is_false(ok)
    assert.falsy(tostring(err):find("SECRET-123", 1, true))
  end)
end)
