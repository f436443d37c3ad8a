/* Tests for the session state machine, with the real memory store, hub and
 * memory channel, a recording io table, and manual mw_defer_run() pumping.
 * Assignments are committed and published here the way the worker does
 * (store first, publish second), so every interleaving of an assignment with
 * a watch can be set up in one loop turn. */
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

#include "alloc.h"
#include "channel_memory.h"
#include "defer.h"
#include "error.h"
#include "fake_random.h"
#include "hub.h"
#include "messages.h"
#include "metrics.h"
#include "session.h"
#include "ticket_store_memory.h"

#define T0      1700000000000LL
#define GRACE   3000
#define MAX_OUT 64

/* ---- A recording connection ------------------------------------------------ */

struct conn {
    struct mw_session *s;
    char *out[MAX_OUT];
    int64_t out_assigned[MAX_OUT];
    size_t n_out;
    uint16_t close_code;
    int close_calls;
    bool gone;         /* on_close called: io must never be used again */
    size_t send_limit; /* after this many sends, return MW_ELIMIT (0: none) */
};

static int io_send(void *ud, const char *buf, size_t len, int64_t assigned_ms)
{
    struct conn *c = ud;

    assert_false(c->gone);
    if (c->send_limit && c->n_out >= c->send_limit)
        return MW_ELIMIT;
    assert_true(c->n_out < MAX_OUT);
    c->out[c->n_out] = malloc(len + 1);
    assert_non_null(c->out[c->n_out]);
    memcpy(c->out[c->n_out], buf, len);
    c->out[c->n_out][len] = '\0';
    c->out_assigned[c->n_out] = assigned_ms;
    c->n_out++;
    return 0;
}

static void io_close(void *ud, uint16_t code, const char *reason)
{
    struct conn *c = ud;

    (void)reason;
    assert_false(c->gone);
    c->close_code = code;
    c->close_calls++;
}

static const struct mw_session_io io = {.send = io_send, .close = io_close};

static void conn_clear_out(struct conn *c)
{
    for (size_t i = 0; i < c->n_out; i++)
        free(c->out[i]);
    c->n_out = 0;
}

/* ---- Fixture ---------------------------------------------------------------- */

struct fx {
    struct mw_defer *d;
    struct mw_ticket_store st;
    struct mw_hub *hub;
    struct mw_channel ch;
    struct mw_metrics metrics;
    struct mw_session_env env;
    struct mw_buf scratch; /* env.scratch: shared by the sessions, as in the server */
    struct fake_rng rng;
    int64_t now;
    struct conn c[64];
    size_t n_conns;
    unsigned commits_pending;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct mw_ticket_store_config cfg = {.grace_ms = GRACE};

    if (!fx)
        return -1;
    fx->rng.s = 42;
    fx->now = T0;
    fx->d = mw_defer_new(NULL, NULL);
    fx->hub = mw_hub_new(0);
    if (!fx->d || !fx->hub)
        return -1;
    if (mw_ticket_store_memory_new(
            &fx->st, &cfg,
            &(struct mw_ticket_store_hooks){.on_ended = mw_hub_on_ended, .ud = fx->hub}, fx->d,
            fake_rng_fill, &fx->rng) != 0)
        return -1;
    if (mw_channel_memory_new(&fx->ch, NULL, fx->d, 0) != 0)
        return -1;
    if (mw_channel_subscribe(&fx->ch, mw_hub_on_assigned, fx->hub) != 0)
        return -1;
    fx->env = (struct mw_session_env){
        .store = &fx->st,
        .hub = fx->hub,
        .metrics = &fx->metrics,
        .limits = {.max_tickets = 8,
                   .max_consecutive_errors = 10,
                   .rate_per_sec = 50,
                   .rate_burst = 100},
        .scratch = &fx->scratch,
    };
    mw_buf_init(&fx->scratch, MW_SESSION_OUT_MAX);
    *state = fx;
    return 0;
}

static void conn_close(struct fx *fx, struct conn *c)
{
    if (!c->gone && c->s) {
        mw_session_on_close(c->s, fx->now);
        c->gone = true;
    }
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    for (size_t i = 0; i < fx->n_conns; i++) {
        conn_close(fx, &fx->c[i]);
        conn_clear_out(&fx->c[i]);
    }
    /* Fixed order: store (in-flight callbacks get MW_ECLOSED and free the
     * closed sessions), channel, loop, hub. */
    mw_ticket_store_destroy(&fx->st);
    mw_channel_destroy(&fx->ch);
    mw_buf_release(&fx->scratch);
    mw_defer_free(fx->d);
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    mw_hub_free(fx->hub);
    free(fx);
    return 0;
}

static struct conn *conn_new(struct fx *fx)
{
    struct conn *c = &fx->c[fx->n_conns++];

    c->s = mw_session_new(&fx->env, &io, c);
    assert_non_null(c->s);
    return c;
}

static void run(struct fx *fx)
{
    while (mw_defer_pending(fx->d))
        mw_defer_run(fx->d, 0);
}

static void say(struct fx *fx, struct conn *c, const char *text)
{
    mw_session_on_text(c->s, text, strlen(text), fx->now);
}

static void sayf(struct fx *fx, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sayf(struct fx *fx, struct conn *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    say(fx, c, buf);
}

static bool has(const char *msg, const char *needle)
{
    return strstr(msg, needle) != NULL;
}

static void expect_out(const struct conn *c, size_t i, const char *needle)
{
    if (i >= c->n_out)
        fail_msg("no message %zu (only %zu), wanted %s", i, c->n_out, needle);
    if (!has(c->out[i], needle))
        fail_msg("message %zu is %s, wanted %s", i, c->out[i], needle);
}

static size_t count_type(const struct conn *c, const char *type)
{
    char needle[64];
    size_t n = 0;

    snprintf(needle, sizeof(needle), "\"type\":\"%s\"", type);
    for (size_t i = 0; i < c->n_out; i++)
        n += has(c->out[i], needle);
    return n;
}

/* The ticket id in message i. */
static void ticket_of(const struct conn *c, size_t i, char out[MW_TICKET_ID_LEN + 1])
{
    const char *p;

    assert_true(i < c->n_out);
    p = strstr(c->out[i], "\"ticketId\":\"");
    assert_non_null(p);
    memcpy(out, p + 12, MW_TICKET_ID_LEN);
    out[MW_TICKET_ID_LEN] = '\0';
}

/* Enqueues over a connection and returns the ticket id. */
static void enqueue(struct fx *fx, struct conn *c, const char *player,
                    char out[MW_TICKET_ID_LEN + 1])
{
    size_t before = c->n_out;

    sayf(fx, c, "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"%s\"}}",
         player);
    run(fx);
    expect_out(c, before, "\"type\":\"enqueued\"");
    ticket_of(c, before, out);
}

/* A ticket created over HTTP (no watcher). */
static void http_ticket(struct fx *fx, const char *player, char out[MW_TICKET_ID_LEN + 1]);

struct created {
    char id[MW_TICKET_ID_LEN + 1];
    int calls;
};

static void on_http_created(void *ud, int status, const struct mw_ticket *t)
{
    struct created *cr = ud;

    assert_int_equal(status, 0);
    memcpy(cr->id, t->id, sizeof(cr->id));
    cr->calls++;
}

static void http_ticket(struct fx *fx, const char *player, char out[MW_TICKET_ID_LEN + 1])
{
    struct mw_enqueue_req r;
    struct created cr = {0};

    memset(&r, 0, sizeof(r));
    snprintf(r.queue, sizeof(r.queue), "duel");
    snprintf(r.player_id, sizeof(r.player_id), "%s", player);
    assert_int_equal(mw_ticket_store_create(&fx->st, &r, fx->now, on_http_created, &cr), 0);
    run(fx);
    assert_int_equal(cr.calls, 1);
    memcpy(out, cr.id, MW_TICKET_ID_LEN + 1);
}

/* ---- The worker's commit path, inline ------------------------------------------ */

struct commit {
    struct fx *fx;
    struct mw_match m;
    struct mw_buf env[MW_MATCH_SIZE_MAX];
    int status;
    bool publish;
};

static void on_commit(void *ud, const struct mw_assign_result *r)
{
    struct commit *cm = ud;

    cm->status = r->status;
    if (r->status == 0 && cm->publish) {
        for (size_t i = 0; i < r->n; i++) {
            struct mw_assigned a = {.ticket_id = r->tickets[i].id,
                                    .envelope = r->tickets[i].assigned_envelope,
                                    .envelope_len = r->tickets[i].assigned_envelope_len,
                                    .version = r->tickets[i].version,
                                    .assigned_ms = cm->m.assigned_ms};
            assert_int_equal(mw_channel_publish(&cm->fx->ch, &a), 0);
        }
    }
    for (size_t i = 0; i < cm->m.n; i++)
        mw_buf_release(&cm->env[i]);
    cm->fx->commits_pending--;
    free(cm);
}

/* Commits a match of the given queued (version 1) tickets, then publishes
 * (unless publish is false: a lost push). Returns after the assign call;
 * the result and the publish happen on later loop turns. */
static void commit_match(struct fx *fx, char ids[][MW_TICKET_ID_LEN + 1], size_t n, bool publish)
{
    struct commit *cm = calloc(1, sizeof(*cm));

    assert_non_null(cm);
    cm->fx = fx;
    cm->publish = publish;
    snprintf(cm->m.match_id, sizeof(cm->m.match_id), "11111111-2222-4333-8444-555555555555");
    snprintf(cm->m.connection, sizeof(cm->m.connection), "gs1.example:7777");
    cm->m.assigned_ms = fx->now;
    cm->m.n = n;
    for (size_t i = 0; i < n; i++) {
        memcpy(cm->m.ticket_ids[i], ids[i], MW_TICKET_ID_LEN + 1);
        snprintf(cm->m.player_ids[i], sizeof(cm->m.player_ids[i]), "player%zu", i);
        cm->m.versions[i] = 2;
    }
    for (size_t i = 0; i < n; i++) {
        mw_buf_init(&cm->env[i], 0);
        assert_int_equal(mw_msg_encode_match_assigned(&cm->env[i], &cm->m, i, 2), 0);
        cm->m.envelopes[i] = cm->env[i].data;
        cm->m.envelope_lens[i] = cm->env[i].len;
    }
    assert_int_equal(mw_ticket_store_assign(&fx->st, &cm->m, on_commit, cm), 0);
    fx->commits_pending++;
}

/* ---- Tests ------------------------------------------------------------------------ */

static void test_ping_and_ids(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);

    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"id\":\"r-1\",\"data\":{}}");
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"data\":{\"x\":1}}");
    assert_int_equal(c->n_out, 2); /* ping needs no store: immediate */
    expect_out(c, 0, "{\"type\":\"pong\",\"v\":1,\"id\":\"r-1\",\"data\":{}}");
    assert_string_equal(c->out[1], "{\"type\":\"pong\",\"v\":1,\"data\":{}}");
    /* Whole messages are the gateway's to count (one owner per counter). */
    assert_int_equal(fx->metrics.messages_in, 0);
    assert_int_equal(fx->metrics.messages_out, 0);
}

static void test_protocol_errors_and_1008(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);

    say(fx, c, "{nope");
    expect_out(c, 0, "\"code\":\"bad_json\"");
    assert_false(has(c->out[0], "\"id\""));
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"id\":\"e2\"}"); /* no data: bad_envelope */
    expect_out(c, 1, "\"code\":\"bad_envelope\"");
    expect_out(c, 1, "\"id\":\"e2\"");
    say(fx, c, "{\"type\":\"launch\",\"v\":1,\"id\":\"e3\",\"data\":{}}");
    expect_out(c, 2, "\"code\":\"unknown_type\"");
    expect_out(c, 2, "\"id\":\"e3\"");
    say(fx, c, "{\"type\":\"ping\",\"v\":2,\"id\":\"e4\",\"data\":{}}");
    expect_out(c, 3, "\"code\":\"unsupported_version\"");
    say(fx, c,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"e5\",\"data\":{\"queue\":\"BAD\","
        "\"playerId\":\"p\"}}");
    expect_out(c, 4, "\"code\":\"bad_message\"");
    expect_out(c, 4, "\"retryable\":false");
    assert_int_equal(fx->metrics.errors[MW_CODE_BAD_MESSAGE], 1);
    /* A success resets the count: 9 more errors do not close... */
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"data\":{}}");
    for (int i = 0; i < 9; i++)
        say(fx, c, "[]");
    assert_int_equal(c->close_calls, 0);
    /* ...the 10th in a row does, with 1008, after its error reply. */
    size_t before = c->n_out;
    say(fx, c, "[]");
    assert_int_equal(c->n_out, before + 1);
    assert_int_equal(c->close_calls, 1);
    assert_int_equal(c->close_code, MW_CLOSE_POLICY);
    /* Nothing is processed after the close was asked. */
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"data\":{}}");
    assert_int_equal(c->n_out, before + 1);
    /* not_found (invalid ticket id) is not a protocol error: no count. */
    struct conn *c2 = conn_new(fx);
    for (int i = 0; i < 12; i++)
        say(fx, c2, "{\"type\":\"cancel\",\"v\":1,\"data\":{\"ticketId\":\"nope\"}}");
    run(fx);
    assert_int_equal(c2->close_calls, 0);
    expect_out(c2, 11, "\"code\":\"not_found\"");
}

static void test_enqueue_assigned_push(void **state)
{
    struct fx *fx = *state;
    struct conn *a = conn_new(fx), *b = conn_new(fx);
    char ids[2][MW_TICKET_ID_LEN + 1];

    say(fx, a,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"q1\",\"data\":{\"queue\":\"duel\",\"playerId\":"
        "\"alice\"}}");
    assert_int_equal(a->n_out, 0); /* waits for the store */
    run(fx);
    assert_int_equal(a->n_out, 1);
    expect_out(a, 0, "{\"type\":\"enqueued\",\"v\":1,\"id\":\"q1\",\"data\":{\"ticketId\":\"");
    expect_out(a, 0, "\"queue\":\"duel\",\"state\":\"queued\",\"version\":1,\"expiresAt\":\"");
    ticket_of(a, 0, ids[0]);
    enqueue(fx, b, "bob", ids[1]);
    assert_int_equal(mw_hub_watch_count(fx->hub), 2);

    commit_match(fx, ids, 2, true);
    run(fx);
    assert_int_equal(a->n_out, 2);
    expect_out(a, 1, "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"");
    assert_true(has(a->out[1], ids[0]));
    assert_false(has(a->out[1], ids[1])); /* MSG-061 */
    assert_int_equal(a->out_assigned[1], fx->now);
    expect_out(b, 1, "\"type\":\"match.assigned\"");
    assert_true(has(b->out[1], ids[1]));
    assert_int_equal(fx->metrics.pushes_total, 2);
    /* Final: no longer watched or counted. */
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    for (int i = 0; i < 8; i++) {
        char id[MW_TICKET_ID_LEN + 1];
        enqueue(fx, a, "alice", id);
    }
}

static void test_idempotent_enqueue(void **state)
{
    struct fx *fx = *state;
    struct conn *a = conn_new(fx), *b = conn_new(fx);
    char id1[MW_TICKET_ID_LEN + 1], id2[MW_TICKET_ID_LEN + 1], id3[MW_TICKET_ID_LEN + 1];
    const char *msg = "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":"
                      "\"alice\",\"idempotencyKey\":\"k\"}}";
    char ids[1][MW_TICKET_ID_LEN + 1];

    say(fx, a, msg);
    run(fx);
    ticket_of(a, 0, id1);
    say(fx, a, msg); /* same connection again: same ticket, still one live slot */
    run(fx);
    ticket_of(a, 1, id2);
    assert_string_equal(id1, id2);
    assert_int_equal(mw_hub_watch_count(fx->hub), 1);
    memcpy(ids[0], id1, sizeof(ids[0]));
    commit_match(fx, ids, 1, false); /* assigned, but the push is lost */
    run(fx);
    assert_int_equal(a->n_out, 2);
    /* Replay from another connection after the assignment: the reply shows
     * the ticket as it is now, then its stored match.assigned follows. */
    say(fx, b, msg);
    run(fx);
    ticket_of(b, 0, id3);
    assert_string_equal(id1, id3);
    expect_out(b, 0, "\"state\":\"assigned\",\"version\":2");
    expect_out(b, 1, "\"type\":\"match.assigned\"");
    assert_int_equal(b->n_out, 2);
    assert_int_equal(b->out_assigned[1], 0); /* no publish time known for a read */
}

static void test_ticket_limit(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);
    char ids[8][MW_TICKET_ID_LEN + 1], other[MW_TICKET_ID_LEN + 1];

    for (int i = 0; i < 8; i++)
        enqueue(fx, c, "p", ids[i]);
    http_ticket(fx, "h", other);
    say(fx, c,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"n9\",\"data\":{\"queue\":\"duel\","
        "\"playerId\":\"p\"}}");
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"id\":\"w9\",\"data\":{\"ticketId\":\"%s\"}}", other);
    run(fx);
    expect_out(c, 8, "\"code\":\"too_many_tickets\"");
    expect_out(c, 8, "\"id\":\"n9\"");
    expect_out(c, 9, "\"code\":\"too_many_tickets\"");
    /* Watching a ticket it already holds needs no new slot. */
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[3]);
    run(fx);
    expect_out(c, 10, "\"type\":\"watching\"");
    /* A cancelled ticket stops counting. */
    sayf(fx, c, "{\"type\":\"cancel\",\"v\":1,\"id\":\"x\",\"data\":{\"ticketId\":\"%s\"}}",
         ids[0]);
    run(fx);
    expect_out(c, 11, "{\"type\":\"cancelled\",\"v\":1,\"id\":\"x\",\"data\":{\"ticketId\":\"");
    expect_out(c, 11, "\"version\":2}");
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", other);
    run(fx);
    expect_out(c, 12, "\"type\":\"watching\"");
    assert_int_equal(mw_hub_watch_count(fx->hub), 8);
    assert_int_equal(c->close_calls, 0);
}

static void test_cancel_paths(void **state)
{
    struct fx *fx = *state;
    struct conn *a = conn_new(fx), *b = conn_new(fx);
    char t1[MW_TICKET_ID_LEN + 1], ids[1][MW_TICKET_ID_LEN + 1];

    enqueue(fx, a, "alice", t1);
    sayf(fx, b, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", t1);
    run(fx);
    expect_out(b, 0, "\"state\":\"queued\",\"version\":1");
    /* a cancels: a gets the reply only; b gets the ticket.cancelled push. */
    sayf(fx, a, "{\"type\":\"cancel\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", t1);
    run(fx);
    assert_int_equal(a->n_out, 2);
    expect_out(a, 1, "\"type\":\"cancelled\"");
    assert_int_equal(count_type(a, "ticket.cancelled"), 0);
    assert_int_equal(b->n_out, 2);
    expect_out(b, 1, "{\"type\":\"ticket.cancelled\",\"v\":1,\"data\":{\"ticketId\":\"");
    expect_out(b, 1, "\"version\":2}");
    /* Cancel again: not_found. */
    sayf(fx, a, "{\"type\":\"cancel\",\"v\":1,\"id\":\"c2\",\"data\":{\"ticketId\":\"%s\"}}", t1);
    run(fx);
    expect_out(a, 2, "\"code\":\"not_found\"");
    expect_out(a, 2, "\"id\":\"c2\"");
    /* An assigned ticket: already_assigned. */
    http_ticket(fx, "h", ids[0]);
    commit_match(fx, ids, 1, true);
    run(fx);
    sayf(fx, a, "{\"type\":\"cancel\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    run(fx);
    expect_out(a, 3, "\"code\":\"already_assigned\"");
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
}

static void test_watch_paths(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);
    char q[MW_TICKET_ID_LEN + 1], as[1][MW_TICKET_ID_LEN + 1];

    /* Unknown: not_found, nothing registered. */
    say(fx, c,
        "{\"type\":\"watch\",\"v\":1,\"id\":\"w1\",\"data\":{\"ticketId\":"
        "\"00000000-0000-4000-8000-000000000000\"}}");
    run(fx);
    expect_out(c, 0, "\"code\":\"not_found\"");
    expect_out(c, 0, "\"id\":\"w1\"");
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);

    /* Already assigned before the watch: watching, then match.assigned. */
    http_ticket(fx, "x", as[0]);
    commit_match(fx, as, 1, false); /* the publish never happened */
    run(fx);
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"id\":\"w2\",\"data\":{\"ticketId\":\"%s\"}}", as[0]);
    run(fx);
    expect_out(c, 1, "{\"type\":\"watching\",\"v\":1,\"id\":\"w2\",\"data\":{\"ticketId\":\"");
    expect_out(c, 1, "\"state\":\"assigned\",\"version\":2}");
    expect_out(c, 2, "\"type\":\"match.assigned\"");
    assert_false(has(c->out[2], "\"id\":")); /* a push carries no id */
    /* Watch it again (MSG-043): watching, no second delivery. */
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", as[0]);
    run(fx);
    assert_int_equal(c->n_out, 4);
    expect_out(c, 3, "\"type\":\"watching\"");
    assert_int_equal(count_type(c, "match.assigned"), 1);
    assert_int_equal(fx->metrics.pushes_deduped, 1);

    /* Watch twice while queued, then the ticket expires: one push. */
    http_ticket(fx, "y", q);
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", q);
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", q);
    run(fx);
    assert_int_equal(c->n_out, 6);
    assert_int_equal(mw_hub_watch_count(fx->hub), 1);
    assert_true(mw_ticket_store_sweep(&fx->st, fx->now + 600 * 1000) >= 1);
    run(fx);
    assert_int_equal(c->n_out, 7);
    expect_out(c, 6, "{\"type\":\"ticket.expired\",\"v\":1,\"data\":{\"ticketId\":\"");
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    /* Watching an expired ticket: watching with that state, no push. */
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", q);
    run(fx);
    assert_int_equal(c->n_out, 8);
    expect_out(c, 7, "\"state\":\"expired\",\"version\":2}");
}

static void test_reply_order(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);

    /* All sent in one turn; the store answers later; replies keep order. */
    say(fx, c,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"1\",\"data\":{\"queue\":\"duel\","
        "\"playerId\":\"p\"}}");
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"id\":\"2\",\"data\":{}}");
    say(fx, c,
        "{\"type\":\"watch\",\"v\":1,\"id\":\"3\",\"data\":{\"ticketId\":"
        "\"00000000-0000-4000-8000-000000000000\"}}");
    say(fx, c, "nonsense");
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"id\":\"5\",\"data\":{}}");
    assert_int_equal(c->n_out, 0);
    run(fx);
    assert_int_equal(c->n_out, 5);
    expect_out(c, 0, "\"type\":\"enqueued\",\"v\":1,\"id\":\"1\"");
    expect_out(c, 1, "\"type\":\"pong\",\"v\":1,\"id\":\"2\"");
    expect_out(c, 2, "\"type\":\"error\",\"v\":1,\"id\":\"3\"");
    expect_out(c, 3, "\"code\":\"bad_json\"");
    expect_out(c, 4, "\"type\":\"pong\",\"v\":1,\"id\":\"5\"");
}

static void test_rate_limit(void **state)
{
    struct fx *fx = *state;
    struct conn *c;

    fx->env.limits.rate_per_sec = 2;
    fx->env.limits.rate_burst = 3;
    c = conn_new(fx);
    for (int i = 0; i < 5; i++)
        sayf(fx, c, "{\"type\":\"ping\",\"v\":1,\"id\":\"p%d\",\"data\":{}}", i);
    assert_int_equal(c->n_out, 5);
    expect_out(c, 2, "\"type\":\"pong\"");
    expect_out(c, 3, "\"code\":\"rate_limited\"");
    expect_out(c, 3, "\"id\":\"p3\""); /* still echoes the id */
    expect_out(c, 3, "\"retryable\":true");
    expect_out(c, 4, "\"code\":\"rate_limited\"");
    fx->now += 500; /* one token back */
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"data\":{}}");
    expect_out(c, 5, "\"type\":\"pong\"");
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"data\":{}}");
    expect_out(c, 6, "\"code\":\"rate_limited\"");
    assert_int_equal(fx->metrics.errors[MW_CODE_RATE_LIMITED], 3);
    /* Rate abuse alone reaches the consecutive-error close. */
    for (int i = 0; i < 20 && !c->close_calls; i++)
        say(fx, c, "{\"type\":\"ping\",\"v\":1,\"data\":{}}");
    assert_int_equal(c->close_code, MW_CLOSE_POLICY);
}

/* The point of Matchwire: many tickets assigned in the same loop turn as
 * their watch arrives, in every order; every watcher gets exactly one
 * match.assigned. */
static void test_late_watch_race(void **state)
{
    struct fx *fx = *state;
    enum { N = 48 };
    char ids[N][MW_TICKET_ID_LEN + 1];
    struct conn *cs[N];

    for (int i = 0; i < N; i++) {
        char p[16];
        snprintf(p, sizeof(p), "p%d", i);
        http_ticket(fx, p, ids[i]);
        cs[i] = conn_new(fx);
    }
    /* Pairs of tickets, each pair a match; six interleavings of the commit
     * (assign + publish) with the two watches, all in one loop turn. */
    for (int k = 0; k < N; k += 2) {
        char pair[2][MW_TICKET_ID_LEN + 1];
        memcpy(pair[0], ids[k], sizeof(pair[0]));
        memcpy(pair[1], ids[k + 1], sizeof(pair[1]));
        int mode = (k / 2) % 6;
        if (mode == 0) /* committed before both watches */
            commit_match(fx, pair, 2, true);
        if (mode == 3) /* committed before, publish lost: the store read delivers */
            commit_match(fx, pair, 2, false);
        sayf(fx, cs[k], "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[k]);
        if (mode == 1) /* between the two watches */
            commit_match(fx, pair, 2, true);
        sayf(fx, cs[k + 1], "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}",
             ids[k + 1]);
        if (mode == 2) /* after both watches, same turn */
            commit_match(fx, pair, 2, true);
    }
    /* Modes 4, 5: committed after one and two loop steps (the watch callbacks
     * may have run, the channel message may be in flight). */
    mw_defer_run(fx->d, 1);
    for (int k = 0; k < N; k += 2) {
        if ((k / 2) % 6 == 4) {
            char pair[2][MW_TICKET_ID_LEN + 1];
            memcpy(pair[0], ids[k], sizeof(pair[0]));
            memcpy(pair[1], ids[k + 1], sizeof(pair[1]));
            commit_match(fx, pair, 2, true);
        }
    }
    mw_defer_run(fx->d, 2);
    for (int k = 0; k < N; k += 2) {
        if ((k / 2) % 6 == 5) {
            char pair[2][MW_TICKET_ID_LEN + 1];
            memcpy(pair[0], ids[k], sizeof(pair[0]));
            memcpy(pair[1], ids[k + 1], sizeof(pair[1]));
            commit_match(fx, pair, 2, true);
        }
    }
    run(fx);
    assert_int_equal(fx->commits_pending, 0);
    for (int i = 0; i < N; i++) {
        struct conn *c = cs[i];
        if (count_type(c, "match.assigned") != 1)
            fail_msg("watcher %d got %zu match.assigned", i, count_type(c, "match.assigned"));
        assert_int_equal(c->n_out, 2);
        expect_out(c, 0, "\"type\":\"watching\""); /* the reply first (MSG-041) */
        expect_out(c, 1, "\"type\":\"match.assigned\"");
        assert_true(has(c->out[1], ids[i]));
    }
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    /* Re-publishing every assignment changes nothing (dedupe, MSG-072). */
    uint64_t deduped = fx->metrics.pushes_deduped;
    for (int i = 0; i < N; i++)
        sayf(fx, cs[i], "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[i]);
    run(fx);
    for (int i = 0; i < N; i++)
        assert_int_equal(count_type(cs[i], "match.assigned"), 1);
    assert_int_equal(fx->metrics.pushes_deduped, deduped + N);
}

/* The same, for tickets enqueued over the socket and assigned as soon as
 * the worker could see them (MSG-027). */
static void test_enqueue_race(void **state)
{
    struct fx *fx = *state;
    enum { N = 16 };
    struct conn *cs[N];
    char ids[N][MW_TICKET_ID_LEN + 1];

    for (int i = 0; i < N; i++) {
        cs[i] = conn_new(fx);
        sayf(fx, cs[i],
             "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"p%d\"}}",
             i);
    }
    /* One step: the create results (and routes) are in; commit at once. */
    mw_defer_run(fx->d, 1);
    for (int i = 0; i < N; i++)
        ticket_of(cs[i], 0, ids[i]);
    commit_match(fx, ids, N, true);
    run(fx);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cs[i]->n_out, 2);
        expect_out(cs[i], 1, "\"type\":\"match.assigned\"");
    }
}

static void use_counting_store(struct fx *fx);
static unsigned n_get;

/* A store whose worker runs elsewhere (Redis) may assign a ticket and its
 * notice reach the gateway before the creating connection has the create's
 * result (two connections to Redis, in any order). The store tells the id
 * when the create call returns, before it has run the create; the session
 * registers the route at once, so the notice reaches it, is held, and goes
 * out right after the `enqueued` reply (which, read at creation, still says
 * queued): one match.assigned, nothing read again (no get). Here the id is
 * predicted from the PRNG and the notice handed to the hub directly (the
 * memory channel delivers later, after the result). A session that
 * registered the route only in the create callback would get no notice,
 * and deliver nothing unless it read the ticket again. */
static void test_enqueue_assigned_before_result(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);
    struct fake_rng clone = fx->rng;
    char ids[1][MW_TICKET_ID_LEN + 1], got[MW_TICKET_ID_LEN + 1];
    struct mw_match m = {.n = 1, .assigned_ms = fx->now};
    struct mw_buf env;
    struct mw_assigned a;

    use_counting_store(fx);
    assert_int_equal(mw_uuid4(fake_rng_fill, &clone, ids[0]), 0);
    say(fx, c, "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"p\"}}");
    assert_int_equal(c->n_out, 0); /* the create waits for the store */
    commit_match(fx, ids, 1, false);
    /* The notice, as the Redis subscriber would deliver it, before the
     * create's result. */
    snprintf(m.match_id, sizeof(m.match_id), "11111111-2222-4333-8444-555555555555");
    snprintf(m.connection, sizeof(m.connection), "gs1.example:7777");
    memcpy(m.ticket_ids[0], ids[0], sizeof(m.ticket_ids[0]));
    snprintf(m.player_ids[0], sizeof(m.player_ids[0]), "player0");
    m.versions[0] = 2;
    mw_buf_init(&env, 0);
    assert_int_equal(mw_msg_encode_match_assigned(&env, &m, 0, 2), 0);
    a = (struct mw_assigned){.ticket_id = ids[0],
                             .envelope = env.data,
                             .envelope_len = env.len,
                             .version = 2,
                             .assigned_ms = fx->now};
    mw_hub_on_assigned(fx->hub, &a);
    assert_int_equal(c->n_out, 0); /* held: the reply goes first */
    run(fx);
    assert_int_equal(fx->commits_pending, 0);
    ticket_of(c, 0, got);
    assert_string_equal(got, ids[0]);
    expect_out(c, 0, "\"state\":\"queued\",\"version\":1");
    assert_int_equal(c->n_out, 2);
    expect_out(c, 1, "\"type\":\"match.assigned\"");
    assert_int_equal(n_get, 0); /* no read after the result */
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    mw_buf_release(&env);
}

static void test_close_in_flight(void **state)
{
    struct fx *fx = *state;
    struct conn *a = conn_new(fx), *b = conn_new(fx), *w = conn_new(fx);
    char t[MW_TICKET_ID_LEN + 1], h[MW_TICKET_ID_LEN + 1];
    uint64_t n[4];

    enqueue(fx, a, "alice", t);
    http_ticket(fx, "hh", h);
    /* Requests in flight and queued behind them when the connection goes. */
    say(fx, b, "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"b\"}}");
    sayf(fx, b, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", h);
    sayf(fx, w, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", h);
    conn_close(fx, b);
    conn_close(fx, w);
    conn_close(fx, a);
    run(fx); /* callbacks find closed sessions: no io (asserted), then free (ASan) */
    assert_int_equal(b->n_out, 0);
    assert_int_equal(w->n_out, 0);
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    /* Every watcher was given back: a's ticket, b's new ticket and h (once
     * watched) all get cancelled by the grace rule. */
    fx->st.ops->counts(fx->st.impl, n);
    assert_int_equal(n[MW_TICKET_QUEUED], 3);
    assert_int_equal(mw_ticket_store_sweep(&fx->st, fx->now + GRACE), 3);
    run(fx);
    fx->st.ops->counts(fx->st.impl, n);
    assert_int_equal(n[MW_TICKET_CANCELLED], 3);

    /* Closed with a callback in flight, then the store is destroyed: the
     * callback gets MW_ECLOSED and the session is freed (teardown, ASan). */
    struct conn *d = conn_new(fx);
    say(fx, d, "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"d\"}}");
    conn_close(fx, d);
}

static void test_slow_consumer(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);

    c->send_limit = 1;
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"data\":{}}");
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"data\":{}}");
    say(fx, c, "{\"type\":\"ping\",\"v\":1,\"data\":{}}");
    assert_int_equal(c->n_out, 1);
    assert_int_equal(fx->metrics.outbound_drops, 1); /* it stopped after the first refusal */
}

static void test_oom(void **state)
{
    struct fx *fx = *state;
    char h[MW_TICKET_ID_LEN + 1];
    long k;

    http_ticket(fx, "h", h);
    mw_alloc_fail_after(0);
    assert_null(mw_session_new(&fx->env, &io, NULL));
    {
        /* An idle session is one allocation: its ticket table and reply
         * buffer come with its first ticket and reply. */
        struct mw_session *idle;

        mw_alloc_fail_after(1);
        idle = mw_session_new(&fx->env, &io, NULL);
        assert_non_null(idle);
        mw_session_on_close(idle, 0);
    }
    mw_alloc_fail_reset();
    /* Every allocation of an enqueue and of a watch, failed in turn: an
     * error reply or a close, never a crash or a leak (ASan). */
    for (k = 0; k < 40; k++) {
        struct conn *c = conn_new(fx);
        mw_alloc_fail_after(k);
        say(fx, c,
            "{\"type\":\"enqueue\",\"v\":1,\"id\":\"e\",\"data\":{\"queue\":\"duel\","
            "\"playerId\":\"p\",\"attributes\":{\"region\":\"eu\"}}}");
        sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"id\":\"w\",\"data\":{\"ticketId\":\"%s\"}}", h);
        run(fx);
        mw_alloc_fail_reset();
        run(fx);
        /* Each reply echoes its id, except an internal error raised while
         * decoding (the id could not be read without memory). */
        for (size_t i = 0; i < c->n_out; i++)
            if (!(has(c->out[i], "\"id\":\"e\"") || has(c->out[i], "\"id\":\"w\"") ||
                  has(c->out[i], "\"code\":\"internal\"")))
                fail_msg("k=%ld: %s", k, c->out[i]);
        assert_true(c->n_out <= 2);
        if (c->n_out < 2)
            assert_true(c->close_calls > 0 || c->n_out == 0 || has(c->out[0], "\"error\""));
        conn_close(fx, c);
        conn_clear_out(c);
        fx->n_conns--; /* reuse the slot */
        memset(c, 0, sizeof(*c));
        run(fx);
    }
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
}

/* ---- Review regressions ------------------------------------------------------------ */

/* MSG-094: any reply other than a counted error resets the count, including
 * an error with another code (not_found). */
static void test_other_error_resets_count(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);

    for (int i = 0; i < 9; i++)
        say(fx, c, "[]");
    /* An invalid ticket id: not_found, not a protocol error; resets. */
    say(fx, c, "{\"type\":\"cancel\",\"v\":1,\"data\":{\"ticketId\":\"nope\"}}");
    expect_out(c, 9, "\"code\":\"not_found\"");
    for (int i = 0; i < 9; i++)
        say(fx, c, "[]");
    assert_int_equal(c->close_calls, 0);
    say(fx, c, "[]");
    assert_int_equal(c->close_calls, 1);
    assert_int_equal(c->close_code, MW_CLOSE_POLICY);
}

/* limits.max_consecutive_errors 0 means the default (10), not "close on the
 * first error". */
static void test_zero_error_limit_is_default(void **state)
{
    struct fx *fx = *state;
    struct conn *c;

    fx->env.limits.max_consecutive_errors = 0;
    c = conn_new(fx);
    for (int i = 0; i < 9; i++)
        say(fx, c, "[]");
    assert_int_equal(c->close_calls, 0);
    say(fx, c, "[]");
    assert_int_equal(c->close_calls, 1);
}

/* A re-watch (this session already holds a store watcher) still in flight
 * when the connection closes: the second watcher the store counted is given
 * back too, so the grace rule (MSG-074) still cancels the ticket. */
static void test_close_during_rewatch_gives_watchers_back(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);
    char h[MW_TICKET_ID_LEN + 1];
    uint64_t n[4];

    http_ticket(fx, "h", h);
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", h);
    run(fx);
    expect_out(c, 0, "\"type\":\"watching\"");
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", h);
    conn_close(fx, c); /* the second attach is in flight */
    run(fx);
    assert_int_equal(mw_ticket_store_sweep(&fx->st, fx->now + GRACE), 1);
    run(fx);
    fx->st.ops->counts(fx->st.impl, n);
    assert_int_equal(n[MW_TICKET_CANCELLED], 1);
}

/* MSG-072 / MSG-043: a connection never receives the same match.assigned
 * twice, however many other tickets it finished in between. */
static void test_no_second_delivery_after_many_tickets(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx), *o = conn_new(fx);
    char ids[2][MW_TICKET_ID_LEN + 1];
    char t[MW_TICKET_ID_LEN + 1];

    http_ticket(fx, "x", ids[0]);
    http_ticket(fx, "y", ids[1]);
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    run(fx);
    commit_match(fx, ids, 2, true);
    run(fx);
    assert_int_equal(count_type(c, "match.assigned"), 1);
    /* 40 more tickets finished on this connection (enqueue, then cancel). */
    for (int i = 0; i < 40; i++) {
        conn_clear_out(c);
        fx->now += 1000; /* stay within the message rate */
        enqueue(fx, c, "p", t);
        sayf(fx, c, "{\"type\":\"cancel\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", t);
        run(fx);
        expect_out(c, 1, "\"type\":\"cancelled\"");
    }
    conn_clear_out(c);
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    run(fx);
    expect_out(c, 0, "\"state\":\"assigned\"");
    assert_int_equal(count_type(c, "match.assigned"), 0);
    assert_int_equal(c->n_out, 1);
    /* Another connection watching it gets it (the memory is per connection). */
    sayf(fx, o, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    run(fx);
    assert_int_equal(count_type(o, "match.assigned"), 1);
}

/* The delivered table is bounded: once 256 match.assigned whose tickets the
 * store still keeps were sent on one connection, a watch of a new ticket is
 * refused with too_many_tickets (nothing registered); once the store has
 * forgotten them (retention + margin), new tickets are admitted again. */
static void test_delivered_table_bound(void **state)
{
    struct fx *fx = *state;
    struct conn *c;
    char ids[1][MW_TICKET_ID_LEN + 1];

    fx->env.limits.retention_ms = 600 * 1000;
    c = conn_new(fx);
    for (int i = 0; i < 256; i++) {
        conn_clear_out(c);
        fx->now += 1000;
        http_ticket(fx, "p", ids[0]);
        sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
        run(fx);
        expect_out(c, 0, "\"type\":\"watching\"");
        commit_match(fx, ids, 1, true);
        run(fx);
        if (count_type(c, "match.assigned") != 1)
            fail_msg("delivery %d missing", i);
    }
    conn_clear_out(c);
    http_ticket(fx, "p", ids[0]);
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"id\":\"w\",\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    sayf(fx, c, "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"p\"}}");
    run(fx);
    expect_out(c, 0, "\"code\":\"too_many_tickets\"");
    expect_out(c, 0, "\"id\":\"w\"");
    expect_out(c, 1, "\"code\":\"too_many_tickets\"");
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    /* Retention (600 s) + margin (60 s) after the last delivery: forgotten. */
    conn_clear_out(c);
    fx->now += 661 * 1000;
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    run(fx);
    expect_out(c, 0, "\"type\":\"watching\"");
}

/* A store whose attach results can be turned into MW_EUNAVAIL (a Redis
 * hiccup), delegating everything else to the memory store. */
static const struct mw_ticket_store_ops *real_ops;
static struct mw_ticket_store_ops flaky_ops;
static bool flaky_attach;

struct attach_wrap {
    mw_ticket_cb cb;
    void *ud;
};

static void flaky_attach_cb(void *ud, int status, const struct mw_ticket *t)
{
    struct attach_wrap w = *(struct attach_wrap *)ud;

    free(ud);
    if (flaky_attach && status == 0)
        w.cb(w.ud, MW_EUNAVAIL, NULL);
    else
        w.cb(w.ud, status, t);
}

static int flaky_attach_op(void *impl, const char *id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    struct attach_wrap *w = malloc(sizeof(*w));
    int rc;

    assert_non_null(w);
    w->cb = cb;
    w->ud = ud;
    rc = real_ops->attach(impl, id, now_ms, flaky_attach_cb, w);
    if (rc)
        free(w);
    return rc;
}

/* MSG-041: a re-watch that fails in the store leaves the earlier watch
 * standing; a match.assigned that arrived while it was in flight (held) is
 * delivered after the error reply, not dropped. */
static void test_failed_rewatch_releases_held_push(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);
    char ids[2][MW_TICKET_ID_LEN + 1];

    real_ops = fx->st.ops;
    flaky_ops = *real_ops;
    flaky_ops.attach = flaky_attach_op;
    fx->st.ops = &flaky_ops;
    flaky_attach = false;

    enqueue(fx, c, "alice", ids[0]);
    http_ticket(fx, "bob", ids[1]);
    commit_match(fx, ids, 2, true);
    mw_defer_run(fx->d, 1); /* the store commits; the publish is queued */
    flaky_attach = true;
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"id\":\"w\",\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    run(fx); /* the push arrives (held), then the attach fails */
    flaky_attach = false;
    fx->st.ops = real_ops;
    assert_int_equal(c->n_out, 3);
    expect_out(c, 1, "\"code\":\"unavailable\"");
    expect_out(c, 1, "\"id\":\"w\"");
    expect_out(c, 2, "\"type\":\"match.assigned\"");
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
}

/* A store that counts detach and get calls, delegating to the memory store. */
static struct mw_ticket_store_ops counting_ops;
static unsigned n_detach;

static int counting_detach_op(void *impl, const char *id, int64_t now_ms)
{
    n_detach++;
    return real_ops->detach(impl, id, now_ms);
}

static int counting_get_op(void *impl, const char *id, mw_ticket_cb cb, void *ud)
{
    n_get++;
    return real_ops->get(impl, id, cb, ud);
}

static void use_counting_store(struct fx *fx)
{
    real_ops = fx->st.ops;
    counting_ops = *real_ops;
    counting_ops.detach = counting_detach_op;
    counting_ops.get = counting_get_op;
    fx->st.ops = &counting_ops;
    n_detach = 0;
    n_get = 0;
}

/* CHN-071: the store keeps watcher counts only while a ticket is queued, so
 * a session gives nothing back for a ticket it knows is final: no detach
 * after it delivered match.assigned (pushed, or read by a watch or a
 * replayed enqueue), nor after ticket.expired / ticket.cancelled, nor after
 * its own cancel. A queued ticket's watcher is still given back on close,
 * and the grace rule (MSG-074) then cancels it. */
static void test_no_detach_for_final_tickets(void **state)
{
    struct fx *fx = *state;
    struct conn *a, *b, *c, *w;
    char ids[2][MW_TICKET_ID_LEN + 1], t[MW_TICKET_ID_LEN + 1], q[MW_TICKET_ID_LEN + 1];
    const char *idem = "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\","
                       "\"playerId\":\"carol\",\"idempotencyKey\":\"k\"}}";
    uint64_t n[4];

    use_counting_store(fx);
    a = conn_new(fx);
    b = conn_new(fx);
    c = conn_new(fx);
    w = conn_new(fx);
    /* Pushed match.assigned to the creators and to a watcher. */
    enqueue(fx, a, "alice", ids[0]);
    enqueue(fx, b, "bob", ids[1]);
    sayf(fx, w, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    run(fx);
    commit_match(fx, ids, 2, true);
    run(fx);
    assert_int_equal(count_type(a, "match.assigned"), 1);
    assert_int_equal(count_type(b, "match.assigned"), 1);
    assert_int_equal(count_type(w, "match.assigned"), 1);
    assert_int_equal(n_detach, 0);
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    /* Read by a watch (the push was lost): delivered from the attach result. */
    http_ticket(fx, "h", t);
    memcpy(ids[0], t, sizeof(t));
    commit_match(fx, ids, 1, false);
    run(fx);
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", t);
    run(fx);
    assert_int_equal(count_type(c, "match.assigned"), 1);
    assert_int_equal(n_detach, 0);
    /* A replayed enqueue of an assigned ticket (carries its envelope). */
    conn_clear_out(c);
    say(fx, c, idem);
    run(fx);
    ticket_of(c, 0, ids[0]);
    commit_match(fx, ids, 1, false);
    run(fx);
    fx->now += 1000;
    say(fx, c, idem); /* the same ticket, now assigned */
    run(fx);
    assert_int_equal(count_type(c, "match.assigned"), 1);
    assert_int_equal(n_detach, 0);
    /* Own cancel, and a ticket.cancelled push to another watcher. */
    enqueue(fx, a, "alice", t);
    sayf(fx, w, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", t);
    run(fx);
    sayf(fx, a, "{\"type\":\"cancel\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", t);
    run(fx);
    assert_int_equal(count_type(w, "ticket.cancelled"), 1);
    assert_int_equal(n_detach, 0);
    /* Expired (MSG-075): ticket.expired to its creator. */
    enqueue(fx, b, "bob", t);
    assert_true(mw_ticket_store_sweep(&fx->st, fx->now + 600 * 1000) >= 1);
    run(fx);
    assert_int_equal(count_type(b, "ticket.expired"), 1);
    assert_int_equal(n_detach, 0);
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);

    /* Queued tickets: a close gives each watcher back (creator, watcher). */
    enqueue(fx, a, "alice", q);
    sayf(fx, w, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", q);
    run(fx);
    conn_close(fx, w);
    assert_int_equal(n_detach, 1);
    conn_close(fx, a);
    assert_int_equal(n_detach, 2);
    run(fx);
    fx->st.ops->counts(fx->st.impl, n);
    assert_int_equal(n[MW_TICKET_QUEUED], 1);
    assert_int_equal(mw_ticket_store_sweep(&fx->st, fx->now + GRACE), 1);
    run(fx);
    fx->st.ops->counts(fx->st.impl, n);
    assert_int_equal(n[MW_TICKET_QUEUED], 0);
    fx->st.ops = real_ops;
}

/* MSG-028 + MSG-090: a replayed enqueue of a ticket the connection already
 * holds is answered (same ticket, watched as a re-watch would be) even when
 * the connection is at its live-ticket limit; a new key still is refused. */
static void test_replay_at_limit(void **state)
{
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);
    char ids[8][MW_TICKET_ID_LEN + 1], again[MW_TICKET_ID_LEN + 1];

    say(fx, c,
        "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"p\","
        "\"idempotencyKey\":\"k1\"}}");
    run(fx);
    ticket_of(c, 0, ids[0]);
    for (int i = 1; i < 8; i++)
        enqueue(fx, c, "p", ids[i]);
    conn_clear_out(c);
    say(fx, c,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"r\",\"data\":{\"queue\":\"duel\",\"playerId\":"
        "\"p\",\"idempotencyKey\":\"k1\"}}");
    say(fx, c,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"n\",\"data\":{\"queue\":\"duel\",\"playerId\":"
        "\"p\",\"idempotencyKey\":\"k2\"}}");
    run(fx);
    expect_out(c, 0, "\"type\":\"enqueued\"");
    expect_out(c, 0, "\"id\":\"r\"");
    ticket_of(c, 0, again);
    assert_string_equal(again, ids[0]);
    expect_out(c, 1, "\"code\":\"too_many_tickets\"");
    assert_int_equal(mw_hub_watch_count(fx->hub), 8);
}

/* A message to an idle session is handled in place: the session allocates
 * nothing of its own for it (only the decoder does); while a request waits
 * on the store, the next message is copied into the bounded queue (one
 * allocation) and answered in order after it. */
static void test_in_place_when_idle(void **state)
{
    static const char ping[] = "{\"type\":\"ping\",\"v\":1,\"id\":\"p\",\"data\":{}}";
    struct fx *fx = *state;
    struct conn *c = conn_new(fx);
    struct mw_client_msg m;
    struct mw_msg_error err;
    unsigned long before, decode_allocs, session_allocs;

    say(fx, c, ping); /* warms the shared reply buffer */
    assert_int_equal(c->n_out, 1);
    before = mw_alloc_count();
    assert_int_equal(mw_msg_decode(ping, strlen(ping), &m, &err), 0);
    mw_client_msg_clear(&m);
    decode_allocs = mw_alloc_count() - before;
    before = mw_alloc_count();
    say(fx, c, ping);
    session_allocs = mw_alloc_count() - before;
    assert_int_equal(c->n_out, 2); /* answered at once */
    assert_int_equal(session_allocs, decode_allocs);

    say(fx, c,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"e\",\"data\":{\"queue\":\"duel\","
        "\"playerId\":\"p\"}}");
    assert_int_equal(c->n_out, 2); /* waits on the store */
    before = mw_alloc_count();
    say(fx, c, ping);
    assert_int_equal(mw_alloc_count() - before, 1); /* the queued copy */
    assert_int_equal(c->n_out, 2);
    run(fx);
    assert_true(c->n_out >= 4);
    assert_true(has(c->out[2], "\"enqueued\""));
    assert_true(has(c->out[3], "\"pong\""));
}

/* MSG-127: requests pile up behind one waiting on a slow store. A client
 * within the rate limit that fills the queue is closed 1013 (retryable: the
 * backend is slow, not the client wrong), never 1008; one over the rate
 * still gets 1008. */
static void test_queue_full_behind_slow_store(void **state)
{
    struct fx *fx = *state;
    struct conn *a = conn_new(fx), *b = conn_new(fx);
    int i;

    say(fx, a,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"e\",\"data\":{\"queue\":\"duel\","
        "\"playerId\":\"a\"}}");
    /* 40 pings a second (under 50/s): the store does not answer meanwhile. */
    for (i = 0; i < 200 && !a->close_calls; i++) {
        fx->now += 25;
        sayf(fx, a, "{\"type\":\"ping\",\"v\":1,\"id\":\"p%d\",\"data\":{}}", i);
    }
    assert_int_equal(a->close_calls, 1);
    assert_int_equal(a->close_code, MW_CLOSE_TRY_AGAIN);
    assert_int_equal(i, 129); /* the bound: 128 queued behind the enqueue */
    /* The same bound reached by a client over the rate: 1008. */
    say(fx, b,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"e\",\"data\":{\"queue\":\"duel\","
        "\"playerId\":\"b\"}}");
    for (i = 0; i < 200 && !b->close_calls; i++)
        sayf(fx, b, "{\"type\":\"ping\",\"v\":1,\"id\":\"p%d\",\"data\":{}}", i);
    assert_int_equal(b->close_calls, 1);
    assert_int_equal(b->close_code, MW_CLOSE_POLICY);
    run(fx);
}

struct got_ticket {
    struct mw_ticket t;
    int calls;
};

static void on_got(void *ud, int status, const struct mw_ticket *t)
{
    struct got_ticket *g = ud;

    assert_int_equal(status, 0);
    assert_int_equal(mw_ticket_copy(&g->t, t), 0);
    g->calls++;
}

/* Issue 13, bug 1 (MSG-072): a recovery push (the re-read after a channel
 * resubscription, CHN-023) is remembered by the ticket's real assignedAt,
 * not by the time of the connection's last request. Enqueue at t=0; the
 * commit at 100 s is never published; the re-read pushes it at 105 s; a
 * watch at 670 s (the store keeps the ticket until 100 + 600 s) must not
 * deliver it a second time. With the delivery remembered from t=0 it was
 * forgotten at 660 s and sent again. */
static void test_recovery_push_remembered_by_assigned_at(void **state)
{
    struct fx *fx = *state;
    struct conn *c;
    char ids[2][MW_TICKET_ID_LEN + 1];
    struct got_ticket g = {0};

    fx->env.limits.retention_ms = 600 * 1000; /* the store's assigned TTL (default) */
    c = conn_new(fx);
    enqueue(fx, c, "a", ids[0]);
    http_ticket(fx, "b", ids[1]);
    fx->now = T0 + 100 * 1000;
    commit_match(fx, ids, 2, false); /* the publish is lost */
    run(fx);
    assert_int_equal(count_type(c, "match.assigned"), 0);

    fx->now = T0 + 105 * 1000; /* resubscribed: the server re-reads */
    assert_int_equal(mw_ticket_store_get(&fx->st, ids[0], on_got, &g), 0);
    run(fx);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.t.ended_ms, T0 + 100 * 1000);
    mw_hub_on_reread(fx->hub, &g.t);
    assert_int_equal(count_type(c, "match.assigned"), 1);
    assert_int_equal(c->out_assigned[c->n_out - 1], 0); /* a recovery: no latency sample */
    mw_ticket_clear(&g.t);

    fx->now = T0 + 670 * 1000;
    conn_clear_out(c);
    sayf(fx, c, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    run(fx);
    expect_out(c, 0, "\"state\":\"assigned\"");
    assert_int_equal(count_type(c, "match.assigned"), 0);
}

/* ---- Authenticated mode (spec/auth.md section 6) ------------------------------ */

static struct conn *conn_as(struct fx *fx, const char *player)
{
    struct conn *c = conn_new(fx);

    assert_int_equal(mw_session_set_player(c->s, player), 0);
    return c;
}

/* AUTH-061: an enqueue for another playerId is forbidden and creates and
 * reads nothing; the token's own playerId works. */
static void test_auth_enqueue_other_player(void **state)
{
    struct fx *fx = *state;
    struct conn *a = conn_as(fx, "alice");
    char t[MW_TICKET_ID_LEN + 1];
    uint64_t n[4];

    assert_int_equal(mw_session_set_player(a->s, ""), MW_EINVAL);
    say(fx, a,
        "{\"type\":\"enqueue\",\"v\":1,\"id\":\"e1\",\"data\":{\"queue\":\"duel\","
        "\"playerId\":\"bob\"}}");
    run(fx);
    assert_int_equal(a->n_out, 1);
    expect_out(a, 0, "\"code\":\"forbidden\"");
    expect_out(a, 0, "\"id\":\"e1\"");
    expect_out(a, 0, "\"retryable\":false");
    fx->st.ops->counts(fx->st.impl, n);
    assert_int_equal(n[0] + n[1] + n[2] + n[3], 0);
    assert_int_equal(fx->metrics.errors[MW_CODE_FORBIDDEN], 1);
    /* Byte for byte: a prefix or a case variant is another player. */
    say(fx, a,
        "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"Alice\"}}");
    run(fx);
    expect_out(a, 1, "\"code\":\"forbidden\"");
    enqueue(fx, a, "alice", t);
    assert_int_equal(mw_hub_watch_count(fx->hub), 1);
}

/* AUTH-063: another player's (playerId, idempotencyKey) cannot be replayed:
 * naming the victim is forbidden, and the same key under one's own id is a
 * different ticket. */
static void test_auth_replay_victims_key(void **state)
{
    struct fx *fx = *state;
    struct conn *victim = conn_as(fx, "bob"), *eve = conn_as(fx, "eve");
    char vt[MW_TICKET_ID_LEN + 1], et[MW_TICKET_ID_LEN + 1];

    say(fx, victim,
        "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"bob\","
        "\"idempotencyKey\":\"k-1\"}}");
    run(fx);
    expect_out(victim, 0, "\"type\":\"enqueued\"");
    ticket_of(victim, 0, vt);
    say(fx, eve,
        "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"bob\","
        "\"idempotencyKey\":\"k-1\"}}");
    run(fx);
    assert_int_equal(eve->n_out, 1);
    expect_out(eve, 0, "\"code\":\"forbidden\"");
    assert_false(has(eve->out[0], vt));
    say(fx, eve,
        "{\"type\":\"enqueue\",\"v\":1,\"data\":{\"queue\":\"duel\",\"playerId\":\"eve\","
        "\"idempotencyKey\":\"k-1\"}}");
    run(fx);
    expect_out(eve, 1, "\"type\":\"enqueued\"");
    ticket_of(eve, 1, et);
    assert_string_not_equal(et, vt);
}

/* AUTH-062: a watch of another player's ticket is answered not_found like
 * an unknown ticket; the route registered before the read (MSG-041) and
 * the store's watcher count are undone, and a push that arrived while the
 * watch was in flight never reaches the connection. */
static void test_auth_watch_foreign_ticket(void **state)
{
    struct fx *fx = *state;
    struct conn *eve = conn_as(fx, "eve");
    char ids[1][MW_TICKET_ID_LEN + 1], q[MW_TICKET_ID_LEN + 1];
    uint64_t n[4];

    /* Queued: not_found with the unknown ticket's exact words. */
    http_ticket(fx, "bob", q);
    sayf(fx, eve, "{\"type\":\"watch\",\"v\":1,\"id\":\"w1\",\"data\":{\"ticketId\":\"%s\"}}", q);
    run(fx);
    assert_int_equal(eve->n_out, 1);
    expect_out(eve, 0,
               "{\"type\":\"error\",\"v\":1,\"id\":\"w1\",\"data\":{\"code\":\"not_found\","
               "\"message\":\"no such ticket\"");
    assert_false(has(eve->out[0], q));
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    /* The watcher count went back: the unwatched ticket gets its grace. */
    assert_int_equal(mw_ticket_store_sweep(&fx->st, fx->now + GRACE), 1);
    run(fx);
    fx->st.ops->counts(fx->st.impl, n);
    assert_int_equal(n[MW_TICKET_CANCELLED], 1);
    assert_int_equal(eve->n_out, 1); /* no ticket.cancelled push either */

    /* Assigned and published while the watch is in flight: held, then
     * dropped with the entry; only not_found goes out. */
    http_ticket(fx, "bob", ids[0]);
    sayf(fx, eve, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    commit_match(fx, ids, 1, true);
    run(fx);
    assert_int_equal(eve->n_out, 2);
    expect_out(eve, 1, "\"code\":\"not_found\"");
    assert_int_equal(count_type(eve, "match.assigned"), 0);
    assert_int_equal(mw_hub_watch_count(fx->hub), 0);
    /* And after it: nothing registered, nothing pushed. */
    sayf(fx, eve, "{\"type\":\"watch\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", ids[0]);
    run(fx);
    expect_out(eve, 2, "\"code\":\"not_found\"");
    assert_int_equal(count_type(eve, "match.assigned"), 0);
}

/* AUTH-062: the owner's own watch and cancel work as before. */
static void test_auth_cancel_foreign_ticket(void **state)
{
    struct fx *fx = *state;
    struct conn *bob = conn_as(fx, "bob"), *eve = conn_as(fx, "eve");
    char t[MW_TICKET_ID_LEN + 1];
    uint64_t n[4];

    enqueue(fx, bob, "bob", t);
    sayf(fx, eve, "{\"type\":\"cancel\",\"v\":1,\"id\":\"c1\",\"data\":{\"ticketId\":\"%s\"}}", t);
    run(fx);
    assert_int_equal(eve->n_out, 1);
    expect_out(eve, 0,
               "{\"type\":\"error\",\"v\":1,\"id\":\"c1\",\"data\":{\"code\":\"not_found\","
               "\"message\":\"no such live ticket\"");
    /* Unknown ticket: the same words. */
    say(fx, eve,
        "{\"type\":\"cancel\",\"v\":1,\"id\":\"c1\",\"data\":{\"ticketId\":"
        "\"00000000-0000-4000-8000-000000000000\"}}");
    run(fx);
    assert_string_equal(strstr(eve->out[0], "\"data\""), strstr(eve->out[1], "\"data\""));
    fx->st.ops->counts(fx->st.impl, n);
    assert_int_equal(n[MW_TICKET_QUEUED], 1);
    assert_int_equal(n[MW_TICKET_CANCELLED], 0);
    assert_int_equal(bob->n_out, 1); /* no ticket.cancelled */
    /* The owner cancels. */
    sayf(fx, bob, "{\"type\":\"cancel\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", t);
    run(fx);
    expect_out(bob, 1, "\"type\":\"cancelled\"");
    fx->st.ops->counts(fx->st.impl, n);
    assert_int_equal(n[MW_TICKET_CANCELLED], 1);
    /* A connection closed while the ownership read is in flight. */
    enqueue(fx, bob, "bob", t);
    sayf(fx, bob, "{\"type\":\"cancel\",\"v\":1,\"data\":{\"ticketId\":\"%s\"}}", t);
    conn_close(fx, bob);
    run(fx);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ping_and_ids),
        T(test_protocol_errors_and_1008),
        T(test_enqueue_assigned_push),
        T(test_idempotent_enqueue),
        T(test_ticket_limit),
        T(test_cancel_paths),
        T(test_watch_paths),
        T(test_reply_order),
        T(test_rate_limit),
        T(test_queue_full_behind_slow_store),
        T(test_late_watch_race),
        T(test_enqueue_race),
        T(test_enqueue_assigned_before_result),
        T(test_close_in_flight),
        T(test_slow_consumer),
        T(test_oom),
        T(test_other_error_resets_count),
        T(test_zero_error_limit_is_default),
        T(test_close_during_rewatch_gives_watchers_back),
        T(test_no_second_delivery_after_many_tickets),
        T(test_delivered_table_bound),
        T(test_failed_rewatch_releases_held_push),
        T(test_replay_at_limit),
        T(test_in_place_when_idle),
        T(test_no_detach_for_final_tickets),
        T(test_recovery_push_remembered_by_assigned_at),
        T(test_auth_enqueue_other_player),
        T(test_auth_replay_victims_key),
        T(test_auth_watch_foreign_ticket),
        T(test_auth_cancel_foreign_ticket),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
