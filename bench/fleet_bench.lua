-- `make bench` (fleet figure): the cost of one poll round of a fleet against
-- the local DMS endpoint, for fleets of 1, 10, 100 and 1,000 replications:
-- requests per round and milliseconds per round, the fleet's paged round
-- (dms.workflow.fleet: filters of 100 ARNs, MaxRecords 100) against one
-- DescribeReplications per replication. Then a wave run end to end.
local core = require "dms.core"
local dms = require "dms"
local workflow = require "dms.workflow"
local fleet = require "dms.workflow.fleet"

local KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or "") or 20
local SIZES = { 1, 10, 100, 1000 }

local pipe = assert(io.popen("sh -c 'echo $$; exec python3 emulator/dms-emulator --speed 1000 2>/dev/null'", "r"))
local pid, url = pipe:read("*l"), pipe:read("*l")
assert(url and url:match("^http://"), "the local DMS endpoint did not start")
local admin = assert(require("dms.curl").http())
local function emulator(method, path, body)
  local resp = assert(admin:request({ url = url .. "/_emulator/" .. path, method = method, timeout = 60,
    headers = { { "Content-Type", "application/json" } }, body = body and require("cjson").encode(body) or "" }))
  assert(resp.status < 300, resp.body)
  return require("cjson").decode(resp.body)
end

local client = assert(dms.new({ region = "us-east-1", endpoint = url,
  credentials = { access_key = KEY, secret_key = SECRET } }))

local function ms(t) return string.format("%9.1f ms", t * 1000) end

print(string.format("lua-dms fleet bench (%s): one poll round over a fleet, local endpoint", jit and jit.version
  or _VERSION))
print(string.format("%-13s %26s   %26s %9s", "", "fleet (paged round)", "a describe per replication", ""))
print(string.format("%-13s %13s %12s   %13s %12s %9s", "replications", "requests", "time", "requests", "time",
  "cheaper"))
for _, n in ipairs(SIZES) do
  emulator("DELETE", "replications")
  local made = emulator("POST", "replications", { count = n, identifier = "bench-{n:04}", type = "cdc",
                                                  status = "running" })
  local arns = {}
  for i, r in ipairs(made.replications or { made }) do arns[i] = r.arn or r.ReplicationConfigArn end
  assert(#arns == n)
  -- the fleet's round
  local requests = 0
  local t0 = core.monotonic()
  for _ = 1, ROUNDS do
    local views, _, req, failure = fleet.describe_round(client, arns)
    assert(not failure, failure and tostring(failure))
    requests = requests + req
    local seen = 0
    for _ in pairs(views) do seen = seen + 1 end
    assert(seen == n)
  end
  local round_s = (core.monotonic() - t0) / ROUNDS
  -- a describe per replication, as a runbook per replication polls
  local each = math.max(1, math.floor(ROUNDS / (n >= 1000 and 10 or 1)))
  t0 = core.monotonic()
  for _ = 1, each do
    for _, arn in ipairs(arns) do
      assert(client:describe_replications({ Filters = { { Name = "replication-config-arn", Values = { arn } } } }))
    end
  end
  local each_s = (core.monotonic() - t0) / each
  print(string.format("%-13d %13.0f %12s   %13d %12s %8.1fx", n, requests / ROUNDS, ms(round_s), n, ms(each_s),
    each_s / round_s))
end

-- a wave end to end: 200 replications, 50 at a time
emulator("DELETE", "replications")
local made = emulator("POST", "replications", { count = 200, identifier = "wave-{n:03}", type = "cdc" })
local arns = {}
for i, r in ipairs(made.replications) do arns[i] = r.arn end
emulator("DELETE", "requests")
local rounds = 0
local t0 = core.monotonic()
local outcome = assert(workflow.run_many(client, {
  replication_config_arns = arns, concurrency = 50, wait_for = "running",
  poll = { interval = 0.2, timeout = 600 }, lock_dir = os.getenv("TMPDIR") or "/tmp",
  on_round = function() rounds = rounds + 1 end,
}))
local took = core.monotonic() - t0
assert(outcome.ok)
local log = emulator("GET", "requests").requests
local by_op = {}
for _, r in ipairs(log) do by_op[r.operation] = (by_op[r.operation] or 0) + 1 end
print(string.format("wave of 200, concurrency 50, poll 0.2 s: %.1f s, %d rounds, %d DescribeReplications "
  .. "(%.2f per round), %d StartReplication, %d DescribeReplicationConfigs, at most %d in flight", took, rounds,
  by_op.DescribeReplications or 0, (by_op.DescribeReplications or 0) / rounds, by_op.StartReplication or 0,
  by_op.DescribeReplicationConfigs or 0, outcome.max_in_flight))
print("(the local endpoint is Python: a round's cost is mostly its answer; see emulator/tests/bench_describe.py)")

os.execute("kill " .. pid)
pipe:close()
client:close()
admin:close()
