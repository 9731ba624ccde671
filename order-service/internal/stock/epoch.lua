-- Runs before the reservation script is loaded into a Redis that does not
-- have it (EVALSHA answered NOSCRIPT): that is every Redis that restarted,
-- as a restart empties the script cache. Such a Redis may have come back
-- from its append-only file without the last second of writes (stock and
-- per-user counts of orders that were sent on, outbox entries, idempotency
-- keys), so reservations wait until inventory-service has rebuilt every
-- product from its database. The loaded marker holds the run_id of the
-- Redis inventory-service checked; one naming another run is deleted here,
-- and the reservation script refuses every order while it is missing.
-- KEYS[1] = the loaded marker
-- Returns 1 when it deleted the marker, 0 when the marker names this run.
local id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if redis.call('GET', KEYS[1]) == id then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
