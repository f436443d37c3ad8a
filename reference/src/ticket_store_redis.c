/* ticket_store_redis: the ticket store over Redis (spec/channel.md §5), so
 * many server instances share one truth.
 *
 * Every state change is one Lua script on the command connection, so it is
 * atomic across instances (sent as EVALSHA once SCRIPT LOAD, sent on every
 * (re)connect, has answered; EVAL before that, and once again with EVAL
 * when Redis answers NOSCRIPT, e.g. after SCRIPT FLUSH): create with idempotency, cancel, attach,
 * detach, the assignment compare-and-set, and the sweep. Ends without
 * assignment are published by the script on <prefix>matchmaking:ended; each
 * instance subscribes (own connection) and calls store->on_ended for the
 * ends other instances made, and calls it itself for its own (after the
 * cancel callback, like the memory store), so notices from its own origin
 * are skipped. The worker's feed reads the hand-off stream through the
 * consumer group "workers" on a third connection, while holding the worker
 * lease (CHN-082/083). */
#include "ticket_store_redis.h"

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "json.h"
#include "log.h"

#define TSR_DEFAULT_TTL_MS      600000
#define TSR_DEFAULT_ATTL_MS     600000
#define TSR_DEFAULT_GRACE_MS    30000
#define TSR_DEFAULT_MAX_TICKETS 1000000
#define TSR_MAX_INFLIGHT        65536 /* requests awaiting Redis; beyond: MW_ELIMIT */
#define TSR_SWEEP_BATCH         "256"
#define TSR_LEASE_MS            10000
#define TSR_LEASE_RENEW_S       1.0 /* renewal interval while held (CHN-082; lease_due()) */
#define TSR_STANDBY_S           3.0 /* lease retry while another worker holds it */
#define TSR_READ_COUNT          "128"
#define TSR_READ_BLOCK_MS       "1000"
#define TSR_PAGE                256
#define TSR_TIES_MAX            4096 /* ids remembered at one score while paging */
#define TSR_COUNTS_PERIOD_S     1.0
#define TSR_GROUP               "workers"
#define TSR_KEY_MAX             (64 + 32)
#define TSR_ARGS_MAX            (16 + 3 * MW_MATCH_SIZE_MAX)
#define TSR_BATCH_MAX           64   /* matches per assign script call */
#define TSR_OWED_MAX            4096 /* detaches owed to Redis (CHN-074); beyond: dropped */
#define TSR_FLUSH_MS            500  /* at destroy: longest wait to write what is buffered */

/* ---- Lua scripts ----------------------------------------------------------
 * Common ARGV: [1] prefix, [2] stream MAXLEN, [3] retention ms, [4] origin,
 * [5] now ms; each script's own arguments from ARGV[6]. Keys are derived
 * from the prefix (single Redis; see the spec's Redis Cluster note). */
#define LUA_PRELUDE                                                                                \
    "local P, MAXLEN, RET, ORIGIN, NOW = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], "           \
    "tonumber(ARGV[5])\n"                                                                          \
    "local DL, Q, ST, CNT = P..'mw:deadlines', P..'mw:queue', P..'mw:tickets', P..'mw:counts'\n"   \
    "local function tkey(id) return P..'mw:ticket:'..id end\n"                                     \
    "local function fmt(n) return string.format('%d', n) end\n"                                    \
    "local function tomap(a) local m = {} for i = 1, #a, 2 do m[a[i]] = a[i + 1] end return m "    \
    "end\n"                                                                                        \
    "local function idemkey(m) if m.idemKey == nil then return nil end\n"                          \
    "  return P..'mw:idem:'..string.len(m.playerId)..':'..m.playerId..':'..m.idemKey end\n"        \
    "local function count(from, to)\n"                                                             \
    "  if from then redis.call('HINCRBY', CNT, from, -1) end\n"                                    \
    "  if to then redis.call('HINCRBY', CNT, to, 1) end end\n"                                     \
    "local function finalize(id, m, ended)\n"                                                      \
    "  local k = tkey(id)\n"                                                                       \
    "  redis.call('PEXPIRE', k, RET)\n"                                                            \
    "  local ik = idemkey(m) if ik then redis.call('PEXPIRE', ik, RET) end\n"                      \
    "  redis.call('ZREM', Q, id)\n"                                                                \
    "  redis.call('ZADD', DL, ended + RET, id) end\n"                                              \
    "local function end_ticket(id, m, state)\n"                                                    \
    "  local v = tonumber(m.version) + 1\n"                                                        \
    "  redis.call('HSET', tkey(id), 'state', state, 'version', fmt(v), 'endedAt', fmt(NOW), "      \
    "'graceAt', '0')\n"                                                                            \
    "  finalize(id, m, NOW)\n"                                                                     \
    "  redis.call('XADD', ST, 'MAXLEN', '~', MAXLEN, '*', 'op', 'removed', 'id', id, 'state', "    \
    "state, 'version', fmt(v))\n"                                                                  \
    "  redis.call('PUBLISH', P..'matchmaking:ended', '{\"ticketId\":\"'..id..'\",\"state\":\"'.."  \
    "state..'\",\"version\":'..fmt(v)..',\"origin\":\"'..ORIGIN..'\"}')\n"                         \
    "  count('queued', state) end\n"

/* ARGV[6..]: id queue playerId region hasIdem idemKey expiresAt hasAttrs
 * attributes watched ttlMs maxTickets */
static const char LUA_CREATE[] = LUA_PRELUDE
    "local id, queue, player, region = ARGV[6], ARGV[7], ARGV[8], ARGV[9]\n"
    "local hasIdem, idem, exp, hasAttrs = ARGV[10] == '1', ARGV[11], ARGV[12], ARGV[13] == '1'\n"
    "local attrs, watched, ttl, maxt = ARGV[14], ARGV[15] == '1', ARGV[16], tonumber(ARGV[17])\n"
    "local ik = nil\n"
    "if hasIdem then\n"
    "  ik = P..'mw:idem:'..string.len(player)..':'..player..':'..idem\n"
    "  local old = redis.call('GET', ik)\n"
    "  if old and redis.call('EXISTS', tkey(old)) == 1 then\n"
    "    local ok = tkey(old)\n"
    "    if watched then\n"
    "      local m = tomap(redis.call('HGETALL', ok))\n"
    "      if m.state == 'queued' then\n"
    "        redis.call('HINCRBY', ok, 'watchers', 1)\n"
    "        if m.graceAt ~= '0' then\n"
    "          redis.call('HSET', ok, 'graceAt', '0')\n"
    "          redis.call('ZADD', DL, m.expiresAt, old) end end end\n"
    "    return {'EXISTING', redis.call('HGETALL', ok)} end end\n"
    "if redis.call('ZCARD', DL) >= maxt then return {'LIMIT'} end\n"
    "local k = tkey(id)\n"
    "if redis.call('EXISTS', k) == 1 then return {'DUPID'} end\n"
    "local f = {'id', id, 'queue', queue, 'playerId', player, 'region', region, 'state', "
    "'queued', 'version', '1', 'createdAt', fmt(NOW), 'expiresAt', exp, 'endedAt', '0', "
    "'watchers', watched and '1' or '0', 'graceAt', '0'}\n"
    "if hasIdem then table.insert(f, 'idemKey') table.insert(f, idem) end\n"
    "if hasAttrs then table.insert(f, 'attributes') table.insert(f, attrs) end\n"
    "redis.call('HSET', k, unpack(f))\n"
    "redis.call('PEXPIRE', k, ttl)\n"
    "if ik then redis.call('SET', ik, id, 'PX', ttl) end\n"
    "redis.call('ZADD', Q, NOW, id)\n"
    "redis.call('ZADD', DL, exp, id)\n"
    "redis.call('XADD', ST, 'MAXLEN', '~', MAXLEN, '*', 'op', 'queued', 'id', id, 'state', "
    "'queued', 'queue', queue, 'playerId', player, 'region', region, 'version', '1', 'createdAt', "
    "fmt(NOW), "
    "'expiresAt', exp)\n"
    "count(nil, 'queued')\n"
    "return {'CREATED', redis.call('HGETALL', k)}\n";

/* ARGV[6]: id */
static const char LUA_CANCEL[] =
    LUA_PRELUDE "local id = ARGV[6]\n"
                "local a = redis.call('HGETALL', tkey(id))\n"
                "if #a == 0 then return {'NOTFOUND'} end\n"
                "local m = tomap(a)\n"
                "if m.state == 'assigned' then return {'STATE', a} end\n"
                "if m.state ~= 'queued' then return {'NOTFOUND'} end\n"
                "end_ticket(id, m, 'cancelled')\n"
                "return {'OK', redis.call('HGETALL', tkey(id))}\n";

/* ARGV[6]: id. Counts the watcher only on a queued ticket (CHN-071:
 * watchers is kept only while queued; detach does the same). */
static const char LUA_ATTACH[] = LUA_PRELUDE "local id = ARGV[6]\n"
                                             "local k = tkey(id)\n"
                                             "local a = redis.call('HGETALL', k)\n"
                                             "if #a == 0 then return {'NOTFOUND'} end\n"
                                             "local m = tomap(a)\n"
                                             "if m.state ~= 'queued' then return {'OK', a} end\n"
                                             "redis.call('HINCRBY', k, 'watchers', 1)\n"
                                             "if m.graceAt ~= '0' then\n"
                                             "  redis.call('HSET', k, 'graceAt', '0')\n"
                                             "  redis.call('ZADD', DL, m.expiresAt, id) end\n"
                                             "return {'OK', redis.call('HGETALL', k)}\n";

/* ARGV[6]: id, ARGV[7]: grace ms. A no-op on a ticket no longer queued
 * (CHN-071): sessions do not even send it for tickets they know are final. */
static const char LUA_DETACH[] =
    LUA_PRELUDE "local id = ARGV[6]\n"
                "local k = tkey(id)\n"
                "local a = redis.call('HGETALL', k)\n"
                "if #a == 0 then return {'NOTFOUND'} end\n"
                "local m = tomap(a)\n"
                "if m.state ~= 'queued' then return {'OK'} end\n"
                "local w = tonumber(m.watchers)\n"
                "if w <= 0 then return {'STATE'} end\n"
                "w = w - 1\n"
                "redis.call('HSET', k, 'watchers', fmt(w))\n"
                "if w == 0 then\n"
                "  local g = NOW + tonumber(ARGV[7])\n"
                "  redis.call('HSET', k, 'graceAt', fmt(g))\n"
                "  redis.call('ZADD', DL, math.min(g, tonumber(m.expiresAt)), id) end\n"
                "return {'OK'}\n";

/* ARGV[6]: k, the number of matches; then per match: n, matchId,
 * assignedAt, then per ticket: id, new version, envelope. Each match is its
 * own compare-and-set (CHN-060), in order, as if each were a call of its own
 * (a later match sees what an earlier one assigned). Each assigned ticket's
 * channel payload is published by the script itself, right after its
 * commit (CHN-062): commit and notice are one atomic step, so no crash of
 * the worker can separate them. Returns one result per match: {'OK',
 * {HGETALL of each ticket}} or {'STATE', index of the first failing
 * ticket}. */
static const char LUA_ASSIGN[] = LUA_PRELUDE
    "local function assign(b)\n"
    "  local n, mid, at = tonumber(ARGV[b]), ARGV[b + 1], tonumber(ARGV[b + 2])\n"
    "  local seen = {}\n"
    "  for i = 1, n do\n"
    "    local j = b + 3 * i\n"
    "    local id, nv = ARGV[j], tonumber(ARGV[j + 1])\n"
    "    local s = redis.call('HMGET', tkey(id), 'state', 'version')\n"
    "    if seen[id] or s[1] ~= 'queued' or tonumber(s[2]) + 1 ~= nv then\n"
    "      return {'STATE', i - 1} end\n"
    "    seen[id] = true end\n"
    "  local out = {}\n"
    "  for i = 1, n do\n"
    "    local j = b + 3 * i\n"
    "    local id = ARGV[j]\n"
    "    local k = tkey(id)\n"
    "    redis.call('HSET', k, 'state', 'assigned', 'version', ARGV[j + 1], 'envelope', "
    "ARGV[j + 2], 'matchId', mid, 'endedAt', fmt(at), 'graceAt', '0')\n"
    "    local a = redis.call('HGETALL', k)\n"
    "    finalize(id, tomap(a), at)\n"
    "    count('queued', 'assigned')\n"
    "    redis.call('PUBLISH', P..'matchmaking:assigned', '{\"ticketId\":'..cjson.encode(id).."
    "',\"envelope\":'..ARGV[j + 2]..'}')\n"
    "    out[i] = a end\n"
    "  return {'OK', out} end\n"
    "local res, b = {}, 7\n"
    "for m = 1, tonumber(ARGV[6]) do\n"
    "  res[m] = assign(b)\n"
    "  b = b + 3 + 3 * tonumber(ARGV[b]) end\n"
    "return res\n";

/* ARGV[6]: batch size. Returns the tickets it ended (HGETALL arrays). */
static const char LUA_SWEEP[] = LUA_PRELUDE
    "local ids = redis.call('ZRANGEBYSCORE', DL, '-inf', NOW, 'LIMIT', 0, ARGV[6])\n"
    "local changed = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local k = tkey(id)\n"
    "  local a = redis.call('HGETALL', k)\n"
    "  if #a == 0 then redis.call('ZREM', DL, id)\n"
    "  else\n"
    "    local m = tomap(a)\n"
    "    if m.state == 'queued' then\n"
    "      local exp, g, w = tonumber(m.expiresAt), tonumber(m.graceAt), tonumber(m.watchers)\n"
    "      if exp <= NOW then end_ticket(id, m, 'expired')\n"
    "        table.insert(changed, redis.call('HGETALL', k))\n"
    "      elseif g > 0 and g <= NOW and w == 0 then end_ticket(id, m, 'cancelled')\n"
    "        table.insert(changed, redis.call('HGETALL', k))\n"
    "      else\n"
    "        local d = exp\n"
    "        if g > 0 and w == 0 and g < d then d = g end\n"
    "        redis.call('ZADD', DL, d, id) end\n"
    "    else\n"
    "      local fa = tonumber(m.endedAt) + RET\n"
    "      if fa <= NOW then\n"
    "        redis.call('DEL', k)\n"
    "        local ik = idemkey(m)\n"
    "        if ik and redis.call('GET', ik) == id then redis.call('DEL', ik) end\n"
    "        redis.call('ZREM', DL, id)\n"
    "        count(m.state, nil)\n"
    "      else redis.call('ZADD', DL, fa, id) end end end end\n"
    "return changed\n";

/* KEYS[1] lease; ARGV[1] consumer, ARGV[2] lease ms. 2: acquired, 1:
 * renewed (already ours), 0: held by another worker. */
static const char LUA_LEASE[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == false then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end\n"
    "if v == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end\n"
    "return 0\n";

/* KEYS[1] queue zset; ARGV[1] prefix, ARGV[2] min score, ARGV[3] count.
 * Returns {id, score, HGETALL} triples, oldest first. */
static const char LUA_PAGE[] =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf', 'WITHSCORES', "
    "'LIMIT', 0, ARGV[3])\n"
    "local out = {}\n"
    "for i = 1, #ids, 2 do\n"
    "  table.insert(out, {ids[i], ids[i + 1], redis.call('HGETALL', ARGV[1]..'mw:ticket:'.."
    "ids[i])}) end\n"
    "return out\n";

/* ---- State ----------------------------------------------------------------- */

/* The scripts, by id: text, and the SHA1 that SCRIPT LOAD answered. */
enum script_id {
    SC_CREATE = 0,
    SC_CANCEL,
    SC_ATTACH,
    SC_DETACH,
    SC_ASSIGN,
    SC_SWEEP,
    SC_LEASE,
    SC_PAGE,
    SC_COUNT
};

static const char *const script_text[SC_COUNT] = {
    [SC_CREATE] = LUA_CREATE, [SC_CANCEL] = LUA_CANCEL, [SC_ATTACH] = LUA_ATTACH,
    [SC_DETACH] = LUA_DETACH, [SC_ASSIGN] = LUA_ASSIGN, [SC_SWEEP] = LUA_SWEEP,
    [SC_LEASE] = LUA_LEASE,   [SC_PAGE] = LUA_PAGE,
};

struct tsr;

struct script {
    struct tsr *s;
    char sha[41];
    bool loaded;  /* sha valid and (as far as we know) in Redis' script cache */
    bool loading; /* a SCRIPT LOAD is in flight */
};

enum feed_state {
    F_OFF = 0, /* no subscriber, or the feed connection is down */
    F_LEASE,   /* lease script in flight */
    F_STANDBY, /* another worker holds the lease; timer armed */
    F_CLAIM,   /* XAUTOCLAIM in flight */
    F_REBUILD, /* a page of mw:queue in flight */
    F_READ,    /* XREADGROUP in flight */
};

struct tsr {
    struct mw_ticket_store *self; /* the owner's struct (on_ended); must not move */
    struct ev_loop *loop;
    struct mw_ticket_store_config cfg;
    struct mw_redis_opts opts;
    char consumer[64];
    char origin[33]; /* random hex: this instance's ended notices */
    mw_random_fn rnd;
    void *rnd_ud;
    char k_lease[TSR_KEY_MAX], k_queue[TSR_KEY_MAX], k_stream[TSR_KEY_MAX];
    char k_counts[TSR_KEY_MAX], ch_ended[TSR_KEY_MAX];
    char s_maxlen[24], s_ret[24];

    struct mw_redis_conn *cmd; /* scripts and reads */
    struct script scripts[SC_COUNT];
    struct mw_redis_conn *sub;  /* SUBSCRIBE matchmaking:ended */
    struct mw_redis_conn *feed; /* lease + XREADGROUP, when a feed subscriber exists */
    bool subscribed;
    void (*on_resub)(void *ud);
    void *on_resub_ud;

    mw_feed_cb feed_cb;
    void *feed_ud;
    enum feed_state fstate;
    bool leader;
    double lease_sent_at; /* ev_now() when the lease script in flight was sent */
    double lease_at;      /* ev_now() when the last successful one was sent */
    ev_timer standby;
    double page_score;                  /* rebuild cursor: next page starts at this score */
    char (*ties)[MW_TICKET_ID_LEN + 1]; /* ids already delivered at page_score */
    size_t n_ties;

    uint64_t counts[4];
    bool counts_inflight;
    ev_timer counts_timer;
    bool sweep_inflight;
    size_t inflight;
    uint64_t noscript_retries;             /* calls sent again as EVAL after NOSCRIPT */
    struct batch *batch_head, *batch_tail; /* assigns not sent yet */
    ev_prepare batch_prepare;              /* sends them at the end of the turn */
    ev_idle batch_idle;                    /* keeps that turn's poll from blocking */
    bool closing;
    struct mw_ratelimit rl;
    /* Detaches owed to Redis (CHN-074): the ids of watched creates whose
     * reply was lost (the create may have run and counted a watcher nobody
     * holds) and of detaches that could not be sent (connection down). Sent
     * when the command connection is ready again. At most TSR_OWED_MAX,
     * allocated on first use; beyond, dropped and counted (those tickets
     * end by expiry instead of grace). */
    char (*owed)[MW_TICKET_ID_LEN + 1];
    size_t n_owed;
    uint64_t owed_dropped;
};

enum req_kind { R_TICKET = 0, R_CANCEL, R_ASSIGN, R_GET };

/* An assign accepted by tsr_assign(), waiting for the end of the loop turn
 * (then for its batch's reply): the match copied (it is borrowed by the
 * call), its envelopes in env[] back to back. */
struct pend {
    mw_assign_cb cb;
    void *ud;
    int64_t at;
    size_t n;
    char match_id[MW_MATCH_ID_LEN + 1];
    char ids[MW_MATCH_SIZE_MAX][MW_TICKET_ID_LEN + 1];
    uint64_t versions[MW_MATCH_SIZE_MAX];
    size_t env_len[MW_MATCH_SIZE_MAX];
    char env[];
};

/* The assigns made in one loop turn, sent as one script call (up to
 * TSR_BATCH_MAX matches; more make another batch). */
struct batch {
    struct tsr *s;
    struct batch *next;
    size_t k;
    struct pend *p[TSR_BATCH_MAX];
};

struct req {
    struct tsr *s;
    enum req_kind kind;
    mw_ticket_cb cb;
    mw_assign_cb acb;
    void *ud;
    /* A watched create: when its reply is lost, its id's detach is owed. */
    bool owe_if_lost;
    char id[MW_TICKET_ID_LEN + 1];
};

/* ---- Small helpers ---------------------------------------------------------- */

struct args {
    const char *v[TSR_ARGS_MAX];
    size_t l[TSR_ARGS_MAX];
    char num[TSR_ARGS_MAX][24];
    int n;
};

static void arg_str(struct args *a, const char *s)
{
    a->v[a->n] = s;
    a->l[a->n] = strlen(s);
    a->n++;
}

static void arg_int(struct args *a, int64_t v)
{
    int n = snprintf(a->num[a->n], sizeof(a->num[a->n]), "%" PRId64, v);

    a->v[a->n] = a->num[a->n];
    a->l[a->n] = n > 0 ? (size_t)n : 0;
    a->n++;
}

/* The arguments after the script: 0 prefix maxlen retention origin now ...
 * (script_send() puts EVALSHA <sha> or EVAL <text> in front). */
static void args_script(struct args *a, const struct tsr *s, int64_t now_ms)
{
    a->n = 0;
    arg_str(a, "0");
    arg_str(a, s->opts.prefix);
    arg_str(a, s->s_maxlen);
    arg_str(a, s->s_ret);
    arg_str(a, s->origin);
    arg_int(a, now_ms);
}

static bool str_is(const redisReply *r, const char *s)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

static int64_t reply_int(const redisReply *r, bool *ok)
{
    char buf[32], *end;
    long long v;

    if (r && r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(buf)) {
        *ok = false;
        return 0;
    }
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    v = strtoll(buf, &end, 10);
    if (*end != '\0')
        *ok = false;
    return v;
}

static void copy_field(char *dst, size_t cap, const redisReply *v, bool *ok)
{
    if (v->len >= cap) {
        *ok = false;
        return;
    }
    memcpy(dst, v->str, v->len);
    dst[v->len] = '\0';
}

/* Fills t (which owns nothing yet) from a flat field/value array (HGETALL,
 * or a stream entry). Unknown fields are ignored (CHN-040). Returns 0,
 * MW_ENOTFOUND (empty), MW_EIO (malformed) or MW_ENOMEM; on error t owns
 * nothing. */
static int ticket_from_fields(struct mw_ticket *t, redisReply *const *el, size_t n)
{
    bool ok = true, has_id = false, has_state = false;

    memset(t, 0, sizeof(*t));
    if (n == 0)
        return MW_ENOTFOUND;
    if (n % 2)
        return MW_EIO;
    for (size_t i = 0; i + 1 < n && ok; i += 2) {
        const redisReply *f = el[i], *v = el[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            ok = false;
            break;
        }
        if (str_is(f, "id")) {
            copy_field(t->id, sizeof(t->id), v, &ok);
            has_id = true;
        } else if (str_is(f, "queue")) {
            copy_field(t->queue, sizeof(t->queue), v, &ok);
        } else if (str_is(f, "playerId")) {
            copy_field(t->player_id, sizeof(t->player_id), v, &ok);
        } else if (str_is(f, "region")) {
            copy_field(t->region, sizeof(t->region), v, &ok);
        } else if (str_is(f, "idemKey")) {
            copy_field(t->idem_key, sizeof(t->idem_key), v, &ok);
            t->has_idem_key = true;
        } else if (str_is(f, "state")) {
            char st[16];

            copy_field(st, sizeof(st), v, &ok);
            if (ok && mw_ticket_state_parse(st, &t->state) != 0)
                ok = false;
            has_state = true;
        } else if (str_is(f, "version")) {
            int64_t x = reply_int(v, &ok);

            t->version = x > 0 ? (uint64_t)x : 0;
        } else if (str_is(f, "createdAt")) {
            t->created_ms = reply_int(v, &ok);
        } else if (str_is(f, "expiresAt")) {
            t->expires_ms = reply_int(v, &ok);
        } else if (str_is(f, "endedAt")) {
            t->ended_ms = reply_int(v, &ok);
        } else if (str_is(f, "attributes") && !t->attributes_json) {
            t->attributes_json = mw_strndup(v->str, v->len);
            if (!t->attributes_json)
                goto out_nomem;
        } else if (str_is(f, "envelope") && !t->assigned_envelope) {
            t->assigned_envelope = mw_strndup(v->str, v->len);
            if (!t->assigned_envelope)
                goto out_nomem;
            t->assigned_envelope_len = v->len;
        }
    }
    if (!ok || !has_id || !has_state || t->version == 0) {
        mw_ticket_clear(t);
        memset(t, 0, sizeof(*t));
        return MW_EIO;
    }
    return 0;
out_nomem:
    mw_ticket_clear(t);
    memset(t, 0, sizeof(*t));
    return MW_ENOMEM;
}

static int ticket_from_reply(struct mw_ticket *t, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return MW_EIO;
    return ticket_from_fields(t, r->element, r->elements);
}

static int64_t loop_ms(const struct tsr *s)
{
    return (int64_t)(ev_now(s->loop) * 1000.0);
}

/* Status for a reply that is not what we expected. */
static int reply_failure(struct tsr *s, const redisReply *r, const char *what)
{
    if (!r)
        return s->closing ? MW_ECLOSED : MW_EUNAVAIL;
    if (mw_ratelimit_allow(&s->rl, loop_ms(s)))
        mw_log(MW_LOG_WARN, "ticket store %s: unexpected reply%s%s", what,
               r->type == REDIS_REPLY_ERROR ? ": " : "",
               r->type == REDIS_REPLY_ERROR ? r->str : "");
    return r->type == REDIS_REPLY_ERROR ? MW_EUNAVAIL : MW_EIO;
}

static void call_ended(struct tsr *s, const struct mw_ticket *t)
{
    if (!s->closing && s->self->on_ended)
        s->self->on_ended(s->self->on_ended_ud, t);
}

/* ---- Scripts: EVALSHA, SCRIPT LOAD, NOSCRIPT fallback ---------------------- */

/* A script call in flight: forwards the reply to cb(ac, reply, priv), except
 * a NOSCRIPT error to an EVALSHA, which it answers by sending the same call
 * again as EVAL (once) on the same connection. */
struct call {
    struct tsr *s;
    enum script_id id;
    redisCallbackFn *cb;
    void *priv;
    char *cmd; /* the EVALSHA command as sent (RESP), for the fallback; NULL after */
    size_t len;
};

static void on_load_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct script *sc = privdata;
    redisReply *reply = r;

    (void)ac;
    sc->loading = false;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(sc->sha, reply->str, 40);
        sc->sha[40] = '\0';
        sc->loaded = true;
    } else if (reply) {
        reply_failure(sc->s, reply, "script load");
    }
}

/* Sends SCRIPT LOAD for every script not loaded (nor loading) on the
 * command connection, when it is ready. Calls sent before the answer use
 * EVAL; the command connection answers in order, so every call sent on it
 * after this one finds the scripts loaded. */
static void scripts_load(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);

    for (int i = 0; ac && i < SC_COUNT; i++) {
        struct script *sc = &s->scripts[i];

        if (sc->loaded || sc->loading)
            continue;
        if (redisAsyncCommand(ac, on_load_reply, sc, "SCRIPT LOAD %s", script_text[i]) == REDIS_OK)
            sc->loading = true;
    }
}

/* Redis' script cache lost our scripts (SCRIPT FLUSH, a restart): EVAL
 * until they are loaded again. */
static void scripts_forget(struct tsr *s)
{
    for (int i = 0; i < SC_COUNT; i++)
        s->scripts[i].loaded = false;
}

/* The EVAL form of an EVALSHA command c[0..len): the same arguments after
 * the script. Returns a buffer (mw_free) and its length in *out_len, or
 * NULL (out of memory, or not an EVALSHA command as script_send makes it). */
static char *eval_from_evalsha(const char *c, size_t len, const char *text, size_t *out_len)
{
    static const char head[] = "$7\r\nEVALSHA\r\n$40\r\n";
    const char *eol = memchr(c, '\n', len);
    size_t hdr, skip, tlen = strlen(text), cap;
    char num[24], *out;
    int nn;

    if (c[0] != '*' || !eol)
        return NULL;
    hdr = (size_t)(eol - c) + 1;
    skip = hdr + sizeof(head) - 1 + 40 + 2;
    if (len < skip || memcmp(c + hdr, head, sizeof(head) - 1) != 0)
        return NULL;
    nn = snprintf(num, sizeof(num), "$%zu\r\n", tlen);
    if (nn <= 0 || (size_t)nn >= sizeof(num))
        return NULL;
    cap = hdr + 10 + (size_t)nn + tlen + 2 + (len - skip);
    out = mw_malloc(cap);
    if (!out)
        return NULL;
    memcpy(out, c, hdr);
    memcpy(out + hdr, "$4\r\nEVAL\r\n", 10);
    memcpy(out + hdr + 10, num, (size_t)nn);
    memcpy(out + hdr + 10 + nn, text, tlen);
    memcpy(out + hdr + 10 + nn + tlen, "\r\n", 2);
    memcpy(out + hdr + 12 + nn + tlen, c + skip, len - skip);
    *out_len = cap;
    return out;
}

static void on_call_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct call *call = privdata;
    struct tsr *s = call->s;
    redisReply *reply = r;

    if (reply && reply->type == REDIS_REPLY_ERROR && call->cmd && !s->closing &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        size_t len = 0;
        char *eval = eval_from_evalsha(call->cmd, call->len, script_text[call->id], &len);

        scripts_forget(s);
        scripts_load(s);
        if (eval) {
            int rc = redisAsyncFormattedCommand(ac, on_call_reply, call, eval, len);

            mw_free(eval);
            if (rc == REDIS_OK) {
                s->noscript_retries++;
                redisFreeCommand(call->cmd);
                call->cmd = NULL;
                return; /* the EVAL's reply comes to this function again */
            }
        }
    }
    call->cb(ac, r, call->priv);
    redisFreeCommand(call->cmd);
    mw_free(call);
}

/* Sends script id with the arguments argv[0..argc) that follow the script
 * (numkeys first) on ac: EVALSHA when the script is loaded, else EVAL.
 * cb(ac, reply, priv) gets the reply (NULL when the connection drops).
 * Returns 0, MW_ENOMEM or MW_EUNAVAIL (cb then never called). */
static int script_send(struct tsr *s, redisAsyncContext *ac, enum script_id id, int argc,
                       const char *const *argv, const size_t *lens, redisCallbackFn *cb, void *priv)
{
    const char *sv[TSR_ARGS_MAX + 2], **v = sv;
    size_t sl[TSR_ARGS_MAX + 2], *l = sl;
    const struct script *sc = &s->scripts[id];
    struct call *call;
    char *cmd = NULL;
    int len;

    if (argc < 0)
        return MW_EINVAL;
    if (argc > TSR_ARGS_MAX) { /* a batch of assigns */
        v = mw_malloc(((size_t)argc + 2) * sizeof(*v));
        l = mw_malloc(((size_t)argc + 2) * sizeof(*l));
        if (!v || !l) {
            mw_free(v);
            mw_free(l);
            return MW_ENOMEM;
        }
    }
    v[0] = sc->loaded ? "EVALSHA" : "EVAL";
    v[1] = sc->loaded ? sc->sha : script_text[id];
    l[0] = strlen(v[0]);
    l[1] = strlen(v[1]);
    for (int i = 0; i < argc; i++) {
        v[2 + i] = argv[i];
        l[2 + i] = lens[i];
    }
    call = mw_malloc(sizeof(*call));
    len = call ? redisFormatCommandArgv(&cmd, argc + 2, v, l) : -1;
    if (v != sv) {
        mw_free(v);
        mw_free(l);
    }
    if (len < 0) {
        mw_free(call);
        return MW_ENOMEM;
    }
    *call = (struct call){.s = s, .id = id, .cb = cb, .priv = priv, .cmd = cmd, .len = (size_t)len};
    if (redisAsyncFormattedCommand(ac, on_call_reply, call, cmd, (size_t)len) != REDIS_OK) {
        redisFreeCommand(cmd);
        mw_free(call);
        return MW_EUNAVAIL;
    }
    if (!sc->loaded) { /* sent as EVAL: nothing to fall back to */
        redisFreeCommand(call->cmd);
        call->cmd = NULL;
    }
    return 0;
}

static int owe_detach(struct tsr *s, const char *ticket_id);
static void owed_flush(struct tsr *s);

static void on_cmd_ready(void *ud, struct mw_redis_conn *c)
{
    struct tsr *s = ud;

    (void)c;
    /* A new connection may reach a new server (restart): load again. The
     * loads go first, before any call this connection sends. */
    for (int i = 0; i < SC_COUNT; i++)
        s->scripts[i].loading = false; /* the lost connection's loads got NULL replies */
    scripts_forget(s);
    scripts_load(s);
    owed_flush(s);
}

/* ---- Request plumbing ------------------------------------------------------- */

static void on_script_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Sends a request: script `script` with the arguments a (args_script), or
 * a plain command a when script is SC_COUNT. */
static int send_req(struct tsr *s, enum script_id script, struct args *a, enum req_kind kind,
                    mw_ticket_cb cb, mw_assign_cb acb, void *ud, const char *owe_id)
{
    int rc;

    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    struct req *q;

    if (s->closing)
        return MW_ECLOSED;
    if (!ac)
        return MW_EUNAVAIL;
    if (s->inflight >= TSR_MAX_INFLIGHT)
        return MW_ELIMIT;
    q = mw_malloc(sizeof(*q));
    if (!q)
        return MW_ENOMEM;
    *q = (struct req){.s = s, .kind = kind, .cb = cb, .acb = acb, .ud = ud};
    if (owe_id) {
        q->owe_if_lost = true;
        memcpy(q->id, owe_id, sizeof(q->id));
    }
    if (script == SC_COUNT)
        rc = redisAsyncCommandArgv(ac, on_script_reply, q, a->n, a->v, a->l) == REDIS_OK
                 ? 0
                 : MW_EUNAVAIL;
    else
        rc = script_send(s, ac, script, a->n, a->v, a->l, on_script_reply, q);
    if (rc) {
        mw_free(q);
        return rc;
    }
    s->inflight++;
    return 0;
}

/* Calls q's ticket callback with status and the ticket parsed from tr (a
 * HGETALL array). replayed: create answered an existing ticket (MSG-026), so
 * the snapshot says so (ticket.h; HTTP answers 200, MSG-110). */
static void finish_ticket(struct req *q, int status, const redisReply *tr, bool replayed)
{
    struct mw_ticket t;
    int rc;

    if (status == 0 || status == MW_ESTATE) {
        rc = ticket_from_reply(&t, tr);
        if (rc == 0) {
            t.replayed = replayed;
            q->cb(q->ud, status, &t);
            if (q->kind == R_CANCEL && status == 0)
                call_ended(q->s, &t); /* after the canceller's callback */
            mw_ticket_clear(&t);
            return;
        }
        status = rc == MW_ENOTFOUND ? MW_ENOTFOUND : rc;
    }
    q->cb(q->ud, status, NULL);
}

static void finish_assign(struct req *q, const redisReply *r)
{
    struct mw_assign_result res = {0};
    struct mw_ticket ts[MW_MATCH_SIZE_MAX];
    size_t n = 0;
    int rc = 0;

    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        res.status = reply_failure(q->s, r, "assign");
        q->acb(q->ud, &res);
        return;
    }
    if (str_is(r->element[0], "STATE")) {
        bool ok = true;

        res.status = MW_ESTATE;
        res.failed = (size_t)reply_int(r->element[1], &ok);
        q->acb(q->ud, &res);
        return;
    }
    if (!str_is(r->element[0], "OK") || r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[1]->elements > MW_MATCH_SIZE_MAX) {
        res.status = reply_failure(q->s, r, "assign");
        q->acb(q->ud, &res);
        return;
    }
    for (n = 0; n < r->element[1]->elements; n++) {
        rc = ticket_from_reply(&ts[n], r->element[1]->element[n]);
        if (rc)
            break;
    }
    if (rc) {
        /* Committed in Redis, unreadable here: report the failure honestly. */
        res.status = rc == MW_ENOMEM ? MW_ENOMEM : MW_EIO;
    } else {
        res.n = n;
        res.tickets = ts;
        res.published = true; /* by the script, with the commit (CHN-062) */
    }
    q->acb(q->ud, &res);
    for (size_t i = 0; i < n; i++)
        mw_ticket_clear(&ts[i]);
}

static void on_script_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct req *q = privdata;
    struct tsr *s = q->s;
    redisReply *reply = r;

    (void)ac;
    s->inflight--;
    if (!reply && q->owe_if_lost && !s->closing)
        owe_detach(s, q->id); /* the create may have run (CHN-074) */
    if (q->kind == R_GET) {
        /* Plain HGETALL: an empty array is not_found. */
        if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 0)
            finish_ticket(q, MW_ENOTFOUND, NULL, false);
        else if (reply && reply->type == REDIS_REPLY_ARRAY)
            finish_ticket(q, 0, reply, false);
        else
            finish_ticket(q, reply_failure(s, reply, "get"), NULL, false);
        goto out;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        finish_ticket(q, reply_failure(s, reply, "script"), NULL, false);
        goto out;
    }
    if (str_is(reply->element[0], "NOTFOUND"))
        finish_ticket(q, MW_ENOTFOUND, NULL, false);
    else if (str_is(reply->element[0], "LIMIT"))
        finish_ticket(q, MW_ELIMIT, NULL, false);
    else if (str_is(reply->element[0], "DUPID"))
        finish_ticket(q, MW_EIO, NULL, false); /* a repeating random source */
    else if (reply->elements >= 2 && str_is(reply->element[0], "STATE"))
        finish_ticket(q, MW_ESTATE, reply->element[1], false);
    else if (reply->elements >= 2)
        /* OK, CREATED, or EXISTING: create's idempotency hit (MSG-026). */
        finish_ticket(q, 0, reply->element[1], str_is(reply->element[0], "EXISTING"));
    else
        finish_ticket(q, reply_failure(s, reply, "script"), NULL, false);
out:
    mw_free(q);
}

/* ---- Operations ------------------------------------------------------------- */

static int tsr_create(void *impl, const struct mw_enqueue_req *req, int64_t now_ms, mw_ticket_cb cb,
                      void *ud)
{
    struct tsr *s = impl;
    struct args a;
    char id[MW_TICKET_ID_LEN + 1];
    int rc;

    if (!req || !cb)
        return MW_EINVAL;
    if (s->closing)
        return MW_ECLOSED;
    if (!mw_redis_conn_ready(s->cmd))
        return MW_EUNAVAIL;
    rc = mw_uuid4(s->rnd, s->rnd_ud, id);
    if (rc)
        return rc;
    args_script(&a, s, now_ms);
    arg_str(&a, id);
    arg_str(&a, req->queue);
    arg_str(&a, req->player_id);
    arg_str(&a, req->region);
    arg_str(&a, req->has_idem_key ? "1" : "0");
    arg_str(&a, req->has_idem_key ? req->idem_key : "");
    arg_int(&a, now_ms + s->cfg.ticket_ttl_ms);
    arg_str(&a, req->attributes_json ? "1" : "0");
    arg_str(&a, req->attributes_json ? req->attributes_json : "");
    arg_str(&a, req->watched ? "1" : "0");
    arg_int(&a, s->cfg.ticket_ttl_ms + s->cfg.assigned_ttl_ms);
    arg_int(&a, (int64_t)s->cfg.max_tickets);
    return send_req(s, SC_CREATE, &a, R_TICKET, cb, NULL, ud, req->watched ? id : NULL);
}

static int tsr_get(void *impl, const char *ticket_id, mw_ticket_cb cb, void *ud)
{
    struct tsr *s = impl;
    struct args a = {0};
    char key[TSR_KEY_MAX + MW_TICKET_ID_LEN + 1];

    if (!ticket_id || !cb)
        return MW_EINVAL;
    snprintf(key, sizeof(key), "%smw:ticket:%.36s", s->opts.prefix, ticket_id);
    arg_str(&a, "HGETALL");
    arg_str(&a, key);
    return send_req(s, SC_COUNT, &a, R_GET, cb, NULL, ud, NULL);
}

static int simple_script(struct tsr *s, enum script_id script, enum req_kind kind,
                         const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    struct args a;

    if (!ticket_id || !cb)
        return MW_EINVAL;
    if (strlen(ticket_id) > MW_TICKET_ID_LEN)
        ticket_id = "-"; /* never a key: not_found */
    args_script(&a, s, now_ms);
    arg_str(&a, ticket_id);
    return send_req(s, script, &a, kind, cb, NULL, ud, NULL);
}

static int tsr_cancel(void *impl, const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    return simple_script(impl, SC_CANCEL, R_CANCEL, ticket_id, now_ms, cb, ud);
}

static int tsr_attach(void *impl, const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    return simple_script(impl, SC_ATTACH, R_TICKET, ticket_id, now_ms, cb, ud);
}

static void on_ignored_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;

    (void)ac;
    s->inflight--;
    if (reply && reply->type == REDIS_REPLY_ERROR && mw_ratelimit_allow(&s->rl, loop_ms(s)))
        mw_log(MW_LOG_WARN, "ticket store: %s", reply->str);
}

/* Sends the detach script for ticket_id; 0 or an error. */
static int detach_send(struct tsr *s, redisAsyncContext *ac, const char *ticket_id, int64_t now_ms)
{
    struct args a;
    int rc;

    args_script(&a, s, now_ms);
    arg_str(&a, ticket_id);
    arg_int(&a, s->cfg.grace_ms);
    rc = script_send(s, ac, SC_DETACH, a.n, a.v, a.l, on_ignored_reply, s);
    if (rc)
        return rc;
    s->inflight++;
    return 0;
}

/* A detach Redis must get once it can (see struct tsr's owed). Returns 0, or
 * MW_ELIMIT / MW_ENOMEM when it was dropped (counted). */
static int owe_detach(struct tsr *s, const char *ticket_id)
{
    if (!s->owed)
        s->owed = mw_malloc(TSR_OWED_MAX * sizeof(*s->owed));
    if (!s->owed || s->n_owed == TSR_OWED_MAX) {
        s->owed_dropped++;
        if (mw_ratelimit_allow(&s->rl, loop_ms(s)))
            mw_log(MW_LOG_WARN,
                   "ticket store: %" PRIu64 " detaches dropped (%zu owed); those tickets end "
                   "by expiry",
                   s->owed_dropped, s->n_owed);
        return s->owed ? MW_ELIMIT : MW_ENOMEM;
    }
    snprintf(s->owed[s->n_owed++], MW_TICKET_ID_LEN + 1, "%s", ticket_id);
    return 0;
}

/* The command connection is ready again: pays what is owed, at the current
 * time (the grace period starts now). What cannot be sent stays owed. */
static void owed_flush(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    size_t i = 0;

    while (ac && i < s->n_owed && detach_send(s, ac, s->owed[i], loop_ms(s)) == 0)
        i++;
    if (i == 0)
        return; /* also: owed may be NULL, and memmove(NULL, ...) is undefined */
    memmove(s->owed, s->owed + i, (s->n_owed - i) * sizeof(*s->owed));
    s->n_owed -= i;
}

static int tsr_detach(void *impl, const char *ticket_id, int64_t now_ms)
{
    struct tsr *s = impl;
    redisAsyncContext *ac;

    if (!ticket_id)
        return MW_EINVAL;
    if (s->closing)
        return MW_ECLOSED;
    if (strlen(ticket_id) > MW_TICKET_ID_LEN)
        return MW_ENOTFOUND;
    ac = mw_redis_conn_ctx(s->cmd);
    if (!ac || detach_send(s, ac, ticket_id, now_ms) != 0)
        return owe_detach(s, ticket_id); /* never lost quietly (CHN-074) */
    return 0;
}

/* ---- Assign: the matches of one loop turn in one script call (CHN-060) ----
 * tsr_assign() copies the match into the open batch; the batch goes out at
 * the end of the loop turn (ev_prepare; an ev_idle keeps the poll from
 * blocking when the assign came from another prepare callback), so the
 * matches a worker forms from one stream read cost Redis one EVALSHA, not
 * one each. Each match keeps its own compare-and-set and its own callback,
 * called in the order of the assign calls. */

static void batch_answer(struct tsr *s, struct pend *p, const redisReply *r)
{
    struct req q = {.s = s, .kind = R_ASSIGN, .acb = p->cb, .ud = p->ud};

    finish_assign(&q, r);
}

static void batch_fail(struct pend *p, int status)
{
    struct mw_assign_result res = {.status = status};

    p->cb(p->ud, &res);
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->k; i++)
        mw_free(b->p[i]);
    mw_free(b);
}

static void on_batch_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct batch *b = privdata;
    struct tsr *s = b->s;
    const redisReply *reply = r;
    bool each = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == b->k;

    (void)ac;
    s->inflight -= b->k;
    for (size_t i = 0; i < b->k; i++)
        batch_answer(s, b->p[i], each ? reply->element[i] : reply);
    batch_free(b);
}

/* A batch's script arguments: sized for the batch (struct args is for one
 * match). */
struct bargs {
    const char **v;
    size_t *l;
    char (*num)[24];
    int n;
    size_t ni;
};

static void barg(struct bargs *a, const char *str, size_t len)
{
    a->v[a->n] = str;
    a->l[a->n++] = len;
}

static void barg_int(struct bargs *a, int64_t x)
{
    int n = snprintf(a->num[a->ni], sizeof(a->num[a->ni]), "%" PRId64, x);

    barg(a, a->num[a->ni++], n > 0 ? (size_t)n : 0);
}

/* Sends batch b as one script call; 0, or an error (b untouched). */
static int batch_send(struct tsr *s, struct batch *b)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    size_t argc = 7, nums = 2;
    struct bargs a = {0};
    int rc = MW_ENOMEM;

    if (s->closing)
        return MW_ECLOSED;
    if (!ac)
        return MW_EUNAVAIL;
    for (size_t i = 0; i < b->k; i++) {
        argc += 3 + 3 * b->p[i]->n;
        nums += 2 + b->p[i]->n;
    }
    a.v = mw_malloc(argc * sizeof(*a.v));
    a.l = mw_malloc(argc * sizeof(*a.l));
    a.num = mw_malloc(nums * sizeof(*a.num));
    if (!a.v || !a.l || !a.num)
        goto out;
    /* As args_script(): numkeys, prefix, maxlen, retention, origin, now. */
    barg(&a, "0", 1);
    barg(&a, s->opts.prefix, strlen(s->opts.prefix));
    barg(&a, s->s_maxlen, strlen(s->s_maxlen));
    barg(&a, s->s_ret, strlen(s->s_ret));
    barg(&a, s->origin, strlen(s->origin));
    barg_int(&a, b->p[0]->at);
    barg_int(&a, (int64_t)b->k);
    for (size_t i = 0; i < b->k; i++) {
        const struct pend *p = b->p[i];
        size_t off = 0;

        barg_int(&a, (int64_t)p->n);
        barg(&a, p->match_id, strlen(p->match_id));
        barg_int(&a, p->at);
        for (size_t j = 0; j < p->n; j++) {
            barg(&a, p->ids[j], strlen(p->ids[j]));
            barg_int(&a, (int64_t)p->versions[j]);
            barg(&a, p->env + off, p->env_len[j]);
            off += p->env_len[j];
        }
    }
    rc = script_send(s, ac, SC_ASSIGN, a.n, a.v, a.l, on_batch_reply, b);
out:
    mw_free(a.v);
    mw_free(a.l);
    mw_free(a.num);
    return rc;
}

/* Sends every batch (end of the loop turn); a batch that cannot go out
 * fails each of its assigns (their callbacks run here, never inside the
 * assign call). */
static void batch_flush(struct tsr *s)
{
    struct batch *b = s->batch_head;

    ev_prepare_stop(s->loop, &s->batch_prepare);
    ev_idle_stop(s->loop, &s->batch_idle);
    s->batch_head = s->batch_tail = NULL;
    while (b) {
        struct batch *next = b->next;
        int rc = batch_send(s, b);

        if (rc) {
            s->inflight -= b->k;
            for (size_t i = 0; i < b->k; i++)
                batch_fail(b->p[i], rc);
            batch_free(b);
        }
        b = next;
    }
}

static void on_batch_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    batch_flush(w->data);
}

static void on_batch_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)revents;
    batch_flush(w->data);
}

static int tsr_assign(void *impl, const struct mw_match *m, mw_assign_cb cb, void *ud)
{
    struct tsr *s = impl;
    struct batch *b;
    struct pend *p;
    size_t total = 0, off = 0;

    if (!m || !cb || m->n == 0 || m->n > MW_MATCH_SIZE_MAX)
        return MW_EINVAL;
    for (size_t i = 0; i < m->n; i++) {
        if (!m->envelopes[i] || m->envelope_lens[i] == 0 || m->versions[i] < 2)
            return MW_EINVAL;
        total += m->envelope_lens[i];
    }
    if (s->closing)
        return MW_ECLOSED;
    if (!mw_redis_conn_ctx(s->cmd))
        return MW_EUNAVAIL;
    if (s->inflight >= TSR_MAX_INFLIGHT)
        return MW_ELIMIT;
    b = s->batch_tail;
    if (!b || b->k == TSR_BATCH_MAX) {
        b = mw_calloc(1, sizeof(*b));
        if (!b)
            return MW_ENOMEM;
        b->s = s;
    }
    p = mw_malloc(sizeof(*p) + total);
    if (!p) {
        if (b != s->batch_tail)
            mw_free(b);
        return MW_ENOMEM;
    }
    p->cb = cb;
    p->ud = ud;
    p->at = m->assigned_ms;
    p->n = m->n;
    memcpy(p->match_id, m->match_id, sizeof(p->match_id));
    p->match_id[MW_MATCH_ID_LEN] = '\0';
    for (size_t i = 0; i < m->n; i++) {
        memcpy(p->ids[i], m->ticket_ids[i], sizeof(p->ids[i]));
        p->ids[i][MW_TICKET_ID_LEN] = '\0';
        p->versions[i] = m->versions[i];
        p->env_len[i] = m->envelope_lens[i];
        memcpy(p->env + off, m->envelopes[i], m->envelope_lens[i]);
        off += m->envelope_lens[i];
    }
    if (b != s->batch_tail) {
        if (s->batch_tail)
            s->batch_tail->next = b;
        else
            s->batch_head = b;
        s->batch_tail = b;
    }
    b->p[b->k++] = p;
    s->inflight++;
    if (!ev_is_active(&s->batch_prepare)) {
        ev_prepare_start(s->loop, &s->batch_prepare);
        ev_idle_start(s->loop, &s->batch_idle);
    }
    return 0;
}

static void on_sweep_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;

    (void)ac;
    s->inflight--;
    s->sweep_inflight = false;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply)
            reply_failure(s, reply, "sweep");
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        struct mw_ticket t;

        if (ticket_from_reply(&t, reply->element[i]) == 0) {
            call_ended(s, &t);
            mw_ticket_clear(&t);
        }
    }
}

static int tsr_sweep(void *impl, int64_t now_ms)
{
    struct tsr *s = impl;
    redisAsyncContext *ac;
    struct args a;
    int rc;

    if (s->closing)
        return MW_ECLOSED;
    ac = mw_redis_conn_ctx(s->cmd);
    if (!ac)
        return MW_EUNAVAIL;
    if (s->sweep_inflight)
        return 0; /* the previous pass has not answered yet */
    args_script(&a, s, now_ms);
    arg_str(&a, TSR_SWEEP_BATCH);
    rc = script_send(s, ac, SC_SWEEP, a.n, a.v, a.l, on_sweep_reply, s);
    if (rc)
        return rc;
    s->inflight++;
    s->sweep_inflight = true;
    return 0;
}

static void tsr_counts(void *impl, uint64_t n[4])
{
    struct tsr *s = impl;

    memcpy(n, s->counts, sizeof(s->counts));
}

static int tsr_ready(void *impl, char *reason, size_t reason_len)
{
    struct tsr *s = impl;
    const struct mw_redis_conn *bad = NULL;

    if (s->closing) {
        if (reason && reason_len)
            snprintf(reason, reason_len, "ticket store closing");
        return MW_ECLOSED;
    }
    if (!mw_redis_conn_ready(s->cmd))
        bad = s->cmd;
    else if (!mw_redis_conn_ready(s->sub))
        bad = s->sub;
    else if (s->feed && !mw_redis_conn_ready(s->feed))
        bad = s->feed;
    if (!bad)
        return 0;
    if (reason && reason_len)
        snprintf(reason, reason_len, "%s", mw_redis_conn_error(bad));
    return MW_EUNAVAIL;
}

/* ---- Counts ----------------------------------------------------------------- */

static void on_counts_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;

    (void)ac;
    s->counts_inflight = false;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)
        return;
    for (size_t i = 0; i < 4; i++) {
        bool ok = true;
        int64_t v =
            reply->element[i]->type == REDIS_REPLY_NIL ? 0 : reply_int(reply->element[i], &ok);

        s->counts[i] = ok && v > 0 ? (uint64_t)v : 0;
    }
}

static void on_counts_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tsr *s = w->data;
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);

    (void)loop;
    (void)revents;
    if (!ac || s->counts_inflight)
        return;
    /* Field order = enum mw_ticket_state. */
    if (redisAsyncCommand(ac, on_counts_reply, s, "HMGET %s queued assigned cancelled expired",
                          s->k_counts) == REDIS_OK)
        s->counts_inflight = true;
}

/* ---- Ended notices (CHN-031) ------------------------------------------------ */

static void on_ended_notice(struct tsr *s, const char *buf, size_t len)
{
    struct mw_parse_error pe;
    cJSON *root = NULL;
    const cJSON *id, *st, *ver, *origin;
    struct mw_ticket t;

    if (mw_json_parse(buf, len, 4, &root, &pe) != 0)
        goto bad;
    id = mw_json_get(root, "ticketId");
    st = mw_json_get(root, "state");
    ver = mw_json_get(root, "version");
    origin = mw_json_get(root, "origin");
    if (cJSON_IsString(origin) && strcmp(origin->valuestring, s->origin) == 0)
        goto out; /* ours: on_ended was called locally */
    memset(&t, 0, sizeof(t));
    if (!cJSON_IsString(id) || !mw_uuid4_valid(id->valuestring, strlen(id->valuestring)) ||
        !cJSON_IsString(st) || mw_ticket_state_parse(st->valuestring, &t.state) != 0 ||
        (t.state != MW_TICKET_CANCELLED && t.state != MW_TICKET_EXPIRED) || !cJSON_IsNumber(ver) ||
        ver->valuedouble < 2 || ver->valuedouble > 9007199254740991.0 ||
        ver->valuedouble != (double)(uint64_t)ver->valuedouble)
        goto bad;
    memcpy(t.id, id->valuestring, MW_TICKET_ID_LEN + 1);
    t.version = (uint64_t)ver->valuedouble;
    call_ended(s, &t);
    goto out;
bad:
    if (mw_ratelimit_allow(&s->rl, loop_ms(s)))
        mw_log(MW_LOG_WARN, "channel %s: dropped a malformed %zu-byte notice", s->ch_ended, len);
out:
    cJSON_Delete(root);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;

    (void)ac;
    if (!reply) {
        s->subscribed = false;
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    if (str_is(reply->element[0], "message") && reply->element[2]->type == REDIS_REPLY_STRING) {
        if (!s->closing)
            on_ended_notice(s, reply->element[2]->str, reply->element[2]->len);
    } else if (str_is(reply->element[0], "subscribe")) {
        s->subscribed = true;
        if (s->on_resub && !s->closing)
            s->on_resub(s->on_resub_ud);
    }
}

static void on_sub_ready(void *ud, struct mw_redis_conn *c)
{
    struct tsr *s = ud;
    redisAsyncContext *ac = mw_redis_conn_ctx(c);

    s->subscribed = false;
    if (!ac || redisAsyncCommand(ac, on_sub_reply, s, "SUBSCRIBE %s", s->ch_ended) != REDIS_OK)
        mw_log(MW_LOG_WARN, "ticket store: cannot send SUBSCRIBE %s", s->ch_ended);
}

/* ---- Feed: lease, claim, rebuild, read (CHN-080..083) ----------------------- */

static void feed_lease(struct tsr *s);
static void feed_read(struct tsr *s);
static void feed_page(struct tsr *s);
static void feed_claim(struct tsr *s, const char *cursor);

/* Hands one stream entry ([id, [field, value, ...]]) to the subscriber.
 * Entries carry the ticket's fields (queued) or id, state and version
 * (removed), so no read of the hash is needed. */
static void feed_entry(struct tsr *s, const redisReply *e)
{
    const redisReply *fields;
    struct mw_ticket t;
    bool removed = false;

    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2)
        return; /* XAUTOCLAIM: an entry trimmed away */
    fields = e->element[1];
    if (fields->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (str_is(fields->element[i], "op"))
            removed = str_is(fields->element[i + 1], "removed");
    if (ticket_from_fields(&t, fields->element, fields->elements) != 0) {
        if (mw_ratelimit_allow(&s->rl, loop_ms(s)))
            mw_log(MW_LOG_WARN, "ticket store: skipped a malformed stream entry");
        return;
    }
    if (s->feed_cb && !s->closing)
        s->feed_cb(s->feed_ud, removed ? MW_FEED_REMOVED : MW_FEED_QUEUED, &t);
    mw_ticket_clear(&t);
}

/* Delivers every entry of a reply array and XACKs them in one command. */
static void feed_entries_and_ack(struct tsr *s, redisAsyncContext *ac, const redisReply *entries)
{
    const char *argv[3 + TSR_PAGE];
    size_t lens[3 + TSR_PAGE];
    int n = 0;

    if (!entries || entries->type != REDIS_REPLY_ARRAY)
        return;
    argv[n] = "XACK";
    lens[n++] = 4;
    argv[n] = s->k_stream;
    lens[n++] = strlen(s->k_stream);
    argv[n] = TSR_GROUP;
    lens[n++] = strlen(TSR_GROUP);
    for (size_t i = 0; i < entries->elements && n < 3 + TSR_PAGE; i++) {
        const redisReply *e = entries->element[i];

        feed_entry(s, e);
        if (e && e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
            e->element[0]->type == REDIS_REPLY_STRING) {
            argv[n] = e->element[0]->str;
            lens[n++] = e->element[0]->len;
        }
    }
    if (n > 3)
        redisAsyncCommandArgv(ac, NULL, NULL, n, argv, lens);
}

/* Whether the holder renews its lease before the next read: not yet leader,
 * TSR_LEASE_RENEW_S or more since the last successful renewal, or the clock
 * went back (ev_now() is wall-clock time). A read blocks at most
 * TSR_READ_BLOCK_MS, so the lease is renewed at least every 2 s, far inside
 * its 10 s TTL, while a busy worker no longer runs the lease script before
 * each of its many reads. */
static bool lease_due(const struct tsr *s)
{
    double now = ev_now(s->loop);

    return !s->leader || now - s->lease_at >= TSR_LEASE_RENEW_S || now < s->lease_at;
}

static void on_read_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;

    if (!reply || s->closing || s->fstate != F_READ)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: Redis lost its data (restart without persistence).
         * Start over: lease, group, rebuild. */
        mw_log(MW_LOG_WARN, "ticket store feed: %s; rebuilding", reply->str);
        s->leader = false;
        feed_lease(s);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *sr = reply->element[i];

            if (sr->type == REDIS_REPLY_ARRAY && sr->elements == 2)
                feed_entries_and_ack(s, ac, sr->element[1]);
        }
    }
    /* Renew the lease before the next read when it is due (CHN-082). */
    if (lease_due(s))
        feed_lease(s);
    else
        feed_read(s);
}

static void feed_read(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->feed);
    /* Blocks for less than the connection's command timeout (CHN-104). */
    long long block = mw_redis_conn_timeout_ms(s->feed) / 2;

    if (!ac)
        return;
    if (block > atoll(TSR_READ_BLOCK_MS))
        block = atoll(TSR_READ_BLOCK_MS);
    s->fstate = F_READ;
    if (redisAsyncCommand(ac, on_read_reply, s,
                          "XREADGROUP GROUP " TSR_GROUP " %s COUNT " TSR_READ_COUNT
                          " BLOCK %lld STREAMS %s >",
                          s->consumer, block, s->k_stream) != REDIS_OK)
        s->fstate = F_OFF;
}

static bool tie_seen(const struct tsr *s, const char *id, size_t len)
{
    for (size_t i = 0; i < s->n_ties; i++)
        if (strlen(s->ties[i]) == len && memcmp(s->ties[i], id, len) == 0)
            return true;
    return false;
}

static void on_page_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;
    size_t fresh = 0;

    (void)ac;
    if (!reply || s->closing || s->fstate != F_REBUILD)
        return;
    if (reply->type != REDIS_REPLY_ARRAY) {
        reply_failure(s, reply, "rebuild");
        feed_read(s);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        struct mw_ticket t;
        double score;
        char sc[64];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 3 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[1]->type != REDIS_REPLY_STRING || e->element[1]->len >= sizeof(sc))
            continue;
        memcpy(sc, e->element[1]->str, e->element[1]->len);
        sc[e->element[1]->len] = '\0';
        score = strtod(sc, NULL);
        if (score == s->page_score && tie_seen(s, e->element[0]->str, e->element[0]->len))
            continue;
        fresh++;
        if (score != s->page_score) {
            s->page_score = score;
            s->n_ties = 0;
        }
        if (s->n_ties < TSR_TIES_MAX && e->element[0]->len <= MW_TICKET_ID_LEN) {
            memcpy(s->ties[s->n_ties], e->element[0]->str, e->element[0]->len);
            s->ties[s->n_ties][e->element[0]->len] = '\0';
            s->n_ties++;
        }
        if (ticket_from_reply(&t, e->element[2]) == 0) {
            if (t.state == MW_TICKET_QUEUED && s->feed_cb)
                s->feed_cb(s->feed_ud, MW_FEED_QUEUED, &t);
            mw_ticket_clear(&t);
        }
    }
    if (fresh == 0 || s->n_ties >= TSR_TIES_MAX) {
        /* Done (or a pathological pile-up at one millisecond: move on). */
        if (fresh == 0) {
            s->n_ties = 0;
            feed_read(s);
            return;
        }
        s->page_score += 1.0;
        s->n_ties = 0;
    }
    feed_page(s);
}

static void feed_page(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->feed);
    char min[32], cnt[24];
    const char *v[5] = {"1", s->k_queue, s->opts.prefix, min, cnt};
    size_t l[5];

    if (!ac)
        return;
    s->fstate = F_REBUILD;
    snprintf(min, sizeof(min), "%.0f", s->page_score);
    snprintf(cnt, sizeof(cnt), "%zu", TSR_PAGE + s->n_ties);
    for (int i = 0; i < 5; i++)
        l[i] = strlen(v[i]);
    if (script_send(s, ac, SC_PAGE, 5, v, l, on_page_reply, s) != 0)
        s->fstate = F_OFF;
}

static void on_claim_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;
    char cursor[64];

    if (!reply || s->closing || s->fstate != F_CLAIM)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[0]->len >= sizeof(cursor)) {
        reply_failure(s, reply, "claim");
        goto rebuild;
    }
    feed_entries_and_ack(s, ac, reply->element[1]);
    memcpy(cursor, reply->element[0]->str, reply->element[0]->len);
    cursor[reply->element[0]->len] = '\0';
    if (strcmp(cursor, "0-0") != 0) {
        feed_claim(s, cursor);
        return;
    }
rebuild:
    s->page_score = 0;
    s->n_ties = 0;
    feed_page(s);
}

static void feed_claim(struct tsr *s, const char *cursor)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->feed);

    if (!ac)
        return;
    s->fstate = F_CLAIM;
    if (redisAsyncCommand(ac, on_claim_reply, s, "XAUTOCLAIM %s " TSR_GROUP " %s 0 %s COUNT 128",
                          s->k_stream, s->consumer, cursor) != REDIS_OK)
        s->fstate = F_OFF;
}

static void on_lease_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;
    bool was_leader = s->leader;

    if (!reply || s->closing || s->fstate != F_LEASE)
        return;
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer == 0) {
        if (reply->type != REDIS_REPLY_INTEGER)
            reply_failure(s, reply, "lease");
        if (was_leader)
            mw_log(MW_LOG_WARN, "ticket store feed: lost the worker lease");
        s->leader = false;
        s->fstate = F_STANDBY;
        ev_timer_set(&s->standby, TSR_STANDBY_S, 0.0);
        ev_timer_start(s->loop, &s->standby);
        return;
    }
    s->leader = true;
    s->lease_at = s->lease_sent_at;
    if (was_leader) {
        feed_read(s);
        return;
    }
    mw_log(MW_LOG_NOTICE, "ticket store feed: %s holds the worker lease", s->consumer);
    /* New leader: group (BUSYGROUP when it exists: ignored), claim what other
     * consumers left pending, rebuild from mw:queue, then read. */
    redisAsyncCommand(ac, NULL, NULL, "XGROUP CREATE %s " TSR_GROUP " $ MKSTREAM", s->k_stream);
    feed_claim(s, "0-0");
}

static void feed_lease(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->feed);
    char ms[24];
    const char *v[4] = {"1", s->k_lease, s->consumer, ms};
    size_t l[4];

    if (!ac || !s->feed_cb) {
        s->fstate = F_OFF;
        return;
    }
    s->fstate = F_LEASE;
    s->lease_sent_at = ev_now(s->loop);
    snprintf(ms, sizeof(ms), "%d", TSR_LEASE_MS);
    for (int i = 0; i < 4; i++)
        l[i] = strlen(v[i]);
    if (script_send(s, ac, SC_LEASE, 4, v, l, on_lease_reply, s) != 0)
        s->fstate = F_OFF;
}

static void on_standby_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tsr *s = w->data;

    (void)loop;
    (void)revents;
    if (s->fstate == F_STANDBY)
        feed_lease(s);
}

static void on_feed_ready(void *ud, struct mw_redis_conn *c)
{
    struct tsr *s = ud;

    (void)c;
    s->leader = false; /* re-check, re-claim and rebuild after any reconnect */
    feed_lease(s);
}

static void on_feed_lost(void *ud, struct mw_redis_conn *c)
{
    struct tsr *s = ud;

    (void)c;
    ev_timer_stop(s->loop, &s->standby);
    s->fstate = F_OFF;
    s->leader = false;
}

static int tsr_feed(void *impl, mw_feed_cb cb, void *ud)
{
    struct tsr *s = impl;

    if (!cb)
        return MW_EINVAL;
    if (s->closing)
        return MW_ECLOSED;
    if (s->feed_cb)
        return MW_EEXIST;
    s->ties = mw_calloc(TSR_TIES_MAX, sizeof(*s->ties));
    if (!s->ties)
        return MW_ENOMEM;
    s->feed = mw_redis_conn_new(s->loop, &s->opts, "feed", on_feed_ready, on_feed_lost, s);
    if (!s->feed) {
        mw_free(s->ties);
        s->ties = NULL;
        return MW_ENOMEM;
    }
    s->feed_cb = cb;
    s->feed_ud = ud;
    return 0;
}

/* ---- Lifetime --------------------------------------------------------------- */

/* Writes what the command connection still holds (the detaches of the
 * sessions closed at shutdown) before it is freed, which would drop it:
 * at most TSR_FLUSH_MS, blocking (teardown: the loop is done). */
static void flush_output(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    double until = ev_time() + TSR_FLUSH_MS / 1000.0;
    int done = 0;

    while (ac && !done && redisBufferWrite(&ac->c, &done) == REDIS_OK && !done) {
        struct pollfd pfd = {.fd = ac->c.fd, .events = POLLOUT};
        int left = (int)((until - ev_time()) * 1000.0);

        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
    }
}

static void tsr_destroy(void *impl)
{
    struct tsr *s = impl;

    if (!s)
        return;
    s->closing = true;
    ev_timer_stop(s->loop, &s->counts_timer);
    ev_timer_stop(s->loop, &s->standby);
    batch_flush(s); /* assigns not sent yet: MW_ECLOSED */
    flush_output(s);
    /* Pending callbacks run now with NULL replies: MW_ECLOSED (closing). */
    mw_redis_conn_free(s->feed);
    mw_redis_conn_free(s->sub);
    mw_redis_conn_free(s->cmd);
    mw_free(s->ties);
    mw_free(s->owed);
    mw_free(s);
}

static const struct mw_ticket_store_ops tsr_ops = {
    .create = tsr_create,
    .get = tsr_get,
    .cancel = tsr_cancel,
    .attach = tsr_attach,
    .detach = tsr_detach,
    .assign = tsr_assign,
    .feed = tsr_feed,
    .sweep = tsr_sweep,
    .counts = tsr_counts,
    .ready = tsr_ready,
    .destroy = tsr_destroy,
};

static bool key_name(char *out, const char *prefix, const char *name)
{
    int n = snprintf(out, TSR_KEY_MAX, "%s%s", prefix, name);

    return n > 0 && n < TSR_KEY_MAX;
}

int mw_ticket_store_redis_new(struct mw_ticket_store *out, const struct mw_ticket_store_config *cfg,
                              struct ev_loop *loop, const struct mw_redis_opts *o,
                              const char *consumer_name, mw_random_fn rnd, void *rnd_ud)
{
    struct tsr *s;
    unsigned char nonce[16];
    int rc = MW_ENOMEM;

    if (!out || !loop || !o || !rnd)
        return MW_EINVAL;
    s = mw_calloc(1, sizeof(*s));
    if (!s)
        return MW_ENOMEM;
    s->self = out;
    s->loop = loop;
    if (cfg)
        s->cfg = *cfg;
    if (s->cfg.ticket_ttl_ms <= 0)
        s->cfg.ticket_ttl_ms = TSR_DEFAULT_TTL_MS;
    if (s->cfg.assigned_ttl_ms <= 0)
        s->cfg.assigned_ttl_ms = TSR_DEFAULT_ATTL_MS;
    if (s->cfg.grace_ms <= 0)
        s->cfg.grace_ms = TSR_DEFAULT_GRACE_MS;
    if (s->cfg.max_tickets == 0)
        s->cfg.max_tickets = TSR_DEFAULT_MAX_TICKETS;
    s->opts = *o;
    s->opts.prefix[sizeof(s->opts.prefix) - 1] = '\0';
    s->rnd = rnd;
    s->rnd_ud = rnd_ud;
    rc = rnd(rnd_ud, nonce, sizeof(nonce));
    if (rc)
        goto out_free;
    for (size_t i = 0; i < sizeof(nonce); i++)
        snprintf(s->origin + 2 * i, 3, "%02x", nonce[i]);
    if (consumer_name && consumer_name[0])
        snprintf(s->consumer, sizeof(s->consumer), "%s", consumer_name);
    else
        snprintf(s->consumer, sizeof(s->consumer), "w-%.16s", s->origin);
    rc = MW_EINVAL;
    if (!key_name(s->k_lease, s->opts.prefix, "mw:worker:lease") ||
        !key_name(s->k_queue, s->opts.prefix, "mw:queue") ||
        !key_name(s->k_stream, s->opts.prefix, "mw:tickets") ||
        !key_name(s->k_counts, s->opts.prefix, "mw:counts") ||
        !key_name(s->ch_ended, s->opts.prefix, "matchmaking:ended"))
        goto out_free;
    snprintf(s->s_maxlen, sizeof(s->s_maxlen), "%zu", s->cfg.max_tickets);
    snprintf(s->s_ret, sizeof(s->s_ret), "%" PRId64, s->cfg.assigned_ttl_ms);
    mw_ratelimit_init(&s->rl, 5.0, 10.0);
    ev_timer_init(&s->standby, on_standby_timer, TSR_STANDBY_S, 0.0);
    s->standby.data = s;
    ev_timer_init(&s->counts_timer, on_counts_timer, 0.0, TSR_COUNTS_PERIOD_S);
    s->counts_timer.data = s;
    ev_prepare_init(&s->batch_prepare, on_batch_prepare);
    s->batch_prepare.data = s;
    ev_idle_init(&s->batch_idle, on_batch_idle);
    s->batch_idle.data = s;
    rc = MW_ENOMEM;
    for (int i = 0; i < SC_COUNT; i++)
        s->scripts[i].s = s;
    s->cmd = mw_redis_conn_new(loop, &s->opts, "store", on_cmd_ready, NULL, s);
    s->sub = mw_redis_conn_new(loop, &s->opts, "store-sub", on_sub_ready, NULL, s);
    if (!s->cmd || !s->sub)
        goto out_free_conns;
    ev_timer_start(loop, &s->counts_timer);
    out->ops = &tsr_ops;
    out->impl = s;
    out->on_ended = NULL;
    out->on_ended_ud = NULL;
    return 0;

out_free_conns:
    mw_redis_conn_free(s->sub);
    mw_redis_conn_free(s->cmd);
out_free:
    mw_free(s);
    return rc;
}

void mw_ticket_store_redis_on_resubscribed(struct mw_ticket_store *st, void (*cb)(void *ud),
                                           void *ud)
{
    struct tsr *s;

    if (!st || st->ops != &tsr_ops)
        return;
    s = st->impl;
    s->on_resub = cb;
    s->on_resub_ud = ud;
}
