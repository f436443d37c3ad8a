/* server: assembles one Matchwire server from a const config and tears it
 * down in a fixed, written order.
 *
 * Parts by role (config.h):
 *   all    store, channel, hub, worker, gateway (/realtime + every HTTP route)
 *   api    store, channel, hub, gateway (/realtime + every HTTP route)
 *   worker store, channel, worker, gateway (/healthz and /metrics only)
 * Store and channel are in memory (the embedded default) or on Redis
 * (--store, --channel; a table of backends in server.c).
 *
 * Wiring: hub subscribed to the channel; the store's hooks (given to its
 * constructor) push ends through the hub, and the store's and the channel's
 * resubscription hooks re-read every watched ticket (CHN-023);
 * worker on the store's feed; in roles all and worker a sweep timer runs the
 * store's expiry pass every min(100 ms, min(grace, ttl) / 4), at least every
 * 10 ms.
 *
 * Shutdown (SIGINT/SIGTERM): stop accepting, close every WebSocket with 1001,
 * wait for them (at most 1.5 s), then mw_server_free() tears down:
 *   1. gateway: lws context destroyed (remaining connections dropped; every
 *      session gets mw_session_on_close while store and hub still exist)
 *   2. store: pending callbacks get MW_ECLOSED while sessions, HTTP requests
 *      and the worker still exist
 *   3. HTTP routes
 *   4. worker
 *   5. channel
 *   6. hub
 *   7. loop (its defer queue, then the ev loop) */
#ifndef MW_SERVER_H
#define MW_SERVER_H

#include <stdint.h>

#include "config.h"

struct mw_server;

/* Milliseconds the shutdown waits for clients to close before dropping them. */
#define MW_SERVER_SHUTDOWN_WAIT_MS 1500

/* Builds and starts a server (listening when this returns). cfg is copied.
 * Also points mw_log at lwsl_* and sets lws's log level. Returns NULL on
 * failure (logged). */
struct mw_server *mw_server_new(const struct mw_config *cfg);

/* Runs the loop until a SIGINT/SIGTERM shutdown completes. Returns 0. */
int mw_server_run(struct mw_server *s);

/* Starts the graceful shutdown (what a signal does). */
void mw_server_stop(struct mw_server *s);

/* The port the gateway listens on. */
uint16_t mw_server_port(const struct mw_server *s);

/* Tears everything down in the order above. NULL-safe. */
void mw_server_free(struct mw_server *s);

#endif /* MW_SERVER_H */
