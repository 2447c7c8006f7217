-- opentact.number: phone numbers in the forms people type (C, no I/O).
local opentact = require("opentact")

local HAS_INTEGERS = math.type ~= nil

describe("opentact.number", function()
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
