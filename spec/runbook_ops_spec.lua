-- bin/dms-runbook's operator commands as a subprocess against the local DMS
-- endpoint: tables, reload-tables, create-config, modify-config,
-- delete-config and the --cdc-* options. The emulator's request log is the
-- witness of what reached DMS (and of what did not).
local cjson = require "cjson"
local workflow = require "dms.workflow"
local emulator = require "support.emulator"
local files = require "support.files"

local rb = require "support.runbook"
local LUA, CPATH, ENV = rb.LUA, rb.CPATH, rb.ENV

local SOURCE = "arn:aws:dms:us-east-1:123456789012:endpoint:SOURCE"
local TARGET = "arn:aws:dms:us-east-1:123456789012:endpoint:TARGET"
local MAPPINGS = '{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "sales",\n'
  .. '  "object-locator": {"schema-name": "sales", "table-name": "%"}, "rule-action": "include"}]}\n'

local lines = rb.lines

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

describe("dms-runbook operator commands", function()
  local emu, dir, client

  setup(function()
    emu = emulator.start({ speed = 20000 })
    client = emu:client()
    dir = files.tmpdir()
    files.write(dir .. "/mappings.json", MAPPINGS)
    files.write(dir .. "/settings.json", '{"Logging": {"EnableLogging": false}}')
    files.write(dir .. "/compute.json", '{"MaxCapacityUnits": 8, "MinCapacityUnits": 2, "MultiAZ": true}')
    files.write(dir .. "/bad.json", '{"rules": [')
    files.write(dir .. "/list.json", '[1, 2]')
    files.write(dir .. "/bad-rules.json", '{"rules": [{"rule-type": "selection", "rule-id": "7", "rule-name": "x",'
      .. ' "object-locator": {"schema-name": "sales"}, "rule-action": "include"}]}')
  end)
  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)
  before_each(function()
    emu:reset()
  end)

  -- runs to the end; returns exit code, stdout, stderr
  local function runbook(args)
    local err_file = dir .. "/stderr"
    local p = assert(io.popen(ENV .. " " .. LUA .. " bin/dms-runbook --endpoint " .. emu.url .. " --lock-dir " .. dir
      .. " " .. args .. " 2>" .. err_file .. "; echo \"__exit=$?\""))
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("__exit=(%d+)%s*$"))
    return code, out:gsub("__exit=%d+%s*$", ""), files.read(err_file) or ""
  end

  -- the same on a pseudo-terminal (script(1)); returns what the terminal got
  local function on_terminal(args)
    local out_file = dir .. "/tty.out"
    local cmd = ENV:gsub("TERM=dumb", "TERM=xterm") .. " " .. LUA .. " bin/dms-runbook --endpoint " .. emu.url
      .. " --lock-dir " .. dir .. " " .. args
    local ok = os.execute("script -qec " .. quote(cmd) .. " " .. out_file .. " >/dev/null 2>&1 </dev/null")
    assert.truthy(ok == true or ok == 0)
    return files.read(out_file) or ""
  end

  local function json_lines(stdout)
    local out = {}
    for _, line in ipairs(lines(stdout)) do out[#out + 1] = cjson.decode(line) end
    return out
  end

  local function operations()
    local out = {}
    for _, r in ipairs(emu:requests()) do out[#out + 1] = r.operation end
    return out
  end

  -- a CDC replication, running, whose armed table errors fire at once
  local function running(identifier, tabs)
    return emu:replication({ identifier = identifier, tables = tabs, status = "running", type = "cdc" })
      .ReplicationConfigArn
  end

  local function table_error(arn, name)
    emu:admin("POST", "table_error", { arn = arn, table = name })
    emu:clock({ advance = 60 })
  end

  local function status(arn) return assert(workflow.describe(client, arn)).Status end

  it("documents the operator commands and options", function()
    local code, out = runbook("--help")
    assert.are.equal(0, code)
    for _, word in ipairs({ "tables", "reload-tables", "create-config", "modify-config", "delete-config" }) do
      assert.truthy(out:find(word, 1, true), word)
    end
    code, out = runbook("run --help")
    assert.are.equal(0, code)
    for _, word in ipairs({ "--cdc-start-time", "--cdc-start-position", "--cdc-stop-position" }) do
      assert.truthy(out:find(word, 1, true), word)
    end
    code, out = runbook("reload-tables --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("validate-only", 1, true))
  end)

  describe("tables", function()
    it("prints one JSON line per table, every page, and --errored only those in error", function()
      local arn = running("wide", 600)
      table_error(arn, "public.table_555")
      local code, out, err = runbook("--arn " .. arn .. " tables")
      assert.are.equal(0, code, err)
      local rows = json_lines(out)
      assert.are.equal(600, #rows)
      local errored = {}
      for _, r in ipairs(rows) do
        assert.are.equal("table", r.type)
        assert.are.equal(arn, r.arn)
        assert.is_nil(r.statistics)
        assert.is_number(r.rows_loaded)
        if r.errored then errored[#errored + 1] = r.name end
      end
      assert.are.same({ "public.table_555" }, errored)
      local calls = emu:requests("DescribeReplicationTableStatistics")
      assert.are.equal(2, #calls)
      assert.is_string(calls[2].body.Marker)

      code, out = runbook("--arn " .. arn .. " tables --errored")
      assert.are.equal(0, code)
      rows = json_lines(out)
      assert.are.equal(1, #rows)
      assert.are.same({ "public", "table_555", "Table error" }, { rows[1].schema, rows[1].table, rows[1].state })
    end)

    it("sends the filters to DMS", function()
      local arn = running("filters", { "sales.orders", "sales.items", "hr.people" })
      table_error(arn, "sales.items")
      local code, out = runbook("--arn " .. arn .. " tables --schema sales --state 'Table error'")
      assert.are.equal(0, code)
      assert.are.equal(1, #json_lines(out))
      assert.are.same({ { Name = "schema-name", Values = { "sales" } }, { Name = "table-state",
        Values = { "Table error" } } }, emu:requests("DescribeReplicationTableStatistics")[1].body.Filters)
    end)

    it("draws a table on a terminal, escapes what DMS sent, and says how to reload the tables in error", function()
      local arn = running("tty", { "sales.orders", "sales.evil\27]0;owned\7name", "hr.people" })
      table_error(arn, "sales.orders")
      local text = on_terminal("--arn " .. arn .. " tables")
      assert.truthy(text:find("TABLE", 1, true))
      assert.truthy(text:find("ROWS LOADED", 1, true))
      assert.falsy(text:find('{"', 1, true), "JSON on a terminal")
      assert.truthy(text:find("sales.evil\\x1B]0;owned\\x07name", 1, true), text)
      assert.falsy((text:gsub("\27%[[01]m", "")):find("[\27\7]"), "a raw control character reached the terminal")
      assert.truthy(text:find("\27%[1msales%.orders +Table error"), "the table in error is not highlighted")
      assert.truthy(text:find("3 table(s): 2 Table completed, 1 Table error", 1, true), text)
      assert.truthy(text:find("reload-tables --table 'sales.orders'", 1, true), text)
    end)

    it("shows DMS's answer for a replication that never ran, and refuses a bad --arn before any request", function()
      local code, _, err = runbook("--arn " .. emulator.ARN_CDC .. " tables")
      assert.are.equal(1, code)
      assert.truthy(err:find("InvalidResourceStateFault", 1, true), err)
      assert.truthy(err:find("no table statistics until it has been started", 1, true), err)
      -- an identifier is looked up first
      code, _, err = runbook("--arn orders-cdc tables")
      assert.are.equal(1, code)
      assert.truthy(err:find("no table statistics until it has been started", 1, true), err)
      code, _, err = runbook("--arn no-such-config tables")
      assert.are.equal(1, code)
      assert.truthy(err:find("ResourceNotFoundFault", 1, true), err)
      emu:clear_requests()
      code, _, err = runbook("--arn 'bogus!' tables")
      assert.are.equal(2, code)
      assert.truthy(err:find("neither the ARN of a DMS replication config nor an identifier", 1, true))
      code = runbook("tables")
      assert.are.equal(2, code)
      assert.are.same({}, operations())
    end)
  end)

  describe("reload-tables", function()
    it("reloads the named tables only", function()
      local arn = running("reload", 10)
      table_error(arn, "public.orders")
      local code, out, err = runbook("--arn " .. arn .. " reload-tables --table public.orders --table public.payments")
      assert.are.equal(0, code, err)
      local ev = json_lines(out)[1]
      assert.are.equal("reload_sent", ev.type)
      assert.are.same({ "public.orders", "public.payments" }, ev.tables)
      assert.are.equal("data-reload", ev.option)
      local calls = emu:requests("ReloadReplicationTables")
      assert.are.equal(1, #calls)
      assert.are.same({ { SchemaName = "public", TableName = "orders" }, { SchemaName = "public",
        TableName = "payments" } }, calls[1].body.TablesToReload)
      assert.is_string(ev.request_id)
      code = runbook("--arn " .. arn .. " reload-tables --table public.orders --reload-option validate-only")
      assert.are.equal(0, code)
      assert.are.equal("validate-only", emu:requests("ReloadReplicationTables")[2].body.ReloadOption)
    end)

    it("never reloads every table implicitly: no --table, or a bad one, is bad usage before any request", function()
      local arn = running("implicit", 10)
      emu:clear_requests()
      for _, args in ipairs({ "reload-tables", "reload-tables --table orders", "reload-tables --table .orders",
                              "reload-tables --table public.orders --reload-option everything" }) do
        local code, _, err = runbook("--arn " .. arn .. " " .. args)
        assert.are.equal(2, code, args)
        assert.truthy(err ~= "", args)
      end
      local _, _, err = runbook("--arn " .. arn .. " reload-tables")
      assert.truthy(err:find("never reloads every table implicitly", 1, true), err)
      assert.are.same({}, operations())
    end)

    it("refuses while the replication is not running, sending no reload", function()
      local code, out, err = runbook("--arn " .. emulator.ARN_CDC .. " reload-tables --table public.orders")
      assert.are.equal(1, code)
      assert.truthy(err:find("NotRunning", 1, true))
      assert.truthy(err:find("is created: tables can be reloaded only while it is running", 1, true), err)
      assert.are.equal("NotRunning", json_lines(out)[1].code)
      assert.are.same({ "DescribeReplications" }, operations())
    end)

    it("shows DMS's answer when DMS refuses", function()
      local arn = running("refusal", 10)
      local code, _, err = runbook("--arn " .. arn .. " reload-tables --table public.missing")
      assert.are.equal(1, code)
      assert.truthy(err:find("ResourceNotFoundFault", 1, true), err)
      assert.truthy(err:find("Table(s) not found in the replication of " .. arn .. ": public.missing", 1, true), err)
      assert.truthy(err:find("request id", 1, true), err)
    end)
  end)

  describe("create-config", function()
    local base = " create-config --identifier orders --source-endpoint-arn " .. SOURCE .. " --target-endpoint-arn "
      .. TARGET .. " --replication-type cdc --max-capacity-units 16"

    it("creates a config from JSON files, sent as written", function()
      local code, out, err = runbook(base .. " --table-mappings " .. dir .. "/mappings.json --replication-settings "
        .. dir .. "/settings.json --tag team=db --tag tier=1")
      assert.are.equal(0, code, err)
      local ev = json_lines(out)[1]
      assert.are.equal("config_created", ev.type)
      assert.are.equal("orders", ev.config.ReplicationConfigIdentifier)
      assert.truthy(ev.arn:find(":replication-config:", 1, true))
      local body = emu:requests("CreateReplicationConfig")[1].body
      assert.are.equal(MAPPINGS, body.TableMappings)
      assert.are.equal(files.read(dir .. "/settings.json"), body.ReplicationSettings)
      assert.are.same({ MaxCapacityUnits = 16 }, body.ComputeConfig)
      assert.are.same({ { Key = "team", Value = "db" }, { Key = "tier", Value = "1" } }, body.Tags)
      -- the new config is there
      local repl = assert(workflow.describe(client, ev.arn))
      assert.are.equal("created", repl.Status)
      assert.are.equal("cdc", repl.ReplicationType)
    end)

    it("takes a ComputeConfig file and shows the config on a terminal", function()
      local text = on_terminal("create-config --identifier tty-orders --source-endpoint-arn " .. SOURCE
        .. " --target-endpoint-arn " .. TARGET .. " --replication-type full-load --table-mappings " .. dir
        .. "/mappings.json --compute-config " .. dir .. "/compute.json --max-capacity-units 4")
      assert.truthy(text:find("replication config created", 1, true), text)
      assert.truthy(text:find("capacity (DCU)         2..4, Multi-AZ", 1, true), text)
      assert.truthy(text:find("table mappings         1 rule(s)", 1, true), text)
      assert.are.same({ MaxCapacityUnits = 4, MinCapacityUnits = 2, MultiAZ = true },
        emu:requests("CreateReplicationConfig")[1].body.ComputeConfig)
    end)

    it("refuses missing options and unreadable or non-object JSON files before any request", function()
      for _, args in ipairs({
        "create-config --identifier orders",
        base,
        base .. " --table-mappings " .. dir .. "/absent.json",
        base .. " --table-mappings " .. dir .. "/bad.json",
        base .. " --table-mappings " .. dir .. "/list.json",
        base .. " --table-mappings " .. dir .. "/mappings.json --replication-settings " .. dir .. "/bad.json",
        base .. " --table-mappings " .. dir .. "/mappings.json --tag novalue",
        base .. " --table-mappings " .. dir .. "/mappings.json --max-capacity-units 0",
      }) do
        local code, _, err = runbook(args)
        assert.are.equal(2, code, args .. ": " .. err)
      end
      local _, _, err = runbook(base)
      assert.truthy(err:find("--table-mappings", 1, true), err)
      _, _, err = runbook(base .. " --table-mappings " .. dir .. "/bad.json")
      assert.truthy(err:find("bad.json does not hold a JSON object", 1, true), err)
      assert.are.same({}, operations())
    end)

    it("shows DMS's answer when DMS refuses", function()
      local args = base .. " --table-mappings " .. dir .. "/mappings.json"
      assert.are.equal(0, (runbook(args)))
      local code, out, err = runbook(args)
      assert.are.equal(1, code)
      assert.truthy(err:find("ResourceAlreadyExistsFault: A replication config with the identifier orders already "
        .. "exists", 1, true), err)
      local ev = json_lines(out)[1]
      assert.are.equal("error", ev.type)
      assert.are.equal("ResourceAlreadyExistsFault", ev.code)
      code, out, err = runbook(base:gsub("orders", "other") .. " --table-mappings " .. dir .. "/bad-rules.json")
      assert.are.equal("InvalidParameterValueException", json_lines(out)[1].code)
      assert.are.equal(1, code)
      assert.truthy(err:find("InvalidParameterValueException", 1, true), err)
      assert.truthy(err:find("Error in mapping rules. Rule with ruleId = 7 failed validation", 1, true), err)
    end)
  end)

  describe("modify-config and delete-config", function()
    local ARN = emulator.ARN_FULL_LOAD_AND_CDC

    local function start_and_wait(arn)
      assert(client:start_replication({ ReplicationConfigArn = arn, StartReplicationType = "start-replication" }))
      emu:clock({ advance = 3600 })
      assert.are.equal("running", status(arn))
    end

    local function stop_and_wait(arn)
      assert(client:stop_replication({ ReplicationConfigArn = arn }))
      emu:clock({ advance = 1200 })                 -- stopped, its capacity released
      assert.are.equal("stopped", status(arn))
    end

    it("modifies a config whose replication is not running", function()
      local code, out, err = runbook("--arn " .. ARN .. " modify-config --replication-settings " .. dir
        .. "/settings.json --max-capacity-units 32")
      assert.are.equal(0, code, err)
      local ev = json_lines(out)[1]
      assert.are.equal("config_modified", ev.type)
      assert.are.equal(32, ev.config.ComputeConfig.MaxCapacityUnits)
      assert.are.equal(files.read(dir .. "/settings.json"), ev.config.ReplicationSettings)
      assert.are.same({ "DescribeReplications", "ModifyReplicationConfig" }, operations())
      assert.are.same({ ReplicationConfigArn = ARN, ReplicationSettings = files.read(dir .. "/settings.json"),
        ComputeConfig = { MaxCapacityUnits = 32 } }, emu:requests("ModifyReplicationConfig")[1].body)
    end)

    it("refuses to modify or delete the config of a running replication before any request that would change it",
      function()
      start_and_wait(ARN)
      emu:clear_requests()
      for _, args in ipairs({ "modify-config --max-capacity-units 32", "delete-config" }) do
        local code, out, err = runbook("--arn " .. ARN .. " " .. args)
        assert.are.equal(1, code, args)
        assert.truthy(err:find("ReplicationActive", 1, true), err)
        assert.truthy(err:find("is running: its config cannot be", 1, true), err)
        assert.truthy(err:find("nothing was sent", 1, true), err)
        assert.are.equal("ReplicationActive", json_lines(out)[1].code)
      end
      assert.are.same({ "DescribeReplications", "DescribeReplications" }, operations())
      assert.are.equal("running", status(ARN))
    end)

    it("shows DMS's answer when DMS refuses (a describe that lags, a bad value)", function()
      -- the describe lags behind a start: it shows the replication stopped, DMS knows better
      start_and_wait(ARN)
      stop_and_wait(ARN)
      start_and_wait(ARN)
      emu:fault({ operation = "DescribeReplications", fault = "stale", count = 2 })
      emu:clear_requests()
      local code, _, err = runbook("--arn " .. ARN .. " modify-config --max-capacity-units 32")
      assert.are.equal(1, code)
      assert.truthy(err:find("InvalidResourceStateFault: Replication is in RUNNING state and its replication config "
        .. "cannot be modified; stop the replication first", 1, true), err)
      code, _, err = runbook("--arn " .. ARN .. " delete-config")
      assert.are.equal(1, code)
      assert.truthy(err:find("InvalidResourceStateFault: Replication is in RUNNING state and its replication config "
        .. "cannot be deleted", 1, true), err)
      assert.are.same({ "DescribeReplications", "ModifyReplicationConfig", "DescribeReplications",
                        "DeleteReplicationConfig" }, operations())
      stop_and_wait(ARN)
      code, _, err = runbook("--arn " .. ARN .. " modify-config --max-capacity-units 3")
      assert.are.equal(1, code)
      assert.truthy(err:find("InvalidParameterValueException: Invalid ComputeConfig.MaxCapacityUnits: 3", 1, true),
        err)
    end)

    it("deletes the config of a stopped replication, and needs a change to modify", function()
      assert.are.equal(2, (runbook("--arn " .. ARN .. " modify-config")))
      assert.are.equal(2, (runbook("modify-config --max-capacity-units 2")))
      assert.are.equal(2, (runbook("--arn 'bogus!' delete-config")))
      assert.are.same({}, operations())
      local code, out, err = runbook("--arn " .. ARN .. " delete-config")
      assert.are.equal(0, code, err)
      local ev = json_lines(out)[1]
      assert.are.equal("config_deleted", ev.type)
      assert.are.equal(ARN, ev.arn)
      local _, derr = workflow.describe(client, ARN)
      assert.are.equal("ResourceNotFoundFault", derr.code)
      code, _, err = runbook("--arn " .. ARN .. " delete-config")
      assert.are.equal(1, code)
      assert.truthy(err:find("ResourceNotFoundFault", 1, true), err)
    end)

    it("refuses while a runbook holds the replication's lock (exit 6)", function()
      -- another process holds it, as a runbook would
      local script = dir .. "/holder.lua"
      files.write(script, "local core = require 'dms.core'\nlocal l = assert(core.lock(arg[1]))\n"
        .. "io.write('locked\\n') io.stdout:flush()\ncore.sleep(30)\nl:release()\n")
      local p = assert(io.popen("LUA_CPATH='" .. CPATH .. "' exec sh -c 'echo $$; exec " .. LUA .. " " .. script
        .. " " .. workflow.lock_path({ replication_config_arn = ARN, lock_dir = dir }) .. "'"))
      local pid = p:read("*l")
      finally(function()
        os.execute("kill " .. pid .. " 2>/dev/null")
        p:close()
      end)
      assert.are.equal("locked", p:read("*l"))
      for _, args in ipairs({ "modify-config --max-capacity-units 32", "delete-config" }) do
        local code, _, err = runbook("--arn " .. ARN .. " " .. args)
        assert.are.equal(6, code, err)
        assert.truthy(err:find("while a runbook drives it", 1, true), err)
      end
      assert.are.same({}, operations())
    end)
  end)

  describe("--cdc-* options", function()
    it("refuses a start time with a start position, or a bad time, before any request", function()
      for _, args in ipairs({ "--cdc-start-time 2026-01-02T03:04:05Z --cdc-start-position 00000123",
                              "--cdc-start-time yesterday" }) do
        for _, cmd in ipairs({ "run", "start" }) do
          local code, out = runbook("--arn " .. emulator.ARN_CDC .. " " .. cmd .. " " .. args)
          assert.are.equal(2, code, cmd .. " " .. args)
          assert.are.equal("validation", json_lines(out)[1].kind)
        end
      end
      assert.are.same({}, operations())
    end)

    it("passes them to StartReplication", function()
      local code, _, err = runbook("--arn " .. emulator.ARN_CDC .. " start --cdc-start-position 00000123 "
        .. "--cdc-stop-position server_time:2026-02-01T00:00:00")
      assert.are.equal(0, code, err)
      local body = emu:requests("StartReplication")[1].body
      assert.are.equal("00000123", body.CdcStartPosition)
      assert.are.equal("server_time:2026-02-01T00:00:00", body.CdcStopPosition)
      assert.is_nil(body.CdcStartTime)
      emu:reset()
      code, _, err = runbook("--arn " .. emulator.ARN_CDC .. " run --poll-interval 0.05 --cdc-start-time 1767323045")
      assert.are.equal(0, code, err)
      assert.are.equal(1767323045, emu:requests("StartReplication")[1].body.CdcStartTime)
      emu:reset()
      code = runbook("--arn " .. emulator.ARN_CDC .. " start --cdc-start-time 2026-01-02T03:04:05Z")
      assert.are.equal(0, code)
      assert.are.equal(1767323045, emu:requests("StartReplication")[1].body.CdcStartTime)
    end)
  end)

  it("reports a table in error once in a run's events", function()
    local arn = running("run-errors", 10)
    table_error(arn, "public.orders")
    local code, out, err = runbook("--arn " .. arn .. " run --poll-interval 0.05")
    assert.are.equal(0, code, err)
    local n, ev = 0, nil
    for _, e in ipairs(json_lines(out)) do
      if e.type == "table_error" then n, ev = n + 1, e end
    end
    assert.are.equal(1, n)
    assert.are.same({ "public", "orders", "Table error" }, { ev.schema, ev.table, ev.state })
    local text = on_terminal("--arn " .. arn .. " run --poll-interval 0.05")
    assert.truthy(text:find("table public.orders: Table error (", 1, true), text)
  end)
end)
