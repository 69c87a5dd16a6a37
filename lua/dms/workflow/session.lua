-- A session: one call of a workflow function on one replication. The loop
-- that describes, decides, acts and saves:
--
--   describe   poll_describe (backs off on throttling, until the deadline)
--   decide     replication.lua (pure) reads what DMS shows
--   act        send_start / StopReplication, never blindly twice
--   save       the journal, before each action it announces (phases.lua)
--
-- Where each promise of the workflow is kept:
--   * never a second start: send_start (an unknown outcome is described, a
--     refusal is taken for a start only when a describe shows one) and
--     reconcile (a start left pending by a killed process);
--   * crash-safe: save writes the journal before the request leaves
--     (phase starting/resuming with start_pending), load goes on from it;
--   * one runbook per replication: the journal's lock, taken in open; with
--     a shared journal (DynamoDB), a lease checked by guard before each DMS
--     call and renewed while the run lasts: a lease lost means nothing more
--     is sent (LeaseLost), and a lease another host holds is waited on
--     (wait_lease) and taken over, from the saved state, once it expires.
--
-- A session is driven by a fleet (fleet.lua), one or many sessions at once:
-- its describes (describe_once) and pauses (pause) are handed to the fleet,
-- which makes one paged DescribeReplications round for every session that
-- looks, and the concurrency slots (send_start, adopt, confirm) are the
-- fleet's. Without a fleet (workflow.describe) a session calls DMS itself.
local type, pairs, ipairs, tostring, tonumber, pcall, setmetatable =
      type, pairs, ipairs, tostring, tonumber, pcall, setmetatable
local math_min, math_max, math_random = math.min, math.max, math.random
local string_format, table_concat = string.format, table.concat

local core = require "dms.core"
local errors = require "dms.errors"
local journal = require "dms.workflow.journal"
local phases = require "dms.workflow.phases"
local R = require "dms.workflow.replication"
local events = require "dms.workflow.events"
local tables = require "dms.workflow.tables"

local STARTABLE, ACTIVE, stats = R.STARTABLE, R.ACTIVE, R.stats

local M = {}

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

local function werr(code, message, extra)
  return errors.new("workflow", code, message, extra)
end
M.werr = werr

local Session = {}
Session.__index = Session
M.Session = Session

-- `o` is the checked options (workflow/init.lua); returns a session
function M.new(client, o)
  local clock = o.clock or client.clock or core.now
  local D = M.DEFAULTS
  local poll, resume = o.poll or {}, o.resume or {}
  local self = setmetatable({
    client = client,
    arn = o.replication_config_arn,
    id = o.id,                -- the ReplicationConfigIdentifier, once known
    opts = o,
    wait_for = o.wait_for or "running",
    assessment = o.assessment,
    resume_enabled = o.resume ~= false and (resume.max_attempts or D.max_attempts) > 0,
    resume_on = resume.on or R.RECOVERABLE_REASONS,
    max_resumes = resume.max_attempts or D.max_attempts,
    resume_backoff = resume.backoff or D.resume_backoff,
    max_resume_backoff = resume.max_backoff or D.max_resume_backoff,
    interval = poll.interval or D.interval,
    max_interval = math_max(poll.max_interval or D.max_interval, poll.interval or 0),
    timeout = poll.timeout or D.timeout,
    jitter_ratio = poll.jitter or D.jitter,
    sleep = o.sleep or client.sleep or core.sleep,
    clock = clock,
    random = o.random or math_random,
    on_event = o.on_event,
    events = {},
    ours = false,
    refusals = 0,
    seen = {},
    state = { version = 1, arn = o.replication_config_arn, id = o.id, phase = phases.NEW, start_sent = false,
              starts = 0, resumes = 0 },
  }, Session)
  self.t0 = clock()
  self.deadline = self.t0 + self.timeout
  self.store = o.journal_store
  if self.store then self.t0_wall = self.store.wall() end
  return self
end

function Session:now() return self.clock() end
-- how messages name the replication: its identifier once known, else its ARN
function Session:name() return self.id or self.arn end
function Session:remaining() return self.deadline - self.clock() end

-- the options of each DMS call: the runbook's deadline bounds every request
-- (a call with no time left fails at once as a Timeout)
function Session:call_options()
  local left = self:remaining()
  return { timeout = left > 0.001 and left or 0.001 }
end

-- a pause of `seconds`, jittered (in a fleet the rounds are jittered instead)
function Session:jitter(seconds)
  if self.fleet then return seconds end
  local j = self.jitter_ratio
  return seconds * (1 - j + 2 * j * self.random())
end

-- sleeps, never past the deadline (in a fleet: until the fleet's round that
-- follows the pause)
function Session:pause(seconds)
  local left = self:remaining()
  if seconds > left then seconds = left end
  if seconds <= 0 then return end
  if self.fleet then return self.fleet:sleep(self, self:now() + seconds) end
  self.sleep(seconds)
end

function Session:log(level, message, fields)
  if type(self.client.log) == "function" then pcall(self.client.log, self.client, level, message, fields) end
end

function Session:emit(kind, repl, extra)
  local now = self:now()
  local ev = events.from_replication(repl or self.repl,
    { type = kind, arn = self.arn, id = self.id, time = now, elapsed = now - self.t0 })
  for k, v in pairs(extra or {}) do ev[k] = v end
  -- a fleet of many keeps no progress events in its results (a weekend of
  -- polls of hundreds of replications); on_event sees every one
  if not (self.compact_events and kind == "progress") then self.events[#self.events + 1] = ev end
  if self.on_event then pcall(self.on_event, ev) end
  return ev
end

-- emits what changed since the last look: status, progress, assessment, capacity
function Session:observe(repl, quiet)
  local st = stats(repl)
  local a = R.current_assessment(repl)
  local now = {
    status = repl.Status,
    progress = table_concat({ tostring(st.FullLoadProgressPercent), tostring(st.TablesLoaded),
      tostring(st.TablesLoading), tostring(st.TablesQueued), tostring(st.TablesErrored) }, "/"),
    assessment = a and (tostring(a.PremigrationAssessmentRunArn) .. " " .. tostring(a.Status)) or nil,
    capacity = R.provision_state(repl),
  }
  local seen = self.seen
  self.seen = now
  self.repl = repl
  if self.id == nil and type(repl.ReplicationConfigIdentifier) == "string" then
    self.id = repl.ReplicationConfigIdentifier
    self.state.id = self.id
  end
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
  tables.watch(self, repl)          -- tables entering an error state, once each
end

---------------------------------------------------------------------------
-- The journal: state and lock

-- Saves the state (with `extra` merged in) to the journal. A phase change
-- must be one phases.lua declares.
function Session:save(extra)
  local s = self.state
  if extra and extra.phase and extra.phase ~= s.phase then
    local ok, why = phases.allowed(s.phase, extra.phase)
    if not ok then
      return nil, werr("PhaseTransition", "the workflow tried to save " .. why .. " for " .. self:name())
    end
  end
  for k, v in pairs(extra or {}) do s[k] = v end
  local repl = self.repl
  if repl then
    s.status = repl.Status
    s.stop_reason = repl.StopReason
    s.progress = stats(repl).FullLoadProgressPercent
  end
  s.updated_at = self:now()
  s.pid = core.pid()
  if not self.journal then return true end
  return self.journal:save(s)
end

function Session:load()
  local s, why = self.journal:load()
  if not s then
    if why ~= "absent" then
      -- unreadable: act as if a start may have been sent, so a refused start that
      -- a describe shows as started counts as ours
      self.unknown_attempt = true
      self:emit("warning", nil, { message = why .. "; starting from what DescribeReplications shows" })
    end
    return true
  end
  if s.arn ~= self.arn then
    return nil, werr("StateMismatch", "the state file " .. tostring(self.opts.state_file) .. " belongs to "
      .. tostring(s.arn))
  end
  if phases.TERMINAL[s.phase or phases.NEW] then
    -- the previous run ended: this is a new one
    self.state.created_at = self:now()
    self.state.previous = { phase = s.phase, starts = s.starts, resumes = s.resumes, updated_at = s.updated_at }
    return true
  end
  for k, v in pairs(s) do self.state[k] = v end
  self.state.starts = tonumber(s.starts) or 0
  self.state.resumes = tonumber(s.resumes) or 0
  if s.run_started then self.ours = true end
  return true
end

-- The item of a shared journal shows a run that ended under another owner
-- during this call: after this session saw that owner hold the lease, or
-- after the call began (by the writer's clock). A run that ended before is a
-- previous one: this call begins a new run, as with the files journal.
function Session:ended_elsewhere(item)
  if not (item and phases.TERMINAL[item.phase] and item.phase ~= phases.NEW) then return false end
  local owner = item.owner or item.last_owner
  if owner == nil or owner == self.store.owner then return false end
  return self.seen_elsewhere or (tonumber(item.updated_at) or 0) >= self.t0_wall
end

-- The result of a replication a run of another host ended: its outcome
-- (phase done) or its error, with the owner that drove it.
function Session:elsewhere_result(item)
  local rec = type(item.state) == "string" and require("cjson.safe").decode(item.state)
  if type(rec) ~= "table" then rec = {} end
  local owner = item.owner or item.last_owner
  self.driven_by = owner
  if item.phase == phases.DONE then
    self:emit("done_elsewhere", nil, { owner = owner, phase = item.phase, status = rec.status,
      starts = rec.starts, resumes = rec.resumes })
    return { ok = true, arn = self.arn, id = self.id, owner = owner, elsewhere = true, events = self.events,
             starts = math.floor(tonumber(rec.starts) or 0), resumes = math.floor(tonumber(rec.resumes) or 0),
             start_type = rec.start_type,
             status = rec.status, elapsed = self:now() - self.t0 }
  end
  local code = type(rec.last_error) == "string" and rec.last_error
    or (item.phase == phases.STOPPED and "Stopped" or "Failed")
  local err = werr(code, string_format("%s ended %s under %s%s", self:name(), item.phase, tostring(owner),
    type(rec.last_error) == "string" and (" (" .. rec.last_error .. ")") or ""), { owner = owner, elsewhere = true })
  self:emit("error", nil, { code = err.code, kind = err.kind, message = err.message, owner = owner })
  err.events, err.arn, err.id = self.events, self.arn, self.id
  return nil, err
end

-- Another owner holds the lease of a shared journal: looks at the item again
-- every third of the lease (or just after it expires) and takes it when it
-- is free. Returns true (held) | false, res, err (the run ended under the
-- other owner: its result) | nil, err.
function Session:wait_lease(j)
  local store = j.store
  while true do
    if j.ended then return false, self:elsewhere_result(j.ended) end
    if not j.held then return true end
    local item = j.held
    if not store.wait then
      return nil, werr("Locked", string_format("%s is driven by %s (lease in DynamoDB table %s)", self:name(),
        tostring(item.owner), store.table), { owner = item.owner })
    end
    self.seen_elsewhere = true
    self.driven_by = item.owner
    if self.held_by ~= item.owner then
      self.held_by = item.owner
      self:emit("held_elsewhere", nil, { owner = item.owner, lease_expires = item.lease_expires, phase = item.phase,
                                         fence = item.fence })
    end
    if self.fleet then self.fleet:unadmit(self) end
    if self:remaining() <= 0 then
      return nil, werr("Timeout", string_format("%s was still driven by %s after %s s", self:name(),
        tostring(item.owner), tostring(self.timeout)), { owner = item.owner })
    end
    local wait = store:check_every()
    local expiry = (tonumber(item.lease_expires) or 0) - store.wall() + 0.05
    if expiry > 0 and expiry < wait then wait = expiry end
    self.waiting_lease = true
    self:pause(wait)
    self.waiting_lease = false
    if self.fleet then self.fleet:admit(self) end
    local ok, err = j:take()
    if not ok then return nil, err end
  end
end

-- Before each DMS call for this replication: true | nil, err (LeaseLost:
-- the lease of the shared journal may have lapsed and could not be renewed;
-- nothing more is sent for it).
function Session:guard()
  local j = self.journal
  if not j then return true end
  return j:check()
end

-- takes the lock and loads the state; returns true | nil, err | false, res,
-- err (a shared journal shows the run ended under another owner: its result)
function Session:open()
  local store = self.store
  local j, err = journal.open({ arn = self.arn, state_file = self.opts.state_file, lock_dir = self.opts.lock_dir,
                                lock = self.opts.lock ~= false and (self.lock_mode or true), store = store,
                                -- an operator's stop ("try") goes through whatever another host did
                                ended = store and self.lock_mode ~= "try"
                                  and function(item) return self:ended_elsewhere(item) end or nil })
  if not j then return nil, err end
  self.journal = j
  if store and not j.bypassed then
    local held, res, rerr = self:wait_lease(j)
    if held == false then
      self.journal = nil
      return false, res, rerr
    end
    if not held then
      self.journal = nil
      return nil, res
    end
    self.driven_by = store.owner
    self:emit("lease_taken", nil, { owner = store.owner, fence = j.fence, from = j.taken_from,
                                    lease = store.lease })
  end
  if j.bypassed then
    self:emit("warning", nil, { message = j.bypassed.message .. "; going ahead without its lock and state file",
                                code = "Locked" })
  end
  local ok
  ok, err = self:load()
  if not ok then return nil, err end
  self.state.created_at = self.state.created_at or self:now()
  self.opened = true
  return true
end

function Session:close()
  if self.journal then
    self.journal:close()
    self.journal = nil
  end
end

---------------------------------------------------------------------------
-- Talking to DMS

function Session:describe_once()
  if self.fleet then return self.fleet:look(self) end
  local ok, gerr = self:guard()
  if not ok then return nil, gerr end
  local resp, err = self.client:describe_replications({
    Filters = { { Name = "replication-config-arn", Values = { self.arn } } },
  }, self:call_options())
  if not resp then return nil, err end
  local repl = type(resp.Replications) == "table" and resp.Replications[1]
  if type(repl) ~= "table" then
    return nil, errors.new("service", "ResourceNotFoundFault", "no replication for " .. self.arn)
  end
  return repl
end

function Session:timeout_error(what)
  return werr("Timeout", string_format("%s did not %s within %s s", self:name(), what,
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
    local throttled = err.throttling or errors.is_throttling(err.code)
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
  if R.capacity_released(repl) then return repl end
  self:emit("capacity_wait", repl, { message = "waiting for the capacity of the previous run to be released" })
  return self:poll_until(repl, R.capacity_released, "release its capacity")
end

-- The latest moment a request sent at `since` can still reach DMS: the
-- client's whole-request timeout bounds how long it travels.
function Session:request_timeout()
  return type(self.client.transport_opts) == "table" and self.client.transport_opts.timeout or 60
end

-- The latest moment a request sent at `since` can still reach DMS: the
-- whole-request timeout of the process that sent it (`window`, saved with the
-- request: a runbook run again with a shorter timeout still waits out the
-- longer one of the process it follows) or of this process, the longer.
function Session:in_flight_until(since, window)
  if type(since) ~= "number" then return -math.huge end
  local t = self:request_timeout()
  if type(window) == "number" and window > t then t = window end
  return since + t
end

-- Looks at the replication until `shown(repl)` holds, or until a request sent
-- at `since` cannot be in flight any more and max_stale_polls describes have
-- shown nothing (reads of DMS lag behind what it applied). The patience is the
-- same for an attempt of this process whose answer was lost and for one a
-- killed process left pending. Returns repl, shown | nil, err.
function Session:await(repl, shown, since, what, window)
  local looks = 0
  local settle = self:in_flight_until(since, window)
  while true do
    if repl then
      if shown(repl) then return repl, true end
      looks = looks + 1
      if looks >= M.DEFAULTS.max_stale_polls and self:now() >= settle then return repl, false end
      if self:remaining() <= 0 then return nil, self:timeout_error(what) end
      self:pause(self:jitter(self.interval))
    end
    local err
    repl, err = self:poll_describe()
    if not repl then return nil, err end
  end
end

-- a start sent when the replication looked like `before` (R.before)
function Session:await_start(before, since, repl, window)
  return self:await(repl, function(r) return R.started_since(before, r) end, since, "show the start sent earlier",
    window)
end

-- a stop sent when the replication looked like `before`
function Session:await_stop(before, since, repl, window)
  return self:await(repl, function(r)
    if not ACTIVE[r.Status] or r.Status == "stopping" then return true end
    local sd = stats(r).StopDate
    return sd ~= nil and (before.stop_date == nil or sd > before.stop_date + 0.0005)
  end, since, "show the stop sent earlier", window)
end

-- a run we did not start is under way: from now on it is ours to watch
function Session:adopt(repl)
  if self.fleet then self.fleet:hold_slot(self) end
  if self.ours then return true end
  self.ours = true
  return self:save({ run_started = true, phase = phases.WAITING, run_start_date = stats(repl).StartDate })
end

function Session:confirm(start_type, repl, is_resume, how)
  if self.fleet then self.fleet:hold_slot(self) end
  local s = self.state
  self.ours = true
  self.confirmed_here = true
  self.unknown_attempt = false
  self.repl = repl
  local ok, err = self:save({
    start_pending = false, start_type = start_type, run_started = true,
    run_start_date = stats(repl).StartDate, phase = phases.WAITING,
    resumes = s.resumes + (is_resume and 1 or 0), starts = s.starts + (is_resume and 0 or 1),
  })
  if not ok then return nil, err end
  self:emit("started", repl, { start_type = start_type, resume = is_resume or nil, how = how })
  self:observe(repl, true)
  return repl
end

-- Sends one StartReplication of `start_type` (after the capacity is released).
-- Returns the replication (started, or as described again when DMS refused so
-- the caller decides again) | nil, err.
function Session:send_start(start_type, repl, is_resume, explicit)
  local err
  repl, err = self:wait_capacity(repl)
  if not repl then return nil, err end
  if not STARTABLE[repl.Status] then return repl end      -- it moved meanwhile: decide again
  if self.fleet and not self.slot then
    -- a start (or resume) takes one of the fleet's slots, waiting its turn
    local fresh, ferr = self.fleet:take_slot(self, repl)
    if not fresh then return nil, ferr end
    if fresh ~= repl then
      -- it waited: go on only when DMS shows the replication as it was
      if fresh.Status ~= repl.Status or R.started_since(R.before(repl), fresh)
          or not R.capacity_released(fresh) then
        return fresh
      end
      repl = fresh
    end
  end

  local params = { ReplicationConfigArn = self.arn, StartReplicationType = start_type }
  if self.assessment and not is_resume then params.PremigrationAssessmentSettings = self.assessment end
  if not is_resume and type(self.opts.cdc) == "table" then
    for _, k in ipairs({ "CdcStartTime", "CdcStartPosition", "CdcStopPosition" }) do
      params[k] = self.opts.cdc[k]
    end
  end
  if start_type == "reload-target" then
    local msg = "RELOAD-TARGET requested for " .. self:name() .. ": the target tables are dropped or truncated "
      .. "and loaded again from the source"
    self:log("warn", msg, { arn = self.arn })
    self:emit("warning", repl, { message = msg, start_type = start_type })
  end

  -- written before the request leaves: a crash from here on is reconciled by describing
  local s = self.state
  local ok, serr = self:save({
    phase = is_resume and phases.RESUMING or phases.STARTING, start_sent = true, start_pending = true,
    pending_type = start_type, pending_resume = is_resume or false, before = R.before(repl),
    start_attempts = (s.start_attempts or 0) + 1, pending_since = self:now(),
    pending_window = self:request_timeout(),
  })
  if not ok then return nil, serr end
  self:emit(is_resume and not explicit and "resume_sent" or "start_sent", repl, {
    start_type = start_type, attempt = is_resume and (s.resumes + 1) or s.start_attempts,
    assessment_settings = params.PremigrationAssessmentSettings and true or nil,
  })

  local resp, gerr
  resp, gerr = self:guard()
  if not resp then return nil, gerr end
  resp, err = self.client:start_replication(params, self:call_options())
  if resp and type(resp.Replication) == "table" then
    return self:confirm(start_type, resp.Replication, is_resume, "response")
  end
  err = err or errors.transport("MalformedResponse", "no Replication in the answer", true)

  if err.outcome_unknown or err.not_resent then
    -- StartReplication has no idempotency token: look instead of sending it again
    self.unknown_attempt = true
    self:emit("start_unknown", repl, { code = err.code, message = err.message, start_type = start_type })
    local fresh, taken = self:await_start(s.before, s.pending_since, nil, s.pending_window)
    if not fresh then return nil, taken end
    if taken then return self:confirm(start_type, fresh, is_resume, "described") end
    -- no sign of it for as long as it could take: it did not take effect; the caller decides again
    ok, serr = self:save({ start_pending = false })
    if not ok then return nil, serr end
    return fresh
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
    -- DMS names the state it refused in ("Replication is in RUNNING state and
    -- cannot start"): a run under way, after an earlier attempt of ours whose
    -- outcome is unknown, is that attempt, however long the reads lag
    local refused_in = R.refused_in(err.message)
    local under_way = refused_in and R.ACTIVE[refused_in] and refused_in ~= "stopping"
    if self.unknown_attempt and under_way then
      fresh, moved = self:poll_describe()
      if not fresh then return nil, moved end
      moved = true
    elseif self.unknown_attempt then
      -- an earlier attempt of ours may be what DMS refuses for: as patient as for that attempt
      fresh, moved = self:await_start(s.before, nil)
      if not fresh then return nil, moved end
    else
      for look = 1, 2 do
        if look == 2 then self:pause(self:jitter(self.interval)) end
        local derr
        fresh, derr = self:poll_describe()
        if not fresh then return nil, derr end
        moved = R.started_since(s.before, fresh)
        if moved or not R.capacity_released(fresh) then break end
      end
    end
    if moved and self.unknown_attempt then
      if not R.started_since(s.before, fresh) then self.start_unseen = s.before end   -- reads still lag
      return self:confirm(start_type, fresh, is_resume, "refused after an earlier attempt")
    end
    self:emit("start_refused", fresh, { code = err.code, message = err.message, start_type = start_type })
    local refused = werr("StartRefused", string_format("DMS refused StartReplication %s of %s: %s", start_type,
      self:name(), tostring(err.message)), { replication = fresh, start_type = start_type,
      service_code = err.code, service_message = err.message })
    if not moved and R.capacity_released(fresh) then return nil, refused end
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
    self:emit(errors.is_throttling(err.code) and "throttled" or "start_refused", repl,
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
  local fresh, taken = self:await_start(s.before or {}, s.pending_since, repl, s.pending_window)
  if not fresh then return nil, taken end
  if taken then
    return self:confirm(s.pending_type, fresh, s.pending_resume, "described after a restart")
  end
  local ok, err = self:save({ start_pending = false })
  if not ok then return nil, err end
  return fresh
end

-- the start type for a replication this run has not started yet
function Session:choose_start_type(repl)
  local explicit = self.opts.start_type
  if explicit and explicit ~= "start-replication" and repl.Status == "created" then
    return nil, werr("NotStarted", self:name() .. " has never run: its first start is start-replication",
      { replication = repl })
  end
  if explicit then return explicit end
  if repl.Status == "created" or (repl.StartReplicationType == nil and stats(repl).StartDate == nil) then
    return "start-replication"
  end
  local class = R.classify(repl, self.resume_on)
  local never_loaded = stats(repl).FullLoadStartDate == nil and repl.RecoveryCheckpoint == nil
  if class == "assessment_failed" and never_loaded then
    return "start-replication"     -- the previous start stopped at its assessment: nothing was loaded
  end
  if class == "fatal" or class == "assessment_failed" then
    return nil, werr("FatalStop", string_format("%s %s with %s; it is not resumed automatically: fix the "
      .. "cause, then resume it explicitly (start_type = \"resume-processing\")", self:name(), repl.Status,
      repl.StopReason or "a fatal error"), { replication = repl })
  end
  if repl.ReplicationType == "full-load" then
    return nil, werr("StartTypeRequired", self:name() .. " is a full-load replication that has run: starting it "
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
  local class = R.classify(repl, self.resume_on)
  local extra = { replication = repl, stop_reason = repl.StopReason, failure_messages = repl.FailureMessages }
  if class == "assessment_failed" then
    local a = R.current_assessment(repl)
    return werr("AssessmentFailed", string_format("the premigration assessment of %s failed%s", self:name(),
      a and a.LastFailureMessage and (": " .. a.LastFailureMessage) or ""), extra)
  end
  if class == "fatal" then
    local fm = type(repl.FailureMessages) == "table" and repl.FailureMessages[1]
    return werr("FatalStop", string_format("%s %s (%s)%s; it is not resumed", self:name(), repl.Status,
      tostring(repl.StopReason), fm and (": " .. fm) or ""), extra)
  end
  if class == "recoverable" then
    if not allow_resume or not self.resume_enabled then
      return werr("RecoverableStop", string_format("%s stopped (%s): it can be resumed", self:name(),
        tostring(repl.StopReason)), extra)
    end
    if self.state.resumes >= self.max_resumes then
      return werr("ResumeLimit", string_format("%s stopped (%s) after %d automatic resumes", self:name(),
        tostring(repl.StopReason), self.state.resumes), extra)
    end
    return nil
  end
  return werr("Stopped", string_format("%s stopped (%s) before it reached %s", self:name(),
    tostring(repl.StopReason), self.wait_for), extra)
end

-- a view that predates our own start (eventually consistent reads); after
-- max_stale_polls such views the run is no longer taken as ours, and the caller
-- decides again from what DMS shows
function Session:stale(repl)
  -- a start DMS showed only by refusing another one: every view that does not
  -- show it yet predates it
  local unseen = self.start_unseen
  if unseen and self.ours and STARTABLE[repl.Status] then
    if not R.started_since(unseen, repl) then return true end
    self.start_unseen = nil
  end
  if not self.ours or not R.predates(repl, self.state.run_start_date) then return false end
  self.stale_polls = (self.stale_polls or 0) + 1
  -- a start DMS accepted during this call is waited for (until the deadline)
  if self.confirmed_here or self.stale_polls <= M.DEFAULTS.max_stale_polls then return true end
  self.ours = false
  self.state.run_started = false
  return false
end

-- polls until the target is reached or the run ends
function Session:watch(repl, resuming)
  return self:poll_until(repl, function(r)
    if R.reached(self.wait_for, r, true, resuming, self.resume_on) then return true end
    return STARTABLE[r.Status] and not self:stale(r)
  end, "reach " .. self.wait_for)
end

function Session:outcome(repl, phase)
  local ok, err = self:save({ phase = phase or phases.DONE })
  if not ok then return self:fail(err) end
  self:emit(phase == phases.WAITING and "ready" or "done", repl, {
    starts = self.state.starts, resumes = self.state.resumes, start_type = self.state.start_type })
  self:close()
  return {
    ok = true, arn = self.arn, id = self.id, replication = repl, events = self.events, starts = self.state.starts,
    resumes = self.state.resumes, start_type = self.state.start_type,
    assessment = R.current_assessment(repl), elapsed = self:now() - self.t0,
    table_errors = tables.reported(self), owner = self.store and self.store.owner or nil,
  }
end

-- failures that say nothing about the run: the saved phase stays
local KEEP_PHASE = { Timeout = true, Locked = true, StateMismatch = true, StateFile = true, LockFailed = true,
                     PhaseTransition = true, LeaseLost = true, JournalUnavailable = true, JournalConflict = true }

function Session:fail(err)
  if type(err) ~= "table" then err = werr("Error", tostring(err)) end
  if self.opened and not KEEP_PHASE[err.code] then
    if err.kind == "workflow" then
      self:save({ phase = phases.FAILED, last_error = err.code })
    else
      self:save({ last_error = err.code })
    end
  end
  if self.store and err.owner == nil then err.owner = self.driven_by end
  self:emit("error", err.replication or self.repl, { code = err.code, kind = err.kind, message = err.message,
                                                      owner = err.owner })
  if err.replication == nil then err.replication = self.repl end
  err.events = self.events
  err.arn, err.id = self.arn, self.id
  self:close()
  return nil, err
end

function Session:first_look()
  local repl, err = self:poll_describe(true)
  if not repl then return nil, err end
  self:emit("described", repl, { phase = self.state.phase, start_sent = self.state.start_sent,
    start_type = repl.StartReplicationType })
  tables.watch(self, repl)
  return self:reconcile(repl)
end

---------------------------------------------------------------------------
-- The steps

-- drive the replication to self.wait_for: start, watch, resume
function Session:run_steps()
  local repl, err = self:first_look()
  if not repl then return self:fail(err) end
  while true do
    local status = repl.Status
    if ACTIVE[status] then
      local ok, serr = self:adopt(repl)
      if not ok then return self:fail(serr) end
      if R.reached(self.wait_for, repl, true, true, self.resume_on) then return self:outcome(repl) end
      repl, err = self:watch(repl, true)
      if not repl then return self:fail(err) end
    elseif STARTABLE[status] and self.ours and self:stale(repl) then
      repl, err = self:watch(repl, true)
      if not repl then return self:fail(err) end
    elseif STARTABLE[status] and self.ours then
      if R.reached(self.wait_for, repl, true, true, self.resume_on) then
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
      return self:fail(werr("InvalidState", self:name() .. " is being deleted", { replication = repl }))
    else
      -- modifying or a status this library does not know: look again later
      if self:remaining() <= 0 then return self:fail(self:timeout_error("reach " .. self.wait_for)) end
      self:pause(self:jitter(self.interval))
      repl, err = self:poll_describe()
      if not repl then return self:fail(err) end
    end
    if self:remaining() <= 0 and repl and not R.reached(self.wait_for, repl, self.ours, true, self.resume_on) then
      return self:fail(self:timeout_error("reach " .. self.wait_for))
    end
  end
end

-- send a start (or find the replication started); do not wait
function Session:start_steps(is_resume)
  local repl, err = self:first_look()
  if not repl then return self:fail(err) end
  while true do
    local status = repl.Status
    if ACTIVE[status] and status ~= "stopping" then
      local ok, serr = self:adopt(repl)
      if not ok then return self:fail(serr) end
      return self:outcome(repl, phases.WAITING)
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
          terr = werr("NotStarted", self:name() .. " has never run: it cannot be resumed", { replication = repl })
        elseif R.classify(repl, self.resume_on) == "fatal" and not self.opts.after_fatal then
          terr = werr("FatalStop", string_format("%s %s (%s): resuming after a fatal error needs after_fatal = true",
            self:name(), status, tostring(repl.StopReason)), { replication = repl })
        end
      else
        start_type, terr = self:choose_start_type(repl)
      end
      if terr then return self:fail(terr) end
      -- an explicit resume counts as a resume, as an automatic one does
      repl, err = self:send_start(start_type, repl, is_resume == true, true)
      if not repl then return self:fail(err) end
    elseif status == "deleting" then
      return self:fail(werr("InvalidState", self:name() .. " is being deleted", { replication = repl }))
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
  local repl, err = self:first_look()
  if not repl then return self:fail(err) end
  self.ours = true
  while true do
    if R.reached(self.wait_for, repl, true, false, self.resume_on) then return self:outcome(repl) end
    if STARTABLE[repl.Status] and not self:stale(repl) then
      if repl.Status == "created" then
        return self:fail(werr("NotStarted", self:name() .. " has not been started", { replication = repl }))
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
  if not (ACTIVE[repl.Status] and R.current_assessment(repl)) then
    if ACTIVE[repl.Status] then
      return self:fail(werr("InvalidState", self:name() .. " is " .. repl.Status .. " without an assessment: "
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
    local a = R.current_assessment(r)
    return (a and R.ASSESSMENT_DONE[a.Status]) or r.Status == "running" or (STARTABLE[r.Status] and not self:stale(r))
  end, "finish its premigration assessment")
  if not repl then return self:fail(err) end
  local a = R.current_assessment(repl)
  if (a and (a.Status == "failed" or a.Status == "error")) or STARTABLE[repl.Status] then
    local why = STARTABLE[repl.Status] and self:ended(repl, false)
    if not why or (a and (a.Status == "failed" or a.Status == "error") and why.code ~= "AssessmentFailed") then
      why = werr("AssessmentFailed", string_format("the premigration assessment of %s %s%s", self:name(),
        a and a.Status or "did not finish", a and a.LastFailureMessage and (": " .. a.LastFailureMessage) or ""),
        { replication = repl })
    end
    return self:fail(why)
  end
  return self:outcome(repl, phases.WAITING)
end

-- Sends StopReplication (saved first: a crash is reconciled by describing),
-- never twice while the first may still show: an answer lost, or a refusal,
-- is followed by describes for as long as a start's would be.
-- Returns the replication | nil, err.
function Session:send_stop(repl)
  local before = { status = repl.Status, stop_date = stats(repl).StopDate }
  local ok, serr = self:save({ phase = phases.STOPPING, stop_sent = true, stop_pending = true,
                               stop_since = self:now(), stop_window = self:request_timeout(),
                               before_stop = before })
  if not ok then return nil, serr end
  self:emit("stop_sent", repl)
  local resp, err = self:guard()
  if not resp then return nil, err end
  resp, err = self.client:stop_replication({ ReplicationConfigArn = self.arn }, self:call_options())
  if resp and type(resp.Replication) == "table" then
    self:observe(resp.Replication)
    ok, serr = self:save({ stop_pending = false })
    if not ok then return nil, serr end
    return resp.Replication
  end
  if not (err and (err.outcome_unknown or err.not_resent or err.code == "InvalidResourceStateFault")) then
    self:save({ stop_pending = false })
    return nil, err or errors.transport("MalformedResponse", "no Replication in the answer", true)
  end
  -- look at what happened instead of sending it again
  self:emit("stop_unknown", repl, { code = err.code, message = err.message })
  local fresh, shown = self:await_stop(before, self.state.stop_since, nil, self.state.stop_window)
  if not fresh then return nil, shown end
  if not shown then
    -- no sign of it for as long as it could take: it did not reach DMS
    self:emit("stop_sent", fresh, { attempt = 2 })
    resp, err = self:guard()
    if not resp then return nil, err end
    resp, err = self.client:stop_replication({ ReplicationConfigArn = self.arn }, self:call_options())
    if not resp and err.code ~= "InvalidResourceStateFault" and not err.outcome_unknown then
      return nil, err
    end
    fresh, err = self:poll_describe()
    if not fresh then return nil, err end
  end
  ok, serr = self:save({ stop_pending = false })
  if not ok then return nil, serr end
  return fresh
end

-- StopReplication (unless stopped already), then wait for wait_for:
-- "stopping" (no wait), "stopped" (default) or "deprovisioned" (capacity released)
function Session:stop_steps()
  local target = self.wait_for
  local repl, err = self:first_look()
  if not repl then return self:fail(err) end
  local s = self.state
  if s.stop_pending then
    -- a stop an earlier process sent before it could read the answer
    local shown
    repl, shown = self:await_stop(s.before_stop or {}, s.stop_since, repl, s.stop_window)
    if not repl then return self:fail(shown) end
    local ok, serr = self:save({ stop_pending = false })
    if not ok then return self:fail(serr) end
  end
  if ACTIVE[repl.Status] and repl.Status ~= "stopping" then
    repl, err = self:send_stop(repl)
    if not repl then return self:fail(err) end
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
  return self:outcome(repl, phases.STOPPED)
end

return M
