-- Answer decoding (C, no I/O): status and body to leases or an error.
local core = require("opentact.core")
local decode = core.answer_decode

local HAS_INTEGERS = math.type ~= nil

local function lease_json(extra)
  return '{"uuid":"0a1b2c3d-0000-4000-8000-000000000001","tn":{"tn":12125551234,"class4_did_id":42,' ..
    '"tnlease":null},"autorenew":true,"expired_on":"2027-01-01T00:00:00Z","sip_control_app":null,' ..
    '"account":{"name":"Soci\\u00e9t\\u00e9","balance":12.5,"users":[null,1,2.0]}' .. (extra or "") .. '}'
end

describe("answer decoding #c", function()
  describe("a successful answer", function()
    local leases = decode(200, '{"success":true,"payload":[' .. lease_json(',"future_field":{"x":[1]}') .. "]}")

    it("returns the payload as an array", function()
      assert.equals(1, #leases)
      assert.equals("0a1b2c3d-0000-4000-8000-000000000001", leases[1].uuid)
    end)

    it("takes a payload of lease uuid strings as leases holding their uuid", function()
      local got = decode(200, '{"success":true,"payload":["0a1b2c3d-0000-4000-8000-000000000001","x"]}')
      assert.same({ { uuid = "0a1b2c3d-0000-4000-8000-000000000001" }, { uuid = "x" } }, setmetatable(got, nil))
    end)

    it("is not refused for a null outside the payload", function()
      local got, err = decode(200, '{"success":true,"meta":[null,1],"payload":[{"uuid":"u"}],"x":{"y":[null]}}')
      assert.is_nil(err)
      assert.equals("u", got[1].uuid)
    end)

    it("keeps an integer too large for a lua_Integer a float, never the nearest integer", function()
      local got = decode(200, '{"success":true,"payload":[{"a":-9223372036854775809,"b":9223372036854775808}]}')
      if math.type then
        assert.equals("float", math.type(got[1].a))
        assert.equals("float", math.type(got[1].b))
      end
      assert.is_true(got[1].a < -9.2e18)
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
    it("caps a delay too long to matter instead of dropping it", function()
      assert.equals(1e10, after("99999999999999999999999"))
      assert.equals(2e9, after("2000000000"))
      local s = after("Fri, 01 Jan 2100 00:00:00 GMT", 503)
      assert.is_true(s > 2e9, tostring(s))
    end)
    it("reads an HTTP date", function()
      local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 120)
      local s = after(when, 503)
      assert.is_true(s >= 115 and s <= 121, tostring(s))
      assert.equals(0, after("Sun, 06 Nov 1994 08:49:37 GMT"))
    end)
    it("reads the three forms of an HTTP date, and a numeric zone", function()
      local t = os.time() + 3600
      local imf = os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
      local rfc850 = os.date("!%A, %d-%b-%y %H:%M:%S GMT", t)
      local asctime = os.date("!%a %b %e %H:%M:%S %Y", t)
      local east = os.date("!%a, %d %b %Y %H:%M:%S +0200", t + 7200)
      for _, when in ipairs({ imf, rfc850, asctime, east }) do
        local s = after(when, 503)
        assert.is_true(s ~= nil and s >= 3595 and s <= 3601, when .. ": " .. tostring(s))
      end
      assert.is_nil(after("Sun, 32 Nov 1994 08:49:37 GMT"))
      assert.is_nil(after("Sun, 06 Nov 1994 25:49:37 GMT"))
      assert.is_nil(after("Sun, 06 Nov 1994 08:49:37 +" .. ("7"):rep(40)))
    end)
    it("ignores what it cannot read", function()
      assert.is_nil(after("soon"))
      assert.is_nil(after("2 seconds"))
      assert.is_nil(after("-3"))
      assert.is_nil(after("0x5"))
      assert.is_nil(after("5e2"))
      assert.is_nil(after("+5"))
      assert.is_nil(after("inf"))
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
      { '{"success":true,"payload":[{},null]}', "payload" },
      { '{"success":true,"payload":["a",{}]}', "payload" },
      { '{"success":true,"payload":[{"n":1e400}]}', "out of range" },
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

describe("JSON decoding #c", function()
  -- decodes one value as the field `v` of a lease
  local function v(json)
    local leases, err = decode(200, '{"success":true,"payload":[{"v":' .. json .. "}]}")
    if not leases then return nil, err end
    return leases[1].v, nil, leases[1]
  end

  local values = {
    { '"plain"', "plain" }, { '""', "" }, { '"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\/\b\f\n\r\t' },
    { '"caf\\u00e9"', "café" }, { '"\\u20ac"', "€" }, { '"\\ud83d\\ude00"', "😀" },
    { '"raw UTF-8 ✓"', "raw UTF-8 ✓" }, { "true", true }, { "false", false },
    { "0", 0 }, { "-0", 0 }, { "42", 42 }, { "-17", -17 }, { "12125551234", 12125551234 },
    { "1.5", 1.5 }, { "-2.25e2", -225 }, { "1e2", 100 }, { "1E-2", 0.01 }, { "2.0", 2 },
    { "9007199254740993", HAS_INTEGERS and 9007199254740993 or 9007199254740992 },
{ " [ 1 , 2 ] ", nil, { 1, 2 } }, { "{}", nil, {} }, { "[]", nil, {} },
    { '{"a":{"b":[true,{"c":"d"}]}}', nil, { a = { b = { true, { c = "d" } } } } },
    { '{"k":1,"k":2}', nil, { k = 2 } }, { '{"":1}', nil, { [""] = 1 } },
    { "[1,null,3]", nil, { 1, nil, 3 } }, { '{"gone":null,"kept":1}', nil, { kept = 1 } },
    { '{"gone":null}', nil, {} }, { "[null]", nil, {} }, { '{"a":{"b":null},"c":[null,null]}', nil, { a = {}, c = {} } },
  }
  it("refuses a number out of a double's range instead of making it inf", function()
    for _, text in ipairs({ "1e400", "-1e400", '{"a":[1e999]}' }) do
      local got, err = v(text)
      assert.is_nil(got)
      assert.is_truthy(err.message:find("number out of range", 1, true), err.message)
    end
  end)

  for _, c in ipairs(values) do
    it("reads " .. c[1], function()
      local got, err = v(c[1])
      assert.is_nil(err)
      if c[3] then assert.same(c[3], got) else assert.equals(c[2], got) end
    end)
  end

  it("makes integers where they fit, floats elsewhere", function()
    if not HAS_INTEGERS then return pending("Lua " .. _VERSION:match("%d.%d") .. " has no integer subtype") end
    for _, c in ipairs({ { "42", "integer" }, { "-0", "integer" }, { "2.0", "integer" }, { "1e2", "integer" },
      { "9223372036854775807", "integer" }, { "-9223372036854775808", "integer" },
      { "9223372036854775808", "float" }, { "1.5", "float" }, { "1e300", "float" } }) do
      assert.equals(c[2], math.type((v(c[1]))), c[1])
    end
    assert.equals(math.maxinteger, (v("9223372036854775807")))
    assert.equals(math.mininteger, (v("-9223372036854775808")))
  end)

  local broken = {
    "01", "-", "+1", "1.", ".5", "1e", "0x10", "NaN", "Infinity", "-Infinity", "tru", "nul", "True",
    '"unterminated', '"bad \\x escape"', '"\\u12"', '"\\uZZZZ"', '"\\ud83d"', '"\\ude00"', '"\\ud83d\\u0041"',
    '"tab\there"', '"new\nline"', "[1,]", "[1 2]", '{"a":1,}', '{"a" 1}', "{a:1}", "{'a':1}", "[", "{",
    '"a"\0', "1 2", "// comment",
  }
  for _, json in ipairs(broken) do
    it("refuses " .. json:gsub("%c", "?"), function()
      local got, err = v(json)
      assert.is_nil(got)
      assert.equals("protocol", err.kind)
      assert.is_truthy(err.message:find("^answer is not JSON %(.- at byte %d+%)$"), err.message)
    end)
  end

  -- Containers are built at their final size once their elements are
  -- counted, up to a limit, and filled as they come past it: both ways, and
  -- the change between them, must give the same tables.
  describe("large containers", function()
    local function array_case(n)
      local parts, want = {}, {}
      for i = 1, n do
        if i % 7 == 0 then parts[i] = "null" else parts[i] = tostring(i); want[i] = i end
      end
      return "[" .. table.concat(parts, ",") .. "]", want
    end
    for _, n in ipairs({ 1, 255, 256, 257, 300, 1000 }) do
      it("reads an array of " .. n .. " elements with nulls in it", function()
        local json, want = array_case(n)
        assert.same(want, (v(json)))
      end)
    end
    it("reads wide containers nested deep, past what the stack holds at once", function()
      local depth, width = 60, 250
      local json = ("[" .. ("1,"):rep(width)):rep(depth) .. "0" .. ("]"):rep(depth)
      local got = v(json)
      for level = 1, depth do
        assert.equals(width + 1, #got, "level " .. level)
        assert.equals(1, got[width])
        got = got[width + 1]
      end
      assert.equals(0, got)
    end)
    for _, n in ipairs({ 127, 128, 129, 200, 600 }) do
      it("reads an object of " .. n .. " members, nulls and repeated names in it", function()
        local parts, want = {}, {}
        for i = 1, n do
          local name = "m" .. (i % 50 == 0 and "dup" or tostring(i))
          if i % 9 == 0 then parts[#parts + 1] = ('"%s":null'):format(name)
          else parts[#parts + 1] = ('"%s":%d'):format(name, i); want[name] = i end
        end
        assert.same(want, (v("{" .. table.concat(parts, ",") .. "}")))
      end)
    end
  end)

  -- Generated documents, encoded by lua-cjson, must come back as the
  -- values they were made from, nulls left out. A fixed seed keeps every
  -- run the same; sizes cross the staging limit now and then.
  it("gives back generated documents as lua-cjson encoded them", function()
    local cjson = require("cjson")
    local seed = 12345
    local function rand(n) -- a small LCG: the same numbers on every Lua
      seed = (seed * 1103515245 + 12345) % 2147483648
      return math.floor(seed / 65536) % n + 1 -- the high bits: the low ones of an LCG cycle
    end
    local pieces = { "a", "lease", "uuid", "é", "€", "\"", "\\", "/", "\n", "\t", "\1", "x y", "😀", "" }
    local function text()
      local t = {}
      for i = 1, rand(6) - 1 do t[i] = pieces[rand(#pieces)] end
      return table.concat(t)
    end
    local gen
    local function container(depth, is_array)
      local enc, want = {}, {}
      local n = (depth == 0 and rand(8) == 1) and 250 + rand(20) or rand(6) - 1 -- large ones only on top
      for i = 1, n do
        local e, w = gen(depth + 1)
        if is_array then enc[i], want[i] = e, w
        else local k = text() .. i; enc[k], want[k] = e, w end
      end
      if is_array and n == 0 then enc = cjson.empty_array or {} end
      return enc, want
    end
    gen = function(depth)
      local kind = rand(depth > 5 and 5 or 7)
      if kind == 1 then return cjson.null, nil
      elseif kind == 2 then local b = rand(2) == 1; return b, b
      elseif kind == 3 then local i = rand(2000000) - 1000000; return i, i
      elseif kind == 4 then local f = (rand(4000) - 2000) / 8; return f, f
      elseif kind == 5 then local t = text(); return t, t
      else return container(depth, kind == 6) end
    end
    for round = 1, 300 do
      local enc, want = container(0, rand(2) == 1)
      local got, err = decode(200, '{"success":true,"payload":[' .. cjson.encode(enc) .. "]}")
      assert.is_nil(err, "round " .. round)
      assert.same(want, got[1], "round " .. round)
    end
  end)

  -- Member names are kept between decodes (answers repeat them for every
  -- lease); what comes out must never depend on what was decoded before.
  describe("member names seen before", function()
    local function names_doc(names)
      local parts, want = {}, {}
      for i, name in ipairs(names) do
        parts[i] = ('"%s":%d'):format(name, i)
        want[name] = i
      end
      return "{" .. table.concat(parts, ",") .. "}", want
    end
    it("keeps names apart that share length, start and end", function()
      local json, want = names_doc({ "abcdefgh_1_stuvwxyz", "abcdefgh_2_stuvwxyz", "abcdefgh_3_stuvwxyz", "ab", "ba" })
      for _ = 1, 3 do assert.same(want, (v(json))) end
    end)
    it("gives the same tables with more names than it keeps, across collections", function()
      local names = {}
      for i = 1, 2000 do names[i] = "field_" .. i end
      local json, want = names_doc(names)
      for _ = 1, 3 do
        assert.same(want, (v(json)))
        collectgarbage("collect")
      end
    end)
    it("handles long names and escaped names", function()
      local long40, long41 = ("n"):rep(40), ("n"):rep(41)
      local json = ('{"%s":1,"%s":2,"caf\\u00e9":3,"café":4,"a\\u0000b":5}'):format(long40, long41)
      for _ = 1, 2 do
        local got = v(json)
        assert.equals(1, got[long40])
        assert.equals(2, got[long41])
        assert.equals(4, got["café"]) -- the same name twice: the last wins
        assert.equals(5, got["a\0b"])
      end
    end)
  end)

  it("refuses a body with more after the value", function()
    local leases, err = decode(200, '{"success":true,"payload":[]} {}')
    assert.is_nil(leases)
    assert.is_truthy(err.message:find("unexpected data after the value", 1, true))
  end)
end)

describe("a search page #c", function()
  local function page(payload) return decode(200, '{"success":true,"payload":' .. payload .. "}", nil, "page") end

  it("is the payload, total a whole number and data a list of leases", function()
    local p = page('{"take":100,"skip":0,"mode":"AND","total":2,"data":[{"uuid":"a"},{"uuid":"b","tn":{"tn":12125550001}}]}')
    assert.equals(2, p.total)
    assert.equals("AND", p.mode)
    assert.equals("b", p.data[2].uuid)
    if math.type then assert.equals("integer", math.type(p.total)) end
    assert.same({}, page('{"total":0,"data":[]}').data)
  end)

  for _, c in ipairs({
    { '[{"uuid":"a"}]', "'total' is not a whole number" }, { '"x"', "is not a search page" },
    { '{"data":[]}', "'total' is not a whole number" },
    { '{"total":1.5,"data":[]}', "'total' is not a whole number" }, { '{"total":-1,"data":[]}', "whole number" },
    { '{"total":"2","data":[]}', "whole number" }, { '{"total":1}', "'data' is not a list of leases" },
    { '{"total":2,"data":[{"uuid":"a"},null]}', "'data' is not a list of leases" },
    { '{"total":1,"data":["a"]}', "'data' is not a list of leases" },
  }) do
    it("refuses " .. c[1], function()
      local p, err = page(c[1])
      assert.is_nil(p)
      assert.equals("protocol", err.kind)
      assert.is_truthy(err.message:find(c[2], 1, true), err.message)
    end)
  end
end)

describe("a list read for its uuids only #c", function()
  local function uuids(body, status) return decode(status or 200, body, nil, "uuids") end

  it("gives the leases' uuids without decoding the rest", function()
    local got = uuids('{"success":true,"payload":[{"uuid":"a","tn":{"tn":1,"x":[1,2.5e3,{"y":null}]},"s":"\\u00e9\\""},'
      .. '{"n":-0.5,"uuid":"b"}],"extra":{"k":[true,false,null]}}')
    assert.same({ "a", "b" }, got)
    assert.same({}, uuids(' { "payload" : [ ] , "success" : true } '))
  end)

  -- whatever cannot be skimmed is decoded in full: the same leases, or the same error
  for _, body in ipairs({
    '{"success":true,"payload":["u1","u2"]}', '{"success":true,"payload":[{"uuid":"a\\u0062"}]}',
    '{"success":true,"payload":[{"uuid":"a","uuid":"b"}]}', '{"success":true,"payload":[{"uu\\u0069d":"x","uuid":"y"}]}',
    '{"success":true,"payload":[{"uuid":"a"}],"payload":[]}', '{"success":true,"payload":[{"x":1}]}',
    '{"success":true,"payload":[{"uuid":"a"},null]}', '{"success":true,"payload":[{"uuid":"a"}]} x',
    '{"success":true,"payload":[{"uuid":"a","b":01}]}', '{"success":true,"payload":[{"uuid":"a","b":1e999}]}',
    '{"success":true,"payload":[{"uuid":"a","b":"\1"}]}', '{"success":true,"payload":[{"uuid":"a","b":"\\x"}]}',
    '{"success":true,"payload":[{"uuid":"a","b":"\\ud800"}]}', '{"success":false,"message":"no"}',
    '{"success":true}', '[{"uuid":"a"}]', '{"success":true,"payload":[{"uuid":"a"}],"success":false}',
  }) do
    it("reads " .. body .. " as a full decoding does", function()
      local full, ferr = decode(200, body)
      local got, err = uuids(body)
      if not full then
        assert.is_nil(got)
        assert.equals(ferr.message, err.message)
      else
        assert.equals(#full, #got)
        for i = 1, #full do
          local u = got[i]
          if type(u) == "table" then u = u.uuid end
          assert.equals(full[i].uuid, u)
        end
      end
    end)
  end

  it("gives an error status its error", function()
    local got, err = uuids('{"success":false,"message":"SIP connection not found"}', 404)
    assert.is_nil(got)
    assert.equals("not_found", err.kind)
  end)
end)

describe("answers cut inside a value #c", function()
  -- the error is placed at the end of the text, so an answer cut by a
  -- closing server is told from a malformed one (and retried)
  for _, body in ipairs({ '{"success":tr', '{"success":true,"payload":[{"uuid":"a","x":nul',
    '{"success":true,"payload":[{"uuid":"a","x":-', '{"success":true,"payload":[{"uuid":"a","x":1.',
    '{"success":true,"payload":[{"uuid":"a","x":"caf\\', '{"success":true,"payload":[{"uuid":"a","x":"caf\\u00',
    '{"success":true,"payload":[{"uuid":"a","x":"\\ud83d', '{"success":true,"payload":[{"uuid":"a","x":"\\ud83d\\u',
    '{"success":true,"payload":[{"uuid":"a","x":"\\ud83d\\ude' }) do
    it("reads " .. body .. " as ended, not as a bad character", function()
      local leases, err, cut = decode(200, body)
      assert.is_nil(leases)
      assert.is_true(cut, err.message)
      local at = tonumber(err.message:match("at byte (%d+)%)$"))
      assert.is_true(at > #body, err.message)
    end)
  end

  it("says so as a third result, which a malformed or whole answer never has", function()
    local _, err, cut = decode(200, '{"success":true,"payload":[{"uuid":"a"}')
    assert.equals("protocol", err.kind)
    assert.is_true(cut)
    _, _, cut = decode(200, "")
    assert.is_true(cut)
    for _, body in ipairs({ '{"success":true,"payload":[]}x', "<html>", '{"success":true,"payload":[{"n":NaN}]}',
      '{"success":true}' }) do
      local leases
      leases, err, cut = decode(200, body)
      assert.is_nil(leases)
      assert.equals("protocol", err.kind)
      assert.is_nil(cut, body)
    end
    -- not a 2xx: the status is the error, cut or not
    _, err, cut = decode(503, '{"success":false,"payload":[')
    assert.equals("server", err.kind)
    assert.is_nil(cut)
    -- skimmed for uuids, the same
    _, _, cut = decode(200, '{"success":true,"payload":[{"uuid":"a"}', nil, "uuids")
    assert.is_true(cut)
  end)

  it("still calls a bad escape bad where it is, when the text ends right after it", function()
    for _, body in ipairs({ '{"success":true,"payload":[{"x":"\\uZZ', '{"success":true,"payload":[{"x":"\\ud83d\\n' }) do
      local _, err, cut = decode(200, body)
      assert.matches("bad escape", err.message)
      assert.is_nil(cut, err.message)
      assert.is_true(tonumber(err.message:match("at byte (%d+)%)$")) <= #body, err.message)
    end
  end)

  it("says a lease or login payload of the wrong type is not one, without raising", function()
    for _, shape in ipairs({ "lease", "auth" }) do
      for _, payload in ipairs({ "5", "true", "null", '"x"' }) do
        local got, err = decode(200, '{"success":true,"payload":' .. payload .. "}", nil, shape)
        assert.is_nil(got)
        assert.equals("protocol", err.kind)
        assert.matches("payload", err.message)
      end
    end
  end)
end)
