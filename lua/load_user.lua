-- Installs a user reloaded from the durable store.
-- KEYS: user hash, publish list, liked videos, following, followers (zsets), then keys to
-- clear (the member versions), lease last.
-- ARGV: token, field count N, N field/value pairs, video count M, M video ids, then for each
-- of the three scored zsets (liked, following, followers): its pair count P and P
-- (score, member) pairs.
-- Returns 1 when installed, 0 when the lease was lost (reload again).
local lease = KEYS[#KEYS]
if redis.call('GET', lease) ~= ARGV[1] then return 0 end
redis.call('DEL', unpack(KEYS))
local n = tonumber(ARGV[2])
local h = {}
for i = 3, 2 + 2 * n do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
-- member "0" with score 0 marks a set as loaded even when it is empty
for k = 2, 5 do redis.call('ZADD', KEYS[k], 0, '0') end
local at = 3 + 2 * n
local m = tonumber(ARGV[at])
local batch = {}
for i = at + 1, at + m do
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('ZADD', KEYS[2], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('ZADD', KEYS[2], unpack(batch)) batch = {} end
at = at + m + 1
for k = 3, 5 do
  local p = tonumber(ARGV[at])
  for i = at + 1, at + 2 * p do
    batch[#batch + 1] = ARGV[i]
    if #batch >= 1000 then redis.call('ZADD', KEYS[k], unpack(batch)) batch = {} end
  end
  if #batch > 0 then redis.call('ZADD', KEYS[k], unpack(batch)) batch = {} end
  at = at + 2 * p + 1
end
return 1
