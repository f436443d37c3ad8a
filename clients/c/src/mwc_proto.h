/* mwc_proto: the client's protocol state machine (spec/client.md), pure: no
 * sockets, no clock of its own (every entry point takes `now`, monotonic
 * milliseconds), randomness injected. The transport (mwc_client.c) feeds it
 * what happened on the wire and asks it what to do next; the unit tests
 * drive it the same way without a socket.
 *
 * The transport's loop, each turn:
 *   act = mwc_proto_tick(p, now)     CONNECT / PING / DROP / CLOSE / NONE
 *   while (mwc_proto_next_send(p, now, &buf, &len)) write one text message
 *   wait at most mwc_proto_wait_ms(p, now)
 * and reports mwc_proto_on_open / on_text / on_binary / on_pong / on_closed /
 * on_refused as they happen. Application calls (enqueue, watch, cancel,
 * close) go straight to the mwc_proto_* functions below. Callbacks fire
 * synchronously from these calls. */
#ifndef MWC_PROTO_H
#define MWC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "matchwire/client.h"

/* The numbers of spec/client.md (milliseconds). */
#define MWC_FLOOR_MS        250    /* CLI-043 */
#define MWC_CAP_MS          10000  /* CLI-045 */
#define MWC_STABLE_MS       5000   /* CLI-047 */
#define MWC_RATE_PER_S      10     /* CLI-060 */
#define MWC_BURST           20     /* CLI-060 */
#define MWC_RATE_LIMITED_MS 1000   /* CLI-061 */
#define MWC_IDLE_PING_MS    10000  /* CLI-071 */
#define MWC_PING_TIMEOUT_MS 10000  /* CLI-071 */
#define MWC_RETENTION_MS    600000 /* CLI-030: applied versions kept after a ticket ends */
#define MWC_RETRY_AFTER_MAX 60     /* CLI-046: seconds */
#define MWC_MAX_RETRIES     20     /* retryable errors to one enqueue before giving up */
#define MWC_MAX_EARLY       8      /* pushes held before their reply (CLI-027) */
#define MWC_TICKET_SLOTS    (2 * MWC_MAX_TICKETS) /* live tickets + ended ones kept */
#define MWC_OUTQ_MAX        (MWC_TICKET_SLOTS + MWC_MAX_PENDING + 64)
#define MWC_ID_MAX          64

/* A random source: fills buf with n bytes; 0 or negative. */
typedef int (*mwc_random_fn)(void *ud, void *buf, size_t n);

enum mwc_action {
    MWC_ACT_NONE = 0,
    MWC_ACT_CONNECT, /* open a connection now (with mwc_proto_token()) */
    MWC_ACT_PING,    /* send a WebSocket ping (liveness, CLI-071) */
    MWC_ACT_DROP,    /* give the connection up without ceremony (then on_closed 1006) */
    MWC_ACT_CLOSE,   /* close with 1000 (then on_closed), or abort the handshake */
};

struct mwc_proto;

/* cb and ud are copied/borrowed as in mwc_options; owner is what callbacks
 * receive as their client. rnd (and rnd_ud) borrowed. token may be NULL
 * (copied). Returns NULL on allocation failure. */
struct mwc_proto *mwc_proto_new(const struct mwc_callbacks *cb, void *ud, struct mwc_client *owner,
                                mwc_random_fn rnd, void *rnd_ud, const char *token);
/* NULL-safe. Fires no callback. */
void mwc_proto_free(struct mwc_proto *p);
/* From now on fires no callback at all (refresh_token included: a refused
 * token then stops). For mwc_free() called inside a callback: the client is
 * released later, and client.h promises nothing fires after mwc_free(). */
void mwc_proto_silence(struct mwc_proto *p);

/* ---- application side (same contracts as client.h) ---------------------- */
int mwc_proto_start(struct mwc_proto *p, int64_t now);
int mwc_proto_enqueue(struct mwc_proto *p, const struct mwc_enqueue *req, char *detail,
                      size_t detail_cap, int64_t now);
int mwc_proto_watch(struct mwc_proto *p, const char *ticket_id, int64_t now);
int mwc_proto_cancel(struct mwc_proto *p, const char *ticket_id, int64_t now);
int mwc_proto_close(struct mwc_proto *p, int64_t now);
enum mwc_state mwc_proto_state(const struct mwc_proto *p);
/* The token for the next handshake (borrowed until the next proto call), or
 * NULL. */
const char *mwc_proto_token(const struct mwc_proto *p);

/* ---- transport side ------------------------------------------------------ */
/* The WebSocket handshake completed with matchwire.v1. */
void mwc_proto_on_open(struct mwc_proto *p, int64_t now);
/* One text message, buf[0..len) borrowed. */
void mwc_proto_on_text(struct mwc_proto *p, const char *buf, size_t len, int64_t now);
/* One binary message (never parsed, CLI-026). */
void mwc_proto_on_binary(struct mwc_proto *p, int64_t now);
/* A pong (or any sign of life that is not a message). */
void mwc_proto_on_pong(struct mwc_proto *p, int64_t now);
/* An open connection ended: code from the peer's close frame, 1005 for a
 * close frame without one, 1006 for none (or after MWC_ACT_DROP). */
void mwc_proto_on_closed(struct mwc_proto *p, int code, int64_t now);
/* An attempt failed before the connection opened: http_status of the
 * refusal (0: TCP, DNS, TLS or timeout), Retry-After in seconds (-1: none),
 * bad_subprotocol when a 101 selected another subprotocol (CLI-001). */
void mwc_proto_on_refused(struct mwc_proto *p, int http_status, int retry_after_s,
                          bool bad_subprotocol, int64_t now);

/* Runs timers; returns what the transport must do now (one action per call;
 * call again until MWC_ACT_NONE). */
enum mwc_action mwc_proto_tick(struct mwc_proto *p, int64_t now);
/* The next message to write, if one is due and pacing (CLI-060, CLI-061)
 * allows: *buf (valid until the next proto call) and *len. Returns false
 * when there is nothing to write now. The message counts as sent. */
bool mwc_proto_next_send(struct mwc_proto *p, int64_t now, const char **buf, size_t *len);
/* Whether mwc_proto_next_send() would hand out a message now. */
bool mwc_proto_send_ready(const struct mwc_proto *p, int64_t now);
/* Milliseconds until the next timer or paced send (0: something is due now;
 * MWC_CAP_MS * 10 when nothing is scheduled). */
int64_t mwc_proto_wait_ms(const struct mwc_proto *p, int64_t now);

#endif /* MWC_PROTO_H */
