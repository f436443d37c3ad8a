-- page (CHN-083): one page of the rebuild. KEYS[1] queue zset; ARGV[1]
-- prefix, ARGV[2] min score, ARGV[3] count. Returns {id, score, HGETALL}
-- triples, oldest first.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local out = {}
for i = 1, #ids, 2 do
  table.insert(out, {ids[i], ids[i + 1], redis.call('HGETALL', ARGV[1]..'mw:ticket:'..ids[i])}) end
return out
