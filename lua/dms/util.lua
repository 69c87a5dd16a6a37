-- Small helpers shared by the Lua layer.
local pairs, ipairs, type = pairs, ipairs, type

local M = {}

-- A shallow copy: inputs are copied, never mutated.
function M.copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- `text` with every occurrence of each secret (strings of 4 bytes or more)
-- replaced by "[redacted]"; anything that is not a string is returned as is.
function M.redact_text(text, secrets)
  if type(text) ~= "string" then return text end
  for _, secret in ipairs(secrets) do
    if type(secret) == "string" and #secret >= 4 then
      local i = text:find(secret, 1, true)
      while i do
        text = text:sub(1, i - 1) .. "[redacted]" .. text:sub(i + #secret)
        i = text:find(secret, i + 10, true)
      end
    end
  end
  return text
end

return M
