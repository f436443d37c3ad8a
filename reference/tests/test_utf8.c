/* test_utf8: the one UTF-8 rule, whole and fed in pieces (MSG-092). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"
#include "utf8.h"

static bool whole(const char *s, size_t n)
{
    struct mw_utf8 v = {0};

    return mw_utf8_feed(&v, (const unsigned char *)s, n) && mw_utf8_complete(&v);
}

/* Every split point of s gives the verdict of s whole. */
static bool split_everywhere(const char *s, size_t n)
{
    bool ok = whole(s, n);

    for (size_t k = 0; k <= n; k++) {
        struct mw_utf8 v = {0};
        bool r = mw_utf8_feed(&v, (const unsigned char *)s, k) &&
                 mw_utf8_feed(&v, (const unsigned char *)s + k, n - k) && mw_utf8_complete(&v);

        assert_int_equal(r, ok);
    }
    return ok;
}

static void test_rules(void **state)
{
    static const struct {
        const char *s;
        size_t n;
        bool ok;
    } cases[] = {
        {"ascii", 5, true},
        {"\xC2\xA9", 2, true},          /* U+00A9 */
        {"\xE2\x82\xAC", 3, true},      /* U+20AC */
        {"\xF0\x9F\x98\x80", 4, true},  /* U+1F600 */
        {"\xF4\x8F\xBF\xBF", 4, true},  /* U+10FFFF */
        {"\xC0\xAF", 2, false},         /* overlong */
        {"\xC1\xBF", 2, false},         /* overlong */
        {"\xE0\x9F\xBF", 3, false},     /* overlong */
        {"\xF0\x8F\xBF\xBF", 4, false}, /* overlong */
        {"\xED\xA0\x80", 3, false},     /* a UTF-16 surrogate */
        {"\xF4\x90\x80\x80", 4, false}, /* above U+10FFFF */
        {"\xF5\x80\x80\x80", 4, false},
        {"\x80", 1, false},     /* a lone continuation byte */
        {"\xE2\x82", 2, false}, /* cut short */
        {"\xE2\x28\xA1", 3, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(split_everywhere(cases[i].s, cases[i].n), cases[i].ok);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
