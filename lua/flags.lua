-- A viewer's flags for a page, in one call. KEYS: the viewer's keys (hash, publish list, liked
-- videos, following, followers). ARGV: count V of video ids, V video ids, then user ids.
-- Returns -1 when a key is missing (reload, retry), else {liked flags for the videos,
-- following flags for the users}, 0/1 each.
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
end
local v = tonumber(ARGV[1])
local function member_flags(key, from, to)
  local out = {}
  if to < from then return out end
  local ids = {}
  for i = from, to do ids[#ids + 1] = ARGV[i] end
  local scores = redis.call('ZMSCORE', key, unpack(ids))
  for i = 1, #ids do
    if scores[i] then out[i] = 1 else out[i] = 0 end
  end
  return out
end
return {member_flags(KEYS[3], 2, 1 + v), member_flags(KEYS[4], 2 + v, #ARGV)}
