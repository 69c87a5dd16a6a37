-- Reading a Replication (the table DescribeReplications answers): the status
-- vocabulary of DMS Serverless and what a replication shows about its run.
-- Pure functions of plain tables: no I/O, no clock.
local type, ipairs, pairs = type, ipairs, pairs

local M = {}

-- the phases a start goes through before running
M.STARTING_STATUSES = {
  "initializing", "preparing_metadata_resources", "testing_connection", "fetching_metadata",
  "calculating_capacity", "provisioning_capacity", "replication_starting",
}
local STARTING = {}
for _, s in ipairs(M.STARTING_STATUSES) do STARTING[s] = true end
M.STARTING = STARTING

-- a run is in progress (or ending) in these statuses
local ACTIVE = { running = true, stopping = true }
for s in pairs(STARTING) do ACTIVE[s] = true end
M.ACTIVE = ACTIVE

-- DMS accepts a start only in these statuses
local STARTABLE = { created = true, stopped = true, failed = true }
M.STARTABLE = STARTABLE

-- StopReason words (after "Stop Reason ") that a resume-processing recovers from;
-- each matches as a plain substring ("LOW_MEMORY" matches STOPPED_DUE_TO_LOW_MEMORY)
M.RECOVERABLE_REASONS = { "RECOVERABLE_ERROR", "LOW_MEMORY", "LOW_DISK", "RECONFIGURATION_RESTART", "RECYCLE" }
-- ends of a run that mean the full load is complete
M.FINISHED_REASONS = { "FULL_LOAD_ONLY_FINISHED", "STOPPED_AFTER_FULL_LOAD", "STOPPED_AFTER_CACHED_EVENTS" }

-- statuses of a premigration assessment run that are final
M.ASSESSMENT_DONE = { passed = true, warning = true, failed = true, error = true, cancelled = true,
                      ["invalid state"] = true }

-- ReplicationStats, or an empty table
local function stats(repl)
  return type(repl) == "table" and type(repl.ReplicationStats) == "table" and repl.ReplicationStats or {}
end
M.stats = stats

local function bare_reason(repl)
  local r = type(repl) == "table" and repl.StopReason
  if type(r) ~= "string" then return "" end
  return (r:gsub("^Stop Reason ", ""))
end

function M.provision_state(repl)
  local p = type(repl) == "table" and repl.ProvisionData
  return type(p) == "table" and p.ProvisionState or nil
end

-- capacity of the previous run released: a start or resume may be sent
function M.capacity_released(repl)
  local s = M.provision_state(repl)
  return s == nil or s == "" or s == "deprovisioned"
end

-- the newest premigration assessment of the current run, if any
function M.current_assessment(repl)
  local list = type(repl) == "table" and repl.PremigrationAssessmentStatuses
  if type(list) ~= "table" then return nil end
  local newest
  for _, a in ipairs(list) do
    if type(a) == "table" and (not newest or (a.PremigrationAssessmentRunCreationDate or 0)
        > (newest.PremigrationAssessmentRunCreationDate or 0)) then
      newest = a
    end
  end
  if not newest then return nil end
  local start = stats(repl).StartDate
  local created = newest.PremigrationAssessmentRunCreationDate
  if start and created and created < start - 1 then return nil end   -- an earlier run's
  return newest
end

local function assessment_failed(repl)
  local a = M.current_assessment(repl)
  if a and (a.Status == "failed" or a.Status == "error") and a.FailOnAssessmentFailure ~= false then
    return true
  end
  if type(repl.FailureMessages) == "table" then
    for _, m in ipairs(repl.FailureMessages) do
      if type(m) == "string" and m:lower():find("assessment", 1, true) then return true end
    end
  end
  return false
end

local function matches_any(reason, words)
  for _, w in ipairs(words) do
    w = w:gsub("^Stop Reason ", "")
    if w ~= "" and reason:find(w, 1, true) then return true end
  end
  return false
end

-- Why a run ended: "assessment_failed", "fatal", "recoverable", "finished" (the full
-- load is complete) or "normal" (stopped on request, a stop position, ...).
-- A FATAL_ERROR is fatal whatever resume_on says.
function M.classify(repl, resume_on)
  local reason = bare_reason(repl)
  if reason:find("FATAL", 1, true) then
    return assessment_failed(repl) and "assessment_failed" or "fatal"
  end
  if repl.Status == "failed" and assessment_failed(repl) then return "assessment_failed" end
  if reason ~= "" and matches_any(reason, resume_on or M.RECOVERABLE_REASONS) then return "recoverable" end
  if repl.Status == "failed" then return "fatal" end
  if matches_any(reason, M.FINISHED_REASONS) then return "finished" end
  return "normal"
end

local function full_load_done(repl)
  if repl.ReplicationType == "cdc" then return true end
  local st = stats(repl)
  if (st.FullLoadProgressPercent or 0) >= 100 then return true end
  local finish, fresh = st.FullLoadFinishDate, st.FreshStartDate
  return finish ~= nil and (fresh == nil or finish >= fresh)
end

-- Has `repl` reached `target`? `ours` says the current run is one the workflow
-- drives (a stopped replication that was never ours has not "reached" anything);
-- with `resuming`, a recoverable stop is not an end.
function M.reached(target, repl, ours, resuming, resume_on)
  local status = repl.Status
  if target == "running" or target == "full-load-complete" then
    if status == "running" and (target == "running" or full_load_done(repl)) then return true end
    return ours and status == "stopped" and M.classify(repl, resume_on) == "finished" or false
  end
  if target == "stopped" then
    if not ours or status ~= "stopped" then return false end
    return not (resuming and M.classify(repl, resume_on) == "recoverable")
  end
  return false
end

-- What a start request is compared with afterwards: the replication as it
-- was when the start was sent.
function M.before(repl)
  return { status = repl.Status, start_date = stats(repl).StartDate, start_type = repl.StartReplicationType }
end

-- Does `repl` show that a start sent when the replication looked like
-- `before` (M.before) took effect? (status moved on, a newer StartDate, a
-- start type where there was none)
function M.started_since(before, repl)
  if not STARTABLE[repl.Status] then return true end
  local sd = stats(repl).StartDate
  if sd and (before.start_date == nil or sd > before.start_date + 0.0005) then return true end
  if before.start_type == nil and repl.StartReplicationType ~= nil and before.status == "created" then
    return true
  end
  return false
end

-- The replication status an InvalidResourceStateFault names ("Replication is
-- in RUNNING state and cannot start" -> "running"), or nil; the state of the
-- capacity ("capacity is in DEPROVISIONING state") is not the replication's.
function M.refused_in(message)
  if type(message) ~= "string" then return nil end
  local subject, state = message:match("(%S*) is in (%u[%u_]*) state")
  if not state or subject:lower() == "capacity" then return nil end
  return state:lower()
end

-- A view that predates a run started at `run_start_date` (eventually
-- consistent reads): startable, and never started or stopped before that start.
function M.predates(repl, run_start_date)
  if not STARTABLE[repl.Status] then return false end
  if repl.Status == "created" then return true end
  local stop = stats(repl).StopDate
  return stop ~= nil and run_start_date ~= nil and stop < run_start_date
end

return M
