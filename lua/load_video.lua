-- Installs a video reloaded from the durable store.
-- KEYS: video hash, play-count HyperLogLog, comments zset, the keys to clear (the comment
-- member versions), the lease, then the staging keys of the HyperLogLog and the comments
-- (load_chunk.lua).
-- ARGV: token, two flags ('1': load_chunk staged that set's head, in KEYS order), field count
-- N, N field/value pairs, viewer count M, M viewers, then comment ids.
-- Returns 1 when installed, 0 when the lease was lost.
local nk = #KEYS - 2
if redis.call('GET', KEYS[nk]) ~= ARGV[1] then return 0 end
for k = 2, 3 do
  if string.sub(ARGV[2], k - 1, k - 1) == '1' and redis.call('EXISTS', KEYS[nk + k - 1]) == 0 then
    return 0
  end
end
redis.call('DEL', unpack(KEYS, 1, nk))
local n = tonumber(ARGV[3])
local h = {}
for i = 4, 3 + 2 * n do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
for k = 2, 3 do
  local s = KEYS[nk + k - 1]
  if string.sub(ARGV[2], k - 1, k - 1) == '1' then
    redis.call('RENAME', s, KEYS[k])
    redis.call('PERSIST', KEYS[k])
  else
    redis.call('DEL', s)
  end
end
redis.call('PFADD', KEYS[2])
redis.call('ZADD', KEYS[3], 0, '0')
local at = 4 + 2 * n
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
