-- Installs a video reloaded from the durable store.
-- KEYS: video hash, play-count HyperLogLog, comments zset, the keys to clear (the comment
-- member versions, the exact viewers set), the lease, then the staging keys of the HyperLogLog
-- and the comments (load_chunk.lua).
-- ARGV: token, two flags ('1': load_chunk staged that set's head, in KEYS order), field count
-- N, N field/value pairs, viewer count M, M viewers, then comment ids. While the fields have no
-- 'ph' (few viewers, never staged) the M viewers also fill the exact viewers set, the key
-- before the lease (see play.lua).
-- Returns 1 when installed, 0 when the lease was lost.
local nk = #KEYS - 2
if redis.call('GET', KEYS[nk]) ~= ARGV[1] then return 0 end
for k = 2, 3 do
  if string.sub(ARGV[2], k - 1, k - 1) == '1' and redis.call('EXISTS', KEYS[nk + k - 1]) == 0 then
    return 0
  end
end
-- one DEL for the old keys and the staging keys of sets not staged (a lost reload's leftovers)
local gone = {unpack(KEYS, 1, nk)}
for k = 2, 3 do
  if string.sub(ARGV[2], k - 1, k - 1) ~= '1' then gone[#gone + 1] = KEYS[nk + k - 1] end
end
redis.call('DEL', unpack(gone))
local n = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n))
for k = 2, 3 do
  if string.sub(ARGV[2], k - 1, k - 1) == '1' then
    redis.call('RENAME', KEYS[nk + k - 1], KEYS[k])
    redis.call('PERSIST', KEYS[k])
  end
end
-- viewers straight from ARGV, 1000 a call; the first PFADD also creates an empty HyperLogLog
local at = 4 + 2 * n
local to = at + tonumber(ARGV[at])
local last = math.min(at + 1000, to)
redis.call('PFADD', KEYS[2], unpack(ARGV, at + 1, last))
for i = last + 1, to, 1000 do
  redis.call('PFADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, to)))
end
if to > at and redis.call('HEXISTS', KEYS[1], 'ph') == 0 then
  redis.call('SADD', KEYS[nk - 1], unpack(ARGV, at + 1, to))
end
-- comment ids scored by themselves, after the member "0" with score 0 that marks the zset as
-- loaded even when it is empty
local batch = {'0', '0'}
for i = to + 1, #ARGV do
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i]
  if #batch >= 1000 then redis.call('ZADD', KEYS[3], unpack(batch)) batch = {} end
end
if #batch > 0 then redis.call('ZADD', KEYS[3], unpack(batch)) end
return 1
