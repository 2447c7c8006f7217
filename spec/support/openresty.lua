-- Spec helper: a test nginx with the Lua module, serving
-- spec/support/openresty_app.lua with the LuaJIT rock installed by
-- `make install LUA=luajit`; started on a free port, stopped after.
local support = require("emulator")
local socket = require("socket")

local M = {}

local sh = support.sh

local Nginx = {}
Nginx.__index = Nginx

-- GET (or POST with a table body) a route; returns status and decoded JSON.
function Nginx:call(route, body)
  return support.http_json(body and "POST" or "GET", self.url .. route, body)
end

function Nginx:error_log()
  local f = io.open(self.prefix .. "/error.log")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

function Nginx:stop()
  if self.pid then
    os.execute("kill -QUIT " .. self.pid .. " 2>/dev/null")
    if not support.wait_gone(self.pid, 5) then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
    self.pid = nil
  end
  if self.prefix then os.execute("rm -rf " .. self.prefix) end
end

-- opts: url and token of the emulator, email and password of one of its
-- users, ca (lua_ssl_trusted_certificate)
function M.start(opts)
  return support.on_free_port(function(port) return M.start_on(opts, port) end)
end

function M.start_on(opts, port)
  local root = support.ROOT
  local tree = root .. "/.rocks/luajit"
  local prefix = sh("mktemp -d"):gsub("%s+$", "")
  os.execute("chmod 755 " .. prefix)
  local modules = ""
  for _, m in ipairs({ "ndk_http_module", "ngx_http_lua_module" }) do
    local path = "/usr/lib/nginx/modules/" .. m .. ".so"
    if io.open(path) then modules = modules .. "load_module " .. path .. ";\n" end
  end
  local conf = ([[
%s
%s
worker_processes 1;
error_log %s/error.log warn;
pid %s/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    lua_package_path '%s/share/lua/5.1/?.lua;%s/share/lua/5.1/?/init.lua;;';
    lua_package_cpath '%s/lib/lua/5.1/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;';
    lua_shared_dict results 1m;
    lua_shared_dict jwt 1m;
    client_body_buffer_size 4m;
    client_max_body_size 16m;
    %s
    init_by_lua_block {
        package.loaded["openresty_app"] = dofile("%s/spec/support/openresty_app.lua")
        require("openresty_app").init({ url = %q, token = %q, email = %q, password = %q })
    }
    server {
        listen 127.0.0.1:%d;
        location / {
            content_by_lua_block { require("openresty_app").handle() }
            log_by_lua_block { require("openresty_app").log() }
        }
    }
}
]]):format(modules, sh("id -u"):find("^0") and "user nobody nogroup;" or "", prefix, prefix, prefix, prefix,
    prefix, prefix, prefix, tree, tree, tree,
    opts.ca and ("lua_ssl_trusted_certificate " .. opts.ca .. "; lua_ssl_verify_depth 3;") or "",
    root, opts.url, opts.token, opts.email or "", opts.password or "", port)
  local f = assert(io.open(prefix .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  local pid = tonumber(sh(("nginx -p %s -c %s/nginx.conf -e %s/error.log -g 'daemon off;' > %s/stdout.log 2>&1 & echo $!")
    :format(prefix, prefix, prefix, prefix)):match("%d+"))
  local self = setmetatable({ pid = pid, prefix = prefix, port = port, url = "http://127.0.0.1:" .. port }, Nginx)
  for _ = 1, 600 do -- up to 30 s, on a busy machine
    local s = socket.connect("127.0.0.1", port)
    if s then
      s:close()
      local f2 = io.open(prefix .. "/nginx.pid")
      if f2 then f2:close() return self end
    end
    if support.gone(pid) then break end
    socket.sleep(0.05)
  end
  local log = self:error_log() .. sh("cat " .. prefix .. "/stdout.log")
  self:stop()
  error("test nginx did not start: " .. log)
end

return M
