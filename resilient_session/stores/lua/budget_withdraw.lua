local level = capacity
if stored then level = math.min(tonumber(stored), capacity) end
if level >= args[2] then
  level = level - args[2]
  redis.call('SET', key, num(level), 'PX', math.ceil(ttl * 1000))
  return {num(1), num(level)}
end
return {num(0), num(level)}
