/* ticket_store_redis_create: the create batching of the Redis ticket store
 * (spec/channel.md CHN-050, CHN-051). Internal to ticket_store_redis. */
#ifndef MW_TICKET_STORE_REDIS_CREATE_H
#define MW_TICKET_STORE_REDIS_CREATE_H

#include "ticket_store_redis_int.h"

/* The store's create operation (ticket_store.h): a new ticket id, the
 * request copied into the open batch, sent at the end of the loop turn
 * (id_out, when not NULL, gets the new id: the script has not run yet, so
 * a route registered now exists before the ticket does).
 * Returns 0, MW_EINVAL, MW_ECLOSED, MW_EUNAVAIL, MW_ELIMIT or MW_ENOMEM (or
 * the random source's error). */
int mw__tsr_create(void *impl, const struct mw_enqueue_req *req, int64_t now_ms, char *id_out,
                   mw_ticket_cb cb, void *ud);
/* The creates' batches: one create script call each, CREATED answered
 * with the ticket kept in the batch (ticket_store_redis_batch.h). */
extern const struct tsr_batch_kind mw__tsr_create_kind;

#endif /* MW_TICKET_STORE_REDIS_CREATE_H */
