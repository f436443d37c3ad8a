/* mwc_proto: the client's protocol state machine (spec/client.md). See
 * mwc_proto.h. Server messages are decoded strictly by the project's codec
 * (envelope.h: strict I-JSON, size and depth limits) and read liberally
 * (unknown types, versions and members ignored); requests are validated by
 * the server's own decoder (messages.h) before they are sent (CLI-003). */
#include "mwc_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "alloc.h"
#include "buf.h"
#include "envelope.h"
#include "error.h"
#include "invariant.h"
#include "json.h"
#include "messages.h"

enum tstate { T_QUEUED = 0, T_ASSIGNED, T_CANCELLED, T_EXPIRED };

/* A ticket the client holds, or one that ended and is remembered for
 * CLI-030 until ended_at + MWC_RETENTION_MS. */
struct ticket {
    bool used;
    char id[MWC_ID_MAX + 1];
    enum tstate state;
    uint64_t version;
    uint64_t applied; /* version of the assignment applied; 0: none (CLI-030) */
    int64_t ended_at; /* when it became final; 0 while live */
    bool app_watch;   /* the application's watch is unanswered: resend as a watch */
};

/* An enqueue not answered yet (CLI-011): replayed on every new connection. */
struct pending {
    bool used;
    char ref[MWC_ID_MAX + 1];
    char *data;       /* canonical `data` object text, owned */
    int64_t retry_at; /* resend after a retryable error at this time; 0: none */
    int retries;
};

enum kind { K_NONE = 0, K_ENQUEUE, K_WATCH, K_REWATCH, K_CANCEL };

/* A request: waiting in the queue (id 0) or sent and unanswered (id > 0). */
struct req {
    enum kind kind;
    char key[MWC_ID_MAX + 1]; /* ref (enqueue) or ticket id */
    uint64_t id;              /* request id "r<id>" once sent */
};

struct early {
    bool used;
    char id[MWC_ID_MAX + 1];
    char *text; /* the whole message, owned */
    size_t len;
};

struct mwc_proto {
    struct mwc_callbacks cb;
    void *ud;
    struct mwc_client *owner;
    mwc_random_fn rnd;
    void *rnd_ud;
    char *token;

    enum mwc_state state;
    bool started, closing, close_sent, stop_reported;
    bool want_connect; /* MWC_ACT_CONNECT due at next_attempt_at */
    bool connecting;   /* between MWC_ACT_CONNECT and on_open/on_refused */
    bool open;
    int attempt;          /* consecutive failures (5.2) */
    int64_t next_attempt; /* when the next attempt may start */
    int64_t opened_at;
    bool last_401;
    int64_t last_rx, ping_at; /* liveness (CLI-071); ping_at 0: no ping out */

    double tokens; /* pacing bucket (CLI-060) */
    int64_t tokens_t;
    int64_t paused_until; /* CLI-061 */

    uint64_t seq;
    struct ticket tickets[MWC_TICKET_SLOTS];
    struct pending pending[MWC_MAX_PENDING];
    struct req outq[MWC_OUTQ_MAX]; /* waiting to be sent, in order */
    size_t n_outq;
    struct req inflight[MWC_OUTQ_MAX]; /* sent on this connection, unanswered */
    size_t n_inflight;
    struct early early[MWC_MAX_EARLY];

    struct mw_buf out; /* the message handed out by mwc_proto_next_send */
};

static const char *tstate_name(enum tstate s)
{
    static const char *const names[] = {"queued", "assigned", "cancelled", "expired"};

    MW_ASSERT(s >= T_QUEUED && s <= T_EXPIRED);
    return names[s];
}

static bool tstate_final(enum tstate s)
{
    return s != T_QUEUED;
}

static void set_state(struct mwc_proto *p, enum mwc_state s)
{
    if (p->state == s)
        return;
    p->state = s;
    if (p->cb.on_state)
        p->cb.on_state(p->owner, s, p->ud);
}

static void protocol_error(struct mwc_proto *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void protocol_error(struct mwc_proto *p, const char *fmt, ...)
{
    char detail[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (p->cb.on_protocol_error)
        p->cb.on_protocol_error(p->owner, detail, p->ud);
}

static bool copy_id(char dst[MWC_ID_MAX + 1], const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > MWC_ID_MAX)
        return false;
    memcpy(dst, s, n + 1);
    return true;
}

/* MSG-073: 1 to 64 URI-unreserved bytes. */
static bool ticket_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > MWC_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_' || ch == '~'))
            return false;
    }
    return true;
}

static uint32_t rand_u32(struct mwc_proto *p)
{
    uint32_t r = 0;

    if (p->rnd(p->rnd_ud, &r, sizeof(r)) != 0)
        r = (uint32_t)(p->seq * 2654435761u); /* never happens with getrandom */
    return r;
}

/* Full jitter in [floor, min(cap, floor * 2^n)] (spec/client.md 5.2). */
static int64_t backoff_ms(struct mwc_proto *p, int n)
{
    int64_t hi = (int64_t)MWC_FLOOR_MS << (n < 6 ? n : 6);

    if (hi > MWC_CAP_MS)
        hi = MWC_CAP_MS;
    return MWC_FLOOR_MS + (int64_t)(rand_u32(p) % (uint32_t)(hi - MWC_FLOOR_MS + 1));
}

/* ---- tables ---------------------------------------------------------------- */

static struct ticket *ticket_find(struct mwc_proto *p, const char *id)
{
    for (size_t i = 0; i < MWC_TICKET_SLOTS; i++)
        if (p->tickets[i].used && strcmp(p->tickets[i].id, id) == 0)
            return &p->tickets[i];
    return NULL;
}

static size_t live_tickets(const struct mwc_proto *p)
{
    size_t n = 0;

    for (size_t i = 0; i < MWC_TICKET_SLOTS; i++)
        if (p->tickets[i].used && !p->tickets[i].ended_at)
            n++;
    return n;
}

/* Finds or adds a ticket. A full table evicts the ended ticket that ended
 * first (expired retention first); NULL when every slot holds a live one or
 * MWC_MAX_TICKETS are live. */
static struct ticket *ticket_get(struct mwc_proto *p, const char *id, int64_t now)
{
    struct ticket *t = ticket_find(p, id), *victim = NULL;

    if (t)
        return t;
    if (live_tickets(p) >= MWC_MAX_TICKETS)
        return NULL;
    for (size_t i = 0; i < MWC_TICKET_SLOTS; i++) {
        struct ticket *s = &p->tickets[i];
        if (!s->used) {
            victim = s;
            break;
        }
        if (s->ended_at && (!victim || s->ended_at < victim->ended_at))
            victim = s;
    }
    if (!victim)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    victim->used = true;
    copy_id(victim->id, id);
    return victim;
}

static void ticket_end(struct ticket *t, enum tstate s, uint64_t version, int64_t now)
{
    t->state = s;
    if (version > t->version)
        t->version = version;
    t->app_watch = false;
    if (!t->ended_at)
        t->ended_at = now ? now : 1;
}

static struct pending *pending_find(struct mwc_proto *p, const char *ref)
{
    for (size_t i = 0; i < MWC_MAX_PENDING; i++)
        if (p->pending[i].used && strcmp(p->pending[i].ref, ref) == 0)
            return &p->pending[i];
    return NULL;
}

static void pending_drop(struct pending *q)
{
    mw_free(q->data);
    memset(q, 0, sizeof(*q));
}

/* Application watches and cancels waiting in the queue (K_WATCH, K_CANCEL). */
static size_t outq_app_entries(const struct mwc_proto *p)
{
    size_t n = 0;

    for (size_t i = 0; i < p->n_outq; i++)
        n += p->outq[i].kind == K_WATCH || p->outq[i].kind == K_CANCEL;
    return n;
}

/* Queues a request. The queue's room is split so that the client's own
 * entries always fit: at most MWC_MAX_PENDING watches and cancels asked by
 * the application (app_call: MWC_ELIMIT beyond), plus at most one watch per
 * live ticket (re-watches after a reconnect) and one enqueue per pending
 * entry, MWC_MAX_TICKETS + MWC_MAX_PENDING; MWC_OUTQ_MAX holds the three.
 * So a push by the client itself cannot fail. */
static int outq_push_ex(struct mwc_proto *p, enum kind k, const char *key, bool app_call)
{
    struct req *r;

    if (app_call && outq_app_entries(p) >= MWC_MAX_PENDING)
        return MWC_ELIMIT;
    MW_ASSERT(p->n_outq < MWC_OUTQ_MAX);
    if (p->n_outq >= MWC_OUTQ_MAX)
        return MWC_ELIMIT;
    r = &p->outq[p->n_outq++];
    r->kind = k;
    copy_id(r->key, key);
    r->id = 0;
    return 0;
}

static void outq_push(struct mwc_proto *p, enum kind k, const char *key)
{
    int rc = outq_push_ex(p, k, key, false);

    MW_ASSERT(rc == 0);
    (void)rc;
}

static bool inflight_take(struct mwc_proto *p, const char *id, struct req *out)
{
    char buf[32];

    for (size_t i = 0; i < p->n_inflight; i++) {
        snprintf(buf, sizeof(buf), "r%llu", (unsigned long long)p->inflight[i].id);
        if (strcmp(buf, id) == 0) {
            *out = p->inflight[i];
            p->inflight[i] = p->inflight[--p->n_inflight];
            return true;
        }
    }
    return false;
}

/* Forgets the pushes held for a reply (CLI-027): once no enqueue is in
 * flight on the connection, no reply can claim them (a broken server's, or
 * the connection ended: the next one replays the enqueue and the server
 * pushes again), and they must not hold the MWC_MAX_EARLY slots. */
static void early_clear(struct mwc_proto *p)
{
    for (size_t i = 0; i < MWC_MAX_EARLY; i++) {
        mw_free(p->early[i].text);
        memset(&p->early[i], 0, sizeof(p->early[i]));
    }
}

/* Makes room for one more request in flight: when the table is full (a
 * server that answers nothing), the oldest is forgotten; its reply, if one
 * ever comes, is then read like a push. */
static void inflight_room(struct mwc_proto *p)
{
    size_t oldest = 0;

    if (p->n_inflight < MWC_OUTQ_MAX)
        return;
    for (size_t i = 1; i < p->n_inflight; i++)
        if (p->inflight[i].id < p->inflight[oldest].id)
            oldest = i;
    p->inflight[oldest] = p->inflight[--p->n_inflight];
}

static bool enqueue_inflight(const struct mwc_proto *p)
{
    for (size_t i = 0; i < p->n_inflight; i++)
        if (p->inflight[i].kind == K_ENQUEUE)
            return true;
    return false;
}

/* ---- lifecycle --------------------------------------------------------------- */

struct mwc_proto *mwc_proto_new(const struct mwc_callbacks *cb, void *ud, struct mwc_client *owner,
                                mwc_random_fn rnd, void *rnd_ud, const char *token)
{
    struct mwc_proto *p = mw_calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    if (cb)
        p->cb = *cb;
    p->ud = ud;
    p->owner = owner;
    p->rnd = rnd;
    p->rnd_ud = rnd_ud;
    if (token && *token) {
        p->token = mw_strndup(token, strlen(token));
        if (!p->token) {
            mw_free(p);
            return NULL;
        }
    }
    p->tokens = MWC_BURST;
    mw_buf_init(&p->out, MW_ENVELOPE_MAX_BYTES);
    return p;
}

void mwc_proto_free(struct mwc_proto *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < MWC_MAX_PENDING; i++)
        pending_drop(&p->pending[i]);
    early_clear(p);
    mw_free(p->token);
    mw_buf_release(&p->out);
    mw_free(p);
}

void mwc_proto_silence(struct mwc_proto *p)
{
    memset(&p->cb, 0, sizeof(p->cb));
}

enum mwc_state mwc_proto_state(const struct mwc_proto *p)
{
    return p->state;
}

const char *mwc_proto_token(const struct mwc_proto *p)
{
    return p->token;
}

int mwc_proto_start(struct mwc_proto *p, int64_t now)
{
    if (p->closing || p->stop_reported)
        return MWC_ECLOSED; /* closing, or stopped: nothing would ever go */
    if (p->started)
        return MWC_ESTATE;
    p->started = true;
    p->want_connect = true;
    p->next_attempt = now;
    return 0;
}

/* ---- application requests ---------------------------------------------------- */

static void set_detail(char *detail, size_t cap, const char *msg)
{
    if (detail && cap)
        snprintf(detail, cap, "%s", msg);
}

/* Builds and validates the `data` of an enqueue with the server's decoder
 * (MSG-020..MSG-023); *out is its canonical text (caller frees). */
static int build_enqueue_data(const struct mwc_enqueue *e, const char *key, char **out,
                              char *detail, size_t cap)
{
    cJSON *data = NULL, *attrs = NULL;
    struct mw_enqueue_req req;
    struct mw_parse_error err;
    struct mw_buf b;
    int rc = MWC_EINVAL;

    *out = NULL;
    memset(&req, 0, sizeof(req));
    mw_buf_init(&b, MW_ENVELOPE_MAX_BYTES);
    if (e->attributes_json) {
        if (mw_json_parse(e->attributes_json, strlen(e->attributes_json), 0, &attrs, &err) != 0) {
            set_detail(detail, cap, "attributes: not strict JSON");
            goto out;
        }
    }
    data = cJSON_CreateObject();
    if (!data) {
        rc = MWC_ENOMEM;
        goto out;
    }
    if (e->queue && !cJSON_AddStringToObject(data, "queue", e->queue))
        goto oom;
    if (e->player_id && !cJSON_AddStringToObject(data, "playerId", e->player_id))
        goto oom;
    if (attrs) {
        if (!cJSON_AddItemToObject(data, "attributes", attrs))
            goto oom; /* attrs is still ours */
        attrs = NULL;
    }
    if (!cJSON_AddStringToObject(data, "idempotencyKey", key))
        goto oom;
    if (mw_msg_decode_enqueue_data(data, &req, &err) != 0) {
        set_detail(detail, cap, err.message);
        goto out;
    }
    mw_free(req.attributes_json);
    if (mw_json_write(&b, data) != 0) {
        set_detail(detail, cap, "data cannot be written as JSON");
        goto out;
    }
    *out = b.data;
    b.data = NULL;
    rc = 0;
    goto out;
oom:
    rc = MWC_ENOMEM;
out:
    mw_buf_release(&b);
    cJSON_Delete(attrs);
    cJSON_Delete(data);
    return rc;
}

int mwc_proto_enqueue(struct mwc_proto *p, const struct mwc_enqueue *e, char *detail,
                      size_t detail_cap, int64_t now)
{
    char key[MWC_ID_MAX + 1];
    struct pending *slot = NULL;
    char *data = NULL;
    int rc;

    if (p->closing || p->stop_reported)
        return MWC_ECLOSED; /* closing, or stopped: nothing would ever go */
    if (!e || !e->ref || !*e->ref || strlen(e->ref) > MWC_ID_MAX || pending_find(p, e->ref)) {
        set_detail(detail, detail_cap, "ref: 1 to 64 bytes, not in use");
        return MWC_EINVAL;
    }
    if (e->idempotency_key) {
        if (strlen(e->idempotency_key) > MWC_ID_MAX) {
            set_detail(detail, detail_cap, "idempotencyKey: 1 to 64 bytes (MSG-023)");
            return MWC_EINVAL;
        }
        snprintf(key, sizeof(key), "%s", e->idempotency_key);
    } else {
        unsigned char r[16];
        if (p->rnd(p->rnd_ud, r, sizeof(r)) != 0)
            return MWC_EIO;
        for (size_t i = 0; i < sizeof(r); i++)
            snprintf(key + 2 * i, 3, "%02x", r[i]); /* CLI-010: 128 random bits */
    }
    rc = build_enqueue_data(e, key, &data, detail, detail_cap);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < MWC_MAX_PENDING && !slot; i++)
        if (!p->pending[i].used)
            slot = &p->pending[i];
    if (!slot || live_tickets(p) >= MWC_MAX_TICKETS) {
        mw_free(data);
        set_detail(detail, detail_cap, "too many requests or tickets held");
        return MWC_ELIMIT;
    }
    if (p->open)
        outq_push(p, K_ENQUEUE, e->ref); /* room: one per pending entry */
    slot->used = true;
    copy_id(slot->ref, e->ref);
    slot->data = data;
    (void)now;
    return 0;
}

int mwc_proto_watch(struct mwc_proto *p, const char *ticket_id, int64_t now)
{
    struct ticket *t;

    if (p->closing || p->stop_reported)
        return MWC_ECLOSED; /* closing, or stopped: nothing would ever go */
    if (!ticket_id_valid(ticket_id))
        return MWC_EINVAL;
    if (p->open && outq_app_entries(p) >= MWC_MAX_PENDING)
        return MWC_ELIMIT; /* checked first: a failed call changes nothing */
    t = ticket_get(p, ticket_id, now);
    if (!t)
        return MWC_ELIMIT;
    t->app_watch = true;
    if (p->open)
        return outq_push_ex(p, K_WATCH, ticket_id, true);
    return 0;
}

int mwc_proto_cancel(struct mwc_proto *p, const char *ticket_id, int64_t now)
{
    if (p->closing || p->stop_reported)
        return MWC_ECLOSED; /* closing, or stopped: nothing would ever go */
    if (!ticket_id_valid(ticket_id))
        return MWC_EINVAL;
    (void)now;
    return outq_push_ex(p, K_CANCEL, ticket_id, true); /* kept across reconnects */
}

int mwc_proto_close(struct mwc_proto *p, int64_t now)
{
    if (p->closing || p->stop_reported)
        return MWC_ECLOSED; /* closing, or stopped: nothing would ever go */
    p->closing = true;
    p->want_connect = false;
    (void)now;
    return 0;
}

/* ---- connection events --------------------------------------------------------- */

static void stop(struct mwc_proto *p, int code, int status)
{
    p->want_connect = false;
    p->stop_reported = true;
    set_state(p, MWC_STATE_STOPPED);
    if (p->cb.on_closed)
        p->cb.on_closed(p->owner, code, status, false, p->ud);
}

static void retry(struct mwc_proto *p, int code, int status, int retry_after_s, int64_t now)
{
    int64_t delay;

    if (p->cb.on_closed)
        p->cb.on_closed(p->owner, code, status, true, p->ud);
    p->attempt++;
    delay = backoff_ms(p, p->attempt);
    if (retry_after_s > MWC_RETRY_AFTER_MAX)
        retry_after_s = MWC_RETRY_AFTER_MAX;
    if (retry_after_s > 0 && (int64_t)retry_after_s * 1000 > delay)
        delay = (int64_t)retry_after_s * 1000; /* CLI-046 */
    p->want_connect = true;
    p->next_attempt = now + delay;
    set_state(p, MWC_STATE_BACKOFF);
}

/* Asks the application for a new token; false when it has none. */
static bool refresh_token(struct mwc_proto *p)
{
    char *buf;
    int n;

    if (!p->cb.refresh_token)
        return false;
    buf = mw_malloc(MWC_TOKEN_MAX + 1);
    if (!buf)
        return false;
    buf[0] = '\0';
    n = p->cb.refresh_token(p->owner, buf, MWC_TOKEN_MAX + 1, p->ud);
    if (n <= 0 || n > MWC_TOKEN_MAX || buf[0] == '\0') {
        mw_free(buf);
        return false;
    }
    buf[n] = '\0';
    for (const char *k = buf; *k; k++) {
        if ((unsigned char)*k < 0x20 || *k == 0x7f) {
            mw_free(buf); /* a CR or LF would be header injection: no token */
            return false;
        }
    }
    mw_free(p->token);
    p->token = buf;
    return true;
}

void mwc_proto_on_open(struct mwc_proto *p, int64_t now)
{
    size_t kept = 0;

    MW_ASSERT(!p->open); /* the transport opens one connection at a time */
    p->connecting = false;
    p->open = true;
    p->opened_at = now;
    p->last_rx = now;
    p->ping_at = 0;
    p->last_401 = false;
    p->n_inflight = 0;
    early_clear(p);
    set_state(p, MWC_STATE_OPEN);
    if (p->closing)
        return;
    /* CLI-050: re-watch every live ticket first (the application's own
     * unanswered watches as watches), keep queued cancels, then replay every
     * unanswered enqueue with its key (CLI-011). */
    for (size_t i = 0; i < p->n_outq; i++)
        if (p->outq[i].kind == K_CANCEL)
            p->outq[kept++] = p->outq[i];
    p->n_outq = kept;
    for (size_t i = 0; i < MWC_TICKET_SLOTS; i++) {
        struct ticket *t = &p->tickets[i];
        if (t->used && !tstate_final(t->state))
            outq_push(p, t->app_watch ? K_WATCH : K_REWATCH, t->id);
    }
    for (size_t i = 0; i < MWC_MAX_PENDING; i++) {
        if (p->pending[i].used) {
            p->pending[i].retry_at = 0;
            outq_push(p, K_ENQUEUE, p->pending[i].ref);
        }
    }
}

void mwc_proto_on_closed(struct mwc_proto *p, int code, int64_t now)
{
    size_t kept = 0;

    p->open = false;
    p->connecting = false;
    p->n_inflight = 0;
    p->ping_at = 0;
    early_clear(p);
    for (size_t i = 0; i < p->n_outq; i++)
        if (p->outq[i].kind == K_CANCEL)
            p->outq[kept++] = p->outq[i];
    p->n_outq = kept;
    if (p->closing) {
        stop(p, code, 0);
        return;
    }
    if (now - p->opened_at >= MWC_STABLE_MS)
        p->attempt = 0; /* CLI-047: only a connection that lasted resets */
    switch (code) {
    case 4003: /* token expired (auth.md): a new token, then the normal backoff */
        if (!refresh_token(p)) {
            stop(p, code, 0);
            return;
        }
        break;
    case 1000:
    case 1002:
    case 1003:
    case 1007:
    case 1008:
    case 1009:
    case 1010:
    case 1015: /* CLI-041 */
        stop(p, code, 0);
        return;
    default: /* CLI-040: 1001, 1005, 1006, 1011..1014, 4001, 4002, unknown */
        break;
    }
    retry(p, code, 0, -1, now);
}

void mwc_proto_on_refused(struct mwc_proto *p, int status, int retry_after_s, bool bad_subprotocol,
                          int64_t now)
{
    bool was_401 = p->last_401;

    p->connecting = false;
    p->open = false;
    p->last_401 = false;
    if (p->closing) {
        stop(p, 1000, status);
        return;
    }
    if (bad_subprotocol) { /* CLI-001: a refused handshake, not retried */
        protocol_error(p, "handshake: the server selected another subprotocol than matchwire.v1");
        stop(p, 0, status);
        return;
    }
    if (status == 401) { /* auth.md: one retry with a refreshed token */
        if (was_401 || !refresh_token(p)) {
            stop(p, 0, status);
            return;
        }
        p->last_401 = true;
        retry(p, 0, status, retry_after_s, now); /* CLI-046: any refusal's Retry-After */
        return;
    }
    if (status == 0 || status == 408 || status == 429 || (status >= 500 && status <= 599)) {
        retry(p, 0, status, retry_after_s, now); /* CLI-042 */
        return;
    }
    stop(p, 0, status); /* 400, 403, 404, 426, other 4xx, odd statuses */
}

void mwc_proto_on_pong(struct mwc_proto *p, int64_t now)
{
    p->last_rx = now;
    p->ping_at = 0;
}

void mwc_proto_on_binary(struct mwc_proto *p, int64_t now)
{
    mwc_proto_on_pong(p, now);
    protocol_error(p, "binary message ignored (CLI-026)");
}

/* ---- receiving (CLI-020..CLI-032) ------------------------------------------------- */

/* Member readers: false when absent or of the wrong type (a protocol error). */
static bool get_str(const cJSON *o, const char *k, const char **out)
{
    const cJSON *v = mw_json_get(o, k);

    if (!cJSON_IsString(v) || !v->valuestring || !*v->valuestring)
        return false;
    *out = v->valuestring;
    return true;
}

static bool get_version(const cJSON *o, const char *k, uint64_t *out)
{
    const cJSON *v = mw_json_get(o, k);

    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 9007199254740991.0 ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
        return false;
    *out = (uint64_t)v->valuedouble;
    return true;
}

static bool get_tid(const cJSON *o, const char **out)
{
    return get_str(o, "ticketId", out) && strlen(*out) <= MWC_ID_MAX;
}

static bool parse_tstate(const char *s, enum tstate *out)
{
    for (int i = T_QUEUED; i <= T_EXPIRED; i++) {
        if (strcmp(s, tstate_name((enum tstate)i)) == 0) {
            *out = (enum tstate)i;
            return true;
        }
    }
    return false;
}

static void emit_ended(struct mwc_proto *p, const char *tid, enum tstate s, uint64_t v)
{
    if (p->cb.on_ended)
        p->cb.on_ended(p->owner, tid, tstate_name(s), v, p->ud);
}

static void handle_text(struct mwc_proto *p, const char *buf, size_t len, int64_t now, bool replay);

static void on_enqueued(struct mwc_proto *p, const struct req *rq, const cJSON *d, int64_t now)
{
    const char *tid, *st;
    uint64_t v;
    enum tstate s;
    struct pending *q;
    struct ticket *t;
    bool fresh;

    if (!get_tid(d, &tid) || !get_str(d, "state", &st) || !parse_tstate(st, &s) ||
        !get_version(d, "version", &v)) {
        protocol_error(p, "enqueued: ticketId, state or version missing or invalid");
        return;
    }
    if (!rq || rq->kind != K_ENQUEUE)
        return;
    q = pending_find(p, rq->key);
    if (!q)
        return; /* answered already (a duplicate send) */
    fresh = ticket_find(p, tid) == NULL;
    t = ticket_get(p, tid, now);
    if (!t) {
        protocol_error(p, "enqueued: ticket table full");
        return;
    }
    pending_drop(q);
    if (fresh) {
        t->state = s;
        t->version = v;
        if (tstate_final(s) && s != T_ASSIGNED)
            ticket_end(t, s, v, now);
    } else if (v > t->version && !tstate_final(t->state)) {
        t->state = s;
        t->version = v;
    }
    /* once per ref (its pending entry is gone now), also when the ticket was
     * known already: every accepted enqueue learns its outcome */
    if (p->cb.on_enqueued)
        p->cb.on_enqueued(p->owner, rq->key, tid, st, v, p->ud);
    /* CLI-027: a push that came before this reply */
    for (size_t i = 0; i < MWC_MAX_EARLY; i++) {
        struct early *e = &p->early[i];
        if (e->used && strcmp(e->id, tid) == 0) {
            char *text = e->text;
            size_t n = e->len;
            memset(e, 0, sizeof(*e));
            handle_text(p, text, n, now, true);
            mw_free(text);
        }
    }
}

static void on_watching(struct mwc_proto *p, const struct req *rq, const cJSON *d, int64_t now)
{
    const char *tid, *st;
    uint64_t v;
    enum tstate s;
    struct ticket *t;

    if (!get_tid(d, &tid) || !get_str(d, "state", &st) || !parse_tstate(st, &s) ||
        !get_version(d, "version", &v)) {
        protocol_error(p, "watching: ticketId, state or version missing or invalid");
        return;
    }
    t = ticket_find(p, tid);
    if (!t)
        return;
    if (rq && rq->kind == K_WATCH)
        t->app_watch = false;
    if (v > t->version && !tstate_final(t->state)) {
        if (s == T_CANCELLED || s == T_EXPIRED) { /* CLI-052 */
            ticket_end(t, s, v, now);
            emit_ended(p, tid, s, v);
        } else if (s == T_QUEUED) {
            t->version = v;
        } /* assigned: the match.assigned that follows is applied (MSG-041) */
    }
    if (rq && rq->kind == K_WATCH && p->cb.on_watching)
        p->cb.on_watching(p->owner, tid, st, v, p->ud);
}

static void on_cancelled(struct mwc_proto *p, const cJSON *d, int64_t now)
{
    const char *tid;
    uint64_t v;
    struct ticket *t;

    if (!get_tid(d, &tid) || !get_version(d, "version", &v)) {
        protocol_error(p, "cancelled: ticketId or version missing or invalid");
        return;
    }
    t = ticket_find(p, tid);
    if (!t || v <= t->version || tstate_final(t->state))
        return;
    ticket_end(t, T_CANCELLED, v, now);
    emit_ended(p, tid, T_CANCELLED, v);
}

static void hold_early(struct mwc_proto *p, const char *tid, const char *buf, size_t len)
{
    for (size_t i = 0; i < MWC_MAX_EARLY; i++) {
        struct early *e = &p->early[i];
        if (e->used)
            continue;
        e->text = mw_strndup(buf, len);
        if (!e->text)
            break;
        e->used = true;
        e->len = len;
        copy_id(e->id, tid);
        return;
    }
    protocol_error(p, "match.assigned before its reply: no room to hold it");
}

static void on_assigned(struct mwc_proto *p, const cJSON *d, const char *buf, size_t len,
                        int64_t now)
{
    const char *tid, *mid, *conn, *at = NULL;
    const cJSON *a, *atv;
    uint64_t v;
    struct ticket *t;
    struct mw_buf aj;

    a = mw_json_get(d, "assignment");
    if (!get_tid(d, &tid) || !get_version(d, "version", &v) || !cJSON_IsObject(a) ||
        !get_str(a, "matchId", &mid) || !get_str(a, "connection", &conn)) {
        protocol_error(p, "match.assigned: ticketId, version or assignment missing or invalid");
        return;
    }
    atv = mw_json_get(a, "assignedAt"); /* CLI-029: any form, never a reason to drop */
    if (cJSON_IsString(atv))
        at = atv->valuestring;
    t = ticket_find(p, tid);
    if (!t) {
        if (enqueue_inflight(p))
            hold_early(p, tid, buf, len); /* CLI-027 */
        return;
    }
    if (t->applied)
        return; /* CLI-030: applied already, on this or another connection; and
                 * assigned is final (MSG-070, CLI-031): a higher version too */
    if ((t->state == T_CANCELLED || t->state == T_EXPIRED) && t->version >= v)
        return; /* CLI-031 */
    mw_buf_init(&aj, MW_ENVELOPE_MAX_BYTES);
    if (mw_json_write(&aj, a) != 0) {
        mw_buf_release(&aj);
        protocol_error(p, "match.assigned: assignment cannot be rewritten");
        return;
    }
    t->applied = v;
    t->state = T_ASSIGNED;
    if (v > t->version)
        t->version = v;
    t->app_watch = false;
    if (!t->ended_at)
        t->ended_at = now ? now : 1;
    if (p->cb.on_assigned) {
        struct mwc_assignment as = {
            .ticket_id = tid,
            .version = v,
            .match_id = mid,
            .connection = conn,
            .assigned_at = at,
            .assignment_json = aj.data,
        };
        p->cb.on_assigned(p->owner, &as, p->ud);
    }
    mw_buf_release(&aj);
}

static void on_ticket_ended(struct mwc_proto *p, const cJSON *d, enum tstate s, int64_t now)
{
    const char *tid;
    uint64_t v;
    struct ticket *t;

    if (!get_tid(d, &tid) || !get_version(d, "version", &v)) {
        protocol_error(p, "ticket.%s: ticketId or version missing or invalid", tstate_name(s));
        return;
    }
    t = ticket_find(p, tid);
    if (!t || t->version >= v || tstate_final(t->state))
        return; /* CLI-031: never go back */
    ticket_end(t, s, v, now);
    emit_ended(p, tid, s, v);
}

static void on_error(struct mwc_proto *p, const struct req *rq, const cJSON *d, int64_t now)
{
    const cJSON *codev = mw_json_get(d, "code"), *rv = mw_json_get(d, "retryable");
    const cJSON *mv = mw_json_get(d, "message");
    const char *code;
    bool retryable;
    struct mwc_error e = {0};

    if (!cJSON_IsString(codev) || !codev->valuestring || !cJSON_IsBool(rv)) {
        protocol_error(p, "error: code or retryable missing or invalid");
        return;
    }
    code = codev->valuestring; /* CLI-024: any code, handled by retryable */
    retryable = cJSON_IsTrue(rv);
    if (!rq)
        return;
    e.code = code;
    e.retryable = retryable;
    e.message = cJSON_IsString(mv) ? mv->valuestring : NULL;
    if (rq->kind == K_REWATCH && strcmp(code, "not_found") == 0) {
        struct ticket *t = ticket_find(p, rq->key);
        /* CLI-051: gone; never watched again, never enqueued again by us. A
         * ticket that reached a final state meanwhile (its push came before
         * this answer) is not lost: its outcome was reported, and forgetting
         * it would forget the applied assignment too (CLI-030). */
        if (t && !tstate_final(t->state)) {
            memset(t, 0, sizeof(*t));
            if (p->cb.on_lost)
                p->cb.on_lost(p->owner, rq->key, p->ud);
        }
        return;
    }
    if (rq->kind == K_ENQUEUE) {
        struct pending *q = pending_find(p, rq->key);
        if (!q)
            return;
        if (strcmp(code, "rate_limited") == 0)
            p->paused_until = now + MWC_RATE_LIMITED_MS; /* CLI-061 */
        if (retryable && q->retries < MWC_MAX_RETRIES) { /* CLI-012 */
            int64_t delay = backoff_ms(p, 1);
            if (strcmp(code, "rate_limited") == 0 && delay < MWC_RATE_LIMITED_MS)
                delay = MWC_RATE_LIMITED_MS;
            q->retries++;
            q->retry_at = now + delay;
            return;
        }
        pending_drop(q); /* CLI-025: reported, never resent */
        e.ref = rq->key;
    } else {
        struct ticket *t = ticket_find(p, rq->key);
        if (rq->kind == K_WATCH && t && strcmp(code, "not_found") == 0 && !tstate_final(t->state))
            memset(t, 0, sizeof(*t)); /* the application's watch: nothing to hold */
        else if (t && rq->kind == K_WATCH)
            t->app_watch = false;
        e.ticket_id = rq->key;
    }
    if (p->cb.on_error)
        p->cb.on_error(p->owner, &e, p->ud);
}

static void handle_text(struct mwc_proto *p, const char *buf, size_t len, int64_t now, bool replay)
{
    struct mw_envelope env;
    struct mw_parse_error err;
    struct req rq, *rqp = NULL;
    int rc;

    memset(&env, 0, sizeof(env));
    rc = mw_envelope_parse(buf, len, &env, &err);
    if (rc != 0) { /* CLI-020: not acted on, reported, nothing sent back */
        protocol_error(p, "malformed message ignored: %s: %s", mw_code_name(err.code), err.message);
        return;
    }
    if (env.v != 1) /* CLI-023: a version we do not know is not read */
        goto out;
    if (env.has_id && !replay && inflight_take(p, env.id, &rq))
        rqp = &rq;
    if (strcmp(env.type, "enqueued") == 0)
        on_enqueued(p, rqp, env.data, now);
    else if (strcmp(env.type, "watching") == 0)
        on_watching(p, rqp, env.data, now);
    else if (strcmp(env.type, "cancelled") == 0)
        on_cancelled(p, env.data, now);
    else if (strcmp(env.type, "match.assigned") == 0)
        on_assigned(p, env.data, buf, len, now);
    else if (strcmp(env.type, "ticket.expired") == 0)
        on_ticket_ended(p, env.data, T_EXPIRED, now);
    else if (strcmp(env.type, "ticket.cancelled") == 0)
        on_ticket_ended(p, env.data, T_CANCELLED, now);
    else if (strcmp(env.type, "error") == 0)
        on_error(p, rqp, env.data, now);
    if (rqp && rqp->kind == K_ENQUEUE && !enqueue_inflight(p))
        early_clear(p); /* no reply left to claim what is held */
    /* pong: only its id mattered; other types: ignored (CLI-022) */
out:
    mw_envelope_clear(&env);
}

void mwc_proto_on_text(struct mwc_proto *p, const char *buf, size_t len, int64_t now)
{
    mwc_proto_on_pong(p, now);
    handle_text(p, buf, len, now, false);
}

/* ---- timers and sending ------------------------------------------------------------ */

enum mwc_action mwc_proto_tick(struct mwc_proto *p, int64_t now)
{
    if (p->closing) {
        if (p->open || p->connecting) {
            if (p->close_sent)
                return MWC_ACT_NONE;
            p->close_sent = true;
            return MWC_ACT_CLOSE;
        }
        if (!p->stop_reported)
            stop(p, 1000, 0);
        return MWC_ACT_NONE;
    }
    if (p->want_connect && !p->open && !p->connecting && now >= p->next_attempt) {
        p->want_connect = false;
        p->connecting = true;
        set_state(p, MWC_STATE_CONNECTING);
        return MWC_ACT_CONNECT;
    }
    if (p->open) {
        if (p->ping_at && now - p->ping_at >= MWC_PING_TIMEOUT_MS) {
            p->ping_at = 0;
            p->last_rx = now;
            return MWC_ACT_DROP; /* CLI-071: dead; the transport reports 1006 */
        }
        if (!p->ping_at && now - p->last_rx >= MWC_IDLE_PING_MS) {
            p->ping_at = now;
            return MWC_ACT_PING;
        }
        for (size_t i = 0; i < MWC_MAX_PENDING; i++) {
            struct pending *q = &p->pending[i];
            if (q->used && q->retry_at && now >= q->retry_at) {
                q->retry_at = 0;
                outq_push(p, K_ENQUEUE, q->ref);
            }
        }
    }
    /* ended tickets past retention are forgotten */
    for (size_t i = 0; i < MWC_TICKET_SLOTS; i++) {
        struct ticket *t = &p->tickets[i];
        if (t->used && t->ended_at && now - t->ended_at >= MWC_RETENTION_MS)
            memset(t, 0, sizeof(*t));
    }
    return MWC_ACT_NONE;
}

static void refill(struct mwc_proto *p, int64_t now)
{
    if (now > p->tokens_t) {
        p->tokens += (double)(now - p->tokens_t) * MWC_RATE_PER_S / 1000.0;
        if (p->tokens > MWC_BURST)
            p->tokens = MWC_BURST;
    }
    p->tokens_t = now;
}

/* Writes one request envelope into p->out; false when it has nothing left to
 * say (a request overtaken by events). */
static bool build_request(struct mwc_proto *p, struct req *r)
{
    const char *type;
    struct pending *q = NULL;
    struct ticket *t;
    int rc;

    mw_buf_reset(&p->out);
    switch (r->kind) {
    case K_ENQUEUE:
        q = pending_find(p, r->key);
        if (!q)
            return false;
        type = "enqueue";
        break;
    case K_WATCH: /* the application's, unless the ticket ended since (CLI-032):
                   * ticket_end() took the watch back, its outcome was reported;
                   * or it was forgotten since (retention over, lost) */
        t = ticket_find(p, r->key);
        if (!t || (!t->app_watch && tstate_final(t->state)))
            return false;
        type = "watch";
        break;
    case K_REWATCH: /* CLI-032: a ticket that ended is not watched again */
        t = ticket_find(p, r->key);
        if (!t || tstate_final(t->state))
            return false;
        type = "watch";
        break;
    case K_CANCEL:
        type = "cancel";
        break;
    default:
        return false;
    }
    r->id = ++p->seq;
    rc = mw_buf_printf(&p->out, "{\"type\":\"%s\",\"v\":1,\"id\":\"r%llu\",\"data\":", type,
                       (unsigned long long)r->id);
    if (rc == 0 && q)
        rc = mw_buf_puts(&p->out, q->data);
    else if (rc == 0) {
        rc = mw_buf_puts(&p->out, "{\"ticketId\":");
        if (rc == 0)
            rc = mw_json_write_string(&p->out, r->key, strlen(r->key));
        if (rc == 0)
            rc = mw_buf_puts(&p->out, "}");
    }
    if (rc == 0)
        rc = mw_buf_puts(&p->out, "}");
    return rc == 0;
}

bool mwc_proto_next_send(struct mwc_proto *p, int64_t now, const char **buf, size_t *len)
{
    while (p->open && !p->closing && p->n_outq > 0) {
        struct req r;

        if (now < p->paused_until)
            return false;
        refill(p, now);
        if (p->tokens < 1.0)
            return false;
        r = p->outq[0];
        memmove(&p->outq[0], &p->outq[1], (p->n_outq - 1) * sizeof(p->outq[0]));
        p->n_outq--;
        if (!build_request(p, &r))
            continue;
        inflight_room(p);
        MW_ASSERT(p->n_inflight < MWC_OUTQ_MAX);
        p->inflight[p->n_inflight++] = r;
        p->tokens -= 1.0;
        *buf = p->out.data;
        *len = p->out.len;
        return true;
    }
    return false;
}

bool mwc_proto_send_ready(const struct mwc_proto *p, int64_t now)
{
    double tokens = p->tokens;

    if (!p->open || p->closing || p->n_outq == 0 || now < p->paused_until)
        return false;
    if (now > p->tokens_t)
        tokens += (double)(now - p->tokens_t) * MWC_RATE_PER_S / 1000.0;
    return tokens >= 1.0;
}

int64_t mwc_proto_wait_ms(const struct mwc_proto *p, int64_t now)
{
    int64_t w = MWC_CAP_MS * 10, d;

    if (p->closing)
        return 0;
    if (p->want_connect && !p->open && !p->connecting) {
        d = p->next_attempt - now;
        if (d < w)
            w = d;
    }
    if (p->open) {
        d = p->ping_at ? p->ping_at + MWC_PING_TIMEOUT_MS - now
                       : p->last_rx + MWC_IDLE_PING_MS - now;
        if (d < w)
            w = d;
        for (size_t i = 0; i < MWC_MAX_PENDING; i++) {
            if (p->pending[i].used && p->pending[i].retry_at) {
                d = p->pending[i].retry_at - now;
                if (d < w)
                    w = d;
            }
        }
        if (p->n_outq > 0) {
            d = p->paused_until - now;
            if (p->tokens < 1.0) {
                int64_t r = (int64_t)((1.0 - p->tokens) * 1000.0 / MWC_RATE_PER_S) + 1;
                if (r > d)
                    d = r;
            }
            if (d < w)
                w = d;
        }
    }
    return w < 0 ? 0 : w;
}
