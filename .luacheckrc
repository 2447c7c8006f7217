-- luacheck: the library must not touch globals.
std = "max"
max_line_length = 140
files["spec"] = { std = "+busted" }
files["emulator"] = { std = "ngx_lua" }
files["examples/openresty"] = { std = "ngx_lua" }
files["lua/opentact/transport/ngx.lua"] = { std = "ngx_lua" }
files["spec/support/openresty_app.lua"] = { std = "ngx_lua" }
