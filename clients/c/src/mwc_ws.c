/* mwc_ws: the client side of RFC 6455 (handshake and frames), pure. See
 * mwc_ws.h for why the client does not use lws's WebSocket role. */
#include "mwc_ws.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "alloc.h"
#include "error.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static bool has_crlf(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

int mwc_ws_request(struct mw_buf *b, const char *host_header, const char *path,
                   const char *subprotocol, const char *token, const unsigned char key16[16],
                   char key_out[MWC_WS_KEY_LEN + 1])
{
    size_t mark = b->len;
    int rc;

    if (has_crlf(host_header) || has_crlf(path) || has_crlf(subprotocol) || has_crlf(token))
        return MW_EINVAL;
    EVP_EncodeBlock((unsigned char *)key_out, key16, 16);
    rc = mw_buf_printf(b,
                       "GET %s HTTP/1.1\r\n"
                       "Host: %s\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Protocol: %s\r\n",
                       path, host_header, key_out, subprotocol);
    if (rc == 0 && token)
        rc = mw_buf_printf(b, "Authorization: Bearer %s\r\n", token);
    if (rc == 0)
        rc = mw_buf_puts(b, "\r\n");
    if (rc != 0)
        mw_buf_truncate(b, mark);
    return rc;
}

long mwc_ws_head_end(const char *buf, size_t len)
{
    for (size_t i = 3; i < len && i < MWC_WS_HEADERS_MAX; i++)
        if (buf[i - 3] == '\r' && buf[i - 2] == '\n' && buf[i - 1] == '\r' && buf[i] == '\n')
            return (long)(i + 1);
    return len >= MWC_WS_HEADERS_MAX ? -1 : 0;
}

/* Whether the comma-separated header value v[0..n) holds token tok
 * (case-insensitive). */
static bool list_has(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;

    while (i < n) {
        size_t s, e;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return true;
    }
    return false;
}

void mwc_ws_response_parse(const char *head, size_t len, const char *key, const char *subprotocol,
                           struct mwc_ws_response *out)
{
    unsigned char digest[EVP_MAX_MD_SIZE], accept[64];
    char concat[128];
    unsigned int dlen = 0;
    bool up = false, conn = false, acc = false;
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    out->retry_after = -1;
    /* status line: HTTP/1.x NNN ... */
    if (len >= 12 && strncmp(head, "HTTP/1.", 7) == 0 && head[8] == ' ' &&
        isdigit((unsigned char)head[9]) && isdigit((unsigned char)head[10]) &&
        isdigit((unsigned char)head[11]))
        out->status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    snprintf(concat, sizeof(concat), "%s%s", key, ws_guid);
    EVP_Digest(concat, strlen(concat), digest, &dlen, EVP_sha1(), NULL);
    EVP_EncodeBlock(accept, digest, (int)dlen);
    while (i < len && head[i] != '\n')
        i++;
    i++;
    while (i < len) {
        size_t ls = i, le, colon, vs, ve;
        while (i < len && head[i] != '\n')
            i++;
        le = i > ls && head[i - 1] == '\r' ? i - 1 : i;
        i++;
        if (le == ls)
            break; /* the empty line */
        for (colon = ls; colon < le && head[colon] != ':'; colon++)
            ;
        if (colon == le)
            continue;
        vs = colon + 1;
        while (vs < le && (head[vs] == ' ' || head[vs] == '\t'))
            vs++;
        ve = le;
        while (ve > vs && (head[ve - 1] == ' ' || head[ve - 1] == '\t'))
            ve--;
#define NAME_IS(n) (colon - ls == sizeof(n) - 1 && strncasecmp(head + ls, n, sizeof(n) - 1) == 0)
        if (NAME_IS("Upgrade")) {
            up = list_has(head + vs, ve - vs, "websocket");
        } else if (NAME_IS("Connection")) {
            conn = list_has(head + vs, ve - vs, "upgrade");
        } else if (NAME_IS("Sec-WebSocket-Accept")) {
            acc =
                ve - vs == strlen((const char *)accept) && memcmp(head + vs, accept, ve - vs) == 0;
        } else if (NAME_IS("Sec-WebSocket-Protocol")) {
            out->subprotocol_set = true;
            out->subprotocol_ok =
                ve - vs == strlen(subprotocol) && memcmp(head + vs, subprotocol, ve - vs) == 0;
        } else if (NAME_IS("Retry-After")) {
            long v = 0;
            size_t k = vs;
            /* delta-seconds; a huge one saturates (a long wait is still a
             * long wait), a date or anything else reads as absent */
            while (k < ve && isdigit((unsigned char)head[k])) {
                if (v < 100000)
                    v = v * 10 + (head[k] - '0');
                k++;
            }
            if (k == ve && k > vs)
                out->retry_after = (int)(v < 100000 ? v : 100000);
        }
#undef NAME_IS
    }
    out->upgraded = out->status == 101 && up && conn && acc;
}

/* ---- frames ---------------------------------------------------------------- */

int mwc_ws_frame(struct mw_buf *b, enum mwc_ws_op op, const void *payload, size_t len,
                 const unsigned char mask[4])
{
    unsigned char h[14];
    size_t hl = 0, mark = b->len;
    const unsigned char *p = payload;
    int rc;

    if ((op & 0x8) && len > 125)
        return MW_EINVAL;
    h[hl++] = (unsigned char)(0x80 | op);
    if (len < 126) {
        h[hl++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xFFFF) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int k = 7; k >= 0; k--)
            h[hl++] = (unsigned char)((uint64_t)len >> (8 * k));
    }
    memcpy(h + hl, mask, 4);
    hl += 4;
    rc = mw_buf_append(b, h, hl);
    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)(p[i] ^ mask[i & 3]);
        rc = mw_buf_append(b, &c, 1);
    }
    if (rc != 0)
        mw_buf_truncate(b, mark);
    return rc;
}

int mwc_ws_rx_init(struct mwc_ws_rx *rx)
{
    memset(rx, 0, sizeof(*rx));
    rx->msg = mw_malloc(MWC_WS_MESSAGE_MAX);
    return rx->msg ? 0 : MW_ENOMEM;
}

void mwc_ws_rx_reset(struct mwc_ws_rx *rx)
{
    unsigned char *msg = rx->msg;

    memset(rx, 0, sizeof(*rx));
    rx->msg = msg;
}

void mwc_ws_rx_release(struct mwc_ws_rx *rx)
{
    mw_free(rx->msg);
    memset(rx, 0, sizeof(*rx));
}

static int fail(struct mwc_ws_rx *rx, const char *why, mwc_ws_event_cb cb, void *ud)
{
    struct mwc_ws_event ev = {.op = MWC_WS_ERROR, .error = why};

    rx->failed = true;
    return cb(ud, &ev);
}

/* A frame header is complete in rx->hdr: check it, set op/fin/left. Returns
 * 0, 1 (need more header bytes) or -1 (failed). */
static int header(struct mwc_ws_rx *rx)
{
    unsigned len7, ext;
    uint8_t op;

    if (rx->hlen < 2)
        return 1;
    len7 = rx->hdr[1] & 0x7f;
    ext = len7 == 126 ? 2u : len7 == 127 ? 8u : 0u;
    if (rx->hlen < 2 + ext)
        return 1;
    op = rx->hdr[0] & 0x0f;
    if (rx->hdr[0] & 0x70)
        return -1; /* reserved bits: no extension was negotiated */
    if (rx->hdr[1] & 0x80)
        return -1; /* a server must not mask */
    rx->fin = (rx->hdr[0] & 0x80) != 0;
    rx->left = len7;
    if (ext) {
        rx->left = 0;
        for (unsigned k = 0; k < ext; k++)
            rx->left = rx->left << 8 | rx->hdr[2 + k];
        if (rx->left >> 63)
            return -1;
    }
    switch (op) {
    case MWC_WS_CONT:
        if (!rx->in_message)
            return -1;
        break;
    case MWC_WS_TEXT:
    case MWC_WS_BINARY:
        if (rx->in_message)
            return -1;
        rx->in_message = true;
        rx->msg_binary = op == MWC_WS_BINARY;
        rx->msg_len = 0;
        rx->msg_truncated = false;
        break;
    case MWC_WS_CLOSE:
    case MWC_WS_PING:
    case MWC_WS_PONG:
        if (!rx->fin || rx->left > 125)
            return -1;
        rx->ctrl_len = 0;
        break;
    default:
        return -1;
    }
    rx->op = op;
    return 0;
}

/* The current frame's payload is complete. */
static int frame_done(struct mwc_ws_rx *rx, mwc_ws_event_cb cb, void *ud)
{
    struct mwc_ws_event ev = {0};

    if (rx->op & 0x8) {
        ev.op = (enum mwc_ws_op)rx->op;
        ev.data = rx->ctrl;
        ev.len = rx->ctrl_len;
        if (rx->op == MWC_WS_CLOSE) {
            if (rx->ctrl_len == 1)
                return fail(rx, "close frame with a 1-byte payload", cb, ud);
            ev.close_code = rx->ctrl_len >= 2 ? (rx->ctrl[0] << 8 | rx->ctrl[1]) : 1005;
        }
        return cb(ud, &ev);
    }
    if (!rx->fin)
        return 0;
    rx->in_message = false;
    ev.op = rx->msg_binary ? MWC_WS_BINARY : MWC_WS_TEXT;
    ev.data = rx->msg;
    ev.len = rx->msg_len;
    ev.truncated = rx->msg_truncated;
    return cb(ud, &ev);
}

int mwc_ws_rx_feed(struct mwc_ws_rx *rx, const unsigned char *p, size_t n, mwc_ws_event_cb cb,
                   void *ud)
{
    size_t i = 0;
    int rc;

    while (i < n && !rx->failed) {
        if (!rx->in_payload) {
            rx->hdr[rx->hlen++] = p[i++];
            rc = header(rx);
            if (rc == 1)
                continue;
            if (rc < 0)
                return fail(rx, "frame header breaks RFC 6455", cb, ud);
            rx->hlen = 0;
            rx->in_payload = true;
            if (rx->left == 0) {
                rx->in_payload = false;
                if ((rc = frame_done(rx, cb, ud)) != 0)
                    return rc;
            }
            continue;
        }
        /* payload */
        {
            size_t k = n - i < rx->left ? n - i : (size_t)rx->left;
            if (rx->op & 0x8) {
                memcpy(rx->ctrl + rx->ctrl_len, p + i, k);
                rx->ctrl_len += k;
            } else {
                size_t room = MWC_WS_MESSAGE_MAX - rx->msg_len;
                size_t c = k < room ? k : room;
                memcpy(rx->msg + rx->msg_len, p + i, c);
                rx->msg_len += c;
                if (c < k)
                    rx->msg_truncated = true;
            }
            i += k;
            rx->left -= k;
            if (rx->left == 0) {
                rx->in_payload = false;
                if ((rc = frame_done(rx, cb, ud)) != 0)
                    return rc;
            }
        }
    }
    return 0;
}
