-- @prelude ends
-- sweep (CHN-072, CHN-073). ARGV[6]: batch size. Returns {forgotten,
-- ended}: how many tickets it forgot, and the tickets it ended (HGETALL
-- arrays).
local ids = redis.call('ZRANGEBYSCORE', DL, '-inf', NOW, 'LIMIT', 0, ARGV[6])
local changed, forgotten = {}, 0
for _, id in ipairs(ids) do
  local k = tkey(id)
  local a = redis.call('HGETALL', k)
  if #a == 0 then redis.call('ZREM', DL, id)
  else
    local m = tomap(a)
    if m.state == 'queued' then
      local exp, g, w = tonumber(m.expiresAt), tonumber(m.graceAt), tonumber(m.watchers)
      if exp <= NOW then end_ticket(id, m, 'expired')
        table.insert(changed, redis.call('HGETALL', k))
      elseif g > 0 and g <= NOW and w == 0 then end_ticket(id, m, 'cancelled')
        table.insert(changed, redis.call('HGETALL', k))
      else
        local d = exp
        if g > 0 and w == 0 and g < d then d = g end
        redis.call('ZADD', DL, d, id) end
    else
      local fa = tonumber(m.endedAt) + RET
      if fa <= NOW then
        redis.call('DEL', k)
        local ik = idemkey(m)
        if ik and redis.call('GET', ik) == id then redis.call('DEL', ik) end
        redis.call('ZREM', DL, id)
        if m.state ~= 'assigned' then count_ended(m.state, -1) end
        forgotten = forgotten + 1
      else redis.call('ZADD', DL, fa, id) end end end end
return {forgotten, changed}
