/* fuzz_mwc_proto: the C client's protocol state machine
 * (clients/c/src/mwc_proto.c) driven by a program of events.
 *
 * The harness plays both the transport (it obeys the tick actions and
 * reports opens, server text messages from templates or raw from the
 * input, binary messages, pongs, closes with any code, refusals with any
 * status and Retry-After) and the application (enqueue, watch, cancel and
 * close, with valid and invalid arguments, also from inside callbacks), on
 * a fake clock. Server replies name the ids of requests it saw sent, or
 * made-up ones; tickets come from a small pool so they collide. Checked:
 *   - nothing is sent unless a connection is open; every message sent is a
 *     valid v1 envelope (enqueue/watch/cancel, id "r<n>" strictly rising),
 *     an enqueue keeps its idempotencyKey across every resend (CLI-011);
 *   - pacing: no more than 20 + 10/s sends in any window (CLI-060), none
 *     within 1 s of a rate_limited reply to an enqueue (CLI-061);
 *   - on_assigned at most once per ticket while it is remembered (600 s
 *     after it ended, CLI-030), never with a version below an earlier one;
 *     on_enqueued at most once per accepted enqueue, on_error for a ref
 *     only while it is unanswered; a ticket reported ended or lost is
 *     never re-watched unless the application asks (CLI-032);
 *   - backoff: after on_closed(reconnect) the next attempt is due in
 *     [250 ms, 10 s], or at the Retry-After (capped at 60 s) when later;
 *     no attempt is started before it; after a stop never again;
 *   - on_state reports the state mwc_proto_state() then gives, each a
 *     change; wait_ms is never negative;
 *   - after mwc_proto_silence() (what mwc_free() inside a callback does)
 *     no callback fires; teardown leaks nothing (ASan). */
#include "fuzz_common.h"

#include "envelope.h"
#include "mwc_proto.h"

#define MAX_OPS   400
#define NTICKETS  6
#define NREFS     8
#define MAX_SENT  512
#define T_START   1000000
#define TRACE_ENV "FUZZ_MWC_TRACE"

struct sent {
    uint64_t id;
    int conn;      /* the connection it went on (replies on another are not its) */
    bool answered; /* a v1 reply with its id came (the client forgets it then) */
    char type[MW_TYPE_MAX + 1];
    char key[MWC_ID_MAX + 1]; /* ticketId, or the enqueue's ref (found by its key) */
};

struct world {
    const uint8_t *in;
    size_t n, pos;
    struct mwc_proto *p;
    uint64_t rng_state[2];
    int64_t now;
    bool trace;

    /* transport */
    bool connecting, open, stopped;
    int64_t earliest_attempt; /* no CONNECT before this (backoff) */
    int64_t paused_until;     /* CLI-061 */
    uint64_t last_id;
    struct sent sent[MAX_SENT];
    size_t n_sent;
    int64_t send_times[64];
    size_t n_send_times;
    int attempts, closes;
    int conn; /* connections opened so far */

    /* application */
    bool silenced;
    int reenter; /* calls to make from inside callbacks */
    bool in_cb;
    bool refs_pending[NREFS]; /* an accepted enqueue not answered yet */
    char keys[NREFS][MWC_ID_MAX + 1];
    int64_t assigned_at[NTICKETS]; /* 0: never assigned (or forgotten) */
    uint64_t assigned_v[NTICKETS];
    bool no_rewatch[NTICKETS]; /* ended/lost and not watched by the app since */
    enum mwc_state last_state;
    bool closing;
    bool capture; /* record the random bytes of the enqueue being made */
    unsigned char captured[16];
    bool captured_ok;
};

static struct world W;

static const char *const TICKETS[NTICKETS] = {"tk-0", "tk-1", "tk-2", "tk-3", "tk-4", "tk-5"};

static unsigned take(unsigned mod)
{
    unsigned v;

    if (W.pos >= W.n)
        return 0;
    v = W.in[W.pos++];
    return mod ? v % mod : v;
}

static int ticket_index(const char *tid)
{
    for (int i = 0; i < NTICKETS; i++)
        if (strcmp(tid, TICKETS[i]) == 0)
            return i;
    return -1;
}

static int ref_index(const char *ref)
{
    if (ref && ref[0] == 'q' && ref[1] >= '0' && ref[1] < '0' + NREFS && ref[2] == '\0')
        return ref[1] - '0';
    return -1;
}

/* ---- the application: callbacks ---------------------------------------------- */

static void app_call(void);

static void cb_enter(const char *what)
{
    FUZZ_CHECK_MSG(!W.silenced, "callback %s after mwc_proto_silence()", what);
    if (W.trace)
        fprintf(stderr, "  cb %s\n", what);
}

static void cb_leave(void)
{
    if (W.reenter > 0 && !W.in_cb) {
        W.reenter--;
        W.in_cb = true;
        app_call(); /* an mwc_* call from inside a callback */
        W.in_cb = false;
    }
}

static void cb_state(struct mwc_client *c, enum mwc_state s, void *ud)
{
    (void)c;
    (void)ud;
    cb_enter("state");
    FUZZ_CHECK(s != W.last_state);
    FUZZ_CHECK(s == mwc_proto_state(W.p));
    W.last_state = s;
    cb_leave();
}

static void cb_enqueued(struct mwc_client *c, const char *ref, const char *tid, const char *state,
                        uint64_t v, void *ud)
{
    int r = ref_index(ref);

    (void)c;
    (void)ud;
    cb_enter("enqueued");
    FUZZ_CHECK_MSG(r >= 0 && W.refs_pending[r], "on_enqueued for %s, not pending", ref);
    FUZZ_CHECK(tid && *tid && strlen(tid) <= MWC_ID_MAX && state && v >= 1);
    W.refs_pending[r] = false;
    /* a queued ticket the client holds (again: an id the server reused after
     * the client forgot it) is re-watched after a reconnect, rightly */
    if (ticket_index(tid) >= 0 && strcmp(state, "queued") == 0)
        W.no_rewatch[ticket_index(tid)] = false;
    cb_leave();
}

static void cb_assigned(struct mwc_client *c, const struct mwc_assignment *a, void *ud)
{
    int t = ticket_index(a->ticket_id);

    (void)c;
    (void)ud;
    cb_enter("assigned");
    FUZZ_CHECK(a->match_id && *a->match_id && a->connection && *a->connection &&
               a->assignment_json && a->assignment_json[0] == '{' && a->version >= 1);
    if (t >= 0) {
        FUZZ_CHECK_MSG(W.assigned_at[t] == 0 || W.now - W.assigned_at[t] >= MWC_RETENTION_MS,
                       "second on_assigned for %s (v%llu, first v%llu) within retention",
                       a->ticket_id, (unsigned long long)a->version,
                       (unsigned long long)W.assigned_v[t]);
        FUZZ_CHECK(a->version >= W.assigned_v[t] || W.now - W.assigned_at[t] >= MWC_RETENTION_MS);
        W.assigned_at[t] = W.now;
        W.assigned_v[t] = a->version;
        W.no_rewatch[t] = true;
    }
    cb_leave();
}

static void cb_ended(struct mwc_client *c, const char *tid, const char *state, uint64_t v, void *ud)
{
    int t = ticket_index(tid);

    (void)c;
    (void)ud;
    cb_enter("ended");
    FUZZ_CHECK(strcmp(state, "cancelled") == 0 || strcmp(state, "expired") == 0);
    FUZZ_CHECK(v >= 1);
    if (t >= 0)
        W.no_rewatch[t] = true;
    cb_leave();
}

static void cb_lost(struct mwc_client *c, const char *tid, void *ud)
{
    int t = ticket_index(tid);

    (void)c;
    (void)ud;
    cb_enter("lost");
    if (t >= 0)
        W.no_rewatch[t] = true;
    cb_leave();
}

static void cb_watching(struct mwc_client *c, const char *tid, const char *state, uint64_t v,
                        void *ud)
{
    (void)c;
    (void)ud;
    (void)state;
    cb_enter("watching");
    FUZZ_CHECK(tid && *tid && v >= 1);
    cb_leave();
}

static void cb_error(struct mwc_client *c, const struct mwc_error *e, void *ud)
{
    (void)c;
    (void)ud;
    cb_enter("error");
    FUZZ_CHECK(e->code && (e->ref != NULL) != (e->ticket_id != NULL));
    if (e->ref) {
        int r = ref_index(e->ref);
        FUZZ_CHECK_MSG(r >= 0 && W.refs_pending[r], "on_error for ref %s, not pending", e->ref);
        W.refs_pending[r] = false;
    }
    cb_leave();
}

static void cb_closed(struct mwc_client *c, int code, int status, bool reconnect, void *ud)
{
    (void)c;
    (void)ud;
    (void)status;
    cb_enter("closed");
    W.closes++;
    FUZZ_CHECK_MSG(W.closes <= W.attempts + 1, "%d on_closed for %d attempts", W.closes,
                   W.attempts);
    FUZZ_CHECK(!W.stopped);
    if (!reconnect) {
        W.stopped = true;
        FUZZ_CHECK(mwc_proto_state(W.p) == MWC_STATE_STOPPED);
    }
    (void)code;
    cb_leave();
}

static void cb_perr(struct mwc_client *c, const char *detail, void *ud)
{
    (void)c;
    (void)ud;
    cb_enter("protocol_error");
    FUZZ_CHECK(detail && *detail);
    cb_leave();
}

static int cb_refresh(struct mwc_client *c, char *out, size_t cap, void *ud)
{
    unsigned k = take(4);

    (void)c;
    (void)ud;
    cb_enter("refresh_token");
    FUZZ_CHECK(cap == MWC_TOKEN_MAX + 1);
    if (k == 0)
        return -1;
    if (k == 1)
        return 0;
    if (k == 2) { /* a long one, exactly at the bound */
        memset(out, 't', MWC_TOKEN_MAX);
        out[MWC_TOKEN_MAX] = '\0';
        return MWC_TOKEN_MAX;
    }
    snprintf(out, cap, take(8) ? "tok-%u" : "tok-%u\r\nX-Injected: 1", take(0));
    return (int)strlen(out);
}

static const struct mwc_callbacks CALLBACKS = {
    .on_state = cb_state,
    .on_enqueued = cb_enqueued,
    .on_assigned = cb_assigned,
    .on_ended = cb_ended,
    .on_lost = cb_lost,
    .on_watching = cb_watching,
    .on_error = cb_error,
    .on_closed = cb_closed,
    .on_protocol_error = cb_perr,
    .refresh_token = cb_refresh,
};

/* ---- the application: calls ------------------------------------------------------ */

static void do_enqueue(void)
{
    static const char *const queues[] = {"ranked", "duel", "", "Bad Queue!"};
    static const char *const attrs[] = {NULL,  "{\"region\":\"eu\"}", "{\"a\":[1,2,{\"b\":null}]}",
                                        "[1]", "{\"x\":01}",          "{}"};
    unsigned r = take(NREFS + 1), q = take(4), a = take(6), k = take(4);
    char ref[8], key[80], detail[128];
    struct mwc_enqueue e = {0};
    int rc;

    if (r < NREFS)
        snprintf(ref, sizeof(ref), "q%u", r);
    else
        ref[0] = '\0'; /* not a ref */
    e.ref = ref;
    e.queue = queues[q];
    e.player_id = take(8) ? "alice" : NULL;
    e.attributes_json = attrs[a];
    if (k == 1) {
        snprintf(key, sizeof(key), "key-%s-%u", ref, take(0));
        e.idempotency_key = key;
    } else if (k == 2) {
        memset(key, 'k', 65);
        key[65] = '\0';
        e.idempotency_key = key; /* over the bound */
    }
    W.capture = true;
    W.captured_ok = false;
    rc = mwc_proto_enqueue(W.p, &e, detail, sizeof(detail), W.now);
    W.capture = false;
    FUZZ_CHECK(rc == 0 || rc == MWC_EINVAL || rc == MWC_ELIMIT || rc == MWC_ECLOSED);
    if (W.trace)
        fprintf(stderr, "  app enqueue %s -> %d\n", ref, rc);
    if (rc == 0) {
        int i = ref_index(ref);
        /* a ref is free again once its outcome was reported (on_enqueued or
         * on_error): an accepted enqueue whose outcome never came would
         * show here (unless callbacks were silenced) */
        FUZZ_CHECK_MSG(i >= 0 && (W.silenced || !W.refs_pending[i]) && !W.closing,
                       "enqueue %s accepted while its earlier one was never answered", ref);
        W.refs_pending[i] = true;
        if (e.idempotency_key) {
            snprintf(W.keys[i], sizeof(W.keys[i]), "%s", e.idempotency_key);
        } else { /* CLI-010: 32 hex digits of the random bytes it drew */
            FUZZ_CHECK(W.captured_ok);
            for (size_t b = 0; b < 16; b++)
                snprintf(W.keys[i] + 2 * b, 3, "%02x", W.captured[b]);
        }
    }
}

static const char *pick_ticket(void)
{
    unsigned t = take(NTICKETS + 2);

    if (t < NTICKETS)
        return TICKETS[t];
    return t == NTICKETS ? "not a ticket id!" : "";
}

static void app_call(void)
{
    const char *tid;
    int rc;

    switch (take(5)) {
    case 0:
        do_enqueue();
        break;
    case 1:
        tid = pick_ticket();
        rc = mwc_proto_watch(W.p, tid, W.now);
        FUZZ_CHECK(rc == 0 || rc == MWC_EINVAL || rc == MWC_ELIMIT || rc == MWC_ECLOSED);
        if (rc == 0 && ticket_index(tid) >= 0)
            W.no_rewatch[ticket_index(tid)] = false;
        if (W.trace)
            fprintf(stderr, "  app watch %s -> %d\n", tid, rc);
        break;
    case 2:
        tid = pick_ticket();
        rc = mwc_proto_cancel(W.p, tid, W.now);
        FUZZ_CHECK(rc == 0 || rc == MWC_EINVAL || rc == MWC_ELIMIT || rc == MWC_ECLOSED);
        if (W.trace)
            fprintf(stderr, "  app cancel %s -> %d\n", tid, rc);
        break;
    case 3:
        rc = mwc_proto_close(W.p, W.now);
        FUZZ_CHECK(rc == 0 || rc == MWC_ECLOSED);
        FUZZ_CHECK(rc == 0 || W.closing || W.silenced || mwc_proto_state(W.p) == MWC_STATE_STOPPED);
        W.closing = true;
        if (W.trace)
            fprintf(stderr, "  app close -> %d\n", rc);
        break;
    default:
        rc = mwc_proto_start(W.p, W.now);
        FUZZ_CHECK(rc == 0 || rc == MWC_ESTATE || rc == MWC_ECLOSED);
        break;
    }
}

/* ---- the transport ------------------------------------------------------------------ */

static void backoff_check(bool reconnect_expected, int retry_after)
{
    int64_t w;

    if (!reconnect_expected || W.stopped || W.closing || W.silenced)
        return;
    w = mwc_proto_wait_ms(W.p, W.now);
    if (mwc_proto_state(W.p) != MWC_STATE_BACKOFF)
        return;
    if (retry_after > MWC_RETRY_AFTER_MAX)
        retry_after = MWC_RETRY_AFTER_MAX;
    FUZZ_CHECK_MSG(w >= MWC_FLOOR_MS, "backoff %lld ms below the floor", (long long)w);
    if (retry_after > 0 && (int64_t)retry_after * 1000 > MWC_CAP_MS)
        FUZZ_CHECK_MSG(w == (int64_t)retry_after * 1000, "backoff %lld ms, Retry-After %d s",
                       (long long)w, retry_after);
    else
        FUZZ_CHECK_MSG(w <= MWC_CAP_MS && (retry_after <= 0 || w >= retry_after * 1000),
                       "backoff %lld ms (Retry-After %d)", (long long)w, retry_after);
    W.earliest_attempt = W.now + w;
}

static void report_closed(int code)
{
    int closes = W.closes;

    W.open = false;
    W.connecting = false;
    if (W.trace)
        fprintf(stderr, "  transport: closed %d\n", code);
    mwc_proto_on_closed(W.p, code, W.now);
    if (W.closes > closes)
        backoff_check(true, -1);
}

static void report_refused(int status, int ra, bool badsub)
{
    int closes = W.closes;

    W.open = false;
    W.connecting = false;
    if (W.trace)
        fprintf(stderr, "  transport: refused %d ra %d badsub %d\n", status, ra, badsub);
    mwc_proto_on_refused(W.p, status, ra, badsub, W.now);
    if (W.closes > closes)
        backoff_check(true, ra);
}

static void do_tick(void)
{
    enum mwc_action act;
    int guard = 0;

    while ((act = mwc_proto_tick(W.p, W.now)) != MWC_ACT_NONE) {
        FUZZ_CHECK_MSG(++guard < 16, "tick keeps returning actions");
        if (W.trace)
            fprintf(stderr, "  tick -> action %d\n", (int)act);
        switch (act) {
        case MWC_ACT_CONNECT:
            FUZZ_CHECK(!W.open && !W.connecting);
            FUZZ_CHECK_MSG(!W.stopped, "an attempt after a stop");
            FUZZ_CHECK_MSG(W.now >= W.earliest_attempt, "attempt %lld ms early",
                           (long long)(W.earliest_attempt - W.now));
            W.connecting = true;
            W.attempts++;
            { /* the handshake's token: never a control byte (header injection) */
                const char *tok = mwc_proto_token(W.p);
                for (; tok && *tok; tok++)
                    FUZZ_CHECK((unsigned char)*tok >= 0x20 && *tok != 0x7f);
            }
            break;
        case MWC_ACT_PING:
            FUZZ_CHECK(W.open);
            break;
        case MWC_ACT_DROP:
            FUZZ_CHECK(W.open);
            report_closed(1006);
            break;
        case MWC_ACT_CLOSE:
            FUZZ_CHECK(W.open || W.connecting);
            if (W.open)
                report_closed(take(2) ? 1000 : 1006); /* the server's answer, or none */
            else
                report_refused(0, -1, false);
            break;
        default:
            FUZZ_CHECK_MSG(false, "unknown action %d", (int)act);
        }
    }
    FUZZ_CHECK(mwc_proto_wait_ms(W.p, W.now) >= 0);
}

/* A sent message: parse it back and check it. */
static void check_sent(const char *buf, size_t len)
{
    struct mw_envelope env;
    struct mw_parse_error err;
    const cJSON *d;
    unsigned long long id;
    struct sent *s;
    char *copy = fuzz_dup_exact((const uint8_t *)buf, len);

    memset(&env, 0, sizeof(env));
    FUZZ_CHECK_MSG(mw_envelope_parse(copy, len, &env, &err) == 0, "sent an invalid envelope: %s",
                   err.message);
    FUZZ_CHECK(env.v == 1 && env.has_id && len <= MW_ENVELOPE_MAX_BYTES);
    FUZZ_CHECK(sscanf(env.id, "r%llu", &id) == 1 && id > W.last_id);
    W.last_id = id;
    d = env.data;
    s = &W.sent[W.n_sent % MAX_SENT];
    W.n_sent++;
    memset(s, 0, sizeof(*s));
    s->id = id;
    s->conn = W.conn;
    snprintf(s->type, sizeof(s->type), "%s", env.type);
    if (strcmp(env.type, "enqueue") == 0) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(d, "idempotencyKey");
        int found = -1;
        FUZZ_CHECK(cJSON_IsString(k));
        /* CLI-011: every send of an enqueue carries the key it got when the
         * application made it (keys are unique per ref in this harness) */
        for (int i = 0; i < NREFS; i++)
            if (W.refs_pending[i] && strcmp(W.keys[i], k->valuestring) == 0)
                found = i;
        FUZZ_CHECK_MSG(found >= 0, "an enqueue sent with key %s: no pending ref has it",
                       k->valuestring);
        snprintf(s->key, sizeof(s->key), "q%d", found);
    } else {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "ticketId");
        FUZZ_CHECK(strcmp(env.type, "watch") == 0 || strcmp(env.type, "cancel") == 0);
        FUZZ_CHECK(cJSON_IsString(t));
        snprintf(s->key, sizeof(s->key), "%s", t->valuestring);
        if (!W.silenced && strcmp(env.type, "watch") == 0 && ticket_index(t->valuestring) >= 0)
            FUZZ_CHECK_MSG(!W.no_rewatch[ticket_index(t->valuestring)],
                           "watch sent for %s, which ended or was lost", t->valuestring);
    }
    mw_envelope_clear(&env);
    free(copy);
}

static void do_drain(void)
{
    const char *buf;
    size_t len;
    int guard = 0;

    while (mwc_proto_next_send(W.p, W.now, &buf, &len)) {
        FUZZ_CHECK_MSG(W.open, "a send with no open connection");
        FUZZ_CHECK_MSG(W.now >= W.paused_until, "a send within 1 s of rate_limited");
        FUZZ_CHECK(++guard <= MWC_BURST + 1);
        /* pacing (CLI-060): against every earlier send kept */
        for (size_t i = 0; i < W.n_send_times && i < 64; i++) {
            int64_t t0 = W.send_times[(W.n_send_times - 1 - i) % 64];
            size_t count = i + 2; /* sends in [t0, now] */
            FUZZ_CHECK_MSG((double)count <=
                               MWC_BURST + (double)(W.now - t0) * MWC_RATE_PER_S / 1000.0 + 1e-6,
                           "%zu sends in %lld ms", count, (long long)(W.now - t0));
        }
        W.send_times[W.n_send_times % 64] = W.now;
        W.n_send_times++;
        if (W.trace)
            fprintf(stderr, "  sent %.*s\n", (int)len, buf);
        check_sent(buf, len);
    }
}

/* Picks an id for a reply: one the client sent (recently), or made up. */
static void pick_id(char *out, size_t cap, struct sent **which)
{
    unsigned k = take(0);

    *which = NULL;
    if (k < 200 && W.n_sent > 0) {
        size_t back = k % (W.n_sent < 16 ? W.n_sent : 16);
        *which = &W.sent[(W.n_sent - 1 - back) % MAX_SENT];
        snprintf(out, cap, ",\"id\":\"r%llu\"", (unsigned long long)(*which)->id);
    } else if (k < 230) {
        snprintf(out, cap, ",\"id\":\"r%u\"", take(0));
    } else {
        out[0] = '\0';
    }
}

static void server_text(void)
{
    static const char *const states[] = {"queued", "assigned", "cancelled", "expired", "odd"};
    static const char *const codes[] = {"not_found", "unavailable", "rate_limited",
                                        "internal",  "invalid",     "brand_new"};
    char msg[1024], id[48];
    struct sent *rq;
    const char *tid;
    unsigned kind = take(10), v = take(5);
    int n;

    pick_id(id, sizeof(id), &rq);
    tid = (rq && rq->key[0] && rq->key[0] != 'q' && take(2)) ? rq->key : pick_ticket();
    switch (kind) {
    case 0:
        n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"enqueued\",\"v\":1%s,\"data\":{\"ticketId\":\"%s\","
                     "\"state\":\"%s\",\"version\":%u}}",
                     id, tid, states[take(5)], v);
        break;
    case 1:
        n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"watching\",\"v\":1%s,\"data\":{\"ticketId\":\"%s\","
                     "\"state\":\"%s\",\"version\":%u}}",
                     id, tid, states[take(5)], v);
        break;
    case 2:
        n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"cancelled\",\"v\":1%s,\"data\":{\"ticketId\":\"%s\","
                     "\"version\":%u}}",
                     id, tid, v);
        break;
    case 3:
    case 4:
        n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"%s\","
                     "\"version\":%u,\"assignment\":{\"matchId\":\"m%u\",\"connection\":"
                     "\"10.0.0.%u:7777\",\"players\":[\"alice\"]%s}}}",
                     tid, v, take(4), take(4),
                     take(2) ? ",\"assignedAt\":\"2026-01-01T00:00:00Z\"" : "");
        break;
    case 5:
        n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"ticket.%s\",\"v\":1,\"data\":{\"ticketId\":\"%s\","
                     "\"version\":%u}}",
                     take(2) ? "expired" : "cancelled", tid, v);
        break;
    case 6:
    case 7: {
        const char *code = codes[take(6)];
        bool retryable = take(2);
        n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"error\",\"v\":1%s,\"data\":{\"code\":\"%s\",\"message\":\"m\","
                     "\"retryable\":%s}}",
                     id, code, retryable ? "true" : "false");
        if (rq && rq->conn == W.conn && !rq->answered && strcmp(rq->type, "enqueue") == 0 &&
            strcmp(code, "rate_limited") == 0 && ref_index(rq->key) >= 0 &&
            W.refs_pending[ref_index(rq->key)] && id[0])
            W.paused_until = W.now + MWC_RATE_LIMITED_MS;
        break;
    }
    case 8:
        n = snprintf(msg, sizeof(msg), "{\"type\":\"pong\",\"v\":1%s,\"data\":{}}", id);
        break;
    default: {
        unsigned ver = take(3);
        n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"%s\",\"v\":%u%s,\"data\":{\"ticketId\":\"%s\",\"version\":%u}}",
                     take(2) ? "match.assigned" : "surprise", ver, id, tid, v);
        if (ver != 1)
            rq = NULL; /* not read: the request stays unanswered */
        break;
    }
    }
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(msg));
    {
        char *copy = fuzz_dup_exact((const uint8_t *)msg, (size_t)n);
        if (W.trace)
            fprintf(stderr, "  server: %s\n", msg);
        mwc_proto_on_text(W.p, copy, (size_t)n, W.now);
        free(copy);
    }
    if (rq && id[0] && rq->conn == W.conn)
        rq->answered = true;
}

static void raw_text(void)
{
    size_t len = take(0) | (size_t)take(0) << 8, left = W.n - W.pos;
    char *copy;

    if (len > left)
        len = left;
    copy = fuzz_dup_exact(W.in + W.pos, len);
    W.pos += len;
    mwc_proto_on_text(W.p, copy, len, W.now);
    free(copy);
}

static void advance(void)
{
    static const int64_t steps[] = {0,    1,    10,    99,    100,   249,    250,    1000,
                                    5000, 9999, 10000, 10001, 60000, 600000, 600001, 3600000};

    W.now += steps[take(16)];
}

static int rnd(void *ud, void *buf, size_t n)
{
    (void)ud;
    FUZZ_CHECK(fuzz_random(W.rng_state, buf, n) == 0);
    if (W.capture && n == sizeof(W.captured)) {
        memcpy(W.captured, buf, n);
        W.captured_ok = true;
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {0,   101, 200, 302, 400, 401, 403, 404,
                                   408, 426, 429, 500, 503, 599, 600, 999};
    static const int codes[] = {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010,
                                1011, 1012, 1013, 1014, 1015, 4001, 4002, 4003, 3000, 0};
    int ops = 0;

    memset(&W, 0, sizeof(W));
    W.in = data;
    W.n = size;
    W.trace = getenv(TRACE_ENV) != NULL;
    W.now = T_START;
    W.rng_state[0] = take(0) | (uint64_t)take(0) << 8;
    W.last_state = MWC_STATE_IDLE;
    W.p = mwc_proto_new(&CALLBACKS, &W, NULL, rnd, NULL, take(2) ? "player-token" : NULL);
    FUZZ_CHECK(W.p != NULL);
    FUZZ_CHECK(mwc_proto_state(W.p) == MWC_STATE_IDLE);
    if (take(4))
        FUZZ_CHECK(mwc_proto_start(W.p, W.now) == 0);
    while (W.pos < W.n && ops++ < MAX_OPS) {
        unsigned op = take(14);
        if (W.trace)
            fprintf(stderr, "op %u at %lld (state %d)\n", op, (long long)W.now,
                    (int)mwc_proto_state(W.p));
        switch (op) {
        case 0:
        case 1:
            advance();
            do_tick();
            break;
        case 2:
            if (W.connecting) {
                W.connecting = false;
                W.open = true;
                W.conn++;
                mwc_proto_on_open(W.p, W.now);
            }
            break;
        case 3:
            if (W.connecting) {
                int st = statuses[take(16)], ra = (int)take(0) - 56; /* -56..199 */
                if (ra < -1)
                    ra = -1;
                report_refused(st, ra, take(8) == 0);
            }
            break;
        case 4:
            if (W.open) {
                int code = codes[take(20)];
                if (code == 0)
                    code = (int)(take(0) << 8 | take(0));
                report_closed(code);
            }
            break;
        case 5:
        case 6:
        case 7:
            if (W.open)
                server_text();
            break;
        case 8:
            if (W.open)
                raw_text();
            break;
        case 9:
            if (W.open) {
                if (take(2))
                    mwc_proto_on_binary(W.p, W.now);
                else
                    mwc_proto_on_pong(W.p, W.now);
            }
            break;
        case 10:
        case 11:
            app_call();
            break;
        case 12:
            do_drain();
            break;
        default:
            switch (take(3)) {
            case 0:
                W.reenter = (int)take(4); /* the next callbacks call mwc_* themselves */
                break;
            case 1:
                if (!W.silenced) { /* mwc_free() from a callback: silence, free at the end */
                    mwc_proto_silence(W.p);
                    W.silenced = true;
                }
                break;
            default:
                do_drain();
                advance();
                do_tick();
                break;
            }
            break;
        }
        FUZZ_CHECK(mwc_proto_wait_ms(W.p, W.now) >= 0);
        if (W.stopped)
            FUZZ_CHECK(mwc_proto_state(W.p) == MWC_STATE_STOPPED);
    }
    mwc_proto_free(W.p);
    return 0;
}
