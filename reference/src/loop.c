/* loop: libev glue (defer kicker, signals, clocks) for the reference server. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "loop.h"

#include <ev.h>
#include <signal.h>
#include <time.h>

#include "alloc.h"
#include "log.h"

struct mw_loop {
    struct ev_loop *ev;
    struct mw_defer *defer;
    /* The defer queue runs from ev_prepare (every turn, before the loop
     * blocks) so a busy socket cannot starve it; while calls remain queued
     * an empty ev_idle keeps the next poll from blocking. */
    ev_prepare prepare;
    ev_idle idle;
    ev_signal sigint;
    ev_signal sigterm;
    mw_loop_signal_cb signal_cb;
    void *signal_ud;
};

static void loop_run_defer(struct mw_loop *l)
{
    mw_defer_run(l->defer, MW_LOOP_DEFER_BUDGET);
    if (mw_defer_pending(l->defer) > 0) {
        if (!ev_is_active(&l->idle))
            ev_idle_start(l->ev, &l->idle);
    } else if (ev_is_active(&l->idle)) {
        ev_idle_stop(l->ev, &l->idle);
    }
}

static void loop_prepare_cb(struct ev_loop *ev, ev_prepare *w, int revents)
{
    (void)ev;
    (void)revents;
    loop_run_defer(w->data);
}

static void loop_idle_cb(struct ev_loop *ev, ev_idle *w, int revents)
{
    (void)ev;
    (void)revents;
    loop_run_defer(w->data);
}

/* The defer queue's kick: make sure the loop turns without blocking. */
static void loop_kick(void *ud)
{
    struct mw_loop *l = ud;

    if (!ev_is_active(&l->idle))
        ev_idle_start(l->ev, &l->idle);
}

static void loop_signal_cb(struct ev_loop *ev, ev_signal *w, int revents)
{
    struct mw_loop *l = w->data;

    (void)ev;
    (void)revents;
    if (l->signal_cb)
        l->signal_cb(l->signal_ud, w->signum);
}

struct mw_loop *mw_loop_new(void)
{
    struct mw_loop *l = mw_calloc(1, sizeof(*l));

    if (!l)
        return NULL;
    /* The default loop: libev delivers signals to it without extra set-up. */
    l->ev = ev_default_loop(EVFLAG_AUTO);
    if (!l->ev) {
        mw_log(MW_LOG_ERR, "loop: cannot create the libev loop");
        goto out_free;
    }
    l->defer = mw_defer_new(loop_kick, l);
    if (!l->defer)
        goto out_loop;
    ev_prepare_init(&l->prepare, loop_prepare_cb);
    l->prepare.data = l;
    ev_prepare_start(l->ev, &l->prepare);
    /* The prepare watcher alone must not keep ev_run() alive. */
    ev_unref(l->ev);
    ev_idle_init(&l->idle, loop_idle_cb);
    l->idle.data = l;
    ev_signal_init(&l->sigint, loop_signal_cb, SIGINT);
    l->sigint.data = l;
    ev_signal_init(&l->sigterm, loop_signal_cb, SIGTERM);
    l->sigterm.data = l;
    return l;

out_loop:
    ev_loop_destroy(l->ev);
out_free:
    mw_free(l);
    return NULL;
}

void mw_loop_free(struct mw_loop *l)
{
    if (!l)
        return;
    mw_loop_unwatch_signals(l);
    if (ev_is_active(&l->idle))
        ev_idle_stop(l->ev, &l->idle);
    ev_ref(l->ev);
    ev_prepare_stop(l->ev, &l->prepare);
    mw_defer_free(l->defer);
    ev_loop_destroy(l->ev);
    mw_free(l);
}

struct ev_loop *mw_loop_ev(struct mw_loop *l)
{
    return l->ev;
}

struct mw_defer *mw_loop_defer(struct mw_loop *l)
{
    return l->defer;
}

int mw_loop_watch_signals(struct mw_loop *l, mw_loop_signal_cb cb, void *ud)
{
    l->signal_cb = cb;
    l->signal_ud = ud;
    if (!ev_is_active(&l->sigint)) {
        ev_signal_start(l->ev, &l->sigint);
        ev_unref(l->ev); /* signal watchers do not keep the loop alive */
    }
    if (!ev_is_active(&l->sigterm)) {
        ev_signal_start(l->ev, &l->sigterm);
        ev_unref(l->ev);
    }
    return 0;
}

void mw_loop_unwatch_signals(struct mw_loop *l)
{
    if (ev_is_active(&l->sigint)) {
        ev_ref(l->ev);
        ev_signal_stop(l->ev, &l->sigint);
    }
    if (ev_is_active(&l->sigterm)) {
        ev_ref(l->ev);
        ev_signal_stop(l->ev, &l->sigterm);
    }
}

void mw_loop_run(struct mw_loop *l)
{
    ev_run(l->ev, 0);
}

void mw_loop_stop(struct mw_loop *l)
{
    ev_break(l->ev, EVBREAK_ALL);
}

int64_t mw_loop_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mw_loop_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mw_loop_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mw_loop_now_fn(void *ud)
{
    (void)ud;
    return mw_loop_now_ms();
}
