-- Every public function with every kind of Lua value in every position:
-- each call raises a clean error (a string naming the problem) or returns
-- nil, err. Nothing here may crash the interpreter. No network: the
-- client points at a closed port and never retries.
local opentact = require("opentact")
local support = require("emulator")

local UUID = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"

local function values()
  local angry = setmetatable({}, {
    __index = function() error("metatable __index called") end,
    __len = function() error("metatable __len called") end,
    __pairs = function() error("metatable __pairs called") end,
    __tostring = function() error("metatable __tostring called") end,
  })
  return {
    { "nil", nil }, { "true", true }, { "false", false }, { "zero", 0 }, { "negative", -1 },
    { "fraction", 1.5 }, { "huge number", 2 ^ 63 }, { "NaN", 0 / 0 }, { "infinity", math.huge },
    { "empty string", "" }, { "megabyte string", ("a"):rep(1024 * 1024) }, { "NUL", "\0" },
    { "newline", "a\nb" }, { "CRLF header", "x\r\nX-Evil: 1" }, { "uuid", UUID },
    { "uuid with NUL", UUID:sub(1, 35) .. "\0" }, { "empty table", {} }, { "array", { UUID } },
    { "angry metatable", angry }, { "function", print }, { "coroutine", coroutine.create(function() end) },
    { "userdata", io.stdout }, { "nested", { add = { { UUID } } } },
  }
end

local function check_outcome(ok, a, b, what)
  if ok then
    -- returned: must be nil, err with a kind, or a real result
    if a == nil then
      assert.is_table(b, what)
      assert.is_string(b.kind, what)
      assert.is_string(tostring(b), what)
    end
  else
    assert.is_string(a, what .. ": error is not a string: " .. tostring(a))
  end
end

describe("hostile input #c", function()
  local client
  setup(function()
    client = opentact.new({ token = "t", base_url = "http://127.0.0.1:" .. support.free_port(), retries = 0 })
    opentact.configure({ token = "t", base_url = "http://127.0.0.1:" .. support.free_port(), retries = 0 })
  end)
  teardown(function() client:close() end)

  local calls = {
    { "opentact.list(v)", function(v) return opentact.list(v) end },
    { "opentact.assign(v, changes)", function(v) return opentact.assign(v, { add = { UUID } }) end },
    { "opentact.assign(uuid, v)", function(v) return opentact.assign(UUID, v) end },
    { "client:list(v)", function(v) return client:list(v) end },
    { "client.list(v, uuid)", function(v) return client.list(v, UUID) end },
    { "client:assign(v, changes)", function(v) return client:assign(v, { remove = { UUID } }) end },
    { "client:assign(uuid, v)", function(v) return client:assign(UUID, v) end },
    { "client:assign(uuid, {add = v})", function(v) return client:assign(UUID, { add = v }) end },
    { "client:assign(uuid, {remove = v})", function(v) return client:assign(UUID, { remove = v }) end },
    { "client:assign(uuid, {add = {v}})", function(v) return client:assign(UUID, { add = { v } }) end },
    { "client:assign(uuid, {[v] = {uuid}})", function(v)
      if v == nil or v ~= v then return nil, { kind = "invalid" } end
      return client:assign(UUID, { [v] = { UUID } })
    end },
    { "opentact.new(v)", function(v) local c = opentact.new(v) c:close() return c end },
    { "opentact.configure(v)", function(v) return opentact.configure(v) end },
    { "client.close(v)", function(v) return client.close(v) end },
  }
  for name in pairs(require("opentact.options").CHECKS) do
    calls[#calls + 1] = { "opentact.new({" .. name .. " = v})", function(v)
      local c = opentact.new({ [name] = v, base_url = name == "base_url" and v or "http://127.0.0.1:1" })
      c:close()
      return c
    end }
  end

  for _, call in ipairs(calls) do
    it(call[1], function()
      for _, v in ipairs(values()) do
        local ok, a, b = pcall(call[2], v[2])
        check_outcome(ok, a, b, call[1] .. " with " .. v[1])
      end
    end)
  end

  it("the client keeps working afterwards", function()
    local leases, err = client:list(UUID)
    assert.is_nil(leases)
    assert.equals("network", err.kind)
  end)
end)
