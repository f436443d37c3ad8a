-- lease (CHN-082). KEYS[1] lease; ARGV[1] consumer, ARGV[2] lease ms.
-- Returns 2: acquired, 1: renewed (already ours), 0: held by another worker.
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
