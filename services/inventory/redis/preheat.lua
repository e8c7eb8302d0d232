-- Preheat loads an activity's stock and per-user limit, atomically. The
-- stock and total are set only when absent, so preheating again (a retry,
-- a restarted admin job) never gives back stock already sold; the limit
-- is updated.
--
-- A new sale (no stock key yet) is marked live (KEYS[3], see rebuild.lua)
-- with this server's run_id, written neither to the AOF nor to replicas:
-- a restart or a failover drops the mark and fences the sale. Preheating
-- a sale whose stock exists never marks it live: if it is fenced, its
-- keys may have lost writes, and only a rebuild from the orders may
-- unfence it.
--
-- KEYS[1] {act:ID}:meta, KEYS[2] {act:ID}:stock, KEYS[3] {act:ID}:live
-- ARGV[1] total stock, ARGV[2] per-user limit
--
-- Returns the remaining stock.
redis.call('HSETNX', KEYS[1], 'total', ARGV[1])
redis.call('HSET', KEYS[1], 'limit', ARGV[2])
if redis.call('SET', KEYS[2], ARGV[1], 'NX') then
  local runID = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  redis.set_repl(redis.REPL_NONE)
  redis.call('SET', KEYS[3], runID)
  redis.set_repl(redis.REPL_ALL)
end
return tonumber(redis.call('GET', KEYS[2]))
