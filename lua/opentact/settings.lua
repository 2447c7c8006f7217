-- A lease's settings: what client:update_lease may change with
-- PATCH /lease/tn/{uuid}, checked, as the request's JSON body. Holders
-- are not settings: they change through the tnlease endpoints (assign,
-- sync), whose answers the library checks.

local json = require("opentact.json")

local type, pairs, tostring = type, pairs, tostring

local M = {}

-- Each field and what it takes: a boolean, or a uuid (false for none).
local FIELDS = {
  autorenew = "boolean", voice = "boolean", fax = "boolean", sms = "boolean", mms = "boolean",
  emergency = "boolean", messaging_profile = "uuid",
}
M.FIELDS = FIELDS

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

--- The JSON body that sets `fields`; or nil and what is wrong with them
--- (misuse: the caller raises).
function M.body(fields)
  local out, any = {}, false
  for k, v in pairs(fields) do
    local want = FIELDS[k]
    if k == "sip_connection" or k == "sip_control_app" then
      return nil, ("'%s' is not a setting: a lease changes holder through assign or sync"):format(k)
    end
    if not want then
      return nil, ("unknown field '%s' (it takes autorenew, messaging_profile, voice, fax, sms, mms, emergency)")
        :format(tostring(k))
    end
    if want == "boolean" and type(v) ~= "boolean" then
      return nil, ("'%s' must be a boolean, got %s"):format(k, type(v))
    end
    if want == "uuid" then
      if v == false then
        v = json.NULL
      elseif type(v) ~= "string" or not v:find(UUID) then
        return nil, ("'%s' must be a messaging profile's uuid, or false for none"):format(k)
      else
        v = v:lower()
      end
    end
    out[k], any = v, true
  end
  if not any then return nil, "no field to change" end
  return json.encode(out)
end

--- What the server's answer `lease` to a PATCH of `uuid` setting
--- `fields` does not show: a sentence, or nil when it shows them all.
function M.unconfirmed(lease, uuid, fields)
  if type(lease) ~= "table" or type(lease.uuid) ~= "string" or lease.uuid:lower() ~= uuid:lower() then
    return "the server answered with another lease"
  end
  for k, v in pairs(fields) do
    local now = lease[k]
    if FIELDS[k] == "uuid" then
      if type(now) == "table" then now = now.uuid end
      if v == false then
        if now ~= nil then return "its answer shows " .. k .. " still set" end
      elseif type(now) ~= "string" or now:lower() ~= v:lower() then
        return "its answer shows " .. k .. " unchanged"
      end
    elseif now ~= v then
      return "its answer shows " .. k .. " unchanged"
    end
  end
  return nil
end

return M
