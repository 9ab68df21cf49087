-- After the op's own Lua: a corrupt key is reported to the client as a trailing "corrupt" marker.
end
local out = body()
if corrupt then out[#out + 1] = 'corrupt' end
return out
