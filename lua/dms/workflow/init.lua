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
--   fleet.lua        sessions driven together: one paged DescribeReplications
--                    round for all of them, concurrency slots, identifiers
--   events.lua       replication -> event record
--   (this file)      the public functions and the checks of their options
--
-- Many replications from one runbook:
--
--   local outcome, err = workflow.run_many(client, {
--     replication_config_arns = { "orders-cdc", arn2, ... },  -- ARNs or identifiers
--     concurrency = 10,              -- most replications between their start and the target
--     state_dir = "/var/lib/runbooks/wave-1",                 -- one state file per replication
--     ...                            -- and every option of workflow.run
--   })
--   -- outcome.ok: every one reached the target; outcome.results[arn]: each one's
--   -- outcome (as workflow.run returns it, its events without the progress
--   -- events, which on_event sees) or its error
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
--   * a lock per replication keeps two runbooks from driving one replication:
--     an flock on this host (the files journal, the default), or a lease in a
--     DynamoDB table that runbooks on several hosts share
--     (journal = { dynamodb = { table = "dms-runbooks" } }, owner = "..."),
--     with the state in the same item; see journal_dynamodb.lua.
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
local fleet = require "dms.workflow.fleet"
local journal_dynamodb = require "dms.workflow.journal_dynamodb"

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

-- an ARN, or an identifier DMS accepts
local function check_name(name, what)
  if type(name) ~= "string" or name == "" then return verr(what .. " is required") end
  if not fleet.is_arn(name) and not fleet.valid_identifier(name) then
    return verr(what .. " '" .. name .. "' is neither an ARN nor a replication config identifier")
  end
end

-- Checks the options of a workflow function and returns a normalized copy
-- (never the caller's table) | nil, err. `targets` is the set wait_for may be in;
-- with `many`, the options of a fleet (replication_config_arns, concurrency, state_dir).
local function check_options(client, opts, targets, default_target, many)
  if type(client) ~= "table" then return nil, verr("client must be a dms client") end
  if type(opts) == "string" and not many then opts = { replication_config_arn = opts } end
  if type(opts) ~= "table" then return nil, verr("opts must be a table") end
  local o = copy(opts)
  if many then
    local list = o.replication_config_arns
    if type(list) ~= "table" or #list == 0 then
      return nil, verr("replication_config_arns must be a list of ARNs or identifiers")
    end
    o.replication_config_arns = copy(list)
    for i = 1, #list do
      local e = check_name(list[i], "replication_config_arns[" .. i .. "]")
      if e then return nil, e end
    end
    if o.state_file ~= nil then return nil, verr("a fleet keeps one state file per replication: use state_dir") end
    local c = o.concurrency
    if c ~= nil and (type(c) ~= "number" or c < 1 or c % 1 ~= 0) then
      return nil, verr("concurrency must be a whole number >= 1")
    end
    if o.on_round ~= nil and type(o.on_round) ~= "function" then return nil, verr("on_round must be a function") end
  else
    o.replication_config_arn = o.replication_config_arn or o.arn
    local e = check_name(o.replication_config_arn, "replication_config_arn")
    if e then return nil, e end
  end
  if o.state_dir ~= nil and (type(o.state_dir) ~= "string" or o.state_dir == "") then
    return nil, verr("state_dir must be a directory")
  end
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
  if o.journal ~= nil then
    local settings, jerr = journal_dynamodb.check(o.journal, o.owner)
    if not settings then return nil, jerr end
    for _, k in ipairs({ "state_file", "state_dir", "lock_dir" }) do
      if o[k] ~= nil then
        return nil, verr(k .. " goes with the files journal: the DynamoDB journal keeps the state and the lease "
          .. "in its table")
      end
    end
    o.journal = settings
  elseif o.owner ~= nil then
    return nil, verr("owner goes with a shared journal: journal = { dynamodb = { table = ... } }")
  end
  o.journal_store = nil
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

-- A state_dir must take files before the first request.
local function check_state_dir(dir)
  local made, merr = core.mkdir(dir)
  if not made then return session.werr("StateFile", "cannot create state_dir " .. dir .. ": " .. merr.message) end
  local probe = dir .. "/.dms-runbook-probe-" .. core.pid()
  local ok, err = core.write_file_atomic(probe, "")
  if not ok then
    return session.werr("StateFile", "cannot write in state_dir " .. dir .. ": " .. tostring(err and err.message))
  end
  os.remove(probe)
end

-- Drives the replications `names` (ARNs or identifiers) with `method`, one
-- session each, in one fleet; returns the fleet.
local function drive(client, o, names, method, lock_mode, lookup_arns, many)
  local f = fleet.new(client, o)
  for _, e in ipairs(f:resolve(names, lookup_arns)) do
    if e.err then
      f:add_failed(e)
    else
      local mo = copy(o)
      mo.replication_config_arn, mo.replication_config_arns, mo.id = e.arn, nil, e.id
      if o.state_dir and not o.state_file then mo.state_file = journal.state_path(o.state_dir, e.arn) end
      local s = session.new(client, mo)
      -- the deadline counts from the call, not from the session's creation:
      -- looking identifiers up spends it too
      s.t0, s.deadline = f.t0, f.deadline
      s.lock_mode, s.compact_events = lock_mode, many
      f:add(s, method, e.key)
    end
  end
  f:run()
  return f
end

-- The shared journal of a call (journal = { dynamodb = ... }): its store,
-- with a DynamoDB client made from the DMS client's configuration, or nil.
local function open_store(client, o)
  if not o.journal then return true end
  local ok, store, err = pcall(journal_dynamodb.store, client, o.journal)
  if not ok then return nil, session.werr("InternalError", tostring(store)) end
  if not store then return nil, err end
  o.journal_store = store
  return store
end

local function close_store(o)
  if o.journal_store then pcall(o.journal_store.close, o.journal_store) end
end

-- A public function on one replication: check the options, then a fleet of
-- one: open the session (lock, state), run `method`; nothing raises past
-- this point.
local function step(method, targets, default_target, lock_mode)
  return function(client, opts)
    local o, err = check_options(client, opts, targets, default_target)
    if not o then return nil, err end
    if o.state_dir and not o.state_file then
      err = check_state_dir(o.state_dir)
      if err then return nil, err end
    end
    local sok, serr = open_store(client, o)
    if not sok then return nil, serr end
    local fine, f = pcall(drive, client, o, { o.replication_config_arn }, method, lock_mode, false)
    close_store(o)
    if not fine then return nil, session.werr("InternalError", tostring(f)) end
    local m = f.members[1]
    if m.res then return m.res end
    return nil, m.err
  end
end

-- The same on many replications: (outcome, err), see the top of this file.
local function many(method, targets, default_target, lock_mode)
  return function(client, opts)
    local o, err = check_options(client, opts, targets, default_target, true)
    if not o then return nil, err end
    if o.state_dir then
      err = check_state_dir(o.state_dir)
      if err then return nil, err end
    end
    local sok, serr = open_store(client, o)
    if not sok then return nil, serr end
    local fine, f = pcall(drive, client, o, o.replication_config_arns, method, lock_mode, true, true)
    close_store(o)
    if not fine then return nil, session.werr("InternalError", tostring(f)) end
    return f:outcome(o.wait_for)
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

-- The same steps on many replications (options of workflow.run_many):
-- (outcome, err) with outcome.results[arn] each one's outcome or error.
M.run_many = many(Session.run_steps, M.WAIT_FOR, "running")
M.start_many = many(Session.start_steps, ANY_TARGET, "running")
M.resume_many = many(function(s) return s:start_steps(true) end, ANY_TARGET, "running")
M.wait_many = many(Session.wait_steps, M.WAIT_FOR, "running")
M.stop_many = many(Session.stop_steps, M.STOP_WAIT_FOR, "stopped", "try")

-- workflow.describe(client, arn | identifier | opts) -> Replication | nil, err
function M.describe(client, opts)
  local o, err = check_options(client, opts, ANY_TARGET, "running")
  if not o then return nil, err end
  local ok, repl, derr = pcall(function()
    if not fleet.is_arn(o.replication_config_arn) then
      local e = fleet.new(client, o):resolve({ o.replication_config_arn })[1]
      if e.err then return nil, e.err end
      o.replication_config_arn = e.arn
    end
    local s = session.new(client, o)
    return s:describe_once()
  end)
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

-- workflow.describe_many(client, opts) -> outcome, err: one paged round over
-- opts.replication_config_arns (ARNs or identifiers); outcome.results[arn] is
-- each one's Replication or error.
function M.describe_many(client, opts)
  local o, err = check_options(client, opts, ANY_TARGET, "running", true)
  if not o then return nil, err end
  local ok, out, oerr = pcall(function()
    local f = fleet.new(client, o)
    local entries = f:resolve(o.replication_config_arns, false)
    local arns = {}
    for _, e in ipairs(entries) do
      if not e.err then arns[#arns + 1] = e.arn end
    end
    local views, errs = {}, {}
    if #arns > 0 then
      local res, rerr = f:patiently(function(call_opts)
        local v, e, _, failure = fleet.describe_round(client, arns, call_opts)
        if failure then return nil, failure end
        return { v, e }
      end)
      if not res then return nil, rerr end
      views, errs = res[1], res[2]
    end
    local results, order, failed = {}, {}, {}
    for _, e in ipairs(entries) do
      order[#order + 1] = e.key
      local r = e.err or views[e.arn] or errs[e.arn]
      results[e.key] = r
      if not views[e.arn] then failed[#failed + 1] = e.key end
    end
    local outcome = { ok = #failed == 0, results = results, order = order, failed = failed }
    if outcome.ok then return outcome end
    return outcome, session.werr("Incomplete", #failed .. " of " .. #order .. " replications could not be described",
      { failed = failed })
  end)
  if not ok then return nil, session.werr("InternalError", tostring(out)) end
  return out, oerr
end

-- workflow.select(client, { match = { "wave-*", ... } } [, opts]) -> list of
-- { arn, id } | nil, err: the replication configs whose identifier matches a
-- shell glob (DescribeReplicationConfigs, paged), sorted by identifier.
function M.select(client, sel, opts)
  if type(client) ~= "table" then return nil, verr("client must be a dms client") end
  if type(sel) ~= "table" or type(sel.match) ~= "table" or #sel.match == 0 then
    return nil, verr("select needs match = { globs }")
  end
  for _, g in ipairs(sel.match) do
    if type(g) ~= "string" or g == "" then return nil, verr("match must be a list of globs") end
  end
  local ok, list, err = pcall(function() return fleet.new(client, opts or {}):match(sel.match) end)
  if not ok then return nil, session.werr("InternalError", tostring(list)) end
  return list, err
end

-- The lock file of the replication these options name by its ARN (opts.lock_dir,
-- else $XDG_RUNTIME_DIR, $TMPDIR or /tmp).
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
