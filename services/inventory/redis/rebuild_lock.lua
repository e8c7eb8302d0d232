-- A bucketed sale's rebuild lock (buckets.go, rebuildBuckets) is held by
-- the token its taker set. It is extended, or released, only while it
-- still holds that token: a rebuild whose lock expired under it never
-- releases or extends the lock of the rebuild that took it next.
--
-- KEYS[1] {act:ID}:rebuilding
-- ARGV[1] the taker's token, ARGV[2] the lock's new life in ms, or 0 to
-- release it
--
-- Returns 1 when the lock held the token, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
