-- dms.workflow against the local DMS endpoint: one scenario per case the
-- workflow must get right. The emulator's request log is the witness of what
-- reached DMS.
local cjson = require "cjson"
local core = require "dms.core"
local workflow = require "dms.workflow"
local emulator = require "support.emulator"

local ARN = emulator.ARN_FULL_LOAD_AND_CDC
local SPEED = 20000

local LUA = (type(jit) == "table") and "luajit" or "lua5.4"
local CPATH = (type(jit) == "table") and "build/luajit/?.so;;" or "build/?.so;;"

local files = require "support.files"
local tmpdir, read, write = files.tmpdir, files.read, files.write

local function types(events)
  local out = {}
  for _, ev in ipairs(events) do out[#out + 1] = ev.type end
  return out
end

local function find(events, kind)
  for _, ev in ipairs(events) do
    if ev.type == kind then return ev end
  end
end

local function count(events, kind)
  local n = 0
  for _, ev in ipairs(events) do
    if ev.type == kind then n = n + 1 end
  end
  return n
end

-- a process holding the flock of `path` until killed; returns its pid
local function hold_lock(dir, path)
  local script = dir .. "/hold_lock.lua"
  write(script, "local core = require 'dms.core'\nlocal l = assert(core.lock(arg[1]))\n"
    .. "io.write('locked\\n') io.stdout:flush()\ncore.sleep(30)\nl:release()\n")
  local p = assert(io.popen("LUA_CPATH='" .. CPATH .. "' exec sh -c 'echo $$; exec " .. LUA .. " " .. script .. " "
    .. path .. "'"))
  local pid = p:read("*l")
  assert.are.equal("locked", p:read("*l"))
  return pid, p
end

describe("dms.workflow", function()
  local emu, client, dir

  setup(function()
    emu = emulator.start({ speed = SPEED })
    client = emu:client()
    dir = tmpdir()
  end)
  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)
  before_each(function()
    emu:reset()
  end)

  -- options for a fast run against the emulator
  local function options(extra)
    local events = {}
    local o = {
      replication_config_arn = ARN,
      wait_for = "running",
      poll = { interval = 0.05, timeout = 30 },
      resume = { backoff = 0.05 },
      sleep = core.sleep,
      lock_dir = dir,
      on_event = function(ev) events[#events + 1] = ev end,
    }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o, events
  end

  local function starts()
    local out = {}
    for _, r in ipairs(emu:requests("StartReplication")) do out[#out + 1] = r end
    return out
  end

  local function start_types()
    local out = {}
    for _, r in ipairs(starts()) do out[#out + 1] = r.body.StartReplicationType end
    return out
  end

  it("starts afresh with a passing assessment and waits until running", function()
    local opts, events = options({ assessment = { ResultLocationFolder = "assess", IncludeOnly = { "a", "b" } } })
    local outcome, err = workflow.run(client, opts)
    assert.is_nil(err)
    assert.is_true(outcome.ok)
    assert.are.equal("running", outcome.replication.Status)
    assert.are.equal(1, outcome.starts)
    assert.are.equal(0, outcome.resumes)
    assert.are.equal("passed", outcome.assessment.Status)
    assert.are.equal(2, outcome.assessment.AssessmentProgress.IndividualAssessmentCount)

    local log = starts()
    assert.are.equal(1, #log)
    assert.are.equal("start-replication", log[1].body.StartReplicationType)
    assert.are.same({ ResultLocationFolder = "assess", IncludeOnly = "a b", FailOnAssessmentFailure = true },
                    cjson.decode(log[1].body.PremigrationAssessmentSettings))
    -- it described before it acted
    local first = emu:requests()[1]
    assert.are.equal("DescribeReplications", first.operation)
    assert.are.same({ { Name = "replication-config-arn", Values = { ARN } } }, first.body.Filters)

    assert.are.equal("described", events[1].type)
    assert.are.equal("done", events[#events].type)
    for _, kind in ipairs({ "start_sent", "started", "assessment", "status" }) do
      assert.truthy(find(events, kind), kind)
    end
    assert.are.same(outcome.events, events)
    for _, ev in ipairs(events) do
      assert.are.equal(ARN, ev.arn)
      assert.are.equal("number", type(ev.time))
      assert.truthy(ev.elapsed >= 0)
      assert.is_nil(ev.access_key)
      assert.is_nil(ev.secret_key)
    end
    assert.are.equal("created", events[1].status)
    assert.are.equal("running", events[#events].status)
    -- no secret anywhere in what the events say
    local text = cjson.encode(events)
    assert.is_nil(text:find(emulator.SECRET_KEY, 1, true))
    assert.is_nil(text:find(emulator.ACCESS_KEY, 1, true))
  end)

  it("stops at a failing assessment and sends no second start", function()
    emu:assessment({ arn = ARN, result = "failed" })
    local opts, events = options({ assessment = { ResultLocationFolder = "assess" } })
    local outcome, err = workflow.run(client, opts)
    assert.is_nil(outcome)
    assert.are.equal("workflow", err.kind)
    assert.are.equal("AssessmentFailed", err.code)
    assert.truthy(err.message:find("unsupported-data-types-in-source", 1, true))
    assert.are.equal("failed", err.replication.Status)
    assert.truthy(tostring(err):find("AssessmentFailed", 1, true))
    assert.are.equal("error", events[#events].type)
    assert.are.equal("AssessmentFailed", events[#events].code)
    core.sleep(0.2)
    assert.are.equal(1, #starts())
  end)

  it("resumes after a recoverable stop and reaches the end of the full load", function()
    emu:stop_replication({ arn = ARN, reason = "RECOVERABLE_ERROR", at_progress = 50 })
    local opts, events = options({ wait_for = "full-load-complete" })
    local outcome, err = workflow.run(client, opts)
    assert.is_nil(err)
    assert.are.equal(1, outcome.starts)
    assert.are.equal(1, outcome.resumes)
    assert.are.equal("running", outcome.replication.Status)
    assert.are.equal(100, outcome.replication.ReplicationStats.FullLoadProgressPercent)
    assert.are.same({ "start-replication", "resume-processing" }, start_types())
    for _, r in ipairs(starts()) do assert.are.equal(200, r.status) end   -- none refused
    local stopped = find(events, "stopped")
    assert.are.equal("Stop Reason RECOVERABLE_ERROR", stopped.stop_reason)
    assert.are.equal("stopped", stopped.status)
    assert.truthy(find(events, "resume_wait"))
    assert.truthy(find(events, "resume_sent"))
  end)

  it("resumes after the stop reasons AWS spells in full (STOPPED_DUE_TO_LOW_MEMORY)", function()
    emu:stop_replication({ arn = ARN, reason = "STOPPED_DUE_TO_LOW_MEMORY", at_progress = 30 })
    local outcome, err = workflow.run(client, (options({ wait_for = "full-load-complete" })))
    assert.is_nil(err)
    assert.are.equal(1, outcome.resumes)
    assert.are.same({ "start-replication", "resume-processing" }, start_types())
  end)

  it("does not resume a stop whose reason resume.on does not list", function()
    emu:stop_replication({ arn = ARN, reason = "RECOVERABLE_ERROR", at_progress = 30 })
    local _, err = workflow.run(client, (options({ wait_for = "full-load-complete",
                                                   resume = { on = { "LOW_DISK" } } })))
    assert.are.equal("Stopped", err.code)
    assert.are.equal(1, #starts())
  end)

  it("never resumes a fatal stop", function()
    emu:stop_replication({ arn = ARN, reason = "FATAL_ERROR", at_progress = 50, message = "Last Error ORA-01555" })
    local opts, events = options({ wait_for = "full-load-complete",
                                   resume = { on = { "FATAL_ERROR", "RECOVERABLE_ERROR" }, backoff = 0.01 } })
    local outcome, err = workflow.run(client, opts)
    assert.is_nil(outcome)
    assert.are.equal("FatalStop", err.code)
    assert.truthy(err.message:find("ORA-01555", 1, true))
    assert.are.equal("failed", err.replication.Status)
    assert.are.equal("Stop Reason FATAL_ERROR", err.stop_reason)
    assert.are.equal("failed", find(events, "stopped").status)
    core.sleep(0.1)
    assert.are.equal(1, #starts())
    -- and a new run does not resume it either
    local _, again = workflow.run(client, (options()))
    assert.are.equal("FatalStop", again.code)
    assert.are.equal(1, #starts())
  end)

  it("describes instead of re-sending a start whose answer was lost", function()
    emu:fault({ operation = "StartReplication", fault = "drop_after" })
    local opts, events = options()
    local outcome, err = workflow.run(client, opts)
    assert.is_nil(err)
    assert.are.equal("running", outcome.replication.Status)
    assert.are.equal(1, outcome.starts)
    assert.are.equal(1, #starts())
    assert.are.equal("drop_after", starts()[1].fault)
    assert.truthy(find(events, "start_unknown"))
    assert.are.equal("described", find(events, "started").how)
  end)

  it("backs off and keeps polling when DescribeReplications stays throttled", function()
    emu:fault({ operation = "DescribeReplications", fault = "throttle", count = 5 })
    local opts, events = options()
    local outcome, err = workflow.run(client, opts)
    assert.is_nil(err)
    assert.are.equal("running", outcome.replication.Status)
    assert.are.equal(1, #starts())
    local throttled = find(events, "throttled")
    assert.are.equal("ThrottlingException", throttled.code)
    assert.truthy(throttled.delay > 0)
    local n = 0
    for _, r in ipairs(emu:requests("DescribeReplications")) do
      if r.fault == "throttle" then n = n + 1 end
    end
    assert.are.equal(5, n)
  end)

  it("resumes right after a stop without a start DMS refuses for capacity", function()
    assert(workflow.run(client, (options())))
    local stopped = assert(workflow.stop(client, (options({ wait_for = "stopping" }))))
    assert.are.equal("stopping", stopped.replication.Status)
    local outcome, err = workflow.resume(client, (options({ poll = { interval = 0.002, timeout = 30 } })))
    assert.is_nil(err)
    assert.are.equal("deprovisioned", find(outcome.events, "start_sent").provision_state)
    assert.are.same({ "start-replication", "resume-processing" }, start_types())
    assert.are.equal(1, outcome.resumes)          -- an explicit resume counts as a resume
    assert.are.equal(0, outcome.starts)
    for _, r in ipairs(starts()) do assert.are.equal(200, r.status) end   -- none refused
  end)

  it("chooses resume-processing for a stopped CDC replication and never reload-target", function()
    emu:replication({ arn = emulator.ARN_CDC, type = "cdc", status = "stopped", stop_reason = "NORMAL" })
    local outcome, err = workflow.run(client, (options({ replication_config_arn = emulator.ARN_CDC })))
    assert.is_nil(err)
    assert.are.equal("resume-processing", outcome.start_type)
    assert.are.same({ "resume-processing" }, start_types())
  end)

  it("sends reload-target only when asked for and allowed, and says so loudly", function()
    emu:replication({ arn = emulator.ARN_CDC, type = "cdc", status = "stopped" })
    local _, err = workflow.run(client, (options({ replication_config_arn = emulator.ARN_CDC,
                                                   start_type = "reload-target" })))
    assert.are.equal("ReloadNotAllowed", err.code)
    assert.are.equal(0, #emu:requests())
    local logged = {}
    local loud = emu:client({ logger = function(level, message) logged[#logged + 1] = level .. " " .. message end })
    local opts, events = options({ replication_config_arn = emulator.ARN_CDC, start_type = "reload-target",
                                   allow_reload_target = true })
    local outcome = assert(workflow.run(loud, opts))
    assert.are.equal("reload-target", outcome.start_type)
    assert.are.same({ "reload-target" }, start_types())
    assert.truthy(find(events, "warning").message:find("RELOAD-TARGET", 1, true))
    local warned = false
    for _, l in ipairs(logged) do warned = warned or l:find("^warn RELOAD%-TARGET") ~= nil end
    assert.is_true(warned)
    loud:close()
  end)

  it("sends a start DMS refuses for itself once and returns StartRefused", function()
    emu:replication({ arn = emulator.ARN_FULL_LOAD, type = "full-load", status = "stopped",
                      stop_reason = "FULL_LOAD_ONLY_FINISHED" })
    local _, err = workflow.run(client, (options({ replication_config_arn = emulator.ARN_FULL_LOAD,
                                                   start_type = "resume-processing" })))
    assert.are.equal("StartRefused", err.code)
    assert.truthy(err.message:find("full-load cannot resume processing", 1, true))
    assert.are.equal(1, #starts())
  end)

  it("refuses to start a full-load replication again without an explicit start type", function()
    emu:replication({ arn = emulator.ARN_FULL_LOAD, type = "full-load", status = "stopped",
                      stop_reason = "FULL_LOAD_ONLY_FINISHED" })
    local _, err = workflow.run(client, (options({ replication_config_arn = emulator.ARN_FULL_LOAD })))
    assert.are.equal("StartTypeRequired", err.code)
    assert.are.equal(0, #starts())
    local outcome = assert(workflow.run(client, (options({ replication_config_arn = emulator.ARN_FULL_LOAD,
      start_type = "start-replication", wait_for = "stopped" }))))
    assert.are.equal("Stop Reason FULL_LOAD_ONLY_FINISHED", outcome.replication.StopReason)
    assert.are.equal(1, #starts())
  end)

  it("gives up after resume.max_attempts automatic resumes", function()
    emu:stop_replication({ arn = ARN, reason = "RECOVERABLE_ERROR", at_progress = 20 })
    local opts = options({ wait_for = "full-load-complete", resume = { max_attempts = 1, backoff = 0.01 } })
    local inner = opts.on_event
    opts.on_event = function(ev)
      inner(ev)
      if ev.type == "started" and ev.resume then
        emu:stop_replication({ arn = ARN, reason = "RECOVERABLE_ERROR", at_progress = 60 })
      end
    end
    local _, err = workflow.run(client, opts)
    assert.are.equal("ResumeLimit", err.code)
    assert.are.same({ "start-replication", "resume-processing" }, start_types())
  end)

  it("times out with a Timeout error and goes on from its state file next time", function()
    local state = dir .. "/timeout.json"
    local _, err = workflow.run(client, (options({ state_file = state, wait_for = "full-load-complete",
                                                   poll = { interval = 0.02, timeout = 0.05 } })))
    assert.are.equal("Timeout", err.code)
    assert.are.equal("workflow", err.kind)
    local saved = cjson.decode(read(state))
    assert.are.equal("waiting", saved.phase)
    assert.is_true(saved.start_sent)
    assert.are.equal(1, saved.starts)
    local outcome = assert(workflow.run(client, (options({ state_file = state, wait_for = "full-load-complete" }))))
    assert.are.equal(1, outcome.starts)
    assert.are.equal(1, #starts())
    assert.are.equal("done", cjson.decode(read(state)).phase)
  end)

  describe("after a crash", function()
    local function pending_state(path, before)
      write(path, cjson.encode({
        version = 1, arn = ARN, phase = "starting", start_sent = true, start_pending = true,
        pending_type = "start-replication", pending_resume = false, starts = 0, resumes = 0,
        start_attempts = 1, before = before, pid = 999999,
      }))
    end

    it("counts a pending start that reached DMS as sent", function()
      local path = dir .. "/crash1.json"
      pending_state(path, { status = "created" })
      assert(client:start_replication({ ReplicationConfigArn = ARN, StartReplicationType = "start-replication" }))
      local opts, events = options({ state_file = path })
      local outcome, err = workflow.run(client, opts)
      assert.is_nil(err)
      assert.are.equal(1, outcome.starts)
      assert.are.equal(1, #starts())
      assert.are.equal("described after a restart", find(events, "started").how)
      local saved = cjson.decode(read(path))
      assert.are.equal("done", saved.phase)
      assert.is_false(saved.start_pending)
    end)

    it("sends a pending start that never reached DMS, once", function()
      local path = dir .. "/crash2.json"
      pending_state(path, { status = "created" })
      local outcome = assert(workflow.run(client, (options({ state_file = path }))))
      assert.are.equal(1, outcome.starts)
      assert.are.same({ "start-replication" }, start_types())
    end)

    it("resumes a run of its own that stopped while it was down", function()
      local path = dir .. "/crash3.json"
      emu:replication({ arn = ARN, status = "stopped", stop_reason = "RECOVERABLE_ERROR", full_load_progress = 40 })
      write(path, cjson.encode({ version = 1, arn = ARN, phase = "waiting", start_sent = true,
        start_pending = false, run_started = true, starts = 1, resumes = 0, start_type = "start-replication" }))
      local outcome = assert(workflow.run(client, (options({ state_file = path }))))
      assert.are.equal(1, outcome.starts)
      assert.are.equal(1, outcome.resumes)
      assert.are.same({ "resume-processing" }, start_types())
    end)

    it("does not take a refusal of the request itself for the start of an earlier attempt", function()
      -- a pending resume-processing of a full-load replication (which DMS refuses
      -- whatever its state): the refusal is no sign of an earlier start
      local path = dir .. "/refused.json"
      local FL = emulator.ARN_FULL_LOAD
      emu:replication({ arn = FL, type = "full-load", status = "stopped", stop_reason = "FULL_LOAD_ONLY_FINISHED" })
      local repl = assert(workflow.describe(client, FL))
      local st = repl.ReplicationStats
      write(path, cjson.encode({
        version = 1, arn = FL, phase = "resuming", start_sent = true, start_pending = true,
        pending_type = "resume-processing", pending_resume = false, starts = 0, resumes = 0, start_attempts = 1,
        before = { status = "stopped", start_date = st.StartDate, start_type = repl.StartReplicationType },
        pid = 999999,
      }))
      local opts, events = options({ replication_config_arn = FL, state_file = path,
                                     start_type = "resume-processing" })
      local outcome, err = workflow.run(client, opts)
      assert.is_nil(outcome)
      assert.are.equal("workflow", err.kind)
      assert.are.equal("StartRefused", err.code)
      assert.are.equal("InvalidResourceStateFault", err.service_code)
      assert.truthy(err.message:find("cannot resume processing", 1, true))
      assert.are.equal("stopped", err.replication.Status)
      assert.is_nil(find(events, "started"))
      assert.are.equal(1, count(events, "start_refused"))
      -- exactly one StartReplication reached DMS
      local log = starts()
      assert.are.equal(1, #log)
      assert.are.equal("resume-processing", log[1].body.StartReplicationType)
      assert.are.equal("InvalidResourceStateFault", log[1].error)
      core.sleep(0.1)
      assert.are.equal(1, #starts())
      -- the state file holds no pending start and no start
      local saved = cjson.decode(read(path))
      assert.is_false(saved.start_pending)
      assert.are.equal(0, saved.starts)
      assert.are.equal("failed", saved.phase)
      assert.are.equal("StartRefused", saved.last_error)
      -- and the next run sends nothing it was not asked for
      local _, again = workflow.run(client, (options({ replication_config_arn = FL, state_file = path })))
      assert.are.equal("StartTypeRequired", again.code)
      assert.are.equal(1, #starts())
    end)

    it("treats a state file of the wrong types as unreadable: a warning, then what DMS shows", function()
      local path = dir .. "/wrong-types.json"
      for _, text in ipairs({ '{"arn":5}', '{"arn":"' .. ARN .. '","before":5,"start_pending":true}',
                              '{"arn":"' .. ARN .. '","starts":"many"}', '[]' }) do
        emu:reset()
        write(path, text)
        local opts, events = options({ state_file = path })
        local outcome, err = workflow.run(client, opts)
        assert.is_nil(err, text)
        assert.is_true(outcome.ok, text)
        assert.truthy(find(events, "warning").message:find("unreadable", 1, true), text)
        assert.are.equal(1, #starts(), text)
        assert.are.equal("done", cjson.decode(read(path)).phase, text)
      end
    end)

    it("refuses a state file of another replication", function()
      local path = dir .. "/other.json"
      write(path, cjson.encode({ arn = emulator.ARN_CDC, phase = "waiting" }))
      local _, err = workflow.run(client, (options({ state_file = path })))
      assert.are.equal("StateMismatch", err.code)
      assert.are.equal(0, #emu:requests())
    end)
  end)

  describe("lock", function()
    it("keeps a second runbook off a replication another process drives", function()
      local state = dir .. "/locked.json"
      local path = workflow.lock_path(options())
      local pid, pipe = hold_lock(dir, path)
      local held = true
      local function release()
        if held then os.execute("kill " .. pid) pipe:close() end
        held = false
      end
      finally(release)
      local _, err = workflow.run(client, (options({ state_file = state })))
      assert.are.equal("Locked", err.code)
      assert.are.equal(tonumber(pid), err.pid)
      assert.are.equal(path, err.lock_file)
      assert.are.equal(0, #emu:requests())
      release()
      assert(workflow.run(client, (options({ state_file = state }))))
      assert.are.equal(1, #starts())
    end)

    it("is one lock per replication, whatever the state file", function()
      local function lock_path(extra) return workflow.lock_path(options(extra)) end
      local path = lock_path()
      assert.are.equal(dir, path:match("^(.*)/"))
      assert.truthy(path:find("ABCDEFGHIJKLMNOPQRSTUVWX03", 1, true))
      assert.are.equal(path, lock_path({ state_file = dir .. "/a.json" }))
      assert.are.equal(path, lock_path({ state_file = dir .. "/b.json" }))
      assert.are_not.equal(path, lock_path({ replication_config_arn = emulator.ARN_CDC }))
      -- a runbook with another state file is kept off too
      local pid, pipe = hold_lock(dir, path)
      finally(function() os.execute("kill " .. pid) pipe:close() end)
      local _, err = workflow.run(client, (options({ state_file = dir .. "/other-state.json" })))
      assert.are.equal("Locked", err.code)
      assert.are.equal(tonumber(pid), err.pid)
      assert.is_nil(read(dir .. "/other-state.json"))
      assert.are.equal(0, #emu:requests())
    end)

    it("lets an operator's stop through while another runbook holds it, leaving its state file alone", function()
      emu:replication({ arn = ARN, status = "running" })
      local path = workflow.lock_path(options())
      local state = dir .. "/held-state.json"
      write(state, "{\"arn\":\"" .. ARN .. "\",\"phase\":\"waiting\",\"run_started\":true}")
      local pid, pipe = hold_lock(dir, path)
      finally(function() os.execute("kill " .. pid) pipe:close() end)
      local opts, events = options({ state_file = state, wait_for = "stopped" })
      local outcome, err = workflow.stop(client, opts)
      assert.is_nil(err)
      assert.are.equal("stopped", outcome.replication.Status)
      assert.are.equal(1, #emu:requests("StopReplication"))
      local warning = find(events, "warning")
      assert.are.equal("Locked", warning.code)
      assert.truthy(warning.message:find("pid " .. pid, 1, true))
      -- the other runbook's state file is its own
      assert.are.equal("waiting", cjson.decode(read(state)).phase)
      -- a stop on request is never resumed by the runbook that was driving it
      assert.are.equal("normal", workflow.classify(outcome.replication))
    end)

    it("is not taken twice by one process: a second workflow call gets Locked", function()
      local path = workflow.lock_path(options())
      local h1 = assert(workflow.lock_acquire(path))
      local h2, err = workflow.lock_acquire(path)
      assert.is_nil(h2)
      assert.are.equal("Locked", err.code)
      -- two workflow calls in one process (two requests of one nginx worker): one start
      local second
      local opts = options({ on_event = function(ev)
        if ev.type == "start_sent" and not second then
          second = { workflow.start(client, (options())) }
        end
      end })
      workflow.lock_release(h1)
      assert(workflow.start(client, opts))
      assert.is_nil(second[1])
      assert.are.equal("Locked", second[2].code)
      assert.are.equal(1, #starts())
      -- released with the run: the next call goes ahead
      local h3 = assert(workflow.lock_acquire(path))
      workflow.lock_release(h3)
      workflow.lock_release(h3)          -- twice is harmless
    end)

    it("lies in $XDG_RUNTIME_DIR, $TMPDIR or /tmp without lock_dir", function()
      local o = options()
      o.lock_dir = nil
      local path = workflow.lock_path(o)
      local expected = os.getenv("XDG_RUNTIME_DIR")
      if not expected or expected == "" then expected = os.getenv("TMPDIR") end
      if not expected or expected == "" then expected = "/tmp" end
      assert.are.equal(expected, path:match("^(.*)/"))
      assert.truthy(path:match("/dms%-runbook%-ABCDEFGHIJKLMNOPQRSTUVWX03%-%x+%.lock$"))
    end)
  end)

  describe("steps on their own", function()
    it("start, wait, stop until the capacity is released, resume, wait", function()
      local started = assert(workflow.start(client, (options({ assessment = { ResultLocationFolder = "x" } }))))
      assert.are.equal("initializing", started.replication.Status)
      assert.are.equal(1, started.starts)
      local ready = assert(workflow.wait(client, (options({ wait_for = "running" }))))
      assert.are.equal("running", ready.replication.Status)
      local stopped = assert(workflow.stop(client, (options({ wait_for = "deprovisioned" }))))
      assert.are.equal("stopped", stopped.replication.Status)
      assert.are.equal("Stop Reason NORMAL", stopped.replication.StopReason)
      assert.are.equal("deprovisioned", stopped.replication.ProvisionData.ProvisionState)
      local resumed = assert(workflow.resume(client, (options())))
      assert.are.equal("resume-processing", resumed.start_type)
      assert(workflow.wait(client, (options({ wait_for = "full-load-complete" }))))
      assert.are.same({ "start-replication", "resume-processing" }, start_types())
      assert.are.equal(1, #emu:requests("StopReplication"))
      -- start finds it running: nothing sent
      local again = assert(workflow.start(client, (options())))
      assert.are.equal(0, again.starts)
      assert.are.equal(2, #starts())
      local repl = assert(workflow.describe(client, ARN))
      assert.are.equal("running", repl.Status)
    end)

    it("wait reports a recoverable stop without resuming it", function()
      emu:stop_replication({ arn = ARN, reason = "RECOVERABLE_ERROR", at_progress = 10 })
      assert(workflow.start(client, (options())))
      local _, err = workflow.wait(client, (options({ wait_for = "full-load-complete" })))
      assert.are.equal("RecoverableStop", err.code)
      assert.are.equal(1, #starts())
    end)

    it("assess returns the result of the assessment, or AssessmentFailed", function()
      local outcome = assert(workflow.assess(client, (options({ assessment = { ResultLocationFolder = "a" } }))))
      assert.are.equal("passed", outcome.assessment.Status)
      assert.are.equal(1, #starts())
      emu:reset()
      emu:assessment({ arn = ARN, result = "failed" })
      local _, err = workflow.assess(client, (options()))
      assert.are.equal("AssessmentFailed", err.code)
      assert.are.equal(1, #starts())
    end)

    it("resume refuses a replication that never ran and one that failed fatally", function()
      local _, err = workflow.resume(client, (options()))
      assert.are.equal("NotStarted", err.code)
      emu:replication({ arn = ARN, status = "failed" })
      _, err = workflow.resume(client, (options()))
      assert.are.equal("FatalStop", err.code)
      assert.are.equal(0, #starts())
    end)
  end)

  describe("when DMS lags behind, refuses or runs on its own clock", function()
    -- A second emulator, at speed 1, whose emulated time moves when the workflow
    -- pauses: its sleep advances the emulated clock instead of waiting, so each
    -- poll sees the replication a known stretch of emulated time later.
    local EMULATED_PER_SECOND = 2000      -- a pause of poll.interval (0.05 s) is 100 emulated seconds
    local lag, lag_client

    setup(function()
      lag = emulator.start({ speed = 1 })
      -- a request can be in flight for 2 s at most: how long a start whose
      -- answer was lost is waited for, besides max_stale_polls describes
      lag_client = lag:client({ timeout = { total = 2 } })
    end)
    teardown(function()
      if lag_client then lag_client:close() end
      if lag then lag:stop() end
    end)
    before_each(function()
      lag:reset()
    end)

    -- the workflow's clock moves with its pauses, as the emulated one does
    local function lag_options(extra)
      local o, events = options(extra)
      local now = core.now()
      o.clock = function() return now end
      o.sleep = function(seconds)
        now = now + seconds
        lag:clock({ advance = seconds * EMULATED_PER_SECOND })
      end
      return o, events
    end

    -- operation and fault of each request DMS received, oldest first
    local function received()
      local out = {}
      for _, r in ipairs(lag:requests()) do
        out[#out + 1] = { r.operation, r.fault ~= cjson.null and r.fault or nil }
      end
      return out
    end

    local function describes_before_first_start()
      local n = 0
      for _, r in ipairs(lag:requests()) do
        if r.operation == "StartReplication" then return n end
        if r.operation == "DescribeReplications" then n = n + 1 end
      end
      return n
    end

    -- the real client, except that `method` raises (a defect in client code)
    local function raising_on(real, method)
      local c = { clock = real.clock, sleep = real.sleep }
      for _, m in ipairs({ "describe_replications", "start_replication", "stop_replication", "log" }) do
        c[m] = function(_, ...) return real[m](real, ...) end
      end
      c[method] = function() error("defect in " .. method) end
      return c
    end

    it("waits out lagging reads after its own unanswered start, and sends no second start", function()
      -- DMS applies the start but the answer is lost, and the describes that
      -- follow still show the replication as before it, three times
      lag:fault({ operation = "StartReplication", fault = "drop_after" })
      lag:fault({ operation = "DescribeReplications", fault = "stale", count = 3 })
      local opts, events = lag_options()
      local outcome, err = workflow.run(lag_client, opts)
      assert.is_nil(err)
      assert.is_true(outcome.ok)
      assert.are.equal("running", outcome.replication.Status)
      assert.are.equal(1, outcome.starts)
      assert.are.equal("described", find(events, "started").how)
      assert.are.equal(1, count(events, "start_unknown"))
      local log = lag:requests("StartReplication")
      assert.are.equal(1, #log)
      assert.are.equal("drop_after", log[1].fault)       -- applied, answer lost
      local seen = received()
      assert.are.same({ { "DescribeReplications", "stale" }, { "StartReplication", "drop_after" },
                        { "DescribeReplications", "stale" }, { "DescribeReplications", "stale" },
                        { "DescribeReplications" } },
                      { seen[1], seen[2], seen[3], seen[4], seen[5] })
    end)

    it("treats InvalidResourceStateFault after its own unanswered start as started", function()
      -- the reads lag longer than a request can be in flight and max_stale_polls
      -- describes: the workflow sends a second start, which DMS refuses because
      -- the first one took, and counts the first
      lag:fault({ operation = "StartReplication", fault = "drop_after" })
      lag:fault({ operation = "DescribeReplications", fault = "stale", count = 45 })
      local opts, events = lag_options({ poll = { interval = 0.05, timeout = 30, jitter = 0 } })
      local outcome, err = workflow.run(lag_client, opts)
      assert.is_nil(err)
      assert.is_true(outcome.ok)
      assert.are.equal("running", outcome.replication.Status)
      assert.are.equal(1, outcome.starts)
      assert.are.equal("refused after an earlier attempt", find(events, "started").how)
      assert.are.equal(1, count(events, "start_unknown"))

      local log = lag:requests("StartReplication")
      assert.are.equal(2, #log)
      assert.are.equal("drop_after", log[1].fault)       -- applied, answer lost
      assert.are.equal(cjson.null, log[1].status)
      assert.are.equal(cjson.null, log[1].error)
      assert.are.equal(400, log[2].status)                -- refused: the replication was starting
      assert.are.equal("InvalidResourceStateFault", log[2].error)
      for _, r in ipairs(log) do assert.are.equal("start-replication", r.body.StartReplicationType) end
      -- the second start went out only after the first could no longer be in flight
      local describes_between, starts_seen = 0, 0
      for _, r in ipairs(received()) do
        if r[1] == "StartReplication" then starts_seen = starts_seen + 1 end
        if starts_seen == 2 then break end
        if starts_seen == 1 and r[1] == "DescribeReplications" then describes_between = describes_between + 1 end
      end
      assert.truthy(describes_between >= workflow.DEFAULTS.max_stale_polls, describes_between)
    end)

    it("takes DMS's refusal naming a run under way for its earlier start, however long the reads lag", function()
      lag:fault({ operation = "StartReplication", fault = "drop_after" })
      lag:fault({ operation = "DescribeReplications", fault = "stale", count = 150 })
      local opts, events = lag_options({ poll = { interval = 0.05, timeout = 60, jitter = 0 } })
      local outcome, err = workflow.run(lag_client, opts)
      assert.is_nil(err)
      assert.is_true(outcome.ok)
      assert.are.equal("running", outcome.replication.Status)
      assert.are.equal(1, outcome.starts)
      assert.are.equal("refused after an earlier attempt", find(events, "started").how)
      local log = lag:requests("StartReplication")
      assert.are.equal(2, #log)
      assert.are.equal("InvalidResourceStateFault", log[2].error)
    end)

    it("after a restart, waits out lagging reads before it starts again", function()
      -- a runbook killed right after sending a start DMS applies late
      local path = dir .. "/lagging.json"
      local before = assert(workflow.describe(lag_client, ARN))
      write(path, cjson.encode({
        version = 1, arn = ARN, phase = "starting", start_sent = true, start_pending = true,
        pending_type = "start-replication", pending_resume = false, starts = 0, resumes = 0,
        start_attempts = 1, before = { status = before.Status }, pid = 999999, pending_since = core.now(),
      }))
      assert(lag_client:start_replication({ ReplicationConfigArn = ARN, StartReplicationType = "start-replication" }))
      lag:fault({ operation = "DescribeReplications", fault = "stale", count = 3 })
      local opts, events = lag_options({ state_file = path })
      local outcome, err = workflow.run(lag_client, opts)
      assert.is_nil(err)
      assert.are.equal(1, outcome.starts)
      assert.are.equal("described after a restart", find(events, "started").how)
      assert.are.equal(1, #lag:requests("StartReplication"))
    end)

    it("stops once when the answer to StopReplication is lost and reads lag", function()
      lag:replication({ arn = ARN, status = "running" })
      lag:fault({ operation = "StopReplication", fault = "drop_after" })
      lag:fault({ operation = "DescribeReplications", fault = "stale", count = 3 })
      local opts, events = lag_options({ wait_for = "stopped" })
      local outcome, err = workflow.stop(lag_client, opts)
      assert.is_nil(err)
      assert.are.equal("stopped", outcome.replication.Status)
      assert.are.equal(1, count(events, "stop_unknown"))
      assert.are.equal(1, #lag:requests("StopReplication"))
    end)

    it("waits until the capacity is deprovisioned before it resumes", function()
      lag:replication({ arn = ARN, status = "running" })
      local stopped = lag:stop_replication({ arn = ARN, reason = "NORMAL" })
      assert.are.equal("stopped", stopped.Status)
      assert.are.equal("deprovisioning", stopped.ProvisionData.ProvisionState)
      local released_at = stopped.ReplicationDeprovisionTime

      local outcome, err = workflow.run(lag_client, (lag_options()))
      assert.is_nil(err)
      assert.are.equal("running", outcome.replication.Status)
      assert.are.equal("resume-processing", outcome.start_type)
      local kinds = types(outcome.events)
      assert.are.same({ "described", "capacity_wait", "capacity", "start_sent", "started" },
                      { kinds[1], kinds[2], kinds[3], kinds[4], kinds[5] })
      assert.are.equal("done", kinds[#kinds])
      assert.are.equal("deprovisioning", find(outcome.events, "described").provision_state)
      assert.are.equal("deprovisioning", find(outcome.events, "capacity_wait").provision_state)
      assert.are.equal("deprovisioned", find(outcome.events, "capacity").provision_state)
      assert.are.equal("deprovisioned", find(outcome.events, "start_sent").provision_state)

      -- one start, accepted: DMS refuses any start while the capacity is deprovisioning
      local log = lag:requests("StartReplication")
      assert.are.equal(1, #log)
      assert.are.equal(200, log[1].status)
      assert.are.equal("resume-processing", log[1].body.StartReplicationType)
      -- applied (emulated time) once the capacity was released, after polls that saw it being released
      assert.truthy(outcome.replication.ReplicationStats.StartDate >= released_at)
      assert.truthy(describes_before_first_start() >= 3)
    end)

    it("starts a replication its state file calls its own but DMS shows as never started", function()
      lag:replication({ arn = ARN, status = "created" })
      local path = dir .. "/recreated.json"
      write(path, cjson.encode({ version = 1, arn = ARN, phase = "waiting", start_sent = true, start_pending = false,
        run_started = true, starts = 1, resumes = 0, run_start_date = 50 }))
      local outcome, err = workflow.run(lag_client, (lag_options({ state_file = path })))
      assert.is_nil(err)
      assert.are.equal("running", outcome.replication.Status)
      -- it took the views of a created replication for lag max_stale_polls times, then started it: once
      assert.are.equal(workflow.DEFAULTS.max_stale_polls, describes_before_first_start())
      local log = lag:requests("StartReplication")
      assert.are.equal(1, #log)
      assert.are.equal("start-replication", log[1].body.StartReplicationType)
      assert.are.equal(200, log[1].status)
      assert.are.equal("done", cjson.decode(read(path)).phase)
    end)

    it("returns an error instead of raising when the client raises", function()
      local ok, outcome, err = pcall(workflow.run, raising_on(lag_client, "start_replication"), (lag_options()))
      assert.is_true(ok)
      assert.is_nil(outcome)
      assert.are.equal("InternalError", err.code)
      assert.truthy(err.message:find("defect in start_replication", 1, true))
      assert.are.same({ { "DescribeReplications" } }, received())
      -- the lock was released: the next run goes ahead
      assert(workflow.run(lag_client, (lag_options())))
      assert.are.equal(1, #lag:requests("StartReplication"))
    end)

    it("keeps going when on_event raises", function()
      lag:replication({ arn = ARN, status = "running" })
      local outcome = assert(workflow.run(lag_client, (lag_options({ on_event = function() error("x") end }))))
      assert.are.equal("running", outcome.replication.Status)
      assert.are.same({ "described", "done" }, types(outcome.events))
      assert.are.same({ { "DescribeReplications" } }, received())
    end)

    it("validates its options before any request", function()
      for _, bad in ipairs({ { wait_for = "forever" }, { poll = { interval = -1 } }, { assessment = "yes" },
                             { replication_config_arn = false }, { start_type = "restart" } }) do
        local o = lag_options(bad)
        if bad.replication_config_arn == false then o.replication_config_arn = nil end
        local _, err = workflow.run(lag_client, o)
        assert.are.equal("validation", err.kind)
      end
      assert.are.same({}, lag:requests())
    end)
  end)
end)
