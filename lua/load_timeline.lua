-- Installs a timeline (a zset of ids scored by id) reloaded from the durable store.
-- KEYS: zset, lease. ARGV: token, then the ids. Returns 1 when installed, 0 when the lease was lost.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZADD', KEYS[1], 0, '0')
local batch = {}
for i = 2, #ARGV do
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('ZADD', KEYS[1], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('ZADD', KEYS[1], unpack(batch)) end
return 1
