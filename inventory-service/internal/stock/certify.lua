-- Sets the loaded marker to the run_id of this Redis once the caller has
-- dropped every product's stock of that run (each is rebuilt from the
-- database) and put back every product's info: orders are taken again, per
-- product as its stock comes back. Only if Redis is still that run: one
-- that restarted again meanwhile is checked again from the start.
-- KEYS[1] = the loaded marker
-- ARGV[1] = the run_id the caller dropped the stock under
-- Returns 1 when set, 0 when Redis is another run now.
local id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if id ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
