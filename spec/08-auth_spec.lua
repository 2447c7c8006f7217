-- The authentication's face to the engine, without a network: asked for
-- a token, it answers with one, with "wait" (the request is parked until
-- a login ends) or with a failure. Logins are single-flight: many
-- requests, one login; its end wakes every parked request, with the
-- login's error when it failed; a refused token is renewed once. The
-- engine is a stand-in that records what auth asks of it, and time is
-- auth.clock, moved by the test.
local auth = require("opentact.auth")
local core = require("opentact.core")

local function b64url(x) return (core.base64(x):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })) end

-- A JWT issued at `iat` that expires at `exp` (whole seconds).
local function jwt(iat, exp, n)
  return b64url('{"alg":"HS256"}') .. "." .. b64url(('{"iat":%d,"exp":%d,"n":%d}'):format(iat, exp, n or 0))
    .. "." .. b64url("unsigned")
end

describe("auth, as the engine sees it #c", function()
  local real, now
  local users = 0
  before_each(function()
    real, now = auth.clock, 1700000000
    auth.clock = function() return now end
  end)
  after_each(function() auth.clock = real end)

  -- A stand-in engine: each login it is asked for is a table; `sent`
  -- lists the logins put on the wire, `woken` the waiters woken, in order,
  -- with the error they were woken with.
  local function engine()
    local e = { logins = {}, sent = {}, woken = {} }
    e.hooks = {
      login = function(prev)
        if prev and not prev.lost then return prev end
        local l = { n = #e.logins + 1 }
        e.logins[#e.logins + 1] = l
        return l
      end,
      send = function(l) e.sent[#e.sent + 1] = l end,
      wake = function(w, err, attempts) e.woken[#e.woken + 1] = { w = w, err = err, attempts = attempts } end,
    }
    return e
  end

  -- A client's auth that logs in as a user of its own (logins of one
  -- Lua state are shared by email), or as `email`.
  local function login_client(email)
    if not email then
      users = users + 1
      email = ("unit%d@example.com"):format(users)
    end
    local a = auth.new({ base_url = "http://127.0.0.1:1", email = email }, nil, "pw")
    local e = engine()
    a.serve(e.hooks)
    return a, e, email
  end

  local function failure(status, message)
    local err = { kind = status == 401 and "auth" or "server", status = status, message = message,
      retryable = status ~= 401, attempts = 1 }
    return err
  end

  it("gives a fixed token at once, and says there is none", function()
    local a = auth.new({ base_url = "http://127.0.0.1:1" }, "fixed")
    a.serve(engine().hooks)
    local token, gen = a.token()
    assert.equals("fixed", token)
    assert.is_number(gen)
    local none = auth.new({ base_url = "http://127.0.0.1:1" })
    none.serve(engine().hooks)
    local t, err = none.token()
    assert.is_nil(t)
    assert.equals("auth", err.kind)
    assert.matches("^no token", err.message)
  end)

  it("answers wait for a login, and makes one login for many waiting requests", function()
    local a, e = login_client()
    for i = 1, 5 do
      local token, err = a.token()
      assert.is_nil(token)
      assert.is_nil(err)
      a.park("request " .. i)
    end
    assert.equals(1, #e.sent)
    assert.equals(0, #e.woken)
    local login = e.sent[1]
    assert.is_string(a.login_start(login)) -- the credentials to send
    a.login_over(login, { token = jwt(now, now + 3600) }, nil, 1)
    assert.equals(5, #e.woken)
    for i = 1, 5 do
      assert.equals("request " .. i, e.woken[i].w)
      assert.is_nil(e.woken[i].err)
    end
    assert.equals(jwt(now, now + 3600), (a.token()))
    assert.equals(1, #e.logins)
  end)

  it("wakes every waiting request with the error of a login that failed, and fails the next at once", function()
    local a, e = login_client()
    for i = 1, 4 do
      assert.is_nil((a.token()))
      a.park(i)
    end
    a.login_over(e.sent[1], nil, failure(401, "wrong credentials"), 2)
    assert.equals(4, #e.woken)
    for i = 1, 4 do
      local err = e.woken[i].err
      assert.equals("auth", err.kind)
      assert.equals("wrong credentials", err.message)
      assert.equals(401, err.status)
      assert.is_false(err.sent)
      assert.equals(1, e.woken[i].attempts)
    end
    -- refused credentials cannot change: every later request fails at
    -- once, however much time passes, and nothing more is sent
    for _, later in ipairs({ 86400, -86400 }) do -- a clock set back too
      now = now + later
      local token, err = a.token()
      assert.is_nil(token)
      assert.equals("wrong credentials", err.message)
    end
    assert.equals(1, #e.sent)
  end)

  it("takes a login that failed otherwise for a failure of the moment", function()
    local a, e = login_client()
    assert.is_nil((a.token()))
    a.park("first")
    a.login_over(e.sent[1], nil, failure(503, "down"), 3)
    assert.equals("logging in failed: down", e.woken[1].err.message)
    local token, err = a.token()
    assert.is_nil(token)
    assert.equals(503, err.status)
    -- a second later, a request needs a login again
    now = now + 1
    token, err = a.token()
    assert.is_nil(token)
    assert.is_nil(err)
    a.park("second")
    assert.equals(2, #e.sent)
  end)

  it("renews a refused token once, however many requests it refused", function()
    local a, e = login_client()
    assert.is_nil((a.token()))
    a.park(1)
    a.login_over(e.sent[1], { token = jwt(now, now + 3600, 1) }, nil, 1)
    local old, gen = a.token()
    -- three requests sent with it come back 401
    for _ = 1, 3 do a.refused(gen) end
    assert.is_nil((a.token()))
    a.park(2)
    a.park(3)
    assert.equals(2, #e.sent)
    a.login_over(e.sent[2], { token = jwt(now, now + 3600, 2) }, nil, 1)
    local new, gen2 = a.token()
    assert.is_truthy(new ~= old)
    assert.is_truthy(gen2 ~= gen)
    -- a late 401 for the old token leaves the new one alone
    a.refused(gen)
    assert.equals(new, (a.token()))
    assert.equals(2, #e.sent)
  end)

  it("calls a token function once, and once more for a refused token", function()
    local calls = 0
    local a = auth.new({ base_url = "http://127.0.0.1:1" }, function()
      calls = calls + 1
      return "from-function-" .. calls
    end)
    a.serve(engine().hooks)
    local t, gen = a.token()
    assert.equals("from-function-1", t)
    assert.equals("from-function-1", (a.token()))
    a.refused(gen)
    a.refused(gen)
    assert.equals("from-function-2", (a.token()))
    assert.equals(2, calls)
  end)

  it("lets an error a token function raises through as it is, and calls the function again next time", function()
    local calls, BOOM = 0, setmetatable({}, { __tostring = function() return "boom" end })
    local a = auth.new({ base_url = "http://127.0.0.1:1" }, function()
      calls = calls + 1
      if calls == 1 then error(BOOM) end
      return "from-function"
    end)
    a.serve(engine().hooks)
    local ok, err = pcall(a.token)
    assert.is_false(ok)
    assert.equals(BOOM, err)
    assert.equals("from-function", (a.token()))
    assert.equals(2, calls)
  end)

  it("logs in again in the background near a token's end, once, while the token serves", function()
    local a, e = login_client()
    assert.is_nil((a.token()))
    a.park(1)
    a.login_over(e.sent[1], { token = jwt(now, now + 200) }, nil, 1)
    -- a 200-second token is renewed in its last 50 s
    now = now + 160
    for _ = 1, 3 do assert.equals(jwt(now - 160, now + 40), (a.token())) end
    assert.equals(2, #e.sent)
    a.login_over(e.sent[2], { token = jwt(now, now + 200, 2) }, nil, 1)
    assert.equals(jwt(now, now + 200, 2), (a.token()))
    assert.equals(2, #e.sent)
  end)

  it("never uses a token past the server's exp, when the login's answer was read late or the clocks differ", function()
    local a, e = login_client()
    assert.is_nil((a.token()))
    a.park(1)
    -- login k is sent now and answered `late` s later with the token
    -- made(sent); returns when it was sent, and the token
    local function logs_in(k, late, made)
      assert.equals(k, #e.sent)
      local sent = now
      assert.is_string(a.login_start(e.sent[k]))
      now = now + late
      local token = made(sent)
      a.login_over(e.sent[k], { token = token }, nil, 1)
      return sent, token
    end
    -- the token of a 200-second login is used until 199 s after its
    -- sending (the server refuses it from sent + 200 at the latest, from
    -- sent + 199 had it been issued late in a second), then a login is due
    local function used_199_s(sent, token)
      now = sent + 198.9
      assert.equals(token, (a.token()))
      now = sent + 199
      assert.is_nil((a.token()))
    end
    -- issued at once, its answer read 10 s later (a busy process, a
    -- renewal whose answer waits for the next call)
    used_199_s(logs_in(1, 10, function(sent) return jwt(sent, sent + 200) end))
    -- a server whose clock is 100 s ahead: the lifetime counts from the
    -- sending, less the second iat may have been rounded down by
    used_199_s(logs_in(2, 0.5, function(sent) return jwt(sent + 100, sent + 300, 2) end))
    -- 8 s ahead, and the answer read 10 s late: the clocks seem to agree,
    -- and the token still expires 200 s after the sending, by the server
    used_199_s(logs_in(3, 10, function(sent) return jwt(sent + 8, sent + 208, 4) end))
    -- a 1-second token, and a 5-second one whose answer was read 4.2 s
    -- late: their lifetime is over by the answer, their exp is taken
    for k, c in ipairs({ { 1, 0.01 }, { 5, 4.2 } }) do
      local sent = logs_in(3 + k, c[2], function(sent) return jwt(sent, sent + c[1], 10 + k) end)
      assert.near(sent + c[1] - now, a.expires_in(), 1e-6)
      now = sent + c[1]
      assert.is_nil((a.token()))
      a.park(k) -- the next login
    end
    -- and 100 s behind
    used_199_s(logs_in(6, 0, function(sent) return jwt(sent - 100, sent + 100, 3) end))
  end)

  it("lets a client wait for the login of another with the same email, then use its token", function()
    local a, ea, email = login_client()
    local b, eb = login_client(email)
    assert.is_nil((a.token()))
    a.park("a1")
    assert.is_nil((b.token()))
    b.park("b1")
    assert.is_string(a.login_start(ea.sent[1]))
    -- b's login waits while a's is in flight
    local basic, wait = b.login_start(eb.sent[1])
    assert.is_nil(basic)
    assert.is_true(wait > 0 and wait < 1)
    a.login_over(ea.sent[1], { token = jwt(now, now + 3600) }, nil, 1)
    -- b's login is not needed any more: its waiters go on with a's token
    basic, wait = b.login_start(eb.sent[1])
    assert.is_nil(basic)
    assert.is_nil(wait)
    assert.equals(1, #eb.woken)
    assert.is_nil(eb.woken[1].err)
    assert.equals(jwt(now, now + 3600), (b.token()))
  end)

  it("forgets the waiters it is told to, and logs in again for those left by a lost login", function()
    local a, e = login_client()
    for i = 1, 4 do
      assert.is_nil((a.token()))
      a.park(i)
    end
    local gone = a.forget(function(w) return w % 2 == 0 end)
    assert.same({ 2, 4 }, gone)
    -- the login is lost (its request was stopped): nobody is woken
    e.sent[1].lost = true
    a.login_over(e.sent[1])
    assert.equals(0, #e.woken)
    a.resume()
    assert.equals(2, #e.sent)
    a.login_over(e.sent[2], { token = jwt(now, now + 3600) }, nil, 1)
    assert.equals(2, #e.woken)
    assert.equals(1, e.woken[1].w)
    assert.equals(3, e.woken[2].w)
  end)

  it("ignores the end of a login that another one replaced", function()
    local a, e = login_client()
    assert.is_nil((a.token()))
    a.park(1)
    local first = e.sent[1]
    first.lost = true -- the engine has a new one made (after a fork)
    assert.is_nil((a.token()))
    a.park(2)
    assert.equals(2, #e.sent)
    a.login_over(first, nil, failure(503, "down"), 1)
    assert.equals(0, #e.woken)
    a.login_over(e.sent[2], { token = jwt(now, now + 3600) }, nil, 1)
    assert.equals(2, #e.woken)
  end)
end)
