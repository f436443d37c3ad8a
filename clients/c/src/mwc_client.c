/* mwc_client: the public client (matchwire/client.h): the transport around
 * the pure protocol state machine (mwc_proto.h). libwebsockets' raw client
 * role carries the bytes (one lws context per client, built with the
 * client's own options: a foreign libuv/libev loop), mwc_ws.c speaks
 * WebSocket over them and mwc_tls.c adds TLS for wss:// (why: mwc_ws.h,
 * mwc_tls.h). One connection at a time. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "matchwire/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "alloc.h"
#include "envelope.h"
#include "mwc_proto.h"
#include "mwc_tls.h"
#include "mwc_ws.h"
#include "ticket.h"

#define MWC_SUBPROTOCOL "matchwire.v1"

/* Where the current connection is. */
enum conn_phase {
    PH_NONE = 0,  /* no connection */
    PH_TCP,       /* TCP connecting */
    PH_TLS,       /* TLS handshake (wss://) */
    PH_HANDSHAKE, /* upgrade request sent, reading the response head */
    PH_OPEN,      /* WebSocket open */
    PH_CLOSING,   /* a close frame went or came: the socket is going */
};

struct mwc_client {
    struct mwc_proto *proto;
    struct lws_context *ctx;
    struct lws_protocols protocols[2];
    void *loops[1];
    bool foreign;

    char *url;      /* owned copy of the options' url */
    char *ca_file;  /* owned or NULL */
    char host[256]; /* parsed from url */
    char host_header[300];
    char path[1024]; /* with its leading '/' */
    int port;
    bool wss; /* the url is wss:// */

    struct lws *wsi; /* the current connection or attempt; NULL: none */
    enum conn_phase phase;
    bool reported; /* the proto was told how this connection ended */
    bool want_ping, want_close, close_after_write;
    bool pong_due;
    unsigned char pong[125];
    size_t pong_len;
    char key[MWC_WS_KEY_LEN + 1];
    struct mw_buf head;          /* the handshake response head */
    struct mw_buf tx;            /* LWS_PRE bytes, then plaintext waiting to be written */
    struct mw_buf wire;          /* LWS_PRE bytes, then ciphertext waiting (wss://) */
    struct mwc_tls_ctx *tls_ctx; /* wss:// only */
    struct mwc_tls *tls;         /* the current connection's session */
    struct mwc_ws_rx rx;

    lws_sorted_usec_list_t sul_timer; /* the proto's next deadline */
    lws_sorted_usec_list_t sul_wake;  /* bounds mwc_service()'s wait */

    int depth; /* nesting of our own callbacks / service calls */
    bool free_requested;
};

const char *mwc_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case MWC_ENOMEM:
        return "out of memory";
    case MWC_EINVAL:
        return "invalid argument";
    case MWC_ESTATE:
        return "not allowed in the current state";
    case MWC_ELIMIT:
        return "limit reached";
    case MWC_EIO:
        return "transport failure";
    case MWC_ECLOSED:
        return "closed";
    default:
        return "unknown error";
    }
}

const char *mwc_state_name(enum mwc_state s)
{
    switch (s) {
    case MWC_STATE_IDLE:
        return "idle";
    case MWC_STATE_CONNECTING:
        return "connecting";
    case MWC_STATE_OPEN:
        return "open";
    case MWC_STATE_BACKOFF:
        return "backoff";
    case MWC_STATE_STOPPED:
        return "stopped";
    }
    return "unknown";
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int os_random(void *ud, void *buf, size_t n)
{
    return mw_random_os(ud, buf, n);
}

/* ---- driving the state machine ------------------------------------------------ */

static void pump(struct mwc_client *c);

static void sul_timer_cb(lws_sorted_usec_list_t *sul)
{
    struct mwc_client *c = lws_container_of(sul, struct mwc_client, sul_timer);

    pump(c);
}

static void sul_wake_cb(lws_sorted_usec_list_t *sul)
{
    (void)sul; /* only ends lws_service()'s wait */
}

/* Forgets the current connection: later lws callbacks for it are ignored
 * (they no longer match c->wsi), and lws is told to drop it. */
static void abandon(struct mwc_client *c)
{
    if (c->wsi)
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    c->wsi = NULL;
    c->phase = PH_NONE;
}

static void start_connect(struct mwc_client *c)
{
    struct lws_client_connect_info i;

    abandon(c);
    memset(&i, 0, sizeof(i));
    i.context = c->ctx;
    i.address = c->host;
    i.port = c->port;
    i.host = c->host; /* SNI and the certificate's name */
    i.method = "RAW"; /* lws carries bytes; mwc_ws.c speaks WebSocket */
    i.local_protocol_name = "mwc-raw";
    i.ssl_connection = 0; /* TLS is mwc_tls.c's (see mwc_tls.h) */
    i.pwsi = &c->wsi;
    mwc_tls_free(c->tls);
    c->tls = NULL;
    mw_buf_truncate(&c->wire, LWS_PRE);
    c->phase = PH_TCP;
    c->reported = false;
    c->want_ping = c->want_close = c->close_after_write = c->pong_due = false;
    mw_buf_reset(&c->head);
    mw_buf_truncate(&c->tx, LWS_PRE);
    mwc_ws_rx_reset(&c->rx);
    if (!lws_client_connect_via_info(&i)) {
        c->wsi = NULL; /* failed at once (DNS, socket): a network failure */
        c->phase = PH_NONE;
        c->reported = true;
        mwc_proto_on_refused(c->proto, 0, -1, false, now_ms());
    }
}

/* Runs the proto's timers and actions, asks lws for a writeable callback
 * when something is to be written, and schedules the next deadline. */
static void pump(struct mwc_client *c)
{
    enum mwc_action act;
    int64_t now = now_ms();

    if (!c->proto || !c->ctx)
        return;
    c->depth++;
    while ((act = mwc_proto_tick(c->proto, now)) != MWC_ACT_NONE) {
        switch (act) {
        case MWC_ACT_CONNECT:
            start_connect(c);
            break;
        case MWC_ACT_PING:
            c->want_ping = true;
            break;
        case MWC_ACT_DROP: /* CLI-071: reported as 1006 */
            if (c->wsi && !c->reported) {
                c->reported = true;
                abandon(c);
                mwc_proto_on_closed(c->proto, 1006, now_ms());
            }
            break;
        case MWC_ACT_CLOSE:
            if (c->wsi && c->phase == PH_OPEN) {
                c->want_close = true;
            } else if (c->wsi) {
                c->reported = true;
                abandon(c);
                mwc_proto_on_refused(c->proto, 0, -1, false, now_ms());
            }
            break;
        default:
            break;
        }
        now = now_ms();
    }
    if (c->wsi && c->phase == PH_OPEN &&
        (c->want_close || c->want_ping || c->pong_due || mwc_proto_send_ready(c->proto, now)))
        lws_callback_on_writable(c->wsi);
    lws_sul_schedule(c->ctx, 0, &c->sul_timer, sul_timer_cb,
                     (lws_usec_t)mwc_proto_wait_ms(c->proto, now) * LWS_US_PER_MS + 1000);
    c->depth--;
}

/* ---- the lws protocol callback (raw client role) ------------------------------ */

static void frame_mask(unsigned char mask[4])
{
    if (mw_random_os(NULL, mask, 4) != 0)
        memset(mask, 0x5a, 4);
}

static int append_frame(struct mwc_client *c, enum mwc_ws_op op, const void *p, size_t n)
{
    unsigned char mask[4];

    frame_mask(mask);
    return mwc_ws_frame(&c->tx, op, p, n, mask);
}

/* One WebSocket event from the decoder. */
static int on_ws_event(void *ud, const struct mwc_ws_event *ev)
{
    struct mwc_client *c = ud;
    int64_t now = now_ms();

    switch ((int)ev->op) {
    case MWC_WS_TEXT:
        mwc_proto_on_text(c->proto, (const char *)ev->data,
                          ev->truncated ? MWC_WS_MESSAGE_MAX : ev->len, now);
        break;
    case MWC_WS_BINARY:
        mwc_proto_on_binary(c->proto, now);
        break;
    case MWC_WS_PING: /* CLI-070: a pong with the same payload */
        memcpy(c->pong, ev->data, ev->len);
        c->pong_len = ev->len;
        c->pong_due = true;
        mwc_proto_on_pong(c->proto, now);
        break;
    case MWC_WS_PONG:
        mwc_proto_on_pong(c->proto, now);
        break;
    case MWC_WS_CLOSE:
        if (c->want_close || c->close_after_write || c->phase == PH_CLOSING) {
            c->phase = PH_CLOSING; /* the answer to our close (CLI-080): done */
            if (!c->reported) {
                c->reported = true;
                mwc_proto_on_closed(c->proto, ev->close_code, now);
            }
            return 1;
        }
        /* Answer with the same code (RFC 6455 5.5.1), then close the socket. */
        if (ev->close_code == 1005)
            append_frame(c, MWC_WS_CLOSE, NULL, 0);
        else
            append_frame(c, MWC_WS_CLOSE, ev->data, 2);
        c->close_after_write = true;
        c->phase = PH_CLOSING;
        c->reported = true;
        mwc_proto_on_closed(c->proto, ev->close_code, now);
        return 1;
    default: /* the server broke RFC 6455: fail the connection (1006 for us) */
        mwc_proto_on_binary(c->proto, now); /* counts as a skipped message */
        c->reported = true;
        c->phase = PH_CLOSING;
        mwc_proto_on_closed(c->proto, 1006, now);
        return 1;
    }
    return 0;
}

/* The handshake response head is complete in c->head[0..end). */
static int on_head(struct mwc_client *c, long end)
{
    struct mwc_ws_response r;
    int64_t now = now_ms();

    mwc_ws_response_parse(c->head.data, (size_t)end, c->key, MWC_SUBPROTOCOL, &r);
    if (r.status == 101 && r.upgraded && (!r.subprotocol_set || r.subprotocol_ok)) {
        lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
        c->phase = PH_OPEN;
        mwc_proto_on_open(c->proto, now);
        if (c->wsi && c->phase == PH_OPEN && (size_t)end < c->head.len)
            mwc_ws_rx_feed(&c->rx, (const unsigned char *)c->head.data + end,
                           c->head.len - (size_t)end, on_ws_event, c);
        mw_buf_release(&c->head);
        mw_buf_init(&c->head, MWC_WS_HEADERS_MAX);
        return c->phase == PH_OPEN ? 0 : -1;
    }
    c->reported = true;
    c->phase = PH_CLOSING;
    if (r.status == 101) /* CLI-001: another subprotocol (or a bad Accept): not retried */
        mwc_proto_on_refused(c->proto, 0, -1, r.upgraded, now);
    else
        mwc_proto_on_refused(c->proto, r.status, r.retry_after, false, now);
    return -1;
}

static int on_raw_rx(struct mwc_client *c, const unsigned char *in, size_t len)
{
    long end;

    if (c->phase == PH_OPEN || (c->phase == PH_CLOSING && !c->reported)) {
        mwc_ws_rx_feed(&c->rx, in, len, on_ws_event, c);
        return c->phase == PH_OPEN || c->close_after_write ? 0 : -1;
    }
    if (c->phase != PH_HANDSHAKE)
        return 0;
    if (mw_buf_append(&c->head, in, len) != 0) {
        c->reported = true;
        mwc_proto_on_refused(c->proto, 0, -1, false, now_ms());
        return -1;
    }
    end = mwc_ws_head_end(c->head.data, c->head.len);
    if (end == 0)
        return 0;
    if (end < 0) {
        c->reported = true;
        mwc_proto_on_refused(c->proto, 0, -1, false, now_ms());
        return -1;
    }
    return on_head(c, end);
}

/* Writes what waits: the plaintext itself, or through TLS its ciphertext. */
static int flush(struct mwc_client *c, struct lws *wsi)
{
    struct mw_buf *w = &c->tx;
    size_t n = c->tx.len - LWS_PRE;

    if (c->tls) {
        if (n && mwc_tls_write(c->tls, c->tx.data + LWS_PRE, n) != 0)
            return -1;
        mw_buf_truncate(&c->tx, LWS_PRE);
        if (mwc_tls_drain(c->tls, &c->wire) != 0)
            return -1;
        w = &c->wire;
        n = w->len - LWS_PRE;
    }
    if (n) {
        if (lws_write(wsi, (unsigned char *)w->data + LWS_PRE, n, LWS_WRITE_RAW) < (int)n)
            return -1;
        mw_buf_truncate(w, LWS_PRE);
    }
    return 0;
}

static int send_request(struct mwc_client *c, struct lws *wsi);

/* Ciphertext arrived (wss://): the handshake, then plaintext for on_raw_rx. */
static int on_tls_rx(struct mwc_client *c, struct lws *wsi, const void *in, size_t len)
{
    unsigned char plain[16384];
    int n;

    if (mwc_tls_feed(c->tls, in, len) != 0)
        return -1;
    if (c->phase == PH_TLS) {
        n = mwc_tls_handshake(c->tls);
        if (n < 0) {
            c->reported = true;
            if (mwc_tls_cert_refused(c->tls))
                /* CLI-004: the certificate did not verify: 1015, stop
                 * (client.md 5.1); nothing was sent over it. */
                mwc_proto_on_closed(c->proto, 1015, now_ms());
            else /* any other TLS failure: retried like a network failure */
                mwc_proto_on_refused(c->proto, 0, -1, false, now_ms());
            return -1;
        }
        if (n == 1 && send_request(c, wsi) != 0)
            return -1;
    }
    while (c->wsi == wsi && (n = mwc_tls_read(c->tls, plain, sizeof(plain))) > 0)
        if (on_raw_rx(c, plain, (size_t)n) != 0)
            return -1;
    if (n < 0 && c->phase != PH_TLS)
        return -1; /* close_notify or a TLS error: the socket goes, as 1006 */
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_raw_writeable(struct mwc_client *c, struct lws *wsi)
{
    const char *msg;
    size_t len;

    if (c->phase == PH_OPEN || c->close_after_write) {
        if (c->pong_due) {
            c->pong_due = false;
            if (append_frame(c, MWC_WS_PONG, c->pong, c->pong_len) != 0)
                return -1;
        }
        if (c->want_close && c->phase == PH_OPEN) { /* CLI-080 */
            static const unsigned char normal[2] = {0x03, 0xe8};
            c->want_close = false;
            if (append_frame(c, MWC_WS_CLOSE, normal, 2) != 0)
                return -1;
            c->phase = PH_CLOSING;
            lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, 2); /* waits for the answer */
        }
        if (c->want_ping && c->phase == PH_OPEN) {
            c->want_ping = false;
            if (append_frame(c, MWC_WS_PING, NULL, 0) != 0)
                return -1;
        }
        /* A frame that cannot be buffered drops the connection: the request
         * is replayed on the next one (CLI-011, CLI-050). */
        if (c->phase == PH_OPEN && mwc_proto_next_send(c->proto, now_ms(), &msg, &len) &&
            append_frame(c, MWC_WS_TEXT, msg, len) != 0)
            return -1;
    }
    if (flush(c, wsi) != 0)
        return -1;
    if (c->close_after_write)
        return -1;
    if (c->phase == PH_OPEN &&
        (c->pong_due || c->want_ping || c->want_close || mwc_proto_send_ready(c->proto, now_ms())))
        lws_callback_on_writable(wsi); /* one write per callback; more may wait */
    return 0;
}

static int send_request(struct mwc_client *c, struct lws *wsi)
{
    unsigned char key16[16];

    if (mw_random_os(NULL, key16, sizeof(key16)) != 0)
        return -1;
    if (mwc_ws_request(&c->tx, c->host_header, c->path, MWC_SUBPROTOCOL, mwc_proto_token(c->proto),
                       key16, c->key) != 0)
        return -1;
    c->phase = PH_HANDSHAKE;
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 10); /* the handshake's bound */
    lws_callback_on_writable(wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct mwc_client *c = lws_context_user(lws_get_context(wsi));
    int rc = 0;

    if (!c || !c->proto)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_RAW_CONNECTED:
    case LWS_CALLBACK_RAW_RX:
    case LWS_CALLBACK_RAW_WRITEABLE:
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        break;
    default:
        return 0;
    }
    if (wsi != c->wsi)
        return reason == LWS_CALLBACK_RAW_CLOSE || reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR
                   ? 0
                   : -1; /* an abandoned connection */
    c->depth++;
    switch (reason) {
    case LWS_CALLBACK_RAW_CONNECTED:
        if (c->tls_ctx) {
            c->tls = mwc_tls_new(c->tls_ctx, c->host);
            c->phase = PH_TLS;
            lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 10); /* TLS + upgrade bound */
            rc = c->tls && mwc_tls_handshake(c->tls) >= 0 ? 0 : -1;
            lws_callback_on_writable(wsi);
        } else {
            rc = send_request(c, wsi);
        }
        break;
    case LWS_CALLBACK_RAW_RX:
        rc = c->tls ? on_tls_rx(c, wsi, in, len) : on_raw_rx(c, in, len);
        break;
    case LWS_CALLBACK_RAW_WRITEABLE:
        rc = on_raw_writeable(c, wsi);
        break;
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        enum conn_phase ph = c->phase;
        c->wsi = NULL;
        c->phase = PH_NONE;
        if (!c->reported) {
            c->reported = true;
            if (ph == PH_OPEN || ph == PH_CLOSING)
                mwc_proto_on_closed(c->proto, 1006, now_ms()); /* no close frame */
            else
                mwc_proto_on_refused(c->proto, 0, -1, false, now_ms());
        }
        break;
    }
    default:
        break;
    }
    c->depth--;
    if (c->proto && c->ctx && !c->free_requested)
        pump(c);
    return rc;
}

/* ---- public API ------------------------------------------------------------------- */

static int parse_url(struct mwc_client *c)
{
    char *copy = mw_strndup(c->url, strlen(c->url));
    const char *prot, *ads, *path;
    int port, rc = MWC_EINVAL;

    if (!copy)
        return MWC_ENOMEM;
    if (lws_parse_uri(copy, &prot, &ads, &port, &path) != 0)
        goto out;
    if (strcmp(prot, "ws") == 0)
        c->wss = false;
    else if (strcmp(prot, "wss") == 0)
        c->wss = true;
    else
        goto out;
    if (!*ads || strlen(ads) >= sizeof(c->host) || strlen(path) + 2 > sizeof(c->path))
        goto out;
    snprintf(c->host, sizeof(c->host), "%s", ads);
    snprintf(c->path, sizeof(c->path), "/%s", path);
    c->port = port;
    if (port == (c->wss ? 443 : 80))
        snprintf(c->host_header, sizeof(c->host_header), "%s", ads);
    else if (strchr(ads, ':'))
        snprintf(c->host_header, sizeof(c->host_header), "[%s]:%d", ads, port);
    else
        snprintf(c->host_header, sizeof(c->host_header), "%s:%d", ads, port);
    rc = 0;
out:
    mw_free(copy);
    return rc;
}

/* Whether s holds a control byte (a CR or LF would inject a header into the
 * handshake, mwc_ws_request() refuses it, and every attempt would fail). */
static bool has_ctl(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

struct mwc_client *mwc_new(const struct mwc_options *opts)
{
    struct mwc_client *c;
    struct lws_context_creation_info info;

    if (!opts || !opts->url || (opts->uv_loop && opts->ev_loop) ||
        (opts->token && strlen(opts->token) > MWC_TOKEN_MAX) || has_ctl(opts->url) ||
        has_ctl(opts->token))
        return NULL;
    c = mw_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    mw_buf_init(&c->head, MWC_WS_HEADERS_MAX);
    mw_buf_init(&c->tx, 4 * MW_ENVELOPE_MAX_BYTES);
    mw_buf_init(&c->wire, 8 * MW_ENVELOPE_MAX_BYTES);
    c->url = mw_strndup(opts->url, strlen(opts->url));
    if (!c->url || parse_url(c) != 0 || mwc_ws_rx_init(&c->rx) != 0)
        goto fail;
    if (mw_buf_append(&c->tx, (char[LWS_PRE]){0}, LWS_PRE) != 0 ||
        mw_buf_append(&c->wire, (char[LWS_PRE]){0}, LWS_PRE) != 0)
        goto fail;
    if (opts->ca_file) {
        c->ca_file = mw_strndup(opts->ca_file, strlen(opts->ca_file));
        if (!c->ca_file)
            goto fail;
    }
    c->proto = mwc_proto_new(&opts->cb, opts->userdata, c, os_random, NULL, opts->token);
    if (!c->proto)
        goto fail;

    c->protocols[0].name = "mwc-raw";
    c->protocols[0].callback = callback;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = c->protocols;
    info.user = c;
    info.fd_limit_per_thread = 8; /* one connection, its DNS, spare */
    info.timeout_secs = 10;       /* the handshake's bound */
    info.options = 0;
    if (c->wss) {
        c->tls_ctx = mwc_tls_ctx_new(c->ca_file);
        if (!c->tls_ctx)
            goto fail;
    }
    if (opts->uv_loop) {
        c->loops[0] = opts->uv_loop;
        info.foreign_loops = c->loops;
        info.options |= LWS_SERVER_OPTION_LIBUV;
        c->foreign = true;
    } else if (opts->ev_loop) {
        c->loops[0] = opts->ev_loop;
        info.foreign_loops = c->loops;
        info.options |= LWS_SERVER_OPTION_LIBEV;
        c->foreign = true;
    }
    c->ctx = lws_create_context(&info);
    if (!c->ctx)
        goto fail;
    return c;
fail:
    mwc_proto_free(c->proto);
    mw_free(c->ca_file);
    mwc_tls_ctx_free(c->tls_ctx);
    mwc_ws_rx_release(&c->rx);
    mw_buf_release(&c->head);
    mw_buf_release(&c->tx);
    mw_buf_release(&c->wire);
    mw_free(c->url);
    mw_free(c);
    return NULL;
}

static void destroy(struct mwc_client *c)
{
    struct mwc_proto *p = c->proto;

    c->proto = NULL; /* no callback from here on */
    if (c->ctx) {
        lws_sul_cancel(&c->sul_timer);
        lws_sul_cancel(&c->sul_wake);
        lws_context_destroy(c->ctx);
    }
    mwc_proto_free(p);
    mw_free(c->ca_file);
    mwc_tls_free(c->tls);
    mwc_tls_ctx_free(c->tls_ctx);
    mwc_ws_rx_release(&c->rx);
    mw_buf_release(&c->head);
    mw_buf_release(&c->tx);
    mw_buf_release(&c->wire);
    mw_free(c->url);
    mw_free(c);
}

void mwc_free(struct mwc_client *c)
{
    if (!c)
        return;
    if (c->depth > 0) {
        /* inside a callback: released at the end of mwc_service(); from now
         * on nothing reaches the application (client.h) */
        c->free_requested = true;
        mwc_proto_silence(c->proto);
        return;
    }
    destroy(c);
}

/* On a foreign loop nothing else runs the state machine after an
 * application call: schedule a pump on the loop (at once, but not inside the
 * call: callbacks never run inside another mwc_* call, client.h). */
static void pump_soon(struct mwc_client *c)
{
    lws_sul_schedule(c->ctx, 0, &c->sul_timer, sul_timer_cb, 1);
}

int mwc_connect(struct mwc_client *c)
{
    int rc = mwc_proto_start(c->proto, now_ms());

    if (rc == 0 && c->foreign)
        pump_soon(c);
    return rc;
}

int mwc_service(struct mwc_client *c, int timeout_ms)
{
    int64_t w;
    int rc;

    if (c->foreign || c->depth > 0)
        return MWC_ESTATE; /* a foreign loop drives it, or inside a callback */
    c->depth++;
    pump(c);
    w = mwc_proto_wait_ms(c->proto, now_ms());
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (w > timeout_ms)
        w = timeout_ms;
    if (w > 0)
        lws_sul_schedule(c->ctx, 0, &c->sul_wake, sul_wake_cb, (lws_usec_t)w * LWS_US_PER_MS);
    rc = lws_service(c->ctx, w > 0 ? 0 : -1);
    lws_sul_cancel(&c->sul_wake);
    if (!c->free_requested)
        pump(c);
    c->depth--;
    if (c->free_requested && c->depth == 0) {
        destroy(c);
        return 0;
    }
    return rc < 0 ? MWC_EIO : 0;
}

static int after_call(struct mwc_client *c, int rc)
{
    if (rc == 0 && c->foreign && c->depth == 0)
        pump_soon(c);
    return rc;
}

int mwc_enqueue(struct mwc_client *c, const struct mwc_enqueue *req, char *detail,
                size_t detail_cap)
{
    return after_call(c, mwc_proto_enqueue(c->proto, req, detail, detail_cap, now_ms()));
}

int mwc_watch(struct mwc_client *c, const char *ticket_id)
{
    return after_call(c, mwc_proto_watch(c->proto, ticket_id, now_ms()));
}

int mwc_cancel(struct mwc_client *c, const char *ticket_id)
{
    return after_call(c, mwc_proto_cancel(c->proto, ticket_id, now_ms()));
}

int mwc_close(struct mwc_client *c)
{
    return after_call(c, mwc_proto_close(c->proto, now_ms()));
}

enum mwc_state mwc_get_state(const struct mwc_client *c)
{
    return mwc_proto_state(c->proto);
}
