-- The local Opentact emulator: the SIP TN lease endpoints, stateful,
-- inside nginx with the Lua module. bin/opentact-emulator writes the
-- nginx config, which puts this folder's parent on lua_package_path,
-- calls init() in init_by_lua and routes to api(), done() and admin().
--
-- Seed data is built once in the master and inherited by every worker;
-- everything that changes lives in the shared dict, so all workers agree.
-- Every module is loaded here, in the master: workers read no file.
--
-- One concern per file, in layers; a module requires only modules of the
-- layers below its own:
--   init.lua                             starts it; what the nginx config calls
--   routes.lua, admin.lua                the API's routes; /__emulator/*
--   leases.lua, search.lua, auth.lua     holders' and single leases; lease
--                                        search; logins, JWTs and tokens
--   replies.lua, request.lua, state.lua  answers and faults; bodies, JSON and
--                                        uuids; options and the shared dict
--   seed.lua, sha256.lua                 the seed; SHA-256 and HMAC

local routes = require("emulator.routes")
local admin = require("emulator.admin")
local auth = require("emulator.auth")
local state = require("emulator.state")
local seed = require("emulator.seed")
local pairs, ipairs = pairs, ipairs

local config = state.config

local M = { api = routes.api, done = routes.done, admin = admin.admin }

-- opts: token, connections, leases, apps, latency, max_page, users,
-- token_ttl, names, app_leases; summary: a file to write the seed's summary to
function M.init(opts)
  for k, v in pairs(opts) do config[k] = v end
  config.max_page = opts.max_page or 100
  config.token_ttl = opts.token_ttl or 86400
  -- names: {kind, index, base64 name}, from --connection-name / --app-name
  local names = { connection = {}, app = {} }
  for _, n in ipairs(opts.names or {}) do names[n[1]][n[2]] = ngx.decode_base64(n[3]) end
  seed.build(opts.connections or 4, opts.leases or 100, opts.apps or 2, names, opts.app_leases)
  auth.init(opts.users)
  state.reset()
  if opts.summary then
    local f = assert(io.open(opts.summary, "w"))
    f:write(seed.summary(seed))
    f:close()
  end
end

return M
