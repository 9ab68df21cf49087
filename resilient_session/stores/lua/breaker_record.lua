local gen, outcome, window, min_calls, threshold = args[1], args[2], args[3], args[4], args[5]
local consecutive, open_wait, multiplier, max_wait, probes = args[6], args[7], args[8], args[9], args[10]
if gen ~= s.gen or (outcome == 2 and s.st ~= 2) then return reply(1) end
local old = s.st
if s.st == 0 then
  if outcome == 1 then
    s.win = s.win .. '1'
    s.nf = s.nf + 1
    s.cf = s.cf + 1
  else
    s.win = s.win .. '0'
    s.cf = 0
  end
  local excess = #s.win - window
  if excess > 0 then
    local _, dropped = string.gsub(string.sub(s.win, 1, excess), '1', '')
    s.nf = s.nf - dropped
    s.win = string.sub(s.win, excess + 1)
  end
  local n = #s.win
  if consecutive > 0 and s.cf >= consecutive then
    local count = s.cf
    trip(open_wait, multiplier, max_wait)
    save()
    return reply(1, nil, old, 1, count)
  end
  if n >= min_calls and s.nf >= threshold * n then
    local rate = s.nf / n
    trip(open_wait, multiplier, max_wait)
    save()
    return reply(1, nil, old, 2, rate, n)
  end
  save()
  return reply(1)
end
if s.st == 2 then
  if outcome == 1 then
    trip(open_wait, multiplier, max_wait)
    save()
    return reply(1, nil, old, 4)
  end
  s.pin = math.max(s.pin - 1, 0)
  if outcome == 0 then
    s.pok = s.pok + 1
    if s.pok >= probes then
      local ok = s.pok
      close()
      save()
      return reply(1, nil, old, 5, ok)
    end
  end
  save()
end
return reply(1)
