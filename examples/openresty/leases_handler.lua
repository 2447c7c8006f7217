-- GET /leases/<conn>: the connection's leases as JSON. One client per
-- worker, made on the first request; the ngx transport never blocks the
-- worker, and its connections go back to nginx's keepalive pool.
local opentact = require("opentact")
local cjson = require("cjson")

local M = {}
local client

local STATUS = { invalid = 400, not_found = 404, auth = 502, rate_limited = 503 }

function M.leases(conn)
  client = client or opentact.new()
  local leases, err = client:list(conn)
  ngx.header["Content-Type"] = "application/json"
  if not leases then
    ngx.status = STATUS[err.kind] or 502
    ngx.say(cjson.encode({ error = err.kind, message = err.message }))
    return
  end
  local rows = {}
  for i, lease in ipairs(leases) do
    rows[i] = {
      uuid = lease.uuid,
      number = lease.tn and lease.tn.tn,
      expires = lease.expired_on,
      autorenew = lease.autorenew,
    }
  end
  ngx.say(cjson.encode({ connection = conn, count = #rows, leases = rows }))
end

return M
