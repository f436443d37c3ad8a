/* fuzz_oom: the decoders under allocation failure.
 *
 * Input: byte 0 picks the decoder (envelope parse + serialize, client
 * message decode + error reply, channel payload decode, JSON parse), bytes
 * 1-2 pick N, the rest is the text. The text is decoded once normally (the
 * reference verdict), then again with every allocation from the (N+1)th on
 * failing (mw_alloc_fail_after, which also covers cJSON's nodes through its
 * hooks). The failing run must not crash or leak and must end either with
 * the reference verdict (same result, same error code and offset) or with
 * MW_ENOMEM (code "internal") and nothing owned. Encoders under failure
 * return 0 or MW_ENOMEM and leave the buffer as it was. */
#include "fuzz_common.h"

#include "alloc.h"
#include "buf.h"
#include "channel.h"
#include "envelope.h"
#include "error.h"
#include "json.h"
#include "messages.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    mw_alloc_set(NULL); /* cJSON allocates through mw_malloc from now on */
    return 0;
}

static void oom_envelope(const char *buf, size_t size, long n)
{
    struct mw_envelope ref, got;
    struct mw_parse_error eref, egot;
    struct mw_buf b;
    int rref, rgot;

    rref = mw_envelope_parse(buf, size, &ref, &eref);
    mw_alloc_fail_after(n);
    rgot = mw_envelope_parse(buf, size, &got, &egot);
    mw_alloc_fail_reset();
    if (rgot == MW_ENOMEM) {
        FUZZ_CHECK(egot.code == MW_CODE_INTERNAL && got.data == NULL);
    } else {
        FUZZ_CHECK_MSG(rgot == rref, "rc %d under failure, %d without", rgot, rref);
        if (rgot == 0)
            FUZZ_CHECK(mw_envelope_equal(&ref, &got));
        else
            FUZZ_CHECK(egot.code == eref.code && egot.offset == eref.offset);
    }
    if (rref == 0) {
        /* Canonical serialization under failure: all or nothing. */
        mw_buf_init(&b, 8 * MW_ENVELOPE_MAX_BYTES);
        FUZZ_CHECK(mw_buf_append(&b, "x", 1) == 0);
        mw_alloc_fail_after(n % 4);
        rgot = mw_envelope_serialize(&ref, &b);
        mw_alloc_fail_reset();
        FUZZ_CHECK_MSG(rgot == 0 || rgot == MW_ENOMEM, "serialize rc %d", rgot);
        if (rgot)
            FUZZ_CHECK(b.len == 1 && b.data[1] == '\0');
        mw_buf_release(&b);
    }
    mw_envelope_clear(&got);
    mw_envelope_clear(&ref);
}

static void oom_messages(const char *buf, size_t size, long n)
{
    struct mw_client_msg ref, got;
    struct mw_msg_error eref, egot;
    struct mw_buf b;
    int rref, rgot;

    rref = mw_msg_decode(buf, size, &ref, &eref);
    mw_alloc_fail_after(n);
    rgot = mw_msg_decode(buf, size, &got, &egot);
    mw_alloc_fail_reset();
    if (rgot != MW_ENOMEM) {
        FUZZ_CHECK_MSG(rgot == rref, "rc %d under failure, %d without", rgot, rref);
        if (rgot == 0) {
            FUZZ_CHECK(got.type == ref.type && got.has_id == ref.has_id);
            FUZZ_CHECK((got.enqueue.attributes_json == NULL) ==
                       (ref.enqueue.attributes_json == NULL));
            if (got.enqueue.attributes_json)
                FUZZ_CHECK(strcmp(got.enqueue.attributes_json, ref.enqueue.attributes_json) == 0);
        } else {
            FUZZ_CHECK(egot.e.code == eref.e.code && egot.e.offset == eref.e.offset);
            FUZZ_CHECK(egot.has_id == eref.has_id);
        }
    }
    if (rref != 0) {
        mw_buf_init(&b, 4 * MW_ENVELOPE_MAX_BYTES);
        mw_alloc_fail_after(n % 3);
        rgot = mw_msg_encode_error(&b, eref.has_id ? eref.id : NULL, eref.e.code, eref.e.message,
                                   eref.e.offset);
        mw_alloc_fail_reset();
        FUZZ_CHECK_MSG(rgot == 0 || rgot == MW_ENOMEM, "encode_error rc %d", rgot);
        if (rgot)
            FUZZ_CHECK(b.len == 0);
        mw_buf_release(&b);
    }
    mw_client_msg_clear(&got);
    mw_client_msg_clear(&ref);
}

static void oom_channel(const char *buf, size_t size, long n)
{
    struct mw_assigned_owned ref, got;
    enum mw_drop_reason wref, wgot;
    int rref, rgot;

    rref = mw_channel_payload_decode(buf, size, &ref, &wref);
    mw_alloc_fail_after(n);
    rgot = mw_channel_payload_decode(buf, size, &got, &wgot);
    mw_alloc_fail_reset();
    if (rgot != MW_ENOMEM) {
        FUZZ_CHECK_MSG(rgot == rref, "rc %d under failure, %d without", rgot, rref);
        FUZZ_CHECK(wgot == wref);
        if (rgot == 0)
            FUZZ_CHECK(got.envelope_len == ref.envelope_len &&
                       memcmp(got.envelope, ref.envelope, got.envelope_len) == 0);
    }
    mw_assigned_owned_clear(&got);
    mw_assigned_owned_clear(&ref);
}

static void oom_json(const char *buf, size_t size, long n)
{
    struct mw_parse_error eref, egot;
    cJSON *ref = NULL, *got = NULL;
    struct mw_buf b;
    int rref, rgot;

    rref = mw_json_parse(buf, size, 0, &ref, &eref);
    mw_alloc_fail_after(n);
    rgot = mw_json_parse(buf, size, 0, &got, &egot);
    mw_alloc_fail_reset();
    if (rgot == MW_ENOMEM) {
        FUZZ_CHECK(got == NULL && egot.code == MW_CODE_INTERNAL);
    } else {
        FUZZ_CHECK_MSG(rgot == rref, "rc %d under failure, %d without", rgot, rref);
        if (rgot)
            FUZZ_CHECK(egot.code == eref.code && egot.offset == eref.offset);
    }
    if (ref) {
        mw_buf_init(&b, 8 * MW_ENVELOPE_MAX_BYTES);
        mw_alloc_fail_after(n % 4);
        rgot = mw_json_write(&b, ref);
        mw_alloc_fail_reset();
        FUZZ_CHECK_MSG(rgot == 0 || rgot == MW_ENOMEM, "write rc %d", rgot);
        mw_buf_release(&b);
    }
    cJSON_Delete(got);
    cJSON_Delete(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf;
    long n;

    if (size < 3)
        return 0;
    n = (long)((data[1] | (data[2] << 8)) % 512);
    buf = fuzz_dup_exact(data + 3, size - 3);
    switch (data[0] % 4) {
    case 0:
        oom_envelope(buf, size - 3, n);
        break;
    case 1:
        oom_messages(buf, size - 3, n);
        break;
    case 2:
        oom_channel(buf, size - 3, n);
        break;
    default:
        oom_json(buf, size - 3, n);
        break;
    }
    free(buf);
    return 0;
}
