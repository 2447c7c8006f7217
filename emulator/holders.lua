-- The SIP connections and control apps themselves (not their leases):
--   GET /sip/connection          every SIP connection of the account
--   GET /sip/connection/{uuid}   one
--   GET /sip/app                 every SIP control app
--   GET /sip/app/{uuid}          one
-- Seeded, and named as the command line said (names need not be unique).

local ngx = ngx
local seed = require("emulator.seed")
local replies = require("emulator.replies")
local request = require("emulator.request")
local ipairs = ipairs
local concat = table.concat

local fail, status_fault, finish = replies.fail, replies.status_fault, replies.finish
local UUID = request.UUID

local M = {}

-- Per kind: the seed's list of uuids, its whole JSON by uuid, and what a
-- 404 says.
local KINDS = {
  connection = { list = "connections", full = "conn_full", missing = "SIP connection not found" },
  app = { list = "apps", full = "app_full", missing = "SIP control app not found" },
}
M.KINDS = KINDS

-- GET /sip/{kind} and /sip/{kind}/{uuid} (`uuid` "" for the list).
function M.handle(method, kind_name, uuid, fault)
  local kind = KINDS[kind_name]
  if method ~= "GET" then return fail(405, "Method not allowed") end
  if uuid ~= "" and not ngx.re.find(uuid, UUID, "jo") then return fail(400, "uuid must match " .. UUID) end
  if fault and fault.status and not fault.apply then return status_fault(fault) end
  local full = seed[kind.full]
  if uuid ~= "" then
    local one = full[uuid]
    if not one then return fail(404, kind.missing) end
    return finish('{"success":true,"payload":' .. one .. "}", fault)
  end
  local out = {}
  for i, u in ipairs(seed[kind.list]) do out[i] = full[u] end
  return finish('{"success":true,"payload":[' .. concat(out, ",") .. "]}", fault)
end

return M
