-- client:paginate and client:describe_all against the local DMS endpoint
-- holding a fleet: pages follow the Marker of each answer, the params given
-- are never changed, every operation that pages with Marker and MaxRecords
-- can be paged.
local cjson = require "cjson"
local dms = require "dms"
local emulator = require "support.emulator"

describe("client:paginate", function()
  local emu, client

  setup(function()
    emu = emulator.start({ speed = 1000 })
    emu:replication({ count = 120, identifier = "page-{n:03}", type = "cdc" })
    client = emu:client()
  end)
  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
  end)
  before_each(function() emu:clear_requests() end)

  it("pages DescribeReplications with the Marker of each answer until the last page", function()
    local params = { MaxRecords = 20 }
    local pages, seen = 0, {}
    for page, err in client:paginate("DescribeReplications", params) do
      assert.is_nil(err)
      assert.truthy(page)
      pages = pages + 1
      assert.truthy(#page.Replications <= 20)
      for _, r in ipairs(page.Replications) do
        assert.is_nil(seen[r.ReplicationConfigArn], "a replication on two pages")
        seen[r.ReplicationConfigArn] = true
      end
    end
    local total = 0
    for _ in pairs(seen) do total = total + 1 end
    -- the seed's three and the fleet's 120
    assert.are.equal(123, total)
    assert.are.equal(math.ceil(123 / 20), pages)
    assert.are.same({ MaxRecords = 20 }, params)           -- never changed
    local log = emu:requests("DescribeReplications")
    assert.are.equal(pages, #log)
    assert.are.equal(nil, log[1].body.Marker)
    for i = 2, #log do
      assert.are.equal("string", type(log[i].body.Marker))
      assert.are.equal(20, log[i].body.MaxRecords)
    end
  end)

  it("collects one list with describe_all, the list member found from the model", function()
    local list = assert(client:describe_all("DescribeReplicationConfigs", {
      Filters = { { Name = "replication-config-id", Values = { "page-001", "page-050", "page-120", "nope" } } },
      MaxRecords = 20 }))
    local ids = {}
    for _, c in ipairs(list) do ids[#ids + 1] = c.ReplicationConfigIdentifier end
    table.sort(ids)
    assert.are.same({ "page-001", "page-050", "page-120" }, ids)
    local all = assert(dms.describe_all(client, "DescribeReplications", { MaxRecords = 100 }, "Replications"))
    assert.are.equal(123, #all)
    assert.are.equal(2, #emu:requests("DescribeReplications"))
  end)

  it("pages the table statistics of a replication", function()
    emu:replication({ identifier = "many-tables", tables = 45, status = "running" })
    local arn = assert(client:describe_all("DescribeReplicationConfigs", {
      Filters = { { Name = "replication-config-id", Values = { "many-tables" } } } }))[1].ReplicationConfigArn
    local tables = assert(client:describe_all("DescribeReplicationTableStatistics",
      { ReplicationConfigArn = arn, MaxRecords = 20 }))
    assert.are.equal(45, #tables)
    assert.are.equal(3, #emu:requests("DescribeReplicationTableStatistics"))
  end)

  it("knows which operations page", function()
    for _, op in ipairs({ "DescribeReplications", "DescribeReplicationConfigs", "DescribeReplicationTableStatistics",
                          "DescribeEndpoints", "DescribeReplicationTasks", "DescribeEvents" }) do
      assert.truthy(dms.PAGEABLE[op], op)
    end
    assert.is_nil(dms.PAGEABLE.StartReplication)
    assert.are.equal("Replications", dms.PAGEABLE.DescribeReplications)
  end)

  it("gives an error, never a raise, for an operation that does not page, before any request", function()
    for _, op in ipairs({ "StartReplication", "Nope", 42 }) do
      local n = 0
      for page, err in client:paginate(op, {}) do
        n = n + 1
        assert.is_false(page)
        assert.are.equal("validation", err.kind)
        assert.are.equal("NotPageable", err.code)
      end
      assert.are.equal(1, n)
    end
    local list, err = client:describe_all("StartReplication", {})
    assert.is_nil(list)
    assert.are.equal("NotPageable", err.code)
    assert.are.same({}, emu:requests())
  end)

  it("ends with the service's error when a page fails", function()
    emu:fault({ operation = "DescribeReplications", fault = "500", count = 3 })
    local pages, errors = 0, {}
    for page, err in client:paginate("DescribeReplications", { MaxRecords = 50 }) do
      if page then pages = pages + 1 else errors[#errors + 1] = err end
    end
    assert.are.equal(0, pages)
    assert.are.equal(1, #errors)
    assert.are.equal("InternalFailure", errors[1].code)
    -- the client's retries happened underneath: three attempts, one page asked for
    assert.are.equal(3, #emu:requests("DescribeReplications"))
  end)

  it("stops instead of looping on an answer that repeats a Marker", function()
    -- a service that answers the same Marker forever: a plain object in place of
    -- the client, since no DMS endpoint here misbehaves this way
    local calls = 0
    local looping = {
      describe_replications = function(_, params)
        calls = calls + 1
        return { Replications = { { ReplicationConfigArn = "x" .. calls } }, Marker = "same",
                 seen = cjson.encode(params) }
      end,
    }
    local pages, last_err = 0, nil
    for page, err in dms.paginate(looping, "DescribeReplications", {}) do
      if page then pages = pages + 1 else last_err = err end
    end
    -- the page that repeats the Marker is not given: it is likely the one before
    assert.are.equal(1, pages)
    assert.are.equal(2, calls)
    assert.are.equal("RepeatedMarker", last_err.code)
  end)
end)
