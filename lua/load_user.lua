-- Installs a user reloaded from the durable store.
-- KEYS: user hash, publish-list zset, liked-videos zset, lease.
-- ARGV: token, field count N, N field/value pairs, video count M, M video ids, then
-- (like_id, video_id) pairs of the liked videos.
-- Returns 1 when installed, 0 when the lease was lost (reload again).
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
local n = tonumber(ARGV[2])
local h = {}
for i = 3, 2 + 2 * n do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
-- member "0" with score 0 marks a set as loaded even when it is empty
redis.call('ZADD', KEYS[2], 0, '0')
redis.call('ZADD', KEYS[3], 0, '0')
local at = 3 + 2 * n
local m = tonumber(ARGV[at])
local batch = {}
for i = at + 1, at + m do
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('ZADD', KEYS[2], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('ZADD', KEYS[2], unpack(batch)) batch = {} end
for i = at + m + 1, #ARGV do
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('ZADD', KEYS[3], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('ZADD', KEYS[3], unpack(batch)) end
return 1
