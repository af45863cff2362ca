-- The newest feed ids above a known one, for the near-cache's copy of the feed head.
-- KEYS: the feed zset. ARGV: since (exclusive lower bound; 0 for the newest), limit.
-- Returns -1 when the feed is not loaded (reload, retry), else {the number of videos in the
-- feed, the ids above `since`, newest first, at most `limit`}.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
return {redis.call('ZCARD', KEYS[1]) - 1, ids}
