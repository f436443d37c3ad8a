/* worker: the matchmaking role. Feeds the matchmaker from the ticket store,
 * commits each formed match to the store (compare-and-set), then publishes
 * one {ticketId, envelope} per ticket on the channel: store first, publish
 * second, so the store is always the truth and the push only a hint.
 *
 * When a commit fails because one ticket left the queue meanwhile, the
 * others are requeued at the front of their pool. When it fails because the
 * store cannot serve (unavailable), the group is parked and retried once the
 * store is ready, with a backoff (spec/channel.md CHN-106). Game server
 * addresses are handed out round-robin. */
#ifndef MW_WORKER_H
#define MW_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "matchmaker.h"
#include "ticket_store.h"

#define MW_GAME_SERVERS_MAX 64

struct mw_worker;

struct mw_worker_stats {
    uint64_t matches;          /* committed */
    uint64_t commit_conflicts; /* assign returned MW_ESTATE */
    uint64_t commit_failures;  /* assign called back with another error: group parked */
    uint64_t publish_errors;
    uint64_t published;
};

struct mw_worker_config {
    struct mw_matchmaker_config mm;
    size_t n_game_servers; /* >= 1 */
    char game_servers[MW_GAME_SERVERS_MAX][MW_CONNECTION_MAX + 1];
};

/* Returns a worker or NULL (also when the store's one feed subscription is
 * taken, or n_game_servers is 0 or over MW_GAME_SERVERS_MAX). store and
 * channel are borrowed and must outlive it; rnd makes match ids; now_fn gives
 * unix ms (a fake clock in tests). The worker subscribes to the store's feed
 * at creation. */
struct mw_worker *mw_worker_new(const struct mw_worker_config *cfg, struct mw_ticket_store *store,
                                struct mw_channel *channel, mw_random_fn rnd, void *rnd_ud,
                                int64_t (*now_fn)(void *ud), void *now_ud);
/* Frees the worker. Teardown order: destroy the store first (its pending
 * callbacks, called with MW_ECLOSED, still find the worker), then the worker.
 * NULL-safe. */
void mw_worker_free(struct mw_worker *w);
void mw_worker_stats(const struct mw_worker *w, struct mw_worker_stats *out);
size_t mw_worker_waiting(const struct mw_worker *w);
/* Tickets in parked groups: formed into a match the store could not take
 * yet, waiting for mw_worker_retry(). */
size_t mw_worker_parked(const struct mw_worker *w);
/* Gives parked groups back to the matchmaker when the store is ready
 * (its ready op) and the backoff has passed at now_ms (unix ms, the clock
 * of now_fn); otherwise does nothing. The owner calls it from a timer (the
 * server: every sweep period), so parked groups are retried even when no
 * feed event or assign callback comes. Returns 0 when nothing is left
 * parked, MW_EAGAIN when groups still wait, MW_EINVAL for a NULL w. */
int mw_worker_retry(struct mw_worker *w, int64_t now_ms);

#endif /* MW_WORKER_H */
