-- Rebuild rewrites a fenced sale's keys from the truth the order service
-- holds (its stored orders), atomically, and marks the sale live again.
-- A sale is fenced when its Redis state may have lost writes: Redis
-- restarted from an AOF fsynced every second, or a replica took over.
--
-- KEYS[1] {act:ID}:meta, KEYS[2] {act:ID}:stock, KEYS[3] {act:ID}:bought,
-- KEYS[4] {act:ID}:idem, KEYS[5] {act:ID}:expiry, KEYS[6] {act:ID}:claimed,
-- KEYS[7] {act:ID}:live, KEYS[7+i] {act:ID}:res:<order i>
-- ARGV[1] total stock, ARGV[2] per-user limit, then for order i
-- ARGV[3+7(i-1)..]: order id, user id, quantity, status (RESERVED for an
-- order waiting for payment, CONFIRMED for a paid one, RELEASED for one
-- that ended unpaid), idempotency key, payment deadline (unix ms), units
-- a refund gave back to the buyer's limit.
--
-- The rebuilt state: stock = total - the units of RESERVED and CONFIRMED
-- orders; per-user counts = those units less the restored ones; every
-- order's reservation record as its order stands, marked ordered; the
-- expiry queue = the RESERVED orders at their deadlines (claims dropped:
-- a worker settling one finds its claim gone, and the entry is due again
-- at once if its deadline passed); every order's idempotency key naming
-- it. Reservations of orders that are not stored are left alone but
-- leave the queue: they hold no stock in the rebuilt count.
--
-- A sale already live (a second reconciler, a rebuild repeated) is left
-- alone. The live mark carries this server's run_id and, like preheat's,
-- is written neither to the AOF nor to replicas.
--
-- Returns {'LIVE'} or {'REBUILT', stock before, stock after,
-- reservations repaired, user counts repaired, expiry entries repaired,
-- units held beyond the total (stock would be negative; it is set to 0)}.
local runID = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if redis.call('GET', KEYS[7]) == runID then
  return {'LIVE'}
end
local total = tonumber(ARGV[1])
local held = 0
local bought, users = {}, {}
local due = {}
local resRepaired = 0
local n = (#ARGV - 2) / 7
for i = 1, n do
  local b = 3 + (i - 1) * 7
  local order, user, qty, status, idem, deadline, restored =
    ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  local key = KEYS[7 + i]
  local r = redis.call('HMGET', key, 'user', 'qty', 'status', 'idem', 'expires_at_ms', 'restored')
  if r[1] ~= user or r[2] ~= qty or r[3] ~= status or r[4] ~= idem or r[5] ~= deadline or (r[6] or '0') ~= restored then
    resRepaired = resRepaired + 1
  end
  redis.call('HSET', key, 'user', user, 'qty', qty, 'status', status, 'idem', idem,
    'expires_at_ms', deadline, 'ordered', '1', 'restored', restored)
  redis.call('HDEL', key, 'unpublished')
  redis.call('HSET', KEYS[4], user .. ':' .. idem, order)
  if status ~= 'RELEASED' then
    held = held + tonumber(qty)
    if not bought[user] then
      bought[user] = 0
      users[#users + 1] = user
    end
    bought[user] = bought[user] + tonumber(qty) - tonumber(restored)
  end
  if status == 'RESERVED' then
    due[order] = deadline
  end
end

local oldStock = tonumber(redis.call('GET', KEYS[2]) or '-1')
local stock = total - held
local over = 0
if stock < 0 then
  over, stock = -stock, 0
end

local userRepaired = 0
local old = redis.call('HGETALL', KEYS[3])
local seen = {}
for i = 1, #old, 2 do
  seen[old[i]] = true
  if (bought[old[i]] or 0) ~= tonumber(old[i + 1]) then
    userRepaired = userRepaired + 1
  end
end
for _, user in ipairs(users) do
  if not seen[user] and bought[user] > 0 then
    userRepaired = userRepaired + 1
  end
end

local expiryRepaired = 0
local entries = redis.call('ZRANGE', KEYS[5], 0, -1, 'WITHSCORES')
local queued = {}
for i = 1, #entries, 2 do
  queued[entries[i]] = true
  if due[entries[i]] ~= entries[i + 1] then
    expiryRepaired = expiryRepaired + 1
  end
end
for order, _ in pairs(due) do
  if not queued[order] then
    expiryRepaired = expiryRepaired + 1
  end
end

redis.call('HSET', KEYS[1], 'total', ARGV[1], 'limit', ARGV[2])
redis.call('SET', KEYS[2], stock)
redis.call('DEL', KEYS[3], KEYS[5], KEYS[6])
for _, user in ipairs(users) do
  if bought[user] > 0 then
    redis.call('HSET', KEYS[3], user, bought[user])
  end
end
for order, deadline in pairs(due) do
  redis.call('ZADD', KEYS[5], deadline, order)
end
redis.set_repl(redis.REPL_NONE)
redis.call('SET', KEYS[7], runID)
redis.set_repl(redis.REPL_ALL)
return {'REBUILT', oldStock, stock, resRepaired, userRepaired, expiryRepaired, over}
