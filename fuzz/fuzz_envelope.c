/* fuzz_envelope: arbitrary bytes into mw_envelope_parse().
 *
 * Never a crash, leak, over-read or timeout; when the codec accepts, the
 * result obeys every envelope rule (checked here independently of the
 * codec): type syntax and length, v range, data an object, id printable
 * ASCII, nesting within 32, strings valid I-JSON UTF-8 without NUL. When it
 * rejects, the error is one of the envelope layer's codes with a sane
 * offset. */
#include "fuzz_common.h"

#include "envelope.h"
#include "error.h"
#include "json.h"

/* The public predicates on raw n-byte input, against the rules written
 * here (a NUL byte is never valid in either). */
static void check_predicates(const char *buf, size_t size)
{
    char tmp[MW_TYPE_MAX + 2];
    bool nul = memchr(buf, '\0', size) != NULL, want_type = false, want_id = false;

    if (!nul && size <= MW_TYPE_MAX + 1) {
        memcpy(tmp, buf, size);
        tmp[size] = '\0';
        want_type = fuzz_type_ok(tmp);
        want_id = fuzz_id_ok(tmp);
    }
    FUZZ_CHECK(mw_envelope_type_valid(buf, size) == want_type);
    FUZZ_CHECK(mw_envelope_id_valid(buf, size) == want_id);
    FUZZ_CHECK(!mw_envelope_type_valid(NULL, size) && !mw_envelope_id_valid(NULL, size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup_exact(data, size);
    struct mw_envelope env;
    struct mw_parse_error err;
    int rc;

    check_predicates(buf, size);
    mw_envelope_clear(NULL);
    memset(&env, 0xA5, sizeof(env)); /* caller storage need not be zeroed */
    memset(&err, 0, sizeof(err));
    rc = mw_envelope_parse(buf, size, &env, &err);
    if (rc == 0) {
        FUZZ_CHECK(size <= MW_ENVELOPE_MAX_BYTES);
        FUZZ_CHECK(memchr(env.type, '\0', sizeof(env.type)) != NULL);
        FUZZ_CHECK_MSG(fuzz_type_ok(env.type), "type \"%s\"", env.type);
        FUZZ_CHECK(env.v >= 1 && env.v <= INT32_MAX);
        FUZZ_CHECK(env.data != NULL && cJSON_IsObject(env.data));
        /* data sits at level 2 under the top-level object. */
        FUZZ_CHECK(fuzz_tree_ok(env.data, 2, MW_ENVELOPE_MAX_DEPTH));
        if (env.has_id) {
            FUZZ_CHECK(memchr(env.id, '\0', sizeof(env.id)) != NULL);
            FUZZ_CHECK_MSG(fuzz_id_ok(env.id), "id \"%s\"", env.id);
        }
        mw_envelope_clear(&env);
        mw_envelope_clear(&env); /* clearing twice is harmless */
    } else {
        FUZZ_CHECK_MSG(rc == MW_EINVAL, "rc %d", rc); /* no allocation fails here */
        FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
        switch (err.code) {
        case MW_CODE_TOO_LARGE:
            FUZZ_CHECK(size > MW_ENVELOPE_MAX_BYTES);
            FUZZ_CHECK(err.offset == MW_ENVELOPE_MAX_BYTES);
            break;
        case MW_CODE_BAD_JSON:
        case MW_CODE_TOO_DEEP:
            /* Offsets point into the input, or at its end when it stops early. */
            FUZZ_CHECK_MSG(err.offset <= size, "offset %zu size %zu", err.offset, size);
            break;
        case MW_CODE_BAD_ENVELOPE:
            FUZZ_CHECK(err.offset == SIZE_MAX || err.offset < size);
            if (env.has_id)
                FUZZ_CHECK_MSG(fuzz_id_ok(env.id), "echoed id \"%s\"", env.id);
            break;
        default:
            FUZZ_CHECK_MSG(0, "unexpected code %d", (int)err.code);
        }
        FUZZ_CHECK(size <= MW_ENVELOPE_MAX_BYTES || err.code == MW_CODE_TOO_LARGE);
    }
    /* err may be NULL (envelope.h): same verdict without it. */
    {
        struct mw_envelope e2;
        int rc2 = mw_envelope_parse(buf, size, &e2, NULL);
        FUZZ_CHECK_MSG(rc2 == rc, "rc %d without err, %d with", rc2, rc);
        mw_envelope_clear(&e2);
    }
    free(buf);
    return 0;
}
