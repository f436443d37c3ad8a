/* fuzz_messages: the client-message path as the gateway runs it.
 *
 * Arbitrary bytes go through mw_msg_decode(); then the reply the session
 * would send is encoded (the success reply for a decoded request, with a
 * fake ticket built from it, or the error for a rejected one) and must itself
 * be a valid envelope (parsed back by the codec and walked here): v 1, the
 * expected type, the request's id echoed byte for byte (MSG-011/012), the
 * error code, retryable flag and offset as decoded (MSG-063/100), no more
 * than 65,536 bytes. Decoded requests obey the catalogue's rules (checked
 * independently): queue syntax, playerId/region/idempotencyKey lengths,
 * attributes an object of at most 16 members, ticket ids UUID v4 text. */
#include "fuzz_common.h"

#include "buf.h"
#include "envelope.h"
#include "error.h"
#include "json.h"
#include "alloc.h"
#include "messages.h"
#include "ticket.h"

#define FAKE_NOW_MS 1795000000000LL /* 2026-11-17 */

/* The cut for the bounded re-encodes, set per input from its bytes. */
static size_t g_cut_seed;

/* Re-runs an encoder (an expression writing into `sb`) with a bound below
 * the length it produced unbounded (full): it must fail with MW_ELIMIT and
 * leave the buffer empty. The cut point varies with the input. */
#define CHECK_BOUNDED(full, expr)                                                                  \
    do {                                                                                           \
        struct mw_buf sb;                                                                          \
        int brc;                                                                                   \
        if ((full) > 1) {                                                                          \
            mw_buf_init(&sb, 1 + g_cut_seed % ((full)-1));                                         \
            brc = (expr);                                                                          \
            FUZZ_CHECK_MSG(brc == MW_ELIMIT && sb.len == 0, "bounded encode rc %d len %zu", brc,   \
                           sb.len);                                                                \
            mw_buf_release(&sb);                                                                   \
        }                                                                                          \
    } while (0)

static bool uuid4_ok(const char *s)
{
    size_t i;

    if (strlen(s) != 36)
        return false;
    for (i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static bool queue_ok(const char *s)
{
    size_t n = strlen(s), i;

    if (n < 1 || n > 64)
        return false;
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

/* The id the request carries per MSG-012, read here independently: the
 * input is strict I-JSON (within the envelope's size and depth) whose top
 * level is an object with a valid "id". Fills id, returns whether one. */
static bool expected_id(const char *buf, size_t size, char id[MW_ID_MAX + 1])
{
    cJSON *root = NULL;
    const cJSON *m;
    bool ok = false;

    if (size > MW_ENVELOPE_MAX_BYTES ||
        mw_json_parse(buf, size, MW_ENVELOPE_MAX_DEPTH, &root, NULL) != 0)
        return false;
    m = mw_json_get(root, "id");
    if (cJSON_IsString(m) && fuzz_id_ok(m->valuestring)) {
        snprintf(id, MW_ID_MAX + 1, "%s", m->valuestring);
        ok = true;
    }
    cJSON_Delete(root);
    return ok;
}

/* Parses a reply the server would send and checks the envelope rules every
 * server message obeys; returns its data (owned by *env). */
static const cJSON *check_reply(const struct mw_buf *b, size_t start, const char *type,
                                const char *id, struct mw_envelope *env)
{
    struct mw_parse_error err;
    size_t n = b->len - start;
    char *copy = fuzz_dup_exact((const uint8_t *)b->data + start, n);
    int rc;

    FUZZ_CHECK_MSG(n <= MW_ENVELOPE_MAX_BYTES, "%s reply of %zu bytes", type, n);
    rc = mw_envelope_parse(copy, n, env, &err);
    FUZZ_CHECK_MSG(rc == 0, "%s reply rejected: %s at %zu: %.*s", type, err.message, err.offset,
                   (int)(n > 300 ? 300 : n), copy);
    free(copy);
    FUZZ_CHECK_MSG(strcmp(env->type, type) == 0, "type %s, expected %s", env->type, type);
    FUZZ_CHECK(env->v == 1);
    FUZZ_CHECK(fuzz_tree_ok(env->data, 2, MW_ENVELOPE_MAX_DEPTH));
    if (id)
        FUZZ_CHECK_MSG(env->has_id && strcmp(env->id, id) == 0, "id not echoed");
    else
        FUZZ_CHECK_MSG(!env->has_id, "reply carries an id the request did not");
    return env->data;
}

static void check_string_member(const cJSON *data, const char *key, const char *want)
{
    const cJSON *m = mw_json_get(data, key);

    FUZZ_CHECK_MSG(cJSON_IsString(m) && strcmp(m->valuestring, want) == 0, "member %s", key);
}

static void fake_ticket(struct mw_ticket *t, const char *id, const struct mw_enqueue_req *req,
                        enum mw_ticket_state state, uint64_t version)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    snprintf(t->queue, sizeof(t->queue), "%s", req ? req->queue : "ranked");
    snprintf(t->player_id, sizeof(t->player_id), "%s", req ? req->player_id : "p1");
    if (req)
        snprintf(t->region, sizeof(t->region), "%s", req->region);
    t->state = state;
    t->version = version;
    t->created_ms = FAKE_NOW_MS;
    t->expires_ms = FAKE_NOW_MS + 600000;
}

/* Encodes the success reply (and, for an enqueue, the push and the HTTP
 * resource built from it) and checks each. */
static void reply_success(const struct mw_client_msg *m, uint8_t variant)
{
    static const char fake_id[] = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const char *id = m->has_id ? m->id : NULL;
    struct mw_envelope env;
    struct mw_ticket t;
    struct mw_buf b;
    const cJSON *d;
    int rc;

    mw_buf_init(&b, 4 * MW_ENVELOPE_MAX_BYTES);
    switch (m->type) {
    case MW_MSG_ENQUEUE: {
        struct mw_match match;
        size_t i;
        FUZZ_CHECK(queue_ok(m->enqueue.queue));
        FUZZ_CHECK(strlen(m->enqueue.player_id) >= 1 && strlen(m->enqueue.player_id) <= 128);
        FUZZ_CHECK(fuzz_ijson_string_ok(m->enqueue.player_id));
        FUZZ_CHECK(strlen(m->enqueue.region) <= 64 && fuzz_ijson_string_ok(m->enqueue.region));
        FUZZ_CHECK(!m->enqueue.has_idem_key ||
                   (strlen(m->enqueue.idem_key) >= 1 && strlen(m->enqueue.idem_key) <= 64));
        FUZZ_CHECK(m->enqueue.watched);
        if (m->enqueue.attributes_json) {
            cJSON *attrs = NULL;
            FUZZ_CHECK(mw_json_parse(m->enqueue.attributes_json, strlen(m->enqueue.attributes_json),
                                     MW_ENVELOPE_MAX_DEPTH, &attrs, NULL) == 0);
            FUZZ_CHECK(cJSON_IsObject(attrs) && cJSON_GetArraySize(attrs) <= 16);
            cJSON_Delete(attrs);
        }
        fake_ticket(&t, fake_id, &m->enqueue, MW_TICKET_QUEUED, 1);
        rc = mw_msg_encode_enqueued(&b, id, &t);
        FUZZ_CHECK_MSG(rc == 0, "encode_enqueued %d", rc);
        CHECK_BOUNDED(b.len, mw_msg_encode_enqueued(&sb, id, &t));
        d = check_reply(&b, 0, "enqueued", id, &env);
        check_string_member(d, "ticketId", fake_id);
        check_string_member(d, "queue", m->enqueue.queue);
        check_string_member(d, "state", "queued");
        mw_envelope_clear(&env);

        /* The assignment push carries this player's id, the match's
         * others, and nothing of theirs but playerId (MSG-061). */
        memset(&match, 0, sizeof(match));
        snprintf(match.match_id, sizeof(match.match_id), "%s", fake_id);
        snprintf(match.connection, sizeof(match.connection), "10.0.0.1:7777");
        match.assigned_ms = FAKE_NOW_MS + (variant % 7) * 1001;
        match.n = 1 + variant % MW_MATCH_SIZE_MAX;
        for (i = 0; i < match.n; i++) {
            snprintf(match.ticket_ids[i], sizeof(match.ticket_ids[i]), "%s", fake_id);
            snprintf(match.player_ids[i], sizeof(match.player_ids[i]), "%s", m->enqueue.player_id);
            match.versions[i] = 2;
        }
        mw_buf_reset(&b);
        rc = mw_msg_encode_match_assigned(&b, &match, match.n - 1, 2);
        FUZZ_CHECK_MSG(rc == 0, "encode_match_assigned %d", rc);
        CHECK_BOUNDED(b.len, mw_msg_encode_match_assigned(&sb, &match, match.n - 1, 2));
        {
            struct mw_buf sb;
            mw_buf_init(&sb, 0);
            FUZZ_CHECK(mw_msg_encode_match_assigned(&sb, &match, match.n, 2) == MW_EINVAL);
            FUZZ_CHECK(sb.len == 0);
            mw_buf_release(&sb);
        }
        d = check_reply(&b, 0, "match.assigned", NULL, &env);
        {
            const char *tid = NULL;
            uint64_t ver = 0;
            int64_t at = 0;
            struct mw_parse_error pe;
            rc = mw_msg_check_match_assigned(&env, &tid, &ver, &at, &pe);
            FUZZ_CHECK_MSG(rc == 0, "own match.assigned fails the check: %s", pe.message);
            FUZZ_CHECK(strcmp(tid, fake_id) == 0 && ver == 2 && at == match.assigned_ms);
        }
        (void)d;
        mw_envelope_clear(&env);

        /* The HTTP resource of the assigned ticket (not an envelope). */
        fake_ticket(&t, fake_id, &m->enqueue, MW_TICKET_ASSIGNED, 2);
        t.assigned_envelope = b.data;
        t.assigned_envelope_len = b.len;
        {
            struct mw_buf r;
            cJSON *res = NULL;
            mw_buf_init(&r, 4 * MW_ENVELOPE_MAX_BYTES);
            rc = mw_msg_encode_ticket_resource(&r, &t);
            FUZZ_CHECK_MSG(rc == 0, "encode_ticket_resource %d", rc);
            CHECK_BOUNDED(r.len, mw_msg_encode_ticket_resource(&sb, &t));
            FUZZ_CHECK(mw_json_parse(r.data, r.len, MW_ENVELOPE_MAX_DEPTH, &res, NULL) == 0);
            check_string_member(res, "playerId", m->enqueue.player_id);
            check_string_member(res, "state", "assigned");
            FUZZ_CHECK(cJSON_IsObject(mw_json_get(res, "assignment")));
            cJSON_Delete(res);
            mw_buf_release(&r);
        }
        break;
    }
    case MW_MSG_CANCEL:
        FUZZ_CHECK(uuid4_ok(m->ticket_id));
        fake_ticket(&t, m->ticket_id, NULL, MW_TICKET_CANCELLED, 2);
        FUZZ_CHECK(mw_msg_encode_cancelled(&b, id, &t) == 0);
        CHECK_BOUNDED(b.len, mw_msg_encode_cancelled(&sb, id, &t));
        d = check_reply(&b, 0, "cancelled", id, &env);
        check_string_member(d, "ticketId", m->ticket_id);
        mw_envelope_clear(&env);
        break;
    case MW_MSG_WATCH:
        FUZZ_CHECK(uuid4_ok(m->ticket_id));
        fake_ticket(&t, m->ticket_id, NULL, (enum mw_ticket_state)(variant % 4), 1 + variant % 2);
        FUZZ_CHECK(mw_msg_encode_watching(&b, id, &t) == 0);
        CHECK_BOUNDED(b.len, mw_msg_encode_watching(&sb, id, &t));
        d = check_reply(&b, 0, "watching", id, &env);
        check_string_member(d, "ticketId", m->ticket_id);
        check_string_member(d, "state", mw_ticket_state_name(t.state));
        mw_envelope_clear(&env);
        if (t.state == MW_TICKET_QUEUED || t.state == MW_TICKET_ASSIGNED) {
            struct mw_buf sb;
            mw_buf_init(&sb, 0); /* not an ended state: nothing to push */
            FUZZ_CHECK(mw_msg_encode_ticket_ended(&sb, &t) == MW_EINVAL && sb.len == 0);
            mw_buf_release(&sb);
        } else {
            mw_buf_reset(&b);
            FUZZ_CHECK(mw_msg_encode_ticket_ended(&b, &t) == 0);
            CHECK_BOUNDED(b.len, mw_msg_encode_ticket_ended(&sb, &t));
            check_reply(&b, 0, t.state == MW_TICKET_EXPIRED ? "ticket.expired" : "ticket.cancelled",
                        NULL, &env);
            mw_envelope_clear(&env);
        }
        break;
    case MW_MSG_PING:
        FUZZ_CHECK(mw_msg_encode_pong(&b, id) == 0);
        CHECK_BOUNDED(b.len, mw_msg_encode_pong(&sb, id));
        d = check_reply(&b, 0, "pong", id, &env);
        FUZZ_CHECK(d->child == NULL); /* pong {} */
        mw_envelope_clear(&env);
        break;
    default:
        FUZZ_CHECK_MSG(0, "decoded type %d", (int)m->type);
    }
    mw_buf_release(&b);
}

static void reply_error(const struct mw_msg_error *err)
{
    const char *id = err->has_id ? err->id : NULL;
    struct mw_envelope env;
    const cJSON *d, *off, *retry;
    struct mw_buf b;
    int rc;

    mw_buf_init(&b, 4 * MW_ENVELOPE_MAX_BYTES);
    rc = mw_msg_encode_error(&b, id, err->e.code, err->e.message, err->e.offset);
    FUZZ_CHECK_MSG(rc == 0, "encode_error %d", rc);
    CHECK_BOUNDED(b.len, mw_msg_encode_error(&sb, id, err->e.code, err->e.message, err->e.offset));
    d = check_reply(&b, 0, "error", id, &env);
    check_string_member(d, "code", mw_code_name(err->e.code));
    FUZZ_CHECK(cJSON_IsString(mw_json_get(d, "message")));
    retry = mw_json_get(d, "retryable");
    FUZZ_CHECK(cJSON_IsBool(retry) && cJSON_IsTrue(retry) == mw_code_retryable(err->e.code));
    off = mw_json_get(d, "offset");
    if (err->e.offset == SIZE_MAX)
        FUZZ_CHECK_MSG(off == NULL, "offset present without one");
    else
        FUZZ_CHECK_MSG(cJSON_IsNumber(off) && off->valuedouble == (double)err->e.offset,
                       "offset %zu not carried", err->e.offset);
    mw_envelope_clear(&env);
    mw_buf_release(&b);
}

/* The HTTP path (POST /v1/tickets, http.c): the body is enqueue's data. */
static void http_body(const char *buf, size_t size)
{
    struct mw_enqueue_req req;
    struct mw_parse_error pe;
    cJSON *root = NULL;
    int rc;

    if (size > MW_ENVELOPE_MAX_BYTES ||
        mw_json_parse(buf, size, MW_ENVELOPE_MAX_DEPTH, &root, NULL) != 0)
        return;
    memset(&req, 0, sizeof(req));
    rc = mw_msg_decode_enqueue_data(root, &req, &pe);
    cJSON_Delete(root);
    if (rc == 0) {
        struct mw_ticket t;
        struct mw_buf r;
        cJSON *res = NULL;
        FUZZ_CHECK(queue_ok(req.queue) && req.player_id[0] != '\0');
        FUZZ_CHECK(fuzz_ijson_string_ok(req.player_id) && fuzz_ijson_string_ok(req.region));
        fake_ticket(&t, "0f8fad5b-d9cb-469f-a165-70867728950e", &req, MW_TICKET_QUEUED, 1);
        mw_buf_init(&r, 4 * MW_ENVELOPE_MAX_BYTES);
        FUZZ_CHECK(mw_msg_encode_ticket_resource(&r, &t) == 0);
        FUZZ_CHECK(mw_json_parse(r.data, r.len, MW_ENVELOPE_MAX_DEPTH, &res, NULL) == 0);
        check_string_member(res, "state", "queued");
        FUZZ_CHECK(mw_json_get(res, "assignment") == NULL);
        cJSON_Delete(res);
        mw_buf_release(&r);
        mw_free(req.attributes_json);
    } else {
        FUZZ_CHECK_MSG(rc == MW_EINVAL, "rc %d", rc);
        FUZZ_CHECK(pe.code == MW_CODE_BAD_MESSAGE);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup_exact(data, size);
    char want_id[MW_ID_MAX + 1] = "";
    bool has_want = expected_id(buf, size, want_id);
    struct mw_client_msg m, m2;
    struct mw_msg_error err;
    int rc;

    memset(&m2, 0, sizeof(m2));

    g_cut_seed = size ? data[0] * 131u + data[size / 2] * 7u + size : 0;
    http_body(buf, size);
    /* err may be NULL: same verdict. */
    rc = mw_msg_decode(buf, size, &m, NULL);
    if (rc == 0)
        mw_client_msg_clear(&m);
    {
        /* The gateway's other entry: an envelope it already parsed. */
        struct mw_envelope env;
        if (mw_envelope_parse(buf, size, &env, NULL) == 0) {
            int rc2 = mw_msg_decode_envelope(&env, &m, NULL);
            FUZZ_CHECK((rc2 == 0) == (mw_msg_decode(buf, size, &m2, NULL) == 0));
            if (rc2 == 0)
                mw_client_msg_clear(&m);
            mw_client_msg_clear(&m2);
            mw_envelope_clear(&env);
        }
    }
    memset(&m, 0x5A, sizeof(m));
    memset(&err, 0x5A, sizeof(err));
    FUZZ_CHECK(rc == mw_msg_decode(buf, size, &m, &err));
    if (rc == 0) {
        FUZZ_CHECK(m.has_id == has_want && (!has_want || strcmp(m.id, want_id) == 0));
        reply_success(&m, size ? data[size - 1] : 0);
        mw_client_msg_clear(&m);
        mw_client_msg_clear(&m);
    } else {
        FUZZ_CHECK_MSG(rc == MW_EINVAL, "rc %d", rc);
        switch (err.e.code) {
        case MW_CODE_BAD_JSON:
        case MW_CODE_TOO_DEEP:
        case MW_CODE_TOO_LARGE:
            FUZZ_CHECK_MSG(!err.has_id, "id echoed on %s", mw_code_name(err.e.code));
            break;
        case MW_CODE_BAD_ENVELOPE:
        case MW_CODE_UNKNOWN_TYPE:
        case MW_CODE_UNSUPPORTED_VERSION:
        case MW_CODE_BAD_MESSAGE:
        case MW_CODE_NOT_FOUND:
            /* MSG-012: echo a valid top-level id whatever else is wrong. */
            FUZZ_CHECK_MSG(err.has_id == has_want, "has_id %d, expected %d", err.has_id, has_want);
            FUZZ_CHECK(!has_want || strcmp(err.id, want_id) == 0);
            break;
        default:
            FUZZ_CHECK_MSG(0, "unexpected code %s", mw_code_name(err.e.code));
        }
        FUZZ_CHECK(memchr(err.e.message, '\0', sizeof(err.e.message)) != NULL);
        reply_error(&err);
    }
    free(buf);
    return 0;
}
