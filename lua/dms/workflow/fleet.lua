-- A fleet: sessions (session.lua) driven together, with one paged poll for
-- all of them. workflow.run is a fleet of one; workflow.run_many a fleet of
-- many; both run the same session code.
--
--   * A round: every session that looks gets its Replication from one round
--     of DescribeReplications over their ARNs (filters of up to 100 values,
--     MaxRecords 100, Marker paging): ceil(n / 100) requests for n sessions,
--     never one per session. The first look of every session is one round.
--   * The rounds keep the poll interval: a round comes an interval after the
--     previous one at the earliest (the whole round jittered); every session
--     whose pause ends within a quarter interval of it joins it; a session
--     that looks without a pause (an answer lost, a start refused, its turn
--     in the queue) waits for the next round.
--   * Throttling (once the client's retries are spent) backs the whole round
--     off, doubling up to max_interval.
--   * Concurrency: a start or a resume takes one of `concurrency` slots, held
--     until the replication reaches the target or its session ends; the others
--     wait their turn (a "queued" event), and the time they wait does not
--     count against their timeout. A run found under way, or a start found
--     taken after a restart, holds a slot too (even beyond the limit: it is
--     running already).
--   * Each session keeps its promises on its own: its lock and state file
--     (journal.lua), its patience (await_start, await_stop, stale reads)
--     counted in the looks the rounds give it. One session's failure ends that
--     session only.
--   * With a shared journal (DynamoDB, journal_dynamodb.lua): a session takes
--     its replication's lease once admitted (at most `concurrency` sessions
--     of this host hold leases; a session waiting on another host's lease
--     gives its place back), so hosts running the same fleet split it. A
--     round first renews the leases of its lookers that are due (one
--     conditional UpdateItem each) and a lost lease is that looker's answer
--     (LeaseLost) instead of a describe; the scheduler's sleep is cut to
--     renew every lease held at each third of its length.
--
-- Sessions run as coroutines: the session code calls fleet:look,
-- fleet:sleep and fleet:take_slot, which yield to the scheduler (Fleet:run).
local type, ipairs, pairs, tostring, setmetatable, pcall = type, ipairs, pairs, tostring, setmetatable, pcall
local co_create, co_resume, co_yield, co_status = coroutine.create, coroutine.resume, coroutine.yield,
  coroutine.status
local math_max, math_min, math_random, math_huge = math.max, math.min, math.random, math.huge
local string_format, table_concat, table_remove, table_sort = string.format, table.concat, table.remove,
  table.sort

local core = require "dms.core"
local errors = require "dms.errors"
local session = require "dms.workflow.session"

local M = {}

M.MAX_FILTER_VALUES = 100    -- values of one DescribeReplications filter
M.PAGE_SIZE = 100            -- MaxRecords of each page
M.DEFAULT_CONCURRENCY = 10
M.JOIN_WINDOW = 0.25         -- a pause ending this much of an interval after a round joins it

local werr = session.werr

local function paginate(...) return require("dms").paginate(...) end
local function describe_all(...) return require("dms").describe_all(...) end

-- a copy of `err` for one session (a session adds its own fields to its error)
local function copy_error(err)
  local e = {}
  for k, v in pairs(err) do e[k] = v end
  return core.error(e)
end

local function chunks(list, n)
  local out = {}
  for i = 1, #list, n do
    local c = {}
    for j = i, math_min(i + n - 1, #list) do c[#c + 1] = list[j] end
    out[#out + 1] = c
  end
  return out
end

function M.is_arn(name)
  return type(name) == "string" and name:sub(1, 4) == "arn:"
end

-- a ReplicationConfigIdentifier as DMS accepts one: letters, digits and
-- hyphens, starting with a letter, no two hyphens in a row, no hyphen at the
-- end, at most 255 characters
function M.valid_identifier(name)
  return type(name) == "string" and #name <= 255 and name:match("^%a[%w%-]*$") ~= nil
    and not name:find("--", 1, true) and name:sub(-1) ~= "-"
end

-- A shell glob (*, ?, [abc], [a-z], [!abc]) as an anchored Lua pattern.
function M.glob_pattern(glob)
  local out, i, n = { "^" }, 1, #glob
  while i <= n do
    local c = glob:sub(i, i)
    if c == "*" then
      out[#out + 1] = ".*"
    elseif c == "?" then
      out[#out + 1] = "."
    elseif c == "[" then
      local j = i + 1
      local negate = glob:sub(j, j) == "!" or glob:sub(j, j) == "^"
      if negate then j = j + 1 end
      local k = glob:sub(j, j) == "]" and j + 1 or j    -- a ] first in a class is itself
      while k <= n and glob:sub(k, k) ~= "]" do k = k + 1 end
      if k > n then
        out[#out + 1] = "%["                             -- no closing bracket: a plain [
      else
        local body = glob:sub(j, k - 1):gsub("[%%%[%]%^]", "%%%0")
        out[#out + 1] = "[" .. (negate and "^" or "") .. body .. "]"
        i = k
      end
    else
      out[#out + 1] = (c:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
    end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table_concat(out)
end

---------------------------------------------------------------------------
-- One round of DescribeReplications

-- Describes `arns` (chunks of up to 100 in a filter, each paged). Returns
-- views (arn -> Replication), errs (arn -> error) and the number of requests
-- and the first error that was not ResourceNotFoundFault.
function M.describe_round(client, arns, call_opts)
  local views, errs, requests, failure = {}, {}, 0, nil
  for _, chunk in ipairs(chunks(arns, M.MAX_FILTER_VALUES)) do
    local params = { Filters = { { Name = "replication-config-arn", Values = chunk } }, MaxRecords = M.PAGE_SIZE }
    local cerr
    local ok, raised = pcall(function()
      for page, err in paginate(client, "DescribeReplications", params, call_opts) do
        requests = requests + 1
        if not page then
          cerr = err
          return
        end
        if type(page.Replications) == "table" then
          for _, r in ipairs(page.Replications) do
            if type(r) == "table" and type(r.ReplicationConfigArn) == "string" then
              views[r.ReplicationConfigArn] = r
            end
          end
        end
      end
    end)
    if not ok then cerr = werr("InternalError", tostring(raised)) end
    if type(cerr) ~= "table" and cerr ~= nil then cerr = werr("InternalError", tostring(cerr)) end
    local not_found = cerr and cerr.code == "ResourceNotFoundFault"
    for _, arn in ipairs(chunk) do
      if not views[arn] then
        if cerr and (not not_found or #chunk == 1) then
          errs[arn] = cerr
        else
          errs[arn] = errors.new("service", "ResourceNotFoundFault", "no replication for " .. arn)
        end
      end
    end
    if cerr and not not_found then failure = failure or cerr end
  end
  return views, errs, requests, failure
end

---------------------------------------------------------------------------
-- The fleet

local Fleet = {}
Fleet.__index = Fleet
M.Fleet = Fleet

-- `o` is the checked options (workflow/init.lua) every session shares
function M.new(client, o)
  local D = session.DEFAULTS
  local poll = o.poll or {}
  local interval = poll.interval or D.interval
  local self = setmetatable({
    client = client,
    opts = o,
    limit = o.concurrency or M.DEFAULT_CONCURRENCY,
    interval = interval,
    max_interval = math_max(poll.max_interval or D.max_interval, interval),
    jitter_ratio = poll.jitter or D.jitter,
    timeout = poll.timeout or D.timeout,
    sleep_fn = o.sleep or client.sleep or core.sleep,
    clock = o.clock or client.clock or core.now,
    random = o.random or math_random,
    on_round = o.on_round,
    members = {},        -- in the order given
    by_session = {},
    queue = {},          -- members waiting for a slot, first come first served
    in_flight = 0,       -- slots held
    alive = 0,
    rounds = 0,
    requests = 0,        -- DescribeReplications requests of the rounds
    max_in_flight = 0,
    store = o.journal_store,   -- a shared journal's
    admitted = 0,        -- sessions holding (or taking) a lease
    admit_queue = {},
  }, Fleet)
  self.t0 = self.clock()
  self.deadline = self.t0 + self.timeout
  return self
end

function Fleet:now() return self.clock() end

local function call_timeout(left)
  return { timeout = left > 0.001 and left or 0.001 }
end

-- Sends `fn` (a describe) again after throttling or transient errors (the
-- client's retries spent), backing off, until the fleet's deadline.
function Fleet:patiently(fn)
  local delay = self.interval
  while true do
    local ok, res, err = pcall(fn, call_timeout(self.deadline - self:now()))
    if not ok then return nil, werr("InternalError", tostring(res)) end
    if res then return res end
    if type(err) ~= "table" then err = werr("InternalError", tostring(err)) end
    if not err.retryable or self:now() >= self.deadline then return nil, err end
    delay = math_min(math_max(delay * 2, 0.001), self.max_interval)
    self.sleep_fn(math_min(delay, math_max(self.deadline - self:now(), 0)))
  end
end

-- the replication configs `filter` selects (values in chunks of 100); a chunk
-- that matches nothing is no error. With `once`, no patience beyond the
-- client's own retries.
function Fleet:configs(filter, values, once)
  local out = {}
  local groups = values and chunks(values, M.MAX_FILTER_VALUES) or { false }
  for _, chunk in ipairs(groups) do
    local params = { MaxRecords = M.PAGE_SIZE }
    if chunk then params.Filters = { { Name = filter, Values = chunk } } end
    local function fetch(call_opts)
      return describe_all(self.client, "DescribeReplicationConfigs", params, "ReplicationConfigs", call_opts)
    end
    local list, err
    if once then
      local ok, res, ferr = pcall(fetch, call_timeout(self.deadline - self:now()))
      if ok then list, err = res, ferr else err = werr("InternalError", tostring(res)) end
      if not list and type(err) ~= "table" then err = werr("InternalError", tostring(err)) end
    else
      list, err = self:patiently(fetch)
    end
    if not list then
      if err.code ~= "ResourceNotFoundFault" then return nil, err end
    else
      for _, c in ipairs(list) do
        if type(c) == "table" then out[#out + 1] = c end
      end
    end
  end
  return out
end

-- The replications `names` (ARNs or identifiers) name, in order, one entry
-- per replication: { key, arn, id } or { key, id, err } for an identifier
-- that names nothing. Identifiers resolve through DescribeReplicationConfigs
-- (filter replication-config-id); with `lookup_arns`, the identifiers of the
-- ARNs are looked up too, once and for the events only (an ARN the lookup
-- does not find is left to its first describe).
function Fleet:resolve(names, lookup_arns)
  local ids, arns, seen = {}, {}, {}
  for _, name in ipairs(names) do
    if not seen[name] then
      seen[name] = true
      if M.is_arn(name) then arns[#arns + 1] = name else ids[#ids + 1] = name end
    end
  end
  local by_id, by_arn, id_err = {}, {}, nil
  if #ids > 0 then
    local list, err = self:configs("replication-config-id", ids)
    if list then
      for _, c in ipairs(list) do by_id[c.ReplicationConfigIdentifier] = c end
    else
      id_err = err
    end
  end
  if lookup_arns and #arns > 0 then
    -- on failure the ARNs go on: their identifiers come with the first round
    for _, c in ipairs(self:configs("replication-config-arn", arns, true) or {}) do
      by_arn[c.ReplicationConfigArn] = c
    end
  end
  local entries, taken = {}, {}
  local function add(e)
    if e.arn then
      if taken[e.arn] then return end
      taken[e.arn] = true
    end
    entries[#entries + 1] = e
  end
  for _, name in ipairs(names) do
    if M.is_arn(name) then
      local c = by_arn[name]
      add({ key = name, arn = name, id = c and c.ReplicationConfigIdentifier or nil })
    else
      local c = by_id[name]
      if c and type(c.ReplicationConfigArn) == "string" then
        add({ key = c.ReplicationConfigArn, arn = c.ReplicationConfigArn, id = name })
      elseif not taken["id:" .. name] then
        taken["id:" .. name] = true
        add({ key = name, id = name, err = id_err and copy_error(id_err)
          or errors.new("service", "ResourceNotFoundFault", "no replication config is named '" .. name .. "'") })
      end
    end
  end
  return entries
end

-- The replication configs whose identifier matches one of `globs`, sorted by
-- identifier: a list of { arn, id } | nil, err.
function Fleet:match(globs)
  local list, err = self:configs(nil, nil)
  if not list then return nil, err end
  local patterns = {}
  for i, g in ipairs(globs) do patterns[i] = M.glob_pattern(g) end
  local out = {}
  for _, c in ipairs(list) do
    local id = c.ReplicationConfigIdentifier
    if type(id) == "string" and type(c.ReplicationConfigArn) == "string" then
      for _, p in ipairs(patterns) do
        if id:match(p) then
          out[#out + 1] = { arn = c.ReplicationConfigArn, id = id }
          break
        end
      end
    end
  end
  table_sort(out, function(a, b) return a.id < b.id end)
  return out
end

---------------------------------------------------------------------------
-- Members

-- a session to drive with `method` (a Session method, called after open)
function Fleet:add(s, method, key)
  s.fleet = self
  local m = { s = s, key = key or s.arn, arn = s.arn, state = "run", args = {} }
  m.co = co_create(function()
    if self.store then self:admit(s) end
    local ok, err, elsewhere_err = s:open()
    if ok == false then return err, elsewhere_err end     -- ended under another host
    if not ok then return s:fail(err) end
    local fine, res, res_err = pcall(method, s)
    if not fine then return s:fail(werr("InternalError", tostring(res))) end
    return res, res_err
  end)
  self.members[#self.members + 1] = m
  self.by_session[s] = m
  self.alive = self.alive + 1
  return m
end

-- an entry that resolved to nothing: its error is its result
function Fleet:add_failed(e)
  local now = self:now()
  local err = e.err
  err.arn, err.id = e.arn, e.id
  local ev = { type = "error", arn = e.arn, id = e.id, code = err.code, kind = err.kind, message = err.message,
               time = now, elapsed = 0 }
  err.events = { ev }
  if self.opts.on_event then pcall(self.opts.on_event, ev) end
  self.members[#self.members + 1] = { key = e.key, arn = e.arn, state = "done", err = err }
end

function Fleet:hold_slot(s)
  if s.slot then return end
  s.slot = true
  self.in_flight = self.in_flight + 1
  if self.in_flight > self.max_in_flight then self.max_in_flight = self.in_flight end
end

local function release(self, m)
  if m.s and m.s.slot then
    m.s.slot = false
    self.in_flight = self.in_flight - 1
  end
  if m.s and m.s.admitted then
    m.s.admitted = false
    self.admitted = self.admitted - 1
  end
end

-- Called by a session before it takes a shared journal's lease: returns
-- once fewer than `concurrency` sessions of this fleet hold one.
function Fleet:admit(s)
  if s.admitted then return end
  if self.admitted < self.limit then
    s.admitted = true
    self.admitted = self.admitted + 1
    return
  end
  self.admit_queue[#self.admit_queue + 1] = self.by_session[s]
  co_yield("admit")
end

-- a session waiting on another host's lease gives its place back
function Fleet:unadmit(s)
  if not s.admitted then return end
  s.admitted = false
  self.admitted = self.admitted - 1
  self:grant()
end

-- gives free slots to the members waiting for one, in turn
function Fleet:grant()
  while self.admitted < self.limit and #self.admit_queue > 0 do
    local m = table_remove(self.admit_queue, 1)
    if m.state == "admit" then
      m.s.admitted = true
      self.admitted = self.admitted + 1
      m.state, m.args = "run", {}
    end
  end
  while self.in_flight < self.limit and #self.queue > 0 do
    local m = table_remove(self.queue, 1)
    if m.state == "queue" then
      self:hold_slot(m.s)
      m.state, m.args = "run", {}
    end
  end
end

-- called by a session (in its coroutine): its Replication from the next round
function Fleet.look(_)
  return co_yield("look")
end

-- Called by a session: resume it at the round that follows `wake`. A pause
-- counts from the start of the pass in which the session took it, so that
-- the sessions of one round, acted on one after the other, wake together.
function Fleet:sleep(s, wake)
  co_yield("sleep", self.pass_time + (wake - s:now()))
end

-- Called by a session before a start: returns `repl` once it holds a slot,
-- or, after waiting its turn, the Replication of the round that follows
-- (the caller decides again on it) | nil, err.
function Fleet:take_slot(s, repl)
  if s.slot then return repl end
  if self.in_flight < self.limit then
    self:hold_slot(s)
    return repl
  end
  local m = self.by_session[s]
  self.queue[#self.queue + 1] = m
  s:emit("queued", repl, { position = #self.queue, in_flight = self.in_flight, concurrency = self.limit })
  local since = s:now()
  co_yield("queue")
  s.deadline = s.deadline + (s:now() - since)      -- the time queued does not count
  return s:poll_describe()
end

function Fleet:finish(m, res, err)
  m.state = "done"
  m.res, m.err = res, err
  self.alive = self.alive - 1
  release(self, m)
  self:grant()
end

function Fleet:step(m)
  local args = m.args or {}
  m.args = nil
  local ok, what, a, b = co_resume(m.co, args[1], args[2])
  if not ok then
    -- raised outside the session's own guard (open, fail): the lock goes too
    pcall(m.s.close, m.s)
    return self:finish(m, nil, werr("InternalError", tostring(what), { arn = m.arn }))
  end
  if co_status(m.co) == "dead" then return self:finish(m, what, a) end
  if what == "look" then
    m.state = "look"
  elseif what == "sleep" then
    m.state, m.wake = "sleep", a
  elseif what == "queue" then
    m.state = "queue"
  elseif what == "admit" then
    m.state = "admit"
  else
    pcall(m.s.close, m.s)
    self:finish(m, nil, werr("InternalError", "a session yielded " .. tostring(what) .. tostring(b or "")))
  end
end

-- runs every member that can go on until each waits (or ends). With a
-- shared journal each host begins at its own place in the list (from its
-- owner's name), so that hosts started together reach for different leases.
function Fleet:run_pass()
  local members, n = self.members, #self.members
  local offset = 0
  if self.store and n > 1 then
    offset = (tonumber(core.sha256_hex(self.store.owner):sub(1, 8), 16) or 0) % n
  end
  local again = true
  while again do
    again = false
    for i = 1, n do
      local m = members[(i + offset - 1) % n + 1]
      if m.state == "run" then
        self:step(m)
        again = true
      end
    end
  end
end

function Fleet:round(lookers)
  local t0 = core.monotonic()
  local arns, left = {}, 0
  if self.store then
    -- the leases first: a looker whose lease is lost gets that instead of a describe
    local kept = {}
    for _, m in ipairs(lookers) do
      local ok, err = m.s:guard()
      if ok then
        kept[#kept + 1] = m
      else
        m.state, m.args = "run", { nil, err }
      end
    end
    lookers = kept
    if #lookers == 0 then
      self.last_round = self:now()
      return
    end
  end
  for i, m in ipairs(lookers) do
    arns[i] = m.arn
    left = math_max(left, m.s:remaining())
  end
  local views, errs, requests, failure = M.describe_round(self.client, arns, call_timeout(left))
  self.rounds = self.rounds + 1
  self.requests = self.requests + requests
  self.last_round = self:now()
  if failure and failure.retryable then
    -- the whole round backs off
    self.backoff = math_min((self.backoff or self.interval) * 2, self.max_interval)
    self.hold_until = self.last_round + self.backoff
  else
    self.backoff, self.hold_until = nil, nil
  end
  -- told once the sessions have gone on from what the round showed
  self.round_info = { round = self.rounds, replications = #arns, requests = requests,
    ms = (core.monotonic() - t0) * 1000, code = failure and failure.code or nil, time = self.last_round }
  for _, m in ipairs(lookers) do
    local repl = views[m.arn]
    m.state = "run"
    if repl then
      m.args = { repl }
    else
      m.args = { nil, copy_error(errs[m.arn]) }
    end
  end
end

-- Sleeps until the next round and wakes the sleepers it takes.
function Fleet:wait(lookers)
  local i = self.interval
  local base = self.last_round and (self.last_round + i) or self:now()
  local due = base
  if #lookers == 0 then
    local earliest = math_huge
    for _, m in ipairs(self.members) do
      if m.state == "sleep" and m.wake < earliest then earliest = m.wake end
    end
    if earliest < math_huge then due = math_max(base, earliest) end
  end
  local j = self.jitter_ratio
  local at = due + i * j * (2 * self.random() - 1)
  if self.hold_until and at < self.hold_until then at = self.hold_until end
  local now = self:now()
  if self.store then
    self:sleep_renewing(at - now)
  elseif at > now then
    self.sleep_fn(at - now)
  end
  local window = due + i * M.JOIN_WINDOW
  local waiting = {}
  for _, m in ipairs(self.members) do
    if m.state == "sleep" and m.wake <= window then
      m.state = "run"
      if m.s.waiting_lease and m.s.journal then waiting[#waiting + 1] = m end
    end
  end
  self:prefetch_leases(waiting)
end

-- The items of the sessions that wake to look at another host's lease again,
-- read together (BatchGetItem of up to 100 keys, ConsistentRead) rather than
-- one GetItem each; on failure each reads its own.
function Fleet:prefetch_leases(waiting)
  if #waiting < 2 or not self.store then return end
  local arns = {}
  for i, m in ipairs(waiting) do arns[i] = m.arn end
  local ok, items = pcall(self.store.get_many, self.store, arns)
  if not ok or type(items) ~= "table" then return end
  for _, m in ipairs(waiting) do m.s.journal.prefetched = items[m.arn] or false end
end

-- the earliest monotonic time a lease of this fleet needs renewing (nil: none held)
function Fleet:lease_due()
  local due
  for _, m in ipairs(self.members) do
    local jn = m.s and m.state ~= "done" and m.s.journal
    local d = jn and jn:due()
    if d and (not due or d < due) then due = d end
  end
  return due
end

-- Sleeps `seconds`, waking to renew each lease held when a third of it has
-- passed (a lease lost is found by its session at its next DMS call).
function Fleet:sleep_renewing(seconds)
  local wake = core.monotonic() + seconds
  while true do
    local now = core.monotonic()
    if now >= wake then return end
    local due = self:lease_due()
    if not due or due >= wake then return self.sleep_fn(wake - now) end
    if due > now then self.sleep_fn(due - now) end
    for _, m in ipairs(self.members) do
      local jn = m.s and m.state ~= "done" and m.s.journal
      local d = jn and jn:due()
      if d and d <= core.monotonic() then jn:check() end
    end
  end
end

-- drives every member to its end
function Fleet:run()
  local round_due = true
  while true do
    self.pass_time = self:now()
    self:run_pass()
    local info = self.round_info
    if info then
      self.round_info = nil
      info.in_flight, info.queued, info.alive = self.in_flight, #self.queue, self.alive
      if self.on_round then pcall(self.on_round, info) end
    end
    if self.alive <= 0 then break end
    local lookers, sleepers = {}, 0
    for _, m in ipairs(self.members) do
      if m.state == "look" then
        lookers[#lookers + 1] = m
      elseif m.state == "sleep" then
        sleepers = sleepers + 1
      end
    end
    if #lookers > 0 and (round_due or not self.last_round) then
      self:round(lookers)
      round_due = false
    elseif #lookers > 0 or sleepers > 0 then
      self:wait(lookers)
      round_due = true
    else
      -- only members waiting for a slot and none held (cannot happen): let one go
      self.in_flight = math_min(self.in_flight, self.limit - 1)
      self:grant()
    end
  end
end

-- The outcome of a fleet: { ok, results = { [key] = outcome or error },
-- order = { keys }, failed = { keys }, ... }, plus an error when not all of
-- them reached `target`.
function Fleet:outcome(target)
  local results, order, failed, codes = {}, {}, {}, {}
  for _, m in ipairs(self.members) do
    order[#order + 1] = m.key
    if m.res then
      results[m.key] = m.res
    else
      local err = m.err
      if type(err) ~= "table" then err = werr("Error", tostring(err)) end
      results[m.key] = err
      failed[#failed + 1] = m.key
      codes[err.code or "Error"] = (codes[err.code or "Error"] or 0) + 1
    end
  end
  local out = { ok = #failed == 0, results = results, order = order, failed = failed, rounds = self.rounds,
                requests = self.requests, max_in_flight = self.max_in_flight, elapsed = self:now() - self.t0 }
  if self.store then
    local counts = {}
    for k, v in pairs(self.store.counts) do counts[k] = v end
    out.journal = { table = self.store.table, owner = self.store.owner, counts = counts }
  end
  if out.ok then return out end
  local names = {}
  for i, key in ipairs(failed) do
    if i > 10 then
      names[#names + 1] = "..."
      break
    end
    local r = results[key]
    names[#names + 1] = string_format("%s (%s)", tostring(r.id or key), tostring(r.code))
  end
  return out, werr("Incomplete", string_format("%d of %d replications did not reach %s: %s", #failed, #order,
    tostring(target), table_concat(names, ", ")), { failed = failed, codes = codes })
end

return M
