-- Release gives a reserved order's stock and the buyer's limit back,
-- atomically. Releasing twice is harmless; a confirmed (paid) reservation
-- is never released.
--
-- An unpublished release (ARGV[2] = '1') comes from a caller that could not
-- publish the order's event and cannot tell whether it reached the log
-- anyway. It is refused, changing nothing, once the order consumer has
-- marked the reservation ordered (mark_ordered.lua): the order exists.
-- Otherwise it records unpublished=1, so that a late delivery of the event
-- is dropped; even on a reservation released before, because its caller
-- tells the buyer the order failed. A plain release ignores the ordered
-- mark: expiry and cancellation release stored orders.
--
-- Only an unpublished release forgets the buyer's idempotency key, so that
-- a retry with it (the buyer was told the order failed) may reserve again.
-- After a plain release the key keeps answering the first order: the
-- buyer was told it exists, and repeating the request must name it, never
-- reserve a second time.
--
-- A release that finds no reservation leaves a tombstone (KEYS[6], for
-- ARGV[3] ms; its value is ARGV[2], so mark_ordered.lua can tell an
-- unpublished release) that reserve.lua respects: the reservation may still be on
-- its way (a batch its caller gave up waiting for), and landing after the
-- release it would hold a unit and the buyer's limit for an order that is
-- never published. With the tombstone the order of arrival does not
-- matter.
--
-- KEYS[1] {act:ID}:stock, KEYS[2] {act:ID}:bought, KEYS[3] {act:ID}:idem,
-- KEYS[4] {act:ID}:res:<order>, KEYS[5] {act:ID}:expiry,
-- KEYS[6] {act:ID}:tomb:<order>
-- ARGV[1] order id, ARGV[2] '1' for an unpublished release, else '0',
-- ARGV[3] the tombstone's life in ms
--
-- Returns RELEASED, ALREADY_RELEASED, CONFIRMED, ORDERED or NOT_FOUND.
local r = redis.call('HMGET', KEYS[4], 'user', 'qty', 'status', 'idem', 'ordered')
local user, qty, status, idem, ordered = r[1], r[2], r[3], r[4], r[5]
if not status then
  redis.call('SET', KEYS[6], ARGV[2], 'PX', ARGV[3])
  return 'NOT_FOUND'
end
local unpublished = ARGV[2] == '1'
if unpublished and ordered == '1' then
  return 'ORDERED'
end
if status == 'CONFIRMED' then
  return 'CONFIRMED'
end
local idemField = user .. ':' .. idem
if unpublished then
  redis.call('HSET', KEYS[4], 'unpublished', '1')
  if redis.call('HGET', KEYS[3], idemField) == ARGV[1] then
    redis.call('HDEL', KEYS[3], idemField)
  end
end
if status == 'RELEASED' then
  return 'ALREADY_RELEASED'
end

redis.call('INCRBY', KEYS[1], qty)
if redis.call('HINCRBY', KEYS[2], user, -tonumber(qty)) <= 0 then
  redis.call('HDEL', KEYS[2], user)
end
redis.call('HSET', KEYS[4], 'status', 'RELEASED')
redis.call('ZREM', KEYS[5], ARGV[1])
return 'RELEASED'
