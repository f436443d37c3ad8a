-- @prelude
-- attach (CHN-071). ARGV[6]: id. Counts the watcher only on a queued
-- ticket (watchers is kept only while queued; detach does the same).
-- Returns {'OK', HGETALL} | {'NOTFOUND'}.
local id = ARGV[6]
local k = tkey(id)
local a = redis.call('HGETALL', k)
if #a == 0 then return {'NOTFOUND'} end
local m = tomap(a)
if m.state ~= 'queued' then return {'OK', a} end
redis.call('HINCRBY', k, 'watchers', 1)
if m.graceAt ~= '0' then
  redis.call('HSET', k, 'graceAt', '0')
  redis.call('ZADD', DL, m.expiresAt, id) end
return {'OK', redis.call('HGETALL', k)}
