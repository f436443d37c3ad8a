/* ratelimit: one token bucket, used for rate-limited logs (STYLE: logs on
 * the hot path are rate-limited) and for a connection's message rate
 * (spec/messages.md MSG-095). Pure: the time is an argument. */
#ifndef MW_RATELIMIT_H
#define MW_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* A token bucket: at most `burst` events, refilled at `per_sec` events
 * per second (hot-path logs, a connection's message rate MSG-095). Not thread-safe (one per loop).
 */
struct mw_ratelimit {
    double tokens;
    double burst;
    double per_sec;
    int64_t last_ms;
    uint64_t suppressed; /* read-only: events refused so far */
};

void mw_ratelimit_init(struct mw_ratelimit *rl, double per_sec, double burst);
/* Returns true when an event may pass at time now_ms (and takes a token). */
bool mw_ratelimit_allow(struct mw_ratelimit *rl, int64_t now_ms);

#endif /* MW_RATELIMIT_H */
