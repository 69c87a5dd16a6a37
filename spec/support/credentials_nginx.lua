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

local nginx = require "support.nginx"
local quote, run = nginx.quote, nginx.run

local M = {
  quote = quote, run = run, free_port = nginx.free_port, detect = nginx.detect, available = nginx.available,
}

-- a server of support.nginx (stop, error_log, http), and parallel below
local Server = setmetatable({}, { __index = nginx.Server })
Server.__index = Server

-- opts: http (text inside the http block; @PORT@ and @PREFIX@ are replaced),
-- env (table: passed to nginx and declared with `env`), files ({relative path = text}),
-- port (default a free one)
function M.start(opts)
  local info = assert(nginx.detect())
  local root = nginx.repo_root()
  nginx.ensure_luajit_module(root)
  local prefix = nginx.new_prefix(root)
  local port = opts.port or nginx.free_port()
  assert(run("mkdir -p " .. quote(prefix .. "/app")))
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
  return nginx.launch(prefix, info, port, opts.env, Server)
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
