-- One page of a zset, highest score first, skipping the loaded marker (score 0).
-- KEYS: the zset, then keys that must also exist (e.g. the owner's hash).
-- ARGV: exclusive upper score bound ('+inf' for none), limit, and 'withscores' to get
-- member/score pairs. Returns the members, or -1 when a key is missing (reload, retry).
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
end
local max = ARGV[1]
if max ~= '+inf' then max = '(' .. max end
if ARGV[3] == 'withscores' then
  return redis.call('ZREVRANGEBYSCORE', KEYS[1], max, 1, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
end
return redis.call('ZREVRANGEBYSCORE', KEYS[1], max, 1, 'LIMIT', 0, tonumber(ARGV[2]))
