/* test_json: the strict I-JSON scanner/builder and the canonical writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "alloc.h"
#include "json.h"
#include "test_util_codec.h"

#include <math.h>
#include <string.h>

/* Checks s (exact-length copy) and returns the error code (NONE when ok). */
static enum mw_code check_code(const char *s, size_t n, size_t *off)
{
    struct mw_parse_error err;
    char *buf = mwt_exact(s, n);
    int rc = mw_json_check(buf, n, 0, &err);

    mw_free(buf);
    if (off)
        *off = err.offset;
    if (rc == 0)
        return MW_CODE_NONE;
    assert_int_equal(rc, MW_EINVAL);
    return err.code;
}

#define CHECK_OK(lit) assert_int_equal(check_code(lit, sizeof(lit) - 1, NULL), MW_CODE_NONE)
#define CHECK_BAD(lit, code, offset)                                                               \
    do {                                                                                           \
        size_t o_;                                                                                 \
        assert_int_equal(check_code(lit, sizeof(lit) - 1, &o_), code);                             \
        assert_int_equal(o_, (size_t)(offset));                                                    \
    } while (0)

/* ------------------------------------------------------------------------ */

static void test_accepts_values(void **state)
{
    (void)state;
    CHECK_OK("0");
    CHECK_OK("-0");
    CHECK_OK("1.5e-3");
    CHECK_OK("\"\"");
    CHECK_OK(" true ");
    CHECK_OK("false");
    CHECK_OK("null");
    CHECK_OK("[]");
    CHECK_OK("{}");
    CHECK_OK("{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\\ud834\\udd1e\"}");
    CHECK_OK("\"\xf4\x8f\xbf\xbd\"");
    CHECK_OK("1e-400"); /* underflow to 0 is fine */
    CHECK_OK("1.7976931348623157e308");
}

static void test_rejects_with_offsets(void **state)
{
    (void)state;
    CHECK_BAD("", MW_CODE_BAD_JSON, 0);
    CHECK_BAD("  ", MW_CODE_BAD_JSON, 2);
    CHECK_BAD("01", MW_CODE_BAD_JSON, 1);
    CHECK_BAD("[1,]", MW_CODE_BAD_JSON, 3);
    CHECK_BAD("1.", MW_CODE_BAD_JSON, 2);
    CHECK_BAD("-", MW_CODE_BAD_JSON, 1);
    CHECK_BAD("tru", MW_CODE_BAD_JSON, 3);
    CHECK_BAD("trUe", MW_CODE_BAD_JSON, 2);
    CHECK_BAD("[1e400]", MW_CODE_BAD_JSON, 1);
    CHECK_BAD("\"\\u0000\"", MW_CODE_BAD_JSON, 1);
    CHECK_BAD("\"a\\ud800\"", MW_CODE_BAD_JSON, 2);
    CHECK_BAD("\"\\ud83f\\udfff\"", MW_CODE_BAD_JSON, 1);
    CHECK_BAD("\"ab\xed\xa0\x80\"", MW_CODE_BAD_JSON, 3);
    CHECK_BAD("\"\xef\xbf\xbf\"", MW_CODE_BAD_JSON, 1);
    CHECK_BAD("\"\x01\"", MW_CODE_BAD_JSON, 1);
    CHECK_BAD("\"abc", MW_CODE_BAD_JSON, 4);
    CHECK_BAD("{\"a\":1,\"a\":2}", MW_CODE_BAD_JSON, 7);
    CHECK_BAD("{\"a\":1,\"\\u0061\":2}", MW_CODE_BAD_JSON, 7);
    CHECK_BAD("[1]\x0c", MW_CODE_BAD_JSON, 3);
    CHECK_BAD("\xef\xbb\xbf[]", MW_CODE_BAD_JSON, 0);
    CHECK_BAD("[1] [2]", MW_CODE_BAD_JSON, 4);
}

static void test_depth(void **state)
{
    char buf[80];
    struct mw_parse_error err;
    int i;

    (void)state;
    for (i = 0; i < 32; i++)
        buf[i] = '[';
    for (i = 32; i < 64; i++)
        buf[i] = ']';
    assert_int_equal(mw_json_check(buf, 64, 32, &err), 0);
    for (i = 0; i < 33; i++)
        buf[i] = '[';
    for (i = 33; i < 66; i++)
        buf[i] = ']';
    assert_int_equal(mw_json_check(buf, 66, 32, &err), MW_EINVAL);
    assert_int_equal(err.code, MW_CODE_TOO_DEEP);
    assert_int_equal(err.offset, 32);
    /* max_depth 0 means MW_JSON_MAX_DEPTH; a larger depth is honoured. */
    assert_int_equal(mw_json_check(buf, 66, 0, &err), MW_EINVAL);
    assert_int_equal(mw_json_check(buf, 66, 40, &err), 0);
    /* clamped to MW_JSON_DEPTH_CAP */
    assert_int_equal(mw_json_check(buf, 66, 100000, &err), 0);
}

static void test_no_nul_needed(void **state)
{
    /* The scanner must stop at len even when the bytes after would continue
     * the text: "12" of "123" is 12. */
    const char text[] = "[\"abc\",12345]";
    cJSON *root = NULL;
    struct mw_parse_error err;

    (void)state;
    assert_int_equal(mw_json_check(text, 3, 0, &err), MW_EINVAL);
    assert_int_equal(err.offset, 3); /* unterminated string */
    assert_int_equal(mw_json_parse("12345", 2, 0, &root, &err), 0);
    assert_true(cJSON_IsNumber(root));
    assert_true(root->valuedouble == 12.0);
    cJSON_Delete(root);
    assert_int_equal(mw_json_check(NULL, 0, 0, &err), MW_EINVAL);
    assert_int_equal(err.offset, 0);
    assert_int_equal(mw_json_check("1", 1, 0, NULL), 0);
    assert_int_equal(mw_json_check("x", 1, 0, NULL), MW_EINVAL);
}

static void test_tree_shape(void **state)
{
    const char text[] = "{\"s\":\"a\\n\\u00e9\\ud834\\udd1e/\",\"n\":[-0,1.5,9007199254740993,"
                        "12345678901234567890123],\"t\":true,\"f\":false,\"z\":null,\"o\":{}}";
    cJSON *root = NULL, *extra;
    const cJSON *s, *n, *c;
    struct mw_parse_error err;
    char *buf = mwt_exact(text, sizeof(text) - 1);

    (void)state;
    assert_int_equal(mw_json_parse(buf, sizeof(text) - 1, 0, &root, &err), 0);
    mw_free(buf);
    s = mw_json_get(root, "s");
    assert_string_equal(s->valuestring, "a\n\xc3\xa9\xf0\x9d\x84\x9e/");
    n = mw_json_get(root, "n");
    c = n->child;
    assert_true(c->valuedouble == 0 && signbit(c->valuedouble));
    assert_true(c->next->valuedouble == 1.5);
    assert_true(c->next->next->valuedouble == 9007199254740992.0);
    assert_true(c->next->next->next->valuedouble == 12345678901234567890123.0);
    assert_true(cJSON_IsTrue(mw_json_get(root, "t")));
    assert_true(cJSON_IsFalse(mw_json_get(root, "f")));
    assert_true(cJSON_IsNull(mw_json_get(root, "z")));
    assert_true(cJSON_IsObject(mw_json_get(root, "o")));
    /* cJSON's list invariant holds: appending after parse works. */
    extra = cJSON_CreateNumber(7);
    assert_true(cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(root, "n"), extra));
    assert_int_equal(cJSON_GetArraySize(n), 5);
    assert_true(cJSON_GetArrayItem(n, 4) == extra);
    cJSON_Delete(root);
}

static void test_get_is_exact(void **state)
{
    cJSON *root = NULL;

    (void)state;
    assert_int_equal(mw_json_parse("{\"Type\":1,\"type\":2}", 19, 0, &root, NULL), 0);
    assert_true(mw_json_get(root, "type")->valuedouble == 2);
    assert_true(mw_json_get(root, "Type")->valuedouble == 1);
    assert_null(mw_json_get(root, "TYPE"));
    assert_null(mw_json_get(root, "typ"));
    assert_null(mw_json_get(NULL, "type"));
    cJSON_Delete(root);
}

static void test_tracked(void **state)
{
    const char text[] = " {\"d\":[1,{\"v\":2}],\"\\u0076\":1.0,\"w\":42 } ";
    struct mw_json_track t[3] = {{.key = "v"}, {.key = "w"}, {.key = "d"}};

    (void)state;
    assert_int_equal(mw_json_parse_tracked(text, sizeof(text) - 1, 0, t, 3, NULL, NULL), 0);
    assert_true(t[0].found);
    assert_int_equal(t[0].offset, 27);
    assert_int_equal(t[0].len, 3);
    assert_false(t[0].plain_int);
    assert_true(t[1].found);
    assert_true(t[1].plain_int);
    assert_int_equal(t[1].len, 2);
    assert_memory_equal(text + t[1].offset, "42", 2);
    assert_true(t[2].found);
    assert_int_equal(t[2].offset, 6);
    assert_int_equal(t[2].len, 11);
    /* not an object at the top: nothing found */
    assert_int_equal(mw_json_parse_tracked("[{\"v\":1}]", 9, 0, t, 3, NULL, NULL), 0);
    assert_false(t[0].found);
}

static void test_many_members_fast(void **state)
{
    /* 40,000 members in one object, then a duplicate of an early one: must
     * be found (and quickly: the test would time out at O(n^2)). */
    struct mw_buf b;
    struct mw_parse_error err;
    int i;

    (void)state;
    mw_buf_init(&b, 4u << 20);
    assert_int_equal(mw_buf_puts(&b, "{"), 0);
    for (i = 0; i < 40000; i++)
        assert_int_equal(mw_buf_printf(&b, "\"k%d\":[{\"k%d\":0}],", i, i), 0);
    assert_int_equal(mw_buf_puts(&b, "\"k\\u0031\":0}"), 0); /* "k1" */
    assert_int_equal(mw_json_check(b.data, b.len, 0, &err), MW_EINVAL);
    assert_int_equal(err.code, MW_CODE_BAD_JSON);
    assert_int_equal(err.offset, b.len - 12);
    b.data[b.len - 5] = '2'; /* "k\u0032" = "k2": still a duplicate */
    assert_int_equal(mw_json_check(b.data, b.len, 0, &err), MW_EINVAL);
    assert_int_equal(err.offset, b.len - 12);
    b.data[b.len - 8] = 'x'; /* "k\ux032": invalid escape, at its backslash */
    assert_int_equal(mw_json_check(b.data, b.len, 0, &err), MW_EINVAL);
    assert_int_equal(err.offset, b.len - 10);
    b.len -= 12;
    b.data[b.len - 1] = '}';
    assert_int_equal(mw_json_check(b.data, b.len, 0, &err), 0);
    mw_buf_release(&b);
}

static void test_long_number(void **state)
{
    char buf[600];
    cJSON *root = NULL;

    (void)state;
    memset(buf, '9', sizeof(buf));
    buf[0] = '1';
    buf[1] = '.';
    assert_int_equal(mw_json_parse(buf, sizeof(buf), 0, &root, NULL), 0);
    assert_true(root->valuedouble == 2.0);
    cJSON_Delete(root);
    memset(buf, '9', sizeof(buf)); /* 600 digits: overflows */
    assert_int_equal(mw_json_check(buf, sizeof(buf), 0, NULL), MW_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */
/* ------------------------------------------------------------------------ */

static void expect_number(double d, const char *want)
{
    struct mw_buf b;

    mw_buf_init(&b, 0);
    assert_int_equal(mw_json_write_number(&b, d), 0);
    assert_string_equal(b.data, want);
    mw_buf_release(&b);
}

static void test_write_numbers(void **state)
{
    struct mw_buf b;

    (void)state;
    expect_number(0, "0");
    expect_number(-0.0, "-0");
    expect_number(1, "1");
    expect_number(-42, "-42");
    expect_number(9007199254740991.0, "9007199254740991");
    expect_number(-9007199254740991.0, "-9007199254740991");
    expect_number(9007199254740992.0, "9007199254740992");
    expect_number(0.1, "0.1");
    expect_number(1e300, "1e+300");
    expect_number(-1.5e-7, "-1.5e-07");
    expect_number(1.7976931348623157e308, "1.7976931348623157e+308");
    expect_number(5e-324, "4.94065645841247e-324");
    expect_number(1e21, "1e+21");
    expect_number(123.456, "123.456");
    mw_buf_init(&b, 0);
    assert_int_equal(mw_json_write_number(&b, NAN), MW_EINVAL);
    assert_int_equal(mw_json_write_number(&b, INFINITY), MW_EINVAL);
    assert_int_equal(mw_json_write_int(&b, INT64_MIN), 0);
    assert_string_equal(b.data, "-9223372036854775808");
    mw_buf_release(&b);
}

static void test_write_strings(void **state)
{
    struct mw_buf b;
    const char in[] = "a\"\\/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9\xf0\x9d\x84\x9e";

    (void)state;
    mw_buf_init(&b, 0);
    assert_int_equal(mw_json_write_string(&b, in, sizeof(in) - 1), 0);
    assert_string_equal(b.data,
                        "\"a\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9\xf0\x9d\x84\x9e\"");
    mw_buf_reset(&b);
    assert_int_equal(mw_json_write_string(&b, "\xff", 1), MW_EINVAL);
    mw_buf_reset(&b);
    assert_int_equal(mw_json_write_string(&b, "\xef\xbf\xbf", 3), MW_EINVAL);
    mw_buf_reset(&b);
    assert_int_equal(mw_json_write_string(&b, "a\0b", 3), MW_EINVAL);
    mw_buf_release(&b);
    /* bounded buffer */
    mw_buf_init(&b, 4);
    assert_int_equal(mw_json_write_string(&b, "abcdef", 6), MW_ELIMIT);
    mw_buf_release(&b);
}

static void test_write_roundtrip(void **state)
{
    const char text[] =
        "{\"a\":[1,-0,0.5,\"x\\u0001\",{},[],true,false,null],\"b\":{\"c\":1e+300}}";
    cJSON *root = NULL, *raw;
    struct mw_buf b;
    int i;

    (void)state;
    assert_int_equal(mw_json_parse(text, sizeof(text) - 1, 0, &root, NULL), 0);
    mw_buf_init(&b, 0);
    assert_int_equal(mw_json_write(&b, root), 0);
    assert_string_equal(b.data, text);
    /* Raw nodes and over-deep trees are refused */
    raw = cJSON_CreateRaw("1");
    cJSON_AddItemToObject(root, "r", raw);
    mw_buf_reset(&b);
    assert_int_equal(mw_json_write(&b, root), MW_EINVAL);
    cJSON_Delete(root);
    root = cJSON_CreateArray();
    raw = root;
    for (i = 0; i < MW_JSON_WRITE_MAX_DEPTH + 1; i++) {
        cJSON *c = cJSON_CreateArray();
        cJSON_AddItemToArray(raw, c);
        raw = c;
    }
    mw_buf_reset(&b);
    assert_int_equal(mw_json_write(&b, root), MW_EINVAL);
    cJSON_Delete(root);
    mw_buf_release(&b);
}

/* ------------------------------------------------------------------------ */
/* Allocation failure                                                        */
/* ------------------------------------------------------------------------ */

static void test_oom(void **state)
{
    /* Many members (grows the name table), escapes, a long number and
     * nesting: every allocation failure returns MW_ENOMEM and frees all. */
    struct mw_buf b;
    cJSON *root;
    struct mw_parse_error err;
    long n, base;
    int i, rc;

    (void)state;
    mwt_alloc_install();
    mw_buf_init(&b, 0);
    assert_int_equal(mw_buf_puts(&b, "{\"a\":[{\"b\\u00e9\":\"x\\ny\"},"), 0);
    for (i = 0; i < 70; i++)
        assert_int_equal(mw_buf_printf(&b, "%d,", i), 0);
    assert_int_equal(mw_buf_puts(&b, "1.00000000000000000000000000000000000000000000000000000000"
                                     "0000000000001e5]"),
                     0);
    for (i = 0; i < 80; i++)
        assert_int_equal(mw_buf_printf(&b, ",\"m%d\":{\"x\":%d}", i, i), 0);
    assert_int_equal(mw_buf_puts(&b, "}"), 0);
    base = mwt_live();
    for (n = 0;; n++) {
        root = NULL;
        mw_alloc_fail_after(n);
        rc = mw_json_parse(b.data, b.len, 0, &root, &err);
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        assert_int_equal(err.code, MW_CODE_INTERNAL);
        assert_null(root);
        assert_int_equal(mwt_live(), base);
    }
    assert_true(n > 100);
    cJSON_Delete(root);
    assert_int_equal(mwt_live(), base);
    /* check-only also allocates (name table, long number) */
    for (n = 0;; n++) {
        mw_alloc_fail_after(n);
        rc = mw_json_check(b.data, b.len, 0, &err);
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        assert_int_equal(mwt_live(), base);
    }
    assert_true(n >= 2);
    mw_buf_release(&b);
    mw_alloc_set(NULL);
}

/* ------------------------------------------------------------------------ */
/* Arena parse                                                               */
/* ------------------------------------------------------------------------ */

/* The arena parse of text (first block first_len bytes: 0 for none) gives
 * what the plain parse gives: the same verdict, error and offset, the same
 * tree (written canonically) and the same number nodes; releasing the arena
 * frees everything. */
static void arena_same(const char *text, size_t len, size_t first_len)
{
    unsigned char first[512];
    struct mw_json_arena a;
    struct mw_parse_error e1, e2;
    cJSON *r1 = NULL, *r2 = NULL;
    long base = mwt_live();
    char *buf = mwt_exact(text, len);
    int rc1, rc2;

    assert_true(first_len <= sizeof(first));
    rc1 = mw_json_parse(buf, len, 0, &r1, &e1);
    mw_json_arena_init(&a, first_len ? first : NULL, first_len);
    rc2 = mw_json_parse_arena(buf, len, 0, NULL, 0, &a, &r2, &e2);
    assert_int_equal(rc1, rc2);
    if (rc1) {
        assert_int_equal(e1.code, e2.code);
        assert_int_equal(e1.offset, e2.offset);
        assert_null(r2);
    } else {
        struct mw_buf b1, b2;
        mw_buf_init(&b1, 0);
        mw_buf_init(&b2, 0);
        assert_int_equal(mw_json_write(&b1, r1), 0);
        assert_int_equal(mw_json_write(&b2, r2), 0);
        assert_int_equal(b1.len, b2.len);
        assert_memory_equal(b1.data, b2.data, b1.len);
        mw_buf_release(&b1);
        mw_buf_release(&b2);
        if (cJSON_IsNumber(r1)) {
            assert_int_equal(r1->valueint, r2->valueint);
            assert_true(r1->valuedouble == r2->valuedouble);
        }
    }
    cJSON_Delete(r1);
    mw_json_arena_release(&a);
    mw_free(buf);
    assert_int_equal(mwt_live(), base);
}

static void test_arena(void **state)
{
    static const char *const texts[] = {
        "{\"a\":[1,-0,0.5,\"x\\u0001\",{},[],true,false,null],\"b\":{\"c\":1e+300}}",
        "3000000000",
        "-3000000000",
        "1.5",
        "-7",
        "\"\\ud83d\\ude00 \\u00e9\"",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"deep\"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "{\"a\":1,\"a\":2}",
        "[1,2,",
        "{\"k\":01}",
    };
    cJSON *index = mwt_load_index("json");
    const cJSON *v;
    struct mw_buf big;
    int count = 0;

    (void)state;
    mwt_alloc_install();
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        arena_same(texts[i], strlen(texts[i]), 0);
        arena_same(texts[i], strlen(texts[i]), 64);
        arena_same(texts[i], strlen(texts[i]), 512);
    }
    /* More than the first block and several heap blocks. */
    mw_buf_init(&big, 0);
    assert_int_equal(mw_buf_puts(&big, "{"), 0);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(
            mw_buf_printf(&big, "%s\"member%d\":[%d,\"%0*d\"]", i ? "," : "", i, i, i % 200, 0), 0);
    assert_int_equal(mw_buf_puts(&big, "}"), 0);
    arena_same(big.data, big.len, 512);
    /* Every allocation failure: MW_ENOMEM, and the release frees all. */
    for (long n = 0;; n++) {
        struct mw_json_arena a;
        cJSON *r = NULL;
        long base = mwt_live();
        int rc;
        mw_json_arena_init(&a, NULL, 0);
        mw_alloc_fail_after(n);
        rc = mw_json_parse_arena(big.data, big.len, 0, NULL, 0, &a, &r, NULL);
        mw_alloc_fail_reset();
        mw_json_arena_release(&a);
        assert_int_equal(mwt_live(), base);
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        assert_true(n < 1000);
    }
    mw_buf_release(&big);
    /* The JSON vectors, valid or not. */
    cJSON_ArrayForEach(v, mw_json_get(index, "vectors"))
    {
        size_t len = 0;
        char *buf = mwt_read_vector("json", mwt_str(v, "file"), &len);
        assert_non_null(buf);
        arena_same(buf, len, 256);
        mw_free(buf);
        count++;
    }
    assert_true(count >= 150);
    cJSON_Delete(index);
    mw_alloc_set(NULL);
}

/* ------------------------------------------------------------------------ */
/* spec/vectors/json and envelope vectors' JSON layer                        */
/* ------------------------------------------------------------------------ */

static void test_json_vectors(void **state)
{
    cJSON *index = mwt_load_index("json");
    const cJSON *v;
    int count = 0;

    (void)state;
    assert_non_null(index);
    cJSON_ArrayForEach(v, mw_json_get(index, "vectors"))
    {
        const char *id = mwt_str(v, "id"), *expect = mwt_str(v, "expect");
        struct mw_parse_error err;
        size_t len = 0;
        char *buf = mwt_read_vector("json", mwt_str(v, "file"), &len);
        int rc;

        assert_non_null(buf);
        rc = mw_json_check(buf, len, MW_JSON_MAX_DEPTH, &err);
        mw_free(buf);
        if (strcmp(expect, "ok") == 0) {
            if (rc != 0)
                fail_msg("%s: expected ok, got %s at %zu: %s", id, mw_code_name(err.code),
                         err.offset, err.message);
        } else {
            if (rc != MW_EINVAL)
                fail_msg("%s: expected %s, got ok", id, mwt_str(v, "code"));
            assert_string_equal(mw_code_name(err.code), mwt_str(v, "code"));
        }
        count++;
    }
    assert_true(count >= 150);
    cJSON_Delete(index);
}

/* The one error filler every decoder uses: NULL-safe, bounded message. */
static void test_parse_error_set(void **state)
{
    struct mw_parse_error e;
    char longer[300];

    (void)state;
    assert_int_equal(mw_parse_error_set(NULL, MW_CODE_BAD_JSON, 3, "x"), MW_EINVAL);
    assert_int_equal(mw_parse_error_set(&e, MW_CODE_TOO_DEEP, 7, "depth %d", 33), MW_EINVAL);
    assert_int_equal(e.code, MW_CODE_TOO_DEEP);
    assert_int_equal(e.offset, 7);
    assert_string_equal(e.message, "depth 33");
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    mw_parse_error_set(&e, MW_CODE_BAD_ENVELOPE, SIZE_MAX, "%s", longer);
    assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
    assert_true(e.offset == SIZE_MAX);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_values),
        cmocka_unit_test(test_rejects_with_offsets),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_no_nul_needed),
        cmocka_unit_test(test_tree_shape),
        cmocka_unit_test(test_get_is_exact),
        cmocka_unit_test(test_tracked),
        cmocka_unit_test(test_many_members_fast),
        cmocka_unit_test(test_long_number),
        cmocka_unit_test(test_write_numbers),
        cmocka_unit_test(test_write_strings),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_json_vectors),
        cmocka_unit_test(test_parse_error_set),
    };

    mw_alloc_set(NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
