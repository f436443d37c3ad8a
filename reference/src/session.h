/* session: one WebSocket connection's protocol state machine.
 *
 * Pure: the edge (gateway.c) hands it text messages and the time, and gives
 * it an io table to queue outbound text and to close. It decodes each
 * message, applies the per-connection limits (tickets, rate, consecutive
 * errors), talks to the ticket store and the hub, and writes replies and
 * pushes. Watch is subscribe-before-read: the hub route is registered before
 * the store is read, so an assignment committed before or during the watch
 * is always delivered, exactly once per version.
 *
 * Lifetime: mw_session_new() by the edge on connect; mw_session_on_close()
 * on disconnect, after which the edge never touches it again. Store
 * callbacks still in flight hold references; the session frees itself when
 * the last one returns (hiredis-style deferred free). */
#ifndef MW_SESSION_H
#define MW_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "channel.h"
#include "envelope.h"
#include "hub.h"
#include "metrics.h"
#include "ticket.h"
#include "ticket_store.h"

/* WebSocket close codes the session asks for (spec/messages.md registry). */
#define MW_CLOSE_NORMAL        1000
#define MW_CLOSE_GOING_AWAY    1001 /* server shutting down (retryable) */
#define MW_CLOSE_UNSUPPORTED   1003 /* binary message (terminal) */
#define MW_CLOSE_BAD_PAYLOAD   1007 /* invalid UTF-8 in a text message (terminal) */
#define MW_CLOSE_POLICY        1008 /* too many consecutive errors / rate abuse (terminal) */
#define MW_CLOSE_TOO_BIG       1009 /* message over 65,536 bytes (terminal) */
#define MW_CLOSE_INTERNAL      1011 /* server error (retryable) */
#define MW_CLOSE_TRY_AGAIN     1013 /* --max-connections reached (retryable) */
#define MW_CLOSE_SLOW_CONSUMER 4001 /* outbound queue overflow (retryable) */
#define MW_CLOSE_IDLE          4002 /* no pong within the idle timeout (retryable) */
#define MW_CLOSE_TOKEN_EXPIRED 4003 /* the player token expired (auth.md AUTH-050; retryable) */

struct mw_session;

/* Bound of one encoded reply or push. */
#define MW_SESSION_OUT_MAX (MW_ENVELOPE_MAX_BYTES + 1024)

/* Per-connection limits; a zero field means its default. */
struct mw_session_limits {
    unsigned max_tickets;            /* live tickets (owned + watched) per connection: 8 */
    unsigned max_consecutive_errors; /* then close 1008: 10 */
    double rate_per_sec;             /* message rate: 50/s ... */
    double rate_burst;               /* ... with a burst of 100 */
    /* How long the store keeps a final ticket readable (its assigned_ttl_ms,
     * MSG-076): a match.assigned sent on a connection is remembered that
     * long (plus a margin) so it is never sent twice (MSG-072), at most 256
     * at a time; an enqueue or watch that could exceed that gets
     * too_many_tickets. 0: remember until the connection closes. */
    int64_t retention_ms;
};

/* Shared by every session of a server; borrowed, outlives every session. */
struct mw_session_env {
    struct mw_ticket_store *store;
    struct mw_hub *hub;
    struct mw_metrics *metrics; /* may be NULL */
    struct mw_session_limits limits;
    /* Where replies are encoded before io->send copies them: one buffer
     * (mw_buf_init(scratch, MW_SESSION_OUT_MAX)) shared by every session of
     * a server, so an idle connection keeps no output buffer. Borrowed,
     * outlives every session; the owner releases it. NULL: each session
     * keeps its own. */
    struct mw_buf *scratch;
    /* Keys the (playerId, idempotencyKey) hash a session compares to
     * recognise a replayed enqueue: the server's random key, fixed in tests. */
    struct mw_hash_key hash_key;
};

struct mw_session_io {
    /* Queues one text message (copied). Returns 0, or MW_ELIMIT when the
     * connection's outbound bound is reached: the edge then closes the
     * connection with MW_CLOSE_SLOW_CONSUMER itself. assigned_ms is the
     * assignment time of a match.assigned push (for the latency histogram),
     * 0 otherwise, including a stored assignment re-sent after a watch or a
     * resubscription re-read: a recovery is not a first delivery and takes
     * no latency sample. */
    int (*send)(void *ud, const char *buf, size_t len, int64_t assigned_ms);
    /* Asks the edge to close with code and reason; the edge then calls
     * mw_session_on_close() once the connection is gone. reason is a
     * string with static storage (a literal, at most 123 bytes): the edge
     * keeps the pointer until the close frame goes out. */
    void (*close)(void *ud, uint16_t code, const char *reason);
};

/* Returns a session or NULL. env and io borrowed (must outlive it). */
struct mw_session *mw_session_new(const struct mw_session_env *env, const struct mw_session_io *io,
                                  void *io_ud);

/* Authenticated mode (spec/auth.md section 6): from now on s acts only for
 * the player `sub` (borrowed, copied; a valid playerId, as the token
 * verifier guarantees): an enqueue for another playerId is answered
 * `forbidden` (AUTH-061); a watch or cancel of another player's ticket
 * exactly as one of an unknown ticket, `not_found`, with nothing left
 * registered (AUTH-062). Call once, right after mw_session_new() and before
 * any message. Returns 0, MW_EINVAL (sub empty or too long) or MW_ENOMEM
 * (the session stays unauthenticated: the caller closes it). Without it
 * the session is unauthenticated: any client may name any player. */
int mw_session_set_player(struct mw_session *s, const char *sub);

/* One complete text message (already UTF-8 checked and size-checked by the
 * edge: it is the edge that closes 1007/1009/1003). */
void mw_session_on_text(struct mw_session *s, const char *buf, size_t len, int64_t now_ms);

/* The connection is gone: detach every ticket, unwatch, never call io again.
 * s must not be used by the caller afterwards. */
void mw_session_on_close(struct mw_session *s, int64_t now_ms);

/* From the hub: a match.assigned notice for a ticket this session watches. */
void mw_session_push_assigned(struct mw_session *s, const struct mw_assigned *m);
/* From the hub: a watched ticket ended (expired / cancelled elsewhere). */
void mw_session_push_ended(struct mw_session *s, const struct mw_ticket *t);

/* True while a request of s waits on the store or received messages wait
 * behind it: the gateway answers them before its shutdown close (MSG-123).
 * NULL: false. */
bool mw_session_busy(const struct mw_session *s);

#endif /* MW_SESSION_H */
