-- A real nginx (with lua-nginx-module) for the credential specs: one worker, a
-- config of the spec's own, lua-dms copied into a temporary prefix (so that
-- nginx's unprivileged workers can read it wherever the clone lives).
--
--   local ngxsrv = require "support.credentials_nginx"
--   local ok, why = ngxsrv.available()
--   local srv = ngxsrv.start{ http = "server { listen 127.0.0.1:@PORT@; ... }", env = { NAME = "v" },
--                             files = { ["app/credapp.lua"] = "..." } }
--   srv.port, srv.url, srv:http{ path = "/x" }, srv:error_log(), srv:stop()
local files = require "support.files"

local M = {}

M.MODULE_DIRS = { "/usr/lib/nginx/modules", "/usr/share/nginx/modules", "/usr/lib64/nginx/modules",
                  "/usr/local/lib/nginx/modules" }

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

-- ok (exit status 0), output (stdout and stderr)
local function run(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.-)__rc=(%d+)%s*$")
  return rc == "0", body or out
end
M.run = run

function M.free_port()
  local ok, out = run("python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); "
    .. "print(s.getsockname()[1]); s.close()'")
  assert(ok, "no free port: " .. out)
  return tonumber(out:match("%d+"))
end

-- the nginx binary and how lua-nginx-module is there (built in, or the directory of the dynamic modules)
function M.detect()
  local ok, path = run("command -v nginx || command -v openresty")
  if not ok or path == "" then return nil, "no nginx binary on PATH (Debian: apt-get install nginx)" end
  local bin = path:match("^%s*(%S+)")
  local vok, version = run(quote(bin) .. " -V")
  if not vok then return nil, "nginx -V failed: " .. version end
  if version:find("lua-nginx-module", 1, true) or version:find("openresty", 1, true) then
    return { bin = bin, builtin_lua = true }
  end
  for _, dir in ipairs(M.MODULE_DIRS) do
    if files.exists(dir .. "/ngx_http_lua_module.so") and files.exists(dir .. "/ndk_http_module.so") then
      return { bin = bin, module_dir = dir }
    end
  end
  return nil, "nginx has no lua module (Debian: apt-get install libnginx-mod-http-lua)"
end

function M.available()
  local info, why = M.detect()
  if not info then return false, why end
  return true, info
end

local function repo_root()
  local ok, out = run("pwd")
  assert(ok, out)
  return (out:gsub("%s+$", ""))
end

local Server = {}
Server.__index = Server

-- opts: http (text inside the http block; @PORT@ and @PREFIX@ are replaced),
-- env (table: passed to nginx and declared with `env`), files ({relative path = text}),
-- port (default a free one)
function M.start(opts)
  local info = assert(M.detect())
  local root = repo_root()
  local built, out = run("cd " .. quote(root) .. " && make -s LUA_VERSION=luajit")
  assert(built, "make LUA_VERSION=luajit failed:\n" .. out)
  local ok, prefix = run("mktemp -d /tmp/lua-dms-cred-nginx.XXXXXX")
  assert(ok, prefix)
  prefix = prefix:gsub("%s+$", "")
  local port = opts.port or M.free_port()
  assert(run("mkdir -p " .. quote(prefix .. "/conf") .. " " .. quote(prefix .. "/logs") .. " "
    .. quote(prefix .. "/lib/dms") .. " " .. quote(prefix .. "/app")))
  assert(run("cp -R " .. quote(root .. "/lua") .. " " .. quote(prefix .. "/lua")))
  assert(run("cp " .. quote(root .. "/build/luajit/dms/core.so") .. " " .. quote(prefix .. "/lib/dms/core.so")))
  for name, text in pairs(opts.files or {}) do files.write(prefix .. "/" .. name, text) end
  local lines = {}
  if not info.builtin_lua then
    lines[#lines + 1] = "load_module " .. info.module_dir .. "/ndk_http_module.so;"
    lines[#lines + 1] = "load_module " .. info.module_dir .. "/ngx_http_lua_module.so;"
  end
  lines[#lines + 1] = "worker_processes 1;"
  lines[#lines + 1] = "error_log logs/error.log info;"
  lines[#lines + 1] = "pid logs/nginx.pid;"
  for k in pairs(opts.env or {}) do lines[#lines + 1] = "env " .. k .. ";" end
  lines[#lines + 1] = "events { worker_connections 1024; }"
  lines[#lines + 1] = "http {"
  lines[#lines + 1] = "  access_log logs/access.log;"
  lines[#lines + 1] = "  client_body_temp_path logs/body; proxy_temp_path logs/proxy;"
  lines[#lines + 1] = "  fastcgi_temp_path logs/fcgi; uwsgi_temp_path logs/uwsgi; scgi_temp_path logs/scgi;"
  lines[#lines + 1] = "  lua_package_path \"$prefix/lua/?.lua;$prefix/lua/?/init.lua;$prefix/app/?.lua;;\";"
  lines[#lines + 1] = "  lua_package_cpath \"$prefix/lib/?.so;;\";"
  lines[#lines + 1] = ((opts.http or ""):gsub("@PORT@", tostring(port)):gsub("@PREFIX@", prefix))
  lines[#lines + 1] = "}"
  files.write(prefix .. "/conf/nginx.conf", table.concat(lines, "\n") .. "\n")
  -- started as root, nginx runs its workers as an unprivileged user
  assert(run("chmod -R a+rwX " .. quote(prefix)))
  local env = { "PATH=" .. quote(os.getenv("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin") }
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. quote(v) end
  local started, sout = run("cd " .. quote(prefix) .. " && env -i " .. table.concat(env, " ") .. " "
    .. quote(info.bin) .. " -p " .. quote(prefix .. "/") .. " -c conf/nginx.conf")
  local self = setmetatable({ prefix = prefix, port = port, url = "http://127.0.0.1:" .. port }, Server)
  if not started then
    error("nginx did not start:\n" .. sout .. "\n" .. (files.read(prefix .. "/logs/error.log") or ""))
  end
  for _ = 1, 100 do
    local pid = files.read(prefix .. "/logs/nginx.pid")
    if pid and pid:match("%d+") then self.pid = pid:match("%d+") break end
    run("sleep 0.05")
  end
  assert(self.pid, "nginx wrote no pid file in " .. prefix)
  return self
end

function Server:error_log() return files.read(self.prefix .. "/logs/error.log") or "" end

-- Stops the master started above and removes the prefix (kept when
-- LUA_DMS_KEEP_NGINX_PREFIX is set).
function Server:stop()
  if self.pid then
    run("kill -QUIT " .. self.pid)
    for _ = 1, 100 do
      if not run("kill -0 " .. self.pid) then break end
      run("sleep 0.05")
    end
    if run("kill -0 " .. self.pid) then run("kill -KILL " .. self.pid) end
    self.pid = nil
  end
  if (os.getenv("LUA_DMS_KEEP_NGINX_PREFIX") or "") == "" and self.prefix:match("^/tmp/lua%-dms%-cred%-nginx%.") then
    run("rm -rf " .. quote(self.prefix))
  end
end

-- One request with curl(1): {status=, body=, json=}
function Server:http(opts)
  local args = { "curl", "-sS", "--max-time", tostring(opts.timeout or 30), "-o", "-", "-w", "'\\n%{http_code}'" }
  args[#args + 1] = quote(self.url .. (opts.path or "/"))
  local p = assert(io.popen(table.concat(args, " ") .. " 2>&1", "r"))
  local raw = p:read("*a")
  p:close()
  local body, status = raw:match("^(.*)\n(%d+)$")
  local ok, doc = pcall(require("cjson").decode, body or "")
  return { status = tonumber(status), body = body or raw, json = ok and doc or nil }
end

-- Requests at once (curl --parallel): `paths` is a list of paths, or one path
-- and a count. Returns the list of {status=, body=, seconds=} in order, and
-- the seconds the whole took.
function Server:parallel(paths, n)
  if type(paths) == "string" then
    local list = {}
    for i = 1, n do list[i] = paths end
    paths = list
  end
  local dir = files.tmpdir()
  local args = { "curl", "-sS", "--no-progress-meter", "--parallel", "--parallel-immediate", "--parallel-max",
                 tostring(#paths), "--max-time", "30", "-w", quote("%{url_effective} %{http_code} %{time_total}\\n") }
  for i, path in ipairs(paths) do
    local sep = path:find("?", 1, true) and "&" or "?"
    args[#args + 1] = "-o"
    args[#args + 1] = quote(dir .. "/" .. i)
    args[#args + 1] = quote(self.url .. path .. sep .. "n=" .. i)
  end
  local core = require "dms.core"
  local t0 = core.now()
  local p = assert(io.popen(table.concat(args, " ") .. " 2>&1", "r"))
  local out = p:read("*a")
  p:close()
  local elapsed = core.now() - t0
  local results = {}
  for i, code, seconds in out:gmatch("[?&]n=(%d+) (%d%d%d) ([%d.]+)") do
    results[tonumber(i)] = { status = tonumber(code), body = files.read(dir .. "/" .. i), seconds = tonumber(seconds) }
  end
  run("rm -rf " .. quote(dir))
  return results, elapsed, out
end

return M
