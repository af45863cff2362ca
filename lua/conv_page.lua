-- Messages of a conversation zset (members are JSON messages scored by id; "0" marks it loaded).
-- KEYS: the conversation zset. ARGV: 'latest' and a limit (the newest messages, newest first),
-- or 'after', an inclusive lowest id and a limit (oldest first).
-- Returns -1 when the conversation is not loaded (reload, retry).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[1] == 'latest' then
  return redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', 1, 'LIMIT', 0, tonumber(ARGV[2]))
end
local min = tonumber(ARGV[2])
if min < 1 then min = 1 end
return redis.call('ZRANGEBYSCORE', KEYS[1], min, '+inf', 'LIMIT', 0, tonumber(ARGV[3]))
