local limit, window, reset, hold, throttled, age, headroom = args[1], args[2], args[3], args[4], args[5], args[6], args[7]
local remaining = args[8]
local sent = now - age
if hold > 0 and s.wcut > 0 and s.wcut <= sent and sent < s.wcut + 1 then
  s.wb, s.wcut = 0, 0
end
if remaining >= 0 then
  if limit > 0 then
    local jumped
    if s.lr >= 0 then jumped = remaining > s.lr + limit / 2 else jumped = remaining >= limit - 1 end
    if jumped then s.wb = now end
  end
  s.lr = remaining
end
if limit > 0 then
  if reset > s.lwin then s.lwin = math.min(reset, 86400) end
  local span = s.lwin
  if window > 0 then span = window end
  if span > 0 then s.lrate = headroom * limit / span end
end
if hold > 0 then
  local stop = now + hold
  if s.wb > 0 and window > 0 and hold >= 1 and hold == math.floor(hold) then
    local boundary = s.wb + (math.floor((now - s.wb) / window) + 1) * window
    if now + hold - 1 < boundary and boundary < now + hold then stop = boundary end
  end
  if stop < now + hold then s.wcut = math.max(s.wcut, stop) end
  if s.till <= now then
    s.hset = now
    s.till = stop
  elseif not (sent < s.hset and hold >= 1 and hold == math.floor(hold)) then
    s.till = math.max(s.till, stop)
  end
end
if throttled > 0 and (s.wmax <= 0 or sent >= s.tthr) then
  local current = cubic()
  local measured = s.mr
  local base = 0
  if current > 0 and measured > 0 then base = math.min(current, measured)
  elseif current > 0 then base = current
  elseif measured > 0 then base = measured end
  if base > 0 then
    s.wmax = base
    s.tthr = math.max(now, s.till)
  end
end
save()
return {num(s.lrate), num(cubic()), num(math.max(0, s.till - now))}
