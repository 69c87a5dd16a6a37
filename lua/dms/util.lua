-- Small helpers shared by the Lua layer.
local pairs = pairs

local M = {}

-- A shallow copy: inputs are copied, never mutated.
function M.copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

return M
