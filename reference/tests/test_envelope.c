/* test_envelope: the envelope codec against spec/vectors/envelope/ and its
 * own contracts (ownership, serialization, equality, allocation failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "alloc.h"
#include "envelope.h"
#include "test_util_codec.h"

#include <math.h>
#include <string.h>

static int parse_lit(const char *s, struct mw_envelope *e, struct mw_parse_error *err)
{
    size_t n = strlen(s);
    char *buf = mwt_exact(s, n);
    int rc = mw_envelope_parse(buf, n, e, err);

    mw_free(buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Vectors                                                                   */
/* ------------------------------------------------------------------------ */

/* One ok vector: canonical bytes, round trip, idempotence, from_json. */
static void check_ok_vector(const char *id, const char *buf, size_t len, const char *canon,
                            size_t clen)
{
    struct mw_envelope e, e2, e3;
    struct mw_parse_error err;
    struct mw_buf b;
    cJSON *root = NULL;

    mw_buf_init(&b, MW_ENVELOPE_MAX_BYTES);
    if (mw_envelope_parse(buf, len, &e, &err) != 0)
        fail_msg("%s: expected ok, got %s at %zu: %s", id, mw_code_name(err.code), err.offset,
                 err.message);
    assert_int_equal(mw_envelope_serialize(&e, &b), 0);
    if (b.len != clen || memcmp(b.data, canon, clen) != 0)
        fail_msg("%s: canonical form differs:\n got %.300s\nwant %.300s", id, b.data, canon);
    assert_int_equal(mw_envelope_parse(b.data, b.len, &e2, &err), 0);
    assert_true(mw_envelope_equal(&e, &e2));
    mw_buf_reset(&b);
    assert_int_equal(mw_envelope_serialize(&e2, &b), 0);
    assert_memory_equal(b.data, canon, clen);
    /* from_json on the same text gives the same envelope */
    assert_int_equal(mw_json_parse(buf, len, MW_ENVELOPE_MAX_DEPTH, &root, &err), 0);
    assert_int_equal(mw_envelope_from_json(root, &e3, &err), 0);
    assert_true(mw_envelope_equal(&e, &e3));
    cJSON_Delete(root);
    mw_envelope_clear(&e);
    mw_envelope_clear(&e2);
    mw_envelope_clear(&e3);
    mw_buf_release(&b);
}

static void test_envelope_vectors(void **state)
{
    cJSON *index = mwt_load_index("envelope");
    const cJSON *v;
    int n_ok = 0, n_err = 0;

    (void)state;
    assert_non_null(index);
    cJSON_ArrayForEach(v, mw_json_get(index, "vectors"))
    {
        const char *id = mwt_str(v, "id"), *expect = mwt_str(v, "expect");
        const cJSON *off = mw_json_get(v, "offset");
        struct mw_envelope e;
        struct mw_parse_error err;
        size_t len = 0;
        char *buf;
        int rc;

        assert_string_equal(mwt_str(v, "mode"), "envelope");
        buf = mwt_read_vector("envelope", mwt_str(v, "file"), &len);
        assert_non_null(buf);
        if (strcmp(expect, "ok") == 0) {
            size_t clen = 0;
            char *canon = mwt_read_vector("envelope", mwt_str(v, "canonical"), &clen);
            assert_non_null(canon);
            check_ok_vector(id, buf, len, canon, clen);
            mw_free(canon);
            n_ok++;
        } else {
            rc = mw_envelope_parse(buf, len, &e, &err);
            if (rc != MW_EINVAL)
                fail_msg("%s: expected %s, got rc %d", id, mwt_str(v, "code"), rc);
            assert_null(e.data);
            if (strcmp(mw_code_name(err.code), mwt_str(v, "code")) != 0)
                fail_msg("%s: expected %s, got %s at %zu: %s", id, mwt_str(v, "code"),
                         mw_code_name(err.code), err.offset, err.message);
            if (cJSON_IsNull(off) && err.offset != SIZE_MAX)
                fail_msg("%s: expected no offset, got %zu", id, err.offset);
            if (cJSON_IsNumber(off) && err.offset != (size_t)off->valuedouble)
                fail_msg("%s: expected offset %zu, got %zu (%s)", id, (size_t)off->valuedouble,
                         err.offset, err.message);
            n_err++;
        }
        mw_free(buf);
    }
    assert_true(n_ok >= 30);
    assert_true(n_err >= 100);
    cJSON_Delete(index);
}

/* ------------------------------------------------------------------------ */
/* Contracts                                                                 */
/* ------------------------------------------------------------------------ */

static void test_fields(void **state)
{
    struct mw_envelope e;
    struct mw_parse_error err;

    (void)state;
    assert_int_equal(
        parse_lit("{\"data\":{\"x\":1},\"id\":\"r-1\",\"v\":3,\"type\":\"a.b\"}", &e, &err), 0);
    assert_string_equal(e.type, "a.b");
    assert_int_equal(e.v, 3);
    assert_true(e.has_id);
    assert_string_equal(e.id, "r-1");
    assert_true(cJSON_IsObject(e.data));
    assert_null(e.data->string);
    assert_true(mw_json_get(e.data, "x")->valuedouble == 1);
    mw_envelope_clear(&e);
    assert_null(e.data);
    mw_envelope_clear(&e); /* twice is fine */
    mw_envelope_clear(NULL);
}

static void test_id_kept_on_bad_envelope(void **state)
{
    struct mw_envelope e;
    struct mw_parse_error err;

    (void)state;
    assert_int_equal(parse_lit("{\"type\":\"A\",\"v\":1,\"id\":\"q7\",\"data\":{}}", &e, &err),
                     MW_EINVAL);
    assert_int_equal(err.code, MW_CODE_BAD_ENVELOPE);
    assert_true(e.has_id);
    assert_string_equal(e.id, "q7");
    assert_null(e.data);
    /* invalid id: not kept */
    assert_int_equal(parse_lit("{\"type\":\"a\",\"v\":0,\"id\":\"\",\"data\":{}}", &e, &err),
                     MW_EINVAL);
    assert_false(e.has_id);
    /* bad_json: nothing kept */
    assert_int_equal(parse_lit("{\"type\":\"a\",\"id\":\"q\",\"v\":01}", &e, &err), MW_EINVAL);
    assert_int_equal(err.code, MW_CODE_BAD_JSON);
    assert_false(e.has_id);
}

static void test_from_json(void **state)
{
    cJSON *root = NULL;
    struct mw_envelope e;
    struct mw_parse_error err;
    const char t[] = "{\"type\":\"a\",\"v\":2.0,\"data\":{\"k\":[1]}}";

    (void)state;
    assert_int_equal(mw_json_parse(t, sizeof(t) - 1, 0, &root, NULL), 0);
    /* no source text: 2.0 is an integer here */
    assert_int_equal(mw_envelope_from_json(root, &e, &err), 0);
    assert_int_equal(e.v, 2);
    assert_true(e.data != mw_json_get(root, "data")); /* a copy */
    mw_envelope_clear(&e);
    cJSON_Delete(root);
    root = cJSON_CreateArray();
    assert_int_equal(mw_envelope_from_json(root, &e, &err), MW_EINVAL);
    assert_int_equal(err.code, MW_CODE_BAD_ENVELOPE);
    assert_int_equal(err.offset, SIZE_MAX);
    cJSON_Delete(root);
}

static void test_serialize_rejects(void **state)
{
    struct mw_envelope e;
    struct mw_buf b;

    (void)state;
    assert_int_equal(parse_lit("{\"type\":\"a\",\"v\":1,\"data\":{\"n\":1}}", &e, NULL), 0);
    mw_buf_init(&b, 0);
    assert_int_equal(mw_buf_puts(&b, "keep"), 0);
    e.v = 0;
    assert_int_equal(mw_envelope_serialize(&e, &b), MW_EINVAL);
    e.v = 1;
    memcpy(e.type, "B", 2);
    assert_int_equal(mw_envelope_serialize(&e, &b), MW_EINVAL);
    memcpy(e.type, "b", 2);
    e.has_id = true;
    e.id[0] = '\0';
    assert_int_equal(mw_envelope_serialize(&e, &b), MW_EINVAL);
    e.has_id = false;
    /* a value json.h cannot write: buffer restored */
    cJSON_AddItemToObject(e.data, "nan", cJSON_CreateNumber(NAN));
    assert_int_equal(mw_envelope_serialize(&e, &b), MW_EINVAL);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    mw_envelope_clear(&e);
    mw_buf_release(&b);
    /* the buffer bound is honoured */
    assert_int_equal(
        parse_lit("{\"type\":\"a\",\"v\":1,\"data\":{\"n\":\"0123456789\"}}", &e, NULL), 0);
    mw_buf_init(&b, 20);
    assert_int_equal(mw_envelope_serialize(&e, &b), MW_ELIMIT);
    assert_int_equal(b.len, 0);
    mw_envelope_clear(&e);
    mw_buf_release(&b);
}

static void test_equal(void **state)
{
    struct mw_envelope a, b;

    (void)state;
    assert_int_equal(
        parse_lit("{\"type\":\"a\",\"v\":1,\"data\":{\"x\":0,\"y\":[1,\"s\"]}}", &a, NULL), 0);
    assert_int_equal(
        parse_lit("{\"type\":\"a\",\"v\":1,\"data\":{\"x\":-0,\"y\":[1,\"s\"]}}", &b, NULL), 0);
    assert_false(mw_envelope_equal(&a, &b)); /* 0 vs -0, bit-exact */
    mw_envelope_clear(&b);
    assert_int_equal(
        parse_lit("{\"type\":\"a\",\"v\":1,\"data\":{\"y\":[1,\"s\"],\"x\":0}}", &b, NULL), 0);
    assert_false(mw_envelope_equal(&a, &b)); /* order matters */
    mw_envelope_clear(&b);
    assert_int_equal(
        parse_lit("{\"v\":1,\"data\":{\"x\":0.0,\"y\":[1e0,\"s\"]},\"type\":\"a\"}", &b, NULL), 0);
    assert_true(mw_envelope_equal(&a, &b));
    b.has_id = true;
    memcpy(b.id, "i", 2);
    assert_false(mw_envelope_equal(&a, &b));
    mw_envelope_clear(&a);
    mw_envelope_clear(&b);
}

static void test_type_and_id_predicates(void **state)
{
    (void)state;
    assert_true(mw_envelope_type_valid("match.assigned", 14));
    assert_true(mw_envelope_type_valid("a", 1));
    assert_false(mw_envelope_type_valid("", 0));
    assert_false(mw_envelope_type_valid("a.", 2));
    assert_false(mw_envelope_type_valid("a..b", 4));
    assert_false(mw_envelope_type_valid("a.B", 3));
    assert_false(mw_envelope_type_valid("_a", 2));
    assert_true(mw_envelope_id_valid(" ", 1));
    assert_true(mw_envelope_id_valid("~", 1));
    assert_false(mw_envelope_id_valid("\x7f", 1));
    assert_false(mw_envelope_id_valid("", 0));
}

/* ------------------------------------------------------------------------ */
/* Allocation failure                                                        */
/* ------------------------------------------------------------------------ */

static void test_oom(void **state)
{
    const char text[] = "{\"type\":\"match.assigned\",\"v\":1,\"id\":\"r\",\"data\":{\"ticketId\":"
                        "\"t\\u00e9\",\"server\":{\"host\":\"h\",\"port\":7777},\"p\":[1,2.5,"
                        "null,true]},\"extra\":{\"a\":[1]}}";
    struct mw_envelope e, e2;
    struct mw_parse_error err;
    struct mw_buf b;
    cJSON *root = NULL;
    long n, base;
    int rc;

    (void)state;
    mwt_alloc_install();
    base = mwt_live();
    for (n = 0;; n++) {
        mw_alloc_fail_after(n);
        rc = mw_envelope_parse(text, sizeof(text) - 1, &e, &err);
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        assert_null(e.data);
        assert_int_equal(mwt_live(), base);
    }
    assert_true(n > 10);
    /* serialize */
    for (n = 0;; n++) {
        mw_buf_init(&b, 0);
        mw_alloc_fail_after(n);
        rc = mw_envelope_serialize(&e, &b);
        mw_alloc_fail_reset();
        mw_buf_release(&b);
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
    }
    /* from_json */
    assert_int_equal(mw_json_parse(text, sizeof(text) - 1, 0, &root, NULL), 0);
    for (n = 0;; n++) {
        long before = mwt_live();
        mw_alloc_fail_after(n);
        rc = mw_envelope_from_json(root, &e2, &err);
        mw_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MW_ENOMEM);
        assert_int_equal(mwt_live(), before);
    }
    assert_true(mw_envelope_equal(&e, &e2));
    cJSON_Delete(root);
    mw_envelope_clear(&e);
    mw_envelope_clear(&e2);
    assert_int_equal(mwt_live(), base);
    mw_alloc_set(NULL);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_vectors),        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_id_kept_on_bad_envelope), cmocka_unit_test(test_from_json),
        cmocka_unit_test(test_serialize_rejects),       cmocka_unit_test(test_equal),
        cmocka_unit_test(test_type_and_id_predicates),  cmocka_unit_test(test_oom),
    };

    mw_alloc_set(NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
