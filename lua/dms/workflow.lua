-- lua-dms: runbook workflows for DMS Serverless replications.
--
--   local workflow = require "dms.workflow"
--   local outcome, err = workflow.run(client, {
--     replication_config_arn = arn,
--     assessment = { ResultLocationFolder = "assess" },   -- or false
--     wait_for = "running",                                -- | "full-load-complete" | "stopped"
--     resume = { max_attempts = 3 },
--     poll = { interval = 15, timeout = 6 * 3600 },
--     state_file = "/var/lib/runbooks/orders.json",
--     lock_dir = "/run/runbooks",                          -- default $XDG_RUNTIME_DIR, $TMPDIR or /tmp
--     on_event = function(ev) print(workflow.format_event(ev)) end,
--   })
--
-- What the workflow promises, so that no data is lost:
--   * it describes the replication before it acts, and picks the start type from
--     what it finds: start-replication for a first run, resume-processing for a
--     CDC replication that had run; reload-target only when asked for explicitly
--     with allow_reload_target = true;
--   * a StartReplication whose outcome is unknown (timeout, 5xx, lost connection)
--     is never sent again blindly: the replication is described and the workflow
--     goes on from what it shows;
--   * a StartReplication DMS refuses (InvalidResourceStateFault) counts as
--     started only when a describe shows the start (after an earlier attempt of
--     ours); a refusal of the request itself is not sent again (StartRefused);
--   * a FATAL_ERROR stop is never resumed; recoverable stops are, a bounded
--     number of times, with backoff;
--   * before a start or resume it waits until the capacity of the previous run
--     is released;
--   * with a state file, each transition is written atomically before the
--     action it announces, so a runbook killed at any point and run again goes
--     on where it was;
--   * a lock per replication (a file in lock_dir named after the ARN, whatever
--     the state file) keeps two runbooks from driving one replication.
--
-- Every public function returns a result or nil, err (err.kind "workflow" for
-- the workflow's own outcomes: AssessmentFailed, FatalStop, Timeout, Locked,
-- ResumeLimit, Stopped, StartRefused, ...); none raises on a runtime failure.
local type, pairs, ipairs, tostring, tonumber, pcall, setmetatable =
      type, pairs, ipairs, tostring, tonumber, pcall, setmetatable
local math_floor, math_min, math_max, math_random = math.floor, math.min, math.max, math.random
local string_format, table_concat = string.format, table.concat
local os_getenv = os.getenv

local core = require "dms.core"
local cjson = require "cjson.safe"

local M = { _VERSION = "0.1.0" }

---------------------------------------------------------------------------
-- Vocabulary

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

M.START_TYPES = { ["start-replication"] = true, ["resume-processing"] = true, ["reload-target"] = true }
M.WAIT_FOR = { running = true, ["full-load-complete"] = true, stopped = true }
M.STOP_WAIT_FOR = { stopping = true, stopped = true, deprovisioned = true }

-- StopReason words (after "Stop Reason ") that a resume-processing recovers from;
-- each matches as a plain substring ("LOW_MEMORY" matches STOPPED_DUE_TO_LOW_MEMORY)
M.RECOVERABLE_REASONS = { "RECOVERABLE_ERROR", "LOW_MEMORY", "LOW_DISK", "RECONFIGURATION_RESTART", "RECYCLE" }
-- ends of a run that mean the full load is complete
M.FINISHED_REASONS = { "FULL_LOAD_ONLY_FINISHED", "STOPPED_AFTER_FULL_LOAD", "STOPPED_AFTER_CACHED_EVENTS" }

M.DEFAULTS = {
  interval = 15,              -- seconds between two polls (jittered)
  timeout = 6 * 3600,         -- deadline of one call: a start alone takes 40-60 minutes on AWS
  max_interval = 120,         -- longest poll back-off after throttling or transient errors
  jitter = 0.2,               -- +-20 % on every pause
  max_attempts = 3,           -- automatic resumes per run
  resume_backoff = 60,        -- seconds before the first automatic resume, doubling
  max_resume_backoff = 900,
  max_refusals = 5,           -- InvalidResourceStateFault answers tolerated per call
  max_stale_polls = 10,       -- describes that still show the replication as before our start
}

local THROTTLING = require("dms.errors").THROTTLING

local function werr(code, message, extra)
  local e = { kind = "workflow", code = code, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  return core.error(e)
end

local function verr(message)
  return core.error({ kind = "validation", code = "InvalidOption", message = message })
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

---------------------------------------------------------------------------
-- Reading a Replication

local function stats(repl)
  return type(repl) == "table" and type(repl.ReplicationStats) == "table" and repl.ReplicationStats or {}
end

local function bare_reason(repl)
  local r = type(repl) == "table" and repl.StopReason
  if type(r) ~= "string" then return "" end
  return (r:gsub("^Stop Reason ", ""))
end

local function provision_state(repl)
  local p = type(repl) == "table" and repl.ProvisionData
  return type(p) == "table" and p.ProvisionState or nil
end

-- capacity of the previous run released: a start or resume may be sent
function M.capacity_released(repl)
  local s = provision_state(repl)
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

local ASSESSMENT_DONE = { passed = true, warning = true, failed = true, error = true, cancelled = true,
                          ["invalid state"] = true }
M.ASSESSMENT_DONE = ASSESSMENT_DONE

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

-- Has `repl` reached `target`? `ours` says the current run is one this workflow
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

-- Does `repl` show that a start sent after a replication looked like `before`
-- took effect? (status moved on, a newer StartDate, a start type where there was none)
local function started_since(before, repl)
  if not STARTABLE[repl.Status] then return true end
  local sd = stats(repl).StartDate
  if sd and (before.start_date == nil or sd > before.start_date + 0.0005) then return true end
  if before.start_type == nil and repl.StartReplicationType ~= nil and before.status == "created" then
    return true
  end
  return false
end
M.started_since = started_since

---------------------------------------------------------------------------
-- Files and locks. dms.core provides write_file_atomic (fsync, rename, fsync
-- of the directory) and lock (flock: the kernel drops it with the process).

local read_file = require("dms.config").read_file

local held = {}   -- lock path -> { count, handle, path }: a process may take its own lock again

-- lock_acquire(path) -> handle | nil, err (code Locked or LockFailed)
local function lock_acquire(path)
  local h = held[path]
  if h then
    h.count = h.count + 1
    return h
  end
  local handle, lerr = core.lock(path)
  if not handle then
    if lerr.code == "Locked" then
      return nil, werr("Locked", string_format("another runbook (pid %d) is driving this replication: "
        .. "lock file %s", lerr.pid or 0, path), { pid = lerr.pid, lock_file = path })
    end
    return nil, werr("LockFailed", lerr.message, { lock_file = path })
  end
  h = { count = 1, handle = handle, path = path }
  held[path] = h
  return h
end

local function lock_release(h)
  if not h then return end
  h.count = h.count - 1
  if h.count > 0 then return end
  held[h.path] = nil
  h.handle:release()
end

---------------------------------------------------------------------------
-- A session: one call of a workflow function

local Session = {}
Session.__index = Session

local function check_number(v, name, min)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < (min or 0)) then
    return verr(name .. " must be a number >= " .. (min or 0))
  end
end

local function list_to_words(v)
  if type(v) == "table" then return table_concat(v, " ") end
  return v
end

local function normalize_assessment(a)
  if a == nil or a == false then return nil end
  local out = copy(a)
  out.IncludeOnly = list_to_words(out.IncludeOnly)
  out.Exclude = list_to_words(out.Exclude)
  if out.FailOnAssessmentFailure == nil then out.FailOnAssessmentFailure = true end
  return out
end

local function sanitize(s)
  return (s:gsub("[^%w%-_.]", "_"))
end

function Session.new(client, opts)
  if type(client) ~= "table" then return nil, verr("client must be a dms client") end
  if type(opts) == "string" then opts = { replication_config_arn = opts } end
  if type(opts) ~= "table" then return nil, verr("opts must be a table") end
  opts = copy(opts)
  local arn = opts.replication_config_arn or opts.arn
  if type(arn) ~= "string" or arn == "" then return nil, verr("replication_config_arn is required") end
  local wait_for = opts.wait_for or "running"
  if not M.WAIT_FOR[wait_for] and not M.STOP_WAIT_FOR[wait_for] then
    return nil, verr("wait_for must be running, full-load-complete or stopped")
  end
  if opts.assessment ~= nil and opts.assessment ~= false and type(opts.assessment) ~= "table" then
    return nil, verr("assessment must be a table of PremigrationAssessmentSettings or false")
  end
  local resume = opts.resume
  if resume ~= nil and resume ~= false and type(resume) ~= "table" then
    return nil, verr("resume must be a table or false")
  end
  resume = resume or {}
  local poll = opts.poll or {}
  if type(poll) ~= "table" then return nil, verr("poll must be a table") end
  local e = check_number(poll.interval, "poll.interval") or check_number(poll.timeout, "poll.timeout")
    or check_number(poll.max_interval, "poll.max_interval")
    or check_number(resume.max_attempts, "resume.max_attempts") or check_number(resume.backoff, "resume.backoff")
    or check_number(resume.max_backoff, "resume.max_backoff")
  if e then return nil, e end
  if resume.on ~= nil and type(resume.on) ~= "table" then return nil, verr("resume.on must be a list of reasons") end
  for _, k in ipairs({ "state_file", "lock_dir" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then return nil, verr(k .. " must be a string") end
  end
  for _, k in ipairs({ "on_event", "sleep", "clock", "random" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then return nil, verr(k .. " must be a function") end
  end
  if opts.start_type ~= nil and not M.START_TYPES[opts.start_type] then
    return nil, verr("start_type must be start-replication, resume-processing or reload-target")
  end
  if opts.start_type == "reload-target" and opts.allow_reload_target ~= true then
    return nil, werr("ReloadNotAllowed", "reload-target drops and reloads the target tables: it needs "
      .. "allow_reload_target = true")
  end

  local clock = opts.clock or client.clock or core.now
  local self = setmetatable({
    client = client,
    arn = arn,
    opts = opts,
    wait_for = wait_for,
    assessment = normalize_assessment(opts.assessment),
    resume_enabled = opts.resume ~= false and (resume.max_attempts or M.DEFAULTS.max_attempts) > 0,
    resume_on = resume.on or M.RECOVERABLE_REASONS,
    max_resumes = resume.max_attempts or M.DEFAULTS.max_attempts,
    resume_backoff = resume.backoff or M.DEFAULTS.resume_backoff,
    max_resume_backoff = resume.max_backoff or M.DEFAULTS.max_resume_backoff,
    interval = poll.interval or M.DEFAULTS.interval,
    max_interval = math_max(poll.max_interval or M.DEFAULTS.max_interval, poll.interval or 0),
    timeout = poll.timeout or M.DEFAULTS.timeout,
    jitter_ratio = poll.jitter or M.DEFAULTS.jitter,
    sleep = opts.sleep or client.sleep or core.sleep,
    clock = clock,
    random = opts.random or math_random,
    on_event = opts.on_event,
    events = {},
    ours = false,
    refusals = 0,
    seen = {},
    state = { version = 1, arn = arn, phase = "new", start_sent = false, starts = 0, resumes = 0 },
  }, Session)
  self.t0 = clock()
  self.deadline = self.t0 + self.timeout
  return self
end

function Session:now() return self.clock() end
function Session:remaining() return self.deadline - self.clock() end

function Session:jitter(seconds)
  local j = self.jitter_ratio
  return seconds * (1 - j + 2 * j * self.random())
end

-- sleeps, never past the deadline
function Session:pause(seconds)
  local left = self:remaining()
  if seconds > left then seconds = left end
  if seconds > 0 then self.sleep(seconds) end
end

function Session:log(level, message, fields)
  if type(self.client.log) == "function" then pcall(self.client.log, self.client, level, message, fields) end
end

function Session:emit(kind, repl, extra)
  repl = repl or self.repl
  local now = self:now()
  local ev = { type = kind, arn = self.arn, time = now, elapsed = now - self.t0 }
  if type(repl) == "table" then
    local st = stats(repl)
    ev.status = repl.Status
    ev.replication_type = repl.ReplicationType
    ev.progress = st.FullLoadProgressPercent
    ev.tables_loaded = st.TablesLoaded
    ev.tables_loading = st.TablesLoading
    ev.tables_queued = st.TablesQueued
    ev.tables_errored = st.TablesErrored
    ev.dms_elapsed = st.ElapsedTimeMillis and st.ElapsedTimeMillis / 1000
    ev.stop_reason = repl.StopReason
    ev.provision_state = provision_state(repl)
    local a = M.current_assessment(repl)
    if a then ev.assessment = a.Status end
  end
  for k, v in pairs(extra or {}) do ev[k] = v end
  self.events[#self.events + 1] = ev
  if self.on_event then pcall(self.on_event, ev) end
  return ev
end

-- emits what changed since the last look: status, progress, assessment, capacity
function Session:observe(repl, quiet)
  local st = stats(repl)
  local a = M.current_assessment(repl)
  local now = {
    status = repl.Status,
    progress = table_concat({ tostring(st.FullLoadProgressPercent), tostring(st.TablesLoaded),
      tostring(st.TablesLoading), tostring(st.TablesQueued), tostring(st.TablesErrored) }, "/"),
    assessment = a and (tostring(a.PremigrationAssessmentRunArn) .. " " .. tostring(a.Status)) or nil,
    capacity = provision_state(repl),
  }
  local seen = self.seen
  self.seen = now
  self.repl = repl
  if quiet then return end
  if now.status ~= seen.status then
    if self.opened then self:save() end       -- best effort: the saves that matter are checked
    if repl.Status == "stopped" or repl.Status == "failed" then
      local fm = repl.FailureMessages
      self:emit("stopped", repl, { failure = type(fm) == "table" and fm[1] or nil })
    else
      self:emit("status", repl)
    end
  elseif now.progress ~= seen.progress then
    self:emit("progress", repl)
  end
  if now.assessment and now.assessment ~= seen.assessment then
    local ap = a.AssessmentProgress or {}
    local rs = a.ResultStatistic
    self:emit("assessment", repl, {
      assessment_arn = a.PremigrationAssessmentRunArn,
      assessment_done = ap.IndividualAssessmentCompletedCount,
      assessment_count = ap.IndividualAssessmentCount,
      assessment_passed = rs and rs.Passed, assessment_failed = rs and rs.Failed,
      assessment_warnings = rs and rs.Warning,
      message = a.LastFailureMessage,
    })
  end
  if now.capacity ~= seen.capacity and seen.status ~= nil and now.status == seen.status then
    self:emit("capacity", repl)
  end
end

---------------------------------------------------------------------------
-- State file and lock

function Session:save(extra)
  local s = self.state
  for k, v in pairs(extra or {}) do s[k] = v end
  local repl = self.repl
  if repl then
    s.status = repl.Status
    s.stop_reason = repl.StopReason
    s.progress = stats(repl).FullLoadProgressPercent
  end
  s.updated_at = self:now()
  s.pid = core.pid()
  if not self.opts.state_file then return true end
  local data = cjson.encode(s)
  local ok, err = core.write_file_atomic(self.opts.state_file, data .. "\n")
  if not ok then
    return nil, werr("StateFile", "cannot write the state file " .. self.opts.state_file .. ": " .. err.message)
  end
  return true
end

local TERMINAL_PHASES = { done = true, failed = true, stopped = true, new = true }

function Session:load()
  local path = self.opts.state_file
  if not path then return true end
  local data = read_file(path)
  if not data then return true end
  local s = cjson.decode(data)
  if type(s) ~= "table" or s.arn == nil then
    -- unreadable: act as if a start may have been sent, so a refused start that
    -- a describe shows as started counts as ours
    self.unknown_attempt = true
    self:emit("warning", nil, { message = "the state file " .. path .. " is unreadable; starting from what "
      .. "DescribeReplications shows" })
    return true
  end
  if s.arn ~= self.arn then
    return nil, werr("StateMismatch", "the state file " .. path .. " belongs to " .. tostring(s.arn))
  end
  if TERMINAL_PHASES[s.phase] then
    -- the previous run ended: this is a new one
    self.state.created_at = self:now()
    self.state.previous = { phase = s.phase, starts = s.starts, resumes = s.resumes, updated_at = s.updated_at }
    return true
  end
  for k, v in pairs(s) do self.state[k] = v end
  self.state.starts = tonumber(s.starts) or 0
  self.state.resumes = tonumber(s.resumes) or 0
  self.resumed_state = true
  if s.run_started then self.ours = true end
  return true
end

local function env_dir(name)
  local v = os_getenv(name)
  if v ~= nil and v ~= "" then return v end
end

-- The lock belongs to the replication, whatever the state file: two runbooks on
-- one ARN meet on one lock file (in opts.lock_dir, else $XDG_RUNTIME_DIR,
-- $TMPDIR or /tmp) named after the ARN's id and a hash of the whole ARN.
function Session:lock_path()
  local dir = self.opts.lock_dir or env_dir("XDG_RUNTIME_DIR") or env_dir("TMPDIR") or "/tmp"
  local id = self.arn:match("([^:/]+)$") or "replication"
  return dir .. "/dms-runbook-" .. sanitize(id) .. "-" .. core.sha256_hex(self.arn):sub(1, 12) .. ".lock"
end

-- takes the lock and loads the state; returns true | nil, err
function Session:open()
  if self.opts.lock ~= false then
    local path = self:lock_path()
    local h, err = lock_acquire(path)
    if not h then return nil, err end
    self.lock = h
  end
  local ok, err = self:load()
  if not ok then return nil, err end
  self.state.created_at = self.state.created_at or self:now()
  self.opened = true
  return true
end

function Session:close()
  if self.lock then
    lock_release(self.lock)
    self.lock = nil
  end
end

---------------------------------------------------------------------------
-- Talking to DMS

function Session:describe_once()
  local resp, err = self.client:describe_replications({
    Filters = { { Name = "replication-config-arn", Values = { self.arn } } },
  })
  if not resp then return nil, err end
  local repl = type(resp.Replications) == "table" and resp.Replications[1]
  if type(repl) ~= "table" then
    return nil, core.error({ kind = "service", code = "ResourceNotFoundFault",
                             message = "no replication for " .. self.arn })
  end
  return repl
end

function Session:timeout_error(what)
  return werr("Timeout", string_format("%s did not %s within %s s", self.arn, what,
    tostring(self.timeout)), { replication = self.repl })
end

-- DescribeReplications for polling: throttling or a transient error that exhausted
-- the client's retries backs off and tries again, until the deadline
function Session:poll_describe(quiet)
  local delay = self.interval
  while true do
    local repl, err = self:describe_once()
    if repl then
      self:observe(repl, quiet)
      return repl
    end
    if not err.retryable then return nil, err end
    if self:remaining() <= 0 then return nil, self:timeout_error("answer DescribeReplications") end
    delay = math_min(delay * 2, self.max_interval)
    local throttled = err.throttling or THROTTLING[err.code]
    self:emit(throttled and "throttled" or "poll_error", nil,
      { code = err.code, message = err.message, delay = delay })
    self:pause(self:jitter(delay))
  end
end

-- polls until pred(repl) holds; returns repl | nil, err (Timeout)
function Session:poll_until(repl, pred, what)
  while not pred(repl) do
    if self:remaining() <= 0 then return nil, self:timeout_error(what) end
    self:pause(self:jitter(self.interval))
    local err
    repl, err = self:poll_describe()
    if not repl then return nil, err end
  end
  return repl
end

function Session:wait_capacity(repl)
  if M.capacity_released(repl) then return repl end
  self:emit("capacity_wait", repl, { message = "waiting for the capacity of the previous run to be released" })
  return self:poll_until(repl, M.capacity_released, "release its capacity")
end

function Session:confirm(start_type, repl, is_resume, how)
  local s = self.state
  s.start_pending = false
  s.start_type = start_type
  if is_resume then s.resumes = s.resumes + 1 else s.starts = s.starts + 1 end
  s.run_started = true
  s.run_start_date = stats(repl).StartDate
  s.phase = "waiting"
  self.ours = true
  self.confirmed_here = true
  self.unknown_attempt = false
  self.repl = repl
  local ok, err = self:save()
  if not ok then return nil, err end
  self:emit("started", repl, { start_type = start_type, resume = is_resume or nil, how = how })
  self:observe(repl, true)
  return repl
end

-- Sends one StartReplication of `start_type` (after the capacity is released).
-- Returns the replication (started, or as described again when DMS refused so
-- the caller decides again) | nil, err.
function Session:send_start(start_type, repl, is_resume)
  local err
  repl, err = self:wait_capacity(repl)
  if not repl then return nil, err end
  if not STARTABLE[repl.Status] then return repl end      -- it moved meanwhile: decide again

  local params = { ReplicationConfigArn = self.arn, StartReplicationType = start_type }
  if self.assessment and not is_resume then params.PremigrationAssessmentSettings = self.assessment end
  if not is_resume and type(self.opts.cdc) == "table" then
    for _, k in ipairs({ "CdcStartTime", "CdcStartPosition", "CdcStopPosition" }) do
      params[k] = self.opts.cdc[k]
    end
  end
  if start_type == "reload-target" then
    local msg = "RELOAD-TARGET requested for " .. self.arn .. ": the target tables are dropped or truncated "
      .. "and loaded again from the source"
    self:log("warn", msg, { arn = self.arn })
    self:emit("warning", repl, { message = msg, start_type = start_type })
  end

  -- written before the request leaves: a crash from here on is reconciled by describing
  local s = self.state
  local ok, serr = self:save({
    phase = is_resume and "resuming" or "starting", start_sent = true, start_pending = true,
    pending_type = start_type, pending_resume = is_resume or false,
    before = { status = repl.Status, start_date = stats(repl).StartDate, start_type = repl.StartReplicationType },
    start_attempts = (s.start_attempts or 0) + 1,
  })
  if not ok then return nil, serr end
  self:emit(is_resume and "resume_sent" or "start_sent", repl, {
    start_type = start_type, attempt = is_resume and (s.resumes + 1) or s.start_attempts,
    assessment_settings = params.PremigrationAssessmentSettings and true or nil,
  })

  local resp
  resp, err = self.client:start_replication(params)
  if resp and type(resp.Replication) == "table" then
    return self:confirm(start_type, resp.Replication, is_resume, "response")
  end
  err = err or core.error({ kind = "transport", code = "MalformedResponse", message = "no Replication in the answer",
                            outcome_unknown = true })

  if err.outcome_unknown or err.not_resent then
    -- StartReplication has no idempotency token: look instead of sending it again
    self.unknown_attempt = true
    self:emit("start_unknown", repl, { code = err.code, message = err.message, start_type = start_type })
    for look = 1, 2 do
      local fresh, derr = self:poll_describe()
      if not fresh then return nil, derr end
      if started_since(s.before, fresh) then return self:confirm(start_type, fresh, is_resume, "described") end
      if look == 1 then self:pause(self:jitter(self.interval)) end
      repl = fresh
    end
    -- no sign of it: the start did not take effect; the caller decides again
    ok, serr = self:save({ start_pending = false })
    if not ok then return nil, serr end
    return repl
  end

  if err.code == "InvalidResourceStateFault" then
    -- Refused. Either the replication had moved on (an earlier attempt of ours
    -- took, another start, its capacity still being released) or the request
    -- itself cannot succeed (resume-processing of a full-load replication, ...)
    -- and sending it again gets the same answer. Describe (twice: a read may
    -- lag) to tell which.
    ok, serr = self:save({ start_pending = false })
    if not ok then return nil, serr end
    local fresh, moved
    for look = 1, 2 do
      if look == 2 then self:pause(self:jitter(self.interval)) end
      local derr
      fresh, derr = self:poll_describe()
      if not fresh then return nil, derr end
      moved = started_since(s.before, fresh)
      if moved or not M.capacity_released(fresh) then break end
    end
    if moved and self.unknown_attempt then
      return self:confirm(start_type, fresh, is_resume, "refused after an earlier attempt")
    end
    self:emit("start_refused", fresh, { code = err.code, message = err.message, start_type = start_type })
    local refused = werr("StartRefused", string_format("DMS refused StartReplication %s of %s: %s", start_type,
      self.arn, tostring(err.message)), { replication = fresh, start_type = start_type,
      service_code = err.code, service_message = err.message })
    if not moved and M.capacity_released(fresh) then return nil, refused end
    -- it moved on: the caller decides again from what it shows (a bounded number of times)
    self.refusals = self.refusals + 1
    if self.refusals > M.DEFAULTS.max_refusals then return nil, refused end
    return fresh
  end

  ok, serr = self:save({ start_pending = false })
  if not ok then return nil, serr end
  if err.retryable then
    -- throttled or refused before it was applied: nothing happened, back off
    self.refusals = self.refusals + 1
    if self.refusals > M.DEFAULTS.max_refusals then return nil, err end
    self:emit(THROTTLING[err.code] and "throttled" or "start_refused", repl,
      { code = err.code, message = err.message, start_type = start_type })
    self:pause(self:jitter(math_min(self.interval * 2 ^ self.refusals, self.max_interval)))
    return self:poll_describe()
  end
  return nil, err
end

-- A start left pending by an earlier process (killed between writing the state
-- and reading the answer): did it take effect?
function Session:reconcile(repl)
  local s = self.state
  if not s.start_pending then return repl end
  self.unknown_attempt = true
  if started_since(s.before or {}, repl) then
    return self:confirm(s.pending_type, repl, s.pending_resume, "described after a restart")
  end
  local ok, err = self:save({ start_pending = false })
  if not ok then return nil, err end
  return repl
end

-- the start type for a replication this run has not started yet
function Session:choose_start_type(repl)
  local explicit = self.opts.start_type
  if explicit and explicit ~= "start-replication" and repl.Status == "created" then
    return nil, werr("NotStarted", self.arn .. " has never run: its first start is start-replication",
      { replication = repl })
  end
  if explicit then return explicit end
  if repl.Status == "created" or (repl.StartReplicationType == nil and stats(repl).StartDate == nil) then
    return "start-replication"
  end
  local class = M.classify(repl, self.resume_on)
  local never_loaded = stats(repl).FullLoadStartDate == nil and repl.RecoveryCheckpoint == nil
  if class == "assessment_failed" and never_loaded then
    return "start-replication"     -- the previous start stopped at its assessment: nothing was loaded
  end
  if class == "fatal" or class == "assessment_failed" then
    return nil, werr("FatalStop", string_format("%s %s with %s; it is not resumed automatically: fix the "
      .. "cause, then resume it explicitly (start_type = \"resume-processing\")", self.arn, repl.Status,
      repl.StopReason or "a fatal error"), { replication = repl })
  end
  if repl.ReplicationType == "full-load" then
    return nil, werr("StartTypeRequired", self.arn .. " is a full-load replication that has run: starting it "
      .. "again loads the target again; ask for start_type explicitly", { replication = repl })
  end
  return "resume-processing"
end

function Session:resume_delay()
  local n = self.state.resumes
  return math_min(self.resume_backoff * 2 ^ n, self.max_resume_backoff)
end

-- the run ended in `repl` (stopped or failed) before the target: the error to
-- return, or nil when a resume is due
function Session:ended(repl, allow_resume)
  local class = M.classify(repl, self.resume_on)
  local extra = { replication = repl, stop_reason = repl.StopReason, failure_messages = repl.FailureMessages }
  if class == "assessment_failed" then
    local a = M.current_assessment(repl)
    return werr("AssessmentFailed", string_format("the premigration assessment of %s failed%s", self.arn,
      a and a.LastFailureMessage and (": " .. a.LastFailureMessage) or ""), extra)
  end
  if class == "fatal" then
    local fm = type(repl.FailureMessages) == "table" and repl.FailureMessages[1]
    return werr("FatalStop", string_format("%s %s (%s)%s; it is not resumed", self.arn, repl.Status,
      tostring(repl.StopReason), fm and (": " .. fm) or ""), extra)
  end
  if class == "recoverable" then
    if not allow_resume or not self.resume_enabled then
      return werr("RecoverableStop", string_format("%s stopped (%s): it can be resumed", self.arn,
        tostring(repl.StopReason)), extra)
    end
    if self.state.resumes >= self.max_resumes then
      return werr("ResumeLimit", string_format("%s stopped (%s) after %d automatic resumes", self.arn,
        tostring(repl.StopReason), self.state.resumes), extra)
    end
    return nil
  end
  return werr("Stopped", string_format("%s stopped (%s) before it reached %s", self.arn,
    tostring(repl.StopReason), self.wait_for), extra)
end

-- a view that predates our own start (eventually consistent reads); after
-- max_stale_polls such views the run is no longer taken as ours, and the caller
-- decides again from what DMS shows
function Session:stale(repl)
  if not self.ours or not STARTABLE[repl.Status] then return false end
  local stop, start = stats(repl).StopDate, self.state.run_start_date
  if repl.Status ~= "created" and not (stop ~= nil and start ~= nil and stop < start) then return false end
  self.stale_polls = (self.stale_polls or 0) + 1
  -- a start DMS accepted during this call is waited for (until the deadline)
  if self.confirmed_here or self.stale_polls <= M.DEFAULTS.max_stale_polls then return true end
  self.ours = false
  self.state.run_started = false
  return false
end

-- polls until the target is reached or the run ends
function Session:watch(repl, resuming)
  local ours = true
  return self:poll_until(repl, function(r)
    if M.reached(self.wait_for, r, ours, resuming, self.resume_on) then return true end
    return STARTABLE[r.Status] and not self:stale(r)
  end, "reach " .. self.wait_for)
end

function Session:outcome(repl, phase)
  local ok, err = self:save({ phase = phase or "done" })
  if not ok then return self:fail(err) end
  self:emit(phase == "waiting" and "ready" or "done", repl, {
    starts = self.state.starts, resumes = self.state.resumes, start_type = self.state.start_type })
  self:close()
  return {
    ok = true, replication = repl, events = self.events, starts = self.state.starts,
    resumes = self.state.resumes, start_type = self.state.start_type,
    assessment = M.current_assessment(repl), elapsed = self:now() - self.t0,
  }
end

local KEEP_PHASE = { Timeout = true, Locked = true, StateMismatch = true, StateFile = true, LockFailed = true }

function Session:fail(err)
  if type(err) ~= "table" then err = werr("Error", tostring(err)) end
  if self.opened and not KEEP_PHASE[err.code] then
    if err.kind == "workflow" then
      self:save({ phase = "failed", last_error = err.code })
    else
      self:save({ last_error = err.code })
    end
  end
  self:emit("error", err.replication or self.repl, { code = err.code, kind = err.kind, message = err.message })
  if err.replication == nil then err.replication = self.repl end
  err.events = self.events
  err.arn = self.arn
  self:close()
  return nil, err
end

function Session:first_look()
  local repl, err = self:poll_describe(true)
  if not repl then return nil, err end
  self:emit("described", repl, { phase = self.state.phase, start_sent = self.state.start_sent,
    start_type = repl.StartReplicationType })
  return self:reconcile(repl)
end

---------------------------------------------------------------------------
-- The steps

-- checks wait_for, then takes the first look at the replication
function Session:begin()
  if not M.WAIT_FOR[self.wait_for] then
    return nil, verr("wait_for must be running, full-load-complete or stopped")
  end
  return self:first_look()
end

-- drive the replication to self.wait_for: start, watch, resume
function Session:run_steps()
  local repl, err = self:begin()
  if not repl then return self:fail(err) end
  while true do
    local status = repl.Status
    if ACTIVE[status] then
      if not self.ours then
        self.ours = true
        local ok, serr = self:save({ run_started = true, phase = "waiting",
                                     run_start_date = stats(repl).StartDate })
        if not ok then return self:fail(serr) end
      end
      if M.reached(self.wait_for, repl, true, true, self.resume_on) then return self:outcome(repl) end
      repl, err = self:watch(repl, true)
      if not repl then return self:fail(err) end
    elseif STARTABLE[status] and self.ours and self:stale(repl) then
      repl, err = self:watch(repl, true)
      if not repl then return self:fail(err) end
    elseif STARTABLE[status] and self.ours then
      if M.reached(self.wait_for, repl, true, true, self.resume_on) then
        return self:outcome(repl)
      else
        local why = self:ended(repl, true)
        if why then return self:fail(why) end
        local delay = self:jitter(self:resume_delay())
        self:emit("resume_wait", repl, { delay = delay, attempt = self.state.resumes + 1,
                                         max_attempts = self.max_resumes })
        self:pause(delay)
        if self:remaining() <= 0 then return self:fail(self:timeout_error("reach " .. self.wait_for)) end
        repl, err = self:poll_describe()
        if not repl then return self:fail(err) end
        if STARTABLE[repl.Status] then
          repl, err = self:send_start("resume-processing", repl, true)
          if not repl then return self:fail(err) end
        end
      end
    elseif STARTABLE[status] then
      local start_type, terr = self:choose_start_type(repl)
      if not start_type then return self:fail(terr) end
      repl, err = self:send_start(start_type, repl, false)
      if not repl then return self:fail(err) end
    elseif status == "deleting" then
      return self:fail(werr("InvalidState", self.arn .. " is being deleted", { replication = repl }))
    else
      -- modifying or a status this library does not know: look again later
      if self:remaining() <= 0 then return self:fail(self:timeout_error("reach " .. self.wait_for)) end
      self:pause(self:jitter(self.interval))
      repl, err = self:poll_describe()
      if not repl then return self:fail(err) end
    end
    if self:remaining() <= 0 and repl and not M.reached(self.wait_for, repl, self.ours, true, self.resume_on) then
      return self:fail(self:timeout_error("reach " .. self.wait_for))
    end
  end
end

-- send a start (or find the replication already started); do not wait
function Session:start_steps(is_resume)
  local repl, err = self:first_look()
  if not repl then return self:fail(err) end
  while true do
    local status = repl.Status
    if ACTIVE[status] and status ~= "stopping" then
      if not self.ours then
        self.ours = true
        local ok, serr = self:save({ run_started = true, phase = "waiting",
                                     run_start_date = stats(repl).StartDate })
        if not ok then return self:fail(serr) end
      end
      return self:outcome(repl, "waiting")
    elseif status == "stopping" or (STARTABLE[status] and self:stale(repl)) then
      repl, err = self:poll_until(repl, function(r) return not (r.Status == "stopping" or self:stale(r)) end,
        "finish stopping")
      if not repl then return self:fail(err) end
    elseif STARTABLE[status] then
      self.ours = false
      local start_type, terr
      if is_resume then
        start_type = "resume-processing"
        if status == "created" then
          terr = werr("NotStarted", self.arn .. " has never run: it cannot be resumed", { replication = repl })
        elseif M.classify(repl, self.resume_on) == "fatal" and not self.opts.after_fatal then
          terr = werr("FatalStop", string_format("%s %s (%s): resuming after a fatal error needs after_fatal = true",
            self.arn, status, tostring(repl.StopReason)), { replication = repl })
        end
      else
        start_type, terr = self:choose_start_type(repl)
      end
      if terr then return self:fail(terr) end
      repl, err = self:send_start(start_type, repl, false)
      if not repl then return self:fail(err) end
    elseif status == "deleting" then
      return self:fail(werr("InvalidState", self.arn .. " is being deleted", { replication = repl }))
    else
      if self:remaining() <= 0 then return self:fail(self:timeout_error("become startable")) end
      self:pause(self:jitter(self.interval))
      repl, err = self:poll_describe()
      if not repl then return self:fail(err) end
    end
  end
end

-- watch until wait_for; no start, no resume
function Session:wait_steps()
  local repl, err = self:begin()
  if not repl then return self:fail(err) end
  self.ours = true
  while true do
    if M.reached(self.wait_for, repl, true, false, self.resume_on) then return self:outcome(repl) end
    if STARTABLE[repl.Status] and not self:stale(repl) then
      if repl.Status == "created" then
        return self:fail(werr("NotStarted", self.arn .. " has not been started", { replication = repl }))
      end
      return self:fail(self:ended(repl, false))
    end
    repl, err = self:watch(repl, false)
    if not repl then return self:fail(err) end
  end
end

-- start with the assessment (unless an assessment of the current run is under
-- way) and wait for its result
function Session:assess_steps()
  local repl, err = self:first_look()
  if not repl then return self:fail(err) end
  if not self.assessment then self.assessment = normalize_assessment({}) end
  if not (ACTIVE[repl.Status] and M.current_assessment(repl)) then
    if ACTIVE[repl.Status] then
      return self:fail(werr("InvalidState", self.arn .. " is " .. repl.Status .. " without an assessment: "
        .. "an assessment runs as part of a start", { replication = repl }))
    end
    while STARTABLE[repl.Status] and not (self.ours and not self:stale(repl)) do
      local start_type, terr = self:choose_start_type(repl)
      if not start_type then return self:fail(terr) end
      repl, err = self:send_start(start_type, repl, false)
      if not repl then return self:fail(err) end
    end
  end
  self.ours = true
  repl, err = self:poll_until(repl, function(r)
    local a = M.current_assessment(r)
    return (a and ASSESSMENT_DONE[a.Status]) or r.Status == "running" or (STARTABLE[r.Status] and not self:stale(r))
  end, "finish its premigration assessment")
  if not repl then return self:fail(err) end
  local a = M.current_assessment(repl)
  if (a and (a.Status == "failed" or a.Status == "error")) or STARTABLE[repl.Status] then
    local why = STARTABLE[repl.Status] and self:ended(repl, false)
    if not why or (a and (a.Status == "failed" or a.Status == "error") and why.code ~= "AssessmentFailed") then
      why = werr("AssessmentFailed", string_format("the premigration assessment of %s %s%s", self.arn,
        a and a.Status or "did not finish", a and a.LastFailureMessage and (": " .. a.LastFailureMessage) or ""),
        { replication = repl })
    end
    return self:fail(why)
  end
  return self:outcome(repl, "waiting")
end

-- StopReplication (unless stopped already), then wait for wait_for:
-- "stopping" (no wait), "stopped" (default) or "deprovisioned" (capacity released)
function Session:stop_steps()
  local target = self.opts.wait_for or "stopped"
  if not M.STOP_WAIT_FOR[target] then
    return self:fail(verr("wait_for of a stop must be stopping, stopped or deprovisioned"))
  end
  local repl, err = self:first_look()
  if not repl then return self:fail(err) end
  if ACTIVE[repl.Status] and repl.Status ~= "stopping" then
    local ok, serr = self:save({ phase = "stopping", stop_sent = true })
    if not ok then return self:fail(serr) end
    self:emit("stop_sent", repl)
    local resp
    resp, err = self.client:stop_replication({ ReplicationConfigArn = self.arn })
    if resp and type(resp.Replication) == "table" then
      repl = resp.Replication
      self:observe(repl)
    elseif err and (err.outcome_unknown or err.not_resent or err.code == "InvalidResourceStateFault") then
      -- look at what happened instead of sending it again
      self:emit("stop_unknown", repl, { code = err.code, message = err.message })
      repl, err = self:poll_describe()
      if not repl then return self:fail(err) end
      if ACTIVE[repl.Status] and repl.Status ~= "stopping" then
        resp, err = self.client:stop_replication({ ReplicationConfigArn = self.arn })
        if not resp and err.code ~= "InvalidResourceStateFault" then return self:fail(err) end
        repl, err = self:poll_describe()
        if not repl then return self:fail(err) end
      end
    else
      return self:fail(err)
    end
  end
  self.state.run_started = false
  if target ~= "stopping" then
    repl, err = self:poll_until(repl, function(r) return STARTABLE[r.Status] end, "stop")
    if not repl then return self:fail(err) end
  end
  if target == "deprovisioned" then
    repl, err = self:wait_capacity(repl)
    if not repl then return self:fail(err) end
  end
  return self:outcome(repl, "stopped")
end

local function step(method)
  return function(client, opts)
    local s, err = Session.new(client, opts)
    if not s then return nil, err end
    local ok, oerr = s:open()
    if not ok then return s:fail(oerr) end
    local fine, res, res_err = pcall(method, s)
    if not fine then
      return s:fail(werr("InternalError", tostring(res)))
    end
    return res, res_err
  end
end

-- workflow.run(client, opts) -> outcome | nil, err: describe, start (with the
-- assessment), wait for opts.wait_for, resume after recoverable stops
M.run = step(Session.run_steps)
-- workflow.start(client, opts) -> outcome | nil, err: sends the start its state
-- calls for (or finds the replication started), without waiting
M.start = step(Session.start_steps)
-- workflow.resume(client, opts): resume-processing a stopped replication
M.resume = step(function(s) return s:start_steps(true) end)
-- workflow.wait(client, opts): polls until opts.wait_for; never starts or resumes
M.wait = step(Session.wait_steps)
-- workflow.assess(client, opts): starts with the premigration assessment and
-- returns once its result is known (outcome.assessment)
M.assess = step(Session.assess_steps)
-- workflow.stop(client, opts): StopReplication, then waits for opts.wait_for
-- ("stopping", "stopped" or "deprovisioned")
M.stop = step(Session.stop_steps)

-- workflow.describe(client, arn | opts) -> Replication | nil, err
function M.describe(client, opts)
  local s, err = Session.new(client, opts)
  if not s then return nil, err end
  local ok, repl, derr = pcall(Session.describe_once, s)
  if not ok then return nil, werr("InternalError", tostring(repl)) end
  return repl, derr
end

M.Session = Session
M.lock_acquire = lock_acquire
M.lock_release = lock_release

---------------------------------------------------------------------------
-- Presenting events (used by bin/dms-runbook and the examples)

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
  return line
end

local FORMATS = {
  described = function(ev)
    return string_format("%s: %s (%s)%s%s", ev.arn, tostring(ev.status), tostring(ev.replication_type),
      ev.stop_reason and (", " .. ev.stop_reason) or "",
      ev.phase and ev.phase ~= "new" and (", continuing from state " .. ev.phase) or "")
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
  ready = function(ev)
    return string_format("%s after %s (%s start(s), %s resume(s))", tostring(ev.status), duration(ev.elapsed),
      num(ev.starts), num(ev.resumes))
  end,
  done = function(ev)
    return string_format("done: %s after %s (%s start(s), %s resume(s))", tostring(ev.status),
      duration(ev.elapsed), num(ev.starts), num(ev.resumes))
  end,
  error = function(ev) return string_format("error: %s: %s", tostring(ev.code), tostring(ev.message)) end,
}

-- a line for a person; status and progress events give the progress line
function M.format_event(ev)
  local f = FORMATS[ev.type]
  if f then return f(ev) end
  return M.progress_line(ev)
end

return M
