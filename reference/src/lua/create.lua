-- @prelude
-- create (CHN-050, CHN-051): a queued ticket, or the live ticket the same
-- player created with the same idempotency key (a watched replay counts
-- its watcher and clears the grace, as attach does).
-- ARGV[6..]: id queue playerId region hasIdem idemKey expiresAt hasAttrs
-- attributes watched ttlMs maxTickets.
-- Returns {'CREATED', HGETALL} | {'EXISTING', HGETALL} | {'LIMIT'} | {'DUPID'}.
local id, queue, player, region = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local hasIdem, idem, exp, hasAttrs = ARGV[10] == '1', ARGV[11], ARGV[12], ARGV[13] == '1'
local attrs, watched, ttl, maxt = ARGV[14], ARGV[15] == '1', ARGV[16], tonumber(ARGV[17])
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
if redis.call('ZCARD', DL) >= maxt then return {'LIMIT'} end
local k = tkey(id)
if redis.call('EXISTS', k) == 1 then return {'DUPID'} end
local f = {'id', id, 'queue', queue, 'playerId', player, 'region', region, 'state', 'queued', 'version', '1', 'createdAt', fmt(NOW), 'expiresAt', exp, 'endedAt', '0', 'watchers', watched and '1' or '0', 'graceAt', '0'}
if hasIdem then table.insert(f, 'idemKey') table.insert(f, idem) end
if hasAttrs then table.insert(f, 'attributes') table.insert(f, attrs) end
redis.call('HSET', k, unpack(f))
redis.call('PEXPIRE', k, ttl)
if ik then redis.call('SET', ik, id, 'PX', ttl) end
redis.call('ZADD', Q, NOW, id)
redis.call('ZADD', DL, exp, id)
redis.call('XADD', ST, 'MAXLEN', '~', MAXLEN, '*', 'op', 'queued', 'id', id, 'state', 'queued', 'queue', queue, 'playerId', player, 'region', region, 'version', '1', 'createdAt', fmt(NOW), 'expiresAt', exp)
count(nil, 'queued')
return {'CREATED', redis.call('HGETALL', k)}
