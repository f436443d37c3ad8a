-- @prelude
-- create (CHN-050, CHN-051), for the creates of one loop turn: each is
-- handled on its own, in order, as if it were a call of its own (a later
-- create sees what an earlier one wrote). A queued ticket, or the live
-- ticket the same player created with the same idempotency key (a watched
-- replay counts its watcher and clears the grace, as attach does).
-- ARGV[6] ttl + retention ms, ARGV[7] max tickets, ARGV[8] k, the number of
-- creates; then per create 11 arguments: id queue playerId region hasIdem
-- idemKey createdAt expiresAt hasAttrs attributes watched.
-- Returns one result per create: 'CREATED' (the caller knows the rest) |
-- {'EXISTING', HGETALL} | 'LIMIT' | 'DUPID'.
local ttl, maxt = ARGV[6], tonumber(ARGV[7])
local function create(b)
  local id, queue, player, region = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local hasIdem, idem, now, exp = ARGV[b + 4] == '1', ARGV[b + 5], ARGV[b + 6], ARGV[b + 7]
  local hasAttrs, attrs, watched = ARGV[b + 8] == '1', ARGV[b + 9], ARGV[b + 10] == '1'
  local ik = nil
  if hasIdem then
    ik = P..'mw:idem:'..string.len(player)..':'..player..':'..idem
    local old = redis.call('GET', ik)
    if old and redis.call('EXISTS', tkey(old)) == 1 then
      local ok = tkey(old)
      if watched then
        local m = tomap(redis.call('HGETALL', ok))
        if m.state == 'queued' then
          redis.call('HINCRBY', ok, 'watchers', 1)
          if m.graceAt ~= '0' then
            redis.call('HSET', ok, 'graceAt', '0')
            redis.call('ZADD', DL, m.expiresAt, old) end end end
      return {'EXISTING', redis.call('HGETALL', ok)} end end
  if redis.call('ZCARD', DL) >= maxt then return 'LIMIT' end
  local k = tkey(id)
  if redis.call('EXISTS', k) == 1 then return 'DUPID' end
  local f = {'id', id, 'queue', queue, 'playerId', player, 'region', region, 'state', 'queued', 'version', '1', 'createdAt', now, 'expiresAt', exp, 'endedAt', '0', 'watchers', watched and '1' or '0', 'graceAt', '0'}
  if hasIdem then f[#f + 1] = 'idemKey' f[#f + 1] = idem end
  if hasAttrs then f[#f + 1] = 'attributes' f[#f + 1] = attrs end
  redis.call('HSET', k, unpack(f))
  redis.call('PEXPIRE', k, ttl)
  if ik then redis.call('SET', ik, id, 'PX', ttl) end
  redis.call('ZADD', Q, now, id)
  redis.call('ZADD', DL, exp, id)
  redis.call('XADD', ST, 'MAXLEN', '~', MAXLEN, '*', 'op', 'queued', 'id', id, 'state', 'queued', 'queue', queue, 'playerId', player, 'region', region, 'version', '1', 'createdAt', now, 'expiresAt', exp)
  return 'CREATED' end
local res, b = {}, 9
for i = 1, tonumber(ARGV[8]) do
  res[i] = create(b)
  b = b + 11 end
return res
