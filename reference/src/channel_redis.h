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

/* Creates the backend in *out. loop and metrics (may be NULL) borrowed; o
 * copied. Returns 0, MW_EINVAL (prefix too long) or MW_ENOMEM; never blocks
 * (connects in the background). The PUBLISH connection is made now; the
 * SUBSCRIBE connection on the first subscribe(), so a worker-only process
 * holds no subscription. on_resubscribed (may be NULL) is called after every
 * SUBSCRIBE confirmation, the first one included, from the loop.
 * Backend details: publish() returns MW_EUNAVAIL while the PUBLISH connection
 * is down, MW_ELIMIT with 65,536 publishes awaiting Redis' reply; subscribe()
 * accepts 64 subscribers. Received payloads are decoded once and handed to
 * every subscriber in subscription order. Must not be destroyed from inside
 * one of its callbacks. Free with mw_channel_destroy(out). */
int mw_channel_redis_new(struct mw_channel *out, struct ev_loop *loop,
                         const struct mw_redis_opts *o, struct mw_metrics *metrics,
                         void (*on_resubscribed)(void *ud), void *ud);

/* Whether the channel can serve (for /healthz): the PUBLISH connection is
 * ready and, once there is a subscriber, the subscription is live. */
bool mw_channel_redis_ready(const struct mw_channel *c);
/* Why it is not ready ("" when ready), for /healthz's reason. Static or
 * borrowed text, valid until the next loop iteration. */
const char *mw_channel_redis_error(const struct mw_channel *c);

#endif /* MW_CHANNEL_REDIS_H */
