-- Installs a zset reloaded from the durable store (the feed, a conversation).
-- KEYS: zset, lease, the zset's staging key (load_chunk.lua).
-- ARGV: token, 'ids' or 'pairs', '1' when load_chunk staged the set's head (else '0'), then
-- the rest: ids (scored by themselves) or (score, member) pairs.
-- Returns 1 when installed, 0 when the lease was lost.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[3] == '1' then
  if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
  redis.call('RENAME', KEYS[3], KEYS[1])
  redis.call('PERSIST', KEYS[1])
else
  redis.call('DEL', KEYS[3])
end
redis.call('ZADD', KEYS[1], 0, '0')
local ids = ARGV[2] == 'ids'
local batch = {}
for i = 4, #ARGV do
  batch[#batch + 1] = ARGV[i]
  if ids then batch[#batch + 1] = ARGV[i] end
  if #batch >= 1000 then redis.call('ZADD', KEYS[1], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('ZADD', KEYS[1], unpack(batch)) end
return 1
