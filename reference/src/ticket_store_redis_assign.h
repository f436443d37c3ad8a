/* ticket_store_redis_assign: the assign batching of the Redis ticket store
 * (spec/channel.md CHN-060..062). Internal to ticket_store_redis. */
#ifndef MW_TICKET_STORE_REDIS_ASSIGN_H
#define MW_TICKET_STORE_REDIS_ASSIGN_H

#include "ticket_store_redis_int.h"

/* The store's assign operation (ticket_store.h): copies m into the open
 * batch, sent at the end of the loop turn. Returns 0, MW_EINVAL, MW_ECLOSED,
 * MW_EUNAVAIL, MW_ELIMIT or MW_ENOMEM. */
int mw__tsr_assign(void *impl, const struct mw_match *m, mw_assign_cb cb, void *ud);
/* The assigns' batches: one assign script call each, every match its own
 * compare-and-set with its own result (ticket_store_redis_batch.h). */
extern const struct tsr_batch_kind mw__tsr_assign_kind;

#endif /* MW_TICKET_STORE_REDIS_ASSIGN_H */
