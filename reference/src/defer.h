/* defer: a FIFO of deferred calls, run by the event loop on its next turn.
 *
 * This is how the pure core gets asynchrony without owning a loop: a module
 * posts a call, the defer queue "kicks" its owner (the edge arms an ev_idle /
 * ev_prepare; a test just calls mw_defer_run()). Calls posted while running
 * run in the same mw_defer_run() only up to a fixed budget, then the queue
 * kicks again, so one producer cannot starve the loop. */
#ifndef MW_DEFER_H
#define MW_DEFER_H

#include <stddef.h>

struct mw_defer;

typedef void (*mw_defer_fn)(void *arg);
/* Called to ask the owner to call mw_defer_run() soon: once when the queue
 * goes from empty to non-empty, and once at the end of a run that leaves
 * calls queued; never again until the owner runs. Must not call
 * mw_defer_run() itself. */
typedef void (*mw_defer_kick_fn)(void *ud);

/* Returns a new queue or NULL. kick may be NULL (caller polls). */
struct mw_defer *mw_defer_new(mw_defer_kick_fn kick, void *kick_ud);
/* Frees the queue; pending calls are dropped without running. NULL-safe. */
void mw_defer_free(struct mw_defer *d);

/* Queues fn(arg). Returns 0 or MW_ENOMEM (fn will then never run). */
int mw_defer_post(struct mw_defer *d, mw_defer_fn fn, void *arg);

/* Runs queued calls in FIFO order, at most `budget` of them (0: no limit
 * beyond those queued when the run started). Returns how many ran. */
size_t mw_defer_run(struct mw_defer *d, size_t budget);
/* Number of queued calls. */
size_t mw_defer_pending(const struct mw_defer *d);

/* Removes every queued call equal to (fn, arg) without running it; returns
 * how many were removed. An owner calls this when it is destroyed before the
 * loop ran its posted calls, so the queue never runs a call whose arg has been
 * freed. O(pending). */
size_t mw_defer_cancel(struct mw_defer *d, mw_defer_fn fn, void *arg);

#endif /* MW_DEFER_H */
