-- Adds member ARGV[2] (default: ARGV[1]) with score ARGV[1] to a loaded zset KEYS[1]. When the
-- zset is not loaded, deletes the reload lease KEYS[2] instead: the next read reloads it from the
-- durable store, which already holds the change. Returns 1 added, 0 already there, -1 not loaded.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  return -1
end
return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2] or ARGV[1])
