-- @prelude ends
-- cancel (CHN-070). ARGV[6]: id.
-- Returns {'OK', HGETALL} | {'STATE', HGETALL} (assigned) | {'NOTFOUND'}.
local id = ARGV[6]
local a = redis.call('HGETALL', tkey(id))
if #a == 0 then return {'NOTFOUND'} end
local m = tomap(a)
if m.state == 'assigned' then return {'STATE', a} end
if m.state ~= 'queued' then return {'NOTFOUND'} end
end_ticket(id, m, 'cancelled')
return {'OK', redis.call('HGETALL', tkey(id))}
