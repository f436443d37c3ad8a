/* http: /healthz, /metrics, /v1/tickets and the demo page, on lws's HTTP
 * callbacks, with refcounted requests for the asynchronous store, one
 * request at a time per connection (pipelining, MSG-116). */
#include "http.h"

#include <limits.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/crypto.h> /* OPENSSL_cleanse */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "messages.h"
#include "web_assets.h"

#define HTTP_TICKETS "/v1/tickets"
#define HTTP_OUT_MAX (4 * 1024 * 1024) /* largest response body (metrics, page) */
/* A declared body this large is not even drained: 413 at once, then close. */
#define HTTP_BODY_DROP (16 * MW_HTTP_BODY_MAX)

/* TCP states after the peer's FIN (linux/tcp.h has no names for them). */
#define HTTP_TCP_CLOSE_WAIT 8
#define HTTP_TCP_LAST_ACK   9
#define HTTP_TCP_CLOSING    11
/* Per-connection mark in lws's opaque user data (see http_pipelined). */
#define HTTP_MARK_NONE    ((uintptr_t)0)           /* no transaction finished yet */
#define HTTP_MARK_UNKNOWN ((uintptr_t)UINTPTR_MAX) /* finished, byte count unknown */

struct mw_http {
    struct mw_http_env env;
    bool stopping; /* shutting down: every request is answered 503 */
};

enum req_state {
    REQ_WAIT_BODY = 0, /* request body arriving */
    REQ_WAIT_STORE,    /* a store call is in flight */
    REQ_SENT,          /* response written (req_send) */
};

enum req_op { OP_NONE = 0, OP_CREATE, OP_GET, OP_CANCEL_CHECK, OP_CANCEL };

/* One HTTP request. Held by the wsi (through its slot) and by each store
 * call in flight; freed when the last holder lets go. */
struct http_req {
    unsigned refs;
    struct mw_http *h; /* valid while wsi is (see mw_http_free) */
    struct lws *wsi;   /* NULL once the connection is gone */
    void **slot;       /* the wsi's pointer to us, NULL once detached */
    enum req_state state;
    enum req_op op;
    int method;                 /* LWSHUMETH_* */
    char path[256];             /* request path (the ah may be gone by the route) */
    unsigned stray_completions; /* BODY_COMPLETION while not waiting for one */
    struct mw_buf in;           /* POST body, at most MW_HTTP_BODY_MAX bytes */
    bool in_too_large;          /* over the bound: the rest is drained, not kept */
    bool has_idem_key;          /* POST carried an idempotencyKey */
    int64_t now_ms;             /* the time given to create */
    /* AUTH-070: a request authorized by a player token acts only for that
     * player (the service token and auth off: for any player). */
    bool player_only;
    char player[MW_PLAYER_ID_MAX + 1];
    unsigned status;
    const char *ctype;
    struct mw_buf out; /* LWS_PRE bytes of headroom, then the body */
};

/* ---- Requests ------------------------------------------------------------- */

static struct http_req *req_new(struct mw_http *h, struct lws *wsi, void **slot)
{
    struct http_req *r = mw_calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->refs = 1;
    r->h = h;
    r->wsi = wsi;
    r->slot = slot;
    mw_buf_init(&r->in, MW_HTTP_BODY_MAX);
    mw_buf_init(&r->out, HTTP_OUT_MAX);
    *slot = r;
    return r;
}

static void req_unref(struct http_req *r)
{
    if (--r->refs)
        return;
    mw_buf_release(&r->in);
    mw_buf_release(&r->out);
    mw_free(r);
}

/* What a wsi's slot holds between a response lws could not send at once
 * and the close that follows it (see req_send). */
static const char http_closing_mark;
#define HTTP_SLOT_CLOSING ((void *)(uintptr_t)&http_closing_mark)

/* The wsi lets go (transaction over or connection closed). */
static void req_detach(void **slot)
{
    struct http_req *r = *slot;

    if (!r || *slot == HTTP_SLOT_CLOSING) {
        *slot = NULL;
        return;
    }
    *slot = NULL;
    r->slot = NULL;
    r->wsi = NULL;
    req_unref(r);
}

/* Sets the status and starts the body (after LWS_PRE bytes of headroom). */
static int req_begin(struct http_req *r, unsigned status, const char *ctype)
{
    static const unsigned char pre[LWS_PRE];

    r->status = status;
    r->ctype = ctype;
    mw_buf_reset(&r->out);
    return mw_buf_append(&r->out, pre, sizeof(pre));
}

static void req_send(struct http_req *r);

/* The response is complete: send it. */
static void req_ready(struct http_req *r)
{
    if (r->wsi)
        req_send(r);
}

static void req_json_error(struct http_req *r, unsigned status, enum mw_code code,
                           const char *message)
{
    int rc = req_begin(r, status, "application/json");

    if (!rc)
        rc = mw_buf_puts(&r->out, "{\"code\":");
    if (!rc)
        rc = mw_json_write_string(&r->out, mw_code_name(code), strlen(mw_code_name(code)));
    if (!rc)
        rc = mw_buf_puts(&r->out, ",\"message\":");
    if (!rc)
        rc = mw_json_write_string(&r->out, message, strlen(message));
    if (!rc)
        rc = mw_buf_puts(&r->out, mw_code_retryable(code) ? ",\"retryable\":true}"
                                                          : ",\"retryable\":false}");
    if (rc)
        r->status = HTTP_STATUS_INTERNAL_SERVER_ERROR; /* body may be partial; still JSON-ish */
    req_ready(r);
}

/* A store failure (callback status or synchronous return) as a response. */
static void req_store_error(struct http_req *r, int status)
{
    switch (status) {
    case MW_ENOTFOUND:
        req_json_error(r, HTTP_STATUS_NOT_FOUND, MW_CODE_NOT_FOUND, "no such ticket");
        break;
    case MW_EUNAVAIL:
    case MW_ECLOSED:
    case MW_ELIMIT:
    case MW_EAGAIN:
        req_json_error(r, HTTP_STATUS_SERVICE_UNAVAILABLE, MW_CODE_UNAVAILABLE,
                       mw_strerror(status));
        break;
    default:
        req_json_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, MW_CODE_INTERNAL, mw_strerror(status));
        break;
    }
}

static void req_resource(struct http_req *r, unsigned status, const struct mw_ticket *t)
{
    if (req_begin(r, status, "application/json") || mw_msg_encode_ticket_resource(&r->out, t)) {
        req_json_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, MW_CODE_INTERNAL, "encode failed");
        return;
    }
    req_ready(r);
}

/* ---- Store callbacks ------------------------------------------------------ */

/* Whether r's principal may see ticket t (AUTH-070). */
static bool req_owns(const struct http_req *r, const struct mw_ticket *t)
{
    return !r->player_only || (t && strcmp(t->player_id, r->player) == 0);
}

static void req_store_cb(void *ud, int status, const struct mw_ticket *t)
{
    struct http_req *r = ud;

    /* (A successful DELETE reaches the ticket's watchers through the
     * store's on_ended hook, MSG-062: nothing to push here.) */
    if (!r->wsi) {
        req_unref(r); /* the client went away: touch nothing else */
        return;
    }
    switch (r->op) {
    case OP_CREATE:
        if (status == 0)
            /* MSG-110: 200 when the idempotency rule returned an older
             * ticket. The store says so (replayed); created_ms alone
             * cannot tell a replay within the same millisecond (seen: two
             * POSTs 0.1 ms apart, both 201), so it only backs a store that
             * does not set the flag. */
            req_resource(
                r, r->has_idem_key && (t->replayed || t->created_ms < r->now_ms) ? 200 : 201, t);
        else
            req_store_error(r, status);
        break;
    case OP_GET:
        if (status == 0 && !req_owns(r, t))
            req_json_error(r, HTTP_STATUS_NOT_FOUND, MW_CODE_NOT_FOUND, "no such ticket");
        else if (status == 0)
            req_resource(r, HTTP_STATUS_OK, t);
        else
            req_store_error(r, status);
        break;
    case OP_CANCEL_CHECK:
        /* A player's DELETE: its own ticket only (AUTH-070), else 404 as
         * for an unknown one. The read holds our reference; the cancel
         * takes another. */
        if (status == 0 && req_owns(r, t)) {
            int rc;

            r->op = OP_CANCEL;
            r->refs++;
            rc = mw_ticket_store_cancel(r->h->env.store, t->id, mw_loop_now_ms(), req_store_cb, r);
            if (rc) {
                r->refs--;
                req_store_error(r, rc);
            }
        } else if (status == 0 || status == MW_ENOTFOUND) {
            req_json_error(r, HTTP_STATUS_NOT_FOUND, MW_CODE_NOT_FOUND, "no such ticket");
        } else {
            req_store_error(r, status);
        }
        break;
    case OP_CANCEL:
        if (status == 0) {
            int rc = req_begin(r, HTTP_STATUS_OK, "application/json");

            if (!rc)
                rc = mw_buf_puts(&r->out, "{\"ticketId\":");
            if (!rc)
                rc = mw_json_write_string(&r->out, t->id, strlen(t->id));
            if (!rc)
                rc = mw_buf_puts(&r->out, ",\"version\":");
            if (!rc)
                rc = mw_json_write_int(&r->out, (int64_t)t->version);
            if (!rc)
                rc = mw_buf_puts(&r->out, "}");
            if (rc)
                req_json_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, MW_CODE_INTERNAL,
                               "encode failed");
            else
                req_ready(r);
        } else if (status == MW_ESTATE && t && t->state == MW_TICKET_ASSIGNED) {
            req_json_error(r, HTTP_STATUS_CONFLICT, MW_CODE_ALREADY_ASSIGNED,
                           "ticket already assigned");
        } else if (status == MW_ESTATE) {
            req_json_error(r, HTTP_STATUS_NOT_FOUND, MW_CODE_NOT_FOUND, "ticket already ended");
        } else {
            req_store_error(r, status);
        }
        break;
    default:
        break;
    }
    req_unref(r);
}

/* ---- Routes --------------------------------------------------------------- */

static void route_healthz(struct http_req *r)
{
    const struct mw_http_env *e = &r->h->env;
    char reason[128] = "";
    int ready = e->ready ? e->ready(e->ud, reason, sizeof(reason)) : 0;
    int rc = req_begin(r, ready == 0 ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE,
                       "application/json");

    if (!rc)
        rc =
            mw_buf_puts(&r->out, ready == 0 ? "{\"status\":\"ok\"" : "{\"status\":\"unavailable\"");
    if (mw_token_keys_count(e->auth_keys) > 0) {
        /* AUTH-074: ok or unavailable, nothing else; the reason is logged. */
        if (ready != 0)
            mw_log(MW_LOG_INFO, "http: /healthz unavailable: %s", reason[0] ? reason : "not ready");
        if (!rc)
            rc = mw_buf_puts(&r->out, "}");
        if (rc) {
            req_json_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, MW_CODE_INTERNAL, "encode failed");
            return;
        }
        req_ready(r);
        return;
    }
    if (!rc && ready != 0) {
        if (!reason[0])
            memcpy(reason, "not ready", sizeof("not ready"));
        rc = mw_buf_puts(&r->out, ",\"reason\":");
        if (!rc)
            rc = mw_json_write_string(&r->out, reason, strlen(reason));
    }
    if (!rc)
        rc = mw_buf_puts(&r->out, ",\"role\":");
    if (!rc)
        rc = mw_json_write_string(&r->out, e->role, strlen(e->role));
    if (!rc)
        rc = mw_buf_puts(&r->out, ",\"channel\":");
    if (!rc)
        rc = mw_json_write_string(&r->out, e->channel, strlen(e->channel));
    if (!rc)
        rc = mw_buf_puts(&r->out, "}");
    if (rc) {
        req_json_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, MW_CODE_INTERNAL, "encode failed");
        return;
    }
    req_ready(r);
}

static void route_metrics(struct http_req *r)
{
    const struct mw_http_env *e = &r->h->env;
    struct mw_metrics_gauges g;

    memset(&g, 0, sizeof(g));
    if (e->gauges)
        e->gauges(e->ud, &g);
    if (!e->metrics || req_begin(r, HTTP_STATUS_OK, "text/plain; version=0.0.4") ||
        mw_metrics_render(e->metrics, &g, &r->out)) {
        req_json_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, MW_CODE_INTERNAL, "render failed");
        return;
    }
    req_ready(r);
}

static bool route_asset(struct http_req *r, const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; i < mw_web_assets_count; i++) {
        const struct mw_web_asset *a = &mw_web_assets[i];

        if (strcmp(a->path, path) != 0)
            continue;
        if (req_begin(r, HTTP_STATUS_OK, a->ctype) || mw_buf_append(&r->out, a->data, a->len)) {
            req_json_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, MW_CODE_INTERNAL, "out of memory");
            return true;
        }
        req_ready(r);
        return true;
    }
    return false;
}

/* POST /v1/tickets, once the whole body is in (MSG-110). */
static void route_create(struct http_req *r)
{
    struct mw_parse_error perr;
    struct mw_enqueue_req er;
    cJSON *root = NULL;
    int rc;

    if (r->in_too_large) {
        req_json_error(r, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, MW_CODE_TOO_LARGE,
                       "body over 65536 bytes");
        return;
    }
    memset(&perr, 0, sizeof(perr));
    rc =
        mw_json_parse(r->in.data ? r->in.data : "", r->in.len, MW_ENVELOPE_MAX_DEPTH, &root, &perr);
    if (rc == MW_ENOMEM) {
        req_json_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, MW_CODE_INTERNAL, "out of memory");
        return;
    }
    if (rc) {
        req_json_error(r, HTTP_STATUS_BAD_REQUEST, perr.code, perr.message);
        return;
    }
    memset(&er, 0, sizeof(er));
    memset(&perr, 0, sizeof(perr));
    rc = mw_msg_decode_enqueue_data(root, &er, &perr);
    cJSON_Delete(root);
    if (rc == MW_ENOMEM) {
        req_json_error(r, HTTP_STATUS_INTERNAL_SERVER_ERROR, MW_CODE_INTERNAL, "out of memory");
        return;
    }
    if (rc) {
        req_json_error(r, HTTP_STATUS_BAD_REQUEST,
                       perr.code != MW_CODE_NONE ? perr.code : MW_CODE_BAD_MESSAGE, perr.message);
        return;
    }
    if (r->player_only && strcmp(er.player_id, r->player) != 0) {
        /* AUTH-070: a player token creates tickets for its own player. */
        mw_free(er.attributes_json);
        req_json_error(r, HTTP_STATUS_FORBIDDEN, MW_CODE_FORBIDDEN,
                       "playerId is not the authenticated player");
        return;
    }
    er.watched = false; /* MSG-115: an HTTP ticket has no watcher */
    r->op = OP_CREATE;
    r->has_idem_key = er.has_idem_key;
    r->now_ms = mw_loop_now_ms();
    r->state = REQ_WAIT_STORE;
    r->refs++;
    rc = mw_ticket_store_create(r->h->env.store, &er, r->now_ms, req_store_cb, r);
    mw_free(er.attributes_json);
    if (rc) {
        r->refs--;
        req_store_error(r, rc);
    }
}

/* GET or DELETE /v1/tickets/{id} (MSG-111, MSG-112). */
static void route_ticket(struct http_req *r, int method, const char *id)
{
    int rc;

    if (!mw_uuid4_valid(id, strlen(id))) {
        req_json_error(r, HTTP_STATUS_NOT_FOUND, MW_CODE_NOT_FOUND, "no such ticket");
        return;
    }
    r->state = REQ_WAIT_STORE;
    r->refs++;
    if (method == LWSHUMETH_GET) {
        r->op = OP_GET;
        rc = mw_ticket_store_get(r->h->env.store, id, req_store_cb, r);
    } else if (r->player_only) {
        r->op = OP_CANCEL_CHECK; /* read, then cancel only its own ticket */
        rc = mw_ticket_store_get(r->h->env.store, id, req_store_cb, r);
    } else {
        r->op = OP_CANCEL;
        rc = mw_ticket_store_cancel(r->h->env.store, id, mw_loop_now_ms(), req_store_cb, r);
    }
    if (rc) {
        r->refs--;
        req_store_error(r, rc);
    }
}

/* ---- Pipelining (lws 4.1.6) ----------------------------------------------- *
 *
 * lws reads up to 4 KiB at a time; what follows the request it is serving
 * (the next pipelined request) stays in the connection's rx buffer list and
 * is parsed from there, from lws_service_do_ripe_rxflow(), as soon as the
 * connection is not flow-controlled. Two faults of lws 4.1.6 follow:
 *
 * 1. While a transaction is open (LRS_ESTABLISHED / LRS_BODY, the header
 *    parser in WSI_PARSING_COMPLETE), lws parses the buffered bytes anyway:
 *    the parser swallows them and lws_http_action() runs again on the old
 *    headers (a pipelined GET was lost), or, after a body, lws_read_h1()
 *    finds rx_content_remain == 0, calls HTTP_BODY_COMPLETION again and
 *    consumes nothing, forever (100 % CPU). Fixed here: the connection is
 *    rx-flow-controlled from the moment a request is complete (headers of a
 *    bodyless request, or its BODY_COMPLETION) until its response is
 *    written and lws_http_transaction_completed() has reset it
 *    (LRS_DEFERRING_ACTION: lws parses nothing before the next POLLOUT);
 *    then lws parses the next request itself ("keeping ah as pipeline").
 *    The response is written at once (req_send), not from a WRITEABLE:
 *    lws does not service POLLOUT of a flow-controlled h1 connection.
 *
 * 2. lws_http_action() of a request with a body (Content-Length > 0, or a
 *    POST/PUT/PATCH without Content-Length) drains the rx buffer list in a
 *    loop of its own: when the request's headers came from that list, it
 *    hands the request's own header bytes to HTTP_BODY as the body, then
 *    calls HTTP_BODY_COMPLETION in an endless loop inside one call (no
 *    signal is handled any more), or with a longer body reads freed memory.
 *    Nothing a callback does after LWS_CALLBACK_HTTP can stop it, so such
 *    a request is refused in LWS_CALLBACK_HTTP: 503 `unavailable`
 *    (retryable) with `Connection: close`, and the connection closes
 *    (MSG-117). It is recognised without lws internals: lws reads nothing
 *    while a request is answered (flow control) and reads the socket only
 *    once its buffer list is empty, so when it has read nothing since the
 *    previous transaction ended, the new headers came from that list. The
 *    kernel counts what lws read (tcpi_bytes_received minus what is still
 *    queued); the count at the end of each transaction is kept in the wsi's
 *    opaque user data (it survives lws's per-transaction rebind). */

/* Bytes lws has read from wsi's socket, or -1 when unknown. */
static int64_t http_bytes_read(struct lws *wsi)
{
    /* Older kernels fill less of struct tcp_info; this much is needed. */
    const socklen_t need =
        (socklen_t)(offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(uint64_t));
    int fd = (int)lws_get_socket_fd(wsi);

    if (fd < 0)
        return -1;
    for (int i = 0; i < 4; i++) {
        struct tcp_info t1, t2;
        socklen_t l1 = sizeof(t1), l2 = sizeof(t2);
        int inq = 0;
        uint64_t got;

        memset(&t1, 0, sizeof(t1));
        memset(&t2, 0, sizeof(t2));
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &t1, &l1) != 0 || l1 < need ||
            ioctl(fd, FIONREAD, &inq) != 0 || inq < 0 ||
            getsockopt(fd, IPPROTO_TCP, TCP_INFO, &t2, &l2) != 0 || l2 < need)
            return -1;
        if (t1.tcpi_bytes_received != t2.tcpi_bytes_received)
            continue; /* a segment arrived in between: inq may not match */
        got = t1.tcpi_bytes_received;
        /* The peer's FIN counts one in tcpi_bytes_received and none in the
         * queue until it is read (and reading it ends the connection). */
        if (t1.tcpi_state == HTTP_TCP_CLOSE_WAIT || t1.tcpi_state == HTTP_TCP_LAST_ACK ||
            t1.tcpi_state == HTTP_TCP_CLOSING)
            got--;
        if (got < (uint64_t)inq)
            return -1;
        return (int64_t)(got - (uint64_t)inq);
    }
    return -1;
}

/* A transaction ended: remember how much lws has read, let it read on. */
static void http_mark_and_resume(struct lws *wsi)
{
    int64_t n = http_bytes_read(wsi);

    lws_set_opaque_user_data(wsi, (void *)(n < 0 ? HTTP_MARK_UNKNOWN : (uintptr_t)n + 1));
    lws_rx_flow_control(wsi, 1);
}

/* True when this request's headers came from lws's rx buffer list: a
 * transaction ended on this connection and lws has read nothing since. */
static bool http_pipelined(struct lws *wsi)
{
    uintptr_t mark = (uintptr_t)lws_get_opaque_user_data(wsi);
    int64_t n;

    if (mark == HTTP_MARK_NONE)
        return false; /* the first request: read from the socket */
    if (mark == HTTP_MARK_UNKNOWN)
        return true;
    n = http_bytes_read(wsi);
    return n < 0 || (uintptr_t)n + 1 == mark;
}

/* Whether lws 4.1.6 will read a body for this request (lws_http_action):
 * a Content-Length it can copy that is not 0, or none and a method that
 * carries one. *declared: the Content-Length, -1 when absent. */
static bool http_has_body(struct lws *wsi, int method, long long *declared)
{
    char cl[32];

    *declared = -1;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
        lws_hdr_copy(wsi, cl, sizeof(cl) - 1, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        *declared = atoll(cl);
        if (*declared < 0)
            *declared = LLONG_MAX; /* lws reads it as unsigned */
        return *declared != 0;
    }
    return method == LWSHUMETH_POST || method == LWSHUMETH_PUT || method == LWSHUMETH_PATCH;
}

/* Answers status with a JSON error and Connection: close from inside
 * LWS_CALLBACK_HTTP; the caller returns -1 (lws flushes, then closes). */
static int http_refuse_and_close_auth(struct lws *wsi, unsigned status, enum mw_code code,
                                      const char *message, const char *www_auth)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = &buf[LWS_PRE], *p = start, *end = &buf[sizeof(buf) - 1];
    char body[512];
    int n = snprintf(body, sizeof(body), "{\"code\":\"%s\",\"message\":\"%s\",\"retryable\":%s}",
                     mw_code_name(code), message, mw_code_retryable(code) ? "true" : "false");

    if (n < 0 || (size_t)n >= sizeof(body))
        return -1;
    if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t)n, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5,
                                     &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        (www_auth && lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
                                                 (const unsigned char *)www_auth,
                                                 (int)strlen(www_auth), &p, end)) ||
        lws_finalize_http_header(wsi, &p, end) || end - p < n)
        return -1;
    memcpy(p, body, (size_t)n);
    p += n;
    /* One write: what the kernel does not take, lws keeps and sends before
     * it closes (LRS_FLUSHING_BEFORE_CLOSE). */
    (void)lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
    return -1;
}

static int http_refuse_and_close(struct lws *wsi, unsigned status, enum mw_code code,
                                 const char *message)
{
    return http_refuse_and_close_auth(wsi, status, code, message, NULL);
}

/* ---- Credentials (spec/auth.md section 7) ----------------------------------- */

enum http_principal { HTTP_NOBODY = 0, HTTP_REFUSED, HTTP_SERVICE, HTTP_PLAYER };

/* Who the request's `Authorization: Bearer` credential is: the service
 * token (compared in constant time, AUTH-071), or, when allow_player, a
 * valid player token (sub copied to player). HTTP_NOBODY: no credentials;
 * HTTP_REFUSED: credentials that are neither. */
static enum http_principal http_principal(const struct mw_http *h, struct lws *wsi,
                                          bool allow_player, char *player)
{
    const struct mw_http_env *e = &h->env;
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    enum http_principal who = HTTP_REFUSED;
    char *hv;
    const char *tok, *why = "";
    size_t tl;

    if (n <= 0)
        return HTTP_NOBODY;
    if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, 1) > 0 ||
        n > MW_TOKEN_MAX_BYTES + 64)
        return HTTP_REFUSED; /* AUTH-012 */
    hv = mw_malloc((size_t)n + 1);
    if (!hv)
        return HTTP_REFUSED;
    if (lws_hdr_copy(wsi, hv, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0 ||
        strncasecmp(hv, "bearer", 6) != 0 || hv[6] != ' ')
        goto out;
    for (tok = hv + 6; *tok == ' ';)
        tok++;
    tl = strlen(tok);
    if (tl == 0)
        goto out;
    if (e->service_token_len &&
        mw_token_service_equal(e->service_token, e->service_token_len, tok, tl)) {
        who = HTTP_SERVICE;
    } else if (allow_player && mw_token_keys_count(e->auth_keys) > 0) {
        struct mw_token_claims c;

        if (mw_token_verify(e->auth_keys, &e->auth_policy, tok, tl, mw_loop_now_ms() / 1000, &c,
                            &why) == 0) {
            memcpy(player, c.sub, strlen(c.sub) + 1);
            who = HTTP_PLAYER;
        } else {
            mw_log(MW_LOG_INFO, "http: player token refused: %s", why);
        }
    }
out:
    OPENSSL_cleanse(hv, (size_t)n + 1);
    mw_free(hv);
    return who;
}

/* AUTH-070..075, before any body is read: 0 when the request may go on
 * (principal set in *player_only / player), else the 401 was written and
 * the callback returns -1 (the connection closes: lws would otherwise read
 * the body). */
static int http_authorize(struct mw_http *h, struct lws *wsi, const char *uri, size_t uri_len,
                          bool *player_only, char *player)
{
    const struct mw_http_env *e = &h->env;
    bool metrics = uri_len == 8 && memcmp(uri, "/metrics", 8) == 0;
    bool tickets = e->tickets_api && uri_len >= sizeof(HTTP_TICKETS) - 1 &&
                   memcmp(uri, HTTP_TICKETS, sizeof(HTTP_TICKETS) - 1) == 0 &&
                   (uri_len == sizeof(HTTP_TICKETS) - 1 || uri[sizeof(HTTP_TICKETS) - 1] == '/');
    bool auth_on = mw_token_keys_count(e->auth_keys) > 0;
    enum http_principal who;

    *player_only = false;
    if (!(metrics && e->service_token_len) && !(tickets && auth_on))
        return 0; /* an open route */
    who = http_principal(h, wsi, tickets, player);
    if (who == HTTP_SERVICE)
        return 0;
    if (who == HTTP_PLAYER) {
        *player_only = true;
        return 0;
    }
    return http_refuse_and_close_auth(
        wsi, HTTP_STATUS_UNAUTHORIZED, MW_CODE_UNAUTHORIZED,
        who == HTTP_NOBODY ? "credentials required" : "credentials refused",
        who == HTTP_NOBODY ? "Bearer realm=\"matchwire\""
                           : "Bearer realm=\"matchwire\", error=\"invalid_token\"");
}

/* Sends r's response at once, from wherever it became ready (inside
 * LWS_CALLBACK_HTTP or _BODY_COMPLETION, or a store callback): headers, then
 * body, with lws_write(). Not from LWS_CALLBACK_HTTP_WRITEABLE: lws 4.1.6
 * does not service POLLOUT of a flow-controlled h1 connection, and while it
 * is not flow-controlled a pipelined request would be misparsed (see
 * above). When the kernel took everything and the connection is
 * keep-alive, the transaction ends here and lws may read the next request.
 * Otherwise (lws holds part of the response, or the client asked for
 * Connection: close / spoke HTTP/1.0) the connection closes once lws has
 * flushed it (MSG-116). */
static void req_send(struct http_req *r)
{
    struct lws *wsi = r->wsi;
    void **slot = r->slot;
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = &hdr[LWS_PRE], *p = start, *end = &hdr[sizeof(hdr) - 1];
    size_t body_len = r->out.len > LWS_PRE ? r->out.len - LWS_PRE : 0;

    r->state = REQ_SENT;
    if (lws_add_http_common_headers(wsi, r->status, r->ctype, body_len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) ||
        lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0 ||
        (body_len && lws_write(wsi, (unsigned char *)r->out.data + LWS_PRE, body_len,
                               LWS_WRITE_HTTP_FINAL) < 0)) {
        /* The socket is gone: drop the connection. */
        req_detach(slot);
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    req_detach(slot); /* r may be freed: wsi and slot are locals */
    if (!lws_partial_buffered(wsi) && lws_http_transaction_completed(wsi) == 0) {
        /* lws reset the connection (LRS_DEFERRING_ACTION: nothing is
         * parsed before its next POLLOUT) and rebound the protocol (the
         * slot is gone with the old per-session data). */
        http_mark_and_resume(wsi);
        return;
    }
    /* Close after the flush: from the WRITEABLE lws gives once it has
     * sent what it holds; returning -1 there closes gracefully. */
    *slot = HTTP_SLOT_CLOSING;
    lws_rx_flow_control(wsi, 1);
    lws_callback_on_writable(wsi);
}

/* ---- Dispatch ------------------------------------------------------------- */

/* The request is complete (headers, and the body if any): route it. */
static void http_route(struct http_req *r)
{
    const struct mw_http_env *e = &r->h->env;
    const char *path = r->path;
    int method = r->method;

    if (r->h->stopping) {
        req_json_error(r, HTTP_STATUS_SERVICE_UNAVAILABLE, MW_CODE_UNAVAILABLE, "shutting down");
    } else if (strcmp(path, "/healthz") == 0) {
        if (method != LWSHUMETH_GET)
            goto not_allowed;
        route_healthz(r);
    } else if (strcmp(path, "/metrics") == 0) {
        if (method != LWSHUMETH_GET)
            goto not_allowed;
        route_metrics(r);
    } else if (e->tickets_api && strcmp(path, HTTP_TICKETS) == 0) {
        if (method != LWSHUMETH_POST)
            goto not_allowed;
        route_create(r); /* no body: answered as bad_json */
    } else if (e->tickets_api && strncmp(path, HTTP_TICKETS "/", sizeof(HTTP_TICKETS)) == 0) {
        if (method != LWSHUMETH_GET && method != LWSHUMETH_DELETE)
            goto not_allowed;
        route_ticket(r, method, path + sizeof(HTTP_TICKETS));
    } else if (!(e->tickets_api && method == LWSHUMETH_GET && route_asset(r, path))) {
        req_json_error(r, HTTP_STATUS_NOT_FOUND, MW_CODE_NOT_FOUND, "no such route");
    }
    return;

not_allowed:
    req_json_error(r, HTTP_STATUS_METHOD_NOT_ALLOWED, MW_CODE_BAD_MESSAGE, "method not allowed");
}

static int http_on_request(struct mw_http *h, struct lws *wsi, void **slot)
{
    const struct mw_http_env *e = &h->env;
    struct http_req *r;
    char *uri = NULL;
    int uri_len = 0;
    long long declared;
    bool body;
    int method;

    if (*slot) {
        /* A transaction is still open on this connection (its response is
         * being flushed before a close): this is lws 4.1.6 parsing the
         * next pipelined bytes into the old headers. Close (flushed). */
        mw_log(MW_LOG_INFO, "http: request while a response is pending: closing");
        return -1;
    }
    if (e->metrics)
        e->metrics->http_requests++;
    method = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
    body = http_has_body(wsi, method, &declared);
    /* MSG-117: first, before lws_http_action() can start its body loop. */
    if (body && http_pipelined(wsi)) {
        mw_log(MW_LOG_INFO, "http: pipelined request with a body: 503 and close");
        return http_refuse_and_close(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, MW_CODE_UNAVAILABLE,
                                     "pipelined request with a body: send it again on a new "
                                     "connection after the previous response");
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
        /* MSG-140: lws 4.1.6 decodes no chunked request body (with a
         * Content-Length too it would hand the chunk framing over as the
         * body); both headers together are also a request-smuggling sign
         * (RFC 9112 section 6.1): refused, and the connection closes. */
        return http_refuse_and_close(wsi, HTTP_STATUS_LENGTH_REQUIRED, MW_CODE_BAD_MESSAGE,
                                     "send the body with Content-Length, not Transfer-Encoding");
    if (body && declared < 0) /* POST without Content-Length: lws would wait for 100 MB */
        return http_refuse_and_close(wsi, HTTP_STATUS_LENGTH_REQUIRED, MW_CODE_BAD_MESSAGE,
                                     "Content-Length required");
    if (declared > HTTP_BODY_DROP) /* MSG-110: answered at once, not drained */
        return http_refuse_and_close(wsi, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, MW_CODE_TOO_LARGE,
                                     "body too large");
    if (method < 0 || !uri || uri_len <= 0 || (size_t)uri_len >= sizeof(r->path))
        return http_refuse_and_close(wsi, HTTP_STATUS_BAD_REQUEST, MW_CODE_BAD_MESSAGE,
                                     "bad request line");
    {
        bool player_only;
        char player[MW_PLAYER_ID_MAX + 1] = "";

        if (http_authorize(h, wsi, uri, (size_t)uri_len, &player_only, player))
            return -1; /* AUTH-072: answered 401 before the body */
        r = req_new(h, wsi, slot);
        if (!r)
            return -1;
        r->player_only = player_only;
        memcpy(r->player, player, sizeof(r->player));
    }
    r->method = method;
    memcpy(r->path, uri, (size_t)uri_len);
    r->path[uri_len] = '\0';
    if (body || (declared == 0 && method == LWSHUMETH_POST)) {
        /* Routed at LWS_CALLBACK_HTTP_BODY_COMPLETION, whatever the route:
         * the transaction ends only after lws has read the whole body (lws
         * sends one at once for Content-Length: 0). */
        r->in_too_large = declared > MW_HTTP_BODY_MAX;
        r->state = REQ_WAIT_BODY;
        return 0;
    }
    /* MSG-116: lws reads nothing more from this connection until the
     * response is written and the transaction reset. */
    lws_rx_flow_control(wsi, 0);
    http_route(r);
    return 0;
}

static int http_on_writeable(void **slot)
{
    /* Only a connection to close after its last response was flushed asks
     * for a WRITEABLE (req_send); others get one at shutdown. */
    return *slot == HTTP_SLOT_CLOSING ? -1 : 0;
}

int mw_http_callback(struct mw_http *h, struct lws *wsi, enum lws_callback_reasons reason,
                     void **slot, void *in, size_t len)
{
    struct http_req *r = *slot == HTTP_SLOT_CLOSING ? NULL : *slot;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_on_request(h, wsi, slot);
    case LWS_CALLBACK_HTTP_BODY:
        if (!r || r->state != REQ_WAIT_BODY)
            return 0;
        if (!r->in_too_large && mw_buf_append(&r->in, in, len) != 0) {
            /* Over the bound: drop what we kept and drain the rest. */
            r->in_too_large = true;
            mw_buf_release(&r->in);
            mw_buf_init(&r->in, MW_HTTP_BODY_MAX);
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (r && r->state == REQ_WAIT_BODY) {
            lws_rx_flow_control(wsi, 0); /* MSG-116: nothing more until answered */
            http_route(r);
            return 0;
        }
        /* A repeat is the lws 4.1.6 loop described above: close rather
         * than spin. */
        if (!r || ++r->stray_completions == 1)
            return 0;
        mw_log(MW_LOG_WARN, "http: repeated HTTP_BODY_COMPLETION: closing the connection");
        return -1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_on_writeable(slot);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        req_detach(slot);
        return 0;
    default:
        return 0;
    }
}

struct mw_http *mw_http_new(const struct mw_http_env *env)
{
    struct mw_http *h = mw_calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    h->env = *env;
    if (!h->env.role)
        h->env.role = "all";
    if (!h->env.channel)
        h->env.channel = "memory";
    return h;
}

void mw_http_stop(struct mw_http *h)
{
    if (h)
        h->stopping = true;
}

void mw_http_free(struct mw_http *h)
{
    mw_free(h);
}
