-- sync's plan (a pure function of what was read) and the search request
-- builder: data tables in, data tables out, no network.
local sync = require("opentact.sync")
local core = require("opentact.core")
local pretty = require("opentact.pretty")

local CONN = "c0000000-0000-4000-8000-000000000001"
local OTHER = "c0000000-0000-4000-8000-000000000002"
local APP = "a0000000-0000-4000-8000-000000000001"

-- Lease n: uuid and number derived from n; holder given as "conn",
-- "other", "app" or nil.
local function lease(n, holder)
  local l = { uuid = ("1e000000-0000-4000-8000-%012d"):format(n), tn = { tn = 12125550000 + n } }
  if holder == "conn" then l.sip_connection = { uuid = CONN:upper() } end
  if holder == "other" then l.sip_connection = { uuid = OTHER } end
  if holder == "app" then l.sip_control_app = { uuid = APP } end
  return l
end

local function uuids(list)
  local out = {}
  for i, l in ipairs(list) do out[i] = l.uuid end
  return out
end

local function want(n, l) return { given = n, lease = l } end

describe("sync's plan #c", function()
  local current = { lease(1, "conn"), lease(2, "conn"), lease(3, "conn") }

  local cases = {
    { name = "adds what is missing and keeps what is there",
      desired = { want(1, lease(1, "conn")), want(4, lease(4)) }, opts = {},
      add = { 4 }, keep = { 1 }, remove = {}, conflicts = {}, missing = {} },
    { name = "removes the rest only when exact",
      desired = { want(1, lease(1, "conn")), want(4, lease(4)) }, opts = { exact = true },
      add = { 4 }, keep = { 1 }, remove = { 2, 3 }, conflicts = {}, missing = {} },
    { name = "leaves leases held elsewhere alone without move",
      desired = { want(5, lease(5, "other")), want(6, lease(6, "app")), want(7, lease(7)) }, opts = {},
      add = { 7 }, keep = {}, remove = {}, conflicts = { 5, 6 }, missing = {} },
    { name = "takes leases held elsewhere with move",
      desired = { want(5, lease(5, "other")), want(6, lease(6, "app")) }, opts = { move = true, exact = true },
      add = { 5, 6 }, keep = {}, remove = { 1, 2, 3 }, conflicts = {}, missing = {} },
    { name = "lists what the account does not hold, as given",
      desired = { want("+1 999 555 0000", nil), want(1, lease(1, "conn")) }, opts = { exact = true },
      add = {}, keep = { 1 }, remove = { 2, 3 }, conflicts = {}, missing = { "+1 999 555 0000" } },
    { name = "counts a lease named twice once",
      desired = { want(4, lease(4)), want("again", lease(4)) }, opts = {},
      add = { 4 }, keep = {}, remove = {}, conflicts = {}, missing = {} },
    { name = "an empty desired state with exact detaches everything",
      desired = {}, opts = { exact = true },
      add = {}, keep = {}, remove = { 1, 2, 3 }, conflicts = {}, missing = {} },
    { name = "an empty desired state without exact changes nothing",
      desired = {}, opts = {},
      add = {}, keep = {}, remove = {}, conflicts = {}, missing = {} },
  }

  for _, c in ipairs(cases) do
    it(c.name, function()
      local before = require("cjson").encode({ current, c.desired })
      local plan = sync.plan(CONN, current, c.desired, c.opts)
      for _, kind in ipairs({ "add", "keep", "remove", "conflicts" }) do
        local expected = {}
        for i, n in ipairs(c[kind]) do expected[i] = lease(n).uuid end
        assert.same(expected, uuids(plan[kind]), kind)
        assert.equals(pretty.Leases, getmetatable(plan[kind]))
      end
      assert.same(c.missing, plan.missing)
      -- pure: its arguments are as they were
      assert.equals(before, require("cjson").encode({ current, c.desired }))
    end)
  end

  -- A lookup may answer 404 (a stale index, a transient fault) or name
  -- another lease for a number; what the target's own read shows it holds
  -- decides: a desired item is never removed.
  local lookup_cases = {
    { name = "keeps a held lease whose uuid lookup said missing",
      desired = { want(lease(1).uuid, lease(1, "conn")), want(lease(2).uuid:upper(), nil), want(lease(3).uuid, lease(3, "conn")) },
      keep = { 1, 2, 3 } },
    { name = "keeps a held lease whose number lookup said missing",
      desired = { want(12125550001, lease(1, "conn")), want("+1 212 555 0002", nil), want(12125550003, lease(3, "conn")) },
      keep = { 1, 2, 3 } },
    { name = "keeps the held lease of a number whose lookup named another lease",
      desired = { { given = "+1 212 555 0002", key = 12125550002,
        lease = { uuid = "1e000000-0000-4000-8000-00000000ffff", tn = { tn = 12125550002 } } } },
      keep = { 2 }, removed = { 1, 3 } },
    { name = "keeps a held lease a desired uuid names, whatever lease its lookup answered",
      desired = { { given = lease(2).uuid, key = lease(2).uuid, lease = lease(4) } },
      keep = { 2 }, removed = { 1, 3 } },
    { name = "keeps the held lease of a desired number, whatever lease its lookup answered",
      desired = { { given = 12125550002, lease = lease(4) } },
      keep = { 2 }, removed = { 1, 3 } },
  }
  for _, c in ipairs(lookup_cases) do
    for _, exact in ipairs({ false, true }) do
      it(c.name .. (exact and " (exact)" or ""), function()
        local plan = sync.plan(CONN, current, c.desired, { exact = exact })
        local function expected(list)
          local out = {}
          for i, n in ipairs(list or {}) do out[i] = lease(n).uuid end
          return out
        end
        assert.same(expected(c.keep), uuids(plan.keep))
        assert.same(expected(c.add), uuids(plan.add))
        assert.same({}, plan.missing)
        assert.same(exact and expected(c.removed) or {}, uuids(plan.remove))
      end)
    end
  end

  it("never puts a lease a desired item names in remove, whatever the resolution said", function()
    -- every way a resolution can answer for each held lease: the lease,
    -- nothing (404), another lease, a lease on another holder
    local answers = { function(n) return lease(n, "conn") end, function() return nil end,
      function() return lease(9) end, function(n) return lease(n, "other") end }
    for a = 1, #answers do
      for b = 1, #answers do
        for _, by_number in ipairs({ false, true }) do
          local desired = {}
          for i, n in ipairs({ 1, 2 }) do
            local answer = answers[i == 1 and a or b](n)
            desired[i] = want(by_number and "+1 212 555 000" .. n or lease(n).uuid, answer)
          end
          for _, move in ipairs({ false, true }) do
            local plan = sync.plan(CONN, current, desired, { exact = true, move = move })
            local removed = uuids(plan.remove)
            assert.same({ lease(3).uuid }, removed, ("answers %d, %d, by number %s"):format(a, b, tostring(by_number)))
          end
        end
      end
    end
  end)

  it("puts every desired item in exactly one of keep, add, missing, conflicts", function()
    local desired = {}
    local holders = { "conn", "other", "app", false }
    for n = 1, 40 do
      desired[n] = want(n, n % 7 ~= 0 and lease(n, holders[n % 4 + 1] or nil) or nil)
    end
    for _, move in ipairs({ false, true }) do
      local plan = sync.plan(CONN, current, desired, { move = move })
      local count = #plan.keep + #plan.add + #plan.missing + #plan.conflicts
      assert.equals(40, count)
    end
  end)

  it("refuses, one check for dry and real runs, a plan that detaches while no desired item is found", function()
    local function refusal(desired, opts)
      return sync.refusal(sync.plan(CONN, current, desired, opts), desired)
    end
    local lost = { want("2125550001", nil), want({ uuid = "1e000000-0000-4000-8000-0000000000ff" }, nil) }
    local err = refusal(lost, { exact = true })
    assert.equals("invalid", err.kind)
    assert.equals("none of the 2 desired leases is in the account (2125550001 ...): the sync would detach all 3 "
      .. "leases of the connection; nothing was changed", err.message)
    err = refusal({ lost[2] }, { exact = true })
    assert.matches("(1e000000-0000-4000-8000-0000000000ff ...)", err.message, 1, true)
    -- not refused: nothing detached, something found, or nothing desired
    assert.is_nil(refusal(lost, {}))
    assert.is_nil(refusal({ want("2125550099", nil), want(4, lease(4)) }, { exact = true }))
    -- found something, but a missing number is a detached lease's number
    -- without its country code
    err = refusal({ lost[1], want(4, lease(4)) }, { exact = true })
    assert.equals("2125550001 is not in the account, and the connection holds 12125550001, which ends with it: "
      .. "the sync would detach it; give numbers with their country code (e.g. +1 212 555 0100); nothing was "
      .. "changed", err.message)
    assert.is_nil(refusal({}, { exact = true }))
  end)

  it("prints one line per change and a summary", function()
    local report = sync.plan(CONN, current,
      { want(4, lease(4)), want(5, lease(5, "other")), want("+1 999", nil) }, { exact = true })
    report.dry_run, report.ok, report.connection = true, false, CONN
    report.applied, report.failed = { add = {}, remove = {} }, {}
    local text = tostring(setmetatable(report, pretty.SyncReport))
    assert.matches("^SIP connection " .. CONN:gsub("%-", "%%-") .. ":\n", text)
    assert.matches("%+ 12125550004%s+" .. lease(4).uuid:gsub("%-", "%%-"), text)
    assert.matches("%- 12125550001", text)
    assert.matches("! 12125550005.*held by SIP connection " .. OTHER:gsub("%-", "%%-"), text)
    assert.matches("%? %+1 999", text)
    assert.matches("Plan: 1 to add, 3 to remove, 0 unchanged, 1 conflict, 1 missing.", text, 1, true)
    assert.matches("Dry run: nothing was changed.", text, 1, true)
    -- the Lua API's words by default; a command line gives its flags
    assert.matches("; move = true takes it)", text, 1, true)
    local cli = table.concat(pretty.plan_lines(report, nil, { move = "--move" }), "\n")
    assert.matches("held by SIP connection " .. OTHER .. "; --move takes it)", cli, 1, true)
    assert.is_falsy(cli:find("move = true", 1, true))
    assert.equals(text, table.concat(pretty.plan_lines(report, 50, {}), "\n"))
  end)
end)

describe("the search request #c", function()
  local function body(filter) return select(2, core.request_search(filter, 100, 0)) end

  it("is the path with take and skip, and {} for no filter", function()
    local path, b = core.request_search(nil, 25, 50)
    assert.equals("/lease/tn/search?take=25&skip=50", path)
    assert.equals("{}", b)
  end)

  it("writes every field in one order, values normalised", function()
    local b = body({
      modified_on_to = "2027-01-01T00:00:00Z", order = { tn = "asc" }, mode = "or", autorenew = false,
      sip_connections_skip = { CONN:upper(), OTHER }, sip_control_app = APP, sip_connection = CONN,
      tn = "+1 (212) 555-00*", created_on_from = "2026-01-01",
    })
    assert.equals('{"tn":"121255500*","sip_connection":"' .. CONN .. '","sip_control_app":"' .. APP
      .. '","sip_connections_skip":["' .. CONN .. '","' .. OTHER .. '"],"autorenew":false,"mode":"OR",'
      .. '"order":{"tn":"ASC"},"created_on_from":"2026-01-01","modified_on_to":"2027-01-01T00:00:00Z"}', b)
  end)

  it("reads tn as a number in any form, or a mask", function()
    assert.equals('{"tn":"12125551234"}', body({ tn = "+1 212 555 1234" }))
    assert.equals('{"tn":"12125551234"}', body({ tn = 12125551234 }))
    assert.equals('{"tn":"1212555%%%%"}', body({ tn = "1 212 555 %%%%" }))
    assert.equals('{"tn":"*1234"}', body({ tn = "*1234" }))
  end)

  local invalid = {
    { { tn = "212-CALL-*" }, "is not a phone number mask" }, { { tn = "0212" }, "starts with 0" },
    { { tn = "1234567890123456*" }, "more than 15 digits" }, { { sip_connection = "nope" }, "is not a uuid" },
    { { sip_connections_skip = { CONN, "x" } }, "is not a uuid" }, { { mode = "XOR" }, 'is not "AND" or "OR"' },
    { { order = { tn = "UP" } }, 'is not "ASC" or "DESC"' }, { { created_on_to = "yesterday" }, "ISO-8601" },
    { { created_on_to = "2026-01-01 00:00" }, "ISO-8601" }, { { modified_on_from = '2026-01-01T"' }, "ISO-8601" },
  }
  for _, c in ipairs(invalid) do
    it("returns invalid for " .. next(c[1]) .. " " .. require("cjson").encode(c[1]), function()
      local path, err = core.request_search(c[1], 100, 0)
      assert.is_nil(path)
      assert.equals("invalid", err.kind)
      assert.is_truthy(err.message:find(c[2], 1, true), err.message)
    end)
  end

  it("reads only the filter's own fields, never through a metatable", function()
    local many = {}
    for i = 1, 500 do many[i] = CONN end
    local filter = setmetatable({ autorenew = true }, { __index = { sip_connections_skip = many, order = "tn" } })
    assert.equals('{"autorenew":true}', body(filter))
  end)

  local misuse = {
    { { colour = "red" }, "unknown filter field 'colour'" }, { { tn = true }, "field 'tn' must be" },
    { { autorenew = "yes" }, "field 'autorenew' must be a boolean" }, { { sip_connection = 5 }, "must be a string" },
    { { sip_connections_skip = CONN }, "must be a list of uuid strings" },
    { { sip_connections_skip = { [2] = CONN } }, "without holes" },
    { { sip_connections_skip = { CONN, CONN, nil, CONN, [0.5] = CONN } }, "without holes" },
    { { order = "tn" }, "field 'order' must be" }, { { order = { tn = "ASC", created_on = "DESC" } }, "exactly one key" },
    { { order = { size = "ASC" } }, "takes one key" }, { { "tn" }, "unexpected number key" },
  }
  for _, c in ipairs(misuse) do
    it("raises for " .. c[2], function()
      local ok, err = pcall(core.request_search, c[1], 100, 0)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(c[2], 1, true), err)
    end)
  end
end)
