-- Renews or releases a stock rebuild lock, only for the rebuild holding it.
-- KEYS[1] = sk:{p}:rebuild
-- ARGV[1] = the rebuild's token, ARGV[2] = new TTL in ms, or 0 to release
-- Returns 1 when the token held the lock, 0 otherwise (expired and maybe
-- taken by another replica, deleted by a sale start, or lost with Redis).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
