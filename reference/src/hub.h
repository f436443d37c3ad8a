/* hub: the gateway's routing table, ticket id -> the watchers of it.
 *
 * The hub subscribes to the channel and hands each notice to the watchers
 * (sessions, through struct mw_watcher); each session drops versions it has
 * already sent, so a connection
 * never receives an older version after a newer one, nor the same
 * match.assigned twice. Bounded: at most max_watches (ticket, session) pairs
 * in all. */
#ifndef MW_HUB_H
#define MW_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "ticket.h"

struct mw_hub;

/* What the hub routes to: a watcher embedded in its owner (a session embeds
 * one, as libuv embeds handles), which finds itself again with
 * MW_CONTAINER_OF (map.h). The hub calls ops->assigned for every channel
 * notice of a watched ticket and ops->ended for every end without
 * assignment; msg and t are borrowed for the call. A watcher may watch and
 * unwatch from inside these calls. */
struct mw_watcher;
struct mw_watcher_ops {
    void (*assigned)(struct mw_watcher *w, const struct mw_assigned *msg);
    void (*ended)(struct mw_watcher *w, const struct mw_ticket *t);
};
struct mw_watcher {
    const struct mw_watcher_ops *ops; /* public: set by the owner, static */
};

/* Returns a hub or NULL. max_watches 0 means 1,000,000. Its map of ticket
 * ids (which a client chooses when it watches) hashes with key (copied):
 * draw it from the instance's random source (mw_hash_key_random). */
struct mw_hub *mw_hub_new_keyed(size_t max_watches, const struct mw_hash_key *key);
/* The same with a key from the OS random source; NULL also when that fails. */
struct mw_hub *mw_hub_new(size_t max_watches);
/* Frees the hub (not the watchers). NULL-safe. */
void mw_hub_free(struct mw_hub *h);

/* Registers w (borrowed, until unwatch) as a watcher of ticket_id (1..64
 * bytes, NUL-terminated). Watching twice is a no-op. Returns 0, MW_EINVAL,
 * MW_ELIMIT or MW_ENOMEM. A watcher may watch and unwatch from inside its
 * ops (the hub tolerates it mid-loop). */
int mw_hub_watch(struct mw_hub *h, const char *ticket_id, struct mw_watcher *w);
void mw_hub_unwatch(struct mw_hub *h, const char *ticket_id, struct mw_watcher *w);

/* A channel subscriber: pushes msg to every watcher of msg->ticket_id.
 * Matches mw_channel_cb with userdata = the hub. */
void mw_hub_on_assigned(void *hub, const struct mw_assigned *msg);
/* A ticket ended without assignment (expired, cancelled): pushes
 * ticket.expired / ticket.cancelled to its watchers. t borrowed. Matches the
 * store's on_ended hook with ud = the hub. */
void mw_hub_on_ended(void *hub, const struct mw_ticket *t);

/* A watched ticket read again from the store after the channel's
 * subscription was down (CHN-023): pushed to its watchers as the recovery it
 * is (assigned: its stored envelope with its real assignedAt, no latency
 * sample; cancelled or expired: as mw_hub_on_ended), nothing for a queued
 * ticket. t borrowed. */
void mw_hub_on_reread(void *hub, const struct mw_ticket *t);

size_t mw_hub_watch_count(const struct mw_hub *h);

/* Calls fn(ud, ticket_id) once per watched ticket (ticket_id borrowed for
 * the call). fn must not watch or unwatch. Used after a channel
 * resubscription to re-read every watched ticket from the store (CHN-023).
 * Returns the number of tickets visited. */
size_t mw_hub_foreach_ticket(const struct mw_hub *h, void (*fn)(void *ud, const char *ticket_id),
                             void *ud);

#endif /* MW_HUB_H */
