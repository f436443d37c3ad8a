/* test_map: the intrusive chained hash map (map.h). */
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
#include "map.h"

struct rec {
    int key;
    struct mw_map_node node;
    bool drained;
};

/* A deliberately poor hash (many collisions) so chains are exercised. */
static uint64_t hash_of(int key)
{
    return (uint64_t)(key % 97) * 0x9e3779b97f4a7c15ULL;
}

static struct rec *find(const struct mw_map *m, int key)
{
    uint64_t h = hash_of(key);

    for (struct mw_map_node *n = mw_map_bucket(m, h); n; n = n->next)
        if (n->hash == h && MW_CONTAINER_OF(n, struct rec, node)->key == key)
            return MW_CONTAINER_OF(n, struct rec, node);
    return NULL;
}

static void test_init_args(void **state)
{
    struct mw_map m;

    (void)state;
    assert_int_equal(mw_map_init(&m, 3, 8), MW_EINVAL); /* not a power of two */
    assert_int_equal(mw_map_init(&m, 8, 4), MW_EINVAL); /* max below initial */
    assert_int_equal(mw_map_init(&m, 0, 4), MW_EINVAL);
    mw_map_release(&m); /* safe after a failed init */
    mw_map_release(NULL);
    mw_alloc_fail_after(0);
    assert_int_equal(mw_map_init(&m, 4, 8), MW_ENOMEM);
    mw_alloc_fail_reset();
    mw_map_release(&m);
}

static void test_insert_find_remove_grow(void **state)
{
    static struct rec r[5000];
    struct mw_map m;

    (void)state;
    assert_int_equal(mw_map_init(&m, 4, 1 << 20), 0);
    for (int i = 0; i < 5000; i++) {
        r[i].key = i;
        mw_map_insert(&m, &r[i].node, hash_of(i));
    }
    assert_int_equal(m.n, 5000);
    assert_true(m.nb >= 4096); /* grew by doubling at load > 1 */
    for (int i = 0; i < 5000; i++)
        assert_ptr_equal(find(&m, i), &r[i]);
    assert_null(find(&m, 5000));
    for (int i = 0; i < 5000; i += 2)
        mw_map_remove(&m, &r[i].node);
    assert_int_equal(m.n, 2500);
    for (int i = 0; i < 5000; i++)
        assert_ptr_equal(find(&m, i), i % 2 ? &r[i] : NULL);
    mw_map_release(&m);
}

static void test_bounded_buckets_and_failed_growth(void **state)
{
    static struct rec r[300];
    struct mw_map m;

    (void)state;
    /* Bound: never more than max buckets; chains just get longer. */
    assert_int_equal(mw_map_init(&m, 4, 16), 0);
    for (int i = 0; i < 300; i++) {
        r[i].key = i;
        mw_map_insert(&m, &r[i].node, hash_of(i));
    }
    assert_int_equal(m.nb, 16);
    for (int i = 0; i < 300; i++)
        assert_ptr_equal(find(&m, i), &r[i]);
    mw_map_release(&m);

    /* Growth whose allocation fails: still correct. */
    assert_int_equal(mw_map_init(&m, 4, 1024), 0);
    mw_alloc_fail_after(0);
    for (int i = 0; i < 300; i++) {
        r[i].key = i;
        mw_map_insert(&m, &r[i].node, hash_of(i));
    }
    mw_alloc_fail_reset();
    assert_int_equal(m.nb, 4);
    for (int i = 0; i < 300; i++)
        assert_ptr_equal(find(&m, i), &r[i]);
    mw_map_release(&m);
}

static void on_drain(struct mw_map_node *n, void *ud)
{
    struct rec *r = MW_CONTAINER_OF(n, struct rec, node);

    assert_false(r->drained);
    r->drained = true;
    (*(int *)ud)++;
}

static void test_drain(void **state)
{
    static struct rec r[100];
    struct mw_map m;
    int calls = 0;

    (void)state;
    assert_int_equal(mw_map_init(&m, 8, 64), 0);
    for (int i = 0; i < 100; i++) {
        r[i].key = i;
        mw_map_insert(&m, &r[i].node, hash_of(i));
    }
    mw_map_drain(&m, on_drain, &calls);
    assert_int_equal(calls, 100);
    assert_int_equal(m.n, 0);
    for (int i = 0; i < 100; i++)
        assert_true(r[i].drained);
    assert_null(find(&m, 1));
    mw_map_release(&m);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_args),
        cmocka_unit_test(test_insert_find_remove_grow),
        cmocka_unit_test(test_bounded_buckets_and_failed_growth),
        cmocka_unit_test(test_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
