-- BucketStock reads one bucket of a bucketed sale in one snapshot: its
-- stock, and the units it gave to and received from other buckets in
-- all (transfer_out.lua, transfer_in.lua). A transfer keeps stock + given
-- of its donor and stock - received of its recipient unchanged at every
-- step, so the sum over the buckets of stock + given - received is the
-- sale's remaining stock, units in transit included, however the
-- buckets' reads interleave with transfers.
--
-- KEYS[1] {bucket}:stock, KEYS[2] {bucket}:meta
--
-- Returns {stock, given, received}.
local m = redis.call('HMGET', KEYS[2], 'given', 'received')
return {tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(m[1] or '0'), tonumber(m[2] or '0')}
