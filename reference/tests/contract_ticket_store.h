/* contract_ticket_store: the ticket store contract (ticket_store.h), written
 * once and run against every backend by a thin main
 * (contract_ticket_store_<backend>.c) that fills a struct ct_store_backend
 * and calls ct_store_run(). Adding a backend means passing this suite.
 *
 * What it holds every backend to: callbacks never before the call returns,
 * exactly once; the lifecycle and its versions (queued 1, every change +1);
 * idempotency (same player and key: the same ticket, `replayed`); the
 * assignment compare-and-set (one winner, nothing half-moved) and the
 * `published` flag; cancel races; attach/detach and the grace rule; TTL
 * expiry and forgetting after the retention; sweep's count; on_ended after
 * the canceller's reply; the feed; destroy with work in flight (every
 * pending callback once with MW_ECLOSED, no hook after destroy).
 *
 * Backends differ in time: the memory store answers from a defer queue, the
 * Redis store from an event loop. The suite only waits for events
 * (run_until) and uses a get of an unknown ticket as a barrier: a backend
 * answers its calls in the order they were made. Times are the `now_ms`
 * arguments, so a backend's clock never matters. */
#ifndef MW_CONTRACT_TICKET_STORE_H
#define MW_CONTRACT_TICKET_STORE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "ticket_store.h"

#define CT_TTL   10000
#define CT_ATTL  5000
#define CT_GRACE 3000
#define CT_WAIT  3.0 /* seconds: the longest wait for one event */

/* One backend, as the suite sees it. Every function is required. */
struct ct_store_backend {
    const char *name;
    /* The assign result's `published` for this backend (ticket_store.h:
     * true when the backend publishes the payloads itself, CHN-062). */
    bool publishes;
    /* Once per run (e.g. start a redis-server); 0 or -1. */
    int (*group_setup)(void);
    void (*group_teardown)(void);
    /* A fresh, empty world (its own loop, an empty database); NULL on
     * failure. */
    void *(*env_new)(void);
    void (*env_free)(void *env);
    /* A store in *st over env; must be ready (or become ready) without
     * anything more than run_until. 0 or a negative MW_E* code. */
    int (*store_new)(void *env, struct mw_ticket_store *st,
                     const struct mw_ticket_store_config *cfg,
                     const struct mw_ticket_store_hooks *hooks);
    /* Runs env's loop until pred(ud) holds (true) or nothing more can
     * happen / timeout_s passed (pred's value then). */
    bool (*run_until)(void *env, bool (*pred)(void *ud), void *ud, double timeout_s);
    /* A base time for the test's now_ms arguments. */
    int64_t (*now_ms)(void);
};

/* ---- Fixture -------------------------------------------------------------- */

struct ct_fx;

/* One callback's record. */
struct ct_rec {
    struct ct_fx *fx;
    int calls;
    int status;
    bool has_t;
    struct mw_ticket t;
    int seq;
    size_t failed, n;
    bool published;
    struct mw_ticket at[MW_MATCH_SIZE_MAX];
};

struct ct_ev {
    enum mw_feed_event ev;
    char id[MW_TICKET_ID_LEN + 1];
    enum mw_ticket_state state;
    uint64_t version;
    int seq;
};

#define CT_EVENTS_MAX 256

struct ct_fx {
    const struct ct_store_backend *b;
    void *env;
    struct mw_ticket_store st;
    bool alive;
    int64_t t0;
    int seq;
    struct ct_ev feed[CT_EVENTS_MAX];
    size_t n_feed;
    struct ct_ev ended[CT_EVENTS_MAX];
    size_t n_ended;
    int ended_after_destroy;
};

static const struct ct_store_backend *ct_backend; /* the one under test (set by ct_store_run) */

static void ct_rec_reset(struct ct_rec *c)
{
    struct ct_fx *fx = c->fx;

    mw_ticket_clear(&c->t);
    for (size_t i = 0; i < c->n; i++)
        mw_ticket_clear(&c->at[i]);
    memset(c, 0, sizeof(*c));
    c->fx = fx;
}

static void ct_on_ticket(void *ud, int status, const struct mw_ticket *t)
{
    struct ct_rec *c = ud;

    c->calls++;
    c->status = status;
    c->seq = ++c->fx->seq;
    mw_ticket_clear(&c->t);
    c->has_t = t != NULL;
    if (t)
        assert_int_equal(mw_ticket_copy(&c->t, t), 0);
}

static void ct_on_assign(void *ud, const struct mw_assign_result *r)
{
    struct ct_rec *c = ud;

    c->calls++;
    c->status = r->status;
    c->failed = r->failed;
    c->published = r->published;
    c->seq = ++c->fx->seq;
    for (size_t i = 0; i < c->n; i++)
        mw_ticket_clear(&c->at[i]);
    c->n = r->status == 0 ? r->n : 0;
    for (size_t i = 0; i < c->n; i++)
        assert_int_equal(mw_ticket_copy(&c->at[i], &r->tickets[i]), 0);
}

static void ct_record(struct ct_fx *fx, struct ct_ev *evs, size_t *n, enum mw_feed_event ev,
                      const struct mw_ticket *t)
{
    struct ct_ev *e;

    assert_true(*n < CT_EVENTS_MAX);
    e = &evs[(*n)++];
    e->ev = ev;
    memcpy(e->id, t->id, sizeof(e->id));
    e->state = t->state;
    e->version = t->version;
    e->seq = ++fx->seq;
}

static void ct_on_feed(void *ud, enum mw_feed_event ev, const struct mw_ticket *t)
{
    struct ct_fx *fx = ud;

    ct_record(fx, fx->feed, &fx->n_feed, ev, t);
}

static void ct_on_ended(void *ud, const struct mw_ticket *t)
{
    struct ct_fx *fx = ud;

    if (!fx->alive) {
        fx->ended_after_destroy++;
        return;
    }
    ct_record(fx, fx->ended, &fx->n_ended, MW_FEED_REMOVED, t);
}

static bool ct_store_ready(void *ud)
{
    struct ct_fx *fx = ud;

    return mw_ticket_store_ready(&fx->st, NULL, 0) == 0;
}

static int ct_group_setup(void **state)
{
    (void)state;
    return ct_backend->group_setup();
}

static int ct_group_teardown(void **state)
{
    (void)state;
    ct_backend->group_teardown();
    return 0;
}

static int ct_setup(void **state)
{
    struct ct_fx *fx = calloc(1, sizeof(*fx));
    struct mw_ticket_store_config cfg = {
        .ticket_ttl_ms = CT_TTL, .assigned_ttl_ms = CT_ATTL, .grace_ms = CT_GRACE};
    struct mw_ticket_store_hooks h = {.on_ended = ct_on_ended, .ud = NULL};

    if (!fx)
        return -1;
    fx->b = ct_backend;
    h.ud = fx;
    fx->env = fx->b->env_new();
    if (!fx->env || fx->b->store_new(fx->env, &fx->st, &cfg, &h) != 0)
        return -1;
    fx->alive = true;
    fx->t0 = fx->b->now_ms();
    if (!fx->b->run_until(fx->env, ct_store_ready, fx, CT_WAIT))
        return -1;
    *state = fx;
    return 0;
}

static int ct_teardown(void **state)
{
    struct ct_fx *fx = *state;

    if (fx->alive)
        mw_ticket_store_destroy(&fx->st);
    fx->alive = false;
    fx->b->env_free(fx->env);
    free(fx);
    return 0;
}

/* ---- Helpers -------------------------------------------------------------- */

static bool ct_called(void *ud)
{
    return ((struct ct_rec *)ud)->calls > 0;
}

static void ct_wait(struct ct_fx *fx, struct ct_rec *c)
{
    assert_true(fx->b->run_until(fx->env, ct_called, c, CT_WAIT));
}

/* Everything called before has answered (a backend answers in call order). */
static void ct_barrier(struct ct_fx *fx)
{
    struct ct_rec c = {.fx = fx};

    assert_int_equal(
        mw_ticket_store_get(&fx->st, "00000000-0000-4000-8000-000000000000", ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, MW_ENOTFOUND);
    ct_rec_reset(&c);
}

static struct mw_enqueue_req ct_req(const char *player, const char *key, bool watched)
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

static void ct_create(struct ct_fx *fx, const char *player, const char *key, bool watched,
                      int64_t now, char out[MW_TICKET_ID_LEN + 1])
{
    struct ct_rec c = {.fx = fx};
    struct mw_enqueue_req r = ct_req(player, key, watched);
    char early[MW_TICKET_ID_LEN + 1] = "";

    /* The id is told when the call returns, before the callback (id_out,
     * ticket_store.h): a created ticket has it; a replay may have another. */
    assert_int_equal(mw_ticket_store_create_id(&fx->st, &r, now, early, ct_on_ticket, &c), 0);
    assert_int_equal(c.calls, 0);
    assert_int_equal(strlen(early), MW_TICKET_ID_LEN);
    ct_wait(fx, &c);
    assert_int_equal(c.status, 0);
    if (!c.t.replayed)
        assert_string_equal(early, c.t.id);
    memcpy(out, c.t.id, MW_TICKET_ID_LEN + 1);
    ct_rec_reset(&c);
}

static void ct_get(struct ct_fx *fx, const char *id, struct ct_rec *c)
{
    ct_rec_reset(c);
    assert_int_equal(mw_ticket_store_get(&fx->st, id, ct_on_ticket, c), 0);
    ct_wait(fx, c);
    assert_int_equal(c->calls, 1);
}

/* What sweeping at now changed (ended or forgotten): ticket_store.h counts a
 * pass in the call that returns after it completed, so two passes at the
 * same now with a barrier after each (the second changes nothing). */
static int ct_sweep(struct ct_fx *fx, int64_t now)
{
    int a, b;

    a = mw_ticket_store_sweep(&fx->st, now);
    assert_true(a >= 0);
    ct_barrier(fx);
    b = mw_ticket_store_sweep(&fx->st, now);
    assert_true(b >= 0);
    ct_barrier(fx);
    return a + b;
}

static const char CT_ENV[] = "{\"type\":\"match.assigned\",\"v\":1,\"data\":{}}";

static void ct_match(struct ct_fx *fx, struct mw_match *m, size_t n,
                     char ids[][MW_TICKET_ID_LEN + 1], const uint64_t *versions)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->match_id, sizeof(m->match_id), "00000000-0000-4000-8000-000000000001");
    snprintf(m->connection, sizeof(m->connection), "gs1:7777");
    m->assigned_ms = fx->t0 + 100;
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        memcpy(m->ticket_ids[i], ids[i], MW_TICKET_ID_LEN + 1);
        snprintf(m->player_ids[i], sizeof(m->player_ids[i]), "p%zu", i);
        m->versions[i] = versions ? versions[i] : 2;
        m->envelopes[i] = CT_ENV;
        m->envelope_lens[i] = sizeof(CT_ENV) - 1;
    }
}

static void ct_assign(struct ct_fx *fx, struct mw_match *m, struct ct_rec *c)
{
    ct_rec_reset(c);
    assert_int_equal(mw_ticket_store_assign(&fx->st, m, ct_on_assign, c), 0);
    assert_int_equal(c->calls, 0);
    ct_wait(fx, c);
    assert_int_equal(c->calls, 1);
}

struct ct_feed_wait {
    struct ct_fx *fx;
    const char *id;
    enum mw_feed_event ev;
};

static bool ct_feed_has(void *ud)
{
    const struct ct_feed_wait *w = ud;

    for (size_t i = 0; i < w->fx->n_feed; i++)
        if (w->fx->feed[i].ev == w->ev && strcmp(w->fx->feed[i].id, w->id) == 0)
            return true;
    return false;
}

static bool ct_ended_any(void *ud)
{
    return ((struct ct_fx *)ud)->n_ended > 0;
}

/* ---- Lifecycle and versions ---------------------------------------------- */

/* Create: queued, version 1, every field; never calls back before it
 * returns; get reads the same; cancel: cancelled, version 2; cancelled
 * again or unknown: MW_ENOTFOUND; the cancelled ticket stays readable. */
static void ct_test_lifecycle(void **state)
{
    struct ct_fx *fx = *state;
    struct ct_rec c = {.fx = fx}, g = {.fx = fx};
    struct mw_enqueue_req r = ct_req("alice", NULL, true);
    char attrs[] = "{\"region\":\"eu\"}";
    char id[MW_TICKET_ID_LEN + 1];

    snprintf(r.region, sizeof(r.region), "eu");
    r.attributes_json = attrs;
    assert_int_equal(mw_ticket_store_create(&fx->st, &r, fx->t0, ct_on_ticket, &c), 0);
    assert_int_equal(c.calls, 0); /* never before the call returns */
    ct_wait(fx, &c);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, 0);
    assert_true(mw_uuid4_valid(c.t.id, strlen(c.t.id)));
    assert_string_equal(c.t.queue, "duel");
    assert_string_equal(c.t.player_id, "alice");
    assert_string_equal(c.t.region, "eu");
    assert_non_null(c.t.attributes_json);
    assert_string_equal(c.t.attributes_json, attrs);
    assert_int_equal(c.t.state, MW_TICKET_QUEUED);
    assert_int_equal(c.t.version, 1);
    assert_int_equal(c.t.created_ms, fx->t0);
    assert_int_equal(c.t.expires_ms, fx->t0 + CT_TTL);
    assert_null(c.t.assigned_envelope);
    assert_false(c.t.replayed);
    memcpy(id, c.t.id, sizeof(id));

    ct_get(fx, id, &g);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.t.id, id);
    assert_int_equal(g.t.state, MW_TICKET_QUEUED);
    assert_int_equal(g.t.version, 1);

    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_cancel(&fx->st, id, fx->t0 + 1, ct_on_ticket, &c), 0);
    assert_int_equal(c.calls, 0);
    ct_wait(fx, &c);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.t.state, MW_TICKET_CANCELLED);
    assert_int_equal(c.t.version, 2);
    /* cancelled again: not_found (MSG-031) */
    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_cancel(&fx->st, id, fx->t0 + 2, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    assert_int_equal(c.status, MW_ENOTFOUND);
    ct_get(fx, id, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.t.state, MW_TICKET_CANCELLED);
    assert_int_equal(g.t.version, 2);
    /* unknown */
    ct_get(fx, "00000000-0000-4000-8000-00000000dead", &g);
    assert_int_equal(g.status, MW_ENOTFOUND);
    assert_false(g.has_t);
    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_cancel(&fx->st, "00000000-0000-4000-8000-00000000dead", fx->t0,
                                            ct_on_ticket, &c),
                     0);
    ct_wait(fx, &c);
    assert_int_equal(c.status, MW_ENOTFOUND);
    /* A failed call never calls back. */
    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_create(&fx->st, NULL, fx->t0, ct_on_ticket, &c), MW_EINVAL);
    ct_barrier(fx);
    assert_int_equal(c.calls, 0);
    ct_rec_reset(&c);
    ct_rec_reset(&g);
}

/* ---- Idempotency ---------------------------------------------------------- */

static void ct_test_idempotency(void **state)
{
    struct ct_fx *fx = *state;
    char a1[MW_TICKET_ID_LEN + 1], b1[MW_TICKET_ID_LEN + 1], n1[MW_TICKET_ID_LEN + 1];
    char n2[MW_TICKET_ID_LEN + 1], a3[MW_TICKET_ID_LEN + 1];
    char ids[1][MW_TICKET_ID_LEN + 1];
    struct ct_rec c = {.fx = fx}, ac = {.fx = fx}, g = {.fx = fx};
    struct mw_enqueue_req r = ct_req("alice", "k1", false);
    struct mw_match m;

    ct_create(fx, "alice", "k1", false, fx->t0, a1);
    /* The replay answers the same ticket, marked replayed (MSG-026). */
    assert_int_equal(mw_ticket_store_create(&fx->st, &r, fx->t0 + 1, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.t.id, a1);
    assert_true(c.t.replayed);
    assert_int_equal(c.t.version, 1);
    ct_create(fx, "bob", "k1", false, fx->t0, b1);
    ct_create(fx, "alice", NULL, false, fx->t0, n1);
    ct_create(fx, "alice", NULL, false, fx->t0, n2);
    assert_string_not_equal(a1, b1); /* other player, same key: another */
    assert_string_not_equal(n1, n2); /* no key: always new */
    assert_string_not_equal(a1, n1);

    /* After the assignment the replay answers the ticket as it is now. */
    memcpy(ids[0], a1, sizeof(ids[0]));
    ct_match(fx, &m, 1, ids, NULL);
    ct_assign(fx, &m, &ac);
    assert_int_equal(ac.status, 0);
    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_create(&fx->st, &r, fx->t0 + 2, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    assert_string_equal(c.t.id, a1);
    assert_true(c.t.replayed);
    assert_int_equal(c.t.state, MW_TICKET_ASSIGNED);
    assert_int_equal(c.t.version, 2);
    assert_non_null(c.t.assigned_envelope);

    /* Forgotten after the retention: the key makes a new ticket again. */
    assert_true(ct_sweep(fx, m.assigned_ms + CT_ATTL) >= 1);
    ct_get(fx, a1, &g);
    assert_int_equal(g.status, MW_ENOTFOUND);
    ct_create(fx, "alice", "k1", false, m.assigned_ms + CT_ATTL, a3);
    assert_string_not_equal(a1, a3);
    ct_rec_reset(&c);
    ct_rec_reset(&ac);
    ct_rec_reset(&g);
}

/* ---- Assignment compare-and-set (CHN-060, MSG-077) ------------------------ */

static void ct_test_assign_cas(void **state)
{
    struct ct_fx *fx = *state;
    char ids[3][MW_TICKET_ID_LEN + 1], pair[2][MW_TICKET_ID_LEN + 1];
    struct ct_rec ac = {.fx = fx}, c = {.fx = fx}, g = {.fx = fx};
    struct mw_match m;
    uint64_t v[3] = {2, 3, 2};
    char e0[] = "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"0\"}}";
    char e1[] = "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"1\"}}";

    for (int i = 0; i < 3; i++) {
        char p[8];

        snprintf(p, sizeof(p), "p%d", i);
        ct_create(fx, p, NULL, false, fx->t0, ids[i]);
    }
    /* A wrong expected version: nothing moves; failed is its index. */
    ct_match(fx, &m, 2, ids, v);
    ct_assign(fx, &m, &ac);
    assert_int_equal(ac.status, MW_ESTATE);
    assert_int_equal(ac.failed, 1);
    ct_get(fx, ids[0], &g);
    assert_int_equal(g.t.state, MW_TICKET_QUEUED);
    assert_int_equal(g.t.version, 1);

    /* A ticket cancelled between formation and commit: conflict. */
    assert_int_equal(mw_ticket_store_cancel(&fx->st, ids[1], fx->t0, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    ct_match(fx, &m, 2, ids, NULL);
    ct_assign(fx, &m, &ac);
    assert_int_equal(ac.status, MW_ESTATE);
    assert_int_equal(ac.failed, 1);
    ct_get(fx, ids[0], &g);
    assert_int_equal(g.t.state, MW_TICKET_QUEUED);
    assert_int_equal(g.t.version, 1);

    /* ids[0] + ids[2]: both assigned at version 2 with their envelopes,
     * which the store copied (borrowed only during the call). */
    memcpy(pair[0], ids[0], sizeof(pair[0]));
    memcpy(pair[1], ids[2], sizeof(pair[1]));
    ct_match(fx, &m, 2, pair, NULL);
    m.envelopes[0] = e0;
    m.envelope_lens[0] = strlen(e0);
    m.envelopes[1] = e1;
    m.envelope_lens[1] = strlen(e1);
    ct_rec_reset(&ac);
    assert_int_equal(mw_ticket_store_assign(&fx->st, &m, ct_on_assign, &ac), 0);
    e0[0] = 'X';
    ct_wait(fx, &ac);
    assert_int_equal(ac.status, 0);
    /* published: the backend announced it itself (CHN-062), or the caller
     * must publish (CHN-020). */
    assert_true(ac.published == fx->b->publishes);
    assert_int_equal(ac.n, 2);
    assert_string_equal(ac.at[0].id, pair[0]);
    assert_string_equal(ac.at[1].id, pair[1]);
    assert_int_equal(ac.at[0].state, MW_TICKET_ASSIGNED);
    assert_int_equal(ac.at[0].version, 2);
    assert_int_equal(ac.at[1].version, 2);
    assert_non_null(ac.at[1].assigned_envelope);
    assert_memory_equal(ac.at[1].assigned_envelope, e1, strlen(e1));
    ct_get(fx, pair[0], &g);
    assert_int_equal(g.t.state, MW_TICKET_ASSIGNED);
    assert_int_equal(g.t.version, 2);
    assert_int_equal(g.t.assigned_envelope_len, strlen(e1));
    assert_memory_equal(g.t.assigned_envelope, "{\"type\"", 7);
    /* Never assigned twice (MSG-077), whatever the versions. */
    ct_assign(fx, &m, &ac);
    assert_int_equal(ac.status, MW_ESTATE);
    assert_int_equal(ac.failed, 0);
    v[0] = 3;
    v[1] = 3;
    ct_match(fx, &m, 2, pair, v);
    ct_assign(fx, &m, &ac);
    assert_int_equal(ac.status, MW_ESTATE);
    /* An invalid match fails at once and never calls back. */
    ct_rec_reset(&ac);
    m.n = 0;
    assert_int_equal(mw_ticket_store_assign(&fx->st, &m, ct_on_assign, &ac), MW_EINVAL);
    m.n = MW_MATCH_SIZE_MAX + 1;
    assert_int_equal(mw_ticket_store_assign(&fx->st, &m, ct_on_assign, &ac), MW_EINVAL);
    ct_barrier(fx);
    assert_int_equal(ac.calls, 0);
    ct_rec_reset(&ac);
    ct_rec_reset(&c);
    ct_rec_reset(&g);
}

/* ---- Races ---------------------------------------------------------------- */

/* Two calls made before either answered: overlapping matches, a cancel
 * against an assignment, two cancels. Exactly one wins each time, and what
 * the losers are told agrees with what the store then holds. */
static void ct_test_cancel_races(void **state)
{
    struct ct_fx *fx = *state;
    char ids[3][MW_TICKET_ID_LEN + 1], other[2][MW_TICKET_ID_LEN + 1];
    struct ct_rec a1 = {.fx = fx}, a2 = {.fx = fx}, c1 = {.fx = fx}, c2 = {.fx = fx};
    struct ct_rec g = {.fx = fx};
    struct mw_match m1, m2;

    for (int i = 0; i < 3; i++) {
        char p[8];

        snprintf(p, sizeof(p), "r%d", i);
        ct_create(fx, p, NULL, false, fx->t0, ids[i]);
    }
    /* {0,1} and {2,1}: one ticket in common. */
    memcpy(other[0], ids[2], sizeof(other[0]));
    memcpy(other[1], ids[1], sizeof(other[1]));
    ct_match(fx, &m1, 2, ids, NULL);
    ct_match(fx, &m2, 2, other, NULL);
    assert_int_equal(mw_ticket_store_assign(&fx->st, &m1, ct_on_assign, &a1), 0);
    assert_int_equal(mw_ticket_store_assign(&fx->st, &m2, ct_on_assign, &a2), 0);
    ct_wait(fx, &a1);
    ct_wait(fx, &a2);
    assert_int_equal(a1.calls + a2.calls, 2);
    assert_true((a1.status == 0) != (a2.status == 0));
    assert_int_equal(a1.status == 0 ? a2.status : a1.status, MW_ESTATE);
    ct_get(fx, ids[1], &g);
    assert_int_equal(g.t.state, MW_TICKET_ASSIGNED);
    ct_get(fx, a1.status == 0 ? ids[2] : ids[0], &g);
    assert_int_equal(g.t.state, MW_TICKET_QUEUED); /* the loser's own ticket did not move */
    assert_int_equal(g.t.version, 1);

    /* Cancel against assign: the ticket ends one way only. */
    {
        char q[2][MW_TICKET_ID_LEN + 1];
        struct mw_match m;

        ct_create(fx, "x", NULL, false, fx->t0, q[0]);
        ct_create(fx, "y", NULL, false, fx->t0, q[1]);
        ct_match(fx, &m, 2, q, NULL);
        ct_rec_reset(&a1);
        assert_int_equal(mw_ticket_store_assign(&fx->st, &m, ct_on_assign, &a1), 0);
        assert_int_equal(mw_ticket_store_cancel(&fx->st, q[1], fx->t0 + 5, ct_on_ticket, &c1), 0);
        ct_wait(fx, &a1);
        ct_wait(fx, &c1);
        ct_get(fx, q[1], &g);
        assert_int_equal(g.t.version, 2);
        if (a1.status == 0) {
            assert_int_equal(c1.status, MW_ESTATE); /* already_assigned, with the ticket */
            assert_true(c1.has_t);
            assert_int_equal(c1.t.state, MW_TICKET_ASSIGNED);
            assert_int_equal(g.t.state, MW_TICKET_ASSIGNED);
        } else {
            assert_int_equal(a1.status, MW_ESTATE);
            assert_int_equal(a1.failed, 1);
            assert_int_equal(c1.status, 0);
            assert_int_equal(c1.t.state, MW_TICKET_CANCELLED);
            assert_int_equal(g.t.state, MW_TICKET_CANCELLED);
            ct_get(fx, q[0], &g);
            assert_int_equal(g.t.state, MW_TICKET_QUEUED);
            assert_int_equal(g.t.version, 1);
        }
    }

    /* Two cancels: the first cancels, the second finds it gone. */
    {
        char q[MW_TICKET_ID_LEN + 1];

        ct_create(fx, "z", NULL, false, fx->t0, q);
        ct_rec_reset(&c1);
        ct_rec_reset(&c2);
        assert_int_equal(mw_ticket_store_cancel(&fx->st, q, fx->t0 + 6, ct_on_ticket, &c1), 0);
        assert_int_equal(mw_ticket_store_cancel(&fx->st, q, fx->t0 + 6, ct_on_ticket, &c2), 0);
        ct_wait(fx, &c1);
        ct_wait(fx, &c2);
        assert_int_equal(c1.status, 0);
        assert_int_equal(c1.t.version, 2);
        assert_int_equal(c2.status, MW_ENOTFOUND);
        assert_true(c1.seq < c2.seq); /* answered in call order */
    }
    ct_rec_reset(&a1);
    ct_rec_reset(&a2);
    ct_rec_reset(&c1);
    ct_rec_reset(&c2);
    ct_rec_reset(&g);
}

/* ---- Watchers and grace (CHN-071, MSG-074) ------------------------------- */

static void ct_test_attach_detach_grace(void **state)
{
    struct ct_fx *fx = *state;
    char w[MW_TICKET_ID_LEN + 1], h[MW_TICKET_ID_LEN + 1];
    struct ct_rec c = {.fx = fx}, g = {.fx = fx};
    int64_t t = fx->t0;

    ct_create(fx, "ws", NULL, true, t, w);    /* created over WebSocket: 1 watcher */
    ct_create(fx, "http", NULL, false, t, h); /* HTTP: no watcher, no grace */

    /* The last watcher leaves at t+1000: grace until t+1000+GRACE. */
    assert_int_equal(mw_ticket_store_detach(&fx->st, w, t + 1000), 0);
    assert_int_equal(ct_sweep(fx, t + 1000 + CT_GRACE - 1), 0);
    /* A watcher comes back before: no grace any more. */
    assert_int_equal(mw_ticket_store_attach(&fx->st, w, t + 2000, ct_on_ticket, &c), 0);
    assert_int_equal(c.calls, 0);
    ct_wait(fx, &c);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.t.state, MW_TICKET_QUEUED);
    assert_int_equal(c.t.version, 1);
    assert_int_equal(ct_sweep(fx, t + 1000 + CT_GRACE + 1), 0);
    /* Two watchers; one leaves: no grace. The other leaves: grace. */
    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_attach(&fx->st, w, t + 2000, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    assert_int_equal(mw_ticket_store_detach(&fx->st, w, t + 5000), 0);
    assert_int_equal(ct_sweep(fx, t + 5000 + CT_GRACE), 0);
    assert_int_equal(mw_ticket_store_detach(&fx->st, w, t + 6000), 0);
    assert_int_equal(ct_sweep(fx, t + 6000 + CT_GRACE - 1), 0);
    assert_int_equal(ct_sweep(fx, t + 6000 + CT_GRACE), 1);
    assert_true(fx->b->run_until(fx->env, ct_ended_any, fx, CT_WAIT));
    assert_int_equal(fx->n_ended, 1);
    assert_string_equal(fx->ended[0].id, w);
    assert_int_equal(fx->ended[0].state, MW_TICKET_CANCELLED);
    assert_int_equal(fx->ended[0].version, 2);
    ct_get(fx, w, &g);
    assert_int_equal(g.t.state, MW_TICKET_CANCELLED);
    assert_int_equal(g.t.version, 2);
    ct_get(fx, h, &g);
    assert_int_equal(g.t.state, MW_TICKET_QUEUED); /* the HTTP ticket had no grace */

    /* Attaching to a final ticket reads it and counts nothing; to an
     * unknown one: not found. */
    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_attach(&fx->st, w, t + 9000, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.t.state, MW_TICKET_CANCELLED);
    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_attach(&fx->st, "00000000-0000-4000-8000-00000000dead",
                                            t + 9000, ct_on_ticket, &c),
                     0);
    ct_wait(fx, &c);
    assert_int_equal(c.status, MW_ENOTFOUND);
    assert_false(c.has_t);
    /* A watcher of an HTTP ticket that leaves starts its grace (a fresh
     * ticket: h would expire meanwhile, so it is cancelled first). */
    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_cancel(&fx->st, h, t + 9000, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    assert_int_equal(c.status, 0);
    ct_create(fx, "http2", NULL, false, t + 9000, h);
    ct_rec_reset(&c);
    assert_int_equal(mw_ticket_store_attach(&fx->st, h, t + 9000, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    assert_int_equal(mw_ticket_store_detach(&fx->st, h, t + 9000), 0);
    assert_int_equal(ct_sweep(fx, t + 9000 + CT_GRACE - 1), 0);
    assert_int_equal(ct_sweep(fx, t + 9000 + CT_GRACE), 1);
    ct_rec_reset(&c);
    ct_rec_reset(&g);
}

/* ---- TTL, retention, sweep's count ---------------------------------------- */

static void ct_test_ttl_and_forgetting(void **state)
{
    struct ct_fx *fx = *state;
    char a[MW_TICKET_ID_LEN + 1], b[MW_TICKET_ID_LEN + 1];
    struct ct_rec g = {.fx = fx};
    int64_t t = fx->t0;

    ct_create(fx, "a", NULL, false, t, a);
    ct_create(fx, "b", NULL, false, t + 500, b);
    assert_int_equal(ct_sweep(fx, t + CT_TTL - 1), 0);
    assert_int_equal(ct_sweep(fx, t + CT_TTL), 1);
    assert_true(fx->b->run_until(fx->env, ct_ended_any, fx, CT_WAIT));
    assert_int_equal(fx->n_ended, 1);
    assert_string_equal(fx->ended[0].id, a);
    assert_int_equal(fx->ended[0].state, MW_TICKET_EXPIRED);
    assert_int_equal(fx->ended[0].version, 2);
    ct_get(fx, a, &g);
    assert_int_equal(g.t.state, MW_TICKET_EXPIRED);
    assert_int_equal(g.t.version, 2);
    /* Never expired twice, nor cancelled after. */
    assert_int_equal(ct_sweep(fx, t + CT_TTL + 499), 0);
    assert_int_equal(ct_sweep(fx, t + CT_TTL + 500), 1); /* b */
    /* Retention: forgotten assigned_ttl after the end. */
    assert_int_equal(ct_sweep(fx, t + CT_TTL + CT_ATTL - 1), 0);
    assert_int_equal(ct_sweep(fx, t + CT_TTL + CT_ATTL), 1);
    ct_get(fx, a, &g);
    assert_int_equal(g.status, MW_ENOTFOUND);
    ct_get(fx, b, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.t.state, MW_TICKET_EXPIRED);
    assert_int_equal(ct_sweep(fx, t + CT_TTL + CT_ATTL + 500), 1);
    ct_get(fx, b, &g);
    assert_int_equal(g.status, MW_ENOTFOUND);
    assert_int_equal(fx->n_ended, 2); /* forgetting is not an end */
    ct_rec_reset(&g);
}

/* ---- Counts and readiness ------------------------------------------------- */

struct ct_counts_want {
    struct ct_fx *fx;
    uint64_t n[4];
};

static bool ct_counts_are(void *ud)
{
    const struct ct_counts_want *w = ud;
    uint64_t n[4];

    mw_ticket_store_counts(&w->fx->st, n);
    return memcmp(n, w->n, sizeof(n)) == 0;
}

/* counts() reaches the live tickets by state (a shared backend may take a
 * while: it is for /metrics); a ready store says 0 with an empty reason. */
static void ct_test_counts_and_ready(void **state)
{
    struct ct_fx *fx = *state;
    struct ct_counts_want w = {.fx = fx};
    char q[3][MW_TICKET_ID_LEN + 1], reason[64] = "x";
    struct ct_rec c = {.fx = fx}, ac = {.fx = fx};
    struct mw_match m;

    assert_int_equal(mw_ticket_store_ready(&fx->st, reason, sizeof(reason)), 0);
    assert_string_equal(reason, "");
    assert_int_equal(mw_ticket_store_ready(&fx->st, NULL, 0), 0);
    for (int i = 0; i < 3; i++) {
        char p[8];

        snprintf(p, sizeof(p), "c%d", i);
        ct_create(fx, p, NULL, false, fx->t0, q[i]);
    }
    assert_int_equal(mw_ticket_store_cancel(&fx->st, q[0], fx->t0 + 1, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    ct_match(fx, &m, 1, &q[1], NULL);
    ct_assign(fx, &m, &ac);
    assert_int_equal(ac.status, 0);
    w.n[MW_TICKET_QUEUED] = 1;
    w.n[MW_TICKET_ASSIGNED] = 1;
    w.n[MW_TICKET_CANCELLED] = 1;
    assert_true(fx->b->run_until(fx->env, ct_counts_are, &w, CT_WAIT));
    ct_rec_reset(&c);
    ct_rec_reset(&ac);
}

/* ---- on_ended ------------------------------------------------------------- */

/* A cancel's on_ended comes after the canceller's reply (MSG-062); an
 * assignment is not an end. */
static void ct_test_on_ended_order(void **state)
{
    struct ct_fx *fx = *state;
    char q[MW_TICKET_ID_LEN + 1], as[1][MW_TICKET_ID_LEN + 1];
    struct ct_rec c = {.fx = fx}, ac = {.fx = fx};
    struct mw_match m;

    ct_create(fx, "o", NULL, true, fx->t0, q);
    ct_create(fx, "p", NULL, true, fx->t0, as[0]);
    ct_match(fx, &m, 1, as, NULL);
    ct_assign(fx, &m, &ac);
    assert_int_equal(ac.status, 0);
    assert_int_equal(mw_ticket_store_cancel(&fx->st, q, fx->t0 + 1, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    assert_int_equal(c.status, 0);
    assert_true(fx->b->run_until(fx->env, ct_ended_any, fx, CT_WAIT));
    ct_barrier(fx);
    assert_int_equal(fx->n_ended, 1);
    assert_string_equal(fx->ended[0].id, q);
    assert_int_equal(fx->ended[0].state, MW_TICKET_CANCELLED);
    assert_int_equal(fx->ended[0].version, 2);
    assert_true(c.seq < fx->ended[0].seq);
    ct_rec_reset(&c);
    ct_rec_reset(&ac);
}

/* ---- Feed ----------------------------------------------------------------- */

/* Every created ticket reaches the feed as QUEUED at least once (also one
 * created before the subscription), one that leaves the queue other than by
 * assignment as REMOVED; a second subscriber is refused. */
static void ct_test_feed(void **state)
{
    struct ct_fx *fx = *state;
    char early[MW_TICKET_ID_LEN + 1], late[MW_TICKET_ID_LEN + 1];
    struct ct_rec c = {.fx = fx};
    struct ct_feed_wait w = {.fx = fx};

    ct_create(fx, "early", NULL, false, fx->t0, early);
    assert_int_equal(mw_ticket_store_feed(&fx->st, ct_on_feed, fx), 0);
    assert_int_equal(fx->n_feed, 0); /* never before the call returns */
    assert_int_equal(mw_ticket_store_feed(&fx->st, ct_on_feed, fx), MW_EEXIST);
    w.id = early;
    w.ev = MW_FEED_QUEUED;
    assert_true(fx->b->run_until(fx->env, ct_feed_has, &w, CT_WAIT));
    ct_create(fx, "late", NULL, false, fx->t0 + 1, late);
    w.id = late;
    assert_true(fx->b->run_until(fx->env, ct_feed_has, &w, CT_WAIT));
    assert_int_equal(mw_ticket_store_cancel(&fx->st, late, fx->t0 + 2, ct_on_ticket, &c), 0);
    ct_wait(fx, &c);
    w.ev = MW_FEED_REMOVED;
    assert_true(fx->b->run_until(fx->env, ct_feed_has, &w, CT_WAIT));
    for (size_t i = 0; i < fx->n_feed; i++) {
        if (fx->feed[i].ev == MW_FEED_REMOVED) {
            assert_string_equal(fx->feed[i].id, late);
            assert_int_equal(fx->feed[i].state, MW_TICKET_CANCELLED);
            assert_int_equal(fx->feed[i].version, 2);
        } else {
            assert_int_equal(fx->feed[i].state, MW_TICKET_QUEUED);
            assert_int_equal(fx->feed[i].version, 1);
        }
    }
    ct_rec_reset(&c);
}

/* ---- Destroy with work in flight ------------------------------------------ */

/* Calls not answered when the store is destroyed: each callback exactly once,
 * with MW_ECLOSED, during destroy; no hook after it; destroy(NULL) is a
 * no-op. */
static void ct_test_destroy_in_flight(void **state)
{
    struct ct_fx *fx = *state;
    char q[2][MW_TICKET_ID_LEN + 1];
    struct ct_rec cr = {.fx = fx}, gr = {.fx = fx}, ca = {.fx = fx}, at = {.fx = fx};
    struct ct_rec as = {.fx = fx};
    struct mw_enqueue_req r = ct_req("late", NULL, true);
    struct mw_match m;

    ct_create(fx, "q0", NULL, true, fx->t0, q[0]);
    ct_create(fx, "q1", NULL, true, fx->t0, q[1]);
    ct_match(fx, &m, 1, q, NULL);
    assert_int_equal(mw_ticket_store_create(&fx->st, &r, fx->t0, ct_on_ticket, &cr), 0);
    assert_int_equal(mw_ticket_store_get(&fx->st, q[0], ct_on_ticket, &gr), 0);
    assert_int_equal(mw_ticket_store_attach(&fx->st, q[1], fx->t0, ct_on_ticket, &at), 0);
    assert_int_equal(mw_ticket_store_assign(&fx->st, &m, ct_on_assign, &as), 0);
    assert_int_equal(mw_ticket_store_cancel(&fx->st, q[1], fx->t0 + 1, ct_on_ticket, &ca), 0);
    fx->alive = false;
    mw_ticket_store_destroy(&fx->st);
    assert_int_equal(cr.calls, 1);
    assert_int_equal(cr.status, MW_ECLOSED);
    assert_int_equal(gr.calls, 1);
    assert_int_equal(gr.status, MW_ECLOSED);
    assert_int_equal(at.calls, 1);
    assert_int_equal(at.status, MW_ECLOSED);
    assert_int_equal(as.calls, 1);
    assert_int_equal(as.status, MW_ECLOSED);
    assert_int_equal(ca.calls, 1);
    assert_int_equal(ca.status, MW_ECLOSED);
    /* Nothing more later. */
    (void)fx->b->run_until(fx->env, NULL, NULL, 0.05);
    assert_int_equal(cr.calls + gr.calls + at.calls + as.calls + ca.calls, 5);
    assert_int_equal(fx->ended_after_destroy, 0);
    mw_ticket_store_destroy(NULL);
    ct_rec_reset(&cr);
    ct_rec_reset(&gr);
    ct_rec_reset(&ca);
    ct_rec_reset(&at);
    ct_rec_reset(&as);
}

/* ---- Runner --------------------------------------------------------------- */

#define CT_TEST(f) cmocka_unit_test_setup_teardown(f, ct_setup, ct_teardown)

/* Runs the contract against b; returns the number of failed tests. */
static int ct_store_run(const struct ct_store_backend *b)
{
    const struct CMUnitTest tests[] = {
        CT_TEST(ct_test_lifecycle),
        CT_TEST(ct_test_idempotency),
        CT_TEST(ct_test_assign_cas),
        CT_TEST(ct_test_cancel_races),
        CT_TEST(ct_test_attach_detach_grace),
        CT_TEST(ct_test_ttl_and_forgetting),
        CT_TEST(ct_test_counts_and_ready),
        CT_TEST(ct_test_on_ended_order),
        CT_TEST(ct_test_feed),
        CT_TEST(ct_test_destroy_in_flight),
    };

    ct_backend = b;
    return cmocka_run_group_tests_name(b->name, tests, ct_group_setup, ct_group_teardown);
}

#endif /* MW_CONTRACT_TICKET_STORE_H */
