-- Kamailio (app_lua, KEMI): answers each OPTIONS and INVITE with the
-- Opentact lease of the number called. See kamailio.cfg beside it.
--
-- app_lua loads this file in the main process and again, in a fresh Lua
-- state, in every child: nothing here talks to Opentact at load time. The
-- client is made on the first call a child handles, and kept by that child.

-- Where the library is: the rock built for the Lua app_lua links (Debian's
-- Kamailio: PUC Lua 5.1). LUA_PATH and LUA_CPATH in Kamailio's environment
-- work too; these lines are for a tree at a fixed place:
--   package.path = "/opt/opentact/share/lua/5.1/?.lua;/opt/opentact/share/lua/5.1/?/init.lua;" .. package.path
--   package.cpath = "/opt/opentact/lib/lua/5.1/?.so;" .. package.cpath
local opentact = require("opentact")

-- the SIP connection whose numbers this server answers for
local CONNECTION = os.getenv("OPENTACT_CONNECTION")

-- SIP clients send a request again after 500 ms without an answer: the
-- whole lookup (every attempt, backoff and Retry-After wait) ends well
-- before that.
local DEADLINE = 0.4

local client

-- This child's client, made on its first use.
local function opentact_client()
  if not client then
    client = opentact.new({ deadline = DEADLINE, timeout = DEADLINE, connect_timeout = 0.2, retries = 1 })
  end
  return client
end

-- The uuid of a lease's SIP connection, or nil.
local function connection_of(lease)
  local h = opentact.holder(lease, "sip_connection")
  return h and h.uuid:lower()
end

local function reply(code, text, lease_uuid)
  if lease_uuid then KSR.hdr.append_to_reply("X-Opentact-Lease: " .. lease_uuid .. "\r\n") end
  KSR.tm.t_reply(code, text)
end

function ksr_request_route()
  local method = KSR.pv.get("$rm")
  if method ~= "OPTIONS" and method ~= "INVITE" then
    KSR.sl.sl_send_reply(405, "Method Not Allowed")
    return 1
  end
  -- a transaction: what the client sends again meanwhile is absorbed
  if KSR.tm.t_newtran() < 0 then return 1 end
  local number = KSR.pv.get("$rU")
  if not number or number == "" then
    reply(404, "Not Found")
    return 1
  end
  local lease, err = opentact_client():lease(number)
  if lease and CONNECTION and connection_of(lease) == CONNECTION:lower() then
    reply(200, "OK", lease.uuid)
  elseif lease or err.kind == "not_found" or err.kind == "invalid" then
    reply(404, "Not Found")
  else
    -- Opentact did not answer in time, or failed: the error says which
    -- (never the token)
    KSR.log("warn", tostring(err) .. "\n")
    reply(503, "Service Unavailable")
  end
  return 1
end
