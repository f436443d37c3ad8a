/* http: /healthz, /metrics, /v1/tickets and the demo page, on lws's HTTP
 * callbacks, with refcounted requests for the asynchronous store. */
#include "http.h"

#include <stdlib.h>
#include <string.h>

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
/* A declared body this large is not even drained: the connection is dropped. */
#define HTTP_BODY_DROP (16 * MW_HTTP_BODY_MAX)

struct mw_http {
    struct mw_http_env env;
};

enum req_state {
    REQ_WAIT_BODY = 0, /* POST body arriving */
    REQ_WAIT_STORE,    /* a store call is in flight */
    REQ_HEADERS,       /* response ready: write the headers next */
    REQ_BODY,          /* headers written: write the body next */
};

enum req_op { OP_NONE = 0, OP_CREATE, OP_GET, OP_CANCEL };

/* One HTTP request. Held by the wsi (through its slot) and by each store
 * call in flight; freed when the last holder lets go. */
struct http_req {
    unsigned refs;
    struct mw_http *h; /* valid while wsi is (see mw_http_free) */
    struct lws *wsi;   /* NULL once the connection is gone */
    void **slot;       /* the wsi's pointer to us, NULL once detached */
    enum req_state state;
    enum req_op op;
    struct mw_buf in;  /* POST body, at most MW_HTTP_BODY_MAX bytes */
    bool in_too_large; /* over the bound: the rest is drained, not kept */
    bool has_idem_key; /* POST carried an idempotencyKey */
    int64_t now_ms;    /* the time given to create */
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

/* The wsi lets go (transaction over or connection closed). */
static void req_detach(void **slot)
{
    struct http_req *r = *slot;

    if (!r)
        return;
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

/* The response is complete: ask lws for a WRITEABLE to send it. */
static void req_ready(struct http_req *r)
{
    r->state = REQ_HEADERS;
    if (r->wsi)
        lws_callback_on_writable(r->wsi);
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
        if (status == 0)
            req_resource(r, HTTP_STATUS_OK, t);
        else
            req_store_error(r, status);
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
    } else {
        r->op = OP_CANCEL;
        rc = mw_ticket_store_cancel(r->h->env.store, id, mw_loop_now_ms(), req_store_cb, r);
    }
    if (rc) {
        r->refs--;
        req_store_error(r, rc);
    }
}

static int http_on_request(struct mw_http *h, struct lws *wsi, void **slot)
{
    const struct mw_http_env *e = &h->env;
    struct http_req *r;
    char *uri = NULL;
    char path[256];
    int uri_len = 0;
    int method;

    req_detach(slot); /* a previous transaction on this keep-alive connection */
    if (e->metrics)
        e->metrics->http_requests++;
    method = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
    if (method < 0 || !uri || uri_len <= 0 || (size_t)uri_len >= sizeof(path)) {
        if (lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, NULL))
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    memcpy(path, uri, (size_t)uri_len);
    path[uri_len] = '\0';
    r = req_new(h, wsi, slot);
    if (!r)
        return -1;

    if (strcmp(path, "/healthz") == 0) {
        if (method != LWSHUMETH_GET)
            goto not_allowed;
        route_healthz(r);
    } else if (strcmp(path, "/metrics") == 0) {
        if (method != LWSHUMETH_GET)
            goto not_allowed;
        route_metrics(r);
    } else if (e->tickets_api && strcmp(path, HTTP_TICKETS) == 0) {
        char cl[32];
        long long declared = -1;

        if (method != LWSHUMETH_POST)
            goto not_allowed;
        if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
            declared = atoll(cl);
        if (declared > HTTP_BODY_DROP)
            return -1; /* not worth draining */
        if (declared <= 0) {
            route_create(r); /* no body: answered as bad_json */
        } else {
            r->in_too_large = declared > MW_HTTP_BODY_MAX;
            r->state = REQ_WAIT_BODY; /* LWS_CALLBACK_HTTP_BODY follows */
        }
    } else if (e->tickets_api && strncmp(path, HTTP_TICKETS "/", sizeof(HTTP_TICKETS)) == 0) {
        if (method != LWSHUMETH_GET && method != LWSHUMETH_DELETE)
            goto not_allowed;
        route_ticket(r, method, path + sizeof(HTTP_TICKETS));
    } else if (!(e->tickets_api && method == LWSHUMETH_GET && route_asset(r, path))) {
        req_json_error(r, HTTP_STATUS_NOT_FOUND, MW_CODE_NOT_FOUND, "no such route");
    }
    return 0;

not_allowed:
    req_json_error(r, HTTP_STATUS_METHOD_NOT_ALLOWED, MW_CODE_BAD_MESSAGE, "method not allowed");
    return 0;
}

static int http_on_writeable(struct lws *wsi, void **slot)
{
    struct http_req *r = *slot;
    unsigned char hdr[LWS_PRE + 512];
    unsigned char *start = &hdr[LWS_PRE], *p = start, *end = &hdr[sizeof(hdr) - 1];
    size_t body_len;

    if (!r)
        return 0;
    body_len = r->out.len > LWS_PRE ? r->out.len - LWS_PRE : 0;
    switch (r->state) {
    case REQ_HEADERS:
        if (lws_add_http_common_headers(wsi, r->status, r->ctype, body_len, &p, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                         (const unsigned char *)"no-store", 8, &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        r->state = REQ_BODY;
        lws_callback_on_writable(wsi);
        return 0;
    case REQ_BODY:
        if (lws_write(wsi, (unsigned char *)r->out.data + LWS_PRE, body_len,
                      LWS_WRITE_HTTP_FINAL) != (int)body_len) {
            req_detach(slot);
            return -1;
        }
        req_detach(slot);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    default:
        return 0; /* not ready yet (e.g. a writeable for every wsi at shutdown) */
    }
}

int mw_http_callback(struct mw_http *h, struct lws *wsi, enum lws_callback_reasons reason,
                     void **slot, void *in, size_t len)
{
    struct http_req *r = *slot;

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
        if (r && r->state == REQ_WAIT_BODY)
            route_create(r);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_on_writeable(wsi, slot);
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

void mw_http_free(struct mw_http *h)
{
    mw_free(h);
}
