/* Tests for the client's WebSocket codec (mwc_ws.h): the upgrade request
 * and response check (RFC 6455 section 4), and server frames decoded
 * exactly, close codes included (the reason this module exists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "buf.h"
#include "error.h"
#include "mwc_ws.h"

struct seen {
    int n;
    int op[16];
    size_t len[16];
    int code[16];
    bool truncated[16];
    char text[16][64];
};

static int collect(void *ud, const struct mwc_ws_event *ev)
{
    struct seen *s = ud;

    assert_true(s->n < 16);
    s->op[s->n] = (int)ev->op;
    s->len[s->n] = ev->len;
    s->code[s->n] = ev->close_code;
    s->truncated[s->n] = ev->truncated;
    if (ev->data && (ev->op == MWC_WS_TEXT || ev->op == MWC_WS_PING))
        snprintf(s->text[s->n], sizeof(s->text[0]), "%.*s", (int)(ev->len < 63 ? ev->len : 63),
                 (const char *)ev->data);
    s->n++;
    return 0;
}

/* Feeds bytes one at a time, then all at once, and checks both agree. */
static void feed_both(const unsigned char *p, size_t n, struct seen *out)
{
    struct mwc_ws_rx rx;
    struct seen whole = {0};

    assert_int_equal(mwc_ws_rx_init(&rx), 0);
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        mwc_ws_rx_feed(&rx, p + i, 1, collect, out);
    mwc_ws_rx_reset(&rx);
    mwc_ws_rx_feed(&rx, p, n, collect, &whole);
    mwc_ws_rx_release(&rx);
    assert_int_equal(whole.n, out->n);
    for (int i = 0; i < out->n; i++) {
        assert_int_equal(whole.op[i], out->op[i]);
        assert_int_equal(whole.code[i], out->code[i]);
    }
}

static void test_request_and_accept(void **state)
{
    /* RFC 6455 section 1.3's example key and accept value */
    static const unsigned char key16[16] = "the sample nonce";
    struct mw_buf b;
    char key[MWC_WS_KEY_LEN + 1];
    struct mwc_ws_response r;
    char head[512];

    mw_buf_init(&b, 4096);
    assert_int_equal(mwc_ws_request(&b, "h:8080", "/realtime", "matchwire.v1", "tok", key16, key),
                     0);
    assert_string_equal(key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_non_null(strstr(b.data, "GET /realtime HTTP/1.1\r\n"));
    assert_non_null(strstr(b.data, "Sec-WebSocket-Protocol: matchwire.v1\r\n"));
    assert_non_null(strstr(b.data, "Authorization: Bearer tok\r\n"));
    assert_int_equal(mwc_ws_request(&b, "h", "/x\r\nEvil: 1", "p", NULL, key16, key), MW_EINVAL);
    mw_buf_release(&b);

    snprintf(head, sizeof(head),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
             "Sec-WebSocket-Protocol: matchwire.v1\r\n\r\n");
    assert_int_equal(mwc_ws_head_end(head, strlen(head)), (long)strlen(head));
    assert_int_equal(mwc_ws_head_end(head, strlen(head) - 1), 0);
    mwc_ws_response_parse(head, strlen(head), key, "matchwire.v1", &r);
    assert_int_equal(r.status, 101);
    assert_true(r.upgraded);
    assert_true(r.subprotocol_ok);

    /* a wrong accept is not an upgrade; another subprotocol is seen as such */
    snprintf(head, sizeof(head),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n"
             "Sec-WebSocket-Protocol: other.v9\r\n\r\n");
    mwc_ws_response_parse(head, strlen(head), key, "matchwire.v1", &r);
    assert_false(r.upgraded);
    assert_true(r.subprotocol_set);
    assert_false(r.subprotocol_ok);

    snprintf(head, sizeof(head), "HTTP/1.1 503 Service Unavailable\r\nretry-after: 3\r\n\r\n");
    mwc_ws_response_parse(head, strlen(head), key, "matchwire.v1", &r);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.retry_after, 3);
    assert_false(r.upgraded);
}

/* A long Retry-After is a long wait, not none: a hostile or confused
 * server's 10^12 s reads as "at least the cap" (the client bounds it at
 * 60 s), never as -1 (which would retry at once, after the normal backoff). */
static void test_retry_after_saturates(void **state)
{
    struct mwc_ws_response r;
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    char head[256];

    (void)state;
    snprintf(head, sizeof(head), "HTTP/1.1 503 x\r\nRetry-After: 1000000000000\r\n\r\n");
    mwc_ws_response_parse(head, strlen(head), key, "matchwire.v1", &r);
    assert_true(r.retry_after >= 60);
    snprintf(head, sizeof(head), "HTTP/1.1 503 x\r\nRetry-After: 120\r\n\r\n");
    mwc_ws_response_parse(head, strlen(head), key, "matchwire.v1", &r);
    assert_int_equal(r.retry_after, 120);
    snprintf(head, sizeof(head), "HTTP/1.1 503 x\r\nRetry-After: 12a\r\n\r\n");
    mwc_ws_response_parse(head, strlen(head), key, "matchwire.v1", &r);
    assert_int_equal(r.retry_after, -1);
}

static void test_close_codes_exact(void **state)
{
    /* lws 4.1.6 reports 1012..1015 as 1002; this decoder must not */
    static const int codes[] = {1000, 1001, 1002, 1012, 1013, 1014, 1015, 4003, 4999};
    struct seen s;

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        unsigned char f[4] = {0x88, 0x02, (unsigned char)(codes[i] >> 8), (unsigned char)codes[i]};
        feed_both(f, sizeof(f), &s);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.op[0], MWC_WS_CLOSE);
        assert_int_equal(s.code[0], codes[i]);
    }
    {
        unsigned char f[2] = {0x88, 0x00}; /* no status: 1005 */
        feed_both(f, sizeof(f), &s);
        assert_int_equal(s.code[0], 1005);
    }
}

static void test_fragments_and_control_frames(void **state)
{
    /* "Hel" (text, no FIN), a ping "p" in between, "lo" (continuation, FIN) */
    static const unsigned char f[] = {0x01, 0x03, 'H',  'e',  'l', 0x89,
                                      0x01, 'p',  0x80, 0x02, 'l', 'o'};
    struct seen s;

    feed_both(f, sizeof(f), &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.op[0], MWC_WS_PING);
    assert_string_equal(s.text[0], "p");
    assert_int_equal(s.op[1], MWC_WS_TEXT);
    assert_string_equal(s.text[1], "Hello");
}

static void test_extended_lengths_and_truncation(void **state)
{
    size_t n = 70000, hl = 10;
    unsigned char *f = calloc(1, n + hl);
    struct seen s;

    assert_non_null(f);
    f[0] = 0x81;
    f[1] = 127;
    for (int k = 0; k < 8; k++)
        f[2 + k] = (unsigned char)((uint64_t)n >> (8 * (7 - k)));
    memset(f + hl, 'a', n);
    feed_both(f, n + hl, &s);
    assert_int_equal(s.n, 1);
    assert_true(s.truncated[0]);
    assert_int_equal(s.len[0], MWC_WS_MESSAGE_MAX);
    free(f);
    {
        static const unsigned char g[] = {0x82, 126, 0x00, 0x7e}; /* 126 bytes, binary */
        unsigned char h[sizeof(g) + 126];
        memcpy(h, g, sizeof(g));
        memset(h + sizeof(g), 1, 126);
        feed_both(h, sizeof(h), &s);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.op[0], MWC_WS_BINARY);
        assert_int_equal(s.len[0], 126);
    }
}

static void test_protocol_violations(void **state)
{
    static const unsigned char masked[] = {0x81, 0x81, 1, 2, 3, 4, 'x'};
    static const unsigned char rsv[] = {0xC1, 0x01, 'x'};
    static const unsigned char opcode[] = {0x83, 0x00};
    static const unsigned char stray_cont[] = {0x80, 0x00};
    static const unsigned char long_ping[] = {0x89, 126, 0x00, 0x7e};
    static const unsigned char split_ping[] = {0x09, 0x00};
    const unsigned char *bad[] = {masked, rsv, opcode, stray_cont, long_ping, split_ping};
    const size_t len[] = {sizeof(masked),     sizeof(rsv),       sizeof(opcode),
                          sizeof(stray_cont), sizeof(long_ping), sizeof(split_ping)};
    struct seen s;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        feed_both(bad[i], len[i], &s);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.op[0], MWC_WS_ERROR);
    }
}

static void test_frame_encoding_is_masked(void **state)
{
    static const unsigned char mask[4] = {1, 2, 3, 4};
    struct mw_buf b;
    const unsigned char *p;

    mw_buf_init(&b, 1 << 20);
    assert_int_equal(mwc_ws_frame(&b, MWC_WS_TEXT, "abc", 3, mask), 0);
    p = (const unsigned char *)b.data;
    assert_int_equal(p[0], 0x81);
    assert_int_equal(p[1], 0x80 | 3);
    assert_memory_equal(p + 2, mask, 4);
    assert_int_equal(p[6], 'a' ^ 1);
    assert_int_equal(p[8], 'c' ^ 3);
    mw_buf_reset(&b);
    assert_int_equal(mwc_ws_frame(&b, MWC_WS_TEXT, NULL, 0, mask), 0);
    assert_int_equal(b.len, 6);
    mw_buf_reset(&b);
    {
        char big[300];
        memset(big, 'x', sizeof(big));
        assert_int_equal(mwc_ws_frame(&b, MWC_WS_TEXT, big, sizeof(big), mask), 0);
        p = (const unsigned char *)b.data;
        assert_int_equal(p[1], 0x80 | 126);
        assert_int_equal(p[2] << 8 | p[3], 300);
        assert_int_equal(mwc_ws_frame(&b, MWC_WS_PING, big, 126, mask), MW_EINVAL);
    }
    mw_buf_release(&b);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_and_accept),
        cmocka_unit_test(test_retry_after_saturates),
        cmocka_unit_test(test_close_codes_exact),
        cmocka_unit_test(test_fragments_and_control_frames),
        cmocka_unit_test(test_extended_lengths_and_truncation),
        cmocka_unit_test(test_protocol_violations),
        cmocka_unit_test(test_frame_encoding_is_masked),
    };

    mwt_filter(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
