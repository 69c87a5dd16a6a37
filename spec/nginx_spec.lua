-- The OpenResty side, in a real nginx: the example ops endpoint
-- (examples/nginx/) against the emulator, and the cosocket transport
-- (dms.transport.ngx) against fixtures served by the same nginx, once with
-- each HTTP client: the built-in one (dms.transport.http11) and lua-resty-http
-- (../shared/vendor/lua-resty-http-0.17.2, or $DMS_VENDOR; that run is
-- skipped, and says so, where the folder is absent). nginx runs LuaJIT and
-- loads build/luajit/dms/core.so, which support.nginx builds
-- (make LUA_VERSION=luajit) when it is missing.
local cjson = require "cjson"
local core = require "dms.core"
local emulator = require "support.emulator"
local nginx = require "support.nginx"

local available, info = nginx.available()
local resty_lib, resty_why = nginx.resty_http_lib()

-- credentials of this spec only, so the logs can be searched for them
local ACCESS_KEY = "AKIDNGINXOPSEXAMPLE"
local SECRET_KEY = "nginxOpsSecret/K7MDENG+bPxRfiCYEXAMPLEKEY"
local SESSION_TOKEN = "nginxOpsSessionToken/EXAMPLE+0123456789abcdef"
local BEARER = string.format("ops-%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
local AUTH = { Authorization = "Bearer " .. BEARER }
local ARN = emulator.ARN_FULL_LOAD
local MISSING_ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:NOSUCHCONFIGXXXXXXXXXXXX99"

-- Fixtures: raw responses written on the downstream socket, so the reader
-- meets exactly these bytes.
local RAW = {
  chunked_ext = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\nConnection: close\r\n\r\n"
    .. "5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
  until_close = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nread until close",
  cut = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
  garbage = "SSH-2.0-OpenSSH_9.2\r\n\r\n",
  continue = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
  drop = "",
  bare_lf = "HTTP/1.1 200 OK\nContent-Length: 2\nX-Folded: a\n  b\nConnection: close\n\nok",
  bad_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
  big_head = "HTTP/1.1 200 OK\r\n" .. string.rep("X-Filler: " .. string.rep("f", 1000) .. "\r\n", 70)
    .. "Content-Length: 2\r\n\r\nok",
}

local function lua_string(s) return string.format("%q", s):gsub("\\\n", "\\n") end

-- the /fx/raw handler: writes RAW[case] on the raw downstream socket
local function raw_handler()
  local out = { "local RAW = {" }
  for k, v in pairs(RAW) do out[#out + 1] = string.format("  [%q] = %s,", k, lua_string(v)) end
  out[#out + 1] = "}"
  out[#out + 1] = "local sock = assert(ngx.req.socket(true))"
  out[#out + 1] = "local text = RAW[ngx.var.arg_case]"
  out[#out + 1] = "if text ~= \"\" then sock:send(text) end"
  return table.concat(out, "\n") .. "\n"
end

-- The extra servers: a fixture server (fx), a probe that runs the transport
-- on request, two TLS servers, and two more ops servers (a short timeout; an
-- upstream that denies access).
local function extra_http(p)
  return ([[
    server {
        listen 127.0.0.1:@FX@;
        location = /fx/length {
            content_by_lua_block {
                local body = "hello, length"
                ngx.header["X-Dup"] = { "a", "b" }
                ngx.header.content_length = #body
                ngx.print(body)
            }
        }
        location = /fx/chunked {
            content_by_lua_block {
                ngx.print("hello")
                ngx.flush(true)
                ngx.print(", chunked")
                ngx.flush(true)
                ngx.print("!")
            }
        }
        location = /fx/big {
            content_by_lua_block {
                local n = tonumber(ngx.var.arg_n)
                ngx.header.content_length = n
                ngx.print(string.rep("x", n))
            }
        }
        location = /fx/bigchunked {
            content_by_lua_block {
                local n = tonumber(ngx.var.arg_n)
                local piece = string.rep("y", 4096)
                for _ = 1, math.ceil(n / 4096) do ngx.print(piece); ngx.flush(true) end
            }
        }
        location = /fx/slow {
            content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s)); ngx.print("late") }
        }
        location = /fx/echo {
            content_by_lua_block {
                ngx.req.read_body()
                local h = ngx.req.get_headers()
                ngx.header["Content-Type"] = "application/json"
                ngx.print(require("cjson").encode({ method = ngx.req.get_method(), uri = ngx.var.request_uri,
                    host = h["host"], content_length = h["content-length"], probe = h["x-probe"],
                    body = ngx.req.get_body_data() or "" }))
            }
        }
        location = /fx/raw {
            content_by_lua_file @PREFIX@/conf/raw.lua;
        }
        location = /fx/trickle {
            # one byte every 200 ms: of the body (mode=length), of a chunk
            # (mode=chunked) or of the status line and headers (mode=head)
            content_by_lua_block {
                ngx.req.read_body()
                local sock = assert(ngx.req.socket(true))
                local function dribble(text)
                    for i = 1, #text do
                        if not sock:send(text:sub(i, i)) then return end
                        ngx.sleep(0.2)
                    end
                end
                local mode = ngx.var.arg_mode or "length"
                local body = string.rep("x", 30)
                if mode == "head" then
                    dribble("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                elseif mode == "chunked" then
                    sock:send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1e\r\n")
                    dribble(body)
                    sock:send("\r\n0\r\n\r\n")
                else
                    sock:send("HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                      .. "Content-Length: 30\r\n\r\n")
                    dribble(body)
                end
            }
        }
        location = /fx/slowread {
            # reads the request body 256 KiB every 100 ms
            client_max_body_size 0;
            content_by_lua_block {
                local sock = assert(ngx.req.socket())
                while sock:receive(262144) do ngx.sleep(0.1) end
                ngx.print("read")
            }
        }
        location = /fx/denied/ {
            content_by_lua_block {
                ngx.status = 400
                ngx.header["Content-Type"] = "application/x-amz-json-1.1"
                ngx.header["x-amzn-RequestId"] = "denied-request-id"
                ngx.print('{"__type":"AccessDeniedException",'
                  .. '"message":"User is not authorized to perform: dms:StartReplication"}')
            }
        }
        location = /probe {
            content_by_lua_file @PREFIX@/conf/probe.lua;
        }
        location = /probe_trusted {
            lua_ssl_trusted_certificate @PREFIX@/conf/test-ca.pem;
            content_by_lua_file @PREFIX@/conf/probe.lua;
        }
    }
    server {
        listen 127.0.0.1:@TLS_OK@ ssl;
        ssl_certificate @PREFIX@/conf/tls-ok.pem;
        ssl_certificate_key @PREFIX@/conf/tls-ok.key;
        location / { content_by_lua_block { ngx.header.content_length = 6; ngx.print("tls ok") } }
    }
    server {
        listen 127.0.0.1:@TLS_WRONG@ ssl;
        ssl_certificate @PREFIX@/conf/tls-wrong.pem;
        ssl_certificate_key @PREFIX@/conf/tls-wrong.key;
        location / { content_by_lua_block { ngx.print("wrong name") } }
    }
    server {
        listen 127.0.0.1:@SHORT@;
        set $dms_timeout 1;
        set $dms_connect_timeout 1;
        location = /replications/start { content_by_lua_block { require("handler").start() } }
    }
    server {
        listen 127.0.0.1:@TRICKLE@;
        set $dms_endpoint http://127.0.0.1:@FX@/fx/trickle;
        set $dms_timeout 1;
        set $dms_max_attempts 1;
        location = /replications/status { content_by_lua_block { require("handler").status() } }
    }
    server {
        listen 127.0.0.1:@FAULT@;
        location = /fault {
            content_by_lua_block {
                require("handler").guard("GET /fault", function()
                    local broken
                    return broken.field
                end)()
            }
        }
    }
    server {
        listen 127.0.0.1:@DENIED@;
        set $dms_endpoint http://127.0.0.1:@FX@/fx/denied/;
        location = /replications/start { content_by_lua_block { require("handler").start() } }
    }
  ]] .. (p.V6 and [[
    server {
        listen [::1]:@V6@;
        location / { content_by_lua_block { ngx.print("v6 ok, Host: ", ngx.var.http_host) } }
    }
  ]] or "")):gsub("@(%u[%u%d_]*)@", function(k)
    if k == "PREFIX" then return "@PREFIX@" end
    return tostring(assert(p[k], k))
  end)
end

-- runs in nginx: one transport request described by the query string, answered as JSON
local PROBE = [[
local cjson = require "cjson"
do
  local a = ngx.req.get_uri_args()
  local transport = require("dms.transport.ngx").new({
    http_client = a.client or "builtin", timeout = tonumber(a.timeout) or 5, connect_timeout = 1,
    max_response_bytes = tonumber(a.max) or 1048576, insecure = a.insecure == "1",
  })
  local body = a.body_bytes and string.rep("y", tonumber(a.body_bytes)) or a.body
  ngx.update_time()
  local started = ngx.now()
  local resp, err = transport:request({ url = a.url, method = a.method or "GET",
    headers = { { "X-Probe", "probe" } }, body = body, fresh_connect = a.fresh == "1" })
  ngx.update_time()
  local has_resty = pcall(require, "resty.http")
  local out = { http_client = transport:http_client(), resty_http_installed = has_resty,
                elapsed = ngx.now() - started }
  if resp then
    out.ok, out.status, out.reason, out.headers, out.body, out.reused =
      true, resp.status, resp.reason, resp.headers, resp.body, resp.reused
  else
    out.ok = false
    out.err = { kind = err.kind, code = err.code, message = err.message, retryable = err.retryable,
                outcome_unknown = err.outcome_unknown, sent = err.sent }
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.print(cjson.encode(out))
end
]]

-- a self-signed certificate for `name` (SAN DNS and, for an address, IP)
local function make_cert(dir, base, name)
  local san = "DNS:" .. name .. (name:match("^%d+%.%d+%.%d+%.%d+$") and (",IP:" .. name) or "")
  local ok, out = nginx.run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" .. name
    .. " -addext " .. nginx.quote("subjectAltName=" .. san)
    .. " -keyout " .. nginx.quote(dir .. "/" .. base .. ".key")
    .. " -out " .. nginx.quote(dir .. "/" .. base .. ".pem"))
  assert(ok, "openssl: " .. out)
  return nginx.read(dir .. "/" .. base .. ".pem"), nginx.read(dir .. "/" .. base .. ".key")
end

-- is lua-resty-http on nginx's default Lua path? (it is not packaged by Debian)
local function resty_http_installed()
  local ok, out = nginx.run("luajit -e 'print(package.searchpath(\"resty.http\", package.path) or \"none\")'")
  return ok and not out:match("none")
end

-- can a server listen on the IPv6 loopback address here?
local function ipv6_loopback()
  return (nginx.run("python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind((\"::1\", 0))'"))
end

-- seconds taken by fn(), and what it returned
local function timed(fn)
  local t0 = core.now()
  local r = fn()
  return core.now() - t0, r
end

if not available then
  -- no nginx with the lua module here: say so rather than pass quietly
  print("\nspec/nginx_spec.lua: NOT RUN: " .. tostring(info) .. "\n")
end

for _, client in ipairs({ "builtin", "resty.http" }) do
describe("nginx (lua-nginx-module, LuaJIT), http_client = " .. client, function()
  if not available then return end
  if client == "resty.http" and not resty_lib then
    print("\nspec/nginx_spec.lua: the resty.http run is NOT RUN: " .. tostring(resty_why) .. "\n")
    return
  end
  local resty = client == "resty.http"

  local emu, srv, ports

  local function get(path, headers, url)
    return srv:http({ method = "GET", path = path, headers = headers, url = url })
  end
  local function post(path, body, headers, url)
    local h = { ["Content-Type"] = "application/json" }
    for k, v in pairs(headers or {}) do h[k] = v end
    return srv:http({ method = "POST", path = path, headers = h, url = url,
      body = type(body) == "table" and cjson.encode(body) or body })
  end
  local function probe(args, path)
    if args.client == nil then args.client = client end
    local q = {}
    for k, v in pairs(args) do
      q[#q + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(c)
        return string.format("%%%02X", c:byte())
      end)
    end
    local r = get((path or "/probe") .. "?" .. table.concat(q, "&"), nil, "http://127.0.0.1:" .. ports.FX)
    assert.are.equal(200, r.status, r.body)
    return r.json
  end
  local function fx(path) return "http://127.0.0.1:" .. ports.FX .. path end

  lazy_setup(function()
    emu = emulator.start({ speed = 1000, keys = { ACCESS_KEY .. ":" .. SECRET_KEY .. ":" .. SESSION_TOKEN } })
    ports = { FX = nginx.free_port(), TLS_OK = nginx.free_port(), TLS_WRONG = nginx.free_port(),
              SHORT = nginx.free_port(), DENIED = nginx.free_port(), TRICKLE = nginx.free_port(),
              FAULT = nginx.free_port(), V6 = ipv6_loopback() and nginx.free_port() or nil }
    local tmp = os.tmpname()
    os.remove(tmp)
    assert(nginx.run("mkdir -p " .. nginx.quote(tmp)))
    local ok_pem, ok_key = make_cert(tmp, "tls-ok", "127.0.0.1")
    local wrong_pem, wrong_key = make_cert(tmp, "tls-wrong", "wrong.example")
    nginx.run("rm -rf " .. nginx.quote(tmp))
    srv = nginx.start({
      env = {
        AWS_REGION = "us-east-1",
        AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE = emu.url,
        AWS_ACCESS_KEY_ID = ACCESS_KEY, AWS_SECRET_ACCESS_KEY = SECRET_KEY, AWS_SESSION_TOKEN = SESSION_TOKEN,
        DMS_OPS_TOKEN = BEARER,
        DMS_HTTP_CLIENT = client,
      },
      workers = 1,
      vendor = resty and resty_lib or nil,
      extra_http = extra_http(ports),
      prefix_files = {
        ["conf/tls-ok.pem"] = ok_pem, ["conf/tls-ok.key"] = ok_key,
        ["conf/tls-wrong.pem"] = wrong_pem, ["conf/tls-wrong.key"] = wrong_key,
        ["conf/test-ca.pem"] = ok_pem .. wrong_pem,
        ["conf/probe.lua"] = PROBE,
        ["conf/raw.lua"] = raw_handler(),
      },
    })
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:clear_faults()
  end)

  describe("the ops endpoint", function()
    it("starts a replication through DMS, signed with the worker's credentials", function()
      emu:clear_requests()
      local r = post("/replications/start", { arn = ARN, type = "start-replication" }, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal("application/json", r.headers["content-type"])
      assert.are.equal(ARN, r.json.Replication.ReplicationConfigArn)
      assert.is_string(r.json.Replication.Status)
      assert.is_string(r.json.ResponseMetadata.RequestId)
      local log = emu:requests("StartReplication")
      assert.are.equal(1, #log)
      assert.is_true(log[1].signature_ok)
      assert.are.equal(200, log[1].status)
      assert.are.same({ ReplicationConfigArn = ARN, StartReplicationType = "start-replication" }, log[1].body)
      local h = {}
      for k, v in pairs(log[1].headers) do h[k:lower()] = v end
      assert.are.equal("[redacted]", h["x-amz-security-token"])   -- the log never holds it; signature_ok proves it went
      assert.matches("^AWS4%-HMAC%-SHA256 Credential=" .. ACCESS_KEY .. "/", h["authorization"])
      assert.matches("x%-amz%-security%-token", h["authorization"])
      assert.matches("^lua%-dms/.*LuaJIT", h["user-agent"])
    end)

    it("describes a replication: GET /replications/status?arn=", function()
      local r = get("/replications/status?arn=" .. ARN, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal(ARN, r.json.Replications[1].ReplicationConfigArn)
      local log = emu:requests("DescribeReplications")
      assert.is_true(log[#log].signature_ok)
      assert.are.same({ { Name = "replication-config-arn", Values = { ARN } } }, log[#log].body.Filters)
    end)

    it("passes premigration assessment settings on", function()
      emu:reset()
      emu:clear_requests()
      local r = post("/replications/start", { arn = emulator.ARN_CDC, type = "start-replication",
        assessment = { Enabled = true, FailOnAssessmentFailure = false } }, AUTH)
      assert.are.equal(200, r.status, r.body)
      local log = emu:requests("StartReplication")
      assert.are.same({ Enabled = true, FailOnAssessmentFailure = false },
        cjson.decode(log[1].body.PremigrationAssessmentSettings))
      emu:reset()
    end)

    it("refuses requests without the bearer token (401), before any DMS call", function()
      emu:clear_requests()
      local r = post("/replications/start", { arn = ARN, type = "start-replication" })
      assert.are.equal(401, r.status)
      assert.are.equal("Unauthorized", r.json.error.code)
      assert.matches("^Bearer", r.headers["www-authenticate"])
      r = post("/replications/start", { arn = ARN, type = "start-replication" },
        { Authorization = "Bearer " .. BEARER .. "x" })
      assert.are.equal(401, r.status)
      r = get("/replications/status?arn=" .. ARN, { Authorization = "Basic " .. BEARER })
      assert.are.equal(401, r.status)
      r = get("/replications/status?arn=" .. ARN, { Authorization = "Bearer " })
      assert.are.equal(401, r.status)
      assert.are.equal(0, #emu:requests())
      -- each refusal is logged with its reason, never with the token
      local log = srv:error_log()
      for _, why in ipairs({ "missing", "wrong%-token", "not%-bearer" }) do
        assert.matches("dms%-ops: [^\n]* auth=" .. why, log)
      end
    end)

    it("answers a repeated Authorization header with a JSON 400, and logs neither token", function()
      emu:clear_requests()
      local r = srv:http({ path = "/replications/status?arn=" .. ARN, header_lines = {
        "Authorization: Bearer " .. BEARER, "Authorization: Bearer " .. BEARER .. "-second" } })
      assert.are.equal(400, r.status, r.body)
      assert.are.equal("application/json", r.headers["content-type"])
      assert.are.equal("BadRequest", r.json.error.code)
      assert.matches("^%x+$", r.json.error.ops_request_id)
      assert.are.equal(r.json.error.ops_request_id, r.headers["x-request-id"])
      assert.are.equal(0, #emu:requests())
      -- nginx logs the two header lines in full at info: the example logs at notice
      assert.is_nil(srv:error_log():find(BEARER, 1, true), "the error log holds the bearer token")
    end)

    it("answers a Lua error in a route with the JSON error shape and the request id, and logs it", function()
      local r = get("/fault", nil, "http://127.0.0.1:" .. ports.FAULT)
      assert.are.equal(500, r.status, r.body)
      assert.are.equal("application/json", r.headers["content-type"])
      assert.are.same({ "internal", "InternalError" }, { r.json.error.kind, r.json.error.code })
      local rid = r.json.error.ops_request_id
      assert.matches("^%x+$", rid)
      assert.are.equal(rid, r.headers["x-request-id"])
      local log = srv:error_log()
      assert.matches("dms%-ops: GET /fault internal error ops_request_id=" .. rid .. ": [^\n]*attempt to index", log)
      assert.matches("ops_request_id=" .. rid .. ":[^\n]*stack traceback", log)
    end)

    it("answers 400 with the validation error, before any DMS call", function()
      emu:clear_requests()
      local r = post("/replications/start", { type = "start-replication" }, AUTH)
      assert.are.equal(400, r.status, r.body)
      assert.are.equal("validation", r.json.error.kind)
      assert.are.equal("MissingParameter", r.json.error.code)
      assert.are.equal("arn", r.json.error.member)
      assert.matches("arn is required", r.json.error.message)

      r = post("/replications/start", { arn = ARN, type = "restart-everything" }, AUTH)
      assert.are.equal(400, r.status, r.body)
      assert.are.equal("InvalidParameterValue", r.json.error.code)
      assert.are.equal("type", r.json.error.member)
      assert.are.equal("StartReplicationType", r.json.error.parameter)

      r = post("/replications/start", { arn = 42, type = "start-replication" }, AUTH)
      assert.are.equal(400, r.status)
      assert.are.equal("InvalidParameterType", r.json.error.code)
      assert.are.equal("arn", r.json.error.member)

      r = post("/replications/start", { arn = ARN, type = "start-replication", force = true }, AUTH)
      assert.are.equal(400, r.status)
      assert.are.equal("UnknownParameter", r.json.error.code)
      assert.are.equal("force", r.json.error.member)

      r = post("/replications/start", "{not json", AUTH)
      assert.are.equal(400, r.status)
      assert.are.equal("InvalidJSON", r.json.error.code)

      r = post("/replications/start", "[1, 2]", AUTH)
      assert.are.equal(400, r.status)
      assert.are.equal("InvalidJSON", r.json.error.code)

      r = get("/replications/status", AUTH)
      assert.are.equal(400, r.status)
      assert.are.same({ kind = "validation", code = "MissingParameter", member = "arn" },
        { kind = r.json.error.kind, code = r.json.error.code, member = r.json.error.member })

      r = post("/replications/start", { arn = ARN, type = "reload-target" }, AUTH)
      assert.are.equal(403, r.status)
      assert.are.equal("ReloadTargetNotAllowed", r.json.error.code)

      r = get("/replications/start", AUTH)
      assert.are.equal(405, r.status)
      assert.are.equal("POST", r.headers["allow"])

      r = post("/replications/start", string.rep(" ", 20000) .. "{}", AUTH)
      assert.are.equal(413, r.status)
      assert.are.equal("BodyTooLarge", r.json.error.code)

      assert.are.equal(0, #emu:requests())
    end)

    it("maps DMS errors to HTTP statuses", function()
      emu:reset()
      -- ResourceNotFoundFault -> 404
      local r = get("/replications/status?arn=" .. MISSING_ARN, AUTH)
      assert.are.equal(404, r.status, r.body)
      assert.are.equal("service", r.json.error.kind)
      assert.are.equal("ResourceNotFoundFault", r.json.error.code)
      assert.is_string(r.json.error.request_id)

      -- InvalidResourceStateFault -> 409: resuming a replication that never ran
      r = post("/replications/start", { arn = emulator.ARN_FULL_LOAD_AND_CDC, type = "resume-processing" }, AUTH)
      assert.are.equal(409, r.status, r.body)
      assert.are.equal("InvalidResourceStateFault", r.json.error.code)

      -- throttling, after the client's own retries -> 429
      emu:fault({ operation = "DescribeReplications", fault = "throttle", count = 3 })
      r = get("/replications/status?arn=" .. ARN, AUTH)
      assert.are.equal(429, r.status, r.body)
      assert.are.equal("ThrottlingException", r.json.error.code)
      assert.are.equal(3, r.json.error.attempts)
      assert.is_string(r.headers["retry-after"])

      -- AccessDenied -> 403 (an upstream that denies every call)
      r = post("/replications/start", { arn = ARN, type = "start-replication" }, AUTH,
        "http://127.0.0.1:" .. ports.DENIED)
      assert.are.equal(403, r.status, r.body)
      assert.are.equal("AccessDeniedException", r.json.error.code)
      assert.are.equal("denied-request-id", r.json.error.request_id)

      -- a 5xx that stays 5xx -> 502
      emu:fault({ operation = "DescribeReplications", fault = "503", count = 3 })
      r = get("/replications/status?arn=" .. ARN, AUTH)
      assert.are.equal(502, r.status, r.body)
      emu:reset()
    end)

    it("answers 502 with a clear JSON body when DMS drops the connection", function()
      emu:reset()
      for _, fault in ipairs({ "drop_before", "drop_after" }) do
        emu:clear_requests()
        emu:fault({ operation = "StartReplication", fault = fault, count = 1 })
        local r = post("/replications/start", { arn = ARN, type = "start-replication" }, AUTH)
        assert.are.equal(502, r.status, fault .. ": " .. r.body)
        assert.are.equal("application/json", r.headers["content-type"])
        local e = r.json.error
        assert.are.equal("transport", e.kind)
        assert.are.equal("ConnectionLost", e.code)
        assert.is_true(e.outcome_unknown)
        assert.matches("connection lost", e.message)
        assert.matches("was not sent again", e.message)
        -- StartReplication is never re-sent when its outcome is unknown
        assert.are.equal(1, #emu:requests("StartReplication"))
        emu:reset()
      end
      -- a safe call is retried on a fresh connection
      emu:clear_requests()
      emu:fault({ operation = "DescribeReplications", fault = "drop_before", count = 1 })
      local r = get("/replications/status?arn=" .. ARN, AUTH)
      assert.are.equal(200, r.status, r.body)
      assert.are.equal(1, r.json.ResponseMetadata.RetryAttempts)
      assert.are.equal(2, #emu:requests("DescribeReplications"))
    end)

    it("answers 504 when DMS does not answer in time", function()
      emu:reset()
      emu:fault({ operation = "StartReplication", fault = "delay", seconds = 2, count = 1 })
      local t0 = core.now()
      local r = post("/replications/start", { arn = emulator.ARN_CDC, type = "start-replication" }, AUTH,
        "http://127.0.0.1:" .. ports.SHORT)
      local elapsed = core.now() - t0
      assert.are.equal(504, r.status, r.body)
      assert.are.equal("Timeout", r.json.error.code)
      assert.is_true(r.json.error.outcome_unknown)
      assert.is_true(elapsed < 1.9, "the 1 s timeout took " .. elapsed .. " s")
      core.sleep(1.5)   -- let the delayed call finish before the emulator is reset
      emu:reset()
    end)

    it("answers 504 within $dms_timeout when DMS trickles its answer a byte at a time", function()
      -- $dms_timeout 1, one attempt; the answer would take 6 s
      local elapsed, r = timed(function()
        return get("/replications/status?arn=" .. ARN, AUTH, "http://127.0.0.1:" .. ports.TRICKLE)
      end)
      assert.are.equal(504, r.status, r.body)
      assert.are.equal("Timeout", r.json.error.code)
      assert.is_true(elapsed < 2.5, "the 1 s timeout took " .. elapsed .. " s (the answer takes 6 s)")
    end)

    it("does not block the worker: 50 concurrent calls while DMS takes 300 ms each", function()
      emu:fault({ operation = "DescribeReplications", fault = "delay", seconds = 0.3, count = 50 })
      local n = 50
      local args = { "curl", "-sS", "--parallel", "--parallel-immediate", "--parallel-max", tostring(n),
        "-H", nginx.quote("Authorization: Bearer " .. BEARER), "-o", "/dev/null", "-w", "'%{http_code}\\n'" }
      for _ = 1, n do
        args[#args + 1] = nginx.quote(srv.url .. "/replications/status?arn=" .. ARN)
        if _ < n then args[#args + 1] = "-o /dev/null" end
      end
      local t0 = core.now()
      local p = assert(io.popen(table.concat(args, " ") .. " 2>&1"))
      local out = p:read("*a")
      p:close()
      local elapsed = core.now() - t0
      local ok = 0
      for code in out:gmatch("%d%d%d") do if code == "200" then ok = ok + 1 end end
      print(string.format("\n  nginx, 1 worker, http_client %s: %d concurrent requests x 300 ms DMS delay:"
        .. " %.2f s (serial would be %.1f s)", client, n, elapsed, n * 0.3))
      assert.are.equal(n, ok, out)
      assert.is_true(elapsed < 3, "50 x 300 ms took " .. elapsed .. " s: the worker blocks")
      local delayed = 0
      for _, e in ipairs(emu:requests("DescribeReplications")) do
        if e.fault == "delay" then delayed = delayed + 1 end
      end
      assert.is_true(delayed >= n)
    end)
  end)

  describe("the " .. client .. " HTTP client of dms.transport.ngx", function()
    it("reads a Content-Length body and keeps the connection alive", function()
      local a = probe({ url = fx("/fx/length") })
      assert.is_true(a.ok, a.err and a.err.message)
      assert.are.equal(client, a.http_client)
      assert.are.equal(200, a.status)
      assert.are.equal("hello, length", a.body)
      assert.are.equal("a, b", a.headers["x-dup"])
      assert.are.equal("13", a.headers["content-length"])
      local b = probe({ url = fx("/fx/length") })
      assert.is_true(b.ok)
      assert.is_true(b.reused > a.reused, "the second request did not reuse the pooled connection")
    end)

    it("sends a fresh_connect request (a start or a stop) on a new connection, never a pooled one", function()
      assert.is_true(probe({ url = fx("/fx/length") }).ok)     -- a pooled connection exists
      local f = probe({ url = fx("/fx/length"), fresh = "1" })
      assert.is_true(f.ok, f.err and f.err.message)
      assert.are.equal(0, f.reused)
      local g = probe({ url = fx("/fx/length"), fresh = "1" })
      assert.are.equal(0, g.reused)                            -- and it was not pooled afterwards
      assert.is_true(probe({ url = fx("/fx/length") }).reused > 0)
    end)

    it("reads chunked bodies and keeps the connection alive", function()
      local a = probe({ url = fx("/fx/chunked") })
      assert.is_true(a.ok, a.err and a.err.message)
      assert.are.equal("chunked", a.headers["transfer-encoding"])
      assert.are.equal("hello, chunked!", a.body)
      local b = probe({ url = fx("/fx/chunked") })
      assert.is_true(b.reused > 0, "a chunked response left the connection unusable")
    end)

    -- the built-in reader's own grammar; lua-resty-http 0.17.2 reads neither
    -- chunk extensions ("unable to read chunksize") nor folded header lines
    local builtin_only = resty and function() end or it   -- defined for the built-in client only
    builtin_only("reads chunk extensions and trailers, bare LF and folded header lines (the built-in reader)",
      function()
        local c = probe({ url = fx("/fx/raw?case=chunked_ext") })
        assert.is_true(c.ok, c.err and c.err.message)
        assert.are.equal("hello, world", c.body)
        assert.are.equal("1, 2", c.headers["x-a"])
        local d = probe({ url = fx("/fx/raw?case=bare_lf") })
        assert.is_true(d.ok, d.err and d.err.message)
        assert.are.equal("ok", d.body)
        assert.are.equal("a b", d.headers["x-folded"])
      end)

    it("connects to an IPv6 literal ([::1]) and names it in brackets in Host", function()
      if not ports.V6 then
        print("\nspec/nginx_spec.lua: the IPv6 case is NOT RUN: no IPv6 loopback address here\n")
        return
      end
      local a = probe({ url = "http://[::1]:" .. ports.V6 .. "/" })
      assert.is_true(a.ok, a.err and a.err.message)
      assert.are.equal("v6 ok, Host: [::1]:" .. ports.V6, a.body)
    end)

    it("writes the request: Host, Content-Length, the given headers and the body", function()
      local a = probe({ url = fx("/fx/echo?x=1"), method = "POST", body = '{"a":1}' })
      assert.is_true(a.ok, a.err and a.err.message)
      local echo = cjson.decode(a.body)
      assert.are.same({ method = "POST", uri = "/fx/echo?x=1", host = "127.0.0.1:" .. ports.FX,
        content_length = "7", probe = "probe", body = '{"a":1}' }, echo)
    end)

    it("reads HTTP/1.0 bodies until close, skips 100 Continue", function()
      local a = probe({ url = fx("/fx/raw?case=until_close") })
      assert.is_true(a.ok, a.err and a.err.message)
      assert.are.equal("read until close", a.body)
      local b = probe({ url = fx("/fx/raw?case=continue") })
      assert.is_true(b.ok, b.err and b.err.message)
      assert.are.equal(200, b.status)
      assert.are.equal("ok", b.body)
    end)

    it("stops at max_response_bytes: ResponseTooLarge", function()
      local a = probe({ url = fx("/fx/big?n=5000"), max = 4096 })
      assert.is_false(a.ok)
      assert.are.same({ kind = "transport", code = "ResponseTooLarge", retryable = false,
        outcome_unknown = true, sent = true }, { kind = a.err.kind, code = a.err.code,
        retryable = a.err.retryable, outcome_unknown = a.err.outcome_unknown, sent = a.err.sent })
      local b = probe({ url = fx("/fx/bigchunked?n=200000"), max = 65536 })
      assert.are.equal("ResponseTooLarge", b.err.code)
      local c = probe({ url = fx("/fx/big?n=4096"), max = 4096 })
      assert.is_true(c.ok)
      assert.are.equal(4096, #c.body)
      local d = probe({ url = fx("/fx/raw?case=big_head") })
      assert.are.equal("ResponseTooLarge", d.err.code)
    end)

    it("reports lost, cut and malformed responses with the curl transport's codes", function()
      for _, case in ipairs({ "drop", "cut" }) do
        local a = probe({ url = fx("/fx/raw?case=" .. case) })
        assert.is_false(a.ok, case)
        assert.are.equal("ConnectionLost", a.err.code, case)
        assert.is_true(a.err.retryable and a.err.outcome_unknown and a.err.sent, case)
      end
      for _, case in ipairs({ "garbage", "bad_chunk" }) do
        local a = probe({ url = fx("/fx/raw?case=" .. case) })
        assert.is_false(a.ok, case)
        assert.are.equal("HTTPError", a.err.code, case)
      end
    end)

    it("times out (outcome unknown once sent) and fails to connect (not sent)", function()
      local t0 = core.now()
      local a = probe({ url = fx("/fx/slow?s=2"), timeout = 0.5 })
      assert.is_true(core.now() - t0 < 1.5)
      assert.are.equal("Timeout", a.err.code)
      assert.is_true(a.err.sent and a.err.outcome_unknown and a.err.retryable)
      local b = probe({ url = "http://127.0.0.1:" .. nginx.free_port() .. "/" })
      assert.are.equal("ConnectionError", b.err.code)
      assert.is_false(b.err.sent)
      assert.is_false(b.err.outcome_unknown)
      assert.is_true(b.err.retryable)
    end)

    it("verifies TLS peers: chain against lua_ssl_trusted_certificate, and the host name", function()
      local url = "https://127.0.0.1:" .. ports.TLS_OK .. "/"
      -- the system bundle (the http block's lua_ssl_trusted_certificate) does not know this certificate
      local b = probe({ url = url })
      assert.is_false(b.ok)
      assert.are.equal("TLSError", b.err.code)
      assert.is_false(b.err.retryable)
      assert.is_false(b.err.sent)
      assert.matches("lua_ssl_trusted_certificate", b.err.message)
      -- a location that trusts it
      local a = probe({ url = url }, "/probe_trusted")
      assert.is_true(a.ok, a.err and a.err.message)
      assert.are.equal("tls ok", a.body)
      local again = probe({ url = url }, "/probe_trusted")
      assert.is_true(again.reused > 0, "the TLS connection was not kept alive")
      -- trusted, but issued for another name
      local c = probe({ url = "https://127.0.0.1:" .. ports.TLS_WRONG .. "/" }, "/probe_trusted")
      assert.is_false(c.ok)
      assert.are.equal("TLSError", c.err.code)
      -- insecure = true skips both checks (and uses a pool of its own)
      local d = probe({ url = "https://127.0.0.1:" .. ports.TLS_WRONG .. "/", insecure = "1" })
      assert.is_true(d.ok, d.err and d.err.message)
      assert.are.equal("wrong name", d.body)
      assert.are.equal(0, d.reused)
    end)

    it("uses lua-resty-http when it is installed, the built-in client otherwise", function()
      local a = probe({ url = fx("/fx/length"), client = "auto" })
      assert.is_true(a.ok, a.err and a.err.message)
      assert.are.equal(resty or resty_http_installed(), a.resty_http_installed)
      assert.are.equal(a.resty_http_installed and "resty.http" or "builtin", a.http_client)
      local b = probe({ url = fx("/fx/length"), client = "resty.http" })
      if b.resty_http_installed then
        assert.is_true(b.ok, b.err and b.err.message)
        assert.are.equal("hello, length", b.body)
      else
        assert.are.equal("BadRequest", b.err.code)
        assert.matches("not installed", b.err.message)
      end
    end)
  end)

  describe("the deadline of a request (" .. client .. ")", function()
    -- a.elapsed: the time transport:request() took, measured in nginx (the
    -- answer would take 6 s without the deadline)
    it("bounds every read while the peer trickles a byte every 200 ms", function()
      for _, mode in ipairs({ "length", "chunked", "head" }) do
        local a = probe({ url = fx("/fx/trickle?mode=" .. mode), timeout = 1 })
        assert.is_false(a.ok, mode)
        assert.are.equal("Timeout", a.err.code, mode .. ": " .. tostring(a.err.message))
        assert.is_true(a.err.sent and a.err.outcome_unknown, mode)
        assert.is_true(a.elapsed < 1.5, mode .. ": the 1 s timeout took " .. a.elapsed .. " s")
      end
    end)

    it("bounds every send while the peer reads slowly (nothing was sent whole: not sent)", function()
      -- 64 MiB: more than the loopback buffers hold; the peer takes 256 KiB every
      -- 100 ms, so the whole body would take about 20 s
      local a = probe({ url = fx("/fx/slowread"), method = "POST", body_bytes = 64 * 1024 * 1024, timeout = 1 })
      assert.is_false(a.ok)
      assert.are.equal("Timeout", a.err.code, tostring(a.err.message))
      assert.is_false(a.err.sent)
      assert.is_false(a.err.outcome_unknown)
      assert.is_true(a.elapsed < 1.5, "the 1 s timeout took " .. a.elapsed .. " s")
    end)
  end)

  it("keeps secrets out of the logs", function()
    local logs = srv:error_log() .. srv:access_log()
    assert.is_true(#logs > 0)
    assert.matches("dms%-ops: POST /replications/start", logs)
    for _, secret in ipairs({ SECRET_KEY, SESSION_TOKEN, BEARER, "Signature=", "AWS4-HMAC-SHA256",
                              "Bearer", "X-Amz-Security-Token" }) do
      assert.is_nil(logs:find(secret, 1, true), "the logs contain " .. secret)
    end
  end)
end)
end

describe("nginx: the ops endpoint's bearer token file (DMS_OPS_TOKEN_FILE)", function()
  if not available then return end
  local srv, dir, file
  local FIRST = string.format("first-%08x", math.random(0, 0x7fffffff))
  local SECOND = string.format("second-%08x", math.random(0, 0x7fffffff))

  lazy_setup(function()
    -- readable by the workers, which run as an unprivileged user when nginx starts as root
    local ok, out = nginx.run("d=$(mktemp -d /tmp/lua-dms-token.XXXXXX) && chmod 755 \"$d\" && echo \"$d\"")
    assert(ok, out)
    dir = out:gsub("%s+$", "")
    file = dir .. "/token"
    srv = nginx.start({ env = { DMS_OPS_TOKEN_FILE = file, AWS_REGION = "us-east-1" }, workers = 1 })
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if dir then nginx.run("rm -rf " .. nginx.quote(dir)) end
  end)

  -- replaces the file the way a rotation does (a new file renamed over the old)
  local function write_token(text)
    local f = assert(io.open(file .. ".new", "wb"))
    f:write(text)
    f:close()
    assert(nginx.run("chmod 644 " .. nginx.quote(file .. ".new") .. " && mv " .. nginx.quote(file .. ".new")
      .. " " .. nginx.quote(file)))
  end

  -- the status of a request that needs the token and nothing else: 400 (no
  -- arn) once the token is accepted, 401 when refused, 500 with no token
  local function status_with(token)
    local r = srv:http({ path = "/replications/status", headers = { Authorization = "Bearer " .. token } })
    return r.status, r
  end

  -- the file is read again within a second: wait up to 3 s for `want`
  local function eventually(token, want)
    local got
    for _ = 1, 30 do
      got = status_with(token)
      if got == want then return got end
      nginx.run("sleep 0.1")
    end
    return got
  end

  it("is read again when it appears, is rotated or is emptied, and says why it refuses", function()
    -- missing at the first request
    local status, r = status_with(FIRST)
    assert.are.equal(500, status, r.body)
    assert.are.equal("NotConfigured", r.json.error.code)
    assert.matches("auth=not%-configured[^\n]*cannot read the bearer token file " .. file:gsub("%p", "%%%0")
      .. "[^\n]*No such file", srv:error_log())

    -- written: accepted without a reload
    write_token(FIRST .. "\n")
    assert.are.equal(400, eventually(FIRST, 400))
    assert.are.equal(401, status_with(SECOND))
    assert.matches("auth=wrong%-token", srv:error_log())

    -- rotated: the new token is accepted, the old one refused
    write_token(SECOND)
    assert.are.equal(400, eventually(SECOND, 400))
    assert.are.equal(401, status_with(FIRST))

    -- emptied: refused with a reason, not with a silent 401
    write_token("")
    assert.are.equal(500, eventually(SECOND, 500))
    assert.matches("bearer token file " .. file:gsub("%p", "%%%0") .. " is empty", srv:error_log())

    local logs = srv:error_log() .. srv:access_log()
    assert.is_nil(logs:find(FIRST, 1, true), "the logs contain the first token")
    assert.is_nil(logs:find(SECOND, 1, true), "the logs contain the second token")
  end)
end)
