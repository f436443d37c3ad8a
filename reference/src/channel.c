/* channel: the payload codec of the MatchAssignedChannel (spec/channel.md).
 *
 * What travels on "matchmaking:assigned" is the seed's payload,
 * {"ticketId": ..., "envelope": {...}}, as any worker publishes it (ours, or
 * a NestJS worker's JSON.stringify). Everything received is untrusted: it is
 * bounded and checked strictly, and a gateway pushes the envelope's
 * canonical text: as received when it was canonical already (no copy), else
 * re-serialized. The backends (ops tables) live in channel_memory.c and
 * channel_redis.c. */
#include "channel.h"

#include <string.h>

#include "envelope.h"
#include "error.h"
#include "invariant.h"
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

/* True when env (a view into the payload's tree) would serialize to the
 * envelope's text as received: the text is canonical (track) and holds
 * exactly the members mw_envelope_serialize() writes, in its order. */
static bool envelope_text_canonical(const cJSON *envj, const struct mw_json_track *t)
{
    static const char *const order[] = {"type", "v", "id", "data"};
    const cJSON *c = envj->child;
    size_t i;

    if (!t->canonical)
        return false;
    for (i = 0; i < sizeof(order) / sizeof(order[0]) && c; i++) {
        if (strcmp(c->string, order[i]) == 0)
            c = c->next;
        else if (i != 2) /* only "id" may be absent */
            return false;
    }
    return c == NULL;
}

int mw_channel_payload_decode(const char *buf, size_t len, struct mw_assigned_owned *out,
                              enum mw_drop_reason *why)
{
    enum { T_TICKET_ID, T_ENVELOPE, T__COUNT };
    struct mw_json_track t[T__COUNT] = {
        [T_TICKET_ID] = {.key = "ticketId"},
        [T_ENVELOPE] = {.key = "envelope"},
    };
    /* The tree lives as long as this call: its nodes and strings come from
     * an arena whose first block is on the stack (a typical payload, 25
     * nodes and 30 strings, fits it: no allocation at all). */
    unsigned char scratch[4096];
    struct mw_json_arena arena;
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
    mw_buf_init(&out->scratch, MW_ENVELOPE_MAX_BYTES);
    if (why)
        *why = MW_DROP_NONE;
    if (len > MW_CHANNEL_PAYLOAD_MAX)
        return drop(why, MW_DROP_TOO_LARGE);

    /* The envelope sits one level down: allow its 32 levels plus the payload
     * object. Anything deeper is not a payload we could ever forward. */
    mw_json_arena_init(&arena, scratch, sizeof(scratch));
    rc = mw_json_parse_arena(buf, len, MW_ENVELOPE_MAX_DEPTH + 1, t, T__COUNT, &arena, &root, &pe);
    if (rc) {
        if (rc != MW_ENOMEM)
            rc = drop(why, MW_DROP_BAD_JSON);
        goto out_free_root;
    }

    tid = mw_json_get(root, "ticketId");
    envj = mw_json_get(root, "envelope");
    if (!cJSON_IsObject(root) || !cJSON_IsString(tid) || !tid->valuestring ||
        !payload_ticket_id_valid(tid->valuestring) || !cJSON_IsObject(envj)) {
        rc = drop(why, MW_DROP_BAD_PAYLOAD);
        goto out_free_root;
    }

    /* A view: the envelope's data stays in root, nothing is copied. */
    if (mw_envelope_view_json(envj, &env, &pe) != 0) {
        rc = drop(why, MW_DROP_BAD_ENVELOPE);
        goto out_free_root;
    }
    if (mw_msg_check_match_assigned(&env, &data_tid, &version, &assigned_ms, NULL) != 0) {
        rc = drop(why, MW_DROP_NOT_ASSIGNED);
        goto out_free_root;
    }
    if (strcmp(data_tid, tid->valuestring) != 0) {
        rc = drop(why, MW_DROP_TICKET_MISMATCH);
        goto out_free_root;
    }

    if (envelope_text_canonical(envj, &t[T_ENVELOPE])) {
        /* Pushed as received: it is byte for byte what re-serializing
         * would write (checked below where invariants are). */
        MW_ASSERT(t[T_ENVELOPE].found && t[T_ENVELOPE].len <= len);
        out->envelope = buf + t[T_ENVELOPE].offset;
        out->envelope_len = t[T_ENVELOPE].len;
#if MW_ASSERTIONS
        rc = mw_envelope_serialize(&env, &out->scratch);
        MW_ASSERT(rc == MW_ENOMEM ||
                  (rc == 0 && out->scratch.len == out->envelope_len &&
                   memcmp(out->scratch.data, out->envelope, out->envelope_len) == 0));
        mw_buf_release(&out->scratch);
#endif
    } else {
        rc = mw_envelope_serialize(&env, &out->scratch);
        if (rc) {
            /* Canonical text can outgrow its source (1e15 is written out as
             * digits): an envelope whose canonical form exceeds 64 KiB, like
             * anything else the writer refuses, is not forwardable. */
            if (rc != MW_ENOMEM)
                rc = drop(why, MW_DROP_BAD_ENVELOPE);
            mw_buf_release(&out->scratch);
            goto out_free_root;
        }
        out->envelope = out->scratch.data;
        out->envelope_len = out->scratch.len;
    }
    n = strlen(tid->valuestring);
    memcpy(out->ticket_id, tid->valuestring, n + 1);
    out->version = version;
    out->assigned_ms = assigned_ms;
    rc = 0;

out_free_root:
    mw_json_arena_release(&arena); /* root and everything in it */
    return rc;
}

void mw_assigned_owned_clear(struct mw_assigned_owned *o)
{
    if (!o)
        return;
    mw_buf_release(&o->scratch);
    o->envelope = NULL;
    o->envelope_len = 0;
    o->ticket_id[0] = '\0';
}

void mw_assigned_view(const struct mw_assigned_owned *o, struct mw_assigned *view)
{
    view->ticket_id = o->ticket_id;
    view->envelope = o->envelope ? o->envelope : "";
    view->envelope_len = o->envelope_len;
    view->version = o->version;
    view->assigned_ms = o->assigned_ms;
    view->recovery = false; /* received on the channel: a first delivery */
}
