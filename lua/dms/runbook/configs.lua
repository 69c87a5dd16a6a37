-- dms-runbook create-config / modify-config / delete-config: thin commands
-- over CreateReplicationConfig, ModifyReplicationConfig and
-- DeleteReplicationConfig. Table mappings and settings come from JSON files
-- (sent as they are written); a config is modified or deleted only while its
-- replication is not running (created, stopped or failed) and no runbook
-- holds its lock, checked before the request that would change it. When DMS
-- refuses, its answer (code, message, request id) is what is shown.
--
--   dms-runbook create-config --identifier orders --source-endpoint-arn ARN --target-endpoint-arn ARN \
--       --replication-type full-load-and-cdc --table-mappings mappings.json --max-capacity-units 16
--   dms-runbook --arn ARN modify-config --replication-settings settings.json
--   dms-runbook --arn ARN delete-config
local type, ipairs, tostring, tonumber, next = type, ipairs, tostring, tonumber, next
local string_format, table_concat = string.format, table.concat
local io_open, io_stdout = io.open, io.stdout

local cjson = require "cjson.safe"
local core = require "dms.core"
local errors = require "dms.errors"
local workflow = require "dms.workflow"
local format = require "dms.runbook.format"
local common = require "dms.runbook.common"

local clean = format.clean

local M = {}

M.COMMANDS = { ["create-config"] = true, ["modify-config"] = true, ["delete-config"] = true }

-- the replication statuses in which DMS lets a config change
M.CHANGEABLE = { created = true, stopped = true, failed = true }

local function whole(s)
  local n = tonumber(s)
  if not n or n < 1 or n % 1 ~= 0 then return nil, "'" .. tostring(s) .. "' is not a whole number >= 1" end
  return n
end

local function config_options(c, creating)
  c:option("--identifier", "ReplicationConfigIdentifier" .. (creating and "." or " (renames the config)."))
    :argname("<id>")
  c:option("--source-endpoint-arn", "SourceEndpointArn."):argname("<arn>")
  c:option("--target-endpoint-arn", "TargetEndpointArn."):argname("<arn>")
  c:option("--replication-type", "ReplicationType."):choices({ "full-load", "cdc", "full-load-and-cdc" })
  c:option("--table-mappings", "JSON file of the TableMappings (sent as written)."):argname("<file>")
  c:option("--replication-settings", "JSON file of the ReplicationSettings."):argname("<file>")
  c:option("--supplemental-settings", "JSON file of the SupplementalSettings."):argname("<file>")
  c:option("--compute-config", "JSON file of the ComputeConfig (MaxCapacityUnits, MinCapacityUnits, MultiAZ, "
    .. "ReplicationSubnetGroupId, VpcSecurityGroupIds, ...)."):argname("<file>")
  c:option("--max-capacity-units", "ComputeConfig.MaxCapacityUnits (DCUs).", nil, whole):argname("<n>")
  c:option("--min-capacity-units", "ComputeConfig.MinCapacityUnits (DCUs).", nil, whole):argname("<n>")
end

function M.add_commands(p)
  local create = p:command("create-config", "CreateReplicationConfig (no --arn: DMS gives the ARN).")
  config_options(create, true)
  create:option("--resource-identifier", "ResourceIdentifier: the last part of the ARN.")
    :argname("<id>")
  create:option("--tag", "A tag as KEY=VALUE (repeatable)."):argname("<key=value>"):count("*")
  local modify = p:command("modify-config", "ModifyReplicationConfig of --arn (its replication must not be "
    .. "running).")
  config_options(modify, false)
  p:command("delete-config", "DeleteReplicationConfig of --arn (its replication must not be running).")
end

---------------------------------------------------------------------------
-- Reading the options

-- the text of a JSON file holding an object | nil, message
local function json_file(path, option)
  local f, why = io_open(path, "rb")
  if not f then return nil, option .. ": cannot read " .. tostring(why) end
  local text = f:read("*a")
  f:close()
  local v = text and cjson.decode(text)
  if type(v) ~= "table" or not text:match("^%s*{") then
    return nil, option .. ": " .. path .. " does not hold a JSON object"
  end
  return text, v
end

local MEMBERS = {
  { "identifier", "ReplicationConfigIdentifier" }, { "source_endpoint_arn", "SourceEndpointArn" },
  { "target_endpoint_arn", "TargetEndpointArn" }, { "replication_type", "ReplicationType" },
}
local FILES = {
  { "table_mappings", "TableMappings", "--table-mappings" },
  { "replication_settings", "ReplicationSettings", "--replication-settings" },
  { "supplemental_settings", "SupplementalSettings", "--supplemental-settings" },
}

-- the request parameters of create-config or modify-config | nil, message
local function params_of(args)
  local params = {}
  for _, m in ipairs(MEMBERS) do params[m[2]] = args[m[1]] end
  for _, f in ipairs(FILES) do
    if args[f[1]] then
      local text, why = json_file(args[f[1]], f[3])
      if not text then return nil, why end
      params[f[2]] = text
    end
  end
  local compute
  if args.compute_config then
    local text, v = json_file(args.compute_config, "--compute-config")
    if not text then return nil, v end
    compute = v
  end
  if args.max_capacity_units or args.min_capacity_units then
    compute = compute or {}
    compute.MaxCapacityUnits = args.max_capacity_units or compute.MaxCapacityUnits
    compute.MinCapacityUnits = args.min_capacity_units or compute.MinCapacityUnits
  end
  params.ComputeConfig = compute
  if args.command == "create-config" then
    params.ResourceIdentifier = args.resource_identifier
    if args.tag and args.tag[1] then
      params.Tags = {}
      for _, kv in ipairs(args.tag) do
        local k, v = kv:match("^([^=]+)=(.*)$")
        if not k then return nil, "--tag '" .. kv .. "' is not KEY=VALUE" end
        params.Tags[#params.Tags + 1] = { Key = k, Value = v }
      end
    end
    local missing = {}
    for _, need in ipairs({ { "ReplicationConfigIdentifier", "--identifier" },
                            { "SourceEndpointArn", "--source-endpoint-arn" },
                            { "TargetEndpointArn", "--target-endpoint-arn" },
                            { "ReplicationType", "--replication-type" },
                            { "TableMappings", "--table-mappings" },
                            { "ComputeConfig", "--max-capacity-units or --compute-config" } }) do
      if params[need[1]] == nil then missing[#missing + 1] = need[2] end
    end
    if missing[1] then return nil, "create-config needs " .. table_concat(missing, ", ") end
  elseif next(params) == nil then
    return nil, "modify-config needs at least one change (--table-mappings, --replication-settings, "
      .. "--max-capacity-units, ...)"
  end
  return params
end

---------------------------------------------------------------------------
-- The calls

local function werr(code, message, extra)
  return errors.new("workflow", code, message, extra)
end

-- a call whose answer was lost may have been applied: a second attempt that
-- DMS refuses for what the first did says so
local function note_retry(err, op, code, what)
  if type(err) == "table" and err.code == code and (err.attempts or 1) > 1 then
    err.message = tostring(err.message) .. " (an earlier attempt of this " .. op .. " whose answer was lost may "
      .. "have " .. what .. " it)"
  end
  return err
end

-- Takes the replication's lock and describes it: it must exist and not run.
-- Returns the replication and the lock | nil, err.
local function changeable(client, arn, args, verb)
  local lock, lerr = workflow.lock_acquire(workflow.lock_path({ replication_config_arn = arn,
                                                                lock_dir = args.lock_dir }))
  if not lock then
    if lerr.code == "Locked" then
      lerr.message = lerr.message .. "; its config cannot be " .. verb .. " while a runbook drives it"
    end
    return nil, lerr
  end
  local repl, err = workflow.describe(client, { replication_config_arn = arn, poll = { timeout = args.timeout } })
  if not repl then
    workflow.lock_release(lock)
    return nil, err
  end
  if not M.CHANGEABLE[repl.Status] then
    workflow.lock_release(lock)
    return nil, werr("ReplicationActive", string_format("%s is %s: its config cannot be %s until it is stopped "
      .. "(dms-runbook --arn %s stop); nothing was sent", arn, tostring(repl.Status), verb, arn),
      { replication = repl })
  end
  return repl, lock
end

-- create-config, modify-config, delete-config: the ReplicationConfig | nil, err
function M.create(client, params, opts)
  local resp, err = client:call("CreateReplicationConfig", params, opts)
  if not resp then return nil, note_retry(err, "CreateReplicationConfig", "ResourceAlreadyExistsFault", "created") end
  return resp.ReplicationConfig, resp
end

function M.modify(client, params, args)
  local arn = params.ReplicationConfigArn
  local repl, lock = changeable(client, arn, args, "modified")
  if not repl then return nil, lock end
  local resp, err = client:call("ModifyReplicationConfig", params)
  workflow.lock_release(lock)
  if not resp then return nil, err end
  return resp.ReplicationConfig, resp
end

function M.delete(client, arn, args)
  local repl, lock = changeable(client, arn, args, "deleted")
  if not repl then return nil, lock end
  local resp, err = client:call("DeleteReplicationConfig", { ReplicationConfigArn = arn })
  workflow.lock_release(lock)
  if not resp then return nil, note_retry(err, "DeleteReplicationConfig", "ResourceNotFoundFault", "deleted") end
  return resp.ReplicationConfig, resp
end

---------------------------------------------------------------------------
-- Output

local EVENT = { ["create-config"] = "config_created", ["modify-config"] = "config_modified",
                ["delete-config"] = "config_deleted" }
local VERB = { ["create-config"] = "created", ["modify-config"] = "modified", ["delete-config"] = "deleted" }

local function rules_count(text)
  local v = type(text) == "string" and cjson.decode(text)
  return type(v) == "table" and type(v.rules) == "table" and #v.rules or nil
end

local function print_config(command, cfg, resp)
  if type(cfg) ~= "table" then cfg = {} end
  local function row(name, value)
    if value ~= nil then io_stdout:write(string_format("%-22s %s\n", name, clean(value))) end
  end
  io_stdout:write(clean(string_format("replication config %s (request id %s)",
    VERB[command], tostring(resp and resp.ResponseMetadata and resp.ResponseMetadata.RequestId))), "\n")
  row("arn", cfg.ReplicationConfigArn)
  row("identifier", cfg.ReplicationConfigIdentifier)
  row("type", cfg.ReplicationType)
  row("source endpoint", cfg.SourceEndpointArn)
  row("target endpoint", cfg.TargetEndpointArn)
  local cc = type(cfg.ComputeConfig) == "table" and cfg.ComputeConfig or nil
  if cc then
    row("capacity (DCU)", string_format("%s..%s%s", tostring(cc.MinCapacityUnits or "-"),
      tostring(cc.MaxCapacityUnits or "-"), cc.MultiAZ and ", Multi-AZ" or ""))
  end
  local n = rules_count(cfg.TableMappings)
  row("table mappings", n and (n .. " rule(s)"))
  row("created", common.date(cfg.ReplicationConfigCreateTime))
  row("updated", common.date(cfg.ReplicationConfigUpdateTime))
  io_stdout:flush()
end

-- runs the command; returns the exit code
function M.run(args, ctx)
  local command = args.command
  if command ~= "create-config" then
    local problem = common.arn_problem(args.arn)
    if problem then return ctx.usage(problem) end
  end
  local params
  if command ~= "delete-config" then
    local why
    params, why = params_of(args)
    if not params then return ctx.usage(why) end
    if command == "modify-config" then params.ReplicationConfigArn = args.arn end
    -- the request as DMS would get it, checked before any request
    local req, berr = core.build(require("dms.model"),
      command == "create-config" and "CreateReplicationConfig" or "ModifyReplicationConfig", params)
    if not req then
      return ctx.fail(berr)
    end
  end
  local client, cerr = common.client(args)
  if not client then
    return ctx.fail(cerr)
  end
  if command ~= "create-config" then
    local ok, rerr = common.resolve_arn(args, client)
    if not ok then
      client:close()
      return ctx.fail(rerr)
    end
    if params then params.ReplicationConfigArn = args.arn end
  end
  local cfg, resp
  if command == "create-config" then
    cfg, resp = M.create(client, params, args.timeout and { timeout = args.timeout } or nil)
  elseif command == "modify-config" then
    cfg, resp = M.modify(client, params, args)
  else
    cfg, resp = M.delete(client, args.arn, args)
  end
  client:close()
  if not cfg then
    return ctx.fail(resp)
  end
  if ctx.printer.json then
    common.json_line({ type = EVENT[command], time = core.now(), arn = cfg.ReplicationConfigArn or args.arn,
                       config = cfg, request_id = resp.ResponseMetadata and resp.ResponseMetadata.RequestId })
  else
    print_config(command, cfg, resp)
  end
  return ctx.EXIT.ok
end

return M
