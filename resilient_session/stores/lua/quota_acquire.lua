local static, burst, max_wait, learn_up, after = args[1], args[2], args[3], args[4], args[5]
local rate = static
if s.lrate > 0 then
  if rate <= 0 or learn_up > 0 then rate = s.lrate else rate = math.min(rate, s.lrate) end
end
local adaptive = cubic()
if adaptive > 0 then
  if rate <= 0 then rate = adaptive else rate = math.min(rate, adaptive) end
end
local hold = math.max(0, s.till - now)
local wait = math.max(hold, after)
if rate <= 0 then
  if wait > max_wait then return {num(0), num(wait), num(rate), num(hold), num(0)} end
else
  local interval = 1 / rate
  local base = math.max(s.tat, now + after, s.till)
  wait = math.max(0, base + interval - burst * interval - now, hold, after)
  if wait < 1e-6 then wait = 0 end
  if wait > max_wait then return {num(0), num(wait), num(rate), num(hold), num(0)} end
  s.tat = base + interval
end
if s.ms <= 0 or s.ms > now then s.ms, s.mc = now, 0 end
s.mc = s.mc + 1
if now - s.ms >= EVERY then
  local sample = s.mc / (now - s.ms)
  if s.mr <= 0 then s.mr = sample else s.mr = SMOOTH * sample + (1 - SMOOTH) * s.mr end
  s.ms, s.mc = now, 0
end
save()
local mark = 0
if rate > 0 then mark = s.tat end
return {num(1), num(wait), num(rate), num(hold), num(mark)}
