-- What Lua users write by hand today: LuaSocket's socket.http plus
-- lua-cjson, N times. Usage: luasocket.lua BASE_URL CONN N
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson")
local socket = require("socket")
local base, conn, n = arg[1], arg[2], tonumber(arg[3])
local url = base .. "/sip/connection/" .. conn .. "/tnlease"
local function get()
  local out = {}
  local _, code = http.request({ url = url, sink = ltn12.sink.table(out),
    headers = { ["X-Auth-Token"] = "bench-token", ["Accept"] = "application/json" } })
  assert(code == 200, code)
  return cjson.decode(table.concat(out))
end
get()
local cpu0, wall0 = os.clock(), socket.gettime()
for _ = 1, n do get() end
print(("cpu_us=%.2f wall_us=%.2f"):format((os.clock() - cpu0) / n * 1e6, (socket.gettime() - wall0) / n * 1e6))
