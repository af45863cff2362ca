-- Installs a user reloaded from the durable store.
-- KEYS: user hash, publish-list zset, lease. ARGV: token, field count N, N field/value pairs,
-- then the user's video ids. Returns 1 when installed, 0 when the lease was lost (reload again).
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local n = tonumber(ARGV[2])
local h = {}
for i = 3, 2 + 2 * n do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
-- member "0" with score 0 marks the set as loaded even when the user has no videos
redis.call('ZADD', KEYS[2], 0, '0')
local batch = {}
for i = 3 + 2 * n, #ARGV do
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('ZADD', KEYS[2], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('ZADD', KEYS[2], unpack(batch)) end
return 1
