-- ClaimDue takes up to a limit of due entries off an activity's expiry
-- queue for one worker, atomically: each entry moves from the queue into
-- the claimed set, scored by the claim's lease deadline, so no other
-- worker can take it while the lease holds. Claims whose lease lapsed
-- (their worker crashed or stalled) go back to the queue first, due now,
-- so they are retried and never lost. The caller passes now from its
-- clock: the script never reads time.
--
-- KEYS[1] {act:ID}:expiry   sorted set: order id scored by deadline (unix ms)
-- KEYS[2] {act:ID}:claimed  sorted set: order id scored by lease deadline (unix ms)
-- ARGV[1] now (unix ms), ARGV[2] limit, ARGV[3] lease deadline (unix ms)
--
-- Returns a flat list {order id, due score, order id, due score, ...}.
local now, limit = ARGV[1], tonumber(ARGV[2])
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(lapsed) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], now, id)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('ZADD', KEYS[2], ARGV[3], due[i])
end
return due
