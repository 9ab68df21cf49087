if not stored then return {num(capacity)} end
local level = tonumber(stored) + args[2]
if level >= capacity then
  redis.call('DEL', key)
  return {num(capacity)}
end
redis.call('SET', key, num(level), 'PX', math.ceil(ttl * 1000))
return {num(level)}
