-- A user's friends (mutual follows): the intersection of the following and followers zsets,
-- newest friendship first. KEYS: following, followers, then keys that must also exist.
-- ARGV: limit. Returns the ids, or -1 when a key is missing (reload, retry).
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
end
local both = redis.call('ZINTER', 2, KEYS[1], KEYS[2], 'AGGREGATE', 'MAX', 'WITHSCORES')
local pairs_ = {}
for i = 1, #both, 2 do
  if both[i] ~= '0' then pairs_[#pairs_ + 1] = {both[i], tonumber(both[i + 1])} end
end
table.sort(pairs_, function(a, b) return a[2] > b[2] end)
local out = {}
for i = 1, math.min(#pairs_, tonumber(ARGV[1])) do out[i] = pairs_[i][1] end
return out
