-- ends: what the scripts that end tickets (cancel, sweep) use, put after
-- the prelude in front of each script that starts with the line
-- "-- @prelude ends" (lua/embed.cmake). mw:counts holds the ended states
-- only (spec/channel.md 5.1).
local CNT = P..'mw:counts'
local function idemkey(m) if m.idemKey == nil then return nil end
  return P..'mw:idem:'..string.len(m.playerId)..':'..m.playerId..':'..m.idemKey end
local function count_ended(state, d) redis.call('HINCRBY', CNT, state, d) end
local function finalize(id, m, ended)
  local k = tkey(id)
  redis.call('PEXPIRE', k, RET)
  local ik = idemkey(m) if ik then redis.call('PEXPIRE', ik, RET) end
  redis.call('ZREM', Q, id)
  redis.call('ZADD', DL, ended + RET, id) end
local function end_ticket(id, m, state)
  local v = tonumber(m.version) + 1
  redis.call('HSET', tkey(id), 'state', state, 'version', fmt(v), 'endedAt', fmt(NOW), 'graceAt', '0')
  finalize(id, m, NOW)
  redis.call('XADD', ST, 'MAXLEN', '~', MAXLEN, '*', 'op', 'removed', 'id', id, 'state', state, 'version', fmt(v))
  redis.call('PUBLISH', P..'matchmaking:ended', '{"ticketId":"'..id..'","state":"'..state..'","version":'..fmt(v)..',"origin":"'..ORIGIN..'"}')
  count_ended(state, 1) end
