package = "opentact"
version = "0.1.0-1"
source = {
   url = "git+https://github.com/lua-opentact/lua-opentact.git",
   tag = "v0.1.0",
}
description = {
   summary = "Opentact's SIP TN lease API from Lua: a C core over libcurl",
   detailed = [[
Assign and unassign TN leases on an Opentact SIP connection, list what a
connection holds, find leases by phone number or search, and bring a
connection to a desired set of numbers (plan, dry run, apply, verify), from
Lua 5.1-5.4 and LuaJIT. Request building, answer decoding and HTTP are C
(libcurl); retries, batching, event-loop integration and the default client
are Lua.
Ships a local emulator of the API (bin/opentact-emulator, needs nginx with
the Lua module).]],
   homepage = "https://github.com/lua-opentact/lua-opentact",
   license = "MIT",
}
-- The curl transport waits on epoll and uses dup3 and MADV_HUGEPAGE: other
-- systems get this refusal instead of a compile error
supported_platforms = { "linux" }
dependencies = {
   "lua >= 5.1, < 5.5",
}
-- Only the library is looked up: Debian keeps curl/curl.h in a multiarch
-- folder that LuaRocks does not search, but the compiler does.
external_dependencies = {
   CURL = { library = "curl" },
}
build = {
   type = "builtin",
   modules = {
      ["opentact.core"] = {
         -- core.c registers; the decoder (answer, answer_skim, json, error,
         -- buffer) and the request builders (request, search) do no I/O;
         -- only transport_curl.c sees libcurl
         sources = { "src/core.c", "src/request.c", "src/search.c", "src/answer.c", "src/answer_skim.c",
                     "src/json.c", "src/error.c", "src/buffer.c", "src/auth.c", "src/clock.c", "src/fork.c",
                     "src/sha256.c", "src/process.c", "src/journal.c", "src/transport_curl.c" },
         libraries = { "curl" },
         incdirs = { "$(CURL_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)" },
      },
      ["opentact"] = "lua/opentact.lua",
      ["opentact.options"] = "lua/opentact/options.lua",
      ["opentact.errors"] = "lua/opentact/errors.lua",
      ["opentact.pretty"] = "lua/opentact/pretty.lua",
      ["opentact.json"] = "lua/opentact/json.lua",
      ["opentact.retry"] = "lua/opentact/retry.lua",
      ["opentact.engine"] = "lua/opentact/engine.lua",
      ["opentact.auth"] = "lua/opentact/auth.lua",
      ["opentact.bulk"] = "lua/opentact/bulk.lua",
      ["opentact.search"] = "lua/opentact/search.lua",
      ["opentact.sync"] = "lua/opentact/sync.lua",
      ["opentact.apply"] = "lua/opentact/apply.lua",
      ["opentact.routes"] = "lua/opentact/routes.lua",
      ["opentact.targets"] = "lua/opentact/targets.lua",
      ["opentact.settings"] = "lua/opentact/settings.lua",
      ["opentact.cli"] = "lua/opentact/cli/init.lua",
      ["opentact.cli.options"] = "lua/opentact/cli/options.lua",
      ["opentact.cli.manual"] = "lua/opentact/cli/manual.lua",
      ["opentact.cli.args"] = "lua/opentact/cli/args.lua",
      ["opentact.cli.input"] = "lua/opentact/cli/input.lua",
      ["opentact.cli.output"] = "lua/opentact/cli/output.lua",
      ["opentact.cli.common"] = "lua/opentact/cli/common.lua",
      ["opentact.cli.credentials"] = "lua/opentact/cli/credentials.lua",
      ["opentact.cli.list"] = "lua/opentact/cli/list.lua",
      ["opentact.cli.find"] = "lua/opentact/cli/find.lua",
      ["opentact.cli.assign"] = "lua/opentact/cli/assign.lua",
      ["opentact.cli.sync"] = "lua/opentact/cli/sync.lua",
      ["opentact.cli.plan"] = "lua/opentact/cli/plan.lua",
      ["opentact.cli.apply"] = "lua/opentact/cli/apply.lua",
      ["opentact.cli.connections"] = "lua/opentact/cli/connections.lua",
      ["opentact.cli.apps"] = "lua/opentact/cli/apps.lua",
      ["opentact.cli.holders"] = "lua/opentact/cli/holders.lua",
      ["opentact.cli.lease"] = "lua/opentact/cli/lease.lua",
      ["opentact.cli.check"] = "lua/opentact/cli/check.lua",
      ["opentact.cli.export"] = "lua/opentact/cli/export.lua",
      ["opentact.cli.routes"] = "lua/opentact/cli/routes.lua",
      ["opentact.cli.names"] = "lua/opentact/cli/names.lua",
      ["opentact.cli.namecache"] = "lua/opentact/cli/namecache.lua",
      ["opentact.cli.login"] = "lua/opentact/cli/login.lua",
      ["opentact.cli.logout"] = "lua/opentact/cli/logout.lua",
      ["opentact.cli.whoami"] = "lua/opentact/cli/whoami.lua",
      ["opentact.cli.token"] = "lua/opentact/cli/token.lua",
      ["opentact.cli.help"] = "lua/opentact/cli/help.lua",
      ["opentact.transport.ngx"] = "lua/opentact/transport/ngx.lua",
      -- the emulator (emulator/), for nginx: bin/opentact-emulator puts the
      -- folder opentact/ on nginx's lua_package_path, where these modules
      -- are emulator and emulator.<name>
      ["opentact.emulator"] = "emulator/init.lua",
      ["opentact.emulator.routes"] = "emulator/routes.lua",
      ["opentact.emulator.holders"] = "emulator/holders.lua",
      ["opentact.emulator.admin"] = "emulator/admin.lua",
      ["opentact.emulator.leases"] = "emulator/leases.lua",
      ["opentact.emulator.search"] = "emulator/search.lua",
      ["opentact.emulator.auth"] = "emulator/auth.lua",
      ["opentact.emulator.replies"] = "emulator/replies.lua",
      ["opentact.emulator.request"] = "emulator/request.lua",
      ["opentact.emulator.state"] = "emulator/state.lua",
      ["opentact.emulator.seed"] = "emulator/seed.lua",
      ["opentact.emulator.sha256"] = "emulator/sha256.lua",
   },
   -- into the rock's folder (luarocks show --rock-dir opentact): the LuaLS
   -- definitions, the bash and zsh completion scripts, the man page
   copy_directories = { "types", "completion", "man" },
   install = {
      bin = {
         ["opentact"] = "bin/opentact",
         ["opentact-emulator"] = "bin/opentact-emulator",
      },
   },
}
