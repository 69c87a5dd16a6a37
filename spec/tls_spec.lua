-- TLS through libcurl against the local DMS endpoint served over HTTPS with
-- a certificate made for the test: verification on by default, ca_file, and
-- insecure only when asked.
local emulator = require "support.emulator"

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

describe("TLS", function()
  local dir, emu
  setup(function()
    local p = io.popen("mktemp -d")
    dir = p:read("*l")
    p:close()
    assert(sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost"
      .. " -addext subjectAltName=IP:127.0.0.1,DNS:localhost"
      .. " -keyout " .. dir .. "/key.pem -out " .. dir .. "/cert.pem"), "openssl could not make a certificate")
    assert(sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other"
      .. " -keyout " .. dir .. "/other-key.pem -out " .. dir .. "/other.pem"))
    emu = emulator.start({ args = "--tls-cert " .. dir .. "/cert.pem --tls-key " .. dir .. "/key.pem" })
  end)
  teardown(function()
    if emu then emu:stop() end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("serves https", function()
    assert.truthy(emu.url:match("^https://127%.0%.0%.1:%d+$"))
  end)

  it("refuses a certificate it cannot verify, before sending the request", function()
    local client = emu:client({ retry = { max_attempts = 1 } })
    local _, err = client:describe_replications({})
    assert.are.equal("transport", err.kind)
    assert.are.equal("TLSError", err.code)
    assert.is_false(err.sent)
    client:close()
  end)

  it("refuses a certificate signed by another CA given in ca_file", function()
    local client = emu:client({ retry = { max_attempts = 1 }, ca_file = dir .. "/other.pem" })
    local _, err = client:describe_replications({})
    assert.are.equal("TLSError", err.code)
    client:close()
  end)

  it("verifies against ca_file and then talks to DMS", function()
    local client = emu:client({ ca_file = dir .. "/cert.pem" })
    local resp, err = client:describe_replications({})
    assert.is_nil(err)
    assert.are.equal(3, #resp.Replications)
    client:close()
  end)

  it("skips verification only with insecure = true, and warns", function()
    local warnings = {}
    local client = emu:client({ insecure = true,
      logger = function(level, msg) if level == "warn" then warnings[#warnings + 1] = msg end end })
    assert(client:describe_replications({}))
    assert.are.equal(1, #warnings)
    assert.truthy(warnings[1]:find("TLS verification is off", 1, true))
    client:close()
  end)

  it("does not carry insecure from one request to the next on the same handle", function()
    local h = assert(require("dms.curl").http())
    local ok = h:request({ url = emu.url .. "/_emulator/health", method = "GET", insecure = true })
    assert.truthy(ok)
    local resp, err = h:request({ url = emu.url .. "/_emulator/health", method = "GET" })
    assert.is_nil(resp)
    assert.are.equal("TLSError", err.code)
    h:close()
  end)
end)
