-- Counts viewer ARGV[1] of a loaded video. KEYS: video hash, play-count HyperLogLog, lease.
-- When the video is not loaded, deletes the lease (the durable play record is already written).
-- Returns 1 counted, -1 not loaded.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[3])
  return -1
end
redis.call('PFADD', KEYS[2], ARGV[1])
return 1
