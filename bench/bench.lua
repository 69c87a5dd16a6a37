-- `make bench`: lua-dms against botocore on the same machine and inputs.
--   signing, build and parse alone, build+sign+parse without network, calls to the local DMS
--   endpoint over keep-alive, start-up, memory; figures and ratios.
local t_load0 = os.clock()
local dms = require "dms"
local load_s = os.clock() - t_load0
local core = dms.core
local cjson = require "cjson"

local N_PURE = tonumber(os.getenv("BENCH_N") or "") or 20000
local N_CALLS = tonumber(os.getenv("BENCH_CALLS") or "") or 2000
local ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX03"
local KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

local function rss_kib()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  for line in f:lines() do
    local v = line:match("^VmRSS:%s+(%d+)")
    if v then f:close(); return tonumber(v) end
  end
  f:close()
  return 0
end

local function timeit(n, fn)
  local t0 = core.monotonic()
  for _ = 1, n do fn() end
  return (core.monotonic() - t0) / n
end

-- the median of 5 rounds of n/5 calls: a moment of the machine's other work
-- moves one round, not the figure (botocore_bench.py times the same way)
local function timeit_median(n, fn)
  local t = {}
  for i = 1, 5 do t[i] = timeit(math.ceil(n / 5), fn) end
  table.sort(t)
  return t[3]
end

-- the local DMS endpoint
local pipe = assert(io.popen("sh -c 'echo $$; exec python3 emulator/dms-emulator --seed emulator/seed.example.json"
  .. " 2>/dev/null'", "r"))
local pid, url = pipe:read("*l"), pipe:read("*l")
assert(url and url:match("^http://"), "the local DMS endpoint did not start")

local model = dms.model
local params = { ReplicationConfigArn = ARN, StartReplicationType = "start-replication",
                 PremigrationAssessmentSettings = { ResultLocationFolder = "assess" } }
local body = cjson.encode({ Replication = { ReplicationConfigArn = ARN, Status = "running",
  ReplicationCreateTime = 1764072000.5,
  ReplicationStats = { FullLoadProgressPercent = 42, TablesLoaded = 4 } } })
local sign_req = { method = "POST", path = "/", body = "{}", region = "us-east-1", service = "dms",
  access_key = KEY, secret_key = SECRET,
  headers = { { "Host", "dms.us-east-1.amazonaws.com" }, { "Content-Type", "application/x-amz-json-1.1" } } }

local sign_s = timeit_median(N_PURE, function() core.sign(sign_req) end)
local pipeline_s = timeit_median(N_PURE, function()
  local req = core.build(model, "StartReplication", params)
  core.sign({ method = "POST", path = "/", body = req.body, region = "us-east-1", service = "dms",
    access_key = KEY, secret_key = SECRET,
    headers = { { "Host", "dms.us-east-1.amazonaws.com" }, req.headers[1], req.headers[2] } })
  core.parse(model, "StartReplication", 200, {}, body)
end)

-- build alone (validation and the JSON writer of dms.core), and parse of a page
local filters = {}
for i = 1, 20 do
  local values = {}
  for j = 1, 10 do values[j] = ARN .. i .. "-" .. j end
  filters[i] = { Name = "replication-config-arn", Values = values }
end
local describe_params = { Filters = filters, MaxRecords = 100 }
local build_s = timeit(N_PURE, function() assert(core.build(model, "StartReplication", params)) end)
local build_big_s = timeit(math.ceil(N_PURE / 20), function()
  assert(core.build(model, "DescribeReplications", describe_params))
end)
local page = {}
for i = 1, 50 do
  page[i] = { ReplicationConfigArn = ARN .. i, Status = "running", ReplicationCreateTime = 1764072000.5,
              ReplicationStats = { FullLoadProgressPercent = 42, TablesLoaded = 4, ElapsedTimeMillis = 123456 },
              ProvisionData = { ProvisionState = "provisioned", ProvisionedCapacityUnits = 16 } }
end
local page_body = cjson.encode({ Replications = page, Marker = "next" })
local parse_page_s = timeit(math.ceil(N_PURE / 20), function()
  assert(core.parse(model, "DescribeReplications", 200, {}, page_body))
end)

local client = assert(dms.new({ region = "us-east-1", endpoint = url,
  credentials = { access_key = KEY, secret_key = SECRET } }))
assert(client:describe_replications({ MaxRecords = 20 }))
collectgarbage()
local heap0 = collectgarbage("count")
local call_s = timeit(N_CALLS, function() assert(client:describe_replications({ MaxRecords = 20 })) end)
collectgarbage()
local heap1 = collectgarbage("count")
local lua_rss = rss_kib()

-- botocore, same inputs
local py = io.popen("python3 bench/botocore_bench.py " .. url .. " " .. math.floor(N_PURE / 4) .. " "
  .. N_CALLS .. " 2>&1")
local py_out = py:read("*a")
py:close()
local ok, boto = pcall(cjson.decode, py_out:match("{.*}") or "")
if not ok then boto = nil end

-- start-up of a one-shot command: a Lua script vs the AWS CLI
local function wall(cmd, n)
  local t0 = core.monotonic()
  for _ = 1, n do assert(os.execute(cmd .. " >/dev/null 2>&1")) end
  return (core.monotonic() - t0) / n
end
local env = "AWS_ACCESS_KEY_ID=" .. KEY .. " AWS_SECRET_ACCESS_KEY=" .. SECRET
  .. " AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 "
local lua_cmd_s = wall(env .. "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 -e "
  .. "'assert(require(\"dms\").new{endpoint=\"" .. url .. "\"}:describe_replications{})'", 10)
local cli_ok = os.execute("command -v aws >/dev/null 2>&1")
local cli_s = cli_ok and wall(env .. "aws dms describe-replications --endpoint-url " .. url, 3) or nil

os.execute("kill " .. pid)
pipe:close()
client:close()

local function us(s) return string.format("%9.1f us", s * 1e6) end
local function ratio(a, b) return b and string.format("%6.1fx", b / a) or "   n/a" end
print(string.format("lua-dms bench (%s, %s)", jit and jit.version or _VERSION,
  require("dms.curl").version:match("^%S+")))
print(string.format("%-44s %12s %12s %8s", "", "lua-dms", "botocore", "faster"))
print(string.format("%-44s %12s %12s %8s", "SigV4 sign (per request)", us(sign_s),
  boto and us(boto.sign_s) or "n/a", ratio(sign_s, boto and boto.sign_s)))
print(string.format("%-44s %12s %12s %8s", "build StartReplication (validate + write JSON)", us(build_s), "", ""))
print(string.format("%-44s %12s %12s %8s", "build DescribeReplications, 20 x 10 ARNs", us(build_big_s), "", ""))
print(string.format("%-44s %12s %12s %8s", "parse a page of 50 replications", us(parse_page_s), "", ""))
print(string.format("%-44s %12s %12s %8s", "build + sign + parse StartReplication", us(pipeline_s),
  boto and us(boto.pipeline_s) or "n/a", ratio(pipeline_s, boto and boto.pipeline_s)))
print(string.format("%-44s %12s %12s %8s", "DescribeReplications over keep-alive", us(call_s),
  boto and us(boto.call_s) or "n/a", ratio(call_s, boto and boto.call_s)))
print(string.format("%-44s %9.1f ms %9.1f ms %8s", "load (require dms / botocore model)", load_s * 1e3,
  boto and boto.load_s * 1e3 or 0, ratio(load_s, boto and boto.load_s)))
print(string.format("%-44s %9.1f ms %9.1f ms %8s", "one-shot command (lua5.4 script / aws CLI)", lua_cmd_s * 1e3,
  cli_s and cli_s * 1e3 or 0, ratio(lua_cmd_s, cli_s)))
print(string.format("%-44s %8d KiB %8d KiB %7.1fx", "resident memory after the calls", lua_rss,
  boto and boto.rss_kib or 0, boto and boto.rss_kib / lua_rss or 0))
print(string.format("%-44s %8.1f KiB", "Lua heap growth over " .. N_CALLS .. " calls", heap1 - heap0))
print("(the local endpoint is Python: the keep-alive call figure is bounded by it for both clients)")
if not boto then print("botocore side failed: " .. py_out) end
