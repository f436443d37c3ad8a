/* fuzz_mwc_ws: the C client's WebSocket codec (clients/c/src/mwc_ws.c), the
 * part a server controls: the handshake response and the frame decoder.
 *
 * Input: byte 0 selects what the rest is (bit 0: a handshake response head,
 * then frames, as mwc_client.c's on_raw_rx()/on_head() read them; else a
 * frame stream from the start), bytes 1-2 seed the split points. The stream
 * is fed once whole and once in pieces of 1..64 bytes (each piece its own
 * exact-size heap copy, so ASan sees any over-read), and checked:
 *   - the two feeds give the same events (split-invariance);
 *   - the events are those of an independent RFC 6455 reader written here:
 *     messages are the concatenation of their fragments' payloads (the first
 *     MWC_WS_MESSAGE_MAX bytes, truncated set beyond), control frames carry
 *     their exact payload (<= 125), a close's code is its first two bytes
 *     (1005 without), and the decoder fails exactly where RFC 6455 is broken
 *     (a masked frame, reserved bits, an unknown opcode, a fragmented or
 *     long control frame, a 1-byte close, a stray or missing continuation,
 *     a 64-bit length with its top bit set); nothing after a failure;
 *   - mwc_ws_head_end() finds the first CRLFCRLF within 16 KiB, the same at
 *     every split, and -1 only past the bound; mwc_ws_response_parse()
 *     reads the status line as an independent reading does, says upgraded
 *     only with 101 and the key's Accept in the head, subprotocol_ok only
 *     when one was named, Retry-After >= -1.
 * The handshake uses RFC 6455's sample key, so the fuzzer can reach an
 * upgraded response from the seeds (corpus/mwc_ws/hs-101). */
#define _GNU_SOURCE /* memmem, strncasecmp */
#include "fuzz_common.h"

#include <strings.h>

#include "buf.h"
#include "mwc_ws.h"

#define SAMPLE_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define SUBPROTOCOL   "matchwire.v1"
#define MAX_EVENTS    4096

struct ev {
    int op;
    size_t len;
    bool truncated;
    int close_code;
    uint64_t hash; /* FNV-1a of the payload */
};

struct log {
    struct ev ev[MAX_EVENTS];
    size_t n;
    bool overflow;
    bool stopped; /* an ERROR or CLOSE was seen: the feeder stops, as mwc_client does */
};

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int on_event(void *ud, const struct mwc_ws_event *e)
{
    struct log *lg = ud;
    struct ev x = {.op = (int)e->op, .len = e->len, .truncated = e->truncated};

    FUZZ_CHECK_MSG(!lg->stopped, "an event after the decoder failed or the feeder stopped");
    switch ((int)e->op) {
    case MWC_WS_TEXT:
    case MWC_WS_BINARY:
        FUZZ_CHECK(e->len <= MWC_WS_MESSAGE_MAX);
        FUZZ_CHECK(!e->truncated || e->len == MWC_WS_MESSAGE_MAX);
        break;
    case MWC_WS_PING:
    case MWC_WS_PONG:
        FUZZ_CHECK(e->len <= 125 && !e->truncated);
        break;
    case MWC_WS_CLOSE:
        FUZZ_CHECK(e->len <= 125 && !e->truncated && e->len != 1);
        if (e->len == 0)
            FUZZ_CHECK(e->close_code == 1005);
        else
            FUZZ_CHECK(e->close_code == (e->data[0] << 8 | e->data[1]));
        x.close_code = e->close_code;
        lg->stopped = true;
        break;
    case MWC_WS_ERROR:
        FUZZ_CHECK(e->error != NULL && e->error[0] != '\0');
        lg->stopped = true;
        break;
    default:
        FUZZ_CHECK_MSG(false, "unknown event op %d", (int)e->op);
    }
    FUZZ_CHECK(e->len == 0 || e->data != NULL);
    x.hash = fnv(e->data, e->len); /* reads every byte: ASan checks them */
    if (lg->n < MAX_EVENTS)
        lg->ev[lg->n++] = x;
    else
        lg->overflow = true;
    return lg->stopped ? 1 : 0;
}

/* ---- the independent reader -------------------------------------------------- */

/* Reads the whole stream s[0..n) as RFC 6455 says a client must, into lg. */
static void reference_read(const unsigned char *s, size_t n, struct log *lg)
{
    size_t i = 0;
    bool in_msg = false;
    unsigned char *msg = malloc(MWC_WS_MESSAGE_MAX);
    size_t mlen = 0;
    bool mbin = false, mtrunc = false;

    FUZZ_CHECK(msg != NULL);
    while (i < n && lg->n < MAX_EVENTS) {
        unsigned b0, b1, op, l7;
        uint64_t len;
        size_t hl = 2;
        struct ev x = {0};
        bool fin, bad = false;

        if (n - i < 2)
            break;
        b0 = s[i];
        b1 = s[i + 1];
        op = b0 & 0xF;
        fin = b0 & 0x80;
        l7 = b1 & 0x7F;
        if (l7 == 126)
            hl += 2;
        else if (l7 == 127)
            hl += 8;
        if (n - i < hl)
            break; /* the header is incomplete: no verdict yet */
        if (l7 < 126) {
            len = l7;
        } else {
            len = 0;
            for (size_t k = 2; k < hl; k++)
                len = len << 8 | s[i + k];
        }
        if ((b0 & 0x70) || (b1 & 0x80) || (l7 == 127 && (len >> 63)))
            bad = true;
        else if (op == 0)
            bad = !in_msg;
        else if (op == 1 || op == 2)
            bad = in_msg;
        else if (op == 8 || op == 9 || op == 10)
            bad = !fin || len > 125;
        else
            bad = true;
        if (bad) {
            x.op = MWC_WS_ERROR;
            x.hash = fnv(NULL, 0);
            lg->ev[lg->n++] = x;
            break;
        }
        i += hl;
        if (len > n - i)
            break; /* the payload is incomplete */
        if (op & 8) {
            if (op == 8 && len == 1) {
                x.op = MWC_WS_ERROR;
                x.hash = fnv(NULL, 0);
                lg->ev[lg->n++] = x;
                break;
            }
            x.op = (int)op;
            x.len = (size_t)len;
            x.hash = fnv(s + i, (size_t)len);
            if (op == 8)
                x.close_code = len ? (s[i] << 8 | s[i + 1]) : 1005;
            lg->ev[lg->n++] = x;
            i += (size_t)len;
            if (op == 8)
                break;
            continue;
        }
        if (op != 0) {
            in_msg = true;
            mbin = op == 2;
            mlen = 0;
            mtrunc = false;
        }
        for (uint64_t k = 0; k < len; k++) {
            if (mlen < MWC_WS_MESSAGE_MAX)
                msg[mlen++] = s[i + k];
            else
                mtrunc = true;
        }
        i += (size_t)len;
        if (fin) {
            in_msg = false;
            x.op = mbin ? MWC_WS_BINARY : MWC_WS_TEXT;
            x.len = mlen;
            x.truncated = mtrunc;
            x.hash = fnv(msg, mlen);
            lg->ev[lg->n++] = x;
        }
    }
    free(msg);
}

static void check_same(const struct log *a, const struct log *b, const char *what)
{
    if (a->overflow || b->overflow)
        return;
    FUZZ_CHECK_MSG(a->n == b->n, "%s: %zu events against %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct ev *x = &a->ev[i], *y = &b->ev[i];
        FUZZ_CHECK_MSG(x->op == y->op && x->len == y->len && x->truncated == y->truncated &&
                           x->close_code == y->close_code && x->hash == y->hash,
                       "%s: event %zu differs: op %d/%d len %zu/%zu trunc %d/%d code %d/%d", what,
                       i, x->op, y->op, x->len, y->len, x->truncated, y->truncated, x->close_code,
                       y->close_code);
    }
}

/* Feeds s[0..n) to a fresh decoder in pieces chosen by *rng (0: whole). */
static void feed(const unsigned char *s, size_t n, uint32_t *rng, struct log *lg)
{
    struct mwc_ws_rx rx;
    size_t i = 0;

    FUZZ_CHECK(mwc_ws_rx_init(&rx) == 0);
    while (i < n && !lg->stopped) {
        size_t k = n - i;
        unsigned char *piece;
        int rc;
        if (rng) {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 17;
            *rng ^= *rng << 5;
            /* mostly small pieces, sometimes a big one */
            size_t want = (*rng & 7) == 0 ? (*rng >> 8) % 70000 + 1 : (*rng >> 8) % 64 + 1;
            if (want < k)
                k = want;
        }
        piece = (unsigned char *)fuzz_dup_exact(s + i, k);
        rc = mwc_ws_rx_feed(&rx, piece, k, on_event, lg);
        free(piece);
        FUZZ_CHECK(rc == 0 || rc == 1);
        FUZZ_CHECK(rc == 0 || lg->stopped);
        i += k;
    }
    FUZZ_CHECK(rx.msg_len <= MWC_WS_MESSAGE_MAX && rx.ctrl_len <= 125 && rx.hlen < 14);
    mwc_ws_rx_reset(&rx);
    FUZZ_CHECK(rx.msg != NULL && rx.msg_len == 0 && !rx.failed && !rx.in_message);
    mwc_ws_rx_release(&rx);
}

/* ---- the handshake response ------------------------------------------------------ */

/* The first CRLFCRLF's end within the bound, as mwc_ws_head_end() promises. */
static long reference_head_end(const char *b, size_t n)
{
    size_t lim = n < MWC_WS_HEADERS_MAX ? n : MWC_WS_HEADERS_MAX;
    const char *e = memmem(b, lim, "\r\n\r\n", 4);

    if (e)
        return (long)(e - b + 4);
    return n >= MWC_WS_HEADERS_MAX ? -1 : 0;
}

/* Splits a response from the input the way on_raw_rx() does: appends pieces
 * to a bounded buffer until the head ends. Returns the head's end (0: never
 * complete, -1: over the bound) and leaves the buffer in *head. */
static long read_head(const unsigned char *s, size_t n, uint32_t *rng, struct mw_buf *head,
                      size_t *consumed)
{
    size_t i = 0;
    long end = 0;

    while (i < n) {
        size_t k = n - i;
        *rng ^= *rng << 13;
        *rng ^= *rng >> 17;
        *rng ^= *rng << 5;
        if ((*rng >> 4) % 100 + 1 < k)
            k = (*rng >> 4) % 100 + 1;
        if (mw_buf_append(head, s + i, k) != 0) {
            /* over MWC_WS_HEADERS_MAX: on_raw_rx() refuses the attempt */
            FUZZ_CHECK(head->len + k > MWC_WS_HEADERS_MAX);
            FUZZ_CHECK(reference_head_end(head->data, head->len) == 0);
            *consumed = i;
            return -1;
        }
        i += k;
        end = mwc_ws_head_end(head->data, head->len);
        FUZZ_CHECK_MSG(end == reference_head_end(head->data, head->len), "head_end %ld", end);
        if (end != 0)
            break;
    }
    *consumed = i;
    return end;
}

static void check_response(const char *h, size_t n)
{
    struct mwc_ws_response r;
    int status = 0;
    char *copy = fuzz_dup_exact((const uint8_t *)h, n);

    mwc_ws_response_parse(copy, n, SAMPLE_KEY, SUBPROTOCOL, &r);
    if (n >= 12 && memcmp(h, "HTTP/1.", 7) == 0 && h[8] == ' ' && h[9] >= '0' && h[9] <= '9' &&
        h[10] >= '0' && h[10] <= '9' && h[11] >= '0' && h[11] <= '9')
        status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    FUZZ_CHECK_MSG(r.status == status, "status %d, expected %d", r.status, status);
    FUZZ_CHECK(r.retry_after >= -1);
    FUZZ_CHECK(!r.subprotocol_ok || r.subprotocol_set);
    if (r.upgraded) {
        FUZZ_CHECK(r.status == 101);
        FUZZ_CHECK(memmem(h, n, SAMPLE_ACCEPT, strlen(SAMPLE_ACCEPT)) != NULL);
    }
    if (r.subprotocol_ok)
        FUZZ_CHECK(memmem(h, n, SUBPROTOCOL, strlen(SUBPROTOCOL)) != NULL);
    if (r.retry_after >= 0)
        FUZZ_CHECK(memmem(h, n, ":", 1) != NULL);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct log whole, split, ref; /* large: not on the stack */
    const unsigned char *s;
    size_t n;
    uint32_t rng;

    if (size < 3)
        return 0;
    rng = (uint32_t)data[1] << 8 | data[2] | 0x10000u;
    s = data + 3;
    n = size - 3;
    if (data[0] & 1) {
        struct mw_buf head;
        size_t used = 0;
        long end;

        mw_buf_init(&head, MWC_WS_HEADERS_MAX);
        end = read_head(s, n, &rng, &head, &used);
        if (end > 0) {
            FUZZ_CHECK((size_t)end <= head.len && (size_t)end <= MWC_WS_HEADERS_MAX);
            FUZZ_CHECK(memcmp(head.data + end - 4, "\r\n\r\n", 4) == 0);
            check_response(head.data, (size_t)end);
            /* what followed the head in the same reads, then the rest: frames */
            s = s + used - (head.len - (size_t)end);
            n = n - used + (head.len - (size_t)end);
        } else {
            if (head.len)
                check_response(head.data, head.len); /* never a verdict, but must not crash */
            n = 0;
        }
        mw_buf_release(&head);
    }
    memset(&whole, 0, sizeof(whole));
    memset(&split, 0, sizeof(split));
    memset(&ref, 0, sizeof(ref));
    feed(s, n, NULL, &whole);
    feed(s, n, &rng, &split);
    reference_read(s, n, &ref);
    check_same(&whole, &split, "whole vs split");
    check_same(&whole, &ref, "decoder vs reference");
    return 0;
}
