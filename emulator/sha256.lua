-- The hash that signs the emulator's JWTs (see auth.lua). It needs only
-- bit: the spec loads this file in a plain LuaJIT to check the published
-- test vectors.

local bit = require("bit")
local byte, char, concat, floor = string.byte, string.char, table.concat, math.floor

local M = {}

-- SHA-256 (FIPS 180-2) and HMAC-SHA256 (RFC 2104) on LuaJIT's bit
-- library: the nginx Lua module of Debian has no resty.sha256, and the
-- JWTs must be signed without another dependency. bit works on signed
-- 32-bit numbers; sums are brought back to 32 bits with tobit.
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local lshift, rshift, ror, tobit = bit.lshift, bit.rshift, bit.ror, bit.tobit

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

-- Mixes the 64-byte block of `s` at `pos` into the hash state H.
local function compress(H, s, pos, W)
  for j = 1, 16 do
    local b1, b2, b3, b4 = byte(s, pos, pos + 3)
    W[j] = bor(lshift(b1, 24), lshift(b2, 16), lshift(b3, 8), b4)
    pos = pos + 4
  end
  for j = 17, 64 do
    local w15, w2 = W[j - 15], W[j - 2]
    local s0 = bxor(ror(w15, 7), ror(w15, 18), rshift(w15, 3))
    local s1 = bxor(ror(w2, 17), ror(w2, 19), rshift(w2, 10))
    W[j] = tobit(W[j - 16] + s0 + W[j - 7] + s1)
  end
  local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
  for j = 1, 64 do
    local t1 = h + bxor(ror(e, 6), ror(e, 11), ror(e, 25)) + bxor(band(e, f), band(bnot(e), g)) + K[j] + W[j]
    local t2 = bxor(ror(a, 2), ror(a, 13), ror(a, 22)) + bxor(band(a, b), band(a, c), band(b, c))
    h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
  end
  H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
  H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
end

local function be32(v)
  return char(band(rshift(v, 24), 255), band(rshift(v, 16), 255), band(rshift(v, 8), 255), band(v, 255))
end

-- The 32-byte SHA-256 digest of `msg`.
local function sha256(msg)
  local bits = #msg * 8
  -- 0x80, zeros up to 56 bytes mod 64, then the length in bits on 64 bits
  msg = msg .. "\128" .. ("\0"):rep((55 - #msg) % 64) .. be32(floor(bits / 0x100000000)) .. be32(bits % 0x100000000)
  local H = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local W = {}
  for pos = 1, #msg, 64 do compress(H, msg, pos, W) end
  local out = {}
  for i = 1, 8 do out[i] = be32(H[i]) end
  return concat(out)
end

local function xor_bytes(s, pad)
  return (s:gsub(".", function(c) return char(bxor(byte(c), pad)) end))
end

-- The 32-byte HMAC-SHA256 of `msg` under `key`.
local function hmac_sha256(key, msg)
  if #key > 64 then key = sha256(key) end
  key = key .. ("\0"):rep(64 - #key)
  return sha256(xor_bytes(key, 0x5c) .. sha256(xor_bytes(key, 0x36) .. msg))
end

M.sha256, M.hmac_sha256 = sha256, hmac_sha256

return M
