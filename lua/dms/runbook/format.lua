-- Terminal formatting for dms-runbook (and any runbook printing events for
-- a person): one line per event, a live progress line, durations. Every
-- string that came from DMS or the network goes through M.clean, so a
-- replication's name or failure message can never drive the terminal.
local type, tostring = type, tostring
local math_floor, string_format, table_concat = math.floor, string.format, table.concat

local M = {}

-- `s` with every control character shown instead of sent to the terminal
-- (C0 controls, DEL, and the C1 controls as UTF-8 encodes them): "\x1B" for ESC.
function M.clean(s)
  s = tostring(s)
  s = s:gsub("[%z\1-\31\127]", function(c) return string_format("\\x%02X", c:byte()) end)
  s = s:gsub("\194([\128-\159])", function(c) return string_format("\\u%04X", c:byte()) end)
  return s
end
local clean = M.clean

local function duration(seconds)
  if type(seconds) ~= "number" then return "?" end
  if seconds < 60 then return string_format("%.1fs", seconds) end
  local m = math_floor(seconds / 60)
  if m < 60 then return string_format("%dm%02ds", m, math_floor(seconds - m * 60)) end
  local h = math_floor(m / 60)
  return string_format("%dh%02dm", h, m - h * 60)
end
M.duration = duration

local function num(v) return v == nil and "-" or tostring(math_floor(v)) end

-- status, progress, tables, assessment, capacity (no time)
function M.progress_text(ev)
  local parts = { string_format("%-28s", tostring(ev.status)) }
  if ev.replication_type ~= "cdc" and ev.progress ~= nil then
    parts[#parts + 1] = string_format("load %3s%%", num(ev.progress))
    parts[#parts + 1] = string_format("tables %s loaded %s loading %s queued %s errored",
      num(ev.tables_loaded), num(ev.tables_loading), num(ev.tables_queued), num(ev.tables_errored))
  end
  if ev.assessment then parts[#parts + 1] = "assessment " .. ev.assessment end
  if ev.provision_state then parts[#parts + 1] = "capacity " .. ev.provision_state end
  return table_concat(parts, "  ")
end

-- one line of status: elapsed (of this call), progress_text, and the run time
-- DMS reports (ElapsedTimeMillis: since the current start)
function M.progress_line(ev)
  local line = string_format("[%8s]  %s", duration(ev.elapsed), M.progress_text(ev))
  if ev.dms_elapsed then line = line .. "  (run time " .. duration(ev.dms_elapsed) .. " per DMS)" end
  return clean(line)
end

local FORMATS = {
  described = function(ev)
    return string_format("%s (%s)%s%s; %s", tostring(ev.status), tostring(ev.replication_type),
      ev.stop_reason and (", " .. ev.stop_reason) or "",
      ev.phase and ev.phase ~= "new" and (", continuing from state " .. ev.phase) or "", tostring(ev.arn))
  end,
  queued = function(ev)
    return string_format("waiting its turn: %s of %s replications starting or running (place %s in the queue)",
      tostring(ev.in_flight), tostring(ev.concurrency), tostring(ev.position))
  end,
  start_sent = function(ev)
    return string_format("StartReplication %s%s (attempt %s)", ev.start_type,
      ev.assessment_settings and " with a premigration assessment" or "", tostring(ev.attempt))
  end,
  resume_sent = function(ev)
    return string_format("StartReplication resume-processing (automatic resume %s)", tostring(ev.attempt))
  end,
  started = function(ev)
    return string_format("%s accepted (%s): %s", ev.start_type, ev.how or "response", tostring(ev.status))
  end,
  start_unknown = function(ev)
    return string_format("StartReplication outcome unknown (%s): describing instead of sending it again", ev.code)
  end,
  start_refused = function(ev) return string_format("start refused: %s %s", ev.code, tostring(ev.message)) end,
  assessment = function(ev)
    local s = string_format("assessment %s (%s/%s)", tostring(ev.assessment), num(ev.assessment_done),
      num(ev.assessment_count))
    if ev.message then s = s .. ": " .. ev.message end
    return s
  end,
  stopped = function(ev)
    return string_format("%s: %s at %s%% load%s", tostring(ev.status), tostring(ev.stop_reason), num(ev.progress),
      ev.failure and (" (" .. ev.failure .. ")") or "")
  end,
  resume_wait = function(ev)
    return string_format("recoverable stop: resuming in %s (attempt %s of %s)", duration(ev.delay),
      tostring(ev.attempt), tostring(ev.max_attempts))
  end,
  capacity_wait = function(ev)
    return "waiting for capacity to be released (" .. tostring(ev.provision_state) .. ")"
  end,
  capacity = function(ev) return "capacity " .. tostring(ev.provision_state) end,
  throttled = function(ev)
    return string_format("throttled (%s): polling again in %s", ev.code, duration(ev.delay))
  end,
  poll_error = function(ev)
    return string_format("DescribeReplications failed (%s): polling again in %s", ev.code, duration(ev.delay))
  end,
  stop_sent = function() return "StopReplication" end,
  stop_unknown = function(ev) return "StopReplication outcome unknown (" .. tostring(ev.code) .. "): describing" end,
  warning = function(ev) return "WARNING: " .. tostring(ev.message) end,
  table_error = function(ev)
    return string_format("table %s.%s: %s (%s rows loaded, %s error rows)", tostring(ev.schema), tostring(ev.table),
      tostring(ev.state), num(ev.rows_loaded), num(ev.error_rows))
  end,
  ready = function(ev)
    return string_format("%s after %s (%s start(s), %s resume(s))", tostring(ev.status), duration(ev.elapsed),
      num(ev.starts), num(ev.resumes))
  end,
  done = function(ev)
    return string_format("done: %s after %s (%s start(s), %s resume(s))", tostring(ev.status),
      duration(ev.elapsed), num(ev.starts), num(ev.resumes))
  end,
  error = function(ev) return string_format("error: %s: %s", tostring(ev.code), tostring(ev.message)) end,
  lease_taken = function(ev)
    if ev.from then
      return string_format("lease taken over from %s (expired; fence %s): going on from its saved state",
        tostring(ev.from), num(ev.fence))
    end
    return string_format("lease taken by %s (fence %s)", tostring(ev.owner), num(ev.fence))
  end,
  held_elsewhere = function(ev)
    return string_format("driven by %s (phase %s): watching its lease", tostring(ev.owner), tostring(ev.phase))
  end,
  done_elsewhere = function(ev)
    return string_format("done under %s: %s (%s start(s), %s resume(s))", tostring(ev.owner), tostring(ev.status),
      num(ev.starts), num(ev.resumes))
  end,
}

-- the name of the replication of an event: its identifier, else the last
-- part of its ARN
function M.name(ev)
  if type(ev.id) == "string" then return ev.id end
  if type(ev.arn) == "string" then return ev.arn:match("([^:/]+)$") or ev.arn end
  return "?"
end

-- a line for a person, led by the replication's identifier; status and
-- progress events give the progress line
function M.event(ev)
  local f = FORMATS[ev.type]
  local name = M.name(ev)
  if f then return clean(name .. ": " .. f(ev)) end
  return clean(name .. ": " .. M.progress_line(ev))
end

return M
