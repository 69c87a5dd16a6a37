-- The phases a runbook saves in its journal, and the transitions between
-- them: the workflow's state machine as one table. Saving a transition this
-- table does not declare is an error (a bug in the workflow, never ignored).
--
--   new       nothing sent in this run yet
--   starting  a StartReplication may be in flight (start_pending in the journal):
--             after a crash it is reconciled by describing, never sent blindly again
--   resuming  the same for an automatic or explicit resume-processing
--   waiting   DMS took a start of ours; the run is watched
--   stopping  a StopReplication was sent
--   done | stopped | failed   the run ended; the next run starts from new
local pairs, ipairs, tostring = pairs, ipairs, tostring

local M = {
  NEW = "new", STARTING = "starting", RESUMING = "resuming", WAITING = "waiting",
  STOPPING = "stopping", DONE = "done", STOPPED = "stopped", FAILED = "failed",
}

-- phase -> the phases it may move to (staying is always allowed)
M.TRANSITIONS = {
  new = { "starting", "resuming", "waiting", "stopping", "done", "stopped", "failed" },
  -- a start that did not take is sent again (of the same or another type), or
  -- DMS took it (waiting), or the run ended without it
  starting = { "resuming", "waiting", "stopping", "done", "stopped", "failed" },
  resuming = { "starting", "waiting", "stopping", "done", "stopped", "failed" },
  -- a recoverable stop is resumed; a run no longer ours is started afresh
  waiting = { "starting", "resuming", "stopping", "done", "stopped", "failed" },
  -- a stop a crash interrupted may be followed by a start of the next run
  stopping = { "starting", "resuming", "waiting", "stopped", "done", "failed" },
  done = { "new" },
  stopped = { "new" },
  failed = { "new" },
}

-- the run ended: the next call of a workflow function begins a new one
M.TERMINAL = { done = true, stopped = true, failed = true, new = true }

local ALLOWED = {}
for from, tos in pairs(M.TRANSITIONS) do
  ALLOWED[from] = { [from] = true }
  for _, to in ipairs(tos) do ALLOWED[from][to] = true end
end

function M.known(phase)
  return ALLOWED[phase] ~= nil
end

-- true, or false and why
function M.allowed(from, to)
  if not ALLOWED[from] then return false, "unknown phase '" .. tostring(from) .. "'" end
  if not ALLOWED[to] then return false, "unknown phase '" .. tostring(to) .. "'" end
  if not ALLOWED[from][to] then return false, "no transition from " .. from .. " to " .. to end
  return true
end

return M
