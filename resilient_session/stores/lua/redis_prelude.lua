-- Every op's Lua runs after this prelude: KEYS[1] is the key, ARGV is now, ttl, then the op's numbers.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local args = {}
for i = 3, #ARGV do args[i - 2] = tonumber(ARGV[i]) end
local function num(x) return string.format('%.17g', x) end
local corrupt = false
-- A stored number, when it is one within [lo, hi] (an integer if int); otherwise nil, and the key is
-- marked corrupt: nan, inf, 1e400, 'abc' and out-of-range values never reach the op's arithmetic.
local function checked(x, lo, hi, int)
  local v = tonumber(x)
  if v == nil or v ~= v or v < lo or v > hi or (int and math.floor(v) ~= v) then
    corrupt = true
    return nil
  end
  return v
end
local function body()
