-- Installs a user reloaded from the durable store.
-- KEYS: user hash, publish list, liked videos, following, followers (zsets), the keys to clear
-- (the member versions), the lease, then the staging keys of the four zsets (load_chunk.lua).
-- ARGV: token, four flags ('1': load_chunk staged that zset's head, in KEYS order), field
-- count N, N field/value pairs, video count M, M video ids, then for each of the three scored
-- zsets (liked, following, followers): its pair count P and P (score, member) pairs.
-- Returns 1 when installed, 0 when the lease was lost (reload again).
local nk = #KEYS - 4
local lease = KEYS[nk]
if redis.call('GET', lease) ~= ARGV[1] then return 0 end
for k = 2, 5 do
  if string.sub(ARGV[2], k - 1, k - 1) == '1' and redis.call('EXISTS', KEYS[nk + k - 1]) == 0 then
    return 0
  end
end
redis.call('DEL', unpack(KEYS, 1, nk))
local n = tonumber(ARGV[3])
local h = {}
for i = 4, 3 + 2 * n do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
for k = 2, 5 do
  local s = KEYS[nk + k - 1]
  if string.sub(ARGV[2], k - 1, k - 1) == '1' then
    redis.call('RENAME', s, KEYS[k])
    redis.call('PERSIST', KEYS[k])
  else
    redis.call('DEL', s)
  end
  -- member "0" with score 0 marks a set as loaded even when it is empty
  redis.call('ZADD', KEYS[k], 0, '0')
end
local at = 4 + 2 * n
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
