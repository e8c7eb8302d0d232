-- Stock reads an activity's remaining and total stock in one consistent
-- snapshot.
--
-- KEYS[1] {act:ID}:meta, KEYS[2] {act:ID}:stock
--
-- Returns {'OK', remaining, total} or {'NOT_PREHEATED'}.
local total = redis.call('HGET', KEYS[1], 'total')
if not total then
  return {'NOT_PREHEATED'}
end
return {'OK', tonumber(redis.call('GET', KEYS[2]) or '0'), tonumber(total)}
