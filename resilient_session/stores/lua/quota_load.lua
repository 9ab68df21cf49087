-- A rate limit's state (see policies/ratelimit.py): a GCRA schedule, a hold, the learned and adaptive rates.
local fresh = {tat = 0, till = 0, lrate = 0, lwin = 0, wmax = 0, tthr = 0, ms = 0, mc = 0, mr = 0}
local s = {}
for k, v in pairs(fresh) do s[k] = v end
local raw = redis.call('HGETALL', key)
local big = 9007199254740992
local late = now + ttl + 2 * 86400
local bounds = {tat = {-big, late}, till = {-big, late}, lrate = {0, 1e12}, lwin = {0, 86400},
  wmax = {0, 1e12}, tthr = {-big, late}, ms = {-big, late}, mc = {0, big}, mr = {0, 1e12}}
for i = 1, #raw, 2 do
  local b = bounds[raw[i]]
  if b then
    local v = checked(raw[i + 1], b[1], b[2], false)
    if v ~= nil then s[raw[i]] = v end
  end
end
if corrupt then
  redis.call('DEL', key)
  s = {}
  for k, v in pairs(fresh) do s[k] = v end
end
local function save()
  redis.call('HSET', key, 'tat', num(s.tat), 'till', num(s.till), 'lrate', num(s.lrate), 'lwin', num(s.lwin),
    'wmax', num(s.wmax), 'tthr', num(s.tthr), 'ms', num(s.ms), 'mc', num(s.mc), 'mr', num(s.mr))
  redis.call('PEXPIRE', key, math.ceil(ttl * 1000))
end
local BETA, C, MIN_RATE, EVERY, SMOOTH = 0.7, 0.4, 0.5, 0.5, 0.8
local function cubic()
  if s.wmax <= 0 then return 0 end
  local k = (s.wmax * (1 - BETA) / C) ^ (1 / 3)
  local rate = C * (math.max(0, now - s.tthr) - k) ^ 3 + s.wmax
  if s.mr > 0 then rate = math.min(rate, 2 * s.mr) end
  return math.max(MIN_RATE, rate)
end
