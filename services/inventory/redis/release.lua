-- Release gives a reserved order's stock and the buyer's limit back,
-- atomically. Releasing twice is harmless; a confirmed (paid) reservation
-- is never released.
--
-- KEYS[1] {act:ID}:stock, KEYS[2] {act:ID}:bought, KEYS[3] {act:ID}:idem,
-- KEYS[4] {act:ID}:res:<order>, KEYS[5] {act:ID}:expiry
-- ARGV[1] order id
--
-- Returns RELEASED, ALREADY_RELEASED, CONFIRMED or NOT_FOUND.
local r = redis.call('HMGET', KEYS[4], 'user', 'qty', 'status', 'idem')
local user, qty, status, idem = r[1], r[2], r[3], r[4]
if not status then
  return 'NOT_FOUND'
end
if status == 'CONFIRMED' then
  return 'CONFIRMED'
end
if status == 'RELEASED' then
  return 'ALREADY_RELEASED'
end

redis.call('INCRBY', KEYS[1], qty)
if redis.call('HINCRBY', KEYS[2], user, -tonumber(qty)) <= 0 then
  redis.call('HDEL', KEYS[2], user)
end
-- Forget the buyer's key, so a retry with it may reserve again; only if
-- it still points at this order.
local idemField = user .. ':' .. idem
if redis.call('HGET', KEYS[3], idemField) == ARGV[1] then
  redis.call('HDEL', KEYS[3], idemField)
end
redis.call('HSET', KEYS[4], 'status', 'RELEASED')
redis.call('ZREM', KEYS[5], ARGV[1])
return 'RELEASED'
