-- Applies one change to a cached entity (a user or a video), exactly once, whatever order
-- concurrent changes reach Redis in.
-- KEYS: [1] the entity's hash, [2] the zset the change edits, [3] that zset's member-version
-- hash (may be absent), [4..n-1] the entity's other keys, [n] its lease.
-- ARGV: version field, base field, version V, mode, field count N, N field/value pairs
-- (absolute counter values), zset op ('add', 'rem' or 'none'), member, score, member version.
--
-- The durable store numbers the changes of each group of an entity's state (e.g. a user's
-- likes) and of each member (e.g. one (user, video) like pair). Counters carry absolute values,
-- so the newest V wins. mode 'max': counters only. mode 'set': the change also adds or removes
-- a member; a change at or below the base (the version the entity was loaded at) is already in
-- the cache; otherwise the member is edited only by a newer member version than the last one
-- applied to it. Changes of different members commute, so no order is needed between them.
-- A missing key drops the entity with its lease, and the next read reloads it.
-- Returns 1 applied, 0 nothing to do, -1 not loaded.
local n = #KEYS
for i = 1, n - 1 do
  if i ~= 3 and redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('DEL', unpack(KEYS))
    return -1
  end
end
local v = tonumber(ARGV[3])
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local nf = tonumber(ARGV[5])
local function set_counters()
  local h = {ARGV[1], ARGV[3]}
  for i = 6, 5 + 2 * nf do h[#h + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(h))
end
if ARGV[4] == 'max' then
  if v <= cur then return 0 end
  set_counters()
  return 1
end
local base = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if v <= base then return 0 end
if v > cur then set_counters() end
local at = 6 + 2 * nf
local op, member, score, mver = ARGV[at], ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3])
local seen = tonumber(redis.call('HGET', KEYS[3], member) or '0')
if mver <= seen then return 0 end
if op == 'add' then
  redis.call('ZADD', KEYS[2], score, member)
elseif op == 'rem' then
  redis.call('ZREM', KEYS[2], member)
end
redis.call('HSET', KEYS[3], member, mver)
return 1
