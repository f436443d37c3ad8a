/* fake_random: a deterministic random source for tests (xorshift64*), and
 * a fake clock. Header-only; every function static. */
#ifndef MW_FAKE_RANDOM_H
#define MW_FAKE_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct fake_rng {
    uint64_t s; /* state; any non-zero seed */
    int fail;   /* when non-zero, fill() returns this instead */
    unsigned calls;
};

static inline int fake_rng_fill(void *ud, void *buf, size_t n)
{
    struct fake_rng *r = ud;
    unsigned char *p = buf;

    r->calls++;
    if (r->fail)
        return r->fail;
    for (size_t i = 0; i < n; i++) {
        r->s ^= r->s >> 12;
        r->s ^= r->s << 25;
        r->s ^= r->s >> 27;
        p[i] = (unsigned char)((r->s * 0x2545F4914F6CDD1DULL) >> 56);
    }
    return 0;
}

struct fake_clock {
    int64_t now_ms;
};

static inline int64_t fake_clock_now(void *ud)
{
    return ((struct fake_clock *)ud)->now_ms;
}

#endif /* MW_FAKE_RANDOM_H */
