/* defer: a FIFO of deferred calls, run by the event loop on its next turn.
 *
 * A ring buffer of (fn, arg) that grows by doubling (bounded by
 * MW_DEFER_MAX_PENDING: post beyond it fails MW_ENOMEM, as an allocation
 * would). The owner is kicked when the queue goes from empty to non-empty and
 * again at the end of a run that leaves calls queued, so a one-shot idle
 * watcher in the edge is enough. */
#include "defer.h"

#include "alloc.h"
#include "error.h"

#include <stdbool.h>
#include <stdint.h>

/* Hard bound on queued calls: 16 Mi entries (256 MiB of ring). */
#define MW_DEFER_MAX_PENDING ((size_t)1 << 24)
#define MW_DEFER_INITIAL_CAP 64

struct mw_defer_call {
    mw_defer_fn fn;
    void *arg;
};

struct mw_defer {
    struct mw_defer_call *ring;
    size_t cap; /* power of two, or 0 */
    size_t head;
    size_t len;
    mw_defer_kick_fn kick;
    void *kick_ud;
    bool kicked; /* the owner was asked to run and has not run yet */
};

struct mw_defer *mw_defer_new(mw_defer_kick_fn kick, void *kick_ud)
{
    struct mw_defer *d = mw_calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->kick = kick;
    d->kick_ud = kick_ud;
    return d;
}

void mw_defer_free(struct mw_defer *d)
{
    if (!d)
        return;
    mw_free(d->ring);
    mw_free(d);
}

static int grow(struct mw_defer *d)
{
    size_t ncap = d->cap ? d->cap * 2 : MW_DEFER_INITIAL_CAP;
    struct mw_defer_call *nr;

    if (ncap > MW_DEFER_MAX_PENDING)
        return MW_ENOMEM;
    nr = mw_malloc(ncap * sizeof(*nr));
    if (!nr)
        return MW_ENOMEM;
    /* Unwrap the ring into the new storage, oldest first. */
    for (size_t i = 0; i < d->len; i++)
        nr[i] = d->ring[(d->head + i) & (d->cap - 1)];
    mw_free(d->ring);
    d->ring = nr;
    d->cap = ncap;
    d->head = 0;
    return 0;
}

static void maybe_kick(struct mw_defer *d)
{
    if (d->len > 0 && !d->kicked && d->kick) {
        d->kicked = true;
        d->kick(d->kick_ud);
    }
}

int mw_defer_post(struct mw_defer *d, mw_defer_fn fn, void *arg)
{
    if (d->len == d->cap) {
        int rc = grow(d);
        if (rc)
            return rc;
    }
    d->ring[(d->head + d->len) & (d->cap - 1)] = (struct mw_defer_call){.fn = fn, .arg = arg};
    d->len++;
    maybe_kick(d);
    return 0;
}

size_t mw_defer_run(struct mw_defer *d, size_t budget)
{
    size_t ran = 0;
    size_t limit = budget ? budget : d->len;

    d->kicked = false;
    while (ran < limit && d->len > 0) {
        struct mw_defer_call c = d->ring[d->head];

        d->head = (d->head + 1) & (d->cap - 1);
        d->len--;
        ran++;
        /* The call may post more calls (they go behind the queue). */
        c.fn(c.arg);
    }
    maybe_kick(d);
    return ran;
}

size_t mw_defer_pending(const struct mw_defer *d)
{
    return d->len;
}

size_t mw_defer_cancel(struct mw_defer *d, mw_defer_fn fn, void *arg)
{
    size_t kept = 0, removed = 0;

    /* Compact in place, keeping FIFO order of the survivors. */
    for (size_t i = 0; i < d->len; i++) {
        struct mw_defer_call c = d->ring[(d->head + i) & (d->cap - 1)];

        if (c.fn == fn && c.arg == arg) {
            removed++;
            continue;
        }
        d->ring[(d->head + kept) & (d->cap - 1)] = c;
        kept++;
    }
    d->len = kept;
    return removed;
}
