/* Tests for what is particular to channel_redis, against a real
 * redis-server (fan-out within a process, order, no re-entry and the first
 * resubscription signal are the contract suite's, contract_channel.h):
 * fan-out across two channel instances (two "processes"), the seed's payload,
 * malformed payloads published raw and dropped by reason (counted, never
 * delivered, never fatal), publish while down fails at once and is never
 * sent later (CHN-033), a Redis restart: reconnect, resubscribe,
 * on_resubscribed fired again, delivery resumes; and a frozen Redis found on
 * the subscriber connection (CHN-105). */
#define _POSIX_C_SOURCE 200809L /* kill, nanosleep, clock_gettime (redis_testenv.h) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "channel_redis.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "redis_testenv.h"

#define TID_A "0b5c7a7e-4f1e-4a6b-9d2c-1f0e8d7c6b5a"
#define TID_B "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

/* A valid match.assigned envelope for ticket tid, version 2 (canonical). */
static void make_envelope(char *out, size_t n, const char *tid)
{
    snprintf(out, n,
             "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"%s\",\"version\":2,"
             "\"assignment\":{\"matchId\":\"5d1f3c2b-8a7e-4b6d-9c5e-3f2a1b0c9d8e\","
             "\"connection\":\"10.0.0.7:7777\",\"players\":[{\"playerId\":\"p1\"},"
             "{\"playerId\":\"p2\"}],\"assignedAt\":\"2026-11-27T11:40:48.123Z\"}}}",
             tid);
}

struct got {
    int n;
    char ticket_id[64];
    char envelope[2048];
    uint64_t version;
};

static void on_msg(void *ud, const struct mw_assigned *m)
{
    struct got *g = ud;

    g->n++;
    snprintf(g->ticket_id, sizeof(g->ticket_id), "%s", m->ticket_id);
    assert_true(m->envelope_len < sizeof(g->envelope));
    memcpy(g->envelope, m->envelope, m->envelope_len);
    g->envelope[m->envelope_len] = '\0';
    g->version = m->version;
}

struct resub {
    int n;
};

static void on_resub(void *ud)
{
    ((struct resub *)ud)->n++;
}

struct env {
    struct ev_loop *loop;
    struct mwt_redis r;
    struct mw_metrics ma, mb;
    struct mw_channel a, b; /* two "processes" */
    struct resub ra, rb;
    struct got ga1, gb1, gb2;
};

static bool both_subscribed(void *ud)
{
    struct env *e = ud;

    return e->ra.n >= 1 && e->rb.n >= 1 && (mw_channel_ready(&e->a, NULL, 0) == 0) &&
           (mw_channel_ready(&e->b, NULL, 0) == 0);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    struct mw_redis_opts o;

    if (!e)
        return -1;
    e->loop = ev_loop_new(EVFLAG_AUTO);
    if (mwt_redis_start(&e->r) != 0)
        return -1;
    o = mwt_opts(&e->r, "t1:");
    if (mw_channel_redis_new(&e->a, &(struct mw_channel_hooks){on_resub, &e->ra}, e->loop, &o,
                             &e->ma) != 0 ||
        mw_channel_redis_new(&e->b, &(struct mw_channel_hooks){on_resub, &e->rb}, e->loop, &o,
                             &e->mb) != 0)
        return -1;
    if (mw_channel_subscribe(&e->a, on_msg, &e->ga1) != 0 ||
        mw_channel_subscribe(&e->b, on_msg, &e->gb1) != 0 ||
        mw_channel_subscribe(&e->b, on_msg, &e->gb2) != 0)
        return -1;
    if (!mwt_run_until(e->loop, both_subscribed, e, 3.0))
        return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;

    mw_channel_destroy(&e->a);
    mw_channel_destroy(&e->b);
    if (e->r.pid > 0)
        kill(e->r.pid, SIGCONT); /* a test that failed while Redis was frozen */
    mwt_redis_stop(&e->r, SIGTERM);
    ev_loop_destroy(e->loop);
    free(e);
    return 0;
}

static bool all_three(void *ud)
{
    struct env *e = ud;

    return e->ga1.n >= 1 && e->gb1.n >= 1 && e->gb2.n >= 1;
}

static void publish_one(struct mw_channel *c, const char *tid, char *env, size_t envn, int expect)
{
    struct mw_assigned m;

    make_envelope(env, envn, tid);
    m.ticket_id = tid;
    m.envelope = env;
    m.envelope_len = strlen(env);
    m.version = 2;
    m.assigned_ms = 0;
    assert_int_equal(mw_channel_publish(c, &m), expect);
}

/* One publish reaches every subscriber of both instances once (CHN-001,
 * CHN-002: instance b has two subscribers, gb1 and gb2, and both hear it,
 * not only the last registered as in the seed). */
static void test_fanout_two_instances(void **state)
{
    struct env *e = *state;
    char env[1024];

    publish_one(&e->a, TID_A, env, sizeof(env), 0);
    /* CHN-003: never delivered from inside publish(), not even to the
     * publishing instance's own subscriber (ga1). */
    assert_int_equal(e->ga1.n + e->gb1.n + e->gb2.n, 0);
    assert_true(mwt_run_until(e->loop, all_three, e, 3.0));
    mwt_run_until(e->loop, NULL, NULL, 0.1); /* no second copy trails */
    assert_int_equal(e->ga1.n, 1);
    assert_int_equal(e->gb1.n, 1); /* CHN-002: the first subscriber of b ... */
    assert_int_equal(e->gb2.n, 1); /* ... and the last one */
    assert_string_equal(e->gb2.ticket_id, TID_A);
    assert_string_equal(e->gb2.envelope, env);
    assert_int_equal(e->gb2.version, 2);
    assert_string_equal(e->ga1.envelope, env);
    for (int i = 0; i < MW_DROP__COUNT; i++)
        assert_int_equal(e->mb.channel_drops[i], 0);
}

/* The seed published JSON.stringify({ticketId, envelope}); members in any
 * order, on the unprefixed name in production (here the test prefix). */
static void test_seed_payload_delivered(void **state)
{
    struct env *e = *state;
    char env[1024], payload[1400];
    redisReply *rep;

    make_envelope(env, sizeof(env), TID_B);
    snprintf(payload, sizeof(payload), "{\"envelope\":%s,\"ticketId\":\"%s\"}", env, TID_B);
    rep = mwt_cmd(&e->r, "PUBLISH %s %s", "t1:matchmaking:assigned", payload);
    assert_non_null(rep);
    assert_int_equal(rep->integer, 2); /* two subscriber connections */
    freeReplyObject(rep);
    assert_true(mwt_run_until(e->loop, all_three, e, 3.0));
    assert_string_equal(e->ga1.ticket_id, TID_B);
    assert_string_equal(e->ga1.envelope, env); /* canonical re-serialization */
}

static uint64_t drops_total(const struct mw_metrics *m)
{
    uint64_t n = 0;

    for (int i = 0; i < MW_DROP__COUNT; i++)
        n += m->channel_drops[i];
    return n;
}

static bool b_has_6_drops(void *ud)
{
    struct env *e = ud;

    return drops_total(&e->mb) >= 6 && drops_total(&e->ma) >= 6;
}

/* Malformed payloads published raw: each dropped with its reason in both
 * instances, none delivered, and the subscription keeps working. */
static void test_malformed_dropped_by_reason(void **state)
{
    struct env *e = *state;
    char env[1024], payload[1400];
    char *big;
    redisReply *rep;
    const char *ch = "t1:matchmaking:assigned";

    big = malloc(70000);
    assert_non_null(big);
    memset(big, ' ', 70000);
    big[0] = '{';
    big[69998] = '}';
    big[69999] = '\0';
    rep = mwt_cmd(&e->r, "PUBLISH %s %s", ch, big);
    freeReplyObject(rep);
    free(big);
    rep = mwt_cmd(&e->r, "PUBLISH %s %s", ch, "{\"ticketId\": \"x\", ");
    freeReplyObject(rep);
    rep = mwt_cmd(&e->r, "PUBLISH %s %s", ch, "{\"ticketId\":7,\"envelope\":{}}");
    freeReplyObject(rep);
    snprintf(payload, sizeof(payload), "{\"ticketId\":\"%s\",\"envelope\":{\"type\":\"Bad\"}}",
             TID_A);
    rep = mwt_cmd(&e->r, "PUBLISH %s %s", ch, payload);
    freeReplyObject(rep);
    snprintf(payload, sizeof(payload),
             "{\"ticketId\":\"%s\",\"envelope\":{\"type\":\"ticket.expired\",\"v\":1,"
             "\"data\":{\"ticketId\":\"%s\",\"version\":2}}}",
             TID_A, TID_A);
    rep = mwt_cmd(&e->r, "PUBLISH %s %s", ch, payload);
    freeReplyObject(rep);
    make_envelope(env, sizeof(env), TID_B);
    snprintf(payload, sizeof(payload), "{\"ticketId\":\"%s\",\"envelope\":%s}", TID_A, env);
    rep = mwt_cmd(&e->r, "PUBLISH %s %s", ch, payload);
    freeReplyObject(rep);

    assert_true(mwt_run_until(e->loop, b_has_6_drops, e, 3.0));
    assert_int_equal(e->mb.channel_drops[MW_DROP_TOO_LARGE], 1);
    assert_int_equal(e->mb.channel_drops[MW_DROP_BAD_JSON], 1);
    assert_int_equal(e->mb.channel_drops[MW_DROP_BAD_PAYLOAD], 1);
    assert_int_equal(e->mb.channel_drops[MW_DROP_BAD_ENVELOPE], 1);
    assert_int_equal(e->mb.channel_drops[MW_DROP_NOT_ASSIGNED], 1);
    assert_int_equal(e->mb.channel_drops[MW_DROP_TICKET_MISMATCH], 1);
    assert_int_equal(e->ma.channel_drops[MW_DROP_TICKET_MISMATCH], 1);
    assert_int_equal(e->ga1.n + e->gb1.n + e->gb2.n, 0);
    /* Still subscribed and delivering. */
    publish_one(&e->a, TID_B, env, sizeof(env), 0);
    assert_true(mwt_run_until(e->loop, all_three, e, 3.0));
    assert_int_equal(drops_total(&e->mb), 6);
}

static bool resubscribed_twice(void *ud)
{
    struct env *e = ud;

    return e->ra.n >= 2 && e->rb.n >= 2 && (mw_channel_ready(&e->a, NULL, 0) == 0) &&
           (mw_channel_ready(&e->b, NULL, 0) == 0);
}

/* PUBLISH calls the fresh server received (INFO commandstats), -1 on error. */
static long long publish_calls(const struct mwt_redis *r)
{
    redisReply *rep = mwt_cmd(r, "INFO commandstats");
    const char *p;
    long long n = -1;

    if (!rep || rep->type != REDIS_REPLY_STRING)
        goto out;
    p = strstr(rep->str, "cmdstat_publish:calls=");
    n = p ? atoll(p + strlen("cmdstat_publish:calls=")) : 0;
out:
    if (rep)
        freeReplyObject(rep);
    return n;
}

static bool a_not_ready(void *ud)
{
    return !(mw_channel_ready(ud, NULL, 0) == 0);
}

/* Redis killed mid-run: publish fails with MW_EUNAVAIL while it is down
 * (never a silent success), both instances resubscribe when it is back and
 * call on_resubscribed, and delivery resumes with no duplicate. */
static void test_restart_resubscribes(void **state)
{
    struct env *e = *state;
    char env[1024];

    assert_int_equal(e->ra.n, 1);
    mwt_redis_stop(&e->r, SIGKILL);
    /* Wait for the loss to be seen, however loaded the machine. */
    assert_true(mwt_run_until(e->loop, a_not_ready, &e->a, 5.0));
    assert_false((mw_channel_ready(&e->a, NULL, 0) == 0));
    {
        char why[128];

        assert_int_equal(mw_channel_ready(&e->a, why, sizeof(why)), MW_EUNAVAIL);
        assert_string_not_equal(why, "");
    }
    /* CHN-033: publish while the command connection is down fails at once. */
    publish_one(&e->a, TID_A, env, sizeof(env), MW_EUNAVAIL);
    assert_int_equal(mwt_redis_start(&e->r), 0);
    assert_true(mwt_run_until(e->loop, resubscribed_twice, e, 5.0));
    assert_int_equal(e->ra.n, 2);
    assert_int_equal(e->rb.n, 2);
    {
        char why[128];

        assert_int_equal(mw_channel_ready(&e->b, why, sizeof(why)), 0);
        assert_string_equal(why, "");
    }
    /* CHN-033: nothing was queued for a later publish: the fresh server has
     * received no PUBLISH once both instances are connected again. */
    mwt_run_until(e->loop, NULL, NULL, 0.2);
    assert_int_equal(publish_calls(&e->r), 0);
    assert_int_equal(e->ga1.n + e->gb1.n + e->gb2.n, 0);
    publish_one(&e->b, TID_A, env, sizeof(env), 0);
    assert_true(mwt_run_until(e->loop, all_three, e, 3.0));
    mwt_run_until(e->loop, NULL, NULL, 0.1);
    assert_int_equal(e->ga1.n, 1);
    assert_int_equal(e->gb1.n, 1);
    assert_int_equal(e->gb2.n, 1);
    assert_int_equal(publish_calls(&e->r), 1);
}

static bool channel_ready(void *ud)
{
    return (mw_channel_ready(ud, NULL, 0) == 0);
}

/* A publisher-only instance (a worker) is ready without a subscription, and
 * a prefix separates deployments sharing one Redis. */
static void test_publisher_only_and_prefix(void **state)
{
    struct env *e = *state;
    struct mw_channel w;
    struct mw_redis_opts o = mwt_opts(&e->r, "other:");
    char env[1024];

    assert_int_equal(mw_channel_redis_new(&w, NULL, e->loop, &o, NULL), 0);
    assert_true(mwt_run_until(e->loop, channel_ready, &w, 3.0));
    publish_one(&w, TID_A, env, sizeof(env), 0);
    mwt_run_until(e->loop, NULL, NULL, 0.2);
    assert_int_equal(e->ga1.n + e->gb1.n + e->gb2.n, 0);
    mw_channel_destroy(&w);
}

struct frozen {
    struct mw_channel *c;
    struct resub *rs;
    int want;
};

static bool frozen_not_ready(void *ud)
{
    return mw_channel_ready(((struct frozen *)ud)->c, NULL, 0) != 0;
}

static bool frozen_resubscribed(void *ud)
{
    struct frozen *f = ud;

    return f->rs->n >= f->want && (mw_channel_ready(f->c, NULL, 0) == 0);
}

static bool got_one(void *ud)
{
    return ((struct got *)ud)->n >= 1;
}

/* CHN-105: a frozen Redis (SIGSTOP) is detected on the subscriber
 * connection too, though a subscription gets no replies to wait for: it is
 * probed, found stalled, reset, and after SIGCONT subscribed again
 * (on_resubscribed fires, so the owner re-reads, CHN-023). Today's code
 * keeps the frozen subscription and calls itself ready throughout. */
static void test_frozen_subscriber_detected(void **state)
{
    struct env *e = *state;
    struct mw_channel c;
    struct resub rs = {0};
    struct got g = {0};
    struct mw_redis_opts o = mwt_opts(&e->r, "t1:");
    struct frozen f = {.c = &c, .rs = &rs, .want = 1};
    char env[1024];

    o.timeout_ms = 300;
    assert_int_equal(
        mw_channel_redis_new(&c, &(struct mw_channel_hooks){on_resub, &rs}, e->loop, &o, NULL), 0);
    assert_int_equal(mw_channel_subscribe(&c, on_msg, &g), 0);
    assert_true(mwt_run_until(e->loop, frozen_resubscribed, &f, 3.0));
    /* Healthy and quiet for several timeouts: probes answered, no reset. */
    mwt_run_until(e->loop, NULL, NULL, 1.0);
    assert_int_equal(rs.n, 1);
    assert_true((mw_channel_ready(&c, NULL, 0) == 0));
    assert_int_equal(kill(e->r.pid, SIGSTOP), 0);
    assert_true(mwt_run_until(e->loop, frozen_not_ready, &f, 2.0));
    {
        char why[128];

        assert_int_equal(mw_channel_ready(&c, why, sizeof(why)), MW_EUNAVAIL);
        assert_string_not_equal(why, "");
    }
    /* Long enough for the subscriber's own probe to time out. */
    mwt_run_until(e->loop, NULL, NULL, 0.6);
    assert_int_equal(kill(e->r.pid, SIGCONT), 0);
    f.want = 2;
    assert_true(mwt_run_until(e->loop, frozen_resubscribed, &f, 8.0));
    assert_int_equal(rs.n, 2);
    /* Delivery works on the new subscription. */
    assert_true(mwt_run_until(e->loop, both_subscribed, e, 8.0));
    publish_one(&e->a, TID_B, env, sizeof(env), 0);
    assert_true(mwt_run_until(e->loop, got_one, &g, 3.0));
    assert_string_equal(g.ticket_id, TID_B);
    mw_channel_destroy(&c);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fanout_two_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_payload_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_dropped_by_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_resubscribes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publisher_only_and_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frozen_subscriber_detected, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    mw_log_setup(NULL, NULL, MW_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
