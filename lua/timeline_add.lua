-- Adds id ARGV[1] to a loaded timeline KEYS[1] (scored by id). When the timeline is not loaded,
-- deletes the reload lease KEYS[2] instead: the next read reloads it from the durable store, which
-- already holds the id. Returns 1 added, 0 already there, -1 not loaded.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  return -1
end
return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
