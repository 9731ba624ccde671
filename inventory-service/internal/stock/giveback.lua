-- Gives a closed order's units back to the Redis stock of its product.
-- KEYS[1] = sk:{p}:stock, KEYS[2] = sk:{p}:users, KEYS[3] = sk:{p}:gen,
-- KEYS[4] = the give-back's dedup record (pkg/dedup.Redis key of the close)
-- ARGV[1] = quantity, ARGV[2] = user id ('' when unknown),
-- ARGV[3] = the generation read before the release was found not given back,
-- ARGV[4] = the record's consumed value, ARGV[5] = its lifetime in ms (0 = none)
-- Returns the stock before the give-back; -1 when the stock key is missing
-- (Redis lost it and the stock is being rebuilt from the database), -2 when
-- the stock key was written whole since ARGV[3] was read (a rebuild that may
-- already count this release, or a sale start). Nothing is written then: the
-- caller retries later and reads the release's redis_applied flag again.
-- -3 when the record says consumed: this give-back was done before (the same
-- call sent again by the Redis client after its reply was lost, or a
-- redelivery after a crash before the caller's Commit); nothing is written.
-- The record is written here, with the units, so it can never miss them.
if redis.call('GET', KEYS[4]) == ARGV[4] then
  return -3
end
local before = redis.call('GET', KEYS[1])
if not before then
  return -1
end
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[3] then
  return -2
end
local qty = tonumber(ARGV[1])
redis.call('INCRBY', KEYS[1], qty)
if ARGV[2] ~= '' then
  -- A closed order no longer counts against its user's per-user limit.
  local left = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') - qty
  if left > 0 then
    redis.call('HSET', KEYS[2], ARGV[2], left)
  else
    redis.call('HDEL', KEYS[2], ARGV[2])
  end
end
if ARGV[5] == '0' then
  redis.call('SET', KEYS[4], ARGV[4])
else
  redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[5])
end
return tonumber(before)
