-- Runs a real nginx (with lua-nginx-module) for a spec: writes a temporary
-- prefix around examples/nginx/nginx.conf, starts nginx on 127.0.0.1 with a
-- free port, and stops it by the pid it wrote.
--
--   local nginx = require "support.nginx"
--   local ok, why = nginx.available()
--   local srv = nginx.start{ env = { DMS_OPS_TOKEN = "t" }, extra_http = "server { ... }" }
--   srv.url        -- http://127.0.0.1:PORT of the example's server
--   srv:stop()
--
-- The prefix holds conf/nginx.conf (the example with its listen port, worker
-- count and, when the packaged paths differ, load_module lines rewritten) and
-- copies of what nginx loads: lua/ (the repository's lua/), lib/dms/core.so
-- (build/luajit: nginx runs LuaJIT), app/ (examples/nginx/) and, when asked
-- for, vendor/ (lua-resty-http). Copies, not links: started as root, nginx
-- runs its workers as an unprivileged user, which cannot reach a clone under
-- a private directory (/root, a 0700 mktemp -d); the prefix, under /tmp, is
-- readable by all.
local M = {}

M.EXAMPLE = "examples/nginx/nginx.conf"
M.MODULE_DIRS = { "/usr/lib/nginx/modules", "/usr/share/nginx/modules", "/usr/lib64/nginx/modules",
                  "/usr/local/lib/nginx/modules" }

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = sh_quote

-- runs a shell command: ok (exit status 0), output (stdout and stderr)
local function run(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.-)__rc=(%d+)%s*$")
  return rc == "0", body or out
end
M.run = run

local files = require "support.files"
local exists, read, write = files.exists, files.read, files.write
M.read = read

function M.repo_root()
  local ok, out = run("pwd")
  assert(ok, out)
  return (out:gsub("%s+$", ""))
end

-- A port nobody listens on right now.
function M.free_port()
  local ok, out = run("python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); "
    .. "print(s.getsockname()[1]); s.close()'")
  assert(ok, "no free port: " .. out)
  return tonumber(out:match("%d+"))
end

-- The nginx binary, whether lua is built in (OpenResty), and the directory of
-- ngx_http_lua_module.so / ndk_http_module.so when it is a dynamic module.
function M.detect()
  -- /usr/sbin is on root's PATH only, as a rule
  local ok, path = run("command -v nginx || command -v openresty || { for p in /usr/sbin/nginx "
    .. "/usr/local/openresty/bin/openresty /usr/local/openresty/nginx/sbin/nginx; do "
    .. "[ -x $p ] && echo $p && exit 0; done; exit 1; }")
  if not ok or path == "" then return nil, "no nginx binary on PATH (Debian: apt-get install nginx)" end
  local bin = path:match("^%s*(%S+)")
  local vok, version = run(sh_quote(bin) .. " -V")
  if not vok then return nil, "nginx -V failed: " .. version end
  if version:find("lua-nginx-module", 1, true) or version:find("openresty", 1, true) then
    return { bin = bin, builtin_lua = true, version = version }
  end
  for _, dir in ipairs(M.MODULE_DIRS) do
    if exists(dir .. "/ngx_http_lua_module.so") and exists(dir .. "/ndk_http_module.so") then
      return { bin = bin, module_dir = dir, version = version }
    end
  end
  return nil, "nginx has no lua module: ngx_http_lua_module.so is in none of "
    .. table.concat(M.MODULE_DIRS, ", ") .. " (Debian: apt-get install libnginx-mod-http-lua)"
end

function M.available()
  local info, why = M.detect()
  if not info then return false, why end
  return true, info
end

-- Brings build/luajit/dms/core.so up to date (nginx runs LuaJIT): make is
-- incremental, so this costs nothing when the module is current.
function M.ensure_luajit_module(root)
  root = root or M.repo_root()
  local so = root .. "/build/luajit/dms/core.so"
  local ok, out = run("cd " .. sh_quote(root) .. " && make -s LUA_VERSION=luajit")
  assert(ok and exists(so), "make LUA_VERSION=luajit failed (a stale module is never used):\n" .. out)
  return so
end

-- lua-resty-http for the tests (../shared/vendor beside the repository, or
-- $DMS_VENDOR): the directory holding resty/http.lua, or nil and why not.
M.RESTY_HTTP = "lua-resty-http-0.17.2"

function M.resty_http_lib(root)
  local vendor = os.getenv("DMS_VENDOR")
  if not vendor or vendor == "" then vendor = (root or M.repo_root()) .. "/../shared/vendor" end
  local lib = vendor .. "/" .. M.RESTY_HTTP .. "/lib"
  if exists(lib .. "/resty/http.lua") then return lib end
  return nil, "no " .. lib .. "/resty/http.lua (set DMS_VENDOR to the folder holding " .. M.RESTY_HTTP .. "/)"
end

-- lua-resty-http requires resty.string (lua-resty-string, which an OPM or
-- LuaRocks install brings along) when it loads, for to_hex() of mTLS client
-- certificates; neither the vendor folder nor Debian has it. The tests put
-- this to_hex() in its place, beside the vendored copy.
M.RESTY_STRING = [[
-- to_hex() of lua-resty-string, for lua-resty-http in the tests
local M = {}
function M.to_hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
return M
]]

-- The example's config text for this run.
function M.render_conf(opts, info)
  local conf = assert(read(opts.conf or M.EXAMPLE), "cannot read " .. (opts.conf or M.EXAMPLE))
  local n
  conf, n = conf:gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. opts.port .. ";")
  assert(n == 1, "the example's listen line was not found")
  conf = conf:gsub("worker_processes [%w]+;", "worker_processes " .. (opts.workers or 1) .. ";")
  if info.builtin_lua then
    conf = conf:gsub("\nload_module [^\n]*;", "\n")
  else
    conf = conf:gsub("load_module /usr/lib/nginx/modules/", "load_module " .. info.module_dir .. "/")
  end
  if opts.vendor then
    conf, n = conf:gsub('lua_package_path "', 'lua_package_path "$prefix/vendor/?.lua;', 1)
    assert(n == 1, "the example's lua_package_path line was not found")
  end
  if opts.error_log_level then
    conf = conf:gsub("error_log logs/error%.log %a+;", "error_log logs/error.log " .. opts.error_log_level .. ";")
  end
  if opts.extra_http then
    -- the http block is the file's last block: add before its closing brace
    local last = conf:match("^.*()}")
    local extra = opts.extra_http:gsub("@PREFIX@", function() return opts.prefix end)
    conf = conf:sub(1, last - 1) .. extra .. "\n}\n"
  end
  return conf
end

local Server = {}
Server.__index = Server
M.Server = Server

local function copy(from, to)
  -- u+w: the source may be read-only (the vendor folder is)
  local copied, out = run("cp -R " .. sh_quote(from) .. " " .. sh_quote(to) .. " && chmod -R u+w " .. sh_quote(to))
  assert(copied, "cannot copy " .. from .. " into the nginx prefix: " .. out)
end

-- A new private prefix under /tmp (removed by Server:stop) with conf/, logs/,
-- lua-dms's Lua code in lua/ and its LuaJIT dms.core in lib/dms/.
function M.new_prefix(root)
  local ok, prefix = run("mktemp -d /tmp/lua-dms-nginx.XXXXXX")
  assert(ok, prefix)
  prefix = prefix:gsub("%s+$", "")
  assert(run("mkdir -p " .. sh_quote(prefix .. "/conf") .. " " .. sh_quote(prefix .. "/logs") .. " "
    .. sh_quote(prefix .. "/lib/dms")))
  copy(root .. "/lua", prefix .. "/lua")
  copy(root .. "/build/luajit/dms/core.so", prefix .. "/lib/dms/core.so")
  return prefix
end

-- opts: env (table), extra_http (text; @PREFIX@ stands for the prefix), port, workers,
-- conf (path), error_log_level, prefix_files ({relative name = text}),
-- vendor (a directory copied to the prefix's vendor/, first on lua_package_path)
function M.start(opts)
  opts = opts or {}
  local info = assert(M.detect())
  local root = M.repo_root()
  M.ensure_luajit_module(root)
  local prefix = M.new_prefix(root)
  opts.port = opts.port or M.free_port()
  opts.prefix = prefix
  copy(root .. "/examples/nginx", prefix .. "/app")
  if opts.vendor then
    copy(opts.vendor, prefix .. "/vendor")
    if not exists(prefix .. "/vendor/resty/string.lua") then
      write(prefix .. "/vendor/resty/string.lua", M.RESTY_STRING)
    end
  end
  for name, text in pairs(opts.prefix_files or {}) do write(prefix .. "/" .. name, text) end
  write(prefix .. "/conf/nginx.conf", M.render_conf(opts, info))
  return M.launch(prefix, info, opts.port, opts.env)
end

-- Starts nginx on the prefix's conf/nginx.conf with only `env` in its
-- environment (nginx keeps only the variables the config declares with
-- `env`) and waits for its pid file. Returns a Server (or an object of
-- `class`, a Server's subclass).
function M.launch(prefix, info, port, env, class)
  -- started as root, nginx runs its workers as an unprivileged user: they must
  -- be able to read the prefix (mktemp made it private)
  assert(run("chmod -R a+rX " .. sh_quote(prefix)))
  local vars = { "PATH=" .. sh_quote(os.getenv("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin") }
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. sh_quote(v) end
  local cmd = "cd " .. sh_quote(prefix) .. " && env -i " .. table.concat(vars, " ") .. " "
    .. sh_quote(info.bin) .. " -p " .. sh_quote(prefix .. "/") .. " -c conf/nginx.conf"
  local started, out = run(cmd)
  local self = setmetatable({ prefix = prefix, port = port, info = info,
    url = "http://127.0.0.1:" .. port }, class or Server)
  if not started then
    local log = read(prefix .. "/logs/error.log") or ""
    error("nginx did not start:\n" .. out .. "\n" .. log)
  end
  -- the master wrote its pid once the sockets were bound
  for _ = 1, 100 do
    local pid = read(prefix .. "/logs/nginx.pid")
    if pid and pid:match("%d+") then self.pid = pid:match("%d+") break end
    run("sleep 0.05")
  end
  assert(self.pid, "nginx wrote no pid file in " .. prefix)
  return self
end

function Server:error_log() return read(self.prefix .. "/logs/error.log") or "" end
function Server:access_log() return read(self.prefix .. "/logs/access.log") or "" end

-- Stops the master started above (its workers follow) and removes the prefix
-- (kept when LUA_DMS_KEEP_NGINX_PREFIX is set, to read its logs).
function Server:stop(keep_prefix)
  keep_prefix = keep_prefix or (os.getenv("LUA_DMS_KEEP_NGINX_PREFIX") or "") ~= ""
  if self.pid then
    run("kill -QUIT " .. self.pid)
    for _ = 1, 100 do
      if not run("kill -0 " .. self.pid) then break end
      run("sleep 0.05")
    end
    if run("kill -0 " .. self.pid) then run("kill -KILL " .. self.pid) end
    self.pid = nil
  end
  if not keep_prefix and self.prefix and self.prefix:match("^/tmp/lua%-dms%-nginx%.") then
    run("rm -rf " .. sh_quote(self.prefix))
  end
end

---------------------------------------------------------------------------
-- an HTTP client for the spec: curl(1), so the spec measures nginx, not a Lua client

-- opts: method, path, headers ({name = value}), header_lines ({"Name: value", ...}:
-- a name may repeat), body, timeout
-- -> {status=, headers= {lowercase = value}, body=, json= (decoded or nil)}
function Server:http(opts)
  local cjson = require "cjson"
  local args = { "curl", "-sS", "-i", "--max-time", tostring(opts.timeout or 30),
                 "-X", opts.method or "GET" }
  for k, v in pairs(opts.headers or {}) do
    args[#args + 1] = "-H"
    args[#args + 1] = sh_quote(k .. ": " .. v)
  end
  for _, line in ipairs(opts.header_lines or {}) do
    args[#args + 1] = "-H"
    args[#args + 1] = sh_quote(line)
  end
  local body_file
  if opts.body then
    body_file = os.tmpname()
    write(body_file, opts.body)
    args[#args + 1] = "--data-binary"
    args[#args + 1] = sh_quote("@" .. body_file)
  end
  args[#args + 1] = sh_quote((opts.url or self.url) .. (opts.path or "/"))
  local p = assert(io.popen(table.concat(args, " ") .. " 2>&1", "r"))
  local raw = p:read("*a")
  p:close()
  if body_file then os.remove(body_file) end
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "no HTTP response from nginx: " .. raw)
  local status = tonumber(head:match("^HTTP/%S+ (%d+)"))
  local headers = {}
  for name, value in head:gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  local ok, doc = pcall(cjson.decode, body)
  return { status = status, headers = headers, body = body, json = ok and doc or nil }
end

return M
