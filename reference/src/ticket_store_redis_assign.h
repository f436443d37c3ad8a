/* ticket_store_redis_assign: the assign batching of the Redis ticket store
 * (spec/channel.md CHN-060..062). Internal to ticket_store_redis. */
#ifndef MW_TICKET_STORE_REDIS_ASSIGN_H
#define MW_TICKET_STORE_REDIS_ASSIGN_H

#include "ticket_store_redis_int.h"

/* Prepares s's batching watchers at construction. */
void mw__tsr_assign_init(struct tsr *s);
/* The store's assign operation (ticket_store.h): copies m into the open
 * batch, sent at the end of the loop turn. Returns 0, MW_EINVAL, MW_ECLOSED,
 * MW_EUNAVAIL, MW_ELIMIT or MW_ENOMEM. */
int mw__tsr_assign(void *impl, const struct mw_match *m, mw_assign_cb cb, void *ud);
/* Sends every batch now; one that cannot go out fails each of its assigns
 * with the error (at destroy: MW_ECLOSED). */
void mw__tsr_assign_flush(struct tsr *s);

#endif /* MW_TICKET_STORE_REDIS_ASSIGN_H */
