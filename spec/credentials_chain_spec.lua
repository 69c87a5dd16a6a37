-- The credential chain without a network: environment keys, the shared files
-- (static keys, credential_process, profiles that refer to other profiles),
-- the errors of misconfigured profiles, and the cache's refresh windows. Every
-- scenario runs lua-dms and botocore (spec/support/credentials_oracle.py) in
-- the same environment, with real files in a temporary home: both must pick
-- the same keys, or both must refuse.
local cjson = require "cjson"
local cs = require "support.credentials"
local files = require "support.files"
local cache = require "dms.credentials.cache"

local ROLE = "arn:aws:iam::123456789012:role/"

describe("credential chain", function()
  local home, proc
  setup(function()
    home = cs.home()
    proc = home .. "/proc.sh"
    -- prints the process answer for the access key given as $1
    files.write(proc, "#!/bin/sh\nprintf '{\"Version\": 1, \"AccessKeyId\": \"%s\", \"SecretAccessKey\": "
      .. "\"proc-secret\", \"SessionToken\": \"proc-token\"}' \"$1\"\n")
    os.execute("chmod +x " .. cs.quote(proc))
    files.write(home .. "/.aws/credentials", [[
[default]
aws_access_key_id = AKIDCREDSDEFAULT
aws_secret_access_key = creds-default-secret

[static]
AWS_ACCESS_KEY_ID = AKIDCREDSSTATIC
aws_secret_access_key = creds-static-secret
aws_session_token = creds-static-session
aws_security_token = creds-static-security

[both]
aws_access_key_id = AKIDBOTHCREDS
aws_secret_access_key = both-creds-secret

[partial]
aws_access_key_id = AKIDPARTIAL
]])
    files.write(home .. "/.aws/config", ([[
[default]
region = us-east-1

[profile static]
region = us-east-1

[profile both]
credential_process = @PROC@ AKIDBOTHPROC
aws_access_key_id = AKIDBOTHCONFIG
aws_secret_access_key = both-config-secret

[profile procfirst]
credential_process = "@PROC@" AKIDPROCFIRST
aws_access_key_id = AKIDPROCCONFIG
aws_secret_access_key = proc-config-secret

[profile configonly]
aws_access_key_id = AKIDCONFIGONLY
aws_secret_access_key = config-only-secret
aws_session_token = config-only-token

[profile loop-a]
role_arn = @ROLE@a
source_profile = loop-b

[profile loop-b]
role_arn = @ROLE@b
source_profile = loop-a

[profile self-no-keys]
role_arn = @ROLE@self
source_profile = self-no-keys

[profile no-source]
role_arn = @ROLE@nosource

[profile two-sources]
role_arn = @ROLE@two
source_profile = static
credential_source = Environment

[profile bad-source]
role_arn = @ROLE@bad
credential_source = environment

[profile missing-source]
role_arn = @ROLE@missing
source_profile = nowhere

[profile empty-source]
role_arn = @ROLE@empty
source_profile = regionless

[profile regionless]
output = json

[profile mfa]
role_arn = @ROLE@mfa
source_profile = static
mfa_serial = arn:aws:iam::123456789012:mfa/me

[profile sso-partial]
sso_account_id = 123456789012

[profile sso-no-session]
sso_session = nope
sso_account_id = 123456789012
sso_role_name = ops

[profile login]
login_session = arn:aws:iam::123456789012:user/me

[profile webid-no-role]
web_identity_token_file = @HOME@/token

[profile proc-v2]
credential_process = sh -c 'echo "{\"Version\": 2, \"AccessKeyId\": \"A\", \"SecretAccessKey\": \"B\"}"'

[profile proc-not-json]
credential_process = sh -c 'echo secret-output-not-json'

[profile proc-no-keys]
credential_process = sh -c 'echo "{\"Version\": 1}"'

[profile proc-fails]
credential_process = sh -c 'echo secret-output; exit 3'
]]):gsub("@PROC@", proc):gsub("@ROLE@", ROLE):gsub("@HOME@", home))
  end)
  -- shared files as botocore's parser (Python's strict RawConfigParser) reads them
  setup(function()
    files.write(home .. "/colon.ini", "[default]\naws_access_key_id : AKIDCOLON\naws_secret_access_key: colon-secret\n")
    files.write(home .. "/dup-key.ini", "[default]\naws_access_key_id = A\naws_access_key_id = B\n"
      .. "aws_secret_access_key = s\n")
    files.write(home .. "/dup-section.ini", "[default]\naws_access_key_id = A\naws_secret_access_key = s\n"
      .. "[default]\nregion = x\n")
    files.write(home .. "/no-section.ini", "x = 1\n[default]\naws_access_key_id = A\naws_secret_access_key = s\n")
    files.write(home .. "/no-value.ini", "[default]\naws_access_key_id = A\njunk\naws_secret_access_key = s\n")
    files.write(home .. "/spaced.ini", "[ default ]\naws_access_key_id = A\naws_secret_access_key = s\n")
    files.write(home .. "/continued.ini", "[default]\naws_access_key_id = AKIDCONT # not a comment\n"
      .. "aws_secret_access_key = first\n  second\n")
    files.write(home .. "/defaults.ini", "[DEFAULT]\naws_secret_access_key = from-defaults\n[default]\n"
      .. "aws_access_key_id = AKIDDEFAULTS\n")
  end)
  teardown(function() cs.remove(home) end)

  local ENV_KEYS = { AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret" }
  local function with(t, extra)
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    for k, v in pairs(extra or {}) do out[k] = v end
    return out
  end

  -- name, environment, explicit profile, then either the keys (access key,
  -- secret, token) or the lua-dms error code and botocore's exception
  local SCENARIOS = {
    { "environment keys; AWS_SECURITY_TOKEN before AWS_SESSION_TOKEN",
      with(ENV_KEYS, { AWS_SECURITY_TOKEN = "env-security", AWS_SESSION_TOKEN = "env-session" }),
      keys = { "AKIDENV", "env-secret", "env-security" } },
    { "environment keys with AWS_SESSION_TOKEN", with(ENV_KEYS, { AWS_SESSION_TOKEN = "env-session" }),
      keys = { "AKIDENV", "env-secret", "env-session" } },
    { "an empty AWS_ACCESS_KEY_ID counts as unset", { AWS_ACCESS_KEY_ID = "" },
      keys = { "AKIDCREDSDEFAULT", "creds-default-secret" } },
    { "AWS_PROFILE does not skip the environment", with(ENV_KEYS, { AWS_PROFILE = "static" }),
      keys = { "AKIDENV", "env-secret" } },
    { "AWS_DEFAULT_PROFILE before AWS_PROFILE", { AWS_DEFAULT_PROFILE = "configonly", AWS_PROFILE = "static" },
      keys = { "AKIDCONFIGONLY", "config-only-secret", "config-only-token" } },
    { "an explicit profile skips the environment", ENV_KEYS, profile = "static",
      keys = { "AKIDCREDSSTATIC", "creds-static-secret", "creds-static-security" } },
    { "an access key without a secret in the environment", { AWS_ACCESS_KEY_ID = "AKIDENV" },
      code = "IncompleteCredentials", botocore = "PartialCredentialsError" },
    { "the default profile's keys in the credentials file", {},
      keys = { "AKIDCREDSDEFAULT", "creds-default-secret" } },
    { "the credentials file before credential_process and the config file", { AWS_PROFILE = "both" },
      keys = { "AKIDBOTHCREDS", "both-creds-secret" } },
    { "credential_process before the config file's keys", { AWS_PROFILE = "procfirst" },
      keys = { "AKIDPROCFIRST", "proc-secret", "proc-token" } },
    { "the config file's keys and token", { AWS_PROFILE = "configonly" },
      keys = { "AKIDCONFIGONLY", "config-only-secret", "config-only-token" } },
    { "AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE", {
        AWS_SHARED_CREDENTIALS_FILE = "@HOME@/none", AWS_CONFIG_FILE = "@HOME@/.aws/config",
        AWS_PROFILE = "configonly" },
      keys = { "AKIDCONFIGONLY", "config-only-secret", "config-only-token" } },
    { "an access key without a secret in the credentials file", { AWS_PROFILE = "partial" },
      code = "IncompleteCredentials", botocore = "PartialCredentialsError" },
    { "a source profile loop", { AWS_PROFILE = "loop-a" },
      code = "SourceProfileLoop", botocore = "InfiniteLoopConfigError" },
    { "a profile sourcing itself without keys", { AWS_PROFILE = "self-no-keys" },
      code = "SourceProfileLoop", botocore = "InfiniteLoopConfigError" },
    { "role_arn without a source", { AWS_PROFILE = "no-source" },
      code = "IncompleteCredentials", botocore = "PartialCredentialsError" },
    { "both source_profile and credential_source", { AWS_PROFILE = "two-sources" },
      code = "InvalidProfile", botocore = "InvalidConfigError" },
    { "a credential_source that is not one of the three", { AWS_PROFILE = "bad-source" },
      code = "InvalidProfile", botocore = "InvalidConfigError" },
    { "a source_profile that does not exist", { AWS_PROFILE = "missing-source" },
      code = "InvalidProfile", botocore = "InvalidConfigError" },
    { "a source_profile without credentials", { AWS_PROFILE = "empty-source" },
      code = "InvalidProfile", botocore = "InvalidConfigError" },
    { "an SSO profile missing settings", { AWS_PROFILE = "sso-partial" },
      code = "InvalidProfile", botocore = "InvalidConfigError" },
    { "an sso_session without its section", { AWS_PROFILE = "sso-no-session" },
      code = "InvalidProfile", botocore = "InvalidConfigError" },
    { "web_identity_token_file without a role", { AWS_PROFILE = "webid-no-role" },
      code = "InvalidProfile", botocore = "InvalidConfigError" },
    { "a login_session profile", { AWS_PROFILE = "login" }, code = "Unsupported", botocore = true },
    { "credential_process printing Version 2", { AWS_PROFILE = "proc-v2" },
      code = "ProcessFailed", botocore = "CredentialRetrievalError" },
    { "credential_process printing no JSON", { AWS_PROFILE = "proc-not-json" },
      code = "ProcessFailed", botocore = "JSONDecodeError" },
    { "credential_process printing no keys", { AWS_PROFILE = "proc-no-keys" },
      code = "ProcessFailed", botocore = "CredentialRetrievalError" },
    { "credential_process failing", { AWS_PROFILE = "proc-fails" },
      code = "ProcessFailed", botocore = "CredentialRetrievalError" },
    { "a container URL on a host neither loopback nor ECS/EKS",
      { AWS_SHARED_CREDENTIALS_FILE = "@HOME@/none", AWS_CONFIG_FILE = "@HOME@/none",
        AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://10.11.12.13/creds" },
      code = "InvalidContainerUri", botocore = "ValueError" },
    { "nothing anywhere", { AWS_SHARED_CREDENTIALS_FILE = "@HOME@/none", AWS_CONFIG_FILE = "@HOME@/none" },
      code = "NoCredentials", botocore = "none" },
    { "key: value, as configparser reads it", { AWS_SHARED_CREDENTIALS_FILE = "@HOME@/colon.ini",
        AWS_CONFIG_FILE = "@HOME@/none" }, keys = { "AKIDCOLON", "colon-secret" } },
    { "a key twice in a section", { AWS_SHARED_CREDENTIALS_FILE = "@HOME@/dup-key.ini",
        AWS_CONFIG_FILE = "@HOME@/none" }, code = "ConfigParseError", botocore = "ConfigParseError" },
    { "a section twice", { AWS_SHARED_CREDENTIALS_FILE = "@HOME@/dup-section.ini",
        AWS_CONFIG_FILE = "@HOME@/none" }, code = "ConfigParseError", botocore = "ConfigParseError" },
    { "a line before the first section", { AWS_SHARED_CREDENTIALS_FILE = "@HOME@/no-section.ini",
        AWS_CONFIG_FILE = "@HOME@/none" }, code = "ConfigParseError", botocore = "ConfigParseError" },
    { "a line that is no key = value", { AWS_SHARED_CREDENTIALS_FILE = "@HOME@/no-value.ini",
        AWS_CONFIG_FILE = "@HOME@/none" }, code = "ConfigParseError", botocore = "ConfigParseError" },
    { "[ default ] is another profile than default", { AWS_SHARED_CREDENTIALS_FILE = "@HOME@/spaced.ini",
        AWS_CONFIG_FILE = "@HOME@/none" }, code = "NoCredentials", botocore = "none" },
    { "a value continued on an indented line; # inside a value", {
        AWS_SHARED_CREDENTIALS_FILE = "@HOME@/continued.ini", AWS_CONFIG_FILE = "@HOME@/none" },
      keys = { "AKIDCONT # not a comment", "first\nsecond" } },
    { "[DEFAULT] values reach every section", { AWS_SHARED_CREDENTIALS_FILE = "@HOME@/defaults.ini",
        AWS_CONFIG_FILE = "@HOME@/none" }, keys = { "AKIDDEFAULTS", "from-defaults" } },
    { "an empty AWS_PROFILE names a profile that does not exist", { AWS_PROFILE = "" },
      kind = "config", code = "ProfileNotFound", botocore = "ProfileNotFound" },
    { "a malformed config file fails the client", { AWS_CONFIG_FILE = "@HOME@/dup-key.ini" },
      kind = "config", code = "ConfigParseError", botocore = "ConfigParseError" },
  }

  for _, sc in ipairs(SCENARIOS) do
    it(sc[1], function()
      local extra = {}
      for k, v in pairs(sc[2]) do extra[k] = v:gsub("@HOME@", home) end
      local env = cs.env(home, extra)
      local creds, err = cs.lua(env, { profile = sc.profile })
      if sc.keys then
        assert(creds, err and tostring(err))
        assert.are.same(sc.keys, { creds.access_key, creds.secret_key, creds.session_token })
      else
        assert.is_nil(creds)
        assert.are.equal(sc.kind or "credentials", err.kind)
        assert.are.equal(sc.code, err.code, tostring(err))
        for _, secret in ipairs({ "secret-output", "creds-static-secret", "env-secret", "proc-secret" }) do
          assert.falsy(tostring(err):find(secret, 1, true), tostring(err))
        end
      end
      if not cs.has_botocore then
        pending("botocore is not installed: the differential check is skipped")
        return
      end
      local b = cs.botocore(env, { profile = sc.profile })
      if sc.keys then
        local token = b.token ~= cjson.null and b.token or nil
        assert.are.same(sc.keys, { b.access_key, b.secret_key, token }, cjson.encode(b))
      elseif sc.botocore == "none" then
        assert.is_true(b.none, cjson.encode(b))
      elseif sc.botocore == true then
        assert.truthy(b.error, cjson.encode(b))
      else
        assert.are.equal(sc.botocore, b.error, cjson.encode(b))
      end
    end)
  end

  it("names every provider it tried, and why none applied", function()
    local env = cs.env(home, { AWS_SHARED_CREDENTIALS_FILE = home .. "/none", AWS_CONFIG_FILE = home .. "/none" })
    local _, err = cs.lua(env)
    assert.are.equal("NoCredentials", err.code)
    assert.are.equal(10, #err.tried)
    for _, name in ipairs({ "environment", "assume role", "web identity", "sso", "credentials file",
                            "credential_process", "config file", "container", "instance metadata" }) do
      assert.truthy(err.message:find(name .. ": ", 1, true), name)
    end
    assert.truthy(err.message:find("AWS_EC2_METADATA_DISABLED", 1, true))
    assert.truthy(err.message:find(home .. "/none cannot be read", 1, true))
  end)

  it("refuses mfa_serial by name, before any request", function()
    local _, err = cs.lua(cs.env(home, { AWS_PROFILE = "mfa", AWS_ENDPOINT_URL = "http://127.0.0.1:9" }))
    assert.are.equal("Unsupported", err.code)
    assert.truthy(err.message:find("mfa_serial", 1, true))
  end)

  it("succeeds in dms.new without credentials and reports on the first call", function()
    local dms = require "dms"
    local c = assert(dms.new({ region = "us-east-1", endpoint = "http://127.0.0.1:9",
      env = cs.env(home, { AWS_SHARED_CREDENTIALS_FILE = home .. "/none", AWS_CONFIG_FILE = home .. "/none" }) }))
    local r, err = c:describe_replications({})
    assert.is_nil(r)
    assert.are.equal("credentials", err.kind)
    assert.are.equal("NoCredentials", err.code)
    c:close()
  end)

  it("reads a credential_process again once its Expiration nears", function()
    local count = home .. "/count"
    local script = home .. "/expiring.sh"
    files.write(script, "#!/bin/sh\nn=$(cat " .. count .. " 2>/dev/null || echo 0); n=$((n+1)); echo $n > "
      .. count .. "\nprintf '{\"Version\": 1, \"AccessKeyId\": \"AKIDEXP%s\", \"SecretAccessKey\": \"s\","
      .. " \"Expiration\": \"2030-01-01T01:00:00Z\"}' $n\n")
    os.execute("chmod +x " .. cs.quote(script))
    local cfg = home .. "/config-expiring"
    files.write(cfg, "[default]\ncredential_process = " .. script .. "\n")
    local now = 1893456000                          -- 2030-01-01T00:00:00Z: an hour before expiry
    local env = cs.env(home, { AWS_CONFIG_FILE = cfg, AWS_SHARED_CREDENTIALS_FILE = home .. "/none" })
    local creds, _, client = cs.lua(env, { clock = function() return now end })
    assert.are.equal("AKIDEXP1", creds.access_key)
    now = now + 2600                                -- 1000 s left: fresh
    assert.are.equal("AKIDEXP1", client.credentials:get().access_key)
    now = now + 200                                 -- 800 s left: the advisory window
    assert.are.equal("AKIDEXP2", client.credentials:get().access_key)
  end)
end)

-- the cache alone: botocore's advisory (15 min) and mandatory (10 min) windows
describe("credentials cache", function()
  local now, calls, answer, log, lines
  local function new()
    calls = 0
    log, lines = cs.logger()
    return cache.new({ description = "test source", clock = function() return now end, logger = log,
      fetch = function()
        calls = calls + 1
        if type(answer) == "function" then return answer() end
        return answer
      end })
  end
  local function temp(id, ttl)
    return { access_key = id, secret_key = "secret-" .. id, session_token = "token-" .. id, expiration = now + ttl }
  end

  before_each(function() now = 1000000 end)

  it("keeps credentials until the advisory window, then refreshes", function()
    answer = temp("A1", 3600)
    local c = new()
    assert.are.equal("A1", c:get().access_key)
    now = now + 3600 - 901
    assert.are.equal("A1", c:get().access_key)
    assert.are.equal(1, calls)
    answer = temp("A2", 3600)
    now = now + 2                                   -- 899 s left
    assert.are.equal("A2", c:get().access_key)
    assert.are.equal(2, calls)
  end)

  it("keeps the current credentials when a refresh fails before they expire, with a warning", function()
    answer = temp("B1", 3600)
    local c = new()
    assert.are.equal("B1", c:get().access_key)
    answer = function() return nil, cache.error("AccessDenied", "denied") end
    now = now + 3600 - 700                          -- advisory window
    assert.are.equal("B1", c:get().access_key)
    now = now + 400                                 -- mandatory window, still valid
    assert.are.equal("B1", c:get().access_key)
    assert.are.equal(3, calls)
    assert.are.equal(2, #lines)
    assert.are.equal("warn", lines[1].level)
    assert.are.equal("AccessDenied", lines[1].fields.code)
    assert.are.equal("advisory", lines[1].fields.window)
    assert.are.equal("mandatory", lines[2].fields.window)
    for _, l in ipairs(lines) do
      assert.falsy(cjson.encode(l.fields):find("secret-B1", 1, true))
    end
    now = now + 301                                 -- expired: the failure is the caller's
    local creds, err = c:get()
    assert.is_nil(creds)
    assert.are.equal("AccessDenied", err.code)
  end)

  it("refuses credentials that are expired when they arrive", function()
    answer = temp("C1", -5)
    local c = new()
    local creds, err = c:get()
    assert.is_nil(creds)
    assert.are.equal("ExpiredCredentials", err.code)
  end)

  it("turns a raising provider into an error value", function()
    answer = function() error("boom") end
    local _, err = new():get()
    assert.are.equal("ProviderError", err.code)
    assert.truthy(err.message:find("boom", 1, true))
  end)

  it("never prints secrets", function()
    local creds = assert(cache.normalize({ AccessKeyId = "ASIAEXAMPLEKEY12345", SecretAccessKey = "SECRETVALUE",
                                           Token = "TOKENVALUE", Expiration = "2030-01-01T00:00:00Z" }, "t"))
    local s = tostring(creds)
    assert.falsy(s:find("SECRETVALUE", 1, true) or s:find("TOKENVALUE", 1, true) or s:find("EXAMPLEKEY1", 1, true))
    assert.are.equal(1893456000, creds.expiration)
  end)
end)

