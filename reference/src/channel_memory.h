/* channel_memory: the in-memory channel backend (the embedded default).
 *
 * Delivers every published message to every subscriber (the seed's kept only
 * the last handler), asynchronously through a defer queue (publish never
 * re-enters its caller), in publish order. Bounded: at most max_pending
 * undelivered messages; publish beyond that fails with MW_ELIMIT. */
#ifndef MW_CHANNEL_MEMORY_H
#define MW_CHANNEL_MEMORY_H

#include <stddef.h>

#include "channel.h"
#include "defer.h"

/* Creates the backend in *out (caller storage). hooks copied (NULL: none);
 * defer is borrowed and must outlive the channel. max_pending 0 means
 * 65,536. Returns 0, MW_EINVAL (NULL out or defer) or MW_ENOMEM. Free with
 * mw_channel_destroy(out).
 * At most 64 subscribers (subscribe beyond: MW_ELIMIT); a subscriber added
 * while messages are pending receives those not yet handed out. The
 * subscription never drops: on_resubscribed is called once, from the defer
 * queue, after the first subscribe(); ready() is always 0 until destroy. */
int mw_channel_memory_new(struct mw_channel *out, const struct mw_channel_hooks *hooks,
                          struct mw_defer *defer, size_t max_pending);

#endif /* MW_CHANNEL_MEMORY_H */
