-- Applies one versioned change to a cached entity (a user or a video).
-- KEYS: the entity's hash, the zset the change edits, its other keys, and last its lease.
-- ARGV: version field, version, mode, field count N, N field/value pairs (absolute counter
-- values), zset op ('add', 'rem' or 'none'), member, score.
-- The durable store numbers the changes of each group of an entity's state (e.g. a user's likes).
-- mode 'max': the change carries only absolute counters, so the newest version wins and older
-- ones are skipped. mode 'exact': the change also edits a set, so it must apply in order: the
-- next version is applied, an older one is skipped (already applied, or came with a reload), and
-- a gap (a change still on its way) drops the entity with its lease, so the next read reloads it
-- from the durable store. A missing key drops the entity too.
-- Returns 1 applied, 0 already applied, -1 not loaded, -2 gap.
local n = #KEYS
for i = 1, n - 1 do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('DEL', unpack(KEYS))
    return -1
  end
end
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local v = tonumber(ARGV[2])
if v <= cur then return 0 end
if ARGV[3] == 'exact' and v > cur + 1 then
  redis.call('DEL', unpack(KEYS))
  return -2
end
local nf = tonumber(ARGV[4])
local h = {ARGV[1], ARGV[2]}
for i = 5, 4 + 2 * nf do h[#h + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(h))
local op = ARGV[5 + 2 * nf]
local member = ARGV[6 + 2 * nf]
if op == 'add' then
  redis.call('ZADD', KEYS[2], ARGV[7 + 2 * nf], member)
elseif op == 'rem' then
  redis.call('ZREM', KEYS[2], member)
end
return 1
