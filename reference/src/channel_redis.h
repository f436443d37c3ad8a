/* channel_redis: the Redis pub/sub channel backend (spec/channel.md).
 *
 * PUBLISH/SUBSCRIBE on "<prefix>matchmaking:assigned". Received payloads go
 * through mw_channel_payload_decode(); drops are counted by reason in
 * metrics and logged at a bounded rate. On every (re)subscribe the optional
 * on_resubscribed hook fires so the gateway can re-read the store for its
 * watched tickets (assignments published while the subscription was down). */
#ifndef MW_CHANNEL_REDIS_H
#define MW_CHANNEL_REDIS_H

#include "channel.h"
#include "metrics.h"
#include "redis_conn.h"

struct ev_loop;

/* Creates the backend in *out. loop and metrics (may be NULL) borrowed.
 * Returns 0 or MW_ENOMEM; never blocks (connects in the background). Free
 * with mw_channel_destroy(out). */
int mw_channel_redis_new(struct mw_channel *out, struct ev_loop *loop,
                         const struct mw_redis_opts *o, struct mw_metrics *metrics,
                         void (*on_resubscribed)(void *ud), void *ud);

/* Whether the subscription is live (for /healthz). */
bool mw_channel_redis_ready(const struct mw_channel *c);

#endif /* MW_CHANNEL_REDIS_H */
