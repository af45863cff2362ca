-- Counts viewer ARGV[1] of a loaded video. KEYS: video hash, play-count HyperLogLog, comments
-- zset, lease, exact viewers set. ARGV[2]: how many viewers the set holds at most.
-- The hash's 'pn' counts distinct viewers exactly while the set holds them all; the viewer past
-- the limit drops the set and sets 'ph', and from then on the count is the HyperLogLog's
-- estimate with 'pn' as its floor, so it never falls. A hash without 'pn' (written before it
-- existed) counts by the HyperLogLog alone.
-- When the video is not loaded it is dropped with its lease (the durable play record is already
-- written, so the next reload counts it). Returns 1 counted, -1 not loaded.
local f = redis.call('HMGET', KEYS[1], 'pn', 'ph')
local exact = f[1] and not f[2]
-- not loaded: a key missing, or viewers counted but no set (the set alone was evicted)
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) < 3
    or (exact and tonumber(f[1]) > 0 and redis.call('EXISTS', KEYS[5]) == 0) then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  return -1
end
redis.call('PFADD', KEYS[2], ARGV[1])
if exact and redis.call('SADD', KEYS[5], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[1], 'pn', 1) > tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'ph', '1')
    redis.call('DEL', KEYS[5])
  end
end
return 1
