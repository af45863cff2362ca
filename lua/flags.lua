-- A viewer's flags for a page, in one call and one reply. KEYS: the viewer's liked-videos and
-- following zsets. ARGV: comma-separated video ids, comma-separated user ids (either may be
-- empty). Returns -1 when a zset is not loaded (no "0" marker: reload, retry), else one string
-- of '0'/'1': a flag per video (liked), then a flag per user (followed).
-- One argument and one reply string instead of a member each keeps the client's per-value
-- cost out of the hot path.
for i = 1, 2 do
  if not redis.call('ZSCORE', KEYS[i], '0') then return -1 end
end
local out = {}
for k = 1, 2 do
  local ids = {}
  for id in string.gmatch(ARGV[k], '[^,]+') do ids[#ids + 1] = id end
  if #ids > 0 then
    local scores = redis.call('ZMSCORE', KEYS[k], unpack(ids))
    for i = 1, #ids do
      if scores[i] then out[#out + 1] = '1' else out[#out + 1] = '0' end
    end
  end
end
return table.concat(out)
