-- TransferIn is the second step of moving stock between two buckets of a
-- sale: it adds a journaled transfer's units to this bucket's stock,
-- once per transfer id. The mover runs it right after transfer_out.lua;
-- the repair runs it again for every entry still in a donor's journal,
-- and a repeat changes nothing.
--
-- A transfer from an earlier generation of the sale's state (a rebuild
-- rewrote every bucket since it was taken: the units are counted in the
-- rebuilt stock) is STALE and adds nothing. A fenced bucket takes nothing
-- yet: the entry waits in the donor's journal until the bucket is live.
--
-- KEYS[1] {bucket}:stock, KEYS[2] {bucket}:xin (hash: transfer id ->
-- units, the transfers applied here), KEYS[3] {bucket}:meta (gen;
-- received: units received in all),
-- KEYS[4] {bucket}:live
-- ARGV[1] transfer id, ARGV[2] units, ARGV[3] the transfer's generation
--
-- Returns APPLIED, ALREADY, FENCED or STALE.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return 'ALREADY'
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  return 'FENCED'
end
if (redis.call('HGET', KEYS[3], 'gen') or '0') ~= ARGV[3] then
  return 'STALE'
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'received', ARGV[2])
return 'APPLIED'
