-- The local emulator: every route, status and fault, over real sockets
-- with a plain HTTP client (LuaSocket), so the emulator is checked on its
-- own and not through the library it serves.
local support = require("emulator")
local cjson = require("cjson")
local socket = require("socket")

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- One raw HTTP/1.1 exchange; returns the whole answer text as received,
-- and how the connection ended.
local function exchange(emu, request)
  local s = assert(socket.connect("127.0.0.1", emu.port))
  s:settimeout(5)
  assert(s:send(request))
  local chunks = {}
  while true do
    local data, err, partial = s:receive(8192)
    chunks[#chunks + 1] = data or partial
    if not data then
      s:close()
      return table.concat(chunks), err
    end
  end
end

describe("the emulator", function()
  local emu, conns, leases

  local function api(method, uuid, body, headers)
    local h = { ["x-auth-token"] = emu.token }
    if body then h["content-type"] = "application/json" end
    for k, v in pairs(headers or {}) do h[k] = v or nil end
    local status, text, resp_headers = emu:raw(method, "/sip/connection/" .. uuid .. "/tnlease", h, body)
    local ok, decoded = pcall(cjson.decode, text)
    return status, ok and decoded or text, resp_headers, text
  end

  setup(function()
    emu = support.start()
    local st = emu:state()
    conns, leases = st.connections, st.leases
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  describe("start and stop", function()
    it("prints where it listens", function()
      assert.equals("listening on http://127.0.0.1:" .. emu.port, emu.line)
    end)

    it("answers --help and refuses bad arguments with status 2", function()
      local p = io.popen(support.ROOT .. "/bin/opentact-emulator --help; echo \"status=$?\"")
      local out = p:read("*a")
      p:close()
      assert.is_truthy(out:find("Usage: opentact-emulator", 1, true))
      assert.is_truthy(out:find("status=0", 1, true))
      for _, bad in ipairs({ "--port 0", "--port x", "--leases -1", "--latency abc", "--bogus", "--token 'a b'" }) do
        p = io.popen(support.ROOT .. "/bin/opentact-emulator " .. bad .. " 2>&1; echo \"status=$?\"")
        out = p:read("*a")
        p:close()
        assert.is_truthy(out:find("status=2", 1, true), bad .. ": " .. out)
      end
    end)

    it("stops on SIGTERM leaving no process and no files", function()
      local other = support.start({ connections = 1, leases = 1 })
      finally(function() other:stop() end)
      local p = io.popen("ps -o pid= --ppid " .. other.pid)
      local nginx_pid = tonumber(p:read("*a"):match("%d+"))
      p:close()
      assert.is_number(nginx_pid)
      local f = assert(io.open("/proc/" .. nginx_pid .. "/cmdline"))
      local cmdline = f:read("*a")
      f:close()
      local prefix = cmdline:match("%-p[%z ]([^%z ]+)")
      assert.is_string(prefix)
      other:stop()
      local gone = io.popen("kill -0 " .. nginx_pid .. " 2>/dev/null || echo gone; ls -d " .. prefix .. " 2>/dev/null || echo removed")
      local out = gone:read("*a")
      gone:close()
      assert.equals("gone\nremoved\n", out)
    end)

    it("refuses a port already in use", function()
      local p = io.popen(support.ROOT .. "/bin/opentact-emulator --port " .. emu.port .. " 2>&1; echo \"status=$?\"")
      local out = p:read("*a")
      p:close()
      assert.is_truthy(out:find("status=1", 1, true), out)
      assert.is_truthy(out:find("did not start", 1, true), out)
    end)
  end)

  describe("seed", function()
    it("has 4 connections and 100 deterministic leases, the first holding 3", function()
      local st = emu:state()
      assert.equals(4, #st.connections)
      assert.equals(100, #st.leases)
      for _, u in ipairs(st.connections) do assert.is_truthy(u:find(UUID)) end
      for _, u in ipairs(st.leases) do assert.is_truthy(u:find(UUID)) end
      assert.same({ leases[1], leases[2], leases[3] }, st.assigned[conns[1]])
      assert.same({}, st.assigned[conns[2]])
      local other = support.start({ connections = 2, leases = 5 })
      finally(function() other:stop() end)
      local st2 = other:state()
      assert.same({ conns[1], conns[2] }, st2.connections)
      assert.same({ leases[1], leases[2], leases[3], leases[4], leases[5] }, st2.leases)
    end)

    it("serves the full lease object with realistic values", function()
      local status, body, _, text = api("GET", conns[1])
      assert.equals(200, status)
      assert.is_true(body.success)
      local l = body.payload[1]
      for _, k in ipairs({ "created_on", "modified_on", "expired_on", "uuid", "autorenew",
        "class4_product_item_id", "tn", "account", "tnorder", "messaging_profile", "sip_connection",
        "sip_control_app", "created_by", "modified_by" }) do
        assert.is_true(l[k] ~= nil, k)
      end
      assert.equals(cjson.null, l.messaging_profile)
      assert.equals(cjson.null, l.sip_control_app)
      assert.is_truthy(text:find('"tn":12125550001,', 1, true))
      assert.is_truthy(text:find("Société Télécom Ünïon", 1, true))
      assert.is_truthy(text:find('"users":[]', 1, true))
      assert.is_truthy(l.expired_on:find("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"))
    end)
  end)

  describe("API", function()
    local function assert_failure(status, want_status, body, text_pattern)
      assert.equals(want_status, status)
      assert.is_false(body.success)
      assert.equals(want_status, body.status)
      assert.is_string(body.message)
      if text_pattern then assert.is_truthy(body.message:find(text_pattern, 1, true), body.message) end
    end

    it("401 without a token or with a wrong one", function()
      local status, body = api("GET", conns[1], nil, { ["x-auth-token"] = false })
      assert_failure(status, 401, body)
      status, body = api("GET", conns[1], nil, { ["x-auth-token"] = "nope" })
      assert_failure(status, 401, body)
      status, body = api("POST", conns[1], '{"add":[]}', { ["x-auth-token"] = "nope" })
      assert_failure(status, 401, body)
    end)

    it("400 for a uuid off the pattern, upper-case included", function()
      for _, u in ipairs({ conns[1]:upper(), "abc", conns[1] .. "0", (conns[1]:gsub("-", "")) }) do
        local status, body = api("GET", u)
        assert_failure(status, 400, body, "uuid")
      end
    end)

    it("404 for an unknown connection", function()
      local status, body = api("GET", "66eb0a8a-571e-41b1-8f50-4d97275cfab7")
      assert_failure(status, 404, body, "SIP connection not found")
    end)

    it("400 for an unknown lease, naming it, and changes nothing", function()
      local unknown = "0a1b2c3d-0000-4000-8000-00000000ffff"
      local status, body = api("POST", conns[2], cjson.encode({ add = { leases[9], unknown } }))
      assert_failure(status, 400, body, unknown)
      assert.same({}, emu:state().assigned[conns[2]])
    end)

    it("400 for bodies that are not JSON or not the documented shape", function()
      local bad = { "", "not json", "[]", '{"add":"x"}', '{"add":[1]}', '{"foo":[]}', '{"add":[],"remove":[]}',
        '{"add":["' .. leases[1]:upper() .. '"]}' }
      for _, b in ipairs(bad) do
        local status, body = api("POST", conns[1], b)
        assert_failure(status, 400, body)
      end
      local status, body = api("POST", conns[1], '{"add":["' .. leases[5] .. '"]}', { ["content-type"] = "text/plain" })
      assert_failure(status, 400, body, "Content-Type")
    end)

    it("add moves a lease and answers the named leases in their new state", function()
      local status, body = api("POST", conns[2], cjson.encode({ add = { leases[1], leases[7] } }))
      assert.equals(200, status)
      assert.equals(2, #body.payload)
      assert.equals(leases[1], body.payload[1].uuid)
      assert.equals(conns[2], body.payload[1].sip_connection.uuid)
      assert.equals(conns[2], body.payload[2].sip_connection.uuid)
      local st = emu:state()
      assert.same({ leases[2], leases[3] }, st.assigned[conns[1]])
      assert.same({ leases[1], leases[7] }, st.assigned[conns[2]])
    end)

    it("remove detaches a lease only from its own connection", function()
      local status, body = api("POST", conns[2], cjson.encode({ remove = { leases[1] } }))
      assert.equals(200, status)
      assert.equals(conns[1], body.payload[1].sip_connection.uuid)
      status, body = api("POST", conns[1], cjson.encode({ remove = { leases[1] } }))
      assert.equals(200, status)
      assert.equals(cjson.null, body.payload[1].sip_connection)
      assert.same({ leases[2], leases[3] }, emu:state().assigned[conns[1]])
    end)

    it("answers list under /rest too", function()
      local status = emu:raw("GET", "/rest/sip/connection/" .. conns[1] .. "/tnlease", { ["x-auth-token"] = emu.token })
      assert.equals(200, status)
    end)

    it("reset brings the seed back", function()
      api("POST", conns[1], cjson.encode({ remove = { leases[1], leases[2], leases[3] } }))
      assert.same({}, emu:state().assigned[conns[1]])
      emu:reset()
      assert.same({ leases[1], leases[2], leases[3] }, emu:state().assigned[conns[1]])
      local _, body = api("GET", conns[1])
      assert.equals(3, #body.payload)
    end)
  end)

  describe("faults", function()
    local get = function(uuid)
      return ("GET /sip/connection/%s/tnlease HTTP/1.1\r\nHost: e\r\nX-Auth-Token: %s\r\n\r\n"):format(uuid, emu.token)
    end

    it("status with Retry-After, consumed by one request each", function()
      local code, queued = emu:faults({ { status = 503, retry_after = "2" }, { status = 429 } })
      assert.equals(200, code)
      assert.equals(2, queued.queued)
      local status, body, headers = api("GET", conns[1])
      assert.equals(503, status)
      assert.is_false(body.success)
      assert.equals("2", headers["retry-after"])
      status = api("GET", conns[1])
      assert.equals(429, status)
      status = api("GET", conns[1])
      assert.equals(200, status)
    end)

    it("a status fault on assign leaves the state unchanged", function()
      emu:faults({ { status = 503 } })
      local status = api("POST", conns[2], cjson.encode({ add = { leases[9] } }))
      assert.equals(503, status)
      assert.same({}, emu:state().assigned[conns[2]])
    end)

    it("status with an HTML body", function()
      emu:faults({ { status = 502, body = "<html>bad gateway</html>" } })
      local status, _, headers, text = api("GET", conns[1])
      assert.equals(502, status)
      assert.equals("<html>bad gateway</html>", text)
      assert.is_truthy(headers["content-type"]:find("text/html", 1, true))
    end)

    it("delay", function()
      emu:faults({ { delay = 0.3 } })
      local t0 = socket.gettime()
      local status = api("GET", conns[1])
      assert.equals(200, status)
      assert.is_true(socket.gettime() - t0 >= 0.29)
    end)

    it("reset closes without answering", function()
      emu:faults({ { reset = true } })
      local text, how = exchange(emu, get(conns[1]))
      assert.equals("", text)
      assert.equals("closed", how)
    end)

    it("truncate promises a length, sends half and closes", function()
      emu:faults({ { truncate = true } })
      local text, how = exchange(emu, get(conns[1]))
      assert.equals("closed", how)
      local head, body = text:match("^(.-)\r\n\r\n(.*)$")
      local length = tonumber(head:match("[Cc]ontent%-[Ll]ength: (%d+)"))
      assert.is_number(length)
      assert.is_true(#body > 0 and #body < length)
    end)

    it("raw sends any body with any status and content type", function()
      emu:faults({ { raw = "<html>maintenance</html>", status = 200, ctype = "text/html" } })
      local status, _, headers, text = api("GET", conns[1])
      assert.equals(200, status)
      assert.equals("<html>maintenance</html>", text)
      assert.is_truthy(headers["content-type"]:find("text/html", 1, true))
    end)

    it("chunked sends the answer in chunks", function()
      emu:faults({ { chunked = true } })
      local text = exchange(emu, get(conns[1]):gsub("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n"))
      assert.is_truthy(text:lower():find("transfer%-encoding: chunked"))
      local _, body = api("GET", conns[1])
      assert.equals(3, #body.payload)
    end)

    it("refuses a fault list that is not a list", function()
      assert.equals(400, (emu:faults({ status = 503 })))
      assert.equals(400, (emu:admin("POST", "faults", "nope")))
      assert.equals(0, emu:stats().faults_pending)
    end)
  end)

  describe("admin", function()
    it("counts requests and logs them without the token", function()
      api("GET", conns[1])
      api("POST", conns[1], cjson.encode({ add = { leases[4] } }))
      local stats = emu:stats()
      assert.equals(2, stats.requests)
      assert.equals(1, stats.inflight_max)
      local log = emu:requests()
      assert.equals(2, #log)
      assert.equals("valid", log[1].token)
      assert.equals('{"add":["' .. leases[4] .. '"]}', log[2].body)
      assert.is_falsy(cjson.encode(log):find(emu.token, 1, true))
    end)

    it("sees requests in flight at once", function()
      emu:config({ latency = 0.3 })
      local socks = {}
      for i = 1, 4 do
        socks[i] = assert(socket.connect("127.0.0.1", emu.port))
        socks[i]:send(("GET /sip/connection/%s/tnlease HTTP/1.1\r\nHost: e\r\nX-Auth-Token: %s\r\nConnection: close\r\n\r\n")
          :format(conns[1], emu.token))
      end
      for _, s in ipairs(socks) do
        s:settimeout(5)
        s:receive("*a")
        s:close()
      end
      emu:config({ latency = 0 })
      assert.equals(4, emu:stats().inflight_max)
    end)

    it("404 for an unknown route", function()
      assert.equals(404, (emu:admin("GET", "nope")))
    end)
  end)
end)
