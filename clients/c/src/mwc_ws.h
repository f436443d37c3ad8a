/* mwc_ws: the client side of RFC 6455, pure (no sockets): the opening
 * handshake (request text, response check) and the frame codec.
 *
 * Why the client has its own: libwebsockets 4.1.6 (Debian 12) rewrites the
 * close codes 1012, 1013, 1014 and 1015 of a server's close frame to 1002
 * before its callback sees them (roles/ws/client-parser-ws.c), and
 * spec/client.md retries on the first three and stops on 1002. So lws
 * carries bytes (its raw client role, with its TLS) and this module speaks
 * WebSocket, every close code and HTTP status exactly as received. */
#ifndef MWC_WS_H
#define MWC_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MWC_WS_KEY_LEN     24          /* base64 of 16 random bytes */
#define MWC_WS_HEADERS_MAX 16384       /* bytes of a handshake response's head */
#define MWC_WS_MESSAGE_MAX (65536 + 1) /* bytes kept of one message: one more than an envelope */

/* Appends the upgrade request (GET path HTTP/1.1, Host, Upgrade, Connection,
 * Sec-WebSocket-Key from key16, -Version 13, -Protocol subprotocol, and
 * Authorization: Bearer token when token is not NULL) to b, and writes the
 * key's base64 to key_out. host_header: "host" or "host:port". Returns 0,
 * MW_ENOMEM, MW_ELIMIT or MW_EINVAL (a CR or LF in any string). */
int mwc_ws_request(struct mw_buf *b, const char *host_header, const char *path,
                   const char *subprotocol, const char *token, const unsigned char key16[16],
                   char key_out[MWC_WS_KEY_LEN + 1]);

/* Returns the length of the response head in buf[0..len) (through the empty
 * line), 0 when it is not complete yet, -1 when it cannot be one (over
 * MWC_WS_HEADERS_MAX without an end). */
long mwc_ws_head_end(const char *buf, size_t len);

/* What a handshake response said. */
struct mwc_ws_response {
    int status;           /* the status code; 0 when the status line is not HTTP/1.x NNN */
    int retry_after;      /* Retry-After in seconds (delta form); -1 when absent or a date */
    bool upgraded;        /* 101 with Upgrade: websocket, Connection: upgrade, a good Accept */
    bool subprotocol_ok;  /* the selected subprotocol is the one offered */
    bool subprotocol_set; /* a Sec-WebSocket-Protocol was present at all */
};
/* Reads a response head (head[0..len), through the empty line) against the
 * request's key and subprotocol. Never fails: what it cannot read it leaves
 * at its "not upgraded" default. */
void mwc_ws_response_parse(const char *head, size_t len, const char *key, const char *subprotocol,
                           struct mwc_ws_response *out);

/* ---- frames ------------------------------------------------------------------ */

enum mwc_ws_op {
    MWC_WS_CONT = 0x0,
    MWC_WS_TEXT = 0x1,
    MWC_WS_BINARY = 0x2,
    MWC_WS_CLOSE = 0x8,
    MWC_WS_PING = 0x9,
    MWC_WS_PONG = 0xA,
};

/* Appends one masked client frame (FIN set) to b. Returns 0, MW_ENOMEM or
 * MW_ELIMIT. Control frames over 125 bytes: MW_EINVAL. */
int mwc_ws_frame(struct mw_buf *b, enum mwc_ws_op op, const void *payload, size_t len,
                 const unsigned char mask[4]);

/* What the decoder hands out: a whole message (TEXT/BINARY; over
 * MWC_WS_MESSAGE_MAX only its first MWC_WS_MESSAGE_MAX bytes, truncated
 * set), a PING or PONG with its payload, a CLOSE with its code (1005 when the
 * frame had none), or an ERROR (the server broke RFC 6455: a masked frame,
 * reserved bits, an unknown opcode, a bad control frame, a stray
 * continuation): the connection must be failed. */
struct mwc_ws_event {
    enum mwc_ws_op op;         /* MWC_WS_TEXT, _BINARY, _PING, _PONG, _CLOSE; 0xF: error */
    const unsigned char *data; /* borrowed until the callback returns */
    size_t len;
    bool truncated;
    int close_code;
    const char *error; /* op 0xF: why */
};
#define MWC_WS_ERROR 0xF

/* Returns non-zero to stop decoding (the rest of the input is dropped). */
typedef int (*mwc_ws_event_cb)(void *ud, const struct mwc_ws_event *ev);

struct mwc_ws_rx {
    unsigned char hdr[14];
    size_t hlen;     /* header bytes collected */
    bool in_payload; /* the header is complete; `left` payload bytes to come */
    uint64_t left;   /* payload bytes of the current frame still to come */
    uint8_t op;      /* current frame's opcode */
    bool fin;
    bool in_message; /* a fragmented data message is open */
    bool msg_binary;
    bool msg_truncated;
    bool failed;
    unsigned char *msg; /* MWC_WS_MESSAGE_MAX bytes, owned */
    size_t msg_len;
    unsigned char ctrl[125];
    size_t ctrl_len;
};

/* Initialises a decoder (allocates its message buffer). Returns 0 or
 * MW_ENOMEM. */
int mwc_ws_rx_init(struct mwc_ws_rx *rx);
/* Forgets any partial frame/message (a new connection). */
void mwc_ws_rx_reset(struct mwc_ws_rx *rx);
void mwc_ws_rx_release(struct mwc_ws_rx *rx);
/* Feeds p[0..n) (borrowed); calls cb for each complete event, in order.
 * After an ERROR event the decoder ignores all further input until reset.
 * Returns 0, or the non-zero value cb returned. */
int mwc_ws_rx_feed(struct mwc_ws_rx *rx, const unsigned char *p, size_t n, mwc_ws_event_cb cb,
                   void *ud);

#endif /* MWC_WS_H */
