-- bin/dms-runbook on fleets, as a subprocess against the local DMS endpoint
-- holding emulator/seed.fleet.example.json (a wave of 20 where wave-07 stops
-- recoverably, wave-13 fatally and a table of wave-03 errs, and 200 CDC
-- replications): selectors, JSON events naming their replication, the live
-- table, exit codes, and a fleet run killed with SIGKILL and run again.
local cjson = require "cjson"
local core = require "dms.core"
local emulator = require "support.emulator"
local files = require "support.files"

local rb = require "support.runbook"
local LUA, CPATH = rb.LUA, rb.CPATH
local SEED = "emulator/seed.fleet.example.json"


local events = rb.events

describe("bin/dms-runbook on a fleet", function()
  local emu, slow, dir

  setup(function()
    emu = emulator.start({ seed = SEED, speed = 20000 })
    slow = emulator.start({ seed = SEED, speed = 3000 })       -- a start takes about a second
    dir = files.tmpdir()
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
  local function runbook(args, endpoint) return rb.runner(dir, endpoint or emu.url).run(args) end

  local function wait_until(pred, seconds) return rb.wait_until(pred, seconds or 20) end

  -- StartReplication requests by identifier (the emulator's configs give the ARN -> identifier map)
  local function starts_by_id(e)
    local ids = {}
    for _, r in ipairs(e:replications().replications) do ids[r.ReplicationConfigArn] = r.ReplicationConfigIdentifier end
    local out = {}
    for _, r in ipairs(e:requests("StartReplication")) do
      local id = ids[r.body.ReplicationConfigArn]
      local t = out[id] or {}
      t[#t + 1] = r.body.StartReplicationType
      out[id] = t
    end
    return out
  end

  local function wave(from, to)
    local out = {}
    for i = from, to do out[#out + 1] = string.format("wave-%02d", i) end
    return out
  end

  it("documents the fleet's selectors and options", function()
    local code, out = runbook("--help")
    assert.are.equal(0, code)
    for _, word in ipairs({ "--match", "--arns-file", "--concurrency", "--state-dir", "--print-table",
                            "ReplicationConfigIdentifier", "most severe" }) do
      assert.truthy(out:find(word, 1, true), word)
    end
  end)

  it("refuses bad selectors with exit code 2 before any request", function()
    for _, args in ipairs({ "run --arn 'x--y'", "run --arn wave-01 --arn 'bad!'", "status --arn 'wave-'",
                            "run --arn wave-01 --arn wave-02 --state-file " .. dir .. "/s.json",
                            "run --arns-file " .. dir .. "/none.txt" }) do
      local code, _, err = runbook(args)
      assert.are.equal(2, code, args)
      assert.truthy(err ~= "", args)
    end
    assert.are.same({}, emu:requests())
    -- a glob that selects nothing is bad usage too (after one paged look at the configs)
    local code, _, err = runbook("run --match 'nothing-*'")
    assert.are.equal(2, code)
    assert.truthy(err:find("selects no replication config", 1, true), err)
    assert.are.equal(0, #emu:requests("StartReplication"))
    -- an identifier that names nothing is that replication's ResourceNotFoundFault
    code, _, err = runbook("status --arn bogus")
    assert.are.equal(1, code)
    assert.truthy(err:find("ResourceNotFoundFault", 1, true), err)
  end)

  it("runs the wave: one JSON event per line naming its replication, the most severe exit code", function()
    local code, out = runbook("run --match 'wave-*' --concurrency 6 --poll-interval 0.05 --resume-backoff 0.05"
      .. " --wait-for full-load-complete --json")
    assert.are.equal(4, code)                     -- wave-13's fatal stop
    local evs = events(out)
    local done, errors = {}, {}
    for _, ev in ipairs(evs) do
      assert.are.equal("string", type(ev.arn), ev.type)
      assert.truthy(ev.id and ev.id:match("^wave%-%d%d$"), ev.type)
      if ev.type == "done" then done[#done + 1] = ev.id end
      if ev.type == "error" then errors[#errors + 1] = ev end
    end
    assert.are.equal(19, #done)
    assert.are.equal(1, #errors)
    assert.are.equal("wave-13", errors[1].id)
    assert.are.equal("FatalStop", errors[1].code)
    local starts = starts_by_id(emu)
    for _, id in ipairs(wave(1, 20)) do
      if id == "wave-07" then
        assert.are.same({ "start-replication", "resume-processing" }, starts[id])
      else
        assert.are.same({ "start-replication" }, starts[id], id)
      end
    end
    -- the first round looks at the 20, the others at those in flight (6 at most)
    local describes = emu:requests("DescribeReplications")
    assert.are.equal(20, #describes[1].body.Filters[1].Values)
    for i = 2, #describes do assert.truthy(#describes[i].body.Filters[1].Values <= 6) end
  end)

  it("takes --arn repeated with identifiers and ARNs, and --arns-file, as one selection", function()
    local arns = {}
    for _, r in ipairs(emu:replications().replications) do
      arns[r.ReplicationConfigIdentifier] = r.ReplicationConfigArn
    end
    files.write(dir .. "/list.txt", "# the second half\n\n" .. table.concat(wave(11, 12), "\n") .. "\n  "
      .. arns["wave-14"] .. "  \n")
    local code, out, err = runbook("run --arn wave-01 --arn " .. arns["wave-01"] .. " --arn " .. arns["wave-02"]
      .. " --arns-file " .. dir .. "/list.txt --poll-interval 0.05 --json")
    assert.are.equal(0, code, err)
    local done = {}
    for _, ev in ipairs(events(out)) do
      if ev.type == "done" then done[#done + 1] = ev.id end
    end
    table.sort(done)
    assert.are.same({ "wave-01", "wave-02", "wave-11", "wave-12", "wave-14" }, done)
    local starts = starts_by_id(emu)
    for _, id in ipairs(done) do assert.are.same({ "start-replication" }, starts[id]) end
    -- one replication given by identifier goes the way of one --arn
    code, out = runbook("status --arn cdc-007 --json")
    assert.are.equal(0, code)
    local ev = events(out)[1]
    assert.are.equal("cdc-007", ev.id)
    assert.are.equal(arns["cdc-007"], ev.arn)
  end)

  it("reports a replication another runbook drives as Locked (exit 6), the others reach the target", function()
    local arns = {}
    for _, r in ipairs(emu:replications().replications) do
      arns[r.ReplicationConfigIdentifier] = r.ReplicationConfigArn
    end
    local path = require("dms.workflow").lock_path({ replication_config_arn = arns["wave-03"], lock_dir = dir })
    files.write(dir .. "/hold.lua", "local core = require 'dms.core'\nlocal l = assert(core.lock(arg[1]))\n"
      .. "io.write('locked\\n') io.stdout:flush()\ncore.sleep(30)\nl:release()\n")
    local p = assert(io.popen("LUA_CPATH='" .. CPATH .. "' exec sh -c 'echo $$; exec " .. LUA .. " " .. dir
      .. "/hold.lua " .. path .. "'"))
    local pid = p:read("*l")
    assert.are.equal("locked", p:read("*l"))
    finally(function()
      os.execute("kill " .. pid)
      p:close()
    end)
    local code, out, err = runbook("run --match 'wave-0[1-5]' --poll-interval 0.05 --json")
    assert.are.equal(6, code, err)
    local locked, done = nil, 0
    for _, ev in ipairs(events(out)) do
      if ev.type == "error" then locked = ev end
      if ev.type == "done" then done = done + 1 end
    end
    assert.are.equal(4, done)
    assert.are.equal("Locked", locked.code)
    assert.are.equal("wave-03", locked.id)
    assert.is_nil(starts_by_id(emu)["wave-03"])
    -- a fatal stop is more severe than a lock: exit 4
    code = runbook("run --match 'wave-1[1-3]' --arn wave-03 --poll-interval 0.05 --json")
    assert.are.equal(4, code)
  end)

  it("shows status and stops a fleet with the same selectors", function()
    assert.are.equal(0, (runbook("run --match 'cdc-00?' --poll-interval 0.05 --json")))
    local code, out = runbook("status --match 'cdc-00?' --json")
    assert.are.equal(0, code)
    local evs = events(out)
    assert.are.equal(9, #evs)
    for i, ev in ipairs(evs) do
      assert.are.equal("described", ev.type)
      assert.are.equal(string.format("cdc-%03d", i), ev.id)
      assert.are.equal("running", ev.status)
    end
    code = runbook("stop --match 'cdc-00[1-4]' --poll-interval 0.05 --json")
    assert.are.equal(0, code)
    assert.are.equal(4, #emu:requests("StopReplication"))
    code, out = runbook("status --match 'cdc-00?' --print-table")
    assert.are.equal(0, code)
    assert.truthy(out:find("REPLICATION", 1, true))
    local stopped = 0
    for line in out:gmatch("[^\n]+") do
      if line:match("^cdc%-00[1-4] +stopped") then stopped = stopped + 1 end
    end
    assert.are.equal(4, stopped)
    assert.truthy(out:find("9 replications", 1, true), out)
    assert.truthy(out:find("0 failed", 1, true), out)
    -- one stopped on a fatal error counts as failed, not done
    emu:stop_replication({ identifier = "cdc-009", reason = "FATAL_ERROR" })
    code, out = runbook("status --match 'cdc-00?' --print-table")
    assert.are.equal(0, code)
    assert.truthy(out:find("1 failed", 1, true), out)
  end)

  it("killed with SIGKILL mid-wave and run again: no second start, every one reaches running", function()
    local state_dir = dir .. "/wave-state"
    local args = "run --match 'wave-*' --concurrency 5 --poll-interval 0.05 --request-timeout 1 --wait-for running"
      .. " --state-dir " .. state_dir .. " --json"
    local out_file = dir .. "/killed.out"
    local p = assert(io.popen(command(args, slow.url) .. " >" .. out_file .. " 2>&1 & echo $!"))
    local pid = p:read("*l")
    p:close()
    wait_until(function() return #slow:requests("StartReplication") >= 7 end)
    os.execute("kill -9 " .. pid)
    core.sleep(0.1)
    local before = #slow:requests("StartReplication")
    assert.truthy(before < 20)
    -- the state files the killed run left: those of runs under way go on from them
    local states, under_way = 0, 0
    for name in io.popen("ls " .. state_dir):lines() do
      -- (a file the kill caught before its rename is no state file: its start was never sent)
      if name:match("%.json$") then
        states = states + 1
        local saved = cjson.decode((assert(files.read(state_dir .. "/" .. name))))
        local terminal = { new = true, done = true, stopped = true, failed = true }
        if not terminal[saved.phase] then under_way = under_way + 1 end
      end
    end
    assert.truthy(states >= 6)
    assert.truthy(under_way >= 1)

    local code, out, err = runbook(args, slow.url)
    assert.are.equal(4, code, err)                 -- wave-13 fails as it reaches running
    local evs = events(out)
    local continued, done = 0, 0
    for _, ev in ipairs(evs) do
      if ev.type == "described" and ev.phase and ev.phase ~= "new" then continued = continued + 1 end
      if ev.type == "done" then done = done + 1 end
    end
    assert.are.equal(under_way, continued)        -- they went on from their state
    local starts = starts_by_id(slow)
    local wave13 = 0
    for _, id in ipairs(wave(1, 20)) do
      if id == "wave-13" then
        wave13 = #(starts[id] or {})
      else
        assert.are.same({ "start-replication" }, starts[id], id)
      end
    end
    -- wave-13 fails at running (fatally, after reaching it): started once, by one of the two runs
    assert.are.equal(1, wave13)
    assert.truthy(done >= 19 - before)
    for _, ev in ipairs(evs) do
      if ev.type == "error" then assert.are.equal("wave-13", ev.id) end
    end
  end)

  it("draws a live table on a terminal (a pseudo-terminal from script(1))", function()
    local out_file = dir .. "/tty.out"
    local cmd = command("run --match 'wave-0*' --concurrency 4 --poll-interval 0.05", slow.url)
      :gsub("TERM=dumb", "TERM=xterm")
    local ok = os.execute("script -qec " .. "'" .. cmd:gsub("'", "'\\''") .. "' " .. out_file
      .. " >/dev/null 2>&1 </dev/null")
    assert.truthy(ok == true or ok == 0)
    local text = files.read(out_file) or ""
    assert.falsy(text:find('{"type":', 1, true), "JSON events on a terminal")
    assert.truthy(text:find("\27[", 1, true), "no redraw")
    assert.truthy(text:find("REPLICATION", 1, true))
    assert.truthy(text:find("queued", 1, true))
    assert.truthy(text:find("9 replications: 9 done, 0 in flight, 0 queued, 0 failed", 1, true))
    for _, id in ipairs(wave(1, 9)) do assert.truthy(text:find(id, 1, true), id) end
  end)
end)
