/* Tests for what is particular to channel_memory: messages carried
 * verbatim and copied, the bound, OOM, destroy from a callback and with
 * undelivered messages. Fan-out, order, no re-entry and the resubscription
 * signal are the contract suite's (contract_channel.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "alloc.h"
#include "channel_memory.h"
#include "defer.h"
#include "error.h"

struct got {
    char ids[32][40];
    char envs[32][128];
    uint64_t versions[32];
    int64_t assigned[32];
    size_t n;
    struct mw_channel *ch; /* for destroy from a callback */
    bool destroy_in_cb;
};

static void sub(void *ud, const struct mw_assigned *m)
{
    struct got *g = ud;

    assert_true(g->n < 32);
    snprintf(g->ids[g->n], sizeof(g->ids[0]), "%s", m->ticket_id);
    assert_true(m->envelope_len < sizeof(g->envs[0]));
    memcpy(g->envs[g->n], m->envelope, m->envelope_len);
    g->envs[g->n][m->envelope_len] = '\0';
    assert_int_equal(m->envelope[m->envelope_len], '\0');
    g->versions[g->n] = m->version;
    g->assigned[g->n] = m->assigned_ms;
    g->n++;
    if (g->destroy_in_cb) {
        g->destroy_in_cb = false;
        mw_channel_destroy(g->ch);
    }
}

static int publish(struct mw_channel *ch, const char *id, uint64_t v)
{
    char env[64];
    struct mw_assigned a;

    snprintf(env, sizeof(env), "{\"ticket\":\"%s\",\"v\":%llu}", id, (unsigned long long)v);
    a = (struct mw_assigned){.ticket_id = id,
                             .envelope = env,
                             .envelope_len = strlen(env),
                             .version = v,
                             .assigned_ms = (int64_t)v * 1000};
    return mw_channel_publish(ch, &a);
}

/* This backend carries a message as it was given, without decoding it:
 * any envelope text, the caller's version and assigned_ms; the publisher's
 * buffers are copied (borrowed only during the call). Fan-out, order and
 * no re-entry are the contract suite's (contract_channel.h). */
static void test_copies_verbatim(void **state)
{
    struct mw_defer *d = mw_defer_new(NULL, NULL);
    struct mw_channel ch;
    struct got g;

    (void)state;
    memset(&g, 0, sizeof(g));
    assert_int_equal(mw_channel_memory_new(&ch, NULL, d, 0), 0);
    assert_int_equal(mw_channel_subscribe(&ch, sub, &g), 0);
    {
        char id[8] = "t1";
        assert_int_equal(publish(&ch, id, 2), 0);
        memcpy(id, "XX", 2);
    }
    assert_int_equal(publish(&ch, "t2", 3), 0);
    mw_defer_run(d, 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.ids[0], "t1");
    assert_string_equal(g.envs[0], "{\"ticket\":\"t1\",\"v\":2}");
    assert_int_equal(g.versions[1], 3);
    assert_int_equal(g.assigned[1], 3000);
    assert_int_equal(mw_defer_pending(d), 0);
    mw_channel_destroy(&ch);
    mw_defer_free(d);
}

static void test_bound_and_errors(void **state)
{
    struct mw_defer *d = mw_defer_new(NULL, NULL);
    struct mw_channel ch;
    struct got g;

    (void)state;
    memset(&g, 0, sizeof(g));
    assert_int_equal(mw_channel_memory_new(&ch, NULL, d, 2), 0);
    assert_int_equal(mw_channel_subscribe(&ch, sub, &g), 0);
    assert_int_equal(publish(&ch, "a", 1), 0);
    assert_int_equal(publish(&ch, "b", 1), 0);
    assert_int_equal(publish(&ch, "c", 1), MW_ELIMIT);
    mw_defer_run(d, 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(publish(&ch, "c", 1), 0); /* room again */
    assert_int_equal(mw_channel_publish(&ch, NULL), MW_EINVAL);
    assert_int_equal(mw_channel_subscribe(&ch, NULL, NULL), MW_EINVAL);
    for (int i = 1; i < 64; i++)
        assert_int_equal(mw_channel_subscribe(&ch, sub, &g), 0);
    assert_int_equal(mw_channel_subscribe(&ch, sub, &g), MW_ELIMIT);
    mw_channel_destroy(&ch);
    mw_defer_free(d);
    assert_int_equal(mw_channel_memory_new(NULL, NULL, d, 0), MW_EINVAL);
}

static void test_oom(void **state)
{
    struct mw_defer *d = mw_defer_new(NULL, NULL);
    struct mw_channel ch;
    struct got g;
    long k;
    int rc;

    (void)state;
    memset(&g, 0, sizeof(g));
    mw_alloc_fail_after(0);
    assert_int_equal(mw_channel_memory_new(&ch, NULL, d, 0), MW_ENOMEM);
    mw_alloc_fail_reset();
    assert_int_equal(mw_channel_memory_new(&ch, NULL, d, 0), 0);
    assert_int_equal(mw_channel_subscribe(&ch, sub, &g), 0);
    /* The message copy, then the defer ring: each failure leaves nothing. */
    for (k = 0;; k++) {
        mw_alloc_fail_after(k);
        rc = publish(&ch, "x", 1);
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        mw_defer_run(d, 0);
        assert_int_equal(g.n, 0);
    }
    assert_int_equal(k, 2);
    mw_defer_run(d, 0);
    assert_int_equal(g.n, 1);
    mw_channel_destroy(&ch);
    mw_defer_free(d);
}

static void test_destroy_undelivered(void **state)
{
    struct mw_defer *d = mw_defer_new(NULL, NULL);
    struct mw_channel ch;
    struct got g;

    (void)state;
    memset(&g, 0, sizeof(g));
    assert_int_equal(mw_channel_memory_new(&ch, NULL, d, 0), 0);
    assert_int_equal(mw_channel_subscribe(&ch, sub, &g), 0);
    assert_int_equal(publish(&ch, "a", 1), 0);
    assert_int_equal(publish(&ch, "b", 1), 0);
    mw_channel_destroy(&ch); /* frees both (ASan: no leak), withdraws the pump */
    assert_int_equal(mw_defer_pending(d), 0);
    mw_defer_run(d, 0);
    assert_int_equal(g.n, 0);

    /* Destroyed by a subscriber mid-delivery: the rest is freed, not delivered. */
    assert_int_equal(mw_channel_memory_new(&ch, NULL, d, 0), 0);
    g.ch = &ch;
    g.destroy_in_cb = true;
    assert_int_equal(mw_channel_subscribe(&ch, sub, &g), 0);
    assert_int_equal(mw_channel_subscribe(&ch, sub, &g), 0);
    assert_int_equal(publish(&ch, "a", 1), 0);
    assert_int_equal(publish(&ch, "b", 1), 0);
    mw_defer_run(d, 0);
    assert_int_equal(g.n, 1);
    mw_defer_free(d);
    mw_channel_destroy(NULL);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copies_verbatim),
        cmocka_unit_test(test_bound_and_errors),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_destroy_undelivered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
