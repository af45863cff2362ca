-- Installs a video reloaded from the durable store.
-- KEYS: video hash, play-count HyperLogLog, comments zset, then keys to clear (the comment
-- member versions), lease last.
-- ARGV: token, field count N, N field/value pairs, viewer count M, M viewers, then comment ids.
-- Returns 1 when installed, 0 when the lease was lost.
if redis.call('GET', KEYS[#KEYS]) ~= ARGV[1] then return 0 end
redis.call('DEL', unpack(KEYS))
local n = tonumber(ARGV[2])
local h = {}
for i = 3, 2 + 2 * n do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
redis.call('PFADD', KEYS[2])
redis.call('ZADD', KEYS[3], 0, '0')
local at = 3 + 2 * n
local m = tonumber(ARGV[at])
local batch = {}
for i = at + 1, at + m do
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('PFADD', KEYS[2], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('PFADD', KEYS[2], unpack(batch)) batch = {} end
for i = at + m + 1, #ARGV do
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('ZADD', KEYS[3], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('ZADD', KEYS[3], unpack(batch)) end
return 1
