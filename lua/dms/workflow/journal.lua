-- Where a runbook keeps what it must not forget: its state (the record the
-- session saves before each action) and the lock that keeps a second runbook
-- off the replication. Two backends with one interface (open, load, save,
-- check, due, close): files, here, the default; and DynamoDB
-- (journal_dynamodb.lua), a lease and the state in a table that runbooks on
-- several hosts share. This is the files backend: a state file written
-- atomically (dms.core.write_file_atomic: a new file, fsync, rename, fsync of
-- the directory) and an flock per replication in lock_dir, named after the
-- ARN, which the kernel drops when the process dies.
--
--   local j, err = journal.open{ arn = arn, state_file = path, lock_dir = dir, lock = true }
--   local record, why = j:load()     -- record | nil, "absent" | "unreadable" (a reason)
--   local ok, err = j:save(record)
--   j:close()                        -- releases the lock
local type, pairs, tostring, setmetatable, string_format = type, pairs, tostring, setmetatable, string.format
local os_getenv = os.getenv

local core = require "dms.core"
local cjson = require "cjson.safe"
local errors = require "dms.errors"
local phases = require "dms.workflow.phases"
local read_file = require("dms.config").read_file

local M = {}

local function werr(code, message, fields)
  return errors.new("workflow", code, message, fields)
end

---------------------------------------------------------------------------
-- Locks

local held = {}   -- lock path -> handle: the locks this process holds

-- lock_acquire(path) -> handle | nil, err (code Locked or LockFailed). A lock
-- is never taken twice, not even by the process that holds it: two workflow
-- calls in one process (two requests of one nginx worker) are two runbooks.
function M.lock_acquire(path)
  if held[path] then
    return nil, werr("Locked", string_format("another runbook of this process (pid %d) is driving this "
      .. "replication: lock file %s", core.pid(), path), { pid = core.pid(), lock_file = path })
  end
  local handle, lerr = core.lock(path)
  if not handle then
    if lerr.code == "Locked" then
      return nil, werr("Locked", string_format("another runbook (pid %d) is driving this replication: "
        .. "lock file %s", lerr.pid or 0, path), { pid = lerr.pid, lock_file = path })
    end
    return nil, werr("LockFailed", lerr.message, { lock_file = path })
  end
  local h = { handle = handle, path = path }
  held[path] = h
  return h
end

function M.lock_release(h)
  if not h or held[h.path] ~= h then return end
  held[h.path] = nil
  h.handle:release()
end

local function env_dir(name)
  local v = os_getenv(name)
  if v ~= nil and v ~= "" then return v end
end

local function sanitize(s)
  return (s:gsub("[^%w%-_.]", "_"))
end

-- The lock belongs to the replication, whatever the state file: two runbooks on
-- one ARN meet on one lock file (in lock_dir, else $XDG_RUNTIME_DIR, $TMPDIR
-- or /tmp) named after the ARN's id and a hash of the whole ARN.
function M.lock_path(arn, lock_dir)
  local dir = lock_dir or env_dir("XDG_RUNTIME_DIR") or env_dir("TMPDIR") or "/tmp"
  local id = arn:match("([^:/]+)$") or "replication"
  return dir .. "/dms-runbook-" .. sanitize(id) .. "-" .. core.sha256_hex(arn):sub(1, 12) .. ".lock"
end

-- The state file of the replication `arn` in the directory `dir` (a fleet's
-- state_dir): named after the ARN as its lock is.
function M.state_path(dir, arn)
  local id = arn:match("([^:/]+)$") or "replication"
  return dir .. "/dms-runbook-" .. sanitize(id) .. "-" .. core.sha256_hex(arn):sub(1, 12) .. ".json"
end

---------------------------------------------------------------------------
-- The state record

-- the type of each field a saved record may hold; anything else makes the
-- file unreadable (it was not written by this library)
local FIELDS = {
  version = "number", arn = "string", id = "string", phase = "string", start_sent = "boolean",
  start_pending = "boolean",
  pending_type = "string", pending_resume = "boolean", before = "table", start_attempts = "number",
  starts = "number", resumes = "number", start_type = "string", run_started = "boolean",
  run_start_date = "number", status = "string", stop_reason = "string", progress = "number",
  updated_at = "number", created_at = "number", pid = "number", previous = "table", last_error = "string",
  stop_sent = "boolean", pending_since = "number", stop_pending = "boolean", stop_since = "number",
  pending_window = "number", stop_window = "number",
  before_stop = "table", tables_reported = "table",
}
local BEFORE = { status = "string", start_date = "number", start_type = "string" }

-- nil, or why the record is not one this library wrote
local function invalid(s)
  if type(s) ~= "table" then return "not a JSON object" end
  for k, want in pairs(FIELDS) do
    if s[k] ~= nil and type(s[k]) ~= want then return "'" .. k .. "' is not a " .. want end
  end
  if s.arn == nil then return "no 'arn'" end
  if s.phase ~= nil and not phases.known(s.phase) then return "unknown phase '" .. s.phase .. "'" end
  if s.before then
    for k, want in pairs(BEFORE) do
      if s.before[k] ~= nil and type(s.before[k]) ~= want then return "'before." .. k .. "' is not a " .. want end
    end
  end
  return nil
end
M.invalid = invalid

---------------------------------------------------------------------------
-- A journal

local Journal = {}
Journal.__index = Journal

-- opts: arn, state_file (optional), lock_dir, lock: true (the default), false
-- (no lock), or "try": when another runbook holds the lock, a journal that
-- neither locks nor reads or writes the state (its `bypassed` field holds the
-- Locked error), for an operator's stop that must go through.
-- With opts.store (journal_dynamodb.lua's), the journal is that store's: the
-- lease and the state in one DynamoDB item, with the same methods and
-- check() (before each DMS call) and due() (when its lease needs renewing).
function M.open(opts)
  if opts.store then return opts.store:open(opts) end
  local self = setmetatable({ arn = opts.arn, state_file = opts.state_file }, Journal)
  if opts.lock ~= false then
    local path = M.lock_path(opts.arn, opts.lock_dir)
    local h, err = M.lock_acquire(path)
    if not h then
      if opts.lock ~= "try" or err.code ~= "Locked" then return nil, err end
      self.state_file = nil
      self.bypassed = err
    end
    self.lock = h
  end
  return self
end

-- record | nil, "absent" | nil, reason (unreadable)
function Journal:load()
  local path = self.state_file
  if not path then return nil, "absent" end
  local data = read_file(path)
  if not data then return nil, "absent" end
  local s = cjson.decode(data)
  local why = invalid(s)
  if why then return nil, "the state file " .. path .. " is unreadable (" .. why .. ")" end
  return s
end

function Journal:save(record)
  if not self.state_file then return true end
  local data = cjson.encode(record)
  if not data then return nil, werr("StateFile", "cannot encode the state of " .. tostring(self.arn)) end
  local ok, err = core.write_file_atomic(self.state_file, data .. "\n")
  if not ok then
    return nil, werr("StateFile", "cannot write the state file " .. self.state_file .. ": " .. err.message)
  end
  return true
end

-- a lock held on this host's disk needs neither renewing nor checking
function Journal.check() return true end
function Journal.due() return nil end

function Journal:close()
  if self.lock then
    M.lock_release(self.lock)
    self.lock = nil
  end
end

return M
