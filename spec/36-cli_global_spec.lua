-- What core.jwt_claims reads of a JWT for the command line: the account
-- it names (whoami shows it), besides exp and iat.
local core = require("opentact.core")

describe("core.jwt_claims's account #c", function()
  -- A JWT whose claims are `claims_json` as written, unsigned.
  local function jwt(claims_json)
    local function b64url(s) return (core.base64(s):gsub("=+$", ""):gsub("[+/]", { ["+"] = "-", ["/"] = "_" })) end
    return b64url('{"alg":"HS256","typ":"JWT"}') .. "." .. b64url(claims_json) .. "." .. b64url("not a signature")
  end

  it("is the first of email, user and sub that is a string of 1 to 320 bytes, else nil", function()
    local cases = {
      { '{"email":"a@example.com","user":"u","sub":"s","exp":5}', "a@example.com" },
      { '{"user":"ops","sub":"s"}', "ops" },
      { '{"sub":"4b0c"}', "4b0c" },
      { '{"email":"","user":7,"sub":"s"}', "s" },
      { '{"email":"' .. ("x"):rep(321) .. '","sub":"s"}', "s" },
      { '{"email":"' .. ("x"):rep(320) .. '"}', ("x"):rep(320) },
      { '{"email":null,"user":{},"sub":[]}', nil },
      { '{"exp":5}', nil },
    }
    for _, c in ipairs(cases) do
      local _, _, account = core.jwt_claims(jwt(c[1]))
      assert.equals(c[2], account, c[1])
    end
    assert.is_nil(select(3, core.jwt_claims("an opaque token")))
    assert.equals(3, select("#", core.jwt_claims("an opaque token")))
  end)
end)
