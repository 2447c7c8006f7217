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

  setup(function() emu, conns, leases = support.start_with_uuids() end)
  teardown(function() support.stop(emu) end)
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
      assert.is_truthy(out:find("--user EMAIL:PASSWORD", 1, true))
      assert.is_truthy(out:find("--token-ttl SECONDS", 1, true))
      for _, bad in ipairs({ "--port 0", "--port x", "--leases -1", "--latency abc", "--bogus", "--token 'a b'",
        "--apps x", "--max-page 0", "--max-page -5", "--user nocolon", "--user :pw", "--user 'a b:pw'",
        "--user a@b.c:", "--user \"$(printf 'a@b.c:p\\tw')\"", "--user a@b.c:x --user a@b.c:y", "--token-ttl 0",
        "--token-ttl x", "--token-ttl 1.5" }) do
        p = io.popen(support.ROOT .. "/bin/opentact-emulator " .. bad .. " 2>&1; echo \"status=$?\"")
        out = p:read("*a")
        p:close()
        assert.is_truthy(out:find("status=2", 1, true), bad .. ": " .. out)
      end
    end)

    -- The command lines of a process and all its descendants.
    local function command_lines(pid)
      local children, args = {}, {}
      for line in support.sh("ps -eo pid=,ppid=,args="):gmatch("[^\n]+") do
        local p, pp, a = line:match("^%s*(%d+)%s+(%d+)%s?(.*)$")
        if p then
          children[pp] = children[pp] or {}
          table.insert(children[pp], p)
          args[p] = a
        end
      end
      local out, todo = {}, { tostring(pid) }
      while #todo > 0 do
        local p = table.remove(todo)
        out[#out + 1] = args[p]
        for _, c in ipairs(children[p] or {}) do todo[#todo + 1] = c end
      end
      return out
    end

    for _, via in ipairs({ "env", "file" }) do
      it("takes the token and users from " .. (via == "env" and "the environment" or "files")
        .. ", and no command line shows them", function()
        local token = "tok-" .. via .. "-Zq81x"
        local users = { "ada@example.com:pw with spaces:and colons", "bob@example.com:" .. via .. "-hunter2" }
        local other = support.start({ connections = 1, leases = 3, token = token, users = users, secrets = via })
        finally(function() other:stop() end)
        for _, a in ipairs(other.args) do
          assert.is_falsy(a:find("--token ", 1, true) or a:find("--user ", 1, true), a)
        end
        local conn = other:state().connections[1]
        assert.equals(200, (other:raw("GET", "/sip/connection/" .. conn .. "/tnlease", { ["x-auth-token"] = token })))
        assert.equals(401, (other:raw("GET", "/sip/connection/" .. conn .. "/tnlease",
          { ["x-auth-token"] = "emulator-token" })))
        for _, u in ipairs(users) do
          local email, password = u:match("^([^:]+):(.*)$")
          local status, body = other:login(email, password)
          assert.equals(200, status)
          assert.equals(200, (other:raw("GET", "/sip/connection/" .. conn .. "/tnlease",
            { ["x-auth-token"] = body.payload.token })))
        end
        -- the emulator, nginx's master and worker: none shows a secret
        local lines = command_lines(other.pid)
        assert.is_true(#lines >= 3, table.concat(lines, "\n"))
        local text = table.concat(lines, "\n")
        assert.is_truthy(text:find("opentact-emulator", 1, true), text)
        for _, secret in ipairs({ token, "pw with spaces", via .. "-hunter2" }) do
          assert.is_falsy(text:find(secret, 1, true), secret .. " in:\n" .. text)
        end
        -- nor does the banner
        local banner = support.slurp(other.log)
        assert.is_falsy(banner:find(token, 1, true), banner)
        assert.is_falsy(banner:find("hunter2", 1, true), banner)
      end)
    end

    it("refuses bad token and user files and variables with status 2, showing no secret", function()
      local function run(prefix, args)
        return support.run(prefix .. support.ROOT .. "/bin/opentact-emulator --port " .. support.free_port() .. " " .. args)
      end
      local good_token = support.tmpfile("file-token\n")
      local spaced = support.tmpfile("two words\n")
      local empty = support.tmpfile("")
      local bad_users = support.tmpfile("ada@example.com:fine-pw\n\nnocolon-secret-pw\n")
      local twice = support.tmpfile("ada@example.com:one-secret\nada@example.com:two-secret\n")
      finally(function()
        for _, f in ipairs({ good_token, spaced, empty, bad_users, twice }) do os.remove(f) end
      end)
      for _, case in ipairs({
        { "", "--token-file /nonexistent/token", "cannot read" },
        { "", "--token-file " .. empty, "empty" },
        { "", "--token-file " .. spaced, "--token-file" },
        { "", "--token t --token-file " .. good_token, "not both" },
        { "", "--user-file /nonexistent/users", "cannot read" },
        { "", "--user-file " .. bad_users, "line 3" },
        { "", "--user-file " .. twice, "given twice" },
        { "OPENTACT_EMULATOR_TOKEN='a b' ", "", "OPENTACT_EMULATOR_TOKEN" },
        { "OPENTACT_EMULATOR_USER='x@y.z:ok-pw\nnocolon-secret-pw' ", "", "OPENTACT_EMULATOR_USER line 2" },
      }) do
        local out, status = run(case[1], case[2])
        assert.equals(2, status, case[2] .. ": " .. out)
        assert.is_truthy(out:find(case[3], 1, true), case[3] .. " not in: " .. out)
        for _, secret in ipairs({ "secret", "two words", "fine-pw" }) do
          assert.is_falsy(out:find(secret, 1, true), secret .. " in: " .. out)
        end
      end
    end)

    it("says in --help where else the token and users come from, and that ps shows the flags", function()
      local out = support.sh(support.ROOT .. "/bin/opentact-emulator --help")
      for _, want in ipairs({ "--token-file F", "--user-file F", "OPENTACT_EMULATOR_TOKEN", "OPENTACT_EMULATOR_USER",
        "ps" }) do
        assert.is_truthy(out:find(want, 1, true), want)
      end
    end)

    it("with users, prints what it prints without them and how to log in as one, never a password", function()
      local users = { "ada@example.com:ada-secret-pw", "bob@example.com:bob-secret-pw" }
      -- one finally: busted keeps only the last one a test gives
      local plain, with
      finally(function()
        if plain then plain:stop() end
        if with then with:stop() end
      end)
      plain = support.start({ connections = 2, leases = 5 })
      with = support.start({ connections = 2, leases = 5, users = users })
      local function banner(e)
        -- printed after "listening on": read until its last line is there
        for _ = 1, 100 do
          local text = support.slurp(e.log) or ""
          if text:find("Every uuid: ", 1, true) then
            return (text:gsub(":" .. e.port, ":PORT"))
          end
          socket.sleep(0.05)
        end
        error("no banner in " .. e.log)
      end
      local p, w = banner(plain), banner(with)
      -- every line printed without users is printed with them
      for line in p:gmatch("[^\n]+") do
        assert.is_truthy(w:find(line, 1, true), line .. "\nnot in:\n" .. w)
      end
      assert.is_truthy(w:find("sip-trunk-1", 1, true))
      -- and how to log in with the CLI, as each user
      for _, want in ipairs({ "export OPENTACT_URL=http://127.0.0.1:PORT; unset OPENTACT_TOKEN",
        "opentact login --email ada@example.com", "bob@example.com" }) do
        assert.is_truthy(w:find(want, 1, true), want .. "\nnot in:\n" .. w)
      end
      assert.is_falsy(p:find("opentact login", 1, true), p)
      assert.is_falsy(w:find("secret", 1, true), w)
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

    it("starts under POSIXLY_CORRECT and in a TMPDIR with a space, and leaves nothing there", function()
      local tmp = support.sh("mktemp -d"):gsub("%s+$", "") .. "/a dir"
      support.finally(finally, function() os.execute("rm -rf '" .. tmp:gsub("/a dir$", "") .. "'") end)
      assert(os.execute("mkdir '" .. tmp .. "'"))
      local log = os.tmpname()
      support.finally(finally, function() os.remove(log) end)
      local port = support.free_port()
      local pid = tonumber(support.sh(("POSIXLY_CORRECT=1 TMPDIR='%s' %s/bin/opentact-emulator --port %d > %s 2>&1 & "
        .. "echo $!"):format(tmp, support.ROOT, port, log)):match("%d+"))
      support.finally(finally, function() os.execute("kill -TERM " .. pid .. " 2>/dev/null") end)
      local text = ""
      for _ = 1, 600 do
        text = support.slurp(log) or ""
        if text:find("Every uuid", 1, true) or support.gone(pid) then break end
        socket.sleep(0.02)
      end
      assert.is_truthy(text:find("listening on http://127.0.0.1:" .. port, 1, true), text)
      assert.equals(200, (support.http_json("GET", "http://127.0.0.1:" .. port .. "/__emulator/stats")))
      assert.matches("^opentact%-emulator%.", support.sh("ls '" .. tmp .. "'"))
      os.execute("kill -TERM " .. pid)
      assert.is_true(support.wait_gone(pid, 10))
      assert.equals("", support.sh("ls '" .. tmp .. "'"))
    end)

    it("refuses a TMPDIR nginx.conf cannot name", function()
      local out, status = support.run(("TMPDIR='/tmp/x\"y' %s/bin/opentact-emulator --port %d")
        :format(support.ROOT, support.free_port()))
      assert.equals(2, status, out)
      assert.matches("TMPDIR has a character nginx.conf cannot take", out, 1, true)
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
      -- two control apps, holding nothing
      assert.equals(2, #st.apps)
      for _, u in ipairs(st.apps) do assert.same({}, st.app_assigned[u]) end
      assert.equals(100, #st.numbers)
      for i, n in ipairs(st.numbers) do assert.equals(12125550000 + i, n) end
      local other = support.start({ connections = 2, leases = 5, apps = 4 })
      finally(function() other:stop() end)
      local st2 = other:state()
      assert.same({ conns[1], conns[2] }, st2.connections)
      assert.same({ leases[1], leases[2], leases[3], leases[4], leases[5] }, st2.leases)
      -- app k holds lease 5 - k + 1, but not the ones the first connection holds
      assert.equals(4, #st2.apps)
      for _, u in ipairs(st2.apps) do assert.is_truthy(u:find(UUID)) end
      assert.same({ leases[5] }, st2.app_assigned[st2.apps[1]])
      assert.same({ leases[4] }, st2.app_assigned[st2.apps[2]])
      assert.same({}, st2.app_assigned[st2.apps[3]])
      assert.same({}, st2.app_assigned[st2.apps[4]])
      assert.same({ leases[1], leases[2], leases[3] }, st2.assigned[conns[1]])
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

    it("one with `on` waits for a request that matches it, in order", function()
      emu:faults({ { on = "^POST /sip/connection/", status = 503 }, { status = 429 } })
      assert.equals(200, (api("GET", conns[1])))
      assert.equals(200, (api("GET", conns[1])))
      assert.equals(2, emu:stats().faults_pending)
      assert.equals(503, (api("POST", conns[2], cjson.encode({ add = { leases[9] } }))))
      assert.equals(429, (api("GET", conns[1])))
      assert.equals(200, (api("GET", conns[1])))
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

-- The routes beyond the two of the reference page, on an emulator of its
-- own: 3 connections, 30 leases, 3 control apps, pages of at most 5. The
-- first connection holds leases 1-3; app k holds lease 31 - k.
describe("the emulator's control apps, search and lookups", function()
  local emu, conns, apps, L
  local TN = 12125550000

  -- One API request with the token; a table body is sent as JSON.
  local function request(method, path, body, headers)
    local h = { ["x-auth-token"] = emu.token }
    if type(body) == "table" then body = cjson.encode(body) end
    if body then h["content-type"] = "application/json" end
    for k, v in pairs(headers or {}) do h[k] = v or nil end
    local status, text, resp_headers = emu:raw(method, path, h, body)
    local ok, decoded = pcall(cjson.decode, text)
    return status, ok and decoded or text, resp_headers, text
  end

  local function search(filter, query)
    return request("POST", "/lease/tn/search" .. (query and "?" .. query or ""), filter)
  end

  -- The seed indexes of a page's leases, in order.
  local function indexes(leases)
    local out = {}
    for k, l in ipairs(leases) do out[k] = l.tn.tn - TN end
    return out
  end

  -- The seed index of every lease a filter finds, paging by total and by
  -- what each page returned (never by take); the pages it took; the leases.
  local function found(filter)
    local out, pages, leases = {}, 0, {}
    while true do
      local status, body = search(filter, "take=100&skip=" .. #out)
      assert.equals(200, status, type(body) == "table" and body.message or body)
      pages = pages + 1
      for _, l in ipairs(body.payload.data) do
        out[#out + 1] = l.tn.tn - TN
        leases[#leases + 1] = l
      end
      if #body.payload.data == 0 or #out >= body.payload.total then return out, pages, leases end
    end
  end

  local function range(from, to, step)
    local out = {}
    for i = from, to, step or 1 do out[#out + 1] = i end
    return out
  end

  local function assert_failure(status, want_status, body, text)
    assert.equals(want_status, status)
    assert.is_table(body)
    assert.is_false(body.success)
    assert.equals(want_status, body.status)
    if text then assert.is_truthy(body.message:find(text, 1, true), body.message) end
  end

  -- refused(want_status, text, request(...)): the answer of one request
  local function refused(want_status, text, status, body)
    return assert_failure(status, want_status, body, text)
  end

  local function lease(i)
    local status, body = request("GET", "/lease/tn/" .. L[i])
    assert.equals(200, status)
    return body.payload
  end

  setup(function()
    emu = support.start({ connections = 3, leases = 30, apps = 3, max_page = 5 })
    local st = emu:state()
    conns, apps, L = st.connections, st.apps, st.leases
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  describe("search", function()
    it("answers the first page of every lease by default, capped at max_page", function()
      local status, body = search(nil)
      assert.equals(200, status)
      assert.is_true(body.success)
      local p = body.payload
      assert.equals(100, p.take)
      assert.equals(0, p.skip)
      assert.equals("AND", p.mode)
      assert.same({ created_on = "DESC" }, p.order)
      assert.equals(30, p.total)
      assert.same({ 30, 29, 28, 27, 26 }, indexes(p.data))
      assert.same({ uuid = apps[1], name = "control-app-1" }, p.data[1].sip_control_app)
      assert.same({ uuid = apps[3], name = "control-app-3" }, p.data[3].sip_control_app)
      assert.equals(cjson.null, p.data[4].sip_control_app)
      assert.equals(cjson.null, p.data[1].sip_connection)
      assert.same({ 30, 29, 28, 27, 26 }, indexes(select(2, search({})).payload.data))
      assert.equals(200, (request("POST", "/rest/lease/tn/search?take=1", "{}")))
    end)

    it("pages by take and skip: total right, data capped, take echoed", function()
      local _, body = search({ order = { tn = "ASC" } }, "take=7&skip=0")
      assert.equals(7, body.payload.take)
      assert.equals(30, body.payload.total)
      assert.same({ 1, 2, 3, 4, 5 }, indexes(body.payload.data))
      _, body = search({ order = { tn = "ASC" } }, "take=2&skip=3")
      assert.equals(2, body.payload.take)
      assert.equals(3, body.payload.skip)
      assert.same({ 4, 5 }, indexes(body.payload.data))
      _, body = search({ order = { tn = "ASC" } }, "take=007&skip=28")
      assert.equals(7, body.payload.take)
      assert.same({ 29, 30 }, indexes(body.payload.data))
      local all, pages = found({ order = { tn = "ASC" } })
      assert.same(range(1, 30), all)
      assert.equals(6, pages)
    end)

    it("answers no leases past the end, with the total", function()
      for _, skip in ipairs({ "30", "31", "1000", "123456789012345678" }) do
        local status, body = search({}, "take=10&skip=" .. skip)
        assert.equals(200, status)
        assert.equals(30, body.payload.total)
        assert.same({}, body.payload.data)
      end
    end)

    it("400 for a take or skip that is not a whole number in range", function()
      for _, q in ipairs({ "take=0", "take=-1", "take=abc", "take=1.5", "take=", "take", "take=1&take=2",
        "skip=-1", "skip=x", "skip=", "skip=1e3" }) do
        local status, body = search({}, q)
        assert_failure(status, 400, body, q:match("^%a+"))
      end
    end)

    it("filters by each field alone", function()
      assert.same({ 7 }, found({ tn = "12125550007" }))
      assert.same({}, found({ tn = "12125550099" }))
      assert.same({ 3, 2, 1 }, found({ sip_connection = conns[1] }))
      assert.same({}, found({ sip_connection = conns[2] }))
      assert.same({ 29 }, found({ sip_control_app = apps[2] }))
      assert.same(range(30, 4, -1), found({ sip_connections_skip = { conns[1] } }))
      assert.same(range(30, 4, -1), found({ sip_connections_skip = { conns[2], conns[1] } }))
      assert.same(range(30, 1, -1), found({ sip_connections_skip = {} }))
      local renew, fixed = {}, {}
      for i = 30, 1, -1 do
        if i % 3 == 0 then fixed[#fixed + 1] = i else renew[#renew + 1] = i end
      end
      assert.same(renew, found({ autorenew = true }))
      assert.same(fixed, found({ autorenew = false }))
      assert.same(range(30, 1, -1), found({ mode = "AND" }))
      assert.same(range(30, 1, -1), found({ mode = "OR" }))
    end)

    it("matches tn masks: * any run of digits, % exactly one", function()
      local function asc(mask) return found({ tn = mask, order = { tn = "ASC" } }) end
      assert.same(range(10, 19), asc("1212555001*"))
      assert.same({ 10 }, asc("1212555001*0"))
      assert.same({ 10 }, asc("12125550010*"))
      assert.same({ 5, 15, 25 }, asc("*5"))
      assert.same(range(10, 19), asc("*1%"))
      assert.same(range(20, 29), asc("1212555002%"))
      assert.same({ 3 }, asc("%2125550003"))
      assert.same(range(1, 30), asc("*"))
      assert.same(range(1, 30), asc("1**2*"))
      assert.same({ 1, 11, 21 }, asc("1*%1"))
      assert.same({}, asc("1212555001%%"))
      assert.same({}, asc("%"))
      assert.same({}, asc("*%%%%%%%%%%%%"))
      assert.same({}, asc("**************5%%%%%%%%%%%%%%%%%%%%%%%%%%%%"))
    end)

    it("combines criteria with OR", function()
      local either = { sip_connection = conns[1], sip_control_app = apps[1], order = { tn = "ASC" } }
      assert.same({}, found(either))
      either.mode = "OR"
      assert.same({ 1, 2, 3, 30 }, found(either))
      assert.same({ 1, 2, 3, 13, 23, 30 }, found({ mode = "OR", tn = "*3", sip_connection = conns[1],
        sip_control_app = apps[1], order = { tn = "ASC" } }))
    end)

    it("orders by each field both ways, ties by seed index", function()
      assert.same(range(1, 30), found({ order = { tn = "ASC" } }))
      assert.same(range(30, 1, -1), found({ order = { tn = "DESC" } }))
      assert.same(range(1, 30), found({ order = { created_on = "ASC" } }))
      assert.same(range(30, 1, -1), found({ order = { created_on = "DESC" } }))
      -- never modified: modified_on is created_on
      assert.same(range(1, 30), found({ order = { modified_on = "ASC" } }))
      assert.same(range(30, 1, -1), found({ order = { modified_on = "DESC" } }))
      -- leases 10 and 5 changed by one request: the same modified_on
      assert.equals(200, (request("POST", "/sip/connection/" .. conns[2] .. "/tnlease", { add = { L[10], L[5] } })))
      local stamp = lease(5).modified_on
      assert.equals(stamp, lease(10).modified_on)
      for _, dir in ipairs({ "ASC", "DESC" }) do
        local got, _, leases = found({ order = { modified_on = dir } })
        assert.equals(30, #got)
        local prev
        for k, i in ipairs(got) do
          local m = leases[k].modified_on
          if prev then
            if dir == "ASC" then assert.is_true(prev.m <= m) else assert.is_true(prev.m >= m) end
            if prev.m == m then assert.is_true(prev.i < i) end
          end
          prev = { m = m, i = i }
        end
      end
    end)

    it("filters by created_on and modified_on ranges, bounds included", function()
      local from, to = lease(10).created_on, lease(12).created_on
      assert.same({ 12, 11, 10 }, found({ created_on_from = from, created_on_to = to }))
      assert.same(range(30, 10, -1), found({ created_on_from = from }))
      assert.same(range(12, 1, -1), found({ created_on_to = to }))
      assert.same({}, found({ created_on_to = "1999-12-31" }))
      assert.same(range(30, 1, -1), found({ created_on_from = "1999-12-31", created_on_to = "2999-01-01T00:00:00Z" }))
      assert.same({ 30, 29 }, found({ modified_on_from = lease(29).created_on }))
      request("POST", "/sip/connection/" .. conns[2] .. "/tnlease", { add = { L[4] } })
      local stamp = lease(4).modified_on
      assert.same({ 4 }, found({ modified_on_from = stamp, modified_on_to = stamp }))
      -- a range is one criterion, also under OR
      assert.same({ 12, 11, 10, 7 }, found({ mode = "OR", tn = "12125550007", created_on_from = from, created_on_to = to }))
    end)

    it("combines several criteria with AND", function()
      local filter = { autorenew = false, tn = "121255500%%", order = { tn = "ASC" } }
      assert.same(range(3, 30, 3), found(filter))
      filter.sip_connections_skip = { conns[1] }
      assert.same(range(6, 30, 3), found(filter))
      filter.created_on_to = lease(21).created_on
      assert.same(range(6, 21, 3), found(filter))
      filter.sip_control_app = apps[1]
      assert.same({}, found(filter))
    end)

    it("400 for an unknown field or a wrong type, naming the field", function()
      local bad = {
        { foo = 1 },
        { tn = 12125550001 }, { tn = "" }, { tn = "12a" }, { tn = "+12125550001" }, { tn = cjson.null },
        { sip_connection = 1 }, { sip_connection = conns[1]:upper() }, { sip_connection = cjson.null },
        { sip_control_app = "nope" }, { sip_control_app = { apps[1] } },
        { sip_connections_skip = conns[1] }, { sip_connections_skip = { 1 } }, { sip_connections_skip = { "x" } },
        { sip_connections_skip = { a = conns[1] } }, { sip_connections_skip = cjson.null },
        { autorenew = "true" }, { autorenew = 1 }, { autorenew = cjson.null },
        { mode = "and" }, { mode = "XOR" }, { mode = true },
        { order = "tn" }, { order = { tn = "UP" } }, { order = { tn = "asc" } }, { order = { foo = "ASC" } },
        { order = { tn = "ASC", created_on = "ASC" } }, { order = cjson.null }, { order = { "tn" } },
        { created_on_from = 5 }, { created_on_to = "yesterday" }, { modified_on_from = "2026-13" },
        { modified_on_to = "2026-05-28 10:00" }, { modified_on_to = cjson.null },
      }
      for _, filter in ipairs(bad) do
        local status, body = search(filter)
        assert_failure(status, 400, body, "'" .. next(filter) .. "'")
      end
      for _, text in ipairs({ "[]", "[1]", "null", "1", '"x"', "not json", "{" }) do
        refused(400, "JSON object", search(text))
      end
      local status, body = request("POST", "/lease/tn/search", "{}", { ["content-type"] = "text/plain" })
      assert_failure(status, 400, body, "Content-Type")
      refused(405, nil, request("GET", "/lease/tn/search"))
      assert.equals(401, (request("POST", "/lease/tn/search", "{}", { ["x-auth-token"] = "nope" })))
      assert.equals(401, (request("POST", "/lease/tn/search?take=0", "{ nope", { ["x-auth-token"] = false })))
    end)

    it("sees every change: assigns, app assigns, holders and reset", function()
      local mine = { sip_connection = conns[2] }
      assert.same({}, found(mine))
      local _, page = search({ order = { tn = "ASC" } })
      assert.equals(cjson.null, page.payload.data[4].sip_connection)
      request("POST", "/sip/connection/" .. conns[2] .. "/tnlease", { add = { L[4], L[11] } })
      assert.same({ 11, 4 }, found(mine))
      _, page = search({ order = { tn = "ASC" } })
      assert.equals(conns[2], page.payload.data[4].sip_connection.uuid)
      request("POST", "/sip/connection/" .. conns[2] .. "/tnlease", { remove = { L[11] } })
      assert.same({ 4 }, found(mine))
      request("POST", "/sip/app/" .. apps[2] .. "/tnlease", { add = { L[12] } })
      assert.same({ 29, 12 }, found({ sip_control_app = apps[2] }))
      emu:holders({ [L[13]] = { sip_connection = conns[2] } })
      assert.same({ 13, 4 }, found(mine))
      emu:reset()
      assert.same({}, found(mine))
      assert.same({ 29 }, found({ sip_control_app = apps[2] }))
    end)
  end)

  describe("control apps", function()
    local function app_route(uuid) return "/sip/app/" .. uuid .. "/tnlease" end

    it("lists and assigns like the connection route", function()
      local status, body = request("GET", app_route(apps[1]))
      assert.equals(200, status)
      assert.same({ 30 }, indexes(body.payload))
      assert.same({ uuid = apps[1], name = "control-app-1" }, body.payload[1].sip_control_app)
      status, body = request("POST", app_route(apps[2]), { add = { L[5], L[30] } })
      assert.equals(200, status)
      assert.same({ 5, 30 }, indexes(body.payload))
      assert.equals(apps[2], body.payload[1].sip_control_app.uuid)
      assert.equals(apps[2], body.payload[2].sip_control_app.uuid)
      local st = emu:state()
      -- taken from another app silently, as between connections
      assert.same({}, st.app_assigned[apps[1]])
      assert.same({ L[29], L[5], L[30] }, st.app_assigned[apps[2]])
      status, body = request("POST", "/rest" .. app_route(apps[2]), { remove = { L[5], L[6] } })
      assert.equals(200, status)
      assert.equals(cjson.null, body.payload[1].sip_control_app)
      assert.equals(cjson.null, body.payload[2].sip_control_app)
      assert.same({ L[29], L[30] }, emu:state().app_assigned[apps[2]])
      status, body = request("GET", app_route(apps[2]))
      assert.equals(200, status)
      assert.same({ 29, 30 }, indexes(body.payload))
    end)

    it("refuses what the connection route refuses, on apps", function()
      refused(404, "SIP control app not found", request("GET", app_route("66eb0a8a-571e-41b1-8f50-4d97275cfab7")))
      refused(404, "SIP control app not found", request("GET", app_route(conns[1])))
      local status, body = request("GET", app_route(apps[1]:upper()))
      assert_failure(status, 400, body, "uuid")
      status, body = request("POST", app_route(apps[1]), '{"add":"x"}')
      assert_failure(status, 400, body)
      status, body = request("POST", app_route(apps[1]), '{"add":["' .. L[5] .. '"]}', { ["content-type"] = "text/plain" })
      assert_failure(status, 400, body, "Content-Type")
      assert.equals(401, (request("GET", app_route(apps[1]), nil, { ["x-auth-token"] = "nope" })))
      assert.equals(405, (request("DELETE", app_route(apps[1]))))
    end)

    it("409 for a lease the other kind of holder has, and nothing applied", function()
      local before = emu:state()
      local status, body = request("POST", "/sip/connection/" .. conns[2] .. "/tnlease", { add = { L[4], L[30] } })
      assert_failure(status, 409, body)
      assert.equals("TNLease " .. L[30] .. " is assigned to SIP control app " .. apps[1], body.message)
      status, body = request("POST", app_route(apps[2]), { add = { L[6], L[2] }, remove = { L[29] } })
      assert_failure(status, 409, body)
      assert.equals("TNLease " .. L[2] .. " is assigned to SIP connection " .. conns[1], body.message)
      assert.same(before, emu:state())
      -- between connections a lease still moves, and a remove of what
      -- another holder has changes nothing
      status = request("POST", "/sip/connection/" .. conns[2] .. "/tnlease", { add = { L[1] }, remove = { L[30] } })
      assert.equals(200, status)
      local st = emu:state()
      assert.same({ L[1] }, st.assigned[conns[2]])
      assert.same({ L[30] }, st.app_assigned[apps[1]])
    end)
  end)

  describe("lookups", function()
    it("GET /lease/tn/{uuid} answers one lease, 404 for an unknown one", function()
      local status, body = request("GET", "/lease/tn/" .. L[7])
      assert.equals(200, status)
      assert.equals(L[7], body.payload.uuid)
      assert.equals(TN + 7, body.payload.tn.tn)
      assert.equals(cjson.null, body.payload.sip_control_app)
      assert.equals(apps[1], lease(30).sip_control_app.uuid)
      assert.equals(conns[1], lease(1).sip_connection.uuid)
      status = request("GET", "/rest/lease/tn/" .. L[7])
      assert.equals(200, status)
      status, body = request("GET", "/lease/tn/66eb0a8a-571e-41b1-8f50-4d97275cfab7")
      assert_failure(status, 404, body, "TNLease not found")
      status, body = request("GET", "/lease/tn/" .. L[7]:upper())
      assert_failure(status, 400, body, "uuid")
      assert.equals(405, (request("POST", "/lease/tn/" .. L[7], "{}")))
      assert.equals(401, (request("GET", "/lease/tn/" .. L[7], nil, { ["x-auth-token"] = "nope" })))
    end)

    it("GET /lease/tn/{tn}/tn shows the control app", function()
      local status, body = request("GET", "/lease/tn/" .. (TN + 29) .. "/tn")
      assert.equals(200, status)
      assert.same({ uuid = apps[2], name = "control-app-2" }, body.payload.sip_control_app)
    end)
  end)

  describe("faults and admin", function()
    it("a fake fault answers the assign as applied and changes nothing", function()
      local before = emu:state()
      emu:faults({ { fake = true }, { fake = true } })
      local status, body = request("POST", "/sip/connection/" .. conns[1] .. "/tnlease", { add = { L[8] }, remove = { L[1] } })
      assert.equals(200, status)
      assert.equals(conns[1], body.payload[1].sip_connection.uuid)
      assert.equals(cjson.null, body.payload[2].sip_connection)
      status, body = request("POST", "/sip/app/" .. apps[3] .. "/tnlease", { add = { L[9] } })
      assert.equals(200, status)
      assert.equals(apps[3], body.payload[1].sip_control_app.uuid)
      assert.same(before, emu:state())
      assert.same({ 3, 2, 1 }, found({ sip_connection = conns[1] }))
      assert.equals(cjson.null, lease(9).sip_control_app)
    end)

    it("status, delay, reset and truncate faults apply to the new routes", function()
      emu:faults({ { status = 503, retry_after = "1" }, { status = 500, apply = true } })
      local status, body, headers = search({})
      assert_failure(status, 503, body)
      assert.equals("1", headers["retry-after"])
      refused(500, nil, search({}))
      assert.equals(200, (search({})))
      emu:faults({ { status = 502 } })
      assert.equals(502, (request("GET", "/lease/tn/" .. L[1])))
      emu:faults({ { status = 429 } })
      assert.equals(429, (request("GET", "/sip/app/" .. apps[1] .. "/tnlease")))
      emu:faults({ { status = 503 } })
      assert.equals(503, (request("POST", "/sip/app/" .. apps[1] .. "/tnlease", { add = { L[6] } })))
      assert.same({ L[30] }, emu:state().app_assigned[apps[1]])
      emu:faults({ { delay = 0.2 } })
      local t0 = socket.gettime()
      assert.equals(200, (search({})))
      assert.is_true(socket.gettime() - t0 >= 0.19)
      local post = ("POST /lease/tn/search?take=3 HTTP/1.1\r\nHost: e\r\nX-Auth-Token: %s\r\n" ..
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"):format(emu.token)
      emu:faults({ { reset = true } })
      local text, how = exchange(emu, post)
      assert.equals("", text)
      assert.equals("closed", how)
      emu:faults({ { truncate = true } })
      text, how = exchange(emu, post)
      assert.equals("closed", how)
      local head, rest = text:match("^(.-)\r\n\r\n(.*)$")
      assert.is_true(#rest > 0 and #rest < tonumber(head:match("[Cc]ontent%-[Ll]ength: (%d+)")))
    end)

    it("POST holders sets holders as they are; state lists them", function()
      local v0 = emu:state().version
      local status = emu:holders({
        [L[7]] = { sip_connection = conns[2] },
        [L[30]] = { sip_control_app = cjson.null },
        [L[1]] = { sip_control_app = apps[3] },
        [L[8]] = { sip_connection = conns[3], sip_control_app = apps[2] },
      })
      assert.equals(200, status)
      local st = emu:state()
      assert.is_true(st.version > v0)
      assert.same({ L[7] }, st.assigned[conns[2]])
      assert.same({ L[8] }, st.assigned[conns[3]])
      assert.same({ L[1], L[2], L[3] }, st.assigned[conns[1]])
      assert.same({}, st.app_assigned[apps[1]])
      assert.same({ L[29], L[8] }, st.app_assigned[apps[2]])
      -- one seq orders both kinds of list: a lease that stays on a connection
      -- keeps its place there, and so comes first on the app
      assert.same({ L[1], L[28] }, st.app_assigned[apps[3]])
      assert.same(apps, st.apps)
      assert.equals(30, #st.numbers)
      assert.equals(TN + 30, st.numbers[30])
      assert.same({ 8 }, found({ sip_connection = conns[3], sip_control_app = apps[2] }))
      status = emu:holders({ [L[8]] = { sip_connection = cjson.null, sip_control_app = cjson.null } })
      assert.equals(200, status)
      local l8 = lease(8)
      assert.equals(cjson.null, l8.sip_connection)
      assert.equals(cjson.null, l8.sip_control_app)
    end)

    it("POST holders: 400 for an unknown lease, holder or field, and nothing changes", function()
      local before = emu:state()
      local unknown = "66eb0a8a-571e-41b1-8f50-4d97275cfab7"
      local bad = {
        { [unknown] = { sip_connection = conns[2] } },
        { [L[5]] = { sip_connection = unknown } },
        { [L[5]] = { sip_control_app = unknown } },
        { [L[5]] = { sip_control_app = conns[1] } },
        { [L[5]] = { sip_connection = 5 } },
        { [L[5]] = { holder = conns[2] } },
        { [L[5]] = conns[2] },
        { [L[5]] = { conns[2] } },
        { [L[6]] = { sip_connection = conns[2] }, [L[5]] = { sip_connection = "x" } },
      }
      for _, map in ipairs(bad) do
        local status, body = emu:holders(map)
        assert_failure(status, 400, body)
      end
      for _, text in ipairs({ "[]", "null", "nope", "" }) do
        assert.equals(400, (emu:admin("POST", "holders", text)))
      end
      assert.same(before, emu:state())
    end)
  end)
end)

-- Logging in: GET /auth with HTTP Basic answers a JWT signed with
-- HMAC-SHA256, which works as X-Auth-Token beside the static token until
-- it expires; POST /token answers longer-lived ones. On an emulator of
-- its own with two users.
describe("the emulator's logins", function()
  local mime = require("mime")
  local emu, conn, creator
  local ADA, BOB = "ada@example.com", "bob@example.com"
  local ADA_PW = [[s3cret:with 'quotes', "colons" and spaces]] -- the email ends at the first ':'
  local BOB_PW = "hunter2"
  local UNAUTHORIZED = "Unauthorized: missing or invalid X-Auth-Token"

  local function b64url(s)
    return (mime.b64(s):gsub("[+/=]", { ["+"] = "-", ["/"] = "_", ["="] = "" }))
  end

  local function b64url_decode(s)
    s = s:gsub("%-", "+"):gsub("_", "/")
    return (mime.unb64(s .. ("="):rep((4 - #s % 4) % 4)))
  end

  -- A JWT's header and claims decoded, and its three parts as sent.
  local function jwt(token)
    local h, c, sig = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
    assert.is_string(sig, token)
    return cjson.decode(b64url_decode(h)), cjson.decode(b64url_decode(c)), h, c, sig
  end

  local function decoded(status, text)
    local ok, body = pcall(cjson.decode, text)
    return status, ok and body or text
  end

  -- The seed connection's list with this X-Auth-Token (nil: none).
  local function list(token)
    return decoded(emu:raw("GET", "/sip/connection/" .. conn .. "/tnlease", { ["x-auth-token"] = token }))
  end

  -- POST /token with this X-Auth-Token; a table body is sent as JSON.
  local function bearer(token, body, headers)
    local h = { ["x-auth-token"] = token or nil, ["content-type"] = "application/json" }
    for k, v in pairs(headers or {}) do h[k] = v or nil end
    if type(body) == "table" then body = cjson.encode(body) end
    return decoded(emu:raw("POST", "/token", h, body))
  end

  local function q(s) return (s:gsub("[^%w._~-]", function(ch) return ("%%%02X"):format(ch:byte()) end)) end

  -- A request with the token as a `bearer` query parameter, as Opentact's
  -- own helper script sends it; a body is sent as JSON.
  local function with_bearer(method, path, token, body)
    local sep = path:find("?", 1, true) and "&" or "?"
    return decoded(emu:raw(method, path .. sep .. "bearer=" .. q(token),
      body and { ["content-type"] = "application/json" } or {}, body))
  end

  local function refused(want_status, message, status, body)
    assert.equals(want_status, status)
    assert.same({ success = false, message = message, status = want_status }, body)
  end

  local function login_token(email, password)
    local status, body = emu:login(email, password)
    assert.equals(200, status)
    return body.payload.token
  end

  setup(function()
    emu = support.start({ connections = 1, leases = 3, users = { ADA .. ":" .. ADA_PW, BOB .. ":" .. BOB_PW } })
    conn = emu:state().connections[1]
    -- user 1 is the seed's account user, who created every lease
    emu.token = "emulator-token"
    creator = select(2, list(emu.token)).payload[1].created_by.uuid
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("GET /auth answers the user and a JWT: HS256, sub, email, iat, exp a day later", function()
    local before = os.time()
    local status, body = emu:login(ADA, ADA_PW)
    assert.equals(200, status)
    assert.is_true(body.success)
    local p = body.payload
    assert.same({ "email", "first_name", "last_name", "token", "uuid" }, (function()
      local keys = {}
      for k in pairs(p) do keys[#keys + 1] = k end
      table.sort(keys)
      return keys
    end)())
    assert.equals(creator, p.uuid)
    assert.equals(ADA, p.email)
    assert.equals("Ada", p.first_name)
    assert.equals("Lovelace", p.last_name)
    local header, claims, h, c, sig = jwt(p.token)
    assert.same({ alg = "HS256", typ = "JWT" }, header)
    assert.equals('{"alg":"HS256","typ":"JWT"}', b64url_decode(h))
    assert.equals(43, #sig) -- 32 bytes, unpadded
    -- integers, in this order
    assert.equals(('{"sub":"%s","email":"%s","iat":%d,"exp":%d}'):format(p.uuid, ADA, claims.iat, claims.exp),
      b64url_decode(c))
    assert.is_true(claims.iat >= before - 1 and claims.iat <= os.time() + 1)
    assert.equals(86400, claims.exp - claims.iat)
    -- another user, another uuid; /rest/auth too
    local _, bob = decoded(emu:raw("GET", "/rest/auth", { authorization = "Basic " .. mime.b64(BOB .. ":" .. BOB_PW) }))
    assert.equals(BOB, bob.payload.email)
    assert.is_truthy(bob.payload.uuid:find(UUID))
    assert.not_equals(creator, bob.payload.uuid)
    assert.equals(bob.payload.uuid, select(2, jwt(bob.payload.token)).sub)
  end)

  it("401 wrong credentials: wrong password, unknown user, no or a malformed header; 405 but GET", function()
    local wrong = "wrong credentials"
    refused(401, wrong, emu:login(ADA, BOB_PW))
    refused(401, wrong, emu:login(ADA, ADA_PW .. "x"))
    refused(401, wrong, emu:login(ADA, "s3cret")) -- the password is all after the first ':'
    refused(401, wrong, emu:login("eve@example.com", ADA_PW))
    refused(401, wrong, emu:login(ADA:upper(), ADA_PW))
    refused(401, wrong, emu:login(nil))
    for _, h in ipairs({ "Basic", "Basic !!!", "Basic " .. mime.b64(ADA), "Bearer " .. mime.b64(ADA .. ":" .. ADA_PW),
      "Basic " .. mime.b64(ADA .. ":" .. ADA_PW) .. "x" }) do
      refused(401, wrong, decoded(emu:raw("GET", "/auth", { authorization = h })))
    end
    -- the scheme is case-blind
    assert.equals(200, (emu:raw("GET", "/auth", { authorization = "basic " .. mime.b64(BOB .. ":" .. BOB_PW) })))
    local basic = { authorization = "Basic " .. mime.b64(BOB .. ":" .. BOB_PW) }
    refused(405, "Method not allowed", decoded(emu:raw("POST", "/auth", basic, "{}")))
    refused(405, "Method not allowed", decoded(emu:raw("DELETE", "/auth", basic)))
    local stats = emu:stats()
    assert.equals(1, stats.logins)
    assert.equals(11, stats.auth_failures)
  end)

  it("the JWT works as X-Auth-Token on every route; the static token still does", function()
    local token = login_token(BOB, BOB_PW)
    local status, body = list(token)
    assert.equals(200, status)
    assert.equals(3, #body.payload)
    assert.equals(200, (emu:raw("GET", "/rest/lease/tn/12125550001/tn", { ["x-auth-token"] = token })))
    assert.equals(200, (emu:raw("POST", "/lease/tn/search", { ["x-auth-token"] = token,
      ["content-type"] = "application/json" }, "{}")))
    assert.equals(200, (list(emu.token)))
    refused(401, UNAUTHORIZED, list(nil))
    refused(401, UNAUTHORIZED, list("nope"))
    local log = emu:requests()
    assert.same({ "valid", "valid", "valid", "valid", "missing", "wrong" },
      { log[2].token, log[3].token, log[4].token, log[5].token, log[6].token, log[7].token })
    -- a reset keeps users and the signing key: the token still works
    emu:reset()
    assert.equals(200, (list(token)))
  end)

  it("takes the token as ?bearer= wherever it takes X-Auth-Token, with the same checks", function()
    local jwt_token = login_token(BOB, BOB_PW)
    local st_leases = emu:state().leases
    local lease = st_leases[2]
    for _, token in ipairs({ emu.token, jwt_token }) do
      local status, body = with_bearer("GET", "/sip/connection/" .. conn .. "/tnlease", token)
      assert.equals(200, status)
      assert.equals(3, #body.payload)
      assert.equals(200, (with_bearer("POST", "/rest/sip/connection/" .. conn .. "/tnlease", token,
        cjson.encode({ remove = { lease } }))))
      assert.same({ st_leases[1], st_leases[3] }, emu:state().assigned[conn])
      assert.equals(200, (with_bearer("POST", "/sip/connection/" .. conn .. "/tnlease", token,
        cjson.encode({ add = { lease } }))))
      assert.equals(200, (with_bearer("POST", "/lease/tn/search?take=2&skip=1", token, "{}")))
      assert.equals(200, (with_bearer("GET", "/lease/tn/12125550001/tn", token)))
      assert.equals(200, (with_bearer("GET", "/lease/tn/" .. lease, token)))
      assert.equals(200, (with_bearer("POST", "/token", token, cjson.encode({ name = "n", ttl = 60 }))))
    end
    -- search pages by take and skip with the token beside them
    local _, page = with_bearer("POST", "/lease/tn/search?take=2&skip=1", emu.token, "{}")
    assert.equals(2, #page.payload.data)
    assert.equals(3, page.payload.total)
    -- the same refusals as the header's
    refused(401, UNAUTHORIZED, with_bearer("GET", "/sip/connection/" .. conn .. "/tnlease", "nope"))
    refused(401, UNAUTHORIZED, with_bearer("GET", "/sip/connection/" .. conn .. "/tnlease", jwt_token .. "x"))
    refused(401, UNAUTHORIZED, decoded(emu:raw("GET", "/sip/connection/" .. conn .. "/tnlease?bearer=")))
    refused(401, UNAUTHORIZED, decoded(emu:raw("GET", "/sip/connection/" .. conn .. "/tnlease?bearer="
      .. q(emu.token) .. "&bearer=" .. q(emu.token))))
    -- the uuid is checked after the token, as with the header
    refused(401, UNAUTHORIZED, with_bearer("GET", "/sip/connection/NOT-A-UUID/tnlease", "nope"))
    assert.equals(400, (with_bearer("GET", "/sip/connection/NOT-A-UUID/tnlease", emu.token)))
    -- logged as where the token came from, never the token
    local _, text = emu:raw("GET", "/__emulator/requests")
    for _, secret in ipairs({ "emulator-token", jwt_token, "bearer=" }) do
      assert.is_falsy(text:find(secret, 1, true), secret)
    end
    local log = cjson.decode(text)
    assert.equals("query", log[2].token_from)
    assert.equals("valid", log[2].token)
    assert.same({ "bearer" }, log[2].query)
    assert.same({ "bearer", "skip", "take" }, log[5].query)
    local wrong = 0
    assert.equals("valid", log[1].auth) -- the login
    for k = 2, #log do
      local e = log[k]
      assert.equals("query", e.token_from)
      if e.token == "wrong" then wrong = wrong + 1 end
    end
    assert.equals(5, wrong)
    -- the header wins when both are sent
    refused(401, UNAUTHORIZED, decoded(emu:raw("GET", "/sip/connection/" .. conn .. "/tnlease?bearer="
      .. q(emu.token), { ["x-auth-token"] = "nope" })))
    assert.equals("header", emu:requests()[#emu:requests()].token_from)
  end)

  it("an expired JWT is refused: 401 token expired", function()
    local code, c = emu:config({ token_ttl = 1 })
    assert.equals(200, code)
    assert.equals(1, c.token_ttl)
    local token = login_token(ADA, ADA_PW)
    local _, claims = jwt(token)
    assert.equals(1, claims.exp - claims.iat)
    -- exp is the first second the token is refused: the emulator's token
    -- clock, a second ahead, has reached it however late in its second iat was
    assert.equals(1, select(2, emu:config({ clock = 1 })).clock)
    refused(401, "token expired", list(token))
    assert.equals("expired", emu:requests()[2].token)
    -- as a bearer query parameter too
    refused(401, "token expired", with_bearer("GET", "/sip/connection/" .. conn .. "/tnlease", token))
    assert.same({ "expired", "query" }, { emu:requests()[3].token, emu:requests()[3].token_from })
    -- the TTL applies to tokens issued from then on; reset brings back --token-ttl
    emu:reset()
    _, claims = jwt(login_token(ADA, ADA_PW))
    assert.equals(86400, claims.exp - claims.iat)
    for _, bad in ipairs({ 0, -5, 1.5, "60", cjson.null }) do
      assert.equals(400, (emu:config({ token_ttl = bad })))
    end
    for _, bad in ipairs({ -1, "1", cjson.null, 1e300 }) do
      assert.equals(400, (emu:config({ clock = bad })))
    end
    -- nothing set by a refused config; reset set the clock back
    assert.equals(400, (emu:config({ latency = 0.5, token_ttl = 0 })))
    assert.equals(400, (emu:config({ latency = 0.5, clock = -1 })))
    assert.equals(0, select(2, emu:config({})).latency)
    assert.equals(0, select(2, emu:config({})).clock)
  end)

  it("a tampered, unsigned or malformed JWT is refused: 401 unauthorized", function()
    local token = login_token(BOB, BOB_PW)
    local header, claims, h, c, sig = jwt(token)
    local function with_claims(changes)
      local copy = {}
      for k, v in pairs(claims) do copy[k] = v end
      for k, v in pairs(changes) do copy[k] = v end
      return h .. "." .. b64url(cjson.encode(copy)) .. "." .. sig
    end
    local ada = select(2, jwt(login_token(ADA, ADA_PW)))
    local none = b64url(cjson.encode({ alg = "none", typ = header.typ }))
    local flipped = (sig:sub(1, 1) == "A" and "B" or "A") .. sig:sub(2)
    local bad_tokens = {
      with_claims({ exp = claims.exp + 3600 }),
      with_claims({ email = ADA }),
      with_claims({ sub = ada.sub }),
      h .. "." .. c .. "." .. flipped,
      h .. "." .. c .. ".",
      none .. "." .. c .. ".",
      none .. "." .. c .. "." .. sig,
      h .. "." .. c,
      h .. "." .. c .. "." .. sig .. "." .. sig,
      token .. "=",
      token:sub(1, -2),
      token:sub(2),
    }
    for _, bad in ipairs(bad_tokens) do
      refused(401, UNAUTHORIZED, list(bad))
    end
    assert.equals(200, (list(token)))
    local log = emu:requests()
    for k = 1, #bad_tokens do assert.equals("wrong", log[2 + k].token) end
    assert.equals("valid", log[#log].token)
  end)

  it("POST /token answers a bearer token living ttl seconds; 400 for a bad body", function()
    local token = login_token(BOB, BOB_PW)
    local status, body = bearer(token, { name = "ci nightly", ttl = 30 * 86400 })
    assert.equals(200, status)
    assert.is_true(body.success)
    assert.equals("ci nightly", body.payload.name)
    assert.equals(30 * 86400, body.payload.ttl)
    local header, claims = jwt(body.payload.token)
    assert.same({ alg = "HS256", typ = "JWT" }, header)
    assert.equals(30 * 86400, claims.exp - claims.iat)
    assert.equals(BOB, claims.email)
    assert.equals(select(2, jwt(token)).sub, claims.sub)
    assert.equals("ci nightly", claims.name)
    assert.equals(200, (list(body.payload.token)))
    -- the static token stands for user 1; /rest/token too
    status, body = decoded(emu:raw("POST", "/rest/token", { ["x-auth-token"] = emu.token,
      ["content-type"] = "application/json" }, '{"name":"ops","ttl":60}'))
    assert.equals(200, status)
    claims = select(2, jwt(body.payload.token))
    assert.equals(creator, claims.sub)
    assert.equals(ADA, claims.email)
    assert.equals(60, claims.exp - claims.iat)
    for _, bad in ipairs({ "", "not json", "[]", "{}", '{"name":"x"}', '{"ttl":60}', '{"name":"","ttl":60}',
      '{"name":1,"ttl":60}', '{"name":"x","ttl":0}', '{"name":"x","ttl":1.5}', '{"name":"x","ttl":"60"}',
      '{"name":"x","ttl":315360001}', '{"name":"x","ttl":60,"scope":"all"}' }) do
      status, body = bearer(token, bad)
      assert.equals(400, status, bad)
      assert.is_false(body.success)
      assert.equals(400, body.status)
    end
    status, body = bearer(token, { name = "x", ttl = 60 }, { ["content-type"] = "text/plain" })
    assert.equals(400, status)
    assert.is_truthy(body.message:find("Content-Type", 1, true))
    refused(401, UNAUTHORIZED, bearer(false, { name = "x", ttl = 60 }))
    refused(401, UNAUTHORIZED, bearer("nope", { name = "x", ttl = 60 }))
    refused(405, "Method not allowed", decoded(emu:raw("GET", "/token", { ["x-auth-token"] = token })))
  end)

  it("faults apply to /auth; stats count logins and failures, reset zeroes them", function()
    emu:faults({ { status = 503, retry_after = "1" }, { reset = true }, { delay = 0.1 } })
    local status, body = emu:login(ADA, ADA_PW)
    assert.equals(503, status)
    assert.is_false(body.success)
    local basic = "Basic " .. mime.b64(ADA .. ":" .. ADA_PW)
    local text, how = exchange(emu, "GET /auth HTTP/1.1\r\nHost: e\r\nAuthorization: " .. basic .. "\r\n\r\n")
    assert.equals("", text)
    assert.equals("closed", how)
    local t0 = socket.gettime()
    assert.equals(200, (emu:login(ADA, ADA_PW)))
    assert.is_true(socket.gettime() - t0 >= 0.09)
    assert.equals(200, (emu:login(BOB, BOB_PW)))
    emu:login(BOB, "nope")
    local stats = emu:stats()
    assert.equals(2, stats.logins)
    assert.equals(1, stats.auth_failures)
    assert.equals(5, stats.requests)
    emu:reset()
    stats = emu:stats()
    assert.equals(0, stats.logins)
    assert.equals(0, stats.auth_failures)
    assert.equals(200, (emu:login(BOB, BOB_PW)))
  end)

  it("logs what credentials and tokens were, never them", function()
    local token = login_token(ADA, ADA_PW)
    emu:login(ADA, "s3cret-but-wrong")
    emu:login(nil)
    emu:raw("POST", "/auth", { authorization = "Basic " .. mime.b64(ADA .. ":" .. ADA_PW) }, ADA_PW)
    list(token)
    local _, text = emu:raw("GET", "/__emulator/requests")
    for _, secret in ipairs({ "s3cret", mime.b64(ADA .. ":" .. ADA_PW), "hunter2", token, (token:match("[^.]+$")),
      "emulator-token", "Basic", "authorization" }) do
      assert.is_falsy(text:find(secret, 1, true), secret)
    end
    local log = cjson.decode(text)
    assert.same({ "valid", "wrong", "missing", "valid" }, { log[1].auth, log[2].auth, log[3].auth, log[4].auth })
    assert.is_nil(log[1].token)
    assert.equals("valid", log[5].token)
    assert.is_nil(log[5].auth)
  end)

  it("signs with HMAC-SHA256 that matches FIPS 180-2 and RFC 4231", function()
    if support.sh("command -v luajit") == "" then
      return pending("needs the luajit interpreter")
    end
    -- the emulator's SHA-256 module in a plain LuaJIT: it needs only bit
    local script = os.tmpname()
    finally(function() os.remove(script) end)
    local f = assert(io.open(script, "w"))
    f:write([[
      local M = dofile(arg[1])
      local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
      print(hex(M.sha256("abc")))
      print(hex(M.sha256("")))
      print(hex(M.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
      print(hex(M.hmac_sha256("Jefe", "what do ya want for nothing?")))
      print(hex(M.hmac_sha256(("\170"):rep(131), "Test Using Larger Than Block-Size Key - Hash Key First")))
    ]])
    f:close()
    local out, code = support.run("luajit " .. script .. " " .. support.ROOT .. "/emulator/sha256.lua")
    assert.equals(0, code, out)
    assert.equals(table.concat({
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", -- FIPS 180-2, "abc"
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", -- empty
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", -- FIPS 180-2, two blocks
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", -- RFC 4231 case 2
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", -- RFC 4231 case 6: a long key
    }, "\n") .. "\n", out)
  end)
end)
