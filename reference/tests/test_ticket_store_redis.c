/* Tests for what is particular to the Redis ticket store, against a real
 * redis-server: the data layout of spec/channel.md section 5 (hashes,
 * deadlines, TTLs, idempotency keys) across two store instances ("two
 * processes"), EVALSHA and NOSCRIPT, two workers racing on overlapping
 * matches (exactly one wins), ended notices across instances and the
 * resubscription hook, the create limit (CHN-051), the assign script's
 * publish (CHN-062), the creates of one loop turn in one call (CHN-050),
 * the feed (rebuild, stream read with NOACK, claims of what a layout-1
 * worker left pending, lease), Redis down at start and restarted mid-run.
 * The behaviour every backend shares is the contract suite's
 * (contract_ticket_store.h, run by contract_ticket_store_redis.c). */
#define _POSIX_C_SOURCE 200809L /* kill, nanosleep, clock_gettime (redis_testenv.h) */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "error.h"
#include "fake_random.h"
#include "log.h"
#include "redis_testenv.h"
#include "ticket_store_redis.h"

#define TTL   10000
#define ATTL  5000
#define GRACE 3000

struct fx;

struct cbrec {
    struct fx *fx;
    int calls;
    int status;
    bool has_t;
    struct mw_ticket t;
    int seq;
    size_t failed, n;
    bool published;
    struct mw_ticket at[MW_MATCH_SIZE_MAX];
};

struct feed_ev {
    enum mw_feed_event ev;
    char id[MW_TICKET_ID_LEN + 1];
    enum mw_ticket_state state;
    uint64_t version;
    int seq;
};

/* One store instance with what it observed. */
struct inst {
    struct fx *fx;
    struct mw_ticket_store st;
    struct fake_rng rng;
    struct feed_ev feed[512];
    size_t n_feed;
    struct feed_ev ended[64];
    size_t n_ended;
    int resub;
};

struct fx {
    struct ev_loop *loop;
    struct mwt_redis *r;
    struct inst a, b;
    int seq;
    int64_t t0;
};

static struct mwt_redis g_redis; /* started once per group (group state) */

static void cbrec_reset(struct cbrec *c)
{
    struct fx *fx = c->fx;

    mw_ticket_clear(&c->t);
    for (size_t i = 0; i < c->n; i++)
        mw_ticket_clear(&c->at[i]);
    memset(c, 0, sizeof(*c));
    c->fx = fx;
}

static void on_ticket(void *ud, int status, const struct mw_ticket *t)
{
    struct cbrec *c = ud;

    c->calls++;
    c->status = status;
    c->seq = ++c->fx->seq;
    mw_ticket_clear(&c->t);
    c->has_t = t != NULL;
    if (t)
        assert_int_equal(mw_ticket_copy(&c->t, t), 0);
}

static void on_assign(void *ud, const struct mw_assign_result *r)
{
    struct cbrec *c = ud;

    c->calls++;
    c->status = r->status;
    c->failed = r->failed;
    c->published = r->published;
    c->seq = ++c->fx->seq;
    for (size_t i = 0; i < c->n; i++)
        mw_ticket_clear(&c->at[i]);
    c->n = r->n;
    for (size_t i = 0; i < r->n; i++)
        assert_int_equal(mw_ticket_copy(&c->at[i], &r->tickets[i]), 0);
}

static void on_feed(void *ud, enum mw_feed_event ev, const struct mw_ticket *t)
{
    struct inst *in = ud;
    struct feed_ev *e;

    assert_true(in->n_feed < 512);
    e = &in->feed[in->n_feed++];
    e->ev = ev;
    memcpy(e->id, t->id, sizeof(e->id));
    e->state = t->state;
    e->version = t->version;
    e->seq = ++in->fx->seq;
}

static void on_ended(void *ud, const struct mw_ticket *t)
{
    struct inst *in = ud;
    struct feed_ev *e;

    assert_true(in->n_ended < 64);
    e = &in->ended[in->n_ended++];
    memcpy(e->id, t->id, sizeof(e->id));
    e->state = t->state;
    e->version = t->version;
    e->seq = ++in->fx->seq;
}

static void on_resub(void *ud)
{
    ((struct inst *)ud)->resub++;
}

static bool inst_ready(void *ud)
{
    struct inst *in = ud;

    return in->st.ops->ready(in->st.impl, NULL, 0) == 0 && in->resub >= 1;
}

static bool both_ready(void *ud)
{
    struct fx *fx = ud;

    return inst_ready(&fx->a) && inst_ready(&fx->b);
}

static int inst_make(struct fx *fx, struct inst *in, uint64_t seed, const char *consumer)
{
    struct mw_ticket_store_config cfg = {
        .ticket_ttl_ms = TTL, .assigned_ttl_ms = ATTL, .grace_ms = GRACE, .max_tickets = 0};
    struct mw_redis_opts o = mwt_opts(fx->r, "t:");
    struct mw_ticket_store_hooks h = {.on_ended = on_ended, .on_resubscribed = on_resub, .ud = in};

    in->fx = fx;
    in->rng.s = seed;
    if (mw_ticket_store_redis_new(&in->st, &cfg, &h, fx->loop, &o, consumer, fake_rng_fill,
                                  &in->rng) != 0)
        return -1;
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    mw_log_setup(NULL, NULL, MW_LOG_WARN);
    return mwt_redis_start(&g_redis) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    mwt_redis_stop(&g_redis, SIGTERM);
    return 0;
}

/* Ticket id's score in mw:deadlines (it must be there). */
static long long deadline(struct fx *fx, const char *id)
{
    redisReply *rep = mwt_cmd(fx->r, "ZSCORE t:mw:deadlines %s", id);
    long long v;

    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    v = atoll(rep->str);
    freeReplyObject(rep);
    return v;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    redisReply *rep;

    if (!fx)
        return -1;
    if (g_redis.pid <= 0 && mwt_redis_start(&g_redis) != 0)
        return -1;
    rep = mwt_cmd(&g_redis, "FLUSHALL");
    if (!rep)
        return -1;
    freeReplyObject(rep);
    fx->r = &g_redis;
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    fx->t0 = mwt_now_ms();
    if (inst_make(fx, &fx->a, 0x9e3779b97f4a7c15ULL, "wa") != 0 ||
        inst_make(fx, &fx->b, 0x1234567887654321ULL, "wb") != 0)
        return -1;
    if (!mwt_run_until(fx->loop, both_ready, fx, 3.0))
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    mw_ticket_store_destroy(&fx->a.st);
    mw_ticket_store_destroy(&fx->b.st);
    ev_loop_destroy(fx->loop);
    free(fx);
    return 0;
}

static bool called(void *ud)
{
    return ((struct cbrec *)ud)->calls > 0;
}

static void wait_cb(struct fx *fx, struct cbrec *c)
{
    assert_true(mwt_run_until(fx->loop, called, c, 3.0));
}

static struct mw_enqueue_req req_for(const char *player, const char *key, bool watched)
{
    struct mw_enqueue_req r;

    memset(&r, 0, sizeof(r));
    snprintf(r.queue, sizeof(r.queue), "duel");
    snprintf(r.player_id, sizeof(r.player_id), "%s", player);
    if (key) {
        snprintf(r.idem_key, sizeof(r.idem_key), "%s", key);
        r.has_idem_key = true;
    }
    r.watched = watched;
    return r;
}

static void create_ok(struct fx *fx, struct inst *in, const char *player, const char *key,
                      bool watched, int64_t now, char out[MW_TICKET_ID_LEN + 1])
{
    struct cbrec c = {.fx = fx};
    struct mw_enqueue_req r = req_for(player, key, watched);

    assert_int_equal(mw_ticket_store_create(&in->st, &r, now, on_ticket, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, 0);
    memcpy(out, c.t.id, MW_TICKET_ID_LEN + 1);
    cbrec_reset(&c);
}

static void get_ok(struct fx *fx, struct inst *in, const char *id, struct cbrec *c)
{
    cbrec_reset(c);
    assert_int_equal(mw_ticket_store_get(&in->st, id, on_ticket, c), 0);
    wait_cb(fx, c);
}

static void sweep_wait(struct fx *fx, struct inst *in, int64_t now)
{
    /* (Returns what earlier passes changed: the contract suite checks it.) */
    assert_true(mw_ticket_store_sweep(&in->st, now) >= 0);
    /* The pass answers on the command connection: a get issued after it
     * answers after it (one connection, in order). */
    {
        struct cbrec c = {.fx = fx};
        get_ok(fx, in, "00000000-0000-4000-8000-000000000000", &c);
        cbrec_reset(&c);
    }
}

static const char *const ENV = "{\"type\":\"match.assigned\",\"v\":1,\"data\":{}}";

static void fill_match(struct mw_match *m, int64_t at, size_t n, char ids[][MW_TICKET_ID_LEN + 1],
                       const uint64_t *versions)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->match_id, sizeof(m->match_id), "00000000-0000-4000-8000-000000000001");
    snprintf(m->connection, sizeof(m->connection), "gs1:7777");
    m->assigned_ms = at;
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        memcpy(m->ticket_ids[i], ids[i], MW_TICKET_ID_LEN + 1);
        snprintf(m->player_ids[i], sizeof(m->player_ids[i]), "p%zu", i);
        m->versions[i] = versions ? versions[i] : 2;
        m->envelopes[i] = ENV;
        m->envelope_lens[i] = strlen(ENV);
    }
}

/* ---- Waiting for events (never a fixed sleep: tests run on a loaded
 * machine, under ctest -j) ---------------------------------------------------- */

static bool b_counts_1_queued(void *ud)
{
    struct fx *fx = ud;
    uint64_t n[4];

    fx->b.st.ops->counts(fx->b.st.impl, n);
    return n[MW_TICKET_QUEUED] == 1;
}

/* ---- Tests ---------------------------------------------------------------- */

static void test_create_get_layout(void **state)
{
    struct fx *fx = *state;
    struct cbrec c = {.fx = fx};
    struct mw_enqueue_req r = req_for("player one", "k1", false);
    char attrs[] = "{\"region\":\"eu\",\"mmr\":1500}";
    redisReply *rep;
    uint64_t n[4];

    snprintf(r.region, sizeof(r.region), "eu");
    r.attributes_json = attrs;
    assert_int_equal(mw_ticket_store_create(&fx->a.st, &r, fx->t0, on_ticket, &c), 0);
    assert_int_equal(c.calls, 0); /* never before the call returns */
    wait_cb(fx, &c);
    assert_int_equal(c.status, 0);
    assert_true(mw_uuid4_valid(c.t.id, strlen(c.t.id)));
    assert_int_equal(c.t.state, MW_TICKET_QUEUED);
    assert_int_equal(c.t.version, 1);
    assert_int_equal(c.t.created_ms, fx->t0);
    assert_int_equal(c.t.expires_ms, fx->t0 + TTL);
    assert_string_equal(c.t.queue, "duel");
    assert_string_equal(c.t.player_id, "player one");
    assert_string_equal(c.t.region, "eu");
    assert_true(c.t.has_idem_key);
    assert_string_equal(c.t.attributes_json, attrs);

    /* Read back through the other instance. */
    {
        struct cbrec g = {.fx = fx};
        get_ok(fx, &fx->b, c.t.id, &g);
        assert_int_equal(g.status, 0);
        assert_string_equal(g.t.id, c.t.id);
        assert_int_equal(g.t.version, 1);
        assert_string_equal(g.t.attributes_json, attrs);
        get_ok(fx, &fx->b, "11111111-1111-4111-8111-111111111111", &g);
        assert_int_equal(g.status, MW_ENOTFOUND);
        assert_false(g.has_t);
        cbrec_reset(&g);
    }
    /* The documented layout (CHN-040, 5.1). */
    rep = mwt_cmd(fx->r, "HGET t:mw:ticket:%s watchers", c.t.id);
    assert_string_equal(rep->str, "0");
    freeReplyObject(rep);
    rep = mwt_cmd(fx->r, "GET %s", "t:mw:idem:10:player one:k1");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, c.t.id);
    freeReplyObject(rep);
    rep = mwt_cmd(fx->r, "PTTL t:mw:ticket:%s", c.t.id);
    assert_true(rep->integer > TTL && rep->integer <= TTL + ATTL);
    freeReplyObject(rep);
    assert_int_equal(deadline(fx, c.t.id), fx->t0 + TTL);
    rep = mwt_cmd(fx->r, "XLEN t:mw:tickets");
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    /* counts() refreshes from Redis every second. */
    assert_true(mwt_run_until(fx->loop, b_counts_1_queued, fx, 5.0));
    fx->b.st.ops->counts(fx->b.st.impl, n);
    assert_int_equal(n[MW_TICKET_QUEUED], 1);
    cbrec_reset(&c);
}

/* MSG-026 across instances: same player + key -> same ticket, whichever
 * instance; another player with the same key -> another ticket. */
static void test_idempotent_across_instances(void **state)
{
    struct fx *fx = *state;
    char id1[MW_TICKET_ID_LEN + 1], id2[MW_TICKET_ID_LEN + 1], id3[MW_TICKET_ID_LEN + 1];
    char id4[MW_TICKET_ID_LEN + 1];
    struct cbrec c1 = {.fx = fx}, c2 = {.fx = fx};
    struct mw_enqueue_req r = req_for("p:1", "key", false);

    create_ok(fx, &fx->a, "p:1", "key", false, fx->t0, id1);
    create_ok(fx, &fx->b, "p:1", "key", false, fx->t0 + 5, id2);
    assert_string_equal(id1, id2);
    create_ok(fx, &fx->b, "p:2", "key", false, fx->t0, id3);
    assert_string_not_equal(id1, id3);
    /* "p" + "1:key" must not collide with "p:1" + "key" (length prefix). */
    create_ok(fx, &fx->b, "p", "1:key", false, fx->t0, id4);
    assert_string_not_equal(id1, id4);
    /* Two instances at once, same key: one ticket. */
    r = req_for("racer", "k", false);
    assert_int_equal(mw_ticket_store_create(&fx->a.st, &r, fx->t0, on_ticket, &c1), 0);
    assert_int_equal(mw_ticket_store_create(&fx->b.st, &r, fx->t0, on_ticket, &c2), 0);
    wait_cb(fx, &c1);
    wait_cb(fx, &c2);
    assert_int_equal(c1.status, 0);
    assert_int_equal(c2.status, 0);
    assert_string_equal(c1.t.id, c2.t.id);
    /* After a cancel the key still returns the (now cancelled) ticket. */
    {
        struct cbrec c = {.fx = fx};
        assert_int_equal(mw_ticket_store_cancel(&fx->a.st, id1, fx->t0 + 10, on_ticket, &c), 0);
        wait_cb(fx, &c);
        cbrec_reset(&c);
        r = req_for("p:1", "key", false);
        assert_int_equal(mw_ticket_store_create(&fx->b.st, &r, fx->t0 + 20, on_ticket, &c), 0);
        wait_cb(fx, &c);
        assert_string_equal(c.t.id, id1);
        assert_int_equal(c.t.state, MW_TICKET_CANCELLED);
        assert_int_equal(c.t.version, 2);
        cbrec_reset(&c);
    }
    cbrec_reset(&c1);
    cbrec_reset(&c2);
}

/* The string value of field f of ticket id's hash (caller frees nothing:
 * copied into out). */
static void hget(struct fx *fx, const char *id, const char *f, char *out, size_t cap)
{
    redisReply *rep = mwt_cmd(fx->r, "HGET t:mw:ticket:%s %s", id, f);

    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    snprintf(out, cap, "%s", rep->str);
    freeReplyObject(rep);
}

static void create_rec(struct fx *fx, struct inst *in, const char *player, const char *key,
                       bool watched, int64_t now, struct cbrec *c)
{
    struct mw_enqueue_req r = req_for(player, key, watched);

    cbrec_reset(c);
    assert_int_equal(mw_ticket_store_create(&in->st, &r, now, on_ticket, c), 0);
    wait_cb(fx, c);
    assert_int_equal(c->status, 0);
    assert_true(c->has_t);
}

/* MSG-026/MSG-110: create says whether the idempotency rule answered an
 * existing ticket (t->replayed; HTTP answers 200 then, 201 otherwise), even
 * within the creating millisecond and from another instance. MSG-028: a
 * replay over a WebSocket (watched) counts a watcher and clears a grace
 * deadline like attach, and a replay of an assigned ticket carries its
 * envelope (the session pushes it after `enqueued`). */
static void test_create_replayed(void **state)
{
    struct fx *fx = *state;
    struct cbrec c = {.fx = fx}, g = {.fx = fx}, a = {.fx = fx};
    char id[MW_TICKET_ID_LEN + 1], v[64];
    struct mw_match m;
    char ids[1][MW_TICKET_ID_LEN + 1];

    create_rec(fx, &fx->a, "rp", "rk", true, fx->t0, &c);
    assert_false(c.t.replayed);
    memcpy(id, c.t.id, sizeof(id));
    hget(fx, id, "watchers", v, sizeof(v));
    assert_string_equal(v, "1");
    /* Same player and key, same instance, same millisecond: the same ticket,
     * replayed (created_ms alone could not tell). */
    create_rec(fx, &fx->a, "rp", "rk", true, fx->t0, &c);
    assert_true(c.t.replayed);
    assert_string_equal(c.t.id, id);
    assert_int_equal(c.t.created_ms, fx->t0);
    assert_int_equal(c.t.version, 1);
    hget(fx, id, "watchers", v, sizeof(v));
    assert_string_equal(v, "2"); /* a WebSocket replay watches */
    /* Another instance, over HTTP (not watched): replayed, no watcher. */
    create_rec(fx, &fx->b, "rp", "rk", false, fx->t0 + 1, &c);
    assert_true(c.t.replayed);
    assert_string_equal(c.t.id, id);
    hget(fx, id, "watchers", v, sizeof(v));
    assert_string_equal(v, "2");
    /* Another player with the same key, and no key at all: new tickets. */
    create_rec(fx, &fx->b, "rp2", "rk", false, fx->t0, &c);
    assert_false(c.t.replayed);
    assert_string_not_equal(c.t.id, id);
    create_rec(fx, &fx->a, "rp", NULL, false, fx->t0, &c);
    assert_false(c.t.replayed);
    create_rec(fx, &fx->a, "rp", NULL, false, fx->t0, &c);
    assert_false(c.t.replayed);
    /* Only create sets it: get and attach results never do. */
    get_ok(fx, &fx->a, id, &g);
    assert_false(g.t.replayed);
    cbrec_reset(&g);
    assert_int_equal(mw_ticket_store_attach(&fx->b.st, id, fx->t0 + 2, on_ticket, &g), 0);
    wait_cb(fx, &g);
    assert_int_equal(g.status, 0);
    assert_false(g.t.replayed);
    cbrec_reset(&g);
    /* Every watcher leaves: a grace deadline. A watched replay clears it, as
     * attach does (MSG-028 "exactly as a watch would"). */
    for (int i = 0; i < 3; i++)
        assert_int_equal(mw_ticket_store_detach(&fx->a.st, id, fx->t0 + 100), 0);
    get_ok(fx, &fx->a, id, &g); /* after the detaches (one connection, in order) */
    hget(fx, id, "graceAt", v, sizeof(v));
    assert_int_equal(atoll(v), fx->t0 + 100 + GRACE);
    create_rec(fx, &fx->b, "rp", "rk", true, fx->t0 + 200, &c);
    assert_true(c.t.replayed);
    hget(fx, id, "graceAt", v, sizeof(v));
    assert_string_equal(v, "0");
    hget(fx, id, "watchers", v, sizeof(v));
    assert_string_equal(v, "1");
    assert_int_equal(deadline(fx, id), fx->t0 + TTL);
    /* Assigned, then replayed over a WebSocket: the envelope comes with it. */
    memcpy(ids[0], id, sizeof(ids[0]));
    fill_match(&m, fx->t0 + 300, 1, ids, NULL);
    assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m, on_assign, &a), 0);
    wait_cb(fx, &a);
    assert_int_equal(a.status, 0);
    create_rec(fx, &fx->b, "rp", "rk", true, fx->t0 + 400, &c);
    assert_true(c.t.replayed);
    assert_string_equal(c.t.id, id);
    assert_int_equal(c.t.state, MW_TICKET_ASSIGNED);
    assert_int_equal(c.t.version, 2);
    assert_int_equal(c.t.assigned_envelope_len, strlen(ENV));
    assert_memory_equal(c.t.assigned_envelope, ENV, strlen(ENV));
    hget(fx, id, "watchers", v, sizeof(v));
    assert_string_equal(v, "1"); /* final: watchers no longer counted (CHN-071) */
    cbrec_reset(&c);
    cbrec_reset(&g);
    cbrec_reset(&a);
}

/* A field of a command's line in INFO commandstats ("calls",
 * "failed_calls"); 0 when the command has not run since CONFIG RESETSTAT. */
static long long cmdstat(struct fx *fx, const char *cmd, const char *field)
{
    redisReply *rep = mwt_cmd(fx->r, "INFO commandstats");
    char key[64], fkey[64];
    const char *line, *f;
    long long v = 0;

    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    snprintf(key, sizeof(key), "cmdstat_%s:", cmd);
    snprintf(fkey, sizeof(fkey), "%s=", field);
    line = strstr(rep->str, key);
    if (line) {
        const char *eol = strchr(line, '\r');

        /* The field at the start of the values or after a comma. */
        f = line + strlen(key);
        while (f && (!eol || f < eol)) {
            if (strncmp(f, fkey, strlen(fkey)) == 0) {
                v = atoll(f + strlen(fkey));
                break;
            }
            f = strchr(f, ',');
            if (f)
                f++;
        }
    }
    freeReplyObject(rep);
    return v;
}

static void resetstat(struct fx *fx)
{
    redisReply *rep = mwt_cmd(fx->r, "CONFIG RESETSTAT");

    assert_non_null(rep);
    freeReplyObject(rep);
}

/* CHN §5 "MAY use EVALSHA": once SCRIPT LOAD has answered, operations send
 * EVALSHA, not the script text; after SCRIPT FLUSH an operation still works
 * (NOSCRIPT, then the same call again as EVAL, once), and the next ones use
 * EVALSHA again. */
static void test_evalsha_noscript(void **state)
{
    struct fx *fx = *state;
    struct cbrec c = {.fx = fx};
    char id[MW_TICKET_ID_LEN + 1], id2[MW_TICKET_ID_LEN + 1];
    redisReply *rep;

    /* A first call: its reply comes after the SCRIPT LOAD replies (one
     * connection, in order), so every script is loaded afterwards. */
    create_ok(fx, &fx->a, "warm", NULL, false, fx->t0, id);
    resetstat(fx);
    create_ok(fx, &fx->a, "sha", "k", true, fx->t0, id);
    assert_int_equal(mw_ticket_store_detach(&fx->a.st, id, fx->t0 + 1), 0);
    get_ok(fx, &fx->a, id, &c); /* after the detach */
    assert_int_equal(cmdstat(fx, "evalsha", "calls"), 2);
    assert_int_equal(cmdstat(fx, "evalsha", "failed_calls"), 0);
    assert_int_equal(cmdstat(fx, "eval", "calls"), 0);

    /* The script cache is flushed under the store's feet. */
    rep = mwt_cmd(fx->r, "SCRIPT FLUSH");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    resetstat(fx);
    create_rec(fx, &fx->a, "sha", "k", true, fx->t0 + 2, &c);
    assert_true(c.t.replayed); /* the right script ran, with the right arguments */
    assert_string_equal(c.t.id, id);
    create_ok(fx, &fx->a, "sha2", NULL, false, fx->t0 + 2, id2);
    assert_true(mw_uuid4_valid(id2, strlen(id2)));
    assert_int_equal(cmdstat(fx, "evalsha", "failed_calls"), 1); /* NOSCRIPT */
    assert_int_equal(cmdstat(fx, "eval", "calls"), 1);           /* the fallback, once */
    assert_int_equal(cmdstat(fx, "evalsha", "calls"), 2);        /* the failed one, sha2's */
    /* A cancel from the other instance (another script) uses EVALSHA. */
    resetstat(fx);
    cbrec_reset(&c);
    assert_int_equal(mw_ticket_store_cancel(&fx->b.st, id2, fx->t0 + 3, on_ticket, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.t.state, MW_TICKET_CANCELLED);
    /* The cache is the server's: a's reload (SCRIPT LOAD of every script on
     * NOSCRIPT) serves b too, whose SHA1s are the same. */
    assert_int_equal(cmdstat(fx, "evalsha", "failed_calls"), 0);
    assert_int_equal(cmdstat(fx, "evalsha", "calls"), 1);
    assert_int_equal(cmdstat(fx, "eval", "calls"), 0);
    cbrec_reset(&c);

    /* A batch of assigns (more arguments than one match's) after another
     * flush: the EVAL is formatted anew from the call's arguments, and
     * every match of the batch gets its own answer. */
    {
        char ids[16][MW_TICKET_ID_LEN + 1];
        struct cbrec ac[8];
        struct mw_match m[8];

        for (int i = 0; i < 16; i++) {
            char p[8];

            snprintf(p, sizeof(p), "b%d", i);
            create_ok(fx, &fx->a, p, NULL, false, fx->t0 + 4, ids[i]);
        }
        rep = mwt_cmd(fx->r, "SCRIPT FLUSH");
        assert_non_null(rep);
        freeReplyObject(rep);
        resetstat(fx);
        for (int k = 0; k < 8; k++) {
            ac[k] = (struct cbrec){.fx = fx};
            fill_match(&m[k], fx->t0 + 5, 2, &ids[2 * k], NULL);
            assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m[k], on_assign, &ac[k]), 0);
        }
        for (int k = 0; k < 8; k++) {
            wait_cb(fx, &ac[k]);
            assert_int_equal(ac[k].calls, 1);
            assert_int_equal(ac[k].status, 0);
            assert_int_equal(ac[k].n, 2);
            assert_string_equal(ac[k].at[1].id, ids[2 * k + 1]);
            assert_int_equal(ac[k].at[1].state, MW_TICKET_ASSIGNED);
        }
        assert_int_equal(cmdstat(fx, "evalsha", "failed_calls"), 1); /* one call: the batch */
        assert_int_equal(cmdstat(fx, "eval", "calls"), 1);
        for (int k = 0; k < 8; k++)
            cbrec_reset(&ac[k]);
    }
}

static bool b_ended_1(void *ud)
{
    return ((struct fx *)ud)->b.n_ended >= 1;
}

/* CHN-031: on_ended locally after the cancel callback, and in the other
 * instance through the ended notice, once each. */
static void test_cancel_notices(void **state)
{
    struct fx *fx = *state;
    char id[MW_TICKET_ID_LEN + 1];
    struct cbrec c = {.fx = fx}, a = {.fx = fx};

    create_ok(fx, &fx->a, "p1", NULL, false, fx->t0, id);
    assert_int_equal(mw_ticket_store_cancel(&fx->a.st, id, fx->t0 + 1, on_ticket, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.t.state, MW_TICKET_CANCELLED);
    assert_int_equal(c.t.version, 2);
    assert_int_equal(fx->a.n_ended, 1);
    assert_true(fx->a.ended[0].seq > c.seq); /* after the canceller's callback */
    assert_int_equal(fx->a.ended[0].state, MW_TICKET_CANCELLED);
    assert_int_equal(fx->a.ended[0].version, 2);
    assert_true(mwt_run_until(fx->loop, b_ended_1, fx, 3.0));
    assert_string_equal(fx->b.ended[0].id, id);
    assert_int_equal(fx->b.ended[0].state, MW_TICKET_CANCELLED);
    assert_int_equal(fx->b.ended[0].version, 2);
    mwt_run_until(fx->loop, NULL, NULL, 0.1);
    assert_int_equal(fx->a.n_ended, 1); /* its own notice is not delivered again */
    assert_int_equal(fx->b.n_ended, 1);
    cbrec_reset(&c);
    cbrec_reset(&a);
}

/* MSG-074: grace after the last watcher leaves; attach clears it. */
static void test_attach_detach_grace(void **state)
{
    struct fx *fx = *state;
    char id[MW_TICKET_ID_LEN + 1], id2[MW_TICKET_ID_LEN + 1], v[64];
    char ids[1][MW_TICKET_ID_LEN + 1];
    struct cbrec c = {.fx = fx}, a = {.fx = fx};
    struct mw_match m;
    int64_t t0 = fx->t0;

    create_ok(fx, &fx->a, "p1", NULL, true, t0, id); /* watched: 1 watcher */
    assert_int_equal(mw_ticket_store_detach(&fx->b.st, id, t0 + 100), 0);
    sweep_wait(fx, &fx->a, t0 + 100 + GRACE - 1);
    get_ok(fx, &fx->a, id, &c);
    assert_int_equal(c.t.state, MW_TICKET_QUEUED);
    /* A watcher comes back (another instance): grace cleared. */
    cbrec_reset(&c);
    assert_int_equal(mw_ticket_store_attach(&fx->b.st, id, t0 + 200, on_ticket, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.t.version, 1);
    sweep_wait(fx, &fx->a, t0 + 100 + GRACE + 10);
    get_ok(fx, &fx->a, id, &c);
    assert_int_equal(c.t.state, MW_TICKET_QUEUED);
    assert_int_equal(fx->a.n_ended, 0);
    /* It leaves again: cancelled by grace, exactly at the deadline. */
    assert_int_equal(mw_ticket_store_detach(&fx->a.st, id, t0 + 1000), 0);
    sweep_wait(fx, &fx->a, t0 + 1000 + GRACE);
    get_ok(fx, &fx->a, id, &c);
    assert_int_equal(c.t.state, MW_TICKET_CANCELLED);
    assert_int_equal(c.t.version, 2);
    assert_int_equal(fx->a.n_ended, 1);
    assert_int_equal(fx->a.ended[0].state, MW_TICKET_CANCELLED);
    assert_true(mwt_run_until(fx->loop, b_ended_1, fx, 3.0));
    /* CHN-040/071: watchers is kept only while queued. On the cancelled
     * ticket an attach reads it without counting, and detaches (even more
     * than were attached) change nothing. */
    cbrec_reset(&c);
    assert_int_equal(mw_ticket_store_attach(&fx->b.st, id, t0 + 5000, on_ticket, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.t.state, MW_TICKET_CANCELLED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mw_ticket_store_detach(&fx->a.st, id, t0 + 5000), 0);
    get_ok(fx, &fx->a, id, &c); /* after the detaches (one connection, in order) */
    hget(fx, id, "watchers", v, sizeof(v));
    assert_string_equal(v, "0");
    hget(fx, id, "graceAt", v, sizeof(v));
    assert_string_equal(v, "0");
    /* An assigned ticket that had a watcher: attach and detach leave its
     * watchers, graceAt and retention deadline as the assignment left them. */
    create_ok(fx, &fx->a, "p2", NULL, true, t0, id2);
    memcpy(ids[0], id2, sizeof(ids[0]));
    fill_match(&m, t0 + 50, 1, ids, NULL);
    assert_int_equal(mw_ticket_store_assign(&fx->b.st, &m, on_assign, &a), 0);
    wait_cb(fx, &a);
    assert_int_equal(a.status, 0);
    cbrec_reset(&c);
    assert_int_equal(mw_ticket_store_attach(&fx->b.st, id2, t0 + 60, on_ticket, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.t.state, MW_TICKET_ASSIGNED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mw_ticket_store_detach(&fx->a.st, id2, t0 + 70), 0);
    get_ok(fx, &fx->a, id2, &c);
    hget(fx, id2, "watchers", v, sizeof(v));
    assert_string_equal(v, "1");
    hget(fx, id2, "graceAt", v, sizeof(v));
    assert_string_equal(v, "0");
    assert_int_equal(deadline(fx, id2), t0 + 50 + ATTL);
    cbrec_reset(&a);
    /* Attach to an unknown ticket: not_found. */
    cbrec_reset(&c);
    assert_int_equal(mw_ticket_store_attach(&fx->a.st, "22222222-2222-4222-8222-222222222222", t0,
                                            on_ticket, &c),
                     0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, MW_ENOTFOUND);
    cbrec_reset(&c);
}

/* MSG-075/076: expiry at the ttl, forgetting after retention. */
static void test_ttl_and_forgetting(void **state)
{
    struct fx *fx = *state;
    char id[MW_TICKET_ID_LEN + 1];
    struct cbrec c = {.fx = fx};
    int64_t t0 = fx->t0;
    redisReply *rep;

    create_ok(fx, &fx->a, "p1", "idem", false, t0, id);
    sweep_wait(fx, &fx->b, t0 + TTL - 1);
    get_ok(fx, &fx->a, id, &c);
    assert_int_equal(c.t.state, MW_TICKET_QUEUED);
    sweep_wait(fx, &fx->b, t0 + TTL);
    get_ok(fx, &fx->a, id, &c);
    assert_int_equal(c.t.state, MW_TICKET_EXPIRED);
    assert_int_equal(c.t.version, 2);
    assert_int_equal(fx->b.n_ended, 1); /* the sweeping instance */
    assert_int_equal(fx->b.ended[0].state, MW_TICKET_EXPIRED);
    rep = mwt_cmd(fx->r, "PTTL t:mw:ticket:%s", id);
    assert_true(rep->integer > 0 && rep->integer <= ATTL);
    freeReplyObject(rep);
    rep = mwt_cmd(fx->r, "ZSCORE t:mw:queue %s", id);
    assert_int_equal(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);
    sweep_wait(fx, &fx->b, t0 + TTL + ATTL - 1);
    get_ok(fx, &fx->a, id, &c);
    assert_int_equal(c.status, 0);
    sweep_wait(fx, &fx->b, t0 + TTL + ATTL);
    get_ok(fx, &fx->a, id, &c);
    assert_int_equal(c.status, MW_ENOTFOUND);
    rep = mwt_cmd(fx->r, "EXISTS t:mw:idem:2:p1:idem");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    rep = mwt_cmd(fx->r, "ZCARD t:mw:deadlines");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    cbrec_reset(&c);
}

/* MSG-077, CHN-060, CHN-061: the compare-and-set. Versions checked, all or
 * nothing, the index of the first failing ticket returned, and two workers
 * racing on overlapping matches: exactly one wins, every time. */
static void test_assign_cas_race(void **state)
{
    struct fx *fx = *state;
    char ids[3][MW_TICKET_ID_LEN + 1];
    char pair1[2][MW_TICKET_ID_LEN + 1], pair2[2][MW_TICKET_ID_LEN + 1];
    struct mw_match m1, m2;
    struct cbrec c1 = {.fx = fx}, c2 = {.fx = fx}, g = {.fx = fx};
    const uint64_t bad[2] = {3, 2};
    int wins_a = 0, wins_b = 0;

    /* CHN-060: wrong expected version: nothing changes, failed = index 0. */
    create_ok(fx, &fx->a, "x1", NULL, false, fx->t0, ids[0]);
    create_ok(fx, &fx->a, "x2", NULL, false, fx->t0, ids[1]);
    fill_match(&m1, fx->t0 + 1, 2, ids, bad);
    assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m1, on_assign, &c1), 0);
    wait_cb(fx, &c1);
    assert_int_equal(c1.status, MW_ESTATE);
    assert_int_equal(c1.failed, 0);
    get_ok(fx, &fx->b, ids[1], &g);
    assert_int_equal(g.t.state, MW_TICKET_QUEUED);
    cbrec_reset(&c1);

    for (int round = 0; round < 40; round++) {
        char who[16];

        for (int i = 0; i < 3; i++) {
            snprintf(who, sizeof(who), "r%d-%d", round, i);
            create_ok(fx, i == 1 ? &fx->b : &fx->a, who, NULL, false, fx->t0, ids[i]);
        }
        /* Worker A: {0, 1}; worker B: {1, 2}; ticket 1 in both. */
        memcpy(pair1[0], ids[0], sizeof(pair1[0]));
        memcpy(pair1[1], ids[1], sizeof(pair1[1]));
        memcpy(pair2[0], ids[2], sizeof(pair2[0]));
        memcpy(pair2[1], ids[1], sizeof(pair2[1]));
        fill_match(&m1, fx->t0 + 2, 2, pair1, NULL);
        fill_match(&m2, fx->t0 + 2, 2, pair2, NULL);
        if (round % 2) {
            /* Swap the matches between the workers: whichever instance's
             * connection reaches Redis first, each match wins sometimes. */
            assert_int_equal(mw_ticket_store_assign(&fx->b.st, &m1, on_assign, &c1), 0);
            assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m2, on_assign, &c2), 0);
        } else {
            assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m1, on_assign, &c1), 0);
            assert_int_equal(mw_ticket_store_assign(&fx->b.st, &m2, on_assign, &c2), 0);
        }
        wait_cb(fx, &c1);
        wait_cb(fx, &c2);
        assert_true((c1.status == 0) != (c2.status == 0)); /* CHN-061: exactly one */
        if (c1.status == 0) {
            wins_a++;
            assert_int_equal(c2.status, MW_ESTATE);
            assert_int_equal(c2.failed, 1);
            assert_int_equal(c1.n, 2);
            assert_int_equal(c1.at[1].state, MW_TICKET_ASSIGNED);
            assert_int_equal(c1.at[1].version, 2);
            assert_int_equal(c1.at[1].assigned_envelope_len, strlen(ENV));
            get_ok(fx, &fx->b, ids[2], &g);
            assert_int_equal(g.t.state, MW_TICKET_QUEUED); /* loser changed nothing */
        } else {
            wins_b++;
            assert_int_equal(c1.status, MW_ESTATE);
            assert_int_equal(c1.failed, 1);
            get_ok(fx, &fx->b, ids[0], &g);
            assert_int_equal(g.t.state, MW_TICKET_QUEUED);
        }
        get_ok(fx, &fx->a, ids[1], &g);
        assert_int_equal(g.t.state, MW_TICKET_ASSIGNED);
        assert_int_equal(g.t.version, 2);
        assert_memory_equal(g.t.assigned_envelope, ENV, strlen(ENV));
        cbrec_reset(&c1);
        cbrec_reset(&c2);
    }
    /* Which one wins depends on which connection's write reaches Redis
     * first (the loop's order, not the call order); exactly one always, and
     * with the swap each match has won. */
    assert_int_equal(wins_a + wins_b, 40);
    assert_true(wins_a > 0 && wins_b > 0);
    print_message("CAS race: match {0,1} won %d, match {2,1} won %d of 40\n", wins_a, wins_b);
    /* An assigned ticket is never assigned again; a ticket twice in one
     * match is refused. */
    memcpy(pair1[0], ids[1], sizeof(pair1[0]));
    fill_match(&m1, fx->t0 + 3, 1, pair1, (const uint64_t[]){3});
    assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m1, on_assign, &c1), 0);
    wait_cb(fx, &c1);
    assert_int_equal(c1.status, MW_ESTATE);
    cbrec_reset(&c1);
    create_ok(fx, &fx->a, "dup", NULL, false, fx->t0, pair1[0]);
    memcpy(pair1[1], pair1[0], sizeof(pair1[1]));
    fill_match(&m1, fx->t0 + 3, 2, pair1, NULL);
    assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m1, on_assign, &c1), 0);
    wait_cb(fx, &c1);
    assert_int_equal(c1.status, MW_ESTATE);
    assert_int_equal(c1.failed, 1);
    cbrec_reset(&c1);
    cbrec_reset(&g);
}

/* The integer of a reply from mwt_cmd (which it frees). */
static long long int_reply(redisReply *rep)
{
    long long n;

    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    n = rep->integer;
    freeReplyObject(rep);
    return n;
}

/* CHN-051: create fails with MW_ELIMIT and creates nothing (no hash, no
 * idempotency key, no queue, deadline or stream entry, no count) when
 * mw:deadlines already holds max_tickets; a replayed idempotency key still
 * answers its existing ticket; a forgotten ticket frees its place. */
/* CHN-050: the creates made in one loop turn go to Redis as one script
 * call (one EVALSHA), yet each is its own create with its own callback, in
 * call order: a later create sees an earlier one of the batch (the same
 * idempotency key answers the ticket the earlier one made). A new ticket's
 * callback gets the ticket exactly as Redis holds it, though the script
 * returns only CREATED. More than a batch holds makes more calls. */
static void test_create_batched(void **state)
{
    struct fx *fx = *state;
    struct cbrec c[5], g = {.fx = fx};
    struct cbrec c70[70];
    struct mw_enqueue_req r[5];
    char attrs[] = "{\"mmr\":1500,\"region\":\"eu\"}";

    r[0] = req_for("p0", NULL, false);
    r[1] = req_for("p1", "k1", true);
    r[2] = req_for("p1", "k1", false); /* replays r[1], made earlier in the batch */
    r[3] = req_for("p3", "k3", false);
    r[3].attributes_json = attrs;
    snprintf(r[3].region, sizeof(r[3].region), "eu");
    r[4] = req_for("p4", NULL, true);
    /* One create first, answered: SCRIPT LOAD went out on connect, before
     * it, so its answer has come too and the batch below goes as EVALSHA
     * (without this, a batch sent before SCRIPT LOAD answers goes as EVAL,
     * correctly, and the count below saw 0 EVALSHA about once in eight). */
    {
        struct mw_enqueue_req w = req_for("warm", NULL, false);

        c[0] = (struct cbrec){.fx = fx};
        assert_int_equal(mw_ticket_store_create(&fx->a.st, &w, fx->t0, on_ticket, &c[0]), 0);
        wait_cb(fx, &c[0]);
        assert_int_equal(c[0].status, 0);
    }
    resetstat(fx);
    for (int i = 0; i < 5; i++) { /* one loop turn: nothing runs in between */
        c[i] = (struct cbrec){.fx = fx};
        assert_int_equal(mw_ticket_store_create(&fx->a.st, &r[i], fx->t0 + i, on_ticket, &c[i]), 0);
    }
    assert_int_equal(c[0].calls, 0); /* never inside the call */
    for (int i = 0; i < 5; i++)
        wait_cb(fx, &c[i]);
    assert_int_equal(cmdstat(fx, "evalsha", "calls"), 1);
    assert_int_equal(cmdstat(fx, "eval", "calls"), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c[i].calls, 1);
        assert_int_equal(c[i].status, 0);
        assert_true(c[i].has_t);
        if (i > 0)
            assert_true(c[i].seq > c[i - 1].seq); /* in call order */
    }
    assert_string_equal(c[2].t.id, c[1].t.id);
    assert_true(c[2].t.replayed);
    assert_false(c[1].t.replayed);
    assert_string_not_equal(c[3].t.id, c[1].t.id);
    /* What each callback got is what Redis holds. */
    for (int i = 0; i < 5; i++) {
        get_ok(fx, &fx->a, c[i].t.id, &g);
        assert_int_equal(g.status, 0);
        assert_string_equal(g.t.id, c[i].t.id);
        assert_string_equal(g.t.queue, c[i].t.queue);
        assert_string_equal(g.t.player_id, c[i].t.player_id);
        assert_string_equal(g.t.region, c[i].t.region);
        assert_int_equal(g.t.has_idem_key, c[i].t.has_idem_key);
        assert_string_equal(g.t.idem_key, c[i].t.idem_key);
        assert_int_equal(g.t.state, MW_TICKET_QUEUED);
        assert_int_equal(c[i].t.state, MW_TICKET_QUEUED);
        assert_int_equal(g.t.version, 1);
        assert_int_equal(c[i].t.version, 1);
        assert_int_equal(g.t.created_ms, c[i].t.created_ms);
        assert_int_equal(g.t.expires_ms, c[i].t.expires_ms);
        assert_int_equal(g.t.ended_ms, 0);
        assert_int_equal(g.t.attributes_json != NULL, c[i].t.attributes_json != NULL);
        if (g.t.attributes_json)
            assert_string_equal(g.t.attributes_json, c[i].t.attributes_json);
    }
    assert_int_equal(c[0].t.created_ms, fx->t0);
    assert_int_equal(c[3].t.created_ms, fx->t0 + 3);
    assert_string_equal(c[3].t.attributes_json, attrs);
    for (int i = 0; i < 5; i++)
        cbrec_reset(&c[i]);
    cbrec_reset(&g);
    /* 70 creates in one turn: two calls (a batch holds 64). */
    resetstat(fx);
    for (int i = 0; i < 70; i++) {
        char who[16];

        snprintf(who, sizeof(who), "m%d", i);
        r[0] = req_for(who, NULL, false);
        c70[i] = (struct cbrec){.fx = fx};
        assert_int_equal(mw_ticket_store_create(&fx->a.st, &r[0], fx->t0, on_ticket, &c70[i]), 0);
    }
    for (int i = 0; i < 70; i++) {
        wait_cb(fx, &c70[i]);
        assert_int_equal(c70[i].status, 0);
        cbrec_reset(&c70[i]);
    }
    assert_int_equal(cmdstat(fx, "evalsha", "calls"), 2);
    assert_int_equal(int_reply(mwt_cmd(fx->r, "ZCARD t:mw:queue")), 75); /* warm + 4 + 70 */
}

/* CHN-060: the assigns made in one loop turn go to Redis as one script
 * call (one EVALSHA), yet each match is its own compare-and-set with its own
 * callback, in call order: a match that shares a ticket with an earlier one
 * of the batch, or expects a wrong version, changes nothing and fails alone.
 * More than a batch holds makes more calls. */
static void test_assign_batched(void **state)
{
    struct fx *fx = *state;
    char t[8][MW_TICKET_ID_LEN + 1], pairs[5][2][MW_TICKET_ID_LEN + 1];
    const int pick[5][2] = {{0, 1}, {2, 3}, {4, 1}, {5, 6}, {7, 7}};
    const size_t size[5] = {2, 2, 2, 2, 2};
    const uint64_t bad[2] = {2, 3};
    struct mw_match m[5];
    struct cbrec c[5], g = {.fx = fx};
    char ids70[70][MW_TICKET_ID_LEN + 1];
    struct cbrec c70[70];
    char v[64];

    for (int i = 0; i < 8; i++) {
        char who[8];

        snprintf(who, sizeof(who), "b%d", i);
        create_ok(fx, &fx->a, who, NULL, false, fx->t0, t[i]);
    }
    for (int i = 0; i < 5; i++) {
        memcpy(pairs[i][0], t[pick[i][0]], sizeof(pairs[i][0]));
        memcpy(pairs[i][1], t[pick[i][1]], sizeof(pairs[i][1]));
        fill_match(&m[i], fx->t0 + 10 + i, size[i], pairs[i], i == 3 ? bad : NULL);
        snprintf(m[i].match_id, sizeof(m[i].match_id), "00000000-0000-4000-8000-00000000000%d", i);
        c[i] = (struct cbrec){.fx = fx};
    }
    resetstat(fx);
    for (int i = 0; i < 5; i++) /* one loop turn: nothing runs in between */
        assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m[i], on_assign, &c[i]), 0);
    assert_int_equal(c[0].calls, 0); /* never inside the call */
    for (int i = 0; i < 5; i++)
        wait_cb(fx, &c[i]);
    assert_int_equal(cmdstat(fx, "evalsha", "calls"), 1);
    assert_int_equal(cmdstat(fx, "eval", "calls"), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c[i].calls, 1);
        if (i > 0)
            assert_true(c[i].seq > c[i - 1].seq); /* in call order */
    }
    assert_int_equal(c[0].status, 0);
    assert_int_equal(c[0].n, 2);
    assert_string_equal(c[0].at[1].id, t[1]);
    assert_int_equal(c[0].at[1].state, MW_TICKET_ASSIGNED);
    assert_int_equal(c[0].at[1].version, 2);
    assert_int_equal(c[1].status, 0);
    assert_string_equal(c[1].at[0].id, t[2]);
    assert_int_equal(c[2].status, MW_ESTATE); /* t1 went to match 0 */
    assert_int_equal(c[2].failed, 1);
    assert_int_equal(c[3].status, MW_ESTATE); /* wrong version of t6 */
    assert_int_equal(c[3].failed, 1);
    assert_int_equal(c[4].status, MW_ESTATE); /* t7 twice in one match */
    assert_int_equal(c[4].failed, 1);
    /* The failed matches changed nothing; the others carry their own match. */
    for (int i = 4; i < 8; i++) {
        get_ok(fx, &fx->a, t[i], &g);
        assert_int_equal(g.t.state, MW_TICKET_QUEUED);
        assert_int_equal(g.t.version, 1);
    }
    hget(fx, t[3], "matchId", v, sizeof(v));
    assert_string_equal(v, "00000000-0000-4000-8000-000000000001");
    hget(fx, t[0], "endedAt", v, sizeof(v));
    assert_int_equal(atoll(v), fx->t0 + 10);
    hget(fx, t[3], "endedAt", v, sizeof(v));
    assert_int_equal(atoll(v), fx->t0 + 11);
    for (int i = 0; i < 5; i++)
        cbrec_reset(&c[i]);
    cbrec_reset(&g);

    /* 70 matches in one turn: two calls (64 + 6), every one assigned. */
    for (int i = 0; i < 70; i++) {
        char who[8];

        snprintf(who, sizeof(who), "s%d", i);
        create_ok(fx, &fx->b, who, NULL, false, fx->t0, ids70[i]);
    }
    resetstat(fx);
    for (int i = 0; i < 70; i++) {
        struct mw_match one;

        fill_match(&one, fx->t0 + 20, 1, &ids70[i], NULL);
        c70[i] = (struct cbrec){.fx = fx};
        assert_int_equal(mw_ticket_store_assign(&fx->a.st, &one, on_assign, &c70[i]), 0);
    }
    for (int i = 0; i < 70; i++) {
        wait_cb(fx, &c70[i]);
        assert_int_equal(c70[i].status, 0);
        assert_string_equal(c70[i].at[0].id, ids70[i]);
        cbrec_reset(&c70[i]);
    }
    assert_int_equal(cmdstat(fx, "evalsha", "calls"), 2);
}

/* Reads the next pub/sub message from a subscribed blocking client and
 * returns its payload (caller frees with free()); fails the test on a
 * timeout or anything but a message. */
static char *next_message(redisContext *sub)
{
    redisReply *rep = NULL;
    char *out;

    assert_int_equal(redisGetReply(sub, (void **)&rep), REDIS_OK);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 3);
    assert_string_equal(rep->element[0]->str, "message");
    out = strdup(rep->element[2]->str);
    assert_non_null(out);
    freeReplyObject(rep);
    return out;
}

/* CHN-062: the assignment script publishes each ticket's channel payload
 * itself, in the same atomic step as the commit, and says so (published);
 * a failed compare-and-set publishes nothing. */
static void test_assign_publishes(void **state)
{
    struct fx *fx = *state;
    char t[3][MW_TICKET_ID_LEN + 1], pair[2][MW_TICKET_ID_LEN + 1], want[512];
    struct timeval tv = {3, 0};
    struct mw_match m;
    struct cbrec c = {.fx = fx};
    redisContext *sub = mwt_client(fx->r);
    redisReply *rep;
    char *msg;

    assert_non_null(sub);
    assert_int_equal(redisSetTimeout(sub, tv), REDIS_OK);
    rep = redisCommand(sub, "SUBSCRIBE t:matchmaking:assigned");
    assert_non_null(rep);
    freeReplyObject(rep);
    for (int i = 0; i < 3; i++) {
        char who[8];

        snprintf(who, sizeof(who), "pub%d", i);
        create_ok(fx, &fx->a, who, NULL, false, fx->t0, t[i]);
    }
    memcpy(pair[0], t[0], sizeof(pair[0]));
    memcpy(pair[1], t[1], sizeof(pair[1]));
    fill_match(&m, fx->t0 + 5, 2, pair, NULL);
    assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m, on_assign, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, 0);
    assert_true(c.published);
    for (int i = 0; i < 2; i++) {
        snprintf(want, sizeof(want), "{\"ticketId\":\"%s\",\"envelope\":%s}", t[i], ENV);
        msg = next_message(sub);
        assert_string_equal(msg, want);
        free(msg);
    }
    cbrec_reset(&c);

    /* t1 is assigned now: this compare-and-set fails and publishes nothing
     * (the next message is the test's own marker). */
    memcpy(pair[0], t[2], sizeof(pair[0]));
    fill_match(&m, fx->t0 + 6, 2, pair, NULL);
    assert_int_equal(mw_ticket_store_assign(&fx->a.st, &m, on_assign, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, MW_ESTATE);
    assert_false(c.published);
    cbrec_reset(&c);
    rep = mwt_cmd(fx->r, "PUBLISH t:matchmaking:assigned marker");
    assert_non_null(rep);
    freeReplyObject(rep);
    msg = next_message(sub);
    assert_string_equal(msg, "marker");
    free(msg);
    redisFree(sub);
}

static void test_create_limit(void **state)
{
    struct fx *fx = *state;
    struct mw_ticket_store_config cfg = {
        .ticket_ttl_ms = TTL, .assigned_ttl_ms = ATTL, .grace_ms = GRACE, .max_tickets = 2};
    struct mw_redis_opts o = mwt_opts(fx->r, "t:");
    struct inst lim = {0};
    struct mw_ticket_store_hooks h = {.on_resubscribed = on_resub, .ud = &lim};
    struct cbrec c = {.fx = fx};
    struct mw_enqueue_req r = req_for("third", "k3", false);
    char id1[MW_TICKET_ID_LEN + 1], id2[MW_TICKET_ID_LEN + 1];
    long long keys, xlen;

    lim.fx = fx;
    lim.rng.s = 77;
    assert_int_equal(
        mw_ticket_store_redis_new(&lim.st, &cfg, &h, fx->loop, &o, "lim", fake_rng_fill, &lim.rng),
        0);
    assert_true(mwt_run_until(fx->loop, inst_ready, &lim, 3.0));
    create_ok(fx, &lim, "first", "k1", false, fx->t0, id1);
    create_ok(fx, &fx->a, "second", NULL, false, fx->t0, id2); /* any instance counts */
    keys = int_reply(mwt_cmd(fx->r, "DBSIZE"));
    xlen = int_reply(mwt_cmd(fx->r, "XLEN t:mw:tickets"));
    assert_int_equal(mw_ticket_store_create(&lim.st, &r, fx->t0 + 1, on_ticket, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, MW_ELIMIT); /* CHN-051 */
    assert_false(c.has_t);
    cbrec_reset(&c);
    /* CHN-051: nothing created anywhere. */
    assert_int_equal(int_reply(mwt_cmd(fx->r, "DBSIZE")), keys);
    assert_int_equal(int_reply(mwt_cmd(fx->r, "XLEN t:mw:tickets")), xlen);
    assert_int_equal(int_reply(mwt_cmd(fx->r, "ZCARD t:mw:queue")), 2);
    assert_int_equal(int_reply(mwt_cmd(fx->r, "ZCARD t:mw:deadlines")), 2);
    assert_int_equal(int_reply(mwt_cmd(fx->r, "EXISTS t:mw:idem:5:third:k3")), 0);
    /* No counter is written per created ticket (CHN-040: mw:counts holds
     * only the ended states; queued is ZCARD mw:queue). */
    assert_int_equal(int_reply(mwt_cmd(fx->r, "HEXISTS t:mw:counts queued")), 0);
    /* At the limit, a replay of an existing key answers its ticket. */
    r = req_for("first", "k1", false);
    assert_int_equal(mw_ticket_store_create(&lim.st, &r, fx->t0 + 2, on_ticket, &c), 0);
    wait_cb(fx, &c);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.t.id, id1);
    cbrec_reset(&c);
    /* Cancelled and forgotten after retention: room again. */
    assert_int_equal(mw_ticket_store_cancel(&fx->a.st, id2, fx->t0 + 3, on_ticket, &c), 0);
    wait_cb(fx, &c);
    cbrec_reset(&c);
    sweep_wait(fx, &fx->a, fx->t0 + 3 + ATTL);
    assert_int_equal(int_reply(mwt_cmd(fx->r, "ZCARD t:mw:deadlines")), 1);
    create_ok(fx, &lim, "third", "k3", false, fx->t0 + 4, id2);
    mw_ticket_store_destroy(&lim.st);
}

static size_t feed_count(const struct inst *in, const char *id, enum mw_feed_event ev)
{
    size_t n = 0;

    for (size_t i = 0; i < in->n_feed; i++)
        if (in->feed[i].ev == ev && strcmp(in->feed[i].id, id) == 0)
            n++;
    return n;
}

static long long pending_count(struct fx *fx)
{
    redisReply *rep = mwt_cmd(fx->r, "XPENDING t:mw:tickets workers");
    long long n;

    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    n = rep->element[0]->integer;
    freeReplyObject(rep);
    return n;
}

/* Waits until every id of ids[0..n) reached in's feed as QUEUED at least
 * once (a count of events alone could be met by duplicates, or by an event
 * that came before the count was taken). */
struct feed_ids {
    struct inst *in;
    size_t n;
    const char *ids[4];
};

static bool feed_has_ids(void *ud)
{
    const struct feed_ids *f = ud;

    for (size_t i = 0; i < f->n; i++)
        if (feed_count(f->in, f->ids[i], MW_FEED_QUEUED) == 0)
            return false;
    return true;
}

static bool no_pending(void *ud)
{
    return pending_count(ud) == 0;
}

/* Every entry delivered to a worker is acked: the XACK goes on the feed
 * connection after the delivery, so poll Redis until it has landed. */
static void wait_no_pending(struct fx *fx)
{
    assert_true(mwt_run_until(fx->loop, no_pending, fx, 5.0));
}

static bool removed_seen(void *ud)
{
    struct inst *in = ud;

    for (size_t i = 0; i < in->n_feed; i++)
        if (in->feed[i].ev == MW_FEED_REMOVED)
            return true;
    return false;
}

/* The feed: tickets queued before the worker started are delivered (rebuild),
 * new ones through the stream (XREADGROUP), removals too; entries are acked;
 * one worker holds the lease, the other stands by and takes over. */
static void test_feed_stream_ack_and_lease(void **state)
{
    struct fx *fx = *state;
    char early[MW_TICKET_ID_LEN + 1], late[3][MW_TICKET_ID_LEN + 1];
    struct feed_ids fe = {&fx->a, 1, {early}};
    struct cbrec c = {.fx = fx};
    redisReply *rep;

    create_ok(fx, &fx->b, "early", NULL, false, fx->t0, early);
    assert_int_equal(mw_ticket_store_feed(&fx->a.st, on_feed, &fx->a), 0);
    assert_int_equal(mw_ticket_store_feed(&fx->a.st, on_feed, &fx->a), MW_EEXIST);
    assert_true(mwt_run_until(fx->loop, feed_has_ids, &fe, 5.0));
    assert_int_equal(fx->a.feed[0].state, MW_TICKET_QUEUED);
    assert_int_equal(fx->a.feed[0].version, 1);
    /* The second worker subscribes too: it stands by. */
    assert_int_equal(mw_ticket_store_feed(&fx->b.st, on_feed, &fx->b), 0);
    for (int i = 0; i < 3; i++) {
        char who[16];

        snprintf(who, sizeof(who), "l%d", i);
        create_ok(fx, i % 2 ? &fx->a : &fx->b, who, NULL, false, fx->t0 + i, late[i]);
    }
    {
        /* At least once: the rebuild and the stream may both carry one. */
        struct feed_ids f = {&fx->a, 3, {late[0], late[1], late[2]}};
        assert_true(mwt_run_until(fx->loop, feed_has_ids, &f, 5.0));
    }
    /* A removal reaches the feed as REMOVED with its state and version. */
    assert_int_equal(mw_ticket_store_cancel(&fx->b.st, late[0], fx->t0 + 9, on_ticket, &c), 0);
    wait_cb(fx, &c);
    cbrec_reset(&c);
    assert_true(mwt_run_until(fx->loop, removed_seen, &fx->a, 3.0));
    assert_int_equal(feed_count(&fx->a, late[0], MW_FEED_REMOVED), 1);
    for (size_t i = 0; i < fx->a.n_feed; i++) {
        if (fx->a.feed[i].ev == MW_FEED_REMOVED) {
            assert_string_equal(fx->a.feed[i].id, late[0]);
            assert_int_equal(fx->a.feed[i].state, MW_TICKET_CANCELLED);
            assert_int_equal(fx->a.feed[i].version, 2);
        }
    }
    wait_no_pending(fx);               /* every delivered entry acked */
    assert_int_equal(fx->b.n_feed, 0); /* standby */
    rep = mwt_cmd(fx->r, "GET t:mw:worker:lease");
    assert_string_equal(rep->str, "wa");
    freeReplyObject(rep);

    /* Worker A goes away (destroyed without releasing the lease); after the
     * lease expires B takes over and rebuilds: every queued ticket. */
    mw_ticket_store_destroy(&fx->a.st);
    memset(&fx->a.st, 0, sizeof(fx->a.st));
    inst_make(fx, &fx->a, 0x5555555555555555ULL, "wa2");
    rep = mwt_cmd(fx->r, "PEXPIRE t:mw:worker:lease 1"); /* don't wait 10 s */
    freeReplyObject(rep);
    {
        struct feed_ids f = {&fx->b, 3, {early, late[1], late[2]}};
        assert_true(mwt_run_until(fx->loop, feed_has_ids, &f, 5.0));
    }
    assert_int_equal(feed_count(&fx->b, late[0], MW_FEED_QUEUED), 0); /* cancelled */
    /* And new entries flow to B. */
    create_ok(fx, &fx->a, "after", NULL, false, fx->t0, late[0]);
    {
        /* Not "n_feed + 1" counted after create_ok: the entry can reach the
         * feed while create_ok still waits for its own reply. */
        struct feed_ids f = {&fx->b, 1, {late[0]}};
        assert_true(mwt_run_until(fx->loop, feed_has_ids, &f, 5.0));
    }
    wait_no_pending(fx);
}

/* At least once: an entry delivered to a worker that died before XACK is
 * claimed and delivered by the next lease holder. */
static void test_feed_claims_pending(void **state)
{
    struct fx *fx = *state;
    char id[MW_TICKET_ID_LEN + 1];
    redisReply *rep;

    rep = mwt_cmd(fx->r, "XGROUP CREATE t:mw:tickets workers $ MKSTREAM");
    freeReplyObject(rep);
    create_ok(fx, &fx->b, "lost", NULL, false, fx->t0, id);
    /* A "dead worker" reads the entry and never acks it. */
    rep = mwt_cmd(fx->r, "XREADGROUP GROUP workers dead COUNT 10 STREAMS t:mw:tickets >");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    freeReplyObject(rep);
    assert_int_equal(pending_count(fx), 1);
    /* Remove it from mw:queue so only the claim can deliver it. */
    rep = mwt_cmd(fx->r, "ZREM t:mw:queue %s", id);
    freeReplyObject(rep);
    assert_int_equal(mw_ticket_store_feed(&fx->a.st, on_feed, &fx->a), 0);
    {
        struct feed_ids f = {&fx->a, 1, {id}};
        assert_true(mwt_run_until(fx->loop, feed_has_ids, &f, 5.0));
    }
    wait_no_pending(fx);
}

static bool lease_is_wa(void *ud);

struct gets_since {
    struct fx *fx;
    long long base;
};

static bool more_gets(void *ud)
{
    struct gets_since *g = ud;

    return cmdstat(g->fx, "get", "calls") > g->base;
}

/* CHN-082: the holder renews its lease at least every 2 s, not before each
 * read: many reads (one per created ticket here) run few lease scripts (the
 * only GET on these keys: creates without an idempotency key have none).
 * It still notices a lease taken over (within a renewal interval and a
 * read), stands by without reading, and takes the lease back when it is
 * free, rebuilding what it missed. */
static void test_feed_lease_renewal(void **state)
{
    struct fx *fx = *state;
    char ids[40][MW_TICKET_ID_LEN + 1], late[MW_TICKET_ID_LEN + 1];
    struct gets_since g = {fx, 0};
    long long reads, gets;
    int64_t t_start, elapsed_ms;
    redisReply *rep;

    assert_int_equal(mw_ticket_store_feed(&fx->a.st, on_feed, &fx->a), 0);
    assert_true(mwt_run_until(fx->loop, lease_is_wa, fx, 5.0));
    create_ok(fx, &fx->b, "warm", NULL, false, fx->t0, late); /* the scripts are loaded */
    {
        struct feed_ids f = {&fx->a, 1, {late}};
        assert_true(mwt_run_until(fx->loop, feed_has_ids, &f, 5.0));
    }
    /* Let the rebuild end (it also reads tickets created meanwhile): from
     * here on only XREADGROUP delivers. */
    wait_no_pending(fx);
    mwt_run_until(fx->loop, NULL, NULL, 0.3);
    resetstat(fx);
    t_start = mwt_now_ms();
    for (int i = 0; i < 40; i++) {
        char who[16];

        snprintf(who, sizeof(who), "r%d", i);
        create_ok(fx, &fx->b, who, NULL, false, fx->t0 + i, ids[i]);
        {
            /* Wait for each one: one read per ticket. */
            struct feed_ids f = {&fx->a, 1, {ids[i]}};
            assert_true(mwt_run_until(fx->loop, feed_has_ids, &f, 5.0));
        }
    }
    elapsed_ms = mwt_now_ms() - t_start;
    /* One read reply per ticket (each waited for before the next create;
     * an XREADGROUP that blocked is not in Redis 7.0's call counts). Read
     * with NOACK (CHN-081): nothing pending, no XACK. */
    reads = 40;
    wait_no_pending(fx);
    assert_int_equal(cmdstat(fx, "xack", "calls"), 0);
    gets = cmdstat(fx, "get", "calls");
    /* At most one renewal per started second and one due at the start, where
     * renewing before each read made >= 40. */
    assert_true(gets <= 2 + elapsed_ms / 1000);
    assert_true(gets * 4 < reads);

    /* Another worker takes the lease (A's expired, say): A finds out at its
     * next renewal and stands by; what is created then is not read by A. */
    rep = mwt_cmd(fx->r, "SET t:mw:worker:lease wz PX 60000");
    assert_non_null(rep);
    freeReplyObject(rep);
    g.base = cmdstat(fx, "get", "calls");
    assert_true(mwt_run_until(fx->loop, more_gets, &g, 5.0));
    mwt_run_until(fx->loop, NULL, NULL, 0.1); /* its reply reaches A */
    fx->a.n_feed = 0;
    create_ok(fx, &fx->b, "late", NULL, false, fx->t0 + 50, late);
    mwt_run_until(fx->loop, NULL, NULL, 1.5);
    assert_int_equal(feed_count(&fx->a, late, MW_FEED_QUEUED), 0);
    rep = mwt_cmd(fx->r, "GET t:mw:worker:lease");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "wz"); /* not overwritten */
    freeReplyObject(rep);

    /* The lease is free again: A takes it on its next try (every 3 s) and
     * rebuilds, so the ticket it missed reaches it. */
    rep = mwt_cmd(fx->r, "DEL t:mw:worker:lease");
    freeReplyObject(rep);
    {
        struct feed_ids f = {&fx->a, 1, {late}};
        assert_true(mwt_run_until(fx->loop, feed_has_ids, &f, 6.0));
    }
    assert_true(mwt_run_until(fx->loop, lease_is_wa, fx, 1.0));
    wait_no_pending(fx);
}

static bool refused_reason(void *ud)
{
    struct inst *in = ud;
    char reason[256] = "";

    return in->st.ops->ready(in->st.impl, reason, sizeof(reason)) == MW_EUNAVAIL &&
           strstr(reason, "refused") != NULL;
}

/* CHN-100/101: Redis down at start: not ready with a reason, every op
 * fails synchronously with MW_EUNAVAIL (no callback); up later: works. */
static void test_unavailable_at_start(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis r = {0};
    struct fx fx = {0};
    struct inst in = {0};
    struct cbrec c = {.fx = &fx};
    struct mw_enqueue_req req = req_for("p", NULL, true);
    char reason[256] = "";
    char id[MW_TICKET_ID_LEN + 1];

    (void)state;
    r.port = mwt_free_port();
    fx.loop = loop;
    fx.r = &r;
    fx.t0 = mwt_now_ms();
    assert_int_equal(inst_make(&fx, &in, 42, "w"), 0);
    /* Until the first attempt fails the reason is "connecting". */
    assert_true(mwt_run_until(loop, refused_reason, &in, 5.0));
    assert_int_equal(in.st.ops->ready(in.st.impl, reason, sizeof(reason)), MW_EUNAVAIL);
    assert_non_null(strstr(reason, "refused"));
    assert_int_equal(mw_ticket_store_create(&in.st, &req, fx.t0, on_ticket, &c), MW_EUNAVAIL);
    assert_int_equal(mw_ticket_store_get(&in.st, "x", on_ticket, &c), MW_EUNAVAIL);
    assert_int_equal(mw_ticket_store_cancel(&in.st, "x", 0, on_ticket, &c), MW_EUNAVAIL);
    assert_int_equal(mw_ticket_store_attach(&in.st, "x", 0, on_ticket, &c), MW_EUNAVAIL);
    /* A detach is owed, not refused: sent once Redis is reachable
     * (CHN-074; fault_lost_reply checks that it arrives). */
    assert_int_equal(mw_ticket_store_detach(&in.st, "x", 0), 0);
    assert_int_equal(mw_ticket_store_sweep(&in.st, 0), MW_EUNAVAIL);
    mwt_run_until(loop, NULL, NULL, 0.05);
    assert_int_equal(c.calls, 0);
    assert_int_equal(mwt_redis_start(&r), 0);
    assert_true(mwt_run_until(loop, inst_ready, &in, 3.0));
    create_ok(&fx, &in, "p", NULL, true, fx.t0, id);
    mw_ticket_store_destroy(&in.st);
    mwt_redis_stop(&r, SIGTERM);
    ev_loop_destroy(loop);
}

static bool lease_is_wa(void *ud)
{
    struct fx *fx = ud;
    redisReply *rep = mwt_cmd(fx->r, "GET t:mw:worker:lease");
    bool ok = rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "wa") == 0;

    if (rep)
        freeReplyObject(rep);
    return ok;
}

static bool resub_2(void *ud)
{
    return inst_ready(ud) && ((struct inst *)ud)->resub >= 2;
}

/* CHN-102: Redis restarted mid-run: a request in flight fails with
 * MW_EUNAVAIL (exactly once), the store reconnects and resubscribes (the
 * hook fires), the feed rebuilds its group, and operations work again. */
static void test_restart_mid_run(void **state)
{
    struct fx *fx = *state;
    struct cbrec c = {.fx = fx};
    char id[MW_TICKET_ID_LEN + 1];
    redisReply *rep;

    assert_int_equal(mw_ticket_store_feed(&fx->a.st, on_feed, &fx->a), 0);
    /* The feed is live (it holds the lease) before the server dies. */
    assert_true(mwt_run_until(fx->loop, lease_is_wa, fx, 5.0));
    /* Hold every client's commands (CLIENT PAUSE answers once the pause is
     * in force, so no "is it busy yet?" sleep) so a request is in flight
     * when the server dies. */
    {
        struct mw_enqueue_req req = req_for("inflight", NULL, false);

        rep = mwt_cmd(fx->r, "CLIENT PAUSE 30000 ALL");
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_STATUS);
        freeReplyObject(rep);
        assert_int_equal(mw_ticket_store_create(&fx->a.st, &req, fx->t0, on_ticket, &c), 0);
        mwt_run_until(fx->loop, NULL, NULL, 0.05);
        assert_int_equal(c.calls, 0); /* held by the pause */
        mwt_redis_stop(fx->r, SIGKILL);
    }
    assert_true(mwt_run_until(fx->loop, called, &c, 3.0));
    assert_int_equal(c.status, MW_EUNAVAIL);
    assert_false(c.has_t);
    mwt_run_until(fx->loop, NULL, NULL, 0.2);
    assert_int_equal(c.calls, 1);
    cbrec_reset(&c);
    assert_int_equal(mwt_redis_start(fx->r), 0);
    assert_true(mwt_run_until(fx->loop, resub_2, &fx->a, 5.0));
    assert_true(mwt_run_until(fx->loop, resub_2, &fx->b, 5.0));
    rep = mwt_cmd(fx->r, "DBSIZE");
    freeReplyObject(rep);
    create_ok(fx, &fx->b, "afterwards", NULL, false, fx->t0, id);
    {
        /* The flake this replaced: "n_feed + 1" counted after create_ok
         * missed an entry the feed had delivered while create_ok still
         * waited for its reply (seen 3 runs in 10 under load). */
        struct feed_ids f = {&fx->a, 1, {id}};
        assert_true(mwt_run_until(fx->loop, feed_has_ids, &f, 10.0));
    }
}

/* Destroy with requests in flight: each callback runs once, MW_ECLOSED. */
int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_across_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_replayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evalsha_noscript, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_notices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_detach_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_and_forgetting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_cas_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_publishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_stream_ack_and_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_claims_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_lease_renewal, setup, teardown),
        cmocka_unit_test(test_unavailable_at_start),
        cmocka_unit_test_setup_teardown(test_restart_mid_run, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
