-- luacheck: max line length 140
-- The workflow's parts on their own: reading a Replication (plain tables, no
-- I/O), the phases table, and the journal's view of a state file.
local R = require "dms.workflow.replication"
local phases = require "dms.workflow.phases"
local journal = require "dms.workflow.journal"
local files = require "support.files"

local function repl(status, extra)
  local r = { Status = status, ReplicationStats = {} }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

describe("workflow.replication", function()
  it("classifies how a run ended", function()
    assert.are.equal("fatal", R.classify(repl("stopped", { StopReason = "Stop Reason FATAL_ERROR" })))
    assert.are.equal("recoverable", R.classify(repl("stopped", { StopReason = "Stop Reason RECOVERABLE_ERROR" })))
    assert.are.equal("recoverable", R.classify(repl("stopped", { StopReason = "STOPPED_DUE_TO_LOW_MEMORY" })))
    assert.are.equal("finished", R.classify(repl("stopped", { StopReason = "Stop Reason FULL_LOAD_ONLY_FINISHED" })))
    assert.are.equal("normal", R.classify(repl("stopped", { StopReason = "Stop Reason NORMAL" })))
    assert.are.equal("fatal", R.classify(repl("failed")))
    -- a FATAL_ERROR is fatal whatever resume_on says
    assert.are.equal("fatal", R.classify(repl("stopped", { StopReason = "Stop Reason FATAL_ERROR" }), { "FATAL_ERROR" }))
    -- resume_on narrows the recoverable reasons
    assert.are.equal("normal", R.classify(repl("stopped", { StopReason = "Stop Reason RECYCLE" }), { "LOW_DISK" }))
    -- an assessment failure
    local a = repl("failed", { PremigrationAssessmentStatuses = { { Status = "failed",
      PremigrationAssessmentRunCreationDate = 100 } }, ReplicationStats = { StartDate = 100 } })
    assert.are.equal("assessment_failed", R.classify(a))
  end)

  it("says when a target is reached", function()
    assert.is_true(R.reached("running", repl("running"), false))
    assert.is_false(R.reached("full-load-complete", repl("running", { ReplicationStats = { FullLoadProgressPercent = 50 } })))
    assert.is_true(R.reached("full-load-complete", repl("running", { ReplicationStats = { FullLoadProgressPercent = 100 } })))
    assert.is_true(R.reached("full-load-complete", repl("running", { ReplicationType = "cdc" })))
    -- a stopped replication that was never ours has reached nothing
    assert.is_false(R.reached("stopped", repl("stopped"), false))
    assert.is_true(R.reached("stopped", repl("stopped"), true))
    -- while resuming, a recoverable stop is not the end
    local rec = repl("stopped", { StopReason = "Stop Reason RECOVERABLE_ERROR" })
    assert.is_false(R.reached("stopped", rec, true, true))
    assert.is_true(R.reached("stopped", rec, true, false))
    local finished = repl("stopped", { StopReason = "Stop Reason FULL_LOAD_ONLY_FINISHED" })
    assert.is_true(R.reached("full-load-complete", finished, true))
    assert.is_false(R.reached("full-load-complete", finished, false))
  end)

  it("tells a start that took effect from a view that predates it", function()
    local before = R.before(repl("stopped", { ReplicationStats = { StartDate = 100 }, StartReplicationType = "start-replication" }))
    assert.is_false(R.started_since(before, repl("stopped", { ReplicationStats = { StartDate = 100 } })))
    assert.is_true(R.started_since(before, repl("initializing")))
    assert.is_true(R.started_since(before, repl("stopped", { ReplicationStats = { StartDate = 200 } })))
    local never = R.before(repl("created"))
    assert.is_true(R.started_since(never, repl("created", { StartReplicationType = "start-replication" })))
    assert.is_false(R.started_since(never, repl("created")))
    assert.is_true(R.predates(repl("created"), 100))
    assert.is_true(R.predates(repl("stopped", { ReplicationStats = { StopDate = 50 } }), 100))
    assert.is_false(R.predates(repl("stopped", { ReplicationStats = { StopDate = 150 } }), 100))
    assert.is_false(R.predates(repl("running"), 100))
  end)

  it("reads the state an InvalidResourceStateFault names", function()
    assert.are.equal("running", R.refused_in("Replication is in RUNNING state and cannot start"))
    assert.are.equal("preparing_metadata_resources",
      R.refused_in("Replication is in PREPARING_METADATA_RESOURCES state and cannot start"))
    assert.are.equal("modifying", R.refused_in("arn:... is in MODIFYING state and cannot start"))
    assert.is_nil(R.refused_in("Replication capacity is in DEPROVISIONING state and cannot start"))
    assert.is_nil(R.refused_in("Replication of type full-load cannot resume processing"))
    assert.is_nil(R.refused_in(nil))
  end)

  it("reads the capacity and the current assessment", function()
    assert.is_true(R.capacity_released(repl("stopped")))
    assert.is_true(R.capacity_released(repl("stopped", { ProvisionData = { ProvisionState = "deprovisioned" } })))
    assert.is_false(R.capacity_released(repl("stopped", { ProvisionData = { ProvisionState = "deprovisioning" } })))
    local r = repl("running", { ReplicationStats = { StartDate = 1000 }, PremigrationAssessmentStatuses = {
      { Status = "passed", PremigrationAssessmentRunCreationDate = 10 },      -- an earlier run's
    } })
    assert.is_nil(R.current_assessment(r))
    r.PremigrationAssessmentStatuses[2] = { Status = "running", PremigrationAssessmentRunCreationDate = 1000 }
    assert.are.equal("running", R.current_assessment(r).Status)
    -- not tables at all
    assert.is_nil(R.current_assessment("x"))
    assert.are.same({}, R.stats(nil))
  end)
end)

describe("workflow.phases", function()
  it("declares every transition the workflow saves, and only those", function()
    assert.is_true(phases.allowed("new", "starting"))
    assert.is_true(phases.allowed("starting", "waiting"))
    assert.is_true(phases.allowed("waiting", "resuming"))
    assert.is_true(phases.allowed("stopping", "stopped"))
    assert.is_true(phases.allowed("done", "done"))
    local ok, why = phases.allowed("done", "waiting")
    assert.is_false(ok)
    assert.truthy(why:find("done to waiting", 1, true))
    assert.is_false((phases.allowed("failed", "starting")))
    assert.is_false((phases.allowed("new", "sleeping")))
    assert.is_false((phases.allowed("nonsense", "new")))
    for phase in pairs(phases.TRANSITIONS) do
      assert.is_true(phases.known(phase))
      assert.is_true(phases.allowed(phase, phase))
    end
  end)
end)

describe("workflow.journal", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  local ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:J"

  it("saves and loads a record through an atomic write", function()
    local j = assert(journal.open({ arn = ARN, state_file = dir .. "/s.json", lock = false }))
    assert.are.same({ nil, "absent" }, { j:load() })
    assert(j:save({ version = 1, arn = ARN, phase = "waiting", starts = 1, resumes = 0 }))
    local r = assert(j:load())
    assert.are.equal("waiting", r.phase)
    j:close()
  end)

  it("calls a record of the wrong types unreadable", function()
    local path = dir .. "/s.json"
    local j = assert(journal.open({ arn = ARN, state_file = path, lock = false }))
    for _, text in ipairs({ '{"arn":5}', '{"arn":"' .. ARN .. '","before":5}', '{"arn":"' .. ARN .. '","starts":"x"}',
                            '{"arn":"' .. ARN .. '","before":{"start_date":"soon"}}', '[1,2]', 'null', '{"phase":"new"}',
                            '{"arn":"' .. ARN .. '","phase":"dancing"}', 'not json' }) do
      files.write(path, text)
      local r, why = j:load()
      assert.is_nil(r, text)
      assert.truthy(why:find("unreadable", 1, true), text)
    end
    j:close()
  end)
end)
