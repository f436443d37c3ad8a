/* ticket_store_memory: the in-memory ticket store (the embedded default).
 *
 * Hash map by ticket id plus an index (player id, idempotency key) -> ticket;
 * callbacks and feed events are delivered through a defer queue, never
 * before the call returns. Bounded by config->max_tickets. */
#ifndef MW_TICKET_STORE_MEMORY_H
#define MW_TICKET_STORE_MEMORY_H

#include "defer.h"
#include "ticket_store.h"

/* Creates the backend in *out (caller storage). cfg is copied; defer is
 * borrowed and must outlive the store; rnd/rnd_ud make ticket ids (the OS
 * source in the server, a PRNG in tests). Returns 0 or MW_ENOMEM. Free with
 * mw_ticket_store_destroy(out). */
int mw_ticket_store_memory_new(struct mw_ticket_store *out, const struct mw_ticket_store_config *cfg,
                               struct mw_defer *defer, mw_random_fn rnd, void *rnd_ud);

#endif /* MW_TICKET_STORE_MEMORY_H */
