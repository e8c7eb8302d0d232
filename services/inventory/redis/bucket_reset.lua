-- BucketReset opens a rebuild of one bucket of a bucketed sale
-- (buckets.go): the bucket's transfer journal is dropped (the rebuild
-- rewrites every bucket's stock from the orders, so units in transit are
-- counted there), its counts of units given and received zeroed, and
-- its generation set, so a transfer taken before the
-- rebuild is refused as STALE by transfer_in.lua. The bucket stays
-- fenced: rebuild.lua, run next, marks it live.
--
-- KEYS[1] {bucket}:xout, KEYS[2] {bucket}:meta, KEYS[3] {bucket}:live
-- ARGV[1] the new generation
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('HSET', KEYS[2], 'gen', ARGV[1])
redis.call('HDEL', KEYS[2], 'given', 'received')
return 'OK'
