-- Request building (C, no I/O): uuid checking, path and body.
local core = require("opentact.core")

local CONN = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"
local L1 = "0a1b2c3d-0000-4000-8000-000000000001"
local L2 = "0a1b2c3d-0000-4000-8000-000000000002"
local L3 = "0a1b2c3d-0000-4000-8000-000000000003"

describe("request building #c", function()
  describe("list path", function()
    local cases = {
      { CONN, "/sip/connection/" .. CONN .. "/tnlease" },
      { CONN:upper(), "/sip/connection/" .. CONN .. "/tnlease" },
      { "66EB0a8a-571E-41b1-8F50-4d97275cfab7", "/sip/connection/" .. CONN .. "/tnlease" },
    }
    for _, c in ipairs(cases) do
      it("accepts " .. c[1], function()
        assert.equals(c[2], core.request_list(c[1]))
      end)
    end

    local invalid = {
      { "", "empty" },
      { CONN .. " ", "trailing space" },
      { " " .. CONN, "leading space" },
      { CONN:sub(1, 35), "too short" },
      { CONN .. "0", "too long" },
      { (CONN:gsub("-", "")), "no dashes" },
      { (CONN:gsub("-", "_")), "underscores" },
      { "66eb0a8g-571e-41b1-8f50-4d97275cfab7", "non-hex g" },
      { "66eb0a8a-571e-41b1-8f50-4d97275cfab\0", "embedded NUL" },
      { "66eb0a8a-571e-41b1-8f50-4d97275c\nab7", "embedded newline" },
      { "../../../etc/passwd/../../../../../..", "path traversal of uuid length" },
      { "{66eb0a8a-571e-41b1-8f50-4d97275cfa}", "braces" },
      { "66eb0a8a-571e-41b1-8f50-4d97275cfab\xc3", "invalid UTF-8" },
      { ("x"):rep(1024 * 1024), "a megabyte" },
    }
    for _, c in ipairs(invalid) do
      it("refuses " .. c[2] .. " as invalid", function()
        local path, err = core.request_list(c[1])
        assert.is_nil(path)
        assert.equals("invalid", err.kind)
        assert.is_false(err.retryable)
        assert.is_nil(err.status)
        assert.is_truthy(err.message:find("connection uuid", 1, true))
        assert.is_falsy(err.message:find("[%z\n]"))
        assert.is_true(#err.message < 200)
      end)
    end

    it("raises for a non-string", function()
      for _, v in ipairs({ 1, true, {}, function() end }) do
        assert.has_error(function() core.request_list(v) end)
      end
      assert.has_error(function() core.request_list() end)
    end)
  end)

  describe("assign body", function()
    local cases = {
      { { add = { L1 } }, '{"add":["' .. L1 .. '"]}' },
      { { remove = { L1 } }, '{"remove":["' .. L1 .. '"]}' },
      { { add = { L1, L2 }, remove = { L3 } }, '{"add":["' .. L1 .. '","' .. L2 .. '"],"remove":["' .. L3 .. '"]}' },
      { { add = {}, remove = { L3 } }, '{"remove":["' .. L3 .. '"]}' },
      { { add = { L1:upper() }, remove = {} }, '{"add":["' .. L1 .. '"]}' },
    }
    for i, c in ipairs(cases) do
      it("builds case " .. i, function()
        local path, body = core.request_assign(CONN, c[1])
        assert.equals("/sip/connection/" .. CONN .. "/tnlease", path)
        assert.equals(c[2], body)
      end)
    end

    local invalid = {
      { {}, "empty change set" },
      { { add = {}, remove = {} }, "empty change set" },
      { { add = { L1, L1 } }, "listed twice" },
      { { add = { L1, L1:upper() } }, "listed twice" },
      { { add = { L1 }, remove = { L1 } }, "both" },
      { { add = { "nope" } }, "is not a lease uuid" },
      { { remove = { L1, L2 .. "\n" } }, "is not a lease uuid" },
    }
    for _, c in ipairs(invalid) do
      it("refuses as invalid: " .. c[2], function()
        local path, err = core.request_assign(CONN, c[1])
        assert.is_nil(path)
        assert.equals("invalid", err.kind)
        assert.is_truthy(err.message:find(c[2], 1, true), err.message)
      end)
    end

    it("refuses a bad connection uuid", function()
      local path, err = core.request_assign("nope", { add = { L1 } })
      assert.is_nil(path)
      assert.equals("invalid", err.kind)
    end)

    local raising = {
      { { add = L1 }, "field 'add'" },
      { { add = { 1 } }, "field 'add'" },
      { { remove = { { L1 } } }, "field 'remove'" },
      { { add = { [1] = L1, [3] = L2 } }, "holes" },
      { { add = { L1, x = L2 } }, "field 'add'" },
      { { adds = { L1 } }, "unexpected key 'adds'" },
      { { [1] = L1 }, "unexpected number key" },
    }
    for _, c in ipairs(raising) do
      it("raises naming the problem: " .. c[2], function()
        local ok, msg = pcall(core.request_assign, CONN, c[1])
        assert.is_false(ok)
        assert.is_truthy(tostring(msg):find(c[2], 1, true), msg)
      end)
    end

    it("reads only a list's own entries, never its metatable", function()
      local proxy = setmetatable({}, { __index = function() return L1 end, __len = function() return 3 end })
      local path, err = core.request_assign(CONN, { add = proxy })
      assert.is_nil(path)
      assert.equals("invalid", err.kind)
    end)

    it("handles ten thousand uuids", function()
      local add = {}
      for i = 1, 10000 do add[i] = ("%08x-0000-4000-8000-%012x"):format(i, i) end
      local _, body = core.request_assign(CONN, { add = add })
      assert.equals(10000 * 39 + #'{"add":[]}' - 1, #body)
    end)
  end)
end)
