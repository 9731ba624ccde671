-- reserve.lua: one atomic order reservation.
-- KEYS[1] stock (string int)      KEYS[2] info (hash price, limit)
-- KEYS[3] users (hash user→units) KEYS[4] order hash
-- KEYS[5] idempotency key         KEYS[6] outbox stream
-- KEYS[7] loaded marker (set by inventory-service once every product's info is in Redis)
-- ARGV[1] user_id  ARGV[2] product_id  ARGV[3] quantity  ARGV[4] order_id
-- ARGV[5] created_at (unix ms)  ARGV[6] TTL seconds of the order hash and idempotency key
-- ARGV[7] "1" when KEYS[5] is a real idempotency key  ARGV[8] "1" to XADD to the outbox
-- ARGV[9] pay_deadline (unix ms): fixed here, at acceptance
-- Returns {code, order_id, remaining stock, amount_cents}; codes:
-- 0 reserved, 1 sold out, 2 per-user limit, 3 unknown product, 4 idempotent replay,
-- 5 stock not loaded: the product is known but its stock key is missing (being
--   rebuilt from the database), or Redis lost its data and inventory-service has
--   not put the products back yet (no info and no loaded marker).
-- Numbers handed to redis.call are formatted with sprintf("%.17g") by Redis;
-- the arguments below are passed on as the strings they arrived as (and the
-- amount formatted once as an integer), which keeps that off the hot path.
local ttl = ARGV[6]
if ARGV[7] == '1' then
  local prev = redis.call('GET', KEYS[5])
  if prev then
    return {4, prev, -1, 0}
  end
end
local info = redis.call('HMGET', KEYS[2], 'price', 'limit')
if not info[1] then
  if redis.call('EXISTS', KEYS[7]) == 0 then
    return {5, '', -1, 0}
  end
  return {3, '', -1, 0}
end
local stock = redis.call('GET', KEYS[1])
if not stock then
  return {5, '', -1, 0}
end
stock = tonumber(stock)
local qty = tonumber(ARGV[3])
local limit = tonumber(info[2] or '0') or 0
if limit > 0 then
  local had = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
  if had + qty > limit then
    return {2, '', stock, 0}
  end
end
if stock < qty then
  return {1, '', stock, 0}
end
local left = redis.call('DECRBY', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[3], ARGV[1], ARGV[3])
local amount = (tonumber(info[1]) or 0) * qty
local amountStr = string.format('%d', amount)
redis.call('HSET', KEYS[4], 'order_id', ARGV[4], 'user_id', ARGV[1], 'product_id', ARGV[2],
  'quantity', ARGV[3], 'amount_cents', amountStr, 'created_at', ARGV[5], 'pay_deadline', ARGV[9])
redis.call('EXPIRE', KEYS[4], ttl)
if ARGV[7] == '1' then
  redis.call('SET', KEYS[5], ARGV[4], 'EX', ttl)
end
if ARGV[8] == '1' then
  redis.call('XADD', KEYS[6], '*', 'order_id', ARGV[4], 'user_id', ARGV[1], 'product_id', ARGV[2],
    'quantity', ARGV[3], 'amount_cents', amountStr, 'created_at', ARGV[5], 'pay_deadline', ARGV[9])
end
return {0, ARGV[4], left, amount}
