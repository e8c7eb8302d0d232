-- PreheatSale writes a bucketed sale's own record (buckets.go) before its
-- buckets are preheated: the total, the per-user limit and the number of
-- buckets, which never changes once set. preheat.lua then loads each
-- bucket's share of the stock in the bucket's own slot.
--
-- KEYS[1] {act:ID}:meta
-- ARGV[1] total stock, ARGV[2] per-user limit, ARGV[3] buckets
--
-- Returns the sale's number of buckets: ARGV[3], or the number it was
-- preheated with before (1 for a sale of one bucket), which the caller
-- refuses when it differs.
local have = redis.call('HGET', KEYS[1], 'buckets')
if not have and redis.call('EXISTS', KEYS[1]) == 1 then
  have = '1'
end
if have and have ~= ARGV[3] then
  return tonumber(have)
end
redis.call('HSETNX', KEYS[1], 'total', ARGV[1])
redis.call('HSET', KEYS[1], 'limit', ARGV[2], 'buckets', ARGV[3])
return tonumber(ARGV[3])
