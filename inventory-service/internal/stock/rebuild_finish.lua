-- Last step of a stock rebuild: publishes the stock and the per-user counts
-- read from the database, at once, if the rebuild still holds its lock.
-- KEYS[1] = sk:{p}:stock, KEYS[2] = sk:{p}:users,
-- KEYS[3] = the rebuild's copy of the users hash (absent when no user holds units),
-- KEYS[4] = sk:{p}:gen, KEYS[5] = sk:{p}:rebuild
-- ARGV[1] = the rebuild's lock token, ARGV[2] = available units,
-- ARGV[3] = the new generation
-- Returns 1 when published (by this call, or by its first run); 0 when the lock is not the rebuild's any more
-- (a sale start deleted it, it expired, Redis lost it again); -1 when the
-- stock key exists (written by someone else: nothing is overwritten).
if redis.call('GET', KEYS[5]) ~= ARGV[1] then
  -- The same call again (the Redis client resent it after losing the
  -- reply): the first run published and wrote this new generation, which no
  -- one else can have.
  if redis.call('GET', KEYS[4]) == ARGV[3] then
    return 1
  end
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RENAME', KEYS[3], KEYS[2])
  redis.call('PERSIST', KEYS[2]) -- the copy's TTL only bounded an abandoned rebuild
else
  redis.call('DEL', KEYS[2])
end
-- Written last and together: the order script refuses the product until the
-- stock key exists, so no reservation can miss the per-user counts.
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[4], ARGV[3])
redis.call('DEL', KEYS[5])
return 1
