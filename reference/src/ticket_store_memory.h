/* ticket_store_memory: the in-memory ticket store (the embedded default).
 *
 * Hash map by ticket id plus an index (player id, idempotency key) -> ticket;
 * callbacks and feed events are delivered through a defer queue, never
 * before the call returns. Bounded by config->max_tickets. */
#ifndef MW_TICKET_STORE_MEMORY_H
#define MW_TICKET_STORE_MEMORY_H

#include "defer.h"
#include "ticket_store.h"

/* Creates the backend in *out (caller storage). cfg is copied (NULL, or a
 * zero or negative field: that field's default); hooks copied (NULL: none;
 * on_resubscribed is never called: nothing is lost in one process); defer
 * is borrowed and must outlive the store; rnd/rnd_ud make ticket ids and the
 * key of the indexes' hash (the OS source in the server, a PRNG in tests).
 * Returns 0, MW_EINVAL (NULL out, defer or rnd), MW_ENOMEM, or MW_EIO (rnd
 * failed).
 * Free with mw_ticket_store_destroy(out).
 *
 * Details of this backend: a callback's ticket is NULL when its status is
 * neither 0 nor MW_ESTATE; cancel() of a cancelled or expired ticket gives
 * MW_ENOTFOUND (MSG-031); detach() returns MW_ENOTFOUND for an unknown
 * ticket and MW_ESTATE when the ticket has no watcher; on_ended is also
 * called for a ticket ended by cancel() (so other watchers get
 * ticket.cancelled, MSG-062), after the cancel callback; feed() first
 * delivers every ticket already queued. */
int mw_ticket_store_memory_new(struct mw_ticket_store *out,
                               const struct mw_ticket_store_config *cfg,
                               const struct mw_ticket_store_hooks *hooks, struct mw_defer *defer,
                               mw_random_fn rnd, void *rnd_ud);

#endif /* MW_TICKET_STORE_MEMORY_H */
