-- dms.url: the one URL parser, and its three readers (the endpoint
-- configuration, the endpoint rules' parseURL, the cosocket transport), which
-- must agree on every URL.
local url = require "dms.url"
local config = require "dms.config"
local endpoint = require "dms.endpoint"
local ngx_transport = require "dms.transport.ngx"

-- the rules' parseURL, through the rule-set interpreter
local function rules_parse(input)
  local ruleset = {
    parameters = { Input = { type = "string" } },
    rules = {
      { type = "endpoint", conditions = { { fn = "parseURL", argv = { { ref = "Input" } }, assign = "u" } },
        endpoint = { url = "{u#scheme}|{u#authority}|{u#path}|{u#normalizedPath}" } },
      { type = "error", conditions = {}, error = "none" },
    },
  }
  local ep = endpoint.evaluate({ Input = input }, ruleset)
  return ep and ep.url or nil
end

describe("dms.url", function()
  it("splits scheme, authority, user info, host, port, path, query and fragment", function()
    local u = assert(url.parse("HTTPS://user:pw@Example.com:8443/a/b?x=1&y=2#top"))
    assert.are.same({ scheme = "https", authority = "user:pw@Example.com:8443", userinfo = "user:pw",
      host = "Example.com", ipv6 = false, port = 8443, default_port = 443, path = "/a/b",
      query = "x=1&y=2", fragment = "top" }, u)
    u = assert(url.parse("http://[::1]:8080"))
    assert.are.same({ "::1", true, 8080, "", nil }, { u.host, u.ipv6, u.port, u.path, u.query })
    assert.are.equal("[::1]", url.host_literal(u))
    u = assert(url.parse("http://h:/"))            -- an empty port is the default
    assert.is_nil(u.port)
    assert.are.equal(80, u.default_port)
    u = assert(url.parse("http://h?"))             -- an empty query is a query
    assert.are.same({ "", "" }, { u.path, u.query })
    u = assert(url.parse("ftp://files.example"))   -- any scheme; policy is the caller's
    assert.are.same({ "ftp", nil }, { u.scheme, u.default_port })
  end)

  it("refuses what is not a URL, with a reason", function()
    local cases = {
      { 42, "must be a string" },
      { "example.com", "must start with a scheme" },
      { "//example.com", "must start with a scheme" },
      { "http://exa mple.com", "spaces or control" },
      { "http://h\r\nX-Injected: 1", "spaces or control" },
      { "http://", "has no host" },
      { "http://user@", "has no host" },
      { "http://:80/", "has no host" },
      { "http://h:0", "port out of range" },
      { "http://h:65536", "port out of range" },
      { "http://h:0000080", "port out of range" },
      { "http://h:8x", "invalid port" },
      { "http://[::1", "invalid host" },
      { "http://[1.2.3.4]/", "invalid IPv6" },
      { "http://exa<mple>.com/", "invalid host" },
    }
    for _, c in ipairs(cases) do
      local u, err = url.parse(c[1])
      assert.is_nil(u, tostring(c[1]))
      assert.matches(c[2], err, 1, true)
    end
  end)

  it("tells IPv4 addresses from names", function()
    assert.is_true(url.is_ipv4("10.0.0.1"))
    assert.is_true(url.is_ipv4("255.255.255.255"))
    assert.is_false(url.is_ipv4("256.0.0.1"))
    assert.is_false(url.is_ipv4("1.2.3"))
    assert.is_false(url.is_ipv4("0001.2.3.4"))
    assert.is_false(url.is_ipv4("example.com"))
  end)

  -- Each reader applies its policy (http(s) only; the configuration and the
  -- transport refuse user info; all refuse a fragment; the configuration and
  -- the rules refuse a query) over the same grammar.
  it("is the grammar of the configuration, the endpoint rules and the cosocket transport alike", function()
    local cases = {
      -- url, config accepts, rules accept, transport accepts
      { "https://dms.us-east-1.amazonaws.com", true, true, true },
      { "http://127.0.0.1:8080/base/", true, true, true },
      { "http://[::1]:8080", true, true, true },
      { "HTTP://Example.com/", true, true, true },
      { "http://h:/p", true, true, true },
      { "http://h/p?q=1", false, false, true },
      { "http://h/p#f", false, false, false },
      { "http://user@h/", false, true, false },
      { "ftp://h/", false, false, false },
      { "http://exa mple.com/", false, false, false },
      { "http://user@/", false, false, false },
      { "http://h:0/", false, false, false },
      { "http://[::1/", false, false, false },
      { "http://h\n/", false, false, false },
    }
    for _, c in ipairs(cases) do
      local s = c[1]
      assert.are.equal(c[2], config.parse_url(s) ~= nil, "config: " .. s)
      assert.are.equal(c[3], rules_parse(s) ~= nil, "rules: " .. s)
      assert.are.equal(c[4], ngx_transport.parse_url(s) ~= nil, "transport: " .. s)
    end
  end)

  it("gives each reader the same host and port", function()
    local c = assert(config.parse_url("http://[::1]:8080/x"))
    local t = assert(ngx_transport.parse_url("http://[::1]:8080/x"))
    assert.are.same({ "[::1]", 8080, "[::1]:8080", "/x" }, { c.host, c.port, c.host_header, c.path })
    assert.are.same({ "::1", "[::1]", 8080, "[::1]:8080", "/x" },
      { t.host, t.connect_host, t.port, t.authority, t.target })
    assert.are.equal("http|[::1]:8080|/x|/x/", rules_parse("http://[::1]:8080/x"))

    c = assert(config.parse_url("https://example.com"))
    t = assert(ngx_transport.parse_url("https://example.com?a=b"))
    assert.are.same({ "example.com", 443, "example.com", "/" }, { c.host, c.port, c.host_header, c.path })
    assert.are.same({ "example.com", 443, "example.com", "/?a=b" }, { t.host, t.port, t.authority, t.target })
    assert.are.equal("https|example.com||/", rules_parse("https://example.com"))
  end)
end)
