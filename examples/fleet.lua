-- A fleet runbook: start a wave of replication configs (selected by
-- identifier), 8 at a time, watch them in one poll, resume those that stop
-- recoverably, and say at the end which did not make it and why.
--
-- Environment: DMS_ENDPOINT (optional: the URL of a local DMS endpoint),
-- AWS_REGION, credentials as for any AWS client; WAVE (a glob, default
-- "wave-*"), STATE_DIR (default: no state files).
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     DMS_ENDPOINT=http://127.0.0.1:41873 WAVE='wave-*' lua5.4 examples/fleet.lua
local dms = require "dms"
local workflow = require "dms.workflow"

local endpoint = os.getenv("DMS_ENDPOINT")
local client = assert(dms.new({ region = os.getenv("AWS_REGION") or "us-east-1",
                                 endpoint = endpoint ~= "" and endpoint or nil }))
local local_endpoint = endpoint ~= nil and endpoint ~= ""

local wave = assert(workflow.select(client, { match = { os.getenv("WAVE") or "wave-*" } }))
if #wave == 0 then
  io.stderr:write("no replication config matches ", os.getenv("WAVE") or "wave-*", "\n")
  os.exit(2)
end
local names = {}
for i, c in ipairs(wave) do names[i] = c.id end
print(string.format("%d replication configs: %s", #names, table.concat(names, " ")))

local outcome, err = workflow.run_many(client, {
  replication_config_arns = names,
  concurrency = 8,
  wait_for = "full-load-complete",
  state_dir = os.getenv("STATE_DIR"),
  -- on AWS: a poll every 15 s for hours; the local endpoint runs 1000 times faster
  poll = local_endpoint and { interval = 0.2, timeout = 600 } or { interval = 15, timeout = 12 * 3600 },
  resume = local_endpoint and { backoff = 0.5 } or nil,
  on_event = function(ev)
    if ev.type ~= "progress" and ev.type ~= "status" and ev.type ~= "capacity" then
      print(workflow.format_event(ev))
    end
  end,
  on_round = function(r)
    if r.round % 25 == 0 then
      print(string.format("-- round %d: %d replications in %d request(s), %d in flight, %d queued", r.round,
        r.replications, r.requests, r.in_flight, r.queued))
    end
  end,
})
if not outcome then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

print("")
for _, key in ipairs(outcome.order) do
  local r = outcome.results[key]
  if r.ok then
    print(string.format("%-24s %-10s %d start(s), %d resume(s)", r.id or key, r.replication.Status, r.starts,
      r.resumes))
  else
    print(string.format("%-24s %-10s %s", r.id or key, r.code, r.message))
  end
end
print(string.format("%s: %d of %d reached the target in %s (%d poll rounds, %d DescribeReplications)",
  outcome.ok and "done" or "NOT DONE", #outcome.order - #outcome.failed, #outcome.order,
  workflow.duration(outcome.elapsed), outcome.rounds, outcome.requests))
client:close()
os.exit(outcome.ok and 0 or 1)
