-- One page of a timeline zset scored by id, newest first.
-- KEYS: zset, then keys that must also exist (e.g. the owner's hash). ARGV: exclusive upper id
-- bound ('+inf' for none), limit. Returns the ids, or -1 when a key is missing (reload, retry).
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
end
local max = ARGV[1]
if max ~= '+inf' then max = '(' .. max end
return redis.call('ZREVRANGEBYSCORE', KEYS[1], max, 1, 'LIMIT', 0, tonumber(ARGV[2]))
