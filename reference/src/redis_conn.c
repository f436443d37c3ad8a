/* redis_conn: one hiredis async connection on the server's libev loop that
 * connects, authenticates, selects its db and reconnects by itself
 * (redis_conn.h). Owners send their commands on mw_redis_conn_ctx() while it
 * is ready and learn of (re)connects and losses through two callbacks.
 *
 * Command timeout (spec/channel.md CHN-104, CHN-105): owners send on the
 * hiredis context directly, so the bound is kept here without wrapping any
 * command. Two hooks on hiredis' libev adapter see every command queued
 * (addWrite) and every read; `wait_since` is when the connection started
 * waiting for Redis (a command queued while nothing was pending) or last
 * heard from it while something still is. One ev_timer per connection ticks
 * at a tenth of the timeout: waiting for longer than the timeout resets the
 * connection (every pending callback gets a NULL reply, which owners answer
 * as unavailable); a connection quiet for half of it is probed. Replies come
 * in order, so "Redis sent nothing for T while a command waits" bounds every
 * command's wait by T as long as Redis is stalled, and never cuts off a
 * busy Redis that is still answering. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "redis_conn.h"

#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "error.h"
#include "log.h"

#define BACKOFF_MIN_DEFAULT_MS 100
#define BACKOFF_MAX_DEFAULT_MS 5000
/* A connect or handshake that takes longer than this is abandoned and
 * retried: hiredis 0.14 has no async connect timeout of its own, and a
 * blackholed address would otherwise leave us waiting for the kernel. */
#define HANDSHAKE_TIMEOUT_S 5.0
/* The watchdog ticks at timeout / TICK_DIVISOR, within these bounds. */
#define TICK_DIVISOR 10
#define TICK_MIN_S   0.005
#define TICK_MAX_S   0.2
#define HEARTBEAT    "mw:heartbeat" /* channel a subscribed connection probes with */

enum conn_state {
    ST_WAIT = 0,   /* backoff timer armed (or about to be) */
    ST_CONNECTING, /* TCP connect in progress */
    ST_HANDSHAKE,  /* AUTH/SELECT/PING sent, waiting for the PING reply */
    ST_READY,
    ST_CLOSING, /* mw_redis_conn_free() in progress */
};

struct mw_redis_conn {
    struct ev_loop *loop;
    struct mw_redis_opts opts;
    char name[32];
    mw_redis_ready_cb ready_cb;
    mw_redis_lost_cb lost_cb;
    void *ud;

    redisAsyncContext *ac; /* current context, NULL in ST_WAIT */
    enum conn_state state;
    ev_timer retry;   /* backoff before the next connect */
    ev_timer timeout; /* bound on connect + handshake; once ready, the watchdog tick */
    int64_t backoff_ms;
    int handshake_errors; /* error replies seen during this handshake */
    double wait_since;    /* monotonic s: waiting for Redis since (0: nothing pending) */
    double last_read;     /* monotonic s: last read event or probe sent */
    uint64_t timeouts;
    char heartbeat[sizeof(((struct mw_redis_opts *)0)->prefix) + sizeof(HEARTBEAT)];
    char err[512];
};

/* ---- Helpers ------------------------------------------------------------- */

static void set_error(struct mw_redis_conn *c, const char *what, const char *detail)
{
    /* Truncation is fine: the text is for humans (/healthz, logs). */
    int n =
        snprintf(c->err, sizeof(c->err), "redis %s:%u (%s): %s%s%s", c->opts.host,
                 (unsigned)c->opts.port, c->name, what, detail ? ": " : "", detail ? detail : "");

    if (n < 0)
        c->err[0] = '\0';
}

static void start_connect(struct mw_redis_conn *c);

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double timeout_s(const struct mw_redis_conn *c)
{
    return (double)c->opts.timeout_ms / 1000.0;
}

/* Whether a command on ac still waits for its reply. SUBSCRIBE commands
 * are not on these lists: their confirmation clears wait_since on read. */
static bool awaiting_reply(const redisAsyncContext *ac)
{
    return ac->replies.head != NULL || ac->sub.invalid.head != NULL;
}

/* Arms the backoff timer with the current delay and doubles it (capped). */
static void schedule_retry(struct mw_redis_conn *c)
{
    double delay = (double)c->backoff_ms / 1000.0;

    c->state = ST_WAIT;
    ev_timer_stop(c->loop, &c->timeout);
    ev_timer_stop(c->loop, &c->retry);
    ev_timer_set(&c->retry, delay, 0.0);
    ev_timer_start(c->loop, &c->retry);
    c->backoff_ms *= 2;
    if (c->backoff_ms > c->opts.backoff_max_ms)
        c->backoff_ms = c->opts.backoff_max_ms;
    mw_log(MW_LOG_INFO, "%s; retrying in %.0f ms", c->err, delay * 1000.0);
}

/* The connection went away (error, EOF, timeout). Called at most once per
 * context; ac is already being freed by hiredis or by us. */
static void connection_down(struct mw_redis_conn *c, bool was_ready)
{
    c->ac = NULL;
    c->wait_since = 0;
    if (c->state != ST_CLOSING)
        c->state = ST_WAIT;
    if (was_ready) {
        mw_log(MW_LOG_WARN, "%s", c->err);
        if (c->lost_cb)
            c->lost_cb(c->ud, c);
    }
    if (c->state != ST_CLOSING)
        schedule_retry(c);
}

/* ---- hiredis callbacks --------------------------------------------------- */

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct mw_redis_conn *c = ac->data;

    if (!c || c->ac != ac || c->state == ST_CLOSING)
        return; /* a context we abandoned, or our own free */
    if (!(c->state == ST_HANDSHAKE && c->handshake_errors))
        set_error(c, "connection lost", ac->errstr[0] ? ac->errstr : "closed");
    (void)status;
    connection_down(c, c->state == ST_READY);
}

/* One reply of the handshake pipeline (AUTH, SELECT, PING). privdata names
 * the step; the PING reply (the last) decides. */
static void on_handshake_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct mw_redis_conn *c = ac->data;
    redisReply *reply = r;
    const char *step = privdata;

    if (!c || c->ac != ac || c->state != ST_HANDSHAKE)
        return;
    if (!reply)
        return; /* the context is going away; on_disconnect follows */
    if (reply->type == REDIS_REPLY_ERROR) {
        if (c->handshake_errors++ == 0)
            set_error(c, step, reply->str);
    } else if (strcmp(step, "PING") == 0 &&
               !(reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0)) {
        /* Not a Redis: e.g. a loopback connect that met itself (TCP
         * simultaneous open while the server is down) echoes our own PING
         * back as an array. Never ready on that. */
        if (c->handshake_errors++ == 0)
            set_error(c, step, "not a Redis reply");
    }
    if (strcmp(step, "PING") != 0)
        return;
    if (c->handshake_errors) {
        /* Keep the first error (AUTH's, typically) for /healthz. Disconnect
         * once the reply callbacks have returned: redisAsyncDisconnect() is
         * deferred by hiredis while we are inside its callback. */
        redisAsyncDisconnect(ac);
        return;
    }
    ev_timer_stop(c->loop, &c->timeout);
    c->state = ST_READY;
    /* From now on the timer is the watchdog (CHN-104). */
    {
        double tick = timeout_s(c) / TICK_DIVISOR;

        tick = tick < TICK_MIN_S ? TICK_MIN_S : tick > TICK_MAX_S ? TICK_MAX_S : tick;
        ev_timer_set(&c->timeout, tick, tick);
        ev_timer_start(c->loop, &c->timeout);
    }
    c->last_read = mono_s();
    c->backoff_ms = c->opts.backoff_min_ms;
    c->err[0] = '\0';
    mw_log(MW_LOG_NOTICE, "redis %s:%u (%s): ready", c->opts.host, (unsigned)c->opts.port, c->name);
    if (c->ready_cb)
        c->ready_cb(c->ud, c);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    struct mw_redis_conn *c = cac->data;
    /* hiredis passes a const context to this callback but expects commands
     * to be issued on it; it is the context we created. */
    redisAsyncContext *ac = c ? c->ac : NULL;
    char db[16];

    if (!c || ac != cac || c->state != ST_CONNECTING)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback and does not call
         * on_disconnect (it never was connected). */
        set_error(c, "connect failed", cac->errstr[0] ? cac->errstr : "error");
        connection_down(c, false);
        return;
    }
    c->state = ST_HANDSHAKE;
    c->handshake_errors = 0;
    /* Pipelined: AUTH, SELECT, then PING whose reply marks the end. */
    if (c->opts.password[0] && redisAsyncCommand(ac, on_handshake_reply, (void *)"AUTH", "AUTH %s",
                                                 c->opts.password) != REDIS_OK)
        goto fail;
    if (c->opts.db != 0) {
        snprintf(db, sizeof(db), "%d", c->opts.db);
        if (redisAsyncCommand(ac, on_handshake_reply, (void *)"SELECT", "SELECT %s", db) !=
            REDIS_OK)
            goto fail;
    }
    if (redisAsyncCommand(ac, on_handshake_reply, (void *)"PING", "PING") != REDIS_OK)
        goto fail;
    return;
fail:
    set_error(c, "handshake", "cannot queue command");
    redisAsyncDisconnect(ac);
}

/* ---- Timers -------------------------------------------------------------- */

static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mw_redis_conn *c = w->data;

    (void)loop;
    (void)revents;
    start_connect(c);
}

static void on_probe_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    /* Its bytes were the point (the read hook saw them). */
    (void)ac;
    (void)r;
    (void)privdata;
}

/* A ready connection quiet for half the timeout: ask Redis for a reply.
 * PING; once subscribed (where hiredis would never hand a PING reply back,
 * RESP2 answers it as a pub/sub array), SUBSCRIBE of the heartbeat channel,
 * which Redis confirms and hiredis routes to on_probe_reply (repeating it
 * replaces the entry: nothing accumulates). */
static void send_probe(struct mw_redis_conn *c, double now)
{
    redisAsyncContext *ac = c->ac;

    c->last_read = now;
    if (ac->c.flags & REDIS_SUBSCRIBED)
        (void)redisAsyncCommand(ac, on_probe_reply, NULL, "SUBSCRIBE %s", c->heartbeat);
    else
        (void)redisAsyncCommand(ac, on_probe_reply, NULL, "PING");
}

/* Redis did not answer within the timeout: fail everything pending and
 * reconnect (CHN-104). The state leaves ST_READY first, so the NULL-reply
 * callbacks see the connection as down. */
static void reset_stalled(struct mw_redis_conn *c, double waited_s)
{
    redisAsyncContext *ac = c->ac;
    char detail[96];

    snprintf(detail, sizeof(detail), "no reply for %.0f ms (timeout %lld ms)", waited_s * 1000.0,
             (long long)c->opts.timeout_ms);
    set_error(c, "command timed out", detail);
    c->timeouts++;
    ev_timer_stop(c->loop, &c->timeout);
    c->ac = NULL;
    c->state = ST_WAIT;
    redisAsyncFree(ac); /* pending callbacks: NULL replies; on_disconnect ignores ac */
    connection_down(c, true);
}

static void on_timeout_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mw_redis_conn *c = w->data;
    redisAsyncContext *ac = c->ac;
    double now;

    (void)loop;
    (void)revents;
    if (!ac)
        return;
    if (c->state == ST_READY) {
        now = mono_s();
        if (c->wait_since > 0 && now - c->wait_since >= timeout_s(c))
            reset_stalled(c, now - c->wait_since);
        else if (c->wait_since == 0 && now - c->last_read >= timeout_s(c) / 2)
            send_probe(c, now);
        return;
    }
    if (c->state != ST_CONNECTING && c->state != ST_HANDSHAKE)
        return;
    set_error(c, c->state == ST_CONNECTING ? "connect" : "handshake", "timed out");
    /* Detach first so the callbacks hiredis runs while freeing ignore it. */
    c->ac = NULL;
    redisAsyncFree(ac);
    connection_down(c, false);
}

/* ---- Hooks on hiredis' libev adapter (the command timeout's clock) ------- */

/* Every command queued on the context arms the write watcher through here. */
static void hook_add_write(void *privdata)
{
    redisLibevEvents *e = privdata;
    struct mw_redis_conn *c = e->context->data;

    if (c && c->ac == e->context && c->wait_since == 0)
        c->wait_since = mono_s();
    redisLibevAddWrite(privdata);
}

/* Replaces the adapter's read callback: Redis sent something, so whatever
 * still waits waits from now; nothing left waiting clears the clock. The
 * context may be freed inside redisAsyncHandleRead (c->ac is cleared first,
 * by on_disconnect), and c itself never is (mw_redis_conn_free is not
 * allowed from our callbacks). */
static void hook_read(struct ev_loop *loop, ev_io *w, int revents)
{
    redisLibevEvents *e = w->data;
    redisAsyncContext *ac = e->context;
    struct mw_redis_conn *c = ac->data;

    (void)loop;
    (void)revents;
    if (c && c->ac == ac)
        c->wait_since = c->last_read = mono_s();
    redisAsyncHandleRead(ac);
    if (c && c->ac == ac && !awaiting_reply(ac))
        c->wait_since = 0;
}

/* ---- Connect ------------------------------------------------------------- */

static void start_connect(struct mw_redis_conn *c)
{
    redisAsyncContext *ac;

    /* Numeric addresses connect without any lookup; a host name costs one
     * getaddrinfo() (from /etc/hosts for "localhost"). */
    ac = redisAsyncConnect(c->opts.host, c->opts.port);
    if (!ac) {
        set_error(c, "connect", "out of memory");
        schedule_retry(c);
        return;
    }
    if (ac->err) {
        set_error(c, "connect failed", ac->errstr);
        redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->state = ST_CONNECTING;
    /* The adapter must be attached before the connect callback is set:
     * setting it arms the first write event that detects the connect. */
    if (redisLibevAttach(c->loop, ac) != REDIS_OK) {
        set_error(c, "connect", "libev attach failed");
        c->ac = NULL;
        redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    {
        redisLibevEvents *e = ac->ev.data;

        ev_set_cb(&e->rev, hook_read);
        ac->ev.addWrite = hook_add_write;
    }
    c->wait_since = 0;
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisAsyncSetConnectCallback(ac, on_connect);
    ev_timer_set(&c->timeout, HANDSHAKE_TIMEOUT_S, 0.0);
    ev_timer_start(c->loop, &c->timeout);
}

/* ---- Public API ---------------------------------------------------------- */

struct mw_redis_conn *mw_redis_conn_new(struct ev_loop *loop, const struct mw_redis_opts *o,
                                        const char *name, mw_redis_ready_cb ready,
                                        mw_redis_lost_cb lost, void *ud)
{
    struct mw_redis_conn *c;

    if (!loop || !o || !o->host[0])
        return NULL;
    c = mw_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->opts = *o;
    c->opts.host[sizeof(c->opts.host) - 1] = '\0';
    c->opts.password[sizeof(c->opts.password) - 1] = '\0';
    c->opts.prefix[sizeof(c->opts.prefix) - 1] = '\0';
    if (c->opts.backoff_min_ms <= 0)
        c->opts.backoff_min_ms = BACKOFF_MIN_DEFAULT_MS;
    if (c->opts.backoff_max_ms <= 0)
        c->opts.backoff_max_ms = BACKOFF_MAX_DEFAULT_MS;
    if (c->opts.backoff_max_ms < c->opts.backoff_min_ms)
        c->opts.backoff_max_ms = c->opts.backoff_min_ms;
    if (c->opts.timeout_ms <= 0)
        c->opts.timeout_ms = MW_REDIS_TIMEOUT_DEFAULT_MS;
    if (c->opts.timeout_ms < MW_REDIS_TIMEOUT_MIN_MS)
        c->opts.timeout_ms = MW_REDIS_TIMEOUT_MIN_MS;
    snprintf(c->heartbeat, sizeof(c->heartbeat), "%s%s", c->opts.prefix, HEARTBEAT);
    snprintf(c->name, sizeof(c->name), "%s", name ? name : "conn");
    c->ready_cb = ready;
    c->lost_cb = lost;
    c->ud = ud;
    c->backoff_ms = c->opts.backoff_min_ms;
    ev_timer_init(&c->retry, on_retry_timer, 0.0, 0.0);
    c->retry.data = c;
    ev_timer_init(&c->timeout, on_timeout_timer, 0.0, 0.0);
    c->timeout.data = c;
    set_error(c, "connecting", NULL);
    /* Connect from the loop, not from here: the owner is still being
     * constructed and its callbacks must not run before _new returns. */
    c->state = ST_WAIT;
    ev_timer_set(&c->retry, 0.0, 0.0);
    ev_timer_start(loop, &c->retry);
    return c;
}

void mw_redis_conn_free(struct mw_redis_conn *c)
{
    redisAsyncContext *ac;

    if (!c)
        return;
    ev_timer_stop(c->loop, &c->retry);
    ev_timer_stop(c->loop, &c->timeout);
    ac = c->ac;
    c->state = ST_CLOSING;
    if (ac) {
        /* Runs every pending reply callback with a NULL reply, then
         * on_disconnect (ignored: ST_CLOSING). */
        redisAsyncFree(ac);
    }
    c->ac = NULL;
    mw_free(c);
}

struct redisAsyncContext *mw_redis_conn_ctx(struct mw_redis_conn *c)
{
    return c && c->state == ST_READY ? c->ac : NULL;
}

bool mw_redis_conn_ready(const struct mw_redis_conn *c)
{
    if (!c || c->state != ST_READY)
        return false;
    /* Stalled but not reset yet (the watchdog's next tick does it). */
    return !(c->wait_since > 0 && mono_s() - c->wait_since >= timeout_s(c));
}

int64_t mw_redis_conn_timeout_ms(const struct mw_redis_conn *c)
{
    return c ? c->opts.timeout_ms : MW_REDIS_TIMEOUT_DEFAULT_MS;
}

uint64_t mw_redis_conn_timeouts(const struct mw_redis_conn *c)
{
    return c ? c->timeouts : 0;
}

const char *mw_redis_conn_error(const struct mw_redis_conn *c)
{
    if (!c)
        return "no connection";
    if (c->state != ST_READY)
        return c->err;
    return mw_redis_conn_ready(c) ? "" : "redis: a command waits longer than the timeout";
}
