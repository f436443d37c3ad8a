/* channel: the seed's MatchAssignedChannel in C (spec/channel.md).
 *
 * A matchmaker publishes {ticketId, envelope} after it has written the
 * assignment to the ticket store; every gateway subscribed receives it and
 * pushes the envelope to the ticket's watchers. The interface is an ops table
 * with the seed's two operations, readiness (for /healthz) and teardown,
 * and hooks given to the constructor (the resubscription signal, CHN-032);
 * backends are channel_memory.c (embedded default) and channel_redis.c
 * (Redis pub/sub on "matchmaking:assigned"). The gateway, the worker and the
 * server never learn which one they have. A backend is one that passes the
 * contract suite (tests/contract_channel.h).
 *
 * This file also owns the payload codec that every backend carrying bytes
 * (Redis) runs on what it receives. */
#ifndef MW_CHANNEL_H
#define MW_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ticket.h"

#define MW_CHANNEL_NAME          "matchmaking:assigned"
#define MW_CHANNEL_PAYLOAD_MAX   65536
#define MW_CHANNEL_TICKET_ID_MAX 64 /* bytes of printable ASCII in a payload's ticketId */

/* One assignment notice. Everything borrowed (valid until the call or the
 * callback returns). */
struct mw_assigned {
    const char *ticket_id; /* NUL-terminated */
    const char *envelope;  /* canonical match.assigned envelope JSON text */
    size_t envelope_len;
    uint64_t version;    /* envelope's data.version */
    int64_t assigned_ms; /* envelope's data.assignment.assignedAt (unix ms) */
    /* A re-read of the store (CHN-023), not a first delivery: the
     * assign-to-write histogram takes no sample from it. assigned_ms is the
     * real assignedAt all the same (a session remembers the delivery by
     * it, MSG-072). */
    bool recovery;
};

/* Subscriber callback: msg borrowed for the duration of the call. */
typedef void (*mw_channel_cb)(void *userdata, const struct mw_assigned *msg);

struct mw_channel_ops {
    /* Publishes to every subscriber (of every instance, for a shared
     * backend). Never calls a subscriber before returning (no re-entry,
     * CHN-003). Returns 0, MW_EINVAL, MW_ENOMEM, MW_ELIMIT (backend queue
     * full), MW_EUNAVAIL (backend down), MW_ECLOSED. */
    int (*publish)(void *impl, const struct mw_assigned *msg);
    /* Adds a subscriber (all subscribers receive every message, in publish
     * order per ticket, CHN-002). Returns 0, MW_EINVAL, MW_ENOMEM or
     * MW_ELIMIT; never calls cb before it returns. */
    int (*subscribe)(void *impl, mw_channel_cb cb, void *userdata);
    /* 0 when the channel can serve (publish connection up and, once there
     * is a subscriber, the subscription live); else a negative MW_E* code
     * (MW_EUNAVAIL) and reason (may be NULL) says why, for /healthz. */
    int (*ready)(void *impl, char *reason, size_t reason_len);
    void (*destroy)(void *impl);
};

/* What a channel tells its owner, given to every backend's constructor
 * (copied; NULL, or a NULL member: not wanted). */
struct mw_channel_hooks {
    /* The subscription is live, after the first subscribe() and again after
     * every loss (CHN-032): what was published meanwhile is lost, so the
     * owner re-reads the store for its watched tickets (CHN-023). Called
     * from the loop, never from inside a channel call, never after destroy. */
    void (*on_resubscribed)(void *ud);
    void *ud;
};

struct mw_channel {
    const struct mw_channel_ops *ops; /* public, read-only */
    void *impl;                       /* private to the backend */
};

static inline int mw_channel_publish(struct mw_channel *c, const struct mw_assigned *m)
{
    return c->ops->publish(c->impl, m);
}
static inline int mw_channel_subscribe(struct mw_channel *c, mw_channel_cb cb, void *userdata)
{
    return c->ops->subscribe(c->impl, cb, userdata);
}
static inline int mw_channel_ready(struct mw_channel *c, char *reason, size_t reason_len)
{
    return c->ops->ready(c->impl, reason, reason_len);
}
/* Destroys the channel and frees c's backend. NULL-safe. */
static inline void mw_channel_destroy(struct mw_channel *c)
{
    if (c)
        c->ops->destroy(c->impl);
}

/* ---- Payload codec (spec/channel.md) ------------------------------------- */

/* Why a received payload was dropped; each counted in /metrics. */
enum mw_drop_reason {
    MW_DROP_NONE = 0,
    MW_DROP_TOO_LARGE,       /* "too_large": over 65,536 bytes */
    MW_DROP_BAD_JSON,        /* "bad_json": not strict I-JSON */
    MW_DROP_BAD_PAYLOAD,     /* "bad_payload": not {ticketId: string, envelope: object} */
    MW_DROP_BAD_ENVELOPE,    /* "bad_envelope": envelope fails the envelope codec */
    MW_DROP_NOT_ASSIGNED,    /* "not_match_assigned": not a valid match.assigned v1 */
    MW_DROP_TICKET_MISMATCH, /* "ticket_mismatch": data.ticketId != ticketId */
    MW_DROP__COUNT
};
const char *mw_drop_reason_name(enum mw_drop_reason r);

/* Appends {"ticketId":...,"envelope":<envelope text>} to b. Returns 0,
 * MW_ENOMEM, MW_ELIMIT. */
int mw_channel_payload_encode(struct mw_buf *b, const struct mw_assigned *m);

/* A decoded payload. The envelope text is borrowed from the decoded buffer
 * when that held it canonically already (what any worker of this spec and
 * the seed's JSON.stringify send, in the usual case), and otherwise is the
 * canonical re-serialization, owned in scratch: either way valid while the
 * decoded buffer lives and until mw_assigned_owned_clear(). */
struct mw_assigned_owned {
    char ticket_id[MW_CHANNEL_TICKET_ID_MAX + 1];
    const char *envelope; /* canonical match.assigned envelope text; NULL when dropped */
    size_t envelope_len;
    struct mw_buf scratch; /* owns the re-serialization, when one was made */
    uint64_t version;
    int64_t assigned_ms;
};

/* Decodes and validates buf[0..len) (exact length, no NUL needed) by
 * CHN-010. On success returns 0 and *out holds the notice (see above;
 * mw_assigned_owned_clear() releases it), and mw_assigned_view() gives the
 * borrowed form. Returns MW_EINVAL with *why set for a payload to drop, or
 * MW_ENOMEM; *out then holds nothing. */
int mw_channel_payload_decode(const char *buf, size_t len, struct mw_assigned_owned *out,
                              enum mw_drop_reason *why);
void mw_assigned_owned_clear(struct mw_assigned_owned *o);
void mw_assigned_view(const struct mw_assigned_owned *o, struct mw_assigned *view);

#endif /* MW_CHANNEL_H */
