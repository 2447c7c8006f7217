-- What a request carries: its body, JSON in it, uuids.

local ngx = ngx
local cjson = require("cjson.safe")
local type = type

local M = {}

local UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local file = ngx.req.get_body_file()
    if file then
      local f = io.open(file, "rb")
      if f then body = f:read("*a") f:close() end
    end
  end
  return body
end

local function is_json(headers)
  local ctype = headers["content-type"]
  return type(ctype) == "string" and ctype:find("^application/json") ~= nil
end

-- A JSON object, checked on the text too: lua-cjson decodes {} and [] alike.
local function decode_object(raw)
  local v = cjson.decode(raw)
  if type(v) ~= "table" or not raw:find("^%s*{") then return nil end
  return v
end

local function is_uuid(v)
  return type(v) == "string" and ngx.re.find(v, UUID, "jo") ~= nil
end

M.UUID, M.read_body, M.is_json, M.decode_object, M.is_uuid = UUID, read_body, is_json, decode_object, is_uuid

return M
