/* contract_channel: the channel contract (channel.h, spec/channel.md
 * sections 1 and 3), written once and run against every backend by a thin
 * main (contract_channel_<backend>.c) that fills a struct ct_chan_backend
 * and calls ct_chan_run(). Adding a backend means passing this suite.
 *
 * What it holds every backend to: fan-out to every subscriber of a process,
 * in publish order, the message intact (CHN-002, CHN-004); publish never
 * calls a subscriber before it returns, also when called from a subscriber
 * (CHN-003); the resubscription signal (CHN-032): after the first
 * subscribe, from the loop, never inside subscribe(), and ready() then
 * says 0; bad arguments fail at once; destroy with messages undelivered
 * calls nobody afterwards.
 *
 * The messages are valid match.assigned envelopes in canonical form, so a
 * backend that carries bytes and decodes them (Redis) hands back the same
 * fields. */
#ifndef MW_CONTRACT_CHANNEL_H
#define MW_CONTRACT_CHANNEL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "channel.h"
#include "error.h"

#define CTC_WAIT     3.0 /* seconds: the longest wait for one event */
#define CTC_SUBS     3
#define CTC_MSGS_MAX 16
/* assignedAt of ctc_envelope(), in unix ms */
#define CTC_ASSIGNED_MS 1795779648123LL

struct ct_chan_backend {
    const char *name;
    int (*group_setup)(void);
    void (*group_teardown)(void);
    void *(*env_new)(void);
    void (*env_free)(void *env);
    /* A channel in *ch over env with hooks; 0 or a negative MW_E* code. */
    int (*channel_new)(void *env, struct mw_channel *ch, const struct mw_channel_hooks *hooks);
    /* Runs env's loop until pred(ud) holds (true) or nothing more can
     * happen / timeout_s passed (pred's value then; pred NULL: just run). */
    bool (*run_until)(void *env, bool (*pred)(void *ud), void *ud, double timeout_s);
};

struct ctc_fx;

struct ctc_sub {
    struct ctc_fx *fx;
    size_t n;
    char ids[CTC_MSGS_MAX][40];
    uint64_t versions[CTC_MSGS_MAX];
    int64_t assigned[CTC_MSGS_MAX];
    bool env_ok[CTC_MSGS_MAX];
    bool publish_in_cb; /* publish once more from inside the callback */
};

struct ctc_fx {
    const struct ct_chan_backend *b;
    void *env;
    struct mw_channel ch;
    bool alive;
    int resub;
    int resub_in_call; /* signals that came from inside a channel call */
    bool in_call;
    int publishing; /* depth of mw_channel_publish() calls */
    int reentered;  /* deliveries made while a publish was running */
    int after_destroy;
    struct ctc_sub subs[CTC_SUBS];
};

static const struct ct_chan_backend *ctc_backend; /* the one under test */

static const char CTC_TID[2][37] = {"0b5c7a7e-4f1e-4a6b-9d2c-1f0e8d7c6b5a",
                                    "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"};

/* A valid, canonical match.assigned envelope for ticket tid, version 2. */
static void ctc_envelope(char *out, size_t n, const char *tid)
{
    snprintf(out, n,
             "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"%s\",\"version\":2,"
             "\"assignment\":{\"matchId\":\"5d1f3c2b-8a7e-4b6d-9c5e-3f2a1b0c9d8e\","
             "\"connection\":\"10.0.0.7:7777\",\"players\":[{\"playerId\":\"p1\"},"
             "{\"playerId\":\"p2\"}],\"assignedAt\":\"2026-11-27T11:40:48.123Z\"}}}",
             tid);
}

static int ctc_publish(struct ctc_fx *fx, const char *tid)
{
    char env[512];
    struct mw_assigned a;
    int rc;

    ctc_envelope(env, sizeof(env), tid);
    a = (struct mw_assigned){.ticket_id = tid,
                             .envelope = env,
                             .envelope_len = strlen(env),
                             .version = 2,
                             .assigned_ms = CTC_ASSIGNED_MS};
    fx->publishing++;
    rc = mw_channel_publish(&fx->ch, &a);
    fx->publishing--;
    return rc;
}

static void ctc_on_msg(void *ud, const struct mw_assigned *m)
{
    struct ctc_sub *s = ud;
    struct ctc_fx *fx = s->fx;
    char want[512];

    if (!fx->alive) {
        fx->after_destroy++;
        return;
    }
    if (fx->publishing)
        fx->reentered++;
    assert_false(m->recovery); /* a published message is a first delivery */
    assert_true(s->n < CTC_MSGS_MAX);
    snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", m->ticket_id);
    ctc_envelope(want, sizeof(want), m->ticket_id);
    s->env_ok[s->n] =
        m->envelope_len == strlen(want) && memcmp(m->envelope, want, m->envelope_len) == 0;
    s->versions[s->n] = m->version;
    s->assigned[s->n] = m->assigned_ms;
    s->n++;
    if (s->publish_in_cb) {
        s->publish_in_cb = false;
        assert_int_equal(ctc_publish(fx, CTC_TID[1]), 0);
    }
}

static void ctc_on_resub(void *ud)
{
    struct ctc_fx *fx = ud;

    if (!fx->alive) {
        fx->after_destroy++;
        return;
    }
    fx->resub++;
    if (fx->in_call)
        fx->resub_in_call++;
}

static bool ctc_ready(void *ud)
{
    struct ctc_fx *fx = ud;

    return mw_channel_ready(&fx->ch, NULL, 0) == 0;
}

static bool ctc_live(void *ud)
{
    struct ctc_fx *fx = ud;

    return fx->resub >= 1 && ctc_ready(fx);
}

static int ctc_group_setup(void **state)
{
    (void)state;
    return ctc_backend->group_setup();
}

static int ctc_group_teardown(void **state)
{
    (void)state;
    ctc_backend->group_teardown();
    return 0;
}

static int ctc_setup(void **state)
{
    struct ctc_fx *fx = calloc(1, sizeof(*fx));
    struct mw_channel_hooks h = {.on_resubscribed = ctc_on_resub, .ud = NULL};

    if (!fx)
        return -1;
    fx->b = ctc_backend;
    h.ud = fx;
    for (int i = 0; i < CTC_SUBS; i++)
        fx->subs[i].fx = fx;
    fx->env = fx->b->env_new();
    if (!fx->env || fx->b->channel_new(fx->env, &fx->ch, &h) != 0)
        return -1;
    fx->alive = true;
    /* A publisher with no subscriber yet is ready once connected. */
    if (!fx->b->run_until(fx->env, ctc_ready, fx, CTC_WAIT))
        return -1;
    *state = fx;
    return 0;
}

static int ctc_teardown(void **state)
{
    struct ctc_fx *fx = *state;

    if (fx->alive)
        mw_channel_destroy(&fx->ch);
    fx->alive = false;
    fx->b->env_free(fx->env);
    free(fx);
    return 0;
}

/* Subscribes n subscribers and waits until the subscription is live. */
static void ctc_subscribe(struct ctc_fx *fx, int n)
{
    fx->in_call = true;
    for (int i = 0; i < n; i++)
        assert_int_equal(mw_channel_subscribe(&fx->ch, ctc_on_msg, &fx->subs[i]), 0);
    fx->in_call = false;
    assert_int_equal(fx->resub, 0); /* never from inside subscribe() */
    assert_true(fx->b->run_until(fx->env, ctc_live, fx, CTC_WAIT));
}

struct ctc_count {
    struct ctc_fx *fx;
    int subs;
    size_t n;
};

static bool ctc_all_have(void *ud)
{
    const struct ctc_count *c = ud;

    for (int i = 0; i < c->subs; i++)
        if (c->fx->subs[i].n < c->n)
            return false;
    return true;
}

/* ---- Tests ---------------------------------------------------------------- */

/* Every subscriber gets every message, in publish order, intact; none
 * before publish returns (CHN-002, CHN-003, CHN-004). */
static void ctc_test_fanout_order(void **state)
{
    struct ctc_fx *fx = *state;
    struct ctc_count want = {.fx = fx, .subs = CTC_SUBS, .n = 2};

    ctc_subscribe(fx, CTC_SUBS);
    assert_int_equal(ctc_publish(fx, CTC_TID[0]), 0);
    assert_int_equal(ctc_publish(fx, CTC_TID[1]), 0);
    for (int i = 0; i < CTC_SUBS; i++)
        assert_int_equal(fx->subs[i].n, 0);
    assert_true(fx->b->run_until(fx->env, ctc_all_have, &want, CTC_WAIT));
    (void)fx->b->run_until(fx->env, NULL, NULL, 0.05);
    for (int i = 0; i < CTC_SUBS; i++) {
        const struct ctc_sub *s = &fx->subs[i];

        assert_int_equal(s->n, 2); /* once each */
        for (size_t k = 0; k < 2; k++) {
            assert_string_equal(s->ids[k], CTC_TID[k]);
            assert_true(s->env_ok[k]);
            assert_int_equal(s->versions[k], 2);
            assert_int_equal(s->assigned[k], CTC_ASSIGNED_MS);
        }
    }
    assert_int_equal(fx->reentered, 0);
}

/* A subscriber that publishes from its callback is not called again before
 * that publish returns; the message comes later (CHN-003). */
static void ctc_test_publish_from_callback(void **state)
{
    struct ctc_fx *fx = *state;
    struct ctc_count want = {.fx = fx, .subs = 2, .n = 2};

    ctc_subscribe(fx, 2);
    fx->subs[0].publish_in_cb = true;
    assert_int_equal(ctc_publish(fx, CTC_TID[0]), 0);
    assert_true(fx->b->run_until(fx->env, ctc_all_have, &want, CTC_WAIT));
    assert_int_equal(fx->reentered, 0);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(fx->subs[i].ids[0], CTC_TID[0]);
        assert_string_equal(fx->subs[i].ids[1], CTC_TID[1]);
    }
}

/* The resubscription signal (CHN-032): once the subscription is live after
 * the first subscribe, from the loop; ready() is 0 then; subscribers added
 * later share the live subscription. A process that only publishes is
 * ready and hears nothing. */
static void ctc_test_resubscribed(void **state)
{
    struct ctc_fx *fx = *state;

    assert_true(ctc_ready(fx));
    (void)fx->b->run_until(fx->env, NULL, NULL, 0.05);
    assert_int_equal(fx->resub, 0); /* no subscriber: no subscription */
    ctc_subscribe(fx, 1);
    assert_int_equal(fx->resub, 1);
    assert_int_equal(fx->resub_in_call, 0);
    fx->in_call = true;
    assert_int_equal(mw_channel_subscribe(&fx->ch, ctc_on_msg, &fx->subs[1]), 0);
    fx->in_call = false;
    (void)fx->b->run_until(fx->env, NULL, NULL, 0.05);
    assert_int_equal(fx->resub_in_call, 0);
    assert_true(ctc_ready(fx));
}

/* Bad arguments fail at once; a failed call has no effect. */
static void ctc_test_bad_arguments(void **state)
{
    struct ctc_fx *fx = *state;
    struct mw_assigned none = {.ticket_id = NULL, .envelope = "{}", .envelope_len = 2};

    assert_int_equal(mw_channel_subscribe(&fx->ch, NULL, NULL), MW_EINVAL);
    assert_int_equal(mw_channel_publish(&fx->ch, NULL), MW_EINVAL);
    assert_int_equal(mw_channel_publish(&fx->ch, &none), MW_EINVAL);
    ctc_subscribe(fx, 1);
    (void)fx->b->run_until(fx->env, NULL, NULL, 0.05);
    assert_int_equal(fx->subs[0].n, 0);
}

/* Destroyed with messages published and not delivered: nobody is called
 * afterwards; destroy(NULL) is a no-op. */
static void ctc_test_destroy_undelivered(void **state)
{
    struct ctc_fx *fx = *state;

    ctc_subscribe(fx, 2);
    assert_int_equal(ctc_publish(fx, CTC_TID[0]), 0);
    assert_int_equal(ctc_publish(fx, CTC_TID[1]), 0);
    fx->alive = false;
    mw_channel_destroy(&fx->ch);
    (void)fx->b->run_until(fx->env, NULL, NULL, 0.1);
    assert_int_equal(fx->after_destroy, 0);
    assert_int_equal(fx->subs[0].n + fx->subs[1].n, 0);
    mw_channel_destroy(NULL);
}

#define CTC_TEST(f) cmocka_unit_test_setup_teardown(f, ctc_setup, ctc_teardown)

/* Runs the contract against b; returns the number of failed tests. */
static int ct_chan_run(const struct ct_chan_backend *b)
{
    const struct CMUnitTest tests[] = {
        CTC_TEST(ctc_test_fanout_order),        CTC_TEST(ctc_test_publish_from_callback),
        CTC_TEST(ctc_test_resubscribed),        CTC_TEST(ctc_test_bad_arguments),
        CTC_TEST(ctc_test_destroy_undelivered),
    };

    ctc_backend = b;
    return cmocka_run_group_tests_name(b->name, tests, ctc_group_setup, ctc_group_teardown);
}

#endif /* MW_CONTRACT_CHANNEL_H */
