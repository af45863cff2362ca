-- Counts viewer ARGV[1] of a loaded video. KEYS: video hash, play-count HyperLogLog, comments
-- zset, lease. When the video is not loaded it is dropped with its lease (the durable play record
-- is already written, so the next reload counts it). Returns 1 counted, -1 not loaded.
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
    return -1
  end
end
redis.call('PFADD', KEYS[2], ARGV[1])
return 1
