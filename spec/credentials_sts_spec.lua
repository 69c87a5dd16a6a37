-- Roles and web identity against the local endpoint's STS (emulator/): a
-- signed AssumeRole with the source profile's or credential_source's keys,
-- role chaining, AssumeRoleWithWebIdentity with a token file that changes,
-- STS errors as credentials errors, expiry and refresh. Where botocore is
-- installed, it runs in the same environment against the same emulator and
-- must come out with keys of the same identity (the emulator issues new keys
-- at every call, so the keys themselves differ).
local core = require "dms.core"
local cjson = require "cjson"
local cs = require "support.credentials"
local emulator = require "support.emulator"
local files = require "support.files"

local ROLE = "arn:aws:iam::123456789012:role/"
local AK, SK = emulator.ACCESS_KEY, emulator.SECRET_KEY

describe("STS credentials", function()
  local emu, home
  setup(function()
    emu = emulator.start()
    home = cs.home({ config = ([[
[default]
region = us-east-1

[profile base]
aws_access_key_id = @AK@
aws_secret_access_key = @SK@

[profile role]
role_arn = @ROLE@ops
source_profile = base
external_id = ext-1
role_session_name = runbook
duration_seconds = 1800

[profile chained]
role_arn = @ROLE@deploy
source_profile = role

[profile self]
role_arn = @ROLE@self
source_profile = self
aws_access_key_id = @AK@
aws_secret_access_key = @SK@

[profile from-env]
role_arn = @ROLE@from-env
credential_source = Environment

[profile from-container]
role_arn = @ROLE@from-container
credential_source = EcsContainer

[profile from-imds]
role_arn = @ROLE@from-imds
credential_source = Ec2InstanceMetadata

[profile denied]
role_arn = @ROLE@denied
source_profile = base

[profile webid]
role_arn = @ROLE@webid
web_identity_token_file = @HOME@/profile-token
role_session_name = webid-session

[profile on-webid]
role_arn = @ROLE@on-webid
source_profile = webid
]]):gsub("@AK@", AK):gsub("@SK@", SK):gsub("@ROLE@", ROLE) })
    files.write(home .. "/.aws/config", files.read(home .. "/.aws/config"):gsub("@HOME@", home))
    files.write(home .. "/profile-token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJwcm9maWxlIn0.sig")
    files.write(home .. "/env-token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJlbnYifQ.sig")
  end)
  teardown(function()
    if emu then emu:stop() end
    cs.remove(home)
  end)
  before_each(function()
    cs.reset(emu)
    emu:clear_requests()
    emu:clock({ skew = 0 })
  end)

  local function env(extra)
    local e = { AWS_ENDPOINT_URL = emu.url }
    for k, v in pairs(extra or {}) do e[k] = v end
    return cs.env(home, e)
  end

  -- lua-dms and botocore in `e`: lua's creds (checked) and the client; botocore's key
  -- must be of the same identity
  local function both(e, opts)
    opts = opts or {}
    local creds, err, client = cs.lua(e, { profile = opts.profile, logger = opts.logger })
    assert(creds, err and tostring(err))
    if cs.has_botocore then
      local b = cs.botocore(e, { profile = opts.profile })
      assert(b.access_key, cjson.encode(b))
      assert.is_true(cs.same_identity(emu, creds.access_key, b.access_key),
        creds.access_key .. " (lua-dms) and " .. b.access_key .. " (botocore) differ: "
        .. cjson.encode(cs.state(emu).issued))
    end
    return creds, client
  end

  local function sts_requests(action)
    local out = {}
    for _, r in ipairs(cs.requests(emu, "sts")) do
      if r.action == action then out[#out + 1] = r end
    end
    return out
  end

  it("assumes a role with its source profile's keys, as the profile asks", function()
    local creds, client = both(env({ AWS_PROFILE = "role" }))
    assert.truthy(creds.access_key:match("^ASIAROLE0"))
    assert.truthy(creds.session_token)
    local calls = sts_requests("AssumeRole")
    local r = calls[1]
    assert.are.equal(200, r.status)
    assert.are.equal(AK, r.caller)                       -- signed with the source keys
    assert.are.same({ "ext-1", "runbook", "1800", ROLE .. "ops" },
                    { r.params.ExternalId, r.params.RoleSessionName, r.params.DurationSeconds, r.params.RoleArn })
    -- the emulator takes the temporary keys, with their session token, for DMS
    assert(client:describe_replications({}))
    local last = emu:requests("DescribeReplications")
    assert.truthy(last[#last].headers["Authorization"]:find(creds.access_key, 1, true))
    -- the log never holds the token; an accepted call shows it was the one issued
    assert.are.equal("[redacted]", last[#last].headers["X-Amz-Security-Token"])
    assert.are.equal(200, last[#last].status)
    assert.are.equal(creds.access_key, client.credentials:get().access_key)   -- cached
    assert.are.equal(cs.has_botocore and 2 or 1, #sts_requests("AssumeRole"))
  end)

  it("chains roles: the second AssumeRole is signed with the first one's keys", function()
    local creds = both(env({ AWS_PROFILE = "chained" }))
    local calls = sts_requests("AssumeRole")
    assert.are.equal(ROLE .. "ops", calls[1].params.RoleArn)
    assert.are.equal(AK, calls[1].caller)
    assert.are.equal(ROLE .. "deploy", calls[2].params.RoleArn)
    assert.truthy(calls[2].caller:match("^ASIAROLE0"))
    assert.are.equal(calls[2].caller, cs.issued(emu, creds.access_key).source_access_key)
  end)

  it("lets a profile with keys of its own be its own source", function()
    both(env({ AWS_PROFILE = "self" }))
    assert.are.equal(AK, sts_requests("AssumeRole")[1].caller)
  end)

  it("signs with credential_source: Environment, EcsContainer, Ec2InstanceMetadata", function()
    -- (the profile chosen explicitly: else the environment's keys would be used as they are)
    both(env({ AWS_ACCESS_KEY_ID = AK, AWS_SECRET_ACCESS_KEY = SK }), { profile = "from-env" })
    assert.are.equal(AK, sts_requests("AssumeRole")[1].caller)
    cs.reset(emu)
    both(env({ AWS_PROFILE = "from-container", AWS_CONTAINER_CREDENTIALS_FULL_URI = emu.url .. "/v1/credentials" }))
    assert.truthy(sts_requests("AssumeRole")[1].caller:match("^ASIACONTR"))
    cs.reset(emu)
    both(env({ AWS_PROFILE = "from-imds", AWS_EC2_METADATA_SERVICE_ENDPOINT = emu.url }))
    assert.truthy(sts_requests("AssumeRole")[1].caller:match("^ASIAIMDS0"))
    -- a credential_source that finds nothing is an error, not the next provider
    local _, err = cs.lua(env({ AWS_PROFILE = "from-env" }))
    assert.are.equal("NoCredentials", err.code)
    assert.truthy(err.message:find("credential_source Environment", 1, true))
  end)

  it("surfaces an STS AccessDenied as a credentials error with its code", function()
    cs.settings(emu, { sts = { deny = { ROLE .. "denied" } } })
    local e = env({ AWS_PROFILE = "denied" })
    local creds, err, client = cs.lua(e)
    assert.is_nil(creds)
    assert.are.equal("credentials", err.kind)
    assert.are.equal("AccessDenied", err.code)
    assert.are.equal(403, err.status)
    assert.truthy(err.request_id)
    assert.truthy(err.message:find("AssumeRole", 1, true))
    assert.falsy(err.message:find(SK, 1, true))
    local r, cerr = client:describe_replications({})
    assert.is_nil(r)
    assert.are.same({ "credentials", "AccessDenied" }, { cerr.kind, cerr.code })
    assert.are.equal(0, #emu:requests("DescribeReplications"))
    assert.are.equal(2, #sts_requests("AssumeRole"))      -- one per call: a refusal is not retried
    assert.are.equal(1, err.attempts)
    if cs.has_botocore then
      local b = cs.botocore(e)
      assert.are.equal("ClientError", b.error)
      assert.truthy(b.message:find("AccessDenied", 1, true))
    end
  end)

  it("reports malformed XML, and retries STS's 5xx answers", function()
    cs.settings(emu, { sts = { malformed = true } })
    local _, err = cs.lua(env({ AWS_PROFILE = "role" }))
    assert.are.equal("MalformedResponse", err.code)
    assert.truthy(err.message:find("XML", 1, true))
    cs.reset(emu)
    cs.settings(emu, { sts = { status = 503 } })
    _, err = cs.lua(env({ AWS_PROFILE = "role" }))
    assert.are.equal("InternalFailure", err.code)
    assert.are.equal(503, err.status)
    assert.are.equal(3, err.attempts)
    assert.are.equal(3, #cs.requests(emu, "sts"))
  end)

  it("assumes a role with a web identity token from the environment, unsigned", function()
    local creds = both(env({ AWS_WEB_IDENTITY_TOKEN_FILE = home .. "/env-token", AWS_ROLE_ARN = ROLE .. "irsa",
                             AWS_ROLE_SESSION_NAME = "pod-1" }))
    assert.truthy(creds.access_key:match("^ASIAWEBID"))
    local r = sts_requests("AssumeRoleWithWebIdentity")[1]
    assert.are.same({ ROLE .. "irsa", "pod-1" }, { r.params.RoleArn, r.params.RoleSessionName })
    assert.are.equal(files.read(home .. "/env-token"), r.web_identity_token)
    assert.is_nil(r.caller)
    assert.are.equal("env", cs.issued(emu, creds.access_key).subject)
  end)

  it("reads the web identity token file again at each refresh", function()
    cs.settings(emu, { lifetime = 1000 })
    local offset = 0
    local token = home .. "/rotating-token"
    files.write(token, "token-one")
    local e = env({ AWS_WEB_IDENTITY_TOKEN_FILE = token, AWS_ROLE_ARN = ROLE .. "irsa" })
    local first, _, client = cs.lua(e, { clock = function() return core.now() + offset end })
    files.write(token, "token-two")
    offset = 50                                   -- 950 s left: fresh
    assert.are.equal(first.access_key, client.credentials:get().access_key)
    offset = 150                                  -- 850 s left: the advisory window
    local second = assert(client.credentials:get())
    assert.are_not.equal(first.access_key, second.access_key)
    local calls = sts_requests("AssumeRoleWithWebIdentity")
    assert.are.same({ "token-one", "token-two" }, { calls[1].web_identity_token, calls[2].web_identity_token })
    assert(client:describe_replications({}))
  end)

  it("takes each web identity setting from the environment first, unless the profile was chosen", function()
    -- AWS_ROLE_ARN overrides the profile's role_arn, the profile's token file is used
    local creds = both(env({ AWS_PROFILE = "webid", AWS_ROLE_ARN = ROLE .. "from-env-var" }))
    assert.are.equal(ROLE .. "from-env-var", cs.issued(emu, creds.access_key).role_arn)
    assert.are.equal("profile", cs.issued(emu, creds.access_key).subject)
    -- an explicit profile ignores the environment's web identity settings
    cs.reset(emu)
    creds = both(env({ AWS_WEB_IDENTITY_TOKEN_FILE = home .. "/env-token", AWS_ROLE_ARN = ROLE .. "irsa" }),
                 { profile = "webid" })
    assert.are.equal(ROLE .. "webid", cs.issued(emu, creds.access_key).role_arn)
    assert.are.equal("webid-session", sts_requests("AssumeRoleWithWebIdentity")[1].params.RoleSessionName)
    -- a source profile's web identity
    cs.reset(emu)
    creds = both(env({ AWS_PROFILE = "on-webid" }))
    assert.truthy(sts_requests("AssumeRole")[1].caller:match("^ASIAWEBID"))
    assert.are.equal(ROLE .. "on-webid", cs.issued(emu, creds.access_key).role_arn)
  end)

  it("gets ExpiredTokenException with expired keys, and the chain fetches new ones", function()
    cs.settings(emu, { lifetime = 2 })
    local creds, _, client = cs.lua(env({ AWS_PROFILE = "role" }))
    local fixed = emu:client({ credentials = { access_key = creds.access_key, secret_key = creds.secret_key,
                                               session_token = creds.session_token } })
    assert(fixed:describe_replications({}))
    core.sleep(2.2)
    local r, err = fixed:describe_replications({})
    assert.is_nil(r)
    assert.are.same({ "service", "ExpiredTokenException" }, { err.kind, err.code })
    cs.settings(emu, { lifetime = 3600 })
    assert(client:describe_replications({}))         -- refreshed: the old keys had expired
    assert.are_not.equal(creds.access_key, client.credentials:get().access_key)
  end)

  it("keeps using valid keys when a refresh fails, with a warning, and fails once they expire", function()
    cs.settings(emu, { lifetime = 1000 })
    local offset = 0
    local log, lines = cs.logger()
    local first, _, client = cs.lua(env({ AWS_PROFILE = "denied" }),
      { clock = function() return core.now() + offset end, logger = log })
    cs.settings(emu, { sts = { deny = { ROLE .. "denied" } } })
    -- time moves on for both sides (the emulator checks signatures and expiry on its clock)
    offset = 200                                  -- 800 s left
    emu:clock({ skew = offset })
    assert.are.equal(first.access_key, client.credentials:get().access_key)
    assert(client:describe_replications({}))
    local warned = false
    for _, l in ipairs(lines) do
      if l.level == "warn" and l.fields.code == "AccessDenied" then warned = true end
      assert.falsy(cjson.encode(l.fields):find(first.secret_key, 1, true))
    end
    assert.is_true(warned)
    offset = 1001                                 -- expired
    emu:clock({ skew = offset })
    local creds, err = client.credentials:get()
    assert.is_nil(creds)
    assert.are.equal("AccessDenied", err.code)
  end)

  it("finds the STS and SSO endpoints as botocore does", function()
    local http = require "dms.credentials.http"
    local config = require "dms.config"
    local services = home .. "/config-services"
    files.write(services, "[default]\nservices = local\n[services local]\n"
      .. "sts =\n  endpoint_url = http://127.0.0.1:7100\n"
      .. "[profile ignoring]\nservices = local\nignore_configured_endpoint_urls = true\n")
    local CASES = {
      { "us-east-1", {} }, { "eu-west-1", {} }, { "cn-north-1", {} }, { "us-gov-west-1", {} },
      { "aws-global", {} }, { "eu-west-1", { AWS_STS_REGIONAL_ENDPOINTS = "legacy" } },
      { "ap-east-1", { AWS_STS_REGIONAL_ENDPOINTS = "legacy" } }, { "us-east-1", { AWS_USE_FIPS_ENDPOINT = "true" } },
      { "us-gov-west-1", { AWS_USE_FIPS_ENDPOINT = "true" } }, { "eu-west-1", { AWS_USE_DUALSTACK_ENDPOINT = "true" } },
      { "eu-west-1", { AWS_ENDPOINT_URL_STS = "http://127.0.0.1:7001", AWS_ENDPOINT_URL = "http://127.0.0.1:7002" } },
      { "eu-west-1", { AWS_ENDPOINT_URL = "http://127.0.0.1:7002" } },
      { "eu-west-1", { AWS_CONFIG_FILE = services } },
      { "eu-west-1", { AWS_CONFIG_FILE = services, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS = "true" } },
      { "eu-west-1", { AWS_CONFIG_FILE = services, AWS_PROFILE = "ignoring" } },
    }
    for _, case in ipairs(CASES) do
      local e = { HOME = home }
      for k, v in pairs(case[2]) do e[k] = v end
      local cfg = { env = e }
      local shared = config.load_shared(cfg)
      local name = config.getenv(cfg, "AWS_PROFILE") or "default"
      local ctx = { getenv = function(n) return e[n] end, shared = shared, profile = shared.profiles[name] or {} }
      local sts_url = assert(http.endpoint(ctx, "sts", case[1]))
      local sso_url = assert(http.endpoint(ctx, "sso", case[1]))
      if cs.has_botocore then
        local b = cs.botocore(e, { region = case[1], endpoints = { "sts", "sso" } })
        local what = case[1] .. " " .. cjson.encode(case[2])
        assert.are.equal(b.endpoints.sts, (sts_url.url:gsub("/$", "")), what)
        assert.are.equal(b.endpoints.sso, (sso_url.url:gsub("/$", "")), what)
      end
    end
  end)
end)
