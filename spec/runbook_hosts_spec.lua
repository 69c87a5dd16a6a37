-- Runbooks on several hosts: bin/dms-runbook processes with different
-- owners (and access keys, so that the local DMS endpoint's request log tells
-- which host sent what) sharing one DynamoDB journal (dynalite, through the
-- counting proxy): two hosts on one replication, SIGKILL of the owner,
-- SIGSTOP past the lease, a fleet of 30 on three hosts, and a host of three
-- killed midway.
local cjson = require "cjson"
local core = require "dms.core"
local emulator = require "support.emulator"
local dynalite = require "support.dynalite"
local files = require "support.files"

local JIT = type(jit) == "table"
local LUA = JIT and "luajit" or "lua5.4"
local CPATH = JIT and "build/luajit/?.so;;" or "build/?.so;;"
local HOSTS = {
  ["host-a"] = { ak = "AKIDHOSTA", sk = "secret-of-host-a" },
  ["host-b"] = { ak = "AKIDHOSTB", sk = "secret-of-host-b" },
  ["host-c"] = { ak = "AKIDHOSTC", sk = "secret-of-host-c" },
}
local LEASE = 3

local skip = dynalite.unavailable()

describe("runbooks on several hosts sharing a DynamoDB journal", function()
  if skip then
    it("needs dynalite", function() pending(skip) end)
    return
  end

  local server, proxy, dir, tables = nil, nil, nil, 0
  local emu, emu_speed

  local function start_emulator(speed)
    if emu and emu_speed == speed then
      emu:reset()
      return
    end
    if emu then emu:stop() end
    local keys = {}
    for _, h in pairs(HOSTS) do keys[#keys + 1] = h.ak .. ":" .. h.sk end
    emu = emulator.start({ seed = false, speed = speed, keys = keys })
    emu_speed = speed
  end

  setup(function()
    server = dynalite.start()
    proxy = server:proxy()
    dir = files.tmpdir()
  end)
  teardown(function()
    if emu then emu:stop() end
    if server then server:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  local function new_table()
    tables = tables + 1
    local name = "hosts-" .. tables
    local p = assert(io.popen("AWS_ACCESS_KEY_ID=AKIDHOSTA AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 "
      .. "AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
      .. "LUA_CPATH='" .. CPATH .. "' " .. LUA .. " bin/dms-runbook journal create-table " .. name
      .. " --journal-endpoint " .. server.url .. " --json 2>/dev/null"))
    local line = p:read("*l")
    p:close()
    assert.are.equal("ACTIVE", cjson.decode(line).status)
    return name
  end

  -- A runbook process of `host`: { pid, out, code_file, pipe }. Requests time
-- out after 5 s: a host that takes over a start its dead owner had announced
-- but maybe not sent waits that long (the request could still be on its way)
-- before it decides the start did not happen.
  local function spawn(host, table_name, args)
    local h = HOSTS[host]
    local out = dir .. "/" .. host .. "-" .. tostring(core.monotonic()):gsub("%.", "_")
    local cmd = "AWS_ACCESS_KEY_ID=" .. h.ak .. " AWS_SECRET_ACCESS_KEY=" .. h.sk .. " AWS_REGION=us-east-1 "
      .. "AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent TERM=dumb "
      .. "LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='" .. CPATH .. "' "
      .. LUA .. " bin/dms-runbook " .. args .. " --endpoint " .. emu.url .. " --journal dynamodb://" .. table_name
      .. " --journal-endpoint " .. proxy.url .. " --owner " .. host .. " --lease " .. LEASE
      .. " --poll-interval 0.1 --timeout 150 --request-timeout 5 --json >" .. out .. ".out 2>" .. out .. ".err"
    local pipe = assert(io.popen("sh -c '" .. cmd:gsub("'", "'\\''") .. " & echo $!; wait $!; echo $? >" .. out
      .. ".code'"))
    local pid = pipe:read("*l")
    return { host = host, pid = pid, out = out, pipe = pipe }
  end

  local function wait_exit(p, seconds)
    local deadline = core.monotonic() + (seconds or 160)
    while not files.read(p.out .. ".code") do
      assert(core.monotonic() < deadline, p.host .. " did not exit")
      core.sleep(0.05)
    end
    p.pipe:close()
    return tonumber(files.read(p.out .. ".code"))
  end

  local function events(p)
    local out = {}
    for line in (files.read(p.out .. ".out") or ""):gmatch("[^\n]+") do
      local ok, ev = pcall(cjson.decode, line)
      if ok then out[#out + 1] = ev end
    end
    return out
  end

  local function find(evs, kind, arn)
    for _, ev in ipairs(evs) do
      if ev.type == kind and (arn == nil or ev.arn == arn) then return ev end
    end
  end

  local function wait_until(pred, seconds, what)
    local deadline = core.monotonic() + (seconds or 30)
    while not pred() do
      assert(core.monotonic() < deadline, "timed out waiting for " .. tostring(what))
      core.sleep(0.05)
    end
  end

  -- the DMS requests a host sent (by its access key), with an operation name
  local function sent_by(host, operation)
    local out = {}
    for _, r in ipairs(emu:requests(operation)) do
      local auth = r.headers and (r.headers.Authorization or r.headers.authorization) or ""
      if auth:find("Credential=" .. HOSTS[host].ak .. "/", 1, true) then out[#out + 1] = r end
    end
    return out
  end

  local function starts_per_arn()
    local out = {}
    for _, r in ipairs(emu:requests("StartReplication")) do
      local arn = r.body.ReplicationConfigArn
      out[arn] = (out[arn] or 0) + 1
    end
    return out
  end

  local function replications(spec)
    local res = emu:replication(spec)
    local arns = {}
    for _, r in ipairs(res.replications) do arns[#arns + 1] = r.arn end
    return arns
  end

  it("refuses journal options that do not fit with exit code 2, before any request", function()
    start_emulator(3000)
    proxy:clear_counts()
    local base = "AWS_ACCESS_KEY_ID=AKIDHOSTA AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 TERM=dumb "
      .. "AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent LUA_PATH='lua/?.lua;lua/?/init.lua;;' "
      .. "LUA_CPATH='" .. CPATH .. "' " .. LUA .. " bin/dms-runbook --endpoint " .. emu.url .. " "
    for _, args in ipairs({
      "run --arn solo-1 --journal files://x",
      "run --arn solo-1 --journal dynamodb://x",
      "run --arn solo-1 --owner host-a",
      "run --arn solo-1 --lease 30",
      "run --arn solo-1 --journal dynamodb://runbooks --state-dir " .. dir .. "/s",
      "run --arn solo-1 --journal dynamodb://runbooks --lock-dir " .. dir,
      "journal create-table x",
    }) do
      local p = assert(io.popen(base .. args .. " --journal-endpoint " .. proxy.url .. " >/dev/null 2>&1; echo $?"))
      local code = tonumber(p:read("*a"))
      p:close()
      assert.are.equal(2, code, args)
    end
    assert.are.same({}, emu:requests())
    assert.are.same({}, proxy:counts())
  end)

  it("two hosts on one replication: one acts, the other counts its run", function()
    start_emulator(3000)
    local arn = replications({ count = 1, identifier = "solo-{n}", type = "cdc" })[1]
    local name = new_table()
    local a = spawn("host-a", name, "run --arn solo-1")
    local b = spawn("host-b", name, "run --arn solo-1")
    assert.are.equal(0, wait_exit(a))
    assert.are.equal(0, wait_exit(b))
    assert.are.same({ [arn] = 1 }, starts_per_arn())
    local ea, eb = events(a), events(b)
    local driver, other = ea, eb
    if not find(ea, "started") then driver, other = eb, ea end
    local owner = find(driver, "lease_taken").owner
    assert.truthy(find(driver, "done"))
    assert.is_nil(find(other, "started"))
    assert.is_nil(find(other, "start_sent"))
    local seen = find(other, "done_elsewhere")
    assert.truthy(seen)
    assert.are.equal(owner, seen.owner)
    -- the host that did not drive it sent no StartReplication
    local other_host = owner == "host-a" and "host-b" or "host-a"
    assert.are.same({}, sent_by(other_host, "StartReplication"))
  end)

  it("SIGKILL of the owner: another host takes over after the lease and sends no second start", function()
    start_emulator(3000)
    local arn = replications({ count = 1, identifier = "killed-{n}", type = "cdc" })[1]
    local name = new_table()
    -- the StartReplication is applied 1.5 s after it arrives: host-a dies with it in flight
    emu:fault({ operation = "StartReplication", fault = "delay", seconds = 1.5, count = 1 })
    local a = spawn("host-a", name, "run --arn killed-1")
    wait_until(function() return #sent_by("host-a", "StartReplication") == 1 end, 30, "host-a's start")
    os.execute("kill -KILL " .. a.pid)
    local killed_at = core.monotonic()
    wait_exit(a)
    local b = spawn("host-b", name, "run --arn killed-1")
    assert.are.equal(0, wait_exit(b))
    local eb = events(b)
    local held = find(eb, "held_elsewhere")
    assert.are.equal("host-a", held.owner)
    local taken = find(eb, "lease_taken")
    assert.are.equal("host-a", taken.from)
    assert.are.equal(2, taken.fence)
    -- reconciled from the saved state: the start host-a sent is found, not sent again
    local started = find(eb, "started")
    assert.are.equal("described after a restart", started.how)
    assert.are.same({ [arn] = 1 }, starts_per_arn())
    assert.are.same({}, sent_by("host-b", "StartReplication"))
    -- not before host-a's lease could have expired
    assert.truthy(taken.time - held.time > 0 or core.monotonic() - killed_at >= LEASE / 2)
    assert.truthy(find(eb, "done"))
  end)

  it("an owner paused past its lease notices the lost lease before any DMS call", function()
    start_emulator(3000)
    local arn = replications({ count = 1, identifier = "paused-{n}", type = "cdc" })[1]
    local name = new_table()
    local a = spawn("host-a", name, "run --arn paused-1 --wait-for stopped")
    wait_until(function() return find(events(a), "started") ~= nil end, 30, "host-a's start")
    os.execute("kill -STOP " .. a.pid)
    local b = spawn("host-b", name, "run --arn paused-1")
    assert.are.equal(0, wait_exit(b))
    local eb = events(b)
    assert.are.equal("host-a", find(eb, "lease_taken").from)
    local before = #sent_by("host-a")
    os.execute("kill -CONT " .. a.pid)
    assert.are.equal(6, wait_exit(a))
    local ea = events(a)
    local lost = find(ea, "error")
    assert.are.equal("LeaseLost", lost.code)
    -- nothing reached DMS from host-a after it was resumed
    assert.are.equal(before, #sent_by("host-a"))
    assert.are.same({ [arn] = 1 }, starts_per_arn())
    assert.truthy((files.read(a.out .. ".err") or ""):find("LeaseLost", 1, true))
  end)

  -- each host's view: arn -> { driver = owner, from, to } from its JSON events
  local function drives(evs, host)
    local out = {}
    for _, ev in ipairs(evs) do
      if ev.arn then
        local d = out[ev.arn] or {}
        out[ev.arn] = d
        if ev.type == "lease_taken" then d.from = ev.time end
        if (ev.type == "done" or ev.type == "error") and d.from then d.to, d.driver, d.how = ev.time, host, ev.type end
        if ev.type == "done_elsewhere" then d.elsewhere = ev.owner end
      end
    end
    return out
  end

  it("a fleet of 30 on three hosts: each replication driven by one host at a time, all reach the target",
  function()
    start_emulator(5000)
    local arns = replications({ count = 30, identifier = "fleet-{n:02}", type = "cdc" })
    local name = new_table()
    proxy:clear_counts()
    local t0 = core.monotonic()
    local procs = {}
    for _, host in ipairs({ "host-a", "host-b", "host-c" }) do
      procs[#procs + 1] = spawn(host, name, "run --match 'fleet-*' --concurrency 4")
    end
    for _, p in ipairs(procs) do assert.are.equal(0, wait_exit(p), p.host) end
    local wall = core.monotonic() - t0
    local starts = starts_per_arn()
    local views, driven = {}, {}
    for _, p in ipairs(procs) do
      views[p.host] = drives(events(p), p.host)
      driven[p.host] = 0
    end
    for _, arn in ipairs(arns) do
      assert.are.equal(1, starts[arn], arn)
      -- exactly one host drove it to the end; the others show that host
      local drivers = {}
      for host, v in pairs(views) do
        local d = v[arn]
        assert.truthy(d, host .. " knows nothing of " .. arn)
        if d.driver and d.how == "done" then drivers[#drivers + 1] = host end
      end
      assert.are.equal(1, #drivers, arn)
      driven[drivers[1]] = driven[drivers[1]] + 1
      for host, v in pairs(views) do
        if host ~= drivers[1] then assert.are.equal(drivers[1], v[arn].elsewhere, host .. " " .. arn) end
      end
    end
    -- leases never overlap: the intervals of the hosts that held one, per replication
    for _, arn in ipairs(arns) do
      local spans = {}
      for _, v in pairs(views) do
        local d = v[arn]
        if d.from then spans[#spans + 1] = { d.from, d.to or math.huge } end
      end
      table.sort(spans, function(x, y) return x[1] < y[1] end)
      for i = 2, #spans do assert.truthy(spans[i][1] >= spans[i - 1][2], arn) end
    end
    local total = 0
    for _, host in ipairs({ "host-a", "host-b", "host-c" }) do
      assert.truthy(driven[host] >= 1, host .. " drove none")
      total = total + driven[host]
    end
    assert.are.equal(30, total)
    local c = proxy:counts()
    local ops = 0
    for _, n in pairs(c) do ops = ops + n end
    print(string.format("\n  fleet of 30 on 3 hosts: %.1f s; driven %d/%d/%d; DynamoDB requests %d (%.1f per "
      .. "replication: %s)", wall, driven["host-a"], driven["host-b"], driven["host-c"], ops, ops / 30,
      cjson.encode(c)))
  end)

  it("a host of three killed midway: the others take its replications over, no second start", function()
    start_emulator(3000)
    local arns = replications({ count = 12, identifier = "midway-{n:02}", type = "cdc" })
    local name = new_table()
    local procs = {}
    for _, host in ipairs({ "host-a", "host-b", "host-c" }) do
      procs[host] = spawn(host, name, "run --match 'midway-*' --concurrency 3")
    end
    -- host-c dies once it has sent a start or two
    wait_until(function() return #sent_by("host-c", "StartReplication") >= 1 end, 30, "host-c's start")
    os.execute("kill -KILL " .. procs["host-c"].pid)
    wait_exit(procs["host-c"])
    assert.are.equal(0, wait_exit(procs["host-a"]))
    assert.are.equal(0, wait_exit(procs["host-b"]))
    local starts = starts_per_arn()
    local va, vb = drives(events(procs["host-a"]), "host-a"), drives(events(procs["host-b"]), "host-b")
    local taken_over = 0
    for _, arn in ipairs(arns) do
      assert.are.equal(1, starts[arn], arn)
      local a, b = va[arn], vb[arn]
      -- done by a or b, or done by host-c before it died (seen done elsewhere by both)
      local by_a, by_b = a.how == "done", b.how == "done"
      assert.truthy(by_a or by_b or (a.elsewhere == "host-c" and b.elsewhere == "host-c"), arn)
      assert.is_false(by_a and by_b, arn)
    end
    for _, v in ipairs({ events(procs["host-a"]), events(procs["host-b"]) }) do
      for _, ev in ipairs(v) do
        if ev.type == "lease_taken" and ev.from == "host-c" then taken_over = taken_over + 1 end
      end
    end
    assert.truthy(taken_over >= 1, "no lease of host-c was taken over")
    local by = { ["host-a"] = 0, ["host-b"] = 0, ["host-c"] = 0 }
    for _, arn in ipairs(arns) do
      local d = va[arn].how == "done" and "host-a" or vb[arn].how == "done" and "host-b" or "host-c"
      by[d] = by[d] + 1
    end
    print(string.format("\n  12 on 3 hosts, host-c killed: done by host-a %d, host-b %d, host-c %d; %d of host-c's "
      .. "leases taken over (2 hosts in turn for those replications), starts per replication: 1", by["host-a"],
      by["host-b"], by["host-c"], taken_over))
  end)
end)
