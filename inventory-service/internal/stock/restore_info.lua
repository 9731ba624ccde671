-- Puts a product's info hash back after Redis lost it, unless a sale start
-- wrote it meanwhile (its values are newer than the caller's).
-- KEYS[1] = sk:{p}:info
-- ARGV[1] = price in cents, ARGV[2] = per-user limit, ARGV[3] = sale_id
-- Returns 1 when it wrote the hash, 0 when the hash was there.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'price', ARGV[1], 'limit', ARGV[2], 'sale_id', ARGV[3])
return 1
