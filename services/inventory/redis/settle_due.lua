-- SettleDue ends claims of one activity's expiry queue, atomically: an
-- acknowledgement removes each entry from the claimed set, a requeue
-- (ARGV[1] set) moves it back into the queue due at ARGV[1]. Only a claim
-- that is still the caller's is settled: its score in the claimed set must
-- equal the lease deadline the caller was given, which no later claim of
-- the entry can have (a later claim's lease starts after this one lapsed).
--
-- KEYS[1] {act:ID}:expiry, KEYS[2] {act:ID}:claimed
-- ARGV[1] due score for a requeue (unix ms), or '' to acknowledge;
-- ARGV[2..] pairs of order id and lease deadline (unix ms).
--
-- Returns one 1 (settled) or 0 (no longer the caller's) per entry.
local out = {}
for i = 2, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[2], ARGV[i])
    if ARGV[1] ~= '' then
      redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
