-- Confirm marks a reserved order as paid, atomically, and takes it off the
-- expiry queue so it can never expire. Confirming twice is harmless; a
-- released reservation cannot be confirmed.
--
-- KEYS[1] {act:ID}:res:<order>, KEYS[2] {act:ID}:expiry
-- ARGV[1] order id
--
-- Returns CONFIRMED, RELEASED or NOT_FOUND.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return 'NOT_FOUND'
end
if status == 'RELEASED' then
  return 'RELEASED'
end
if status == 'RESERVED' then
  redis.call('HSET', KEYS[1], 'status', 'CONFIRMED')
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 'CONFIRMED'
