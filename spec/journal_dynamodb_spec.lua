-- The DynamoDB journal (dms.workflow.journal_dynamodb) and the DynamoDB
-- client (dms.dynamodb) against dynalite, a DynamoDB-compatible server,
-- through a loopback proxy that counts requests and injects faults
-- (throttling, an answer lost after the write was applied); botocore's
-- DynamoDB serializer is the oracle of the request bodies; workflow.run with
-- the journal against the local DMS endpoint.
local cjson = require "cjson"
local core = require "dms.core"
local dms = require "dms"
local dynamodb = require "dms.dynamodb"
local jd = require "dms.workflow.journal_dynamodb"
local workflow = require "dms.workflow"
local emulator = require "support.emulator"
local dynalite = require "support.dynalite"
local files = require "support.files"

local ARN = emulator.ARN_CDC
local ARN2 = emulator.ARN_FULL_LOAD_AND_CDC
local KEYS = { access_key = "AKIDJOURNAL", secret_key = "journal-secret" }

local skip = dynalite.unavailable()

local function find(events, kind)
  for _, ev in ipairs(events) do
    if ev.type == kind then return ev end
  end
end

local function count(events, kind)
  local n = 0
  for _, ev in ipairs(events) do
    if ev.type == kind then n = n + 1 end
  end
  return n
end

describe("the DynamoDB journal", function()
  if skip then
    it("needs dynalite", function() pending(skip) end)
    return
  end

  local server, proxy, dms_client, direct, tables = nil, nil, nil, nil, 0

  setup(function()
    server = dynalite.start()
    proxy = server:proxy()
    dms_client = assert(dms.new({ region = "us-east-1", endpoint = "http://127.0.0.1:9", credentials = KEYS,
                                  sleep = function() end }))
    direct = assert(dynamodb.for_client(dms_client, { endpoint = server.url }))
  end)
  teardown(function()
    if direct then direct:close() end
    if dms_client then dms_client:close() end
    if server then server:stop() end
  end)

  -- a new table for each test
  local function new_table()
    tables = tables + 1
    local name = "journal-" .. tables
    assert(jd.create_table(direct, name))
    return name
  end

  -- a store of `owner` on `table` through the proxy, with a clock the test moves
  local function store(table_name, owner, extra)
    local settings = assert(jd.check({ dynamodb = { table = table_name, endpoint = proxy.url, lease = 30 } }, owner))
    for k, v in pairs(extra or {}) do settings[k] = v end
    local st = assert(jd.store(dms_client, settings))
    local clock = { wall = 1000000, mono = 0 }
    st.wall = function() return clock.wall end
    st.mono = function() return clock.mono end
    return st, clock
  end

  local function item(table_name, arn)
    local resp = assert(direct:get_item({ TableName = table_name, Key = { pk = dynamodb.S(arn or ARN) },
                                          ConsistentRead = true }))
    return dynamodb.decode_item(resp.Item)
  end

  before_each(function()
    proxy:clear_faults()
    proxy:clear_counts()
  end)

  describe("its client", function()
    it("shares the DMS client's credentials, region and transport, and resolves its own endpoint", function()
      assert.are.equal(dms_client.credentials, direct.credentials)
      assert.are.equal("us-east-1", direct.region)
      assert.are.equal("dynamodb", direct.model.signing_name)
      assert.truthy(tostring(direct):find("dynamodb.client", 1, true))
      local d = assert(dynamodb.for_client(dms_client))
      assert.are.equal("https://dynamodb.us-east-1.amazonaws.com/", d.endpoint.url)
      d:close()
      d = assert(dynamodb.for_client(dms_client, { region = "cn-north-1" }))
      assert.are.equal("https://dynamodb.cn-north-1.amazonaws.com.cn/", d.endpoint.url)
      d:close()
      d = assert(dynamodb.new({ region = "eu-west-1", credentials = KEYS,
        env = { AWS_ENDPOINT_URL_DYNAMODB = "http://127.0.0.1:8001", AWS_ENDPOINT_URL = "http://127.0.0.1:8002" } }))
      assert.are.equal("http://127.0.0.1:8001/", d.endpoint.url)
      d:close()
      d = assert(dynamodb.new({ region = "eu-west-1", credentials = KEYS,
        env = { AWS_ENDPOINT_URL = "http://127.0.0.1:8002" } }))
      assert.are.equal("http://127.0.0.1:8002/", d.endpoint.url)
      d:close()
      -- closing a client that shares credentials leaves them to their owner
      local shared = assert(dynamodb.for_client(dms_client, { endpoint = server.url }))
      shared:close()
      assert.truthy(assert(shared.credentials:get()).access_key == KEYS.access_key)
      -- a DMS client has no DynamoDB methods, nor the other way round
      assert.is_nil(dms_client.put_item)
      assert.is_nil(direct.start_replication)
      assert.are.equal("function", type(direct.put_item))
    end)

    it("validates DynamoDB parameters before any request", function()
      local resp, err = direct:put_item({ TableName = "t", Item = "not a map" })
      assert.is_nil(resp)
      assert.are.equal("validation", err.kind)
      resp, err = direct:call("StartReplication", {})
      assert.is_nil(resp)
      assert.are.equal("UnknownOperation", err.code)
    end)

    it("creates the journal's table: on-demand, key pk, TTL asked for", function()
      local info = assert(jd.create_table(direct, "journal-created"))
      assert.are.equal("ACTIVE", info.status)
      local d = assert(direct:describe_table({ TableName = "journal-created" })).Table
      assert.are.equal("PAY_PER_REQUEST", d.BillingModeSummary.BillingMode)
      assert.are.same({ { AttributeName = "pk", KeyType = "HASH" } }, d.KeySchema)
      -- dynalite does not implement UpdateTimeToLive: a warning, not a failure
      assert.are.equal("not enabled", info.ttl)
      assert.truthy(info.warning:find("UnknownOperation", 1, true))
      -- again: the table is there already
      info = assert(jd.create_table(direct, "journal-created"))
      assert.is_true(info.existed)
    end)
  end)

  describe("leases", function()
    it("takes, saves, loads and releases: one item with owner, fence, version and the state", function()
      local name = new_table()
      local a = store(name, "host-a")
      local j = assert(a:open({ arn = ARN, lock = true }))
      assert.is_true(j.holding)
      assert.are.equal(1, j.fence)
      local rec, why = j:load()
      assert.is_nil(rec)
      assert.are.equal("absent", why)
      assert(j:save({ arn = ARN, phase = "starting", start_pending = true, starts = 0, resumes = 0 }))
      assert(j:save({ arn = ARN, phase = "waiting", start_pending = false, starts = 1, resumes = 0 }))
      local it_ = item(name)
      assert.are.equal("host-a", it_.owner)
      assert.are.equal(2, it_.version)
      assert.are.equal("waiting", it_.phase)
      assert.are.equal(1000000 + 30, it_.lease_expires)
      assert.are.equal(1000000 + 30 + 7 * 86400, it_.expires_at)
      assert.are.equal(1, cjson.decode(it_.state).starts)
      j:close()
      it_ = item(name)
      assert.is_nil(it_.owner)
      assert.are.equal("host-a", it_.last_owner)
      assert.are.equal(1000000, it_.lease_expires)

      -- released: another owner takes it at once, with the next fence and the state
      local b = store(name, "host-b")
      local jb = assert(b:open({ arn = ARN, lock = true }))
      assert.is_true(jb.holding)
      assert.are.equal(2, jb.fence)
      assert.is_nil(jb.taken_from)        -- released, not taken over
      local loaded = assert(jb:load())
      assert.are.equal("waiting", loaded.phase)
      assert.are.equal(1, loaded.starts)
      assert.are.equal(2, item(name).version)
      jb:close()
    end)

    it("leaves a live lease to its owner and takes an expired one over, with a new fence", function()
      local name = new_table()
      local a, ca = store(name, "host-a")
      local b, cb = store(name, "host-b")
      local ja = assert(a:open({ arn = ARN, lock = true }))
      assert(ja:save({ arn = ARN, phase = "starting", start_pending = true, starts = 0, resumes = 0 }))
      -- host-b: held, nothing written
      proxy:clear_counts()
      local jb = assert(b:open({ arn = ARN, lock = true }))
      assert.is_false(jb.holding)
      assert.are.equal("host-a", jb.held.owner)
      assert.is_nil(proxy:counts().PutItem)
      -- "try" (an operator's stop) goes ahead without it
      local jt = assert(b:open({ arn = ARN, lock = "try" }))
      assert.are.equal("Locked", jt.bypassed.code)
      assert.is_true(assert(jt:save({ arn = ARN, phase = "stopping" })))     -- writes nothing
      assert.are.equal(1, item(name).version)
      -- by host-b's clock the lease expired (it runs 31 s ahead): taken over
      cb.wall = ca.wall + 31
      assert(jb:take())
      assert.is_true(jb.holding)
      assert.are.equal(2, jb.fence)
      assert.are.equal("host-a", jb.taken_from)
      assert.is_true(assert(jb:load()).start_pending)
      -- host-a: a save, a renewal and a check are refused; nothing more is possible
      local ok, err = ja:save({ arn = ARN, phase = "waiting", starts = 1, resumes = 0 })
      assert.is_nil(ok)
      assert.are.equal("LeaseLost", err.code)
      assert.are.equal("workflow", err.kind)
      assert.are.equal("host-b", err.owner)
      ok, err = ja:check()
      assert.is_nil(ok)
      assert.are.equal("LeaseLost", err.code)
      ok, err = ja:renew()
      assert.is_nil(ok)
      assert.are.equal("LeaseLost", err.code)
      ja:close()                       -- does not release host-b's lease
      assert.are.equal("host-b", item(name).owner)
      assert.are.equal("host-b", item(name).owner)
      jb:close()
    end)

    it("renews every third of the lease, and a lease that may have lapsed is lost when it cannot be renewed",
    function()
      local name = new_table()
      local a, ca = store(name, "host-a")
      local ja = assert(a:open({ arn = ARN, lock = true }))
      proxy:clear_counts()
      ca.mono, ca.wall = 9, ca.wall + 9
      assert(ja:check())
      assert.is_nil(proxy:counts().UpdateItem)          -- not due yet
      ca.mono, ca.wall = 10.5, ca.wall + 1.5
      assert(ja:check())
      assert.are.equal(1, proxy:counts().UpdateItem)    -- renewed
      assert.are.equal(ca.wall + 30, item(name).lease_expires)
      assert.are.equal(20.5, ja:due())
      -- DynamoDB throttles every request: still valid, the check passes and tries again soon
      proxy:fault({ operation = "*", fault = "throttle", count = 1000 })
      ca.mono = 21
      assert(ja:check())
      assert.is_true(ja:due() <= 21 + 2)
      -- past lease - clock margin (30 - 6 = 24 s after the renewal): lost
      ca.mono = 10.5 + 24.1
      local ok, err = ja:check()
      assert.is_nil(ok)
      assert.are.equal("LeaseLost", err.code)
      assert.truthy(err.message:find("may have lapsed", 1, true))
      proxy:clear_faults()
      ja:close()
    end)

    it("rides out throttling: the client backs off and tries again", function()
      local name = new_table()
      local a = store(name, "host-a")
      proxy:fault({ operation = "GetItem", fault = "throttle", count = 2 })
      proxy:fault({ operation = "PutItem", fault = "throttle", count = 3 })
      proxy:fault({ operation = "UpdateItem", fault = "throttle", count = 4 })
      local ja = assert(a:open({ arn = ARN, lock = true }))
      assert.is_true(ja.holding)
      assert(ja:save({ arn = ARN, phase = "waiting", starts = 1, resumes = 0 }))
      local c = proxy:counts()
      assert.are.equal(3, c.GetItem)
      assert.are.equal(4, c.PutItem)
      assert.are.equal(5, c.UpdateItem)
      assert.are.equal(1, item(name).version)
      ja:close()
    end)

    it("reads a conditional write back when its answer is lost: a retry refused by its own write is no lost lease",
    function()
      local name = new_table()
      local a, ca = store(name, "host-a")
      -- the take: applied, its answer lost; the client sends it again, refused by its own condition
      proxy:fault({ operation = "PutItem", fault = "drop_answer", count = 1 })
      local ja = assert(a:open({ arn = ARN, lock = true }))
      assert.is_true(ja.holding)
      assert.are.equal(1, ja.fence)
      assert.are.equal(2, proxy:counts().PutItem)
      assert.are.equal(1, a.counts.read_back)
      -- a state write: the same
      proxy:fault({ operation = "UpdateItem", fault = "drop_answer", count = 1 })
      assert(ja:save({ arn = ARN, phase = "starting", start_pending = true, starts = 0, resumes = 0 }))
      assert.are.equal(1, item(name).version)
      assert.are.equal(1, ja.version)
      assert.are.equal(2, a.counts.read_back)
      -- a 5xx after the write was applied
      proxy:fault({ operation = "UpdateItem", fault = "error500", count = 1 })
      assert(ja:save({ arn = ARN, phase = "waiting", start_pending = false, starts = 1, resumes = 0 }))
      assert.are.equal(2, item(name).version)
      -- a renewal
      ca.mono, ca.wall = 11, ca.wall + 11
      proxy:fault({ operation = "UpdateItem", fault = "drop_answer", count = 1 })
      assert(ja:check())
      assert.are.equal(ca.wall + 30, item(name).lease_expires)
      assert.is_nil(ja.lost)
      -- the next write goes on from the right version
      assert(ja:save({ arn = ARN, phase = "done", starts = 1, resumes = 0 }))
      assert.are.equal(3, item(name).version)
      ja:close()
    end)

    it("reads back a lost answer and finds another owner: the lease is lost", function()
      local name = new_table()
      local a = store(name, "host-a")
      local b, cb = store(name, "host-b")
      local ja = assert(a:open({ arn = ARN, lock = true }))
      cb.wall = cb.wall + 100
      local jb = assert(b:open({ arn = ARN, lock = true }))
      assert.is_true(jb.holding)
      proxy:fault({ operation = "UpdateItem", fault = "drop_answer", count = 1 })
      local ok, err = ja:save({ arn = ARN, phase = "starting", start_pending = true })
      assert.is_nil(ok)
      assert.are.equal("LeaseLost", err.code)
      assert.are.equal(0, item(name).version)
      jb:close()
    end)
  end)

  describe("requests", function()
    local status = os.execute("python3 -c 'import botocore' 2>/dev/null")
    local has_botocore = status == true or status == 0

    it("are the bodies botocore's DynamoDB serializer makes of the same parameters", function()
      if not has_botocore then
        pending("python3 with botocore is not installed: the differential of the DynamoDB bodies is skipped")
        return
      end
      local name = new_table()
      local a, ca = store(name, "host-a")
      local ja = assert(a:open({ arn = ARN, lock = true }))
      assert(ja:save({ arn = ARN, phase = "starting", start_pending = true, progress = 12.5,
                       before = { status = "created" } }))
      ca.mono, ca.wall = 11, ca.wall + 11.25
      assert(ja:check())
      assert(a:get_many({ ARN, ARN2 }))
      ja:close()
      local log = proxy:log()
      assert.truthy(#log >= 6)
      local cases = {}
      for _, entry in ipairs(log) do
        cases[#cases + 1] = { op = entry.operation, params = cjson.decode(entry.body) }
      end
      local dir = files.tmpdir()
      files.write(dir .. "/cases.json", cjson.encode(cases))
      files.write(dir .. "/oracle.py", [[
import json, sys
import botocore.session, botocore.serialize
model = botocore.session.get_session().get_service_model("dynamodb")
ser = botocore.serialize.create_serializer("json")
out = []
for case in json.load(open(sys.argv[1])):
    req = ser.serialize_to_request(case["params"], model.operation_model(case["op"]))
    out.append({"body": req["body"].decode(), "target": req["headers"]["X-Amz-Target"],
                "content_type": req["headers"]["Content-Type"]})
print(json.dumps(out))
]])
      local p = assert(io.popen("python3 " .. dir .. "/oracle.py " .. dir .. "/cases.json"))
      local answer = cjson.decode(p:read("*a"))
      p:close()
      os.execute("rm -rf " .. dir)
      local ops = {}
      for i, entry in ipairs(log) do
        ops[entry.operation] = true
        assert.are.equal(answer[i].target, entry.target)
        assert.are.equal(answer[i].content_type, entry.content_type)
        assert.are.same(cjson.decode(answer[i].body), cjson.decode(entry.body))
      end
      for _, op in ipairs({ "GetItem", "PutItem", "UpdateItem", "BatchGetItem" }) do assert.truthy(ops[op], op) end
    end)
  end)

  describe("workflow.run with journal = { dynamodb = ... }", function()
    local emu, client

    setup(function()
      emu = emulator.start({ speed = 20000 })
      client = emu:client()
    end)
    teardown(function()
      if client then client:close() end
      if emu then emu:stop() end
    end)
    before_each(function() emu:reset() end)

    local function journal(name, extra)
      local d = { table = name, endpoint = proxy.url, lease = 3 }
      for k, v in pairs(extra or {}) do d[k] = v end
      return { dynamodb = d }
    end

    it("checks its options before any request", function()
      local bad = {
        { journal = { dynamodb = { table = "x" } } },
        { journal = { dynamodb = {} } },
        { journal = { files = true } },
        { journal = { dynamodb = { table = "runbooks", lease = 0 } } },
        { journal = { dynamodb = { table = "runbooks", lease = 30, clock_margin = 25 } } },
        { journal = { dynamodb = { table = "runbooks", bogus = 1 } } },
        { journal = { dynamodb = { table = "runbooks" } }, state_file = "/tmp/x.json" },
        { journal = { dynamodb = { table = "runbooks" } }, owner = "" },
        { owner = "host-a" },
      }
      for i, o in ipairs(bad) do
        o.replication_config_arn = ARN
        local out, err = workflow.run(client, o)
        assert.is_nil(out, i)
        assert.are.equal("validation", err.kind, i)
      end
      assert.are.same({}, emu:requests())
      assert.are.same({}, proxy:counts())
    end)

    it("drives a replication with the lease and the state in the table, and releases it", function()
      local name = new_table()
      local outcome = assert(workflow.run(client, { replication_config_arn = ARN, poll = { interval = 0.05 },
        journal = journal(name), owner = "host-a" }))
      assert.is_true(outcome.ok)
      assert.are.equal("host-a", outcome.owner)
      assert.are.equal(1, outcome.starts)
      local taken = find(outcome.events, "lease_taken")
      assert.are.equal("host-a", taken.owner)
      assert.are.equal(1, taken.fence)
      local it_ = item(name)
      assert.are.equal("done", it_.phase)
      assert.is_nil(it_.owner)
      assert.are.equal("host-a", it_.last_owner)
      -- the start was announced in the table before it left
      local log = proxy:log()
      local pending_saved = false
      for _, e in ipairs(log) do
        if e.operation == "UpdateItem" and e.body:find('start_pending\\":true', 1, true) then pending_saved = true end
      end
      assert.is_true(pending_saved)
      assert.are.equal(1, #emu:requests("StartReplication"))
      -- another runbook later (a run that ended before this call, not during
      -- it): a new run, which finds it running (no start)
      local again = assert(workflow.run(client, { replication_config_arn = ARN, poll = { interval = 0.05 },
        journal = journal(name), owner = "host-b" }))
      assert.are.equal(0, again.starts)
      assert.are.equal(1, #emu:requests("StartReplication"))
      assert.are.equal(2, item(name).fence)
    end)

    it("waits on a lease another owner holds and counts the run that owner ended", function()
      local name = new_table()
      -- host-a's run, ended during host-b's call: host-b sees it driven, then done
      local a = store(name, "host-a")
      a.wall = core.now
      local ja = assert(a:open({ arn = ARN, lock = true }))
      local released = false
      local outcome = assert(workflow.run(client, { replication_config_arn = ARN, poll = { interval = 0.05 },
        journal = journal(name, { lease = 0.6 }), owner = "host-b",
        on_event = function(ev)
          if ev.type == "held_elsewhere" and not released then
            released = true
            assert(ja:save({ arn = ARN, phase = "done", starts = 1, resumes = 0, status = "running" }))
            ja:close()
          end
        end }))
      assert.is_true(released)
      assert.is_true(outcome.elsewhere)
      assert.are.equal("host-a", outcome.owner)
      assert.are.equal(1, outcome.starts)
      assert.are.equal(1, count(outcome.events, "held_elsewhere"))
      assert.truthy(find(outcome.events, "done_elsewhere"))
      assert.are.same({}, emu:requests())      -- nothing sent to DMS for it
      -- with wait = false, Locked at once
      ja = assert(a:open({ arn = ARN, lock = true }))
      assert(ja:save({ arn = ARN, phase = "waiting", starts = 1, resumes = 0 }))    -- host-a's next run
      local out, err = workflow.run(client, { replication_config_arn = ARN, journal = journal(name, { wait = false }),
                                              owner = "host-b" })
      assert.is_nil(out)
      assert.are.equal("Locked", err.code)
      assert.are.equal("host-a", err.owner)
      ja:close()
    end)

    it("lets an operator's stop through while another owner holds the lease, without its state", function()
      local name = new_table()
      local a = store(name, "host-a")
      a.wall = core.now
      local ja = assert(a:open({ arn = ARN, lock = true }))
      assert(ja:save({ arn = ARN, phase = "waiting", starts = 1, resumes = 0, run_started = true }))
      local outcome = assert(workflow.stop(client, { replication_config_arn = ARN, poll = { interval = 0.05 },
        journal = journal(name), owner = "operator" }))
      assert.is_true(outcome.ok)
      local warning = find(outcome.events, "warning")
      assert.are.equal("Locked", warning.code)
      assert.truthy(warning.message:find("host-a", 1, true))
      local it_ = item(name)
      assert.are.equal("host-a", it_.owner)          -- host-a's lease and state untouched
      assert.are.equal(1, it_.version)
      ja:close()
    end)

    it("sends nothing more once its lease was taken over, and reports LeaseLost", function()
      local name = new_table()
      local b = store(name, "host-b")
      b.wall = function() return core.now() + 3600 end     -- a clock far ahead: host-a's lease looks expired
      local jb
      local starts_then
      local out, err = workflow.run(client, { replication_config_arn = ARN, poll = { interval = 0.05 },
        wait_for = "stopped", journal = journal(name, { lease = 0.9 }), owner = "host-a",
        on_event = function(ev)
          if ev.type == "started" and not jb then
            jb = assert(b:open({ arn = ARN, lock = true }))
            assert.is_true(jb.holding)
            starts_then = #emu:requests()
          end
        end })
      assert.is_nil(out)
      assert.are.equal("LeaseLost", err.code)
      assert.are.equal("host-b", err.owner)
      -- after the take-over, no start, stop or resume from host-a (describes until it noticed, at most)
      for i, r in ipairs(emu:requests()) do
        if i > starts_then then assert.are.equal("DescribeReplications", r.operation) end
      end
      assert.are.equal(1, #emu:requests("StartReplication"))
      assert.are.equal("host-b", item(name).owner)       -- host-a's exit released nothing of host-b's
      jb:close()
    end)
  end)
end)
