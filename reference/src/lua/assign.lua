-- @prelude
-- assign (CHN-060, CHN-061, CHN-062). ARGV[6]: k, the number of matches;
-- then per match: n, matchId, assignedAt, then per ticket: id, new
-- version, envelope. Each match is its own compare-and-set, in order, as if
-- each were a call of its own (a later match sees what an earlier one
-- assigned). Each assigned ticket's channel payload is published by the
-- script itself, right after its commit: commit and notice are one atomic
-- step, so no crash of the worker can separate them. Returns one integer
-- per match: -1 when it committed (the worker knows what it wrote), else
-- the index of the first failing ticket.
local function assign(b)
  local n, mid, at = tonumber(ARGV[b]), ARGV[b + 1], tonumber(ARGV[b + 2])
  local seen, f = {}, {}
  for i = 1, n do
    local j = b + 3 * i
    local id, nv = ARGV[j], tonumber(ARGV[j + 1])
    local s = redis.call('HMGET', tkey(id), 'state', 'version', 'playerId', 'idemKey')
    if seen[id] or s[1] ~= 'queued' or tonumber(s[2]) + 1 ~= nv then return i - 1 end
    seen[id] = true
    f[i] = s end
  local ats, until_ = fmt(at), fmt(at + RET)
  for i = 1, n do
    local j = b + 3 * i
    local id, s = ARGV[j], f[i]
    local k = tkey(id)
    redis.call('HSET', k, 'state', 'assigned', 'version', ARGV[j + 1], 'envelope', ARGV[j + 2], 'matchId', mid, 'endedAt', ats, 'graceAt', '0')
    redis.call('PEXPIRE', k, RET)
    if s[4] then redis.call('PEXPIRE', P..'mw:idem:'..string.len(s[3])..':'..s[3]..':'..s[4], RET) end
    redis.call('ZREM', Q, id)
    redis.call('ZADD', DL, until_, id)
    redis.call('PUBLISH', P..'matchmaking:assigned', '{"ticketId":'..cjson.encode(id)..',"envelope":'..ARGV[j + 2]..'}') end
  return -1 end
local res, b = {}, 7
for m = 1, tonumber(ARGV[6]) do
  res[m] = assign(b)
  b = b + 3 + 3 * tonumber(ARGV[b]) end
return res
