/* gateway: the libwebsockets side of the server.
 *
 * One lws context on the server's FOREIGN libev loop (lws's own poll()
 * backend scales with the idle connections; libev does not: figures in
 * bench/README.md and reference/README.md).
 * Serves the WebSocket protocol "matchwire.v1" at /realtime and hands every
 * other HTTP request to http.c. For each WebSocket it creates a session
 * (session.h) and moves bytes: it reassembles fragmented text messages up
 * to 65,536 bytes, checks UTF-8, and sends. A message for a connection
 * with nothing queued or pending is written at once with lws_write() (the
 * common case); otherwise it waits in a bounded queue written from
 * LWS_CALLBACK_SERVER_WRITEABLE, one lws_write() per callback. (The lws
 * examples write only from WRITEABLE; arming and disarming POLLOUT for
 * every message cost two epoll_ctl and an epoll_wait round each; see
 * bench/README.md.) It enforces the transport limits of spec/messages.md
 * §7 and counts every close by code in metrics. It never interprets a
 * message.
 *
 * Close reactions (spec/messages.md):
 *   path other than /realtime     404, never upgraded          MSG-001
 *   Origin not in the allow-list  403, never upgraded          AUTH-090
 *   auth on, token missing/bad    401, never upgraded          AUTH-040, AUTH-041
 *   token expired while open      close 4003                   AUTH-050
 *   only unknown subprotocols     400, never upgraded          MSG-005
 *   over max_connections          503, never upgraded          MSG-098
 *   text message > 65,536 bytes   close 1009 at the first byte over  MSG-091
 *   reassembly budget reached     close 1013 (all connections' unfinished
 *                                 messages over reassembly_budget) MSG-122
 *   invalid UTF-8                 close 1007                   MSG-092
 *   binary message                close 1003                   MSG-093
 *   unmasked client frame         close 1002 (recv() parses frame
 *                                 headers: lws accepts them)   MSG-141
 *   outbound bound reached        close 4001, queue freed      MSG-096
 *   socket full for 3 s           TCP connection dropped       MSG-096
 *   idle                          ping, then close 4002 without a pong MSG-097
 *   headers not complete in 5 s   TCP connection dropped       MSG-121
 *   TLS: handshake not done in 5 s  TCP connection dropped     MSG-153
 *   TLS: not a TLS ClientHello    TCP connection dropped       MSG-152
 *   shutdown                      replies to requests waiting on the store,
 *                                 then close 1001              MSG-099, MSG-123 */
#ifndef MW_GATEWAY_H
#define MW_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "session.h"
#include "token.h"

struct ev_loop;
struct mw_gateway;
struct mw_http;

#define MW_GATEWAY_PROTOCOL    "matchwire.v1"
#define MW_GATEWAY_WS_PATH     "/realtime"
#define MW_GATEWAY_MAX_MESSAGE 65536 /* bytes of one inbound text message */
#define MW_GATEWAY_ORIGINS_MAX 16    /* entries of the Origin allow-list */

/* Copied by mw_gateway_new(). */
struct mw_gateway_config {
    char host[256];               /* interface to listen on ("127.0.0.1"; "" or "0.0.0.0": all) */
    uint16_t port;                /* 0: an ephemeral port (read it back with mw_gateway_port) */
    unsigned max_connections;     /* open WebSockets; 0: unlimited */
    size_t outbound_max_messages; /* per connection (256) */
    size_t outbound_max_bytes;    /* per connection (1 MiB) */
    size_t reassembly_budget;     /* all connections' unfinished inbound messages (64 MiB) */
    int idle_timeout_s;           /* ping after this much silence; 0: never */
    bool websocket;               /* serve /realtime (roles all and api) */
    int lws_log_level;            /* lws_set_log_level() mask */
    /* spec/auth.md. Borrowed (the server's; they outlive the gateway). */
    const struct mw_token_keys *auth_keys; /* NULL or no key: unauthenticated mode */
    struct mw_token_policy auth_policy;    /* leeway, audience, issuer (AUTH-033..036) */
    const char *allowed_origins[MW_GATEWAY_ORIGINS_MAX]; /* AUTH-090; none: not checked */
    size_t n_allowed_origins;
    /* TLS (MSG-150..MSG-155): a PEM certificate chain (the server's
     * certificate first) and its unencrypted PEM private key; both set: the
     * port speaks TLS 1.2+ only (wss://, https://), both NULL: plain.
     * Borrowed: must outlive the gateway. */
    const char *tls_cert;
    const char *tls_key;
};

/* Creates the lws context on loop (borrowed, must outlive the gateway) and
 * starts listening. env is borrowed (store, hub, metrics, limits for the
 * sessions); http is borrowed and gets every non-WebSocket request; metrics
 * borrowed (may be NULL). Returns NULL on failure (port in use; with TLS a
 * certificate or key file that is missing, unreadable, not PEM, encrypted,
 * or a key that does not match the certificate: each logged on one line
 * naming the file, never its content). Free with mw_gateway_free(). */
struct mw_gateway *mw_gateway_new(const struct mw_gateway_config *cfg, struct ev_loop *loop,
                                  const struct mw_session_env *env, struct mw_http *http,
                                  struct mw_metrics *metrics);

/* Starts a graceful shutdown: stops accepting (every new upgrade and HTTP
 * request is answered 503; the listen socket itself stays open until
 * mw_gateway_free()), stops reading WebSockets, and asks each to close with
 * 1001 once its session has no request waiting on the store (at most 1 s
 * after this call; MSG-123). Returns at once; poll mw_gateway_open() to see
 * the connections go. Idempotent. */
void mw_gateway_shutdown(struct mw_gateway *g);

/* Open WebSocket connections (established, not yet closed). */
size_t mw_gateway_open(const struct mw_gateway *g);
/* The port actually listened on. */
uint16_t mw_gateway_port(const struct mw_gateway *g);

/* Destroys the lws context: connections still open are dropped (their
 * sessions get mw_session_on_close()). Must run while the loop still exists
 * and before the store, hub and metrics go. NULL-safe. */
void mw_gateway_free(struct mw_gateway *g);

#endif /* MW_GATEWAY_H */
