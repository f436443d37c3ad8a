/* Tests for the hub: routing by ticket id, fan-out to every watcher, no-op
 * double watch, bound, unwatch (also mid-push), OOM.
 *
 * The hub knows watchers only through struct mw_watcher (hub.h): the fakes
 * here embed one, so no session is involved. */
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
#include "error.h"
#include "hub.h"
#include "map.h"

struct fake {
    struct mw_watcher w;
    int id;
    int assigned;
    int ended;
    uint64_t last_version;
    char last_ticket[40];
    struct mw_hub *hub;
    /* Reactions inside a push, to test mid-loop changes. */
    bool unwatch_self;
    struct fake *unwatch_other;
    bool watch_more;
};

static void fake_assigned(struct mw_watcher *w, const struct mw_assigned *m)
{
    struct fake *s = MW_CONTAINER_OF(w, struct fake, w);

    s->assigned++;
    s->last_version = m->version;
    snprintf(s->last_ticket, sizeof(s->last_ticket), "%s", m->ticket_id);
    if (s->unwatch_self)
        mw_hub_unwatch(s->hub, m->ticket_id, &s->w);
    if (s->unwatch_other)
        mw_hub_unwatch(s->hub, m->ticket_id, &s->unwatch_other->w);
    if (s->watch_more) {
        char id[16];
        for (int i = 0; i < 40; i++) { /* forces a rehash of the hub mid-push */
            snprintf(id, sizeof(id), "more-%d", i);
            assert_int_equal(mw_hub_watch(s->hub, id, &s->w), 0);
        }
        assert_int_equal(mw_hub_watch(s->hub, m->ticket_id, &s->w), 0); /* still there: no-op */
    }
}

static void fake_ended(struct mw_watcher *w, const struct mw_ticket *t)
{
    struct fake *s = MW_CONTAINER_OF(w, struct fake, w);

    s->ended++;
    s->last_version = t->version;
    snprintf(s->last_ticket, sizeof(s->last_ticket), "%s", t->id);
}

static const struct mw_watcher_ops fake_ops = {.assigned = fake_assigned, .ended = fake_ended};

static void push(struct mw_hub *h, const char *id, uint64_t v)
{
    struct mw_assigned a = {.ticket_id = id, .envelope = "{}", .envelope_len = 2, .version = v};

    mw_hub_on_assigned(h, &a);
}

static void test_route_and_fanout(void **state)
{
    struct mw_hub *h = mw_hub_new(0);
    struct fake a = {.w.ops = &fake_ops, .id = 1}, b = {.w.ops = &fake_ops, .id = 2},
                c = {.w.ops = &fake_ops, .id = 3};
    struct mw_ticket t;

    (void)state;
    assert_non_null(h);
    assert_int_equal(mw_hub_watch(h, "t1", &a.w), 0);
    assert_int_equal(mw_hub_watch(h, "t1", &b.w), 0);
    assert_int_equal(mw_hub_watch(h, "t1", &a.w), 0); /* twice: no-op */
    assert_int_equal(mw_hub_watch(h, "t2", &c.w), 0);
    assert_int_equal(mw_hub_watch_count(h), 3);
    push(h, "t1", 2);
    assert_int_equal(a.assigned, 1); /* once, not twice */
    assert_int_equal(b.assigned, 1);
    assert_int_equal(c.assigned, 0);
    assert_int_equal(a.last_version, 2);
    push(h, "nobody", 2);
    push(h, "t2", 2);
    assert_int_equal(c.assigned, 1);
    assert_string_equal(c.last_ticket, "t2");

    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "t2");
    t.state = MW_TICKET_EXPIRED;
    t.version = 2;
    mw_hub_on_ended(h, &t);
    assert_int_equal(c.ended, 1);
    assert_int_equal(a.ended, 0);

    mw_hub_unwatch(h, "t1", &a.w);
    mw_hub_unwatch(h, "t1", &a.w); /* not watching: nothing */
    mw_hub_unwatch(h, "zz", &a.w);
    push(h, "t1", 3);
    assert_int_equal(a.assigned, 1);
    assert_int_equal(b.assigned, 2);
    mw_hub_unwatch(h, "t1", &b.w);
    mw_hub_unwatch(h, "t2", &c.w);
    assert_int_equal(mw_hub_watch_count(h), 0);
    push(h, "t1", 4);
    assert_int_equal(b.assigned, 2);
    mw_hub_free(h);
    mw_hub_free(NULL);
}

static void test_bound_and_args(void **state)
{
    struct mw_hub *h = mw_hub_new(2);
    struct fake a = {.w.ops = &fake_ops}, b = {.w.ops = &fake_ops};
    char long_id[80];

    (void)state;
    assert_int_equal(mw_hub_watch(h, "t1", &a.w), 0);
    assert_int_equal(mw_hub_watch(h, "t2", &a.w), 0);
    assert_int_equal(mw_hub_watch(h, "t3", &b.w), MW_ELIMIT);
    assert_int_equal(mw_hub_watch(h, "t1", &b.w), MW_ELIMIT);
    assert_int_equal(mw_hub_watch(h, "t1", &a.w), 0); /* existing pair: fine at the bound */
    mw_hub_unwatch(h, "t2", &a.w);
    assert_int_equal(mw_hub_watch(h, "t3", &b.w), 0);
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(mw_hub_watch(h, long_id, &b.w), MW_EINVAL);
    assert_int_equal(mw_hub_watch(h, "", &b.w), MW_EINVAL);
    assert_int_equal(mw_hub_watch(h, NULL, &b.w), MW_EINVAL);
    mw_hub_free(h);
}

static void test_unwatch_during_push(void **state)
{
    struct mw_hub *h = mw_hub_new(0);
    struct fake s[4];

    (void)state;
    memset(s, 0, sizeof(s));
    for (int i = 0; i < 4; i++) {
        s[i].w.ops = &fake_ops;
        s[i].hub = h;
        assert_int_equal(mw_hub_watch(h, "t", &s[i].w), 0);
    }
    /* s0 unwatches itself, s1 unwatches s2 (not yet pushed: skipped), s3 watches more. */
    s[0].unwatch_self = true;
    s[1].unwatch_other = &s[2];
    s[3].watch_more = true;
    push(h, "t", 2);
    assert_int_equal(s[0].assigned, 1);
    assert_int_equal(s[1].assigned, 1);
    assert_int_equal(s[2].assigned, 0);
    assert_int_equal(s[3].assigned, 1);
    assert_int_equal(mw_hub_watch_count(h), 2 + 40);
    s[1].unwatch_other = NULL;
    s[3].watch_more = false;
    push(h, "t", 3);
    assert_int_equal(s[0].assigned, 1);
    assert_int_equal(s[1].assigned, 2);
    assert_int_equal(s[3].assigned, 2);
    /* Everyone leaves mid-push: the entry is freed after the loop (ASan). */
    s[1].unwatch_self = true;
    s[3].unwatch_self = true;
    push(h, "t", 4);
    assert_int_equal(mw_hub_watch_count(h), 40);
    push(h, "t", 5);
    assert_int_equal(s[1].assigned, 3);
    push(h, "more-7", 2);
    assert_int_equal(s[3].assigned, 4);
    mw_hub_free(h);
}

static void test_many_and_oom(void **state)
{
    struct mw_hub *h;
    struct fake s = {.w.ops = &fake_ops};
    char id[32];
    long k;
    int rc;

    (void)state;
    mw_alloc_fail_after(0);
    assert_null(mw_hub_new(0));
    mw_alloc_fail_after(1);
    assert_null(mw_hub_new(0));
    mw_alloc_fail_reset();
    h = mw_hub_new(0);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "ticket-%d", i);
        assert_int_equal(mw_hub_watch(h, id, &s.w), 0);
    }
    assert_int_equal(mw_hub_watch_count(h), 1000);
    push(h, "ticket-777", 2);
    assert_int_equal(s.assigned, 1);
    for (k = 0;; k++) {
        mw_alloc_fail_after(k);
        rc = mw_hub_watch(h, "fresh", &s.w);
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        assert_int_equal(mw_hub_watch_count(h), 1000);
        push(h, "fresh", 2);
        assert_int_equal(s.assigned, 1);
    }
    assert_int_equal(k, 1); /* a first watcher costs only the entry */
    push(h, "fresh", 2);
    assert_int_equal(s.assigned, 2);
    {
        /* The second watcher fits in the entry; the third needs an array,
         * whose allocation failure changes nothing. */
        struct fake s2 = {.w.ops = &fake_ops}, s3 = {.w.ops = &fake_ops};

        mw_alloc_fail_after(0);
        assert_int_equal(mw_hub_watch(h, "fresh", &s2.w), 0);
        assert_int_equal(mw_hub_watch(h, "fresh", &s3.w), MW_ENOMEM);
        mw_alloc_fail_reset();
        assert_int_equal(mw_hub_watch_count(h), 1002);
        assert_int_equal(mw_hub_watch(h, "fresh", &s3.w), 0);
        push(h, "fresh", 3);
        assert_int_equal(s.assigned, 3);
        assert_int_equal(s2.assigned, 1);
        assert_int_equal(s3.assigned, 1);
        mw_hub_unwatch(h, "fresh", &s2.w);
        mw_hub_unwatch(h, "fresh", &s3.w);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "ticket-%d", i);
        mw_hub_unwatch(h, id, &s.w);
    }
    assert_int_equal(mw_hub_watch_count(h), 1);
    mw_hub_free(h);
}

static void count_visit(void *ud, const char *ticket_id)
{
    char *seen = ud;

    assert_true(ticket_id[0] >= 'a' && ticket_id[0] <= 'c');
    seen[ticket_id[0] - 'a']++;
}

/* CHN-023: after a resubscription the server re-reads every watched ticket;
 * the hub lists each watched ticket exactly once, and forgets unwatched ones. */
static void test_foreach_ticket(void **state)
{
    struct mw_hub *h = mw_hub_new(0);
    struct fake x = {.w.ops = &fake_ops, .id = 1}, y = {.w.ops = &fake_ops, .id = 2};
    char seen[3] = {0};

    (void)state;
    assert_non_null(h);
    assert_int_equal(mw_hub_foreach_ticket(h, count_visit, seen), 0);
    assert_int_equal(mw_hub_watch(h, "a", &x.w), 0);
    assert_int_equal(mw_hub_watch(h, "a", &y.w), 0);
    assert_int_equal(mw_hub_watch(h, "b", &x.w), 0);
    assert_int_equal(mw_hub_watch(h, "c", &y.w), 0);
    mw_hub_unwatch(h, "c", &y.w);
    assert_int_equal(mw_hub_foreach_ticket(h, count_visit, seen), 2);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    assert_int_equal(seen[2], 0);
    assert_int_equal(mw_hub_foreach_ticket(NULL, count_visit, seen), 0);
    mw_hub_free(h);
}

/* A hub built with a fixed key (as tests and the server's random key do)
 * maps many ids, through bucket growth, and forgets them all. */
static void test_keyed(void **state)
{
    const struct mw_hash_key key = {.k0 = 7, .k1 = 11};
    struct mw_hub *h = mw_hub_new_keyed(0, &key);
    struct fake x = {.w.ops = &fake_ops, .id = 1};
    char seen[3] = {0}, id[16];

    (void)state;
    assert_non_null(h);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "t%d", i);
        assert_int_equal(mw_hub_watch(h, id, &x.w), 0);
    }
    assert_int_equal(mw_hub_watch_count(h), 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "t%d", i);
        mw_hub_unwatch(h, id, &x.w);
    }
    assert_int_equal(mw_hub_watch_count(h), 0);
    assert_int_equal(mw_hub_foreach_ticket(h, count_visit, seen), 0);
    mw_hub_free(h);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_and_fanout),    cmocka_unit_test(test_bound_and_args),
        cmocka_unit_test(test_unwatch_during_push), cmocka_unit_test(test_many_and_oom),
        cmocka_unit_test(test_foreach_ticket),      cmocka_unit_test(test_keyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
