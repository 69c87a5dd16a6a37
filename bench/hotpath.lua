-- `make bench`, second part: lua-dms's hot path against the floor of this
-- machine, measured side by side in one run (rounds alternate between the
-- floor and lua-dms, so that a busy machine slows both alike; the figures are
-- medians over the rounds, the ratio is the median of the rounds' ratios).
--
--   lua5.4 bench/hotpath.lua [ngx]      (LUA_PATH and LUA_CPATH as in `make bench`)
--
-- Ratios are of wall-clock times; the CPU ratio (the client process's CPU
-- time per call, lua-dms against the floor loop) moves less when the machine
-- is busy.
--
-- Rows: a DescribeReplications call over a kept-alive connection and a
-- StartReplication call on a fresh connection, each against a C loop around
-- one libcurl handle sending the same method, header lines and body
-- (bench/floor/http_floor.c) to the same nginx answering a fixed body;
-- dms.core.sign against the SHA-256 work of a signature
-- (bench/floor/sign_floor.c); start-up of `require "dms"` + dms.new in a
-- fresh interpreter against a bare interpreter plus `curl --version`.
-- With "ngx": the ops endpoint (examples/nginx) through the cosocket
-- transport against nginx proxying the same fixed body, in requests per
-- second, and the peak resident memory of its worker.
--
-- Environment: BENCH_FLOOR (directory of the floor programs, default
-- build/bench), BENCH_ROUNDS (7), BENCH_CALLS (1000 kept-alive calls a
-- round), BENCH_FRESH (300 fresh-connection calls a round), BENCH_N (20000
-- signatures a round), BENCH_STARTS (20 start-ups), BENCH_LOAD (20000 ngx
-- requests), BENCH_CONCURRENCY (8).
local dms = require "dms"
local core = dms.core
local nginx = require "support.nginx"
local files = require "support.files"
local cjson = require "cjson"

local FLOOR = os.getenv("BENCH_FLOOR") or "build/bench"
local function env_n(name, dflt) return tonumber(os.getenv(name) or "") or dflt end
local ROUNDS = env_n("BENCH_ROUNDS", 7)
local N_CALLS = env_n("BENCH_CALLS", 1000)
local N_FRESH = env_n("BENCH_FRESH", 300)
local N_SIGN = env_n("BENCH_N", 20000)
local N_STARTS = env_n("BENCH_STARTS", 20)
local N_LOAD = env_n("BENCH_LOAD", 20000)
local CONCURRENCY = env_n("BENCH_CONCURRENCY", 8)
local WITH_NGX = arg and arg[1] == "ngx"

local ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX03"
local KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local LUA_NAME = (type(jit) == "table" and jit.version) or _VERSION
local LUA_BIN = (type(jit) == "table" and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))
local CPATH = (type(jit) == "table" and "build/luajit/?.so;;") or "build/?.so;;"

-- the fixed answers: a replication of five members, as DMS describes it
local REPLICATION = '{"ReplicationConfigArn":"' .. ARN .. '","Status":"running",'
  .. '"ReplicationType":"full-load-and-cdc","ReplicationCreateTime":1764072000.5,'
  .. '"ReplicationStats":{"FullLoadProgressPercent":42,"TablesLoaded":4}}'
local DESCRIBE_BODY = '{"Replications":[' .. REPLICATION .. ']}'
local START_BODY = '{"Replication":' .. REPLICATION .. '}'

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("*a")
  local ok = p:close()
  return ok, out
end

local function json_line(cmd)
  local ok, out = run(cmd)
  local doc = out:match("{.-}")
  local dok, t = pcall(cjson.decode, doc or "")
  assert(ok and dok, "failed: " .. cmd .. "\n" .. out)
  return t
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

local function minmax(t)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(t) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return lo, hi
end

local function q(s) return nginx.quote(s) end

for _, prog in ipairs({ "http_floor", "sign_floor", "spawn_time", "http_load" }) do
  assert(files.exists(FLOOR .. "/" .. prog), FLOOR .. "/" .. prog .. " is missing: run `make bench`")
end

---------------------------------------------------------------------------
-- nginx: the fixed-body answer (the "DMS" of this bench), a proxy to it, and
-- the ops endpoint of examples/nginx with that answer as its DMS endpoint

local FIXED_PORT, PROXY_PORT = nginx.free_port(), nginx.free_port()
while PROXY_PORT == FIXED_PORT do PROXY_PORT = nginx.free_port() end
local FIXED_URL = "http://127.0.0.1:" .. FIXED_PORT
local EXTRA = [[
    map $http_x_amz_target $dms_fixed_body {
        default ']] .. DESCRIBE_BODY .. [[';
        AmazonDMSv20160101.StartReplication ']] .. START_BODY .. [[';
    }
    server {
        listen 127.0.0.1:]] .. FIXED_PORT .. [[;
        access_log off;
        keepalive_requests 10000000;
        keepalive_timeout 600s;
        default_type application/x-amz-json-1.1;
        location / {
            add_header x-amzn-RequestId 5f0c1b2a-3d4e-4f60-8a7b-9c0d1e2f3a4b;
            return 200 $dms_fixed_body;
        }
    }
    upstream dms_fixed {
        server 127.0.0.1:]] .. FIXED_PORT .. [[;
        keepalive 32;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:]] .. PROXY_PORT .. [[;
        keepalive_requests 10000000;
        location / {
            proxy_pass http://dms_fixed;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
]]
local TOKEN = "bench-token-0123456789"
local srv = nginx.start({
  workers = 1,
  extra_http = EXTRA,
  env = { DMS_OPS_TOKEN = TOKEN, AWS_REGION = "us-east-1", AWS_ACCESS_KEY_ID = KEY,
          AWS_SECRET_ACCESS_KEY = SECRET, AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE = FIXED_URL,
          DMS_MAX_ATTEMPTS = "1" },
})
local ok_main, err_main = pcall(function()

local client = assert(dms.new({ region = "us-east-1", endpoint = FIXED_URL, transport = "curl",
  credentials = { access_key = KEY, secret_key = SECRET } }))

-- what the client sends, once, through a recording transport: the floor sends the same
local function capture(op, params)
  local sent
  local rec = assert(dms.new({ region = "us-east-1", endpoint = FIXED_URL,
    credentials = { access_key = KEY, secret_key = SECRET },
    transport = function(treq)
      sent = treq
      return { status = 200, headers = {}, body = op == "StartReplication" and START_BODY or DESCRIBE_BODY }
    end }))
  assert(rec:call(op, params))
  local lines = { sent.method }
  for _, h in ipairs(sent.headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  lines[#lines + 1] = ""
  local path = os.tmpname()
  files.write(path, table.concat(lines, "\n") .. "\n" .. (sent.body or ""))
  return path
end

local describe_params = { MaxRecords = 20, Filters = { { Name = "replication-config-arn", Values = { ARN } } } }
local start_params = { ReplicationConfigArn = ARN, StartReplicationType = "start-replication",
                       PremigrationAssessmentSettings = { ResultLocationFolder = "assess" } }
local describe_req = capture("DescribeReplications", describe_params)
local start_req = capture("StartReplication", start_params)

-- the signature of the StartReplication request, as the client signs it
local built = assert(core.build(dms.model, "StartReplication", start_params))
local sign_req = { method = "POST", path = "/", body = built.body, region = "us-east-1", service = "dms",
  access_key = KEY, secret_key = SECRET,
  headers = { { "Host", "dms.us-east-1.amazonaws.com" }, built.headers[1], built.headers[2] } }
local sample = core.sign(sign_req)
local sign_dir = files.tmpdir()
files.write(sign_dir .. "/body", built.body)
files.write(sign_dir .. "/canonical_request", sample.canonical_request)
files.write(sign_dir .. "/string_to_sign", sample.string_to_sign)

assert(client:describe_replications(describe_params))     -- the connection is open
local rows = {
  { name = "describe_replications, kept-alive connection" },
  { name = "start_replication, fresh connection" },
  { name = "dms.core.sign, StartReplication request" },
}
for _, r in ipairs(rows) do r.lua, r.floor, r.ratio, r.cpu_ratio = {}, {}, {}, {} end

-- wall and CPU time per call of n calls of fn
local function timeit2(n, fn)
  local t0, c0 = core.monotonic(), os.clock()
  for _ = 1, n do fn() end
  return (core.monotonic() - t0) / n * 1e6, (os.clock() - c0) / n * 1e6
end
local function add(row, lua_us, floor_us, lua_cpu, floor_cpu)
  row.lua[#row.lua + 1], row.floor[#row.floor + 1] = lua_us, floor_us
  row.ratio[#row.ratio + 1] = lua_us / floor_us
  if lua_cpu then row.cpu_ratio[#row.cpu_ratio + 1] = lua_cpu / floor_cpu end
end

local blocks
for _ = 1, ROUNDS do
  local f = json_line(FLOOR .. "/http_floor " .. q(FIXED_URL .. "/") .. " " .. q(describe_req) .. " " .. N_CALLS)
  assert(f.connects == 0, "the floor's kept-alive loop opened connections")
  local us, cpu = timeit2(N_CALLS, function() assert(client:describe_replications(describe_params)) end)
  add(rows[1], us, f.us, cpu, f.cpu_us)

  f = json_line(FLOOR .. "/http_floor " .. q(FIXED_URL .. "/") .. " " .. q(start_req) .. " " .. N_FRESH .. " fresh")
  us, cpu = timeit2(N_FRESH, function() assert(client:start_replication(start_params)) end)
  add(rows[2], us, f.us, cpu, f.cpu_us)

  f = json_line(FLOOR .. "/sign_floor " .. q(sign_dir) .. " " .. N_SIGN)
  blocks = f.blocks
  us = timeit2(N_SIGN, function() core.sign(sign_req) end)
  add(rows[3], us, f.us)
end
client:close()
os.remove(describe_req)
os.remove(start_req)
run("rm -rf " .. q(sign_dir))

-- start-up: a fresh interpreter, require "dms" and dms.new (libcurl is not
-- loaded: dms.curl comes with the first request), and the same plus dms.curl
-- (what a command-line runbook has loaded after its first request)
local env = "env LUA_PATH=" .. q("lua/?.lua;lua/?/init.lua;;") .. " LUA_CPATH=" .. q(CPATH) .. " "
local new_client = 'local d = require "dms"; assert(d.new{region = "us-east-1", '
  .. 'credentials = {access_key = "AKIDEXAMPLE", secret_key = "secret"}})'
local starts = {
  bare = json_line(FLOOR .. "/spawn_time " .. N_STARTS .. " " .. LUA_BIN .. " -e ''"),
  curl = json_line(FLOOR .. "/spawn_time " .. N_STARTS .. " curl --version"),
  dms = json_line(env .. FLOOR .. "/spawn_time " .. N_STARTS .. " " .. LUA_BIN .. " -e " .. q(new_client)),
  dms_curl = json_line(env .. FLOOR .. "/spawn_time " .. N_STARTS .. " " .. LUA_BIN .. " -e "
    .. q(new_client .. '; require "dms.curl"')),
}

---------------------------------------------------------------------------
-- report

print(string.format("lua-dms hot path against the floor (%s, %s; %d rounds, medians)", LUA_NAME,
  require("dms.curl").version:match("^%S+"), ROUNDS))
print(string.format("%-46s %12s %12s %8s %13s %9s", "", "lua-dms", "floor", "ratio", "range", "CPU ratio"))
for _, r in ipairs(rows) do
  local lo, hi = minmax(r.ratio)
  print(string.format("%-46s %9.2f us %9.2f us %7.2fx %5.2f-%5.2fx %8s", r.name, median(r.lua), median(r.floor),
    median(r.ratio), lo, hi, #r.cpu_ratio > 0 and string.format("%.2fx", median(r.cpu_ratio)) or ""))
end
print(string.format("  (floors: one libcurl handle with its options set once; %d SHA-256 blocks with kept "
  .. "contexts and the key's pad states)", blocks))
local floor_ms = starts.bare.ms + starts.curl.ms
print(string.format("%-46s %9.2f ms %9.2f ms %7.2fx", "start-up: require \"dms\" + dms.new", starts.dms.ms,
  floor_ms, starts.dms.ms / floor_ms))
print(string.format("%-46s %9.2f ms %9.2f ms %7.2fx", "  the same + dms.curl (libcurl loaded)", starts.dms_curl.ms,
  floor_ms, starts.dms_curl.ms / floor_ms))
print(string.format("%-46s %8d KiB %8d KiB %+7d KiB", "  peak RSS: require \"dms\" + dms.new", starts.dms.rss_kib,
  starts.curl.rss_kib, starts.dms.rss_kib - starts.curl.rss_kib))
print(string.format("%-46s %8d KiB %8d KiB %+7d KiB", "  peak RSS: the same + dms.curl", starts.dms_curl.rss_kib,
  starts.curl.rss_kib, starts.dms_curl.rss_kib - starts.curl.rss_kib))
print(string.format("  (floor: a bare %s, %.2f ms, plus `curl --version`, %.2f ms and %d KiB)", LUA_BIN,
  starts.bare.ms, starts.curl.ms, starts.curl.rss_kib))

---------------------------------------------------------------------------
-- the ops endpoint through cosockets against nginx proxying the same answer

if WITH_NGX then
  local status_path = "/replications/status?arn=" .. ARN
  local auth = "Authorization: Bearer " .. TOKEN
  local load = FLOOR .. "/http_load "
  local function ops_load(server, n)
    return json_line(load .. q(server.url .. status_path) .. " " .. n .. " " .. CONCURRENCY .. " " .. q(auth))
  end
  local ops, proxy = {}, {}
  for _ = 1, ROUNDS do
    local p = json_line(load .. q("http://127.0.0.1:" .. PROXY_PORT .. "/") .. " " .. N_LOAD .. " " .. CONCURRENCY
      .. " " .. q("X-Amz-Target: AmazonDMSv20160101.DescribeReplications"))
    local o = ops_load(srv, N_LOAD)
    proxy[#proxy + 1], ops[#ops + 1] = p.rps, o.rps
  end
  local ratios = {}
  for i = 1, #ops do ratios[i] = proxy[i] / ops[i] end

  -- the worker: its peak resident memory, and whether libcurl is mapped in it
  local function worker_memory(server)
    local pids = files.read("/proc/" .. server.pid .. "/task/" .. server.pid .. "/children")
      or select(2, run("ps -o pid= --ppid " .. server.pid))
    local worker = pids:match("%d+")
    local status = files.read("/proc/" .. worker .. "/status") or ""
    local maps = files.read("/proc/" .. worker .. "/maps") or ""
    return tonumber(status:match("VmHWM:%s*(%d+)")), maps:find("libcurl", 1, true) ~= nil
  end

  -- peak memory of a worker of the ops endpoint alone, after the same load,
  -- as it is and with libcurl loaded in the master as when dms.core linked it
  -- (dms.curl required in init_by_lua)
  local dir = files.tmpdir()
  assert(run("mkdir -p " .. q(dir .. "/dms") .. " && cp build/luajit/dms/curl.so " .. q(dir .. "/dms/")
    .. " && chmod -R a+rX " .. q(dir)))
  local conf = assert(files.read(nginx.EXAMPLE)):gsub('(\n%s*)require "handler"',
    '%1require "handler"%1package.cpath = "' .. dir .. '/?.so;" .. package.cpath%1require "dms.curl"', 1)
  files.write(dir .. "/nginx.conf", conf)
  local function measure(conf_path)
    local s = nginx.start({ workers = 1, conf = conf_path,
      env = { DMS_OPS_TOKEN = TOKEN, AWS_REGION = "us-east-1", AWS_ACCESS_KEY_ID = KEY,
              AWS_SECRET_ACCESS_KEY = SECRET, AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE = FIXED_URL,
              DMS_MAX_ATTEMPTS = "1" } })
    local ok, err = pcall(ops_load, s, N_LOAD)
    local kib, has_curl = worker_memory(s)
    s:stop()
    assert(ok, err)
    return kib, has_curl
  end
  local hwm, mapped = measure(nil)
  local hwm2, mapped2 = measure(dir .. "/nginx.conf")
  run("rm -rf " .. q(dir))

  print(string.format("%-46s %9.0f /s %9.0f /s %7.2fx", "ops endpoint GET /replications/status (ngx)",
    median(ops), median(proxy), median(ratios)))
  print(string.format("  (floor: nginx proxy_pass to the same fixed answer; %d requests, %d connections, 1 worker)",
    N_LOAD, CONCURRENCY))
  print(string.format("%-46s %8d KiB %8d KiB %+7d KiB", "  ops worker peak RSS (VmHWM) after " .. N_LOAD,
    hwm, hwm2, hwm - hwm2))
  print(string.format("  (libcurl mapped in the worker: %s; beside it, libcurl loaded in the master as when dms.core "
    .. "linked it: %s)", mapped and "yes" or "no", mapped2 and "yes" or "no"))
end

end)
srv:stop()
if not ok_main then error(err_main, 0) end
