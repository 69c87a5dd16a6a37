-- Instructions per call of the hot path, counted by callgrind: unlike a
-- clock, the count does not move with the machine's load, so two versions of
-- lua-dms compare on a busy machine too.
--
--   lua5.4 bench/instructions.lua       (LUA_PATH and LUA_CPATH as in `make bench`)
--   luajit bench/instructions.lua
--
-- Each case runs twice under valgrind --tool=callgrind, with N1 and N2 calls
-- after one untimed call; the count per call is the difference over N2 - N1
-- (start-up and tear-down cancel out). Cases: core.build of a
-- DescribeReplications request, core.parse of its five-member answer,
-- core.sign of a StartReplication request, a client call through a transport
-- function answering that fixed answer (build, sign, parse and the client
-- itself), and client calls through libcurl to nginx answering it, kept alive
-- and on a fresh connection, beside the floor programs of bench/floor doing
-- the same exchange. Under valgrind OpenSSL runs its SHA-256 without the
-- CPU's SHA instructions: a signature counts some 25,000 instructions more
-- than it runs natively.
--
-- Environment: BENCH_FLOOR (build/bench), BENCH_N1 (200), BENCH_N2 (1200).
local files = require "support.files"
local nginx = require "support.nginx"

local FLOOR = os.getenv("BENCH_FLOOR") or "build/bench"
local N1 = tonumber(os.getenv("BENCH_N1") or "") or 200
local N2 = tonumber(os.getenv("BENCH_N2") or "") or 1200
local LUA_BIN = (type(jit) == "table" and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))
local LUA_NAME = (type(jit) == "table" and jit.version) or _VERSION

local ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX03"
local KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local REPLICATION = '{"ReplicationConfigArn":"' .. ARN .. '","Status":"running",'
  .. '"ReplicationType":"full-load-and-cdc","ReplicationCreateTime":1764072000.5,'
  .. '"ReplicationStats":{"FullLoadProgressPercent":42,"TablesLoaded":4}}'
local DESCRIBE_BODY = '{"Replications":[' .. REPLICATION .. ']}'
local START_BODY = '{"Replication":' .. REPLICATION .. '}'
local DESCRIBE = { MaxRecords = 20, Filters = { { Name = "replication-config-arn", Values = { ARN } } } }
local START = { ReplicationConfigArn = ARN, StartReplicationType = "start-replication",
                PremigrationAssessmentSettings = { ResultLocationFolder = "assess" } }

---------------------------------------------------------------------------
-- the child: one case, n calls after one

if arg[1] == "--child" then
  local what, n, url = arg[2], tonumber(arg[3]), arg[4]
  local dms = require "dms"
  local core = dms.core
  local headers = { ["x-amzn-requestid"] = "5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b",
                    ["content-type"] = "application/x-amz-json-1.1" }
  local creds = { access_key = KEY, secret_key = SECRET }
  local fixed = assert(dms.new({ region = "us-east-1", endpoint = "http://127.0.0.1:1", credentials = creds,
    transport = function(treq)
      local target = treq.headers[3][2]
      return { status = 200, headers = headers,
               body = target:find("StartReplication", 1, true) and START_BODY or DESCRIBE_BODY }
    end }))
  local curl = url and assert(dms.new({ region = "us-east-1", endpoint = url, transport = "curl",
                                        credentials = creds }))
  local built = assert(core.build(dms.model, "StartReplication", START))
  local sreq = { method = "POST", path = "/", body = built.body, region = "us-east-1", service = "dms",
    access_key = KEY, secret_key = SECRET,
    headers = { { "Host", "dms.us-east-1.amazonaws.com" }, built.headers[1], built.headers[2] } }
  local m = dms.model
  local cases = {
    build = function() assert(core.build(m, "DescribeReplications", DESCRIBE)) end,
    parse = function() assert(core.parse(m, "DescribeReplications", 200, headers, DESCRIBE_BODY)) end,
    sign = function() core.sign(sreq) end,
    call = function() assert(fixed:describe_replications(DESCRIBE)) end,
    curl = function() assert(curl:describe_replications(DESCRIBE)) end,
    curl_fresh = function() assert(curl:start_replication(START)) end,
  }
  local f = assert(cases[what], what)
  f()
  for _ = 1, n do f() end
  return
end

---------------------------------------------------------------------------
-- the parent

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("*a")
  p:close()
  return out
end

if not run("valgrind --version"):match("^valgrind") then
  print("bench/instructions.lua: valgrind is not installed: no instruction counts")
  return
end

-- cmd: {environment, program and arguments}
local function collected(cmd)
  local out = run(cmd[1] .. "valgrind --tool=callgrind --callgrind-out-file=/dev/null " .. cmd[2])
  local ir = out:match("Collected : (%d+)")
  assert(ir, "callgrind failed: " .. cmd[2] .. "\n" .. out)
  return tonumber(ir)
end

local function per_call(make_cmd)
  local a, b = collected(make_cmd(N1)), collected(make_cmd(N2))
  return (b - a) / (N2 - N1)
end

local q = nginx.quote
local env = "env LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " "
local function lua_case(what, url)
  return function(n) return { env, LUA_BIN .. " bench/instructions.lua --child " .. what .. " " .. n .. " "
    .. (url and q(url) or "") } end
end

-- nginx answering the fixed body, and the request files of the floor
local port = nginx.free_port()
local srv = nginx.start({ workers = 1, extra_http = [[
    map $http_x_amz_target $dms_fixed_body {
        default ']] .. DESCRIBE_BODY .. [[';
        AmazonDMSv20160101.StartReplication ']] .. START_BODY .. [[';
    }
    server {
        listen 127.0.0.1:]] .. port .. [[;
        access_log off;
        keepalive_requests 10000000;
        default_type application/x-amz-json-1.1;
        location / {
            add_header x-amzn-RequestId 5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b;
            return 200 $dms_fixed_body;
        }
    }
]] })
local url = "http://127.0.0.1:" .. port
local ok, err = pcall(function()
  local dms = require "dms"
  local function capture(op, params)
    local sent
    local rec = assert(dms.new({ region = "us-east-1", endpoint = url,
      credentials = { access_key = KEY, secret_key = SECRET },
      transport = function(treq) sent = treq return { status = 200, headers = {}, body = "{}" } end }))
    assert(rec:call(op, params))
    local lines = { sent.method }
    for _, h in ipairs(sent.headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
    lines[#lines + 1] = ""
    local path = os.tmpname()
    files.write(path, table.concat(lines, "\n") .. "\n" .. sent.body)
    return path
  end
  local describe_req, start_req = capture("DescribeReplications", DESCRIBE), capture("StartReplication", START)
  local rows = {
    { "core.build, DescribeReplications", per_call(lua_case("build")) },
    { "core.parse, its five-member answer", per_call(lua_case("parse")) },
    { "core.sign, StartReplication", per_call(lua_case("sign")) },
    { "client call, a function answering", per_call(lua_case("call")) },
    { "client call over libcurl, kept alive", per_call(lua_case("curl", url)) },
    { "  floor: the same exchange in C", per_call(function(n)
      return { "", FLOOR .. "/http_floor " .. q(url .. "/") .. " " .. q(describe_req) .. " " .. n } end) },
    { "client call over libcurl, fresh connection", per_call(lua_case("curl_fresh", url)) },
    { "  floor: the same exchange in C", per_call(function(n)
      return { "", FLOOR .. "/http_floor " .. q(url .. "/") .. " " .. q(start_req) .. " " .. n .. " fresh" } end) },
  }
  os.remove(describe_req)
  os.remove(start_req)
  print(string.format("instructions per call, callgrind (%s; %d - %d calls)", LUA_NAME, N2, N1))
  for _, r in ipairs(rows) do print(string.format("%-46s %9.0f", r[1], r[2])) end
end)
srv:stop()
if not ok then error(err, 0) end
