-- Preheat loads an activity's stock and per-user limit, atomically. The
-- stock and total are set only when absent, so preheating again (a retry,
-- a restarted admin job) never gives back stock already sold; the limit
-- is updated.
--
-- KEYS[1] {act:ID}:meta, KEYS[2] {act:ID}:stock
-- ARGV[1] total stock, ARGV[2] per-user limit
--
-- Returns the remaining stock.
redis.call('HSETNX', KEYS[1], 'total', ARGV[1])
redis.call('HSET', KEYS[1], 'limit', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'NX')
return tonumber(redis.call('GET', KEYS[2]))
