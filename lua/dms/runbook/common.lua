-- What the commands of dms-runbook beyond the workflow's (tables, configs)
-- share: the client the global options describe, the --arn check, JSON lines.
local type, tostring, pcall = type, tostring, pcall
local io_stdout, os_getenv, math_min = io.stdout, os.getenv, math.min

local cjson = require "cjson"
local core = require "dms.core"
local dms = require "dms"

local M = {}

-- stdout is a terminal a person reads (TERM set and not dumb)
function M.terminal()
  local term = os_getenv("TERM")
  if not term or term == "" or term == "dumb" then return false end
  return core.isatty(1)
end

-- `message` | nil when --arn names a replication config: its ARN, or its
-- identifier (checked before any request, as StartReplication checks an ARN)
function M.arn_problem(arn)
  if not arn then return "--arn is required" end
  local fleet = require "dms.workflow.fleet"
  if fleet.is_arn(arn) then
    if not core.build(require("dms.model"), "StopReplication", { ReplicationConfigArn = arn }) then
      return "--arn '" .. arn .. "' is not the ARN of a DMS replication config "
        .. "(like arn:aws:dms:us-east-1:123456789012:replication-config:ID)"
    end
  elseif not fleet.valid_identifier(arn) then
    return "--arn '" .. arn .. "' is neither the ARN of a DMS replication config nor an identifier"
  end
end

-- args.arn made an ARN: an identifier is looked up (DescribeReplicationConfigs,
-- filter replication-config-id); true | nil, err (ResourceNotFoundFault)
function M.resolve_arn(args, client)
  local fleet = require "dms.workflow.fleet"
  if fleet.is_arn(args.arn) then return true end
  local resp, err = client:describe_replication_configs({
    Filters = { { Name = "replication-config-id", Values = { args.arn } } } })
  local cfg = resp and type(resp.ReplicationConfigs) == "table" and resp.ReplicationConfigs[1]
  if not cfg then
    if err and err.code ~= "ResourceNotFoundFault" then return nil, err end
    return nil, core.error({ kind = "service", code = "ResourceNotFoundFault",
                             message = "no replication config has the identifier '" .. args.arn .. "'" })
  end
  args.arn = cfg.ReplicationConfigArn
  return true
end

-- the client of the global options (--region, --profile, --endpoint,
-- --timeout, --request-timeout, --max-attempts) | nil, err
function M.client(args)
  if args.max_attempts == 0 then
    return nil, core.error({ kind = "validation", code = "Usage", message = "--max-attempts must be at least 1" })
  end
  local request_timeout = args.request_timeout
  if args.timeout and (not request_timeout or request_timeout > args.timeout) then request_timeout = args.timeout end
  return dms.new({ region = args.region, profile = args.profile, endpoint = args.endpoint,
    timeout = request_timeout and { total = request_timeout, connect = math_min(5, request_timeout) },
    retry = args.max_attempts and { max_attempts = args.max_attempts } })
end

-- one JSON object on a line of stdout
function M.json_line(t)
  local ok, line = pcall(cjson.encode, t)
  if ok then io_stdout:write(line, "\n") end
  io_stdout:flush()
end

-- a usage error (exit 2), reported like the others
function M.usage_error(message)
  return core.error({ kind = "validation", code = "Usage", message = message })
end

-- "2026-11-25T12:00:00Z" for an epoch number, else nil
function M.date(t)
  if type(t) ~= "number" then return nil end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

-- a count for a table cell: "-" when absent
function M.num(v)
  if type(v) ~= "number" then return v == nil and "-" or tostring(v) end
  return string.format("%d", math.floor(v))
end

return M
