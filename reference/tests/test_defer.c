/* Tests for defer: FIFO order, kicks, budgets, re-posting, cancel, OOM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "alloc.h"
#include "defer.h"
#include "error.h"

struct rec {
    int log[256];
    size_t n;
    struct mw_defer *d;
    int kicks;
};

struct item {
    struct rec *r;
    int v;
    int repost; /* post this many follow-ups from inside the call */
};

static void record(void *arg)
{
    struct item *it = arg;

    it->r->log[it->r->n++] = it->v;
    if (it->repost > 0) {
        it->repost--;
        it->v += 100;
        assert_int_equal(mw_defer_post(it->r->d, record, it), 0);
    }
}

static void kick(void *ud)
{
    struct rec *r = ud;

    r->kicks++;
}

static void test_fifo_and_kick(void **state)
{
    struct rec r = {0};
    struct item items[5];

    (void)state;
    r.d = mw_defer_new(kick, &r);
    assert_non_null(r.d);
    for (int i = 0; i < 5; i++) {
        items[i] = (struct item){.r = &r, .v = i};
        assert_int_equal(mw_defer_post(r.d, record, &items[i]), 0);
    }
    /* One kick for the empty -> non-empty transition, none per post after. */
    assert_int_equal(r.kicks, 1);
    assert_int_equal(mw_defer_pending(r.d), 5);
    assert_int_equal(r.n, 0); /* nothing runs before run() */
    assert_int_equal(mw_defer_run(r.d, 0), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.log[i], i);
    assert_int_equal(mw_defer_pending(r.d), 0);
    assert_int_equal(r.kicks, 1); /* empty after the run: no kick */
    /* Next empty -> non-empty transition kicks again. */
    assert_int_equal(mw_defer_post(r.d, record, &items[0]), 0);
    assert_int_equal(r.kicks, 2);
    mw_defer_free(r.d);
}

static void test_budget_and_reposts(void **state)
{
    struct rec r = {0};
    struct item a, b;

    (void)state;
    r.d = mw_defer_new(kick, &r);
    assert_non_null(r.d);
    a = (struct item){.r = &r, .v = 1, .repost = 3};
    b = (struct item){.r = &r, .v = 2};
    assert_int_equal(mw_defer_post(r.d, record, &a), 0);
    assert_int_equal(mw_defer_post(r.d, record, &b), 0);
    /* budget 0: only what was queued when the run started (a, b); a's
     * re-post waits for the next run, and the owner is kicked again. */
    assert_int_equal(mw_defer_run(r.d, 0), 2);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.log[0], 1);
    assert_int_equal(r.log[1], 2);
    assert_int_equal(mw_defer_pending(r.d), 1);
    assert_int_equal(r.kicks, 2);
    /* An explicit budget also runs calls posted during the run, up to it. */
    assert_int_equal(mw_defer_run(r.d, 2), 2);
    assert_int_equal(r.log[2], 101);
    assert_int_equal(r.log[3], 201);
    assert_int_equal(mw_defer_pending(r.d), 1);
    assert_int_equal(mw_defer_run(r.d, 10), 1);
    assert_int_equal(r.log[4], 301);
    assert_int_equal(mw_defer_pending(r.d), 0);
    assert_int_equal(mw_defer_run(r.d, 10), 0);
    mw_defer_free(r.d);
}

static void test_growth_wraparound(void **state)
{
    struct rec r = {0};
    static struct item items[200];

    (void)state;
    r.d = mw_defer_new(NULL, NULL); /* no kick: caller polls */
    assert_non_null(r.d);
    /* Interleave posts and partial runs so the ring wraps, then grows. */
    int next = 0, expect = 0;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 19 && next < 200; i++) {
            items[next] = (struct item){.r = &r, .v = next};
            assert_int_equal(mw_defer_post(r.d, record, &items[next]), 0);
            next++;
        }
        size_t ran = mw_defer_run(r.d, 7);
        for (size_t k = 0; k < ran; k++) {
            assert_int_equal(r.log[r.n - ran + k], expect);
            expect++;
        }
    }
    while (mw_defer_pending(r.d)) {
        size_t before = r.n;
        mw_defer_run(r.d, 5);
        for (size_t k = before; k < r.n; k++)
            assert_int_equal(r.log[k], expect++);
    }
    assert_int_equal(expect, 190);
    mw_defer_free(r.d);
}

static void test_cancel(void **state)
{
    struct rec r = {0};
    struct item items[4];

    (void)state;
    r.d = mw_defer_new(NULL, NULL);
    for (int i = 0; i < 4; i++) {
        items[i] = (struct item){.r = &r, .v = i};
        assert_int_equal(mw_defer_post(r.d, record, &items[i]), 0);
    }
    assert_int_equal(mw_defer_post(r.d, record, &items[1]), 0);
    assert_int_equal(mw_defer_cancel(r.d, record, &items[1]), 2);
    assert_int_equal(mw_defer_cancel(r.d, record, &items[1]), 0);
    assert_int_equal(mw_defer_pending(r.d), 3);
    mw_defer_run(r.d, 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.log[0], 0);
    assert_int_equal(r.log[1], 2);
    assert_int_equal(r.log[2], 3);
    mw_defer_free(r.d);
}

static void test_oom(void **state)
{
    struct rec r = {0};
    struct item it = {.r = &r, .v = 7};
    struct mw_defer *d;

    (void)state;
    mw_alloc_fail_after(0);
    assert_null(mw_defer_new(NULL, NULL));
    mw_alloc_fail_reset();
    d = mw_defer_new(kick, &r);
    assert_non_null(d);
    /* The ring's first allocation fails: post reports it and fn never runs. */
    mw_alloc_fail_after(0);
    assert_int_equal(mw_defer_post(d, record, &it), MW_ENOMEM);
    mw_alloc_fail_reset();
    assert_int_equal(mw_defer_pending(d), 0);
    assert_int_equal(r.kicks, 0);
    assert_int_equal(mw_defer_run(d, 0), 0);
    assert_int_equal(r.n, 0);
    /* Pending calls are dropped without running on free (ASan checks leaks). */
    assert_int_equal(mw_defer_post(d, record, &it), 0);
    mw_defer_free(d);
    assert_int_equal(r.n, 0);
    mw_defer_free(NULL);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_kick),
        cmocka_unit_test(test_budget_and_reposts),
        cmocka_unit_test(test_growth_wraparound),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
