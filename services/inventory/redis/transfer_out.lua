-- TransferOut is the first step of moving stock between two buckets of a
-- sale (buckets.go): it takes up to ARGV[1] units off this bucket's stock
-- and journals the transfer in this bucket's slot, atomically. The units
-- are then in transit: the journal entry is the only record of them until
-- transfer_in.lua adds them to the recipient and the entry is deleted.
-- A crash between the steps leaves the entry, and the repair
-- (Store.RepairTransfers) finishes it.
--
-- A fenced bucket (no live mark: its keys may have lost writes) gives
-- nothing: its stock may be stale, and only a rebuild may trust it again.
--
-- KEYS[1] {bucket}:stock, KEYS[2] {bucket}:xout (hash: transfer id ->
-- "<recipient>:<units>"), KEYS[3] {bucket}:meta (gen: the generation of
-- the sale's state, xseq: transfer counter, given: units given in all),
-- KEYS[4] {bucket}:live
-- ARGV[1] units wanted, ARGV[2] recipient bucket, ARGV[3] this bucket
--
-- Returns {units taken, transfer id}: {0, ''} when nothing was taken. The
-- id is "<gen>:<donor>:<seq>", unique in the sale.
if redis.call('EXISTS', KEYS[4]) == 0 then
  return {0, ''}
end
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
local take = math.min(stock, tonumber(ARGV[1]))
if take <= 0 then
  return {0, ''}
end
redis.call('DECRBY', KEYS[1], take)
redis.call('HINCRBY', KEYS[3], 'given', take)
local seq = redis.call('HINCRBY', KEYS[3], 'xseq', 1)
local id = (redis.call('HGET', KEYS[3], 'gen') or '0') .. ':' .. ARGV[3] .. ':' .. seq
redis.call('HSET', KEYS[2], id, ARGV[2] .. ':' .. take)
return {take, id}
