-- Stages one chunk of a large set for a reload, so that no script blocks Redis for long: the
-- load script (load_user, load_video, load_timeline) renames the staging key over the real one.
-- KEYS: the reload lease, the staging key (in the lease's slot).
-- ARGV: token, 'first' (drop what an earlier attempt staged) or 'more', kind ('ids': zset
-- members scored by themselves, 'pairs': (score, member) pairs, 'hll': HyperLogLog elements),
-- then the items.
-- The staging key expires with the lease, so a loader that dies leaves nothing behind.
-- Returns 1 when staged, 0 when the lease was lost.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local s = KEYS[2]
if ARGV[2] == 'first' then redis.call('DEL', s) end
local kind = ARGV[3]
local batch = {}
local function flush()
  if #batch == 0 then return end
  if kind == 'hll' then redis.call('PFADD', s, unpack(batch)) else redis.call('ZADD', s, unpack(batch)) end
  batch = {}
end
for i = 4, #ARGV do
  batch[#batch + 1] = ARGV[i]
  if kind == 'ids' then batch[#batch + 1] = ARGV[i] end
  if #batch >= 1000 then flush() end
end
flush()
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', s, ttl) end
return 1
