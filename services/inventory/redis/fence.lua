-- Fence checks that a sale's live mark (preheat.lua, rebuild.lua) was
-- written by this very server process. The mark is written neither to the
-- AOF nor to replicas, so a restart or a failover drops it; but an AOF
-- rewrite (or an RDB snapshot) copies every key in memory, the mark
-- included, and a restart from that file brings it back. Its value, the
-- run_id of the server that wrote it, tells: a mark from another run is
-- deleted, fencing the sale.
--
-- KEYS[1] {act:ID}:live
--
-- Returns LIVE or FENCED.
local runID = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local mark = redis.call('GET', KEYS[1])
if mark == runID then
  return 'LIVE'
end
if mark then
  redis.call('DEL', KEYS[1])
end
return 'FENCED'
