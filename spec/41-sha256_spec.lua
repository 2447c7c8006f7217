-- The SHA-256 of the C core (core.sha256), which names a saved plan and
-- the journal of its apply: the known answers of FIPS 180-4's examples
-- (NIST's "abc", the two-block message, the million a's) and the empty
-- string, and the block edges where the padding takes one block or two.
local core = require("opentact.core")
local unpack = table.unpack or unpack

describe("core.sha256 #c", function()
  local vectors = {
    { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
    { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
    { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
    { ("a"):rep(1000000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0" },
  }
  for _, v in ipairs(vectors) do
    it("gives the known answer for " .. (#v[1] > 60 and #v[1] .. " bytes" or ("%q"):format(v[1])), function()
      assert.equals(v[2], core.sha256(v[1]))
    end)
  end

  it("hashes the lengths where the padding takes one block or two, and binary bytes", function()
    -- 55 bytes pad into one block, 56 need a second; 64 is a whole block
    local known = {
      [55] = "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
      [56] = "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
      [64] = "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
    }
    for len, want in pairs(known) do assert.equals(want, core.sha256(("a"):rep(len)), len .. " bytes") end
    assert.equals("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", core.sha256("\0"))
    assert.equals(64, #core.sha256("\255\0\128"))
    assert.has_error(function() core.sha256({}) end)
  end)

  describe("core.sha256_fields", function()
    -- The bytes the hasher is fed for `fields` (each {"field", v} or
    -- {"words", ...}), written out in Lua: length, ':', type, text.
    local function text_of(fields)
      local out = {}
      for _, f in ipairs(fields) do
        local v
        if f[1] == "field" then
          local x = f[2]
          if type(x) == "number" then v = "n" .. ("%.17g"):format(x)
          elseif type(x) == "boolean" then v = x and "t" or "f"
          elseif x == nil then v = "-"
          else v = "s" .. x end
        else
          local words = {}
          for i = 2, f.n or #f do
            local w = f[i]
            words[#words + 1] = w == nil and "-" or type(w) == "number" and ("%.0f"):format(w) or w
          end
          v = "s" .. table.concat(words, " ")
        end
        out[#out + 1] = #v .. ":" .. v
      end
      return table.concat(out)
    end

    local function hash_of(fields)
      local h = core.sha256_fields()
      for _, f in ipairs(fields) do
        if f[1] == "field" then h:field(f[2]) else h:words(unpack(f, 2, f.n or #f)) end
      end
      return h:hex()
    end

    it("gives the SHA-256 of each field's length and text, for every type and across blocks", function()
      local long = ("x"):rep(200)
      local cases = {
        {},
        { { "field", "opentact-plan" }, { "field", 1 }, { "field", 0.5 }, { "field", true }, { "field", false } },
        { { "field", nil }, { "field", "" }, { "field", 19999999999 }, { "field", long } },
        { { "words", "add", "57914554-5b06-467e-baee-1b32374a01ac", 12125550006, nil, nil, n = 6 } },
        { { "words", "held", long, nil, "connection", long, n = 6 }, { "field", "uuid" } },
        { { "words", n = 1 }, { "words", "one", n = 2 } },
        -- whole numbers as "%.0f" writes them: negative, -0, beyond 2^63
        -- (LuaJIT's own "%.0f" rounds halves unlike C's: none here)
        { { "words", -5, 0, 1e19, -1e19, -0.0, 12125550001, n = 7 } },
      }
      for i, c in ipairs(cases) do assert.equals(core.sha256(text_of(c)), hash_of(c), "case " .. i) end
      -- the length keeps fields apart: ("ab", "c") and ("a", "bc") differ
      assert.not_equals(hash_of({ { "field", "ab" }, { "field", "c" } }), hash_of({ { "field", "a" }, { "field", "bc" } }))
    end)

    it("raises on a value it cannot write, and once its digest is given", function()
      assert.has_error(function() core.sha256_fields():field({}) end)
      assert.has_error(function() core.sha256_fields():words("a", false) end)
      assert.has_error(function() core.sha256_fields():words("a", {}) end)
      local h = core.sha256_fields()
      assert.equals(core.sha256(""), h:hex())
      assert.has_error(function() h:hex() end, "this hasher has given its digest already")
      assert.has_error(function() h:field("more") end, "this hasher has given its digest already")
    end)
  end)
end)
