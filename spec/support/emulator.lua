-- Spec helper: starts bin/opentact-emulator on a free loopback port and
-- stops it again; talks to its admin routes with LuaSocket.
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson")

local M = {}

-- Under `make sanitize` the interpreter runs with the sanitizer runtime in
-- LD_PRELOAD, and OPENTACT_SPEC_PRELOAD names it again. The programs the
-- specs start (the shell, the emulator, nginx, curl) run without it: it
-- leaves this process's environment (loaded into every shell the specs
-- start, it cost more than the specs). The Lua the specs start to run the
-- library (M.LUA) gets it back. (busted loads this module anew for each
-- spec file: OPENTACT_SPEC_PRELOAD outlives LD_PRELOAD. Under Valgrind,
-- LD_PRELOAD holds Valgrind's own libraries: they leave it too.)
M.LUA = os.getenv("OPENTACT_SPEC_LUA") or (rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:match("%d+%.%d+"))
local preload = os.getenv("OPENTACT_SPEC_PRELOAD")
if preload then M.LUA = "env LD_PRELOAD='" .. preload .. "' " .. M.LUA end
if os.getenv("LD_PRELOAD") then assert(require("forkhelper").unsetenv("LD_PRELOAD")) end

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/support/[^/]*$") or "."
M.ROOT = ROOT

function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Starts a server with start(port) on a port free_port() picked, and on a
-- fresh one again (a few times) when another program took the port
-- between the pick and the server's bind (the suites run side by side):
-- start raises an error that says "in use" then. A `port` given is used
-- once, as asked.
function M.on_free_port(start, port)
  if port then return start(port) end
  local err
  for _ = 1, 5 do
    local ok, server = pcall(start, M.free_port())
    if ok then return server end
    err = server
    if not tostring(err):lower():find("in use", 1, true) then break end
  end
  error(err, 0)
end

-- A shell command's output.
local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end
M.sh = sh

-- A shell command's output with standard error, and its exit status.
function M.run(cmd)
  local out = sh(cmd .. " 2>&1; echo \"status=$?\"")
  local status = tonumber(out:match("status=(%d+)\n$"))
  return (out:gsub("status=%d+\n$", "")), status
end

-- Whether `module` loads in the interpreter the suite runs on, asked of a
-- separate process: some C modules (luv) close their loop when their first
-- Lua state lets go of them, so one loaded only to see it is there would
-- leave a closed loop to the spec file that uses it next.
function M.has_module(module)
  local _, status = M.run(("%s -e 'require(\"%s\")'"):format(M.LUA, module))
  return status == 0
end

-- A temporary folder of TLS files made with openssl: a CA (ca.pem), a
-- server certificate it signed for localhost and 127.0.0.1 (server.pem,
-- server.key; 127.0.0.1 also as a DNS name, since nginx checks host names
-- only) and a self-signed one nobody trusts (other.pem, other.key).
function M.tls_files()
  local dir = sh("mktemp -d"):gsub("%s+$", "")
  local out = sh(([[
    cd %s && chmod 755 . && {
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=lua-opentact test CA" -keyout ca.key -out ca.pem &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout server.key -out server.csr &&
      printf 'subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1\n' > san.ext &&
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile san.ext -out server.pem &&
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=DNS:127.0.0.1" -keyout other.key -out other.pem &&
      chmod 644 *.pem && echo made; } 2>&1]]):format(dir))
  assert(out:find("made"), out)
  return dir
end

-- Whether a process has ended, from /proc (no shell to start: the specs
-- ask this many times a second). One whose parent is gone waits for init
-- to reap it, which can take a second or two: a zombie has ended too.
local function gone(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local stat = f:read("*a") or ""
  f:close()
  return stat:match("^%d+ %b() (%a)") == "Z"
end
M.gone = gone

-- Waits up to `seconds` for a process to end.
function M.wait_gone(pid, seconds)
  for _ = 1, seconds * 20 do
    if gone(pid) then return true end
    socket.sleep(0.05)
  end
  return false
end

-- A file's bytes, or nil when it cannot be read.
function M.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function read_file(path) return M.slurp(path) or "" end

-- Waits up to 30 s (on a busy machine) for the server `self` just started
-- (process self.pid) to write `word` to the file at `path`; returns the
-- line that holds it. When the process ends first, or the time runs out,
-- stops the server and raises an error naming `what`, with what the file
-- says.
local function started(self, path, word, what)
  for _ = 1, 600 do
    local text = read_file(path)
    local at = text:find(word, 1, true)
    if at then
      return text:sub(1, at - 1):match("[^\n]*$") .. text:sub(at):match("^[^\n]*")
    end
    if gone(self.pid) then break end
    socket.sleep(0.02)
  end
  local text = read_file(path)
  self:stop()
  error(what .. " did not start: " .. text)
end

-- A file's bytes; an error when it cannot be read.
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- A path for a file that does not exist yet, in the temporary folder.
function M.temp_path()
  local path = os.tmpname()
  os.remove(path)
  return path
end

-- A new temporary file holding `text`; its name.
function M.tmpfile(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(text)
  f:close()
  return name
end

-- The set of a list's values.
function M.set(list)
  local out = {}
  for _, v in ipairs(list) do out[v] = true end
  return out
end

-- A sorted copy of a list.
function M.sorted(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  table.sort(out)
  return out
end

local Emulator = {}
Emulator.__index = Emulator

-- One plain-HTTP exchange with a JSON body (a table or a string) or none;
-- returns the status and the answer decoded, or its text if not JSON.
function M.http_json(method, url, body)
  if type(body) == "table" then body = cjson.encode(body) end
  local out = {}
  local _, code = http.request({
    url = url,
    method = method,
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["content-type"] = "application/json", ["content-length"] = #body } or nil,
    sink = ltn12.sink.table(out),
  })
  local text = table.concat(out)
  local ok, decoded = pcall(cjson.decode, text)
  return code, ok and decoded or text
end

-- A client of this emulator that retries quickly; `opts` overrides.
-- Connecting may take long where the suite runs under Valgrind beside the
-- other suites (a first TLS handshake takes seconds there): a connect
-- timeout would turn into a retry that a spec does not expect.
function Emulator:client(opts)
  local o = { token = self.token, base_url = self.url, backoff = 0.01, backoff_max = 0.05, connect_timeout = 30 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return require("opentact").new(o)
end

-- Calls an admin route; returns status, decoded JSON (or raw text).
function Emulator:admin(method, route, body)
  if type(body) == "table" then body = cjson.encode(body) end
  if self.url:find("^https") then
    -- LuaSocket has no TLS: the curl tool (not the library under test) does it
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "wb"))
    f:write(body or "")
    f:close()
    local text = sh(("curl -sk -X %s %s -w '\n%%{http_code}' %s/__emulator/%s"):format(
      method, body and ("-H 'content-type: application/json' --data-binary @" .. tmp) or "", self.url, route))
    os.remove(tmp)
    local payload, code = text:match("^(.*)\n(%d+)$")
    local ok, decoded = pcall(cjson.decode, payload)
    return tonumber(code), ok and decoded or payload
  end
  return M.http_json(method, self.url .. "/__emulator/" .. route, body)
end

function Emulator:state() return select(2, self:admin("GET", "state")) end
function Emulator:reset() return self:admin("POST", "reset") end
function Emulator:faults(list) return self:admin("POST", "faults", list) end
function Emulator:stats() return select(2, self:admin("GET", "stats")) end
function Emulator:requests() return select(2, self:admin("GET", "requests")) end
function Emulator:config(c) return self:admin("POST", "config", c) end
-- Time that passes when a spec says so, for the specs about time (token
-- expiry and renewal, a login left hanging): the client's wall clock
-- (opentact.auth.clock) and this emulator's token clock run ahead of the
-- real one together. Returns advance(seconds), and restore() that brings
-- back the real clocks (for the test's finally).
function Emulator:clock()
  local auth = require("opentact.auth")
  local real, ahead = auth.clock, 0
  auth.clock = function() return real() + ahead end
  local function advance(seconds)
    ahead = ahead + seconds
    assert(self:config({ clock = ahead }) == 200)
  end
  local function restore()
    auth.clock = real
    self:config({ clock = 0 })
  end
  return advance, restore
end
-- {lease uuid = {sip_connection = uuid or cjson.null, sip_control_app = ...}}
function Emulator:holders(map) return self:admin("POST", "holders", map) end

-- Logs in with GET /auth and HTTP Basic (no Authorization header when
-- email is nil); returns the status and the answer decoded, or its text.
function Emulator:login(email, password)
  local headers = {}
  if email then headers.authorization = "Basic " .. (require("mime").b64(email .. ":" .. (password or ""))) end
  local code, text = self:raw("GET", "/auth", headers)
  local ok, decoded = pcall(cjson.decode, text)
  return code, ok and decoded or text
end

-- Raw HTTP to the API, for routes and statuses the client never sends.
function Emulator:raw(method, path, headers, body)
  local out = {}
  headers = headers or {}
  if body then headers["content-length"] = #body end
  local _, code, resp_headers = http.request({
    url = self.url .. path, method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(out),
  })
  return code, table.concat(out), resp_headers
end

function Emulator:stop()
  if self.pid then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    M.wait_gone(self.pid, 5)
    self.pid = nil
  end
  os.remove(self.log)
  for _, f in ipairs(self.files or {}) do os.remove(f) end
end

-- How many writes the emulator received since its last reset: POSTs
-- other than lease searches.
function M.writes(emu)
  local n = 0
  for _, r in ipairs(emu:requests()) do
    if r.method == "POST" and not r.path:find("^/lease/tn/search") then n = n + 1 end
  end
  return n
end

-- A hostile server (spec/support/hostile.lua) misbehaving in `mode`, on a
-- free loopback port (`host` "::1" for IPv6). Stop it with :stop().
local Hostile = {}
Hostile.__index = Hostile

function Hostile:requests()
  local out = {}
  for line in io.lines(self.log) do out[#out + 1] = line end
  return out
end

function Hostile:stop()
  Emulator.stop(self) -- the process and its log
  os.remove(self.out)
end

function M.hostile(mode, host)
  return M.on_free_port(function(port) return M.hostile_on(mode, host, port) end)
end

function M.hostile_on(mode, host, port)
  host = host or "127.0.0.1"
  local log, out = os.tmpname(), os.tmpname()
  local pid = tonumber(sh(("lua5.4 %s/spec/support/hostile.lua %s %d %s %s > %s 2>&1 & echo $!")
    :format(ROOT, mode, port, log, host, out)):match("%d+"))
  local self = setmetatable({ pid = pid, port = port, log = log, out = out,
    url = "http://" .. (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":" .. port }, Hostile)
  started(self, out, "listening", "hostile server")
  return self
end

-- Runs f(server) with a hostile server in `mode` (see M.hostile), stopping
-- it whatever happens.
function M.with_hostile(mode, f, host)
  local server = M.hostile(mode, host)
  local ok, err = pcall(f, server)
  server:stop()
  if not ok then error(err, 0) end
end

-- How many of a list's lines begin with `prefix`.
function M.count_prefixed(lines, prefix)
  local n = 0
  for _, line in ipairs(lines) do
    if line:sub(1, #prefix) == prefix then n = n + 1 end
  end
  return n
end

-- A word for the shell, quoted.
local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- A new temporary file (made 0600) holding `text`; its name.
local function secret_file(text)
  local name = M.tmpfile(text)
  os.execute("chmod 600 " .. quote(name))
  return name
end

-- For a spec's setup: an emulator started with `opts` (see M.start), and
-- the uuids of its connections, leases and apps.
function M.start_with_uuids(opts)
  local emu = M.start(opts)
  local st = emu:state()
  return emu, st.connections, st.leases, st.apps
end

-- For the setup of a spec of sync and plans: an emulator of 60 leases
-- and 2 apps, a client, the emulator's state, the connection synced (the
-- second), the other connection and the first app. What it started is
-- stopped when it fails part way.
function M.start_for_sync()
  local emu = M.start({ leases = 60, apps = 2 })
  local client, st
  local ok, err = pcall(function()
    client = emu:client()
    st = emu:state()
  end)
  if not ok then
    M.stop(emu, client)
    error(err, 0)
  end
  return emu, client, st, st.connections[2], st.connections[1], st.apps[1]
end

-- For a spec's teardown: closes `client` and stops `emu`, either of which
-- may be nil (a setup that failed part way).
function M.stop(emu, client)
  if client then client:close() end
  if emu then emu:stop() end
end

-- For a spec's before_each: the emulator reset (then given `config`, if
-- any: see :config), `client` (the test before's, or nil) closed, and a
-- new client (see :client) returned.
function Emulator:renew(client, config)
  self:reset()
  if config then self:config(config) end
  if client then client:close() end
  return self:client()
end

-- For checking a bulk report uuid by uuid: `seen` (uuid -> where the
-- report names it), filled by mark(u, where), which fails the test when
-- the report names a uuid twice; count() is how many were marked.
function M.tally()
  local seen, count = {}, 0
  local function mark(u, where)
    require("luassert").is_nil(seen[u], u .. " counted twice")
    seen[u] = where
    count = count + 1
  end
  return seen, mark, function() return count end
end

-- The values of list[from] to list[to], as a new list.
function M.slice(list, from, to)
  local out = {}
  for i = from, to do out[#out + 1] = list[i] end
  return out
end

local start_on

-- opts: port, token, connections, leases, apps, latency, max_page,
-- token_ttl, users = {"email:password", ...}, tls = {cert, key}, names =
-- {connection = {[i] = name}, app = {[k] = name}}, empty_apps;
-- secrets = "env" or "file": the token and users reach the emulator
-- through OPENTACT_EMULATOR_TOKEN / OPENTACT_EMULATOR_USER or through
-- --token-file / --user-file, never on its command line (default: --token
-- and --user). The emulator's own `args` are kept in the result.
function M.start(opts)
  opts = opts or {}
  return M.on_free_port(function(port) return start_on(opts, port) end, opts.port)
end

function start_on(opts, port)
  local token = opts.token or "emulator-token"
  local args = { "--host 127.0.0.1", "--port " .. port, "--token " .. token }
  -- the secrets' files, removed by stop(); the environment's is sourced
  -- by the shell that starts the emulator, so no command line holds them
  local files, env_file = {}, nil
  if opts.secrets then table.remove(args, 3) end -- not --token
  if opts.secrets == "env" then
    local lines = { "OPENTACT_EMULATOR_TOKEN=" .. quote(token) }
    if opts.users then lines[2] = "OPENTACT_EMULATOR_USER=" .. quote(table.concat(opts.users, "\n")) end
    env_file = secret_file("export " .. table.concat(lines, " ") .. "\n")
    files[#files + 1] = env_file
  elseif opts.secrets == "file" then
    files[1] = secret_file(token .. "\n")
    args[#args + 1] = "--token-file " .. quote(files[1])
    if opts.users then
      files[2] = secret_file(table.concat(opts.users, "\n") .. "\n")
      args[#args + 1] = "--user-file " .. quote(files[2])
    end
  end
  for _, k in ipairs({ "connections", "leases", "apps", "latency", "max_page", "token_ttl" }) do
    if opts[k] then args[#args + 1] = "--" .. k:gsub("_", "-") .. " " .. opts[k] end
  end
  if not opts.secrets then
    for _, u in ipairs(opts.users or {}) do args[#args + 1] = "--user " .. quote(u) end
  end
  if opts.tls then args[#args + 1] = "--tls " .. opts.tls[1] .. " " .. opts.tls[2] end
  -- apps given: app k holds lease (leases - k + 1), as the specs of control
  -- apps want, unless empty_apps
  if opts.apps and not opts.empty_apps then args[#args + 1] = "--app-leases" end
  -- names = {connection = {[i] = name}, app = {[k] = name}}
  for _, kind in ipairs({ "connection", "app" }) do
    for i, name in pairs(opts.names and opts.names[kind] or {}) do
      args[#args + 1] = "--" .. kind .. "-name " .. quote(i .. "=" .. name)
    end
  end
  local log = os.tmpname()
  local pid = sh(("%s%s/bin/opentact-emulator %s > %s 2>&1 & echo $!"):format(
    env_file and ". " .. quote(env_file) .. " && exec " or "", ROOT, table.concat(args, " "), log))
  pid = tonumber(pid:match("%d+"))
  local scheme = opts.tls and "https" or "http"
  local self = setmetatable({ pid = pid, port = port, token = token, log = log,
    url = scheme .. "://127.0.0.1:" .. port, files = files, args = args }, Emulator)
  self.line = started(self, log, "listening on", "emulator")
  return self
end

-- busted keeps one `finally` per test: each call replaces the one before.
-- A test with several things to undo gives each to M.finally instead,
-- with busted's own (a spec's global, not this module's):
-- support.finally(finally, fn). They all run when the test ends, the
-- last first, and the first error among them is raised after the rest.
function M.finally(finally, fn)
  local list = M.undo_list
  if not list then
    list = {}
    M.undo_list = list
    finally(function()
      M.undo_list = nil
      local first
      for i = #list, 1, -1 do
        local ok, err = pcall(list[i])
        if not ok and first == nil then first = err end
      end
      if first ~= nil then error(first, 0) end
    end)
  end
  list[#list + 1] = fn
end

return M
