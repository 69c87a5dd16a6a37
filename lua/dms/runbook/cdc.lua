-- dms-runbook --cdc-start-time / --cdc-start-position / --cdc-stop-position:
-- the start point of change data capture, passed to the workflow's `cdc`
-- option (checked there as StartReplication checks it, before any request:
-- a start time and a start position together are refused).
local tonumber, next = tonumber, next

local M = {}

function M.add_options(c)
  c:option("--cdc-start-time", "CdcStartTime of the start: ISO-8601 (2026-11-25T12:00:00Z) or epoch seconds.")
    :argname("<time>")
  c:option("--cdc-start-position", "CdcStartPosition of the start (a checkpoint, LSN or SCN; not with "
    .. "--cdc-start-time)."):argname("<position>")
  c:option("--cdc-stop-position", "CdcStopPosition, e.g. server_time:2026-11-25T12:00:00."):argname("<position>")
end

-- the workflow's `cdc` option from the parsed arguments, or nil
function M.options(args)
  local t = args.cdc_start_time
  if t and t:match("^%d+%.?%d*$") then t = tonumber(t) end
  local cdc = { CdcStartTime = t, CdcStartPosition = args.cdc_start_position,
                CdcStopPosition = args.cdc_stop_position }
  return next(cdc) ~= nil and cdc or nil
end

return M
