-- The editor types (types/*.lua, LuaLS `---@meta` definitions) against the
-- code, both ways: a public function, method, option or report field the
-- code has and the types leave out fails here, and so does one the types
-- declare and the code does not have.
--
-- The types' side is read from types/*.lua (---@class, ---@field,
-- ---@param, `function X.f(...)`, `function X:m(...)`, `X.name = ...`).
-- The code's side is found by introspection: the module's table, the
-- Client metatable, options.CHECKS, the method options each function
-- accepts (asked of the function itself), the keys of the tables the
-- library returns against the emulator, and each function's parameter
-- names (on Lua 5.2+ and LuaJIT: 5.1 cannot name a function's parameters).
-- Names that start with "_" are internal, but for _VERSION.
local support = require("emulator")
local opentact = require("opentact")
local options = require("opentact.options")

local unpack = unpack or table.unpack -- luacheck: ignore 143
local ROOT = support.ROOT
local UUID = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"
local UUID2 = "0a1b2c3d-0000-4000-8000-000000000001"

local read = support.slurp

local function public(name)
  return type(name) == "string" and (name == "_VERSION" or not name:find("^_"))
end

local set = support.set

local function sorted(s)
  local out = {}
  for k in pairs(s) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- What only one side has, each side sorted.
local function diff(code, declared)
  local only_code, only_types = {}, {}
  for k in pairs(code) do if not declared[k] then only_code[k] = true end end
  for k in pairs(declared) do if not code[k] then only_types[k] = true end end
  return sorted(only_code), sorted(only_types)
end

-- Both sides name the same things; the failure lists what differs.
local function same_names(what, code, declared)
  local only_code, only_types = diff(code, declared)
  assert.same({ ["in the code, not in types/"] = {}, ["in types/, not in the code"] = {} },
    { ["in the code, not in types/"] = only_code, ["in types/, not in the code"] = only_types }, what)
end

-- Every name the types declare is in the code (for tables the server
-- fills: the code keeps every field the server sends).
local function declared_exist(what, code, declared)
  local _, only_types = diff(code, declared)
  assert.same({}, only_types, what .. ": in types/, not in the code")
end

---------------------------------------------------------------- the types

-- Splits a LuaLS type off the front of `s`: brackets nest, and a space
-- ends the type only outside them and not after ':', ',' or '|'.
local OPEN, CLOSE = set({ "(", "{", "[", "<" }), set({ ")", "}", "]", ">" })
local function split_type(s)
  local depth = 0
  for i = 1, #s do
    local c = s:sub(i, i)
    if OPEN[c] then
      depth = depth + 1
    elseif CLOSE[c] then
      depth = depth - 1
    elseif c:find("%s") and depth == 0 then
      local last = s:sub(1, i - 1):match("(%S)%s*$")
      if last ~= ":" and last ~= "," and last ~= "|" and not s:find("^%s*|", i) then
        return s:sub(1, i - 1), s:sub(i + 1)
      end
    end
  end
  return s, ""
end

-- Reads LuaLS definitions into `classes`: name -> {members = {name ->
-- {kind = "field" | "function" | "method", type, params = {{name, type,
-- optional}}}}}. A class's members are its ---@field lines and what is
-- defined on the local its ---@class block annotates.
local function parse(text, file, classes)
  local bound = {} -- local name -> class
  local block = { params = {} } -- the doc comment above the current line
  local n = 0
  local function fail(msg) error(("%s:%d: %s"):format(file, n, msg), 0) end
  local function add(class, name, member)
    local c = classes[class] or fail("'" .. tostring(class) .. "' is not a class declared before")
    if c.members[name] then fail(class .. "." .. name .. " is declared twice") end
    c.members[name] = member
  end
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local tag, rest = line:match("^%-%-%-%s*@(%w+)%s*(.-)%s*$")
    if tag == "class" then
      local name = rest:match("^([%w_%.]+)") or fail("a class without a name")
      if classes[name] then fail("class " .. name .. " is declared twice") end
      classes[name] = { members = {}, file = file, line = n }
      block.class = name
    elseif tag == "field" then
      local name, opt, after = rest:match("^([%w_]+)(%??)%s+(.*)$")
      if name then -- ([string] any: an index signature, not a name)
        if not block.class then fail("---@field " .. name .. " outside a ---@class block") end
        add(block.class, name, { kind = "field", type = split_type(after), optional = opt == "?" })
      end
    elseif tag == "param" then
      local name, opt, after = rest:match("^([%w_]+)(%??)%s+(.*)$")
      if not name then fail("---@param without a name and a type") end
      block.params[#block.params + 1] = { name = name, type = split_type(after), optional = opt == "?" }
    elseif tag == "type" then
      block.type = split_type(rest)
    elseif not line:find("^%-%-%-") then
      -- the code the doc comment is about
      local var = line:match("^local%s+([%w_]+)%s*=%s*{")
      local obj, sep, fname, args = line:match("^function%s+([%w_]+)([%.:])([%w_]+)%s*%(([^)]*)%)")
      local owner, field = line:match("^([%w_]+)%.([%w_]+)%s*=")
      if var and block.class then
        bound[var] = block.class
      elseif obj then
        local names = {}
        for a in args:gmatch("[%w_]+") do names[#names + 1] = a end
        for i, p in ipairs(block.params) do
          if p.name ~= names[i] then
            fail(("%s's ---@param %d is '%s', its argument %d is '%s'"):format(fname, i, p.name, i, tostring(names[i])))
          end
        end
        if #names ~= #block.params then fail(fname .. " has an argument without a ---@param") end
        add(bound[obj], fname, { kind = sep == ":" and "method" or "function", params = block.params })
      elseif owner then
        add(bound[owner], field, { kind = "field", type = block.type })
      end
      block = { params = {} }
    end
  end
end

local TYPES = ROOT .. "/types"
local classes = {}
local files = support.sh("ls " .. TYPES .. "/*.lua 2>/dev/null")
for file in files:gmatch("[^\n]+") do parse(assert(read(file)), file:sub(#ROOT + 2), classes) end

local function class(name)
  return assert(classes[name], "types/ declares no class " .. name)
end

local function members(name, kind)
  local out = {}
  for k, m in pairs(class(name).members) do
    if not kind or m.kind == kind or (kind == "function" and m.kind == "field" and tostring(m.type):find("^fun%(")) then
      out[k] = true
    end
  end
  return out
end

-- The public names of a table the library returned: its keys and the
-- functions its metatable's __index offers.
local function names_of(t, into)
  into = into or {}
  for k in pairs(t) do if public(k) then into[k] = true end end
  local mt = getmetatable(t)
  local index = type(mt) == "table" and rawget(mt, "__index")
  if type(index) == "table" and index ~= t then
    for k, v in pairs(index) do
      if public(k) and type(v) == "function" then into[k] = true end
    end
  end
  return into
end

local function upvalue(f, name)
  local i = 1
  while true do
    local n, v = debug.getupvalue(f, i)
    if n == nil then return nil end
    if n == name then return v end
    i = i + 1
  end
end

-- A function's parameter names (without self), or nil on Lua 5.1. A
-- method or module-level function lua/opentact.lua makes from a method's
-- work (its upvalue `body`, which takes the client first) has the work's.
local function code_params(f, method)
  if not pcall(debug.getlocal, f, 1) then return nil end
  local body = upvalue(f, "body")
  if type(body) == "function" then f, method = body, true end
  local out, i = {}, 1
  while true do
    local name = debug.getlocal(f, i)
    if not name then break end
    out[#out + 1] = name
    i = i + 1
  end
  if method then table.remove(out, 1) end
  return out
end

-- The module's functions and Client's methods, each as
-- {name, f, method, declared member}.
local function callables()
  local out = {}
  for name, m in pairs(class("opentact").members) do
    if m.kind == "function" and type(opentact[name]) == "function" then
      out[#out + 1] = { label = "opentact." .. name, f = opentact[name], member = m }
    end
  end
  for name, m in pairs(class("opentact.Client").members) do
    if m.kind == "method" and type(opentact.Client[name]) == "function" then
      out[#out + 1] = { label = "client:" .. name, f = opentact.Client[name], method = true, member = m }
    end
  end
  table.sort(out, function(a, b) return a.label < b.label end)
  return out
end

---------------------------------------------------------------- no network

describe("types/ #c", function()
  local client, default

  setup(function()
    -- nothing is sent: every call below raises on its arguments first
    client = opentact.new({ token = "types-spec", base_url = "http://127.0.0.1:9" })
    -- the module's functions run on the default client: not one the
    -- environment makes
    default = opentact.configure({ token = "types-spec", base_url = "http://127.0.0.1:9" })
  end)
  teardown(function()
    if client then client:close() end
    if default then default:close() end
  end)

  it("declare each class once, each member once, each argument with its ---@param", function()
    -- parse() has raised at load time on any of these; here: it found the file
    assert.truthy(next(classes), "no class in " .. TYPES)
    assert.truthy(classes["opentact"], "types/ declares no class opentact (the module)")
  end)

  it("name every function and field of the module", function()
    local funcs, fields = {}, {}
    for k, v in pairs(opentact) do
      if public(k) then
        if type(v) == "function" then funcs[k] = true else fields[k] = true end
      end
    end
    same_names("opentact's functions", funcs, members("opentact", "function"))
    same_names("opentact's fields", fields, members("opentact", "field"))
  end)

  it("name every method of Client", function()
    local methods = {}
    for k, v in pairs(opentact.Client) do
      if public(k) and type(v) == "function" then methods[k] = true end
    end
    same_names("opentact.Client's methods", methods, members("opentact.Client"))
  end)

  it("name every argument of every function and method, in order", function()
    local checked = 0
    for _, c in ipairs(callables()) do
      local got = code_params(c.f, c.method)
      if got then
        local declared = {}
        for i, p in ipairs(c.member.params) do declared[i] = p.name end
        assert.same(got, declared, c.label .. "'s arguments (expected: the code's; passed in: types/')")
        checked = checked + 1
      end
    end
    if checked == 0 then pending("Lua 5.1 cannot name a function's arguments; the other Luas check them") end
  end)

  it("name every option of opentact.new, and no other", function()
    local code = {}
    for k in pairs(options.CHECKS) do code[k] = true end
    same_names("opentact.Options", code, members("opentact.Options"))
  end)

  -- The option names a function accepts, asked of the function: an option
  -- it takes, given a table, is "bad option 'x'"; one it does not take is
  -- "unknown option 'x'". No option takes a table, and nothing is sent.
  local PROBE = {}
  local SAMPLES = {
    ["string"] = function() return UUID end,
    ["string|integer"] = function() return UUID end,
    ["string[]"] = function() return {} end,
    ["opentact.Changes"] = function() return { add = { UUID2 } } end,
    ["opentact.Desired"] = function() return { numbers = {} } end,
    ["opentact.Plan"] = function() return {} end,
    ["opentact.Plan|opentact.RoutesPlan"] = function() return {} end,
    ["opentact.Route[]"] = function() return {} end,
    ["opentact.TargetArg"] = function() return UUID end,
    ["opentact.TargetArg[]"] = function() return {} end,
  }

  local function probe(c, opts_at, name)
    local args, n = {}, 0
    if c.method then
      n = 1
      args[1] = client
    end
    for i, p in ipairs(c.member.params) do
      n = n + 1
      if i == opts_at then
        args[n] = { [name] = PROBE }
        break
      elseif not p.optional then
        local sample = SAMPLES[p.type] or error(c.label .. ": the spec has no sample " .. p.type .. " to pass")
        args[n] = sample()
      end
    end
    local ok, err = pcall(c.f, unpack(args, 1, n))
    assert(not ok, c.label .. " accepted a table for option '" .. name .. "'")
    err = tostring(err)
    if err:find("unknown option '" .. name .. "'", 1, true) then return false end
    if err:find("bad option '" .. name .. "'", 1, true) then return true end
    error(c.label .. ", option '" .. name .. "': " .. err)
  end

  it("name every option of every method, and no other", function()
    local checks = options.CALL_CHECKS
    assert.is_table(checks, "opentact.options has no CALL_CHECKS table: say where the method options are")
    local found = 0
    for _, c in ipairs(callables()) do
      for i, p in ipairs(c.member.params) do
        local cls = p.name == "opts" and tostring(p.type):match("(opentact%.[%w_]*Options)")
        if cls and cls ~= "opentact.Options" then
          local declared = members(cls)
          local candidates = { zz_no_such_option = true }
          for k in pairs(checks) do candidates[k] = true end
          for k in pairs(declared) do candidates[k] = true end
          local code = {}
          for name in pairs(candidates) do
            if probe(c, i, name) then code[name] = true end
          end
          same_names(c.label .. "'s options (" .. cls .. ")", code, declared)
          found = found + 1
        end
      end
    end
    assert.is_true(found >= 10, "only " .. found .. " functions with method options found in types/")
  end)

  -- Input tables whose keys the code checks: a key it knows, given a
  -- function, is a wrong type; one it does not know is named as unknown.
  local function known(call, name, unknown_message)
    local ok, err = pcall(call, { [name] = function() end })
    assert(not ok, "a function was accepted for '" .. name .. "'")
    return not tostring(err):find(unknown_message:format(name), 1, true)
  end

  local INPUTS = {
    ["opentact.Filter"] = { function(t) return client:search(t) end, "unknown filter field '%s'" },
    ["opentact.Desired"] = { function(t) return client:sync(UUID, t) end, "unknown key '%s'" },
    ["opentact.Changes"] = { function(t) return client:assign(UUID, t) end, "unexpected key '%s'" },
    ["opentact.LeaseSettings"] = { function(t) return client:update_lease(UUID, t) end, "unknown field '%s'" },
  }

  it("name only keys the code takes in filters, desired states and change sets", function()
    for cls, how in pairs(INPUTS) do
      assert.is_false(known(how[1], "zz_not_a_key", how[2]), cls .. ": the probe cannot tell")
      local code = {}
      for name in pairs(members(cls)) do
        if known(how[1], name, how[2]) then code[name] = true end
      end
      declared_exist(cls, code, members(cls))
    end
  end)

  it("name every search filter field the core knows", function()
    local c = read(ROOT .. "/src/search.c")
    if not c then return pending("no src/search.c here") end
    local block = assert(c:match("FIELDS%[%]%s*=%s*(%b{})"), "src/search.c has no FIELDS[] table")
    local code = {}
    for name in block:gmatch('{%s*"([%w_]+)"%s*,') do code[name] = true end
    assert.truthy(next(code), "no field found in src/search.c's FIELDS[]")
    same_names("opentact.Filter", code, members("opentact.Filter"))
  end)

  it("build the API reference (make docs) without a warning, with every function and method", function()
    if support.sh("command -v ldoc") == "" then return pending("ldoc is not installed (make deps)") end
    local dir = support.sh("mktemp -d"):gsub("%s+$", "")
    local out, status = support.run(("cd %s && ldoc --fatalwarnings --quiet -c config.ld -d %s ."):format(ROOT, dir))
    local html = read(dir .. "/index.html") or ""
    support.sh("rm -rf " .. dir)
    assert.equals(0, status, out)
    assert.is_nil(out:match("[^\n]*warning[^\n]*") or out:match("[^\n]*:%d+: [^\n]*"), out)
    local missing = {}
    for _, c in ipairs(callables()) do
      local anchor = (c.method and "Client:" or "") .. c.label:match("[%w_]+$")
      if not html:find('<a name = "' .. anchor .. '">', 1, true) then missing[#missing + 1] = anchor end
    end
    assert.same({}, missing, "functions and methods the reference leaves out")
  end)

  it("are installed with the rock", function()
    local rockspec = support.sh("ls " .. ROOT .. "/*.rockspec 2>/dev/null"):match("[^\n]+")
    local text = rockspec and read(rockspec) or ""
    if not text:find('copy_directories%s*=%s*{[^}]*"types"') then
      return pending("the rockspec does not install types/ yet (copy_directories)")
    end
    local tree
    for template in package.path:gmatch("[^;]+") do
      local path = template:gsub("%?", "opentact")
      if read(path) then
        tree = path:match("^(.*)/share/lua/[^/]+/opentact%.lua$")
        break
      end
    end
    assert.truthy(tree, "the installed rock is not on package.path")
    local installed = support.sh("ls " .. tree .. "/lib/luarocks/rocks-*/opentact/*/types/opentact.lua 2>/dev/null")
      :match("[^\n]+")
    assert.truthy(installed, "the rock in " .. tree .. " has no types/opentact.lua")
    assert.equals(read(TYPES .. "/opentact.lua"), read(installed), installed .. " is not types/opentact.lua")
  end)
end)

---------------------------------------------------------------- what comes back

describe("types/ against what the library returns #wire #c", function()
  local emu, client, st, conn
  local events = {}
  local seen = {} -- class -> set of the names seen in the code's tables

  local function saw(cls, t)
    seen[cls] = names_of(t, seen[cls])
  end

  setup(function()
    emu = support.start({ leases = 20, apps = 1, names = { connection = { [3] = "twin", [4] = "twin" } } })
    st = emu:state()
    conn = st.connections[2]
    client = emu:client({ log = function(event) events[#events + 1] = event end })
    local function interrupt() error("interrupted!") end

    -- assign_batched: one run stopped after its first batch, one that
    -- sends nothing
    local r = client:assign_batched(conn, { add = { st.leases[5], st.leases[6] }, remove = { st.leases[1] } },
      { batch_size = 1, concurrency = 1, on_progress = interrupt })
    assert.truthy(r.interrupted, "the run was not interrupted")
    saw("opentact.Report", r)
    local bad = client:assign_batched(conn, { add = { "not a uuid" } })
    saw("opentact.Report", bad)
    for _, report in ipairs({ r, bad }) do
      saw("opentact.Applied", report.applied)
      for _, f in ipairs(report.failed) do
        saw("opentact.Failure", f)
        saw("opentact.Error", f.err)
      end
    end
    -- a run stopped by your code raising false: the error holding the value
    local stopped = client:assign_batched(conn, { add = { st.leases[9] } },
      { on_progress = function() error(false) end })
    saw("opentact.Error", stopped.interrupted)

    -- sync: a lease to take from the control app, two to attach, one
    -- missing, stopped after the first batch
    emu:reset()
    local s = client:sync(conn, { leases = { st.leases[20], st.leases[7], st.leases[8],
      "00000000-0000-4000-8000-000000000000" } }, { move = true, batch_size = 1, concurrency = 1, on_progress = interrupt })
    assert.truthy(s, "sync returned nothing")
    assert.truthy(s.released and s.interrupted and s.unverified, "sync did not release, or was not interrupted")
    saw("opentact.SyncReport", s)
    -- plans: one from plan, one from a dry run, one read back; a stale
    -- one, its moved leases and their holders
    emu:reset()
    local plan = assert(client:plan(conn, { numbers = { 12125550009, 12125550020, 12125550001 } },
      { move = true, exact = true, note = "--numbers-file want.txt" }))
    for _, p in ipairs({ plan, (client:sync(conn, { numbers = { 12125550009 } }, { dry_run = true })),
      assert(opentact.decode_plan(assert(plan:encode()))) }) do
      saw("opentact.Plan", p)
      saw("opentact.PlanOptionsUsed", p.options)
      for _, h in pairs(p.holders) do if h then saw("opentact.PlanHolder", h) end end
    end
    emu:holders({ [st.leases[9]] = { sip_connection = st.connections[1] } })
    local _, stale = client:apply(plan, { reread = true })
    assert.truthy(stale and stale.moved, "apply found nothing stale")
    saw("opentact.Error", stale)
    for _, m in ipairs(stale.moved) do saw("opentact.Moved", m) end
    saw("opentact.Applied", s.applied)
    for _, rel in ipairs(s.released) do saw("opentact.Released", rel) end
    for _, f in ipairs(s.failed) do
      saw("opentact.Failure", f)
      saw("opentact.Error", f.err)
    end
    saw("opentact.Error", s.unverified)

    -- errors: a 503 with a Retry-After too long to wait, an invalid number
    emu:reset()
    emu:faults({ { status = 503, retry_after = "100" } })
    local leases, err = client:list(conn)
    assert.is_nil(leases)
    saw("opentact.Error", err)
    local _, invalid = client:sync(conn, { numbers = { "12", "not a number" } })
    assert.truthy(invalid and invalid.index, "sync's invalid number has no index")
    saw("opentact.Error", invalid)
    saw("opentact.Error", select(2, opentact.check_options({ timeout = "x" })))
    for _, e in ipairs(events) do saw("opentact.LogEvent", e) end

    -- a control app as the target, resolved by name: a plan, and a sync
    -- that takes a lease off a connection (released there first)
    emu:reset()
    local app = assert(client:target("control-app-1"))
    saw("opentact.Target", app)
    local app_plan = assert(client:plan(app, { numbers = { 12125550001, 12125550004 } }, { move = true }))
    saw("opentact.Plan", app_plan)
    local app_report = assert(client:apply(app_plan))
    saw("opentact.SyncReport", app_report)
    -- autorenew asked: a plan that sets it, one lease's PATCH refused
    emu:reset()
    local renew_plan = assert(client:plan(conn, { numbers = { 12125550004, 12125550005 } }, { autorenew = false }))
    saw("opentact.Plan", renew_plan)
    saw("opentact.PlanOptionsUsed", renew_plan.options)
    emu:faults({ { on = "^PATCH ", status = 400, message = "locked" } })
    local renewed = assert(client:apply(renew_plan))
    saw("opentact.SyncReport", renewed)
    saw("opentact.Renewed", renewed.renewed)
    for _, f in ipairs(renewed.renewed.failed) do saw("opentact.RenewFailure", f) end
    for _, rel in ipairs(app_report.released) do saw("opentact.Released", rel) end

    -- routes: a plan with a move between two named targets, applied; an
    -- ambiguous target; routes with problems
    emu:reset()
    local routes_plan = assert(client:plan_routes({ { number = 12125550001, target = "connection:" .. conn },
      { number = 12125550002, target = { connection = st.connections[1] } } }, { note = "routes.csv" }))
    assert.equals(1, #routes_plan.moves)
    saw("opentact.RoutesPlan", routes_plan)
    for _, m in ipairs(routes_plan.moves) do saw("opentact.Move", m) end
    for _, p in ipairs(routes_plan.targets) do saw("opentact.Plan", p) end
    local routes_report = assert(client:apply(assert(opentact.decode_plan(assert(routes_plan:encode()))),
      { batch_size = 1, concurrency = 1, on_progress = interrupt }))
    assert.truthy(routes_report.interrupted and routes_report.unverified, "the routes plan's apply was not stopped")
    saw("opentact.RoutesReport", routes_report)
    for _, t in ipairs(routes_report.targets) do saw("opentact.SyncReport", t) end
    local _, problems = client:plan_routes({ { number = "x", target = "nobody" } })
    assert.truthy(problems and problems.problems, "plan_routes named no problems")
    saw("opentact.Error", problems)
    local _, ambiguous = client:target("twin")
    assert.truthy(ambiguous and ambiguous.candidates, "no ambiguous name")
    saw("opentact.Error", ambiguous)

    -- list_many: one that works, one that fails
    for _, res in ipairs(client:list_many({ st.connections[1], "not a uuid" })) do saw("opentact.ListResult", res) end

    -- what the server fills: a page, its leases, their numbers and holders
    local page = assert(client:search(nil, { take = 100 }))
    saw("opentact.Page", page)
    for _, lease in ipairs(page.data) do
      saw("opentact.Lease", lease)
      saw("opentact.Tn", lease.tn)
      if lease.sip_connection then saw("opentact.Holder", lease.sip_connection) end
      if lease.sip_control_app then saw("opentact.Holder", lease.sip_control_app) end
      for _, field in ipairs({ "sip_connection", "sip_control_app" }) do
        if lease[field] then saw("opentact.LeaseHolder", opentact.holder(lease, field)) end
      end
    end
  end)
  teardown(function()
    if client then client:close() end
    if emu then emu:stop() end
  end)

  for _, cls in ipairs({ "opentact.Report", "opentact.SyncReport", "opentact.Plan", "opentact.PlanOptionsUsed",
    "opentact.PlanHolder", "opentact.Moved", "opentact.Applied", "opentact.Failure", "opentact.Released",
    "opentact.Error", "opentact.LogEvent", "opentact.ListResult", "opentact.LeaseHolder", "opentact.Target",
    "opentact.Renewed", "opentact.RenewFailure", "opentact.RoutesPlan", "opentact.RoutesReport", "opentact.Move" }) do
    it("name every field of " .. cls .. ", and no other", function()
      same_names(cls, assert(seen[cls], "no " .. cls .. " came back"), members(cls))
    end)
  end

  for _, cls in ipairs({ "opentact.Page", "opentact.Lease", "opentact.Tn", "opentact.Holder" }) do
    it("name only fields the server sends in " .. cls, function()
      declared_exist(cls, assert(seen[cls], "no " .. cls .. " came back"), members(cls))
    end)
  end

  it("compare every class they declare with the code", function()
    local checked = set({ "opentact", "opentact.Client", "opentact.Options", "opentact.Filter", "opentact.Desired",
      "opentact.Changes", "opentact.LeaseSettings", "opentact.Route" })
    for cls in pairs(seen) do checked[cls] = true end
    for _, c in ipairs(callables()) do
      for _, p in ipairs(c.member.params) do
        local cls = p.name == "opts" and tostring(p.type):match("(opentact%.[%w_]*Options)")
        if cls then checked[cls] = true end
      end
    end
    local unchecked = {}
    for name in pairs(classes) do if not checked[name] then unchecked[#unchecked + 1] = name end end
    table.sort(unchecked)
    assert.same({}, unchecked, "classes in types/ this spec does not compare with the code")
  end)
end)
