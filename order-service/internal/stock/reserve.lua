-- reserve.lua: one atomic order reservation.
-- KEYS[1] stock (string int)      KEYS[2] info (hash price, limit, sale_id)
-- KEYS[3] users (hash user→units) KEYS[4] order hash
-- KEYS[5] idempotency key         KEYS[6] outbox stream
-- KEYS[7] loaded marker: the run_id of this Redis once inventory-service has
--   checked it (every product's info present, every product's stock rebuilt
--   after a restart); missing after a loss or a restart (epoch.lua)
-- ARGV[1] user_id  ARGV[2] product_id  ARGV[3] quantity  ARGV[4] order_id
-- ARGV[5] created_at (unix ms)  ARGV[6] TTL seconds of the order hash and idempotency key
-- ARGV[7] "1" when KEYS[5] is a real idempotency key
-- ARGV[8] pay_deadline (unix ms): fixed here, at acceptance
-- Every reservation is appended to the outbox stream, whatever the send mode:
-- in batch and sync modes the request hands the order on itself and deletes
-- the entry, and one whose hand-off failed is sent from there later.
-- Returns {code, order_id, remaining stock, amount_cents, outbox entry ID, sale_id}; codes:
-- 0 reserved (or reserved by this very call before: see below), 1 sold out, 2 per-user limit, 3 unknown product, 4 idempotent replay,
-- 5 stock not loaded: the loaded marker is missing (Redis lost its data or
--   restarted, and inventory-service has not checked it yet), or the product's
--   stock key is missing (being rebuilt from the database).
-- Numbers handed to redis.call are formatted with sprintf("%.17g") by Redis;
-- the arguments below are passed on as the strings they arrived as (and the
-- amount formatted once as an integer), which keeps that off the hot path.
local ttl = ARGV[6]
-- The same call again (go-redis sends a command again when its reply was
-- lost: a read timeout, a dropped connection): the order hash exists, so the
-- first run reserved; answer what it answered, changing nothing. An order ID
-- is new for every request, so for any other call this is one miss.
local done = redis.call('HMGET', KEYS[4], 'amount_cents', 'outbox_id', 'sale_id')
if done[1] then
  return {0, ARGV[4], tonumber(redis.call('GET', KEYS[1]) or '-1'), tonumber(done[1]), done[2] or '', done[3] or '0'}
end
if redis.call('EXISTS', KEYS[7]) == 0 then
  return {5, '', -1, 0}
end
if ARGV[7] == '1' then
  local prev = redis.call('GET', KEYS[5])
  if prev then
    return {4, prev, -1, 0}
  end
end
local info = redis.call('HMGET', KEYS[2], 'price', 'limit', 'sale_id')
if not info[1] then
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
-- The sale the units come from: written into the info hash with the stock,
-- so it is the generation of exactly the stock decremented above.
local sale = info[3] or '0'
local entry = redis.call('XADD', KEYS[6], '*', 'order_id', ARGV[4], 'user_id', ARGV[1], 'product_id', ARGV[2],
  'quantity', ARGV[3], 'amount_cents', amountStr, 'created_at', ARGV[5], 'pay_deadline', ARGV[8],
  'sale_id', sale)
redis.call('HSET', KEYS[4], 'order_id', ARGV[4], 'user_id', ARGV[1], 'product_id', ARGV[2],
  'quantity', ARGV[3], 'amount_cents', amountStr, 'created_at', ARGV[5], 'pay_deadline', ARGV[8],
  'sale_id', sale, 'outbox_id', entry)
redis.call('EXPIRE', KEYS[4], ttl)
if ARGV[7] == '1' then
  redis.call('SET', KEYS[5], ARGV[4], 'EX', ttl)
end
return {0, ARGV[4], left, amount, entry, sale}
