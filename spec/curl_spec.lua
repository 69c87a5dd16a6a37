-- dms.curl, one handle for many requests: each request goes out as it was
-- given whatever the handle sent before (method, body, headers, timeouts),
-- the handle's defaults and a request's own settings, connections kept across
-- requests whatever changed; and requests with more headers than the
-- bindings keep on the C stack, signed (checked by the local DMS endpoint's
-- own SigV4 verifier) and sent. The echo server is a real nginx.
local cjson = require "cjson"
local core = require "dms.core"
local curl = require "dms.curl"
local emulator = require "support.emulator"
local nginx = require "support.nginx"

local available, info = nginx.available()
if not available then
  print("\nspec/curl_spec.lua: the nginx part is NOT RUN: " .. tostring(info) .. "\n")
end

describe("dms.curl, one handle", function()
  if not available then return end
  local srv, url

  setup(function()
    local port = nginx.free_port()
    srv = nginx.start({ extra_http = [[
    server {
        listen 127.0.0.1:]] .. port .. [[;
        access_log off;
        location = /echo {
            content_by_lua_block {
                ngx.req.read_body()
                local h = ngx.req.get_headers(200)
                ngx.say(require("cjson").encode({ method = ngx.req.get_method(),
                    body = ngx.req.get_body_data() or "", headers = h }))
            }
        }
        location = /slow {
            content_by_lua_block { ngx.sleep(0.5) ngx.say("late") }
        }
    }
]] })
    url = "http://127.0.0.1:" .. port
  end)
  teardown(function() if srv then srv:stop() end end)

  local function echo(h, req)
    req.url = url .. "/echo"
    local resp, err = h:request(req)
    assert(resp, err and tostring(err))
    assert.are.equal(200, resp.status)
    return cjson.decode(resp.body), resp
  end

  it("sends each request as given, whatever the one before it sent", function()
    local h = assert(curl.http())
    local got = echo(h, { method = "POST", body = "first body", headers = { { "X-One", "1" }, { "X-Two", "2" } } })
    assert.are.equal("POST", got.method)
    assert.are.equal("first body", got.body)
    assert.are.equal("1", got.headers["x-one"])

    got = echo(h, { method = "GET", headers = { { "X-Three", "3" } } })
    assert.are.equal("GET", got.method)
    assert.are.equal("", got.body)
    assert.is_nil(got.headers["content-length"])
    assert.is_nil(got.headers["x-one"])
    assert.is_nil(got.headers["x-two"])
    assert.are.equal("3", got.headers["x-three"])

    got = echo(h, { method = "PUT", body = "put body", headers = { ["X-Map"] = "m" } })
    assert.are.equal("PUT", got.method)
    assert.are.equal("put body", got.body)
    assert.are.equal("m", got.headers["x-map"])
    assert.is_nil(got.headers["x-three"])

    got = echo(h, { method = "DELETE" })
    assert.are.equal("DELETE", got.method)
    assert.are.equal("", got.body)
    assert.is_nil(got.headers["x-map"])

    got = echo(h, { method = "POST", body = "" })
    assert.are.equal("POST", got.method)
    assert.are.equal("", got.body)
    assert.are.equal("0", got.headers["content-length"])

    got = echo(h, { method = "POST", body = "again", headers = { { "X-One", "one" } } })
    assert.are.equal("again", got.body)
    assert.are.equal("one", got.headers["x-one"])
    -- never a 100-continue round trip
    assert.is_nil(got.headers["expect"])
    h:close()
  end)

  it("sends every header of a request that has more than the C stack holds, in order", function()
    local h = assert(curl.http())
    local headers = {}
    for i = 1, 45 do headers[i] = { "X-H" .. i, "value " .. i } end
    headers[46] = { "X-Dup", "a" }
    headers[47] = { "X-Dup", "b" }
    local got = echo(h, { method = "POST", body = "b", headers = headers })
    for i = 1, 45 do assert.are.equal("value " .. i, got.headers["x-h" .. i]) end
    assert.are.same({ "a", "b" }, got.headers["x-dup"])
    -- and a short request after it carries none of them
    got = echo(h, { method = "GET", headers = { { "X-H1", "only" } } })
    assert.are.equal("only", got.headers["x-h1"])
    assert.is_nil(got.headers["x-h2"])
    h:close()
  end)

  it("keeps a shorter timeout to its own request, and the handle's defaults to the others", function()
    local h = assert(curl.http())
    local resp, err = h:request({ url = url .. "/slow", method = "GET", timeout = 0.1 })
    assert.is_nil(resp)
    assert.are.equal("Timeout", err.code)
    resp = assert(h:request({ url = url .. "/slow", method = "GET" }))
    assert.are.equal("late\n", resp.body)
    h:close()

    h = assert(curl.http({ timeout = 0.1 }))
    resp, err = h:request({ url = url .. "/slow", method = "GET" })
    assert.is_nil(resp)
    assert.are.equal("Timeout", err.code)
    resp = assert(h:request({ url = url .. "/slow", method = "GET", timeout = 5 }))
    assert.are.equal("late\n", resp.body)
    local late
    late, err = h:request({ url = url .. "/slow", method = "GET" })
    assert.is_nil(late)
    assert.are.equal("Timeout", err.code)
    h:close()
  end)

  it("keeps its connection when the settings change from one request to the next", function()
    local h = assert(curl.http())
    local _, first = echo(h, { method = "POST", body = "x" })
    assert.are.equal(1, first.new_connections)
    local opened = 0
    for i = 1, 60 do
      local _, resp = echo(h, { method = i % 3 == 0 and "GET" or "POST", body = i % 3 == 0 and nil or "x",
        timeout = 5 + i % 2, connect_timeout = 1 + i % 4, max_response_bytes = 65536 + i })
      opened = opened + resp.new_connections
      assert.are.equal(first.local_port, resp.local_port)
    end
    assert.are.equal(0, opened)
    h:close()
  end)

  it("refuses defaults of the wrong type", function()
    assert.has_error(function() curl.http("fast") end)
    assert.has_error(function() curl.http({ timeout = "soon" }) end)
    assert.has_error(function() curl.http({ timeout = -1 }) end)
    assert.has_error(function() curl.http({ ca_file = {} }) end)
  end)
end)

describe("a request with many signed headers", function()
  local emu
  setup(function() emu = emulator.start({}) end)
  teardown(function() if emu then emu:stop() end end)

  it("is signed as the local DMS endpoint's own verifier computes it, beyond what the stack holds", function()
    local body = cjson.encode({ MaxRecords = 20 })
    local host = emu.url:match("^https?://([^/]+)")
    local headers = { { "Host", host }, { "Content-Type", "application/x-amz-json-1.1" },
                      { "X-Amz-Target", "AmazonDMSv20160101.DescribeReplications" } }
    for i = 1, 30 do headers[#headers + 1] = { "X-Extra-" .. (31 - i), "  value   " .. i .. "  " } end
    headers[#headers + 1] = { "X-Extra-7", "second" }
    local signed = core.sign({ method = "POST", path = "/", headers = headers, body = body, region = "us-east-1",
      service = "dms", access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" })
    assert.truthy(signed.canonical_request:find("\nx-extra-7:value 24,second\n", 1, true))
    assert.truthy(signed.authorization:find(
      "SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-extra-1;x-extra-10;", 1, true))
    for _, hd in ipairs(signed.headers) do headers[#headers + 1] = hd end
    local h = assert(curl.http())
    local resp = assert(h:request({ url = emu.url .. "/", method = "POST", headers = headers, body = body }))
    assert.are.equal(200, resp.status, resp.body)
    assert.is_table(cjson.decode(resp.body).Replications)
    -- the same request, one header changed after signing: refused
    headers[5] = { headers[5][1], "tampered" }
    resp = assert(h:request({ url = emu.url .. "/", method = "POST", headers = headers, body = body }))
    assert.are.equal(400, resp.status)
    assert.are.equal("InvalidSignatureException", cjson.decode(resp.body).__type)
    h:close()
  end)
end)

describe("libcurl, loaded only where it is used", function()
  local function run(cmd)
    local p = assert(io.popen(cmd .. " 2>&1", "r"))
    local out = p:read("*a")
    p:close()
    return out
  end
  local lua = (type(jit) == "table") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))

  it("is not mapped by require \"dms\" and dms.new, and is by the first use of dms.curl", function()
    local script = [[
      local function mapped()
        local f = assert(io.open("/proc/self/maps"))
        local maps = f:read("*a")
        f:close()
        return maps:find("libcurl", 1, true) ~= nil
      end
      local dms = require "dms"
      assert(dms.new({ region = "us-east-1", credentials = { access_key = "AKID", secret_key = "s" } }))
      io.write(tostring(mapped()), " ", tostring(package.loaded["dms.curl"] ~= nil), " ")
      require "dms.curl"
      io.write(tostring(mapped()), "\n")
    ]]
    local out = run("LUA_PATH=" .. nginx.quote(package.path) .. " LUA_CPATH=" .. nginx.quote(package.cpath) .. " "
      .. lua .. " -e " .. nginx.quote(script))
    assert.are.equal("false false true\n", out)
  end)

  it("is not mapped by an nginx worker that served the ops endpoint", function()
    if not available then
      print("\nspec/curl_spec.lua: the nginx worker check is NOT RUN: " .. tostring(info) .. "\n")
      return
    end
    local emu = emulator.start({})
    local srv = nginx.start({ env = { DMS_OPS_TOKEN = "curl-spec-token", AWS_REGION = "us-east-1",
      AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE = emu.url } })
    local ok, err = pcall(function()
      local h = assert(curl.http())
      local resp = assert(h:request({ url = srv.url .. "/replications/status?arn=" .. emulator.ARN_FULL_LOAD,
        method = "GET", headers = { { "Authorization", "Bearer curl-spec-token" } } }))
      h:close()
      assert.are.equal(200, resp.status, resp.body)
      -- the master's children (read from /proc: no command, which an ASan
      -- preload would slow or hang)
      local files = require "support.files"
      local children = files.read("/proc/" .. srv.pid .. "/task/" .. srv.pid .. "/children")
        or run("ps -o pid= --ppid " .. srv.pid)
      local workers = {}
      for pid in children:gmatch("%d+") do workers[#workers + 1] = pid end
      assert.is_true(#workers > 0)
      for _, pid in ipairs(workers) do
        local maps = assert(files.read("/proc/" .. pid .. "/maps"))
        assert.truthy(maps:find("dms/core.so", 1, true), "the worker has not loaded dms.core")
        assert.is_nil(maps:find("libcurl", 1, true), "worker " .. pid .. " maps libcurl")
      end
    end)
    srv:stop()
    emu:stop()
    assert(ok, err)
  end)
end)
