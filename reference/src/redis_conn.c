/* redis_conn: one hiredis async connection on the server's libev loop that
 * connects, authenticates, selects its db and reconnects by itself
 * (redis_conn.h). Owners send their commands on mw_redis_conn_ctx() while it
 * is ready and learn of (re)connects and losses through two callbacks. */
#include "redis_conn.h"

#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "log.h"

#define BACKOFF_MIN_DEFAULT_MS 100
#define BACKOFF_MAX_DEFAULT_MS 5000
/* A connect or handshake that takes longer than this is abandoned and
 * retried: hiredis 0.14 has no async connect timeout of its own, and a
 * blackholed address would otherwise leave us waiting for the kernel. */
#define HANDSHAKE_TIMEOUT_S 5.0

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
    ev_timer timeout; /* bound on connect + handshake */
    int64_t backoff_ms;
    int handshake_errors; /* error replies seen during this handshake */
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
static void connection_down(struct mw_redis_conn *c)
{
    bool was_ready = c->state == ST_READY;

    c->ac = NULL;
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
    connection_down(c);
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
        connection_down(c);
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

static void on_timeout_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mw_redis_conn *c = w->data;
    redisAsyncContext *ac = c->ac;

    (void)loop;
    (void)revents;
    if (!ac || (c->state != ST_CONNECTING && c->state != ST_HANDSHAKE))
        return;
    set_error(c, c->state == ST_CONNECTING ? "connect" : "handshake", "timed out");
    /* Detach first so the callbacks hiredis runs while freeing ignore it. */
    c->ac = NULL;
    redisAsyncFree(ac);
    connection_down(c);
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
    return c && c->state == ST_READY;
}

const char *mw_redis_conn_error(const struct mw_redis_conn *c)
{
    if (!c)
        return "no connection";
    return c->state == ST_READY ? "" : c->err;
}
