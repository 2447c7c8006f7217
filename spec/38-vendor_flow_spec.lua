-- Opentact's own way of attaching every lease of an account to one SIP
-- connection, as its published helper script does it (see NOTES.md):
-- curl, the token as a `bearer` query parameter, a search page at a time
-- (POST /lease/tn/search?take=100&skip=N), one assign per page. Run against
-- the emulator over real sockets, its answers parsed by the Lua the spec
-- runs in (no jq), then checked with the library. And the library itself
-- never puts the token in a URL.
local support = require("emulator")
local cjson = require("cjson")

local EMAIL, PASSWORD = "noc@example.com", "vendor-flow-pw"

-- One curl exchange; returns the HTTP status and the answer decoded (or
-- its text). `body`: a string sent as JSON.
local function curl(method, url, body, extra)
  local file
  if body then file = support.tmpfile(body) end
  local out = support.sh(("curl -s -X %s %s %s -w '\\n%%{http_code}' '%s'"):format(method,
    file and ("-H 'Content-Type: application/json' --data-binary @" .. file) or "", extra or "", url))
  if file then os.remove(file) end
  local text, code = out:match("^(.*)\n(%d+)$")
  local ok, decoded = pcall(cjson.decode, text or "")
  return tonumber(code), ok and decoded or out
end

local LEASES = 250

describe("the vendor's helper flow against the emulator #wire #c", function()
  local emu, st

  setup(function()
    emu = support.start({ leases = LEASES, users = { EMAIL .. ":" .. PASSWORD } })
    st = emu:state()
  end)
  teardown(function() if emu then emu:stop() end end)
  before_each(function() emu:reset() end)

  it("pages with ?take=100&skip=N&bearer=, assigns each page in one POST, and the connection holds every lease",
    function()
      -- logs in as the script does, then sends the JWT in every URL
      local code, login = curl("GET", emu.url .. "/auth", nil, "-u '" .. EMAIL .. ":" .. PASSWORD .. "'")
      assert.equals(200, code)
      local token = login.payload.token
      assert.is_string(token)
      local conn = st.connections[2]
      local skip, pages, total = 0, 0
      repeat
        local status, page = curl("POST", ("%s/lease/tn/search?take=100&skip=%d&bearer=%s"):format(emu.url, skip,
          token), "{}")
        assert.equals(200, status, cjson.encode(page))
        assert.is_true(page.success)
        total = assert(page.payload.total)
        local uuids = {}
        for i, lease in ipairs(page.payload.data) do uuids[i] = lease.uuid end
        if #uuids == 0 then break end
        local s, answer = curl("POST", ("%s/sip/connection/%s/tnlease?bearer=%s"):format(emu.url, conn, token),
          cjson.encode({ add = uuids }))
        assert.equals(200, s, cjson.encode(answer))
        assert.is_true(answer.success)
        assert.equals(#uuids, #answer.payload)
        pages = pages + 1
        skip = skip + #uuids -- by what the page held, never by take
      until skip >= total
      assert.equals(LEASES, total)
      assert.equals(3, pages)

      -- the library sees every lease of the account on the connection
      local client = emu:client()
      finally(function() client:close() end)
      local held = assert(client:list(conn))
      assert.equals(LEASES, #held)
      local want = support.set(st.leases)
      for _, lease in ipairs(held) do
        assert.is_true(want[lease.uuid], lease.uuid)
        want[lease.uuid] = nil
      end
      assert.is_nil(next(want))
      assert.same({}, assert(client:list(st.connections[1])))
      local on_conn = assert(client:search_all({ sip_connection = conn }))
      assert.equals(LEASES, #on_conn)

      -- every request of the script went with its token in the query, and
      -- was taken: 1 login, 3 pages, 3 assigns
      local log = emu:requests()
      assert.equals("valid", log[1].auth)
      for k = 2, 7 do
        assert.equals("query", log[k].token_from, cjson.encode(log[k]))
        assert.equals("valid", log[k].token)
      end
    end)

  it("the library sends the token in X-Auth-Token, never in a URL", function()
    -- a client that logs in (a JWT) and one with a static token, over
    -- every kind of request the library makes
    for _, login in ipairs({ true, false }) do
      emu:reset()
      local client = login and require("opentact").new({ base_url = emu.url, email = EMAIL, password = PASSWORD })
        or emu:client()
      finally(function() client:close() end)
      local conn = st.connections[2]
      assert(client:list(conn))
      assert(client:assign(conn, { add = { st.leases[10] } }))
      assert(client:lease(12125550010))
      assert(client:search({ tn = "1212555001*" }, { take = 5, skip = 1 }))
      assert(client:search_all(nil, { page_size = 100 }))
      assert(client:assign_batched(conn, { add = { st.leases[11], st.leases[12] } }, { batch_size = 1 }))
      assert(client:sync(conn, { leases = { st.leases[10], st.leases[13] } }))
      local log = emu:requests()
      local api, logins = 0, 0
      for _, e in ipairs(log) do
        if e.auth then
          assert.equals("valid", e.auth)
          logins = logins + 1
        else
          api = api + 1
          assert.equals("header", e.token_from, cjson.encode(e))
          assert.equals("valid", e.token)
          for _, name in ipairs(e.query or {}) do assert.not_equals("bearer", name, cjson.encode(e)) end
        end
      end
      assert.is_true(api >= 10, api .. " API requests")
      assert.equals(login and 1 or 0, logins)
    end
  end)
end)
