-- Reserve takes stock for one order, atomically. Every key belongs to one
-- activity and carries its hash tag {act:<id>}, so the script is valid on
-- Redis Cluster. Order ids stay strings: they are 63-bit snowflakes, which
-- Lua's numbers (doubles) cannot hold exactly.
--
-- KEYS[1] {act:ID}:meta          hash: total, limit
-- KEYS[2] {act:ID}:stock         integer: units left
-- KEYS[3] {act:ID}:bought        hash: user id -> units held
-- KEYS[4] {act:ID}:idem          hash: "<user>:<key>" -> order id
-- KEYS[5] {act:ID}:res:<order>   hash: user, qty, status, idem, expires_at_ms
-- KEYS[6] {act:ID}:expiry        sorted set: order id scored by deadline (unix ms)
-- KEYS[7] {act:ID}:tomb:<order>  string: the order was given up (release.lua)
-- KEYS[8] {act:ID}:live          string: the sale's Redis state is trusted
--                                (preheat.lua, rebuild.lua); absent: fenced
-- ARGV[1] user id, ARGV[2] quantity, ARGV[3] order id,
-- ARGV[4] idempotency key, ARGV[5] payment deadline in unix ms
--
-- Returns {outcome, order id, remaining}; outcome is RESERVED, REPLAYED,
-- GIVEN_UP, NOT_PREHEATED, FENCED, LIMIT_EXCEEDED or SOLD_OUT.
local idemField = ARGV[1] .. ':' .. ARGV[4]

-- A replay of the buyer's key answers with the first order, changing nothing.
local first = redis.call('HGET', KEYS[4], idemField)
if first then
  return {'REPLAYED', first, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
-- So does a retry of the same order under another key.
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {'REPLAYED', ARGV[3], tonumber(redis.call('GET', KEYS[2]) or '0')}
end
-- A release of this order arrived first (its caller gave up while the
-- reservation was still on its way, in a batch): the order is dead, and
-- reserving now would hold stock and the buyer's limit for an order that
-- is never published.
if redis.call('EXISTS', KEYS[7]) == 1 then
  return {'GIVEN_UP', ARGV[3], tonumber(redis.call('GET', KEYS[2]) or '0')}
end

local limit = redis.call('HGET', KEYS[1], 'limit')
if not limit then
  return {'NOT_PREHEATED', ARGV[3], 0}
end
-- The sale's keys may have lost writes (Redis restarted from its AOF, or
-- a replica took over) and are not rebuilt yet: its stock may be stale,
-- so nothing is sold from it. Replays above only repeat what was written.
if redis.call('EXISTS', KEYS[8]) == 0 then
  return {'FENCED', ARGV[3], 0}
end
local qty = tonumber(ARGV[2])
local stock = tonumber(redis.call('GET', KEYS[2]) or '0')
local bought = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if bought + qty > tonumber(limit) then
  return {'LIMIT_EXCEEDED', ARGV[3], stock}
end
if stock < qty then
  return {'SOLD_OUT', ARGV[3], stock}
end

local remaining = redis.call('DECRBY', KEYS[2], qty)
redis.call('HINCRBY', KEYS[3], ARGV[1], qty)
redis.call('HSET', KEYS[4], idemField, ARGV[3])
redis.call('HSET', KEYS[5], 'user', ARGV[1], 'qty', ARGV[2], 'status', 'RESERVED',
  'idem', ARGV[4], 'expires_at_ms', ARGV[5])
redis.call('ZADD', KEYS[6], ARGV[5], ARGV[3])
return {'RESERVED', ARGV[3], remaining}
