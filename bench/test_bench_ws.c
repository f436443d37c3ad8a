/* Tests for bench_ws: the RFC 6455 section 1.3 accept example, handshake
 * response checks, masked client frames, server frame parsing and its
 * rejections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bench_ws.h"

static void test_accept_rfc_example(void **state)
{
    (void)state;
    char acc[MW_BENCH_WS_ACCEPT_LEN + 1];
    assert_int_equal(mw_bench_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", acc), 0);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_key(void **state)
{
    (void)state;
    const uint8_t nonce[16] = "the sample nonce";
    char key[MW_BENCH_WS_KEY_LEN + 1];
    mw_bench_ws_key(nonce, key);
    assert_string_equal(key, "dGhlIHNhbXBsZSBub25jZQ==");
}

static const char OK_RESP[] = "HTTP/1.1 101 Switching Protocols\r\n"
                              "upgrade: WebSocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                              "Sec-WebSocket-Protocol: matchwire.v1\r\n\r\n\x81\x02{}";

static void test_response(void **state)
{
    (void)state;
    const char *acc = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    size_t hdr = strlen(OK_RESP) - 4; /* the trailing frame bytes are not headers */
    int status = 0;
    assert_int_equal(
        mw_bench_ws_parse_response(OK_RESP, strlen(OK_RESP), acc, "matchwire.v1", &status),
        (int)hdr);
    assert_int_equal(status, 101);
    /* Incomplete: need more. */
    assert_int_equal(mw_bench_ws_parse_response(OK_RESP, 40, acc, "matchwire.v1", NULL), 0);
    /* Wrong accept. */
    assert_int_equal(mw_bench_ws_parse_response(OK_RESP, strlen(OK_RESP),
                                                "AAAALMBiTxaQ9kYGzzhZRbK+xOo=", "matchwire.v1",
                                                NULL),
                     MW_BENCH_WS_EACCEPT);
    /* Subprotocol not offered but echoed. */
    assert_int_equal(mw_bench_ws_parse_response(OK_RESP, strlen(OK_RESP), acc, NULL, NULL),
                     MW_BENCH_WS_ESUBPROTO);
    const char *r503 = "HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\n\r\n";
    assert_int_equal(mw_bench_ws_parse_response(r503, strlen(r503), acc, NULL, &status),
                     MW_BENCH_WS_ESTATUS);
    assert_int_equal(status, 503);
    const char *noproto = "HTTP/1.1 101 X\r\nUpgrade: websocket\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_int_equal(
        mw_bench_ws_parse_response(noproto, strlen(noproto), acc, "matchwire.v1", NULL),
        MW_BENCH_WS_ESUBPROTO);
    assert_true(mw_bench_ws_parse_response(noproto, strlen(noproto), acc, NULL, NULL) > 0);
}

static void test_request(void **state)
{
    (void)state;
    char buf[512];
    int n = mw_bench_ws_request(buf, sizeof(buf), "127.0.0.1", 8080, "/realtime",
                                "dGhlIHNhbXBsZSBub25jZQ==", "matchwire.v1");
    assert_true(n > 0);
    assert_non_null(strstr(buf, "GET /realtime HTTP/1.1\r\n"));
    assert_non_null(strstr(buf, "Sec-WebSocket-Protocol: matchwire.v1\r\n"));
    assert_memory_equal(buf + n - 4, "\r\n\r\n", 4);
    assert_int_equal(mw_bench_ws_request(buf, 16, "h", 1, "/", "k", NULL), MW_BENCH_WS_ETOOBIG);
}

static void test_client_frame_masked(void **state)
{
    (void)state;
    uint8_t out[300];
    const uint8_t mask[4] = {1, 2, 3, 4};
    int n = mw_bench_ws_frame(out, sizeof(out), MW_BENCH_WS_OP_TEXT, "abc", 3, mask);
    assert_int_equal(n, 2 + 4 + 3);
    assert_int_equal(out[0], 0x81);
    assert_int_equal(out[1], 0x80 | 3);
    assert_int_equal(out[6], 'a' ^ 1);
    assert_int_equal(out[8], 'c' ^ 3);
    char big[200];
    memset(big, 'x', sizeof(big));
    n = mw_bench_ws_frame(out, sizeof(out), MW_BENCH_WS_OP_TEXT, big, sizeof(big), mask);
    assert_int_equal(n, 4 + 4 + 200);
    assert_int_equal(out[1], 0x80 | 126);
    assert_int_equal(out[2], 0);
    assert_int_equal(out[3], 200);
    assert_int_equal(mw_bench_ws_frame(out, 10, MW_BENCH_WS_OP_TEXT, big, 100, mask),
                     MW_BENCH_WS_ETOOBIG);
}

static void test_server_frames(void **state)
{
    (void)state;
    struct mw_bench_ws_frame f;
    const uint8_t text[] = {0x81, 0x02, '{', '}'};
    assert_int_equal(mw_bench_ws_parse_frame(text, 1, &f), 0);
    assert_int_equal(mw_bench_ws_parse_frame(text, 3, &f), 0);
    assert_int_equal(mw_bench_ws_parse_frame(text, 4, &f), 4);
    assert_true(f.fin);
    assert_int_equal(f.opcode, MW_BENCH_WS_OP_TEXT);
    assert_int_equal(f.len, 2);
    assert_memory_equal(f.payload, "{}", 2);

    uint8_t mid[4 + 300];
    mid[0] = 0x01; /* not final */
    mid[1] = 126;
    mid[2] = 300 >> 8;
    mid[3] = 300 & 0xFF;
    memset(mid + 4, 'a', 300);
    assert_int_equal(mw_bench_ws_parse_frame(mid, sizeof(mid) - 1, &f), 0);
    assert_int_equal(mw_bench_ws_parse_frame(mid, sizeof(mid), &f), (int)sizeof(mid));
    assert_false(f.fin);
    assert_int_equal(f.len, 300);

    const uint8_t masked[] = {0x81, 0x81, 1, 2, 3, 4, 'a'};
    assert_int_equal(mw_bench_ws_parse_frame(masked, sizeof(masked), &f), MW_BENCH_WS_EPROTO);
    const uint8_t rsv[] = {0xC1, 0x00};
    assert_int_equal(mw_bench_ws_parse_frame(rsv, sizeof(rsv), &f), MW_BENCH_WS_EPROTO);
    const uint8_t nonmin[] = {0x81, 126, 0, 5, 'a', 'b', 'c', 'd', 'e'};
    assert_int_equal(mw_bench_ws_parse_frame(nonmin, sizeof(nonmin), &f), MW_BENCH_WS_EPROTO);
    const uint8_t fragping[] = {0x09, 0x00};
    assert_int_equal(mw_bench_ws_parse_frame(fragping, sizeof(fragping), &f), MW_BENCH_WS_EPROTO);
    const uint8_t badop[] = {0x83, 0x00};
    assert_int_equal(mw_bench_ws_parse_frame(badop, sizeof(badop), &f), MW_BENCH_WS_EPROTO);
    const uint8_t huge[] = {0x81, 127, 0, 0, 0, 0, 0, 2, 0, 0};
    assert_int_equal(mw_bench_ws_parse_frame(huge, sizeof(huge), &f), MW_BENCH_WS_ETOOBIG);
    const uint8_t ping[] = {0x89, 0x01, 'p'};
    assert_int_equal(mw_bench_ws_parse_frame(ping, sizeof(ping), &f), 3);
    assert_int_equal(f.opcode, MW_BENCH_WS_OP_PING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_rfc_example),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_client_frame_masked),
        cmocka_unit_test(test_server_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
