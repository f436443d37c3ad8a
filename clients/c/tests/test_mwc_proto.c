/* Tests for the client's protocol state machine (mwc_proto.h) without a
 * socket: the test plays the transport (on_open, on_text, on_closed,
 * on_refused, tick, next_send) and the application (recording callbacks),
 * with a fake clock and a deterministic random source. One test per
 * spec/client.md rule, named after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include <cjson/cJSON.h>

#include "alloc.h"
#include "fake_random.h"
#include "mwc_proto.h"

#define T0     1000000
#define MAX_EV 256
#define TID    "tk-1"
#define ASSIGN2                                                                                    \
    "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID "\",\"version\":2,"       \
    "\"assignment\":{\"matchId\":\"m1\",\"connection\":\"10.0.0.5:7777\",\"players\":[],"          \
    "\"assignedAt\":\"2026-01-01t00:00:00z\"}}}"

/* ---- A recording application ------------------------------------------------ */

struct app {
    struct mwc_proto *p;
    struct fake_rng rng;
    char ev[MAX_EV][256];
    int n;
    const char *tokens[4]; /* answers of refresh_token, in order */
    int n_tokens, next_token;
    int64_t now;
};

static void rec(struct app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec(struct app *a, const char *fmt, ...)
{
    va_list ap;

    assert_true(a->n < MAX_EV);
    va_start(ap, fmt);
    vsnprintf(a->ev[a->n++], sizeof(a->ev[0]), fmt, ap);
    va_end(ap);
}

static void cb_state(struct mwc_client *c, enum mwc_state s, void *ud)
{
    rec(ud, "state %d", (int)s);
}

static void cb_enqueued(struct mwc_client *c, const char *ref, const char *tid, const char *state,
                        uint64_t v, void *ud)
{
    rec(ud, "enqueued %s %s %s %llu", ref, tid, state, (unsigned long long)v);
}

static void cb_assigned(struct mwc_client *c, const struct mwc_assignment *as, void *ud)
{
    rec(ud, "assigned %s %llu %s %s", as->ticket_id, (unsigned long long)as->version, as->match_id,
        as->connection);
}

static void cb_ended(struct mwc_client *c, const char *tid, const char *state, uint64_t v, void *ud)
{
    rec(ud, "ended %s %s %llu", tid, state, (unsigned long long)v);
}

static void cb_lost(struct mwc_client *c, const char *tid, void *ud)
{
    rec(ud, "lost %s", tid);
}

static void cb_error(struct mwc_client *c, const struct mwc_error *e, void *ud)
{
    rec(ud, "error %s %s %s", e->ref ? e->ref : e->ticket_id, e->code,
        e->retryable ? "retryable" : "final");
}

static void cb_closed(struct mwc_client *c, int code, int status, bool reconnect, void *ud)
{
    rec(ud, "closed %d %d %s", code, status, reconnect ? "reconnect" : "stop");
}

static void cb_perr(struct mwc_client *c, const char *detail, void *ud)
{
    rec(ud, "protocolError");
}

static int cb_refresh(struct mwc_client *c, char *out, size_t cap, void *ud)
{
    struct app *a = ud;

    rec(a, "tokenRefresh");
    if (a->next_token >= a->n_tokens)
        return -1;
    snprintf(out, cap, "%s", a->tokens[a->next_token]);
    return (int)strlen(a->tokens[a->next_token++]);
}

static const struct mwc_callbacks callbacks = {
    .on_state = cb_state,
    .on_enqueued = cb_enqueued,
    .on_assigned = cb_assigned,
    .on_ended = cb_ended,
    .on_lost = cb_lost,
    .on_error = cb_error,
    .on_closed = cb_closed,
    .on_protocol_error = cb_perr,
    .refresh_token = cb_refresh,
};

static int setup(void **state)
{
    struct app *a = calloc(1, sizeof(*a));

    assert_non_null(a);
    a->rng.s = 0x9e3779b97f4a7c15ULL;
    a->now = T0;
    a->p = mwc_proto_new(&callbacks, a, NULL, fake_rng_fill, &a->rng, "tok-0");
    assert_non_null(a->p);
    *state = a;
    return 0;
}

static int teardown(void **state)
{
    struct app *a = *state;

    mwc_proto_free(a->p);
    free(a);
    return 0;
}

/* ---- Helpers ------------------------------------------------------------------- */

static int count(const struct app *a, const char *prefix)
{
    int n = 0;

    for (int i = 0; i < a->n; i++)
        n += strncmp(a->ev[i], prefix, strlen(prefix)) == 0;
    return n;
}

static const char *last(const struct app *a, const char *prefix)
{
    for (int i = a->n - 1; i >= 0; i--)
        if (strncmp(a->ev[i], prefix, strlen(prefix)) == 0)
            return a->ev[i];
    return NULL;
}

/* Runs ticks until the state machine asks to connect (at most max_ms of fake
 * time); returns the time waited. */
static int64_t wait_connect(struct app *a, int64_t max_ms)
{
    int64_t t0 = a->now;

    for (;;) {
        enum mwc_action act = mwc_proto_tick(a->p, a->now);
        if (act == MWC_ACT_CONNECT)
            return a->now - t0;
        assert_int_equal(act, MWC_ACT_NONE);
        if (a->now - t0 >= max_ms)
            return -1;
        a->now += 1;
    }
}

static void connect_open(struct app *a)
{
    assert_true(wait_connect(a, 20000) >= 0);
    mwc_proto_on_open(a->p, a->now);
}

/* The next message sent, parsed (caller deletes), or NULL. */
static cJSON *sent(struct app *a)
{
    const char *buf;
    size_t len;

    if (!mwc_proto_next_send(a->p, a->now, &buf, &len))
        return NULL;
    return cJSON_ParseWithLength(buf, len);
}

static const char *str(const cJSON *o, const char *path1, const char *path2)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);
    if (path2)
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void text(struct app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text(struct app *a, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    mwc_proto_on_text(a->p, buf, strlen(buf), a->now);
}

static void enqueue(struct app *a, const char *ref)
{
    struct mwc_enqueue e = {.ref = ref,
                            .queue = "ranked",
                            .player_id = "p1",
                            .attributes_json = "{\"region\":\"eu\",\"mmr\":1500}"};
    assert_int_equal(mwc_proto_enqueue(a->p, &e, NULL, 0, a->now), 0);
}

/* Sends one enqueue and answers it with ticket TID; returns nothing. */
static void enqueue_answered(struct app *a)
{
    cJSON *m;

    enqueue(a, "e1");
    m = sent(a);
    assert_non_null(m);
    text(a,
         "{\"type\":\"enqueued\",\"v\":1,\"id\":\"%s\",\"data\":{\"ticketId\":\"" TID
         "\",\"queue\":\"ranked\",\"state\":\"queued\",\"version\":1}}",
         str(m, "id", NULL));
    cJSON_Delete(m);
    assert_int_equal(count(a, "enqueued e1 " TID), 1);
}

/* ---- CLI-003, CLI-010, CLI-011, CLI-013 ------------------------------------------- */

static void test_cli003_local_validation(void **state)
{
    struct app *a = *state;
    struct mwc_enqueue e = {.ref = "bad", .queue = "Not A Queue!", .player_id = "p1"};
    char detail[128] = "";

    assert_int_equal(mwc_proto_start(a->p, a->now), 0);
    connect_open(a);
    assert_int_equal(mwc_proto_enqueue(a->p, &e, detail, sizeof(detail), a->now), MWC_EINVAL);
    assert_true(strlen(detail) > 0);
    e.queue = "ranked";
    e.attributes_json = "{\"region\":7, \"a\":[1]}"; /* MSG-022: strings and numbers only */
    assert_int_equal(mwc_proto_enqueue(a->p, &e, detail, sizeof(detail), a->now), MWC_EINVAL);
    assert_null(sent(a)); /* nothing goes on the wire */
}

static void test_cli010_fresh_key_per_enqueue(void **state)
{
    struct app *a = *state;
    cJSON *m1, *m2;
    const char *k1, *k2;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue(a, "e1");
    enqueue(a, "e2");
    m1 = sent(a);
    m2 = sent(a);
    k1 = str(m1, "data", "idempotencyKey");
    k2 = str(m2, "data", "idempotencyKey");
    assert_non_null(k1);
    assert_non_null(k2);
    assert_int_equal(strlen(k1), 32); /* 128 random bits in hex */
    assert_string_not_equal(k1, k2);
    assert_string_not_equal(str(m1, "id", NULL), str(m2, "id", NULL)); /* CLI-002 */
    assert_string_equal(str(m1, "type", NULL), "enqueue");
    cJSON_Delete(m1);
    cJSON_Delete(m2);
}

static void test_cli011_replay_unanswered_enqueue(void **state)
{
    struct app *a = *state;
    cJSON *m1, *m2;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue(a, "e1");
    m1 = sent(a);
    assert_non_null(m1);
    mwc_proto_on_closed(a->p, 1006, a->now); /* the reply never came */
    assert_string_equal(last(a, "closed"), "closed 1006 0 reconnect");
    connect_open(a);
    m2 = sent(a);
    assert_non_null(m2);
    assert_string_equal(str(m1, "data", "idempotencyKey"), str(m2, "data", "idempotencyKey"));
    assert_string_equal(str(m1, "data", "queue"), str(m2, "data", "queue"));
    assert_string_equal(str(m1, "data", "playerId"), str(m2, "data", "playerId"));
    text(a,
         "{\"type\":\"enqueued\",\"v\":1,\"id\":\"%s\",\"data\":{\"ticketId\":\"" TID
         "\",\"state\":\"queued\",\"version\":1}}",
         str(m2, "id", NULL));
    assert_int_equal(count(a, "enqueued"), 1);
    cJSON_Delete(m1);
    cJSON_Delete(m2);
}

/* ---- CLI-012, CLI-024, CLI-025, CLI-061 --------------------------------------------- */

static void test_cli012_retryable_error_resent_same_key(void **state)
{
    struct app *a = *state;
    cJSON *m1, *m2;
    int64_t t;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue(a, "e1");
    m1 = sent(a);
    t = a->now;
    text(a,
         "{\"type\":\"error\",\"v\":1,\"id\":\"%s\",\"data\":{\"code\":\"rate_limited\","
         "\"message\":\"x\",\"retryable\":true}}",
         str(m1, "id", NULL));
    assert_int_equal(count(a, "error"), 0); /* not reported while resending */
    while ((m2 = sent(a)) == NULL) {
        assert_int_equal(mwc_proto_tick(a->p, a->now), MWC_ACT_NONE);
        a->now += 10;
        assert_true(a->now - t < 5000);
    }
    assert_true(a->now - t >= MWC_RATE_LIMITED_MS); /* CLI-061: at least 1 s */
    assert_string_equal(str(m1, "data", "idempotencyKey"), str(m2, "data", "idempotencyKey"));
    cJSON_Delete(m1);
    cJSON_Delete(m2);
}

static void test_cli025_final_error_reported_not_resent(void **state)
{
    struct app *a = *state;
    cJSON *m1;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue(a, "e1");
    m1 = sent(a);
    /* a code this client does not know: handled by its retryable flag (CLI-024) */
    text(a,
         "{\"type\":\"error\",\"v\":1,\"id\":\"%s\",\"data\":{\"code\":\"brand_new\","
         "\"message\":\"x\",\"retryable\":false}}",
         str(m1, "id", NULL));
    assert_string_equal(last(a, "error"), "error e1 brand_new final");
    for (int i = 0; i < 100; i++) {
        mwc_proto_tick(a->p, a->now);
        assert_null(sent(a));
        a->now += 100;
    }
    assert_int_equal(count(a, "closed"), 0); /* the connection stays */
    cJSON_Delete(m1);
}

/* ---- CLI-020..CLI-023, CLI-026, CLI-028, CLI-029 ------------------------------------ */

static void test_cli020_receive_rules(void **state)
{
    struct app *a = *state;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue_answered(a);
    text(a, "{\"type\":\"match.assigned\",\"type\":\"x\",\"v\":1,\"data\":{}}"); /* duplicate */
    text(a, "not json");
    text(a, "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID "\"}}");
    mwc_proto_on_binary(a->p, a->now);
    assert_int_equal(count(a, "protocolError"), 4);
    text(a, "{\"type\":\"future.push\",\"v\":1,\"data\":{}}");                   /* CLI-022 */
    text(a, "{\"type\":\"match.assigned\",\"v\":2,\"data\":{\"ticketId\":\"" TID /* CLI-023 */
            "\",\"version\":9,\"assignment\":{\"matchId\":\"m\",\"connection\":\"h:1\"}}}");
    assert_int_equal(count(a, "protocolError"), 4);
    assert_int_equal(count(a, "assigned"), 0);
    /* CLI-021, CLI-028, CLI-029: unknown members, an opaque id, a lower-case timestamp */
    text(a, "{\"type\":\"match.assigned\",\"v\":1,\"extra\":1,\"data\":{\"ticketId\":\"" TID
            "\",\"version\":2,\"new\":true,\"assignment\":{\"matchId\":\"m1\",\"connection\":"
            "\"10.0.0.5:7777\",\"players\":[{\"playerId\":\"p1\",\"x\":1}],"
            "\"assignedAt\":\"2026-01-01t00:00:00.123456z\",\"more\":{}}}}");
    assert_string_equal(last(a, "assigned"), "assigned " TID " 2 m1 10.0.0.5:7777");
    assert_int_equal(count(a, "closed"), 0);
}

static void test_cli027_push_before_reply(void **state)
{
    struct app *a = *state;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue(a, "e1");
    m = sent(a);
    text(a, ASSIGN2); /* before the reply naming TID */
    assert_int_equal(count(a, "assigned"), 0);
    text(a,
         "{\"type\":\"enqueued\",\"v\":1,\"id\":\"%s\",\"data\":{\"ticketId\":\"" TID
         "\",\"state\":\"queued\",\"version\":1}}",
         str(m, "id", NULL));
    assert_int_equal(count(a, "assigned"), 1);
    text(a, ASSIGN2);
    assert_int_equal(count(a, "assigned"), 1);
    cJSON_Delete(m);
}

/* ---- CLI-030..CLI-032 ---------------------------------------------------------------- */

static void test_cli030_at_most_once_across_connections(void **state)
{
    struct app *a = *state;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue_answered(a);
    text(a, ASSIGN2);
    text(a, ASSIGN2);
    assert_int_equal(count(a, "assigned"), 1);
    mwc_proto_on_closed(a->p, 1006, a->now);
    connect_open(a);
    text(a, ASSIGN2); /* a re-watch or a replay sends it again */
    assert_int_equal(count(a, "assigned"), 1);
}

static void test_cli031_stale_versions_ignored(void **state)
{
    struct app *a = *state;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue_answered(a);
    text(a, ASSIGN2);
    text(a,
         "{\"type\":\"ticket.expired\",\"v\":1,\"data\":{\"ticketId\":\"" TID "\",\"version\":2}}");
    text(a, "{\"type\":\"ticket.cancelled\",\"v\":1,\"data\":{\"ticketId\":\"" TID
            "\",\"version\":3}}"); /* final: never changes again */
    assert_int_equal(count(a, "ended"), 0);
}

static void test_cli032_ended_not_watched_again(void **state)
{
    struct app *a = *state;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue_answered(a);
    text(a,
         "{\"type\":\"ticket.expired\",\"v\":1,\"data\":{\"ticketId\":\"" TID "\",\"version\":2}}");
    assert_string_equal(last(a, "ended"), "ended " TID " expired 2");
    mwc_proto_on_closed(a->p, 1006, a->now);
    connect_open(a);
    m = sent(a);
    assert_null(m);
}

/* ---- CLI-040..CLI-047: the close-code table and backoff ----------------------------- */

static void test_cli040_041_close_table(void **state)
{
    struct app *a = *state;
    static const int stop[] = {1000, 1002, 1003, 1007, 1008, 1009, 1010, 1015};
    static const int retry[] = {1001, 1005, 1006, 1011, 1012, 1013, 1014, 4001, 4002, 4999};

    for (size_t i = 0; i < sizeof(stop) / sizeof(stop[0]); i++) {
        struct mwc_proto *p = mwc_proto_new(&callbacks, a, NULL, fake_rng_fill, &a->rng, NULL);
        mwc_proto_free(a->p);
        a->p = p;
        mwc_proto_start(p, a->now);
        connect_open(a);
        mwc_proto_on_closed(p, stop[i], a->now);
        assert_non_null(strstr(last(a, "closed"), "stop"));
        assert_int_equal(wait_connect(a, 30000), -1);
        assert_int_equal(mwc_proto_state(p), MWC_STATE_STOPPED);
    }
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
        mwc_proto_free(a->p);
        a->p = mwc_proto_new(&callbacks, a, NULL, fake_rng_fill, &a->rng, NULL);
        mwc_proto_start(a->p, a->now);
        connect_open(a);
        mwc_proto_on_closed(a->p, retry[i], a->now);
        assert_non_null(strstr(last(a, "closed"), "reconnect"));
        assert_true(wait_connect(a, 1000) >= MWC_FLOOR_MS);
    }
}

static void test_cli042_handshake_table(void **state)
{
    struct app *a = *state;
    static const int stop[] = {400, 403, 404, 426, 418};
    static const int retry[] = {0, 408, 429, 500, 502, 503, 504, 599};

    for (size_t i = 0; i < sizeof(stop) / sizeof(stop[0]); i++) {
        mwc_proto_free(a->p);
        a->p = mwc_proto_new(&callbacks, a, NULL, fake_rng_fill, &a->rng, NULL);
        mwc_proto_start(a->p, a->now);
        assert_true(wait_connect(a, 10) >= 0);
        mwc_proto_on_refused(a->p, stop[i], -1, false, a->now);
        assert_non_null(strstr(last(a, "closed"), "stop"));
        assert_int_equal(wait_connect(a, 30000), -1);
    }
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
        mwc_proto_free(a->p);
        a->p = mwc_proto_new(&callbacks, a, NULL, fake_rng_fill, &a->rng, NULL);
        mwc_proto_start(a->p, a->now);
        assert_true(wait_connect(a, 10) >= 0);
        mwc_proto_on_refused(a->p, retry[i], -1, false, a->now);
        assert_true(wait_connect(a, 1000) >= MWC_FLOOR_MS);
    }
    /* CLI-001: a 101 with another subprotocol is a refusal that is not retried */
    mwc_proto_free(a->p);
    a->p = mwc_proto_new(&callbacks, a, NULL, fake_rng_fill, &a->rng, NULL);
    mwc_proto_start(a->p, a->now);
    assert_true(wait_connect(a, 10) >= 0);
    mwc_proto_on_refused(a->p, 0, -1, true, a->now);
    assert_int_equal(wait_connect(a, 30000), -1);
}

static void test_cli043_045_backoff_bounds(void **state)
{
    struct app *a = *state;
    int64_t total = 0, prev_hi = 0;

    mwc_proto_start(a->p, a->now);
    assert_true(wait_connect(a, 10) >= 0);
    for (int n = 1; n <= 14; n++) {
        int64_t hi = (int64_t)MWC_FLOOR_MS << n, d;
        if (hi > MWC_CAP_MS)
            hi = MWC_CAP_MS;
        mwc_proto_on_refused(a->p, 503, -1, false, a->now);
        d = wait_connect(a, 20000);
        assert_true(d >= MWC_FLOOR_MS); /* CLI-043 */
        assert_true(d <= hi);           /* CLI-045: growth bounded by the cap */
        assert_true(hi >= prev_hi);
        prev_hi = hi;
        total += d;
    }
    assert_true(total > 14 * MWC_FLOOR_MS * 2); /* it does grow */
}

static void test_cli044_jitter(void **state)
{
    struct app *a = *state;
    struct app b = {.rng = {.s = 12345}, .now = T0};
    int64_t diff = 0;

    b.p = mwc_proto_new(&callbacks, &b, NULL, fake_rng_fill, &b.rng, NULL);
    mwc_proto_start(a->p, a->now);
    mwc_proto_start(b.p, b.now);
    assert_true(wait_connect(a, 10) >= 0);
    assert_true(wait_connect(&b, 10) >= 0);
    for (int n = 1; n <= 7; n++) {
        int64_t da, db;
        mwc_proto_on_refused(a->p, 503, -1, false, a->now);
        mwc_proto_on_refused(b.p, 503, -1, false, b.now);
        da = wait_connect(a, 20000);
        db = wait_connect(&b, 20000);
        diff += da > db ? da - db : db - da;
    }
    assert_true(diff > 1000);
    mwc_proto_free(b.p);
}

static void test_cli046_retry_after(void **state)
{
    struct app *a = *state;

    mwc_proto_start(a->p, a->now);
    assert_true(wait_connect(a, 10) >= 0);
    mwc_proto_on_refused(a->p, 503, 3, false, a->now);
    assert_true(wait_connect(a, 10000) >= 3000);
}

static void test_cli047_no_reset_before_5s(void **state)
{
    struct app *a = *state;
    int64_t d = 0;

    mwc_proto_start(a->p, a->now);
    for (int n = 1; n <= 8; n++) {
        assert_true(wait_connect(a, 20000) >= 0);
        mwc_proto_on_open(a->p, a->now);
        a->now += 10;
        mwc_proto_on_closed(a->p, 1013, a->now); /* at once: a failed attempt */
    }
    /* attempt 8: the window is [250, 10000]; with a reset it would be [250, 500] */
    for (int i = 0; i < 5 && d <= 500; i++) {
        d = wait_connect(a, 20000);
        mwc_proto_on_open(a->p, a->now);
        mwc_proto_on_closed(a->p, 1013, a->now + 10);
        a->now += 10;
    }
    assert_true(d > 500);
    /* a connection that lasted 5 s resets the count */
    d = wait_connect(a, 20000);
    mwc_proto_on_open(a->p, a->now);
    a->now += MWC_STABLE_MS;
    mwc_proto_on_closed(a->p, 1006, a->now);
    assert_true(wait_connect(a, 20000) <= 500);
}

/* ---- CLI-050..CLI-052 ---------------------------------------------------------------- */

static void test_cli050_051_rewatch_and_lost(void **state)
{
    struct app *a = *state;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue_answered(a);
    mwc_proto_on_closed(a->p, 1006, a->now);
    connect_open(a);
    m = sent(a);
    assert_non_null(m);
    assert_string_equal(str(m, "type", NULL), "watch");
    assert_string_equal(str(m, "data", "ticketId"), TID);
    text(a,
         "{\"type\":\"error\",\"v\":1,\"id\":\"%s\",\"data\":{\"code\":\"not_found\","
         "\"message\":\"x\",\"retryable\":false}}",
         str(m, "id", NULL));
    assert_string_equal(last(a, "lost"), "lost " TID);
    assert_int_equal(count(a, "error"), 0);
    cJSON_Delete(m);
    mwc_proto_on_closed(a->p, 1006, a->now);
    connect_open(a);
    assert_null(sent(a)); /* never watched again, never enqueued again */
}

static void test_cli052_rewatch_final_state(void **state)
{
    struct app *a = *state;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue_answered(a);
    mwc_proto_on_closed(a->p, 1006, a->now);
    connect_open(a);
    m = sent(a);
    text(a,
         "{\"type\":\"watching\",\"v\":1,\"id\":\"%s\",\"data\":{\"ticketId\":\"" TID
         "\",\"state\":\"expired\",\"version\":2}}",
         str(m, "id", NULL));
    assert_string_equal(last(a, "ended"), "ended " TID " expired 2");
    cJSON_Delete(m);
}

/* ---- CLI-060, CLI-071, CLI-080 -------------------------------------------------------- */

static void test_cli060_pacing(void **state)
{
    struct app *a = *state;
    char ref[16];
    int n = 0;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    for (int i = 0; i < 40; i++) {
        snprintf(ref, sizeof(ref), "e%d", i);
        enqueue(a, ref);
    }
    while ((m = sent(a)) != NULL) {
        n++;
        cJSON_Delete(m);
    }
    assert_int_equal(n, MWC_BURST);
    a->now += 1000;
    while ((m = sent(a)) != NULL) {
        n++;
        cJSON_Delete(m);
    }
    assert_int_equal(n, MWC_BURST + MWC_RATE_PER_S);
}

static void test_cli071_liveness(void **state)
{
    struct app *a = *state;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    a->now += MWC_IDLE_PING_MS - 1;
    assert_int_equal(mwc_proto_tick(a->p, a->now), MWC_ACT_NONE);
    a->now += 1;
    assert_int_equal(mwc_proto_tick(a->p, a->now), MWC_ACT_PING);
    a->now += MWC_PING_TIMEOUT_MS - 1;
    assert_int_equal(mwc_proto_tick(a->p, a->now), MWC_ACT_NONE);
    mwc_proto_on_pong(a->p, a->now); /* alive: the clock starts again */
    a->now += MWC_IDLE_PING_MS;
    assert_int_equal(mwc_proto_tick(a->p, a->now), MWC_ACT_PING);
    a->now += MWC_PING_TIMEOUT_MS;
    assert_int_equal(mwc_proto_tick(a->p, a->now), MWC_ACT_DROP);
}

static void test_cli080_close(void **state)
{
    struct app *a = *state;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    assert_int_equal(mwc_proto_close(a->p, a->now), 0);
    assert_int_equal(mwc_proto_tick(a->p, a->now), MWC_ACT_CLOSE);
    mwc_proto_on_closed(a->p, 1000, a->now);
    assert_string_equal(last(a, "closed"), "closed 1000 0 stop");
    assert_int_equal(wait_connect(a, 30000), -1);
}

/* ---- Tokens (CLI-090..CLI-094) ---------------------------------------------------------- */

static void test_cli091_4003_refreshes_token(void **state)
{
    struct app *a = *state;

    a->tokens[0] = "tok-1";
    a->n_tokens = 1;
    mwc_proto_start(a->p, a->now);
    connect_open(a);
    assert_string_equal(mwc_proto_token(a->p), "tok-0");
    mwc_proto_on_closed(a->p, 4003, a->now);
    assert_int_equal(count(a, "tokenRefresh"), 1);
    assert_string_equal(mwc_proto_token(a->p), "tok-1");
    assert_true(wait_connect(a, 1000) >= MWC_FLOOR_MS);
    mwc_proto_on_open(a->p, a->now);
    mwc_proto_on_closed(a->p, 4003, a->now); /* no token left: stop */
    assert_string_equal(last(a, "closed"), "closed 4003 0 stop");
    assert_int_equal(wait_connect(a, 30000), -1);
}

static void test_cli093_094_401(void **state)
{
    struct app *a = *state;

    a->tokens[0] = "tok-1";
    a->tokens[1] = "tok-2";
    a->n_tokens = 2;
    mwc_proto_start(a->p, a->now);
    assert_true(wait_connect(a, 10) >= 0);
    mwc_proto_on_refused(a->p, 401, -1, false, a->now);
    assert_int_equal(count(a, "tokenRefresh"), 1);
    assert_true(wait_connect(a, 1000) >= MWC_FLOOR_MS);
    assert_string_equal(mwc_proto_token(a->p), "tok-1");
    mwc_proto_on_refused(a->p, 401, -1, false, a->now); /* twice in a row: stop */
    assert_int_equal(count(a, "tokenRefresh"), 1);
    assert_string_equal(last(a, "closed"), "closed 0 401 stop");
    assert_int_equal(wait_connect(a, 30000), -1);
}

/* ---- Allocation failure: every allocation of a whole session, failed in turn --- */

/* A session touching every allocating path: enqueue (validation, data text),
 * a reply, an early push held and replayed, an assignment, a reconnect with
 * replay, a token refresh. Return codes are ignored: only crashes and leaks
 * (ASan) matter here. Returns the number of assignments applied. */
static int oom_session(struct app *a)
{
    struct mwc_enqueue e = {.ref = "e1",
                            .queue = "ranked",
                            .player_id = "p1",
                            .attributes_json = "{\"region\":\"eu\"}"};
    const char *buf;
    size_t len;
    char id[32] = "";

    a->n = 0;
    mwc_proto_start(a->p, a->now);
    if (mwc_proto_tick(a->p, a->now) == MWC_ACT_CONNECT)
        mwc_proto_on_open(a->p, a->now);
    mwc_proto_enqueue(a->p, &e, NULL, 0, a->now);
    if (mwc_proto_next_send(a->p, a->now, &buf, &len)) {
        const char *p = strstr(buf, "\"id\":\"");
        if (p)
            snprintf(id, sizeof(id), "%.*s", (int)(strchr(p + 6, '"') - (p + 6)), p + 6);
    }
    text(a, ASSIGN2);
    text(a,
         "{\"type\":\"enqueued\",\"v\":1,\"id\":\"%s\",\"data\":{\"ticketId\":\"" TID
         "\",\"state\":\"queued\",\"version\":1}}",
         id);
    mwc_proto_on_closed(a->p, 4003, a->now);
    a->now += MWC_CAP_MS;
    if (mwc_proto_tick(a->p, a->now) == MWC_ACT_CONNECT)
        mwc_proto_on_open(a->p, a->now);
    while (mwc_proto_next_send(a->p, a->now, &buf, &len))
        ;
    text(a, ASSIGN2);
    return count(a, "assigned");
}

/* ---- Hostile or broken servers, and the application's edge cases (review) ---------- */

/* An assigned ticket is final (MSG-070): a match.assigned with a higher
 * version is not a second assignment (CLI-030, CLI-031). */
static void test_assigned_once_even_with_higher_version(void **state)
{
    struct app *a = *state;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue_answered(a);
    text(a, ASSIGN2);
    text(a, "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"" TID "\","
            "\"version\":3,\"assignment\":{\"matchId\":\"m2\",\"connection\":\"10.0.0.6:1\"}}}");
    assert_int_equal(count(a, "assigned"), 1);
}

/* Every accepted enqueue gets its outcome, also when the reply names a ticket
 * the client knew already (the application watched it, or gave the key of an
 * earlier enqueue). */
static void test_enqueue_reply_naming_known_ticket_reported(void **state)
{
    struct app *a = *state;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    assert_int_equal(mwc_proto_watch(a->p, TID, a->now), 0);
    m = sent(a);
    assert_string_equal(str(m, "type", NULL), "watch");
    cJSON_Delete(m);
    enqueue(a, "e1");
    m = sent(a);
    assert_string_equal(str(m, "type", NULL), "enqueue");
    text(a,
         "{\"type\":\"enqueued\",\"v\":1,\"id\":\"%s\",\"data\":{\"ticketId\":\"" TID
         "\",\"state\":\"queued\",\"version\":1}}",
         str(m, "id", NULL));
    cJSON_Delete(m);
    assert_int_equal(count(a, "enqueued e1 " TID), 1);
}

/* Cancels queued while disconnected are bounded, and never crowd out the
 * re-watches and enqueue replays of the next connection (CLI-011, CLI-050). */
static void test_queued_cancels_bounded_replay_kept(void **state)
{
    struct app *a = *state;
    char tid[16];
    int rc = 0, accepted = 0, enqueues = 0;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    enqueue(a, "e1");
    for (int i = 0; i < 4 * MWC_OUTQ_MAX && rc == 0; i++) {
        snprintf(tid, sizeof(tid), "c-%d", i);
        rc = mwc_proto_cancel(a->p, tid, a->now);
        accepted += rc == 0;
    }
    assert_int_equal(rc, MWC_ELIMIT);
    assert_true(accepted <= MWC_MAX_PENDING);
    connect_open(a);
    for (int i = 0; i < 4 * MWC_OUTQ_MAX; i++) {
        a->now += 1000; /* pacing */
        m = sent(a);
        if (!m)
            continue;
        enqueues += strcmp(str(m, "type", NULL), "enqueue") == 0;
        cJSON_Delete(m);
    }
    assert_int_equal(enqueues, 1);
}

/* mwc_free() inside a callback: the client is released later and nothing
 * fires after it (client.h). */
static void test_silence_stops_callbacks(void **state)
{
    struct app *a = *state;
    int n;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue_answered(a);
    mwc_proto_silence(a->p);
    n = a->n;
    text(a, ASSIGN2);
    mwc_proto_on_closed(a->p, 1006, a->now);
    a->now += 20000;
    mwc_proto_tick(a->p, a->now);
    assert_int_equal(a->n, n);
}

/* Pushes held before their reply (CLI-027) are claimed by the reply that
 * names their ticket; pushes for tickets no reply names (a broken server)
 * must not hold the 8 slots for good and starve a later real one. */
static void test_unclaimed_early_pushes_do_not_starve(void **state)
{
    struct app *a = *state;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue(a, "e1");
    m = sent(a);
    for (int i = 0; i < 2 * MWC_MAX_EARLY; i++)
        text(a,
             "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"junk-%d\","
             "\"version\":2,\"assignment\":{\"matchId\":\"m\",\"connection\":\"h:1\"}}}",
             i);
    text(a,
         "{\"type\":\"enqueued\",\"v\":1,\"id\":\"%s\",\"data\":{\"ticketId\":\"tk-0\","
         "\"state\":\"queued\",\"version\":1}}",
         str(m, "id", NULL));
    cJSON_Delete(m);
    enqueue(a, "e2");
    m = sent(a);
    text(a, ASSIGN2); /* TID's push, before the reply naming TID */
    text(a,
         "{\"type\":\"enqueued\",\"v\":1,\"id\":\"%s\",\"data\":{\"ticketId\":\"" TID
         "\",\"state\":\"queued\",\"version\":1}}",
         str(m, "id", NULL));
    cJSON_Delete(m);
    assert_int_equal(count(a, "assigned " TID), 1);
}

/* A server that answers pings but never a request: the requests in flight
 * are bounded, and the client keeps sending (the oldest is forgotten). */
static void test_unanswered_requests_bounded(void **state)
{
    struct app *a = *state;
    int watches = 0;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    for (int i = 0; i < 3 * MWC_OUTQ_MAX; i++) {
        assert_int_equal(mwc_proto_watch(a->p, TID, a->now), 0);
        a->now += 200; /* pacing: 10 per second */
        mwc_proto_on_pong(a->p, a->now);
        m = sent(a);
        if (m) {
            watches += strcmp(str(m, "type", NULL), "watch") == 0;
            cJSON_Delete(m);
        }
    }
    assert_int_equal(watches, 3 * MWC_OUTQ_MAX);
}

/* After a stop (on_closed with reconnect false) nothing can be sent any
 * more: requests and mwc_close() say MWC_ECLOSED at once, so an application
 * that waits for on_closed after mwc_close() does not wait forever. */
static void test_calls_after_stop_closed(void **state)
{
    struct app *a = *state;
    int closed;

    mwc_proto_start(a->p, a->now);
    assert_true(wait_connect(a, 10) >= 0);
    mwc_proto_on_refused(a->p, 403, -1, false, a->now);
    assert_string_equal(last(a, "closed"), "closed 0 403 stop");
    closed = count(a, "closed");
    {
        struct mwc_enqueue e = {.ref = "late", .queue = "ranked", .player_id = "p1"};
        assert_int_equal(mwc_proto_enqueue(a->p, &e, NULL, 0, a->now), MWC_ECLOSED);
    }
    assert_int_equal(mwc_proto_watch(a->p, TID, a->now), MWC_ECLOSED);
    assert_int_equal(mwc_proto_cancel(a->p, TID, a->now), MWC_ECLOSED);
    assert_int_equal(mwc_proto_close(a->p, a->now), MWC_ECLOSED);
    a->now += 1000;
    mwc_proto_tick(a->p, a->now);
    assert_int_equal(count(a, "closed"), closed);
}

/* A refreshed token with a CR or LF (or any control byte) would be header
 * injection on the next handshake; every attempt would fail locally and be
 * retried for ever. It counts as "no token": the client stops. */
static void test_refreshed_token_with_crlf_refused(void **state)
{
    struct app *a = *state;

    a->tokens[0] = "tok-1\r\nX-Evil: 1";
    a->n_tokens = 1;
    mwc_proto_start(a->p, a->now);
    connect_open(a);
    mwc_proto_on_closed(a->p, 4003, a->now);
    assert_int_equal(count(a, "tokenRefresh"), 1);
    assert_string_equal(mwc_proto_token(a->p), "tok-0");
    assert_string_equal(last(a, "closed"), "closed 4003 0 stop");
}

/* A re-watch answered not_found after the ticket's assignment was applied
 * (the push came first): not lost, and the applied assignment is still
 * remembered (CLI-030, CLI-051). */
static void test_late_not_found_keeps_assigned_ticket(void **state)
{
    struct app *a = *state;
    cJSON *m;

    mwc_proto_start(a->p, a->now);
    connect_open(a);
    enqueue_answered(a);
    mwc_proto_on_closed(a->p, 1006, a->now);
    connect_open(a);
    m = sent(a);
    assert_string_equal(str(m, "type", NULL), "watch");
    text(a, ASSIGN2);
    text(a,
         "{\"type\":\"error\",\"v\":1,\"id\":\"%s\",\"data\":{\"code\":\"not_found\","
         "\"message\":\"x\",\"retryable\":false}}",
         str(m, "id", NULL));
    cJSON_Delete(m);
    assert_int_equal(count(a, "lost"), 0);
    enqueue(a, "e2"); /* the same ticket again, its push before the reply */
    m = sent(a);
    text(a, ASSIGN2);
    text(a,
         "{\"type\":\"enqueued\",\"v\":1,\"id\":\"%s\",\"data\":{\"ticketId\":\"" TID
         "\",\"state\":\"assigned\",\"version\":2}}",
         str(m, "id", NULL));
    cJSON_Delete(m);
    assert_int_equal(count(a, "assigned"), 1);
}

static void test_allocation_failures(void **state)
{
    struct app *a = *state;
    unsigned long total;

    a->tokens[0] = "tok-1";
    a->n_tokens = 1;
    mw_alloc_fail_reset();
    total = mw_alloc_count();
    assert_int_equal(oom_session(a), 1); /* the reference run: one assignment */
    total = mw_alloc_count() - total;
    assert_true(total > 5);
    for (unsigned long n = 0; n <= total; n++) {
        mwc_proto_free(a->p);
        a->p = mwc_proto_new(&callbacks, a, NULL, fake_rng_fill, &a->rng, "tok-0");
        assert_non_null(a->p);
        a->next_token = 0;
        mw_alloc_fail_after((long)n);
        assert_true(oom_session(a) <= 1); /* never twice, never a crash */
        mw_alloc_fail_reset();
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cli003_local_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli010_fresh_key_per_enqueue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli011_replay_unanswered_enqueue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli012_retryable_error_resent_same_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cli025_final_error_reported_not_resent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cli020_receive_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli027_push_before_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli030_at_most_once_across_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cli031_stale_versions_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli032_ended_not_watched_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli040_041_close_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli042_handshake_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli043_045_backoff_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli044_jitter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli046_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli047_no_reset_before_5s, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli050_051_rewatch_and_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli052_rewatch_final_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli060_pacing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli071_liveness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli080_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli091_4003_refreshes_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli093_094_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assigned_once_even_with_higher_version, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_enqueue_reply_naming_known_ticket_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queued_cancels_bounded_replay_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silence_stops_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unclaimed_early_pushes_do_not_starve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_requests_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_after_stop_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_not_found_keeps_assigned_ticket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refreshed_token_with_crlf_refused, setup, teardown),
    };

    mwt_filter(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
