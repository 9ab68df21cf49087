local probes, lease = args[1], args[2]
if s.st == 0 then return reply(1) end
if s.st == 1 then
  if now < s.till then return reply(0) end
  s.st, s.gen, s.pin, s.pok, s.pat = 2, s.gen + 1, 1, 0, now
  save()
  return reply(1, nil, 1, 3)
end
if s.pin < probes or now >= s.pat + lease then
  if s.pin >= probes then s.pin = 0 end
  s.pin = s.pin + 1
  s.pat = now
  save()
  return reply(1)
end
return reply(0, s.pat + lease)
