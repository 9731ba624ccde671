-- Takes a product's stock rebuild lock if the stock still needs a rebuild.
-- KEYS[1] = sk:{p}:rebuild, KEYS[2] = sk:{p}:stock
-- ARGV[1] = the rebuild's token, ARGV[2] = TTL in ms
-- Returns 1 when taken; 0 when the stock key exists (a rebuild or a sale
-- start wrote it since the caller looked) or another rebuild holds the lock.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
-- The same call again (the Redis client resent it after losing the reply):
-- the lock is already this rebuild's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
