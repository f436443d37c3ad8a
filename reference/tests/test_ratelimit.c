/* test_ratelimit: the token bucket (burst, refill, clock steps). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "ratelimit.h"

static void test_burst_then_refill(void **state)
{
    struct mw_ratelimit rl;
    int passed = 0;

    (void)state;
    mw_ratelimit_init(&rl, 10, 5); /* 10 per second, burst 5 */
    for (int i = 0; i < 8; i++)
        passed += mw_ratelimit_allow(&rl, 1000);
    assert_int_equal(passed, 5);
    assert_int_equal(rl.suppressed, 3);
    assert_false(mw_ratelimit_allow(&rl, 1099)); /* 0.99 token */
    assert_true(mw_ratelimit_allow(&rl, 1100));  /* one more after 100 ms */
    assert_false(mw_ratelimit_allow(&rl, 1100));
    /* A long quiet spell refills to the burst, not beyond. */
    passed = 0;
    for (int i = 0; i < 10; i++)
        passed += mw_ratelimit_allow(&rl, 60000);
    assert_int_equal(passed, 5);
}

static void test_clock_going_back(void **state)
{
    struct mw_ratelimit rl;

    (void)state;
    mw_ratelimit_init(&rl, 1, 1);
    assert_true(mw_ratelimit_allow(&rl, 5000));
    assert_false(mw_ratelimit_allow(&rl, 1000)); /* earlier: no refill, no underflow */
    assert_true(mw_ratelimit_allow(&rl, 6000));
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_clock_going_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
