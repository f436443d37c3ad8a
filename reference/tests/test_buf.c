/* test_buf: the bounded growable byte buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "alloc.h"
#include "buf.h"
#include "error.h"

#include <string.h>

static void test_append_and_bound(void **state)
{
    struct mw_buf b;
    char big[300];

    (void)state;
    mw_buf_init(&b, 10);
    assert_int_equal(mw_buf_puts(&b, "hello"), 0);
    assert_int_equal(mw_buf_append(&b, "world", 5), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld");
    assert_int_equal(mw_buf_append(&b, "!", 1), MW_ELIMIT); /* unchanged */
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "helloworld");
    mw_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(mw_buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data, "42-x");
    assert_int_equal(mw_buf_printf(&b, "%s", "toolongtext"), MW_ELIMIT);
    mw_buf_release(&b);
    mw_buf_release(&b);
    mw_buf_release(NULL);

    /* printf longer than the internal 256-byte scratch */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    mw_buf_init(&b, 0);
    assert_int_equal(mw_buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, sizeof(big) + 1);
    assert_int_equal(b.data[b.len - 1], ']');
    mw_buf_release(&b);
}

static void test_oom(void **state)
{
    struct mw_buf b;

    (void)state;
    mw_buf_init(&b, 0);
    mw_alloc_fail_after(0);
    assert_int_equal(mw_buf_puts(&b, "x"), MW_ENOMEM);
    mw_alloc_fail_reset();
    assert_int_equal(b.len, 0);
    assert_int_equal(mw_buf_puts(&b, "x"), 0);
    mw_buf_release(&b);
}

static void test_truncate(void **state)
{
    struct mw_buf b;

    (void)state;
    mw_buf_init(&b, 64);
    mw_buf_truncate(&b, 0); /* nothing allocated yet */
    assert_int_equal(b.len, 0);
    assert_int_equal(mw_buf_puts(&b, "hello, world"), 0);
    mw_buf_truncate(&b, 5);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "hello");
    assert_int_equal(mw_buf_puts(&b, "!"), 0);
    assert_string_equal(b.data, "hello!");
    mw_buf_truncate(&b, 6); /* to its own length: unchanged */
    assert_string_equal(b.data, "hello!");
    mw_buf_release(&b);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_bound),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_truncate),
    };

    mw_alloc_set(NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
