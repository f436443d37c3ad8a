/* test_rfc3339: the protocol's timestamps, written and read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "rfc3339.h"

static void test_round_trip(void **state)
{
    /* Every millisecond value written reads back the same, across eras,
     * leap years and the epoch (an LCG walk over four-digit years). */
    const int64_t lo = -62167219200000LL, hi = 253402300799999LL;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    char out[32];
    int64_t back;

    (void)state;
    for (int i = 0; i < 200000; i++) {
        int64_t ms;

        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        ms = lo + (int64_t)(x % (uint64_t)(hi - lo + 1));
        if (i < 4)
            ms = (int64_t[]){lo, hi, 0, -1}[i];
        mw_rfc3339_format(ms, out);
        assert_int_equal(strlen(out), 24);
        assert_true(mw_rfc3339_parse(out, strlen(out), &back));
        assert_int_equal(back, ms);
    }
}

static void test_parse_rules(void **state)
{
    static const struct {
        const char *s;
        bool ok;
        int64_t ms;
    } cases[] = {
        {"1970-01-01T00:00:00Z", true, 0},
        {"1970-01-01t00:00:00.5z", true, 500},      /* RFC 3339 allows t/z */
        {"1970-01-01T00:00:00.123456Z", true, 123}, /* milliseconds kept */
        {"2024-02-29T00:00:00.000Z", true, 1709164800000LL},
        {"2023-02-29T00:00:00.000Z", false, 0}, /* not a leap year */
        {"1970-01-01T00:00:00.Z", false, 0},
        {"1970-01-01T00:00:00+00:00", false, 0}, /* offsets refused: UTC Z only */
        {"1970-01-01 00:00:00Z", false, 0},
        {"1970-13-01T00:00:00Z", false, 0},
        {"1970-01-01T24:00:00Z", false, 0},
        {"1970-01-01T00:00:00ZZ", false, 0},
        {"", false, 0},
    };
    int64_t ms;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ms = -7;
        assert_int_equal(mw_rfc3339_parse(cases[i].s, strlen(cases[i].s), &ms), cases[i].ok);
        assert_int_equal(ms, cases[i].ok ? cases[i].ms : -7);
    }
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
