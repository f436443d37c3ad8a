-- prelude: the head of every ticket script (spec/channel.md section 5), put
-- in front of each script that starts with the line "-- @prelude" when
-- lua/embed.cmake embeds them. Common ARGV: [1] prefix, [2] stream MAXLEN,
-- [3] retention ms, [4] origin, [5] now ms; each script's own arguments from
-- ARGV[6]. Keys are derived from the prefix (single Redis; see the spec's
-- Redis Cluster note). Full-line comments are not sent to Redis.
local P, MAXLEN, RET, ORIGIN, NOW = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local DL, Q, ST, CNT = P..'mw:deadlines', P..'mw:queue', P..'mw:tickets', P..'mw:counts'
local function tkey(id) return P..'mw:ticket:'..id end
local function fmt(n) return string.format('%d', n) end
local function tomap(a) local m = {} for i = 1, #a, 2 do m[a[i]] = a[i + 1] end return m end
local function idemkey(m) if m.idemKey == nil then return nil end
  return P..'mw:idem:'..string.len(m.playerId)..':'..m.playerId..':'..m.idemKey end
local function count(from, to)
  if from then redis.call('HINCRBY', CNT, from, -1) end
  if to then redis.call('HINCRBY', CNT, to, 1) end end
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
  count('queued', state) end
