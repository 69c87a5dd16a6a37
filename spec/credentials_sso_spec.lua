-- SSO (IAM Identity Center) profiles against the local endpoint's portal
-- (emulator/), next to botocore: sso_session and legacy profiles, the token
-- cache file named as the AWS CLI names it, an expired or missing token (an
-- error that says to run `aws sso login`, and no request), a token the portal
-- refuses, and settings that contradict their sso-session.
local core = require "dms.core"
local cjson = require "cjson"
local cs = require "support.credentials"
local emulator = require "support.emulator"
local files = require "support.files"
local sha1 = require "dms.credentials.sha1"

local START_URL = "https://corp.awsapps.com/start"
local LEGACY_URL = "https://legacy.awsapps.com/start#/"

-- the AWS CLI's cache file name, from python's hashlib
local function cli_cache_name(s)
  local p = assert(io.popen("python3 -c 'import hashlib, sys; print(hashlib.sha1(sys.argv[1].encode()).hexdigest())' "
    .. cs.quote(s)))
  local out = p:read("*l")
  p:close()
  return out .. ".json"
end

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end

describe("SSO credentials", function()
  local emu, home
  setup(function()
    emu = emulator.start()
    home = cs.home({ config = ([[
[profile sso]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = DMSOperator
region = us-east-1

[sso-session corp]
sso_start_url = @START@
sso_region = eu-west-1
sso_registration_scopes = sso:account:access

[profile legacy]
sso_start_url = @LEGACY@
sso_region = us-east-1
sso_account_id = 210987654321
sso_role_name = ReadOnly

[profile conflict]
sso_session = corp
sso_region = us-west-2
sso_account_id = 123456789012
sso_role_name = DMSOperator
]]):gsub("@START@", START_URL):gsub("@LEGACY@", LEGACY_URL) })
  end)
  teardown(function()
    if emu then emu:stop() end
    cs.remove(home)
  end)
  before_each(function()
    cs.reset(emu)
    cs.settings(emu, { sso = { tokens = { "tok-corp", "tok-legacy" } } })
  end)

  local function token(name, access_token, expires_at)
    files.write(home .. "/.aws/sso/cache/" .. cli_cache_name(name), cjson.encode({
      startUrl = START_URL, region = "eu-west-1", accessToken = access_token, expiresAt = expires_at }))
  end
  local function env(extra)
    local e = { AWS_ENDPOINT_URL_SSO = emu.url, AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE = emu.url }
    for k, v in pairs(extra or {}) do e[k] = v end
    return cs.env(home, e)
  end

  it("names the token cache file as the AWS CLI does", function()
    for _, s in ipairs({ "corp", START_URL, LEGACY_URL, "my sso session é" }) do
      assert.are.equal(cli_cache_name(s), sha1.hex(s) .. ".json")
    end
  end)

  it("gets the role's credentials with an sso_session profile's cached token", function()
    token("corp", "tok-corp", iso(core.now() + 3600))
    local e = env({ AWS_PROFILE = "sso" })
    local creds, err, client = cs.lua(e)
    assert(creds, err and tostring(err))
    assert.truthy(creds.access_key:match("^ASIASSO00"))
    local r = cs.requests(emu, "sso")[1]
    assert.are.same({ "123456789012", "DMSOperator", 200 }, { r.account_id, r.role_name, r.status })
    assert(client:describe_replications({}))
    if cs.has_botocore then
      local b = cs.botocore(e)
      assert(b.access_key, cjson.encode(b))
      assert.is_true(cs.same_identity(emu, creds.access_key, b.access_key))
    end
  end)

  it("gets them with a legacy profile, the file named after the start URL", function()
    token(LEGACY_URL, "tok-legacy", (iso(core.now() + 3600):gsub("Z$", "UTC")))
    local e = env({ AWS_PROFILE = "legacy" })
    local creds = assert(cs.lua(e))
    assert.are.equal("210987654321", cs.issued(emu, creds.access_key).account_id)
    if cs.has_botocore then
      assert.is_true(cs.same_identity(emu, creds.access_key, assert(cs.botocore(e).access_key)))
    end
  end)

  it("says to run aws sso login when the token expired, and sends nothing", function()
    token("corp", "tok-corp", iso(core.now() - 60))
    token(LEGACY_URL, "tok-legacy", iso(core.now() - 60))
    for _, profile in ipairs({ "sso", "legacy" }) do
      local e = env({ AWS_PROFILE = profile })
      local creds, err = cs.lua(e)
      assert.is_nil(creds)
      assert.are.same({ "credentials", "SSOTokenExpired" }, { err.kind, err.code })
      assert.truthy(err.message:find("aws sso login --profile " .. profile, 1, true), err.message)
      assert.falsy(err.message:find("tok-", 1, true))
      if cs.has_botocore then assert.truthy(cs.botocore(e).error) end
    end
    assert.are.equal(0, #cs.requests(emu, "sso"))
  end)

  it("says to run aws sso login when there is no cached token", function()
    os.remove(home .. "/.aws/sso/cache/" .. cli_cache_name("corp"))
    local e = env({ AWS_PROFILE = "sso" })
    local _, err = cs.lua(e)
    assert.are.equal("SSOTokenMissing", err.code)
    assert.truthy(err.message:find("aws sso login", 1, true))
    assert.truthy(err.message:find(sha1.hex("corp"), 1, true))
    assert.are.equal(0, #cs.requests(emu, "sso"))
    if cs.has_botocore then assert.are.equal("SSOTokenLoadError", cs.botocore(e).error) end
  end)

  it("reports a token the portal refuses", function()
    token("corp", "tok-revoked", iso(core.now() + 3600))
    local e = env({ AWS_PROFILE = "sso" })
    local _, err = cs.lua(e)
    assert.are.equal("SSOTokenExpired", err.code)
    assert.are.equal(401, err.status)
    assert.truthy(err.message:find("aws sso login", 1, true))
    assert.falsy(err.message:find("tok-revoked", 1, true))
    if cs.has_botocore then assert.are.equal("UnauthorizedSSOTokenError", cs.botocore(e).error) end
  end)

  it("refuses a profile that contradicts its sso-session", function()
    local e = env({ AWS_PROFILE = "conflict" })
    local _, err = cs.lua(e)
    assert.are.equal("InvalidProfile", err.code)
    assert.truthy(err.message:find("sso_region", 1, true))
    if cs.has_botocore then assert.are.equal("InvalidConfigError", cs.botocore(e).error) end
  end)
end)
