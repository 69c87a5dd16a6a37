-- Credentials inside a real nginx (one worker, LuaJIT, build/luajit/dms/core.so):
-- container credentials served by the same worker with a 300 ms delay while 50
-- requests need a refresh (one fetch, all answered, the worker never blocked),
-- web identity (STS over a cosocket, its XML read by lua-expat), IMDSv2, and
-- credential_process, which runs through ngx.pipe or is refused where
-- ngx.pipe is missing.
local cjson = require "cjson"
local cs = require "support.credentials"
local emulator = require "support.emulator"
local files = require "support.files"
local ngxsrv = require "support.credentials_nginx"

local available, why = ngxsrv.available()

local K1 = { "ASIANGINXFIRSTKEY001", "nginxFirstSecret/EXAMPLEKEY", "nginxFirstToken+EXAMPLE" }
local K2 = { "ASIANGINXSECONDKEY02", "nginxSecondSecret/EXAMPLEKEY", "nginxSecondToken+EXAMPLE" }
local ROLE = "arn:aws:iam::123456789012:role/nginx-irsa"

-- the application: one client per location and worker, each with its own environment (config.env)
local APP = [[
local cjson = require "cjson"
local dms = require "dms"
local M = {}
local K1, K2 = @K1@, @K2@
local clients = {}

local function client(name, env)
  if not clients[name] then
    clients[name] = assert(dms.new({ region = "us-east-1", endpoint = "@EMU@", env = env }))
  end
  return clients[name]
end

local ENVS = {
  container = { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1:@PORT@/creds",
                AWS_EC2_METADATA_DISABLED = "true", HOME = "@PREFIX@" },
  webid = { AWS_WEB_IDENTITY_TOKEN_FILE = "@PREFIX@/token", AWS_ROLE_ARN = "@ROLE@", AWS_ENDPOINT_URL = "@EMU@",
            AWS_EC2_METADATA_DISABLED = "true", HOME = "@PREFIX@" },
  imds = { AWS_EC2_METADATA_SERVICE_ENDPOINT = "@EMU@", HOME = "@PREFIX@" },
  process = { AWS_CONFIG_FILE = "@PREFIX@/config", AWS_EC2_METADATA_DISABLED = "true", HOME = "@PREFIX@" },
}

-- /call/<name>: a DMS call with that client's credentials
function M.call(name)
  local c = client(name, ENVS[name])
  local r, err = c:describe_replications({})
  ngx.header["Content-Type"] = "application/json"
  if not r then
    ngx.status = 500
    ngx.print(cjson.encode({ kind = err.kind, code = err.code, message = err.message }))
    return
  end
  -- the credentials the call was signed with (a get() here could refresh them)
  ngx.print(cjson.encode({ key = c.credentials.current.access_key }))
end

-- /creds: container credentials, 300 ms late; the first expire in 9 minutes
-- (inside the mandatory refresh window), the next in an hour
function M.creds()
  local n = ngx.shared.counts:incr("fetches", 1, 0)
  ngx.sleep(0.3)
  local k, ttl = K2, 3600
  if n == 1 then k, ttl = K1, 540 end
  ngx.header["Content-Type"] = "application/json"
  ngx.print(cjson.encode({ AccessKeyId = k[1], SecretAccessKey = k[2], Token = k[3],
                           Expiration = os.date("!%Y-%m-%dT%H:%M:%SZ", ngx.time() + ttl) }))
end

function M.fetches() ngx.print(ngx.shared.counts:get("fetches") or 0) end

return M
]]

local HTTP = [[
  lua_shared_dict counts 1m;
  server {
    listen 127.0.0.1:@PORT@;
    location ~ ^/call/(\w+)$ { content_by_lua_block { require("credapp").call(ngx.var[1]) } }
    location = /creds { content_by_lua_block { require("credapp").creds() } }
    location = /fetches { content_by_lua_block { require("credapp").fetches() } }
    location = /ping { content_by_lua_block { ngx.print("pong") } }
    location = /has_pipe { content_by_lua_block { ngx.print(tostring((pcall(require, "ngx.pipe")))) } }
  }
]]

local function lua_literal(t)
  return string.format("{ %q, %q, %q }", t[1], t[2], t[3])
end

if not available then
  describe("credentials in nginx", function()
    pending("nginx with lua-nginx-module is not available: " .. tostring(why))
  end)
  return
end

describe("credentials in nginx", function()
  local emu, srv
  setup(function()
    emu = emulator.start({ keys = { table.concat(K1, ":"), table.concat(K2, ":"), emulator.ACCESS_KEY .. ":"
      .. emulator.SECRET_KEY } })
    local port = ngxsrv.free_port()
    local app = APP:gsub("@K1@", lua_literal(K1)):gsub("@K2@", lua_literal(K2)):gsub("@EMU@", emu.url)
      :gsub("@ROLE@", ROLE)
    srv = ngxsrv.start({
      port = port, http = HTTP,
      files = { ["token"] = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJuZ2lueCJ9.sig" },
    })
    -- the prefix is known now: the application (loaded on the first request) and the process
    local p = srv.prefix
    files.write(p .. "/app/credapp.lua", (app:gsub("@PREFIX@", p):gsub("@PORT@", tostring(port))))
    files.write(p .. "/proc.sh", "#!/bin/sh\nprintf '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESS\", "
      .. "\"SecretAccessKey\": \"process-secret\"}'\n")
    files.write(p .. "/config", "[default]\ncredential_process = " .. p .. "/proc.sh\n")
    os.execute("chmod a+rx " .. cs.quote(p .. "/proc.sh") .. " && chmod a+r " .. cs.quote(p .. "/config") .. " "
      .. cs.quote(p .. "/app/credapp.lua"))
  end)
  teardown(function()
    if srv then srv:stop() end
    if emu then emu:stop() end
  end)

  it("answers 50 concurrent requests during a 300 ms refresh with one fetch, without blocking", function()
    -- first call: the first fetch, credentials that expire in 9 minutes
    local r = srv:http({ path = "/call/container" })
    assert.are.equal(200, r.status, r.body)
    assert.are.equal(K1[1], r.json.key)
    assert.are.equal("1", srv:http({ path = "/fetches" }).body)
    emu:clear_requests()
    -- 50 calls that all need the refresh, and a ping to the same worker meanwhile
    local paths = {}
    for i = 1, 50 do paths[i] = "/call/container" end
    paths[51] = "/ping"
    local results, elapsed = srv:parallel(paths)
    local slowest = 0
    for i = 1, 50 do
      local res = results[i]
      assert.are.equal(200, res and res.status, res and res.body)
      assert.are.equal(K2[1], cjson.decode(res.body).key)
      slowest = math.max(slowest, res.seconds)
    end
    -- one fetch for all 50: the refresh the others waited for
    assert.are.equal("2", srv:http({ path = "/fetches" }).body)
    local dms_calls = emu:requests("DescribeReplications")
    assert.are.equal(50, #dms_calls)
    for _, c in ipairs(dms_calls) do
      assert.truthy(c.headers.Authorization:find(K2[1], 1, true))
    end
    -- the worker served /creds itself while 50 requests waited for it (a blocking
    -- fetch could never have been answered), and the ping without waiting
    assert.are.equal("pong", results[51].body)
    assert.is_true(slowest >= 0.3, "the refresh took " .. slowest .. " s")
    assert.is_true(results[51].seconds < slowest, "the ping took " .. results[51].seconds .. " s, as long as the"
      .. " refresh: the worker was blocked")
    print(string.format("\n  nginx, 1 worker: 50 requests during a 300 ms credential refresh: %.2f s,"
      .. " ping %.3f s, 1 fetch", elapsed, results[51].seconds))
    local log = srv:error_log()
    for _, secret in ipairs({ K1[2], K1[3], K2[2], K2[3] }) do
      assert.falsy(log:find(secret, 1, true), "a secret in error.log")
    end
  end)

  it("assumes a role with a web identity over a cosocket", function()
    local r = srv:http({ path = "/call/webid" })
    assert.are.equal(200, r.status, r.body)
    assert.truthy(r.json.key:match("^ASIAWEBID"))
    local issued = cs.issued(emu, r.json.key)
    assert.are.same({ ROLE, "nginx" }, { issued.role_arn, issued.subject })
  end)

  it("gets instance credentials with IMDSv2 over cosockets", function()
    local r = srv:http({ path = "/call/imds" })
    assert.are.equal(200, r.status, r.body)
    assert.truthy(r.json.key:match("^ASIAIMDS0"))
  end)

  it("runs credential_process through ngx.pipe, or refuses it where ngx.pipe is missing", function()
    local r = srv:http({ path = "/call/process" })
    if srv:http({ path = "/has_pipe" }).body == "true" then
      assert.are.equal("AKIDPROCESS", r.json.key)
    else
      assert.are.equal(500, r.status, r.body)
      assert.are.same({ "credentials", "Unsupported" }, { r.json.kind, r.json.code })
      assert.truthy(r.json.message:find("ngx.pipe", 1, true), r.json.message)
    end
  end)
end)
