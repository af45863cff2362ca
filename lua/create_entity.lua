-- Installs a brand-new entity (a user at registration, a video at publishing), whose complete
-- state the writer knows. KEYS: hash, companion key (a user's publish list, a video's play-count
-- HyperLogLog), lease. ARGV: companion kind ('zset' or 'hll'), then field/value pairs.
-- Idempotent: an entity already present is left alone. Returns 1 when created, 0 when present.
redis.call('DEL', KEYS[3])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local h = {}
for i = 2, #ARGV do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
redis.call('DEL', KEYS[2])
if ARGV[1] == 'zset' then
  redis.call('ZADD', KEYS[2], 0, '0')
else
  redis.call('PFADD', KEYS[2])
end
return 1
