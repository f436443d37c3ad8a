-- @prelude
-- assign (CHN-060, CHN-061, CHN-062). ARGV[6]: k, the number of matches;
-- then per match: n, matchId, assignedAt, then per ticket: id, new
-- version, envelope. Each match is its own compare-and-set, in order, as if
-- each were a call of its own (a later match sees what an earlier one
-- assigned). Each assigned ticket's channel payload is published by the
-- script itself, right after its commit: commit and notice are one atomic
-- step, so no crash of the worker can separate them. Returns one result per
-- match: {'OK', {HGETALL of each ticket}} or {'STATE', index of the first
-- failing ticket}.
local function assign(b)
  local n, mid, at = tonumber(ARGV[b]), ARGV[b + 1], tonumber(ARGV[b + 2])
  local seen = {}
  for i = 1, n do
    local j = b + 3 * i
    local id, nv = ARGV[j], tonumber(ARGV[j + 1])
    local s = redis.call('HMGET', tkey(id), 'state', 'version')
    if seen[id] or s[1] ~= 'queued' or tonumber(s[2]) + 1 ~= nv then
      return {'STATE', i - 1} end
    seen[id] = true end
  local out = {}
  for i = 1, n do
    local j = b + 3 * i
    local id = ARGV[j]
    local k = tkey(id)
    redis.call('HSET', k, 'state', 'assigned', 'version', ARGV[j + 1], 'envelope', ARGV[j + 2], 'matchId', mid, 'endedAt', fmt(at), 'graceAt', '0')
    local a = redis.call('HGETALL', k)
    finalize(id, tomap(a), at)
    count('queued', 'assigned')
    redis.call('PUBLISH', P..'matchmaking:assigned', '{"ticketId":'..cjson.encode(id)..',"envelope":'..ARGV[j + 2]..'}')
    out[i] = a end
  return {'OK', out} end
local res, b = {}, 7
for m = 1, tonumber(ARGV[6]) do
  res[m] = assign(b)
  b = b + 3 + 3 * tonumber(ARGV[b]) end
return res
