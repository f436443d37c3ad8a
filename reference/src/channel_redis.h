/* channel_redis: the Redis pub/sub channel backend (spec/channel.md).
 *
 * PUBLISH/SUBSCRIBE on "<prefix>matchmaking:assigned". Received payloads go
 * through mw_channel_payload_decode(); drops are counted by reason in
 * metrics and logged at a bounded rate. On every (re)subscribe the
 * on_resubscribed hook (mw_channel_hooks) fires so the gateway can re-read the
 * store for its watched tickets (assignments published while the
 * subscription was down). */
#ifndef MW_CHANNEL_REDIS_H
#define MW_CHANNEL_REDIS_H

#include "channel.h"
#include "metrics.h"
#include "redis_conn.h"

struct ev_loop;

/* Creates the backend in *out. hooks and o copied (hooks NULL: none); loop
 * and metrics (may be NULL) borrowed. Returns 0, MW_EINVAL (prefix too long)
 * or MW_ENOMEM; never blocks (connects in the background). The PUBLISH
 * connection is made now; the SUBSCRIBE connection on the first
 * subscribe(), so a worker-only process holds no subscription. Hooks'
 * on_resubscribed is called after every SUBSCRIBE confirmation, the first
 * one included, from the loop.
 * Backend details: publish() returns MW_EUNAVAIL while the PUBLISH connection
 * is down, MW_ELIMIT with 65,536 publishes awaiting Redis' reply; subscribe()
 * accepts 64 subscribers; ready() is MW_EUNAVAIL while a connection it needs
 * is down or the subscription is not confirmed. Received payloads are
 * decoded once and handed to every subscriber in subscription order. Must
 * not be destroyed from inside one of its callbacks. Free with
 * mw_channel_destroy(out). */
int mw_channel_redis_new(struct mw_channel *out, const struct mw_channel_hooks *hooks,
                         struct ev_loop *loop, const struct mw_redis_opts *o,
                         struct mw_metrics *metrics);

#endif /* MW_CHANNEL_REDIS_H */
