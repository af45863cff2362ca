-- Installs a user's session state (token generation and revoked token ids) unless Redis holds
-- a newer one. KEYS[1]: the session hash. ARGV: version, generation, revoked ids (comma-
-- separated). Versions only grow, so the newest state wins whatever order writers and reloads
-- arrive in (no lease needed). Returns 1 installed, 0 older than what is held.
local held = tonumber(redis.call('HGET', KEYS[1], 'ver') or '-1')
if held >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ver', ARGV[1], 'gen', ARGV[2], 'rvk', ARGV[3])
return 1
