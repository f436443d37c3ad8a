/* redis_conn: one hiredis async connection attached to the server's libev
 * loop, with AUTH/SELECT from the URL, capped exponential reconnect backoff,
 * a bound on every command (a stalled Redis is detected and the connection
 * reset, CHN-104), and a readiness state for /healthz. Used by channel_redis
 * (a subscriber connection plus a command connection) and
 * ticket_store_redis. */
#ifndef MW_REDIS_CONN_H
#define MW_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct redisAsyncContext;
struct mw_redis_conn;

/* Connection settings (copied). */
struct mw_redis_opts {
    char host[256];
    uint16_t port;
    char password[256]; /* "" for none */
    int db;
    char prefix[64];        /* prepended to every key and channel name */
    int64_t backoff_min_ms; /* 0: 100 ms */
    int64_t backoff_max_ms; /* 0: 5,000 ms */
    /* Command timeout (CHN-104): while at least one command waits for its
     * reply, Redis must send something within this many ms, else the
     * connection is reset: every pending callback gets a NULL reply, the
     * lost callback runs, the reconnect starts. An idle connection is
     * probed (PING, or SUBSCRIBE of a heartbeat channel once subscribed)
     * after half of it without traffic, so a frozen Redis is also found on
     * a quiet or pub/sub connection. A blocking command (BLOCK, BLPOP) must
     * block for less than this. 0: 2,000 ms; at least 50 ms. */
    int64_t timeout_ms;
};

#define MW_REDIS_TIMEOUT_DEFAULT_MS 2000
#define MW_REDIS_TIMEOUT_MIN_MS     50

/* Called when the connection becomes ready (after AUTH/SELECT), and again
 * after every reconnect; the owner then (re)subscribes / re-reads. */
typedef void (*mw_redis_ready_cb)(void *ud, struct mw_redis_conn *c);
/* Called when a ready connection is lost (before the reconnect timer starts):
 * closed by Redis, a network error, or reset after a command timeout. By
 * then every command pending on the lost context has had its reply callback
 * called with a NULL reply. */
typedef void (*mw_redis_lost_cb)(void *ud, struct mw_redis_conn *c);

/* Returns a connection object that connects (and reconnects) by itself, or
 * NULL. loop borrowed. Never blocks (a host name other than a numeric address
 * costs one getaddrinfo() per attempt). The first attempt starts on the
 * loop's next iteration, so no callback runs before this returns. A connect
 * plus handshake that takes over 5 s is abandoned and retried. Backoff
 * between attempts: backoff_min_ms doubling to backoff_max_ms, reset when
 * ready. The owner must ignore SIGPIPE (hiredis writes with write(2)). */
struct mw_redis_conn *mw_redis_conn_new(struct ev_loop *loop, const struct mw_redis_opts *o,
                                        const char *name, mw_redis_ready_cb ready,
                                        mw_redis_lost_cb lost, void *ud);
/* Disconnects and frees; pending command callbacks get a NULL reply (during
 * this call), the lost callback is not called. Must not be called from a
 * callback of this connection (ready, lost, or a command reply on its
 * context). NULL-safe. */
void mw_redis_conn_free(struct mw_redis_conn *c);
/* The hiredis context while ready, else NULL. Borrowed: valid until the lost
 * callback (or mw_redis_conn_free). Commands sent on it get a NULL reply when
 * the connection drops before they are answered. */
struct redisAsyncContext *mw_redis_conn_ctx(struct mw_redis_conn *c);
/* Ready: connected, handshake done, and no command waiting longer than the
 * timeout (a stalled connection is reset by the next timer tick, at most a
 * tenth of the timeout later). */
bool mw_redis_conn_ready(const struct mw_redis_conn *c);
/* The effective command timeout in ms (opts.timeout_ms or its default). An
 * owner that sends a blocking command blocks for less than this. */
int64_t mw_redis_conn_timeout_ms(const struct mw_redis_conn *c);
/* Connections reset because Redis did not answer in time (since _new). */
uint64_t mw_redis_conn_timeouts(const struct mw_redis_conn *c);
/* Last error text ("" when ready), e.g. "redis 127.0.0.1:6379 (sub):
 * connect failed: Connection refused"; for /healthz. */
const char *mw_redis_conn_error(const struct mw_redis_conn *c);

#endif /* MW_REDIS_CONN_H */
