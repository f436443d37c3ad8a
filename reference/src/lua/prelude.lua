-- prelude: the head of every ticket script (spec/channel.md section 5), put
-- in front of each script that starts with the line "-- @prelude" when
-- lua/embed.cmake embeds them (and ends.lua after it for "-- @prelude ends":
-- what only the scripts that end tickets use, so the others do not build
-- it on every call). Common ARGV: [1] prefix, [2] stream MAXLEN,
-- [3] retention ms, [4] origin, [5] now ms; each script's own arguments from
-- ARGV[6]. Keys are derived from the prefix (single Redis; see the spec's
-- Redis Cluster note). Full-line comments are not sent to Redis.
local P, MAXLEN, RET, ORIGIN, NOW = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local DL, Q, ST = P..'mw:deadlines', P..'mw:queue', P..'mw:tickets'
local function tkey(id) return P..'mw:ticket:'..id end
local function fmt(n) return string.format('%d', n) end
local function tomap(a) local m = {} for i = 1, #a, 2 do m[a[i]] = a[i + 1] end return m end
