if not exists then return reply(1) end
local old = s.st
close()
save()
if old == 0 then return reply(1, nil, -1, 6) end
return reply(1, nil, old, 6)
