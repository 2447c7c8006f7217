-- The retry policy of the API contract: what may be sent again, and after
-- how long. Pure functions of the error and the options; the retry loop
-- in opentact.engine does the waiting.

local min = math.min

local M = {}

-- Whether a failure may be retried for this method. A GET (or any read:
-- the engine passes "GET" for a search) is always safe to repeat; an assign only when it cannot have been applied (never
-- connected, 429, 503), unless the caller opted in with retry_post.
-- Neither retries what retrying cannot help (a TLS failure, a bad URL).
function M.allowed(err, method, retry_post)
  if err.retryable ~= true then return false end
  if method == "GET" then return true end
  if err.sent == false or err.status == 429 or err.status == 503 then return true end
  return retry_post == true
end

-- Seconds to wait before retry number `retried + 1`, or nil to stop.
-- `jitter(cap)` draws uniformly from [0, cap): full jitter.
function M.delay(opts, err, method, retried, jitter)
  if retried >= opts.retries or not M.allowed(err, method, opts.retry_post) then return nil end
  local wait = err.retry_after
  if wait then
    if wait > opts.backoff_max then return nil end
    return wait
  end
  return jitter(min(opts.backoff_max, opts.backoff * 2 ^ retried))
end

return M
