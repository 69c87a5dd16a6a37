-- dms-runbook's table of a fleet: one row per replication (identifier,
-- status, full-load %, tables loaded and errored, resumes, what it is doing)
-- and a summary line, with the notable events logged above it. On a terminal
-- the table is redrawn in place after each round (and at most every 0.2 s in
-- between); elsewhere the events are logged as they come and the table is
-- printed once, at the end. Every string from DMS goes through format.clean.
local type, pairs, ipairs, tostring, setmetatable = type, pairs, ipairs, tostring, setmetatable
local math_floor, math_max, math_min = math.floor, math.max, math.min
local string_format, table_concat, table_sort = string.format, table.concat, table.sort

local core = require "dms.core"
local format = require "dms.runbook.format"

local clean = format.clean

local M = {}

-- events written above the table, one line each
local LOGGED = {
  started = true, stopped = true, resume_wait = true, start_refused = true, start_unknown = true,
  stop_sent = true, stop_unknown = true, error = true, warning = true, done = true, ready = true,
  throttled = true, poll_error = true, capacity_wait = true, held_elsewhere = true, done_elsewhere = true,
}

-- what a row shows in its last column, by event type
local NOTES = {
  queued = function() return "queued" end,
  start_sent = function() return "starting" end,
  resume_sent = function(ev) return "resuming (" .. tostring(ev.attempt) .. ")" end,
  started = function() return "" end,
  stopped = function(ev) return (tostring(ev.stop_reason or ""):gsub("^Stop Reason ", "")) end,
  resume_wait = function(ev) return "resume in " .. format.duration(ev.delay) end,
  capacity_wait = function() return "capacity being released" end,
  throttled = function() return "throttled" end,
  poll_error = function(ev) return "describe failed (" .. tostring(ev.code) .. ")" end,
  start_refused = function(ev) return "start refused (" .. tostring(ev.code) .. ")" end,
  start_unknown = function() return "start unanswered: describing" end,
  stop_sent = function() return "stopping" end,
  assessment = function(ev) return "assessment " .. tostring(ev.assessment) end,
  warning = function() return "warning" end,
  done = function() return "done" end,
  ready = function() return "started" end,
  error = function(ev) return tostring(ev.code) end,
  lease_taken = function(ev) return ev.from and "taken over" or "" end,
  held_elsewhere = function() return "driven by another host" end,
  done_elsewhere = function() return "done elsewhere" end,
}

-- the phase of a row, by event type (others leave it)
local PHASES = {
  queued = "queued", start_sent = "flight", resume_sent = "flight", started = "flight", stop_sent = "flight",
  done = "done", ready = "done", error = "failed", held_elsewhere = "elsewhere", lease_taken = "waiting",
  done_elsewhere = "done",
}

local Board = {}
Board.__index = Board

-- The terminal's size from stty (24 x 80 when it cannot tell).
local function terminal_size()
  local p = io.popen("stty size </dev/tty 2>/dev/null")
  local out = p and p:read("*a") or ""
  if p then p:close() end
  local rows, cols = out:match("^(%d+)%s+(%d+)")
  return tonumber(rows) or 24, tonumber(cols) or 80
end

-- opts: live (redraw in place), out (a file, default io.stdout), rows and
-- cols (the terminal's size: asked when live and not given)
function M.new(opts)
  opts = opts or {}
  local rows, cols = opts.rows, opts.cols
  if opts.live and not (rows and cols) then rows, cols = terminal_size() end
  return setmetatable({
    live = opts.live == true, out = opts.out or io.stdout,
    rows_max = rows or 24, cols = cols or 200,
    rows = {}, order = {}, pending = {}, drawn = 0, last_draw = 0, t0 = core.monotonic(),
    round = nil, last_throttle_log = -1,
  }, Board)
end

function Board:row(ev)
  local key = ev.arn or ev.id or "?"
  local r = self.rows[key]
  if not r then
    r = { name = format.name(ev), phase = "waiting", resumes = 0, note = "" }
    self.rows[key] = r
    self.order[#self.order + 1] = key
  end
  if type(ev.id) == "string" then r.name = ev.id end
  return r
end

-- takes one event of the fleet
function Board:event(ev)
  local r = self:row(ev)
  if ev.status ~= nil then r.status = ev.status end
  if ev.replication_type ~= nil then r.type = ev.replication_type end
  if ev.progress ~= nil then r.progress = ev.progress end
  if ev.tables_loaded ~= nil then r.loaded = ev.tables_loaded end
  if ev.tables_errored ~= nil then r.errored = ev.tables_errored end
  if ev.type == "started" and ev.resume then r.resumes = r.resumes + 1 end
  if (ev.type == "done" or ev.type == "ready") and type(ev.resumes) == "number" then r.resumes = ev.resumes end
  local phase = PHASES[ev.type]
  if ev.type == "error" and ev.code == "Locked" then phase = "locked" end
  if ev.type == "described" and ev.status and ev.status ~= "created" and ev.status ~= "stopped"
     and ev.status ~= "failed" then
    phase = "flight"
  end
  if phase and r.phase ~= "done" and r.phase ~= "failed" and r.phase ~= "locked"
     and not (phase == "waiting" and r.phase ~= "elsewhere") then
    r.phase = phase
  end
  local note = NOTES[ev.type]
  if note then r.note = note(ev) end
  if ev.type == "error" then r.code = ev.code end
  -- a shared journal: who drives it
  if type(ev.owner) == "string" and (ev.type == "lease_taken" or ev.type == "held_elsewhere"
     or ev.type == "done_elsewhere" or ev.type == "error") then
    r.owner = ev.owner
    self.shared = true
  end

  if LOGGED[ev.type] or (ev.type == "lease_taken" and ev.from) then
    local now = core.monotonic()
    if ev.type == "throttled" or ev.type == "poll_error" then
      -- every replication of a round says so: once a second is enough
      if now - self.last_throttle_log < 1 then return self:maybe_draw() end
      self.last_throttle_log = now
    end
    self:log(string_format("[%8s] %s", format.duration(now - self.t0), format.event(ev)), ev.type == "error")
  end
  self:maybe_draw()
end

-- takes a describe of a status command (events.status)
function Board:status(ev)
  local r = self:row(ev)
  r.status, r.type, r.progress = ev.status, ev.replication_type, ev.progress
  r.loaded, r.errored = ev.tables_loaded, ev.tables_errored
  r.note = ev.stop_reason and (tostring(ev.stop_reason):gsub("^Stop Reason ", "")) or ev.provision_state or ""
  -- described: a replication that failed, or stopped on a fatal error, counts as failed
  local fatal = ev.status == "failed" or tostring(ev.stop_reason or ""):find("FATAL", 1, true) ~= nil
  r.phase = fatal and "failed" or "done"
  r.code = fatal and (ev.status == "failed" and "failed" or "FatalStop") or nil
end

function Board:log(line, strong)
  if self.live and strong then line = "\27[1m" .. clean(line) .. "\27[0m" else line = clean(line) end
  if self.live then
    self.pending[#self.pending + 1] = line
  else
    self.out:write(line, "\n")
    self.out:flush()
  end
end

-- a round of the fleet ended (workflow's on_round)
function Board:round_done(info)
  self.round = info
  if self.live then self:draw() end
end

function Board:maybe_draw()
  if self.live and core.monotonic() - self.last_draw >= 0.2 then self:draw() end
end

local function counts(self)
  local c = { waiting = 0, queued = 0, flight = 0, done = 0, failed = 0, locked = 0, elsewhere = 0 }
  local codes = {}
  for _, key in ipairs(self.order) do
    local r = self.rows[key]
    c[r.phase] = (c[r.phase] or 0) + 1
    if r.phase == "failed" and r.code then codes[r.code] = (codes[r.code] or 0) + 1 end
  end
  return c, codes
end

function Board:summary()
  local c, codes = counts(self)
  local failed = ""
  if c.failed > 0 then
    local list = {}
    for code, n in pairs(codes) do list[#list + 1] = (n > 1 and (n .. " ") or "") .. code end
    table_sort(list)
    failed = " (" .. table_concat(list, ", ") .. ")"
  end
  local parts = { string_format("%d replication%s: %d done, %d in flight, %d queued", #self.order,
    #self.order == 1 and "" or "s", c.done, c.flight, c.queued) }
  if c.waiting > 0 then parts[1] = parts[1] .. string_format(", %d waiting", c.waiting) end
  parts[1] = parts[1] .. string_format(", %d failed%s", c.failed, failed)
  if c.locked > 0 then parts[1] = parts[1] .. string_format(", %d locked by another runbook", c.locked) end
  if c.elsewhere > 0 then parts[1] = parts[1] .. string_format(", %d driven by other hosts", c.elsewhere) end
  local info = self.round
  if info then
    parts[#parts + 1] = string_format("round %d: %d replication%s in %d request%s, %.0f ms", info.round,
      info.replications, info.replications == 1 and "" or "s", info.requests, info.requests == 1 and "" or "s",
      info.ms)
  end
  parts[#parts + 1] = format.duration(core.monotonic() - self.t0)
  return table_concat(parts, " | ")
end

local RANK = { flight = 1, failed = 2, locked = 3, waiting = 4, queued = 5, elsewhere = 6, done = 7 }

-- the table's lines; at most `max_rows` rows (the others counted in a line)
function Board:lines(max_rows)
  local keys = {}
  for i, key in ipairs(self.order) do keys[i] = key end
  table_sort(keys, function(a, b) return self.rows[a].name < self.rows[b].name end)
  local hidden
  if max_rows and #keys > max_rows then
    -- the rows that need a look first: in flight, failed, waiting, queued, done
    local ranked = {}
    for i, key in ipairs(keys) do ranked[i] = key end
    table_sort(ranked, function(a, b)
      local ra, rb = RANK[self.rows[a].phase] or 9, RANK[self.rows[b].phase] or 9
      if ra ~= rb then return ra < rb end
      return self.rows[a].name < self.rows[b].name
    end)
    local shown, keep = {}, math_max(max_rows - 1, 1)
    for i = 1, keep do shown[ranked[i]] = true end
    hidden = { n = 0 }
    local kept = {}
    for _, key in ipairs(keys) do
      if shown[key] then
        kept[#kept + 1] = key
      else
        local p = self.rows[key].phase
        hidden.n = hidden.n + 1
        hidden[p] = (hidden[p] or 0) + 1
      end
    end
    keys = kept
  end
  local w = 11
  for _, key in ipairs(keys) do w = math_max(w, #clean(self.rows[key].name)) end
  w = math_min(w, 48)
  local fmt = "%-" .. w .. "s  %-28s %5s %7s %7s %7s  %s"
  local out = { string_format(fmt, "REPLICATION", "STATUS", "LOAD", "LOADED", "ERRORED", "RESUMES", "") }
  local ow
  if self.shared then
    -- a shared journal: which host drives each one
    ow = 10
    for _, key in ipairs(keys) do ow = math_max(ow, #clean(self.rows[key].owner or "-")) end
    ow = math_min(ow, 40)
    fmt = "%-" .. w .. "s  %-" .. ow .. "s  %-28s %5s %7s %7s %7s  %s"
    out[1] = string_format(fmt, "REPLICATION", "DRIVEN BY", "STATUS", "LOAD", "LOADED", "ERRORED", "RESUMES", "")
  end
  local function num(v) return v == nil and "-" or tostring(math_floor(v)) end
  for _, key in ipairs(keys) do
    local r = self.rows[key]
    local load = (r.type == "cdc" or r.progress == nil) and "-" or (num(r.progress) .. "%")
    local name = clean(r.name)
    if #name > w then name = name:sub(1, w - 1) .. "~" end
    if ow then
      local owner = clean(r.owner or "-")
      if #owner > ow then owner = owner:sub(1, ow - 1) .. "~" end
      out[#out + 1] = string_format(fmt, name, owner, clean(r.status or "-"), load, num(r.loaded), num(r.errored),
        num(r.resumes), clean(r.note or ""))
    else
      out[#out + 1] = string_format(fmt, name, clean(r.status or "-"), load, num(r.loaded), num(r.errored),
        num(r.resumes), clean(r.note or ""))
    end
  end
  if hidden then
    local parts = {}
    for _, p in ipairs({ "flight", "failed", "locked", "waiting", "queued", "elsewhere", "done" }) do
      if hidden[p] then parts[#parts + 1] = hidden[p] .. " " .. (p == "flight" and "in flight" or p) end
    end
    out[#out + 1] = string_format("... and %d more (%s)", hidden.n, table_concat(parts, ", "))
  end
  out[#out + 1] = self:summary()
  return out
end

-- redraws the table in place (a terminal), with the lines logged since
function Board:draw()
  local buf = {}
  if self.drawn > 0 then buf[#buf + 1] = "\27[" .. self.drawn .. "A\r\27[J" end
  for _, line in ipairs(self.pending) do buf[#buf + 1] = line .. "\27[K\n" end
  self.pending = {}
  -- one line short of the screen: erasing from its first line would clear the
  -- whole screen, which some terminals (tmux) keep in their history
  local lines = self:lines(math_max(self.rows_max - 4, 3))
  for _, line in ipairs(lines) do
    if #line >= self.cols then line = line:sub(1, self.cols - 1) end
    buf[#buf + 1] = line .. "\27[K\n"
  end
  self.drawn = #lines
  self.out:write(table_concat(buf))
  self.out:flush()
  self.last_draw = core.monotonic()
end

-- the whole table, once, at the end
function Board:finish()
  if self.live then
    local buf = {}
    if self.drawn > 0 then buf[#buf + 1] = "\27[" .. self.drawn .. "A\r\27[J" end
    for _, line in ipairs(self.pending) do buf[#buf + 1] = line .. "\n" end
    self.pending = {}
    self.out:write(table_concat(buf))
    self.drawn = 0
  else
    self.out:write("\n")
  end
  local lines = self:lines(nil)
  self.out:write(table_concat(lines, "\n"), "\n")
  self.out:flush()
end

return M
