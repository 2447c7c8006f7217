-- Quickstart: list a SIP connection's TN leases, assign two, list again,
-- remove one, and see what errors look like.
--
--   OPENTACT_TOKEN=... [OPENTACT_URL=...] lua5.4 examples/quickstart.lua [CONN LEASE1 LEASE2]
--
-- Without arguments it uses the uuids the local emulator seeds
-- (bin/opentact-emulator), which is what `make demo` runs it against.
local opentact = require("opentact")

local conn = arg[1] or "27f03b34-9917-45ec-8389-09092bb12756"
local lease1 = arg[2] or "3a3750a9-0cba-4e29-ab7f-8a2d90e16ca9"
local lease2 = arg[3] or "319e5d92-edf2-427d-80a8-89eb361f41e1"

local function step(n, text) io.write(("\n%d. %s\n"):format(n, text)) end
local function indent(s) return "   " .. tostring(s):gsub("\n", "\n   ") end

local function check(result, err)
  if not result then
    io.stdout:flush()
    io.stderr:write(indent(err), "\n")
    os.exit(1)
  end
  return result
end

print(("%s, talking to %s"):format(opentact._VERSION, os.getenv("OPENTACT_URL") or "https://api.opentact.org/rest"))

step(1, "What does SIP connection " .. conn .. " hold?")
print(indent(check(opentact.list(conn))))

step(2, "Assign two more leases to it")
local added = check(opentact.assign(conn, { add = { lease1, lease2 } }))
for _, lease in ipairs(added) do
  print(indent(("+ %s  %s  now on %s"):format(lease.uuid, lease.tn.tn, lease.sip_connection.uuid)))
end

step(3, "List again")
local leases = check(opentact.list(conn))
print(indent(leases))

step(4, "Remove one")
local removed = check(opentact.assign(conn, { remove = { lease1 } }))
print(indent(("- %s  %s  detached (sip_connection is %s)"):format(
  removed[1].uuid, removed[1].tn.tn, tostring(removed[1].sip_connection))))
print(indent(("%d leases left"):format(#check(opentact.list(conn)))))

step(5, "A bad uuid is refused before anything is sent")
local _, err = opentact.list("not-a-uuid")
print(indent(err))

step(6, "An unknown connection is the server's 404, with its message")
_, err = opentact.list("66eb0a8a-571e-41b1-8f50-4d97275cfab7")
print(indent(err))
print(indent(("err.kind = %q, err.status = %s, err.retryable = %s"):format(err.kind, tostring(err.status), tostring(err.retryable))))
