/* ticket_store_redis_batch: the end-of-turn batching of the Redis ticket
 * store. The creates and the assigns made in one loop turn wait in their
 * queue (struct tsr_batchq) and go to Redis as one script call per batch at
 * the end of the turn (an ev_prepare; an ev_idle keeps that turn's poll from
 * blocking when the call came from another prepare callback), so the work
 * of one stream read or one burst of requests costs Redis one EVALSHA, not
 * one each. Each item keeps its own result and its own callback, called in
 * the order of the calls. Internal to ticket_store_redis. */
#ifndef MW_TICKET_STORE_REDIS_BATCH_H
#define MW_TICKET_STORE_REDIS_BATCH_H

#include "ticket_store_redis_int.h"

/* Prepares s's queues (of the given kinds) and watchers at construction. */
void mw__tsr_batches_init(struct tsr *s, const struct tsr_batch_kind *creates,
                          const struct tsr_batch_kind *assigns);

/* Puts item (owned from here on, on success) into q's open batch, or a new
 * one, counts it in flight and arms the end-of-turn send. Returns 0 or
 * MW_ENOMEM (item then still the caller's). */
int mw__tsr_batch_add(struct tsr *s, struct tsr_batchq *q, void *item);

/* The reply callback of every batch's script call (hiredis'
 * redisCallbackFn, privdata the batch): answers each item by its kind, in
 * order, then frees the batch. */
void mw__tsr_batch_on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Sends every batch of both queues now (the end of the loop turn, or
 * destroy): creates first, then assigns. A batch that cannot go out fails
 * each of its items with the error (at destroy: MW_ECLOSED); their
 * callbacks run here, never inside the call that queued them. */
void mw__tsr_batches_flush(struct tsr *s);

#endif /* MW_TICKET_STORE_REDIS_BATCH_H */
