if not stored then return {num(capacity)} end
return {num(math.min(tonumber(stored), capacity))}
