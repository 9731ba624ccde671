-- Drops, at once, the loaded marker and every product's stock and rebuild
-- lock, unless the marker names the given run of Redis (another replica did
-- it first, or the marker is current). From then on order-service reserves
-- nothing (reserve.lua refuses every order while the marker is missing)
-- until certify.lua sets it again; each product then takes orders once its
-- stock is rebuilt, and a rebuild under way publishes nothing.
-- KEYS[1] = the loaded marker, KEYS[2..] = sk:{p}:stock and sk:{p}:rebuild
-- of every product
-- ARGV[1] = the run_id of the Redis the caller is checking
-- Returns 1 when it dropped them, 0 when the marker names that run.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 0
end
for i = 1, #KEYS do
  redis.call('DEL', KEYS[i])
end
return 1
