-- A strict JSON reader for the specs, written independently of dms.core, that
-- keeps what lua-cjson loses: arrays apart from objects (an empty [] is not
-- an empty {}), and the text of every number (a long beyond 2^53 stays exact).
--
--   tree.decode(text) -> node | nil, why
--     node: a string, true, false, tree.null,
--           { kind = "number", text = "12.5", value = 12.5 },
--           { kind = "array", ... items ... }, { kind = "object", map = { k = node } }
--   tree.same(a, b) -> true | false, where   (numbers compared as doubles, and
--                                             integers beyond 2^53 by their digits)
local M = {}

M.null = setmetatable({}, { __tostring = function() return "null" end })

local function decoder(text)
  local pos = 1
  local function fail(why) error({ why = why .. " at byte " .. pos }, 0) end
  local function ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value

  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1 break end
      if c:byte() < 32 then fail("control character in a string") end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local map = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if map[e] then
          out[#out + 1] = map[e]
          pos = pos + 2
        elseif e == "u" then
          local hex = text:sub(pos + 2, pos + 5)
          if not hex:match("^%x%x%x%x$") then fail("bad \\u escape") end
          local cp = tonumber(hex, 16)
          pos = pos + 6
          if cp >= 0xD800 and cp <= 0xDBFF and text:sub(pos, pos + 1) == "\\u" then
            local lo = tonumber(text:sub(pos + 2, pos + 5), 16)
            if lo and lo >= 0xDC00 and lo <= 0xDFFF then
              cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
              pos = pos + 6
            end
          end
          if cp < 0x80 then out[#out + 1] = string.char(cp)
          elseif cp < 0x800 then
            out[#out + 1] = string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
          elseif cp < 0x10000 then
            out[#out + 1] = string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
          else
            out[#out + 1] = string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
                                        0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
          end
        else
          fail("bad escape")
        end
      else
        local stop = pos
        repeat                                     -- DEL (127) is a %c, and allowed in JSON
          stop = text:find('["\\%c]', stop) or #text + 1
          local more = text:byte(stop) == 127
          if more then stop = stop + 1 end
        until not more
        out[#out + 1] = text:sub(pos, stop - 1)
        pos = stop
      end
    end
    return table.concat(out)
  end

  value = function()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      local map = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return { kind = "object", map = map } end
      while true do
        ws()
        if text:sub(pos, pos) ~= '"' then fail("expected a member name") end
        local k = str()
        ws()
        if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        map[k] = value()
        ws()
        c = text:sub(pos, pos)
        pos = pos + 1
        if c == "}" then return { kind = "object", map = map } end
        if c ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local arr = { kind = "array" }
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return arr end
      while true do
        arr[#arr + 1] = value()
        ws()
        c = text:sub(pos, pos)
        pos = pos + 1
        if c == "]" then return arr end
        if c ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif text:sub(pos, pos + 3) == "true" then pos = pos + 4 return true
    elseif text:sub(pos, pos + 4) == "false" then pos = pos + 5 return false
    elseif text:sub(pos, pos + 3) == "null" then pos = pos + 4 return M.null
    end
    local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not num or not num:match("^-?0?%d") or not tonumber(num) then fail("expected a value") end
    pos = pos + #num
    return { kind = "number", text = num, value = tonumber(num) }
  end

  return function()
    local v = value()
    ws()
    if pos <= #text then fail("text after the value") end
    return v
  end
end

function M.decode(text)
  local ok, v = pcall(decoder(text))
  if ok then return v end
  return nil, type(v) == "table" and v.why or tostring(v)
end

-- integers beyond 2^53: their digits, without a sign of zero or leading zeros
local function big_digits(n)
  local t = n.text
  if t:find("[.eE]") then return nil end
  local neg, digits = t:match("^(-?)0*(%d+)$")
  if not digits or #digits < 16 then return nil end
  return neg .. digits
end

function M.same(a, b, where)
  where = where or "$"
  if type(a) ~= type(b) then return false, where .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) ~= "table" then
    if a == b then return true end
    return false, where .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  if a == M.null or b == M.null then
    if a == b then return true end
    return false, where .. ": null vs a value"
  end
  if a.kind ~= b.kind then return false, where .. ": " .. tostring(a.kind) .. " vs " .. tostring(b.kind) end
  if a.kind == "number" then
    local da, db = big_digits(a), big_digits(b)
    if da and db then
      if da == db then return true end
    elseif a.value == b.value then
      return true
    end
    return false, where .. ": " .. a.text .. " vs " .. b.text
  elseif a.kind == "array" then
    if #a ~= #b then return false, where .. ": " .. #a .. " items vs " .. #b end
    for i = 1, #a do
      local ok, why = M.same(a[i], b[i], where .. "[" .. i .. "]")
      if not ok then return false, why end
    end
    return true
  end
  for k, v in pairs(a.map) do
    if b.map[k] == nil then return false, where .. "." .. k .. " missing from the second" end
    local ok, why = M.same(v, b.map[k], where .. "." .. k)
    if not ok then return false, why end
  end
  for k in pairs(b.map) do
    if a.map[k] == nil then return false, where .. "." .. k .. " missing from the first" end
  end
  return true
end

-- JSON text of a Lua value, for the oracles' input: integers exactly (%d on
-- Lua 5.3+, integral doubles up to 2^53 on LuaJIT), other numbers with 17
-- significant digits, tables marked with tree.array as arrays (so that an
-- empty one is []), other tables as objects, tree.null as null.
M.array_mt = { __name = "json array" }
function M.array(t) return setmetatable(t or {}, M.array_mt) end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return map[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

function M.encode(v)
  local t = type(v)
  if t == "string" then return encode_string(v) end
  if t == "boolean" then return tostring(v) end
  if v == M.null then return "null" end
  if t == "number" then
    if math.type and math.type(v) == "integer" then return string.format("%d", v) end
    if v == math.floor(v) and math.abs(v) <= 2 ^ 53 then return string.format("%.0f", v) end
    assert(v == v and math.abs(v) ~= math.huge, "JSON has no NaN or infinity")
    return string.format("%.17g", v)
  end
  assert(t == "table", "cannot encode a " .. t)
  local out = {}
  if getmetatable(v) == M.array_mt then
    for i = 1, #v do out[i] = M.encode(v[i]) end
    return "[" .. table.concat(out, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do out[i] = encode_string(k) .. ":" .. M.encode(v[k]) end
  return "{" .. table.concat(out, ",") .. "}"
end

-- compares two JSON texts
function M.same_text(a, b)
  local ta, ea = M.decode(a)
  if ea then return false, "the first is not JSON: " .. ea end
  local tb, eb = M.decode(b)
  if eb then return false, "the second is not JSON: " .. eb end
  return M.same(ta, tb)
end

return M
