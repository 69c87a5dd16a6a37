-- dms-runbook's shared journal: the --journal option (dynamodb://TABLE) of
-- the workflow commands, and the commands around the table:
--
--   dms-runbook journal create-table TABLE   on-demand billing, TTL on expires_at
--   dms-runbook journal list TABLE           one row per replication: who drives it,
--                                            its lease, its phase
local type, ipairs, tostring, tonumber = type, ipairs, tostring, tonumber
local string_format, math_floor = string.format, math.floor

local core = require "dms.core"
local common = require "dms.runbook.common"
local format = require "dms.runbook.format"
local journal_dynamodb = require "dms.workflow.journal_dynamodb"

local M = { COMMANDS = { journal = true } }

-- "dynamodb://TABLE" -> { dynamodb = { table = TABLE, ... } } | nil, message
function M.parse(uri, args)
  if type(uri) ~= "string" then return nil end
  local name = uri:match("^dynamodb://([^/?#]+)/?$")
  if not name then
    return nil, "--journal '" .. uri .. "' is not dynamodb://TABLE (the files journal is the default)"
  end
  if not journal_dynamodb.valid_table(name) then
    return nil, "--journal: '" .. name .. "' is not a DynamoDB table name (3-255 letters, digits, _ - .)"
  end
  local d = { table = name, endpoint = args and args.journal_endpoint, region = args and args.journal_region,
              lease = args and args.lease }
  return { dynamodb = d }
end

function M.add_options(p)
  p:option("--journal", "Where the state and the lock of each replication live: the files on this host "
    .. "(default), or dynamodb://TABLE, a table runbooks on several hosts share (a lease per replication).")
    :argname("<uri>")
  p:option("--owner", "This runbook's name in a shared journal (default host:pid:random).")
    :argname("<name>")
  p:option("--lease", "Seconds of a lease in a shared journal (default 300; renewed every third).", nil,
    function(s)
      local n = tonumber(s)
      if not n or n <= 0 then return nil, "'" .. tostring(s) .. "' is not a positive number" end
      return n
    end):argname("<s>")
  p:option("--journal-endpoint", "DynamoDB endpoint URL of the shared journal (default AWS_ENDPOINT_URL_DYNAMODB, "
    .. "AWS_ENDPOINT_URL, else the region's)."):argname("<url>")
  p:option("--journal-region", "Region of the shared journal's table (default the client's)."):argname("<region>")
end

function M.add_commands(p)
  local j = p:command("journal", "The shared journal's table: create-table TABLE, list TABLE.")
  j:command_target("journal_command")
  j:command("create-table", "Create the table (on-demand billing, TTL on expires_at) and wait until it is "
    .. "active."):argument("table", "Table name.")
  j:command("list", "One row per replication: who drives it, until when, its phase."):argument("table",
    "Table name.")
end

local function age(t, now)
  if type(t) ~= "number" then return "-" end
  local d = t - now
  if d >= 0 then return "in " .. format.duration(d) end
  return format.duration(-d) .. " ago"
end

function M.run(args, ctx)
  local printer = ctx.printer
  local fail = ctx.fail
  local name = args.table
  if not journal_dynamodb.valid_table(name) then
    return ctx.usage("'" .. tostring(name) .. "' is not a DynamoDB table name (3-255 letters, digits, _ - .)")
  end
  local client, cerr = common.client(args)
  if not client then return fail(cerr) end
  local ddb, derr = require("dms.dynamodb").for_client(client, { endpoint = args.journal_endpoint,
                                                                   region = args.journal_region })
  if not ddb then
    client:close()
    return fail(derr)
  end
  local code = 0
  -- list: a table on a terminal or with --print-table, else JSON lines
  local json = args.json or (printer.json and not args.print_table)
  if args.journal_command == "create-table" then
    local info, err = journal_dynamodb.create_table(ddb, name)
    if not info then
      code = fail(err)
    else
      if info.warning then io.stderr:write("dms-runbook: WARNING: ", format.clean(info.warning), "\n") end
      if json then
        common.json_line({ type = "journal_table", table = name, status = info.status, ttl = info.ttl,
                           existed = info.existed or false, warning = info.warning })
      else
        io.stdout:write(string_format("table %s: %s%s, TTL on expires_at %s\n", format.clean(name),
          tostring(info.status), info.existed and " (it existed)" or "", info.ttl))
      end
    end
  else
    local items, err = journal_dynamodb.scan(ddb, name)
    if not items then
      code = fail(err)
    else
      table.sort(items, function(a, b) return tostring(a.pk) < tostring(b.pk) end)
      local now = core.now()
      if json then
        for _, it in ipairs(items) do
          common.json_line({ type = "journal_item", arn = it.pk, id = it.identifier, owner = it.owner,
            last_owner = it.last_owner, lease_expires = it.lease_expires,
            held = it.owner ~= nil and (it.lease_expires or 0) >= now,
            fence = it.fence, version = it.version, phase = it.phase, updated_at = it.updated_at })
        end
      else
        local fmt = "%-40s %-32s %-14s %-10s %6s %8s  %s"
        io.stdout:write(string_format(fmt, "REPLICATION", "OWNER", "LEASE", "PHASE", "FENCE", "VERSION",
          "UPDATED"), "\n")
        for _, it in ipairs(items) do
          local id = it.identifier or tostring(it.pk):match("([^:/]+)$") or tostring(it.pk)
          local owner = it.owner or ((it.last_owner and ("(" .. it.last_owner .. ")")) or "-")
          local lease = it.owner and (((it.lease_expires or 0) >= now) and age(it.lease_expires, now)
            or ("expired " .. age(it.lease_expires, now))) or "released"
          io.stdout:write(format.clean(string_format(fmt, id, owner, lease, tostring(it.phase or "-"),
            tostring(it.fence and math_floor(it.fence) or "-"), tostring(it.version and math_floor(it.version) or "-"),
            common.date(it.updated_at) or "-")), "\n")
        end
      end
    end
  end
  ddb:close()
  client:close()
  return code
end

return M
