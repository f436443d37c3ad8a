/* channel: the payload codec of the MatchAssignedChannel (spec/channel.md).
 *
 * What travels on "matchmaking:assigned" is the seed's payload,
 * {"ticketId": ..., "envelope": {...}}, as any worker publishes it (ours, or
 * a NestJS worker's JSON.stringify). Everything received is untrusted: it is
 * bounded, checked strictly, and re-serialized canonically before a gateway
 * pushes it. The backends (ops tables) live in channel_memory.c and
 * channel_redis.c. */
#include "channel.h"

#include <string.h>

#include "envelope.h"
#include "error.h"
#include "json.h"
#include "messages.h"

static const char *const drop_names[MW_DROP__COUNT] = {
    [MW_DROP_NONE] = "none",
    [MW_DROP_TOO_LARGE] = "too_large",
    [MW_DROP_BAD_JSON] = "bad_json",
    [MW_DROP_BAD_PAYLOAD] = "bad_payload",
    [MW_DROP_BAD_ENVELOPE] = "bad_envelope",
    [MW_DROP_NOT_ASSIGNED] = "not_match_assigned",
    [MW_DROP_TICKET_MISMATCH] = "ticket_mismatch",
};

const char *mw_drop_reason_name(enum mw_drop_reason r)
{
    if ((unsigned)r >= MW_DROP__COUNT)
        return "unknown";
    return drop_names[r];
}

int mw_channel_payload_encode(struct mw_buf *b, const struct mw_assigned *m)
{
    size_t start = b->len;
    int rc;

    if ((rc = mw_buf_puts(b, "{\"ticketId\":")) != 0 ||
        (rc = mw_json_write_string(b, m->ticket_id, strlen(m->ticket_id))) != 0 ||
        (rc = mw_buf_puts(b, ",\"envelope\":")) != 0 ||
        (rc = mw_buf_append(b, m->envelope, m->envelope_len)) != 0 ||
        (rc = mw_buf_puts(b, "}")) != 0) {
        mw_buf_truncate(b, start);
        return rc;
    }
    return 0;
}

/* 1..64 bytes of printable ASCII (spec/channel.md: a payload's ticketId). */
static bool payload_ticket_id_valid(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > MW_CHANNEL_TICKET_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    }
    return true;
}

static int drop(enum mw_drop_reason *why, enum mw_drop_reason r)
{
    if (why)
        *why = r;
    return MW_EINVAL;
}

int mw_channel_payload_decode(const char *buf, size_t len, struct mw_assigned_owned *out,
                              enum mw_drop_reason *why)
{
    struct mw_parse_error pe;
    struct mw_envelope env;
    const cJSON *tid, *envj;
    const char *data_tid;
    uint64_t version;
    int64_t assigned_ms;
    cJSON *root = NULL;
    size_t n;
    int rc;

    memset(out, 0, sizeof(*out));
    mw_buf_init(&out->envelope, MW_ENVELOPE_MAX_BYTES);
    if (why)
        *why = MW_DROP_NONE;
    if (len > MW_CHANNEL_PAYLOAD_MAX)
        return drop(why, MW_DROP_TOO_LARGE);

    /* The envelope sits one level down: allow its 32 levels plus the payload
     * object. Anything deeper is not a payload we could ever forward. */
    rc = mw_json_parse(buf, len, MW_ENVELOPE_MAX_DEPTH + 1, &root, &pe);
    if (rc == MW_ENOMEM)
        return MW_ENOMEM;
    if (rc)
        return drop(why, MW_DROP_BAD_JSON);

    tid = mw_json_get(root, "ticketId");
    envj = mw_json_get(root, "envelope");
    if (!cJSON_IsObject(root) || !cJSON_IsString(tid) || !tid->valuestring ||
        !payload_ticket_id_valid(tid->valuestring) || !cJSON_IsObject(envj)) {
        rc = drop(why, MW_DROP_BAD_PAYLOAD);
        goto out_free_root;
    }

    rc = mw_envelope_from_json(envj, &env, &pe);
    if (rc == MW_ENOMEM)
        goto out_free_root;
    if (rc) {
        rc = drop(why, MW_DROP_BAD_ENVELOPE);
        goto out_free_root;
    }
    if (mw_msg_check_match_assigned(&env, &data_tid, &version, &assigned_ms, NULL) != 0) {
        rc = drop(why, MW_DROP_NOT_ASSIGNED);
        goto out_clear_env;
    }
    if (strcmp(data_tid, tid->valuestring) != 0) {
        rc = drop(why, MW_DROP_TICKET_MISMATCH);
        goto out_clear_env;
    }

    rc = mw_envelope_serialize(&env, &out->envelope);
    if (rc) {
        /* Canonical text can outgrow its source (1e15 is written out as
         * digits): an envelope whose canonical form exceeds 64 KiB, like
         * anything else the writer refuses, is not forwardable. */
        if (rc != MW_ENOMEM)
            rc = drop(why, MW_DROP_BAD_ENVELOPE);
        mw_buf_release(&out->envelope);
        goto out_clear_env;
    }
    n = strlen(tid->valuestring);
    memcpy(out->ticket_id, tid->valuestring, n + 1);
    out->version = version;
    out->assigned_ms = assigned_ms;
    rc = 0;

out_clear_env:
    mw_envelope_clear(&env);
out_free_root:
    cJSON_Delete(root);
    return rc;
}

void mw_assigned_owned_clear(struct mw_assigned_owned *o)
{
    if (!o)
        return;
    mw_buf_release(&o->envelope);
    o->ticket_id[0] = '\0';
}

void mw_assigned_view(const struct mw_assigned_owned *o, struct mw_assigned *view)
{
    view->ticket_id = o->ticket_id;
    view->envelope = o->envelope.data ? o->envelope.data : "";
    view->envelope_len = o->envelope.len;
    view->version = o->version;
    view->assigned_ms = o->assigned_ms;
    view->recovery = false; /* received on the channel: a first delivery */
}
