/* Tests for the matchmaker: FIFO, regions never mixed, the absent region
 * as its own pool, per-queue sizes, sizes 1..16, requeue at the front,
 * idempotent add, bound, OOM. */
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
#include "matchmaker.h"

struct groups {
    size_t n;
    char queue[64][MW_QUEUE_MAX + 1];
    char region[64][MW_REGION_MAX + 1];
    size_t size[64];
    char ids[64][MW_MATCH_SIZE_MAX][MW_TICKET_ID_LEN + 1];
    struct mw_matchmaker *mm;
    int requeue_skip_first; /* >0: requeue the group minus its first entry, this many times */
};

static void on_match(void *ud, const struct mw_mm_group *g)
{
    struct groups *G = ud;
    size_t k = G->n++;

    assert_true(k < 64);
    snprintf(G->queue[k], sizeof(G->queue[k]), "%s", g->queue);
    snprintf(G->region[k], sizeof(G->region[k]), "%s", g->region);
    G->size[k] = g->n;
    for (size_t i = 0; i < g->n; i++)
        snprintf(G->ids[k][i], sizeof(G->ids[k][i]), "%s", g->entries[i].ticket_id);
    if (G->requeue_skip_first > 0) {
        G->requeue_skip_first--;
        assert_int_equal(
            mw_matchmaker_requeue(G->mm, g->queue, g->region, g->entries + 1, g->n - 1), 0);
    }
}

static struct mw_ticket tk(const char *id, const char *queue, const char *region)
{
    struct mw_ticket t;

    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.queue, sizeof(t.queue), "%s", queue);
    snprintf(t.player_id, sizeof(t.player_id), "player-%s", id);
    snprintf(t.region, sizeof(t.region), "%s", region);
    t.version = 1;
    return t;
}

static int add(struct mw_matchmaker *mm, const char *id, const char *queue, const char *region)
{
    struct mw_ticket t = tk(id, queue, region);

    return mw_matchmaker_add(mm, &t);
}

static struct mw_matchmaker *make(struct groups *G, unsigned size, size_t max_waiting)
{
    struct mw_matchmaker_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.match_size = size;
    cfg.max_waiting = max_waiting;
    cfg.has_hash_key = true; /* a fixed key */
    cfg.hash_key.k0 = 0x0123456789abcdefULL;
    cfg.hash_key.k1 = 0xfedcba9876543210ULL;
    cfg.n_overrides = 2;
    snprintf(cfg.overrides[0].queue, sizeof(cfg.overrides[0].queue), "squad");
    cfg.overrides[0].size = 4;
    snprintf(cfg.overrides[1].queue, sizeof(cfg.overrides[1].queue), "solo");
    cfg.overrides[1].size = 1;
    memset(G, 0, sizeof(*G));
    G->mm = mw_matchmaker_new(&cfg, on_match, G);
    assert_non_null(G->mm);
    return G->mm;
}

static void test_fifo_and_regions(void **state)
{
    struct groups G;
    struct mw_matchmaker *mm = make(&G, 2, 0);

    (void)state;
    assert_int_equal(add(mm, "a1", "duel", "eu"), 0);
    assert_int_equal(add(mm, "b1", "duel", "us"), 0);
    assert_int_equal(add(mm, "n1", "duel", ""), 0);
    assert_int_equal(add(mm, "x1", "other", "eu"), 0); /* other queue: own pool */
    assert_int_equal(G.n, 0);
    assert_int_equal(mw_matchmaker_waiting(mm), 4);
    assert_int_equal(add(mm, "a2", "duel", "eu"), 0);
    assert_int_equal(G.n, 1);
    assert_string_equal(G.ids[0][0], "a1");
    assert_string_equal(G.ids[0][1], "a2");
    assert_string_equal(G.region[0], "eu");
    assert_string_equal(G.queue[0], "duel");
    assert_int_equal(add(mm, "a3", "duel", "eu"), 0);
    assert_int_equal(add(mm, "n2", "duel", ""), 0); /* absent region only with absent */
    assert_int_equal(G.n, 2);
    assert_string_equal(G.ids[1][0], "n1");
    assert_string_equal(G.ids[1][1], "n2");
    assert_string_equal(G.region[1], "");
    assert_int_equal(add(mm, "a4", "duel", "eu"), 0);
    assert_string_equal(G.ids[2][0], "a3");
    assert_string_equal(G.ids[2][1], "a4");
    assert_int_equal(mw_matchmaker_waiting(mm), 2); /* b1, x1 */
    mw_matchmaker_free(mm);
    mw_matchmaker_free(NULL);
}

static void test_overrides_and_sizes(void **state)
{
    struct groups G;
    struct mw_matchmaker *mm = make(&G, 2, 0);
    char id[16];

    (void)state;
    assert_int_equal(mw_matchmaker_size_for(mm, "squad"), 4);
    assert_int_equal(mw_matchmaker_size_for(mm, "solo"), 1);
    assert_int_equal(mw_matchmaker_size_for(mm, "duel"), 2);
    assert_int_equal(add(mm, "s", "solo", ""), 0);
    assert_int_equal(G.n, 1);
    assert_int_equal(G.size[0], 1);
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "q%d", i);
        assert_int_equal(add(mm, id, "squad", ""), 0);
    }
    assert_int_equal(G.n, 1);
    assert_int_equal(add(mm, "q3", "squad", ""), 0);
    assert_int_equal(G.n, 2);
    assert_int_equal(G.size[1], 4);
    assert_string_equal(G.ids[1][3], "q3");
    mw_matchmaker_free(mm);

    /* Every size 1..16, in order. */
    for (unsigned size = 1; size <= MW_MATCH_SIZE_MAX; size++) {
        mm = make(&G, size, 0);
        for (unsigned i = 0; i < 3 * size - 1; i++) { /* two groups and size - 1 left */
            snprintf(id, sizeof(id), "t%u", i);
            assert_int_equal(add(mm, id, "duel", "r"), 0);
        }
        assert_int_equal(G.n, 2);
        for (unsigned g = 0; g < 2; g++) {
            assert_int_equal(G.size[g], size);
            for (unsigned i = 0; i < size; i++) {
                snprintf(id, sizeof(id), "t%u", g * size + i);
                assert_string_equal(G.ids[g][i], id);
            }
        }
        assert_int_equal(mw_matchmaker_waiting(mm), size - 1);
        mw_matchmaker_free(mm);
    }
    /* Out-of-range sizes are clamped (0: default 2; > 16: 16). */
    mm = make(&G, 0, 0);
    assert_int_equal(mw_matchmaker_size_for(mm, "duel"), 2);
    mw_matchmaker_free(mm);
    mm = make(&G, 99, 0);
    assert_int_equal(mw_matchmaker_size_for(mm, "duel"), MW_MATCH_SIZE_MAX);
    mw_matchmaker_free(mm);
}

static void test_idempotent_remove_bound(void **state)
{
    struct groups G;
    struct mw_matchmaker *mm = make(&G, 3, 3);

    (void)state;
    assert_int_equal(add(mm, "a", "duel", ""), 0);
    assert_int_equal(add(mm, "a", "duel", ""), 0); /* no-op */
    assert_int_equal(mw_matchmaker_waiting(mm), 1);
    assert_int_equal(add(mm, "b", "duel", ""), 0);
    assert_int_equal(add(mm, "c", "other", ""), 0);
    assert_int_equal(add(mm, "d", "duel", ""), MW_ELIMIT);
    assert_int_equal(add(mm, "a", "duel", ""), 0); /* already waiting: still fine */
    assert_true(mw_matchmaker_remove(mm, "a"));
    assert_false(mw_matchmaker_remove(mm, "a"));
    assert_false(mw_matchmaker_remove(mm, "zzz"));
    assert_int_equal(add(mm, "d", "duel", ""), 0);
    assert_int_equal(add(mm, "e", "duel", ""), MW_ELIMIT);
    assert_true(mw_matchmaker_remove(mm, "c"));
    assert_int_equal(add(mm, "e", "duel", ""), 0); /* b, d, e */
    assert_int_equal(G.n, 1);
    assert_string_equal(G.ids[0][0], "b");
    assert_string_equal(G.ids[0][1], "d");
    assert_string_equal(G.ids[0][2], "e");
    assert_int_equal(mw_matchmaker_waiting(mm), 0);
    mw_matchmaker_free(mm);
}

static void test_requeue_front(void **state)
{
    struct groups G;
    struct mw_matchmaker *mm = make(&G, 3, 0);
    struct mw_mm_entry back[2];

    (void)state;
    assert_int_equal(add(mm, "w1", "duel", "eu"), 0);
    assert_int_equal(add(mm, "w2", "duel", "eu"), 0);
    /* A commit failed for a ticket of an earlier group: its two others go
     * back to the front, in their order, ahead of w1, w2. */
    memset(back, 0, sizeof(back));
    snprintf(back[0].ticket_id, sizeof(back[0].ticket_id), "r1");
    snprintf(back[1].ticket_id, sizeof(back[1].ticket_id), "r2");
    assert_int_equal(mw_matchmaker_requeue(mm, "duel", "eu", back, 2), 0);
    assert_int_equal(G.n, 1); /* four waiting, size 3: r1, r2, w1 */
    assert_string_equal(G.ids[0][0], "r1");
    assert_string_equal(G.ids[0][1], "r2");
    assert_string_equal(G.ids[0][2], "w1");
    assert_int_equal(mw_matchmaker_waiting(mm), 1);
    /* Requeue of an id already waiting is skipped. */
    snprintf(back[0].ticket_id, sizeof(back[0].ticket_id), "w2");
    assert_int_equal(mw_matchmaker_requeue(mm, "duel", "eu", back, 1), 0);
    assert_int_equal(mw_matchmaker_waiting(mm), 1);
    assert_int_equal(mw_matchmaker_requeue(mm, "duel", "eu", back, 0), 0);

    /* Requeue from inside the match callback (what the worker does on a
     * conflict): the rest go to the front and match with the next one. */
    G.requeue_skip_first = 1;
    assert_int_equal(add(mm, "w3", "duel", "eu"), 0);
    assert_int_equal(add(mm, "w4", "duel", "eu"), 0); /* w2 w3 w4 -> requeue w3 w4 */
    assert_int_equal(G.n, 2);
    assert_int_equal(mw_matchmaker_waiting(mm), 2);
    assert_int_equal(add(mm, "w5", "duel", "eu"), 0);
    assert_int_equal(G.n, 3);
    assert_string_equal(G.ids[2][0], "w3");
    assert_string_equal(G.ids[2][1], "w4");
    assert_string_equal(G.ids[2][2], "w5");
    mw_matchmaker_free(mm);
}

static void test_many_and_oom(void **state)
{
    struct groups G;
    struct mw_matchmaker *mm = make(&G, 16, 0);
    char id[32];
    long k;
    int rc;

    (void)state;
    /* Many distinct regions: pools come and go; the index rehashes. */
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "t%d", i);
        char region[16];
        snprintf(region, sizeof(region), "r%d", i % 300);
        assert_int_equal(add(mm, id, "duel", region), 0);
    }
    assert_int_equal(mw_matchmaker_waiting(mm), 3000);
    for (int i = 0; i < 3000; i += 2) {
        snprintf(id, sizeof(id), "t%d", i);
        assert_true(mw_matchmaker_remove(mm, id));
    }
    assert_int_equal(mw_matchmaker_waiting(mm), 1500);
    for (k = 0;; k++) {
        mw_alloc_fail_after(k);
        rc = add(mm, "fresh", "duel", "new-region");
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        assert_int_equal(mw_matchmaker_waiting(mm), 1500);
    }
    assert_int_equal(k, 2);
    assert_int_equal(mw_matchmaker_waiting(mm), 1501);
    mw_matchmaker_free(mm); /* ASan: frees every node and pool */
    mw_alloc_fail_after(0);
    assert_null(mw_matchmaker_new(&(struct mw_matchmaker_config){.match_size = 2}, on_match, &G));
    mw_alloc_fail_reset();
}

/* A pool that a match emptied is freed (pools are keyed by client-chosen
 * (queue, region): none may linger empty), found without a walk over every
 * bucket; one that the match callback refilled by a requeue stays. Seen
 * through allocations: a fresh pool costs one more than a waiting one. */
static void test_emptied_pools_freed(void **state)
{
    struct groups G;
    struct mw_matchmaker *mm = make(&G, 2, 0);
    unsigned long before;

    (void)state;
    before = mw_alloc_count();
    assert_int_equal(add(mm, "a1", "duel", "eu"), 0);
    assert_int_equal(mw_alloc_count() - before, 2); /* pool + node */
    before = mw_alloc_count();
    assert_int_equal(add(mm, "a2", "duel", "eu"), 0); /* matches: pool emptied */
    assert_int_equal(mw_alloc_count() - before, 1);   /* node */
    assert_int_equal(G.n, 1);
    before = mw_alloc_count();
    assert_int_equal(add(mm, "a3", "duel", "eu"), 0);
    assert_int_equal(mw_alloc_count() - before, 2); /* the pool was freed */

    /* Refilled from inside the callback: the pool is kept. */
    G.requeue_skip_first = 1;
    assert_int_equal(add(mm, "a4", "duel", "eu"), 0); /* a3 a4 -> requeue a4 */
    assert_int_equal(G.n, 2);
    assert_int_equal(mw_matchmaker_waiting(mm), 1);
    before = mw_alloc_count();
    assert_int_equal(add(mm, "a5", "duel", "eu"), 0); /* a4 a5 */
    assert_int_equal(mw_alloc_count() - before, 1);   /* node only: pool kept */
    assert_int_equal(G.n, 3);
    assert_string_equal(G.ids[2][0], "a4");
    mw_matchmaker_free(mm);
}

/* A rule other than FIFO decides formation (match_rule.h): here, a match is
 * the first ticket and the last of a pool once three wait, so the middle
 * ones keep waiting. The rule sees the pool oldest first. */
static size_t ends_pick(const void *ud, const struct mw_mm_pool_view *pool,
                        size_t picks[MW_MATCH_SIZE_MAX])
{
    const void *cur = pool->first;
    const struct mw_mm_entry *e;
    size_t n = 0;
    int *calls = (int *)(uintptr_t)ud;

    (*calls)++;
    while ((e = pool->next(&cur)) != NULL)
        n++;
    assert_int_equal(n, pool->n);
    if (pool->n < 3)
        return 0;
    picks[0] = 0;
    picks[1] = pool->n - 1;
    return 2;
}

static void test_rule_decides(void **state)
{
    struct groups G;
    struct mw_matchmaker_config cfg;
    int calls = 0;
    const struct mw_match_rule rule = {.pick = ends_pick, .ud = (const void *)(uintptr_t)&calls};

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.match_size = 2;
    cfg.rule = &rule;
    memset(&G, 0, sizeof(G));
    G.mm = mw_matchmaker_new(&cfg, on_match, &G);
    assert_non_null(G.mm);
    assert_int_equal(add(G.mm, "t1", "duel", ""), 0);
    assert_int_equal(add(G.mm, "t2", "duel", ""), 0);
    assert_int_equal(G.n, 0); /* FIFO would have matched t1 and t2 */
    assert_int_equal(add(G.mm, "t3", "duel", ""), 0);
    assert_int_equal(G.n, 1);
    assert_int_equal(G.size[0], 2);
    assert_string_equal(G.ids[0][0], "t1");
    assert_string_equal(G.ids[0][1], "t3");
    assert_int_equal(mw_matchmaker_waiting(G.mm), 1); /* t2 */
    assert_true(mw_matchmaker_remove(G.mm, "t2"));
    assert_true(calls >= 3);
    mw_matchmaker_free(G.mm);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_regions),
        cmocka_unit_test(test_overrides_and_sizes),
        cmocka_unit_test(test_idempotent_remove_bound),
        cmocka_unit_test(test_requeue_front),
        cmocka_unit_test(test_many_and_oom),
        cmocka_unit_test(test_emptied_pools_freed),
        cmocka_unit_test(test_rule_decides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
