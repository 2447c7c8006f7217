-- Every fault of the emulator, for list and for assign: the error's kind,
-- status, retryable and attempts, whether it was retried, and that the
-- state the emulator holds afterwards is what the caller was told.
local support = require("emulator")

describe("faults and retries #wire #c", function()
  local emu, conns, leases

  -- the library's default timeout (30 s): a short one would make a request
  -- that is only slow on a busy machine fail the spec; the delay faults
  -- set their own, clearly shorter than the delay
  local function client(opts)
    return emu:client(opts)
  end

  local function holds(conn, lease)
    for _, u in ipairs(emu:state().assigned[conn]) do
      if u == lease then return true end
    end
    return false
  end

  setup(function() emu, conns, leases = support.start_with_uuids() end)
  teardown(function() support.stop(emu) end)
  before_each(function() emu:reset() end)

  describe("list", function()
    -- fault, expected kind of the first failure
    local recoverable = {
      { { status = 503, retry_after = "0" }, "server" },
      { { status = 500 }, "server" },
      { { status = 502, body = "<html>bad gateway</html>" }, "server" },
      { { status = 504 }, "server" },
      { { status = 429 }, "rate_limited" },
      { { reset = true }, "network" },
      { { truncate = true }, "network" },
      { { delay = 20 }, "timeout" },
    }
    for _, c in ipairs(recoverable) do
      it("retries " .. c[2] .. " (" .. next(c[1]) .. ") and succeeds", function()
        emu:faults({ c[1] })
        local events = {}
        -- only the delayed attempt times out: the retry, undelayed, has 5 s
        local cl = client({ timeout = c[1].delay and 5 or nil, log = function(e) events[#events + 1] = e end })
        local got, err = cl:list(conns[1])
        cl:close()
        assert.is_nil(err)
        assert.equals(3, #got)
        assert.equals(2, #events)
        assert.equals(c[2], events[1].kind)
        assert.equals(1, events[1].attempt)
        assert.equals(2, events[2].attempt)
        assert.is_nil(events[2].kind)
        assert.equals(200, events[2].status)
        assert.equals(2, emu:stats().requests)
      end)
    end

    it("gives up after `retries`, counting attempts", function()
      emu:faults({ { status = 503 }, { status = 503 }, { status = 503 }, { status = 503 } })
      local got, err = client({ retries = 2 }):list(conns[1])
      assert.is_nil(got)
      assert.equals("server", err.kind)
      assert.equals(503, err.status)
      assert.is_true(err.retryable)
      assert.equals(3, err.attempts)
      assert.equals(3, emu:stats().requests)
    end)

    it("sends once with retries = 0", function()
      emu:faults({ { status = 503 } })
      local _, err = client({ retries = 0 }):list(conns[1])
      assert.equals(1, err.attempts)
      assert.equals(1, emu:stats().requests)
    end)

    it("never retries a 4xx other than 429", function()
      local _, err = client():list("66eb0a8a-571e-41b1-8f50-4d97275cfab7")
      assert.equals("not_found", err.kind)
      assert.equals(1, err.attempts)
      local _, err2 = client({ token = "wrong" }):list(conns[1])
      assert.equals("auth", err2.kind)
      assert.equals(1, err2.attempts)
      assert.equals(2, emu:stats().requests)
    end)

    it("never retries an answer that is not JSON", function()
      emu:faults({ { raw = "<html>maintenance</html>", status = 200 } })
      local _, err = client():list(conns[1])
      assert.equals("protocol", err.kind)
      assert.is_false(err.retryable)
      assert.equals(1, err.attempts)
    end)

    it("reads a chunked answer", function()
      emu:faults({ { chunked = true } })
      local got = client():list(conns[1])
      assert.equals(3, #got)
    end)

    it("waits out a Retry-After in seconds", function()
      emu:faults({ { status = 503, retry_after = "1" } })
      local events = {}
      local cl = client({ backoff_max = 2, log = function(e) events[#events + 1] = e end })
      local t0 = require("opentact.core").now()
      local got = cl:list(conns[1])
      local waited = require("opentact.core").now() - t0
      assert.equals(3, #got)
      assert.is_true(waited >= 0.95, "waited " .. waited)
      assert.equals(2, #events)
    end)

    it("honours a Retry-After HTTP date", function()
      emu:faults({ { status = 429, retry_after = "Sun, 06 Nov 1994 08:49:37 GMT" } })
      local got, err = client():list(conns[1])
      assert.is_nil(err)
      assert.equals(3, #got)
      assert.equals(2, emu:stats().requests)
    end)

    it("returns a Retry-After longer than backoff_max without waiting", function()
      emu:faults({ { status = 429, retry_after = "30" } })
      local _, err = client():list(conns[1])
      assert.equals("rate_limited", err.kind)
      assert.equals(30, err.retry_after)
      assert.equals(1, err.attempts)
      assert.is_true(err.retryable)
    end)

    it("retries a refused connection, marked as never sent", function()
      local cl = client({ base_url = "http://127.0.0.1:" .. support.free_port(), retries = 2 })
      local _, err = cl:list(conns[1])
      assert.equals("network", err.kind)
      assert.is_false(err.sent)
      assert.equals(3, err.attempts)
    end)
  end)

  describe("assign", function()
    it("retries a 503 that recovers and applies the change once", function()
      emu:faults({ { status = 503 } })
      local got, err = client():assign(conns[2], { add = { leases[10] } })
      assert.is_nil(err)
      assert.equals(leases[10], got[1].uuid)
      assert.equals(2, emu:stats().requests)
      assert.is_true(holds(conns[2], leases[10]))
    end)

    it("retries a 429", function()
      emu:faults({ { status = 429 } })
      local got = client():assign(conns[2], { add = { leases[10] } })
      assert.equals(1, #got)
      assert.equals(2, emu:stats().requests)
    end)

    it("retries a refused connection: nothing can have been applied", function()
      local cl = client({ base_url = "http://127.0.0.1:" .. support.free_port() })
      local _, err = cl:assign(conns[2], { add = { leases[10] } })
      assert.equals("network", err.kind)
      assert.is_false(err.sent)
      assert.equals(3, err.attempts)
    end)

    local not_retried = {
      { { status = 500 }, "server", 500, false },
      { { status = 502, body = "<html>x</html>" }, "server", 502, false },
      { { reset = true }, "network", nil, false },
      { { reset = true, apply = true }, "network", nil, true },
      { { truncate = true }, "network", 200, true },
      { { delay = 5 }, "timeout", nil, true },
      { { raw = "oops", status = 200 }, "protocol", 200, false },
    }
    for _, c in ipairs(not_retried) do
      local fault, kind, status, applied = c[1], c[2], c[3], c[4]
      it(("does not retry %s (%s) that may have been applied; the state %s"):format(
        kind, next(fault), applied and "changed" or "did not change"), function()
        emu:faults({ fault })
        local got, err = client({ timeout = fault.delay and 0.3 or nil }):assign(conns[2], { add = { leases[10] } })
        assert.is_nil(got)
        assert.equals(kind, err.kind)
        if kind ~= "network" or status == nil then assert.equals(status, err.status) end
        assert.equals(1, err.attempts)
        assert.equals(1, emu:stats().requests)
        if kind == "network" or kind == "timeout" then assert.is_true(err.sent) end
        -- a delayed request goes on at the server after the client gave up
        if fault.delay then
          local core = require("opentact.core")
          local deadline = core.now() + 15
          while emu:stats().inflight > 0 and core.now() < deadline do core.sleep(0.02) end
        end
        assert.equals(applied, holds(conns[2], leases[10]))
      end)
    end

    it("retries them with retry_post, and the change holds once", function()
      emu:faults({ { status = 500 }, { reset = true } })
      local got, err = client({ retry_post = true }):assign(conns[2], { add = { leases[10] } })
      assert.is_nil(err)
      assert.equals(1, #got)
      assert.equals(3, emu:stats().requests)
      local held = emu:state().assigned[conns[2]]
      assert.same({ leases[10] }, held)
    end)

    it("never retries a rejected change, and nothing changes", function()
      local _, err = client({ retry_post = true }):assign(conns[2], { add = { "0a1b2c3d-0000-4000-8000-00000000ffff" } })
      assert.equals("rejected", err.kind)
      assert.equals(1, err.attempts)
      assert.same({}, emu:state().assigned[conns[2]])
    end)
  end)

  describe("token refresh", function()
    it("calls the token function again once after a 401", function()
      local calls = 0
      local cl = client({ token = function()
        calls = calls + 1
        return calls == 1 and "expired-token" or emu.token
      end })
      local got, err = cl:list(conns[1])
      assert.is_nil(err)
      assert.equals(3, #got)
      assert.equals(2, calls)
      cl:list(conns[1])
      assert.equals(2, calls) -- kept while it works
      cl:close()
    end)

    it("calls it once for a refused token, however many requests it refused", function()
      local calls = 0
      local cl = client({ token = function()
        calls = calls + 1
        return calls == 1 and "expired-token" or emu.token
      end })
      local adds = {}
      for i = 11, 60 do adds[#adds + 1] = leases[i] end
      local report = cl:assign_batched(conns[2], { add = adds }, { batch_size = 1, concurrency = 8 })
      cl:close()
      assert.is_true(report.ok)
      assert.equals(2, calls)
    end)

    it("gives up after one refresh", function()
      local calls = 0
      local cl = client({ token = function() calls = calls + 1 return "always-wrong" end })
      local _, err = cl:list(conns[1])
      assert.equals("auth", err.kind)
      assert.equals(401, err.status)
      assert.equals(2, err.attempts)
      assert.equals(2, calls)
      cl:close()
    end)

    it("raises a failing token function's error without sending; the client stays usable", function()
      local calls = 0
      local cl = client({ token = function()
        calls = calls + 1
        if calls == 1 then error("vault unreachable") end
        return emu.token
      end })
      local ok, err = pcall(cl.list, cl, conns[1])
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("vault unreachable", 1, true))
      assert.equals(0, emu:stats().requests)
      assert.equals(3, #assert(cl:list(conns[1])))
      cl:close()
    end)

    it("refuses a token with CR, LF or NUL from a function before sending", function()
      for _, bad in ipairs({ "abc\r\nX-Evil: 1", "abc\0def", "abc\n", "", 42 }) do
        local cl = client({ token = function() return bad end })
        local _, err = cl:list(conns[1])
        assert.equals("auth", err.kind)
        assert.equals(0, err.attempts)
        cl:close()
      end
      assert.equals(0, emu:stats().requests)
    end)
  end)

  describe("the log hook", function()
    it("sees every attempt with method, path, status, attempt, elapsed and kind", function()
      emu:faults({ { status = 503 } })
      local events = {}
      local cl = client({ log = function(e) events[#events + 1] = e end })
      cl:assign(conns[2], { add = { leases[10] } })
      cl:close()
      assert.equals(2, #events)
      local e = events[1]
      assert.equals("POST", e.method)
      assert.equals("/sip/connection/" .. conns[2] .. "/tnlease", e.path)
      assert.equals(503, e.status)
      assert.equals("server", e.kind)
      assert.equals(1, e.attempt)
      assert.is_true(e.elapsed >= 0 and e.elapsed < 30)
      assert.equals(200, events[2].status)
    end)

    it("raises a failing hook's error from the call; the client stays usable", function()
      local failing = true
      local cl = client({ log = function()
        if failing then
          failing = false
          error("hook failed")
        end
      end })
      local ok, err = pcall(cl.list, cl, conns[1])
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("hook failed", 1, true))
      assert.equals(3, #cl:list(conns[1]))
      cl:close()
    end)
  end)
end)
