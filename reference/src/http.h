/* http: the HTTP routes served on the WebSocket port (spec/messages.md §9).
 *
 *   GET    /healthz            200 {"status":"ok","role","channel"} | 503
 * {"status":"unavailable","reason"} GET    /metrics            Prometheus text (mw_metrics_render)
 *   POST   /v1/tickets         201 | 200 (idempotent replay) | 400 | 413 | 503   MSG-110
 *   GET    /v1/tickets/{id}    200 | 404                                       MSG-111
 *   DELETE /v1/tickets/{id}    200 | 404 | 409                                 MSG-112
 *   GET    /                   the demo page (embedded in the binary)
 *
 * The gateway (gateway.c) owns the lws context and forwards every HTTP
 * callback here. Store operations are asynchronous: each request is a
 * refcounted object that the wsi and each pending store call hold; when the
 * client goes away first, the store callback finds the request detached and
 * only drops its reference (it never touches a dead wsi).
 *
 * One request at a time per connection: lws reads nothing more from a
 * connection between a complete request and the end of its response, so
 * pipelined requests are answered in order (MSG-116); a pipelined request
 * with a body, which lws 4.1.6 cannot read safely, is answered 503 with
 * Connection: close (MSG-117). See the Pipelining section of http.c. */
#ifndef MW_HTTP_H
#define MW_HTTP_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"
#include "ticket_store.h"
#include "token.h"

#define MW_HTTP_BODY_MAX 65536 /* bytes of a POST body; 413 beyond */

struct mw_http;

/* Borrowed pointers: each must outlive the mw_http. */
struct mw_http_env {
    struct mw_ticket_store *store; /* the ticket routes' store */
    struct mw_metrics *metrics;    /* may be NULL */
    const char *role;              /* "all", "api" or "worker" (for /healthz) */
    const char *channel;           /* "memory" or "redis" (for /healthz) */
    bool tickets_api;              /* serve /v1/tickets and / (false in the worker role) */
    /* 0 when the server can serve; else a negative code and a reason. */
    int (*ready)(void *ud, char *reason, size_t reason_len);
    /* Fills the gauges rendered by /metrics (and may refresh counters). */
    void (*gauges)(void *ud, struct mw_metrics_gauges *g);
    void *ud;
    /* spec/auth.md section 7 (borrowed, outlive the mw_http). With player
     * keys (auth on) the ticket routes need the service token or a player
     * token; with a service token /metrics needs it (either mode). */
    const struct mw_token_keys *auth_keys; /* NULL or empty: auth off */
    struct mw_token_policy auth_policy;
    const char *service_token; /* service_token_len bytes; NULL/0: none configured */
    size_t service_token_len;
};

/* Returns the route table or NULL. env copied (its pointers borrowed). */
struct mw_http *mw_http_new(const struct mw_http_env *env);
/* From now on every request is answered 503 `unavailable` (shutdown,
 * MSG-099). NULL-safe. */
void mw_http_stop(struct mw_http *h);

/* Frees h. Requests still waiting for the store keep their own memory
 * until their callback returns (or the store is destroyed: MW_ECLOSED).
 * NULL-safe. */
void mw_http_free(struct mw_http *h);

/* Handles one lws HTTP callback (LWS_CALLBACK_HTTP, _HTTP_BODY,
 * _HTTP_BODY_COMPLETION, _HTTP_WRITEABLE, _CLOSED_HTTP,
 * _HTTP_DROP_PROTOCOL). slot is per-wsi storage (one pointer, NULL at
 * first) that http.c uses for the request. Returns what the lws callback
 * must return (0, or -1 to close the connection). */
int mw_http_callback(struct mw_http *h, struct lws *wsi, enum lws_callback_reasons reason,
                     void **slot, void *in, size_t len);

#endif /* MW_HTTP_H */
