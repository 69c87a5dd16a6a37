-- dms.endpoint against the AWS endpoint tests of DMS, plus region validation,
-- partitions and the rules interpreter.
local cjson = require "cjson"
local endpoint = require "dms.endpoint"
local rules = require "dms.endpoint_rules"

local REF = os.getenv("DMS_REFERENCE") or "../shared/reference"

local function read_json(name)
  local f = io.open(REF .. "/dms/" .. name, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return cjson.decode(text)
end

describe("AWS DMS endpoint tests", function()
  local tests = read_json("endpoint-tests-1.json")
  assert(tests, "the AWS reference data (" .. REF .. "/dms) is missing: set DMS_REFERENCE")

  it("has all the cases", function()
    assert.are.equal(50, #tests.testCases)
  end)

  for i, case in ipairs(tests.testCases) do
    it(string.format("#%d %s", i, case.documentation), function()
      local url, err = endpoint.resolve(case.params or {})
      if case.expect.error then
        assert.is_nil(url)
        assert.are.equal(case.expect.error, err)
      else
        assert.is_nil(err)
        assert.are.equal(case.expect.endpoint.url, url)
      end
    end)
  end
end)

describe("dms.endpoint.resolve", function()
  it("takes the snake_case options", function()
    assert.are.equal("https://dms.eu-west-1.amazonaws.com", endpoint.resolve{ region = "eu-west-1" })
    assert.are.equal("https://dms-fips.us-east-1.api.aws",
      endpoint.resolve{ region = "us-east-1", use_fips = true, use_dualstack = true })
    assert.are.equal("https://dms.cn-north-1.api.amazonwebservices.com.cn",
      endpoint.resolve{ region = "cn-north-1", use_dualstack = true })
    assert.are.equal("http://localhost:4566",
      endpoint.resolve{ region = "us-east-1", endpoint = "http://localhost:4566" })
    local url, err = endpoint.resolve{ region = "us-east-1", use_fips = true, endpoint = "https://example.com" }
    assert.is_nil(url)
    assert.are.equal("Invalid Configuration: FIPS and custom endpoint are not supported", err)
  end)

  it("reports a missing region", function()
    local url, err = endpoint.resolve()
    assert.is_nil(url)
    assert.are.equal("Invalid Configuration: Missing Region", err)
    assert.are.equal("Invalid Configuration: Missing Region", select(2, endpoint.resolve{ use_fips = true }))
  end)

  it("resolves regions not listed by name through the partition regexes", function()
    assert.are.equal("https://dms.us-east-99.amazonaws.com", endpoint.resolve{ region = "us-east-99" })
    assert.are.equal("https://dms.cn-south-7.amazonaws.com.cn", endpoint.resolve{ region = "cn-south-7" })
    assert.are.equal("https://dms.us-gov-north-3.amazonaws.com",
      endpoint.resolve{ region = "us-gov-north-3", use_fips = true })
    assert.are.equal("https://dms.us-isob-west-9.sc2s.sgov.gov",
      endpoint.resolve{ region = "us-isob-west-9", use_fips = true })
    assert.are.equal("https://dms-fips.eu-isoe-west-2.cloud.adc-e.uk",
      endpoint.resolve{ region = "eu-isoe-west-2", use_fips = true })
    assert.are.equal("https://dms.eusc-de-east-1.amazonaws.eu", endpoint.resolve{ region = "eusc-de-east-1" })
    -- no partition matches: the aws partition
    assert.are.equal("https://dms.mars-north-1.amazonaws.com", endpoint.resolve{ region = "mars-north-1" })
  end)

  describe("rejects a region that is not a host label", function()
    local bad = {
      "us-east-1/../x", "bad region", "", "-us-east-1", "us_east_1", "us-east-1.evil.com",
      "us-east-1:443", "us-east-1#", "us-east-1?x=1", "user@us-east-1", "us-east-1\n",
      "us-\195\169ast-1", string.rep("a", 64),
    }
    for _, region in ipairs(bad) do
      it(string.format("%q", region), function()
        for _, opts in ipairs({
          { region = region },
          { region = region, use_fips = true },
          { region = region, use_dualstack = true },
          { region = region, use_fips = true, use_dualstack = true },
          { region = region, endpoint = "https://example.com" },
          { Region = region },
        }) do
          local url, err = endpoint.resolve(opts)
          assert.is_nil(url)
          assert.are.equal("Invalid Configuration: Region is not a valid host label", err)
        end
      end)
    end

    it("accepts a 63 character label", function()
      local region = string.rep("a", 63)
      assert.are.equal("https://dms." .. region .. ".amazonaws.com", endpoint.resolve{ region = region })
    end)
  end)

  it("rejects parameters of the wrong type", function()
    local url, err = endpoint.resolve{ region = "us-east-1", use_fips = "yes" }
    assert.is_nil(url)
    assert.are.equal("Invalid Configuration: parameter UseFIPS must be a boolean", err)
    url, err = endpoint.resolve{ region = 1 }
    assert.is_nil(url)
    assert.are.equal("Invalid Configuration: parameter Region must be a string", err)
  end)
end)

describe("dms.endpoint.partition", function()
  it("returns the partition outputs of a region", function()
    assert.are.same({
      name = "aws-cn",
      dnsSuffix = "amazonaws.com.cn",
      dualStackDnsSuffix = "api.amazonwebservices.com.cn",
      implicitGlobalRegion = "cn-northwest-1",
      supportsFIPS = true,
      supportsDualStack = true,
    }, endpoint.partition("cn-north-1"))
    assert.are.equal("aws", endpoint.partition("us-east-1").name)
    assert.are.equal("api.aws", endpoint.partition("us-east-1").dualStackDnsSuffix)
    assert.are.equal("aws-us-gov", endpoint.partition("us-gov-west-1").name)
    assert.are.equal("aws-iso", endpoint.partition("us-iso-east-1").name)
    assert.are.equal("aws-iso-b", endpoint.partition("us-isob-east-1").name)
    assert.are.equal("aws-iso-f", endpoint.partition("us-isof-south-1").name)
    assert.are.equal("aws-eusc", endpoint.partition("eusc-de-east-1").name)
  end)

  it("matches region names listed in a partition but outside its regex", function()
    assert.are.equal("aws", endpoint.partition("aws-global").name)
    assert.are.equal("aws-cn", endpoint.partition("aws-cn-global").name)
    assert.are.equal("aws-us-gov", endpoint.partition("aws-us-gov-global").name)
    assert.are.equal("aws-iso-b", endpoint.partition("aws-iso-b-global").name)
  end)

  it("matches the regexes", function()
    assert.are.equal("aws", endpoint.partition("il-central-9").name)
    assert.are.equal("aws", endpoint.partition("ap-south_east-1").name) -- \w takes "_"
    assert.are.equal("aws-cn", endpoint.partition("cn-east-12").name)
    assert.are.equal("aws-us-gov", endpoint.partition("us-gov-south-2").name)
    assert.are.equal("aws-iso-e", endpoint.partition("eu-isoe-north-4").name)
    assert.are.equal("aws-eusc", endpoint.partition("eusc-de-west-2").name)
  end)

  it("falls back to the aws partition", function()
    assert.are.equal("aws", endpoint.partition("local").name)
    assert.are.equal("aws", endpoint.partition("cn-north").name)
    assert.are.equal("aws", endpoint.partition("eusc-fr-east-1").name)
    assert.are.equal("aws", endpoint.partition("").name)
  end)

  it("returns nil without a region", function()
    assert.is_nil(endpoint.partition(nil))
    assert.is_nil(endpoint.partition(42))
  end)

  it("returns a fresh table", function()
    endpoint.partition("us-east-1").dnsSuffix = "example.com"
    assert.are.equal("amazonaws.com", endpoint.partition("us-east-1").dnsSuffix)
  end)
end)

describe("dms.endpoint_rules", function()
  local function without_docs(params)
    local out = {}
    for name, spec in pairs(params) do
      local s = {}
      for k, v in pairs(spec) do
        if k ~= "documentation" then s[k] = v end
      end
      out[name] = s
    end
    return out
  end

  it("is generated from the current rule set", function()
    local ruleset = assert(read_json("endpoint-rule-set-1.json"))
    assert.are.equal(ruleset.version, rules.version)
    assert.are.same(without_docs(ruleset.parameters), rules.parameters)
    assert.are.same(ruleset.rules, rules.rules)
  end)

  it("is generated from the current partitions", function()
    local partitions = assert(read_json("partitions.json"))
    assert.are.equal(#partitions.partitions, #rules.partitions)
    for i, p in ipairs(partitions.partitions) do
      local g = rules.partitions[i]
      assert.are.equal(p.id, g.id)
      assert.are.same(p.outputs, g.outputs)
      assert.are.equal(p.regionRegex, g.region_regex)
      for region in pairs(p.regions) do
        assert.is_table(g.regions[region], region)
        assert.are.equal(p.outputs.name, endpoint.partition(region).name, region)
      end
    end
  end)
end)

describe("dms.endpoint.evaluate", function()
  -- A rule set returning an endpoint whose URL is the template when the
  -- condition holds, else the error "no".
  local function ruleset(condition, url, params)
    return {
      parameters = params or { Input = { type = "string", required = false } },
      rules = {
        { type = "endpoint", conditions = { condition }, endpoint = { url = url } },
        { type = "error", conditions = {}, error = "no" },
      },
    }
  end

  local function run(condition, url, input)
    local ep, err = endpoint.evaluate({ Input = input }, ruleset(condition, url))
    if ep then return ep.url end
    return err
  end

  it("parseURL", function()
    local c = { fn = "parseURL", argv = { { ref = "Input" } }, assign = "u" }
    assert.are.equal("https|example.com:8443|/a/b|/a/b/",
      run(c, "{u#scheme}|{u#authority}|{u#path}|{u#normalizedPath}", "https://example.com:8443/a/b"))
    assert.are.equal("http||/", run(c, "{u#scheme}|{u#path}|{u#normalizedPath}", "http://h"))
    local is_ip = { fn = "booleanEquals", argv = {
      { fn = "getAttr", argv = { { fn = "parseURL", argv = { { ref = "Input" } } }, "isIp" } }, true } }
    assert.are.equal("yes", run(is_ip, "yes", "http://10.0.0.1:80/"))
    assert.are.equal("yes", run(is_ip, "yes", "http://[::1]:80"))
    assert.are.equal("no", run(is_ip, "yes", "http://300.0.0.1"))
    assert.are.equal("no", run(is_ip, "yes", "http://example.com"))
    assert.are.equal("no", run(c, "yes", "ftp://example.com"))
    assert.are.equal("no", run(c, "yes", "https://example.com/?a=b"))
    assert.are.equal("no", run(c, "yes", "example.com"))
  end)

  it("isValidHostLabel", function()
    local function label(s, sub)
      return run({ fn = "isValidHostLabel", argv = { { ref = "Input" }, sub } }, "yes", s)
    end
    assert.are.equal("yes", label("abc-1", false))
    assert.are.equal("no", label("a.b", false))
    assert.are.equal("yes", label("a.b", true))
    assert.are.equal("no", label("a..b", true))
    assert.are.equal("no", label("-a", false))
  end)

  it("substring and uriEncode", function()
    local function sub(s, a, b, rev)
      return run({ fn = "substring", argv = { { ref = "Input" }, a, b, rev }, assign = "r" }, "{r}", s)
    end
    assert.are.equal("abc", sub("abcdef", 0, 3, false))
    assert.are.equal("def", sub("abcdef", 0, 3, true))
    assert.are.equal("cd", sub("abcdef", 2, 4, false))
    assert.are.equal("no", sub("ab", 0, 3, false))
    assert.are.equal("no", sub("abc", 2, 2, false))
    assert.are.equal("a%20b%2Fc~-_.", run(
      { fn = "uriEncode", argv = { { ref = "Input" } }, assign = "e" }, "{e}", "a b/c~-_."))
  end)

  it("not, stringEquals, getAttr indexes and template escapes", function()
    assert.are.equal("yes", run({ fn = "not", argv = { { fn = "isSet", argv = { { ref = "Input" } } } } }, "yes", nil))
    assert.are.equal("no", run({ fn = "not", argv = { { fn = "isSet", argv = { { ref = "Input" } } } } }, "yes", "x"))
    assert.are.equal("{x}-us-east-1", run(
      { fn = "stringEquals", argv = { "{Input}", "us-east-1" } }, "{{x}}-{Input}", "us-east-1"))
    local ep = assert(endpoint.evaluate({ Input = "x" }, {
      parameters = { Input = { type = "string" } },
      rules = { {
        type = "endpoint",
        conditions = { { fn = "aws.partition", argv = { "cn-north-1" }, assign = "P" } },
        endpoint = { url = "https://{P#name}.{Input}", headers = { ["x-h"] = { "{Input}" } },
          properties = { list = { "a", { nested = "{P#dnsSuffix}" } } } },
      } },
    }))
    assert.are.same({
      url = "https://aws-cn.x",
      headers = { ["x-h"] = { "x" } },
      properties = { list = { "a", { nested = "amazonaws.com.cn" } } },
    }, ep)
    local value = { { a = "first" }, { a = "second" } }
    assert.are.equal("second", endpoint.evaluate({}, {
      parameters = {},
      rules = { {
        type = "endpoint",
        endpoint = { url = { fn = "getAttr", argv = { { list = value }, "list[1].a" } } },
      } },
    }).url)
  end)

  it("reports parameters, exhausted trees and malformed rules", function()
    local params = { Flag = { type = "boolean", required = true } }
    local _, err = endpoint.evaluate({}, { parameters = params, rules = {} })
    assert.are.equal("Invalid Configuration: missing required parameter Flag", err)
    _, err = endpoint.evaluate({ Flag = true }, { parameters = params, rules = {
      { type = "tree", conditions = {}, rules = {
        { type = "error", conditions = { { fn = "booleanEquals", argv = { { ref = "Flag" }, false } } }, error = "x" },
      } },
      { type = "error", conditions = {}, error = "not reached" },
    } })
    assert.are.equal("No endpoint rule matched the parameters", err)
    _, err = endpoint.evaluate({ Flag = true }, { parameters = params, rules = {
      { type = "error", conditions = { { fn = "aws.parseArn", argv = { "arn" } } }, error = "x" },
    } })
    assert.are.equal("endpoint rules: unsupported function aws.parseArn", err)
    _, err = endpoint.evaluate({ Flag = true }, { parameters = params, rules = {
      { type = "endpoint", conditions = {}, endpoint = { url = "https://{Missing}" } },
    } })
    assert.are.equal('endpoint rules: template "https://{Missing}": {Missing} is not a string', err)
  end)
end)
