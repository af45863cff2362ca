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
-- one DEL for the old keys and the staging keys of sets not staged (a lost reload's leftovers)
local gone = {unpack(KEYS, 1, nk)}
for k = 2, 5 do
  if string.sub(ARGV[2], k - 1, k - 1) ~= '1' then gone[#gone + 1] = KEYS[nk + k - 1] end
end
redis.call('DEL', unpack(gone))
local n = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n))
for k = 2, 5 do
  if string.sub(ARGV[2], k - 1, k - 1) == '1' then
    redis.call('RENAME', KEYS[nk + k - 1], KEYS[k])
    redis.call('PERSIST', KEYS[k])
  end
end
-- each zset gets the member "0" with score 0 in its first ZADD: it marks the set as loaded even
-- when it is empty
local at = 4 + 2 * n
local m = tonumber(ARGV[at])
local batch = {'0', '0'}
for i = at + 1, at + m do
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('ZADD', KEYS[2], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('ZADD', KEYS[2], unpack(batch)) end
at = at + m + 1
-- the scored zsets' pairs go straight from ARGV, 500 pairs a call
for k = 3, 5 do
  local to = at + 2 * tonumber(ARGV[at])
  local last = math.min(at + 1000, to)
  redis.call('ZADD', KEYS[k], '0', '0', unpack(ARGV, at + 1, last))
  for i = last + 1, to, 1000 do
    redis.call('ZADD', KEYS[k], unpack(ARGV, i, math.min(i + 999, to)))
  end
  at = to + 1
end
return 1
