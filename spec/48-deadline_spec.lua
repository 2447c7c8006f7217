-- A hard deadline per call (`deadline`, per client or per call): every
-- attempt, backoff and Retry-After wait inside it; a wait that would cross
-- it is not started, an attempt gets what is left of it, and the error
-- says the deadline was reached. Blocking, callback and bulk calls, over
-- the wire against the emulator (the ngx transport: spec/40-openresty).
local support = require("emulator")
local opentact = require("opentact")
local core = require("opentact.core")

describe("deadline #wire #c", function()
  local emu, conns, leases

  setup(function() emu, conns, leases = support.start_with_uuids({ users = { "sip@example.com:worker-pw-123" } }) end)
  teardown(function() support.stop(emu) end)
  before_each(function() emu:reset() end)

  -- the call's wall time, and what it returned
  local function timed(f, ...)
    local t0 = core.now()
    local out = table.pack and table.pack(f(...)) or { f(...) }
    return core.now() - t0, out[1], out[2]
  end

  it("does not start a Retry-After wait that would cross it", function()
    -- as a SIP worker's lookup: timeout 0.5 s, one retry, a 503 asking for 5 s
    emu:faults({ { status = 503, retry_after = "5" } })
    local client = emu:client({ timeout = 0.5, retries = 1, deadline = 0.5, backoff_max = 8 })
    finally(function() client:close() end)
    local took, leases_, err = timed(client.list, client, conns[1])
    assert.is_nil(leases_)
    assert.equals("server", err.kind)
    assert.equals(503, err.status)
    assert.equals(1, err.attempts)
    assert.matches("not retried after 5 s: the deadline of 0.5 s was reached", err.message, 1, true)
    -- (the wait would have taken 5 s; the bounds here leave room for a
    -- loaded machine under a sanitizer, and for nothing that waits)
    assert.is_true(took < 2.5, took)
  end)

  it("cuts an attempt that never answers at the deadline, not at the timeout", function()
    emu:faults({ { delay = 5 } })
    local client = emu:client({ timeout = 30, retries = 2, deadline = 0.3 })
    finally(function() client:close() end)
    local took, got, err = timed(client.list, client, conns[1])
    assert.is_nil(got)
    assert.equals("timeout", err.kind)
    assert.matches("the deadline of 0.3 s was reached", err.message, 1, true)
    assert.equals(1, err.attempts)
    assert.is_true(took >= 0.29 and took < 2.5, took)
  end)

  it("lets retries run inside it, and stops the one that would cross it", function()
    -- each attempt answers 503 asking for 1 s: attempts at 0 and 1 s; the
    -- next wait would end at 2 s, past the deadline of 1.5 s
    emu:faults({ { status = 503, retry_after = "1" }, { status = 503, retry_after = "1" },
      { status = 503, retry_after = "1" } })
    local client = emu:client({ retries = 5, deadline = 1.5, backoff_max = 8 })
    finally(function() client:close() end)
    local took, got, err = timed(client.list, client, conns[1])
    assert.is_nil(got)
    assert.equals(2, err.attempts)
    assert.matches("the deadline of 1.5 s was reached", err.message, 1, true)
    -- (the wait it did not start would have ended at 2 s)
    assert.is_true(took >= 0.95 and took < 1.9, took)
    -- with room for them, the same retries succeed
    emu:faults({ { status = 503, retry_after = "0.1" }, { status = 503, retry_after = "0.1" } })
    got, err = client:list(conns[1], { deadline = 2 })
    assert.is_table(got, tostring(err))
  end)

  it("is per call too: a call's deadline wins over the client's", function()
    emu:faults({ { delay = 5 } })
    local client = emu:client({ timeout = 30 })
    finally(function() client:close() end)
    local took, got, err = timed(client.lease, client, "+1 212 555 0001", { deadline = 0.2 })
    assert.is_nil(got)
    assert.equals("timeout", err.kind)
    assert.is_true(took < 2.5, took) -- (the answer would take 5 s)
    -- and the next call has none
    local lease = assert(client:lease("+1 212 555 0001"))
    assert.equals(leases[1], lease.uuid)
    assert.has_error(function() client:list(conns[1], { deadline = 0 }) end,
      "bad option 'deadline' to 'list' (a number of seconds from 0.001 to 2147483 expected, got number)")
    assert.has_error(function() client:list(conns[1], { timeout = 1 }) end,
      "bad argument #2 to 'list' (unknown option 'timeout')")
  end)

  it("holds for a callback call, driven by step", function()
    emu:faults({ { delay = 5 } })
    local client = emu:client({ timeout = 30 })
    finally(function() client:close() end)
    local got, failed
    local t0 = core.now()
    assert.is_true(client:assign(conns[2], { add = { leases[10] } }, { deadline = 0.3 }, function(r, err)
      got, failed = r, err
    end))
    while client:step(0.05) > 0 and core.now() - t0 < 3 do end
    assert.is_nil(got)
    assert.equals("timeout", failed.kind)
    assert.matches("the deadline of 0.3 s was reached", failed.message, 1, true)
    assert.is_true(core.now() - t0 < 1)
  end)

  it("applies per request in bulk calls: each batch has its own", function()
    -- every batch takes 0.2 s; one at a time, three take 0.6 s in all,
    -- each well inside a deadline of 0.5 s
    emu:config({ latency = 0.2 })
    support.finally(finally, function() emu:config({ latency = 0 }) end)
    local client = emu:client({ deadline = 0.5 })
    support.finally(finally, function() client:close() end)
    local took, report = timed(client.assign_batched, client, conns[2],
      { add = { leases[10], leases[11], leases[12] } }, { batch_size = 1, concurrency = 1 })
    assert.is_true(report.ok, tostring(report))
    assert.is_true(took >= 0.55, took)
    -- and a batch that never answers fails alone, at the deadline
    emu:config({ latency = 0 })
    emu:faults({ { on = "^POST /sip/connection/", delay = 5 } })
    took, report = timed(client.assign_batched, client, conns[2],
      { add = { leases[13], leases[14] } }, { batch_size = 1, concurrency = 2, deadline = 0.3 })
    assert.is_false(report.ok)
    assert.equals(1, #report.failed)
    assert.equals("timeout", report.failed[1].err.kind)
    assert.equals(1, #report.applied.add)
    assert.is_true(took < 1.5, took)
  end)

  it("bounds the wait for a login, and says that is what it waited for", function()
    -- the login hangs: each call waiting for it ends at its deadline
    emu:faults({ { on = "^GET /auth", delay = 3 } })
    local client = opentact.new({ base_url = emu.url, email = "sip@example.com", password = "worker-pw-123",
      deadline = 0.3, backoff_max = 8 })
    finally(function() client:close() end)
    local took, got, err = timed(client.list, client, conns[1])
    assert.is_nil(got)
    assert.equals("timeout", err.kind)
    assert.matches("the deadline of 0.3 s was reached while waiting for a login", err.message, 1, true)
    assert.is_false(err.sent)
    assert.is_true(took < 1.5, took) -- (the login would take 3 s)
  end)

  it("gives requests a bulk call adds on the way (a split batch, a page) the call's deadline", function()
    local client = emu:client({ timeout = 30 })
    finally(function() client:close() end)
    -- a batch refused whole is split in two; the second half hangs
    emu:faults({ { on = "^POST /sip/connection/", status = 400, message = "bad batch" },
      { on = "^POST /sip/connection/" }, { on = "^POST /sip/connection/", delay = 3 } })
    local took, report = timed(client.assign_batched, client, conns[2], { add = { leases[30], leases[31] } },
      { batch_size = 2, concurrency = 1, deadline = 0.4 })
    assert.is_false(report.ok)
    assert.equals("timeout", report.failed[1].err.kind)
    assert.is_true(took < 1.5, took)
  end)

  it("is not inherited by a call made from another call's hook", function()
    local client = emu:client({ timeout = 30 })
    finally(function() client:close() end)
    local inner, inner_err
    emu:faults({ {}, { delay = 0.5 } })
    local results = client:list_many({ conns[1] }, { deadline = 0.2, on_progress = function()
      inner, inner_err = client:list(conns[1])
    end })
    assert.is_table(results[1].leases, tostring(results[1].err))
    -- the inner call has the client's (none): its 0.5 s answer is taken
    assert.is_table(inner, tostring(inner_err))
    -- so do the calls that read the account's lists
    emu:faults({ {}, { on = "^GET /sip/connection$", delay = 0.5 } })
    results = client:list_many({ conns[1] }, { deadline = 0.2, on_progress = function()
      inner, inner_err = client:connections()
    end })
    assert.is_table(results[1].leases, tostring(results[1].err))
    assert.is_table(inner, tostring(inner_err))
  end)

  it("says an attempt was cut short when the deadline ended it with retries left", function()
    emu:faults({ { delay = 5 } })
    local client = emu:client({ timeout = 30, retries = 3, deadline = 0.3 })
    finally(function() client:close() end)
    local _, got, err = timed(client.list, client, conns[1])
    assert.is_nil(got)
    assert.matches("(cut short: the deadline of 0.3 s was reached)", err.message, 1, true)
  end)

  it("takes nil options before a callback as none", function()
    local client = emu:client()
    finally(function() client:close() end)
    local called
    assert.is_true(client:list(conns[1], nil, function(got) called = got end))
    while client:step(0.05) > 0 do end
    assert.is_table(called)
    assert.has_error(function() client:list(conns[1], function() end, "x") end,
      "bad argument #3 to 'list' (nothing expected after the callback, got string)")
    assert.has_error(function() client:list(conns[1], {}, function() end, "x") end,
      "bad argument #4 to 'list' (nothing expected after the callback)")
  end)

  it("is an option of the client, checked", function()
    assert.has_error(function() opentact.new({ token = "t", deadline = -1 }) end)
    assert.has_error(function() opentact.new({ token = "t", deadline = "1" }) end)
    local c = opentact.new({ token = "t", base_url = emu.url, deadline = 0.25 })
    c:close()
  end)
end)
