-- Gives a closed order's units back to the Redis stock of its product.
-- KEYS[1] = sk:{p}:stock, KEYS[2] = sk:{p}:users, KEYS[3] = sk:{p}:gen
-- ARGV[1] = quantity, ARGV[2] = user id ('' when unknown),
-- ARGV[3] = the generation read before the release was found not given back
-- Returns the stock before the give-back; -1 when the stock key is missing
-- (Redis lost it and the stock is being rebuilt from the database), -2 when
-- the stock key was written whole since ARGV[3] was read (a rebuild that may
-- already count this release, or a sale start). Nothing is written then: the
-- caller retries later and reads the release's redis_applied flag again.
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
return tonumber(before)
