-- Installs a brand-new entity (a user at registration, a video at publishing, a comment), whose
-- complete state the writer knows. KEYS: hash, lease, then companion keys. ARGV[1]: one letter
-- per companion ('z': zset with the loaded marker "0", 'h': HyperLogLog); then field/value
-- pairs. Idempotent: an entity already present is left alone. Returns 1 created, 0 present.
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local h = {}
for i = 2, #ARGV do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
for i = 3, #KEYS do
  local kind = string.sub(ARGV[1], i - 2, i - 2)
  redis.call('DEL', KEYS[i])
  if kind == 'z' then
    redis.call('ZADD', KEYS[i], 0, '0')
  else
    redis.call('PFADD', KEYS[i])
  end
end
return 1
