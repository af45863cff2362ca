-- Starts a cache reload: returns 0 when every key in KEYS[2..] already exists (nothing to load),
-- otherwise takes the reload lease KEYS[1] with token ARGV[1] for ARGV[2] ms and returns 1.
-- (rebuild-cache replaces without this script: a DEL and a SET, see reload.rs.)
-- A writer that finds its key missing deletes the lease, so a reload that read the durable store
-- before that write cannot install stale data (see load_*.lua).
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
  end
end
return 0
