/* Tests for bench_hist: exact small values, bounded relative error,
 * percentiles that never understate, merge, clamping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bench_hist.h"

static void test_empty(void **state)
{
    (void)state;
    struct mw_bench_hist *h = mw_bench_hist_new();
    assert_non_null(h);
    assert_int_equal(mw_bench_hist_count(h), 0);
    assert_int_equal(mw_bench_hist_percentile(h, 50), 0);
    assert_int_equal(mw_bench_hist_max(h), 0);
    mw_bench_hist_free(h);
    mw_bench_hist_free(NULL);
}

static void test_small_values_exact(void **state)
{
    (void)state;
    struct mw_bench_hist *h = mw_bench_hist_new();
    for (uint64_t v = 1; v <= 100; v++)
        mw_bench_hist_record(h, v);
    assert_int_equal(mw_bench_hist_count(h), 100);
    assert_int_equal(mw_bench_hist_percentile(h, 50), 50);
    assert_int_equal(mw_bench_hist_percentile(h, 99), 99);
    assert_int_equal(mw_bench_hist_percentile(h, 100), 100);
    assert_int_equal(mw_bench_hist_min(h), 1);
    assert_int_equal(mw_bench_hist_max(h), 100);
    assert_true(mw_bench_hist_mean(h) > 50.49 && mw_bench_hist_mean(h) < 50.51);
    mw_bench_hist_free(h);
}

/* Every value v is reported as a value in [v, v * (1 + 1/128)]. */
static void test_relative_error(void **state)
{
    (void)state;
    uint64_t vals[] = {
        255, 256, 257, 1000, 4095, 4096, 123456, 150000, 2000000, 999999999, (1ull << 39) + 12345};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        struct mw_bench_hist *h = mw_bench_hist_new();
        mw_bench_hist_record(h, vals[i]);
        mw_bench_hist_record(h, vals[i] * 4); /* so the cap at max does not hide the bucket */
        uint64_t p = mw_bench_hist_percentile(h, 50);
        assert_true(p >= vals[i]);
        assert_true((double)p <= (double)vals[i] * (1.0 + 1.0 / 128.0));
        mw_bench_hist_free(h);
    }
}

static void test_percentile_ranks(void **state)
{
    (void)state;
    struct mw_bench_hist *h = mw_bench_hist_new();
    /* 990 values at 100 us, 10 at 10 ms: p99 is 100 us, p99.9 is 10 ms. */
    for (int i = 0; i < 990; i++)
        mw_bench_hist_record(h, 100000);
    for (int i = 0; i < 10; i++)
        mw_bench_hist_record(h, 10000000);
    uint64_t p99 = mw_bench_hist_percentile(h, 99);
    uint64_t p999 = mw_bench_hist_percentile(h, 99.9);
    assert_true(p99 >= 100000 && p99 < 101000);
    assert_true(p999 >= 10000000 && p999 <= 10000000); /* capped at the exact max */
    mw_bench_hist_free(h);
}

static void test_merge_and_clamp(void **state)
{
    (void)state;
    struct mw_bench_hist *a = mw_bench_hist_new();
    struct mw_bench_hist *b = mw_bench_hist_new();
    mw_bench_hist_record(a, 10);
    mw_bench_hist_record(b, 5);
    mw_bench_hist_record(b, MW_BENCH_HIST_MAX_NS * 2);
    mw_bench_hist_merge(a, b);
    assert_int_equal(mw_bench_hist_count(a), 3);
    assert_int_equal(mw_bench_hist_min(a), 5);
    assert_int_equal(mw_bench_hist_max(a), MW_BENCH_HIST_MAX_NS * 2);
    assert_int_equal(mw_bench_hist_clamped(a), 1);
    assert_true(mw_bench_hist_percentile(a, 100) >= MW_BENCH_HIST_MAX_NS - 1);
    mw_bench_hist_free(a);
    mw_bench_hist_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),           cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_relative_error),  cmocka_unit_test(test_percentile_ranks),
        cmocka_unit_test(test_merge_and_clamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
