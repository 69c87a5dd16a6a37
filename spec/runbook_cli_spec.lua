-- bin/dms-runbook as a subprocess against the local DMS endpoint: exit codes,
-- JSON events, a runbook killed with SIGKILL and run again, two runbooks on one
-- replication.
local cjson = require "cjson"
local core = require "dms.core"
local emulator = require "support.emulator"

local ARN = emulator.ARN_FULL_LOAD_AND_CDC
local rb = require "support.runbook"

local files = require "support.files"
local tmpdir, read = files.tmpdir, files.read

local lines = rb.lines

describe("bin/dms-runbook", function()
  local emu, slow, dir

  setup(function()
    emu = emulator.start({ speed = 20000 })
    slow = emulator.start({ speed = 3000 })      -- a start takes about a second
    dir = tmpdir()
  end)
  teardown(function()
    if emu then emu:stop() end
    if slow then slow:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)
  before_each(function()
    emu:reset()
    slow:reset()
  end)

  local function command(args, endpoint) return rb.runner(dir, endpoint or emu.url).command(args) end
  -- runs to the end; returns exit code, stdout, stderr
  local function runbook(args, endpoint) return rb.runner(dir, endpoint or emu.url).run(args) end
  -- starts in the background; returns its pid and the file its stdout goes to
  local function background(args, endpoint, name)
    return rb.runner(dir, endpoint or emu.url).background(args, nil, name)
  end

  local events = rb.events

  local wait_until = rb.wait_until

  local function start_types(e)
    local out = {}
    for _, r in ipairs(e:requests("StartReplication")) do out[#out + 1] = r.body.StartReplicationType end
    return out
  end

  it("documents its commands and exit codes", function()
    local code, out = runbook("--help")
    assert.are.equal(0, code)
    for _, word in ipairs({ "run", "start", "resume", "stop", "status", "--arn", "--region", "--profile",
                            "--endpoint", "--state-file", "--json", "Exit codes", "3  the premigration assessment",
                            "4  the replication stopped with a fatal error", "5  timeout", "2  bad usage" }) do
      assert.truthy(out:find(word, 1, true), word)
    end
  end)

  it("exits 2 on bad usage", function()
    assert.are.equal(2, (runbook("frobnicate --arn " .. ARN)))
    assert.are.equal(2, (runbook("run")))
    assert.are.equal(2, (runbook("run --arn " .. ARN .. " --wait-for forever")))
    assert.are.equal(2, (runbook("run --arn " .. ARN .. " --poll-interval soon")))
    local code, _, err = runbook("run --arn " .. ARN .. " --start-type reload-target")
    assert.are.equal(2, code)
    assert.truthy(err:find("--allow-reload-target", 1, true))
    assert.are.equal(0, #emu:requests("StartReplication"))
  end)

  it("exits 2 on an ARN that is not one of a replication config, before any request", function()
    for _, bad in ipairs({ "bogus!", "arn:aws:dms:us-east-1:123456789012:endpoint:ABCDEFGHIJKLMNOPQRSTUVWX03",
                           "arn:aws:s3:::bucket" }) do
      for _, cmd in ipairs({ "run", "status", "stop" }) do
        local code, out, err = runbook(cmd .. " --arn '" .. bad .. "'")
        assert.are.equal(2, code, cmd .. " " .. bad)
        assert.truthy(err:find("not the ARN of a DMS replication config", 1, true), err)
        local evs = events(out)
        assert.are.equal(1, #evs)
        assert.are.equal("Usage", evs[1].code)
      end
    end
    assert.are.same({}, emu:requests())
  end)

  it("runs a replication to running, one JSON event per line when stdout is not a terminal", function()
    local code, out, err = runbook("run --arn " .. ARN .. " --assess-folder assess --poll-interval 0.05")
    assert.are.equal(0, code, err)
    local evs = events(out)
    assert.are.equal("described", evs[1].type)
    assert.are.equal("done", evs[#evs].type)
    assert.are.equal("running", evs[#evs].status)
    for _, ev in ipairs(evs) do
      assert.are.equal(ARN, ev.arn)
      assert.are.equal("number", type(ev.time))
    end
    assert.are.same({ "start-replication" }, start_types(emu))
    assert.is_nil(out:find(emulator.SECRET_KEY, 1, true))
  end)

  it("shows the status", function()
    local code, out = runbook("status --arn " .. ARN .. " --json")
    assert.are.equal(0, code)
    local evs = events(out)
    assert.are.equal(1, #evs)
    assert.are.equal("created", evs[1].status)
    assert.are.equal("full-load-and-cdc", evs[1].replication_type)
  end)

  it("exits 3 when the assessment fails, without a second start", function()
    emu:assessment({ arn = ARN, result = "failed" })
    local code, out = runbook("run --arn " .. ARN .. " --assess-folder assess --poll-interval 0.05")
    assert.are.equal(3, code)
    local evs = events(out)
    assert.are.equal("error", evs[#evs].type)
    assert.are.equal("AssessmentFailed", evs[#evs].code)
    assert.are.equal(1, #emu:requests("StartReplication"))
  end)

  it("exits 4 on a fatal stop and does not resume it", function()
    emu:stop_replication({ arn = ARN, reason = "FATAL_ERROR", at_progress = 40 })
    local code = runbook("run --arn " .. ARN .. " --wait-for full-load-complete --poll-interval 0.05")
    assert.are.equal(4, code)
    assert.are.same({ "start-replication" }, start_types(emu))
  end)

  it("resumes after a recoverable stop", function()
    emu:stop_replication({ arn = ARN, reason = "RECOVERABLE_ERROR", at_progress = 40 })
    local code = runbook("run --arn " .. ARN .. " --wait-for full-load-complete --poll-interval 0.05"
      .. " --resume-backoff 0.05")
    assert.are.equal(0, code)
    assert.are.same({ "start-replication", "resume-processing" }, start_types(emu))
  end)

  it("exits 5 on a timeout", function()
    local code, out = runbook("run --arn " .. ARN .. " --poll-interval 0.05 --timeout 0.05")
    assert.are.equal(5, code)
    assert.are.equal("Timeout", events(out)[#events(out)].code)
  end)

  it("stops, starts and resumes as separate commands", function()
    assert.are.equal(0, (runbook("start --arn " .. ARN .. " --wait-for running --poll-interval 0.05")))
    assert.are.equal(0, (runbook("stop --arn " .. ARN .. " --wait-for deprovisioned --poll-interval 0.05")))
    local _, out = runbook("status --arn " .. ARN .. " --json")
    local ev = events(out)[1]
    assert.are.equal("stopped", ev.status)
    assert.are.equal("deprovisioned", ev.provision_state)
    assert.are.equal(0, (runbook("resume --arn " .. ARN .. " --wait-for running --poll-interval 0.05")))
    assert.are.same({ "start-replication", "resume-processing" }, start_types(emu))
  end)

  it("run again with a shorter request timeout, still waits out the start the killed run left in flight", function()
    -- DMS holds the first start 4 s before it applies it; the runbook that sent
    -- it (a 30 s request timeout) is killed meanwhile, and the next one (1 s)
    -- must not send its own start while the first can still arrive
    local state = dir .. "/inflight.json"
    slow:fault({ operation = "StartReplication", fault = "delay", seconds = 4 })
    local pid = background("run --arn " .. ARN .. " --state-file " .. state .. " --poll-interval 0.05"
      .. " --request-timeout 30", slow.url, "inflight")
    wait_until(function() return #slow:requests("StartReplication") == 1 end)
    os.execute("kill -9 " .. pid)
    assert.is_true(cjson.decode(read(state)).start_pending)
    local code, out, err = runbook("run --arn " .. ARN .. " --state-file " .. state .. " --poll-interval 0.05"
      .. " --request-timeout 1", slow.url)
    assert.are.equal(0, code, err)
    local started
    for _, ev in ipairs(events(out)) do if ev.type == "started" then started = ev end end
    assert.are.equal("described after a restart", started.how)
    local log = slow:requests("StartReplication")
    assert.are.equal(1, #log)
    assert.are.equal(200, log[1].status)
  end)

  it("killed with SIGKILL after the start and run again: one start, no reload, ends running", function()
    local state = dir .. "/killed.json"
    local args = "run --arn " .. ARN .. " --state-file " .. state .. " --poll-interval 0.05"
    local pid = background(args, slow.url, "killed")
    wait_until(function() return #slow:requests("StartReplication") == 1 end)
    assert.are.equal(0, (os.execute("kill -9 " .. pid) and 0))
    local saved = cjson.decode(read(state))
    assert.is_true(saved.start_sent)
    assert.are.equal(ARN, saved.arn)
    local repl = slow:replications().replications[3]
    assert.are_not.equal("running", repl.Status)         -- it was killed mid-run

    local code, out, err = runbook(args, slow.url)
    assert.are.equal(0, code, err)
    local evs = events(out)
    assert.are.equal("described", evs[1].type)
    assert.are_not.equal("new", evs[1].phase)
    assert.are.equal("done", evs[#evs].type)
    assert.are.equal("running", evs[#evs].status)
    assert.are.equal(1, evs[#evs].starts)
    assert.are.same({ "start-replication" }, start_types(slow))
    local finished = cjson.decode(read(state))
    assert.are.equal("done", finished.phase)
    assert.are.equal(1, finished.starts)
  end)

  it("prints one summary for start or resume with --wait-for, with the start's counts", function()
    local code, out = runbook("start --arn " .. ARN .. " --wait-for running --poll-interval 0.05")
    assert.are.equal(0, code)
    local summaries = {}
    for _, ev in ipairs(events(out)) do
      if ev.type == "done" or ev.type == "ready" then summaries[#summaries + 1] = ev end
    end
    assert.are.equal(1, #summaries)
    assert.are.equal(1, summaries[1].starts)
  end)

  it("bounds every request by --timeout against a server that never answers", function()
    local rawserver = require "support.rawserver"
    local srv = rawserver.start({ mode = "hold" })
    finally(srv.stop)
    local t0 = core.monotonic()
    local code = runbook("status --arn " .. ARN .. " --timeout 1", srv.url)
    local took = core.monotonic() - t0
    assert.are_not.equal(0, code)
    assert.is_true(took < 6, took)
    t0 = core.monotonic()
    code = runbook("run --arn " .. ARN .. " --timeout 1 --poll-interval 0.05", srv.url)
    took = core.monotonic() - t0
    assert.are.equal(5, code)
    assert.is_true(took < 6, took)
    -- a fleet too: looking its identifiers up spends the same deadline
    t0 = core.monotonic()
    code = runbook("run --arn " .. ARN .. " --arn " .. emulator.ARN_CDC .. " --timeout 3 --poll-interval 0.05",
      srv.url)
    took = core.monotonic() - t0
    assert.are_not.equal(0, code)
    assert.is_true(took < 5, took)         -- not 3 s for the lookup and 3 s more for the sessions
    -- and the per-request settings
    local before = srv.requests()
    t0 = core.monotonic()
    code = runbook("status --arn " .. ARN .. " --request-timeout 0.3 --max-attempts 2", srv.url)
    took = core.monotonic() - t0
    assert.are_not.equal(0, code)
    assert.is_true(took < 4, took)
    assert.are.equal(2, srv.requests() - before)
  end)

  it("lets an operator's stop through while a run holds the lock; the run then ends without resuming", function()
    local state = dir .. "/operator.json"
    local args = "run --arn " .. ARN .. " --state-file " .. state .. " --poll-interval 0.05"
      .. " --wait-for full-load-complete"
    local _, run_out = background(args, slow.url, "operator-run")
    wait_until(function()
      local r = slow:replications().replications[3]
      return r and r.Status == "running"
    end, 20)
    local code, out, err = runbook("stop --arn " .. ARN .. " --poll-interval 0.05", slow.url)
    assert.are.equal(0, code, err)
    local warned
    for _, ev in ipairs(events(out)) do warned = warned or (ev.type == "warning" and ev.code == "Locked") end
    assert.is_true(warned)                                -- said, not refused
    wait_until(function() return (read(run_out) or ""):find('"type":"error"', 1, true) ~= nil
      or (read(run_out) or ""):find('"type":"done"', 1, true) ~= nil end, 20)
    assert.are.equal(1, #slow:requests("StopReplication"))
    assert.are.same({ "start-replication" }, start_types(slow))    -- not resumed
    local last
    for _, line in ipairs(lines(read(run_out))) do
      if line:sub(1, 1) == "{" then last = cjson.decode(line) end
    end
    assert.are.equal("error", last.type)
    assert.are.equal("Stopped", last.code)
  end)

  it("refuses a second runbook on the same replication with exit code 6", function()
    local state = dir .. "/busy.json"
    local args = "run --arn " .. ARN .. " --state-file " .. state .. " --poll-interval 0.05"
    local pid, first_out = background(args, slow.url, "first")
    wait_until(function() return #slow:requests("StartReplication") == 1 end)
    local code, out, err = runbook(args, slow.url)
    assert.are.equal(6, code)
    assert.truthy(err:find("Locked", 1, true))
    assert.truthy(err:find(pid, 1, true))
    assert.are.equal("Locked", events(out)[1].code)
    -- the first one finishes undisturbed
    wait_until(function() return (read(first_out) or ""):find('"type":"done"', 1, true) ~= nil end)
    assert.are.same({ "start-replication" }, start_types(slow))
  end)

  it("refuses a second runbook with another state file, or none, on the same replication", function()
    local base = "run --arn " .. ARN .. " --poll-interval 0.05"
    local pid, first_out = background(base .. " --state-file " .. dir .. "/rb1.json", slow.url, "rb1")
    wait_until(function() return #slow:requests("StartReplication") == 1 end)
    for _, other in ipairs({ " --state-file " .. dir .. "/rb3.json", "" }) do
      local code, out, err = runbook(base .. other, slow.url)
      assert.are.equal(6, code, err)
      assert.truthy(err:find("Locked", 1, true))
      assert.truthy(err:find(pid, 1, true))
      assert.are.equal("Locked", events(out)[1].code)
    end
    assert.is_nil(read(dir .. "/rb3.json"))
    wait_until(function() return (read(first_out) or ""):find('"type":"done"', 1, true) ~= nil end)
    assert.are.same({ "start-replication" }, start_types(slow))
  end)

  it("draws a live progress line on a terminal (a pseudo-terminal from script(1))", function()
    local out_file = dir .. "/tty.out"
    local cmd = command("--arn " .. ARN .. " --poll-interval 0.05 run --wait-for running", slow.url)
      :gsub("TERM=dumb", "TERM=xterm")
    local ok = os.execute("script -qec " .. "'" .. cmd:gsub("'", "'\\''") .. "' " .. out_file
      .. " >/dev/null 2>&1 </dev/null")
    assert.truthy(ok == true or ok == 0)
    local text = read(out_file) or ""
    assert.truthy(text:find("\r", 1, true), "no carriage return: the line is not redrawn")
    assert.falsy(text:find('{"type":', 1, true), "JSON events on a terminal")
    assert.truthy(text:find("running", 1, true))
    assert.truthy(text:find("%d+%%"), "no full-load percentage")
  end)
end)
