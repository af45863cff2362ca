-- Applies changes to cached entities (users, videos), each exactly once, whatever order
-- concurrent changes reach Redis in. Several changes in one call on a single Redis (a like
-- changes the liker, the author and the video, and the writes a worker finishes together
-- share a call: src/cache/batch.rs); one per call on a Redis Cluster, where each entity has
-- its own slot.
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
-- A change's keys are KEYS[k0 + 1 .. k0 + nk], its arguments ARGV[a0 + 1 ..]: read in place,
-- with one EXISTS for all the keys that must be there and one HMGET for the two versions (a
-- like's three changes made two dozen calls, most of the script's cost, before).
local function set_counters(hash, a0, nf)
  local h = {ARGV[a0 + 1], ARGV[a0 + 3]}
  for i = a0 + 6, a0 + 5 + 2 * nf do h[#h + 1] = ARGV[i] end
  redis.call('HSET', hash, unpack(h))
end

local function apply(k0, nk, a0)
  local must = {}
  for i = 1, nk - 1 do
    if i ~= 3 then must[#must + 1] = KEYS[k0 + i] end
  end
  if redis.call('EXISTS', unpack(must)) < #must then
    redis.call('DEL', unpack(KEYS, k0 + 1, k0 + nk))
    return -1
  end
  local hash = KEYS[k0 + 1]
  local v = tonumber(ARGV[a0 + 3])
  local nf = tonumber(ARGV[a0 + 5])
  if ARGV[a0 + 4] == 'max' then
    if v <= tonumber(redis.call('HGET', hash, ARGV[a0 + 1]) or '0') then return 0 end
    set_counters(hash, a0, nf)
    return 1
  end
  local got = redis.call('HMGET', hash, ARGV[a0 + 1], ARGV[a0 + 2])
  local cur, base = tonumber(got[1] or '0'), tonumber(got[2] or '0')
  if v <= base then return 0 end
  if v > cur then set_counters(hash, a0, nf) end
  local at = a0 + 6 + 2 * nf
  local op, member, mver = ARGV[at], ARGV[at + 1], ARGV[at + 3]
  local mv = KEYS[k0 + 3]
  if tonumber(mver) <= tonumber(redis.call('HGET', mv, member) or '0') then return 0 end
  if op == 'add' then
    redis.call('ZADD', KEYS[k0 + 2], ARGV[at + 2], member)
  elseif op == 'rem' then
    redis.call('ZREM', KEYS[k0 + 2], member)
  end
  redis.call('HSET', mv, member, mver)
  return 1
end

local results = {}
local k0, ai = 0, 2
for g = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1])
  results[g] = apply(k0, nk, ai + 1)
  k0 = k0 + nk
  ai = ai + 2 + na
end
return results
