-- Answer decoding (C, no I/O): status and body to leases or an error.
local core = require("opentact.core")
local decode = core.answer_decode

local HAS_INTEGERS = math.type ~= nil

local function lease_json(extra)
  return '{"uuid":"0a1b2c3d-0000-4000-8000-000000000001","tn":{"tn":12125551234,"class4_did_id":42,' ..
    '"tnlease":null},"autorenew":true,"expired_on":"2027-01-01T00:00:00Z","sip_control_app":null,' ..
    '"account":{"name":"Soci\\u00e9t\\u00e9","balance":12.5,"users":[null,1,2.0]}' .. (extra or "") .. '}'
end

describe("answer decoding", function()
  describe("a successful answer", function()
    local leases = decode(200, '{"success":true,"payload":[' .. lease_json(',"future_field":{"x":[1]}') .. "]}")

    it("returns the payload as an array", function()
      assert.equals(1, #leases)
      assert.equals("0a1b2c3d-0000-4000-8000-000000000001", leases[1].uuid)
    end)

    it("drops null so the key is absent", function()
      assert.is_nil(leases[1].sip_control_app)
      assert.is_nil(leases[1].tn.tnlease)
      assert.is_nil(rawget(leases[1], "sip_control_app"))
      assert.is_nil(leases[1].account.users[1])
    end)

    it("keeps unknown fields and nested objects", function()
      assert.same({ x = { 1 } }, leases[1].future_field)
      assert.equals("Société", leases[1].account.name)
    end)

    it("makes integral numbers integers, keeps fractions", function()
      assert.equals(12125551234, leases[1].tn.tn)
      assert.equals("12125551234", tostring(leases[1].tn.tn))
      assert.equals(12.5, leases[1].account.balance)
      if HAS_INTEGERS then
        assert.equals("integer", math.type(leases[1].tn.tn))
        assert.equals("integer", math.type(leases[1].account.users[3]))
        assert.equals("float", math.type(leases[1].account.balance))
      end
    end)

    it("accepts an empty payload", function()
      assert.same({}, decode(200, '{"success":true,"payload":[]}'))
    end)

    it("accepts any 2xx", function()
      assert.same({}, decode(201, '{"success":true,"payload":[]}'))
    end)
  end)

  describe("errors by status", function()
    local cases = {
      { 400, "rejected", false }, { 401, "auth", false }, { 403, "auth", false },
      { 404, "not_found", false }, { 409, "rejected", false }, { 422, "rejected", false },
      { 429, "rate_limited", true }, { 500, "server", true }, { 502, "server", true },
      { 503, "server", true }, { 504, "server", true },
      { 301, "protocol", false }, { 302, "protocol", false }, { 307, "protocol", false },
      { 100, "protocol", false }, { 600, "protocol", false },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " is " .. c[2], function()
        local leases, err = decode(c[1], '{"success":false,"message":"from server","status":' .. c[1] .. "}")
        assert.is_nil(leases)
        assert.equals(c[2], err.kind)
        assert.equals(c[1], err.status)
        assert.equals(c[3], err.retryable)
        if c[1] < 300 or c[1] >= 400 then assert.equals("from server", err.message) end
      end)
    end

    it("gives a clear sentence when the body has no message", function()
      local _, err = decode(502, "<html>bad gateway</html>")
      assert.equals("server", err.kind)
      assert.equals("the server answered HTTP 502 (Bad Gateway) without a message", err.message)
      local _, empty = decode(404, "")
      assert.equals("not_found", empty.kind)
    end)

    it("calls a redirect a protocol error", function()
      local _, err = decode(302, "")
      assert.equals("protocol", err.kind)
      assert.is_truthy(err.message:find("never followed", 1, true))
    end)
  end)

  describe("Retry-After", function()
    local function after(value, status)
      local _, err = decode(status or 429, "", value)
      return err.retry_after
    end
    it("reads seconds", function()
      assert.equals(2, after("2"))
      assert.equals(0, after("0"))
      assert.equals(1.5, after(" 1.5 "))
      if HAS_INTEGERS then assert.equals("integer", math.type(after("2"))) end
    end)
    it("reads an HTTP date", function()
      local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 120)
      local s = after(when, 503)
      assert.is_true(s >= 115 and s <= 121, tostring(s))
      assert.equals(0, after("Sun, 06 Nov 1994 08:49:37 GMT"))
    end)
    it("ignores what it cannot read", function()
      assert.is_nil(after("soon"))
      assert.is_nil(after("2 seconds"))
      assert.is_nil(after("-3"))
      assert.is_nil(after(""))
      assert.is_nil(after(nil))
    end)
  end)

  describe("protocol errors on 2xx", function()
    local cases = {
      { "", "not JSON" },
      { "<html>ok</html>", "not JSON" },
      { "NaN", "not JSON" },
      { '{"success":true,"payload":[{"n":NaN}]}', "not JSON" },
      { '{"success":true,"payload":[{"n":0x10}]}', "not JSON" },
      { '{"success":true,"payload":[', "not JSON" },
      { "[1,2]", "success" },
      { '"just a string"', "not a JSON object" },
      { "42", "not a JSON object" },
      { "null", "not a JSON object" },
      { '{"payload":[]}', "success" },
      { '{"success":"true","payload":[]}', "success" },
      { '{"success":false,"message":"nope"}', "nope" },
      { '{"success":false}', "success: false" },
      { '{"success":true}', "payload" },
      { '{"success":true,"payload":{"a":1}}', "payload" },
      { '{"success":true,"payload":[1,2]}', "payload" },
      { '{"success":true,"payload":[null]}', "payload" },
      { '{"success":true,"payload":[{},null,{}]}', "payload" },
      { '{"success":true,"payload":"x"}', "payload" },
    }
    for _, c in ipairs(cases) do
      it("refuses " .. c[1]:sub(1, 40), function()
        local leases, err = decode(200, c[1])
        assert.is_nil(leases)
        assert.equals("protocol", err.kind)
        assert.equals(200, err.status)
        assert.is_false(err.retryable)
        assert.is_truthy(err.message:find(c[2], 1, true), err.message)
      end)
    end

    it("survives deep nesting", function()
      local deep = ("["):rep(100000) .. ("]"):rep(100000)
      local leases, err = decode(200, '{"success":true,"payload":[' .. deep .. "]}")
      assert.is_nil(leases)
      assert.equals("protocol", err.kind)
    end)

    it("survives nesting just under the decoder's limit", function()
      local deep = ('{"a":'):rep(900) .. "null" .. ("}"):rep(900)
      local leases = decode(200, '{"success":true,"payload":[' .. deep .. "]}")
      assert.equals(1, #leases)
    end)

    it("survives embedded NULs and huge bodies", function()
      assert.is_nil((decode(200, '{"success":true,"payload":[]}\0garbage')))
      local big = '{"success":true,"payload":[' .. ('{"uuid":"x"},'):rep(200000) .. '{"uuid":"y"}]}'
      local leases = decode(200, big)
      assert.equals(200001, #leases)
    end)
  end)

  it("raises for wrong argument types", function()
    assert.has_error(function() decode({}, "") end)
    assert.has_error(function() decode(200, nil) end)
    assert.has_error(function() decode(200, {}) end)
  end)
end)
