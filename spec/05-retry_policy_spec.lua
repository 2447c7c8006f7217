-- The retry policy as a pure function: which failures are retried for
-- which method, and how long to wait.
local retry = require("opentact.retry")

local OPTS = { retries = 2, backoff = 0.5, backoff_max = 8, retry_post = false }

local function with(t)
  local o = {}
  for k, v in pairs(OPTS) do o[k] = v end
  for k, v in pairs(t or {}) do o[k] = v end
  return o
end

local function max_jitter(cap) return cap end

describe("retry policy #c", function()
  -- err, method, retry_post -> allowed
  local cases = {
    { { kind = "network", retryable = true, sent = false }, "GET", false, true },
    { { kind = "network", retryable = true, sent = true }, "GET", false, true },
    { { kind = "timeout", retryable = true, sent = true }, "GET", false, true },
    { { kind = "server", status = 500, retryable = true }, "GET", false, true },
    { { kind = "server", status = 502, retryable = true }, "GET", false, true },
    { { kind = "rate_limited", status = 429, retryable = true }, "GET", false, true },
    { { kind = "rejected", status = 400, retryable = false }, "GET", false, false },
    { { kind = "auth", status = 401, retryable = false }, "GET", false, false },
    { { kind = "not_found", status = 404, retryable = false }, "GET", false, false },
    { { kind = "protocol", status = 200, retryable = false }, "GET", false, false },
    { { kind = "tls", retryable = false, sent = false }, "GET", false, false },
    { { kind = "tls", retryable = false, sent = false }, "POST", false, false },
    { { kind = "invalid", retryable = false, sent = false }, "POST", true, false },
    { { kind = "network", retryable = true, sent = false }, "POST", false, true },
    { { kind = "network", retryable = true, sent = true }, "POST", false, false },
    { { kind = "network", retryable = true, sent = true }, "POST", true, true },
    { { kind = "timeout", retryable = true, sent = true }, "POST", false, false },
    { { kind = "timeout", retryable = true, sent = false }, "POST", false, true },
    { { kind = "timeout", retryable = true, sent = true }, "POST", true, true },
    { { kind = "server", status = 503, retryable = true }, "POST", false, true },
    { { kind = "rate_limited", status = 429, retryable = true }, "POST", false, true },
    { { kind = "server", status = 500, retryable = true }, "POST", false, false },
    { { kind = "server", status = 502, retryable = true }, "POST", false, false },
    { { kind = "server", status = 500, retryable = true }, "POST", true, true },
    { { kind = "rejected", status = 400, retryable = false }, "POST", true, false },
    { { kind = "protocol", status = 200, retryable = false }, "POST", true, false },
  }
  for _, c in ipairs(cases) do
    local err, method, post, want = c[1], c[2], c[3], c[4]
    it(("%s %s%s %s is %s"):format(method, err.kind, err.status and " " .. err.status or "",
      err.sent == nil and "" or (err.sent and "(sent)" or "(not sent)"),
      (want and "retried" or "not retried") .. (post and " with retry_post" or "")), function()
      assert.equals(want, retry.allowed(err, method, post))
    end)
  end

  it("stops after `retries` retries", function()
    local err = { kind = "server", status = 503, retryable = true }
    assert.is_number(retry.delay(with(), err, "GET", 0, max_jitter))
    assert.is_number(retry.delay(with(), err, "GET", 1, max_jitter))
    assert.is_nil(retry.delay(with(), err, "GET", 2, max_jitter))
    assert.is_nil(retry.delay(with({ retries = 0 }), err, "GET", 0, max_jitter))
  end)

  it("doubles the cap of full jitter up to backoff_max", function()
    local err = { kind = "server", status = 503, retryable = true }
    local o = with({ retries = 10 })
    local caps = {}
    for r = 0, 6 do caps[#caps + 1] = retry.delay(o, err, "GET", r, max_jitter) end
    assert.same({ 0.5, 1, 2, 4, 8, 8, 8 }, caps)
    assert.equals(0, retry.delay(o, err, "GET", 3, function() return 0 end))
  end)

  it("waits out a Retry-After up to backoff_max, and gives up past it", function()
    local o = with()
    assert.equals(3, retry.delay(o, { status = 429, retryable = true, retry_after = 3 }, "GET", 0, max_jitter))
    assert.equals(8, retry.delay(o, { status = 503, retryable = true, retry_after = 8 }, "POST", 0, max_jitter))
    assert.is_nil(retry.delay(o, { status = 429, retryable = true, retry_after = 9 }, "GET", 0, max_jitter))
  end)
end)

describe("jitter #c", function()
  it("draws from [0, cap) and varies", function()
    local jitter = require("opentact.core").rng()
    local seen, lo, hi = {}, math.huge, -1
    for _ = 1, 2000 do
      local d = jitter(2)
      lo, hi = math.min(lo, d), math.max(hi, d)
      seen[math.floor(d * 10)] = true
    end
    assert.is_true(lo >= 0 and hi < 2)
    local buckets = 0
    for _ in pairs(seen) do buckets = buckets + 1 end
    assert.equals(20, buckets)
  end)
end)
