-- @prelude
-- detach (CHN-071, CHN-074). ARGV[6]: id, ARGV[7]: grace ms. A no-op on a
-- ticket no longer queued: sessions do not even send it for tickets they
-- know are final. Returns {'OK'} | {'STATE'} (no watcher) | {'NOTFOUND'}.
local id = ARGV[6]
local k = tkey(id)
local a = redis.call('HGETALL', k)
if #a == 0 then return {'NOTFOUND'} end
local m = tomap(a)
if m.state ~= 'queued' then return {'OK'} end
local w = tonumber(m.watchers)
if w <= 0 then return {'STATE'} end
w = w - 1
redis.call('HSET', k, 'watchers', fmt(w))
if w == 0 then
  local g = NOW + tonumber(ARGV[7])
  redis.call('HSET', k, 'graceAt', fmt(g))
  redis.call('ZADD', DL, math.min(g, tonumber(m.expiresAt)), id) end
return {'OK'}
