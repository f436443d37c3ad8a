/* fuzz_channel_payload: arbitrary bytes as received on the channel
 * ("matchmaking:assigned"), into mw_channel_payload_decode().
 *
 * A rejected payload has a drop reason and owns nothing; an accepted one
 * carries a canonical envelope (at most 65,536 bytes) that parses as a valid
 * match.assigned v1 whose data.ticketId is the payload's ticketId and whose
 * version / assignedAt are the ones decoded. Re-encoding the payload and
 * decoding it again is a fixed point (same fields, same bytes). */
#include "fuzz_common.h"

#include "buf.h"
#include "channel.h"
#include "envelope.h"
#include "error.h"
#include "messages.h"

static void check_accepted(const struct mw_assigned_owned *o)
{
    struct mw_envelope env;
    struct mw_parse_error err;
    const char *tid = NULL;
    uint64_t version = 0;
    int64_t at = 0;
    char *copy;
    int rc;

    FUZZ_CHECK(o->envelope != NULL && o->envelope_len > 0);
    FUZZ_CHECK(o->envelope_len <= MW_ENVELOPE_MAX_BYTES);
    FUZZ_CHECK(fuzz_id_ok(o->ticket_id));
    copy = fuzz_dup_exact((const uint8_t *)o->envelope, o->envelope_len);
    rc = mw_envelope_parse(copy, o->envelope_len, &env, &err);
    FUZZ_CHECK_MSG(rc == 0, "forwarded envelope rejected: %s at %zu", err.message, err.offset);
    FUZZ_CHECK(strcmp(env.type, "match.assigned") == 0 && env.v == 1 && !env.has_id);
    FUZZ_CHECK(fuzz_tree_ok(env.data, 2, MW_ENVELOPE_MAX_DEPTH));
    rc = mw_msg_check_match_assigned(&env, &tid, &version, &at, &err);
    FUZZ_CHECK_MSG(rc == 0, "forwarded envelope is not a match.assigned: %s", err.message);
    FUZZ_CHECK_MSG(strcmp(tid, o->ticket_id) == 0, "ticketId %s vs %s", tid, o->ticket_id);
    FUZZ_CHECK(version == o->version && version >= 1);
    FUZZ_CHECK(at == o->assigned_ms);
    mw_envelope_clear(&env);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup_exact(data, size), *copy;
    struct mw_assigned_owned o, o2;
    enum mw_drop_reason why = MW_DROP__COUNT;
    struct mw_assigned view;
    struct mw_buf b;
    int rc;

    memset(&o, 0x5A, sizeof(o));
    FUZZ_CHECK(strcmp(mw_drop_reason_name(MW_DROP__COUNT), "unknown") == 0);
    mw_assigned_owned_clear(NULL);
    /* why may be NULL: same verdict. */
    rc = mw_channel_payload_decode(buf, size, &o2, NULL);
    if (rc == 0)
        mw_assigned_owned_clear(&o2);
    FUZZ_CHECK(rc == mw_channel_payload_decode(buf, size, &o, &why));
    if (rc != 0) {
        FUZZ_CHECK_MSG(rc == MW_EINVAL, "rc %d", rc);
        FUZZ_CHECK_MSG(why > MW_DROP_NONE && why < MW_DROP__COUNT, "why %d", (int)why);
        FUZZ_CHECK(strcmp(mw_drop_reason_name(why), "unknown") != 0);
        FUZZ_CHECK(size <= MW_CHANNEL_PAYLOAD_MAX || why == MW_DROP_TOO_LARGE);
        mw_assigned_owned_clear(&o); /* owns nothing, must be harmless */
        free(buf);
        return 0;
    }
    FUZZ_CHECK(why == MW_DROP_NONE);
    FUZZ_CHECK(size <= MW_CHANNEL_PAYLOAD_MAX);
    check_accepted(&o);

    /* Re-publish what we would forward: decoding it again changes nothing. */
    mw_assigned_view(&o, &view);
    FUZZ_CHECK(view.ticket_id == o.ticket_id && view.envelope_len == o.envelope_len);
    mw_buf_init(&b, 2 * MW_CHANNEL_PAYLOAD_MAX);
    FUZZ_CHECK(mw_channel_payload_encode(&b, &view) == 0);
    {
        /* A bound short of the payload (the cut varies with the input, so
         * each append can be the one that fails): MW_ELIMIT, nothing kept. */
        struct mw_buf small;
        mw_buf_init(&small, 1 + (size * 2654435761u + data[0]) % (b.len - 1));
        FUZZ_CHECK(mw_channel_payload_encode(&small, &view) == MW_ELIMIT && small.len == 0);
        mw_buf_release(&small);
    }
    copy = fuzz_dup_exact((const uint8_t *)b.data, b.len);
    rc = mw_channel_payload_decode(copy, b.len, &o2, &why);
    if (b.len > MW_CHANNEL_PAYLOAD_MAX) {
        /* A 64 KiB envelope plus the wrapper: too large to travel again. */
        FUZZ_CHECK(rc == MW_EINVAL && why == MW_DROP_TOO_LARGE);
    } else {
        FUZZ_CHECK_MSG(rc == 0, "re-encoded payload dropped: %s", mw_drop_reason_name(why));
        FUZZ_CHECK(strcmp(o.ticket_id, o2.ticket_id) == 0 && o.version == o2.version &&
                   o.assigned_ms == o2.assigned_ms);
        FUZZ_CHECK(o.envelope_len == o2.envelope_len &&
                   memcmp(o.envelope, o2.envelope, o.envelope_len) == 0);
        mw_assigned_owned_clear(&o2);
    }
    free(copy);
    mw_buf_release(&b);
    mw_assigned_owned_clear(&o);
    mw_assigned_owned_clear(&o);
    free(buf);
    return 0;
}
