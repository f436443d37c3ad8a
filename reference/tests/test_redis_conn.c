/* Tests for redis_conn against a real redis-server: ready after the
 * handshake, unreachable at start then up, restart mid-run (lost, NULL
 * replies for commands in flight, ready again), AUTH + SELECT from the
 * options, a wrong password and a bad database never ready (CHN-034),
 * capped backoff, free with commands pending, and the command timeout
 * against a frozen Redis (SIGSTOP): busy or idle, detected within the bound,
 * then a reconnect (CHN-104, CHN-105). */
#define _POSIX_C_SOURCE 200809L /* kill, nanosleep, clock_gettime (redis_testenv.h) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include <hiredis/async.h>

#include "redis_testenv.h"

struct obs {
    int ready;
    int lost;
    int replies;      /* non-NULL replies */
    int null_replies; /* NULL replies (connection dropped or freed) */
    long long last_int;
};

static void on_ready(void *ud, struct mw_redis_conn *c)
{
    struct obs *o = ud;

    assert_true(mw_redis_conn_ready(c));
    assert_non_null(mw_redis_conn_ctx(c));
    assert_string_equal(mw_redis_conn_error(c), "");
    o->ready++;
}

static void on_lost(void *ud, struct mw_redis_conn *c)
{
    struct obs *o = ud;

    assert_false(mw_redis_conn_ready(c));
    assert_null(mw_redis_conn_ctx(c));
    o->lost++;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct obs *o = privdata;
    redisReply *reply = r;

    (void)ac;
    if (!reply) {
        o->null_replies++;
        return;
    }
    o->replies++;
    if (reply->type == REDIS_REPLY_INTEGER)
        o->last_int = reply->integer;
}

static bool ready_n(void *ud)
{
    struct obs *o = ud;

    return o->ready >= 1;
}

static bool ready_2(void *ud)
{
    struct obs *o = ud;

    return o->ready >= 2;
}

static bool lost_1(void *ud)
{
    struct obs *o = ud;

    return o->lost >= 1;
}

static bool replies_1(void *ud)
{
    struct obs *o = ud;

    return o->replies >= 1;
}

/* Waits (never a fixed sleep) until c's error text contains what. */
struct err_wait {
    struct mw_redis_conn *c;
    const char *what;
};

static bool error_has(void *ud)
{
    const struct err_wait *w = ud;

    return strstr(mw_redis_conn_error(w->c), w->what) != NULL;
}

static void wait_error(struct ev_loop *loop, struct mw_redis_conn *c, const char *what)
{
    struct err_wait w = {c, what};

    assert_true(mwt_run_until(loop, error_has, &w, 5.0));
}

static double wall_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_ready_and_command(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis r = {0};
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;

    (void)state;
    assert_int_equal(mwt_redis_start(&r), 0);
    opts = mwt_opts(&r, NULL);
    c = mw_redis_conn_new(loop, &opts, "cmd", on_ready, on_lost, &o);
    assert_non_null(c);
    /* Never connects (nor calls back) from inside _new. */
    assert_false(mw_redis_conn_ready(c));
    assert_int_equal(o.ready, 0);
    assert_null(mw_redis_conn_ctx(c));
    assert_true(mwt_run_until(loop, ready_n, &o, 3.0));
    assert_int_equal(redisAsyncCommand(mw_redis_conn_ctx(c), on_reply, &o, "INCRBY k %d", 41), 0);
    assert_true(mwt_run_until(loop, replies_1, &o, 3.0));
    assert_int_equal(o.last_int, 41);
    assert_int_equal(o.lost, 0);
    mw_redis_conn_free(c);
    mw_redis_conn_free(NULL);
    mwt_redis_stop(&r, SIGTERM);
    ev_loop_destroy(loop);
}

/* Redis down at start: not ready, an error naming the failure, retries with
 * backoff, ready as soon as the server comes up. */
static void test_unreachable_then_up(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis r = {0};
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;

    (void)state;
    r.port = mwt_free_port();
    opts = mwt_opts(&r, NULL);
    c = mw_redis_conn_new(loop, &opts, "sub", on_ready, on_lost, &o);
    assert_non_null(c);
    wait_error(loop, c, "refused"); /* the first attempt failed */
    assert_false(mw_redis_conn_ready(c));
    assert_int_equal(o.ready, 0);
    assert_non_null(strstr(mw_redis_conn_error(c), "(sub)"));
    assert_int_equal(o.lost, 0); /* never was ready */
    assert_int_equal(mwt_redis_start(&r), 0);
    assert_true(mwt_run_until(loop, ready_n, &o, 3.0));
    assert_int_equal(o.ready, 1);
    mw_redis_conn_free(c);
    mwt_redis_stop(&r, SIGTERM);
    ev_loop_destroy(loop);
}

/* Restart mid-run: a command in flight gets a NULL reply, lost fires once,
 * ready fires again after the server is back. */
static void test_restart(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis r = {0};
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;

    (void)state;
    assert_int_equal(mwt_redis_start(&r), 0);
    opts = mwt_opts(&r, NULL);
    c = mw_redis_conn_new(loop, &opts, "cmd", on_ready, on_lost, &o);
    assert_true(mwt_run_until(loop, ready_n, &o, 3.0));
    /* A blocking command that the crash interrupts. */
    assert_int_equal(redisAsyncCommand(mw_redis_conn_ctx(c), on_reply, &o, "BLPOP never-pushed 10"),
                     0);
    mwt_run_until(loop, NULL, NULL, 0.05);
    mwt_redis_stop(&r, SIGKILL);
    assert_true(mwt_run_until(loop, lost_1, &o, 3.0));
    assert_int_equal(o.null_replies, 1);
    assert_int_equal(o.replies, 0);
    assert_false(mw_redis_conn_ready(c));
    assert_string_not_equal(mw_redis_conn_error(c), "");
    /* Down for a while: several failed attempts, no second lost. */
    mwt_run_until(loop, NULL, NULL, 0.3);
    assert_int_equal(o.lost, 1);
    assert_int_equal(mwt_redis_start(&r), 0);
    assert_true(mwt_run_until(loop, ready_2, &o, 3.0));
    assert_int_equal(redisAsyncCommand(mw_redis_conn_ctx(c), on_reply, &o, "INCRBY k 2"), 0);
    assert_true(mwt_run_until(loop, replies_1, &o, 3.0));
    assert_int_equal(o.last_int, 2); /* a fresh server (no persistence) */
    assert_int_equal(o.lost, 1);
    mw_redis_conn_free(c);
    mwt_redis_stop(&r, SIGTERM);
    ev_loop_destroy(loop);
}

/* CHN-034: AUTH and SELECT from the options, pipelined before anything
 * else: a command sent once ready lands in the selected database. */
static void test_auth_and_select(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis r = {0};
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;
    redisReply *rep;

    (void)state;
    snprintf(r.password, sizeof(r.password), "s3cret pass");
    assert_int_equal(mwt_redis_start(&r), 0);
    opts = mwt_opts(&r, NULL);
    opts.db = 3;
    c = mw_redis_conn_new(loop, &opts, "cmd", on_ready, on_lost, &o);
    assert_true(mwt_run_until(loop, ready_n, &o, 3.0));
    assert_int_equal(redisAsyncCommand(mw_redis_conn_ctx(c), on_reply, &o, "SET where db3"), 0);
    assert_true(mwt_run_until(loop, replies_1, &o, 3.0));
    rep = mwt_cmd(&r, "SELECT 3");
    freeReplyObject(rep);
    {
        redisContext *cl = mwt_client(&r);
        assert_non_null(cl);
        rep = redisCommand(cl, "SELECT 3");
        freeReplyObject(rep);
        rep = redisCommand(cl, "GET where");
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_STRING);
        assert_string_equal(rep->str, "db3");
        freeReplyObject(rep);
        rep = redisCommand(cl, "SELECT 0");
        freeReplyObject(rep);
        rep = redisCommand(cl, "EXISTS where");
        assert_int_equal(rep->integer, 0);
        freeReplyObject(rep);
        redisFree(cl);
    }
    mw_redis_conn_free(c);
    mwt_redis_stop(&r, SIGTERM);
    ev_loop_destroy(loop);
}

/* CHN-034: a connection is ready only when AUTH succeeded: a wrong
 * password is never ready, the error says why, retries. */
static void test_wrong_password(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis r = {0};
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;

    (void)state;
    snprintf(r.password, sizeof(r.password), "right");
    assert_int_equal(mwt_redis_start(&r), 0);
    opts = mwt_opts(&r, NULL);
    snprintf(opts.password, sizeof(opts.password), "wrong");
    c = mw_redis_conn_new(loop, &opts, "cmd", on_ready, on_lost, &o);
    wait_error(loop, c, "WRONGPASS"); /* a handshake was answered */
    assert_non_null(strstr(mw_redis_conn_error(c), "AUTH"));
    /* And retried, never ready. */
    assert_false(mwt_run_until(loop, ready_n, &o, 0.3));
    assert_int_equal(o.ready, 0);
    mw_redis_conn_free(c);
    mwt_redis_stop(&r, SIGTERM);
    ev_loop_destroy(loop);
}

/* CHN-034: ... and only when SELECT succeeded: a database the server does
 * not have (it has 16) is never ready, and the error names SELECT. */
static void test_select_fails(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis r = {0};
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;

    (void)state;
    assert_int_equal(mwt_redis_start(&r), 0);
    opts = mwt_opts(&r, NULL);
    opts.db = 99;
    c = mw_redis_conn_new(loop, &opts, "cmd", on_ready, on_lost, &o);
    wait_error(loop, c, "SELECT"); /* a handshake was answered */
    assert_false(mwt_run_until(loop, ready_n, &o, 0.3));
    assert_int_equal(o.ready, 0);
    assert_false(mw_redis_conn_ready(c));
    assert_null(mw_redis_conn_ctx(c));
    mw_redis_conn_free(c);
    mwt_redis_stop(&r, SIGTERM);
    ev_loop_destroy(loop);
}

/* Backoff: a listener that accepts and closes at once counts attempts; with
 * min 50 ms and max 200 ms, 1.2 s allows about 8 (0, 50, 150, 350, 550...),
 * far fewer than a retry loop without backoff would make. Timers never fire
 * early, so the upper bound is computed from the time that really passed
 * (a loaded machine stretches the run); the lower bound is waited for. */
static void test_backoff_capped(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis r = {0};
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int lfd, attempts = 0;
    double t0, elapsed_ms;

    (void)state;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(listen(lfd, 64), 0);
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    r.port = ntohs(a.sin_port);
    opts = mwt_opts(&r, NULL);
    opts.backoff_min_ms = 50;
    opts.backoff_max_ms = 200;
    t0 = wall_s();
    c = mw_redis_conn_new(loop, &opts, "cmd", on_ready, on_lost, &o);
    while (wall_s() - t0 < 1.2 || (attempts < 4 && wall_s() - t0 < 10.0)) {
        int fd;

        mwt_run_until(loop, NULL, NULL, 0.01);
        while ((fd = accept(lfd, NULL, NULL)) >= 0) {
            attempts++;
            close(fd);
        }
    }
    elapsed_ms = (wall_s() - t0) * 1000.0;
    assert_int_equal(o.ready, 0);
    assert_true(attempts >= 4);
    /* Attempts at 0, >=50, >=150, >=350, then at most one per 200 ms. */
    print_message("backoff: %d attempts in %.0f ms\n", attempts, elapsed_ms);
    assert_true(attempts <= 4 + (int)((elapsed_ms - 350.0) / 200.0) + 1);
    /* Without backoff (a 50 ms retry) it would be about elapsed / 50. */
    assert_true(attempts < (int)(elapsed_ms / 50.0) - 4);
    mw_redis_conn_free(c);
    close(lfd);
    ev_loop_destroy(loop);
}

/* Free with commands pending: each gets a NULL reply during the free. */
static void test_free_with_pending(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis r = {0};
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;

    (void)state;
    assert_int_equal(mwt_redis_start(&r), 0);
    opts = mwt_opts(&r, NULL);
    c = mw_redis_conn_new(loop, &opts, "cmd", on_ready, on_lost, &o);
    assert_true(mwt_run_until(loop, ready_n, &o, 3.0));
    for (int i = 0; i < 3; i++)
        assert_int_equal(redisAsyncCommand(mw_redis_conn_ctx(c), on_reply, &o, "BLPOP x 10"), 0);
    mwt_run_until(loop, NULL, NULL, 0.05);
    mw_redis_conn_free(c);
    assert_int_equal(o.null_replies, 3);
    assert_int_equal(o.lost, 0);
    mwt_redis_stop(&r, SIGTERM);
    ev_loop_destroy(loop);
}

/* The stall tests' server, started by setup and always stopped by
 * teardown, thawed first: a failed assertion while it is frozen (SIGSTOP)
 * must not leave a stopped redis-server behind. */
static int redis_setup(void **state)
{
    struct mwt_redis *r = calloc(1, sizeof(*r));

    if (!r || mwt_redis_start(r) != 0) {
        free(r);
        return -1;
    }
    *state = r;
    return 0;
}

static int redis_teardown(void **state)
{
    struct mwt_redis *r = *state;

    if (r->pid > 0)
        kill(r->pid, SIGCONT);
    mwt_redis_stop(r, SIGKILL);
    free(r);
    return 0;
}

static bool lost_and_nulls_3(void *ud)
{
    struct obs *o = ud;

    return o->lost >= 1 && o->null_replies >= 3;
}

static bool not_ready_pred(void *ud)
{
    return !mw_redis_conn_ready(ud);
}

/* CHN-104: Redis frozen (SIGSTOP) with commands in flight: within the
 * timeout (plus the watchdog's tick) every pending callback gets a NULL
 * reply (owners answer unavailable), lost fires once, the connection is not
 * ready and says why; after SIGCONT it reconnects by itself. Today's code
 * waits for as long as the freeze lasts. */
static void test_command_timeout_on_stall(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis *r = *state;
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;
    double t0, waited;

    opts = mwt_opts(r, NULL);
    opts.timeout_ms = 300;
    c = mw_redis_conn_new(loop, &opts, "cmd", on_ready, on_lost, &o);
    assert_true(mwt_run_until(loop, ready_n, &o, 3.0));
    assert_int_equal(mw_redis_conn_timeout_ms(c), 300);
    assert_int_equal(kill(r->pid, SIGSTOP), 0);
    t0 = wall_s();
    for (int i = 0; i < 3; i++)
        assert_int_equal(redisAsyncCommand(mw_redis_conn_ctx(c), on_reply, &o, "INCR k"), 0);
    assert_true(mwt_run_until(loop, lost_and_nulls_3, &o, 5.0));
    waited = wall_s() - t0;
    print_message("stall: 3 commands failed after %.0f ms (timeout 300 ms)\n", waited * 1000.0);
    assert_true(waited >= 0.29);
    assert_true(waited < 0.3 + 0.25); /* one tick (30 ms) plus a loaded machine's slack */
    assert_int_equal(o.null_replies, 3);
    assert_int_equal(o.replies, 0);
    assert_int_equal(o.lost, 1);
    assert_int_equal(mw_redis_conn_timeouts(c), 1);
    assert_false(mw_redis_conn_ready(c));
    assert_null(mw_redis_conn_ctx(c));
    assert_non_null(strstr(mw_redis_conn_error(c), "timed out"));
    /* Still frozen: reconnect attempts do not get ready. */
    mwt_run_until(loop, NULL, NULL, 0.3);
    assert_int_equal(o.ready, 1);
    assert_int_equal(kill(r->pid, SIGCONT), 0);
    assert_true(mwt_run_until(loop, ready_2, &o, 8.0));
    o.replies = 0;
    assert_int_equal(redisAsyncCommand(mw_redis_conn_ctx(c), on_reply, &o, "INCRBY k 0"), 0);
    assert_true(mwt_run_until(loop, replies_1, &o, 3.0));
    mw_redis_conn_free(c);
    ev_loop_destroy(loop);
}

/* CHN-105: an idle connection (nothing in flight) is probed, so a frozen
 * Redis is noticed without any owner command: not ready within about one
 * and a half timeouts. */
static void test_idle_stall_detected(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis *r = *state;
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;
    double t0, waited;

    opts = mwt_opts(r, NULL);
    opts.timeout_ms = 300;
    c = mw_redis_conn_new(loop, &opts, "idle", on_ready, on_lost, &o);
    assert_true(mwt_run_until(loop, ready_n, &o, 3.0));
    /* Idle and healthy for several timeouts: probes answered, no reset. */
    mwt_run_until(loop, NULL, NULL, 1.0);
    assert_int_equal(o.lost, 0);
    assert_true(mw_redis_conn_ready(c));
    assert_int_equal(kill(r->pid, SIGSTOP), 0);
    t0 = wall_s();
    assert_true(mwt_run_until(loop, not_ready_pred, c, 5.0));
    waited = wall_s() - t0;
    print_message("idle stall: not ready after %.0f ms (timeout 300 ms)\n", waited * 1000.0);
    assert_true(waited < 0.15 + 0.3 + 0.3);
    assert_true(mwt_run_until(loop, lost_1, &o, 1.0));
    assert_int_equal(kill(r->pid, SIGCONT), 0);
    assert_true(mwt_run_until(loop, ready_2, &o, 8.0));
    mw_redis_conn_free(c);
    ev_loop_destroy(loop);
}

/* CHN-104: a busy Redis that keeps answering is never cut off, and a
 * blocking command shorter than the timeout is not a stall. */
static void test_no_timeout_while_answering(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct mwt_redis *r = *state;
    struct obs o = {0};
    struct mw_redis_opts opts;
    struct mw_redis_conn *c;

    opts = mwt_opts(r, NULL);
    opts.timeout_ms = 300;
    c = mw_redis_conn_new(loop, &opts, "cmd", on_ready, on_lost, &o);
    assert_true(mwt_run_until(loop, ready_n, &o, 3.0));
    for (int i = 0; i < 10; i++) {
        int before = o.replies;

        assert_int_equal(
            redisAsyncCommand(mw_redis_conn_ctx(c), on_reply, &o, "BLPOP never-pushed 0.1"), 0);
        for (int k = 0; k < 20; k++)
            assert_int_equal(redisAsyncCommand(mw_redis_conn_ctx(c), on_reply, &o, "INCR n"), 0);
        while (o.replies < before + 21 && o.lost == 0)
            mwt_run_until(loop, NULL, NULL, 0.01);
    }
    assert_int_equal(o.lost, 0);
    assert_int_equal(o.null_replies, 0);
    assert_int_equal(mw_redis_conn_timeouts(c), 0);
    mw_redis_conn_free(c);
    ev_loop_destroy(loop);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_and_command),
        cmocka_unit_test(test_unreachable_then_up),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_auth_and_select),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_backoff_capped),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_select_fails),
        cmocka_unit_test_setup_teardown(test_command_timeout_on_stall, redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_idle_stall_detected, redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_no_timeout_while_answering, redis_setup,
                                        redis_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
