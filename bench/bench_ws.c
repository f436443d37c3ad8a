/* bench_ws: minimal RFC 6455 client pieces (see bench_ws.h). SHA-1 and
 * base64 come from OpenSSL's libcrypto (EVP API). */
#include "bench_ws.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void mw_bench_ws_key(const uint8_t nonce[16], char key[MW_BENCH_WS_KEY_LEN + 1])
{
    EVP_EncodeBlock((unsigned char *)key, nonce, 16);
}

int mw_bench_ws_accept(const char *key, char accept[MW_BENCH_WS_ACCEPT_LEN + 1])
{
    char buf[128];
    size_t klen = strlen(key);
    if (klen + sizeof(WS_GUID) > sizeof(buf))
        return -1;
    memcpy(buf, key, klen);
    memcpy(buf + klen, WS_GUID, sizeof(WS_GUID) - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(buf, klen + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)accept, md, 20);
    return 0;
}

int mw_bench_ws_request(char *out, size_t cap, const char *host, unsigned port, const char *path,
                        const char *key, const char *subprotocol)
{
    int n;
    if (subprotocol)
        n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
                     path, host, port, key, subprotocol);
    else
        n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, host, port, key);
    if (n < 0 || (size_t)n >= cap)
        return MW_BENCH_WS_ETOOBIG;
    return n;
}

/* Header value equality after trimming spaces and tabs. */
static bool value_is(const char *v, size_t vlen, const char *want, bool nocase)
{
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    size_t wlen = strlen(want);
    if (vlen != wlen)
        return false;
    return nocase ? strncasecmp(v, want, wlen) == 0 : memcmp(v, want, wlen) == 0;
}

int mw_bench_ws_parse_response(const char *buf, size_t len, const char *accept,
                               const char *subprotocol, int *status)
{
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = buf + i;
            break;
        }
    }
    if (!end)
        return len > MW_BENCH_WS_MAX_RESPONSE ? MW_BENCH_WS_ETOOBIG : 0;
    if ((size_t)(end - buf) > MW_BENCH_WS_MAX_RESPONSE)
        return MW_BENCH_WS_ETOOBIG;

    /* Status line: HTTP/1.1 SP 3DIGIT SP reason */
    if (end - buf < 12 || memcmp(buf, "HTTP/1.1 ", 9) != 0)
        return MW_BENCH_WS_EPROTO;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return MW_BENCH_WS_EPROTO;
        code = code * 10 + (buf[i] - '0');
    }
    if (status)
        *status = code;
    if (code != 101)
        return MW_BENCH_WS_ESTATUS;

    bool upgrade = false, accept_ok = false, proto_seen = false, proto_ok = false;
    const char *line = memchr(buf, '\n', (size_t)(end - buf));
    while (line && line < end) {
        line++; /* past '\n' */
        const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        if (!eol)
            break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            size_t vlen = (size_t)(eol - v);
            if (nlen == 7 && strncasecmp(line, "Upgrade", 7) == 0)
                upgrade = value_is(v, vlen, "websocket", true);
            else if (nlen == 20 && strncasecmp(line, "Sec-WebSocket-Accept", 20) == 0)
                accept_ok = value_is(v, vlen, accept, false);
            else if (nlen == 22 && strncasecmp(line, "Sec-WebSocket-Protocol", 22) == 0) {
                proto_seen = true;
                proto_ok = subprotocol && value_is(v, vlen, subprotocol, false);
            }
        }
        line = eol + 1; /* at '\n' */
        if (line >= end)
            break;
    }
    if (!upgrade)
        return MW_BENCH_WS_EPROTO;
    if (!accept_ok)
        return MW_BENCH_WS_EACCEPT;
    if (subprotocol ? !proto_ok : proto_seen)
        return MW_BENCH_WS_ESUBPROTO;
    return (int)(end - buf) + 4;
}

int mw_bench_ws_frame(uint8_t *out, size_t cap, unsigned opcode, const void *payload, size_t len,
                      const uint8_t mask[4])
{
    size_t hdr = len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
    if (hdr + 4 + len > cap)
        return MW_BENCH_WS_ETOOBIG;
    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(out + hdr, mask, 4);
    const uint8_t *p = payload;
    uint8_t *d = out + hdr + 4;
    for (size_t i = 0; i < len; i++)
        d[i] = p[i] ^ mask[i & 3];
    return (int)(hdr + 4 + len);
}

int mw_bench_ws_parse_frame(const uint8_t *buf, size_t len, struct mw_bench_ws_frame *f)
{
    if (len < 2)
        return 0;
    if (buf[0] & 0x70)
        return MW_BENCH_WS_EPROTO; /* RSV bits: no extension was negotiated */
    unsigned op = buf[0] & 0x0F;
    bool fin = buf[0] & 0x80;
    if (buf[1] & 0x80)
        return MW_BENCH_WS_EPROTO; /* a server MUST NOT mask */
    uint64_t plen = buf[1] & 0x7F;
    size_t hdr = 2;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = ((uint64_t)buf[2] << 8) | buf[3];
        if (plen < 126)
            return MW_BENCH_WS_EPROTO;
        hdr = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = (plen << 8) | buf[2 + i];
        if (plen <= 0xFFFF || (plen >> 63))
            return MW_BENCH_WS_EPROTO;
        hdr = 10;
    }
    switch (op) {
    case MW_BENCH_WS_OP_CONT:
    case MW_BENCH_WS_OP_TEXT:
    case MW_BENCH_WS_OP_BINARY:
        break;
    case MW_BENCH_WS_OP_CLOSE:
    case MW_BENCH_WS_OP_PING:
    case MW_BENCH_WS_OP_PONG:
        if (!fin || plen > 125)
            return MW_BENCH_WS_EPROTO;
        break;
    default:
        return MW_BENCH_WS_EPROTO;
    }
    if (plen > MW_BENCH_WS_MAX_PAYLOAD)
        return MW_BENCH_WS_ETOOBIG;
    if (len < hdr + plen)
        return 0;
    f->fin = fin;
    f->opcode = op;
    f->payload = buf + hdr;
    f->len = (size_t)plen;
    return (int)(hdr + plen);
}
