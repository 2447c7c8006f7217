-- The SHA-256 of the C core (core.sha256), which names a saved plan and
-- the journal of its apply: the known answers of FIPS 180-4's examples
-- (NIST's "abc", the two-block message, the million a's) and the empty
-- string, and the block edges where the padding takes one block or two.
local core = require("opentact.core")

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
end)
