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
-- The package, in the order of the loop:
--   replication.lua  reading a Replication (pure): classify, reached, started_since
--   phases.lua       the saved phases and their allowed transitions
--   journal.lua      state file and per-replication lock
--   session.lua      describe -> decide -> act -> save, and where each promise is kept
--   events.lua       replication -> event record
--   (this file)      the public functions and the checks of their options
--
-- What the workflow promises, so that no data is lost:
--   * it describes the replication before it acts, and picks the start type from
--     what it finds: start-replication for a first run, resume-processing for a
--     CDC replication that had run; reload-target only when asked for explicitly
--     with allow_reload_target = true;
--   * a StartReplication whose outcome is unknown is never sent again blindly,
--     and one DMS refuses counts as started only when a describe shows it;
--   * a FATAL_ERROR stop is never resumed; recoverable stops are, a bounded
--     number of times, with backoff;
--   * before a start or resume it waits until the capacity of the previous run
--     is released;
--   * with a state file, each transition is written atomically before the
--     action it announces, so a runbook killed at any point and run again goes
--     on where it was;
--   * a lock per replication keeps two runbooks from driving one replication.
--
-- Every public function returns a result or nil, err (err.kind "workflow" for
-- the workflow's own outcomes: AssessmentFailed, FatalStop, Timeout, Locked,
-- ResumeLimit, Stopped, StartRefused, ...); none raises on a runtime failure.
local type, pairs, ipairs, tostring, pcall = type, pairs, ipairs, tostring, pcall
local table_concat = table.concat

local errors = require "dms.errors"
local copy = require("dms.util").copy
local R = require "dms.workflow.replication"
local session = require "dms.workflow.session"
local journal = require "dms.workflow.journal"
local tables = require "dms.workflow.tables"
local core = require "dms.core"
local model = require "dms.model"

local M = { _VERSION = "0.2.0" }

-- the vocabulary, for callers
M.STARTING_STATUSES, M.STARTING, M.ACTIVE, M.STARTABLE = R.STARTING_STATUSES, R.STARTING, R.ACTIVE, R.STARTABLE
M.RECOVERABLE_REASONS, M.FINISHED_REASONS, M.ASSESSMENT_DONE = R.RECOVERABLE_REASONS, R.FINISHED_REASONS,
  R.ASSESSMENT_DONE
M.classify, M.reached, M.started_since = R.classify, R.reached, R.started_since
M.capacity_released, M.current_assessment = R.capacity_released, R.current_assessment
M.DEFAULTS = session.DEFAULTS

M.START_TYPES = { ["start-replication"] = true, ["resume-processing"] = true, ["reload-target"] = true }
M.WAIT_FOR = { running = true, ["full-load-complete"] = true, stopped = true }
M.STOP_WAIT_FOR = { stopping = true, stopped = true, deprovisioned = true }

local function verr(message)
  return errors.new("validation", "InvalidOption", message)
end

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

-- cdc = { CdcStartTime =, CdcStartPosition =, CdcStopPosition = }: checked as
-- StartReplication checks them (one start point at most), before any request
local CDC_KEYS = { CdcStartTime = true, CdcStartPosition = true, CdcStopPosition = true }
local CHECK_ARN = "arn:aws:dms:us-east-1:123456789012:replication-config:CHECK"
local function check_cdc(cdc)
  if cdc == nil then return nil end
  if type(cdc) ~= "table" then return verr("cdc must be a table { CdcStartTime =, CdcStartPosition =, "
    .. "CdcStopPosition = }") end
  for k in pairs(cdc) do
    if not CDC_KEYS[k] then return verr("cdc." .. tostring(k) .. " is not one of CdcStartTime, CdcStartPosition, "
      .. "CdcStopPosition") end
  end
  local params = { ReplicationConfigArn = CHECK_ARN, StartReplicationType = "start-replication" }
  for k in pairs(CDC_KEYS) do params[k] = cdc[k] end
  local ok, req, err = pcall(core.build, model, "StartReplication", params)
  if not ok then return verr("cdc: " .. tostring(req)) end
  if not req then
    err.message = "cdc: " .. tostring(err.message)
    return err
  end
end

-- Checks the options of a workflow function and returns a normalized copy
-- (never the caller's table) | nil, err. `targets` is the set wait_for may be in.
local function check_options(client, opts, targets, default_target)
  if type(client) ~= "table" then return nil, verr("client must be a dms client") end
  if type(opts) == "string" then opts = { replication_config_arn = opts } end
  if type(opts) ~= "table" then return nil, verr("opts must be a table") end
  local o = copy(opts)
  o.replication_config_arn = o.replication_config_arn or o.arn
  local arn = o.replication_config_arn
  if type(arn) ~= "string" or arn == "" then return nil, verr("replication_config_arn is required") end
  o.wait_for = o.wait_for or default_target
  if not targets[o.wait_for] then
    if targets == M.STOP_WAIT_FOR then
      return nil, verr("wait_for of a stop must be stopping, stopped or deprovisioned")
    end
    return nil, verr("wait_for must be running, full-load-complete or stopped")
  end
  if o.assessment ~= nil and o.assessment ~= false and type(o.assessment) ~= "table" then
    return nil, verr("assessment must be a table of PremigrationAssessmentSettings or false")
  end
  local resume = o.resume
  if resume ~= nil and resume ~= false and type(resume) ~= "table" then
    return nil, verr("resume must be a table or false")
  end
  resume = resume or {}
  local poll = o.poll or {}
  if type(poll) ~= "table" then return nil, verr("poll must be a table") end
  local e = check_number(poll.interval, "poll.interval") or check_number(poll.timeout, "poll.timeout")
    or check_number(poll.max_interval, "poll.max_interval")
    or check_number(resume.max_attempts, "resume.max_attempts") or check_number(resume.backoff, "resume.backoff")
    or check_number(resume.max_backoff, "resume.max_backoff")
  if e then return nil, e end
  if resume.on ~= nil and type(resume.on) ~= "table" then return nil, verr("resume.on must be a list of reasons") end
  for _, k in ipairs({ "state_file", "lock_dir" }) do
    if o[k] ~= nil and type(o[k]) ~= "string" then return nil, verr(k .. " must be a string") end
  end
  for _, k in ipairs({ "on_event", "sleep", "clock", "random" }) do
    if o[k] ~= nil and type(o[k]) ~= "function" then return nil, verr(k .. " must be a function") end
  end
  if o.start_type ~= nil and not M.START_TYPES[o.start_type] then
    return nil, verr("start_type must be start-replication, resume-processing or reload-target")
  end
  if o.start_type == "reload-target" and o.allow_reload_target ~= true then
    return nil, session.werr("ReloadNotAllowed", "reload-target drops and reloads the target tables: it needs "
      .. "allow_reload_target = true")
  end
  e = tables.check_option(o.tables) or check_cdc(o.cdc)
  if e then return nil, e end
  o.assessment = normalize_assessment(o.assessment)
  return o
end

-- every wait_for a step without a target of its own accepts
local ANY_TARGET = {}
for k in pairs(M.WAIT_FOR) do ANY_TARGET[k] = true end
for k in pairs(M.STOP_WAIT_FOR) do ANY_TARGET[k] = true end

-- A public function: check the options, open the session (lock, state), run
-- `method`; nothing raises past this point.
local function step(method, targets, default_target, lock_mode)
  return function(client, opts)
    local o, err = check_options(client, opts, targets, default_target)
    if not o then return nil, err end
    local s = session.new(client, o)
    s.lock_mode = lock_mode
    local ok, oerr = s:open()
    if not ok then return s:fail(oerr) end
    local fine, res, res_err = pcall(method, s)
    if not fine then
      return s:fail(session.werr("InternalError", tostring(res)))
    end
    return res, res_err
  end
end

local Session = session.Session

-- workflow.run(client, opts) -> outcome | nil, err: describe, start (with the
-- assessment), wait for opts.wait_for, resume after recoverable stops
M.run = step(Session.run_steps, M.WAIT_FOR, "running")
-- workflow.start(client, opts) -> outcome | nil, err: sends the start its state
-- calls for (or finds the replication started), without waiting
M.start = step(Session.start_steps, ANY_TARGET, "running")
-- workflow.resume(client, opts): resume-processing a stopped replication
M.resume = step(function(s) return s:start_steps(true) end, ANY_TARGET, "running")
-- workflow.wait(client, opts): polls until opts.wait_for; never starts or resumes
M.wait = step(Session.wait_steps, M.WAIT_FOR, "running")
-- workflow.assess(client, opts): starts with the premigration assessment and
-- returns once its result is known (outcome.assessment)
M.assess = step(function(s)
  s.assessment = s.assessment or normalize_assessment({})
  return s:assess_steps()
end, ANY_TARGET, "running")
-- workflow.stop(client, opts): StopReplication, then waits for opts.wait_for
-- ("stopping", "stopped" or "deprovisioned"). An operator's stop goes through
-- even while another runbook holds the replication's lock (without touching
-- that runbook's state file); the runbook then sees a stop on request, which
-- it never resumes.
M.stop = step(Session.stop_steps, M.STOP_WAIT_FOR, "stopped", "try")

-- workflow.describe(client, arn | opts) -> Replication | nil, err
function M.describe(client, opts)
  local o, err = check_options(client, opts, ANY_TARGET, "running")
  if not o then return nil, err end
  local s = session.new(client, o)
  local ok, repl, derr = pcall(s.describe_once, s)
  if not ok then return nil, session.werr("InternalError", tostring(repl)) end
  return repl, derr
end

-- workflow.tables(client, arn | opts) -> result | nil, err: the table
-- statistics of the replication, every page (dms.workflow.tables.list);
-- workflow.reload_tables(client, opts): ReloadReplicationTables of named tables
local function guarded(f)
  return function(...)
    local ok, res, err = pcall(f, ...)
    if not ok then return nil, session.werr("InternalError", tostring(res)) end
    return res, err
  end
end
M.tables = guarded(tables.list)
M.reload_tables = guarded(tables.reload)

-- The lock file of the replication these options name (opts.lock_dir, else
-- $XDG_RUNTIME_DIR, $TMPDIR or /tmp).
function M.lock_path(opts)
  local arn = type(opts) == "string" and opts or opts.replication_config_arn or opts.arn
  return journal.lock_path(arn, type(opts) == "table" and opts.lock_dir or nil)
end

M.lock_acquire, M.lock_release = journal.lock_acquire, journal.lock_release

-- Presenting events: one line for a person (dms-runbook's terminal output)
function M.format_event(ev) return require("dms.runbook.format").event(ev) end
function M.progress_line(ev) return require("dms.runbook.format").progress_line(ev) end
function M.progress_text(ev) return require("dms.runbook.format").progress_text(ev) end
function M.duration(seconds) return require("dms.runbook.format").duration(seconds) end

return M
