-- Events: what a runbook reports as it goes, one flat record per step.
-- The replication's fields every event carries come from one mapping,
-- shared by the workflow and dms-runbook's status command. Every event
-- names its replication: `arn` and `id` (the ReplicationConfigIdentifier).
local type = type

local replication = require "dms.workflow.replication"

local M = {}

-- The fields of an event that describe `repl`, added to `ev` (a new table
-- when nil); returns ev.
function M.from_replication(repl, ev)
  ev = ev or {}
  if type(repl) ~= "table" then return ev end
  local st = replication.stats(repl)
  if ev.arn == nil then ev.arn = repl.ReplicationConfigArn end
  if ev.id == nil then ev.id = repl.ReplicationConfigIdentifier end
  ev.status = repl.Status
  ev.replication_type = repl.ReplicationType
  ev.progress = st.FullLoadProgressPercent
  ev.tables_loaded = st.TablesLoaded
  ev.tables_loading = st.TablesLoading
  ev.tables_queued = st.TablesQueued
  ev.tables_errored = st.TablesErrored
  ev.dms_elapsed = st.ElapsedTimeMillis and st.ElapsedTimeMillis / 1000
  ev.stop_reason = repl.StopReason
  ev.provision_state = replication.provision_state(repl)
  local a = replication.current_assessment(repl)
  if a then ev.assessment = a.Status end
  return ev
end

-- Everything a person asks for when they look at one replication: the event
-- fields and the dates, start type, checkpoint and first failure message.
function M.status(repl, ev)
  ev = M.from_replication(repl, ev)
  local st = replication.stats(repl)
  ev.start_type = repl.StartReplicationType
  ev.start_date, ev.stop_date = st.StartDate, st.StopDate
  ev.recovery_checkpoint = repl.RecoveryCheckpoint
  ev.failure = type(repl.FailureMessages) == "table" and repl.FailureMessages[1] or nil
  return ev
end

return M
