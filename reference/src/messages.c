/* messages: the v1 message catalogue (spec/messages.md). Client messages are
 * decoded into typed structs with every data rule of MSG-020..050; server
 * messages are written straight into a bounded buffer as canonical envelope
 * text (member order type, v, id, data; compact), with no intermediate tree
 * on the hot path. */
#include "messages.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "json.h"
#include "rfc3339.h"

#define ATTR_STRING_MAX 256                /* MSG-022: bytes of a string attribute value */
#define MAX_SAFE_INT    9007199254740991.0 /* 2^53 - 1 */
#define MATCH_ID_MAX    128 /* bytes of a foreign worker's match id (ours are UUIDs) */

/* ---- Errors ---------------------------------------------------------------- */

static int fail(struct mw_parse_error *e, enum mw_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills *e (may be NULL) with a message-layer failure (no offset applies)
 * and returns MW_EINVAL. */
static int fail(struct mw_parse_error *e, enum mw_code code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mw_parse_error_vset(e, code, SIZE_MAX, fmt, ap);
    va_end(ap);
    return MW_EINVAL;
}

static void msg_error_reset(struct mw_msg_error *err)
{
    if (!err)
        return;
    err->e.code = MW_CODE_NONE;
    err->e.offset = SIZE_MAX;
    err->e.message[0] = '\0';
    err->has_id = false;
    err->id[0] = '\0';
}

static void set_id(char dst[MW_ID_MAX + 1], const char *id)
{
    size_t n = strlen(id);

    if (n > MW_ID_MAX)
        n = MW_ID_MAX;
    memcpy(dst, id, n);
    dst[n] = '\0';
}

/* MSG-012: the envelope failed, but when the text is strict I-JSON whose top
 * level is an object with a valid `id`, the error must still echo that id.
 * Best effort: an allocation failure here only loses the echo. */
static void recover_id(const char *buf, size_t len, struct mw_msg_error *err)
{
    cJSON *root = NULL;
    const cJSON *id;

    if (mw_json_parse(buf, len, MW_ENVELOPE_MAX_DEPTH, &root, NULL) != 0)
        return;
    id = mw_json_get(root, "id");
    if (cJSON_IsString(id) && id->valuestring &&
        mw_envelope_id_valid(id->valuestring, strlen(id->valuestring))) {
        err->has_id = true;
        set_id(err->id, id->valuestring);
    }
    cJSON_Delete(root);
}

/* ---- Decoding client messages ---------------------------------------------- */

static const struct {
    const char *name;
    enum mw_msg_type type;
} client_types[] = {
    {"enqueue", MW_MSG_ENQUEUE},
    {"cancel", MW_MSG_CANCEL},
    {"watch", MW_MSG_WATCH},
    {"ping", MW_MSG_PING},
};

/* Looks up a required string member: NULL with *e filled when it is absent
 * or not a string. */
static const char *get_string(const cJSON *obj, const char *key, bool required, bool *present,
                              struct mw_parse_error *e)
{
    const cJSON *v = mw_json_get(obj, key);

    *present = v != NULL;
    if (!v) {
        if (required)
            fail(e, MW_CODE_BAD_MESSAGE, "%s is required", key);
        return NULL;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        fail(e, MW_CODE_BAD_MESSAGE, "%s must be a string", key);
        return NULL;
    }
    return v->valuestring;
}

/* MSG-022: at most 16 members, each a string of at most 256 bytes or a
 * number; `region` a string of 1..64 bytes (copied to region). */
static int check_attributes(const cJSON *attrs, char region[MW_REGION_MAX + 1],
                            struct mw_parse_error *e)
{
    const cJSON *m;
    size_t count = 0;

    if (!cJSON_IsObject(attrs))
        return fail(e, MW_CODE_BAD_MESSAGE, "attributes must be an object");
    cJSON_ArrayForEach(m, attrs)
    {
        const char *key = m->string ? m->string : "";

        if (++count > MW_ATTRS_MAX)
            return fail(e, MW_CODE_BAD_MESSAGE, "attributes has more than %d members",
                        MW_ATTRS_MAX);
        if (strcmp(key, "region") == 0) {
            size_t n;
            if (!cJSON_IsString(m) || !m->valuestring)
                return fail(e, MW_CODE_BAD_MESSAGE, "attributes.region must be a string");
            n = strlen(m->valuestring);
            if (n < 1 || n > MW_REGION_MAX)
                return fail(e, MW_CODE_BAD_MESSAGE, "attributes.region must be 1 to %d bytes",
                            MW_REGION_MAX);
            memcpy(region, m->valuestring, n + 1);
        } else if (cJSON_IsString(m) && m->valuestring) {
            if (strlen(m->valuestring) > ATTR_STRING_MAX)
                return fail(e, MW_CODE_BAD_MESSAGE,
                            "attribute values must be strings of at most %d bytes",
                            ATTR_STRING_MAX);
        } else if (!cJSON_IsNumber(m)) {
            return fail(e, MW_CODE_BAD_MESSAGE, "attribute values must be strings or numbers");
        }
    }
    return 0;
}

int mw_msg_decode_enqueue_data(const cJSON *data, struct mw_enqueue_req *req,
                               struct mw_parse_error *err)
{
    const char *queue, *player, *key;
    const cJSON *attrs;
    struct mw_buf ab;
    bool present;
    size_t n;
    int rc;

    memset(req, 0, sizeof(*req));
    if (!cJSON_IsObject(data))
        return fail(err, MW_CODE_BAD_MESSAGE, "data must be an object");

    /* MSG-020 */
    queue = get_string(data, "queue", true, &present, err);
    if (!queue)
        return MW_EINVAL;
    n = strlen(queue);
    if (!mw_queue_name_valid(queue, n))
        return fail(err, MW_CODE_BAD_MESSAGE, "queue must be 1 to %d bytes of a-z 0-9 _ -",
                    MW_QUEUE_MAX);
    memcpy(req->queue, queue, n + 1);

    /* MSG-021 */
    player = get_string(data, "playerId", true, &present, err);
    if (!player)
        return MW_EINVAL;
    n = strlen(player);
    if (n < 1 || n > MW_PLAYER_ID_MAX)
        return fail(err, MW_CODE_BAD_MESSAGE, "playerId must be 1 to %d bytes", MW_PLAYER_ID_MAX);
    memcpy(req->player_id, player, n + 1);

    /* MSG-022 */
    attrs = mw_json_get(data, "attributes");
    if (attrs) {
        rc = check_attributes(attrs, req->region, err);
        if (rc)
            goto out_clear;
    }

    /* MSG-023 */
    key = get_string(data, "idempotencyKey", false, &present, err);
    if (present) {
        if (!key) {
            rc = MW_EINVAL;
            goto out_clear;
        }
        n = strlen(key);
        if (n < 1 || n > MW_IDEM_KEY_MAX) {
            rc = fail(err, MW_CODE_BAD_MESSAGE, "idempotencyKey must be 1 to %d bytes",
                      MW_IDEM_KEY_MAX);
            goto out_clear;
        }
        memcpy(req->idem_key, key, n + 1);
        req->has_idem_key = true;
    }

    /* Carried, not interpreted: keep a canonical copy. */
    if (attrs) {
        mw_buf_init(&ab, MW_ENVELOPE_MAX_BYTES);
        rc = mw_json_write(&ab, attrs);
        if (rc) {
            mw_buf_release(&ab);
            if (rc == MW_ENOMEM)
                fail(err, MW_CODE_INTERNAL, "out of memory");
            else
                fail(err, MW_CODE_BAD_MESSAGE, "attributes cannot be carried");
            goto out_clear;
        }
        req->attributes_json = ab.data; /* ownership moves to req */
    }
    return 0;

out_clear:
    memset(req, 0, sizeof(*req));
    return rc;
}

/* cancel / watch: {"ticketId": string}. A string that cannot be a ticket id
 * names no ticket: not_found (MSG-031, MSG-042). */
static int decode_ticket_ref(const cJSON *data, char out[MW_TICKET_ID_LEN + 1],
                             struct mw_parse_error *e)
{
    bool present;
    const char *id = get_string(data, "ticketId", true, &present, e);

    if (!id)
        return MW_EINVAL;
    if (!mw_uuid4_valid(id, strlen(id)))
        return fail(e, MW_CODE_NOT_FOUND, "no such ticket");
    memcpy(out, id, MW_TICKET_ID_LEN + 1);
    return 0;
}

int mw_msg_decode_envelope(const struct mw_envelope *env, struct mw_client_msg *out,
                           struct mw_msg_error *err)
{
    struct mw_parse_error scratch, *e = err ? &err->e : &scratch;
    size_t i;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    msg_error_reset(err);
    if (env->has_id) {
        out->has_id = true;
        set_id(out->id, env->id);
        if (err) {
            err->has_id = true;
            set_id(err->id, env->id);
        }
    }
    for (i = 0; i < sizeof(client_types) / sizeof(client_types[0]); i++) {
        if (strcmp(env->type, client_types[i].name) == 0)
            break;
    }
    if (i == sizeof(client_types) / sizeof(client_types[0]))
        return fail(e, MW_CODE_UNKNOWN_TYPE, "unknown message type '%s'", env->type);
    if (env->v != 1)
        return fail(e, MW_CODE_UNSUPPORTED_VERSION, "%s v%lld is not supported (v1 is)", env->type,
                    (long long)env->v);
    out->type = client_types[i].type;
    switch (out->type) {
    case MW_MSG_ENQUEUE:
        rc = mw_msg_decode_enqueue_data(env->data, &out->enqueue, e);
        out->enqueue.watched = true;
        break;
    case MW_MSG_CANCEL:
    case MW_MSG_WATCH:
        rc = decode_ticket_ref(env->data, out->ticket_id, e);
        break;
    case MW_MSG_PING: /* MSG-050: any object, members ignored */
        if (!cJSON_IsObject(env->data))
            rc = fail(e, MW_CODE_BAD_MESSAGE, "data must be an object");
        break;
    }
    if (rc) {
        bool has_id = out->has_id;
        char id[MW_ID_MAX + 1];
        memcpy(id, out->id, sizeof(id));
        memset(out, 0, sizeof(*out));
        out->has_id = has_id;
        memcpy(out->id, id, sizeof(id));
    }
    return rc;
}

int mw_msg_decode(const char *buf, size_t len, struct mw_client_msg *out, struct mw_msg_error *err)
{
    struct mw_envelope env;
    struct mw_parse_error pe;
    int rc;

    memset(out, 0, sizeof(*out));
    msg_error_reset(err);
    rc = mw_envelope_parse(buf, len, &env, &pe);
    if (rc) {
        if (err) {
            err->e = pe;
            if (rc == MW_EINVAL && pe.code == MW_CODE_BAD_ENVELOPE) {
                if (env.has_id) { /* the codec kept a valid id it saw */
                    err->has_id = true;
                    set_id(err->id, env.id);
                } else {
                    recover_id(buf, len, err);
                }
            }
        }
        return rc;
    }
    rc = mw_msg_decode_envelope(&env, out, err);
    mw_envelope_clear(&env);
    return rc;
}

void mw_client_msg_clear(struct mw_client_msg *m)
{
    if (!m)
        return;
    mw_free(m->enqueue.attributes_json);
    m->enqueue.attributes_json = NULL;
}

/* ---- match.assigned validation (payloads from any worker) ----------------- */

static const char *last_colon(const char *s, size_t n)
{
    while (n > 0) {
        if (s[--n] == ':')
            return s + n;
    }
    return NULL;
}

/* host:port, host 1..255 bytes of visible ASCII, port 1..65535 in decimal. */
static bool connection_valid(const char *s, size_t n)
{
    const char *colon;
    size_t host_len, port_len;
    long port = 0;

    if (n < 3 || n > MW_CONNECTION_MAX)
        return false;
    colon = last_colon(s, n);
    if (!colon)
        return false;
    host_len = (size_t)(colon - s);
    port_len = n - host_len - 1;
    if (host_len < 1 || host_len > 255 || port_len < 1 || port_len > 5)
        return false;
    for (size_t i = 0; i < host_len; i++) {
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return false;
    }
    for (size_t i = 0; i < port_len; i++) {
        char c = colon[1 + i];
        if (c < '0' || c > '9')
            return false;
        port = port * 10 + (c - '0');
    }
    return port >= 1 && port <= 65535;
}

/* A string of 1..max bytes, every byte printable ASCII when ascii is set. */
static bool str_member(const cJSON *obj, const char *key, size_t max, bool ascii, const char **out)
{
    const cJSON *v = mw_json_get(obj, key);
    size_t n;

    if (!cJSON_IsString(v) || !v->valuestring)
        return false;
    n = strlen(v->valuestring);
    if (n < 1 || n > max)
        return false;
    if (ascii) {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v->valuestring[i];
            if (c < 0x20 || c > 0x7e)
                return false;
        }
    }
    *out = v->valuestring;
    return true;
}

int mw_msg_check_match_assigned(const struct mw_envelope *env, const char **ticket_id,
                                uint64_t *version, int64_t *assigned_ms, struct mw_parse_error *err)
{
    const cJSON *d = env->data, *ver, *a, *players, *p, *at;
    const char *tid, *s;
    int64_t ms;
    int count = 0;

    if (strcmp(env->type, "match.assigned") != 0)
        return fail(err, MW_CODE_UNKNOWN_TYPE, "type is '%s', not match.assigned", env->type);
    if (env->v != 1)
        return fail(err, MW_CODE_UNSUPPORTED_VERSION, "match.assigned v%lld is not supported",
                    (long long)env->v);
    if (env->has_id) /* MSG-010: a push is not a reply */
        return fail(err, MW_CODE_BAD_MESSAGE, "match.assigned must not carry an id");
    if (!cJSON_IsObject(d))
        return fail(err, MW_CODE_BAD_MESSAGE, "data must be an object");
    if (!str_member(d, "ticketId", MW_ID_MAX, true, &tid))
        return fail(err, MW_CODE_BAD_MESSAGE, "ticketId must be 1 to %d printable ASCII bytes",
                    MW_ID_MAX);
    ver = mw_json_get(d, "version");
    /* An assignment is a state change of a version-1 ticket (MSG-071). */
    if (!cJSON_IsNumber(ver) || ver->valuedouble < 2 || ver->valuedouble > MAX_SAFE_INT ||
        floor(ver->valuedouble) != ver->valuedouble)
        return fail(err, MW_CODE_BAD_MESSAGE, "version must be an integer >= 2");
    a = mw_json_get(d, "assignment");
    if (!cJSON_IsObject(a))
        return fail(err, MW_CODE_BAD_MESSAGE, "assignment must be an object");
    /* MSG-061: nothing but data.ticketId may carry a ticket id. */
    if (mw_json_get(a, "ticketId"))
        return fail(err, MW_CODE_BAD_MESSAGE, "assignment must not carry a ticketId");
    if (!str_member(a, "matchId", MATCH_ID_MAX, false, &s))
        return fail(err, MW_CODE_BAD_MESSAGE, "assignment.matchId must be 1 to %d bytes",
                    MATCH_ID_MAX);
    if (!str_member(a, "connection", MW_CONNECTION_MAX, true, &s) ||
        !connection_valid(s, strlen(s)))
        return fail(err, MW_CODE_BAD_MESSAGE, "assignment.connection must be host:port");
    players = mw_json_get(a, "players");
    if (!cJSON_IsArray(players))
        return fail(err, MW_CODE_BAD_MESSAGE, "assignment.players must be an array");
    cJSON_ArrayForEach(p, players)
    {
        if (++count > MW_MATCH_SIZE_MAX)
            return fail(err, MW_CODE_BAD_MESSAGE, "assignment.players has more than %d entries",
                        MW_MATCH_SIZE_MAX);
        if (!cJSON_IsObject(p))
            return fail(err, MW_CODE_BAD_MESSAGE, "assignment.players[%d] must be an object",
                        count - 1);
        if (!str_member(p, "playerId", MW_PLAYER_ID_MAX, false, &s))
            return fail(err, MW_CODE_BAD_MESSAGE,
                        "assignment.players[%d].playerId must be 1 to %d bytes", count - 1,
                        MW_PLAYER_ID_MAX);
        if (mw_json_get(p, "ticketId"))
            return fail(err, MW_CODE_BAD_MESSAGE,
                        "assignment.players[%d] must not carry a ticketId", count - 1);
    }
    if (count == 0)
        return fail(err, MW_CODE_BAD_MESSAGE, "assignment.players must not be empty");
    at = mw_json_get(a, "assignedAt");
    if (!cJSON_IsString(at) || !at->valuestring ||
        !mw_rfc3339_parse(at->valuestring, strlen(at->valuestring), &ms))
        return fail(err, MW_CODE_BAD_MESSAGE, "assignment.assignedAt must be RFC 3339 UTC");

    if (ticket_id)
        *ticket_id = tid;
    if (version)
        *version = (uint64_t)ver->valuedouble;
    if (assigned_ms)
        *assigned_ms = ms;
    return 0;
}

/* ---- Encoders ---------------------------------------------------------------
 * Canonical envelope text written directly: {"type":T,"v":1,"id":I,"data":{..}}.
 * Each encoder restores b to its previous length on failure. */

#define TRY(x)                                                                                     \
    do {                                                                                           \
        rc = (x);                                                                                  \
        if (rc)                                                                                    \
            goto out_fail;                                                                         \
    } while (0)

static int lit(struct mw_buf *b, const char *s)
{
    return mw_buf_append(b, s, strlen(s));
}

static int str(struct mw_buf *b, const char *s)
{
    return mw_json_write_string(b, s, strlen(s));
}

/* Longest value and key the one-append path of str_field takes. */
#define STR_FIELD_FAST_VALUE 192
#define STR_FIELD_FAST_KEY   64

/* ,"key":"value" or "key":"value" (first). Every field of a hot-path reply
 * (ids, queue, state, type, timestamps) is short plain ASCII, which
 * mw_json_write_string copies verbatim between quotes: such a value goes out
 * with its key in one append from a stack buffer instead of four calls and a
 * byte-by-byte UTF-8 check. Anything else (escapes, non-ASCII, long) takes the
 * full writer. The bytes written are the same either way. */
static int str_field(struct mw_buf *b, const char *key_lit, const char *value)
{
    char tmp[STR_FIELD_FAST_KEY + STR_FIELD_FAST_VALUE + 2];
    const unsigned char *v = (const unsigned char *)value;
    size_t kl = strlen(key_lit), i;
    int rc;

    if (kl <= STR_FIELD_FAST_KEY) {
        for (i = 0; i < STR_FIELD_FAST_VALUE && v[i]; i++)
            if (v[i] < 0x20 || v[i] >= 0x80 || v[i] == '"' || v[i] == '\\')
                break;
        if (v[i] == '\0') {
            memcpy(tmp, key_lit, kl);
            tmp[kl] = '"';
            memcpy(tmp + kl + 1, value, i);
            tmp[kl + 1 + i] = '"';
            return mw_buf_append(b, tmp, kl + i + 2);
        }
    }
    rc = lit(b, key_lit);
    return rc ? rc : str(b, value);
}

static int int_field(struct mw_buf *b, const char *key_lit, int64_t value)
{
    int rc = lit(b, key_lit);
    return rc ? rc : mw_json_write_int(b, value);
}

static int time_field(struct mw_buf *b, const char *key_lit, int64_t ms)
{
    char ts[32];

    mw_rfc3339_format(ms, ts);
    return str_field(b, key_lit, ts);
}

/* Opens an envelope up to and including the `{` of data. */
static int open_envelope(struct mw_buf *b, const char *type, const char *id)
{
    int rc;

    if ((rc = str_field(b, "{\"type\":", type)) != 0 || (rc = lit(b, ",\"v\":1")) != 0)
        return rc;
    if (id && (rc = str_field(b, ",\"id\":", id)) != 0)
        return rc;
    return lit(b, ",\"data\":{");
}

static int undo(struct mw_buf *b, size_t start, int rc)
{
    mw_buf_truncate(b, start);
    return rc;
}

static int64_t version_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* {"ticketId":...,"version":...} envelopes: cancelled, ticket.expired,
 * ticket.cancelled. */
static int encode_ticket_version(struct mw_buf *b, const char *type, const char *id,
                                 const struct mw_ticket *t)
{
    size_t start = b->len;
    int rc;

    TRY(open_envelope(b, type, id));
    TRY(str_field(b, "\"ticketId\":", t->id));
    TRY(int_field(b, ",\"version\":", version_i64(t->version)));
    TRY(lit(b, "}}"));
    return 0;
out_fail:
    return undo(b, start, rc);
}

int mw_msg_encode_enqueued(struct mw_buf *b, const char *id, const struct mw_ticket *t)
{
    size_t start = b->len;
    int rc;

    TRY(open_envelope(b, "enqueued", id));
    TRY(str_field(b, "\"ticketId\":", t->id));
    TRY(str_field(b, ",\"queue\":", t->queue));
    TRY(str_field(b, ",\"state\":", mw_ticket_state_name(t->state)));
    TRY(int_field(b, ",\"version\":", version_i64(t->version)));
    TRY(time_field(b, ",\"expiresAt\":", t->expires_ms));
    TRY(lit(b, "}}"));
    return 0;
out_fail:
    return undo(b, start, rc);
}

int mw_msg_encode_cancelled(struct mw_buf *b, const char *id, const struct mw_ticket *t)
{
    return encode_ticket_version(b, "cancelled", id, t);
}

int mw_msg_encode_watching(struct mw_buf *b, const char *id, const struct mw_ticket *t)
{
    size_t start = b->len;
    int rc;

    TRY(open_envelope(b, "watching", id));
    TRY(str_field(b, "\"ticketId\":", t->id));
    TRY(str_field(b, ",\"state\":", mw_ticket_state_name(t->state)));
    TRY(int_field(b, ",\"version\":", version_i64(t->version)));
    TRY(lit(b, "}}"));
    return 0;
out_fail:
    return undo(b, start, rc);
}

int mw_msg_encode_pong(struct mw_buf *b, const char *id)
{
    size_t start = b->len;
    int rc;

    TRY(open_envelope(b, "pong", id));
    TRY(lit(b, "}}"));
    return 0;
out_fail:
    return undo(b, start, rc);
}

int mw_msg_encode_error(struct mw_buf *b, const char *id, enum mw_code code, const char *message,
                        size_t offset)
{
    size_t start = b->len;
    int rc;

    TRY(open_envelope(b, "error", id));
    TRY(str_field(b, "\"code\":", mw_code_name(code)));
    TRY(str_field(b, ",\"message\":", message && *message ? message : mw_code_name(code)));
    TRY(lit(b, mw_code_retryable(code) ? ",\"retryable\":true" : ",\"retryable\":false"));
    if (offset != SIZE_MAX)
        TRY(int_field(b, ",\"offset\":", offset > (size_t)INT64_MAX ? INT64_MAX : (int64_t)offset));
    TRY(lit(b, "}}"));
    return 0;
out_fail:
    return undo(b, start, rc);
}

int mw_msg_encode_match_assigned(struct mw_buf *b, const struct mw_match *m, size_t i,
                                 uint64_t version)
{
    size_t start = b->len;
    int rc;

    if (i >= m->n || m->n > MW_MATCH_SIZE_MAX)
        return MW_EINVAL;
    TRY(open_envelope(b, "match.assigned", NULL));
    TRY(str_field(b, "\"ticketId\":", m->ticket_ids[i]));
    TRY(int_field(b, ",\"version\":", version_i64(version)));
    TRY(str_field(b, ",\"assignment\":{\"matchId\":", m->match_id));
    TRY(str_field(b, ",\"connection\":", m->connection));
    TRY(lit(b, ",\"players\":["));
    for (size_t k = 0; k < m->n; k++) {
        TRY(str_field(b, k ? ",{\"playerId\":" : "{\"playerId\":", m->player_ids[k]));
        TRY(lit(b, "}"));
    }
    TRY(time_field(b, "],\"assignedAt\":", m->assigned_ms));
    TRY(lit(b, "}}}"));
    return 0;
out_fail:
    return undo(b, start, rc);
}

int mw_msg_encode_ticket_ended(struct mw_buf *b, const struct mw_ticket *t)
{
    switch (t->state) {
    case MW_TICKET_EXPIRED:
        return encode_ticket_version(b, "ticket.expired", NULL, t);
    case MW_TICKET_CANCELLED:
        return encode_ticket_version(b, "ticket.cancelled", NULL, t);
    default:
        return MW_EINVAL;
    }
}

/* Writes the `assignment` object of the ticket's stored match.assigned
 * envelope (the very object its watchers received). */
static int write_stored_assignment(struct mw_buf *b, const struct mw_ticket *t)
{
    cJSON *root = NULL;
    const cJSON *a;
    int rc;

    if (!t->assigned_envelope)
        return MW_EINVAL;
    rc = mw_json_parse(t->assigned_envelope, t->assigned_envelope_len, MW_ENVELOPE_MAX_DEPTH, &root,
                       NULL);
    if (rc)
        return rc;
    a = mw_json_get(mw_json_get(root, "data"), "assignment");
    rc = cJSON_IsObject(a) ? mw_json_write(b, a) : MW_EINVAL;
    cJSON_Delete(root);
    return rc;
}

int mw_msg_encode_ticket_resource(struct mw_buf *b, const struct mw_ticket *t)
{
    size_t start = b->len;
    int rc;

    TRY(str_field(b, "{\"ticketId\":", t->id));
    TRY(str_field(b, ",\"queue\":", t->queue));
    TRY(str_field(b, ",\"playerId\":", t->player_id));
    TRY(str_field(b, ",\"state\":", mw_ticket_state_name(t->state)));
    TRY(int_field(b, ",\"version\":", version_i64(t->version)));
    TRY(time_field(b, ",\"createdAt\":", t->created_ms));
    TRY(time_field(b, ",\"expiresAt\":", t->expires_ms));
    if (t->state == MW_TICKET_ASSIGNED) {
        TRY(lit(b, ",\"assignment\":"));
        TRY(write_stored_assignment(b, t));
    }
    TRY(lit(b, "}"));
    return 0;
out_fail:
    return undo(b, start, rc);
}
