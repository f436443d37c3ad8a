/* ticket_store: the ticket store interface (the truth about every ticket).
 *
 * An ops table in the redis connection.h style, one backend per module:
 * ticket_store_memory (embedded default), ticket_store_redis (many
 * instances on one Redis). Everything a backend does goes through its ops
 * and the hooks given to its constructor (struct mw_ticket_store_hooks);
 * the session, the HTTP API, the worker and the server only see this
 * interface. A backend is one that passes the contract suite
 * (tests/contract_ticket_store.h).
 *
 * Asynchrony contract (libuv's): every operation takes a callback. When the
 * call returns an error, the callback is never called. When it returns 0 the
 * callback is called exactly once, always later, from the event loop (never
 * before the call returns), unless the store is destroyed first, in which
 * case pending callbacks are called with MW_ECLOSED. The ticket passed to a
 * callback is borrowed for the duration of the callback.
 *
 * Statuses given to callbacks: 0, MW_ENOTFOUND (no such live ticket),
 * MW_ESTATE (ticket not in a state that allows it; the ticket is passed so the
 * caller can report e.g. already_assigned), MW_EUNAVAIL (backend down),
 * MW_ENOMEM. */
#ifndef MW_TICKET_STORE_H
#define MW_TICKET_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ticket.h"

typedef void (*mw_ticket_cb)(void *ud, int status, const struct mw_ticket *t);

/* Result of an assign: status 0 means every ticket moved queued -> assigned
 * atomically and tickets[i] is ticket i of the match after the change: at
 * least its id, state, version, ended_ms (the match's assignedAt) and
 * assigned_envelope (a backend that does not read the tickets back, as
 * Redis, leaves the other fields empty). MW_ESTATE means none moved; `failed` is the index of
 * a ticket that was not queued (cancelled/expired/assigned/unknown).
 * `published` (with status 0): the backend published each ticket's channel
 * payload itself, in the same atomic step as the commit (spec/channel.md
 * CHN-062, the Redis store), so the worker must not publish again; false
 * (the memory store, whose channel lives and dies with the process): the
 * worker publishes after the commit (CHN-020). */
struct mw_assign_result {
    int status;
    size_t failed;
    size_t n;
    const struct mw_ticket *tickets; /* borrowed during the callback */
    bool published;
};
typedef void (*mw_assign_cb)(void *ud, const struct mw_assign_result *r);

/* Ticket feed to the matchmaker: tickets that became queued (created) and
 * tickets that left the queue other than by assignment (cancelled/expired).
 * `t` is borrowed for the duration of the call. A backend delivers each
 * created ticket at least once (the worker is idempotent on ticket id). */
enum mw_feed_event { MW_FEED_QUEUED = 0, MW_FEED_REMOVED };
typedef void (*mw_feed_cb)(void *ud, enum mw_feed_event ev, const struct mw_ticket *t);

/* Store-wide timing policy, copied at construction. */
struct mw_ticket_store_config {
    int64_t ticket_ttl_ms;   /* queued tickets expire after this (default 600 s) */
    int64_t assigned_ttl_ms; /* assigned/ended tickets stay readable this long (600 s) */
    int64_t grace_ms;        /* unwatched queued tickets are cancelled after this (30 s) */
    size_t max_tickets; /* bound on live tickets; create fails MW_ELIMIT beyond (0: 1,000,000) */
};

struct mw_ticket_store_ops {
    /* Creates a queued ticket (version 1), or returns the live ticket that the
     * same player created with the same idempotency key. id_out (may be
     * NULL): when the call returns 0, the id of the ticket the callback
     * will report if it reports the one this call creates (filled before
     * the call returns, so the caller can register its push route before
     * the store has run the create, CHN-021); a callback ticket with
     * another id is an existing ticket (MSG-026), read at some point after
     * the call: the caller registers that one's route in the callback and
     * reads it again. */
    int (*create)(void *impl, const struct mw_enqueue_req *req, int64_t now_ms, char *id_out,
                  mw_ticket_cb cb, void *ud);
    int (*get)(void *impl, const char *ticket_id, mw_ticket_cb cb, void *ud);
    /* queued -> cancelled (version+1). MW_ESTATE with the ticket when it is
     * not queued (e.g. assigned). */
    int (*cancel)(void *impl, const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud);
    /* A watcher attaches: for a queued ticket watcher count +1 (clears any
     * grace deadline; a final ticket's count is not kept, CHN-040), then
     * reads the ticket. Callers register their push route BEFORE calling
     * this (subscribe-before-read). */
    int (*attach)(void *impl, const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud);
    /* A watcher detaches (disconnect): for a queued ticket watcher count -1;
     * at 0 it gets a grace deadline. Nothing for a final ticket, so callers
     * that know it is final skip the call. Fire-and-forget: returns 0 or an
     * error. A backend that cannot send it now (connection down) keeps it
     * and sends it when it can, and gives back by itself the watcher of a
     * watched create whose outcome it never learned (CHN-074): a count
     * that no connection holds would keep a ticket from the grace rule. */
    int (*detach)(void *impl, const char *ticket_id, int64_t now_ms);
    /* Atomically claims every ticket of m (all queued -> all assigned). */
    int (*assign)(void *impl, const struct mw_match *m, mw_assign_cb cb, void *ud);
    /* Subscribes the matchmaker to the ticket feed. One subscriber. */
    int (*feed)(void *impl, mw_feed_cb cb, void *ud);
    /* Expiry pass: queued past ttl -> expired, unwatched past grace ->
     * cancelled (each reported on the feed as REMOVED and through
     * on_ended), ended tickets past assigned_ttl forgotten. Returns how many
     * tickets changed (ended or forgotten) in the passes that completed
     * since the previous call: a backend that sweeps synchronously (memory)
     * counts this pass; an asynchronous one (Redis) counts the passes whose
     * answer arrived since, so this call's pass is counted by a later call.
     * Or a negative MW_E* code (MW_EUNAVAIL, MW_ECLOSED, MW_ENOMEM). */
    int (*sweep)(void *impl, int64_t now_ms);
    /* Number of live tickets per state (for /metrics); n[4] indexed by state. */
    void (*counts)(void *impl, uint64_t n[4]);
    /* Whether the backend can serve now (/healthz): returns 0 when it can
     * (reason, when not NULL, set to ""), else a negative MW_E* code
     * (MW_EUNAVAIL, MW_ECLOSED) with reason filled (an int action, STYLE
     * habit 1; server.c relies on 0 meaning ready). */
    int (*ready)(void *impl, char *reason, size_t reason_len);
    void (*destroy)(void *impl);
};

struct mw_ticket_store {
    const struct mw_ticket_store_ops *ops; /* public, read-only */
    void *impl;                            /* private to the backend */
};

/* What a store tells its owner, given to every backend's constructor
 * (copied; NULL, or a NULL member: not wanted). Called from the loop, never
 * from inside a store call, and never after destroy. */
struct mw_ticket_store_hooks {
    /* A ticket ended without assignment (expired by sweep, or cancelled by
     * grace or by cancel(); for cancel() it comes after the cancel callback,
     * so the canceller can unwatch first and get only its `cancelled` reply,
     * MSG-062). Lets the gateway push ticket.expired / cancelled to its
     * watchers. A shared backend also reports the ends other instances made
     * (such a ticket may carry only id, state and version). t borrowed. */
    void (*on_ended)(void *ud, const struct mw_ticket *t);
    /* The store's own notices (on_ended of other instances) may have been
     * lost and are live again (spec/channel.md CHN-023, CHN-032): the owner
     * re-reads its watched tickets. A backend with such notices calls it
     * after each time they become live, the first one included; a backend
     * without (memory: nothing can be lost) never calls it. */
    void (*on_resubscribed)(void *ud);
    void *ud;
};

static inline int mw_ticket_store_create(struct mw_ticket_store *s, const struct mw_enqueue_req *r,
                                         int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    return s->ops->create(s->impl, r, now_ms, NULL, cb, ud);
}
/* The same, telling the new ticket's id at once (ops.create's id_out:
 * MW_TICKET_ID_LEN + 1 bytes). */
static inline int mw_ticket_store_create_id(struct mw_ticket_store *s,
                                            const struct mw_enqueue_req *r, int64_t now_ms,
                                            char *id_out, mw_ticket_cb cb, void *ud)
{
    return s->ops->create(s->impl, r, now_ms, id_out, cb, ud);
}
static inline int mw_ticket_store_get(struct mw_ticket_store *s, const char *id, mw_ticket_cb cb,
                                      void *ud)
{
    return s->ops->get(s->impl, id, cb, ud);
}
static inline int mw_ticket_store_cancel(struct mw_ticket_store *s, const char *id, int64_t now_ms,
                                         mw_ticket_cb cb, void *ud)
{
    return s->ops->cancel(s->impl, id, now_ms, cb, ud);
}
static inline int mw_ticket_store_attach(struct mw_ticket_store *s, const char *id, int64_t now_ms,
                                         mw_ticket_cb cb, void *ud)
{
    return s->ops->attach(s->impl, id, now_ms, cb, ud);
}
static inline int mw_ticket_store_detach(struct mw_ticket_store *s, const char *id, int64_t now_ms)
{
    return s->ops->detach(s->impl, id, now_ms);
}
static inline int mw_ticket_store_assign(struct mw_ticket_store *s, const struct mw_match *m,
                                         mw_assign_cb cb, void *ud)
{
    return s->ops->assign(s->impl, m, cb, ud);
}
static inline int mw_ticket_store_feed(struct mw_ticket_store *s, mw_feed_cb cb, void *ud)
{
    return s->ops->feed(s->impl, cb, ud);
}
static inline int mw_ticket_store_sweep(struct mw_ticket_store *s, int64_t now_ms)
{
    return s->ops->sweep(s->impl, now_ms);
}
static inline void mw_ticket_store_counts(struct mw_ticket_store *s, uint64_t n[4])
{
    s->ops->counts(s->impl, n);
}
/* 0 when the store can serve; else a negative MW_E* code and reason (may be
 * NULL) says why, for /healthz. */
static inline int mw_ticket_store_ready(struct mw_ticket_store *s, char *reason, size_t reason_len)
{
    return s->ops->ready(s->impl, reason, reason_len);
}
/* Destroys the store; pending callbacks get MW_ECLOSED. NULL-safe. */
static inline void mw_ticket_store_destroy(struct mw_ticket_store *s)
{
    if (s)
        s->ops->destroy(s->impl);
}

#endif /* MW_TICKET_STORE_H */
