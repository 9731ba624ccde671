-- Gives a closed order's units back to the Redis stock of its product.
-- KEYS[1] = sk:{p}:stock, KEYS[2] = sk:{p}:users
-- ARGV[1] = quantity, ARGV[2] = user id ('' when unknown)
-- Returns the stock before the give-back, or -1 when the stock key is missing
-- (Redis lost it): then nothing is written, because whoever rebuilds the key
-- reads the database, which already has the release.
local before = redis.call('GET', KEYS[1])
if not before then
  return -1
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
