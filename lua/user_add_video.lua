-- Adds video ARGV[1] to the publish list of a loaded user and counts it in work_count, once.
-- KEYS: every key of the user, lease last (the publish list second). When any key is missing the
-- user is dropped from the cache (with the lease) so the next read reloads it whole.
-- Returns 1 added, 0 already there, -1 not loaded.
for i = 1, #KEYS - 1 do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('DEL', unpack(KEYS))
    return -1
  end
end
local added = redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
if added == 1 then redis.call('HINCRBY', KEYS[1], 'work_count', 1) end
return added
