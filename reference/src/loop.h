/* loop: the server's one libev loop and its glue to the pure core.
 *
 * Owns the ev_loop every edge module runs on (libwebsockets through
 * info.foreign_loops, hiredis through its libev adapter), runs the defer
 * queue with a budget on every loop turn, watches SIGINT/SIGTERM, and gives
 * the clocks.
 *
 * Clocks: mw_loop_now_ms() is WALL time (CLOCK_REALTIME, unix ms): it is what
 * the core stamps into tickets (createdAt, expiresAt, assignedAt) and compares
 * them with, so both must be the same clock. Timeouts of the edge itself
 * (sweep period, shutdown deadline) are ev_timer watchers, which libev runs
 * on the monotonic clock, so a wall-clock step never fires or stalls them. */
#ifndef MW_LOOP_H
#define MW_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "defer.h"

struct ev_loop;
struct mw_loop;

/* How many deferred calls run per loop turn before I/O gets a chance again. */
#define MW_LOOP_DEFER_BUDGET 1024

/* Called on SIGINT or SIGTERM (from the loop, never from a signal handler). */
typedef void (*mw_loop_signal_cb)(void *ud, int signum);

/* Creates the loop (libev's default loop: one per process, the one libev
 * lets own signal watchers) and a defer queue kicked by it. Returns NULL on
 * failure. Free with mw_loop_free(). */
struct mw_loop *mw_loop_new(void);
/* Stops every watcher of this module, frees the defer queue (pending calls
 * dropped) and destroys the ev loop. Call after everything else using the
 * loop is gone. NULL-safe. */
void mw_loop_free(struct mw_loop *l);

/* Borrowed; valid until mw_loop_free(). */
struct ev_loop *mw_loop_ev(struct mw_loop *l);
struct mw_defer *mw_loop_defer(struct mw_loop *l);

/* Starts SIGINT and SIGTERM watchers calling cb(ud, signum). Returns 0. */
int mw_loop_watch_signals(struct mw_loop *l, mw_loop_signal_cb cb, void *ud);
/* Stops the signal watchers (a second signal then kills the process the
 * default way). */
void mw_loop_unwatch_signals(struct mw_loop *l);

/* Runs the loop until mw_loop_stop() or until nothing is left to watch. */
void mw_loop_run(struct mw_loop *l);
/* Makes mw_loop_run() return after the current turn. */
void mw_loop_stop(struct mw_loop *l);

/* Wall clock, unix milliseconds (CLOCK_REALTIME). */
int64_t mw_loop_now_ms(void);
/* Wall clock, unix microseconds (for assignment -> write latency). */
int64_t mw_loop_now_us(void);
/* Monotonic clock in milliseconds (CLOCK_MONOTONIC), for measuring spans. */
int64_t mw_loop_mono_ms(void);
/* mw_loop_now_ms() in the int64_t (*)(void *) shape the worker takes. */
int64_t mw_loop_now_fn(void *ud);

#endif /* MW_LOOP_H */
