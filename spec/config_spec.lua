-- dms.new configuration: region, profiles, credentials from real files, endpoints.
local dms = require "dms"
local config = require "dms.config"

local support_files = require "support.files"
local tmpdir, write = support_files.tmpdir, support_files.write

-- A fake environment (config.env) so the process environment never leaks in.
local function env(t) return t end

describe("configuration", function()
  local dir
  setup(function()
    dir = tmpdir()
    write(dir .. "/credentials", [[
# a comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = default/secret

[ops]
aws_access_key_id=AKIDOPS
aws_secret_access_key=ops-secret
aws_session_token = ops-token

[broken]
aws_access_key_id = AKIDBROKEN
]])
    write(dir .. "/config", [[
[default]
region = eu-west-1

[profile ops]
region = ap-southeast-2
s3 =
  max_concurrent_requests = 20
endpoint_url = http://127.0.0.1:9999

[profile regionless]
output = json
]])
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  local function files(extra)
    local e = { HOME = dir, AWS_SHARED_CREDENTIALS_FILE = dir .. "/credentials",
                AWS_CONFIG_FILE = dir .. "/config" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  it("takes the region from config, AWS_REGION, AWS_DEFAULT_REGION, then the profile", function()
    local c = assert(dms.new({ env = env(files({ AWS_REGION = "us-west-2", AWS_DEFAULT_REGION = "x-1" })),
                               region = "us-east-2" }))
    assert.are.equal("us-east-2", c.region)
    c = assert(dms.new({ env = env(files({ AWS_REGION = "us-west-2", AWS_DEFAULT_REGION = "ca-central-1" })) }))
    assert.are.equal("us-west-2", c.region)
    c = assert(dms.new({ env = env(files({ AWS_DEFAULT_REGION = "ca-central-1" })) }))
    assert.are.equal("ca-central-1", c.region)
    c = assert(dms.new({ env = env(files()) }))
    assert.are.equal("eu-west-1", c.region)
    assert.are.equal("https://dms.eu-west-1.amazonaws.com/", c.endpoint.url)
  end)

  it("fails clearly without a region", function()
    local c, err = dms.new({ env = env(files({ AWS_PROFILE = "regionless" })) })
    assert.is_nil(c)
    assert.are.equal("config", err.kind)
    assert.are.equal("NoRegion", err.code)
  end)

  it("reads credentials from the shared files for the default profile", function()
    local c = assert(dms.new({ env = env(files()) }))
    local creds = assert(c.credentials:get())
    assert.are.equal("AKIDDEFAULT", creds.access_key)
    assert.are.equal("default/secret", creds.secret_key)
    assert.is_nil(creds.session_token)
  end)

  it("uses AWS_PROFILE and the profile's region, token and endpoint_url", function()
    local c = assert(dms.new({ env = env(files({ AWS_PROFILE = "ops" })) }))
    assert.are.equal("ap-southeast-2", c.region)
    assert.are.equal("http://127.0.0.1:9999/", c.endpoint.url)
    local creds = assert(c.credentials:get())
    assert.are.equal("AKIDOPS", creds.access_key)
    assert.are.equal("ops-token", creds.session_token)
  end)

  it("prefers environment credentials unless a profile is chosen explicitly", function()
    local e = files({ AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret",
                      AWS_SESSION_TOKEN = "env-token" })
    local c = assert(dms.new({ env = env(e) }))
    local creds = assert(c.credentials:get())
    assert.are.equal("AKIDENV", creds.access_key)
    assert.are.equal("env-token", creds.session_token)
    c = assert(dms.new({ env = env(e), profile = "ops" }))
    assert.are.equal("AKIDOPS", assert(c.credentials:get()).access_key)
  end)

  it("reports an unknown profile and incomplete credentials", function()
    local c, err = dms.new({ env = env(files()), profile = "nope" })
    assert.is_nil(c)
    assert.are.equal("ProfileNotFound", err.code)
    -- AWS_PROFILE naming a missing profile is an error even with credentials in the environment
    c, err = dms.new({ env = env(files({ AWS_PROFILE = "nope", AWS_ACCESS_KEY_ID = "AKID",
                                         AWS_SECRET_ACCESS_KEY = "s" })) })
    assert.is_nil(c)
    assert.are.equal("ProfileNotFound", err.code)
    -- dms.new succeeds: the credentials are looked for on the first call that needs them
    c = assert(dms.new({ env = env(files()), profile = "broken", region = "us-east-1" }))
    err = select(2, c.credentials:get())
    assert.are.equal("credentials", err.kind)
    assert.are.equal("IncompleteCredentials", err.code)
    c = assert(dms.new({ env = env({ HOME = dir .. "/none", AWS_ACCESS_KEY_ID = "AKID" }), region = "us-east-1" }))
    err = select(2, c.credentials:get())
    assert.are.equal("IncompleteCredentials", err.code)
  end)

  it("runs a profile's credential_process, caches its answer and refreshes it before expiry", function()
    local script = dir .. "/creds.sh"
    write(script, "#!/bin/sh\n"
      .. "n=$(cat " .. dir .. "/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > " .. dir .. "/count\n"
      .. "printf '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC%s\", \"SecretAccessKey\": \"proc-secret\","
      .. " \"SessionToken\": \"proc-token\", \"Expiration\": \"2030-01-01T00:20:00Z\"}' $n\n")
    os.execute("chmod +x " .. script)
    write(dir .. "/config-proc", "[profile proc]\nregion = us-east-1\ncredential_process = " .. script .. "\n"
      .. "[profile broken-proc]\nregion = us-east-1\ncredential_process = sh -c 'echo not json'\n"
      .. "[profile failing-proc]\nregion = us-east-1\ncredential_process = sh -c 'echo secret-output; exit 3'\n")
    local now = 1893456000                                   -- 2030-01-01T00:00:00Z
    local function client(profile)
      return dms.new({ profile = profile, clock = function() return now end,
                       env = env(files({ AWS_CONFIG_FILE = dir .. "/config-proc" })) })
    end
    local c = assert(client("proc"))
    local creds = assert(c.credentials:get())
    assert.are.same({ "AKIDPROC1", "proc-secret", "proc-token" },
                    { creds.access_key, creds.secret_key, creds.session_token })
    now = now + 200
    assert.are.equal("AKIDPROC1", c.credentials:get().access_key)   -- cached
    now = now + 150                                  -- within 15 minutes of expiry (the SDKs' window)
    assert.are.equal("AKIDPROC2", c.credentials:get().access_key)
    local _, err = assert(client("broken-proc")).credentials:get()
    assert.are.equal("ProcessFailed", err.code)
    _, err = assert(client("failing-proc")).credentials:get()
    assert.are.equal("ProcessFailed", err.code)
    assert.truthy(err.message:find("status 3", 1, true))
    assert.falsy(tostring(err):find("secret-output", 1, true))
  end)

  it("reports missing credentials with where it looked", function()
    local c = assert(dms.new({ env = env({ HOME = dir .. "/none", AWS_EC2_METADATA_DISABLED = "true" }),
                               region = "us-east-1" }))
    local _, err = c.credentials:get()
    assert.are.equal("NoCredentials", err.code)
    assert.truthy(err.message:find(dir .. "/none/.aws/credentials", 1, true))
    assert.truthy(err.message:find("AWS_EC2_METADATA_DISABLED", 1, true))
  end)

  it("calls a credentials function and caches until 5 minutes before expiry", function()
    local now, calls = 1000, 0
    local c = assert(dms.new({ region = "us-east-1", env = {}, clock = function() return now end,
      credentials = function()
        calls = calls + 1
        return { access_key = "AKID" .. calls, secret_key = "s", session_token = "t", expiration = now + 600 }
      end }))
    assert.are.equal("AKID1", c.credentials:get().access_key)
    now = now + 200
    assert.are.equal("AKID1", c.credentials:get().access_key)
    now = now + 150          -- within 5 minutes of expiry: refreshed
    assert.are.equal("AKID2", c.credentials:get().access_key)
    assert.are.equal(2, calls)
  end)

  it("turns a failing credentials function into an error value", function()
    local c = assert(dms.new({ region = "us-east-1", env = {},
      credentials = function() error("vault unreachable") end }))
    local creds, err = c.credentials:get()
    assert.is_nil(creds)
    assert.are.equal("credentials", err.kind)
    assert.truthy(err.message:find("vault unreachable", 1, true))
    local _, cerr = c:describe_replications({})
    assert.are.equal("ProviderError", cerr.code)
  end)

  it("never shows secrets in tostring", function()
    local c = assert(dms.new({ region = "us-east-1", env = {},
      credentials = { access_key = "AKIDEXAMPLE12345", secret_key = "SECRETSECRET", session_token = "TOKENTOKEN" } }))
    local creds = c.credentials:get()
    for _, s in ipairs({ tostring(c), tostring(creds), tostring(c.credentials) }) do
      assert.falsy(s:find("SECRETSECRET", 1, true), s)
      assert.falsy(s:find("TOKENTOKEN", 1, true), s)
      assert.falsy(s:find("AKIDEXAMPLE12345", 1, true), s)
    end
  end)

  it("resolves the endpoint: config, service variable, global variable, rules", function()
    local base = { region = "us-east-1", credentials = { access_key = "a", secret_key = "b" } }
    local function url(extra_env, extra)
      local cfg = { env = extra_env }
      for k, v in pairs(base) do cfg[k] = v end
      for k, v in pairs(extra or {}) do cfg[k] = v end
      local c, err = dms.new(cfg)
      return c and c.endpoint.url, err
    end
    assert.are.equal("http://127.0.0.1:1/", url({ AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE = "http://127.0.0.1:2",
      AWS_ENDPOINT_URL = "http://127.0.0.1:3" }, { endpoint = "http://127.0.0.1:1" }))
    assert.are.equal("http://127.0.0.1:2/", url({ AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE = "http://127.0.0.1:2",
      AWS_ENDPOINT_URL = "http://127.0.0.1:3" }))
    assert.are.equal("http://127.0.0.1:3/", url({ AWS_ENDPOINT_URL = "http://127.0.0.1:3" }))
    assert.are.equal("https://dms.us-east-1.amazonaws.com/", url({}))
    assert.are.equal("https://dms.cn-north-1.amazonaws.com.cn/", url({}, { region = "cn-north-1" }))
    assert.are.equal("https://dms-fips.us-east-1.amazonaws.com/", url({ AWS_USE_FIPS_ENDPOINT = "true" }))
    local u, err = url({}, { endpoint = "ftp://x" })
    assert.is_nil(u)
    assert.are.equal("InvalidEndpoint", err.code)
  end)

  it("takes a profile's [services] endpoint for DMS, and ignores configured endpoints when told to", function()
    write(dir .. "/config-services", [[
[profile svc]
region = us-east-1
endpoint_url = http://127.0.0.1:7000
services = local-dms

[services local-dms]
s3 =
  endpoint_url = http://127.0.0.1:7001
database_migration_service =
  endpoint_url = http://127.0.0.1:7002
]])
    local function url(extra)
      local e = files({ AWS_CONFIG_FILE = dir .. "/config-services", AWS_PROFILE = "svc" })
      for k, v in pairs(extra or {}) do e[k] = v end
      local c = assert(dms.new({ env = e, credentials = { access_key = "a", secret_key = "b" } }))
      return c.endpoint.url
    end
    assert.are.equal("http://127.0.0.1:7002/", url())
    assert.are.equal("http://127.0.0.1:7003/", url({ AWS_ENDPOINT_URL = "http://127.0.0.1:7003" }))
    assert.are.equal("https://dms.us-east-1.amazonaws.com/",
                     url({ AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true", AWS_ENDPOINT_URL = "http://127.0.0.1:7003" }))
  end)

  it("validates config types and regions", function()
    for k, v in pairs({ region = 1, endpoint = true, timeout = 5, logger = "x", insecure = "yes",
                        transport = "carrier-pigeon", credentials = "secret" }) do
      local c, err = dms.new({ [k] = v, env = {} })
      assert.is_nil(c)
      assert.are.equal("config", err.kind, k)
      assert.truthy(err.message:find(k, 1, true), err.message)
    end
    local c, err = dms.new({ region = "us-east-1/../x", env = {},
                             credentials = { access_key = "a", secret_key = "b" } })
    assert.is_nil(c)
    assert.are.equal("InvalidRegion", err.code)
    for _, bad in ipairs({ -1, 0, 1e9, 0 / 0 }) do
      c, err = dms.new({ timeout = { total = bad }, env = {} })
      assert.is_nil(c)
      assert.truthy(err.message:find("timeout.total", 1, true))
    end
    c, err = dms.new({ max_response_bytes = 1e30, env = {} })
    assert.is_nil(c)
    assert.truthy(err.message:find("max_response_bytes", 1, true))
  end)

  it("warns when TLS verification is switched off", function()
    local lines = {}
    assert(dms.new({ region = "us-east-1", env = {}, insecure = true,
      credentials = { access_key = "a", secret_key = "b" },
      logger = function(level, msg) lines[#lines + 1] = level .. ": " .. msg end }))
    assert.are.equal(1, #lines)
    assert.truthy(lines[1]:match("^warn: TLS verification is off"))
  end)

  it("parses shared files with comments, CRLF and nested sections", function()
    local s = config.parse_ini("[a]\r\nk = v\r\n; c\r\nnested =\r\n  x = 1\r\n  y = 2\r\nz=3\r\n")
    assert.are.equal("v", s.a.k)
    assert.are.equal("3", s.a.z)
    assert.are.equal("\nx=1\ny=2", s.a.nested)
  end)

  it("splits endpoint URLs and refuses unsafe ones", function()
    local u = assert(config.parse_url("https://example.com:8443/base"))
    assert.are.same({ "https", "example.com", 8443, "example.com:8443", "/base" },
                    { u.scheme, u.host, u.port, u.host_header, u.path })
    u = assert(config.parse_url("http://[::1]:8080"))
    assert.are.equal("[::1]:8080", u.host_header)
    for _, bad in ipairs({ "http://user:pw@host", "http://h/x?y=1", "http://h\r\nX: y", "//h", "http://h:70000" }) do
      assert.is_nil(config.parse_url(bad), bad)
    end
  end)
end)
