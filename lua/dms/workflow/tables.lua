-- The tables of a replication: what DMS says about each one, reloads of named
-- tables, and the watch that reports tables entering an error state while a
-- runbook polls.
--
--   local tables = require "dms.workflow.tables"     -- also workflow.tables, workflow.reload_tables
--   local res, err = tables.list(client, arn)        -- every page of DescribeReplicationTableStatistics
--   for _, t in ipairs(res.errored) do print(t.name, t.state, t.rows_loaded) end
--   tables.reload(client, { replication_config_arn = arn, tables = { "sales.orders" },
--                           option = "data-reload" })  -- or "validate-only"
--
-- The watch (M.watch, called by the session on each poll) costs nothing while
-- ReplicationStats.TablesErrored stays where it was: table statistics are read
-- (all pages) when that count changes, and again every `interval` seconds
-- while a table is in error. Each table that enters an error state is reported
-- once per run as a `table_error` event (schema, table, state); the names
-- reported are kept in the runbook's state record, so a runbook run again
-- after a crash does not report them twice. A table that recovers (a
-- data-reload) is forgotten, so a new error of it is reported again.
local type, ipairs, pairs, tostring, tonumber, next = type, ipairs, pairs, tostring, tonumber, next
local math_min, math_huge = math.min, math.huge
local string_format, table_concat, table_sort = string.format, table.concat, table.sort

local core = require "dms.core"
local errors = require "dms.errors"
local R = require "dms.workflow.replication"

local M = {}

M.PAGE_SIZE = 500             -- MaxRecords per page (DMS takes 20..500)
M.MAX_PAGES = 10000           -- a Marker that never ends is an error, not a loop
M.WATCH_INTERVAL = 300        -- seconds between two reads while a table is in error
M.WATCH_RETRY = 60            -- at most, after a failed read
M.MISMATCH_RETRIES = 3        -- reads that found fewer errored tables than TablesErrored says

-- TableState values that need an operator (TablesErrored counts "Table error")
M.ERROR_STATES = { ["Table error"] = true, ["Table does not exist"] = true }
M.RELOAD_OPTIONS = { ["data-reload"] = true, ["validate-only"] = true }

local function verr(message, member)
  return errors.new("validation", "InvalidOption", message, { member = member })
end

-- a number of seconds > 0 (not NaN, not infinite)
local function seconds(v)
  return type(v) == "number" and v > 0 and v < math_huge
end

local function werr(code, message, extra)
  return errors.new("workflow", code, message, extra)
end

---------------------------------------------------------------------------
-- Reading

-- A flat record of one TableStatistics: the fields an operator reads first,
-- and `statistics`, the TableStatistics as DMS answered.
function M.entry(ts)
  local schema, name = ts.SchemaName, ts.TableName
  return {
    schema = schema, table = name, name = tostring(schema) .. "." .. tostring(name),
    state = ts.TableState, errored = M.ERROR_STATES[ts.TableState] == true,
    rows_loaded = ts.FullLoadRows, error_rows = ts.FullLoadErrorRows,
    failed_check_rows = ts.FullLoadCondtnlChkFailedRows,
    inserts = ts.Inserts, updates = ts.Updates, deletes = ts.Deletes, ddls = ts.Ddls,
    reloaded = ts.FullLoadReloaded, full_load_start = ts.FullLoadStartTime, full_load_end = ts.FullLoadEndTime,
    last_update = ts.LastUpdateTime,
    validation_state = ts.ValidationState, validation_pending = ts.ValidationPendingRecords,
    validation_failed = ts.ValidationFailedRecords, validation_suspended = ts.ValidationSuspendedRecords,
    statistics = ts,
  }
end

local function arn_of(opts)
  if type(opts) == "string" then return opts end
  if type(opts) == "table" then return opts.replication_config_arn or opts.arn end
end

local function check_client(client)
  if type(client) ~= "table" or type(client.call) ~= "function" then return verr("client must be a dms client") end
end

local function check_arn(arn)
  if type(arn) ~= "string" or arn == "" then return verr("replication_config_arn is required") end
end

-- tables.list(client, arn | opts) -> result | nil, err
-- opts: replication_config_arn, errored (only tables in an error state),
-- filters (DMS Filters: schema-name, table-name, table-state), max_records
-- (page size, 20..500), timeout (seconds for every page together).
-- result: { replication_config_arn, tables = {entry...} (DMS's order, schema
-- then table), errored = {entry...}, counts = {[TableState] = n}, total, pages }
function M.list(client, opts)
  local e = check_client(client)
  if e then return nil, e end
  local arn = arn_of(opts)
  e = check_arn(arn)
  if e then return nil, e end
  opts = type(opts) == "table" and opts or {}
  local size = opts.max_records or M.PAGE_SIZE
  if type(size) ~= "number" or size % 1 ~= 0 or size < 20 or size > 500 then
    return nil, verr("max_records must be a whole number from 20 to 500", "max_records")
  end
  if opts.filters ~= nil and type(opts.filters) ~= "table" then
    return nil, verr("filters must be a list of {Name =, Values =}", "filters")
  end
  local timeout = opts.timeout
  if timeout ~= nil and not seconds(timeout) then
    return nil, verr("timeout must be a number of seconds > 0", "timeout")
  end
  local deadline = timeout and core.monotonic() + timeout

  local result = { replication_config_arn = arn, tables = {}, errored = {}, counts = {}, total = 0, pages = 0 }
  local marker, seen = nil, {}
  repeat
    local call_opts
    if deadline then
      local left = deadline - core.monotonic()
      if left <= 0 then
        return nil, errors.transport("Timeout", "the table statistics of " .. arn .. " took longer than "
          .. tostring(timeout) .. " s", false)
      end
      call_opts = { timeout = left }
    end
    local resp, err = client:call("DescribeReplicationTableStatistics", {
      ReplicationConfigArn = arn, Filters = opts.filters, MaxRecords = size, Marker = marker,
    }, call_opts)
    if not resp then return nil, err end
    result.pages = result.pages + 1
    for _, ts in ipairs(type(resp.ReplicationTableStatistics) == "table" and resp.ReplicationTableStatistics or {}) do
      if type(ts) == "table" then
        local t = M.entry(ts)
        result.total = result.total + 1
        local state = t.state or "unknown"
        result.counts[state] = (result.counts[state] or 0) + 1
        if t.errored then result.errored[#result.errored + 1] = t end
        if t.errored or not opts.errored then result.tables[#result.tables + 1] = t end
      end
    end
    marker = resp.Marker
    if marker == "" then marker = nil end
    if marker ~= nil then
      if seen[marker] or result.pages >= M.MAX_PAGES then
        return nil, errors.new("service", "MarkerLoop", "DescribeReplicationTableStatistics of " .. arn
          .. " answered a Marker it had already given (page " .. result.pages .. ")")
      end
      seen[marker] = true
    end
  until marker == nil
  return result
end

---------------------------------------------------------------------------
-- Reloading

-- "schema.table" (split at the first dot) | {SchemaName=, TableName=} |
-- {schema=, table=} -> TableToReload | nil, err
function M.parse_name(v)
  local schema, name
  if type(v) == "string" then
    schema, name = v:match("^([^.]+)%.(.+)$")
  elseif type(v) == "table" then
    schema, name = v.SchemaName or v.schema, v.TableName or v.table
  end
  if type(schema) ~= "string" or type(name) ~= "string" or schema == "" or name == ""
     or schema:find("%c") or name:find("%c") then
    return nil, verr("a table is named schema.table (or {SchemaName =, TableName =}), not '"
      .. tostring(type(v) == "table" and "a table" or v):gsub("%c", "?") .. "'", "tables")
  end
  return { SchemaName = schema, TableName = name }
end

-- tables.reload(client, opts) -> result | nil, err
-- opts: replication_config_arn, tables (a non-empty list of names: never all
-- tables implicitly), option ("data-reload", the default, or "validate-only"),
-- timeout. The replication is described first: unless it is running, nothing
-- is sent (workflow error NotRunning); a refusal of DMS is returned as DMS
-- gave it. result: { replication_config_arn, tables = {TableToReload...},
-- option, request_id, replication (as described before the reload) }
function M.reload(client, opts)
  local e = check_client(client)
  if e then return nil, e end
  if type(opts) ~= "table" then return nil, verr("opts must be a table") end
  local arn = arn_of(opts)
  e = check_arn(arn)
  if e then return nil, e end
  local option = opts.option or "data-reload"
  if not M.RELOAD_OPTIONS[option] then
    return nil, verr("option must be data-reload or validate-only", "option")
  end
  if type(opts.tables) ~= "table" or opts.tables[1] == nil then
    return nil, verr("tables must name at least one table (schema.table): a reload never takes every table "
      .. "implicitly", "tables")
  end
  local list, seen = {}, {}
  for _, v in ipairs(opts.tables) do
    local t, terr = M.parse_name(v)
    if not t then return nil, terr end
    local key = t.SchemaName .. "\0" .. t.TableName
    if not seen[key] then
      seen[key] = true
      list[#list + 1] = t
    end
  end
  local timeout = opts.timeout
  if timeout ~= nil and not seconds(timeout) then
    return nil, verr("timeout must be a number of seconds > 0", "timeout")
  end
  local deadline = timeout and core.monotonic() + timeout
  local function call_opts()
    return deadline and { timeout = math.max(deadline - core.monotonic(), 0.001) } or nil
  end

  local resp, err = client:call("DescribeReplications", {
    Filters = { { Name = "replication-config-arn", Values = { arn } } } }, call_opts())
  if not resp then return nil, err end
  local repl = type(resp.Replications) == "table" and resp.Replications[1]
  if type(repl) ~= "table" then
    return nil, errors.new("service", "ResourceNotFoundFault", "no replication for " .. arn)
  end
  if repl.Status ~= "running" then
    return nil, werr("NotRunning", string_format("%s is %s: tables can be reloaded only while it is running; "
      .. "nothing was sent", arn, tostring(repl.Status)), { replication = repl })
  end
  resp, err = client:call("ReloadReplicationTables", {
    ReplicationConfigArn = arn, TablesToReload = list, ReloadOption = option }, call_opts())
  if not resp then
    err.replication = err.replication or repl
    return nil, err
  end
  return { replication_config_arn = arn, tables = list, option = option, replication = repl,
           request_id = resp.ResponseMetadata and resp.ResponseMetadata.RequestId }
end

---------------------------------------------------------------------------
-- The watch (called by the session)

-- checks the workflow's `tables` option: nil (watch), false (do not), or
-- { interval = seconds }; returns an error or nil
function M.check_option(v)
  if v == nil or v == false then return nil end
  if type(v) ~= "table" then return verr("tables must be false or a table { interval = seconds }", "tables") end
  if v.interval ~= nil and not (v.interval == 0 or seconds(v.interval)) then
    return verr("tables.interval must be a number >= 0", "tables.interval")
  end
end

local function watcher(s)
  local w = s.table_watch
  if w then return w end
  w = { count = nil, last = -math_huge, next_try = -math_huge, mismatches = 0, warned = {}, reported = {} }
  local saved = s.state and s.state.tables_reported
  if type(saved) == "table" then
    for _, name in ipairs(saved) do
      if type(name) == "string" then w.reported[name] = true end
    end
  end
  s.table_watch = w
  return w
end

local function reported_list(w)
  local out = {}
  for name in pairs(w.reported) do out[#out + 1] = name end
  table_sort(out)
  return out
end

-- Looks at the replication `repl` the session just described: reads the table
-- statistics when TablesErrored changed (or every `interval` while a table is
-- in error), emits `table_error` once per table that entered an error state,
-- and keeps the names reported in the session's state. Never fails the run:
-- a read that fails is a warning (once per error code) and is tried again.
function M.watch(s, repl)
  local cfg = s.opts and s.opts.tables
  if cfg == false or type(repl) ~= "table" or repl.Status == "created" then return end
  local w = watcher(s)
  local n = tonumber(R.stats(repl).TablesErrored) or 0
  local now = s:now()
  local interval = type(cfg) == "table" and cfg.interval or M.WATCH_INTERVAL
  local due = n ~= (w.count or 0) or ((n > 0 or next(w.reported) ~= nil) and now - w.last >= interval)
  if not due or now < w.next_try then return end
  local left = s:remaining()
  if left <= 0 then return end
  -- a lease of a shared journal that may have lapsed: nothing is sent
  if s.guard and not s:guard() then return end
  w.last = now

  local res, err = M.list(s.client, { replication_config_arn = s.arn, timeout = left })
  if not res then
    w.next_try = now + math_min(interval, M.WATCH_RETRY)
    local code = tostring(err.code)
    if not w.warned[code] then
      w.warned[code] = true
      s:emit("warning", repl, { code = err.code, message = "cannot read the table statistics of " .. s.arn
        .. " (" .. code .. ": " .. tostring(err.message) .. "); tables in error are not reported until it can" })
    end
    return
  end

  local now_errored, changed = {}, false
  for _, t in ipairs(res.errored) do
    now_errored[t.name] = true
    if not w.reported[t.name] then
      w.reported[t.name] = true
      changed = true
      s:emit("table_error", repl, {
        schema = t.schema, table = t.table, state = t.state, rows_loaded = t.rows_loaded,
        error_rows = t.error_rows, validation_state = t.validation_state,
      })
    end
  end
  for name in pairs(w.reported) do
    if not now_errored[name] then
      w.reported[name] = nil        -- recovered: an error of it later is a new one
      changed = true
    end
  end
  -- a read that lags behind TablesErrored is tried again at the next poll, a few times
  if #res.errored >= n or w.mismatches >= M.MISMATCH_RETRIES then
    w.count, w.mismatches = n, 0
  else
    w.mismatches = w.mismatches + 1
  end
  if changed and s.state then
    s.state.tables_reported = reported_list(w)
    if s.opened then s:save() end      -- best effort, as for a status change
  end
end

-- the table_error events of this session, in the order they were reported
function M.reported(s)
  local out = {}
  for _, ev in ipairs(s.events or {}) do
    if ev.type == "table_error" then out[#out + 1] = ev end
  end
  return out
end

-- "schema.table, schema.table" for messages
function M.names(list)
  local out = {}
  for i, t in ipairs(list) do out[i] = (t.SchemaName or t.schema) .. "." .. (t.TableName or t.table) end
  return table_concat(out, ", ")
end

return M
