/* ticket_store_redis_feed: the worker feed of the Redis ticket store
 * (lease, claim, rebuild, read; spec/channel.md CHN-080..083). Internal to
 * ticket_store_redis (see ticket_store_redis.h for what the feed promises). */
#ifndef MW_TICKET_STORE_REDIS_FEED_H
#define MW_TICKET_STORE_REDIS_FEED_H

#include "ticket_store_redis_int.h"

/* Prepares s's feed state at construction (no subscriber yet). */
void mw__tsr_feed_init(struct tsr *s);
/* The store's feed operation (ticket_store.h): opens the feed connection;
 * returns 0, MW_EINVAL, MW_ECLOSED, MW_EEXIST (a subscriber already) or
 * MW_ENOMEM. */
int mw__tsr_feed(void *impl, mw_feed_cb cb, void *ud);
/* Stops the feed's timers (destroy; the connection is freed by the core). */
void mw__tsr_feed_stop(struct tsr *s);

#endif /* MW_TICKET_STORE_REDIS_FEED_H */
