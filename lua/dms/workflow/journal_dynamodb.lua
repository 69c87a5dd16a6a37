-- The DynamoDB backend of the journal: the state and the lock of each
-- replication in one item of a table that runbooks on several hosts share,
-- so that two hosts never drive one replication and a host can go on where
-- a dead one was.
--
-- One item per replication (key `pk`, the ARN), so that one conditional
-- write covers the lease and the state (no transactions needed):
--
--   pk             the ReplicationConfigArn
--   owner          who holds the lease (host:pid:random by default); absent
--                  once released
--   lease_expires  epoch seconds by the writer's clock
--   fence          incremented each time the lease changes hands
--   version        incremented by each state write
--   state          the record a state file holds (JSON)
--   phase          the record's phase, readable without decoding it
--   identifier     the ReplicationConfigIdentifier, once known
--   updated_at     when the state was last written
--   last_owner     who held it last (kept on release)
--   expires_at     lease_expires + retention: the table's TTL attribute, far
--                  enough after the lease that DynamoDB never deletes the
--                  state of a run another host must still take over
--
-- The conditions:
--   take     PutItem of the item read (consistent) with owner = me, the
--            fence + 1 (unless it was ours), on
--            attribute_not_exists(pk) OR (fence = :f AND version = :v AND
--            (attribute_not_exists(owner) OR lease_expires < :now OR owner = :me))
--   renew    UpdateItem lease_expires, on owner = :me AND fence = :f
--   save     UpdateItem state, version + 1 (and the lease), on
--            owner = :me AND fence = :f AND version = :v
--   release  UpdateItem REMOVE owner, on owner = :me AND fence = :f
-- A conditional write refused, or one whose answer was lost, is read back
-- (ConsistentRead) and compared: a retry of a write whose first attempt
-- landed is refused by its own condition, and that is no lost lease.
--
-- The holder's clock: the lease is renewed every third of its length; it is
-- taken as lost `clock_margin` seconds before it expires by the holder's own
-- monotonic clock (counted from when the write that set it was sent), so
-- that a host whose clock runs up to clock_margin ahead still finds it
-- valid while the holder acts on it.
local type, tostring, tonumber, pairs, ipairs, next, setmetatable, pcall =
      type, tostring, tonumber, pairs, ipairs, next, setmetatable, pcall
local math_min, math_max, string_format = math.min, math.max, string.format

local core = require "dms.core"
local cjson = require "cjson.safe"
local errors = require "dms.errors"
local dynamodb = require "dms.dynamodb"

local S, N = dynamodb.S, dynamodb.N

local M = {}

M.DEFAULTS = {
  lease = 300,               -- seconds; renewed every third of it
  retention = 7 * 86400,     -- seconds an item outlives its lease before the TTL may delete it
  max_attempts = 6,          -- attempts of each DynamoDB request (throttling backs off in between)
}

local function werr(code, message, fields)
  return errors.new("workflow", code, message, fields)
end

-- a table name as DynamoDB accepts one
function M.valid_table(name)
  return type(name) == "string" and #name >= 3 and #name <= 255 and name:match("^[%w_.%-]+$") ~= nil
end

local function read_hostname()
  for _, path in ipairs({ "/proc/sys/kernel/hostname", "/etc/hostname" }) do
    local f = io.open(path, "r")
    if f then
      local h = f:read("*l")
      f:close()
      if h and h ~= "" then return (h:gsub("%s", "")) end
    end
  end
  return os.getenv("HOSTNAME") or "host"
end

local function random_hex(n)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(n)
  if f then f:close() end
  if not bytes or #bytes < n then
    bytes = core.sha256_hex(tostring(core.now()) .. tostring(core.monotonic()) .. tostring(math.random()))
    return bytes:sub(1, 2 * n)
  end
  return (bytes:gsub(".", function(c) return string_format("%02x", c:byte()) end))
end

-- host:pid:random, one per process
local default_owner
function M.default_owner()
  if not default_owner then
    default_owner = read_hostname() .. ":" .. tostring(core.pid()) .. ":" .. random_hex(4)
  end
  return default_owner
end

-- Checks journal = { dynamodb = { ... } } and the owner option; returns the
-- normalized settings | nil, err (validation, before any request).
function M.check(j, owner)
  local function verr(message) return errors.new("validation", "InvalidOption", message) end
  if type(j) ~= "table" then return nil, verr("journal must be a table: { dynamodb = { table = ... } }") end
  local d = j.dynamodb
  if type(d) == "string" then d = { table = d } end
  if type(d) ~= "table" then return nil, verr("journal.dynamodb must be a table { table = NAME, ... }") end
  for k in pairs(j) do
    if k ~= "dynamodb" then return nil, verr("journal." .. tostring(k) .. " is not an option (dynamodb)") end
  end
  local known = { table = "string", region = "string", endpoint = "string", profile = "string", lease = "number",
                  retention = "number", clock_margin = "number", max_attempts = "number", wait = "boolean",
                  credentials = true, client = "table" }
  for k, v in pairs(d) do
    local want = known[k]
    if not want then return nil, verr("journal.dynamodb." .. tostring(k) .. " is not an option") end
    if want ~= true and type(v) ~= want then return nil, verr("journal.dynamodb." .. k .. " must be a " .. want) end
  end
  if not M.valid_table(d.table) then
    return nil, verr("journal.dynamodb.table must be a DynamoDB table name (3-255 letters, digits, _ - .)")
  end
  local lease = d.lease or M.DEFAULTS.lease
  if lease ~= lease or lease < 0.3 or lease > 86400 then
    return nil, verr("journal.dynamodb.lease must be between 0.3 and 86400 seconds")
  end
  local margin = d.clock_margin or lease / 5
  if margin ~= margin or margin < 0 or margin >= lease * 2 / 3 then
    return nil, verr("journal.dynamodb.clock_margin must be >= 0 and below two thirds of the lease")
  end
  local retention = d.retention or M.DEFAULTS.retention
  if retention ~= retention or retention < 0 then return nil, verr("journal.dynamodb.retention must be >= 0") end
  local attempts = d.max_attempts or M.DEFAULTS.max_attempts
  if attempts < 1 or attempts % 1 ~= 0 then return nil, verr("journal.dynamodb.max_attempts must be >= 1") end
  if d.credentials ~= nil and type(d.credentials) ~= "table" and type(d.credentials) ~= "function" then
    return nil, verr("journal.dynamodb.credentials must be a table or a function")
  end
  if owner ~= nil and (type(owner) ~= "string" or owner == "" or #owner > 256) then
    return nil, verr("owner must be a string of 1 to 256 characters")
  end
  return {
    table = d.table, region = d.region, endpoint = d.endpoint, profile = d.profile, credentials = d.credentials,
    client = d.client, lease = lease, clock_margin = margin, retention = retention, max_attempts = attempts,
    wait = d.wait ~= false, owner = owner or M.default_owner(),
  }
end

---------------------------------------------------------------------------
-- The store: the table and the client, shared by the journals of one call

local Store = {}
Store.__index = Store
M.Store = Store

-- settings: M.check's; client: the DMS client whose configuration the
-- DynamoDB client takes (region, credentials, transport, ...) unless
-- settings.client is one already. Returns a store | nil, err.
function M.store(client, settings)
  local ddb = settings.client
  if not ddb then
    local err
    ddb, err = dynamodb.for_client(client, { region = settings.region, endpoint = settings.endpoint,
      credentials = settings.credentials, profile = settings.profile })
    if not ddb then return nil, err end
    ddb.retry.max_attempts = math_max(ddb.retry.max_attempts, settings.max_attempts)
  end
  return setmetatable({
    ddb = ddb, own_client = settings.client == nil, table = settings.table, owner = settings.owner,
    lease = settings.lease, margin = settings.clock_margin, retention = settings.retention,
    wait = settings.wait,
    wall = client.clock or core.now, mono = core.monotonic,
    journals = setmetatable({}, { __mode = "k" }),      -- the open ones
    counts = { get = 0, take = 0, renew = 0, save = 0, release = 0, read_back = 0, refused = 0 },
  }, Store)
end

function Store:close()
  self.closed = true          -- ends the nginx timer
  if self.own_client and self.ddb then self.ddb:close() end
  self.ddb = nil
end

-- Inside nginx: a timer renews the leases held while the journal is open,
-- also while the request that runs the workflow waits on a DMS call. An
-- ngx.timer.at that arms itself again (an ngx.timer.every cannot be
-- cancelled): it stops once the store is closed.
function Store:start_timer()
  if self.timer ~= nil then return end
  local ngx = _G.ngx
  self.timer = false
  if type(ngx) ~= "table" or type(ngx.timer) ~= "table" or type(ngx.timer.at) ~= "function" then return end
  local store, period = self, math_max(self.lease / 6, 0.05)
  local tick
  tick = function(premature)
    if premature or store.closed then return end
    for j in pairs(store.journals) do
      local due = j:due()
      if due and due <= store.mono() then pcall(j.check, j) end
    end
    if not store.closed then ngx.timer.at(period, tick) end
  end
  local ok = ngx.timer.at(period, tick)
  self.timer = ok and true or false
end

-- how often a host waiting on another's lease looks again
function Store:check_every() return self.lease / 3 end

function Store:log(level, message, fields)
  if self.ddb then pcall(self.ddb.log, self.ddb, level, message, fields) end
end

local function unavailable(err, what)
  return werr("JournalUnavailable", "the DynamoDB journal could not " .. what .. ": " .. tostring(err.message),
    { service_code = err.code, retryable = err.retryable, throttling = err.throttling })
end

local function conditional_refusal(err)
  return err and err.code == "ConditionalCheckFailedException"
end

-- a refused or unanswered conditional write is read back
local function read_back_needed(err)
  return conditional_refusal(err) or (err and (err.outcome_unknown or err.not_resent)) or false
end

-- The item of `arn`, read with ConsistentRead: a table of Lua values
-- (absent: false) | nil, err.
function Store:get(arn)
  self.counts.get = self.counts.get + 1
  local resp, err = self.ddb:get_item({ TableName = self.table, Key = { pk = S(arn) }, ConsistentRead = true })
  if not resp then return nil, err end
  return dynamodb.decode_item(resp.Item) or false
end

-- The items of `arns` (BatchGetItem, ConsistentRead, 100 keys a request,
-- unprocessed keys asked again): arn -> item (absent ones missing) | nil, err.
function Store:get_many(arns)
  local out = {}
  local i = 1
  while i <= #arns do
    local keys = {}
    for j = i, math_min(i + 99, #arns) do keys[#keys + 1] = { pk = S(arns[j]) } end
    i = i + 100
    local request = { [self.table] = { Keys = keys, ConsistentRead = true } }
    local rounds = 0
    while request do
      rounds = rounds + 1
      self.counts.get = self.counts.get + 1
      local resp, err = self.ddb:batch_get_item({ RequestItems = request })
      if not resp then return nil, err end
      for _, item in ipairs((resp.Responses or {})[self.table] or {}) do
        local t = dynamodb.decode_item(item)
        if t and t.pk then out[t.pk] = t end
      end
      local u = resp.UnprocessedKeys and resp.UnprocessedKeys[self.table]
      request = (u and u.Keys and #u.Keys > 0 and rounds < 10) and { [self.table] = u } or nil
    end
  end
  return out
end

-- Is this item's lease held by an owner other than `me`, unexpired by our clock?
function Store:held_by_other(item, now)
  return item and type(item.owner) == "string" and item.owner ~= self.owner
    and type(item.lease_expires) == "number" and item.lease_expires >= now
end

---------------------------------------------------------------------------
-- A journal: one replication's lease and state

local Journal = {}
Journal.__index = Journal
M.Journal = Journal

-- opts: arn, lock: true (take the lease), "try" (when another holds it, a
-- journal that neither holds nor writes: its `bypassed` field says who) or
-- false (none: no lease, no state); ended(item) -> true when the item shows
-- a run that ended under another owner (then j.ended is the item and
-- nothing is written). Returns the journal, holding the lease or not (j.held
-- is the item when another owner holds it: j:take() again later) | nil, err.
function Store:open(opts)
  local j = setmetatable({ store = self, arn = opts.arn, owner = self.owner, mode = opts.lock,
                           ended_when = opts.ended }, Journal)
  if opts.lock == false then
    j.bypassed = werr("NoLock", "no lease (lock = false)")
    return j
  end
  local ok, err = j:take()
  if not ok then return nil, err end
  if j.held and opts.lock == "try" then
    j.bypassed = werr("Locked", string_format("another runbook (%s) is driving this replication (lease in "
      .. "DynamoDB table %s until %s)", tostring(j.held.owner), self.table, tostring(j.held.lease_expires)),
      { owner = j.held.owner })
  end
  return j
end

function Journal:lease_lost(message, item)
  self.holding = false
  self.lost = werr("LeaseLost", string_format("%s: the lease on %s in DynamoDB table %s is no longer ours (%s)%s",
    self.arn, self.arn, self.store.table, message, item and item.owner and ("; held by " .. tostring(item.owner))
    or ""), { owner = item and item.owner, arn = self.arn })
  self.store.journals[self] = nil
  return nil, self.lost
end

-- after a write we sent at `mono`: the lease runs from then
function Journal:renewed(mono, wall)
  local st = self.store
  self.sent_at = mono
  self.renew_at = mono + st.lease / 3
  self.valid_until = mono + st.lease - st.margin
  self.expires = wall + st.lease
end

-- Takes the lease when it is free, expired, released or ours. Returns true
-- (self.holding; or self.held, the item another owner holds; or self.ended,
-- an item that shows a run ended elsewhere) | nil, err.
function Journal:take()
  local st = self.store
  for _ = 1, 5 do
    local item, err
    if self.prefetched ~= nil then
      -- read with the others of a fleet's round (BatchGetItem, ConsistentRead)
      item, self.prefetched = self.prefetched, nil
    else
      item, err = st:get(self.arn)
    end
    if item == nil then return nil, unavailable(err, "read the lease of " .. self.arn) end
    local now = st.wall()
    if item and self.ended_when and self.ended_when(item) then
      self.ended, self.held, self.holding = item, nil, false
      return true
    end
    if st:held_by_other(item, now) then
      self.held, self.holding = item, false
      return true
    end
    local mine = item and item.owner == self.owner
    local fence = item and (mine and item.fence or (tonumber(item.fence) or 0) + 1) or 1
    local version = item and tonumber(item.version) or 0
    local new = {
      pk = S(self.arn), owner = S(self.owner), fence = N(fence), version = N(version),
      lease_expires = N(now + st.lease), expires_at = N(math.floor(now + st.lease + st.retention)),
      taken_at = N(now),
    }
    if item then
      if type(item.state) == "string" then new.state = S(item.state) end
      if type(item.phase) == "string" then new.phase = S(item.phase) end
      if type(item.updated_at) == "number" then new.updated_at = N(item.updated_at) end
      if type(item.identifier) == "string" then new.identifier = S(item.identifier) end
      local last = item.owner or item.last_owner
      if type(last) == "string" then new.last_owner = S(last) end
    end
    local params = { TableName = st.table, Item = new }
    if item then
      params.ConditionExpression = "attribute_not_exists(pk) OR (fence = :f AND version = :v AND "
        .. "(attribute_not_exists(#o) OR lease_expires < :now OR #o = :me))"
      params.ExpressionAttributeNames = { ["#o"] = "owner" }
      params.ExpressionAttributeValues = { [":f"] = N(tonumber(item.fence) or 0), [":v"] = N(version),
                                           [":now"] = N(now), [":me"] = S(self.owner) }
    else
      params.ConditionExpression = "attribute_not_exists(pk)"
    end
    st.counts.take = st.counts.take + 1
    local mono = st.mono()
    local resp
    resp, err = st.ddb:put_item(params)
    local landed = resp ~= nil
    if not resp then
      if not read_back_needed(err) then return nil, unavailable(err, "take the lease of " .. self.arn) end
      -- refused or unanswered: did our write land?
      st.counts.read_back = st.counts.read_back + 1
      local now_item, gerr = st:get(self.arn)
      if now_item == nil then return nil, unavailable(gerr, "read the lease of " .. self.arn .. " back") end
      landed = now_item and now_item.owner == self.owner and now_item.fence == fence
        and now_item.version == version
      if not landed then st.counts.refused = st.counts.refused + 1 end
    end
    if landed then
      self.holding, self.held = true, nil
      self.fence, self.version = fence, version
      self.item = item or nil
      self.taken_from = item and not mine and item.owner or nil   -- an expired lease taken over
      self.previous_fence = item and tonumber(item.fence) or nil
      self:renewed(mono, now)
      st.journals[self] = true
      if st.timer == nil and require("dms").in_cosocket_phase() then st:start_timer() end
      return true
    end
    -- someone else wrote meanwhile: look again
  end
  return nil, werr("JournalConflict", "the lease of " .. self.arn .. " changed under every attempt to take it")
end

-- Renews the lease: true | nil, err (LeaseLost when refused, else the
-- DynamoDB error).
function Journal:renew()
  if self.lost then return nil, self.lost end
  if not self.holding then return nil, werr("LeaseLost", "the lease of " .. self.arn .. " is not held") end
  local st = self.store
  for _ = 1, 3 do
    local now, mono = st.wall(), st.mono()
    local expires = now + st.lease
    st.counts.renew = st.counts.renew + 1
    local resp, err = st.ddb:update_item({
      TableName = st.table, Key = { pk = S(self.arn) },
      UpdateExpression = "SET lease_expires = :exp, expires_at = :ttl",
      ConditionExpression = "#o = :me AND fence = :f",
      ExpressionAttributeNames = { ["#o"] = "owner" },
      ExpressionAttributeValues = { [":exp"] = N(expires), [":ttl"] = N(math.floor(expires + st.retention)),
                                    [":me"] = S(self.owner), [":f"] = N(self.fence) },
    })
    if resp then
      self:renewed(mono, now)
      return true
    end
    if not read_back_needed(err) then return nil, unavailable(err, "renew the lease of " .. self.arn) end
    st.counts.read_back = st.counts.read_back + 1
    local item, gerr = st:get(self.arn)
    if item == nil then return nil, unavailable(gerr, "read the lease of " .. self.arn .. " back") end
    if not (item and item.owner == self.owner and item.fence == self.fence) then
      st.counts.refused = st.counts.refused + 1
      return self:lease_lost("renewal refused", item or nil)
    end
    if item.lease_expires and item.lease_expires >= expires - 0.002 then
      self:renewed(mono, now)          -- a retry of a renewal that had landed
      return true
    end
    -- still ours, the write did not land: send it again
  end
  return nil, werr("JournalUnavailable", "the renewal of the lease of " .. self.arn .. " did not land")
end

-- Before a call to DMS for this replication: renews when a third of the
-- lease has passed; true | nil, err (LeaseLost: send nothing more).
function Journal:check()
  if self.lost then return nil, self.lost end
  if not self.holding then return true end        -- bypassed: an operator's stop
  local st = self.store
  local mono = st.mono()
  if mono < self.renew_at then return true end
  local ok, err = self:renew()
  if ok then return true end
  if err.code == "LeaseLost" then return nil, err end
  local now = st.mono()
  if now < self.valid_until then
    st:log("warn", "the lease of " .. self.arn .. " could not be renewed; it is still valid: " .. tostring(err.message),
      { arn = self.arn, code = err.code })
    -- try again a little later, before it may lapse
    self.renew_at = math_min(now + math_max(st.lease / 15, 0.05), self.valid_until)
    return true
  end
  return self:lease_lost("could not renew it before it may have lapsed: " .. tostring(err.message))
end

-- the monotonic time by which this journal's lease needs renewing (nil when none is held)
function Journal:due()
  if self.holding and not self.lost then return self.renew_at end
end

-- record | nil, "absent" | nil, reason (unreadable)
function Journal:load()
  if not self.holding then return nil, "absent" end
  local item = self.item
  if not item or type(item.state) ~= "string" then return nil, "absent" end
  local s = cjson.decode(item.state)
  local why = require("dms.workflow.journal").invalid(s)
  if why then
    return nil, "the state of " .. self.arn .. " in DynamoDB table " .. self.store.table .. " is unreadable (" .. why
      .. ")"
  end
  return s
end

-- Saves the record: a conditional write on owner, fence and version, which
-- renews the lease too. true | nil, err (LeaseLost, JournalUnavailable).
function Journal:save(record)
  if self.lost then return nil, self.lost end
  if not self.holding then return true end        -- bypassed: writes nothing
  local st = self.store
  local data = cjson.encode(record)
  if not data then return nil, werr("StateFile", "cannot encode the state of " .. tostring(self.arn)) end
  for _ = 1, 3 do
    local now, mono = st.wall(), st.mono()
    local expires = now + st.lease
    local v1 = self.version + 1
    local values = {
      [":s"] = S(data), [":v1"] = N(v1), [":p"] = S(record.phase or "new"), [":t"] = N(now),
      [":exp"] = N(expires), [":ttl"] = N(math.floor(expires + st.retention)),
      [":me"] = S(self.owner), [":f"] = N(self.fence), [":v"] = N(self.version),
    }
    local set_id = ""
    if type(record.id) == "string" and record.id ~= "" then
      values[":id"] = S(record.id)
      set_id = ", identifier = :id"
    end
    st.counts.save = st.counts.save + 1
    local resp, err = st.ddb:update_item({
      TableName = st.table, Key = { pk = S(self.arn) },
      UpdateExpression = "SET #s = :s, version = :v1, phase = :p, updated_at = :t, lease_expires = :exp, "
        .. "expires_at = :ttl" .. set_id,
      ConditionExpression = "#o = :me AND fence = :f AND version = :v",
      ExpressionAttributeNames = { ["#o"] = "owner", ["#s"] = "state" },
      ExpressionAttributeValues = values,
    })
    if resp then
      self.version = v1
      self:renewed(mono, now)
      return true
    end
    if not read_back_needed(err) then return nil, unavailable(err, "save the state of " .. self.arn) end
    st.counts.read_back = st.counts.read_back + 1
    local item, gerr = st:get(self.arn)
    if item == nil then return nil, unavailable(gerr, "read the state of " .. self.arn .. " back") end
    if not (item and item.owner == self.owner and item.fence == self.fence) then
      st.counts.refused = st.counts.refused + 1
      return self:lease_lost("state write refused", item or nil)
    end
    if item.version == v1 and item.state == data then
      self.version = v1               -- a retry of a write that had landed
      self:renewed(mono, now)
      return true
    end
    if item.version ~= self.version then
      st.counts.refused = st.counts.refused + 1
      return self:lease_lost(string_format("version %s in the table, %d expected", tostring(item.version),
        self.version), item)
    end
    -- ours, unchanged: the write did not land; send it again
  end
  return nil, werr("JournalUnavailable", "the state write of " .. self.arn .. " did not land")
end

-- Releases the lease (best effort: it expires anyway).
function Journal:close()
  local st = self.store
  st.journals[self] = nil
  if not self.holding or self.lost or not st.ddb then
    self.holding = false
    return
  end
  self.holding = false
  local now = st.wall()
  st.counts.release = st.counts.release + 1
  local resp, err = st.ddb:update_item({
    TableName = st.table, Key = { pk = S(self.arn) },
    UpdateExpression = "REMOVE #o SET last_owner = :me, lease_expires = :now",
    ConditionExpression = "#o = :me AND fence = :f",
    ExpressionAttributeNames = { ["#o"] = "owner" },
    ExpressionAttributeValues = { [":me"] = S(self.owner), [":f"] = N(self.fence), [":now"] = N(now) },
  })
  if not resp and not conditional_refusal(err) then
    st:log("warn", "the lease of " .. self.arn .. " was not released (it expires): " .. tostring(err.message),
      { arn = self.arn, code = err.code })
  end
end

---------------------------------------------------------------------------
-- The table

-- Creates the journal's table: key pk (S), on-demand billing, TTL on
-- expires_at; waits until it is ACTIVE. Returns info | nil, err; info.ttl is
-- "enabled", or a warning when the endpoint does not take UpdateTimeToLive.
function M.create_table(ddb, name, opts)
  opts = opts or {}
  local info = { table = name }
  local resp, err = ddb:create_table({
    TableName = name, BillingMode = "PAY_PER_REQUEST",
    AttributeDefinitions = { { AttributeName = "pk", AttributeType = "S" } },
    KeySchema = { { AttributeName = "pk", KeyType = "HASH" } },
  })
  if not resp then
    if err.code ~= "ResourceInUseException" then return nil, err end
    info.existed = true
  end
  local sleep = opts.sleep or ddb.sleep or core.sleep
  local deadline = core.monotonic() + (opts.timeout or 300)
  while true do
    local d, derr = ddb:describe_table({ TableName = name })
    if not d then return nil, derr end
    info.status = d.Table and d.Table.TableStatus
    if info.status == "ACTIVE" then break end
    if core.monotonic() > deadline then
      return nil, errors.new("service", "Timeout", "table " .. name .. " is still " .. tostring(info.status))
    end
    sleep(1)
  end
  local t, terr = ddb:update_time_to_live({ TableName = name,
    TimeToLiveSpecification = { Enabled = true, AttributeName = "expires_at" } })
  if t then
    info.ttl = "enabled"
  elseif terr.code == "ValidationException" and tostring(terr.message):find("already enabled", 1, true) then
    info.ttl = "enabled"
  else
    info.ttl = "not enabled"
    info.warning = "TimeToLive on expires_at was not enabled (" .. tostring(terr.code) .. ": "
      .. tostring(terr.message) .. "): finished runs stay in the table until deleted"
  end
  return info
end

-- Every item of the table (Scan, paged), decoded: list | nil, err.
function M.scan(ddb, name)
  local out, start = {}, nil
  repeat
    local resp, err = ddb:scan({ TableName = name, ConsistentRead = true, ExclusiveStartKey = start })
    if not resp then return nil, err end
    for _, item in ipairs(resp.Items or {}) do out[#out + 1] = dynamodb.decode_item(item) end
    start = resp.LastEvaluatedKey
  until start == nil or next(start) == nil
  return out
end

return M
