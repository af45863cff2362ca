-- Installs a video reloaded from the durable store.
-- KEYS: video hash, play-count HyperLogLog, lease. ARGV: token, field count N, N field/value
-- pairs, then the distinct viewers. Returns 1 when installed, 0 when the lease was lost.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local n = tonumber(ARGV[2])
local h = {}
for i = 3, 2 + 2 * n do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
redis.call('PFADD', KEYS[2])
local batch = {}
for i = 3 + 2 * n, #ARGV do
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('PFADD', KEYS[2], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('PFADD', KEYS[2], unpack(batch)) end
return 1
