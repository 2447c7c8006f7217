-- client:search and client:search_all over the wire, against the emulator:
-- every filter, paging that never trusts `take`, faults mid-paging, and an
-- account that changes while it is paged through.
local support = require("emulator")
local opentact = require("opentact")
local core = require("opentact.core")

local function numbers(leases)
  local out = {}
  for i, l in ipairs(leases) do out[i] = l.tn.tn end
  table.sort(out)
  return out
end

local function range(a, b)
  local out = {}
  for n = a, b do out[#out + 1] = 12125550000 + n end
  return out
end

local function searches(emu)
  local n = 0
  for _, r in ipairs(emu:requests()) do
    if r.path:find("^/lease/tn/search") then n = n + 1 end
  end
  return n
end

describe("client:search #wire #c", function()
  local emu, client, st
  setup(function()
    emu = support.start({ leases = 40, apps = 2, max_page = 100 })
    client = emu:client()
    st = emu:state()
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() emu:reset() end)

  local function all(filter)
    local page, err = client:search(filter, { page_size = 100 })
    assert.is_nil(err)
    return page
  end

  it("answers one page: total, take, skip and the leases, printable", function()
    local page = client:search(nil, { page_size = 5, skip = 10 })
    assert.equals(40, page.total)
    assert.equals(5, page.take)
    assert.equals(10, page.skip)
    assert.equals(5, #page.data)
    assert.equals(opentact.Leases, getmetatable(page.data))
    assert.matches("^page: leases 11 to 15 of 40\n5 leases\n", tostring(page))
    -- created_on DESC by default: lease 30 is the 11th newest of 40
    assert.equals(12125550030, page.data[1].tn.tn)
    if math.type then assert.equals("integer", math.type(page.total)) end
  end)

  it("finds a number given in any form", function()
    for _, form in ipairs({ "+1 (212) 555-0007", "12125550007", 12125550007 }) do
      assert.same({ 12125550007 }, numbers(all({ tn = form }).data))
    end
  end)

  it("matches masks: * any digits, % one digit", function()
    assert.same(range(30, 39), numbers(all({ tn = "+1 212 555 003*" }).data))
    assert.same({ 12125550003, 12125550013, 12125550023, 12125550033 }, numbers(all({ tn = "1212555%%%3" }).data))
    assert.same(range(1, 40), numbers(all({ tn = "*" }).data))
  end)

  it("filters by connection, control app and connections to skip", function()
    assert.same(range(1, 3), numbers(all({ sip_connection = st.connections[1] }).data))
    assert.same({ 12125550040 }, numbers(all({ sip_control_app = st.apps[1] }).data))
    assert.equals(37, all({ sip_connections_skip = { st.connections[1] } }).total)
    assert.equals(0, all({ sip_connection = st.connections[2] }).total)
  end)

  it("filters by autorenew, and combines with mode AND or OR", function()
    -- lease i renews unless i % 3 == 0
    local off = all({ autorenew = false })
    assert.equals(13, off.total)
    for _, l in ipairs(off.data) do assert.is_false(l.autorenew) end
    assert.same({ 12125550003 }, numbers(all({ autorenew = false, sip_connection = st.connections[1] }).data))
    local either = all({ autorenew = false, sip_connection = st.connections[1], mode = "OR" })
    assert.equals(15, either.total)
  end)

  it("orders by each field both ways", function()
    local asc = all({ order = { tn = "ASC" } }).data
    assert.equals(12125550001, asc[1].tn.tn)
    assert.equals(12125550040, asc[40].tn.tn)
    local desc = all({ order = { tn = "DESC" } }).data
    assert.equals(12125550040, desc[1].tn.tn)
    assert.equals(12125550001, all({ order = { created_on = "ASC" } }).data[1].tn.tn)
    client:assign(st.connections[2], { add = { st.leases[20] } })
    assert.equals(12125550020, all({ order = { modified_on = "DESC" } }).data[1].tn.tn)
  end)

  it("filters by date ranges", function()
    local l10, l12 = st.leases[10], st.leases[12]
    local lease10 = client:lease(l10)
    local lease12 = client:lease(l12)
    local got = all({ created_on_from = lease10.created_on, created_on_to = lease12.created_on })
    assert.same({ 12125550010, 12125550011, 12125550012 }, numbers(got.data))
    client:assign(st.connections[2], { add = { st.leases[5] } })
    local changed = client:lease(st.leases[5]).modified_on
    assert.same({ 12125550005 }, numbers(all({ modified_on_from = changed }).data))
    -- an unchanged lease was last modified when it was created
    assert.same({ 12125550001, 12125550002, 12125550003, 12125550004, 12125550006, 12125550007, 12125550008,
      12125550009, 12125550010 }, numbers(all({ modified_on_to = lease10.created_on }).data))
  end)

  it("returns invalid values as errors without sending, and raises for misuse", function()
    local page, err = client:search({ tn = "212-CALL-*" })
    assert.is_nil(page)
    assert.equals("invalid", err.kind)
    assert.equals(0, searches(emu))
    local ok, why = pcall(function() client:search({ colour = "red" }) end)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'search' %(unknown filter field 'colour'%)", why)
    assert.matches("14%-search_spec", why)
    for _, name in ipairs({ "page_size", "take" }) do
      ok, why = pcall(client.search, client, {}, { [name] = 0 })
      assert.is_false(ok)
      assert.matches("bad option '" .. name .. "' to 'search' (an integer > 0 expected, got number)", why, 1, true)
    end
  end)

  it("runs in the background with a callback", function()
    local got
    assert.is_true(client:search({ tn = "1212555001*" }, function(page, err) got = page or err end))
    assert.is_nil(got)
    while client:step(0.05) > 0 or not got do end
    assert.equals(10, got.total)
  end)

  it("is a module-level function too", function()
    opentact.configure({ base_url = emu.url, token = emu.token })
    local page = opentact.search({ tn = "12125550001" })
    assert.equals(1, page.total)
    assert.equals(40, #opentact.search_all())
  end)
end)

describe("client:search_all #wire #c", function()
  local emu, client, st
  setup(function()
    -- the server caps pages at 7, whatever `take` asks
    emu = support.start({ leases = 150, max_page = 7 })
    client = emu:client()
    st = emu:state()
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() emu:reset() end)

  local function distinct(leases)
    local seen = {}
    for _, l in ipairs(leases) do
      assert.is_nil(seen[l.uuid], "twice: " .. l.uuid)
      seen[l.uuid] = true
    end
    return seen
  end

  it("returns every lease exactly once when the server caps pages below `take`", function()
    local progress = {}
    local leases = client:search_all(nil, { page_size = 20, concurrency = 4, on_progress = function(done, total)
      progress[#progress + 1] = { done, total }
    end })
    assert.equals(150, #leases)
    assert.equals(opentact.Leases, getmetatable(leases))
    local seen = distinct(leases)
    for _, u in ipairs(st.leases) do assert.is_true(seen[u]) end
    -- one request per real page: 150 / 7 -> 22
    assert.equals(22, searches(emu))
    assert.same({ 150, 150 }, progress[#progress])
    assert.is_true(emu:stats().inflight_max <= 4)
  end)

  it("puts a freed slot's next page on the wire before the page that freed it is handed over", function()
    -- while pages are left to ask for, every slot is busy whenever a page
    -- reaches on_progress: the next page went out before this one was decoded
    local inflight = client._engine.inflight
    local full, calls = 0, 0
    local leases = client:search_all(nil, { page_size = 7, concurrency = 4, on_progress = function()
      calls = calls + 1
      local n = 0
      for _ in pairs(inflight) do n = n + 1 end
      if n == 4 then full = full + 1 end
    end })
    assert.equals(150, #leases)
    assert.equals(22, calls)
    -- 21 pages after the first; the last few find nothing left to ask for
    assert.is_true(full >= 14, full .. " of " .. calls .. " pages found every slot busy")
    assert.is_true(emu:stats().inflight_max <= 4)
  end)

  it("follows a short page with one for the rest of its range", function()
    -- a page answered by another server with a lower cap: only 2 of 7
    emu:faults({ {}, { page_cap = 2 } })
    local leases = client:search_all(nil, { page_size = 7, concurrency = 1 })
    assert.equals(150, #leases)
    distinct(leases)
    -- the 5 left of that page came in one more request
    assert.equals(22 + 1, searches(emu))
  end)

  it("retries a page that fails mid-paging: nothing lost or doubled", function()
    emu:faults({ {}, {}, { status = 503 }, {}, { reset = true } })
    local leases, err = client:search_all({ order = { tn = "ASC" } }, { page_size = 7, concurrency = 2 })
    assert.is_nil(err)
    assert.equals(150, #leases)
    distinct(leases)
  end)

  it("asks for pages as it goes: a server that lies about total costs requests, not memory", function()
    local lease = client:search(nil, { page_size = 1 }).data[1]
    local body = require("cjson").encode({ success = true, payload = { take = 7, skip = 0, total = 1e7,
      data = { { uuid = lease.uuid, tn = { tn = 12125550001 } } } } })
    emu:faults({ { raw = body, status = 200, ctype = "application/json" } })
    local leases, err = client:search_all(nil, { page_size = 7, concurrency = 4 })
    assert.is_nil(err)
    assert.equals(150, #leases)
    -- the first pass (pages of one lease, as its first page had) stopped
    -- at the first empty page past the real 150, not after 10 million;
    -- the second found the account as it is
    assert.is_true(searches(emu) < 250, searches(emu) .. " searches")
  end)

  it("stops a pass whose pages bring nothing new (a server that ignores skip)", function()
    local lease = client:search(nil, { page_size = 1 }).data[1]
    local body = require("cjson").encode({ success = true, payload = { take = 7, skip = 0, total = 1e6,
      data = { { uuid = lease.uuid, tn = { tn = 12125550001 } } } } })
    local faults = {}
    for i = 1, 60 do faults[i] = { raw = body, status = 200, ctype = "application/json" } end
    emu:faults(faults)
    local leases, err = client:search_all(nil, { page_size = 7, concurrency = 2 })
    assert.is_nil(leases)
    assert.equals("protocol", err.kind)
    assert.matches("the page at skip=1 repeated leases already seen at skip=0: the server seems to ignore skip",
      err.message, 1, true)
    assert.is_true(searches(emu) < 60, searches(emu) .. " searches")
  end)

  it("lets a coroutine's log hook yield while another coroutine drives the same client", function()
    if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
      pending("Lua 5.1 cannot yield across pcall, which hooks and on_progress are called through")
      return
    end
    emu:config({ latency = 0.05 })
    local A, B
    local c = emu:client({ log = function(e)
      if coroutine.running() == A and e.path:find("search", 1, true) then coroutine.yield() end
    end })
    local k = 0
    B = coroutine.create(function()
      return assert(c:search_all(nil, { page_size = 5, concurrency = 3, on_progress = function()
        k = k + 1
        if k == 2 then coroutine.yield() end
      end }))
    end)
    A = coroutine.create(function() return assert(c:list(st.connections[1])) end)
    local got = {}
    local function resume(co)
      local ok, r = coroutine.resume(co)
      assert(ok, r)
      if coroutine.status(co) == "dead" then got[co] = r end
    end
    resume(B)
    core.sleep(0.2)
    resume(A)
    local started = core.now()
    while coroutine.status(A) ~= "dead" or coroutine.status(B) ~= "dead" do
      assert(core.now() - started < 10, "the coroutines wait on each other")
      for _, co in ipairs({ B, A }) do
        if coroutine.status(co) ~= "dead" then resume(co) end
      end
    end
    emu:config({ latency = 0 })
    assert.equals(150, #got[B])
    assert.equals(3, #got[A])
    c:close()
  end)

  it("ends the search as closed when on_progress closes the client", function()
    local c = emu:client()
    local leases, err = c:search_all(nil, { page_size = 7, concurrency = 2, on_progress = function() c:close() end })
    assert.is_nil(leases)
    assert.equals("network", err.kind)
    assert.matches("closed", err.message)
  end)

  it("returns an empty list when nothing matches", function()
    local leases, err = client:search_all({ tn = "1999*" })
    assert.is_nil(err)
    assert.same({}, leases)
    assert.equals(opentact.Leases, getmetatable(leases))
    assert.equals(1, searches(emu))
  end)

  it("returns the error of a page that fails for good", function()
    emu:faults({ {}, { status = 400, message = "bad page" } })
    local leases, err = client:search_all(nil, { page_size = 7, concurrency = 1 })
    assert.is_nil(leases)
    assert.equals("rejected", err.kind)
    assert.equals("bad page", err.message)
    -- the first page, the failing one, and the one that took its slot
    -- before its answer was read; what was queued behind them never went
    assert.equals(3, searches(emu))
  end)

  it("takes back the pages it queued ahead once a page fails for good", function()
    -- two slots: one page fails at once, the other is slow; the failed
    -- page's slot took the next page before its answer was read, and the
    -- page queued behind that one never goes
    emu:faults({ {}, { status = 400, message = "bad page" }, { delay = 0.3 } })
    local leases, err = client:search_all(nil, { page_size = 7, concurrency = 2 })
    assert.is_nil(leases)
    assert.equals("bad page", err.message)
    assert.equals(4, searches(emu))
  end)

  it("pages again when the account changes while it is paged through", function()
    local conn = st.connections[2]
    local moved = false
    -- the leases not on `conn`, while the first pages move ten of them onto it
    local leases, err = client:search_all({ sip_connections_skip = { conn }, order = { tn = "ASC" } }, {
      page_size = 7, concurrency = 1,
      on_progress = function(done)
        if not moved and done >= 14 then
          moved = true
          local other = emu:client()
          other:assign(conn, { add = { st.leases[1], st.leases[2], st.leases[40], st.leases[41], st.leases[42] } })
          other:close()
        end
      end,
    })
    assert.is_nil(err)
    assert.is_true(moved)
    -- exactly the leases not on the connection now
    assert.equals(145, #leases)
    local seen = distinct(leases)
    for _, u in ipairs({ st.leases[1], st.leases[2], st.leases[40], st.leases[41], st.leases[42] }) do
      assert.is_nil(seen[u])
    end
  end)

  it("fails rather than return a list that may lack leases when the account never settles", function()
    local conn, i = st.connections[2], 0
    local other = emu:client()
    local leases, err = client:search_all({ sip_connections_skip = { conn } }, {
      page_size = 7, concurrency = 1,
      on_progress = function()
        -- every page, another lease leaves the search
        i = i + 1
        other:assign(conn, { add = { st.leases[i] } })
      end,
    })
    other:close()
    assert.is_nil(leases)
    assert.equals("protocol", err.kind)
    assert.matches("changed while they were paged through", err.message)
  end)
end)

describe("search_all against servers that page wrong #wire #c", function()
  -- Runs f(server) with a hostile server in `mode`, stopping it whatever happens.
  local with_server = support.with_hostile

  it("refuses a page whose lease has no uuid as a protocol error naming the page, never a repeat", function()
    with_server("search-no-uuid", function(server)
      local c = opentact.new({ token = "t", base_url = server.url, retries = 0, connect_timeout = 30 })
      finally(function() c:close() end)
      -- pages of 2: the page at skip=2 holds lease 4, which has no uuid
      local leases, err = c:search_all(nil, { page_size = 2, concurrency = 1 })
      assert.is_nil(leases)
      assert.equals("protocol", err.kind)
      assert.matches("lease 2 of the page has no string 'uuid'", err.message, 1, true)
      assert.matches("skip=2", tostring(err), 1, true)
      -- one page alone, too; a page without that lease is whole
      local page
      page, err = c:search(nil, { page_size = 2, skip = 3 })
      assert.is_nil(page)
      assert.equals("protocol", err.kind)
      assert.matches("lease 1 of the page has no string 'uuid'", err.message, 1, true)
      assert.matches("skip=3", tostring(err), 1, true)
      page = assert(c:search(nil, { page_size = 2, skip = 0 }))
      assert.equals(2, #page.data)
    end)
  end)

  it("says a server ignores skip when a later page repeats the first, not that the account changed", function()
    with_server("search-ignore-skip", function(server)
      local c = opentact.new({ token = "t", base_url = server.url, retries = 0, connect_timeout = 30 })
      finally(function() c:close() end)
      local leases, err = c:search_all(nil, { page_size = 100, concurrency = 2 })
      assert.is_nil(leases)
      assert.equals("protocol", err.kind)
      assert.matches("the page at skip=100 repeated leases already seen at skip=0", err.message, 1, true)
      assert.matches("the server seems to ignore skip", err.message, 1, true)
      assert.is_falsy(err.message:find("added or removed", 1, true), err.message)
    end)
  end)
end)

describe("client:lookup #wire #c", function()
  local emu, client, st
  setup(function()
    emu = support.start({ leases = 40 })
    client = emu:client()
    st = emu:state()
  end)
  teardown(function() support.stop(emu, client) end)
  before_each(function() emu:reset() end)

  it("finds the lease of each number and uuid, each once, without those the account lacks", function()
    local upper = st.leases[5]:upper()
    local found = assert(client:lookup({ "+1 (212) 555-0001", 12125550001, upper, 12125559999 }, { concurrency = 2 }))
    assert.equals(st.leases[1], found[12125550001].uuid)
    assert.equals(st.leases[5], found[st.leases[5]].uuid)
    assert.is_nil(found[12125559999])
    local n = 0
    for _ in pairs(found) do n = n + 1 end
    assert.equals(2, n)
    -- one GET a key: the number given twice is looked up once
    local gets = 0
    for _, r in ipairs(emu:requests()) do if r.path:find("^/lease/tn/") then gets = gets + 1 end end
    assert.equals(3, gets)
  end)

  it("says a lookup that failed; an item that is neither a number nor a uuid is invalid, a wrong type raises", function()
    emu:faults({ { status = 500, message = "down" }, { status = 500, message = "down" }, { status = 500, message = "down" } })
    local found, err = client:lookup({ 12125550001 })
    assert.is_nil(found)
    assert.equals("server", err.kind)
    local before = #emu:requests()
    found, err = client:lookup({ 12125550001, "sip-trunk-1" })
    assert.is_nil(found)
    assert.equals("invalid", err.kind)
    assert.equals(2, err.index)
    assert.matches("^items%[2%]: phone number 'sip%-trunk%-1'", err.message)
    assert.equals(before, #emu:requests())
    assert.has_error(function() client:lookup({ 12125550001, true }) end,
      "bad argument #1 to 'lookup' (string or number expected at index 2, got boolean)")
    assert.has_error(function() client:lookup("12125550001") end)
  end)

  it("tells the base URL requests go to", function()
    assert.equals(emu.url, client:base_url())
  end)
end)
