-- The tables of a replication against the local DMS endpoint: every page of
-- DescribeReplicationTableStatistics, reloads of named tables only, the watch
-- that reports tables entering an error state once each (also across a
-- restart, through the state file), and the workflow's cdc option checked
-- before any request. The emulator's request log is the witness.
local cjson = require "cjson"
local core = require "dms.core"
local workflow = require "dms.workflow"
local tables = require "dms.workflow.tables"
local session = require "dms.workflow.session"
local emulator = require "support.emulator"
local files = require "support.files"

local SPEED = 20000

local function count(list, pred)
  local n = 0
  for _, v in ipairs(list) do
    if pred(v) then n = n + 1 end
  end
  return n
end

local function of_type(kind) return function(ev) return ev.type == kind end end

describe("workflow.tables", function()
  local emu, client, dir

  setup(function()
    emu = emulator.start({ speed = SPEED })
    client = emu:client()
    dir = files.tmpdir()
  end)
  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)
  before_each(function()
    emu:reset()
  end)

  -- a CDC replication of `n` tables (or a list), already running (a table
  -- error armed on it fires at once); returns its ARN
  local function running(identifier, tabs, extra)
    local spec = { identifier = identifier, tables = tabs, status = "running", type = "cdc" }
    for k, v in pairs(extra or {}) do spec[k] = v end
    return emu:replication(spec).ReplicationConfigArn
  end

  local function table_error(arn, name, extra)
    local spec = { arn = arn, table = name }
    for k, v in pairs(extra or {}) do spec[k] = v end
    return emu:admin("POST", "table_error", spec)
  end

  local function stats_calls()
    return emu:requests("DescribeReplicationTableStatistics")
  end

  -- the replication as DescribeReplications shows it now
  local function described(arn)
    return assert(workflow.describe(client, arn))
  end

  it("reads every page, in DMS's order, with state, rows loaded and errors", function()
    local arn = running("many", 45)
    table_error(arn, "public.orders")
    emu:clock({ advance = 60 })
    local res = assert(workflow.tables(client, { replication_config_arn = arn, max_records = 20 }))
    assert.are.equal(3, res.pages)
    assert.are.equal(45, res.total)
    assert.are.equal(45, #res.tables)
    local calls = stats_calls()
    assert.are.equal(3, #calls)
    assert.is_nil(calls[1].body.Marker)
    assert.is_string(calls[2].body.Marker)
    assert.are.equal(20, calls[3].body.MaxRecords)
    -- no table twice, sorted as DMS answers them
    local seen = {}
    for i, t in ipairs(res.tables) do
      assert.is_nil(seen[t.name], t.name)
      seen[t.name] = true
      if i > 1 then assert.is_true(res.tables[i - 1].table < t.table) end
      assert.are.equal(t.schema .. "." .. t.table, t.name)
      assert.are.equal(t.statistics.FullLoadRows, t.rows_loaded)
    end
    assert.are.equal(1, #res.errored)
    assert.are.equal("public.orders", res.errored[1].name)
    assert.are.equal("Table error", res.errored[1].state)
    assert.is_true(res.errored[1].errored)
    assert.are.equal(1, res.counts["Table error"])
    local n = 0
    for _, c in pairs(res.counts) do n = n + c end
    assert.are.equal(45, n)
  end)

  it("pages at 500 tables by default, and --errored keeps only the tables in error", function()
    local arn = running("huge", 1200)
    table_error(arn, "public.table_700")
    table_error(arn, "public.customers")
    emu:clock({ advance = 3600 })
    local res = assert(workflow.tables(client, { replication_config_arn = arn, errored = true }))
    assert.are.equal(3, res.pages)
    assert.are.equal(1200, res.total)
    assert.are.same({ "public.customers", "public.table_700" }, { res.tables[1].name, res.tables[2].name })
    assert.are.equal(2, #res.tables)
    for _, call in ipairs(stats_calls()) do assert.are.equal(500, call.body.MaxRecords) end
  end)

  it("lists what botocore lists, paging with Marker (the oracle; skipped without botocore)", function()
    local has = os.execute("python3 -c 'import botocore' 2>/dev/null")
    if not (has == true or has == 0) then
      pending("python3 has no botocore")
      return
    end
    local arn = running("oracle", 730)
    table_error(arn, "public.table_321")
    emu:clock({ advance = 60 })
    local script = dir .. "/oracle.py"
    files.write(script, [==[
import json, sys, botocore.session
c = botocore.session.get_session().create_client("dms", region_name="us-east-1", endpoint_url=sys.argv[1],
    aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
out, marker = [], None
while True:
    kw = {"ReplicationConfigArn": sys.argv[4], "MaxRecords": 100}
    if marker:
        kw["Marker"] = marker
    page = c.describe_replication_table_statistics(**kw)
    out += [[t["SchemaName"] + "." + t["TableName"], t["TableState"], t["FullLoadRows"]]
            for t in page["ReplicationTableStatistics"]]
    marker = page.get("Marker")
    if not marker:
        break
print(json.dumps(out))
]==])
    local p = assert(io.popen("python3 " .. script .. " " .. emu.url .. " " .. emulator.ACCESS_KEY .. " '"
      .. emulator.SECRET_KEY .. "' " .. arn))
    local theirs = cjson.decode(p:read("*a"))
    p:close()
    local res = assert(workflow.tables(client, arn))
    local ours = {}
    for i, t in ipairs(res.tables) do ours[i] = { t.name, t.state, t.rows_loaded } end
    assert.are.equal(730, #theirs)
    assert.are.same(theirs, ours)
  end)

  it("passes DMS filters and returns DMS's refusal for a replication that never ran", function()
    local arn = running("filtered", { "sales.orders", "sales.items", "hr.people" })
    local res = assert(workflow.tables(client, { replication_config_arn = arn,
      filters = { { Name = "schema-name", Values = { "sales" } } } }))
    assert.are.equal(2, res.total)
    local _, err = workflow.tables(client, emulator.ARN_CDC)
    assert.are.equal("InvalidResourceStateFault", err.code)
    assert.are.equal("service", err.kind)
    assert.truthy(err.message:find("CREATED", 1, true))
  end)

  it("refuses bad options before any request", function()
    for _, bad in ipairs({
      { nil, "client" }, { {}, "replication_config_arn" },
      { { replication_config_arn = emulator.ARN_CDC, max_records = 10 }, "max_records" },
      { { replication_config_arn = emulator.ARN_CDC, max_records = 501 }, "max_records" },
      { { replication_config_arn = emulator.ARN_CDC, timeout = 0 / 0 }, "timeout" },
      { { replication_config_arn = emulator.ARN_CDC, filters = "x" }, "filters" },
    }) do
      local res, err = workflow.tables(bad[1] == nil and "nope" or client, bad[1])
      assert.is_nil(res)
      assert.are.equal("validation", err.kind, bad[2])
    end
    assert.are.same({}, emu:requests())
  end)

  it("stops on a Marker that comes back instead of looping", function()
    local answers = 0
    local fake = { call = function(_, op)
      assert.are.equal("DescribeReplicationTableStatistics", op)
      answers = answers + 1
      return { ReplicationTableStatistics = { { SchemaName = "s", TableName = "t" .. answers } }, Marker = "same" }
    end }
    local res, err = workflow.tables(fake, emulator.ARN_CDC)
    assert.is_nil(res)
    assert.are.equal("MarkerLoop", err.code)
    assert.are.equal(2, answers)
  end)

  describe("reload_tables", function()
    it("reloads the named tables only, once each, with the option asked for", function()
      local arn = running("reload", 10)
      table_error(arn, "public.orders")
      emu:clock({ advance = 60 })
      assert.are.equal(1, #assert(workflow.tables(client, arn)).errored)
      local res = assert(workflow.reload_tables(client, { replication_config_arn = arn,
        tables = { "public.orders", { SchemaName = "public", TableName = "orders" }, { schema = "public",
        table = "customers" } } }))
      assert.are.equal("data-reload", res.option)
      local calls = emu:requests("ReloadReplicationTables")
      assert.are.equal(1, #calls)
      assert.are.same({ { SchemaName = "public", TableName = "orders" }, { SchemaName = "public",
        TableName = "customers" } }, calls[1].body.TablesToReload)
      assert.are.equal("data-reload", calls[1].body.ReloadOption)
      -- the errored table recovers
      emu:clock({ advance = 3600 })
      local after = assert(workflow.tables(client, arn))
      assert.are.equal(0, #after.errored)
      for _, t in ipairs(after.tables) do
        if t.name == "public.orders" or t.name == "public.customers" then
          assert.is_true(t.reloaded, t.name)
        else
          assert.is_false(t.reloaded, t.name)
        end
      end

      assert(workflow.reload_tables(client, { replication_config_arn = arn, tables = { "public.payments" },
        option = "validate-only" }))
      assert.are.equal("validate-only", emu:requests("ReloadReplicationTables")[2].body.ReloadOption)
    end)

    it("never reloads every table implicitly, and refuses bad names and options before any request", function()
      for _, opts in ipairs({
        { replication_config_arn = emulator.ARN_CDC },
        { replication_config_arn = emulator.ARN_CDC, tables = {} },
        { replication_config_arn = emulator.ARN_CDC, tables = { "orders" } },
        { replication_config_arn = emulator.ARN_CDC, tables = { ".orders" } },
        { replication_config_arn = emulator.ARN_CDC, tables = { "public." } },
        { replication_config_arn = emulator.ARN_CDC, tables = { "public.or\27ders" } },
        { replication_config_arn = emulator.ARN_CDC, tables = { "public.orders" }, option = "everything" },
      }) do
        local res, err = workflow.reload_tables(client, opts)
        assert.is_nil(res)
        assert.are.equal("validation", err.kind)
        assert.is_nil(err.message:find("\27", 1, true))
      end
      assert.are.same({}, emu:requests())
    end)

    it("refuses while the replication is not running, without sending the reload", function()
      local _, err = workflow.reload_tables(client, { replication_config_arn = emulator.ARN_CDC,
        tables = { "public.orders" } })
      assert.are.equal("NotRunning", err.code)
      assert.truthy(err.message:find("created", 1, true))
      assert.are.equal("created", err.replication.Status)
      assert.are.equal(0, #emu:requests("ReloadReplicationTables"))
      assert.are.equal(1, #emu:requests("DescribeReplications"))
    end)

    it("returns DMS's own answer when DMS refuses", function()
      local arn = running("refused", 10)
      local _, err = workflow.reload_tables(client, { replication_config_arn = arn, tables = { "public.nope" } })
      assert.are.equal("ResourceNotFoundFault", err.code)
      assert.are.equal("service", err.kind)
      assert.truthy(err.message:find("public.nope", 1, true))
      assert.is_string(err.request_id)
      -- a reload racing a stop: a describe that lags shows it running, DMS refuses
      assert(client:start_replication({ ReplicationConfigArn = emulator.ARN_CDC,
        StartReplicationType = "start-replication" }))
      emu:clock({ advance = 3600 })
      assert.are.equal("running", described(emulator.ARN_CDC).Status)
      assert(client:stop_replication({ ReplicationConfigArn = emulator.ARN_CDC }))
      emu:clock({ advance = 600 })
      assert.are.equal("stopped", described(emulator.ARN_CDC).Status)
      emu:fault({ operation = "DescribeReplications", fault = "stale" })
      emu:clear_requests()
      local res
      res, err = workflow.reload_tables(client, { replication_config_arn = emulator.ARN_CDC,
        tables = { "public.orders" } })
      assert.is_nil(res)
      assert.are.equal("InvalidResourceStateFault", err.code)
      assert.truthy(err.message:find("tables can be reloaded only while it is RUNNING", 1, true), err.message)
      assert.are.equal(1, #emu:requests("ReloadReplicationTables"))
    end)
  end)

  describe("the watch", function()
    -- a session on `arn` with the watch's clock under the spec's control
    local function new_session(arn, extra)
      local now = 1000
      local o = { replication_config_arn = arn, wait_for = "running", lock_dir = dir,
                  clock = function() return now end, poll = { timeout = 3600 } }
      for k, v in pairs(extra or {}) do o[k] = v end
      local s = session.new(client, o)
      return s, function(dt) now = now + dt end
    end

    local function look(s)
      local repl = assert(s:describe_once())
      tables.watch(s, repl)
      return repl
    end

    it("reads table statistics only when TablesErrored changes, and reports each table once", function()
      local arn = running("watched", 10)
      local s, tick = new_session(arn)
      emu:clock({ advance = 60 })
      for _ = 1, 5 do look(s) end
      assert.are.equal(0, #stats_calls())           -- nothing in error: no statistics read
      table_error(arn, "public.orders")
      emu:clock({ advance = 60 })
      for _ = 1, 5 do
        look(s)
        tick(1)
      end
      assert.are.equal(1, #stats_calls())
      local evs = tables.reported(s)
      assert.are.equal(1, #evs)
      assert.are.equal("table_error", evs[1].type)
      assert.are.same({ "public", "orders", "Table error" }, { evs[1].schema, evs[1].table, evs[1].state })
      assert.are.equal(arn, evs[1].arn)
      assert.are.equal(1, evs[1].tables_errored)
      assert.are.same({ "public.orders" }, s.state.tables_reported)

      table_error(arn, "public.payments")
      emu:clock({ advance = 60 })
      for _ = 1, 3 do look(s) end
      assert.are.equal(2, #stats_calls())
      evs = tables.reported(s)
      assert.are.equal(2, #evs)
      assert.are.equal("public.payments", evs[2].schema .. "." .. evs[2].table)

      -- the slower cadence while a table is in error: one more read after the interval
      tick(tables.WATCH_INTERVAL)
      look(s)
      look(s)
      assert.are.equal(3, #stats_calls())
      assert.are.equal(2, #tables.reported(s))
    end)

    it("forgets a table that recovered, so that a new error of it is reported again", function()
      local arn = running("recovers", 10)
      local s = new_session(arn)
      table_error(arn, "public.orders")
      emu:clock({ advance = 60 })
      look(s)
      assert.are.equal(1, #tables.reported(s))
      assert(workflow.reload_tables(client, { replication_config_arn = arn, tables = { "public.orders" } }))
      emu:clock({ advance = 3600 })
      look(s)
      assert.are.same({}, s.state.tables_reported)
      table_error(arn, "public.orders")            -- the full load is over: it errs at once
      look(s)
      local evs = tables.reported(s)
      assert.are.equal(2, #evs)
      assert.are.equal("public.orders", evs[2].schema .. "." .. evs[2].table)
    end)

    it("does not report what the state record says was reported", function()
      local arn = running("restarted", 10)
      table_error(arn, "public.orders")
      table_error(arn, "public.payments")
      emu:clock({ advance = 3600 })
      local s = new_session(arn)
      s.state.tables_reported = { "public.orders" }
      look(s)
      local evs = tables.reported(s)
      assert.are.equal(1, #evs)
      assert.are.equal("payments", evs[1].table)
      assert.are.same({ "public.orders", "public.payments" }, s.state.tables_reported)
    end)

    it("warns once when the statistics cannot be read, tries again later, and never fails the run", function()
      local arn = running("unreadable", 10)
      local s, tick = new_session(arn)
      table_error(arn, "public.orders")
      emu:clock({ advance = 60 })
      local throttled = emu:client({ retry = { max_attempts = 1 } })
      finally(function() throttled:close() end)
      s.client = throttled
      emu:fault({ operation = "DescribeReplicationTableStatistics", fault = "throttle", count = 2 })
      look(s)
      look(s)                                       -- too soon to try again
      tick(tables.WATCH_RETRY)
      look(s)
      local warnings = count(s.events, of_type("warning"))
      assert.are.equal(1, warnings)
      assert.truthy(s.events[1].message:find("ThrottlingException", 1, true))
      assert.are.equal(0, #tables.reported(s))
      assert.are.equal(2, #stats_calls())
      tick(tables.WATCH_RETRY)
      look(s)
      assert.are.equal(1, #tables.reported(s))
    end)

    it("is off with tables = false", function()
      local arn = running("off", 10)
      table_error(arn, "public.orders")
      emu:clock({ advance = 60 })
      local s = new_session(arn, { tables = false })
      look(s)
      assert.are.equal(0, #stats_calls())
      local _, err = workflow.run(client, { replication_config_arn = arn, tables = "yes" })
      assert.are.equal("validation", err.kind)
      _, err = workflow.run(client, { replication_config_arn = arn, tables = { interval = -1 } })
      assert.are.equal("validation", err.kind)
    end)
  end)

  it("workflow.run reports two tables that err during the full load once each", function()
    local arn = emu:replication({ identifier = "two-errors", tables = 10, full_load_minutes = 200 })
      .ReplicationConfigArn
    table_error(arn, "public.orders", { at_progress = 20 })
    table_error(arn, "public.suppliers", { at_progress = 60 })
    local events = {}
    local outcome = assert(workflow.run(client, {
      replication_config_arn = arn, wait_for = "full-load-complete", lock_dir = dir, sleep = core.sleep,
      poll = { interval = 0.02, timeout = 60 }, on_event = function(ev) events[#events + 1] = ev end }))
    local errs = {}
    for _, ev in ipairs(events) do
      if ev.type == "table_error" then errs[#errs + 1] = ev.schema .. "." .. ev.table end
    end
    assert.are.same({ "public.orders", "public.suppliers" }, errs)
    assert.are.equal(2, #outcome.table_errors)
    assert.are.equal("public.orders", outcome.table_errors[1].schema .. "." .. outcome.table_errors[1].table)
    -- many polls, few reads of the statistics: one per change of TablesErrored
    local polls = #emu:requests("DescribeReplications")
    assert.is_true(polls > 10, polls)
    assert.is_true(#stats_calls() <= 2 + tables.MISMATCH_RETRIES, #stats_calls())
    local done = events[#events]
    assert.are.equal("done", done.type)
    assert.are.equal(2, done.tables_errored)
  end)

  it("a runbook run again after a crash does not report a table twice (the state file keeps them)", function()
    -- a full load that outlasts the runs
    local arn = emu:replication({ identifier = "crashed", tables = 10, status = "running",
      full_load_minutes = 100000 }).ReplicationConfigArn
    table_error(arn, "public.orders", { at_progress = 0 })
    emu:clock({ advance = 60 })
    local state = dir .. "/crashed.json"
    -- a run that ends before its target (a Timeout: the saved phase stays)
    local function run()
      local events = {}
      local outcome, err = workflow.run(client, {
        replication_config_arn = arn, wait_for = "full-load-complete", state_file = state, lock_dir = dir,
        sleep = core.sleep, poll = { interval = 0.01, timeout = 0.3 },
        on_event = function(ev) events[#events + 1] = ev end })
      return events, outcome, err
    end
    -- the first run reports it
    local events, _, err = run()
    assert.are.equal("Timeout", err.code)
    assert.are.equal(1, count(events, of_type("table_error")))
    local saved = cjson.decode(files.read(state))
    assert.are.same({ "public.orders" }, saved.tables_reported)
    assert.are.equal("waiting", saved.phase)
    -- run again: the same table in error is not reported again
    events = run()
    assert.are.equal(0, count(events, of_type("table_error")))
    assert.is_true(#stats_calls() >= 2)              -- it did look
    -- without the state file it would have been
    os.remove(state)
    events = run()
    assert.are.equal(1, count(events, of_type("table_error")))
  end)

  describe("the cdc option", function()
    it("is checked as StartReplication checks it, before any request", function()
      for _, cdc in ipairs({
        { CdcStartTime = 1700000000, CdcStartPosition = "checkpoint:V1#27#mysql-bin-changelog.157832:1975" },
        { CdcStartTime = "yesterday" },
        { CdcStartPositon = "x" },
        "now",
      }) do
        local _, err = workflow.run(client, { replication_config_arn = emulator.ARN_CDC, cdc = cdc,
                                              lock_dir = dir })
        assert.are.equal("validation", err.kind)
      end
      assert.are.same({}, emu:requests())
    end)

    it("reaches StartReplication", function()
      local outcome = assert(workflow.start(client, { replication_config_arn = emulator.ARN_CDC, lock_dir = dir,
        cdc = { CdcStartTime = "2026-01-02T03:04:05Z", CdcStopPosition = "server_time:2026-02-01T00:00:00" } }))
      assert.is_true(outcome.ok)
      local body = emu:requests("StartReplication")[1].body
      assert.are.equal(1767323045, body.CdcStartTime)         -- date -u -d 2026-01-02T03:04:05Z +%s
      assert.are.equal("server_time:2026-02-01T00:00:00", body.CdcStopPosition)
      assert.is_nil(body.CdcStartPosition)
    end)
  end)
end)
