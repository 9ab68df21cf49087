local capacity = args[1]
local stored = redis.call('GET', key)
if stored then
  -- nan, inf, 1e400, text or a negative level: the key is corrupt; treat it as absent (a full budget).
  if checked(stored, 0, 9007199254740992, false) == nil then
    redis.call('DEL', key)
    stored = false
  end
end
