-- A small app inside a test nginx for the OpenResty specs: each route runs
-- one library call and answers what came back as JSON. Loaded with dofile
-- in init_by_lua, so workers need no access to the files.
local cjson = require("cjson")
local opentact = require("opentact")

local M = {}
local config = {}
local clients = {}

function M.init(c) config = c end

-- One client per worker and per option set, made on first use.
local function client(name, opts)
  if not clients[name] then
    local o = { token = config.token, base_url = config.url, backoff = 0.01, backoff_max = 0.05 }
    for k, v in pairs(opts or {}) do o[k] = v end
    clients[name] = opentact.new(o)
  end
  return clients[name]
end

local function plain_err(err)
  if not err then return nil end
  return { kind = err.kind, status = err.status, message = err.message, attempts = err.attempts,
    retryable = err.retryable, text = tostring(err) }
end

local function reply(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local function list_result(leases, err)
  if not leases then return { err = plain_err(err) } end
  return { n = #leases, first = leases[1] and leases[1].uuid or nil,
    tn = leases[1] and leases[1].tn and tostring(leases[1].tn.tn) or nil,
    text = tostring(leases) }
end

local ROUTES = {}

function ROUTES.transport()
  reply({ transport = client("default")._opts.transport })
end

function ROUTES.list(args)
  local name = args.client or "default"
  local opts = name == "verify" and { verify = true, retries = 0 } or name == "noverify" and { verify = false } or nil
  if args.url then opts = opts or {} opts.base_url = args.url end
  if args.max_body then opts = opts or {} opts.max_body = tonumber(args.max_body) end
  if args.timeout then opts = opts or {} opts.timeout = tonumber(args.timeout) opts.retries = 0 end
  reply(list_result(client(name .. (args.url or "") .. (args.max_body or "") .. (args.timeout or ""), opts):list(args.conn)))
end

function ROUTES.list_twice(args)
  local c = client("default")
  local a = list_result(c:list(args.conn))
  local b = list_result(c:list(args.conn))
  reply({ a = a, b = b })
end

function ROUTES.curl_list(args)
  reply(list_result(client("curl", { transport = "curl" }):list(args.conn)))
end

function ROUTES.assign(args)
  local changes = {}
  if args.add then changes.add = { args.add } end
  if args.remove then changes.remove = { args.remove } end
  local c = args.url and client("url" .. args.url, { base_url = args.url, retries = 0 }) or client("default")
  local leases, err = c:assign(args.conn, changes)
  reply(list_result(leases, err))
end

-- Targets under nginx: the lists, a name resolved, a control app's
-- leases, and a lease's settings changed (a PATCH).
function ROUTES.targets(args)
  local c = client("default")
  local conns = assert(c:connections())
  local t, err = c:target(args.name)
  if not t then return reply({ err = plain_err(err) }) end
  local held = assert(c:list(t))
  local lease = assert(c:update_lease(args.lease, { autorenew = false, fax = true }))
  reply({ connections = #conns, first_name = conns[1].name, kind = t.kind, uuid = t.uuid, held = #held,
    autorenew = lease.autorenew, fax = lease.fax })
end

-- A plan of numbers onto a connection, saved: its text and `since`.
function ROUTES.plan(args)
  local numbers = {}
  for n in args.numbers:gmatch("%d+") do numbers[#numbers + 1] = tonumber(n) end
  local plan, err = client("default"):plan(args.conn, { numbers = numbers })
  if not plan then return reply({ err = plain_err(err) }) end
  reply({ text = assert(plan:encode()), since = plan.since })
end

-- A list under a deadline (the client's, or the call's with ?per_call):
-- the error, and how long the call took.
function ROUTES.deadline(args)
  local c = client("deadline", { deadline = 0.3, retries = 2, backoff_max = 8 })
  ngx.update_time()
  local t0 = ngx.now()
  local leases, err
  if args.per_call then
    leases, err = client("default"):list(args.conn, { deadline = 0.3 })
  else
    leases, err = c:list(args.conn)
  end
  ngx.update_time()
  reply({ ok = leases ~= nil, err = plain_err(err), took = ngx.now() - t0 })
end

-- A routes plan (the body's routes) made, saved, read back and applied.
function ROUTES.routes()
  ngx.req.read_body()
  local req = cjson.decode(ngx.req.get_body_data())
  local c = client("default")
  local plan, err = c:plan_routes(req.routes, { exact = req.exact })
  if not plan then return reply({ err = plain_err(err) }) end
  local report
  report, err = c:apply(assert(opentact.decode_plan(assert(plan:encode()))), { concurrency = 4 })
  if not report then return reply({ err = plain_err(err) }) end
  reply({ ok = report.ok, moves = #plan.moves, targets = #plan.targets, added = #report.applied.add,
    removed = #report.applied.remove, text = tostring(plan) })
end

-- A saved plan (the body's `text`) applied.
function ROUTES.apply()
  ngx.req.read_body()
  local plan = assert(opentact.decode_plan(cjson.decode(ngx.req.get_body_data()).text))
  local report, err = client("default"):apply(plan)
  if not report then return reply({ err = plain_err(err) }) end
  reply({ ok = report.ok, applied = #report.applied.add })
end

function ROUTES.batched()
  ngx.req.read_body()
  local req = cjson.decode(ngx.req.get_body_data())
  local report = client("default"):assign_batched(req.conn, { add = req.add },
    { batch_size = req.batch_size, concurrency = req.concurrency })
  local failed = {}
  for i, f in ipairs(report.failed) do failed[i] = { n = #f.add + #f.remove, err = plain_err(f.err) } end
  reply({ ok = report.ok, applied = #report.applied.add, failed = failed, leases = #report.leases })
end

function ROUTES.list_many(args)
  local conns = {}
  for c in args.conns:gmatch("[^,]+") do conns[#conns + 1] = c end
  local out = {}
  for i, r in ipairs(client("default"):list_many(conns, { concurrency = tonumber(args.concurrency) or 8 })) do
    out[i] = { uuid = r.uuid, n = r.leases and #r.leases or nil, err = plain_err(r.err) }
  end
  reply(out)
end

-- A client made for this request alone, logging in with email and
-- password, as an app that keeps no client between requests would do:
-- the worker's requests still share one login.
function ROUTES.login_list(args)
  local c = opentact.new({ base_url = config.url, email = config.email, password = config.password })
  local leases, err = c:list(args.conn)
  local out = list_result(leases, err)
  out.client = tostring(c)
  c:close()
  reply(out)
end

-- A client the worker's requests share, logging in: torn_login starts its
-- login from a light thread and ends the request at once (ngx.exit aborts
-- the request's light threads, the login's among them); torn_after is a
-- later request that needs the same login.
-- (as `email`: a user of its own, whose JWT the worker does not hold yet)
local function torn_client(email)
  clients.torn = clients.torn or opentact.new({ base_url = config.url, email = email,
    password = config.password, timeout = 1, backoff = 0.01, backoff_max = 0.05 })
  return clients.torn
end

function ROUTES.torn_login(args)
  local c = torn_client(args.email)
  ngx.thread.spawn(function() return c:list(args.conn) end)
  ngx.sleep(0.05) -- the login is on the wire
  reply({ started = true })
  ngx.exit(200)
end

function ROUTES.torn_after(args)
  local started = ngx.now()
  local out = list_result(torn_client(args.email):list(args.conn))
  ngx.update_time()
  out.elapsed = ngx.now() - started
  reply(out)
end

-- Calls for `seconds` with a login whose JWT is renewed meanwhile (the
-- emulator's tokens live 2 s in the spec), counting refusals on the wire,
-- as `email` (a user of its own: the worker keeps the JWTs of the others):
-- answers the counts and every error text, so the spec can look for the
-- password in them.
function ROUTES.login_renew(args)
  local refused, calls, texts = 0, 0, {}
  local c = opentact.new({ base_url = config.url, email = args.email, password = config.password,
    log = function(e) if e.status == 401 then refused = refused + 1 end end })
  local stop = ngx.now() + tonumber(args.seconds)
  while ngx.now() < stop do
    local leases, err = c:list(args.conn)
    if not leases then texts[#texts + 1] = tostring(err) end
    calls = calls + 1
    ngx.sleep(0.02)
    ngx.update_time()
  end
  c:close()
  reply({ calls = calls, refused = refused, errors = texts, client = tostring(c) })
end

-- Logins kept in a lua_shared_dict, for every worker: a client finds the
-- token of another with the same credentials there (not in this worker's
-- Lua state, which jwt_cache replaces), and one with another password
-- does not.
function ROUTES.dict_login()
  local function make(password)
    return opentact.new({ base_url = config.url, email = config.email, password = password,
      jwt_cache = ngx.shared.jwt })
  end
  local a, b, wrong = make(config.password), make(config.password), make(config.password .. "-not")
  local ta = a:token()
  local tb = b:token()
  local tw, err = wrong:token()
  reply({ same = ta ~= nil and ta == tb, wrong = tw == nil and err.kind or "got a token" })
end

-- nginx gives its workers an empty environment unless told otherwise:
-- a client with nothing to authenticate with says which directive keeps
-- the variables.
function ROUTES.no_credentials(args)
  local c = opentact.new({ base_url = config.url })
  reply(list_result(c:list(args.conn)))
end

-- Callbacks and the polling protocol are refused with the way to go instead.
function ROUTES.callback(args)
  local c = client("default")
  local ok, err = pcall(c.list, c, args.conn, function() end)
  local ok2, err2 = pcall(c.pollfd, c)
  reply({ ok = ok, err = tostring(err), pollfd_ok = ok2, pollfd_err = tostring(err2), pending = c:step(0) })
end

-- A request whose light thread raises (its target broken on purpose):
-- the outcome must still reach the caller, as an error.
function ROUTES.crash(args)
  local c = client("crash")
  c._engine.transport.target = { timeout = 1, connect_ms = 1000 } -- no host: connect raises
  reply(list_result(c:list(args.conn)))
end

-- The log phase cannot do network I/O: the call must say so, not block.
function ROUTES.log_phase(args)
  ngx.ctx.log_conn = args.conn
  reply({ scheduled = true })
end

function ROUTES.log_result()
  reply({ result = ngx.shared.results:get("log_phase") })
end

function M.handle()
  local route = ngx.var.uri:match("^/([%w_]+)$")
  local f = route and ROUTES[route]
  if not f then
    ngx.status = 404
    return reply({ err = "no route" })
  end
  f(ngx.req.get_uri_args())
end

function M.log()
  local conn = ngx.ctx.log_conn
  if conn then
    local leases, err = client("default"):list(conn)
    ngx.shared.results:set("log_phase", cjson.encode(list_result(leases, err)))
  end
end

return M
