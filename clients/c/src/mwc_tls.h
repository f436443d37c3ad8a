/* mwc_tls: the client's TLS (wss://), OpenSSL over memory BIOs: bytes in
 * from the socket, plaintext out to the WebSocket layer and back. No sockets
 * of its own: the transport moves the ciphertext (lws's raw role).
 *
 * Why not lws's TLS: libwebsockets 4.1.6 (Debian 12) starts TLS on a raw
 * client connection before the socket exists (core-net/client/connect.c:
 * lws_client_create_tls() runs before the DNS lookup and connect; every
 * attempt ends "tls start fail"), and the WebSocket role that does TLS right
 * rewrites close codes (mwc_ws.h). The OpenSSL here is the one lws links.
 *
 * Verification is always on: the chain against the CA file given (or the
 * system's default paths) and the server's name (DNS name or IP address)
 * against the certificate. */
#ifndef MWC_TLS_H
#define MWC_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct mwc_tls_ctx;
struct mwc_tls;

/* A context trusting ca_file (PEM; NULL: the system's default paths).
 * Returns NULL when the file cannot be loaded or on allocation failure. */
struct mwc_tls_ctx *mwc_tls_ctx_new(const char *ca_file);
void mwc_tls_ctx_free(struct mwc_tls_ctx *ctx); /* NULL-safe */

/* One client session to host (borrowed; copied), ready to handshake. NULL
 * on failure. */
struct mwc_tls *mwc_tls_new(struct mwc_tls_ctx *ctx, const char *host);
void mwc_tls_free(struct mwc_tls *t); /* NULL-safe */

/* Ciphertext from the socket. Returns 0 or MW_ENOMEM. */
int mwc_tls_feed(struct mwc_tls *t, const void *p, size_t n);
/* Advances the handshake: 1 when done, 0 when it needs more bytes, MW_EIO
 * when it failed (verification included). */
int mwc_tls_handshake(struct mwc_tls *t);
/* Plaintext received: > 0 bytes copied, 0 when none is ready, MW_EIO on a
 * TLS error or the peer's close_notify. */
int mwc_tls_read(struct mwc_tls *t, void *buf, size_t cap);
/* Encrypts p[0..n). Returns 0 or MW_EIO. */
int mwc_tls_write(struct mwc_tls *t, const void *p, size_t n);
/* Moves the ciphertext waiting to be sent into out. Returns 0, MW_ENOMEM or
 * MW_ELIMIT. */
int mwc_tls_drain(struct mwc_tls *t, struct mw_buf *out);
/* True when the handshake failed because the server's certificate did not
 * verify (chain or host name, CLI-004): not a network failure. */
bool mwc_tls_cert_refused(const struct mwc_tls *t);
/* Why the last call failed (OpenSSL's error string or the verify result);
 * static or in t. */
const char *mwc_tls_error(const struct mwc_tls *t);

#endif /* MWC_TLS_H */
