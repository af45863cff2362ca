-- Applies changes to cached entities (users, videos), each exactly once, whatever order
-- concurrent changes reach Redis in. Several changes in one call (a like changes the liker,
-- the author and the video) on a single Redis; one per call on a Redis Cluster, where each
-- entity has its own slot.
-- ARGV[1]: the number of changes G; then for each change its key count K, its argument count
-- A, and its A arguments. KEYS: the K keys of each change, one change after another.
-- A change's keys: [1] the entity's hash, [2] the zset the change edits, [3] that zset's
-- member-version hash (may be absent), [4..K-1] the entity's other keys, [K] its lease.
-- Its arguments: version field, base field, version V, mode, field count N, N field/value
-- pairs (absolute counter values), zset op ('add', 'rem' or 'none'), member, score, member
-- version.
--
-- The durable store numbers the changes of each group of an entity's state (e.g. a user's
-- likes) and of each member (e.g. one (user, video) like pair). Counters carry absolute values,
-- so the newest V wins. mode 'max': counters only. mode 'set': the change also adds or removes
-- a member; a change at or below the base (the version the entity was loaded at) is already in
-- the cache; otherwise the member is edited only by a newer member version than the last one
-- applied to it. Changes of different members commute, so no order is needed between them.
-- A missing key drops the entity with its lease, and the next read reloads it.
-- Returns, per change: 1 applied, 0 nothing to do, -1 not loaded.
local function apply(keys, a)
  local n = #keys
  for i = 1, n - 1 do
    if i ~= 3 and redis.call('EXISTS', keys[i]) == 0 then
      redis.call('DEL', unpack(keys))
      return -1
    end
  end
  local v = tonumber(a[3])
  local cur = tonumber(redis.call('HGET', keys[1], a[1]) or '0')
  local nf = tonumber(a[5])
  local function set_counters()
    local h = {a[1], a[3]}
    for i = 6, 5 + 2 * nf do h[#h + 1] = a[i] end
    redis.call('HSET', keys[1], unpack(h))
  end
  if a[4] == 'max' then
    if v <= cur then return 0 end
    set_counters()
    return 1
  end
  local base = tonumber(redis.call('HGET', keys[1], a[2]) or '0')
  if v <= base then return 0 end
  if v > cur then set_counters() end
  local at = 6 + 2 * nf
  local op, member, score, mver = a[at], a[at + 1], a[at + 2], tonumber(a[at + 3])
  local seen = tonumber(redis.call('HGET', keys[3], member) or '0')
  if mver <= seen then return 0 end
  if op == 'add' then
    redis.call('ZADD', keys[2], score, member)
  elseif op == 'rem' then
    redis.call('ZREM', keys[2], member)
  end
  redis.call('HSET', keys[3], member, mver)
  return 1
end

local results = {}
local ki, ai = 1, 2
for _ = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1])
  local keys, a = {}, {}
  for i = 1, nk do keys[i] = KEYS[ki + i - 1] end
  for i = 1, na do a[i] = ARGV[ai + 1 + i] end
  ki = ki + nk
  ai = ai + 2 + na
  results[#results + 1] = apply(keys, a)
end
return results
