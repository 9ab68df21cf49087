local fresh = {st = 0, gen = 0, win = '', nf = 0, cf = 0, till = 0, trips = 0, pin = 0, pok = 0, pat = 0}
local s = {}
for k, v in pairs(fresh) do s[k] = v end
local raw = redis.call('HGETALL', key)
local exists = #raw > 0
-- Every field is checked (checked() in the prelude); unknown fields are ignored. A circuit open until
-- later than ttl from now cannot have been written by these scripts (ttl exceeds the longest wait).
local big = 9007199254740992
local bounds = {st = {0, 2, true}, gen = {-big, big, true}, nf = {0, big, true}, cf = {0, big, true},
  trips = {0, big, true}, pin = {0, big, true}, pok = {0, big, true}, till = {-big, now + ttl, false},
  pat = {-big, now + ttl, false}}
for i = 1, #raw, 2 do
  local name, value = raw[i], raw[i + 1]
  if name == 'win' then
    if string.find(value, '[^01]') then corrupt = true else s.win = value end
  elseif bounds[name] then
    local b = bounds[name]
    local v = checked(value, b[1], b[2], b[3])
    if v ~= nil then s[name] = v end
  end
end
if corrupt then
  redis.call('DEL', key)
  s = {}
  for k, v in pairs(fresh) do s[k] = v end
  exists = false
end
local function save()
  redis.call('HSET', key, 'st', num(s.st), 'gen', num(s.gen), 'win', s.win, 'nf', num(s.nf),
    'cf', num(s.cf), 'till', num(s.till), 'trips', num(s.trips), 'pin', num(s.pin),
    'pok', num(s.pok), 'pat', num(s.pat))
  redis.call('PEXPIRE', key, math.ceil(ttl * 1000))
end
local function reply(admitted, till, old, why, a, b)
  if till == nil then
    if s.st == 1 then till = s.till else till = 0 end
  end
  return {num(admitted), num(s.gen), num(s.st), num(till), num(old or -1), num(why or 0),
    num(a or 0), num(b or 0)}
end
local function trip(open_wait, multiplier, max_wait)
  s.trips = s.trips + 1
  s.till = now + math.min(max_wait, open_wait * multiplier ^ (s.trips - 1))
  s.st = 1
  s.gen = s.gen + 1
  s.win = ''
  s.nf, s.cf, s.pin, s.pok = 0, 0, 0, 0
end
local function close()
  s.st, s.gen, s.trips, s.till = 0, s.gen + 1, 0, 0
  s.win = ''
  s.nf, s.cf, s.pin, s.pok = 0, 0, 0, 0
end
