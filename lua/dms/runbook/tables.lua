-- dms-runbook tables / reload-tables: which tables of a replication failed,
-- and reloading the ones an operator names (never all of them implicitly).
--
--   dms-runbook --arn ARN tables [--errored] [--schema S] [--table-name T] [--state STATE]
--   dms-runbook --arn ARN reload-tables --table sales.orders [--table ...] [--reload-option validate-only]
local ipairs, pairs, tostring, string_format, table_concat = ipairs, pairs, tostring, string.format, table.concat
local io_stdout = io.stdout

local core = require "dms.core"
local workflow = require "dms.workflow"
local tables = require "dms.workflow.tables"
local format = require "dms.runbook.format"
local common = require "dms.runbook.common"

local clean, num = format.clean, common.num

local M = {}

M.COMMANDS = { tables = true, ["reload-tables"] = true }

function M.add_commands(p)
  local t = p:command("tables", "The replication's tables: state, rows loaded, errors (every page).")
  t:flag("--errored", "Only the tables in an error state (Table error, Table does not exist).")
  t:option("--schema", "Only tables of this schema (repeatable)."):argname("<name>"):count("*")
  t:option("--table-name", "Only tables of this name (repeatable)."):argname("<name>"):count("*")
  t:option("--state", "Only tables in this TableState, e.g. 'Table error' (repeatable)."):argname("<state>")
    :count("*")

  local r = p:command("reload-tables", "ReloadReplicationTables of the tables named with --table "
    .. "(the replication must be running).")
  r:option("--table", "A table to reload, as schema.table (repeatable; at least one: never all "
    .. "tables implicitly)."):argname("<schema.table>"):count("*")
  r:option("--reload-option", "data-reload (load the table again) or validate-only (validate it again).")
    :choices({ "data-reload", "validate-only" }):default("data-reload")
end

-- the DMS Filters of the command's options
local function filters(args)
  local out = {}
  local function add(name, values)
    if values and values[1] ~= nil then out[#out + 1] = { Name = name, Values = values } end
  end
  add("schema-name", args.schema)
  add("table-name", args.table_name)
  add("table-state", args.state)
  return out[1] and out or nil
end

-- the JSON line of one table: the flat entry, without the raw statistics
local function json_entry(arn, t)
  local out = { type = "table", arn = arn }
  for k, v in pairs(t) do
    if k ~= "statistics" then out[k] = v end
  end
  return out
end

local COLUMNS = {
  { "TABLE", function(t) return t.name end },
  { "STATE", function(t) return t.state or "-" end },
  { "ROWS LOADED", function(t) return num(t.rows_loaded) end, true },
  { "ERROR ROWS", function(t) return num(t.error_rows) end, true },
  { "INS/UPD/DEL", function(t) return num(t.inserts) .. "/" .. num(t.updates) .. "/" .. num(t.deletes) end, true },
  { "VALIDATION", function(t) return t.validation_state or "-" end },
  { "UPDATED", function(t) return common.date(t.last_update) or "-" end },
}

-- a table for a person: one row per table (errored ones bold), then a summary
-- and, when tables are in error, the command that reloads them
local function print_table(arn, res, only_errored)
  local rows, widths = {}, {}
  for i, col in ipairs(COLUMNS) do widths[i] = #col[1] end
  for _, t in ipairs(res.tables) do
    local row = {}
    for i, col in ipairs(COLUMNS) do
      row[i] = clean(col[2](t))
      if #row[i] > widths[i] then widths[i] = #row[i] end
    end
    row.errored = t.errored
    rows[#rows + 1] = row
  end
  local function line(cells)
    local parts = {}
    for i, col in ipairs(COLUMNS) do
      local w = i == #COLUMNS and "" or tostring(widths[i])
      parts[i] = string_format("%" .. (col[3] and "" or "-") .. w .. "s", cells[i])
    end
    return table_concat(parts, "  ")
  end
  local header = {}
  for i, col in ipairs(COLUMNS) do header[i] = col[1] end
  io_stdout:write(line(header), "\n")
  for _, row in ipairs(rows) do
    if row.errored then
      io_stdout:write("\27[1m", line(row), "\27[0m\n")
    else
      io_stdout:write(line(row), "\n")
    end
  end
  local counts = {}
  for state, n in pairs(res.counts) do counts[#counts + 1] = { state, n } end
  table.sort(counts, function(a, b) return a[1] < b[1] end)
  local parts = {}
  for i, c in ipairs(counts) do parts[i] = string_format("%d %s", c[2], clean(c[1])) end
  io_stdout:write(string_format("\n%d table(s)%s%s\n", res.total, only_errored and " in all" or "",
    parts[1] and (": " .. table_concat(parts, ", ")) or ""))
  if res.errored[1] then
    local names, opts = {}, {}
    for i, t in ipairs(res.errored) do
      names[i] = clean(t.name)
      opts[i] = "--table '" .. clean(t.name):gsub("'", "'\\''") .. "'"
    end
    io_stdout:write(string_format("in error: %s\nto reload them: dms-runbook --arn %s reload-tables %s\n",
      table_concat(names, ", "), clean(arn), table_concat(opts, " ")))
  end
  io_stdout:flush()
end

local function run_tables(args, ctx, client)
  local res, err = workflow.tables(client, { replication_config_arn = args.arn, errored = args.errored,
                                             filters = filters(args), timeout = args.timeout })
  if not res then return nil, err end
  if ctx.printer.json then
    for _, t in ipairs(res.tables) do common.json_line(json_entry(args.arn, t)) end
  else
    print_table(args.arn, res, args.errored)
  end
  return true
end

local function run_reload(args, ctx, client)
  local res, err = workflow.reload_tables(client, { replication_config_arn = args.arn, tables = args.table,
                                                    option = args.reload_option, timeout = args.timeout })
  if not res then return nil, err end
  local names = tables.names(res.tables)
  if ctx.printer.json then
    common.json_line({ type = "reload_sent", arn = args.arn, time = core.now(), option = res.option,
                       tables = (function()
                         local out = {}
                         for i, t in ipairs(res.tables) do out[i] = t.SchemaName .. "." .. t.TableName end
                         return out
                       end)(), request_id = res.request_id })
  else
    io_stdout:write(clean(string_format("ReloadReplicationTables %s accepted for %s (request id %s)",
      res.option, names, tostring(res.request_id))), "\n",
      "follow them with: dms-runbook --arn ", clean(args.arn), " tables\n")
    io_stdout:flush()
  end
  return true
end

-- runs the command; returns the exit code
function M.run(args, ctx)
  local problem = common.arn_problem(args.arn)
  if problem then return ctx.usage(problem) end
  if args.command == "reload-tables" and not (args.table and args.table[1]) then
    return ctx.usage("reload-tables needs at least one --table schema.table: it never reloads every table "
      .. "implicitly")
  end
  if args.command == "reload-tables" then
    for _, name in ipairs(args.table) do
      local _, perr = tables.parse_name(name)
      if perr then return ctx.usage("--table: " .. perr.message) end
    end
  end
  local client, cerr = common.client(args)
  if not client then
    return ctx.fail(cerr)
  end
  local ok, err = common.resolve_arn(args, client)
  if not ok then
    client:close()
    return ctx.fail(err)
  end
  if args.command == "tables" then
    ok, err = run_tables(args, ctx, client)
  else
    ok, err = run_reload(args, ctx, client)
  end
  client:close()
  if not ok then
    return ctx.fail(err)
  end
  return ctx.EXIT.ok
end

return M
