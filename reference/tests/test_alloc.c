/* test_alloc: the injectable allocator and its failure injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "alloc.h"

#include <cjson/cJSON.h>
#include <string.h>

static void test_basic(void **state)
{
    char *p, *q;

    (void)state;
    p = mw_malloc(0); /* never NULL for size 0 */
    assert_non_null(p);
    mw_free(p);
    mw_free(NULL);
    p = mw_calloc(4, 8);
    assert_non_null(p);
    assert_int_equal(p[31], 0);
    q = mw_realloc(p, 64);
    assert_non_null(q);
    mw_free(q);
    assert_null(mw_calloc(SIZE_MAX / 2, 4)); /* n*size overflows */
    p = mw_strndup("abcdef", 3);
    assert_string_equal(p, "abc");
    mw_free(p);
}

static void test_fail_after(void **state)
{
    unsigned long before = mw_alloc_count();
    void *a, *b, *c;

    (void)state;
    mw_alloc_fail_after(2);
    a = mw_malloc(1);
    b = mw_malloc(1);
    c = mw_malloc(1);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_null(mw_realloc(a, 10)); /* still failing */
    assert_null(mw_strndup("x", 1));
    mw_alloc_fail_reset();
    c = mw_malloc(1);
    assert_non_null(c);
    assert_true(mw_alloc_count() - before >= 6);
    mw_free(a);
    mw_free(b);
    mw_free(c);
    mw_alloc_fail_after(0);
    assert_null(mw_malloc(1));
    mw_alloc_fail_reset();
}

static void test_cjson_hooks(void **state)
{
    cJSON *o;

    (void)state;
    /* cJSON allocates through mw_malloc, so injected failures reach it. */
    mw_alloc_fail_after(0);
    o = cJSON_CreateObject();
    mw_alloc_fail_reset();
    assert_null(o);
    o = cJSON_CreateObject();
    assert_non_null(o);
    cJSON_Delete(o);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_fail_after),
        cmocka_unit_test(test_cjson_hooks),
    };

    mw_alloc_set(NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
