-- Instance metadata (IMDSv2) and container credentials against the local
-- endpoint (emulator/), next to botocore in the same environment: the token
-- dance, IMDSv1-only answers refused, a hung endpoint, malformed JSON, static
-- stability, refresh, the container's authorization token and host rules.
local core = require "dms.core"
local cjson = require "cjson"
local cs = require "support.credentials"
local emulator = require "support.emulator"
local files = require "support.files"
local container = require "dms.credentials.container"
local imds = require "dms.credentials.imds"

describe("instance metadata and container credentials", function()
  local emu, home
  setup(function()
    emu = emulator.start()
    home = cs.home()
  end)
  teardown(function()
    if emu then emu:stop() end
    cs.remove(home)
  end)
  before_each(function() cs.reset(emu) end)

  local function env(extra)
    local e = { AWS_SHARED_CREDENTIALS_FILE = home .. "/none", AWS_CONFIG_FILE = home .. "/none" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return cs.env(home, e)
  end
  local function imds_env(extra)
    local e = { AWS_EC2_METADATA_SERVICE_ENDPOINT = emu.url }
    for k, v in pairs(extra or {}) do e[k] = v end
    return env(e)
  end
  local function botocore_same(e, key)
    if not cs.has_botocore then return end
    local b = cs.botocore(e)
    assert(b.access_key, cjson.encode(b))
    assert.is_true(cs.same_identity(emu, key, b.access_key), key .. " vs " .. b.access_key)
  end

  it("gets the instance role's credentials with an IMDSv2 token", function()
    local e = imds_env()
    local creds, err, client = cs.lua(e, { endpoint = emu.url })
    assert(creds, err and tostring(err))
    assert.truthy(creds.access_key:match("^ASIAIMDS0"))
    assert.are.equal("dms-emulator-role", cs.issued(emu, creds.access_key).role_name)
    local log = cs.requests(emu, "imds")
    assert.are.same({ "PUT", "GET", "GET" }, { log[1].method, log[2].method, log[3].method })
    assert.are.same({ "/latest/api/token", "/latest/meta-data/iam/security-credentials/",
                      "/latest/meta-data/iam/security-credentials/dms-emulator-role" },
                    { log[1].path, log[2].path, log[3].path })
    assert.is_true(log[3].token)
    assert(client:describe_replications({}))
    assert.truthy(tostring(client):find("instance metadata", 1, true))
    botocore_same(e, creds.access_key)
  end)

  it("refuses a metadata service that answers IMDSv1 only", function()
    cs.settings(emu, { imds = { mode = "v1-only" } })
    local e = imds_env()
    local creds, err = cs.lua(e)
    assert.is_nil(creds)
    assert.are.equal("NoCredentials", err.code)
    assert.truthy(err.message:find("issued no IMDSv2 token (HTTP 404); IMDSv1 is not used", 1, true), err.message)
    local log = cs.requests(emu, "imds")
    assert.are.equal(1, #log)                       -- the token request, and no GET without a token
    if cs.has_botocore then
      -- botocore falls back to IMDSv1 unless told not to: the documented difference
      local b = cs.botocore(e)
      assert.truthy(b.access_key and b.access_key:match("^ASIAIMDS0"), cjson.encode(b))
      e.AWS_EC2_METADATA_V1_DISABLED = "true"
      b = cs.botocore(e)
      assert.is_nil(b.access_key, cjson.encode(b))
    end
  end)

  it("gives up on a hung metadata service after its 1 s timeout", function()
    cs.settings(emu, { imds = { delay = 3 } })
    local t0 = core.now()
    local creds, err = cs.lua(imds_env())
    local elapsed = core.now() - t0
    assert.is_nil(creds)
    assert.are.equal("NoCredentials", err.code)
    assert.truthy(err.message:find("no answer in time", 1, true), err.message)
    assert.is_true(elapsed < 2.5, "waited " .. elapsed .. " s")
    -- AWS_METADATA_SERVICE_TIMEOUT is honoured
    cs.settings(emu, { imds = { delay = 1.5 } })
    creds = cs.lua(imds_env({ AWS_METADATA_SERVICE_TIMEOUT = "3" }))
    assert.truthy(creds and creds.access_key:match("^ASIAIMDS0"))
  end)

  it("passes over malformed JSON from the metadata service", function()
    cs.settings(emu, { imds = { malformed = true } })
    local e = imds_env()
    local creds, err = cs.lua(e)
    assert.is_nil(creds)
    assert.are.equal("NoCredentials", err.code)
    assert.truthy(err.message:find("not JSON", 1, true), err.message)
    if cs.has_botocore then assert.is_true(cs.botocore(e).none) end
  end)

  it("refreshes instance credentials in the advisory window", function()
    cs.settings(emu, { lifetime = 1800 })
    local offset = 0
    local creds, _, client = cs.lua(imds_env(), { clock = function() return core.now() + offset end })
    offset = 850                                    -- 950 s left
    assert.are.equal(creds.access_key, client.credentials:get().access_key)
    offset = 1000                                   -- 800 s left
    local fresh = client.credentials:get()
    assert.are_not.equal(creds.access_key, fresh.access_key)
    assert.truthy(fresh.access_key:match("^ASIAIMDS0"))
  end)

  it("uses credentials about to expire a while longer, as botocore's static stability does", function()
    cs.settings(emu, { lifetime = 300 })
    local log, lines = cs.logger()
    local creds, _, client = cs.lua(imds_env(), { logger = log })
    assert.is_true(creds.expiration - core.now() >= 15 * 60 + 110)
    assert.are.equal(creds.access_key, client.credentials:get().access_key)
    assert.are.equal(3, #cs.requests(emu, "imds"))
    assert.are.equal("warn", lines[1].level)
  end)

  it("sends the container authorization token from its file, read as it is", function()
    cs.settings(emu, { container = { token = "pod-identity-token" } })
    local token_file = home .. "/container-token"
    files.write(token_file, "pod-identity-token")
    local e = env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = emu.url .. "/v1/credentials",
                    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = token_file,
                    AWS_CONTAINER_AUTHORIZATION_TOKEN = "wrong-token" })
    local creds, err, client = cs.lua(e, { endpoint = emu.url })
    assert(creds, err and tostring(err))
    assert.truthy(creds.access_key:match("^ASIACONTR"))
    assert.is_true(cs.requests(emu, "container")[1].authorization)
    assert(client:describe_replications({}))
    botocore_same(e, creds.access_key)
    -- the variable alone, over the ECS path
    e = env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = emu.url .. "/v2/credentials/task-1",
              AWS_CONTAINER_AUTHORIZATION_TOKEN = "pod-identity-token" })
    assert.truthy(cs.lua(e))
    -- a token file ending with a newline is refused, as botocore refuses it
    files.write(token_file, "pod-identity-token\n")
    e = env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = emu.url .. "/v1/credentials",
              AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = token_file })
    local _
    _, err = cs.lua(e)
    assert.are.equal("InvalidContainerToken", err.code)
    if cs.has_botocore then assert.are.equal("ValueError", cs.botocore(e).error) end
  end)

  it("tries the container endpoint 3 times, then reports it", function()
    cs.settings(emu, { container = { token = "expected" } })
    local e = env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = emu.url .. "/v1/credentials",
                    AWS_CONTAINER_AUTHORIZATION_TOKEN = "refused" })
    local creds, err = cs.lua(e)
    local _
    assert.is_nil(creds)
    assert.are.equal("ContainerCredentialsFailed", err.code)
    assert.truthy(err.message:find("HTTP 401", 1, true))
    assert.are.equal(3, #cs.requests(emu, "container"))
    assert.falsy(err.message:find("refused", 1, true))
    if cs.has_botocore then assert.are.equal("CredentialRetrievalError", cs.botocore(e).error) end
    cs.reset(emu)
    cs.settings(emu, { container = { malformed = true } })
    _, err = cs.lua(env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = emu.url .. "/v1/credentials" }))
    assert.are.equal("ContainerCredentialsFailed", err.code)
    assert.truthy(err.message:find("not JSON", 1, true))
  end)

  it("prefers container credentials to instance metadata", function()
    local e = imds_env({ AWS_CONTAINER_CREDENTIALS_FULL_URI = emu.url .. "/v1/credentials" })
    local creds = assert(cs.lua(e))
    assert.truthy(creds.access_key:match("^ASIACONTR"))
    assert.are.equal(0, #cs.requests(emu, "imds"))
    botocore_same(e, creds.access_key)
  end)

  it("allows the container hosts botocore allows", function()
    local function url(full, relative)
      return container.url(function(name)
        if name == "AWS_CONTAINER_CREDENTIALS_FULL_URI" then return full end
        if name == "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" then return relative end
      end)
    end
    assert.are.equal("http://169.254.170.2/v2/credentials/abc", url("http://127.0.0.1/x", "/v2/credentials/abc"))
    for _, ok in ipairs({ "http://127.0.0.1:51679/creds", "http://127.9.8.7/x", "http://[::1]:8080/x",
                          "http://localhost/x", "http://LOCALHOST:1/x", "http://169.254.170.2/x",
                          "http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]/v1/credentials",
                          "https://creds.example.com/x", "http://127.0.0.1:8080/creds?id=task-1" }) do
      assert.are.equal(ok, url(ok), ok)
    end
    for _, bad in ipairs({ "http://creds.example.com/x", "http://169.254.169.254/x", "http://10.0.0.1/x",
                           "http://[fd00:ec2::254]/x", "ftp://127.0.0.1/x" }) do
      local u, err = url(bad)
      assert.is_nil(u, bad)
      assert.are.equal("InvalidContainerUri", err.code, bad)
    end
  end)

  it("reads the metadata settings from the environment, then the profile", function()
    local function settings(e, profile)
      return imds.settings({ getenv = function(n) return e[n] end, profile = profile or {} })
    end
    assert.are.equal("http://169.254.169.254/", settings({}).base)
    assert.are.equal("http://[fd00:ec2::254]/", settings({ AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = "IPv6" }).base)
    assert.are.equal("http://[fd00:ec2::254]/", settings({}, { imds_use_ipv6 = "true" }).base)
    assert.are.equal("http://127.0.0.1:1/", settings({}, { ec2_metadata_service_endpoint = "http://127.0.0.1:1" }).base)
    local s = settings({ AWS_METADATA_SERVICE_TIMEOUT = "2", AWS_METADATA_SERVICE_NUM_ATTEMPTS = "3" })
    assert.are.same({ 2, 3 }, { s.timeout, s.attempts })
    local none, err = settings({ AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = "IPv5" })
    assert.is_nil(none)
    assert.are.equal("InvalidConfig", err.code)
  end)
end)
