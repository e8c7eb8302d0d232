-- RestoreLimit gives a refunded order's units back to its buyer's per-user
-- limit, atomically and idempotently by refund id. The stock is left
-- alone: refunded goods are not sold again in the sale. Only a confirmed
-- (paid) reservation is restored, since a released one gave its limit back
-- when it was released, and never more units than it reserved in all; a
-- refund of all the units of an order whose units are all back already
-- (a rebuild restored them) is a repeat.
--
-- KEYS[1] {act:ID}:bought        hash: user id -> units held
-- KEYS[2] {act:ID}:res:<order>   hash: user, qty, status, ..., restored,
--                                refund:<id> -> units restored by that refund
-- ARGV[1] refund id, ARGV[2] units to restore
--
-- Returns RESTORED, ALREADY_RESTORED, NOT_FOUND, NOT_CONFIRMED or TOO_MANY.
local r = redis.call('HMGET', KEYS[2], 'user', 'qty', 'status', 'restored')
local user, qty, status, restored = r[1], tonumber(r[2]), r[3], tonumber(r[4] or '0')
if not status then
  return 'NOT_FOUND'
end
local field = 'refund:' .. ARGV[1]
if redis.call('HEXISTS', KEYS[2], field) == 1 then
  return 'ALREADY_RESTORED'
end
if status ~= 'CONFIRMED' then
  return 'NOT_CONFIRMED'
end
local units = tonumber(ARGV[2])
if restored + units > qty then
  -- Every unit is back already and this refund asks for all of them: the
  -- refund that completed the order, whose restore a rebuild (rebuild.lua,
  -- from the order's REFUNDED status) applied before it got here.
  if restored == qty and units == qty then
    redis.call('HSET', KEYS[2], field, 0)
    return 'ALREADY_RESTORED'
  end
  return 'TOO_MANY'
end
redis.call('HSET', KEYS[2], field, units, 'restored', restored + units)
if redis.call('HINCRBY', KEYS[1], user, -units) <= 0 then
  redis.call('HDEL', KEYS[1], user)
end
return 'RESTORED'
