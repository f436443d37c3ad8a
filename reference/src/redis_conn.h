/* redis_conn: one hiredis async connection attached to the server's libev
 * loop, with AUTH/SELECT from the URL, capped exponential reconnect backoff,
 * and a readiness state for /healthz. Used by channel_redis (a subscriber
 * connection plus a command connection) and ticket_store_redis. */
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
};

/* Called when the connection becomes ready (after AUTH/SELECT), and again
 * after every reconnect; the owner then (re)subscribes / re-reads. */
typedef void (*mw_redis_ready_cb)(void *ud, struct mw_redis_conn *c);
/* Called when a ready connection is lost (before the reconnect timer starts).
 * By then every command pending on the lost context has had its reply
 * callback called with a NULL reply. */
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
bool mw_redis_conn_ready(const struct mw_redis_conn *c);
/* Last error text ("" when ready), e.g. "redis 127.0.0.1:6379 (sub):
 * connect failed: Connection refused"; for /healthz. */
const char *mw_redis_conn_error(const struct mw_redis_conn *c);

#endif /* MW_REDIS_CONN_H */
