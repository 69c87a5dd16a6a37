-- dms-runbook: drive an AWS DMS Serverless replication from the command line,
-- a thin command over dms.workflow (bin/dms-runbook calls M.main).
local argparse = require "argparse"
local cjson = require "cjson"
local core = require "dms.core"
local workflow = require "dms.workflow"
local events = require "dms.workflow.events"
local format = require "dms.runbook.format"
local common = require "dms.runbook.common"
local cdc = require "dms.runbook.cdc"
local fleet = require "dms.runbook.fleet"
-- commands of their own modules: COMMANDS, add_commands(parser), run(args, ctx)
local journal = require "dms.runbook.journal"
local MODULES = { (require "dms.runbook.tables"), (require "dms.runbook.configs"), journal }

local M = {}

local EXIT = { ok = 0, error = 1, usage = 2, assessment = 3, fatal = 4, timeout = 5, locked = 6 }

local EPILOG = [[
What the commands do:
  run      describe, start (with the assessment), wait for --wait-for, resume after
           recoverable stops; with --state-file, run it again after a crash to go on
  start    send the start the replication's state calls for (start-replication for a
           first run, resume-processing after a stop); with --wait-for, wait too
  resume   resume-processing a stopped replication; with --wait-for, wait too
  stop     StopReplication and wait until stopped (--wait-for deprovisioned: until
           its capacity is released; --wait-for stopping: do not wait)
  status   describe the replication

Many replications (a fleet): repeat --arn (ARNs or identifiers), select configs
by identifier with --match GLOB, or list them in --arns-file. One paged
DescribeReplications round per poll interval watches all of them; at most
--concurrency are between their start and the target at once, the others wait
their turn; --state-dir keeps one state file per replication, so a fleet run
killed and run again goes on with each where it was. On a terminal a live table
(one row per replication) and a summary line; with --json one event per line,
each with its arn and id. The exit code is 0 when every replication reached the
target, else the most severe of theirs: 4, 3, 1, 5, then 6.

Runbooks on several hosts: --journal dynamodb://TABLE keeps the state and a
lease of each replication in a DynamoDB table (create it once with
`dms-runbook journal create-table TABLE`). A host drives the replications
whose lease it holds, renewed every third of --lease (default 300 s); the same
fleet started on several hosts splits its replications between them, and a
host takes over, from the saved state, the leases of a host that died once
they expire. A runbook that loses its lease sends nothing more for that
replication (LeaseLost, exit code 6). `journal list TABLE` shows who drives
what.

reload-target (drops and reloads the target tables) is sent only with
--start-type reload-target --allow-reload-target. A FATAL_ERROR stop is never
resumed automatically.

Output: on a terminal, one line per step and a live progress line; with --json,
or when stdout is not a terminal, one JSON event per line.

Exit codes:
  0  success
  1  other errors (DMS, network, credentials, a stop before the target, ...)
  2  bad usage or configuration
  3  the premigration assessment failed
  4  the replication stopped with a fatal error
  5  timeout
  6  another runbook holds the lock of this replication (one lock per ARN, in
     --lock-dir, whatever the --state-file), or the lease of a shared journal
     was lost (LeaseLost)]]

local WAIT_FOR = { "running", "full-load-complete", "stopped" }
local STOP_WAIT_FOR = { "stopping", "stopped", "deprovisioned" }

local function positive(s)
  local n = tonumber(s)
  if not n or n <= 0 then return nil, "'" .. tostring(s) .. "' is not a positive number" end
  return n
end

local function count(s)
  local n = tonumber(s)
  if not n or n < 0 or n % 1 ~= 0 then return nil, "'" .. tostring(s) .. "' is not a count" end
  return n
end

local function build_parser()
  local p = argparse("dms-runbook", "Drive an AWS DMS Serverless replication: assess, start, watch, resume.")
    :epilog(EPILOG)
  p:command_target("command")
  p:option("--arn", "ReplicationConfigArn, or ReplicationConfigIdentifier, of a replication; repeat it for a "
    .. "fleet."):argname("<arn>"):count("*")
  p:option("--match", "Replication configs whose identifier matches this shell glob (wave-*); repeatable.")
    :argname("<glob>"):count("*")
  p:option("--arns-file", "A file of ARNs or identifiers, one per line (# comments; - reads stdin).")
    :argname("<file>")
  p:option("--concurrency", "Most replications of a fleet between their start and the target at once "
    .. "(default 10).", nil, positive):argname("<n>")
  p:option("--state-dir", "One progress file per replication in this directory (created if missing); a rerun "
    .. "goes on from them."):argname("<dir>")
  p:flag("--print-table", "Print a fleet's table even when stdout is not a terminal (once, at the end).")
  p:option("--region", "AWS region (default: AWS_REGION or the profile's)."):argname("<region>")
  p:option("--profile", "Shared config profile."):argname("<name>")
  p:option("--endpoint", "Endpoint URL (e.g. a local DMS endpoint)."):argname("<url>")
  p:option("--state-file", "Progress file, written atomically at each step; a rerun goes on from it.")
    :argname("<path>")
  p:option("--lock-dir", "Directory of the replication's lock file, one per ARN whatever the state file "
    .. "(default: $XDG_RUNTIME_DIR, $TMPDIR or /tmp).")
    :argname("<dir>")
  journal.add_options(p)
  p:option("--poll-interval", "Seconds between two polls (default 15).", nil, positive):argname("<s>")
  p:option("--timeout", "Give up after this many seconds (default 21600); bounds every request too.", nil,
    positive):argname("<s>")
  p:option("--request-timeout", "Seconds one request may take (default 60).", nil, positive):argname("<s>")
  p:option("--max-attempts", "Attempts per request, the first included (default 3).", nil, count):argname("<n>")
  p:flag("--json", "One JSON event per line, even on a terminal.")

  local function assess_options(c)
    c:option("--assess-folder", "Run a premigration assessment with this ResultLocationFolder.")
      :argname("<folder>")
    c:option("--assess-include", "Space-separated individual assessments (IncludeOnly)."):argname("<names>")
    c:flag("--no-fail-on-assessment", "Start even when the assessment fails (FailOnAssessmentFailure false).")
    c:option("--start-type", "Start type instead of the one chosen from the replication's state.")
      :choices({ "start-replication", "resume-processing", "reload-target" })
    c:flag("--allow-reload-target", "Allow --start-type reload-target (drops and reloads the target tables).")
    cdc.add_options(c)
  end

  local run = p:command("run", "Start, wait, resume after recoverable stops.")
  assess_options(run)
  run:option("--wait-for", "Target: running, full-load-complete or stopped."):choices(WAIT_FOR)
    :default("running")
  run:option("--max-resumes", "Automatic resumes after recoverable stops (default 3).", nil, count)
    :argname("<n>")
  run:option("--resume-backoff", "Seconds before the first automatic resume, doubling (default 60).", nil,
    positive):argname("<s>")

  local start = p:command("start", "Send the start (no wait unless --wait-for).")
  assess_options(start)
  start:option("--wait-for", "Then wait for running, full-load-complete or stopped."):choices(WAIT_FOR)

  local resume = p:command("resume", "resume-processing a stopped replication (no wait unless --wait-for).")
  resume:option("--wait-for", "Then wait for running, full-load-complete or stopped."):choices(WAIT_FOR)
  resume:flag("--after-fatal", "Resume even after a FATAL_ERROR stop (once its cause is fixed).")

  local stop = p:command("stop", "StopReplication and wait.")
  stop:option("--wait-for", "stopping (no wait), stopped or deprovisioned (capacity released).")
    :choices(STOP_WAIT_FOR):default("stopped")

  p:command("status", "Describe the replication.")
  for _, m in ipairs(MODULES) do m.add_commands(p) end
  return p
end

---------------------------------------------------------------------------
-- Output

local is_terminal = common.terminal

local LIVE = { status = true, progress = true, capacity = true }

local Printer = {}
Printer.__index = Printer

local function new_printer(json)
  return setmetatable({ json = json or not is_terminal(), live = false, errors = 0 }, Printer)
end

function Printer:event(ev)
  if ev.type == "error" then
    self.errors = self.errors + 1
    if not self.json then return end      -- a person reads it on stderr
  end
  if self.json then
    local ok, line = pcall(cjson.encode, ev)
    if ok then io.stdout:write(line, "\n") end
    io.stdout:flush()
    return
  end
  if LIVE[ev.type] then
    io.stdout:write("\r", format.progress_line(ev), "\27[K")
    self.live = true
  else
    if self.live then io.stdout:write("\n") end     -- the last progress line stays on screen
    self.live = false
    local line = format.event(ev)
    if ev.type == "warning" then line = "\27[1m" .. line .. "\27[0m" end
    io.stdout:write(line, "\n")
  end
  io.stdout:flush()
  if ev.type == "warning" then io.stderr:write("dms-runbook: WARNING: ", format.clean(ev.message), "\n") end
end

function Printer:finish()
  if self.live and not self.json then io.stdout:write("\n") end
  self.live = false
end

-- an error the workflow did not report as an event (bad options, configuration)
function Printer:error(err)
  self:finish()
  if self.json and self.errors == 0 then
    self:event({ type = "error", code = err.code, kind = err.kind, message = err.message, time = core.now() })
  end
  io.stderr:write("dms-runbook: ", format.clean(tostring(err)), "\n")
end

local function exit_code(err)
  local code = type(err) == "table" and err.code
  if code == "AssessmentFailed" then return EXIT.assessment end
  if code == "FatalStop" then return EXIT.fatal end
  if code == "Timeout" and err.kind == "workflow" then return EXIT.timeout end
  if code == "Locked" or code == "LeaseLost" then return EXIT.locked end
  if code == "ReloadNotAllowed" then return EXIT.usage end
  if type(err) == "table" and (err.kind == "validation" or err.kind == "config") then return EXIT.usage end
  return EXIT.error
end

local function print_status(printer, repl, arn)
  local ev = events.status(repl, { type = "described", arn = arn, time = core.now(), elapsed = 0 })
  local st = repl.ReplicationStats or {}
  if printer.json then
    printer:event(ev)
    return
  end
  local function row(name, value)
    if value ~= nil then io.stdout:write(string.format("%-20s %s\n", name, format.clean(value))) end
  end
  local function date(t) return t and os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end
  row("replication", arn)
  row("identifier", repl.ReplicationConfigIdentifier)
  row("type", repl.ReplicationType)
  row("status", repl.Status)
  row("start type", repl.StartReplicationType)
  row("stop reason", repl.StopReason)
  row("failure", ev.failure)
  if repl.ReplicationType ~= "cdc" then
    row("full load", st.FullLoadProgressPercent and (st.FullLoadProgressPercent .. " %"))
    row("tables", string.format("%s loaded, %s loading, %s queued, %s errored", tostring(st.TablesLoaded),
      tostring(st.TablesLoading), tostring(st.TablesQueued), tostring(st.TablesErrored)))
  end
  row("checkpoint", repl.RecoveryCheckpoint)
  row("capacity", ev.provision_state)
  row("assessment", ev.assessment)
  row("started", date(st.StartDate))
  row("stopped", date(st.StopDate))
  row("elapsed (DMS)", ev.dms_elapsed and format.duration(ev.dms_elapsed))
end

---------------------------------------------------------------------------

function M.main(argv)
  local parser = build_parser()
  local ok, args = parser:pparse(argv)
  if not ok then
    io.stderr:write(parser:get_usage(), "\n\nError: ", args, "\n")
    return EXIT.usage
  end
  local printer = new_printer(args.json)
  local function usage(message)
    printer:error(core.error({ kind = "validation", code = "Usage", message = message }))
    return EXIT.usage
  end
  -- the error shown, and the exit code it maps to
  local function fail(err)
    printer:error(err)
    return exit_code(err)
  end
  for _, m in ipairs(MODULES) do
    if m.COMMANDS[args.command] then
      -- one replication each: the first --arn (an ARN)
      if type(args.arn) == "table" then
        if #args.arn > 1 then return usage(args.command .. " takes one --arn") end
        args.arn = args.arn[1]
      end
      return m.run(args, { printer = printer, usage = usage, exit_code = exit_code, fail = fail, EXIT = EXIT })
    end
  end
  -- checked before any request: ARNs of DMS replication configs, or identifiers
  local names, why = fleet.names(args)
  if not names then return usage(why) end
  local is_fleet = fleet.is_fleet(args, names)
  if not is_fleet and #names == 0 then return usage("--arn (or --match, --arns-file) is required") end
  if is_fleet and args.state_file then
    return usage("a fleet keeps one state file per replication: use --state-dir")
  end
  if args.concurrency and args.concurrency % 1 ~= 0 then return usage("--concurrency must be a whole number") end
  local shared, jerr = journal.parse(args.journal, args)
  if args.journal and not shared then return usage(jerr) end
  if not shared and (args.owner or args.lease or args.journal_endpoint or args.journal_region) then
    return usage("--owner, --lease, --journal-endpoint and --journal-region go with --journal dynamodb://TABLE")
  end
  if shared and (args.state_file or args.state_dir or args.lock_dir) then
    return usage("--journal dynamodb://TABLE keeps the state and the lease: drop --state-file, --state-dir and "
      .. "--lock-dir")
  end
  if args.allow_reload_target and args.start_type ~= "reload-target" then
    return usage("--allow-reload-target goes with --start-type reload-target")
  end
  if args.start_type == "reload-target" and not args.allow_reload_target then
    return usage("--start-type reload-target drops and reloads the target tables: it needs --allow-reload-target")
  end

  local client, cerr = common.client(args)
  if not client then
    return fail(cerr)
  end

  local opts = {
    journal = shared,
    owner = shared and args.owner or nil,
    replication_config_arn = names[1],
    state_file = args.state_file,
    state_dir = args.state_dir,
    lock_dir = args.lock_dir,
    poll = { interval = args.poll_interval, timeout = args.timeout },
    start_type = args.start_type,
    allow_reload_target = args.allow_reload_target or nil,
    after_fatal = args.after_fatal or nil,
    on_event = function(ev) printer:event(ev) end,
    cdc = cdc.options(args),
  }
  if args.assess_folder or args.assess_include then
    opts.assessment = {
      ResultLocationFolder = args.assess_folder,
      IncludeOnly = args.assess_include,
      FailOnAssessmentFailure = not args.no_fail_on_assessment,
    }
  end
  if args.command == "run" then
    opts.wait_for = args.wait_for
    opts.resume = { max_attempts = args.max_resumes, backoff = args.resume_backoff }
  elseif args.command == "stop" then
    opts.wait_for = args.wait_for
  end

  if is_fleet then
    local code = fleet.main({ args = args, names = names, client = client, opts = opts, printer = printer,
                              exit_code = exit_code, usage = usage, EXIT = EXIT })
    client:close()
    return code
  end

  if args.command == "status" then
    local repl, err = workflow.describe(client, { replication_config_arn = names[1],
                                                  poll = { timeout = args.timeout } })
    client:close()
    if not repl then
      return fail(err)
    end
    print_status(printer, repl, repl.ReplicationConfigArn or names[1])
    return EXIT.ok
  end

  local outcome, err
  if args.command == "run" then
    outcome, err = workflow.run(client, opts)
  elseif args.command == "start" or args.command == "resume" then
    local step = args.command == "start" and workflow.start or workflow.resume
    if args.wait_for then
      -- one summary for the two steps: the wait's, with the start's counts
      opts.on_event = function(ev) if ev.type ~= "ready" then printer:event(ev) end end
    end
    outcome, err = step(client, opts)
    if outcome and args.wait_for then
      local started = outcome
      opts.wait_for = args.wait_for
      opts.on_event = function(ev)
        if ev.type == "done" then ev.starts, ev.resumes = started.starts, started.resumes end
        printer:event(ev)
      end
      outcome, err = workflow.wait(client, opts)
    end
  elseif args.command == "stop" then
    outcome, err = workflow.stop(client, opts)
  end
  client:close()
  printer:finish()
  if not outcome then
    return fail(err)
  end
  return EXIT.ok
end


-- runs the command; returns the exit code (never raises)
function M.run(argv)
  local ok, code = pcall(M.main, argv)
  if not ok then
    io.stderr:write("dms-runbook: internal error: ", format.clean(tostring(code)), "\n")
    return EXIT.error
  end
  return code
end

M.EXIT = EXIT
return M
