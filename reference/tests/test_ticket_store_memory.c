/* Tests for what is particular to the in-memory ticket store: deferred
 * delivery with snapshots and its order (creator, feed, on_ended), exact
 * counts, detach's codes, the bound, rehashing, OOM injection, pinned
 * records, destroy in order and from a callback. The behaviour every
 * backend shares is the contract suite's (contract_ticket_store.h, run here
 * by contract_ticket_store_memory.c). */
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

#include "alloc.h"
#include "defer.h"
#include "error.h"
#include "fake_random.h"
#include "ticket_store_memory.h"

#define TTL   10000
#define ATTL  5000
#define GRACE 3000
#define T0    1700000000000LL

struct fx;

/* One expected callback: what it received, and when (fixture sequence). */
struct cbrec {
    struct fx *fx;
    int calls;
    int status;
    bool has_t;
    struct mw_ticket t;
    int seq;
    /* assign results */
    size_t failed, n;
    struct mw_ticket at[MW_MATCH_SIZE_MAX];
};

struct feed_ev {
    enum mw_feed_event ev;
    char id[MW_TICKET_ID_LEN + 1];
    enum mw_ticket_state state;
    uint64_t version;
    int seq;
};

struct fx {
    struct mw_defer *d;
    struct mw_ticket_store st;
    struct fake_rng rng;
    int seq;
    struct feed_ev feed[64];
    size_t n_feed;
    struct feed_ev ended[64];
    size_t n_ended;
    bool destroy_in_cb;
};

static void cbrec_reset(struct cbrec *c)
{
    mw_ticket_clear(&c->t);
    for (size_t i = 0; i < c->n; i++)
        mw_ticket_clear(&c->at[i]);
    struct fx *fx = c->fx;
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
    if (c->fx->destroy_in_cb) {
        c->fx->destroy_in_cb = false;
        mw_ticket_store_destroy(&c->fx->st);
    }
}

static void on_assign(void *ud, const struct mw_assign_result *r)
{
    struct cbrec *c = ud;

    c->calls++;
    c->status = r->status;
    c->failed = r->failed;
    c->seq = ++c->fx->seq;
    for (size_t i = 0; i < c->n; i++)
        mw_ticket_clear(&c->at[i]);
    c->n = r->n;
    for (size_t i = 0; i < r->n; i++)
        assert_int_equal(mw_ticket_copy(&c->at[i], &r->tickets[i]), 0);
}

static void on_feed(void *ud, enum mw_feed_event ev, const struct mw_ticket *t)
{
    struct fx *fx = ud;
    struct feed_ev *e = &fx->feed[fx->n_feed++];

    e->ev = ev;
    memcpy(e->id, t->id, sizeof(e->id));
    e->state = t->state;
    e->version = t->version;
    e->seq = ++fx->seq;
}

static void on_ended(void *ud, const struct mw_ticket *t)
{
    struct fx *fx = ud;
    struct feed_ev *e = &fx->ended[fx->n_ended++];

    memcpy(e->id, t->id, sizeof(e->id));
    e->state = t->state;
    e->version = t->version;
    e->seq = ++fx->seq;
}

static int fx_make(struct fx *fx, size_t max_tickets)
{
    struct mw_ticket_store_config cfg = {.ticket_ttl_ms = TTL,
                                         .assigned_ttl_ms = ATTL,
                                         .grace_ms = GRACE,
                                         .max_tickets = max_tickets};

    fx->rng.s = 0x9e3779b97f4a7c15ULL;
    fx->d = mw_defer_new(NULL, NULL);
    if (!fx->d)
        return -1;
    if (mw_ticket_store_memory_new(&fx->st, &cfg,
                                   &(struct mw_ticket_store_hooks){.on_ended = on_ended, .ud = fx},
                                   fx->d, fake_rng_fill, &fx->rng) != 0)
        return -1;
    return 0;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (!fx || fx_make(fx, 0) != 0)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    mw_ticket_store_destroy(&fx->st);
    mw_defer_free(fx->d);
    free(fx);
    return 0;
}

static void store_counts(struct mw_ticket_store *st, uint64_t n[4])
{
    mw_ticket_store_counts(st, n);
}

static void run(struct fx *fx)
{
    while (mw_defer_pending(fx->d))
        mw_defer_run(fx->d, 0);
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

/* Creates a ticket and runs the loop; returns its id in out. */
static void create_ok(struct fx *fx, const char *player, const char *key, bool watched, int64_t now,
                      char out[MW_TICKET_ID_LEN + 1])
{
    struct cbrec c = {.fx = fx};
    struct mw_enqueue_req r = req_for(player, key, watched);

    assert_int_equal(mw_ticket_store_create(&fx->st, &r, now, on_ticket, &c), 0);
    run(fx);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, 0);
    memcpy(out, c.t.id, MW_TICKET_ID_LEN + 1);
    cbrec_reset(&c);
}

static void fill_match(struct mw_match *m, size_t n, char ids[][MW_TICKET_ID_LEN + 1],
                       const uint64_t *versions)
{
    static const char *const env = "{\"type\":\"match.assigned\",\"v\":1,\"data\":{}}";

    memset(m, 0, sizeof(*m));
    snprintf(m->match_id, sizeof(m->match_id), "00000000-0000-4000-8000-000000000001");
    snprintf(m->connection, sizeof(m->connection), "gs1:7777");
    m->assigned_ms = T0 + 100;
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        memcpy(m->ticket_ids[i], ids[i], MW_TICKET_ID_LEN + 1);
        snprintf(m->player_ids[i], sizeof(m->player_ids[i]), "p%zu", i);
        m->versions[i] = versions ? versions[i] : 2;
        m->envelopes[i] = env;
        m->envelope_lens[i] = strlen(env);
    }
}

static void get_ok(struct fx *fx, const char *id, struct cbrec *c)
{
    assert_int_equal(mw_ticket_store_get(&fx->st, id, on_ticket, c), 0);
    run(fx);
}

/* ---- Tests ---------------------------------------------------------------- */

static void test_create_deferred_snapshot(void **state)
{
    struct fx *fx = *state;
    struct cbrec c = {.fx = fx}, c2 = {.fx = fx};
    struct mw_enqueue_req r = req_for("alice", NULL, true);
    char attrs[] = "{\"region\":\"eu\"}";
    uint64_t n[4];

    snprintf(r.region, sizeof(r.region), "eu");
    r.attributes_json = attrs;
    assert_int_equal(mw_ticket_store_create(&fx->st, &r, T0, on_ticket, &c), 0);
    assert_int_equal(c.calls, 0); /* never before the call returns */
    /* Cancel it before the loop runs: the create callback must still see
     * the ticket as it was at creation (a snapshot). */
    run(fx);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, 0);
    assert_true(mw_uuid4_valid(c.t.id, strlen(c.t.id)));
    assert_string_equal(c.t.queue, "duel");
    assert_string_equal(c.t.player_id, "alice");
    assert_string_equal(c.t.region, "eu");
    assert_string_equal(c.t.attributes_json, attrs);
    assert_int_equal(c.t.state, MW_TICKET_QUEUED);
    assert_int_equal(c.t.version, 1);
    assert_int_equal(c.t.created_ms, T0);
    assert_int_equal(c.t.expires_ms, T0 + TTL);
    assert_null(c.t.assigned_envelope);

    /* Snapshot: create + cancel in one turn; the create callback sees v1. */
    struct cbrec cc = {.fx = fx};
    struct mw_enqueue_req r2 = req_for("bob", NULL, false);
    assert_int_equal(mw_ticket_store_create(&fx->st, &r2, T0, on_ticket, &c2), 0);
    run(fx);
    char id2[MW_TICKET_ID_LEN + 1];
    memcpy(id2, c2.t.id, sizeof(id2));
    cbrec_reset(&c2);
    assert_int_equal(mw_ticket_store_get(&fx->st, id2, on_ticket, &c2), 0);
    assert_int_equal(mw_ticket_store_cancel(&fx->st, id2, T0 + 1, on_ticket, &cc), 0);
    run(fx);
    assert_int_equal(c2.t.state, MW_TICKET_QUEUED);
    assert_int_equal(c2.t.version, 1);
    assert_int_equal(cc.t.state, MW_TICKET_CANCELLED);
    assert_int_equal(cc.t.version, 2);
    assert_true(c2.seq < cc.seq); /* delivered in operation order */

    store_counts(&fx->st, n);
    assert_int_equal(n[MW_TICKET_QUEUED], 1);
    assert_int_equal(n[MW_TICKET_CANCELLED], 1);
    assert_int_equal(fx->st.ops->ready(fx->st.impl, NULL, 0), 0);
    cbrec_reset(&c);
    cbrec_reset(&c2);
    cbrec_reset(&cc);
}

static void test_feed_order_and_replay(void **state)
{
    struct fx *fx = *state;
    struct cbrec c = {.fx = fx};
    char early[MW_TICKET_ID_LEN + 1];
    struct mw_enqueue_req r = req_for("bob", NULL, true);

    /* A ticket created before anyone subscribed is replayed on subscribe. */
    create_ok(fx, "early", NULL, false, T0, early);
    assert_int_equal(mw_ticket_store_feed(&fx->st, on_feed, fx), 0);
    assert_int_equal(mw_ticket_store_feed(&fx->st, on_feed, fx), MW_EEXIST);
    assert_int_equal(fx->n_feed, 0);
    run(fx);
    assert_int_equal(fx->n_feed, 1);
    assert_string_equal(fx->feed[0].id, early);
    assert_int_equal(fx->feed[0].ev, MW_FEED_QUEUED);

    /* The creator's callback comes before the feed event (MSG-027). */
    assert_int_equal(mw_ticket_store_create(&fx->st, &r, T0, on_ticket, &c), 0);
    run(fx);
    assert_int_equal(fx->n_feed, 2);
    assert_int_equal(fx->feed[1].ev, MW_FEED_QUEUED);
    assert_string_equal(fx->feed[1].id, c.t.id);
    assert_int_equal(fx->feed[1].version, 1);
    assert_true(c.seq < fx->feed[1].seq);

    /* Cancel: REMOVED on the feed, then on_ended, after the cancel reply. */
    struct cbrec cc = {.fx = fx};
    assert_int_equal(mw_ticket_store_cancel(&fx->st, c.t.id, T0 + 5, on_ticket, &cc), 0);
    run(fx);
    assert_int_equal(cc.status, 0);
    assert_int_equal(fx->n_feed, 3);
    assert_int_equal(fx->feed[2].ev, MW_FEED_REMOVED);
    assert_int_equal(fx->feed[2].state, MW_TICKET_CANCELLED);
    assert_int_equal(fx->feed[2].version, 2);
    assert_int_equal(fx->n_ended, 1);
    assert_string_equal(fx->ended[0].id, c.t.id);
    assert_true(cc.seq < fx->feed[2].seq);
    assert_true(fx->feed[2].seq < fx->ended[0].seq);
    cbrec_reset(&c);
    cbrec_reset(&cc);
}

/* This backend's detach answers what it found (the contract only asks 0 for
 * a counted watcher): MW_ESTATE for a queued ticket with no watcher left,
 * MW_ENOTFOUND for an unknown or forgotten one, 0 for a final ticket (its
 * count is not kept, CHN-071). */
static void test_detach_codes(void **state)
{
    struct fx *fx = *state;
    char w[MW_TICKET_ID_LEN + 1];
    struct cbrec c = {.fx = fx};
    uint64_t n[4];

    create_ok(fx, "ws", NULL, true, T0, w); /* created over WebSocket: 1 watcher */
    assert_int_equal(mw_ticket_store_detach(&fx->st, w, T0 + 1000), 0);
    assert_int_equal(mw_ticket_store_detach(&fx->st, w, T0 + 1000), MW_ESTATE);
    assert_int_equal(mw_ticket_store_detach(&fx->st, "nope", T0), MW_ENOTFOUND);
    assert_int_equal(mw_ticket_store_sweep(&fx->st, T0 + 1000 + GRACE), 1);
    run(fx);
    assert_int_equal(mw_ticket_store_detach(&fx->st, w, T0 + 9000), 0);
    assert_int_equal(mw_ticket_store_detach(&fx->st, w, T0 + 9000), 0);
    assert_int_equal(mw_ticket_store_attach(&fx->st, w, T0 + 9000, on_ticket, &c), 0);
    run(fx);
    assert_int_equal(c.t.state, MW_TICKET_CANCELLED);
    assert_int_equal(mw_ticket_store_sweep(&fx->st, T0 + 1000 + GRACE + ATTL), 1);
    assert_int_equal(mw_ticket_store_detach(&fx->st, w, T0), MW_ENOTFOUND);
    store_counts(&fx->st, n); /* exact, at once */
    assert_int_equal(n[0] + n[1] + n[2] + n[3], 0);
    cbrec_reset(&c);
}

static void test_bound(void **state)
{
    struct fx fx = {0};
    char ids[3][MW_TICKET_ID_LEN + 1];
    struct cbrec c = {.fx = &fx};
    struct mw_enqueue_req r = req_for("x", NULL, false);
    struct mw_enqueue_req ri = req_for("i", "key", false);

    (void)state;
    assert_int_equal(fx_make(&fx, 3), 0);
    create_ok(&fx, "i", "key", false, T0, ids[0]);
    create_ok(&fx, "b", NULL, false, T0, ids[1]);
    create_ok(&fx, "c", NULL, false, T0, ids[2]);
    assert_int_equal(mw_ticket_store_create(&fx.st, &r, T0, on_ticket, &c), MW_ELIMIT);
    /* An idempotent replay is not a new ticket: allowed at the bound. */
    assert_int_equal(mw_ticket_store_create(&fx.st, &ri, T0, on_ticket, &c), 0);
    run(&fx);
    assert_int_equal(c.calls, 1);
    assert_string_equal(c.t.id, ids[0]);
    /* Ended and forgotten tickets free their slot. */
    assert_int_equal(mw_ticket_store_sweep(&fx.st, T0 + TTL), 3);
    assert_int_equal(mw_ticket_store_create(&fx.st, &r, T0 + TTL, on_ticket, &c), MW_ELIMIT);
    assert_int_equal(mw_ticket_store_sweep(&fx.st, T0 + TTL + ATTL), 3);
    assert_int_equal(mw_ticket_store_create(&fx.st, &r, T0 + TTL + ATTL, on_ticket, &c), 0);
    run(&fx);
    assert_int_equal(c.calls, 2);
    cbrec_reset(&c);
    mw_ticket_store_destroy(&fx.st);
    mw_defer_free(fx.d);
}

static void test_many_tickets_rehash(void **state)
{
    struct fx *fx = *state;
    static char ids[2000][MW_TICKET_ID_LEN + 1];
    struct cbrec g = {.fx = fx};

    for (int i = 0; i < 2000; i++) {
        char p[16], k[16];
        snprintf(p, sizeof(p), "p%d", i);
        snprintf(k, sizeof(k), "k%d", i % 7);
        create_ok(fx, p, k, false, T0 + i, ids[i]);
    }
    for (int i = 0; i < 2000; i += 97) {
        get_ok(fx, ids[i], &g);
        assert_int_equal(g.status, 0);
        assert_string_equal(g.t.id, ids[i]);
        char p[16];
        snprintf(p, sizeof(p), "p%d", i);
        assert_string_equal(g.t.player_id, p);
    }
    char again[MW_TICKET_ID_LEN + 1];
    create_ok(fx, "p1234", "k2", false, T0, again); /* 1234 % 7 == 2 */
    assert_string_equal(again, ids[1234]);
    assert_int_equal(mw_ticket_store_sweep(&fx->st, T0 + TTL + 999), 1000);
    assert_int_equal(mw_ticket_store_sweep(&fx->st, T0 + TTL + 2000 + ATTL), 2000);
    cbrec_reset(&g);
}

static void test_random_failure(void **state)
{
    struct fx *fx = *state;
    struct cbrec c = {.fx = fx};
    struct mw_enqueue_req r = req_for("x", NULL, false);

    fx->rng.fail = MW_EIO;
    assert_int_equal(mw_ticket_store_create(&fx->st, &r, T0, on_ticket, &c), MW_EIO);
    run(fx);
    assert_int_equal(c.calls, 0);
    fx->rng.fail = 0;
}

/* Every allocation of an operation, failed in turn: the call fails with
 * MW_ENOMEM, its callback never runs, nothing changes; then it succeeds. */
static void test_oom(void **state)
{
    struct fx *fx = *state;
    char ids[2][MW_TICKET_ID_LEN + 1];
    struct cbrec c = {.fx = fx}, ac = {.fx = fx};
    struct mw_enqueue_req r = req_for("x", "k", true);
    char attrs[] = "{\"a\":1}";
    uint64_t n[4];
    long k;
    int rc;

    assert_int_equal(mw_ticket_store_feed(&fx->st, on_feed, fx), 0);
    r.attributes_json = attrs;
    for (k = 0;; k++) {
        mw_alloc_fail_after(k);
        rc = mw_ticket_store_create(&fx->st, &r, T0, on_ticket, &c);
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        run(fx);
        assert_int_equal(c.calls, 0);
        assert_int_equal(fx->n_feed, 0);
        store_counts(&fx->st, n);
        assert_int_equal(n[0], 0);
    }
    assert_true(k >= 4);
    run(fx);
    assert_int_equal(c.calls, 1);
    assert_int_equal(fx->n_feed, 1);
    memcpy(ids[0], c.t.id, sizeof(ids[0]));
    create_ok(fx, "y", NULL, false, T0, ids[1]);

    struct mw_match m;
    fill_match(&m, 2, ids, NULL);
    for (k = 0;; k++) {
        mw_alloc_fail_after(k);
        rc = mw_ticket_store_assign(&fx->st, &m, on_assign, &ac);
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        run(fx);
        assert_int_equal(ac.calls, 0);
        store_counts(&fx->st, n);
        assert_int_equal(n[MW_TICKET_QUEUED], 2);
    }
    /* The op, one block of snapshots, one envelope per ticket (the
     * snapshots borrow the records' envelopes). */
    assert_int_equal(k, 2 + 2);
    run(fx);
    assert_int_equal(ac.status, 0);

    /* cancel and sweep under OOM */
    char q[MW_TICKET_ID_LEN + 1];
    create_ok(fx, "z", NULL, false, T0, q);
    int before = c.calls;
    for (k = 0;; k++) {
        mw_alloc_fail_after(k);
        rc = mw_ticket_store_cancel(&fx->st, q, T0, on_ticket, &c);
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        run(fx);
        assert_int_equal(c.calls, before);
    }
    run(fx);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.t.version, 2);

    create_ok(fx, "s", NULL, false, T0, q);
    mw_alloc_fail_after(0);
    assert_int_equal(mw_ticket_store_sweep(&fx->st, T0 + TTL), MW_ENOMEM);
    mw_alloc_fail_reset();
    /* "s" expires; the two assigned and the cancelled one are forgotten. */
    assert_int_equal(mw_ticket_store_sweep(&fx->st, T0 + TTL), 4);
    cbrec_reset(&c);
    cbrec_reset(&ac);
}

static void test_destroy_pending(void **state)
{
    struct fx fx = {0};
    struct cbrec c1 = {.fx = &fx}, c2 = {.fx = &fx}, ac = {.fx = &fx};
    char ids[1][MW_TICKET_ID_LEN + 1];
    struct mw_enqueue_req r = req_for("x", NULL, true);
    struct mw_match m;

    (void)state;
    assert_int_equal(fx_make(&fx, 0), 0);
    assert_int_equal(mw_ticket_store_feed(&fx.st, on_feed, &fx), 0);
    create_ok(&fx, "a", NULL, false, T0, ids[0]);
    fx.n_feed = 0;
    assert_int_equal(mw_ticket_store_create(&fx.st, &r, T0, on_ticket, &c1), 0);
    assert_int_equal(mw_ticket_store_get(&fx.st, ids[0], on_ticket, &c2), 0);
    fill_match(&m, 1, ids, NULL);
    assert_int_equal(mw_ticket_store_assign(&fx.st, &m, on_assign, &ac), 0);
    assert_true(mw_defer_pending(fx.d) > 0);
    mw_ticket_store_destroy(&fx.st);
    /* Pending callbacks got MW_ECLOSED, in order; feed events were dropped. */
    assert_int_equal(c1.calls, 1);
    assert_int_equal(c1.status, MW_ECLOSED);
    assert_int_equal(c2.status, MW_ECLOSED);
    assert_int_equal(ac.calls, 1);
    assert_int_equal(ac.status, MW_ECLOSED);
    assert_true(c1.seq < c2.seq && c2.seq < ac.seq);
    assert_int_equal(fx.n_feed, 0);
    /* The pump call was withdrawn: running the loop touches nothing. */
    assert_int_equal(mw_defer_pending(fx.d), 0);
    mw_defer_run(fx.d, 0);
    mw_defer_free(fx.d);
    mw_ticket_store_destroy(NULL);

    /* Destroyed from inside a callback: the rest get MW_ECLOSED. */
    struct fx fx2 = {0};
    struct cbrec d1 = {.fx = &fx2}, d2 = {.fx = &fx2};
    assert_int_equal(fx_make(&fx2, 0), 0);
    assert_int_equal(mw_ticket_store_create(&fx2.st, &r, T0, on_ticket, &d1), 0);
    assert_int_equal(mw_ticket_store_create(&fx2.st, &r, T0, on_ticket, &d2), 0);
    fx2.destroy_in_cb = true;
    run(&fx2);
    assert_int_equal(d1.status, 0);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d2.status, MW_ECLOSED);
    mw_defer_free(fx2.d);
    cbrec_reset(&d1);
}

/* An assign result borrows the records' envelopes: a sweep that runs
 * before it is delivered, at a time when the tickets are due to be
 * forgotten, keeps them until the result is out (ASan checks the borrow);
 * the next sweep forgets them. */
static void test_assign_result_pins_records(void **state)
{
    struct fx *fx = *state;
    char ids[2][MW_TICKET_ID_LEN + 1];
    struct cbrec ac = {.fx = fx}, g = {.fx = fx};
    struct mw_match m;

    create_ok(fx, "a", NULL, false, T0, ids[0]);
    create_ok(fx, "b", NULL, false, T0, ids[1]);
    fill_match(&m, 2, ids, NULL);
    assert_int_equal(mw_ticket_store_assign(&fx->st, &m, on_assign, &ac), 0);
    /* Not delivered yet: nothing to forget. */
    assert_int_equal(mw_ticket_store_sweep(&fx->st, m.assigned_ms + ATTL + 1), 0);
    run(fx);
    assert_int_equal(ac.calls, 1);
    assert_int_equal(ac.status, 0);
    assert_int_equal(ac.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(ac.at[i].id, ids[i]);
        assert_int_equal(ac.at[i].state, MW_TICKET_ASSIGNED);
        assert_int_equal(ac.at[i].version, 2);
        assert_int_equal(ac.at[i].assigned_envelope_len, m.envelope_lens[i]);
        assert_memory_equal(ac.at[i].assigned_envelope, m.envelopes[i], m.envelope_lens[i]);
    }
    assert_int_equal(mw_ticket_store_sweep(&fx->st, m.assigned_ms + ATTL + 1), 2);
    get_ok(fx, ids[0], &g);
    assert_int_equal(g.status, MW_ENOTFOUND);
    for (size_t i = 0; i < ac.n; i++)
        mw_ticket_clear(&ac.at[i]);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_deferred_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_order_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_codes, setup, teardown),
        cmocka_unit_test(test_bound),
        cmocka_unit_test_setup_teardown(test_many_tickets_rehash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_result_pins_records, setup, teardown),
        cmocka_unit_test(test_destroy_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
