/* bench_ws: the minimal RFC 6455 client pieces the benchmark needs, as pure
 * functions over caller buffers (no sockets, no allocation): the opening
 * handshake (key, request, Sec-WebSocket-Accept check, subprotocol check),
 * masked client frames, and parsing of server frames. */
#ifndef MW_BENCH_WS_H
#define MW_BENCH_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MW_BENCH_WS_KEY_LEN    24 /* base64 of 16 bytes */
#define MW_BENCH_WS_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 */
/* The largest server frame payload accepted (the spec's message bound). */
#define MW_BENCH_WS_MAX_PAYLOAD 65536
/* The largest handshake response accepted. */
#define MW_BENCH_WS_MAX_RESPONSE 4096

enum {
    MW_BENCH_WS_OP_CONT = 0x0,
    MW_BENCH_WS_OP_TEXT = 0x1,
    MW_BENCH_WS_OP_BINARY = 0x2,
    MW_BENCH_WS_OP_CLOSE = 0x8,
    MW_BENCH_WS_OP_PING = 0x9,
    MW_BENCH_WS_OP_PONG = 0xA,
};

/* Errors (negative). */
enum {
    MW_BENCH_WS_EPROTO = -1,    /* malformed frame or response */
    MW_BENCH_WS_ESTATUS = -2,   /* handshake status is not 101 */
    MW_BENCH_WS_EACCEPT = -3,   /* Sec-WebSocket-Accept missing or wrong */
    MW_BENCH_WS_ESUBPROTO = -4, /* subprotocol missing or not the one offered */
    MW_BENCH_WS_ETOOBIG = -5,   /* over a stated bound */
};

/* Writes the base64 of the 16 bytes nonce into key (NUL-terminated,
 * MW_BENCH_WS_KEY_LEN chars). */
void mw_bench_ws_key(const uint8_t nonce[16], char key[MW_BENCH_WS_KEY_LEN + 1]);

/* Writes base64(SHA-1(key + RFC 6455 GUID)) into accept (NUL-terminated).
 * key: borrowed NUL-terminated string. Returns 0, or -1 if SHA-1 failed. */
int mw_bench_ws_accept(const char *key, char accept[MW_BENCH_WS_ACCEPT_LEN + 1]);

/* Writes the HTTP/1.1 upgrade request for host:port/path offering
 * subprotocol (NULL: no Sec-WebSocket-Protocol header) into out[0..cap).
 * Returns the length, or MW_BENCH_WS_ETOOBIG when it does not fit. */
int mw_bench_ws_request(char *out, size_t cap, const char *host, unsigned port, const char *path,
                        const char *key, const char *subprotocol);

/* Parses a handshake response in buf[0..len). Returns the length of the
 * header block (its bytes up to and including CRLFCRLF; anything after is
 * already frame data) when it is complete and valid: status 101, Upgrade
 * websocket, Sec-WebSocket-Accept equal to accept, and the
 * Sec-WebSocket-Protocol equal to subprotocol (when subprotocol is not
 * NULL). Returns 0 when more bytes are needed, or a negative error; *status
 * (may be NULL) gets the HTTP status when one was read. */
int mw_bench_ws_parse_response(const char *buf, size_t len, const char *accept,
                               const char *subprotocol, int *status);

/* Encodes one final client frame (FIN set, masked with mask) carrying
 * payload[0..len) into out[0..cap). Returns the frame length or
 * MW_BENCH_WS_ETOOBIG. */
int mw_bench_ws_frame(uint8_t *out, size_t cap, unsigned opcode, const void *payload, size_t len,
                      const uint8_t mask[4]);

/* One parsed server frame; payload points into the caller's buffer. */
struct mw_bench_ws_frame {
    bool fin;
    unsigned opcode;
    const uint8_t *payload;
    size_t len;
};

/* Parses one server frame at the start of buf[0..len). Returns the number of
 * bytes it occupies (header + payload) and fills *f, 0 when more bytes are
 * needed, or MW_BENCH_WS_EPROTO (reserved bits, masked server frame, unknown
 * opcode, fragmented or oversized control frame, non-minimal length) or
 * MW_BENCH_WS_ETOOBIG (payload over MW_BENCH_WS_MAX_PAYLOAD). */
int mw_bench_ws_parse_frame(const uint8_t *buf, size_t len, struct mw_bench_ws_frame *f);

#endif /* MW_BENCH_WS_H */
