/* channel_memory: the in-memory channel backend (the embedded default).
 *
 * publish() copies the message (ticket id and envelope bytes, in one
 * allocation) onto a bounded FIFO and makes sure one "pump" call is on the
 * defer queue; the pump hands each message queued when it started to every
 * subscriber, in publish order. So publish never re-enters its caller, and
 * destroy can withdraw the pump (mw_defer_cancel) and free what was never
 * delivered. */
#include "channel_memory.h"

#include "alloc.h"
#include "error.h"
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define CHM_DEFAULT_MAX_PENDING 65536
#define CHM_MAX_SUBSCRIBERS     64 /* subscribe beyond: MW_ELIMIT */

struct chm_msg {
    struct chm_msg *next;
    uint64_t version;
    int64_t assigned_ms;
    size_t envelope_len;
    char *ticket_id; /* both point into this allocation */
    char *envelope;
};

struct chm_sub {
    mw_channel_cb cb;
    void *ud;
};

struct chm {
    struct mw_defer *defer;
    size_t max_pending;
    struct chm_sub subs[CHM_MAX_SUBSCRIBERS];
    size_t n_subs;
    struct chm_msg *head, *tail;
    size_t n_pending;
    bool pump_posted;
    bool in_pump;
    bool closing;
    struct mw_channel_hooks hooks;
    bool live_posted; /* chm_live is on the defer queue */
    bool live;        /* on_resubscribed was called (once: nothing is ever lost) */
};

static void chm_free_all(struct chm *c)
{
    struct chm_msg *m = c->head;

    while (m) {
        struct chm_msg *next = m->next;
        mw_free(m);
        m = next;
    }
    mw_free(c);
}

static void chm_pump(void *arg)
{
    struct chm *c = arg;
    size_t n = c->n_pending;

    c->pump_posted = false;
    c->in_pump = true;
    for (size_t i = 0; i < n && !c->closing; i++) {
        struct chm_msg *m = c->head;
        struct mw_assigned a;
        size_t n_subs = c->n_subs; /* subscribers added meanwhile get the next one */

        c->head = m->next;
        if (!c->head)
            c->tail = NULL;
        c->n_pending--;
        a = (struct mw_assigned){.ticket_id = m->ticket_id,
                                 .envelope = m->envelope,
                                 .envelope_len = m->envelope_len,
                                 .version = m->version,
                                 .assigned_ms = m->assigned_ms};
        for (size_t j = 0; j < n_subs && !c->closing; j++)
            c->subs[j].cb(c->subs[j].ud, &a);
        mw_free(m);
    }
    c->in_pump = false;
    if (c->closing) { /* destroyed by a subscriber */
        chm_free_all(c);
        return;
    }
    if (c->head && !c->pump_posted) {
        if (mw_defer_post(c->defer, chm_pump, c) == 0)
            c->pump_posted = true;
        else
            mw_log(MW_LOG_ERR,
                   "channel_memory: cannot re-post; %zu messages wait for the next "
                   "publish",
                   c->n_pending);
    }
}

static int chm_publish(void *impl, const struct mw_assigned *msg)
{
    struct chm *c = impl;
    struct chm_msg *m;
    size_t id_len;
    int rc;

    if (c->closing)
        return MW_ECLOSED;
    if (!msg || !msg->ticket_id || (!msg->envelope && msg->envelope_len))
        return MW_EINVAL;
    if (c->n_pending >= c->max_pending)
        return MW_ELIMIT;
    id_len = strlen(msg->ticket_id);
    if (id_len > MW_CHANNEL_PAYLOAD_MAX || msg->envelope_len > MW_CHANNEL_PAYLOAD_MAX)
        return MW_ELIMIT;
    m = mw_malloc(sizeof(*m) + id_len + 1 + msg->envelope_len + 1);
    if (!m)
        return MW_ENOMEM;
    if (!c->pump_posted) {
        rc = mw_defer_post(c->defer, chm_pump, c);
        if (rc) {
            mw_free(m);
            return rc;
        }
        c->pump_posted = true;
    }
    m->next = NULL;
    m->version = msg->version;
    m->assigned_ms = msg->assigned_ms;
    m->envelope_len = msg->envelope_len;
    m->ticket_id = (char *)(m + 1);
    memcpy(m->ticket_id, msg->ticket_id, id_len + 1);
    m->envelope = m->ticket_id + id_len + 1;
    if (msg->envelope_len)
        memcpy(m->envelope, msg->envelope, msg->envelope_len);
    m->envelope[msg->envelope_len] = '\0';
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    c->n_pending++;
    return 0;
}

/* The subscription is live from the first subscribe(): the owner hears it
 * once, from the loop (mw_channel_hooks), as from every backend. */
static void chm_live(void *arg)
{
    struct chm *c = arg;

    c->live_posted = false;
    c->live = true;
    c->in_pump = true;
    if (c->hooks.on_resubscribed)
        c->hooks.on_resubscribed(c->hooks.ud);
    c->in_pump = false;
    if (c->closing) /* destroyed by the hook */
        chm_free_all(c);
}

static int chm_subscribe(void *impl, mw_channel_cb cb, void *userdata)
{
    struct chm *c = impl;

    if (c->closing)
        return MW_ECLOSED;
    if (!cb)
        return MW_EINVAL;
    if (c->n_subs == CHM_MAX_SUBSCRIBERS)
        return MW_ELIMIT;
    if (!c->live && !c->live_posted && c->hooks.on_resubscribed) {
        int rc = mw_defer_post(c->defer, chm_live, c);

        if (rc)
            return rc;
        c->live_posted = true;
    }
    c->subs[c->n_subs++] = (struct chm_sub){.cb = cb, .ud = userdata};
    return 0;
}

static int chm_ready(void *impl, char *reason, size_t reason_len)
{
    struct chm *c = impl;

    if (c->closing) {
        if (reason && reason_len)
            snprintf(reason, reason_len, "channel closing");
        return MW_ECLOSED;
    }
    if (reason && reason_len)
        reason[0] = '\0';
    return 0;
}

static void chm_destroy(void *impl)
{
    struct chm *c = impl;

    if (!c || c->closing)
        return;
    c->closing = true;
    if (c->pump_posted)
        mw_defer_cancel(c->defer, chm_pump, c);
    c->pump_posted = false;
    if (c->live_posted)
        mw_defer_cancel(c->defer, chm_live, c);
    c->live_posted = false;
    if (c->in_pump)
        return; /* the running pump (or hook) frees it */
    chm_free_all(c);
}

static const struct mw_channel_ops chm_ops = {
    .publish = chm_publish,
    .subscribe = chm_subscribe,
    .ready = chm_ready,
    .destroy = chm_destroy,
};

int mw_channel_memory_new(struct mw_channel *out, const struct mw_channel_hooks *hooks,
                          struct mw_defer *defer, size_t max_pending)
{
    struct chm *c;

    if (!out || !defer)
        return MW_EINVAL;
    c = mw_calloc(1, sizeof(*c));
    if (!c)
        return MW_ENOMEM;
    if (hooks)
        c->hooks = *hooks;
    c->defer = defer;
    c->max_pending = max_pending ? max_pending : CHM_DEFAULT_MAX_PENDING;
    out->ops = &chm_ops;
    out->impl = c;
    return 0;
}
