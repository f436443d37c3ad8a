/* Tests for ticket: state names, copy/clear ownership (with allocation
 * failures), UUID v4 generation and validation, the OS random source, and
 * RFC 3339 formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "alloc.h"
#include "error.h"
#include "fake_random.h"
#include "rfc3339.h"
#include "ticket.h"

static void test_state_names(void **state)
{
    static const char *const names[] = {"queued", "assigned", "cancelled", "expired"};
    enum mw_ticket_state st;

    (void)state;
    for (int i = 0; i < 4; i++) {
        assert_string_equal(mw_ticket_state_name((enum mw_ticket_state)i), names[i]);
        assert_int_equal(mw_ticket_state_parse(names[i], &st), 0);
        assert_int_equal(st, i);
    }
    assert_string_equal(mw_ticket_state_name((enum mw_ticket_state)4), "unknown");
    assert_string_equal(mw_ticket_state_name((enum mw_ticket_state) - 1), "unknown");
    st = MW_TICKET_EXPIRED;
    assert_int_equal(mw_ticket_state_parse("Queued", &st), MW_EINVAL);
    assert_int_equal(mw_ticket_state_parse("queued ", &st), MW_EINVAL);
    assert_int_equal(mw_ticket_state_parse("", &st), MW_EINVAL);
    assert_int_equal(mw_ticket_state_parse("unknown", &st), MW_EINVAL);
    assert_int_equal(mw_ticket_state_parse(NULL, &st), MW_EINVAL);
    assert_int_equal(st, MW_TICKET_EXPIRED);
}

static void fill_ticket(struct mw_ticket *t, char *attrs, char *env)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "0f8e6b8a-7c1d-4a2b-9e3f-112233445566");
    snprintf(t->queue, sizeof(t->queue), "q");
    snprintf(t->player_id, sizeof(t->player_id), "p");
    t->state = MW_TICKET_ASSIGNED;
    t->version = 2;
    t->attributes_json = attrs;
    t->assigned_envelope = env;
    t->assigned_envelope_len = env ? strlen(env) : 0;
}

static void test_copy_clear(void **state)
{
    struct mw_ticket src, dst;
    char *attrs = mw_strndup("{\"region\":\"eu\"}", 15);
    char *env = mw_strndup("{\"type\":\"match.assigned\"}", 25);

    (void)state;
    fill_ticket(&src, attrs, env);
    assert_int_equal(mw_ticket_copy(&dst, &src), 0);
    assert_string_equal(dst.id, src.id);
    assert_int_equal(dst.version, 2);
    assert_ptr_not_equal(dst.attributes_json, src.attributes_json);
    assert_ptr_not_equal(dst.assigned_envelope, src.assigned_envelope);
    assert_string_equal(dst.attributes_json, "{\"region\":\"eu\"}");
    assert_int_equal(dst.assigned_envelope_len, 25);
    assert_memory_equal(dst.assigned_envelope, env, 25);
    mw_ticket_clear(&src); /* the copy is independent */
    assert_null(src.attributes_json);
    assert_null(src.assigned_envelope);
    assert_string_equal(dst.attributes_json, "{\"region\":\"eu\"}");
    mw_ticket_clear(&dst);
    mw_ticket_clear(&dst); /* twice is fine */
    mw_ticket_clear(NULL);

    /* nothing owned: nothing allocated */
    fill_ticket(&src, NULL, NULL);
    {
        unsigned long before = mw_alloc_count();
        assert_int_equal(mw_ticket_copy(&dst, &src), 0);
        assert_int_equal(mw_alloc_count(), before);
        assert_null(dst.attributes_json);
        assert_null(dst.assigned_envelope);
    }
}

static void test_copy_oom(void **state)
{
    struct mw_ticket src, dst;
    char *attrs = mw_strndup("{}", 2);
    char *env = mw_strndup("{\"x\":1}", 7);

    (void)state;
    fill_ticket(&src, attrs, env);
    for (long n = 0; n < 2; n++) {
        memset(&dst, 0x5a, sizeof(dst));
        mw_alloc_fail_after(n);
        assert_int_equal(mw_ticket_copy(&dst, &src), MW_ENOMEM);
        mw_alloc_fail_reset();
        /* dst owns nothing: clearing it is safe and frees nothing twice */
        assert_null(dst.attributes_json);
        assert_null(dst.assigned_envelope);
        mw_ticket_clear(&dst);
    }
    mw_alloc_fail_after(2);
    assert_int_equal(mw_ticket_copy(&dst, &src), 0);
    mw_alloc_fail_reset();
    mw_ticket_clear(&dst);
    mw_ticket_clear(&src);
}

static void test_uuid4(void **state)
{
    struct fake_rng rng = {.s = 0x9e3779b97f4a7c15ULL};
    char id[MW_TICKET_ID_LEN + 1], prev[MW_TICKET_ID_LEN + 1] = "";
    int seen_variant[4] = {0};

    (void)state;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(mw_uuid4(fake_rng_fill, &rng, id), 0);
        assert_int_equal(strlen(id), 36);
        assert_true(mw_uuid4_valid(id, 36));
        assert_int_equal(id[14], '4');
        for (int k = 0; k < 36; k++)
            assert_false(id[k] >= 'A' && id[k] <= 'F');
        seen_variant[id[19] == '8' ? 0 : id[19] == '9' ? 1 : id[19] == 'a' ? 2 : 3]++;
        assert_string_not_equal(id, prev);
        memcpy(prev, id, sizeof(id));
    }
    /* every variant nibble 10xx occurs */
    for (int k = 0; k < 4; k++)
        assert_true(seen_variant[k] > 0);

    /* the source's error is returned and nothing is promised about out */
    rng.fail = MW_EIO;
    assert_int_equal(mw_uuid4(fake_rng_fill, &rng, id), MW_EIO);
}

static int const_fill(void *ud, void *buf, size_t n)
{
    memset(buf, *(const unsigned char *)ud, n);
    return 0;
}

static void test_uuid4_fixed_bytes(void **state)
{
    unsigned char zero = 0x00, ones = 0xff;
    char id[MW_TICKET_ID_LEN + 1];

    (void)state;
    assert_int_equal(mw_uuid4(const_fill, &zero, id), 0);
    assert_string_equal(id, "00000000-0000-4000-8000-000000000000");
    assert_int_equal(mw_uuid4(const_fill, &ones, id), 0);
    assert_string_equal(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
}

static void test_uuid4_valid(void **state)
{
    static const char *const good[] = {
        "0f8e6b8a-7c1d-4a2b-9e3f-112233445566",
        "00000000-0000-4000-8000-000000000000",
        "ffffffff-ffff-4fff-bfff-ffffffffffff",
        "01234567-89ab-4cde-af01-23456789abcd",
    };
    static const char *const bad[] = {
        "0F8E6B8A-7C1D-4A2B-9E3F-112233445566",  /* uppercase */
        "0f8e6b8a-7c1d-1a2b-9e3f-112233445566",  /* version 1 */
        "0f8e6b8a-7c1d-5a2b-9e3f-112233445566",  /* version 5 */
        "0f8e6b8a-7c1d-4a2b-7e3f-112233445566",  /* variant 0xxx */
        "0f8e6b8a-7c1d-4a2b-ce3f-112233445566",  /* variant 110x */
        "0f8e6b8a-7c1d-4a2b-9e3f-11223344556",   /* short */
        "0f8e6b8a-7c1d-4a2b-9e3f-1122334455667", /* long */
        "0f8e6b8a7c1d-4a2b-9e3f-1122334455667",
        "0f8e6b8a-7c1d-4a2b-9e3f_112233445566",
        "0f8e6b8g-7c1d-4a2b-9e3f-112233445566",
        "{f8e6b8a-7c1d-4a2b-9e3f-112233445566",
        "",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(mw_uuid4_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mw_uuid4_valid(bad[i], strlen(bad[i])))
            print_error("accepted %s\n", bad[i]);
        assert_false(mw_uuid4_valid(bad[i], strlen(bad[i])));
    }
    /* length is the given one, not strlen: an embedded NUL is refused */
    assert_false(mw_uuid4_valid("0f8e6b8a-7c1d-4a2b-9e3f-11223344556\0", 36));
    assert_false(mw_uuid4_valid(good[0], 35));
    assert_false(mw_uuid4_valid(NULL, 36));
}

static void test_random_os(void **state)
{
    unsigned char a[4096], b[4096];
    size_t same = 0;

    (void)state;
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    /* over 256 bytes: getrandom may return short; the loop fills it all */
    assert_int_equal(mw_random_os(NULL, a, sizeof(a)), 0);
    assert_int_equal(mw_random_os(NULL, b, sizeof(b)), 0);
    for (size_t i = 0; i < sizeof(a); i++)
        same += a[i] == b[i];
    /* two independent draws agree on ~16 of 4096 bytes; 200 is astronomically unlikely */
    assert_true(same < 200);
    /* the tail is filled too (not left zero) */
    {
        size_t zeros = 0;
        for (size_t i = sizeof(a) - 64; i < sizeof(a); i++)
            zeros += a[i] == 0;
        assert_true(zeros < 16);
    }
    assert_int_equal(mw_random_os(NULL, a, 0), 0);
    {
        char id[MW_TICKET_ID_LEN + 1];
        assert_int_equal(mw_uuid4(mw_random_os, NULL, id), 0);
        assert_true(mw_uuid4_valid(id, 36));
    }
}

/* An underlying source whose stream is 1, 2, 3, ... (mod 256, skipping 0 so
 * an erased byte is told apart), counting calls; fails with `fail` when set. */
struct seq_src {
    unsigned next;
    unsigned calls;
    size_t last_n;
    int fail;
};

static int seq_fill(void *ud, void *buf, size_t n)
{
    struct seq_src *q = ud;
    unsigned char *b = buf;

    q->calls++;
    q->last_n = n;
    if (q->fail)
        return q->fail;
    for (size_t i = 0; i < n; i++) {
        q->next = q->next % 255 + 1;
        b[i] = (unsigned char)q->next;
    }
    return 0;
}

static struct mw_random_pool pool; /* 4 KiB: static rather than on the test's stack */

static void test_random_pool_refill_boundary(void **state)
{
    struct seq_src q = {0};
    unsigned char out[16];
    unsigned expect = 0;

    (void)state;
    mw_random_pool_init(&pool, seq_fill, &q);
    assert_int_equal(q.calls, 0); /* empty until the first read */
    /* 256 reads of 16 bytes drain exactly one pool with one refill, and the
     * bytes are the underlying stream in order, each handed out once. */
    for (int k = 0; k < MW_RANDOM_POOL_BYTES / 16; k++) {
        assert_int_equal(mw_random_pool_read(&pool, out, sizeof(out)), 0);
        for (size_t i = 0; i < sizeof(out); i++) {
            expect = expect % 255 + 1;
            assert_int_equal(out[i], expect);
        }
    }
    assert_int_equal(q.calls, 1);
    assert_int_equal(q.last_n, MW_RANDOM_POOL_BYTES);
    /* what was handed out is erased from the pool */
    for (size_t i = 0; i < MW_RANDOM_POOL_BYTES; i++)
        assert_int_equal(pool.buf[i], 0);
    /* the 257th read refills */
    assert_int_equal(mw_random_pool_read(&pool, out, sizeof(out)), 0);
    assert_int_equal(q.calls, 2);
    expect = expect % 255 + 1;
    assert_int_equal(out[0], expect);
    /* a short leftover is discarded, never reused: 4080 bytes taken, 16
     * left; a 17-byte read refills and starts at the new pool's first byte */
    mw_random_pool_init(&pool, seq_fill, &q);
    q.next = 0;
    {
        unsigned char big[MW_RANDOM_POOL_BYTES - 16], r17[17];
        assert_int_equal(mw_random_pool_read(&pool, big, sizeof(big)), 0);
        assert_int_equal(q.calls, 3);
        assert_int_equal(mw_random_pool_read(&pool, r17, sizeof(r17)), 0);
        assert_int_equal(q.calls, 4);
        /* stream position after 4096 bytes of the first pool: 4096 % 255 = 16 */
        assert_int_equal(r17[0], 17);
        for (size_t i = 0; i < MW_RANDOM_POOL_BYTES; i++)
            if (i >= sizeof(r17))
                assert_int_not_equal(pool.buf[i], 0);
    }
    /* zero bytes: no refill, success */
    assert_int_equal(mw_random_pool_read(&pool, out, 0), 0);
    assert_int_equal(q.calls, 4);
    mw_random_pool_wipe(&pool);
    for (size_t i = 0; i < MW_RANDOM_POOL_BYTES; i++)
        assert_int_equal(pool.buf[i], 0);
    mw_random_pool_wipe(NULL);
}

static void test_random_pool_large_and_errors(void **state)
{
    struct seq_src q = {0};
    unsigned char big[MW_RANDOM_POOL_BYTES + 1];
    unsigned char out[16];
    char id[MW_TICKET_ID_LEN + 1];

    (void)state;
    mw_random_pool_init(&pool, seq_fill, &q);
    /* larger than the pool: straight to the source, pool untouched */
    assert_int_equal(mw_random_pool_read(&pool, big, sizeof(big)), 0);
    assert_int_equal(q.calls, 1);
    assert_int_equal(q.last_n, sizeof(big));
    assert_int_equal(pool.pos, MW_RANDOM_POOL_BYTES);
    q.fail = MW_EIO;
    assert_int_equal(mw_random_pool_read(&pool, big, sizeof(big)), MW_EIO);
    /* a failed refill returns the error, hands out nothing, leaves the pool
     * empty; the next call tries again */
    memset(out, 0xAA, sizeof(out));
    assert_int_equal(mw_random_pool_read(&pool, out, sizeof(out)), MW_EIO);
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 0xAA);
    assert_int_equal(mw_uuid4(mw_random_pool_read, &pool, id), MW_EIO);
    assert_int_equal(q.calls, 4);
    q.fail = 0;
    assert_int_equal(mw_random_pool_read(&pool, out, sizeof(out)), 0);
    assert_int_equal(q.calls, 5);
    assert_int_equal(mw_uuid4(mw_random_pool_read, &pool, id), 0);
    assert_true(mw_uuid4_valid(id, 36));
    assert_int_equal(q.calls, 5);
    /* over the OS source: distinct valid ids */
    {
        char id2[MW_TICKET_ID_LEN + 1];
        mw_random_pool_init(&pool, mw_random_os, NULL);
        assert_int_equal(mw_uuid4(mw_random_pool_read, &pool, id), 0);
        assert_int_equal(mw_uuid4(mw_random_pool_read, &pool, id2), 0);
        assert_true(mw_uuid4_valid(id, 36) && mw_uuid4_valid(id2, 36));
        assert_true(strcmp(id, id2) != 0);
        mw_random_pool_wipe(&pool);
    }
}

static void test_rfc3339(void **state)
{
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1795779648123LL, "2026-11-27T11:40:48.123Z"},
        {951868799999LL, "2000-02-29T23:59:59.999Z"},
        {951868800000LL, "2000-03-01T00:00:00.000Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-500, "1969-12-31T23:59:59.500Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {1000, "1970-01-01T00:00:01.000Z"},
        {7, "1970-01-01T00:00:00.007Z"},
        {253402300799999LL, "9999-12-31T23:59:59.999Z"},
        {-62167219200000LL, "0000-01-01T00:00:00.000Z"},
        /* outside four-digit years: clamped to a well-formed value */
        {253402300800000LL, "1970-01-01T00:00:00.000Z"},
        {INT64_MAX, "1970-01-01T00:00:00.000Z"},
    };
    char out[32];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(out, 'x', sizeof(out));
        mw_rfc3339_format(cases[i].ms, out);
        if (strcmp(out, cases[i].want) != 0)
            print_error("%lld: %s\n", (long long)cases[i].ms, out);
        assert_string_equal(out, cases[i].want);
    }
}

/* The one queue-name rule (MSG-020), shared by messages.c and config.c. */
static void test_queue_name_valid(void **state)
{
    char max[MW_QUEUE_MAX + 2];

    (void)state;
    assert_true(mw_queue_name_valid("duel", 4));
    assert_true(mw_queue_name_valid("a-b_c9", 6));
    assert_false(mw_queue_name_valid("", 0));
    assert_false(mw_queue_name_valid(NULL, 1));
    assert_false(mw_queue_name_valid("Duel", 4));
    assert_false(mw_queue_name_valid("du el", 5));
    assert_false(mw_queue_name_valid("du.el", 5));
    assert_false(mw_queue_name_valid("duel\xc3\xa9", 6));
    memset(max, 'q', sizeof(max));
    assert_true(mw_queue_name_valid(max, MW_QUEUE_MAX));
    assert_false(mw_queue_name_valid(max, MW_QUEUE_MAX + 1));
    assert_true(mw_queue_name_valid("duel!", 4)); /* only n bytes are read */
}

/* SipHash-2-4: the test values of the SipHash paper (key 00 01 .. 0f,
 * message 00 01 .. of each length), and the pair form. */
static void test_hash(void **state)
{
    const struct mw_hash_key key = {.k0 = 0x0706050403020100ULL, .k1 = 0x0f0e0d0c0b0a0908ULL};
    const struct mw_hash_key other = {.k0 = 1, .k1 = 2};
    unsigned char msg[64];
    char cat[8];

    (void)state;
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)i;
    assert_true(mw_siphash(&key, msg, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(mw_siphash(&key, msg, 1) == 0x74f839c593dc67fdULL);
    assert_true(mw_siphash(&key, msg, 8) == 0x93f5f5799a932462ULL);
    assert_true(mw_siphash(&key, msg, 15) == 0xa129ca6149be45e5ULL);
    assert_true(mw_hash_str(&key, "") == 0x726fdb47dd0e0e31ULL);
    /* The pair is the hash of a, 0xff, b in one piece. */
    memcpy(cat,
           "abc\xff"
           "defg",
           8);
    assert_true(mw_hash_pair(&key, "abc", "defg") == mw_siphash(&key, cat, 8));
    assert_true(mw_hash_pair(&key, "ab", "c") != mw_hash_pair(&key, "a", "bc"));
    assert_true(mw_hash_pair(&key, "a", "b") == mw_hash_pair(&key, "a", "b"));
    assert_true(mw_hash_pair(&key, "a", "") != mw_hash_str(&key, "a"));
    /* Keyed: another key, another value. */
    assert_true(mw_hash_str(&key, "duel") != mw_hash_str(&other, "duel"));
    /* The one-buffer path (mw_siphash) and the byte-at-a-time path
     * (mw_hash_pair) are separate code: they agree on every length 1..64
     * and every split point. */
    for (size_t n = 1; n <= sizeof(msg); n++) {
        unsigned char buf[sizeof(msg) + 1];
        char a[sizeof(msg) + 1], b[sizeof(msg) + 1];

        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)('a' + (i * 7 + n) % 26);
        for (size_t split = 0; split < n; split++) {
            memcpy(a, buf, split);
            a[split] = '\0';
            memcpy(b, buf + split + 1, n - split - 1);
            b[n - split - 1] = '\0';
            buf[split] = 0xff;
            assert_true(mw_hash_pair(&key, a, b) == mw_siphash(&key, buf, n));
            buf[split] = (unsigned char)('a' + (split * 7 + n) % 26);
        }
    }
}

static int fake_bytes(void *ud, void *buf, size_t n)
{
    unsigned char *p = buf;

    (void)ud;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)i;
    return 0;
}

static int failing_bytes(void *ud, void *buf, size_t n)
{
    (void)ud;
    (void)buf;
    (void)n;
    return MW_EIO;
}

static void test_hash_key_random(void **state)
{
    struct mw_hash_key k;

    (void)state;
    assert_int_equal(mw_hash_key_random(&k, fake_bytes, NULL), 0);
    assert_true(k.k0 == 0x0706050403020100ULL && k.k1 == 0x0f0e0d0c0b0a0908ULL);
    assert_int_equal(mw_hash_key_random(&k, failing_bytes, NULL), MW_EIO);
}

/* The unkeyed FNV-1a the maps used before. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Hash flooding: keys a client can choose (idempotency keys, region
 * values, ticket ids in a watch) that all land in one bucket of a
 * 1,024-bucket map indexed by FNV-1a's low bits are found by a plain
 * search; under the keyed hash the same keys spread over the buckets. */
static void test_hash_flood_spreads(void **state)
{
    enum { N = 256, BUCKETS = 1024 };
    const struct mw_hash_key key = {.k0 = 0x243f6a8885a308d3ULL, .k1 = 0x13198a2e03707344ULL};
    static char keys[N][24];
    unsigned load[BUCKETS] = {0}, worst = 0, used = 0;
    size_t found = 0;

    (void)state;
    for (unsigned long i = 0; found < N; i++) {
        char k[24];

        snprintf(k, sizeof(k), "idem-%lu", i);
        if ((fnv1a(k) & (BUCKETS - 1)) == 0) /* every one in bucket 0 */
            memcpy(keys[found++], k, sizeof(k));
    }
    for (size_t i = 0; i < N; i++) {
        unsigned *l = &load[mw_hash_pair(&key, "player", keys[i]) & (BUCKETS - 1)];

        used += *l == 0;
        if (++*l > worst)
            worst = *l;
        assert_true((fnv1a(keys[i]) & (BUCKETS - 1)) == 0);
    }
    /* 256 keys over 1,024 buckets at random: about 226 buckets used, the
     * longest chain 3 or 4. Under FNV-1a: 1 bucket, a chain of 256. */
    assert_true(used >= 200);
    assert_true(worst <= 5);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_copy_clear),
        cmocka_unit_test(test_copy_oom),
        cmocka_unit_test(test_uuid4),
        cmocka_unit_test(test_uuid4_fixed_bytes),
        cmocka_unit_test(test_uuid4_valid),
        cmocka_unit_test(test_hash_key_random),
        cmocka_unit_test(test_hash_flood_spreads),
        cmocka_unit_test(test_random_os),
        cmocka_unit_test(test_random_pool_refill_boundary),
        cmocka_unit_test(test_random_pool_large_and_errors),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_queue_name_valid),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
