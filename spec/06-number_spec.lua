-- opentact.number: phone numbers in the forms people type (C, no I/O).
local opentact = require("opentact")

local HAS_INTEGERS = math.type ~= nil

describe("opentact.number #c", function()
  local good = {
    { "+1 (212) 555-1234", 12125551234 }, { "12125551234", 12125551234 }, { "+12125551234", 12125551234 },
    { "1.212.555.1234", 12125551234 }, { "1-212-555-1234", 12125551234 }, { " +44 20 7946 0958", 442079460958 },
    { 12125551234, 12125551234 }, { "999999999999999", 999999999999999 }, { "7", 7 },
  }
  for _, c in ipairs(good) do
    it(("reads %q"):format(tostring(c[1])), function()
      local n, err = opentact.number(c[1])
      assert.is_nil(err)
      assert.equals(c[2], n)
      if HAS_INTEGERS then assert.equals("integer", math.type(n)) end
    end)
  end

  local bad = {
    { "", "has no digits" }, { "+", "has no digits" }, { "( )", "has no digits" },
    { "0212 555 1234", "starts with 0" }, { "+0044", "starts with 0" },
    { "1234567890123456", "more than 15 digits" }, { 1e15, "more than 15 digits" },
    { "212-555-CALL", "is not a phone number" }, { "+1 212 555 1234 ext 5", "is not a phone number" },
    { "1+212", "is not a phone number" }, { "12,125", "is not a phone number" }, { "1\n2", "is not a phone number" },
    { 0, "whole number above 0" }, { -12125551234, "whole number above 0" }, { 1.5, "whole number above 0" },
    { 0 / 0, "whole number above 0" }, { math.huge, "more than 15 digits" },
    { true, "a boolean" }, { {}, "a table" },
  }
  for _, c in ipairs(bad) do
    it(("refuses %q"):format(tostring(c[1])), function()
      local n, err = opentact.number(c[1])
      assert.is_nil(n)
      assert.equals("invalid", err.kind)
      assert.is_truthy(err.message:find(c[2], 1, true), err.message)
      assert.is_truthy(tostring(err):find("^opentact: invalid: phone number"), tostring(err))
    end)
  end

  it("refuses nil the same way", function()
    local n, err = opentact.number(nil)
    assert.is_nil(n)
    assert.equals("invalid", err.kind)
  end)
end)

describe("client:lease #wire #c", function()
  local support = require("emulator")
  local emu, client
  setup(function()
    emu = support.start()
    client = emu:client()
  end)
  teardown(function() support.stop(emu, client) end)

  it("finds the lease of a number in any form", function()
    local st = emu:state()
    for _, form in ipairs({ "+1 (212) 555-0004", 12125550004, "1.212.555.0004" }) do
      local lease, err = client:lease(form)
      assert.is_nil(err)
      assert.equals(st.leases[4], lease.uuid)
      assert.equals(12125550004, lease.tn.tn)
      assert.is_nil(lease.sip_connection)
    end
    local held = client:lease("+12125550001")
    assert.equals(st.connections[1], held.sip_connection.uuid)
    assert.equals("/lease/tn/12125550001/tn", emu:requests()[4].path)
  end)

  it("says not_found for a number the account does not hold, invalid (nothing sent) for a bad one", function()
    emu:reset()
    local lease, err = client:lease("+1 999 555 0000")
    assert.is_nil(lease)
    assert.equals("not_found", err.kind)
    lease, err = client:lease("call me")
    assert.is_nil(lease)
    assert.equals("invalid", err.kind)
    assert.equals(0, err.attempts)
    assert.equals(1, #emu:requests())
  end)

  it("takes a callback, as list does", function()
    local got
    assert.is_true(client:lease(12125550002, function(l, e) got = { l, e } end))
    while client:step(0.05) > 0 do end
    assert.equals(emu:state().leases[2], got[1].uuid)
  end)

  it("is retried like a read", function()
    emu:faults({ { status = 503 } })
    local lease = client:lease(12125550002)
    assert.equals(emu:state().leases[2], lease.uuid)
  end)
end)
