/* Tests for the worker with the real memory store and a fake channel (an
 * ops table recording every publish), and with a fake store (an ops table
 * whose assign and readiness the test controls) for the store faults. */
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
#include "worker.h"

#define T0 1700000000000LL

/* ---- Fake channel ------------------------------------------------------------ */

struct pub {
    char ticket_id[MW_TICKET_ID_LEN + 1];
    char envelope[1024];
    uint64_t version;
    int64_t assigned_ms;
};

struct fake_channel {
    struct pub pubs[64];
    size_t n;
    int fail; /* publish returns this when non-zero */
};

static int fc_publish(void *impl, const struct mw_assigned *m)
{
    struct fake_channel *fc = impl;
    struct pub *p;

    if (fc->fail)
        return fc->fail;
    assert_true(fc->n < 64);
    p = &fc->pubs[fc->n++];
    snprintf(p->ticket_id, sizeof(p->ticket_id), "%s", m->ticket_id);
    assert_true(m->envelope_len < sizeof(p->envelope));
    memcpy(p->envelope, m->envelope, m->envelope_len);
    p->envelope[m->envelope_len] = '\0';
    p->version = m->version;
    p->assigned_ms = m->assigned_ms;
    return 0;
}

static int fc_subscribe(void *impl, mw_channel_cb cb, void *ud)
{
    (void)impl;
    (void)cb;
    (void)ud;
    return MW_EINVAL; /* the worker never subscribes */
}

static void fc_destroy(void *impl)
{
    (void)impl;
}

static const struct mw_channel_ops fc_ops = {
    .publish = fc_publish, .subscribe = fc_subscribe, .destroy = fc_destroy};

/* ---- Fixture --------------------------------------------------------------------- */

struct fx {
    struct mw_defer *d;
    struct mw_ticket_store st;
    bool st_alive;
    struct fake_channel fc;
    struct mw_channel ch;
    struct fake_rng rng, mrng;
    struct fake_clock clock;
    struct mw_worker *w;
};

static struct mw_worker_config wcfg(unsigned size, size_t n_servers)
{
    struct mw_worker_config c;

    memset(&c, 0, sizeof(c));
    c.mm.match_size = size;
    c.n_game_servers = n_servers;
    for (size_t i = 0; i < n_servers; i++)
        snprintf(c.game_servers[i], sizeof(c.game_servers[i]), "gs%zu.example:%zu", i + 1,
                 7000 + i);
    return c;
}

static int fx_init(struct fx *fx, unsigned size, size_t n_servers)
{
    struct mw_worker_config c = wcfg(size, n_servers);

    memset(fx, 0, sizeof(*fx));
    fx->rng.s = 7;
    fx->mrng.s = 99;
    fx->clock.now_ms = T0;
    fx->d = mw_defer_new(NULL, NULL);
    if (!fx->d || mw_ticket_store_memory_new(&fx->st, NULL, NULL, fx->d, fake_rng_fill, &fx->rng))
        return -1;
    fx->st_alive = true;
    fx->ch = (struct mw_channel){.ops = &fc_ops, .impl = &fx->fc};
    fx->w =
        mw_worker_new(&c, &fx->st, &fx->ch, fake_rng_fill, &fx->mrng, fake_clock_now, &fx->clock);
    return fx->w ? 0 : -1;
}

static void fx_fini(struct fx *fx)
{
    /* The documented order: store first, then the worker. */
    if (fx->st_alive)
        mw_ticket_store_destroy(&fx->st);
    mw_worker_free(fx->w);
    mw_defer_free(fx->d);
}

static void run(struct fx *fx)
{
    while (mw_defer_pending(fx->d))
        mw_defer_run(fx->d, 0);
}

struct got {
    int calls;
    int status;
    struct mw_ticket t;
};

static void on_ticket(void *ud, int status, const struct mw_ticket *t)
{
    struct got *g = ud;

    g->calls++;
    g->status = status;
    mw_ticket_clear(&g->t);
    memset(&g->t, 0, sizeof(g->t));
    if (t)
        assert_int_equal(mw_ticket_copy(&g->t, t), 0);
}

static void create(struct fx *fx, const char *player, const char *region,
                   char out[MW_TICKET_ID_LEN + 1])
{
    struct mw_enqueue_req r;
    struct got g = {0};

    memset(&r, 0, sizeof(r));
    snprintf(r.queue, sizeof(r.queue), "duel");
    snprintf(r.player_id, sizeof(r.player_id), "%s", player);
    snprintf(r.region, sizeof(r.region), "%s", region);
    assert_int_equal(mw_ticket_store_create(&fx->st, &r, fx->clock.now_ms, on_ticket, &g), 0);
    run(fx);
    assert_int_equal(g.status, 0);
    memcpy(out, g.t.id, MW_TICKET_ID_LEN + 1);
    mw_ticket_clear(&g.t);
}

static void get(struct fx *fx, const char *id, struct got *g)
{
    assert_int_equal(mw_ticket_store_get(&fx->st, id, on_ticket, g), 0);
    run(fx);
}

/* ---- Tests ------------------------------------------------------------------------ */

static void test_two_tickets_one_match(void **state)
{
    struct fx fx;
    char a[MW_TICKET_ID_LEN + 1], b[MW_TICKET_ID_LEN + 1];
    struct got g = {0};
    struct mw_worker_stats st;

    (void)state;
    assert_int_equal(fx_init(&fx, 2, 1), 0);
    create(&fx, "alice", "eu", a);
    assert_int_equal(mw_worker_waiting(fx.w), 1);
    fx.clock.now_ms = T0 + 250;
    create(&fx, "bob", "eu", b);
    assert_int_equal(mw_worker_waiting(fx.w), 0);

    /* The store says assigned (version 2) with the envelope... */
    get(&fx, a, &g);
    assert_int_equal(g.t.state, MW_TICKET_ASSIGNED);
    assert_int_equal(g.t.version, 2);
    assert_non_null(g.t.assigned_envelope);
    assert_non_null(strstr(g.t.assigned_envelope, a));
    assert_null(strstr(g.t.assigned_envelope, b)); /* MSG-061 */
    assert_non_null(strstr(g.t.assigned_envelope, "\"connection\":\"gs1.example:7000\""));
    assert_non_null(strstr(g.t.assigned_envelope,
                           "\"players\":[{\"playerId\":\"alice\"},{\"playerId\":\"bob\"}]"));
    assert_non_null(strstr(g.t.assigned_envelope, "\"assignedAt\":\"2023-11-14T22:13:20.250Z\""));
    /* ...and the channel got one payload per ticket, same envelope. */
    assert_int_equal(fx.fc.n, 2);
    assert_string_equal(fx.fc.pubs[0].ticket_id, a);
    assert_string_equal(fx.fc.pubs[1].ticket_id, b);
    assert_int_equal(fx.fc.pubs[0].version, 2);
    assert_int_equal(fx.fc.pubs[1].version, 2);
    assert_int_equal(fx.fc.pubs[0].assigned_ms, T0 + 250);
    assert_string_equal(fx.fc.pubs[0].envelope, g.t.assigned_envelope);
    get(&fx, b, &g);
    assert_string_equal(fx.fc.pubs[1].envelope, g.t.assigned_envelope);
    /* Both envelopes carry the same match id. */
    const char *m0 = strstr(fx.fc.pubs[0].envelope, "\"matchId\":\"");
    const char *m1 = strstr(fx.fc.pubs[1].envelope, "\"matchId\":\"");
    assert_non_null(m0);
    assert_non_null(m1);
    assert_memory_equal(m0, m1, 11 + MW_MATCH_ID_LEN);
    mw_worker_stats(fx.w, &st);
    assert_int_equal(st.matches, 1);
    assert_int_equal(st.published, 2);
    assert_int_equal(st.commit_conflicts, 0);
    mw_ticket_clear(&g.t);
    fx_fini(&fx);
}

static void test_regions_not_mixed(void **state)
{
    struct fx fx;
    char a[MW_TICKET_ID_LEN + 1], b[MW_TICKET_ID_LEN + 1], c[MW_TICKET_ID_LEN + 1];

    (void)state;
    assert_int_equal(fx_init(&fx, 2, 1), 0);
    create(&fx, "a", "eu", a);
    create(&fx, "b", "us", b);
    create(&fx, "c", "", c);
    assert_int_equal(fx.fc.n, 0);
    assert_int_equal(mw_worker_waiting(fx.w), 3);
    fx_fini(&fx);
}

static void test_conflict_requeues_others(void **state)
{
    struct fx fx;
    char a[MW_TICKET_ID_LEN + 1], b[MW_TICKET_ID_LEN + 1], c[MW_TICKET_ID_LEN + 1];
    struct got g = {0}, cg = {0};
    struct mw_enqueue_req r;
    struct mw_worker_stats st;

    (void)state;
    assert_int_equal(fx_init(&fx, 2, 1), 0);
    create(&fx, "alice", "", a);
    /* Same turn: bob's ticket is created, then alice's is cancelled, before
     * the worker hears of either. The worker forms (alice, bob) on bob's
     * QUEUED event; the commit fails on alice; bob goes back to the front. */
    memset(&r, 0, sizeof(r));
    snprintf(r.queue, sizeof(r.queue), "duel");
    snprintf(r.player_id, sizeof(r.player_id), "bob");
    assert_int_equal(mw_ticket_store_create(&fx.st, &r, T0, on_ticket, &g), 0);
    assert_int_equal(mw_ticket_store_cancel(&fx.st, a, T0, on_ticket, &cg), 0);
    run(&fx);
    memcpy(b, g.t.id, sizeof(b));
    mw_worker_stats(fx.w, &st);
    assert_int_equal(st.commit_conflicts, 1);
    assert_int_equal(st.matches, 0);
    assert_int_equal(fx.fc.n, 0);
    assert_int_equal(mw_worker_waiting(fx.w), 1); /* bob */
    /* The next ticket matches with bob, bob first. */
    create(&fx, "carol", "", c);
    assert_int_equal(fx.fc.n, 2);
    assert_string_equal(fx.fc.pubs[0].ticket_id, b);
    assert_string_equal(fx.fc.pubs[1].ticket_id, c);
    assert_non_null(
        strstr(fx.fc.pubs[0].envelope, "[{\"playerId\":\"bob\"},{\"playerId\":\"carol\"}]"));
    get(&fx, a, &g);
    assert_int_equal(g.t.state, MW_TICKET_CANCELLED);
    mw_worker_stats(fx.w, &st);
    assert_int_equal(st.matches, 1);
    mw_ticket_clear(&g.t);
    mw_ticket_clear(&cg.t);
    fx_fini(&fx);
}

static void test_removed_leaves_matchmaker(void **state)
{
    struct fx fx;
    char a[MW_TICKET_ID_LEN + 1], b[MW_TICKET_ID_LEN + 1];
    struct got g = {0};

    (void)state;
    assert_int_equal(fx_init(&fx, 2, 1), 0);
    create(&fx, "a", "", a);
    assert_int_equal(mw_worker_waiting(fx.w), 1);
    assert_int_equal(mw_ticket_store_cancel(&fx.st, a, T0, on_ticket, &g), 0);
    run(&fx);
    assert_int_equal(mw_worker_waiting(fx.w), 0);
    create(&fx, "b", "", b);
    assert_int_equal(fx.fc.n, 0); /* nothing to match with */
    /* Expiry removes it too (the sweep also forgets the cancelled one). */
    assert_int_equal(mw_ticket_store_sweep(&fx.st, T0 + 600 * 1000), 2);
    run(&fx);
    assert_int_equal(mw_worker_waiting(fx.w), 0);
    mw_ticket_clear(&g.t);
    fx_fini(&fx);
}

static void test_round_robin(void **state)
{
    struct fx fx;
    char id[MW_TICKET_ID_LEN + 1];
    char p[16];

    (void)state;
    assert_int_equal(fx_init(&fx, 1, 3), 0);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "p%d", i);
        create(&fx, p, "", id);
    }
    assert_int_equal(fx.fc.n, 4);
    assert_non_null(strstr(fx.fc.pubs[0].envelope, "gs1.example:7000"));
    assert_non_null(strstr(fx.fc.pubs[1].envelope, "gs2.example:7001"));
    assert_non_null(strstr(fx.fc.pubs[2].envelope, "gs3.example:7002"));
    assert_non_null(strstr(fx.fc.pubs[3].envelope, "gs1.example:7000"));
    fx_fini(&fx);
}

static void test_publish_failure_counted(void **state)
{
    struct fx fx;
    char a[MW_TICKET_ID_LEN + 1], b[MW_TICKET_ID_LEN + 1];
    struct got g = {0};
    struct mw_worker_stats st;

    (void)state;
    assert_int_equal(fx_init(&fx, 2, 1), 0);
    fx.fc.fail = MW_EUNAVAIL;
    create(&fx, "a", "", a);
    create(&fx, "b", "", b);
    mw_worker_stats(fx.w, &st);
    assert_int_equal(st.matches, 1);
    assert_int_equal(st.publish_errors, 2);
    get(&fx, a, &g); /* the store is the truth: still assigned */
    assert_int_equal(g.t.state, MW_TICKET_ASSIGNED);
    mw_ticket_clear(&g.t);
    fx_fini(&fx);
}

static void test_store_destroyed_in_flight(void **state)
{
    struct fx fx;
    char a[MW_TICKET_ID_LEN + 1];
    struct mw_enqueue_req r;
    struct got g = {0};

    (void)state;
    assert_int_equal(fx_init(&fx, 2, 1), 0);
    create(&fx, "a", "", a);
    memset(&r, 0, sizeof(r));
    snprintf(r.queue, sizeof(r.queue), "duel");
    snprintf(r.player_id, sizeof(r.player_id), "b");
    assert_int_equal(mw_ticket_store_create(&fx.st, &r, T0, on_ticket, &g), 0);
    /* Deliver the create result and the QUEUED event (the match forms and
     * its assign is called), not the assign result. */
    mw_defer_run(fx.d, 1);
    assert_int_equal(mw_worker_waiting(fx.w), 0);
    assert_int_equal(fx.fc.n, 0);
    mw_ticket_store_destroy(&fx.st); /* the commit callback: MW_ECLOSED */
    fx.st_alive = false;
    assert_int_equal(fx.fc.n, 0);
    mw_ticket_clear(&g.t);
    fx_fini(&fx); /* ASan: the commit was freed exactly once */
}

/* Finished commits are reused with their envelope buffers: after the first
 * match, forming one allocates less (no commit, no envelope growth) and the
 * same amount every time, and a reused commit's envelopes carry only their
 * own match (nothing left over from the previous one). */
static void test_commit_reuse(void **state)
{
    struct fx fx;
    char a[MW_TICKET_ID_LEN + 1], b[MW_TICKET_ID_LEN + 1];
    unsigned long per_match[20];
    char pa[32], pb[32], first_match_id[MW_MATCH_ID_LEN + 1] = "";

    (void)state;
    assert_int_equal(fx_init(&fx, 2, 1), 0);
    for (int k = 0; k < 20; k++) {
        unsigned long before;

        snprintf(pa, sizeof(pa), "p%da", k);
        snprintf(pb, sizeof(pb), "player-with-a-longer-name-%db", k);
        create(&fx, pa, "", a);
        before = mw_alloc_count();
        create(&fx, pb, "", b); /* forms and commits the match */
        per_match[k] = mw_alloc_count() - before;
        assert_int_equal(fx.fc.n, (size_t)(2 * k + 2));
        for (int j = 0; j < 2; j++) {
            const char *env = fx.fc.pubs[2 * k + j].envelope;
            char players[160];
            const char *mid = strstr(env, "\"matchId\":\"");

            snprintf(players, sizeof(players),
                     "\"players\":[{\"playerId\":\"%s\"},{\"playerId\":\"%s\"}]", pa, pb);
            assert_non_null(strstr(env, players));
            assert_non_null(strstr(env, j == 0 ? a : b));
            assert_null(strstr(env, j == 0 ? b : a));
            assert_non_null(mid);
            if (k == 0 && j == 0)
                memcpy(first_match_id, mid + 11, MW_MATCH_ID_LEN);
            else if (k > 0)
                assert_memory_not_equal(mid + 11, first_match_id, MW_MATCH_ID_LEN);
        }
    }
    assert_true(per_match[1] < per_match[0]);
    for (int k = 2; k < 20; k++)
        assert_int_equal(per_match[k], per_match[1]);
    fx_fini(&fx); /* ASan/LSan: the free list is released */
}

static void test_new_errors(void **state)
{
    struct fx fx;
    struct mw_worker_config c = wcfg(2, 1);

    (void)state;
    assert_int_equal(fx_init(&fx, 2, 1), 0);
    /* One feed subscriber per store: a second worker is refused. */
    assert_null(
        mw_worker_new(&c, &fx.st, &fx.ch, fake_rng_fill, &fx.mrng, fake_clock_now, &fx.clock));
    c.n_game_servers = 0;
    assert_null(
        mw_worker_new(&c, &fx.st, &fx.ch, fake_rng_fill, &fx.mrng, fake_clock_now, &fx.clock));
    fx_fini(&fx);
    mw_worker_free(NULL);

    /* OOM at construction. */
    struct mw_defer *d = mw_defer_new(NULL, NULL);
    struct mw_ticket_store st;
    struct fake_rng rng = {.s = 1};
    struct fake_clock clk = {.now_ms = T0};
    struct mw_channel ch = {.ops = &fc_ops, .impl = &fx.fc};
    assert_int_equal(mw_ticket_store_memory_new(&st, NULL, NULL, d, fake_rng_fill, &rng), 0);
    c.n_game_servers = 1;
    for (long k = 0; k < 3; k++) {
        mw_alloc_fail_after(k);
        struct mw_worker *w =
            mw_worker_new(&c, &st, &ch, fake_rng_fill, &rng, fake_clock_now, &clk);
        mw_alloc_fail_reset();
        assert_null(w);
    }
    mw_ticket_store_destroy(&st);
    mw_defer_free(d);
}

/* ---- Fake store: an ops table whose assign and ready the test controls ---------
 * (issue 11 item 2, spec/channel.md CHN-106: a commit the store cannot take
 * must not be retried in a tight loop, and is retried once it is ready.) */

#define FS_MAX_PENDING 8
#define FS_SPIN_LIMIT  1000 /* assign calls beyond this: the worker spins */

struct fake_store {
    mw_feed_cb feed_cb;
    void *feed_ud;
    int ready;        /* what ready() returns */
    int assign_rc;    /* what assign() returns (0: accepted, called back later) */
    unsigned assigns; /* assign() calls */
    struct {
        mw_assign_cb cb;
        void *ud;
        struct mw_match m;
    } pend[FS_MAX_PENDING];
    size_t n_pend;
};

static int fs_unused_create(void *impl, const struct mw_enqueue_req *req, int64_t now_ms,
                            char *id_out, mw_ticket_cb cb, void *ud)
{
    (void)impl, (void)req, (void)now_ms, (void)id_out, (void)cb, (void)ud;
    return MW_EINVAL;
}
static int fs_unused_get(void *impl, const char *id, mw_ticket_cb cb, void *ud)
{
    (void)impl, (void)id, (void)cb, (void)ud;
    return MW_EINVAL;
}
static int fs_unused_cancel(void *impl, const char *id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    (void)impl, (void)id, (void)now_ms, (void)cb, (void)ud;
    return MW_EINVAL;
}
static int fs_unused_detach(void *impl, const char *id, int64_t now_ms)
{
    (void)impl, (void)id, (void)now_ms;
    return MW_EINVAL;
}

static int fs_assign(void *impl, const struct mw_match *m, mw_assign_cb cb, void *ud)
{
    struct fake_store *fs = impl;

    fs->assigns++;
    if (fs->assigns > FS_SPIN_LIMIT)
        fail_msg("assign called %u times: the worker retries in a tight loop", fs->assigns);
    if (fs->assign_rc)
        return fs->assign_rc;
    assert_true(fs->n_pend < FS_MAX_PENDING);
    fs->pend[fs->n_pend].cb = cb;
    fs->pend[fs->n_pend].ud = ud;
    fs->pend[fs->n_pend].m = *m;
    fs->n_pend++;
    return 0;
}

static int fs_feed(void *impl, mw_feed_cb cb, void *ud)
{
    struct fake_store *fs = impl;

    fs->feed_cb = cb;
    fs->feed_ud = ud;
    return 0;
}

static int fs_sweep(void *impl, int64_t now_ms)
{
    (void)impl, (void)now_ms;
    return 0;
}

static void fs_counts(void *impl, uint64_t n[4])
{
    (void)impl;
    memset(n, 0, 4 * sizeof(n[0]));
}

static int fs_ready(void *impl, char *reason, size_t reason_len)
{
    struct fake_store *fs = impl;

    if (reason && reason_len)
        snprintf(reason, reason_len, "%s", fs->ready ? "fake: down" : "");
    return fs->ready;
}

static void fs_destroy(void *impl)
{
    (void)impl;
}

static const struct mw_ticket_store_ops fs_ops = {
    .create = fs_unused_create,
    .get = fs_unused_get,
    .cancel = fs_unused_cancel,
    .attach = fs_unused_cancel,
    .detach = fs_unused_detach,
    .assign = fs_assign,
    .feed = fs_feed,
    .sweep = fs_sweep,
    .counts = fs_counts,
    .ready = fs_ready,
    .destroy = fs_destroy,
};

/* Answers the oldest accepted assign with status (0: committed, with the
 * tickets at their new versions). */
static void fs_answer(struct fake_store *fs, int status)
{
    struct mw_ticket ts[MW_MATCH_SIZE_MAX];
    struct mw_assign_result r = {.status = status};
    mw_assign_cb cb;
    void *ud;
    struct mw_match m;

    assert_true(fs->n_pend > 0);
    cb = fs->pend[0].cb;
    ud = fs->pend[0].ud;
    m = fs->pend[0].m;
    memmove(&fs->pend[0], &fs->pend[1], (fs->n_pend - 1) * sizeof(fs->pend[0]));
    fs->n_pend--;
    memset(ts, 0, sizeof(ts));
    if (status == 0) {
        for (size_t i = 0; i < m.n; i++) {
            memcpy(ts[i].id, m.ticket_ids[i], sizeof(ts[i].id));
            ts[i].state = MW_TICKET_ASSIGNED;
            ts[i].version = m.versions[i];
            ts[i].assigned_envelope = (char *)(uintptr_t)m.envelopes[i];
            ts[i].assigned_envelope_len = m.envelope_lens[i];
        }
        r.n = m.n;
        r.tickets = ts;
    }
    cb(ud, &r);
}

static void fs_queue(struct fake_store *fs, int k)
{
    struct mw_ticket t;

    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "00000000-0000-4000-8000-%012d", k);
    snprintf(t.queue, sizeof(t.queue), "duel");
    snprintf(t.player_id, sizeof(t.player_id), "p%d", k);
    t.state = MW_TICKET_QUEUED;
    t.version = 1;
    fs->feed_cb(fs->feed_ud, MW_FEED_QUEUED, &t);
}

struct sfx {
    struct fake_store fs;
    struct mw_ticket_store st;
    struct fake_channel fc;
    struct mw_channel ch;
    struct fake_rng mrng;
    struct fake_clock clock;
    struct mw_worker *w;
};

static void sfx_init(struct sfx *x)
{
    struct mw_worker_config c = wcfg(2, 1);

    memset(x, 0, sizeof(*x));
    x->mrng.s = 5;
    x->clock.now_ms = T0;
    x->st = (struct mw_ticket_store){.ops = &fs_ops, .impl = &x->fs};
    x->ch = (struct mw_channel){.ops = &fc_ops, .impl = &x->fc};
    x->w = mw_worker_new(&c, &x->st, &x->ch, fake_rng_fill, &x->mrng, fake_clock_now, &x->clock);
    assert_non_null(x->w);
    assert_non_null(x->fs.feed_cb);
}

/* The store refuses the assign at once (Redis down: MW_EUNAVAIL from the
 * call). The worker parks the group; later feed events and retries before
 * the store is ready and the backoff has passed do not call assign again
 * (today's code formed the same match again at once, forever). */
static void test_unavailable_store_no_tight_loop(void **state)
{
    struct sfx x;

    (void)state;
    sfx_init(&x);
    x.fs.ready = MW_EUNAVAIL;
    x.fs.assign_rc = MW_EUNAVAIL;
    fs_queue(&x.fs, 1);
    fs_queue(&x.fs, 2); /* forms (1, 2); assign refused: parked */
    assert_int_equal(x.fs.assigns, 1);
    assert_int_equal(mw_worker_waiting(x.w), 0);
    assert_int_equal(mw_worker_parked(x.w), 2);
    /* More feed events, time passing: the store is not ready, no retry. */
    fs_queue(&x.fs, 3);
    x.clock.now_ms += 5000;
    assert_int_equal(mw_worker_retry(x.w, x.clock.now_ms), MW_EAGAIN);
    fs_queue(&x.fs, 4); /* (3, 4) forms and is refused too */
    assert_int_equal(x.fs.assigns, 2);
    assert_int_equal(mw_worker_parked(x.w), 4);
    for (int i = 0; i < 50; i++) {
        x.clock.now_ms += 100;
        mw_worker_retry(x.w, x.clock.now_ms);
    }
    assert_int_equal(x.fs.assigns, 2);

    /* Ready, but still refusing (a flap): one group is tried, then the
     * worker backs off, longer after each failure in a row (100, 200, then
     * 400, 800 ms... up to 2 s). */
    x.fs.ready = 0;
    x.clock.now_ms += 1;
    assert_int_equal(mw_worker_retry(x.w, x.clock.now_ms), MW_EAGAIN);
    assert_int_equal(x.fs.assigns, 3); /* one try, the other group waits */
    assert_int_equal(mw_worker_parked(x.w), 4);
    assert_int_equal(mw_worker_retry(x.w, x.clock.now_ms + 399), MW_EAGAIN);
    assert_int_equal(x.fs.assigns, 3);
    x.clock.now_ms += 400;
    mw_worker_retry(x.w, x.clock.now_ms);
    assert_int_equal(x.fs.assigns, 4);
    mw_worker_retry(x.w, x.clock.now_ms + 799);
    assert_int_equal(x.fs.assigns, 4);

    /* The store takes commits again: every parked group is committed,
     * oldest first, nothing lost. */
    x.fs.assign_rc = 0;
    x.clock.now_ms += 800;
    assert_int_equal(mw_worker_retry(x.w, x.clock.now_ms), 0);
    assert_int_equal(x.fs.assigns, 6);
    assert_int_equal(mw_worker_parked(x.w), 0);
    assert_int_equal(x.fs.n_pend, 2);
    assert_string_equal(x.fs.pend[0].m.player_ids[0], "p1");
    assert_string_equal(x.fs.pend[1].m.player_ids[0], "p3");
    fs_answer(&x.fs, 0);
    fs_answer(&x.fs, 0);
    assert_int_equal(x.fc.n, 4);
    mw_worker_free(x.w);
}

/* The assign is accepted but called back unavailable (the batch could not
 * be sent, or the connection was reset after a command timeout). The group
 * is parked, not formed again inside the callback; retried once the store
 * is ready and the backoff has passed. */
static void test_unavailable_callback_parks(void **state)
{
    struct sfx x;
    struct mw_worker_stats st;

    (void)state;
    sfx_init(&x);
    fs_queue(&x.fs, 1);
    fs_queue(&x.fs, 2);
    assert_int_equal(x.fs.assigns, 1);
    x.fs.ready = MW_EUNAVAIL;
    fs_answer(&x.fs, MW_EUNAVAIL);
    assert_int_equal(x.fs.assigns, 1); /* not formed again at once */
    assert_int_equal(mw_worker_parked(x.w), 2);
    x.clock.now_ms += 1000;
    mw_worker_retry(x.w, x.clock.now_ms); /* not ready yet */
    assert_int_equal(x.fs.assigns, 1);
    x.fs.ready = 0;
    mw_worker_retry(x.w, x.clock.now_ms);
    assert_int_equal(x.fs.assigns, 2);
    assert_int_equal(mw_worker_parked(x.w), 0);
    fs_answer(&x.fs, 0);
    mw_worker_stats(x.w, &st);
    assert_int_equal(st.matches, 1);
    assert_int_equal(x.fc.n, 2);
    /* A success resets the backoff: the next failure waits 100 ms again. */
    fs_queue(&x.fs, 3);
    fs_queue(&x.fs, 4);
    fs_answer(&x.fs, MW_EUNAVAIL);
    mw_worker_retry(x.w, x.clock.now_ms + 99);
    assert_int_equal(x.fs.assigns, 3);
    mw_worker_retry(x.w, x.clock.now_ms + 100);
    assert_int_equal(x.fs.assigns, 4);
    fs_answer(&x.fs, 0);
    /* A worker freed with a group parked frees it (ASan/LSan). */
    fs_queue(&x.fs, 5);
    fs_queue(&x.fs, 6);
    fs_answer(&x.fs, MW_EUNAVAIL);
    assert_int_equal(mw_worker_parked(x.w), 2);
    mw_worker_free(x.w);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_tickets_one_match),
        cmocka_unit_test(test_regions_not_mixed),
        cmocka_unit_test(test_conflict_requeues_others),
        cmocka_unit_test(test_removed_leaves_matchmaker),
        cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_publish_failure_counted),
        cmocka_unit_test(test_store_destroyed_in_flight),
        cmocka_unit_test(test_commit_reuse),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_unavailable_store_no_tight_loop),
        cmocka_unit_test(test_unavailable_callback_parks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
