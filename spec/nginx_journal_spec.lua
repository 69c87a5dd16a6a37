-- workflow.run inside nginx with a DynamoDB journal: the DynamoDB calls go
-- through cosockets as the DMS calls do, and a timer renews the lease while
-- the request waits on a slow DMS call (a describe held 2 s by the local DMS
-- endpoint, with a lease of 1.2 s).
local cjson = require "cjson"
local core = require "dms.core"
local dms = require "dms"
local dynamodb = require "dms.dynamodb"
local jd = require "dms.workflow.journal_dynamodb"
local nginx = require "support.nginx"
local emulator = require "support.emulator"
local dynalite = require "support.dynalite"
local files = require "support.files"

local skip = dynalite.unavailable()
local ok_nginx, why_nginx = nginx.available()

local HANDLER = [[
server {
    listen 127.0.0.1:@PORT@;
    location = /run {
        content_by_lua_block {
            local cjson = require "cjson"
            local workflow = require "dms.workflow"
            local a = ngx.req.get_uri_args()
            local client = assert(require("dms").new({ region = "us-east-1", endpoint = a.dms,
              credentials = { access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" } }))
            local out, err = workflow.run(client, { replication_config_arn = a.arn, poll = { interval = 0.1 },
              journal = { dynamodb = { table = a.table, endpoint = a.ddb, lease = tonumber(a.lease) } },
              owner = "nginx-worker" })
            ngx.say(cjson.encode({ ok = out and out.ok or false, code = err and err.code or cjson.null,
                                   starts = out and out.starts or cjson.null }))
        }
    }
}
]]

describe("workflow.run in nginx with a DynamoDB journal", function()
  if skip then
    it("needs dynalite", function() pending(skip) end)
    return
  end
  if not ok_nginx then
    it("needs nginx with lua", function() pending(why_nginx) end)
    return
  end

  local srv, emu, server, proxy, port, direct, client, dir

  setup(function()
    emu = emulator.start({ speed = 3000 })
    server = dynalite.start()
    proxy = server:proxy()
    port = nginx.free_port()
    srv = nginx.start({ workers = 1, extra_http = HANDLER:gsub("@PORT@", tostring(port)) })
    client = assert(dms.new({ region = "us-east-1", endpoint = "http://127.0.0.1:9",
                              credentials = { access_key = "AKID", secret_key = "x" } }))
    direct = assert(dynamodb.for_client(client, { endpoint = server.url }))
    assert(jd.create_table(direct, "nginx-journal"))
    dir = files.tmpdir()
  end)
  teardown(function()
    if srv then srv:stop() end
    if emu then emu:stop() end
    if server then server:stop() end
    if direct then direct:close() end
    if client then client:close() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("renews the lease from a timer while the request waits on DMS, through cosockets", function()
    local arn = emulator.ARN_CDC
    emu:fault({ operation = "DescribeReplications", fault = "delay", seconds = 2, count = 1 })
    proxy:clear_counts()
    local url = string.format("http://127.0.0.1:%d/run?arn=%s&dms=%s&ddb=%s&table=nginx-journal&lease=1.2", port,
      arn, emu.url, proxy.url)
    os.execute("curl -s -m 60 '" .. url .. "' >" .. dir .. "/answer 2>&1 &")
    -- while the describe is held: the lease stays ours and never lapses
    local seen, lapsed = 0, 0
    local deadline = core.monotonic() + 30
    while not (files.read(dir .. "/answer") or ""):find("}", 1, true) do
      assert(core.monotonic() < deadline, "no answer from nginx")
      local resp = direct:get_item({ TableName = "nginx-journal", Key = { pk = dynamodb.S(arn) },
                                     ConsistentRead = true })
      local it = resp and dynamodb.decode_item(resp.Item)
      if it and it.owner == "nginx-worker" then
        seen = seen + 1
        if it.lease_expires < core.now() then lapsed = lapsed + 1 end
      end
      core.sleep(0.1)
    end
    local answer = cjson.decode(files.read(dir .. "/answer"))
    assert.is_true(answer.ok, files.read(dir .. "/answer"))
    assert.are.equal(1, answer.starts)
    assert.truthy(seen >= 10, "the lease was seen " .. seen .. " times")
    assert.are.equal(0, lapsed)
    -- renewals during the held describe (every third of 1.2 s), besides the state writes
    assert.truthy(proxy:counts().UpdateItem >= 6)
    local it = dynamodb.decode_item(assert(direct:get_item({ TableName = "nginx-journal",
      Key = { pk = dynamodb.S(arn) }, ConsistentRead = true })).Item)
    assert.are.equal("done", it.phase)
    assert.is_nil(it.owner)
    assert.are.equal(1, #emu:requests("StartReplication"))
  end)
end)
