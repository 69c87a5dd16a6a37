-- A runbook for the demo (make demo): drives the full-load-and-cdc replication of
-- the local DMS endpoint through what a migration night looks like.
--
--   1. start it with a premigration assessment and watch it until running
--   2. stop it, and wait until its capacity is released
--   3. start it again until the full load is complete; a recoverable failure
--      (simulated on the local endpoint) stops it halfway and the runbook resumes it
--
-- Environment: DMS_ENDPOINT (the local endpoint's URL), AWS_ACCESS_KEY_ID and
-- AWS_SECRET_ACCESS_KEY (its key pair), AWS_REGION (default us-east-1).
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
--     DMS_ENDPOINT=http://127.0.0.1:41873 lua5.4 examples/runbook.lua
local cjson = require "cjson"
local core = require "dms.core"
local dms = require "dms"
local workflow = require "dms.workflow"

local ARN = os.getenv("DMS_DEMO_ARN")
  or "arn:aws:dms:us-east-1:123456789012:replication-config:ABCDEFGHIJKLMNOPQRSTUVWX03"
local ENDPOINT = os.getenv("DMS_ENDPOINT")
if not ENDPOINT or ENDPOINT == "" then
  io.stderr:write("examples/runbook.lua: set DMS_ENDPOINT to the URL of the local DMS endpoint\n")
  os.exit(2)
end

local function is_terminal()
  local term = os.getenv("TERM")
  if not term or term == "" or term == "dumb" then return false end
  return core.isatty(1)
end
local TTY = is_terminal()
local function bold(s) return TTY and ("\27[1m" .. s .. "\27[0m") or s end
local function dim(s) return TTY and ("\27[2m" .. s .. "\27[0m") or s end

local client = assert(dms.new({ region = os.getenv("AWS_REGION") or "us-east-1", endpoint = ENDPOINT }))

---------------------------------------------------------------------------
-- The local endpoint's admin API. Only the demo uses it: it reads the emulated
-- clock (for the DMS time column) and simulates a failure. None of this exists
-- on AWS.

local admin = assert(require("dms.curl").http())

local function emulator(method, path, body)
  local resp, err = admin:request({
    url = ENDPOINT .. "/_emulator/" .. path, method = method, timeout = 10,
    headers = { { "Content-Type", "application/json" } },
    body = body and cjson.encode(body) or "",
  })
  assert(resp and resp.status == 200, "local endpoint admin " .. path .. ": " .. tostring(err or resp.status))
  return cjson.decode(resp.body)
end

local function emulated_now()
  return emulator("GET", "replications").emulated_now
end

---------------------------------------------------------------------------
-- What a person watching wants to see

-- Every line starts with the same clock: [real time | emulated DMS time], both
-- counted from the start of the runbook (the local endpoint's clock runs faster
-- than real time: a start that takes about 50 minutes on AWS takes seconds here).

local real_start, dms_start        -- set when the runbook begins

local live = false
local last_progress = -100

local function line(s)
  if live then io.stdout:write("\n") end        -- the last progress line stays on screen
  live = false
  io.stdout:write(s, "\n")
  io.stdout:flush()
end

local function clock()
  return dim(string.format("[real %6s | DMS %7s]", workflow.duration(core.now() - real_start),
    workflow.duration(emulated_now() - dms_start)))
end

local function show(ev)
  local t = ev.type
  if t == "progress" or (t == "status" and ev.status == "running" and ev.progress and ev.progress > 0) then
    if TTY then
      io.stdout:write("\r  ", clock(), " ", workflow.progress_text(ev), "\27[K")
      io.stdout:flush()
      live = true
    elseif (ev.progress or 0) - last_progress >= 20 or (ev.progress == 100 and last_progress < 100) then
      last_progress = ev.progress or 0
      line("  " .. clock() .. " " .. workflow.progress_text(ev))
    end
    return
  end
  local text
  if t == "described" then
    text = string.format("described: %s (%s)%s", tostring(ev.status), tostring(ev.replication_type),
      ev.stop_reason and (", " .. ev.stop_reason) or "")
  elseif t == "status" then
    text = ev.provision_state and string.format("%-28s  capacity %s", ev.status, ev.provision_state) or ev.status
  elseif t == "stopped" then
    text = string.format("%s  %s at %s%% of the full load", bold(ev.status), tostring(ev.stop_reason),
      tostring(ev.progress))
  elseif t == "assessment" then
    text = string.format("premigration assessment %s (%s/%s individual assessments)",
      bold(tostring(ev.assessment)), tostring(ev.assessment_done), tostring(ev.assessment_count))
  elseif t == "start_sent" or t == "resume_sent" then
    last_progress = -100
    text = bold(workflow.format_event(ev))
  elseif t == "done" or t == "ready" then
    text = bold(workflow.format_event(ev))
  elseif t == "error" then
    text = bold("error: " .. tostring(ev.code) .. ": " .. tostring(ev.message))
  else
    text = workflow.format_event(ev)
  end
  line("  " .. clock() .. " " .. text)
end

local function step(title)
  line("")
  line(bold("== " .. title))
end

local function options(extra)
  local o = {
    replication_config_arn = ARN,
    poll = { interval = 0.2, timeout = 600 },       -- seconds; on AWS: 15 and hours
    resume = { max_attempts = 3, backoff = 0.5 },
    on_event = show,
  }
  for k, v in pairs(extra) do o[k] = v end
  return o
end

local function check(outcome, err)
  if not outcome then
    line(bold("The runbook stopped: " .. tostring(err)))
    os.exit(1)
  end
  return outcome
end

---------------------------------------------------------------------------

real_start, dms_start = core.now(), emulated_now()
line(bold("lua-dms runbook") .. " against " .. ENDPOINT .. " (a local DMS endpoint)")
line("replication " .. ARN)
line(dim("times: [real | DMS] since the runbook began; DMS time is the local endpoint's emulated clock, "
  .. "which runs faster"))

step("1. Start with a premigration assessment, watch until running")
local first = check(workflow.run(client, options({
  assessment = { ResultLocationFolder = "demo-assessments" },
  wait_for = "running",
})))
line(string.format("  start type %s, assessment %s", tostring(first.start_type),
  first.assessment and first.assessment.Status or "none"))

step("2. Stop it and wait until its capacity is released")
local stopped = check(workflow.stop(client, options({ wait_for = "deprovisioned" })))
local repl = stopped.replication
line(string.format("  status %s, %s, capacity %s", bold(repl.Status), tostring(repl.StopReason),
  bold(repl.ProvisionData and repl.ProvisionData.ProvisionState or "none")))

step("3. Run it again until the full load is complete; a failure stops it halfway")
local armed = emulator("POST", "stop", { arn = ARN, reason = "RECOVERABLE_ERROR", at_progress = 50 })
line("  " .. clock() .. dim(" simulating a failure on the local endpoint: a RECOVERABLE_ERROR stop at 50 % of "
  .. "the full load (status now " .. tostring(armed.Status) .. ")"))
local last = check(workflow.run(client, options({ wait_for = "full-load-complete" })))

step("Summary")
local r = last.replication
local st = r.ReplicationStats or {}
line(string.format("  final status      %s, full load %s %%, %s tables loaded, %s errored", bold(r.Status),
  tostring(st.FullLoadProgressPercent), tostring(st.TablesLoaded), tostring(st.TablesErrored)))
line(string.format("  last run          %s start(s), %s automatic resume(s) (%s)", tostring(last.starts),
  tostring(last.resumes), tostring(r.StartReplicationType)))
line(string.format("  elapsed           %s real, %s emulated DMS time", workflow.duration(core.now() - real_start),
  workflow.duration(emulated_now() - dms_start)))
admin:close()
client:close()
