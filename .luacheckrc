-- luacheck: the library must not touch globals.
std = "max"
-- installed copies and build output are not the project's sources
exclude_files = { ".rocks", "build" }
max_line_length = 140
files["spec"] = { std = "+busted" }
files["emulator"] = { std = "ngx_lua" }
files["examples/openresty"] = { std = "ngx_lua" }
files["lua/opentact/transport/ngx.lua"] = { std = "ngx_lua" }
files["spec/support/openresty_app.lua"] = { std = "ngx_lua" }
-- LuaLS definitions: class locals and stubs that only carry names, types
-- and their documentation, on lines as long as that takes
files["types"] = { unused = false, max_line_length = false }
-- Kamailio's KEMI: the KSR table it gives, the route function it calls
files["examples/kamailio"] = { read_globals = { "KSR" }, globals = { "ksr_request_route" } }
