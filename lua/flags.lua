-- The viewer's flags for a page: which of the ids ARGV are members of the zset KEYS[1] (a
-- user's liked videos). KEYS[2..]: keys that must exist too (the user's other keys).
-- Returns -1 when a key is missing (reload, retry), else one 0/1 per id.
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
end
local scores = redis.call('ZMSCORE', KEYS[1], unpack(ARGV))
local out = {}
for i = 1, #ARGV do
  if scores[i] then out[i] = 1 else out[i] = 0 end
end
return out
