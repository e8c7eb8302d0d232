-- MarkOrdered marks one order's reservation as backing a stored order,
-- atomically with respect to an unpublished release of it (release.lua):
-- of the two, whichever runs first decides whether the order exists.
-- Marking is idempotent. The order consumer runs it once per event of a
-- batch, in one pipeline, before it stores the batch.
--
-- KEYS[1] {act:ID}:res:<order>, KEYS[2] {act:ID}:live,
-- KEYS[3] {act:ID}:tomb:<order>
--
-- Returns MARKED (store the order), DROP (released as unpublished: the
-- buyer was told the order failed) or NOT_FOUND (no reservation).
--
-- In a fenced sale (no live mark: Redis may have lost its last writes,
-- rebuild.lua) a missing reservation proves nothing: the event is in the
-- log, so the order was placed, and its reservation may be among the lost
-- writes. It is MARKED, to be stored; the rebuild that unfences the sale
-- counts it among the orders holding stock.
local r = redis.call('HMGET', KEYS[1], 'status', 'unpublished')
local status, unpublished = r[1], r[2]
if not status then
  -- An unpublished release that came before the reservation left a
  -- tombstone saying so: the order was given up (its reservation was
  -- refused GIVEN_UP), fenced sale or not.
  if redis.call('GET', KEYS[3]) == '1' then
    return 'DROP'
  end
  if redis.call('EXISTS', KEYS[2]) == 0 then
    return 'MARKED'
  end
  return 'NOT_FOUND'
end
if status == 'RELEASED' and unpublished == '1' then
  return 'DROP'
end
-- A reservation released otherwise (expiry or cancellation after an
-- earlier delivery was stored) still backs an order that must be stored;
-- the mark records that an order exists.
redis.call('HSET', KEYS[1], 'ordered', '1')
return 'MARKED'
