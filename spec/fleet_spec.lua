-- workflow.run_many and the other fleet functions against the local DMS
-- endpoint holding fleets of 20 to 120 replications. The emulator's request
-- log is the witness: one start per replication, never more in flight than
-- the concurrency, one paged DescribeReplications round per poll for all of
-- them (ceil(n / 100) requests), and each replication's promises kept.
local cjson = require "cjson"
local core = require "dms.core"
local workflow = require "dms.workflow"
local fleet = require "dms.workflow.fleet"
local emulator = require "support.emulator"
local files = require "support.files"

local SPEED = 20000
local RUN_SECONDS = 49 * 60 / SPEED       -- real seconds from a start to running (emulator/README.md)
local LUA = (type(jit) == "table") and "luajit" or "lua5.4"
local CPATH = (type(jit) == "table") and "build/luajit/?.so;;" or "build/?.so;;"

local function count(events, kind)
  local n = 0
  for _, ev in ipairs(events) do
    if ev.type == kind then n = n + 1 end
  end
  return n
end

-- StartReplication requests DMS accepted, by ARN
local function starts_by_arn(emu)
  local out, accepted = {}, {}
  for _, r in ipairs(emu:requests("StartReplication")) do
    local arn = r.body.ReplicationConfigArn
    out[arn] = (out[arn] or 0) + 1
    if r.status == 200 then accepted[#accepted + 1] = r end
  end
  return out, accepted
end

-- the most replications between an accepted start and running at once, from
-- the request log: each start is in flight for RUN_SECONDS of real time
local function most_in_flight(accepted)
  local marks = {}
  for _, r in ipairs(accepted) do
    marks[#marks + 1] = { r.time, 1 }
    marks[#marks + 1] = { r.time + RUN_SECONDS, -1 }
  end
  table.sort(marks, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local n, most = 0, 0
  for _, m in ipairs(marks) do
    n = n + m[2]
    if n > most then most = n end
  end
  return most
end

describe("workflow fleets", function()
  local emu, client, dir

  setup(function()
    emu = emulator.start({ speed = SPEED, seed = false })
    client = emu:client()
    dir = files.tmpdir()
  end)
  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)
  before_each(function()
    emu:reset()
  end)

  -- a fleet of `n` CDC replications named prefix-001...; returns their ARNs and identifiers
  local function make_fleet(n, prefix, extra)
    local spec = { count = n, identifier = (prefix or "f") .. "-{n:03}", type = "cdc" }
    for k, v in pairs(extra or {}) do spec[k] = v end
    local made = emu:replication(spec)
    local arns, ids = {}, {}
    for i, r in ipairs(made.replications) do arns[i], ids[i] = r.arn, r.identifier end
    return arns, ids
  end

  local function options(extra)
    local events, rounds = {}, {}
    local o = {
      wait_for = "running",
      poll = { interval = 0.05, timeout = 60 },
      resume = { backoff = 0.05 },
      sleep = core.sleep,
      lock_dir = dir,
      on_event = function(ev) events[#events + 1] = ev end,
      on_round = function(r) rounds[#rounds + 1] = r end,
    }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o, events, rounds
  end

  it("runs 120 replications with one start each, never more than the concurrency in flight", function()
    local arns = make_fleet(120)
    local opts, events, rounds = options({ replication_config_arns = arns, concurrency = 10 })
    local outcome, err = workflow.run_many(client, opts)
    assert.is_nil(err)
    assert.is_true(outcome.ok)
    assert.are.equal(120, #outcome.order)
    for _, arn in ipairs(arns) do
      local r = outcome.results[arn]
      assert.is_true(r.ok, arn)
      assert.are.equal("running", r.replication.Status)
      assert.are.equal(1, r.starts)
    end
    local per_arn, accepted = starts_by_arn(emu)
    for _, arn in ipairs(arns) do assert.are.equal(1, per_arn[arn], arn) end
    assert.are.equal(120, #accepted)
    assert.truthy(most_in_flight(accepted) <= 10, most_in_flight(accepted))
    assert.truthy(most_in_flight(accepted) >= 2)                  -- and it did run them side by side
    assert.truthy(outcome.max_in_flight <= 10)
    -- the others waited their turn, and said so
    assert.truthy(count(events, "queued") >= 100)
    -- every event names its replication
    for _, ev in ipairs(events) do
      assert.are.equal("string", type(ev.arn))
      assert.truthy(ev.id and ev.id:match("^f%-%d%d%d$"), ev.type)
    end
    -- one paged round per poll: ceil(n / 100) requests for n replications
    for _, r in ipairs(rounds) do
      assert.are.equal(math.ceil(r.replications / 100), r.requests)
    end
    assert.are.equal(120, rounds[1].replications)                  -- the first look, batched
    assert.are.equal(2, rounds[1].requests)
    local describes = emu:requests("DescribeReplications")
    local total = 0
    for _, r in ipairs(rounds) do total = total + r.requests end
    assert.are.equal(#describes, total)                           -- no describe outside a round
    assert.are.equal(outcome.requests, total)
    for _, d in ipairs(describes) do
      assert.truthy(#d.body.Filters[1].Values <= 100)
      assert.are.equal("replication-config-arn", d.body.Filters[1].Name)
    end
    -- never a request per replication: far fewer describes than replications x rounds
    assert.truthy(#describes < #rounds * 2)
    assert.truthy(#describes < 120 * 2)
  end)

  it("describes all 120 in flight in two requests per round", function()
    local arns = make_fleet(120)
    local opts, _, rounds = options({ replication_config_arns = arns, concurrency = 120 })
    local outcome = assert(workflow.run_many(client, opts))
    assert.is_true(outcome.ok)
    local per_arn = starts_by_arn(emu)
    for _, arn in ipairs(arns) do assert.are.equal(1, per_arn[arn]) end
    assert.truthy(#rounds >= 2)
    for _, r in ipairs(rounds) do
      assert.are.equal(math.ceil(r.replications / 100), r.requests)
    end
    -- while all 120 were in flight, each round was two requests
    assert.are.equal(120, rounds[2].replications)
    assert.are.equal(2, rounds[2].requests)
    -- the pages of a round: 100 ARNs, then 20
    local describes = emu:requests("DescribeReplications")
    assert.are.equal(100, #describes[3].body.Filters[1].Values)
    assert.are.equal(20, #describes[4].body.Filters[1].Values)
  end)

  it("goes on with the others when one stops fatally and resumes one that stops recoverably", function()
    local arns, ids = make_fleet(20, "wave", { type = "full-load-and-cdc", tables = 3 })
    emu:stop_replication({ identifier = ids[7], reason = "RECOVERABLE_ERROR", at_progress = 40 })
    emu:stop_replication({ identifier = ids[13], reason = "FATAL_ERROR", message = "Last Error ORA-01555" })
    local opts, events = options({ replication_config_arns = ids, concurrency = 6,
                                   wait_for = "full-load-complete" })
    local outcome, err = workflow.run_many(client, opts)
    assert.is_false(outcome.ok)
    assert.are.equal("Incomplete", err.code)
    assert.are.same({ arns[13] }, outcome.failed)
    assert.truthy(err.message:find("wave-013 (FatalStop)", 1, true), err.message)
    local fatal = outcome.results[arns[13]]
    assert.are.equal("FatalStop", fatal.code)
    assert.are.equal(ids[13], fatal.id)
    assert.are.equal(arns[13], fatal.arn)
    local resumed = outcome.results[arns[7]]
    assert.is_true(resumed.ok)
    assert.are.equal(1, resumed.resumes)
    for i, arn in ipairs(arns) do
      if i ~= 13 then
        assert.is_true(outcome.results[arn].ok)
        assert.are.equal(100, outcome.results[arn].replication.ReplicationStats.FullLoadProgressPercent)
      end
    end
    -- one start each, one resume for the recoverable stop, none for the fatal one
    local types = {}
    for _, r in ipairs(emu:requests("StartReplication")) do
      local t = types[r.body.ReplicationConfigArn] or {}
      t[#t + 1] = r.body.StartReplicationType
      types[r.body.ReplicationConfigArn] = t
    end
    for i, arn in ipairs(arns) do
      if i == 7 then
        assert.are.same({ "start-replication", "resume-processing" }, types[arn])
      else
        assert.are.same({ "start-replication" }, types[arn])
      end
    end
    local _, accepted = starts_by_arn(emu)
    assert.truthy(most_in_flight(accepted) <= 6)
    -- the events of the two tell which replication they are about
    for _, ev in ipairs(events) do
      if ev.type == "resume_wait" then assert.are.equal(ids[7], ev.id) end
      if ev.type == "error" then assert.are.equal(ids[13], ev.id) end
    end
    assert.are.equal(1, count(events, "error"))
  end)

  it("resolves identifiers (once each) and reports one that names nothing as its own result", function()
    local arns, ids = make_fleet(20)
    local names = { ids[1], arns[1], "does-not-exist" }
    for i = 2, 20 do names[#names + 1] = (i % 2 == 0) and ids[i] or arns[i] end
    local opts, events = options({ replication_config_arns = names })
    local outcome, err = workflow.run_many(client, opts)
    assert.are.equal("Incomplete", err.code)
    assert.are.same({ "does-not-exist" }, outcome.failed)
    local missing = outcome.results["does-not-exist"]
    assert.are.equal("ResourceNotFoundFault", missing.code)
    assert.are.equal("does-not-exist", missing.id)
    for _, arn in ipairs(arns) do assert.is_true(outcome.results[arn].ok) end
    assert.are.equal(21, #outcome.order)                         -- ids[1] and arns[1] are one
    local per_arn = starts_by_arn(emu)
    for _, arn in ipairs(arns) do assert.are.equal(1, per_arn[arn]) end
    -- the identifiers resolved before any start, through DescribeReplicationConfigs
    local log = emu:requests()
    assert.are.equal("DescribeReplicationConfigs", log[1].operation)
    local filters = {}
    for _, r in ipairs(emu:requests("DescribeReplicationConfigs")) do
      filters[r.body.Filters[1].Name] = #r.body.Filters[1].Values
    end
    -- does-not-exist, f-001 and the ten even ones; the ten odd ARNs
    assert.are.same({ ["replication-config-id"] = 12, ["replication-config-arn"] = 10 }, filters)
    local err_event
    for _, ev in ipairs(events) do
      if ev.type == "error" then err_event = ev end
    end
    assert.are.equal("does-not-exist", err_event.id)
    assert.are.equal("ResourceNotFoundFault", err_event.code)
  end)

  it("reports a replication another runbook holds as Locked and goes on with the rest", function()
    local arns = make_fleet(20)
    local path = workflow.lock_path({ replication_config_arn = arns[5], lock_dir = dir })
    local script = dir .. "/hold.lua"
    files.write(script, "local core = require 'dms.core'\nlocal l = assert(core.lock(arg[1]))\n"
      .. "io.write('locked\\n') io.stdout:flush()\ncore.sleep(30)\nl:release()\n")
    local p = assert(io.popen("LUA_CPATH='" .. CPATH .. "' exec sh -c 'echo $$; exec " .. LUA .. " " .. script
      .. " " .. path .. "'"))
    local pid = p:read("*l")
    assert.are.equal("locked", p:read("*l"))
    finally(function()
      os.execute("kill " .. pid)
      p:close()
    end)
    local opts, events = options({ replication_config_arns = arns, concurrency = 5 })
    local outcome, err = workflow.run_many(client, opts)
    assert.are.equal("Incomplete", err.code)
    assert.are.same({ arns[5] }, outcome.failed)
    local locked = outcome.results[arns[5]]
    assert.are.equal("Locked", locked.code)
    assert.are.equal(tonumber(pid), locked.pid)
    assert.are.equal("f-005", locked.id)                    -- named, though never described
    for i, arn in ipairs(arns) do
      if i ~= 5 then assert.is_true(outcome.results[arn].ok) end
    end
    local per_arn = starts_by_arn(emu)
    assert.is_nil(per_arn[arns[5]])
    for i, arn in ipairs(arns) do
      if i ~= 5 then assert.are.equal(1, per_arn[arn]) end
    end
    local locked_events = 0
    for _, ev in ipairs(events) do
      if ev.code == "Locked" then
        locked_events = locked_events + 1
        assert.are.equal("f-005", ev.id)
      end
    end
    assert.are.equal(1, locked_events)
  end)

  it("keeps one state file per replication in state_dir and goes on from them", function()
    local arns = make_fleet(20)
    local state_dir = dir .. "/states/wave-1"          -- made by the fleet, parents too
    local opts = options({ replication_config_arns = arns, state_dir = state_dir, wait_for = "running" })
    local outcome = assert(workflow.run_many(client, opts))
    assert.is_true(outcome.ok)
    for _, arn in ipairs(arns) do
      local saved = cjson.decode((assert(files.read(require("dms.workflow.journal").state_path(state_dir, arn)))))
      assert.are.equal(arn, saved.arn)
      assert.are.equal("done", saved.phase)
      assert.are.equal(1, saved.starts)
      assert.truthy(saved.id:match("^f%-%d%d%d$"))
    end
    -- a second run finds them running: nothing to start
    local again = assert(workflow.run_many(client, (options({ replication_config_arns = arns,
                                                             state_dir = state_dir }))))
    assert.is_true(again.ok)
    for _, arn in ipairs(arns) do assert.are.equal(0, again.results[arn].starts) end
    local per_arn = starts_by_arn(emu)
    for _, arn in ipairs(arns) do assert.are.equal(1, per_arn[arn]) end
    -- a state_dir that cannot be made is refused before any request
    emu:clear_requests()
    files.write(dir .. "/a-file", "x")
    local _, err = workflow.run_many(client, (options({ replication_config_arns = arns,
                                                        state_dir = dir .. "/a-file/dir" })))
    assert.are.equal("StateFile", err.code)
    assert.are.same({}, emu:requests())
  end)

  it("backs the whole round off when DescribeReplications stays throttled", function()
    local arns = make_fleet(30)
    local opts, events = options({ replication_config_arns = arns })
    -- the first round goes through; the second is throttled on all three attempts of the client
    local armed = false
    local inner = opts.on_round
    opts.on_round = function(r)
      inner(r)
      if not armed then
        armed = true
        emu:fault({ operation = "DescribeReplications", fault = "throttle", count = 3 })
      end
    end
    local outcome = assert(workflow.run_many(client, opts))
    assert.is_true(outcome.ok)
    local throttled = {}
    for _, ev in ipairs(events) do
      if ev.type == "throttled" then throttled[#throttled + 1] = ev end
    end
    -- every replication of the round was told, with the same delay
    assert.truthy(#throttled >= 1)
    for _, ev in ipairs(throttled) do assert.are.equal(throttled[1].delay, ev.delay) end
    assert.truthy(throttled[1].delay >= 0.1)
    -- the round after the throttled one waited the back-off: the describes
    -- (with their attempts) around it
    local describes = emu:requests("DescribeReplications")
    local last_throttled
    for i, d in ipairs(describes) do
      if d.fault == "throttle" then last_throttled = i end
    end
    assert.truthy(last_throttled and describes[last_throttled + 1])
    local gap = describes[last_throttled + 1].time - describes[last_throttled].time
    assert.truthy(gap >= 0.1 * 0.75, gap)
    local per_arn = starts_by_arn(emu)
    for _, arn in ipairs(arns) do assert.are.equal(1, per_arn[arn]) end
  end)

  it("never sends a second start for a replication whose start answer was lost", function()
    local arns = make_fleet(20)
    emu:fault({ operation = "StartReplication", fault = "drop_after" })
    local opts, events = options({ replication_config_arns = arns, concurrency = 4 })
    local outcome = assert(workflow.run_many(client, opts))
    assert.is_true(outcome.ok)
    local per_arn = starts_by_arn(emu)
    for _, arn in ipairs(arns) do assert.are.equal(1, per_arn[arn], arn) end
    assert.are.equal(1, count(events, "start_unknown"))
    local dropped = emu:requests("StartReplication")[1].body.ReplicationConfigArn
    assert.are.equal(1, outcome.results[dropped].starts)
  end)

  it("stops a fleet, and describes one in a single round", function()
    local arns = make_fleet(25, "s", { status = "running" })
    local described = assert(workflow.describe_many(client, (options({ replication_config_arns = arns }))))
    assert.is_true(described.ok)
    for _, arn in ipairs(arns) do assert.are.equal("running", described.results[arn].Status) end
    assert.are.equal(1, #emu:requests("DescribeReplications"))
    local stopped = assert(workflow.stop_many(client, (options({ replication_config_arns = arns,
                                                                 wait_for = "stopped" }))))
    assert.is_true(stopped.ok)
    for _, arn in ipairs(arns) do assert.are.equal("stopped", stopped.results[arn].replication.Status) end
    assert.are.equal(25, #emu:requests("StopReplication"))
  end)

  it("selects replication configs by identifier glob", function()
    make_fleet(12, "wave")
    make_fleet(5, "cdc")
    local list = assert(workflow.select(client, { match = { "wave-00?", "cdc-005" } }))
    local ids = {}
    for _, c in ipairs(list) do ids[#ids + 1] = c.id end
    assert.are.same({ "cdc-005", "wave-001", "wave-002", "wave-003", "wave-004", "wave-005", "wave-006",
                      "wave-007", "wave-008", "wave-009" }, ids)
    assert.are.equal("^wave%-0[1-3].*$", fleet.glob_pattern("wave-0[1-3]*"))
    assert.truthy(("wave-7"):match(fleet.glob_pattern("wave-[!0-5]")))
    assert.falsy(("wave-3"):match(fleet.glob_pattern("wave-[!0-5]")))
    assert.truthy(("a.b"):match(fleet.glob_pattern("a.b")))
    assert.falsy(("axb"):match(fleet.glob_pattern("a.b")))
  end)

  it("checks its options before any request", function()
    for _, bad in ipairs({ {}, { replication_config_arns = {} }, { replication_config_arns = { "x--y" } },
                           { replication_config_arns = { "ok" }, concurrency = 0 },
                           { replication_config_arns = { "ok" }, concurrency = 2.5 },
                           { replication_config_arns = { "ok" }, state_file = "x.json" },
                           { replication_config_arns = { "ok" }, on_round = 1 },
                           { replication_config_arns = { "ok" }, wait_for = "forever" } }) do
      local outcome, err = workflow.run_many(client, bad)
      assert.is_nil(outcome)
      assert.are.equal("validation", err.kind)
    end
    assert.are.same({}, emu:requests())
  end)
end)
