/* ticket_store_redis: the Redis ticket store backend (spec/channel.md, "Redis
 * data layout"). Ticket hashes with TTLs, an idempotency index, atomic
 * compare-and-set assignment (Lua), and the ticket hand-off to workers on a
 * Redis Stream with a consumer group (XADD / XREADGROUP / XACK). */
#ifndef MW_TICKET_STORE_REDIS_H
#define MW_TICKET_STORE_REDIS_H

#include <stdbool.h>

#include "redis_conn.h"
#include "ticket_store.h"

struct ev_loop;

/* Creates the backend in *out (the struct must not move afterwards). cfg and
 * o copied; loop borrowed. consumer_name names this instance in the stream's
 * consumer group (only used when a feed subscriber exists, i.e. in the
 * worker role). Returns 0 or MW_ENOMEM; operations while Redis is down fail
 * with MW_EUNAVAIL (synchronously, no callback). */
int mw_ticket_store_redis_new(struct mw_ticket_store *out, const struct mw_ticket_store_config *cfg,
                              struct ev_loop *loop, const struct mw_redis_opts *o,
                              const char *consumer_name, mw_random_fn rnd, void *rnd_ud);

#endif /* MW_TICKET_STORE_REDIS_H */
