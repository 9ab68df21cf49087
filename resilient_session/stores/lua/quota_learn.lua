local limit, window, reset, hold, throttled, age, headroom = args[1], args[2], args[3], args[4], args[5], args[6], args[7]
if limit > 0 then
  if reset > s.lwin then s.lwin = math.min(reset, 86400) end
  local span = s.lwin
  if window > 0 then span = window end
  if span > 0 then s.lrate = headroom * limit / span end
end
if hold > 0 then s.till = math.max(s.till, now + hold) end
if throttled > 0 and (s.wmax <= 0 or now - age >= s.tthr) then
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
