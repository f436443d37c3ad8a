/* ratelimit: a token bucket (see ratelimit.h). */
#include "ratelimit.h"

void mw_ratelimit_init(struct mw_ratelimit *rl, double per_sec, double burst)
{
    rl->tokens = burst;
    rl->burst = burst;
    rl->per_sec = per_sec;
    rl->last_ms = 0;
    rl->suppressed = 0;
}

bool mw_ratelimit_allow(struct mw_ratelimit *rl, int64_t now_ms)
{
    if (now_ms > rl->last_ms) {
        rl->tokens += (double)(now_ms - rl->last_ms) * rl->per_sec / 1000.0;
        if (rl->tokens > rl->burst)
            rl->tokens = rl->burst;
        rl->last_ms = now_ms;
    }
    if (rl->tokens >= 1.0) {
        rl->tokens -= 1.0;
        return true;
    }
    rl->suppressed++;
    return false;
}
