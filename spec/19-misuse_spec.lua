-- Misuse against everything public, table-driven: every method of the
-- Client and every module-level function, enumerated from the module
-- itself (a new one without a row here fails), each argument given each
-- wrong Lua type, raises "bad argument #N to 'name' (X expected, got Y)"
-- at the caller's line, called as a method and at module level; a value
-- of the right type that is wrong is `nil, err` (`invalid`) with nothing
-- sent. Also: the one name for "leases per page", the metatables results
-- print by (every one exported and documented), and where the per-call
-- option schema lives.
local support = require("emulator")
local opentact = require("opentact")
local options = require("opentact.options")

local CONN = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"
local SPEC = "19%-misuse_spec%.lua"

local function public(name)
  return type(name) == "string" and not name:find("^_")
end

local function noop() end

-- Each method's arguments: `want` is what the message says is expected,
-- `takes` the Lua types it accepts ("nil" for an optional one), `ok` a
-- value that is fine (put before the argument under test).
local SIGS = {
  -- (a table before the callback is the call's options: {deadline = s})
  list = { { want = "string or target", takes = { "string" }, ok = CONN },
    { want = "function", takes = { "function", "table", "nil" } } },
  assign = { { want = "string or target", takes = { "string" }, ok = CONN },
    { want = "table", takes = { "table" }, ok = { add = { CONN } } },
    { want = "function", takes = { "function", "table", "nil" } } },
  lease = { { want = "string or number", takes = { "string", "number" }, ok = "+1 212 555 0001" },
    { want = "function", takes = { "function", "table", "nil" } } },
  lookup = { { want = "table", takes = { "table" }, ok = {} },
    { want = "table", takes = { "table", "nil" } } },
  assign_batched = { { want = "string or target", takes = { "string" }, ok = CONN },
    { want = "table", takes = { "table" }, ok = { add = { CONN } } },
    { want = "table", takes = { "table", "nil" } } },
  list_many = { { want = "table", takes = { "table" }, ok = {} },
    { want = "table", takes = { "table", "nil" } } },
  -- a function in place of search's options is its callback
  search = { { want = "table", takes = { "table", "nil" }, ok = {} },
    { want = "table", takes = { "table", "function", "nil" } },
    { want = "function", takes = { "function", "nil" } } },
  search_all = { { want = "table", takes = { "table", "nil" }, ok = {} },
    { want = "table", takes = { "table", "nil" } } },
  sync = { { want = "string or target", takes = { "string" }, ok = CONN },
    { want = "table", takes = { "table" }, ok = { numbers = {} } },
    { want = "table", takes = { "table", "nil" } } },
  plan = { { want = "string or target", takes = { "string" }, ok = CONN },
    { want = "table", takes = { "table" }, ok = { numbers = {} } },
    { want = "table", takes = { "table", "nil" } } },
  apply = { { want = "table", takes = { "table" }, ok = {} },
    { want = "table", takes = { "table", "nil" } } },
  plan_routes = { { want = "table", takes = { "table" }, ok = {} },
    { want = "table", takes = { "table", "nil" } } },
  target = { { want = "string or target", takes = { "string" } } },
  update_lease = { { want = "string, number or lease", takes = { "string", "number" }, ok = CONN },
    { want = "table", takes = { "table" } } },
  connections = {}, apps = {},
  decode_plan = { { want = "string", takes = { "string" } } },
  step = { { want = "number >= 0", takes = { "number", "nil" } } },
  token = {}, base_url = {}, pollfd = {}, events = {}, timeout = {}, close = {},
  -- module level only
  holder = { { want = "table", takes = { "table" }, ok = {} },
    { want = '"sip_connection" or "sip_control_app"', takes = { "nil" } } },
  new = { { want = "table", takes = { "table", "nil" } } },
  configure = { { want = "table", takes = { "table", "nil" } } },
}

-- Module-level functions that are not the default client's methods.
local MODULE_ONLY = { new = true, configure = true, number = true, holder = true, is_uuid = true, is_national = true,
  check_options = true, decode_plan = true }

-- Questions about any value: they answer (false, or nil and `invalid`)
-- and never raise, whatever they are given.
local ANSWERS_ANYTHING = { number = 1, is_uuid = 1, is_national = 2, check_options = 1 }

-- A value of each Lua type a caller may pass by mistake.
local VALUES = { ["nil"] = nil, number = 42, string = "x", boolean = true, table = {}, ["function"] = noop }
local TYPES = { "nil", "number", "string", "boolean", "table", "function" }

local function wrong_types(arg)
  local out = {}
  for _, t in ipairs(TYPES) do
    local fine = false
    for _, k in ipairs(arg.takes) do if k == t then fine = true end end
    if not fine then out[#out + 1] = t end
  end
  return out
end

-- Calls f and returns the error and the line the call was on.
local function raised(f, ...)
  local line
  local args, n = { ... }, select("#", ...)
  local ok, msg = pcall(function() line = debug.getinfo(1, "l").currentline; f((table.unpack or unpack)(args, 1, n)) end)
  return not ok and tostring(msg) or nil, line
end

-- Every request the client makes is logged: nothing sent means no event.
local sent = 0
local function log() sent = sent + 1 end
local CLIENT = { token = "t", base_url = "http://127.0.0.1:1", retries = 0, log = log }

describe("misuse #c", function()
  local client
  setup(function()
    client = opentact.new(CLIENT)
    opentact.configure(CLIENT)
  end)
  teardown(function()
    client:close()
    opentact.configure(CLIENT):close()
  end)

  it("has a row for every public method and module-level function", function()
    for k, v in pairs(opentact.Client) do
      if public(k) and type(v) == "function" then assert.is_table(SIGS[k], "no row for the method " .. k) end
    end
    for k, v in pairs(opentact) do
      if public(k) and type(v) == "function" and not MODULE_ONLY[k] then
        assert.is_table(SIGS[k], "no row for the module-level function " .. k)
        assert.is_function(opentact.Client[k], "opentact." .. k .. " is no method of the Client")
      end
    end
  end)

  it("answers any value, never raising, where the function is a question (number, is_uuid, is_national, check_options)",
    function()
      for name, n in pairs(ANSWERS_ANYTHING) do
        for _, t in ipairs(TYPES) do
          local args = {}
          for i = 1, n do args[i] = VALUES[t] end
          local ok, why = pcall(opentact[name], (table.unpack or unpack)(args, 1, n))
          assert(ok, ("opentact.%s raised for a %s: %s"):format(name, t, tostring(why)))
        end
      end
    end)

  it("exists at module level for every method that takes arguments or asks the server", function()
    for _, name in ipairs({ "list", "assign", "lease", "search", "search_all", "sync", "plan", "apply",
      "assign_batched", "list_many", "token" }) do
      assert.is_function(opentact[name], name)
    end
  end)

  -- The calls of each row: as a method (self first) and, when it exists,
  -- at module level. `raise` calls it straight from raised() (a wrapper
  -- that tail-called the method would hide the caller's line on Lua 5.1).
  local function calls(name)
    local out = {}
    if opentact.Client[name] then
      out[#out + 1] = { "client:" .. name, function(...) return client[name](client, ...) end, direct = true,
        raise = function(...) return raised(client[name], client, ...) end }
    end
    if opentact[name] then
      out[#out + 1] = { "opentact." .. name, opentact[name], raise = function(...) return raised(opentact[name], ...) end }
    end
    return out
  end

  it("raises for each wrong type of each argument, at the caller's line, naming the function", function()
    local checked = 0
    for name, sig in pairs(SIGS) do
      for pos, arg in ipairs(sig) do
        for _, t in ipairs(wrong_types(arg)) do
          for _, call in ipairs(calls(name)) do
            local label, f = call[1], call[2]
            local args = {}
            for i = 1, pos - 1 do args[i] = sig[i].ok end
            args[pos] = VALUES[t]
            local before = sent
            -- called straight from here, so that the line is this spec's
            local msg, line
            if call.direct then
              local m = client[name]
              local ok, e = pcall(function()
                line = debug.getinfo(1, "l").currentline; m(client, (table.unpack or unpack)(args, 1, pos))
              end)
              msg = not ok and tostring(e) or nil
            else
              msg, line = raised(f, (table.unpack or unpack)(args, 1, pos))
            end
            local want = ("bad argument #%d to '%s' (%s expected, got %s)"):format(pos, name, arg.want, t)
            assert(msg, label .. " took a " .. t .. " as argument #" .. pos)
            assert(msg:find(want, 1, true), label .. ": " .. msg .. "\nexpected: " .. want)
            assert(msg:find("^[^\n]*" .. SPEC .. ":" .. line .. ": "), label .. " does not point at the caller: " .. msg)
            assert.equals(before, sent, label .. " sent a request")
            checked = checked + 1
          end
        end
      end
    end
    assert.is_true(checked > 60, checked .. " cases")
  end)

  it("raises for a wrong self at the caller's line, naming the method", function()
    for name, v in pairs(opentact.Client) do
      if public(name) and type(v) == "function" then
        local msg, line = raised(v, 42)
        assert(msg, name .. " took 42 as its self")
        assert(msg:find("bad self to '" .. name .. "' (opentact.Client expected, got number)", 1, true), msg)
        assert(msg:find("^[^\n]*" .. SPEC .. ":" .. line .. ": "), msg)
      end
    end
  end)

  it("raises for a wrong type inside a list, at the caller's line", function()
    local cases = {
      { "assign", { CONN, { add = { 1 } } }, "bad argument #2 to 'assign' (field 'add'" },
      { "assign_batched", { CONN, { remove = { {} } } }, "bad argument #2 to 'assign_batched' (field 'remove'" },
      { "list_many", { { CONN, 7 } }, "bad argument #1 to 'list_many' (string or target expected at index 2, got number)" },
      { "list_many", { { CONN, { app = CONN, connection = CONN } } },
        "bad argument #1 to 'list_many' (string or target expected at index 2, got table)" },
      { "list", { { kind = "trunk", uuid = CONN } }, "bad argument #1 to 'list' (string or target expected, got table)" },
      { "assign", { { app = 5 }, { add = { CONN } } }, "bad argument #1 to 'assign' (string or target expected, got table)" },
      { "update_lease", { CONN, { sip_connection = CONN } },
        "bad argument #2 to 'update_lease' ('sip_connection' is not a setting" },
      { "update_lease", { CONN, { autorenew = "yes" } }, "bad argument #2 to 'update_lease' ('autorenew' must be a boolean" },
      { "update_lease", { CONN, { colour = true } }, "bad argument #2 to 'update_lease' (unknown field 'colour'" },
      { "update_lease", { CONN, {} }, "bad argument #2 to 'update_lease' (no field to change)" },
      { "update_lease", { CONN, { messaging_profile = "mp-1" } },
        "bad argument #2 to 'update_lease' ('messaging_profile' must be a messaging profile's uuid" },
      { "lookup", { { "+1 212 555 0001", {} } },
        "bad argument #1 to 'lookup' (string or number expected at index 2, got table)" },
      { "sync", { CONN, { numbers = { true } } }, "bad argument #2 to 'sync' (numbers[1]: string or number expected, got boolean)" },
      { "sync", { CONN, { leases = { 5 } } }, "bad argument #2 to 'sync' (leases[1]: string or table expected, got number)" },
      { "search", { { tn = {} } }, "bad argument #1 to 'search' (field 'tn'" },
      { "search_all", { { sip_connections_skip = "x" } }, "bad argument #1 to 'search_all' (field 'sip_connections_skip'" },
    }
    for _, c in ipairs(cases) do
      for _, call in ipairs(calls(c[1])) do
        local before = sent
        local msg, line = call.raise((table.unpack or unpack)(c[2]))
        assert(msg, call[1] .. " took it")
        assert(msg:find(c[3], 1, true), call[1] .. ": " .. msg)
        assert(msg:find("^[^\n]*" .. SPEC .. ":" .. line .. ": "), msg)
        assert.equals(before, sent)
      end
    end
  end)

  it("raises a bad option of every call at the caller's line", function()
    local cases = {
      { "assign_batched", { CONN, { add = { CONN } }, { batch_size = 0 } }, "bad option 'batch_size' to 'assign_batched'" },
      { "list_many", { {}, { concurrency = 0 } }, "bad option 'concurrency' to 'list_many'" },
      { "lookup", { {}, { concurrency = "8" } }, "bad option 'concurrency' to 'lookup'" },
      { "search", { nil, { skip = -1 } }, "bad option 'skip' to 'search'" },
      { "search_all", { nil, { page_size = 0 } }, "bad option 'page_size' to 'search_all'" },
      { "sync", { CONN, { numbers = {} }, { exact = 1 } }, "bad option 'exact' to 'sync'" },
      { "sync", { CONN, { numbers = {} }, { nope = 1 } }, "bad argument #3 to 'sync' (unknown option 'nope')" },
      { "new", { { timeout = "x" } }, "bad option 'timeout' to 'new'" },
      { "configure", { { nope = 1 } }, "bad argument #1 to 'configure' (unknown option 'nope')" },
    }
    for _, c in ipairs(cases) do
      for _, call in ipairs(calls(c[1])) do
        local msg, line = call.raise((table.unpack or unpack)(c[2], 1, 3))
        assert(msg, call[1] .. " took it")
        assert(msg:find(c[3], 1, true), call[1] .. ": " .. msg)
        assert(msg:find("^[^\n]*" .. SPEC .. ":" .. line .. ": "), msg)
      end
    end
    -- configure raised before replacing the default client
    assert.equals("http://127.0.0.1:1", opentact.configure(CLIENT):base_url())
  end)

  it("returns invalid, sending nothing, for a value of the right type that is wrong", function()
    local cases = {
      { "list", { "nope" } },
      { "assign", { CONN, {} } },
      { "assign", { "nope", { add = { CONN } } } },
      { "lease", { "not a number" } },
      { "lease", { 1.5 } },
      { "lease", { "66eb0a8a-571e-41b1-8f50" } },
      { "lookup", { { "+1 212 555 0001", "not a number" } } },
      { "lookup", { { 0 } } },
      { "search", { { tn = "abc" } } },
      { "search", { { sip_connection = "nope" } } },
      { "search_all", { { sip_connection = "nope" } } },
      { "sync", { "nope", { numbers = {} } } },
      { "sync", { CONN, { numbers = { "not a number" } } } },
      { "sync", { CONN, { leases = { "nope" } } } },
      { "sync", { CONN, { leases = { { uuid = 5 } } } } },
    }
    for _, c in ipairs(cases) do
      for _, call in ipairs(calls(c[1])) do
        local before = sent
        local result, err = call[2]((table.unpack or unpack)(c[2]))
        assert.is_nil(result, call[1])
        assert.equals("invalid", err.kind, call[1] .. ": " .. tostring(err))
        assert.equals(0, err.attempts)
        assert.equals(before, sent, call[1] .. " sent a request")
      end
    end
    -- the bulk calls report it per item, still sending nothing
    for _, call in ipairs(calls("list_many")) do
      local results = call[2]({ "nope" })
      assert.equals("invalid", results[1].err.kind)
    end
    for _, call in ipairs(calls("assign_batched")) do
      local report = call[2](CONN, { add = { "nope" } })
      assert.is_false(report.ok)
      assert.equals("invalid", report.failed[1].err.kind)
    end
    -- a parser: anything that is not a phone number is invalid, whatever its type
    for _, x in ipairs({ {}, true, noop, "x" }) do
      local n, err = opentact.number(x)
      assert.is_nil(n)
      assert.equals("invalid", err.kind)
    end
    assert.equals(0, sent)
  end)

  it("points the default client's own misuse (a bad OPENTACT_URL) at the caller's line", function()
    for _, name in ipairs({ "list", "token", "search" }) do
      local out = support.run(("OPENTACT_URL='not a url' OPENTACT_TOKEN=t %s -e '"
        .. "local o = require(\"opentact\") local ok, e = pcall(function() o.%s(%q) end) print(e)'")
        :format(support.LUA, name, CONN))
      assert.matches("^%(command line%):1: 'opentact': OPENTACT_URL is not", out, nil, false)
    end
  end)
end)

describe("leases per page #c", function()
  it("is page_size on every call that pages; search also takes take, its old name", function()
    assert.is_true(options.CALLS ~= nil, "options.lua has no per-call schema")
    for _, name in ipairs({ "search", "search_all", "sync" }) do
      assert.is_not_nil(options.CALLS[name].page_size, name)
    end
    for name, schema in pairs(options.CALLS) do
      assert.is_nil(schema.take, name .. " names leases per page 'take'")
    end
  end)
end)

describe("leases per page #wire #c", function()
  local emu, client
  setup(function()
    emu = support.start({ leases = 12 })
    client = emu:client()
  end)
  teardown(function() support.stop(emu, client) end)

  it("asks search for page_size leases, or take's, or both when they agree", function()
    for _, opts in ipairs({ { page_size = 5 }, { take = 5 }, { take = 5, page_size = 5 } }) do
      local page = assert(client:search(nil, opts))
      assert.equals(5, page.take)
      assert.equals(5, #page.data)
    end
    local page = assert(client:search(nil, { page_size = 4, skip = 10 }))
    assert.equals(2, #page.data)
    assert.equals(10, page.skip)
  end)

  it("raises when take and page_size disagree, sending nothing", function()
    local before = #emu:requests()
    local msg, line = raised(client.search, client, nil, { take = 5, page_size = 6 })
    assert.matches("bad argument #2 to 'search' (take and page_size name the same option: give one)", msg, 1, true)
    assert(msg:find("^[^\n]*" .. SPEC .. ":" .. line .. ": "), msg)
    assert.equals(before, #emu:requests())
  end)
end)

describe("printing metatables #wire #c", function()
  local emu, client, st
  setup(function()
    emu = support.start({ leases = 6, apps = 1 })
    client = emu:client()
    st = emu:state()
  end)
  teardown(function() support.stop(emu, client) end)

  -- Every metatable `value` and the tables in it carry.
  local function collect(value, into, seen)
    if type(value) ~= "table" or seen[value] then return end
    seen[value] = true
    local mt = getmetatable(value)
    if mt then into[mt] = true end
    for k, v in pairs(value) do
      collect(k, into, seen)
      collect(v, into, seen)
    end
  end

  local function read(path)
    local f = assert(io.open(path, "rb"))
    local text = f:read("*a")
    f:close()
    return text
  end

  it("exports every metatable a result carries, under its __name, documented", function()
    local conn, lease = st.connections[1], st.leases[1]
    local found, seen = {}, {}
    local _, err = client:list("66eb0a8a-571e-41b1-8f50-4d97275cfab0")
    for _, v in ipairs({
      client:list(conn), client:assign(conn, { add = { lease } }), client:lease(st.leases[2]),
      client:search(nil, { page_size = 2 }), client:search_all(), client:list_many({ conn, "nope" }),
      client:assign_batched(conn, { add = { st.leases[3] } }), client:sync(conn, { leases = { lease } }),
      client:sync(conn, { numbers = {} }, { dry_run = true }), client:lookup({ lease }), err,
      client:plan(conn, { numbers = { 12125550003 } }),
    }) do
      collect(v, found, seen)
    end
    found[getmetatable(client)] = true -- its fields are its own
    local names = {}
    for mt in pairs(found) do
      local name = rawget(mt, "__name")
      assert.is_string(name, "a result carries a metatable without a __name")
      local short = name:match("^opentact%.([%w_]+)$")
      assert(short, name .. " is not named opentact.X")
      assert.equals(mt, opentact[short], name .. " is not exported as opentact." .. short)
      names[#names + 1] = short
    end
    table.sort(names)
    -- and every one the library makes, returned above or not
    local readme, types = read(support.ROOT .. "/README.md"), read(support.ROOT .. "/types/opentact.lua")
    local made = {}
    for _, file in ipairs({ "lua/opentact.lua", "lua/opentact/pretty.lua", "lua/opentact/errors.lua",
      "lua/opentact/bulk.lua", "lua/opentact/search.lua", "lua/opentact/sync.lua" }) do
      for short in read(support.ROOT .. "/" .. file):gmatch('__name = "opentact%.([%w_]+)"') do made[short] = true end
    end
    for _, short in ipairs(names) do made[short] = true end
    for short in pairs(made) do
      assert.is_table(opentact[short], "opentact." .. short .. " is not exported")
      assert.equals("opentact." .. short, opentact[short].__name)
      assert(readme:find("`opentact." .. short .. "`", 1, true), "README.md does not name opentact." .. short)
      assert(types:find("\n---@field " .. short .. " table ", 1, true) or types:find("\nopentact." .. short .. " = ", 1, true),
        "types/ do not declare opentact." .. short)
    end
    assert.is_true(#names >= 8, table.concat(names, ", "))
  end)
end)

describe("the per-call option schema #c", function()
  it("lives in options.lua, one table per call, each option checked by one checker", function()
    assert.is_nil(require("opentact.bulk").options, "bulk.lua still checks options")
    assert.is_table(options.CALLS)
    assert.is_table(options.CALL_CHECKS)
    for _, name in ipairs({ "lookup", "assign_batched", "list_many", "search", "search_all", "sync" }) do
      local schema = options.CALLS[name]
      assert.is_table(schema, name)
      for k in pairs(schema) do assert.is_function(options.CALL_CHECKS[k], name .. "." .. k) end
    end
  end)
end)
