-- A reserved slot given back unused (its call ended before it sent): the schedule moves back by one
-- interval while that slot is still the last one reserved; otherwise it stays spent.
local interval, mark = args[1], args[2]
if raw[1] == nil or interval <= 0 or math.abs(s.tat - mark) > 1e-6 then return {num(0)} end
s.tat = mark - interval
if s.mc > 0 then s.mc = s.mc - 1 end
save()
return {num(1)}
