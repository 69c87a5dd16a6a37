-- SHA-1 in Lua, for the one place the AWS tools use it: the file name of a
-- cached SSO token (~/.aws/sso/cache/<sha1 of the session name or start
-- URL>.json). Not for anything that needs a secure hash.
--
--   require("dms.credentials.sha1").hex("my-sso") --> 40 lower-case hex digits
--
-- Runs on LuaJIT (its `bit` library) and on Lua 5.3/5.4 (integer operators,
-- compiled with load() so that LuaJIT never parses them).
local string_byte, string_char, string_format, string_rep = string.byte, string.char, string.format, string.rep
local math_floor = math.floor

local ops
local has_bit, bit = pcall(require, "bit")
if has_bit then
  local tobit, band, bor, bxor, bnot, rol = bit.tobit, bit.band, bit.bor, bit.bxor, bit.bnot, bit.rol
  ops = {
    band = band, bor = bor, bxor = bxor, bnot = bnot, rol = rol,
    add = function(a, b, c, d, e) return tobit(a + b + (c or 0) + (d or 0) + (e or 0)) end,
    hex = function(x) return bit.tohex(x, 8) end,
  }
else
  ops = assert(load([[
    local M32 = 0xffffffff
    return {
      band = function(a, b) return a & b end,
      bor = function(a, b) return a | b end,
      bxor = function(a, b) return a ~ b end,
      bnot = function(a) return ~a & M32 end,
      rol = function(x, n) return ((x << n) | (x >> (32 - n))) & M32 end,
      add = function(a, b, c, d, e) return (a + b + (c or 0) + (d or 0) + (e or 0)) & M32 end,
      hex = function(x) return string.format("%08x", x) end,
    }
  ]]))()
end
local band, bor, bxor, bnot, rol, add = ops.band, ops.bor, ops.bxor, ops.bnot, ops.rol, ops.add

local M = {}

-- the message padded to a multiple of 64 bytes, its bit length at the end
local function pad(msg)
  local bits = #msg * 8
  local zeros = (55 - #msg) % 64
  local len = {}
  for i = 8, 1, -1 do
    len[i] = bits % 256
    bits = math_floor(bits / 256)
  end
  return msg .. "\128" .. string_rep("\0", zeros) .. string_char((table.unpack or unpack)(len))
end

-- 40 lower-case hex digits
function M.hex(msg)
  assert(type(msg) == "string", "sha1.hex: the message must be a string")
  local h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
  if has_bit then h0, h1, h2, h3, h4 = bit.tobit(h0), bit.tobit(h1), bit.tobit(h2), bit.tobit(h3), bit.tobit(h4) end
  local data = pad(msg)
  local w = {}
  for chunk = 1, #data, 64 do
    for i = 0, 15 do
      local b1, b2, b3, b4 = string_byte(data, chunk + i * 4, chunk + i * 4 + 3)
      w[i] = add(b1 * 16777216, b2 * 65536 + b3 * 256 + b4)
    end
    for i = 16, 79 do
      w[i] = rol(bxor(bxor(w[i - 3], w[i - 8]), bxor(w[i - 14], w[i - 16])), 1)
    end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for i = 0, 79 do
      local f, k
      if i < 20 then
        f, k = bor(band(b, c), band(bnot(b), d)), 0x5A827999
      elseif i < 40 then
        f, k = bxor(bxor(b, c), d), 0x6ED9EBA1
      elseif i < 60 then
        f, k = bor(bor(band(b, c), band(b, d)), band(c, d)), 0x8F1BBCDC
      else
        f, k = bxor(bxor(b, c), d), 0xCA62C1D6
      end
      local t = add(rol(a, 5), f, e, k, w[i])
      e, d, c, b, a = d, c, rol(b, 30), a, t
    end
    h0, h1, h2, h3, h4 = add(h0, a), add(h1, b), add(h2, c), add(h3, d), add(h4, e)
  end
  return string_format("%s%s%s%s%s", ops.hex(h0), ops.hex(h1), ops.hex(h2), ops.hex(h3), ops.hex(h4))
end

return M
