/* gateway: libwebsockets on the foreign libev loop; WebSocket transport for
 * sessions, transport limits, close codes, optional TLS; HTTP requests go to
 * http.c. */
#define _GNU_SOURCE /* RTLD_NEXT (see "Unmasked client frames") */
#include "gateway.h"

#include <dlfcn.h>
#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <openssl/crypto.h> /* OPENSSL_cleanse */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h> /* SSL_OP_* and the SSL_read prototype only: libssl is lws's */
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "utf8.h"

/* lws's rx buffer per WebSocket, allocated for the connection's whole life
 * (lws 4.1.6 measured here: every byte of it is a byte of RSS per idle
 * connection). 512 holds a typical client message (enqueue with a few
 * attributes) in one piece; larger ones arrive in chunks and are
 * reassembled here (bounded). */
#define GW_RX_BUFFER 512
/* Seconds lws keeps a connection we asked to close whose peer does not read
 * the close frame yet (a slow consumer: its queue is already freed, only the
 * wsi and kernel buffers remain). Long enough for a client that stalled to
 * drain its socket and still see the 4001, bounded so a dead one goes. */
#define GW_CLOSE_GRACE_S 20
/* glibc keeps freed heap pages: after 10,000 idle connections closed, RSS
 * stayed high until malloc_trim(0) gave the pages back (reference/README.md).
 * The idle sweep trims once at least this many connections closed since
 * the last trim and they outnumber those still open (the population shrank;
 * steady churn trims rarely). */
#define GW_TRIM_AFTER_CLOSES 1024
/* Largest Sec-WebSocket-Protocol / path header we look at. */
#define GW_HDR_MAX 512
/* Seconds a connection may keep lws holding part of a frame the kernel did
 * not take (the client does not read: 128 KiB of kernel buffer are full)
 * before it is dropped as a slow consumer (MSG-096: the 4001 frame cannot
 * get through, so the TCP connection goes). */
#define GW_STALL_S 3.0
/* Bytes written directly after the socket was last seen writable before
 * it is asked again (gw_can_write_now). Far below the ~43 KB that POLLOUT
 * guarantees free, so the kernel takes whole frames. */
#define GW_CHECK_EVERY (8 * 1024)
/* Largest outbound message written at once from the gateway's scratch
 * buffer (gw_io_send); longer ones take the queue. Every message of the
 * catalogue with a 2..16-player match fits. */
#define GW_DIRECT_MAX 4096
/* Kernel send buffer of each WebSocket (SO_SNDBUF; Linux reserves twice
 * this). Without it Linux autotunes it up to tcp_wmem[2] (4 MiB here), so a
 * client that never reads could make the server hold megabytes of kernel
 * memory behind the bounded queue (MSG-096). Replies are a few hundred
 * bytes: a reading client never comes near it. */
#define GW_SNDBUF (64 * 1024)
/* Largest single send() lws makes for one write. lws's default is the rx
 * buffer size (512), which splits every longer frame into a send of 516
 * bytes plus a copy of the rest to its own buffer and another POLLOUT
 * round. */
#define GW_TX_PACKET (MW_GATEWAY_MAX_MESSAGE + 16)
/* MSG-121: seconds a connection may take to complete its request headers
 * (WebSocket handshake or HTTP request) before lws drops it, and what any
 * other lws wait (the next chunk of a body) may take. lws's default, 10 s
 * for both, let slow clients hold header slots twice as long. */
#define GW_HANDSHAKE_S 5
/* lws header slots ("ah", 4 KiB of header data plus ~1 KiB of tables each,
 * allocated only while a connection is reading headers or an HTTP request
 * is open, freed when the WebSocket is established or the request done).
 * Every connection holds one from accept until its headers are complete: at
 * lws's 64, 64 silent connections made every new client wait (MSG-120).
 * One per allowed WebSocket plus a margin for handshakes and HTTP requests
 * in flight, at least GW_AH_MIN, at most what lws's field holds. */
/* MSG-123: at shutdown a WebSocket whose session has a request waiting on
 * the store gets its reply before the 1001, for at most this long (the
 * server drops what is left at MW_SERVER_SHUTDOWN_WAIT_MS, 1.5 s); the
 * drain timer looks every GW_DRAIN_POLL_S. */
#define GW_DRAIN_MAX_S  1.0
#define GW_DRAIN_POLL_S 0.02
/* lws 4.1.6's libev glue re-arms its one timer (for every lws timeout:
 * headers, body, close grace, LWS_TO_KILL_ASYNC) with ev_timer_set() on
 * the ACTIVE watcher, which libev ignores: a timeout set while the timer
 * waits for a later event fired only when that one did (measured: a silent
 * connection was still open after 15 s; lws's own next event is its 30 s
 * header-slot check). A callback scheduled every GW_LWS_TICK_US keeps that
 * timer firing, so each lws timeout fires at most this late. */
#define GW_LWS_TICK_US (250 * 1000)
/* Bytes of request headers lws keeps per handshake (its default is 4,096):
 * AUTH-011 asks for a 4,096-byte token in the Authorization header or in
 * the query, next to the usual headers. Allocated only while headers are
 * read (a header slot), so idle WebSockets do not pay for it. */
#define GW_HEADER_DATA (2 * MW_TOKEN_MAX_BYTES + 2048)
#define GW_AH_SPARE    1024
/* RFC 6455 protocol error: an unmasked client frame (MSG-141). */
#define GW_CLOSE_PROTOCOL 1002
#define GW_AH_MIN         4096
#define GW_AH_MAX         65535u
/* TLS (MSG-150): TLS 1.2 and 1.3 only, no compression, no renegotiation;
 * TLS 1.2 with forward-secret AEAD suites only (TLS 1.3 has only such
 * suites; OpenSSL's default list is kept). ALPN offers http/1.1 alone: lws
 * is built with HTTP/2, and h2 would bypass the h1 handling http.c
 * relies on (pipelining, MSG-116). */
#define GW_TLS_OPTIONS                                                                             \
    ((long)(SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |              \
            SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE))
#define GW_TLS12_CIPHERS                                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define GW_TLS_ALPN "http/1.1"

/* ---- Types ---------------------------------------------------------------- */

/* One queued outbound message, with LWS_PRE bytes of headroom before it. */
struct gw_msg {
    struct gw_msg *next;
    size_t len;
    int64_t assigned_ms; /* match.assigned push: when the assignment was made */
    unsigned char buf[]; /* LWS_PRE + len */
};

/* One WebSocket connection. */
struct gw_conn {
    struct mw_gateway *g;
    struct lws *wsi;
    struct mw_session *session;
    /* Outbound FIFO, bounded by cfg.outbound_max_messages / _bytes. */
    struct gw_msg *head, *tail;
    size_t queued, queued_bytes;
    /* Inbound reassembly of one fragmented text message (<= 65,536 bytes). */
    struct mw_buf rx;
    struct mw_utf8 utf8; /* UTF-8 of the message being received, fed as it comes */
    /* Close requested (0: none): sent once the queue is drained. */
    uint16_t close_code;
    const char *close_reason; /* static storage (see gw_request_close) */
    bool close_counted;       /* this connection's close is already in metrics */
    /* Idle tracking (MSG-097), in ev_now() seconds. */
    double last_rx;              /* last frame of any kind from the peer */
    double ping_at;              /* when our ping went out (0: none outstanding) */
    bool want_ping;              /* a ping is due at the next WRITEABLE */
    bool peer_closed;            /* the peer's close frame arrived: send nothing more */
    bool dead;                   /* a write failed: close at the next WRITEABLE, no frame */
    double stall_since;          /* ev_now() when lws was first seen holding a partial frame */
    int64_t expires_s;           /* auth on: first unix second the token is refused (AUTH-050) */
    size_t unchecked;            /* bytes written since the socket was last seen writable */
    struct gw_conn *prev, *next; /* the gateway's list, for the idle sweep */
};

/* What recv() saw of one socket (MSG-141; see "Unmasked client frames"). */
enum gw_scan_state {
    GW_SCAN_OFF = 0, /* not a socket of ours */
    GW_SCAN_HEADERS, /* looking for the end of the first request's headers */
    GW_SCAN_FRAMES,  /* after them: WebSocket frame headers */
};
struct gw_rxscan {
    uint8_t state;   /* enum gw_scan_state */
    bool tls;        /* read through SSL_read (plaintext), not recv() */
    uint8_t crlf;    /* bytes of "\r\n\r\n" matched */
    uint8_t hlen;    /* bytes of the current frame header collected */
    bool had_http;   /* an HTTP request was served before (keep-alive) */
    bool unmasked;   /* a client frame without the mask bit arrived */
    uint8_t hdr[14]; /* the current frame header */
    uint64_t skip;   /* payload bytes of the current frame still to pass */
};

/* lws per-session data (zeroed by lws): WebSocket or HTTP, one pointer each. */
struct gw_pss {
    struct gw_conn *conn;
    void *http;
};

struct mw_gateway {
    struct mw_gateway_config cfg;
    struct lws_context *ctx;
    struct lws_context *ctx_alive; /* lws writes NULL here when destroy completes */
    lws_sorted_usec_list_t tick;   /* see GW_LWS_TICK_US */
    struct lws_protocols protocols[2];
    struct ev_loop *loop;
    ev_timer idle_timer;   /* sweeps conns for idle ones (MSG-097) */
    ev_timer drain_timer;  /* at shutdown: 1001 once a session is not busy (MSG-123) */
    double drain_until;    /* ev_now() after which every session gets its 1001 */
    double idle_s, pong_s; /* ping after idle_s of silence; 4002 after pong_s more */
    struct gw_conn *conns; /* every established WebSocket */
    const struct mw_session_env *env;
    struct mw_session_io io;
    struct mw_http *http;
    struct mw_metrics *metrics;
    size_t open;
    size_t closed_since_trim; /* see GW_TRIM_AFTER_CLOSES */
    size_t rx_held;           /* bytes allocated by every conn's rx (MSG-122) */
    bool stopping;
    uint16_t port;
    /* MSG-141: per socket (indexed by fd, grown on accept) what recv()
     * saw; a 0 s timer closes connections found unmasked meanwhile. */
    struct gw_rxscan *scan;
    size_t scan_cap;
    ev_timer unmasked_timer;
    /* With TLS: libssl's SSL_read and SSL_get_fd (resolved at start with
     * dlsym: the program does not link libssl itself, lws does). */
    bool tls;
    int (*ssl_read)(SSL *ssl, void *buf, int num);
    int (*ssl_get_fd)(const SSL *ssl);
    /* Scratch for direct writes (gw_io_send): LWS_PRE headroom for the frame
     * header lws_write() puts in front, then the payload. lws_write() copies
     * what the kernel does not take, so it is free again when it returns. */
    unsigned char tx[LWS_PRE + GW_DIRECT_MAX];
};

/* ---- Unmasked client frames (RFC 6455 section 5.1, MSG-141) ----------------
 *
 * lws 4.1.6 reads each frame's mask bit (roles/ws/ops-ws.c,
 * this_frame_masked) and unmasks only when it is set: an unmasked client
 * frame is accepted as if masked, and no API tells the protocol callback.
 * lws reads every socket with recv(2) (lws_ssl_capable_read_no_ssl,
 * core-net/output.c), so the gateway defines recv() itself: the program's
 * definition is the one libwebsockets.so's calls bind to. It forwards to
 * recvfrom() and runs a frame-header parser over exactly the bytes lws gets,
 * from the end of the upgrade request's headers on: the first "\r\n\r\n" of
 * a connection (a request line and headers cannot contain one earlier).
 * After an earlier HTTP request on the same connection (keep-alive, then an
 * upgrade), the parser starts at the upgrade instead: frames a client sent
 * before the 101 are then not checked (RFC 6455 section 4.1 forbids
 * sending them). A connection seen unmasked closes 1002: at once from
 * LWS_CALLBACK_RECEIVE (before its message reaches the session) or
 * _WS_PEER_INITIATED_CLOSE, else (a ping) from a 0 s timer.
 *
 * The one mutable global besides the signal flag: recv() has no context
 * argument, so it finds the gateway here (one per process). */
static struct mw_gateway *gw_recv_owner;

static void gw_scan(struct mw_gateway *g, struct gw_rxscan *x, const unsigned char *p, size_t n)
{
    static const char eoh[] = "\r\n\r\n";
    size_t i = 0;

    while (i < n && !x->unmasked) {
        if (x->state == GW_SCAN_HEADERS) {
            unsigned char c = p[i++];

            x->crlf = c == (unsigned char)eoh[x->crlf] ? (uint8_t)(x->crlf + 1) : c == '\r';
            if (x->crlf == 4) {
                x->state = GW_SCAN_FRAMES;
                x->hlen = 0;
                x->skip = 0;
            }
            continue;
        }
        if (x->state != GW_SCAN_FRAMES)
            return;
        if (x->skip) {
            size_t k = n - i < x->skip ? n - i : (size_t)x->skip;

            i += k;
            x->skip -= k;
            continue;
        }
        x->hdr[x->hlen++] = p[i++];
        if (x->hlen >= 2) {
            unsigned len7 = x->hdr[1] & 0x7f;
            unsigned ext = len7 == 126 ? 2u : len7 == 127 ? 8u : 0u;
            bool masked = (x->hdr[1] & 0x80) != 0;

            if (!masked) {
                x->unmasked = true;
                if (!ev_is_active(&g->unmasked_timer))
                    ev_timer_start(g->loop, &g->unmasked_timer);
                return;
            }
            if (x->hlen < 2 + ext + 4)
                continue;
            x->skip = len7;
            if (ext) {
                x->skip = 0;
                for (unsigned k = 0; k < ext; k++)
                    x->skip = x->skip << 8 | x->hdr[2 + k];
            }
            x->hlen = 0;
        }
    }
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t n = recvfrom(fd, buf, len, flags, NULL, NULL);
    struct mw_gateway *g = gw_recv_owner;

    if (n > 0 && g && !(flags & MSG_PEEK) && fd >= 0 && (size_t)fd < g->scan_cap &&
        g->scan[fd].state != GW_SCAN_OFF && !g->scan[fd].tls)
        gw_scan(g, &g->scan[fd], buf, (size_t)n);
    return n;
}

/* Under TLS recv() would see ciphertext (and OpenSSL reads with read(2)
 * anyway): lws reads every TLS connection's plaintext with SSL_read()
 * (lws_ssl_capable_read, tls/openssl/openssl-ssl.c), so the program defines
 * that too, forwards to libssl's (RTLD_NEXT) and runs the same parser over
 * the plaintext. Only TLS connections call it: the plain path is unchanged. */
int SSL_read(SSL *ssl, void *buf, int num)
{
    struct mw_gateway *g = gw_recv_owner;
    int (*real)(SSL *, void *, int) = g && g->ssl_read ? g->ssl_read : NULL;
    int n, fd;

    if (!real) {
        /* Not through the gateway (a gateway without TLS, or none yet). */
        *(void **)(&real) = dlsym(RTLD_NEXT, "SSL_read");
        if (!real)
            return -1;
        return real(ssl, buf, num);
    }
    n = real(ssl, buf, num);
    if (n <= 0 || !g->ssl_get_fd)
        return n;
    fd = g->ssl_get_fd(ssl);
    if (fd >= 0 && (size_t)fd < g->scan_cap && g->scan[fd].state != GW_SCAN_OFF)
        gw_scan(g, &g->scan[fd], buf, (size_t)n);
    return n;
}

/* A new connection on fd (LWS_CALLBACK_FILTER_NETWORK_CONNECTION). */
static void gw_scan_start(struct mw_gateway *g, int fd)
{
    if (fd < 0)
        return;
    if ((size_t)fd >= g->scan_cap) {
        size_t cap = g->scan_cap ? g->scan_cap : 1024;
        struct gw_rxscan *ns;

        while (cap <= (size_t)fd)
            cap *= 2;
        ns = mw_realloc(g->scan, cap * sizeof(*ns));
        if (!ns)
            return; /* not checked (logged once per growth failure) */
        memset(ns + g->scan_cap, 0, (cap - g->scan_cap) * sizeof(*ns));
        g->scan = ns;
        g->scan_cap = cap;
    }
    memset(&g->scan[fd], 0, sizeof(g->scan[fd]));
    g->scan[fd].state = GW_SCAN_HEADERS;
    g->scan[fd].tls = g->tls; /* every connection of a TLS port is TLS */
}

static struct gw_rxscan *gw_scan_of(const struct mw_gateway *g, struct lws *wsi)
{
    int fd = (int)lws_get_socket_fd(wsi);

    return fd >= 0 && (size_t)fd < g->scan_cap ? &g->scan[fd] : NULL;
}

static bool gw_unmasked(const struct gw_conn *c)
{
    const struct gw_rxscan *x = gw_scan_of(c->g, c->wsi);

    return x && x->unmasked;
}

/* ---- Helpers -------------------------------------------------------------- */

/* Frees c's reassembly buffer and gives its bytes back to the budget. */
static void gw_rx_release(struct gw_conn *c)
{
    c->g->rx_held -= c->rx.cap;
    mw_buf_release(&c->rx);
    mw_buf_init(&c->rx, MW_GATEWAY_MAX_MESSAGE);
}

static void gw_count_close(struct gw_conn *c, uint16_t code)
{
    if (c->close_counted)
        return;
    c->close_counted = true;
    if (c->g->metrics)
        mw_metrics_count_close(c->g->metrics, code);
}

static void gw_queue_free(struct gw_conn *c)
{
    struct gw_msg *m = c->head;

    while (m) {
        struct gw_msg *next = m->next;

        mw_free(m);
        m = next;
    }
    c->head = c->tail = NULL;
    c->queued = 0;
    c->queued_bytes = 0;
}

/* Records a close to send once the queue is drained (or at once when the
 * queue was dropped), and bounds how long a non-reading peer can delay it.
 * reason has static storage (a literal: the session io contract), so only
 * the pointer is kept: no per-connection copy. */
static void gw_request_close(struct gw_conn *c, uint16_t code, const char *reason)
{
    if (c->close_code)
        return;
    c->close_code = code;
    c->close_reason = reason ? reason : "";
    gw_count_close(c, code);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, GW_CLOSE_GRACE_S);
    lws_callback_on_writable(c->wsi);
}

/* Closes from inside an lws callback of this wsi: the caller returns -1. */
static int gw_close_now(struct gw_conn *c, uint16_t code, const char *reason)
{
    gw_queue_free(c);
    if (!c->close_code) {
        c->close_code = code;
        gw_count_close(c, code);
    }
    lws_close_reason(c->wsi, (enum lws_close_status)code, (unsigned char *)(uintptr_t)reason,
                     strlen(reason));
    return -1;
}

/* MSG-141: connections recv() found unmasked outside an lws callback of
 * theirs (an unmasked ping, answered by lws itself): closed 1002 now. */
static void gw_unmasked_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mw_gateway *g = w->data;

    (void)loop;
    (void)revents;
    for (struct gw_conn *c = g->conns; c; c = c->next) {
        if (c->close_code || !gw_unmasked(c))
            continue;
        mw_log(MW_LOG_INFO, "gateway: unmasked client frame: close 1002");
        gw_queue_free(c);
        gw_request_close(c, GW_CLOSE_PROTOCOL, "unmasked frame");
    }
}

/* MSG-097: lws 4.1.6 does not apply retry_and_idle_policy to accepted
 * WebSockets (measured: no ping ever went out), so idleness is tracked here:
 * one timer walks the connection list (O(n) once a second, cheap next to the
 * per-connection sorted timers it avoids). */
static void gw_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mw_gateway *g = w->data;
    double now = ev_now(loop);
    int64_t now_s = mw_loop_now_ms() / 1000;

    (void)revents;
#ifdef __GLIBC__
    if (g->closed_since_trim >= GW_TRIM_AFTER_CLOSES && g->closed_since_trim > g->open) {
        g->closed_since_trim = 0;
        (void)malloc_trim(0);
    }
#endif
    for (struct gw_conn *c = g->conns; c; c = c->next) {
        if (!lws_partial_buffered(c->wsi)) {
            c->stall_since = 0;
        } else if (c->stall_since == 0) {
            c->stall_since = now;
        } else if (now - c->stall_since >= GW_STALL_S && !c->dead) {
            /* MSG-096: the client does not read; nothing can reach it. */
            mw_log(MW_LOG_INFO, "gateway: socket full for %.0f s: dropping a slow consumer",
                   now - c->stall_since);
            if (g->metrics)
                g->metrics->outbound_stalled++;
            gw_queue_free(c);
            c->dead = true;
            if (!c->close_code)
                c->close_code = MW_CLOSE_SLOW_CONSUMER;
            gw_count_close(c, MW_CLOSE_SLOW_CONSUMER);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (c->close_code)
            continue;
        if (c->expires_s && now_s >= c->expires_s) {
            /* AUTH-050: after what is queued, within the sweep period. */
            gw_request_close(c, MW_CLOSE_TOKEN_EXPIRED, "token expired");
            continue;
        }
        if (g->idle_s <= 0)
            continue;
        if (c->ping_at == 0 && now - c->last_rx >= g->idle_s) {
            c->ping_at = now;
            c->want_ping = true;
            lws_callback_on_writable(c->wsi);
        } else if (c->ping_at != 0 && now - c->ping_at >= g->pong_s) {
            gw_request_close(c, MW_CLOSE_IDLE, "idle timeout");
        }
    }
}

static void gw_saw_peer(struct gw_conn *c)
{
    c->last_rx = ev_now(c->g->loop);
    c->ping_at = 0;
}

/* ---- Session io table ----------------------------------------------------- */

static void gw_count_out(struct mw_gateway *g, int64_t assigned_ms)
{
    if (!g->metrics)
        return;
    g->metrics->messages_out++;
    if (assigned_ms) {
        int64_t us = mw_loop_now_us() - assigned_ms * 1000;

        mw_hist_record(&g->metrics->assign_to_write_us, us > 0 ? (uint64_t)us : 0);
    }
}

/* Whether a message can be written now rather than queued for the next
 * WRITEABLE callback: nothing of ours queued before it (order), no ping or
 * close of ours due, lws is not closing the connection or holding part of an
 * earlier frame, and the kernel has room. Room is known without a system
 * call most of the time: after a check that found the socket writable
 * (POLLOUT: a third of the 64 KiB send buffer free) up to GW_CHECK_EVERY
 * bytes go out unchecked; past that, lws_send_pipe_choked() (a poll()) asks
 * again. A reading client gets a few hundred bytes per ticket and is never
 * checked; one that does not read hits the check, its messages queue, and
 * the bound closes it with 4001 (MSG-096). (A poll() before every write
 * put a system call back in front of every message: 5.8 instead of 4.1 per
 * assignment, measured.) Should the kernel still take only part of a frame,
 * lws keeps the rest and sends it before anything else, its own pongs and
 * close frames included; the idle sweep drops a connection whose rest stays
 * unsent for GW_STALL_S. */
static bool gw_can_write_now(struct gw_conn *c, size_t len)
{
    if (c->head || c->want_ping || c->close_code || c->peer_closed || c->g->stopping ||
        len > GW_DIRECT_MAX || lws_get_close_length(c->wsi) || lws_partial_buffered(c->wsi))
        return false;
    if (c->unchecked + len > GW_CHECK_EVERY) {
        if (lws_send_pipe_choked(c->wsi))
            return false;
        c->unchecked = 0;
    }
    return true;
}

/* Writes one message at once with lws_write() (see gw_can_write_now).
 * Returns 0 (written, or lws holds the part the kernel did not take and
 * sends it before anything else) or -1 (the socket failed: the connection is
 * being closed). */
static int gw_write_now(struct gw_conn *c, const char *buf, size_t len, int64_t assigned_ms)
{
    struct mw_gateway *g = c->g;
    int n;

    memcpy(g->tx + LWS_PRE, buf, len);
    n = lws_write(c->wsi, g->tx + LWS_PRE, len, LWS_WRITE_TEXT);
    if (n < (int)len) {
        /* lws marked the socket unusable: close it from the loop, not
         * inside the caller's stack, and send nothing more. */
        c->dead = true;
        c->close_code = 1006;
        gw_count_close(c, 1006);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        lws_callback_on_writable(c->wsi);
        return -1;
    }
    c->unchecked += len + 4;
    gw_count_out(g, assigned_ms);
    if (g->metrics && lws_partial_buffered(c->wsi))
        g->metrics->outbound_partial++;
    return 0;
}

static int gw_io_send(void *ud, const char *buf, size_t len, int64_t assigned_ms)
{
    struct gw_conn *c = ud;
    struct mw_gateway *g = c->g;
    struct gw_msg *m;

    if (c->close_code) {
        /* Closing: nothing more goes out. */
        if (g->metrics)
            g->metrics->outbound_drops++;
        return c->close_code == MW_CLOSE_SLOW_CONSUMER ? MW_ELIMIT : 0;
    }
    if (c->queued + 1 > g->cfg.outbound_max_messages ||
        c->queued_bytes + len > g->cfg.outbound_max_bytes) {
        /* MSG-096: the peer does not read. Free its queue now and close. */
        if (g->metrics)
            g->metrics->outbound_drops++;
        mw_log(MW_LOG_INFO, "gateway: outbound queue full (%zu msgs, %zu bytes): close 4001",
               c->queued, c->queued_bytes);
        gw_queue_free(c);
        gw_request_close(c, MW_CLOSE_SLOW_CONSUMER, "outbound queue overflow");
        return MW_ELIMIT;
    }
    if (gw_can_write_now(c, len)) {
        (void)gw_write_now(c, buf, len, assigned_ms);
        return 0;
    }
    if (g->metrics)
        g->metrics->outbound_queued++;
    m = mw_malloc(sizeof(*m) + LWS_PRE + len);
    if (!m) {
        gw_request_close(c, MW_CLOSE_INTERNAL, "out of memory");
        return MW_ELIMIT;
    }
    m->next = NULL;
    m->len = len;
    m->assigned_ms = assigned_ms;
    memcpy(m->buf + LWS_PRE, buf, len);
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    c->queued++;
    c->queued_bytes += len;
    lws_callback_on_writable(c->wsi);
    return 0;
}

static void gw_io_close(void *ud, uint16_t code, const char *reason)
{
    gw_request_close(ud, code, reason);
}

/* ---- WebSocket callbacks -------------------------------------------------- */

/* True when the comma-separated Sec-WebSocket-Protocol list names ours. */
static bool gw_offers_protocol(const char *list)
{
    const char *p = list;
    const size_t want = strlen(MW_GATEWAY_PROTOCOL);

    while (*p) {
        const char *end;
        size_t n;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        end = p;
        while (*end && *end != ',')
            end++;
        n = (size_t)(end - p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == want && memcmp(p, MW_GATEWAY_PROTOCOL, want) == 0)
            return true;
        p = end;
    }
    return false;
}

static int gw_refuse(struct lws *wsi, unsigned status, const char *why)
{
    mw_log(MW_LOG_INFO, "gateway: upgrade refused with %u: %s", status, why);
    if (lws_return_http_status(wsi, status, why))
        return -1;
    return 1; /* we answered; lws finishes the transaction */
}

/* Refuses an upgrade with a JSON error body (the `error` data of MSG-063)
 * and, when www_auth is given, a WWW-Authenticate header (AUTH-041,
 * AUTH-090). One write, as lws_return_http_status() does for h1. */
static int gw_refuse_json(struct lws *wsi, unsigned status, enum mw_code code, const char *message,
                          const char *www_auth, const char *why)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = &buf[LWS_PRE], *p = start, *end = &buf[sizeof(buf) - 1];
    char body[256], clen[16];
    int n = snprintf(body, sizeof(body), "{\"code\":\"%s\",\"message\":\"%s\",\"retryable\":%s}",
                     mw_code_name(code), message, mw_code_retryable(code) ? "true" : "false");
    int cl;

    /* The reason is for the log only: the peer gets the same answer for
     * every refusal (AUTH-042); never the token (AUTH-013). */
    mw_log(MW_LOG_INFO, "gateway: upgrade refused with %u: %s", status, why);
    if (n < 0 || (size_t)n >= sizeof(body))
        return -1;
    cl = snprintf(clen, sizeof(clen), "%d", n);
    if (lws_add_http_header_status(wsi, status, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"application/json", 16, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        (www_auth && lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
                                                 (const unsigned char *)www_auth,
                                                 (int)strlen(www_auth), &p, end)) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
                                     (const unsigned char *)clen, cl, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) || end - p < n)
        return -1;
    memcpy(p, body, (size_t)n);
    p += n;
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP) != (int)(p - start))
        return -1;
    return 1; /* we answered; lws finishes the transaction */
}

static bool gw_auth_on(const struct mw_gateway *g)
{
    return mw_token_keys_count(g->cfg.auth_keys) > 0;
}

/* What a handshake presents (AUTH-010, AUTH-012). */
enum gw_cred { GW_CRED_NONE = 0, GW_CRED_BAD, GW_CRED_TOKEN };

/* Finds the handshake's token: the Authorization header when there is one
 * (Bearer, exactly one header), else the one access_token query parameter
 * (lws has percent-decoded it). On GW_CRED_TOKEN, tok holds it
 * (NUL-terminated, at most MW_TOKEN_MAX_BYTES); on GW_CRED_BAD, *why says
 * what was wrong (for the log). scratch: at least GW_HEADER_DATA bytes. */
static enum gw_cred gw_credentials(struct lws *wsi, char *tok, char *scratch, size_t scratch_len,
                                   const char **why)
{
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    const char *p;
    size_t l;
    bool found = false;

    if (n > 0) {
        if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, 1) > 0) {
            *why = "more than one Authorization header";
            return GW_CRED_BAD;
        }
        if ((size_t)n >= scratch_len ||
            lws_hdr_copy(wsi, scratch, (int)scratch_len, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
            *why = "Authorization header too long";
            return GW_CRED_BAD;
        }
        if (strncasecmp(scratch, "bearer", 6) != 0 || scratch[6] != ' ') {
            *why = "Authorization scheme is not Bearer";
            return GW_CRED_BAD;
        }
        p = scratch + 6;
        while (*p == ' ')
            p++;
        l = strlen(p);
        if (l == 0 || l > MW_TOKEN_MAX_BYTES) {
            *why = l ? "token over 4096 bytes" : "empty bearer token";
            return GW_CRED_BAD;
        }
        memcpy(tok, p, l + 1);
        return GW_CRED_TOKEN;
    }
    for (int i = 0;; i++) {
        static const char name[] = "access_token=";
        int fl = lws_hdr_copy_fragment(wsi, scratch, (int)scratch_len, WSI_TOKEN_HTTP_URI_ARGS, i);

        if (fl < 0)
            break; /* no more (the buffer holds every header byte) */
        if ((size_t)fl < sizeof(name) - 1 || memcmp(scratch, name, sizeof(name) - 1) != 0)
            continue;
        if (found) {
            *why = "more than one access_token parameter";
            return GW_CRED_BAD;
        }
        found = true;
        l = (size_t)fl - (sizeof(name) - 1);
        if (l == 0 || l > MW_TOKEN_MAX_BYTES) {
            *why = l ? "token over 4096 bytes" : "empty access_token";
            return GW_CRED_BAD;
        }
        memcpy(tok, scratch + sizeof(name) - 1, l + 1);
    }
    return found ? GW_CRED_TOKEN : GW_CRED_NONE;
}

/* Verifies the handshake's credentials (sections 2-4 of auth.md). Returns
 * 0 with *claims filled, or the refusal (401, AUTH-040..042) already
 * written: the value the callback returns. */
static int gw_authenticate(struct mw_gateway *g, struct lws *wsi, struct mw_token_claims *claims)
{
    char tok[MW_TOKEN_MAX_BYTES + 1], *scratch;
    const char *why = "no credentials";
    enum gw_cred cred;
    int rc = MW_EAUTH;

    scratch = mw_malloc(GW_HEADER_DATA + 1);
    if (!scratch)
        return -1;
    cred = gw_credentials(wsi, tok, scratch, GW_HEADER_DATA + 1, &why);
    mw_free(scratch);
    if (cred == GW_CRED_TOKEN)
        rc = mw_token_verify(g->cfg.auth_keys, &g->cfg.auth_policy, tok, strlen(tok),
                             mw_loop_now_ms() / 1000, claims, &why);
    OPENSSL_cleanse(tok, sizeof(tok));
    if (rc == 0)
        return 0;
    if (rc == MW_ENOMEM)
        return -1;
    if (cred == GW_CRED_NONE)
        return gw_refuse_json(wsi, HTTP_STATUS_UNAUTHORIZED, MW_CODE_UNAUTHORIZED,
                              "a player token is required", "Bearer realm=\"matchwire\"", why);
    return gw_refuse_json(wsi, HTTP_STATUS_UNAUTHORIZED, MW_CODE_UNAUTHORIZED,
                          "the player token was refused",
                          "Bearer realm=\"matchwire\", error=\"invalid_token\"", why);
}

/* AUTH-090: true when the handshake may go on (no list, no Origin, or an
 * Origin in the list, compared ASCII case-insensitively). */
static bool gw_origin_allowed(const struct mw_gateway *g, struct lws *wsi)
{
    char origin[GW_HDR_MAX];
    int n;

    if (!g->cfg.n_allowed_origins || lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
        return true;
    n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    if (n <= 0)
        return false; /* longer than any allowed origin */
    for (size_t i = 0; i < g->cfg.n_allowed_origins; i++)
        if (strlen(g->cfg.allowed_origins[i]) == (size_t)n &&
            strcasecmp(g->cfg.allowed_origins[i], origin) == 0)
            return true;
    return false;
}

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: the last point where an upgrade can be
 * refused with an HTTP status (MSG-001, AUTH-090, AUTH-040, MSG-005,
 * MSG-098), in that order. */
static int gw_confirm_upgrade(struct mw_gateway *g, struct lws *wsi, const char *to)
{
    char hdr[GW_HDR_MAX];
    int n;

    if (!to || strcmp(to, "websocket") != 0)
        return gw_refuse(wsi, HTTP_STATUS_BAD_REQUEST, "unsupported upgrade");
    n = lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_GET_URI);
    if (!g->cfg.websocket || n <= 0 || strcmp(hdr, MW_GATEWAY_WS_PATH) != 0)
        return gw_refuse(wsi, HTTP_STATUS_NOT_FOUND, "no websocket here");
    if (!gw_origin_allowed(g, wsi))
        return gw_refuse_json(wsi, HTTP_STATUS_FORBIDDEN, MW_CODE_FORBIDDEN, "origin not allowed",
                              NULL, "origin not in the allow-list");
    if (gw_auth_on(g)) {
        struct mw_token_claims claims;

        n = gw_authenticate(g, wsi, &claims);
        if (n)
            return n;
    }
    if (g->stopping)
        return gw_refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down");
    if (g->cfg.max_connections && g->open >= g->cfg.max_connections) {
        if (g->metrics)
            g->metrics->connections_refused++;
        return gw_refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "connection limit reached");
    }
    n = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL);
    if (n > 0) {
        /* MSG-005: offered subprotocols, none of them ours: no upgrade. */
        if (n >= (int)sizeof(hdr) || lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_PROTOCOL) < 0 ||
            !gw_offers_protocol(hdr))
            return gw_refuse(wsi, HTTP_STATUS_BAD_REQUEST, "subprotocol matchwire.v1 required");
    }
    return 0;
}

static int gw_established(struct mw_gateway *g, struct lws *wsi, struct gw_pss *pss)
{
    struct gw_conn *c = mw_calloc(1, sizeof(*c));

    if (!c) {
        lws_close_reason(wsi, (enum lws_close_status)MW_CLOSE_INTERNAL, NULL, 0);
        return -1;
    }
    c->g = g;
    c->wsi = wsi;
    {
        int fd = (int)lws_get_socket_fd(wsi), sz = GW_SNDBUF;

        if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)) != 0)
            mw_log(MW_LOG_INFO, "gateway: SO_SNDBUF not set on fd %d", fd);
    }
    mw_buf_init(&c->rx, MW_GATEWAY_MAX_MESSAGE);
    pss->conn = c;
    c->last_rx = ev_now(g->loop);
    c->next = g->conns;
    if (g->conns)
        g->conns->prev = c;
    g->conns = c;
    g->open++;
    if (g->metrics) {
        g->metrics->connections_total++;
        g->metrics->connections_open++;
    }
    /* Backstop for upgrades that raced past the 503 check (MSG-098). */
    if (g->stopping) {
        gw_request_close(c, MW_CLOSE_GOING_AWAY, "server shutting down");
        return 0;
    }
    if (g->cfg.max_connections && g->open > g->cfg.max_connections) {
        if (g->metrics)
            g->metrics->connections_refused++;
        gw_request_close(c, MW_CLOSE_TRY_AGAIN, "connection limit reached");
        return 0;
    }
    {
        /* MSG-141: after an earlier HTTP request on this connection the
         * parser's position is unknown; it starts here (see above). */
        struct gw_rxscan *x = gw_scan_of(g, wsi);

        if (x && (x->had_http || x->state != GW_SCAN_FRAMES)) {
            memset(x, 0, sizeof(*x));
            x->state = GW_SCAN_FRAMES;
            x->tls = g->tls;
        }
    }
    c->session = mw_session_new(g->env, &g->io, c);
    if (!c->session) {
        gw_request_close(c, MW_CLOSE_INTERNAL, "out of memory");
        return 0;
    }
    if (gw_auth_on(g)) {
        /* Verified at CONFIRM_UPGRADE; read again here, where the
         * connection's own storage exists (the headers are still there). A
         * token that expired in between closes 4003 (AUTH-050). */
        struct mw_token_claims claims;
        char tok[MW_TOKEN_MAX_BYTES + 1], *scratch = mw_malloc(GW_HEADER_DATA + 1);
        const char *why = "";
        int rc = MW_ENOMEM;

        if (scratch &&
            gw_credentials(wsi, tok, scratch, GW_HEADER_DATA + 1, &why) == GW_CRED_TOKEN) {
            rc = mw_token_verify(g->cfg.auth_keys, &g->cfg.auth_policy, tok, strlen(tok),
                                 mw_loop_now_ms() / 1000, &claims, &why);
            OPENSSL_cleanse(tok, sizeof(tok));
        }
        mw_free(scratch);
        if (rc == 0) {
            rc = mw_session_set_player(c->session, claims.sub);
            if (rc) {
                gw_request_close(c, MW_CLOSE_INTERNAL, "out of memory");
                return 0;
            }
        }
        if (rc) {
            gw_request_close(c, MW_CLOSE_TOKEN_EXPIRED, "token expired");
            return 0;
        }
        c->expires_s = claims.expires_at_s > 0 ? claims.expires_at_s : 1;
    }
    return 0;
}

static int gw_receive(struct gw_conn *c, const unsigned char *in, size_t len)
{
    struct lws *wsi = c->wsi;
    size_t have = c->rx.len;
    bool final;

    if (gw_unmasked(c))
        return gw_close_now(c, GW_CLOSE_PROTOCOL, "unmasked frame"); /* MSG-141 */
    if (c->close_code || c->g->stopping)
        return 0; /* closing or draining (MSG-123): input is ignored */
    if (c->expires_s && mw_loop_now_ms() / 1000 >= c->expires_s) {
        /* AUTH-050: nothing that arrives after the expiry is processed. */
        gw_request_close(c, MW_CLOSE_TOKEN_EXPIRED, "token expired");
        return 0;
    }
    gw_saw_peer(c);
    if (lws_frame_is_binary(wsi))
        return gw_close_now(c, MW_CLOSE_UNSUPPORTED, "binary messages are not supported");
    /* MSG-091: close at the first chunk that shows the message is too big,
     * counting what lws announced for the rest of this frame. */
    if (have + len + lws_remaining_packet_payload(wsi) > MW_GATEWAY_MAX_MESSAGE)
        return gw_close_now(c, MW_CLOSE_TOO_BIG, "message too big");
    final = lws_is_final_fragment(wsi);
    if (!mw_utf8_feed(&c->utf8, in, len) || (final && !mw_utf8_complete(&c->utf8)))
        return gw_close_now(c, MW_CLOSE_BAD_PAYLOAD, "invalid utf-8");
    if (final && have == 0) {
        /* Whole message in one piece: no copy. */
        if (c->g->metrics)
            c->g->metrics->messages_in++;
        c->utf8 = (struct mw_utf8){0};
        if (c->session)
            mw_session_on_text(c->session, (const char *)in, len, mw_loop_now_ms());
        return 0;
    }
    {
        size_t cap = c->rx.cap;

        if (mw_buf_append(&c->rx, in, len) != 0)
            return gw_close_now(c, MW_CLOSE_INTERNAL, "out of memory");
        c->g->rx_held += c->rx.cap - cap;
    }
    if (c->g->rx_held > c->g->cfg.reassembly_budget) {
        /* MSG-122: the unfinished messages of all connections together
         * are bounded; the connection whose growth crossed the bound
         * goes (retryable: it is the server that is short). */
        gw_rx_release(c);
        if (c->g->metrics)
            c->g->metrics->reassembly_refused++;
        mw_log(MW_LOG_INFO, "gateway: reassembly budget of %zu bytes reached: close 1013",
               c->g->cfg.reassembly_budget);
        return gw_close_now(c, MW_CLOSE_TRY_AGAIN, "server busy: message reassembly budget");
    }
    if (!final)
        return 0;
    if (c->g->metrics)
        c->g->metrics->messages_in++;
    c->utf8 = (struct mw_utf8){0};
    if (c->session)
        mw_session_on_text(c->session, c->rx.data, c->rx.len, mw_loop_now_ms());
    gw_rx_release(c); /* idle connections hold no reassembly memory */
    return 0;
}

static int gw_writeable(struct gw_conn *c)
{
    struct mw_gateway *g = c->g;
    struct gw_msg *m = c->head;
    int n;

    if (c->dead) /* a write failed: the socket is unusable, no close frame */
        return -1;
    if (g->stopping && !c->close_code &&
        (!mw_session_busy(c->session) || ev_now(g->loop) >= g->drain_until))
        gw_request_close(c, MW_CLOSE_GOING_AWAY, "server shutting down");
    if (c->want_ping && !c->close_code) {
        /* lws 4.1.6 swallows empty pongs (no LWS_CALLBACK_RECEIVE_PONG):
         * the ping carries 2 bytes so the peer's pong reaches us. */
        unsigned char ping[LWS_PRE + 2] = {0};

        c->want_ping = false;
        ping[LWS_PRE] = 'm';
        ping[LWS_PRE + 1] = 'w';
        if (lws_write(c->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0)
            return -1;
        if (m)
            lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (!m) {
        if (!c->close_code)
            return 0;
        const char *why = c->close_reason ? c->close_reason : "";
        size_t wl = strlen(why);

        /* A close frame's reason is at most 123 bytes. */
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)(uintptr_t)why, wl > 123 ? 123 : wl);
        return -1;
    }
    c->head = m->next;
    if (!c->head)
        c->tail = NULL;
    c->queued--;
    c->queued_bytes -= m->len;
    n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    c->unchecked = m->len + 4; /* WRITEABLE: the socket was writable just now */
    gw_count_out(g, m->assigned_ms);
    if (n < (int)m->len) {
        mw_free(m);
        gw_count_close(c, 1006);
        return -1;
    }
    mw_free(m);
    if (c->head || c->close_code)
        lws_callback_on_writable(c->wsi);
    return 0;
}

static void gw_closed(struct mw_gateway *g, struct gw_pss *pss)
{
    struct gw_conn *c = pss->conn;

    if (!c)
        return;
    pss->conn = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* Neither side sent a close frame we saw: abnormal closure. */
    gw_count_close(c, 1006);
    if (c->session)
        mw_session_on_close(c->session, mw_loop_now_ms());
    gw_queue_free(c);
    gw_rx_release(c);
    g->open--;
    g->closed_since_trim++;
    if (g->metrics && g->metrics->connections_open)
        g->metrics->connections_open--;
    mw_free(c);
}

static int gw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct mw_gateway *g = lws_context_user(lws_get_context(wsi));
    struct gw_pss *pss = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return gw_confirm_upgrade(g, wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
        if (!pss)
            return -1;
        return gw_established(g, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        if (!pss || !pss->conn)
            return -1;
        return gw_receive(pss->conn, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!pss || !pss->conn)
            return 0;
        return gw_writeable(pss->conn);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss && pss->conn && gw_unmasked(pss->conn))
            return gw_close_now(pss->conn, GW_CLOSE_PROTOCOL, "unmasked frame");
        if (pss && pss->conn)
            gw_saw_peer(pss->conn);
        return 0;
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        gw_scan_start(g, (int)(intptr_t)in);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (pss && pss->conn && gw_unmasked(pss->conn))
            return gw_close_now(pss->conn, GW_CLOSE_PROTOCOL, "unmasked frame");
        if (pss && pss->conn) {
            const unsigned char *p = in;
            uint16_t code = len >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;

            gw_count_close(pss->conn, code);
            pss->conn->peer_closed = true;
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (pss)
            gw_closed(g, pss);
        return 0;

    case LWS_CALLBACK_HTTP: {
        struct gw_rxscan *x = gw_scan_of(g, wsi);

        if (x)
            x->had_http = true; /* MSG-141: keep-alive before an upgrade */
    }
        /* fallthrough */
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (!pss)
            return -1;
        /* (At shutdown http.c answers 503 itself: mw_http_stop.) */
        return mw_http_callback(g->http, wsi, reason, &pss->http, in, len);
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- Lifetime ------------------------------------------------------------- */

/* Keeps lws's timer running (GW_LWS_TICK_US). */
static void gw_lws_tick(lws_sorted_usec_list_t *sul)
{
    struct mw_gateway *g = lws_container_of(sul, struct mw_gateway, tick);

    lws_sul_schedule(g->ctx, 0, &g->tick, gw_lws_tick, GW_LWS_TICK_US);
}

/* lws header slots for max_connections (see GW_AH_SPARE). */
static unsigned short gw_header_pool(unsigned max_connections)
{
    unsigned long n = max_connections ? (unsigned long)max_connections + GW_AH_SPARE : GW_AH_MAX;

    if (n < GW_AH_MIN)
        n = GW_AH_MIN;
    if (n > GW_AH_MAX)
        n = GW_AH_MAX;
    return (unsigned short)n;
}

/* ---- TLS (MSG-150) ---------------------------------------------------------
 *
 * lws loads the files itself (SSL_CTX_use_certificate_chain_file,
 * SSL_CTX_use_PrivateKey_file, SSL_CTX_check_private_key), but its errors
 * are lws log lines in the middle of its own, and an encrypted key would
 * make OpenSSL ask for a passphrase on the terminal. So the files are
 * checked here first, with libcrypto, and any problem refuses the start
 * with one line naming the file (never its content): nothing listens
 * until both are usable. */

/* OpenSSL's passphrase callback: an encrypted key is refused, never asked
 * for. */
static int gw_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static FILE *gw_tls_open(const char *what, const char *path)
{
    FILE *f = fopen(path, "rb");

    if (!f)
        mw_log(MW_LOG_ERR, "gateway: %s %s: cannot read: %s", what, path, strerror(errno));
    return f;
}

/* Returns 0 when cert holds a PEM certificate (the first is the server's,
 * any more its chain) and key the unencrypted PEM private key of that
 * certificate; MW_EINVAL otherwise (logged). */
static int gw_tls_check(const char *cert, const char *key)
{
    FILE *f;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    struct stat st;
    char iobuf[BUFSIZ];
    int rc = MW_EINVAL;

    f = gw_tls_open("--tls-cert", cert);
    if (!f)
        goto out;
    x = PEM_read_X509(f, NULL, gw_no_passphrase, NULL);
    fclose(f);
    if (!x) {
        mw_log(MW_LOG_ERR, "gateway: --tls-cert %s: no PEM certificate in it", cert);
        goto out;
    }
    f = gw_tls_open("--tls-key", key);
    if (!f)
        goto out_free_cert;
    /* stdio buffers the key's bytes in our buffer, wiped below (not in
     * one of its own, freed as it was). */
    setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        mw_log(MW_LOG_WARN,
               "gateway: --tls-key %s can be read by other users (mode %03o): chmod 600 it", key,
               (unsigned)(st.st_mode & 0777));
    k = PEM_read_PrivateKey(f, NULL, gw_no_passphrase, NULL);
    fclose(f);
    OPENSSL_cleanse(iobuf, sizeof(iobuf));
    if (!k) {
        mw_log(MW_LOG_ERR,
               "gateway: --tls-key %s: no usable PEM private key in it (encrypted keys are not "
               "supported)",
               key);
        goto out_free_cert;
    }
    if (X509_check_private_key(x, k) != 1) {
        mw_log(MW_LOG_ERR, "gateway: --tls-key %s is not the key of --tls-cert %s", key, cert);
        goto out_free_key;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        mw_log(MW_LOG_WARN, "gateway: --tls-cert %s has expired: clients will refuse it", cert);
    rc = 0;
out_free_key:
    EVP_PKEY_free(k);
out_free_cert:
    X509_free(x);
out:
    ERR_clear_error(); /* nothing of it for lws to find later */
    return rc;
}

/* Resolves libssl's SSL_read and SSL_get_fd for the SSL_read interposition
 * (see "Unmasked client frames"). Returns 0 or MW_EINVAL (logged). */
static int gw_tls_resolve(struct mw_gateway *g)
{
    *(void **)(&g->ssl_read) = dlsym(RTLD_NEXT, "SSL_read");
    *(void **)(&g->ssl_get_fd) = dlsym(RTLD_DEFAULT, "SSL_get_fd");
    if (!g->ssl_read || !g->ssl_get_fd || (void *)g->ssl_read == (void *)SSL_read) {
        mw_log(MW_LOG_ERR, "gateway: libssl's SSL_read not found: TLS unavailable");
        return MW_EINVAL;
    }
    return 0;
}

static void gw_lws_signal_cb(void *handle, int signum)
{
    /* Signals belong to loop.c; lws must not act on them. */
    (void)handle;
    (void)signum;
}

struct mw_gateway *mw_gateway_new(const struct mw_gateway_config *cfg, struct ev_loop *loop,
                                  const struct mw_session_env *env, struct mw_http *http,
                                  struct mw_metrics *metrics)
{
    struct lws_context_creation_info info;
    void *foreign_loops[1];
    struct mw_gateway *g = mw_calloc(1, sizeof(*g));

    if (!g)
        return NULL;
    g->cfg = *cfg;
    g->loop = loop;
    g->env = env;
    g->http = http;
    g->metrics = metrics;
    g->io.send = gw_io_send;
    g->io.close = gw_io_close;
    if (!g->cfg.outbound_max_messages)
        g->cfg.outbound_max_messages = 256;
    if (!g->cfg.outbound_max_bytes)
        g->cfg.outbound_max_bytes = 1024 * 1024;
    if (!g->cfg.reassembly_budget)
        g->cfg.reassembly_budget = (size_t)64 << 20;

    /* One protocol serves HTTP and the WebSocket: it is protocols[0], the
     * default, so a handshake without Sec-WebSocket-Protocol binds to it
     * (MSG-004) and lws echoes the header only when the client sent one. */
    g->protocols[0].name = MW_GATEWAY_PROTOCOL;
    g->protocols[0].callback = gw_callback;
    g->protocols[0].per_session_data_size = sizeof(struct gw_pss);
    g->protocols[0].rx_buffer_size = GW_RX_BUFFER;
    g->protocols[0].tx_packet_size = GW_TX_PACKET;
    g->protocols[0].user = g;

    /* MSG-097: ping after idle_timeout_s of silence, close 4002 when no
     * pong (or anything else) arrives within min(idle, 10 s) more. */
    g->idle_s = g->cfg.idle_timeout_s;
    g->pong_s = g->idle_s < 10 ? g->idle_s : 10;

    memset(&info, 0, sizeof(info));
    info.port = cfg->port;
    info.iface = (cfg->host[0] && strcmp(cfg->host, "0.0.0.0") != 0) ? cfg->host : NULL;
    info.protocols = g->protocols;
    info.options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_DISABLE_IPV6;
    foreign_loops[0] = loop;
    info.foreign_loops = foreign_loops;
    info.signal_cb = gw_lws_signal_cb;
    info.user = g;
    info.pcontext = &g->ctx_alive;
    info.server_string = "matchwire";
    info.max_http_header_pool = gw_header_pool(cfg->max_connections);
    info.timeout_secs = GW_HANDSHAKE_S;
    info.timeout_secs_ah_idle = GW_HANDSHAKE_S;
    info.max_http_header_data = GW_HEADER_DATA; /* AUTH-011 */
    if (cfg->tls_cert && cfg->tls_key) {
        /* MSG-150: the one port speaks TLS only. The handshake shares the
         * header timeout (lws's PENDING_TIMEOUT_SSL_ACCEPT is timeout_secs,
         * MSG-153); a client that does not start with a ClientHello fails
         * SSL_accept and is dropped (MSG-152). */
        if (gw_tls_check(cfg->tls_cert, cfg->tls_key) || gw_tls_resolve(g)) {
            mw_free(g);
            return NULL;
        }
        g->tls = true;
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        info.ssl_options_set = GW_TLS_OPTIONS;
        info.ssl_cipher_list = GW_TLS12_CIPHERS;
        info.alpn = GW_TLS_ALPN;
    }

    g->ctx = lws_create_context(&info);
    if (!g->ctx) {
        mw_log(MW_LOG_ERR, "gateway: cannot create the lws context on %s:%u",
               cfg->host[0] ? cfg->host : "*", (unsigned)cfg->port);
        mw_free(g);
        return NULL;
    }
    g->ctx_alive = g->ctx;
    ev_timer_init(&g->unmasked_timer, gw_unmasked_cb, 0., 0.);
    g->unmasked_timer.data = g;
    gw_recv_owner = g;
    lws_sul_schedule(g->ctx, 0, &g->tick, gw_lws_tick, GW_LWS_TICK_US);
    {
        struct lws_vhost *vh = lws_get_vhost_by_name(g->ctx, "default");
        int p = vh ? lws_get_vhost_listen_port(vh) : cfg->port;

        g->port = p > 0 ? (uint16_t)p : cfg->port;
    }
    if (g->idle_s > 0 || gw_auth_on(g)) {
        /* (Also the token expiry check, AUTH-050: within 1 s.) */
        double period = g->idle_s > 0 && g->idle_s < 4 ? 0.25 : 1.0;

        ev_timer_init(&g->idle_timer, gw_idle_cb, period, period);
        g->idle_timer.data = g;
        ev_timer_start(loop, &g->idle_timer);
        ev_unref(loop); /* the sweep alone does not keep the loop running */
    }
    return g;
}

/* MSG-123: every 20 ms during shutdown, a WebSocket whose session has
 * nothing waiting on the store (its replies already queued before the close)
 * gets its 1001; after GW_DRAIN_MAX_S every one does. */
static void gw_drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mw_gateway *g = w->data;
    bool over = ev_now(loop) >= g->drain_until;
    bool waiting = false;

    (void)revents;
    for (struct gw_conn *c = g->conns; c; c = c->next) {
        if (c->close_code)
            continue;
        if (!over && mw_session_busy(c->session)) {
            waiting = true;
            continue;
        }
        gw_request_close(c, MW_CLOSE_GOING_AWAY, "server shutting down");
    }
    if (!waiting)
        ev_timer_stop(loop, w);
}

void mw_gateway_shutdown(struct mw_gateway *g)
{
    if (!g || g->stopping)
        return;
    /* From now on every upgrade and HTTP request is answered 503. (Not
     * lws_context_deprecate(): in lws 4.1.6 on a foreign libev loop it drops
     * every open connection at once, so no client would see its 1001.) */
    g->stopping = true;
    mw_http_stop(g->http);
    /* Each WebSocket closes with 1001 from its next WRITEABLE, or, when its
     * session waits on the store, once the reply is queued (MSG-123). */
    g->drain_until = ev_now(g->loop) + GW_DRAIN_MAX_S;
    ev_timer_init(&g->drain_timer, gw_drain_cb, GW_DRAIN_POLL_S, GW_DRAIN_POLL_S);
    g->drain_timer.data = g;
    ev_timer_start(g->loop, &g->drain_timer);
    lws_callback_on_writable_all_protocol(g->ctx, &g->protocols[0]);
}

size_t mw_gateway_open(const struct mw_gateway *g)
{
    return g ? g->open : 0;
}

uint16_t mw_gateway_port(const struct mw_gateway *g)
{
    return g->port;
}

void mw_gateway_free(struct mw_gateway *g)
{
    if (!g)
        return;
    g->stopping = true;
    if (ev_is_active(&g->drain_timer))
        ev_timer_stop(g->loop, &g->drain_timer);
    ev_timer_stop(g->loop, &g->unmasked_timer);
    if (ev_is_active(&g->idle_timer)) {
        ev_ref(g->loop);
        ev_timer_stop(g->loop, &g->idle_timer);
    }
    lws_sul_cancel(&g->tick);
    lws_context_destroy(g->ctx);
    /* With a foreign loop lws may finish closing handles on later turns. */
    for (int i = 0; i < 100 && g->ctx_alive; i++)
        ev_run(g->loop, EVRUN_NOWAIT);
    if (g->ctx_alive)
        mw_log(MW_LOG_WARN, "gateway: lws context not fully destroyed");
    if (gw_recv_owner == g)
        gw_recv_owner = NULL;
    ev_timer_stop(g->loop, &g->unmasked_timer);
    mw_free(g->scan);
    mw_free(g);
}
