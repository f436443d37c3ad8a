/* fuzz_roundtrip: every accepted envelope survives canonical serialization.
 *
 * parse(input) = e1; serialize(e1) = s1; parse(s1) = e2 must succeed with
 * mw_envelope_equal(e1, e2) (numbers bit-exact, member order kept); then
 * serialize(e2) = s2 must be byte-identical to s1 (the canonical form is a
 * fixed point). s1 is also re-parsed from an exact-length heap copy.
 *
 * The one exception (fuzz/FOUND.md, F-001): canonical text can be longer
 * than its source ("9e15" is written as 16 digits), so an accepted envelope
 * near 65,536 bytes may serialize past the limit; re-parsing must then fail
 * with too_large and nothing else. */
#include "fuzz_common.h"

#include "buf.h"
#include "envelope.h"
#include "error.h"

/* Bit-exact tree equality written here, independent of mw_envelope_equal,
 * so a bug shared by the codec's equality and its serializer still shows. */
static bool same_tree(const cJSON *a, const cJSON *b)
{
    const cJSON *x, *y;

    if ((a->type & 0xFF) != (b->type & 0xFF))
        return false;
    switch (a->type & 0xFF) {
    case cJSON_Number:
        return memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) == 0;
    case cJSON_String:
        return strcmp(a->valuestring, b->valuestring) == 0;
    case cJSON_Array:
    case cJSON_Object:
        for (x = a->child, y = b->child; x && y; x = x->next, y = y->next) {
            if ((a->type & 0xFF) == cJSON_Object && strcmp(x->string, y->string) != 0)
                return false;
            if (!same_tree(x, y))
                return false;
        }
        return !x && !y;
    default:
        return true;
    }
}

/* serialize must refuse an envelope that breaks a rule, leaving b as it
 * was, and equal must tell it from the original. */
static void check_refused(const struct mw_envelope *orig, struct mw_envelope *bad)
{
    struct mw_buf b;
    int rc;

    mw_buf_init(&b, 0);
    FUZZ_CHECK(mw_buf_append(&b, "pre", 3) == 0);
    rc = mw_envelope_serialize(bad, &b);
    FUZZ_CHECK_MSG(rc == MW_EINVAL, "invalid envelope serialized (rc %d)", rc);
    FUZZ_CHECK(b.len == 3 && memcmp(b.data, "pre", 4) == 0);
    FUZZ_CHECK(!mw_envelope_equal(orig, bad) && !mw_envelope_equal(bad, orig));
    mw_buf_release(&b);
}

/* Rule-breaking variants of a valid envelope, picked by sel; and a data
 * tree that differs in one place must not compare equal. */
static void check_api_edges(const struct mw_envelope *e, uint8_t sel, size_t canonical_len)
{
    struct mw_envelope bad = *e; /* shares e->data: never cleared */
    struct mw_buf b;
    cJSON *dup, *c;

    switch (sel % 6) {
    case 0:
        bad.type[0] = sel & 0x80 ? '\0' : 'A';
        break;
    case 1:
        bad.v = sel & 0x80 ? 0 : (int64_t)INT32_MAX + 1;
        break;
    case 2:
        bad.has_id = true;
        snprintf(bad.id, sizeof(bad.id), "%s", sel & 0x80 ? "" : "tab\there");
        break;
    case 3:
        bad.data = NULL;
        break;
    default:
        break;
    }
    if (sel % 6 <= 3)
        check_refused(e, &bad);

    /* A bound short of the canonical text (the cut varies with the input,
     * so every append can be the one that fails): MW_ELIMIT, b restored. */
    mw_buf_init(&b, 1 + (sel * 2654435761u + canonical_len) % (canonical_len - 1));
    FUZZ_CHECK(mw_envelope_serialize(e, &b) == MW_ELIMIT);
    FUZZ_CHECK(b.len == 0);
    mw_buf_release(&b);

    /* One difference in data: the last member dropped, or the first number
     * negated (bit-exact comparison: 0 and -0 differ). */
    dup = cJSON_Duplicate(e->data, 1);
    FUZZ_CHECK(dup != NULL);
    bad.data = dup;
    bad.v = e->v;
    bad.has_id = e->has_id;
    memcpy(bad.type, e->type, sizeof(bad.type));
    memcpy(bad.id, e->id, sizeof(bad.id));
    FUZZ_CHECK(mw_envelope_equal(e, &bad));
    c = dup->child;
    switch ((sel >> 1) % 5) {
    case 0: /* the first number negated */
        while (c && !cJSON_IsNumber(c))
            c = c->next;
        if (c)
            c->valuedouble = -c->valuedouble;
        break;
    case 1: /* the first member renamed */
        if (c && c->string && c->string[0])
            c->string[0] ^= 0x01;
        else
            c = NULL;
        break;
    case 2: /* the first string changed */
        while (c && !(cJSON_IsString(c) && c->valuestring[0]))
            c = c->next;
        if (c)
            c->valuestring[0] ^= 0x01;
        break;
    case 3: /* the first member's type changed (true <-> false, else -> null) */
        if (c && cJSON_IsNull(c))
            c = NULL; /* already null: nothing changes */
        else if (c)
            c->type = cJSON_IsTrue(c) ? cJSON_False : cJSON_IsFalse(c) ? cJSON_True : cJSON_NULL;
        break;
    default: /* the last member dropped */
        if (c)
            cJSON_Delete(cJSON_DetachItemFromArray(dup, cJSON_GetArraySize(dup) - 1));
        break;
    }
    if (c)
        FUZZ_CHECK_MSG(!mw_envelope_equal(e, &bad), "a changed data compares equal (%d)",
                       (sel >> 1) % 5);
    cJSON_Delete(dup);
    bad.data = NULL;
    {
        struct mw_envelope nodata = bad;
        FUZZ_CHECK(mw_envelope_equal(&nodata, &bad)); /* both without data */
        FUZZ_CHECK(!mw_envelope_equal(e, &nodata));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup_exact(data, size), *copy = NULL;
    struct mw_envelope e1, e2;
    struct mw_parse_error err;
    struct mw_buf s1, s2;
    int rc;

    /* Canonical text can be longer than its source ("9e15" prints as 16
     * digits), so the buffers get room beyond the wire limit. */
    mw_buf_init(&s1, 8 * MW_ENVELOPE_MAX_BYTES);
    mw_buf_init(&s2, 8 * MW_ENVELOPE_MAX_BYTES);
    if (mw_envelope_parse(buf, size, &e1, &err) != 0)
        goto out;

    rc = mw_envelope_serialize(&e1, &s1);
    FUZZ_CHECK_MSG(rc == 0, "serialize rc %d", rc);
    copy = fuzz_dup_exact((const uint8_t *)s1.data, s1.len);
    rc = mw_envelope_parse(copy, s1.len, &e2, &err);
    if (s1.len > MW_ENVELOPE_MAX_BYTES) {
        FUZZ_CHECK(size > MW_ENVELOPE_MAX_BYTES / 4); /* at most 4x growth (4 -> 16 bytes) */
        FUZZ_CHECK_MSG(rc == MW_EINVAL && err.code == MW_CODE_TOO_LARGE, "rc %d code %d", rc,
                       (int)err.code);
        mw_envelope_clear(&e1);
        goto out;
    }
    FUZZ_CHECK_MSG(rc == 0, "re-parse failed: %s at %zu: %.*s", err.message, err.offset,
                   (int)(s1.len > 400 ? 400 : s1.len), s1.data);
    FUZZ_CHECK(mw_envelope_equal(&e1, &e2));
    FUZZ_CHECK(mw_envelope_equal(&e2, &e1));
    FUZZ_CHECK(strcmp(e1.type, e2.type) == 0 && e1.v == e2.v && e1.has_id == e2.has_id);
    FUZZ_CHECK(!e1.has_id || strcmp(e1.id, e2.id) == 0);
    FUZZ_CHECK(same_tree(e1.data, e2.data));

    rc = mw_envelope_serialize(&e2, &s2);
    FUZZ_CHECK_MSG(rc == 0, "second serialize rc %d", rc);
    FUZZ_CHECK(s1.len == s2.len && memcmp(s1.data, s2.data, s1.len) == 0);
    check_api_edges(&e1, data[size - 1], s1.len);

    mw_envelope_clear(&e2);
    mw_envelope_clear(&e1);
out:
    free(copy);
    mw_buf_release(&s2);
    mw_buf_release(&s1);
    free(buf);
    return 0;
}
