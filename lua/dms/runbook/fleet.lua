-- dms-runbook on many replications: the selectors (--arn repeated, with ARNs
-- or identifiers; --match GLOB; --arns-file FILE) and the commands run,
-- start, resume, stop and status over a fleet (dms.workflow's *_many
-- functions), shown as a live table (runbook/table.lua) or as one JSON event
-- per line.
local type, ipairs, tostring = type, ipairs, tostring

local core = require "dms.core"
local workflow = require "dms.workflow"
local events = require "dms.workflow.events"
local fleet = require "dms.workflow.fleet"
local board_mod = require "dms.runbook.table"
local common = require "dms.runbook.common"

local M = {}

-- the most severe exit code first: a fatal stop, a failed assessment, any
-- other error, a timeout, a replication another runbook drives
local SEVERITY = { [4] = 1, [3] = 2, [1] = 3, [5] = 4, [6] = 5, [2] = 6 }

function M.most_severe(codes)
  local worst = 0
  for _, c in ipairs(codes) do
    if c ~= 0 and (worst == 0 or (SEVERITY[c] or 3) < (SEVERITY[worst] or 3)) then worst = c end
  end
  return worst
end

-- nil, or why `name` (an --arn value or a line of --arns-file) is neither the
-- ARN of a replication config nor an identifier
function M.check_name(name)
  if fleet.is_arn(name) then
    if core.build(require("dms.model"), "StopReplication", { ReplicationConfigArn = name }) then return nil end
  elseif fleet.valid_identifier(name) then
    return nil
  end
  return "--arn '" .. name .. "' is not the ARN of a DMS replication config "
    .. "(like arn:aws:dms:us-east-1:123456789012:replication-config:ID) nor the identifier of one"
end

-- The names of --arn and --arns-file (blank lines and # comments skipped;
-- "-" reads standard input), each checked: list | nil, message.
function M.names(args)
  local names = {}
  for _, a in ipairs(args.arn or {}) do names[#names + 1] = a end
  if args.arns_file then
    local text
    if args.arns_file == "-" then
      text = io.stdin:read("*a") or ""
    else
      local f, err = io.open(args.arns_file, "r")
      if not f then return nil, "--arns-file: " .. tostring(err) end
      text = f:read("*a") or ""
      f:close()
    end
    for line in text:gmatch("[^\n]+") do
      line = line:gsub("#.*$", ""):match("^%s*(.-)%s*$")
      if line ~= "" then names[#names + 1] = line end
    end
  end
  for _, n in ipairs(names) do
    local why = M.check_name(n)
    if why then return nil, why end
  end
  return names
end

-- Does this command line name a fleet (rather than one replication)?
function M.is_fleet(args, names)
  return #(args.match or {}) > 0 or args.arns_file ~= nil or #names > 1
end

local is_terminal = common.terminal

-- ctx: args, names, client, opts (the workflow options of the command line),
-- printer (JSON events and errors), exit_code(err), usage(message), EXIT.
-- Returns the exit code.
function M.main(ctx)
  local args, client, opts, printer = ctx.args, ctx.client, ctx.opts, ctx.printer
  local names = ctx.names
  local json = args.json or (not is_terminal() and not args.print_table)
  local board = not json and board_mod.new({ live = is_terminal() }) or nil

  local function fail(err)
    if board then board:finish() end
    if json then
      printer:error(err)
    else
      io.stderr:write("dms-runbook: ", require("dms.runbook.format").clean(tostring(err)), "\n")
    end
    return ctx.exit_code(err)
  end

  if #(args.match or {}) > 0 then
    local list, err = workflow.select(client, { match = args.match }, { poll = opts.poll })
    if not list then return fail(err) end
    if #list == 0 then
      return ctx.usage("--match " .. table.concat(args.match, " --match ") .. " selects no replication config")
    end
    for _, c in ipairs(list) do names[#names + 1] = c.arn end
  end
  if #names == 0 then return ctx.usage("no replication selected") end

  opts.replication_config_arns = names
  opts.replication_config_arn, opts.state_file = nil, nil
  opts.concurrency = args.concurrency
  opts.state_dir = args.state_dir
  local waiting_too = (args.command == "start" or args.command == "resume") and args.wait_for
  opts.on_event = function(ev)
    -- start or resume with --wait-for: one summary per replication, the wait's
    if waiting_too and ev.type == "ready" then return end
    if board then board:event(ev) else printer:event(ev) end
  end
  opts.on_round = function(info)
    if board then board:round_done(info) end
  end

  local codes = {}
  local function collect(outcome)
    for _, key in ipairs(outcome.order) do
      local r = outcome.results[key]
      if not r.ok and type(r) == "table" and r.code then codes[#codes + 1] = ctx.exit_code(r) end
    end
  end

  local outcome, err
  local command = args.command
  if command == "status" then
    outcome, err = workflow.describe_many(client, opts)
    if not outcome then return fail(err) end
    for _, key in ipairs(outcome.order) do
      local r = outcome.results[key]
      if r.Status ~= nil then
        local ev = events.status(r, { type = "described", time = core.now(), elapsed = 0 })
        if board then board:status(ev) else printer:event(ev) end
      else
        local ev = { type = "error", arn = r.arn or (fleet.is_arn(key) and key or nil), id = r.id
          or (not fleet.is_arn(key) and key or nil), code = r.code, kind = r.kind, message = r.message,
          time = core.now(), elapsed = 0 }
        opts.on_event(ev)
        codes[#codes + 1] = ctx.exit_code(r)
      end
    end
  elseif command == "run" then
    outcome, err = workflow.run_many(client, opts)
    if outcome then collect(outcome) end
  elseif command == "stop" then
    outcome, err = workflow.stop_many(client, opts)
    if outcome then collect(outcome) end
  else   -- start, resume
    local step = command == "start" and workflow.start_many or workflow.resume_many
    outcome, err = step(client, opts)
    if outcome then
      collect(outcome)
      if args.wait_for then
        local started, counts = {}, {}
        for _, key in ipairs(outcome.order) do
          local r = outcome.results[key]
          if r.ok then
            started[#started + 1] = r.arn or key
            counts[r.arn or key] = r
          end
        end
        if #started > 0 then
          opts.replication_config_arns, opts.wait_for = started, args.wait_for
          local show = opts.on_event
          opts.on_event = function(ev)
            -- the summary of the wait, with the counts of the start
            local c = ev.type == "done" and counts[ev.arn]
            if c then ev.starts, ev.resumes = c.starts, c.resumes end
            show(ev)
          end
          local waited, werr = workflow.wait_many(client, opts)
          if not waited then return fail(werr) end
          err = werr or err
          collect(waited)
          outcome = waited
        end
      end
    end
  end
  if not outcome then return fail(err) end
  if board then board:finish() end
  local code = M.most_severe(codes)
  if code ~= 0 and err then
    io.stderr:write("dms-runbook: ", require("dms.runbook.format").clean(tostring(err)), "\n")
  end
  return code
end

return M
