-- Starts a cache reload: returns 0 when every key in KEYS[2..] already exists (nothing to load),
-- otherwise takes the reload lease KEYS[1] with token ARGV[1] for ARGV[2] ms and returns 1.
-- With ARGV[3] = 'replace' (rebuild-cache), KEYS[2..] are deleted first and the lease is always
-- taken: one round trip instead of a DEL and then the lease.
-- A writer that finds its key missing deletes the lease, so a reload that read the durable store
-- before that write cannot install stale data (see load_*.lua).
if ARGV[3] == 'replace' then
  redis.call('DEL', unpack(KEYS, 2))
else
  local all = true
  for i = 2, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 0 then all = false break end
  end
  if all then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
