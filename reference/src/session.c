/* session: one WebSocket connection's protocol state machine.
 *
 * Requests are handled one at a time, in arrival order (MSG-013): while a
 * request waits on the store, later messages wait in a bounded FIFO (their
 * rate verdict is taken on arrival). So every reply goes out in request
 * order without a reply-reordering buffer.
 *
 * Tickets: up to limits.max_tickets live entries (created or watched here,
 * not final), each with the highest version sent (dedupe, MSG-072) and
 * whether this session holds a store watcher (attach/create) and a hub
 * route. Every match.assigned this connection was sent is remembered in the
 * `delivered` table until the store has forgotten its ticket (MSG-076: then
 * a watch or a replayed enqueue finds nothing to deliver again), so a
 * re-watch or a replayed enqueue never delivers it twice (MSG-072, MSG-043,
 * MSG-028), however many tickets came and went in between. The table is
 * bounded (SESSION_DELIVERED_MAX): a new ticket is admitted only when every
 * live entry could still be recorded; otherwise too_many_tickets. Ended
 * tickets need no memory: their push goes only to live entries, and a
 * watch of an ended ticket pushes nothing (MSG-042).
 *
 * The race the seed lost (an assignment published before the socket's
 * subscription existed) cannot happen here:
 *  - enqueue: the store tells the new ticket's id when the create call
 *    returns, before it has run the create (ticket_store.h), and the hub
 *    route for that id is registered at once: no assignment of the ticket
 *    can be published before the route exists, whichever process forms
 *    matches. Pushes that arrive before the create's result are held, as
 *    for a watch, and released after the `enqueued` reply. When the result
 *    is another ticket (an idempotent replay) or the route could not be
 *    registered early, the route is registered in the create callback and
 *    the ticket read again after it (a push made between the store's read
 *    and the route is in that read); a replay whose result already shows
 *    the ticket assigned pushes its stored envelope right after the reply.
 *  - watch: the hub route is registered BEFORE the store is read (attach).
 *    An assignment committed before the read is in the attach result (we
 *    push its stored envelope after `watching`); one committed after is
 *    published after the route exists, so the hub hands it to us. Pushes
 *    that arrive while the watch is in flight are held and released after
 *    the `watching` reply. Dedupe by version makes "both" deliver once. */
#include "session.h"

#include "alloc.h"
#include "error.h"
#include "invariant.h"
#include "log.h"
#include "ratelimit.h"
#include "map.h"
#include "messages.h"

#include <stdbool.h>
#include <string.h>

#define SESSION_QUEUE_MAX_MSGS  128
#define SESSION_QUEUE_MAX_BYTES (256 * 1024)
#define SESSION_DELIVERED_MAX   256 /* match.assigned remembered per connection */
/* A remembered delivery is kept for limits.retention_ms plus this much: the
 * store forgets a final ticket retention_ms after it became final, on its
 * next sweep (and another instance's clock may differ a little). */
#define SESSION_RETENTION_MARGIN_MS (60 * 1000)

/* A push that arrived while this session's watch of the ticket was in
 * flight: released after the `watching` reply. Compact (the ticket id is
 * the entry's): every live entry carries one. */
struct held {
    bool present;
    bool ended;                 /* ticket.expired / ticket.cancelled instead of match.assigned */
    enum mw_ticket_state state; /* when ended */
    uint64_t version;
    int64_t assigned_ms;
    bool recovery;  /* the push was a re-read (struct mw_assigned) */
    char *envelope; /* match.assigned text (owned) */
    size_t envelope_len;
};

struct entry {
    bool used;
    char id[MW_TICKET_ID_LEN + 1];
    uint64_t sent_version; /* highest version sent on this connection (0: none) */
    bool attached;         /* this session holds one store watcher on it */
    bool in_hub;
    bool watch_pending; /* a watch of it is waiting for the store */
    bool creating;      /* registered by an enqueue whose create is in flight */
    bool has_idem;      /* created here by an enqueue with an idempotency key */
    uint64_t idem_hash; /* mw_hash_pair(playerId, idempotencyKey) of that enqueue */
    struct held held;
};

/* A match.assigned sent on this connection. */
struct delivered {
    char id[MW_TICKET_ID_LEN + 1];
    uint64_t version;
    int64_t at_ms; /* not before the ticket became final */
};

struct qmsg {
    struct qmsg *next;
    size_t len;
    bool rate_limited;
    int64_t now_ms;
    char data[]; /* len bytes + NUL */
};

struct mw_session {
    struct mw_watcher watcher; /* what the hub routes to (hub.h) */
    const struct mw_session_env *env;
    const struct mw_session_io *io;
    void *io_ud;
    unsigned refs;     /* 1 for the edge until on_close, +1 per store call in flight */
    bool closed;       /* on_close ran: never call io again */
    bool close_asked;  /* we asked io->close: ignore further input */
    bool send_blocked; /* io->send said MW_ELIMIT: the edge is closing 4001 */
    bool busy;         /* a request waits on the store */
    unsigned errors_in_row;
    /* Authenticated mode (mw_session_set_player): the one player this
     * connection acts for (auth.md AUTH-060); owned, NULL without auth (so
     * an unauthenticated connection does not carry 129 bytes it never uses:
     * about 5 % of an idle connection's memory). */
    char *player;
    unsigned max_errors; /* limits.max_consecutive_errors, 0 meaning 10 */
    struct mw_ratelimit rate;

    /* The request in flight. */
    enum mw_msg_type cur_type;
    bool cur_has_id;
    char cur_id[MW_ID_MAX + 1];
    int64_t cur_now;
    bool cur_was_attached;                 /* watch: this session already held a watcher */
    bool cur_new_entry;                    /* watch: the entry was created for this request */
    char cur_ticket[MW_TICKET_ID_LEN + 1]; /* watch: its ticket id */
    bool cur_pre;                          /* enqueue: cur_ticket's route registered early */
    bool cur_has_idem;                     /* enqueue: it has an idempotency key... */
    uint64_t cur_idem_hash;                /* ...with this mw_hash_pair(playerId, key) */

    struct qmsg *q_head, *q_tail;
    size_t q_n, q_bytes;

    /* max_live entries, allocated by the first ticket this connection
     * holds: an idle connection has none (memory per idle connection). */
    struct entry *live;
    unsigned max_live;
    struct delivered *dlv; /* dlv_n used of dlv_cap, dlv_cap <= SESSION_DELIVERED_MAX */
    unsigned dlv_n, dlv_cap;
    int64_t retention_ms; /* limits.retention_ms; 0: remember until the close */

    /* Replies are encoded here: env->scratch (one buffer shared by every
     * session of a server: each reply is encoded and handed to io->send,
     * which copies it, before anything else can run) or own_out. */
    struct mw_buf *out;
    struct mw_buf own_out;
};

/* ---- Output ------------------------------------------------------------------ */

static void send_text(struct mw_session *s, const char *buf, size_t len, int64_t assigned_ms)
{
    int rc;

    if (s->closed || s->send_blocked)
        return;
    rc = s->io->send(s->io_ud, buf, len, assigned_ms);
    if (rc == MW_ELIMIT) {
        /* The edge closes 4001 itself; nothing more goes out. */
        s->send_blocked = true;
        if (s->env->metrics)
            s->env->metrics->outbound_drops++;
        return;
    }
    /* (Whole messages in and out are the gateway's to count: the
     * transport's counters have one owner.) */
}

static void send_buf(struct mw_session *s)
{
    send_text(s, s->out->data, s->out->len, 0);
    mw_buf_reset(s->out);
}

static bool counts_as_protocol_error(enum mw_code c)
{
    switch (c) {
    case MW_CODE_BAD_JSON:
    case MW_CODE_TOO_DEEP:
    case MW_CODE_TOO_LARGE:
    case MW_CODE_BAD_ENVELOPE:
    case MW_CODE_UNKNOWN_TYPE:
    case MW_CODE_UNSUPPORTED_VERSION:
    case MW_CODE_BAD_MESSAGE:
    case MW_CODE_RATE_LIMITED:
        return true;
    default:
        return false;
    }
}

static void ask_close(struct mw_session *s, uint16_t code, const char *reason)
{
    if (s->close_asked || s->closed)
        return;
    s->close_asked = true;
    s->io->close(s->io_ud, code, reason);
}

/* Sends an `error` reply (echoing id when given) and applies MSG-094. */
static void send_error(struct mw_session *s, const char *id, enum mw_code code, const char *msg,
                       size_t offset)
{
    mw_buf_reset(s->out);
    if (mw_msg_encode_error(s->out, id, code, msg, offset) == 0)
        send_buf(s);
    else
        mw_buf_reset(s->out);
    if (s->env->metrics && code < MW_CODE__COUNT)
        s->env->metrics->errors[code]++;
    /* MSG-094: an error with another code resets the count like a success. */
    if (!counts_as_protocol_error(code)) {
        s->errors_in_row = 0;
        return;
    }
    if (++s->errors_in_row >= s->max_errors)
        ask_close(s, MW_CLOSE_POLICY, "too many consecutive errors");
}

static const char *cur_id(const struct mw_session *s)
{
    return s->cur_has_id ? s->cur_id : NULL;
}

/* A success reply resets the consecutive error count. */
static void reply_ok(struct mw_session *s)
{
    send_buf(s);
    s->errors_in_row = 0;
}

/* An internal error for the request in flight (encoding failed, etc.). */
static void reply_internal(struct mw_session *s, const char *why)
{
    mw_buf_reset(s->out);
    send_error(s, cur_id(s), MW_CODE_INTERNAL, why, SIZE_MAX);
}

static void reply_store_error(struct mw_session *s, int rc)
{
    if (rc == MW_EUNAVAIL || rc == MW_ELIMIT || rc == MW_ECLOSED)
        send_error(s, cur_id(s), MW_CODE_UNAVAILABLE, "ticket store unavailable", SIZE_MAX);
    else
        send_error(s, cur_id(s), MW_CODE_INTERNAL, mw_strerror(rc), SIZE_MAX);
}

/* ---- Tickets ----------------------------------------------------------------- */

static struct entry *find_live(struct mw_session *s, const char *id)
{
    if (!s->live)
        return NULL;
    for (unsigned i = 0; i < s->max_live; i++)
        if (s->live[i].used && strcmp(s->live[i].id, id) == 0)
            return &s->live[i];
    return NULL;
}

static struct delivered *find_delivered(struct mw_session *s, const char *id)
{
    for (unsigned i = 0; i < s->dlv_n; i++)
        if (strcmp(s->dlv[i].id, id) == 0)
            return &s->dlv[i];
    return NULL;
}

static unsigned live_count(const struct mw_session *s)
{
    unsigned n = 0;

    for (unsigned i = 0; s->live && i < s->max_live; i++)
        n += s->live[i].used;
    return n;
}

/* Room to admit one more live ticket: drops deliveries whose ticket the
 * store has forgotten, then makes sure the table can record one delivery
 * per live entry plus the new one, so a delivery never finds it full.
 * Returns 0, MW_ELIMIT (too_many_tickets) or MW_ENOMEM. */
static int reserve_delivered(struct mw_session *s, int64_t now_ms)
{
    unsigned need, ncap;
    struct delivered *nd;

    if (s->retention_ms > 0) {
        for (unsigned i = 0; i < s->dlv_n;) {
            if (now_ms - s->dlv[i].at_ms >= s->retention_ms + SESSION_RETENTION_MARGIN_MS)
                s->dlv[i] = s->dlv[--s->dlv_n];
            else
                i++;
        }
    }
    need = s->dlv_n + live_count(s) + 1;
    if (need > SESSION_DELIVERED_MAX)
        return MW_ELIMIT;
    if (need <= s->dlv_cap)
        return 0;
    ncap = s->dlv_cap ? s->dlv_cap * 2 : 4;
    while (ncap < need)
        ncap *= 2;
    if (ncap > SESSION_DELIVERED_MAX)
        ncap = SESSION_DELIVERED_MAX;
    nd = mw_realloc(s->dlv, ncap * sizeof(*nd));
    if (!nd)
        return MW_ENOMEM;
    s->dlv = nd;
    s->dlv_cap = ncap;
    return 0;
}

/* Remembers that match.assigned version v of id went out (capacity was
 * reserved when the ticket was admitted). */
static void record_delivered(struct mw_session *s, const char *id, uint64_t v, int64_t at_ms)
{
    struct delivered *d = find_delivered(s, id);

    if (!d) {
        MW_ASSERT(s->dlv_n < s->dlv_cap); /* reserved on admission */
        if (s->dlv_n == s->dlv_cap) {
            mw_log(MW_LOG_ERR, "session: delivery table full");
            return;
        }
        d = &s->dlv[s->dlv_n++];
        memcpy(d->id, id, sizeof(d->id));
        d->version = 0;
        d->at_ms = at_ms;
    }
    if (v > d->version)
        d->version = v;
    if (at_ms > d->at_ms)
        d->at_ms = at_ms;
}

/* A free entry for id, with the version already sent remembered from the
 * delivered table; NULL when max_live entries are in use (or the table,
 * allocated by admit(), does not exist). */
static struct entry *add_live(struct mw_session *s, const char *id)
{
    for (unsigned i = 0; s->live && i < s->max_live; i++) {
        struct entry *e = &s->live[i];
        const struct delivered *d;

        if (e->used)
            continue;
        memset(e, 0, sizeof(*e));
        e->used = true;
        memcpy(e->id, id, MW_TICKET_ID_LEN);
        e->id[MW_TICKET_ID_LEN] = '\0';
        d = find_delivered(s, id);
        if (d)
            e->sent_version = d->version;
        return e;
    }
    return NULL;
}

static void held_clear(struct held *h)
{
    mw_free(h->envelope);
    memset(h, 0, sizeof(*h));
}

/* The ticket stops counting here (final, cancelled, or not found): unwatch,
 * give back the store watcher. (A sent match.assigned is already in the
 * delivered table.) final: the ticket is known to be final (assigned,
 * expired or cancelled); the store keeps watcher counts only while a ticket
 * is queued (CHN-071), so nothing is given back: no detach round trip. */
static void drop_live(struct mw_session *s, struct entry *e, int64_t now_ms, bool final)
{
    if (e->in_hub)
        mw_hub_unwatch(s->env->hub, e->id, &s->watcher);
    if (e->attached && !final)
        (void)mw_ticket_store_detach(s->env->store, e->id, now_ms);
    held_clear(&e->held);
    memset(e, 0, sizeof(*e));
}

/* Whether version v of ticket id was already sent (live entry or table). */
static bool already_sent(struct mw_session *s, const struct entry *e, const char *id, uint64_t v)
{
    const struct delivered *d;

    if (e)
        return v <= e->sent_version;
    d = find_delivered(s, id);
    return d && v <= d->version;
}

static void count_dedupe(struct mw_session *s)
{
    if (s->env->metrics)
        s->env->metrics->pushes_deduped++;
}

/* The one path by which a match.assigned reaches the client. final_ms is
 * when the ticket became final (its assignedAt), by which the delivery is
 * remembered until the store forgets the ticket (MSG-072, MSG-076); sample:
 * a first delivery, whose write time the latency histogram takes (not a
 * re-read of the store). No clock is read here: a push comes with its own
 * times, never with the time of this connection's last request. */
static void deliver_assigned(struct mw_session *s, struct entry *e, const char *env, size_t len,
                             uint64_t version, int64_t final_ms, bool sample)
{
    /* Every store and channel payload says when (ticket.h, channel.h). */
    MW_ASSERT(final_ms > 0);
    if (version <= e->sent_version) {
        count_dedupe(s);
    } else {
        send_text(s, env, len, sample ? final_ms : 0);
        e->sent_version = version;
        record_delivered(s, e->id, version, final_ms);
        if (s->env->metrics)
            s->env->metrics->pushes_total++;
    }
    drop_live(s, e, 0, true); /* assigned is final either way: no detach, no time */
}

static void deliver_ended(struct mw_session *s, struct entry *e, const struct mw_ticket *t);

/* Delivers a held ticket.expired / ticket.cancelled of e's ticket. */
static void deliver_held_ended(struct mw_session *s, struct entry *e, const struct held *h)
{
    struct mw_ticket t;

    memset(&t, 0, sizeof(t));
    memcpy(t.id, e->id, sizeof(t.id));
    t.state = h->state;
    t.version = h->version;
    deliver_ended(s, e, &t);
}

static void deliver_ended(struct mw_session *s, struct entry *e, const struct mw_ticket *t)
{
    if (t->version <= e->sent_version) {
        count_dedupe(s);
    } else {
        mw_buf_reset(s->out);
        if (mw_msg_encode_ticket_ended(s->out, t) == 0)
            send_buf(s);
        else
            mw_buf_reset(s->out);
        e->sent_version = t->version;
    }
    drop_live(s, e, s->cur_now, true); /* ended is final either way */
}

/* Delivers (through dedupe) what was held while a watch of e was in flight,
 * when that watch ended without a store read to deliver from. */
static void release_held(struct mw_session *s, struct entry *e)
{
    struct held h = e->held;

    memset(&e->held, 0, sizeof(e->held));
    if (h.present && h.ended)
        deliver_held_ended(s, e, &h);
    else if (h.present)
        deliver_assigned(s, e, h.envelope, h.envelope_len, h.version, h.assigned_ms, !h.recovery);
    held_clear(&h);
}

/* After a `watching`/`enqueued` reply: the state read from the store, then
 * anything held while the read was in flight, each through dedupe. */
static void after_read(struct mw_session *s, struct entry *e, const struct mw_ticket *t)
{
    struct held h = e->held;

    memset(&e->held, 0, sizeof(e->held));
    e->watch_pending = false;
    if (t->state == MW_TICKET_ASSIGNED && t->assigned_envelope) {
        deliver_assigned(s, e, t->assigned_envelope, t->assigned_envelope_len, t->version,
                         t->ended_ms, false);
    } else if (t->state != MW_TICKET_QUEUED) {
        /* Expired/cancelled: the reply said so; no push follows (MSG-042). */
        if (t->version > e->sent_version)
            e->sent_version = t->version;
        drop_live(s, e, s->cur_now, true);
    }
    if (h.present && e->used && strcmp(e->id, t->id) == 0) {
        if (h.ended)
            deliver_held_ended(s, e, &h);
        else
            deliver_assigned(s, e, h.envelope, h.envelope_len, h.version, h.assigned_ms,
                             !h.recovery);
    } else if (h.present) {
        count_dedupe(s); /* the read already made it final */
    }
    held_clear(&h);
}

/* ---- Lifetime ---------------------------------------------------------------- */

static void session_free(struct mw_session *s)
{
    struct qmsg *m = s->q_head;

    while (m) {
        struct qmsg *next = m->next;
        mw_free(m);
        m = next;
    }
    for (unsigned i = 0; s->live && i < s->max_live; i++)
        held_clear(&s->live[i].held);
    mw_free(s->live);
    mw_free(s->dlv);
    mw_buf_release(&s->own_out);
    mw_free(s->player);
    mw_free(s);
}

static void unref(struct mw_session *s)
{
    if (--s->refs == 0)
        session_free(s);
}

/* The hub reaches a session through its embedded watcher. */
static void watcher_assigned(struct mw_watcher *w, const struct mw_assigned *msg)
{
    mw_session_push_assigned(MW_CONTAINER_OF(w, struct mw_session, watcher), msg);
}

static void watcher_ended(struct mw_watcher *w, const struct mw_ticket *t)
{
    mw_session_push_ended(MW_CONTAINER_OF(w, struct mw_session, watcher), t);
}

static const struct mw_watcher_ops session_watcher_ops = {
    .assigned = watcher_assigned,
    .ended = watcher_ended,
};

struct mw_session *mw_session_new(const struct mw_session_env *env, const struct mw_session_io *io,
                                  void *io_ud)
{
    struct mw_session *s;
    double per_sec, burst;

    if (!env || !io || !env->store || !env->hub)
        return NULL;
    s = mw_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->watcher.ops = &session_watcher_ops;
    s->max_live = env->limits.max_tickets ? env->limits.max_tickets : 8;
    s->max_errors = env->limits.max_consecutive_errors ? env->limits.max_consecutive_errors : 10;
    s->retention_ms = env->limits.retention_ms > 0 ? env->limits.retention_ms : 0;
    s->env = env;
    s->io = io;
    s->io_ud = io_ud;
    s->refs = 1;
    per_sec = env->limits.rate_per_sec > 0 ? env->limits.rate_per_sec : 50;
    burst = env->limits.rate_burst >= 1 ? env->limits.rate_burst : 100;
    mw_ratelimit_init(&s->rate, per_sec, burst);
    mw_buf_init(&s->own_out, MW_SESSION_OUT_MAX);
    s->out = env->scratch ? env->scratch : &s->own_out;
    return s;
}

int mw_session_set_player(struct mw_session *s, const char *sub)
{
    size_t n = sub ? strlen(sub) : 0;

    char *p;

    if (!s || n == 0 || n > MW_PLAYER_ID_MAX)
        return MW_EINVAL;
    p = mw_malloc(n + 1);
    if (!p)
        return MW_ENOMEM;
    memcpy(p, sub, n + 1);
    mw_free(s->player);
    s->player = p;
    return 0;
}

/* Whether the authenticated player may see ticket t (AUTH-062): always in
 * unauthenticated mode. */
static bool owns(const struct mw_session *s, const struct mw_ticket *t)
{
    return !s->player || strcmp(t->player_id, s->player) == 0;
}

/* ---- Requests ---------------------------------------------------------------- */

static void process_queue(struct mw_session *s);

/* A store result arrived for the request in flight: finish it, then go on. */
static void request_done(struct mw_session *s)
{
    s->busy = false;
    process_queue(s);
}

/* Re-read after enqueue: for a store whose worker runs in another process
 * (Redis), the ticket may have been assigned and published between its
 * creation and our route registration; the create result (read at creation)
 * cannot show that, this read (made after the route exists) does. A push,
 * not a reply: it goes through dedupe and needs no ordering. */
static void on_reread(void *ud, int status, const struct mw_ticket *t)
{
    struct mw_session *s = ud;
    struct entry *e;

    if (!s->closed && status == 0 && t && t->state != MW_TICKET_QUEUED) {
        e = find_live(s, t->id);
        if (e && !e->watch_pending) {
            if (t->state == MW_TICKET_ASSIGNED && t->assigned_envelope)
                deliver_assigned(s, e, t->assigned_envelope, t->assigned_envelope_len, t->version,
                                 t->ended_ms, false);
            else
                deliver_ended(s, e, t);
        }
    }
    unref(s);
}

static void on_created(void *ud, int status, const struct mw_ticket *t)
{
    struct mw_session *s = ud;
    struct entry *pre = NULL, *e;
    bool fresh;
    int rc;

    if (s->closed) {
        /* The store counted us as a watcher (when queued: CHN-071); nobody
         * is left to watch. (on_close dropped an early route.) */
        if (status == 0 && t && t->state == MW_TICKET_QUEUED)
            (void)mw_ticket_store_detach(s->env->store, t->id, s->cur_now);
        unref(s);
        return;
    }
    if (s->cur_pre) {
        pre = find_live(s, s->cur_ticket);
        MW_ASSERT(pre && pre->creating);
        s->cur_pre = false;
    }
    /* fresh: the result is the ticket whose route was registered before
     * the store ran the create: no read after the route is needed. */
    fresh = pre && status == 0 && t && strcmp(pre->id, t->id) == 0;
    if (pre && !fresh) {
        /* Failed, or another ticket answered (a replay): the early route
         * was for an id the store did not create (nothing was counted on
         * it, nothing can have been pushed for it). */
        drop_live(s, pre, s->cur_now, false);
        pre = NULL;
    }
    if (status != 0 || !t) {
        reply_store_error(s, status ? status : MW_EUNAVAIL);
        goto out;
    }
    e = fresh ? pre : find_live(s, t->id);
    if (fresh) {
        e->creating = false;
        e->attached = true;
        e->has_idem = s->cur_has_idem;
        e->idem_hash = s->cur_idem_hash;
    } else if (e) {
        /* Idempotent replay of a ticket we already hold: the store counted
         * a second watcher (when queued); give it back. */
        if (e->attached && t->state == MW_TICKET_QUEUED)
            (void)mw_ticket_store_detach(s->env->store, t->id, s->cur_now);
        e->attached = true;
    } else {
        e = add_live(s, t->id);
        MW_ASSERT(e); /* checked before the call, one request at a time */
        if (!e) {
            (void)mw_ticket_store_detach(s->env->store, t->id, s->cur_now);
            reply_internal(s, "ticket table full");
            goto out;
        }
        e->attached = true;
        e->has_idem = s->cur_has_idem;
        e->idem_hash = s->cur_idem_hash;
    }
    /* Route first (MSG-027): pushes for it can come from now on. */
    if (!e->in_hub) {
        rc = mw_hub_watch(s->env->hub, t->id, &s->watcher);
        if (rc) {
            drop_live(s, e, s->cur_now, false);
            reply_store_error(s, rc == MW_ELIMIT ? MW_EUNAVAIL : rc);
            goto out;
        }
        e->in_hub = true;
    }
    mw_buf_reset(s->out);
    if (mw_msg_encode_enqueued(s->out, cur_id(s), t) != 0) {
        reply_internal(s, "cannot encode reply");
        e->watch_pending = false;
        release_held(s, e); /* pushes held for it still go out */
        goto out;
    }
    reply_ok(s);
    after_read(s, e, t);
    if (!fresh && e->used && mw_ticket_store_get(s->env->store, t->id, on_reread, s) == 0)
        s->refs++;
out:
    request_done(s);
    unref(s);
}

static void on_attached(void *ud, int status, const struct mw_ticket *t)
{
    struct mw_session *s = ud;
    struct entry *e;

    if (s->closed) {
        /* on_close gave back one store watcher and the route. When this was
         * a re-watch, the store counted a second watcher: give it back too,
         * or the ticket never gets its grace deadline (MSG-074). Only a
         * queued ticket counts watchers (CHN-071). */
        if (status == 0 && t && s->cur_was_attached && t->state == MW_TICKET_QUEUED)
            (void)mw_ticket_store_detach(s->env->store, t->id, s->cur_now);
        unref(s);
        return;
    }
    e = find_live(s, s->cur_ticket);
    if (status != 0 || !t) {
        if (e) {
            e->watch_pending = false;
            if (status == MW_ENOTFOUND) {
                /* Unknown or forgotten (MSG-042): nothing stays registered. */
                e->attached = false;
                drop_live(s, e, s->cur_now, false);
            } else {
                e->attached = s->cur_was_attached; /* this attach did not count */
                if (s->cur_new_entry)
                    drop_live(s, e, s->cur_now, false);
            }
        }
        if (status == MW_ENOTFOUND)
            send_error(s, cur_id(s), MW_CODE_NOT_FOUND, "no such ticket", SIZE_MAX);
        else
            reply_store_error(s, status ? status : MW_EUNAVAIL);
        /* A re-watch of a ticket this connection already watched failed:
         * the watch it had stands, and a push held meanwhile is delivered. */
        if (e && e->used)
            release_held(s, e);
        goto out;
    }
    if (!e) { /* dropped meanwhile (a held push could not have done it) */
        reply_internal(s, "watch lost");
        goto out;
    }
    if (!owns(s, t)) {
        /* AUTH-062: another player's ticket is answered as an unknown one.
         * Subscribe-before-read registered the route and the store counted
         * a watcher (queued tickets only, CHN-071): both go, and so does
         * any push held meanwhile (drop_live), before the reply. */
        if (t->state == MW_TICKET_QUEUED)
            (void)mw_ticket_store_detach(s->env->store, t->id, s->cur_now);
        e->attached = false;
        drop_live(s, e, s->cur_now, true);
        send_error(s, cur_id(s), MW_CODE_NOT_FOUND, "no such ticket", SIZE_MAX);
        goto out;
    }
    /* A second attach for one session: give it back (counted when queued). */
    if (s->cur_was_attached && t->state == MW_TICKET_QUEUED)
        (void)mw_ticket_store_detach(s->env->store, t->id, s->cur_now);
    mw_buf_reset(s->out);
    if (mw_msg_encode_watching(s->out, cur_id(s), t) != 0) {
        reply_internal(s, "cannot encode reply");
        e->watch_pending = false;
        release_held(s, e);
        goto out;
    }
    reply_ok(s);
    after_read(s, e, t);
out:
    request_done(s);
    unref(s);
}

static void on_cancelled(void *ud, int status, const struct mw_ticket *t)
{
    struct mw_session *s = ud;
    struct entry *e;

    if (s->closed) {
        unref(s);
        return;
    }
    if (status == 0 && t) {
        mw_buf_reset(s->out);
        if (mw_msg_encode_cancelled(s->out, cur_id(s), t) != 0) {
            reply_internal(s, "cannot encode reply");
        } else {
            reply_ok(s);
        }
        /* Our own cancel: the reply, not a ticket.cancelled push (MSG-062). */
        e = find_live(s, t->id);
        if (e) {
            if (t->version > e->sent_version)
                e->sent_version = t->version;
            drop_live(s, e, s->cur_now, true);
        }
    } else if (status == MW_ESTATE) {
        send_error(s, cur_id(s), MW_CODE_ALREADY_ASSIGNED, "the ticket is already assigned",
                   SIZE_MAX);
    } else if (status == MW_ENOTFOUND) {
        send_error(s, cur_id(s), MW_CODE_NOT_FOUND, "no such live ticket", SIZE_MAX);
    } else {
        reply_store_error(s, status ? status : MW_EUNAVAIL);
    }
    request_done(s);
    unref(s);
}

/* Admission of a ticket new to this connection (MSG-090, MSG-072): 0, or
 * the error reply was sent. */
static int admit(struct mw_session *s)
{
    int rc;

    if (live_count(s) >= s->max_live) {
        send_error(s, cur_id(s), MW_CODE_TOO_MANY_TICKETS, "too many live tickets", SIZE_MAX);
        return MW_ELIMIT;
    }
    if (!s->live) { /* the connection's first ticket */
        s->live = mw_calloc(s->max_live, sizeof(*s->live));
        if (!s->live) {
            send_error(s, cur_id(s), MW_CODE_INTERNAL, "out of memory", SIZE_MAX);
            return MW_ENOMEM;
        }
    }
    rc = reserve_delivered(s, s->cur_now);
    if (rc == MW_ELIMIT)
        send_error(s, cur_id(s), MW_CODE_TOO_MANY_TICKETS,
                   "too many assignments to remember on this connection", SIZE_MAX);
    else if (rc)
        send_error(s, cur_id(s), MW_CODE_INTERNAL, "out of memory", SIZE_MAX);
    return rc;
}

/* Whether an enqueue with this (playerId, idempotencyKey) hash replays a
 * ticket this connection already holds live (then it needs no new entry). */
static bool replays_live(const struct mw_session *s, uint64_t idem_hash)
{
    for (unsigned i = 0; s->live && i < s->max_live; i++)
        if (s->live[i].used && s->live[i].has_idem && s->live[i].idem_hash == idem_hash)
            return true;
    return false;
}

/* The route of the ticket an enqueue is creating, registered as soon as
 * the store has told its id, before the store runs the create (CHN-021):
 * pushes for it that arrive before the create's result are held
 * (watch_pending) and released after the `enqueued` reply, as for a watch,
 * so the ticket need not be read again. Nothing when the id is one this
 * connection holds already (a replay the store recognised at once) or no
 * entry or route is free: the callback then registers the route and reads
 * the ticket again. */
static void route_early(struct mw_session *s, const char *id)
{
    struct entry *e;

    if (find_live(s, id))
        return;
    e = add_live(s, id);
    if (!e)
        return;
    if (mw_hub_watch(s->env->hub, e->id, &s->watcher) != 0) {
        memset(e, 0, sizeof(*e));
        return;
    }
    e->in_hub = true;
    e->watch_pending = true;
    e->creating = true;
    memcpy(s->cur_ticket, e->id, sizeof(s->cur_ticket));
    s->cur_pre = true;
}

static void do_enqueue(struct mw_session *s, struct mw_client_msg *m)
{
    char id[MW_TICKET_ID_LEN + 1];
    int rc;

    s->cur_pre = false;
    /* AUTH-061: byte for byte the token's subject, or nothing is created or
     * read (and the idempotency pair is always the caller's own, AUTH-063). */
    if (s->player && strcmp(m->enqueue.player_id, s->player) != 0) {
        send_error(s, cur_id(s), MW_CODE_FORBIDDEN, "playerId is not the authenticated player",
                   SIZE_MAX);
        return;
    }
    s->cur_has_idem = m->enqueue.has_idem_key;
    s->cur_idem_hash =
        s->cur_has_idem ? mw_hash_pair(&s->env->hash_key, m->enqueue.player_id, m->enqueue.idem_key)
                        : 0;
    /* A replay of a ticket held here is answered like a re-watch, even at
     * the limit (MSG-028 watches "exactly as a watch would"; MSG-090 refuses
     * only a ticket beyond the limit). */
    if (!(s->cur_has_idem && replays_live(s, s->cur_idem_hash)) && admit(s) != 0)
        return;
    m->enqueue.watched = true;
    rc = mw_ticket_store_create_id(s->env->store, &m->enqueue, s->cur_now, id, on_created, s);
    if (rc) {
        reply_store_error(s, rc);
        return;
    }
    s->refs++;
    s->busy = true;
    route_early(s, id);
}

static void do_watch(struct mw_session *s, const struct mw_client_msg *m)
{
    struct entry *e = find_live(s, m->ticket_id);
    int rc;

    s->cur_new_entry = false;
    memcpy(s->cur_ticket, m->ticket_id, sizeof(s->cur_ticket));
    if (!e) {
        if (admit(s) != 0)
            return;
        e = add_live(s, m->ticket_id);
        MW_ASSERT(e); /* admit() counted a free entry */
        if (!e) {
            reply_internal(s, "ticket table full");
            return;
        }
        s->cur_new_entry = true;
    }
    /* Subscribe before read (MSG-041): the route exists before the store is read. */
    if (!e->in_hub) {
        rc = mw_hub_watch(s->env->hub, e->id, &s->watcher);
        if (rc) {
            if (s->cur_new_entry)
                drop_live(s, e, s->cur_now, false);
            reply_store_error(s, rc == MW_ELIMIT ? MW_EUNAVAIL : rc);
            return;
        }
        e->in_hub = true;
    }
    s->cur_was_attached = e->attached;
    rc = mw_ticket_store_attach(s->env->store, e->id, s->cur_now, on_attached, s);
    if (rc) {
        if (s->cur_new_entry)
            drop_live(s, e, s->cur_now, false);
        reply_store_error(s, rc);
        return;
    }
    e->attached = true; /* the store counts us from the call on */
    e->watch_pending = true;
    s->refs++;
    s->busy = true;
}

/* Authenticated cancel, step 2: the ticket was read; only its own player
 * may cancel it (AUTH-062), anyone else hears `not_found` as for an unknown
 * ticket. (A ticket's playerId never changes, so the read cannot go stale.) */
static void on_cancel_owner(void *ud, int status, const struct mw_ticket *t)
{
    struct mw_session *s = ud;
    int rc;

    if (s->closed) {
        unref(s);
        return;
    }
    if (status == MW_ENOTFOUND || (status == 0 && t && !owns(s, t))) {
        send_error(s, cur_id(s), MW_CODE_NOT_FOUND, "no such live ticket", SIZE_MAX);
    } else if (status != 0 || !t) {
        reply_store_error(s, status ? status : MW_EUNAVAIL);
    } else {
        rc = mw_ticket_store_cancel(s->env->store, s->cur_ticket, s->cur_now, on_cancelled, s);
        if (rc == 0)
            return; /* on_cancelled finishes the request with our reference */
        reply_store_error(s, rc);
    }
    request_done(s);
    unref(s);
}

static void do_cancel(struct mw_session *s, const struct mw_client_msg *m)
{
    int rc;

    if (s->player) {
        memcpy(s->cur_ticket, m->ticket_id, sizeof(s->cur_ticket));
        rc = mw_ticket_store_get(s->env->store, s->cur_ticket, on_cancel_owner, s);
    } else {
        rc = mw_ticket_store_cancel(s->env->store, m->ticket_id, s->cur_now, on_cancelled, s);
    }
    if (rc) {
        reply_store_error(s, rc);
        return;
    }
    s->refs++;
    s->busy = true;
}

static void set_cur_id(struct mw_session *s, bool has_id, const char *id)
{
    s->cur_has_id = has_id;
    if (has_id) {
        size_t n = 0;
        while (n < MW_ID_MAX && id[n])
            n++;
        memcpy(s->cur_id, id, n);
        s->cur_id[n] = '\0';
    } else {
        s->cur_id[0] = '\0';
    }
}

/* Handles one message data[0..len) (borrowed; the decoder reads exactly
 * len bytes) that arrived at now_ms; may leave a request in flight
 * (s->busy). */
static void process_one(struct mw_session *s, const char *data, size_t len, bool rate_limited,
                        int64_t now_ms)
{
    struct mw_client_msg m;
    struct mw_msg_error err;
    int rc;

    memset(&m, 0, sizeof(m));
    memset(&err, 0, sizeof(err));
    s->cur_now = now_ms;
    rc = mw_msg_decode(data, len, &m, &err);
    if (rate_limited) {
        /* Not processed; decoded only to echo its id (MSG-012). */
        const char *id = rc == 0 ? (m.has_id ? m.id : NULL) : (err.has_id ? err.id : NULL);
        set_cur_id(s, id != NULL, id);
        send_error(s, cur_id(s), MW_CODE_RATE_LIMITED, "message rate exceeded", SIZE_MAX);
        goto out;
    }
    if (rc == MW_EINVAL) {
        set_cur_id(s, err.has_id, err.id);
        send_error(s, cur_id(s), err.e.code, err.e.message, err.e.offset);
        goto out;
    }
    if (rc) {
        set_cur_id(s, false, NULL);
        send_error(s, NULL, MW_CODE_INTERNAL, "out of memory", SIZE_MAX);
        goto out;
    }
    set_cur_id(s, m.has_id, m.id);
    s->cur_type = m.type;
    switch (m.type) {
    case MW_MSG_ENQUEUE:
        do_enqueue(s, &m);
        break;
    case MW_MSG_WATCH:
        do_watch(s, &m);
        break;
    case MW_MSG_CANCEL:
        do_cancel(s, &m);
        break;
    case MW_MSG_PING:
        /* Answered in order like any request, so behind one that waits on
         * the store, for at most the store's timeout (MSG-013, MSG-126). */
        mw_buf_reset(s->out);
        if (mw_msg_encode_pong(s->out, cur_id(s)) == 0)
            reply_ok(s);
        else
            reply_internal(s, "cannot encode reply");
        break;
    }
out:
    mw_client_msg_clear(&m);
}

static void process_queue(struct mw_session *s)
{
    while (!s->busy && !s->closed && !s->close_asked && s->q_head) {
        struct qmsg *q = s->q_head;

        s->q_head = q->next;
        if (!s->q_head)
            s->q_tail = NULL;
        s->q_n--;
        s->q_bytes -= q->len;
        process_one(s, q->data, q->len, q->rate_limited, q->now_ms);
        mw_free(q);
    }
}

void mw_session_on_text(struct mw_session *s, const char *buf, size_t len, int64_t now_ms)
{
    struct qmsg *q;
    bool rate_limited;

    if (!s || s->closed || s->close_asked)
        return;
    /* The rate verdict is taken on arrival (MSG-095). */
    rate_limited = !mw_ratelimit_allow(&s->rate, now_ms);
    if (s->q_n >= SESSION_QUEUE_MAX_MSGS || s->q_bytes + len > SESSION_QUEUE_MAX_BYTES) {
        /* The queue only grows while a request waits on the store. Over
         * the message rate: abuse, 1008. Within it: the store is slow
         * (a stalled backend), which is no fault of the client: 1013,
         * retryable (MSG-127). */
        if (rate_limited)
            ask_close(s, MW_CLOSE_POLICY, "too many pending requests");
        else
            ask_close(s, MW_CLOSE_TRY_AGAIN, "backend slow, try again later");
        return;
    }
    if (!s->busy && !s->q_head) {
        /* Nothing waits before it: handled at once from the edge's buffer,
         * with no copy (the common case: a request is answered before the
         * client sends the next). */
        process_one(s, buf, len, rate_limited, now_ms);
        return;
    }
    q = mw_malloc(sizeof(*q) + len + 1);
    if (!q) {
        ask_close(s, MW_CLOSE_INTERNAL, "out of memory");
        return;
    }
    q->next = NULL;
    q->len = len;
    q->now_ms = now_ms;
    q->rate_limited = rate_limited;
    memcpy(q->data, buf, len);
    q->data[len] = '\0';
    if (s->q_tail)
        s->q_tail->next = q;
    else
        s->q_head = q;
    s->q_tail = q;
    s->q_n++;
    s->q_bytes += len;
    process_queue(s);
}

void mw_session_on_close(struct mw_session *s, int64_t now_ms)
{
    if (!s || s->closed)
        return;
    s->closed = true;
    for (unsigned i = 0; s->live && i < s->max_live; i++) {
        struct entry *e = &s->live[i];

        if (!e->used)
            continue;
        /* Store watcher back (the grace period starts), route gone. */
        if (e->attached)
            (void)mw_ticket_store_detach(s->env->store, e->id, now_ms);
        if (e->in_hub)
            mw_hub_unwatch(s->env->hub, e->id, &s->watcher);
        held_clear(&e->held);
        memset(e, 0, sizeof(*e));
    }
    s->cur_now = now_ms;
    unref(s); /* the edge's reference; store callbacks in flight hold theirs */
}

/* ---- Pushes from the hub ----------------------------------------------------- */

void mw_session_push_assigned(struct mw_session *s, const struct mw_assigned *m)
{
    struct entry *e;

    if (!s || s->closed || !m || !m->ticket_id)
        return;
    e = find_live(s, m->ticket_id);
    if (!e || already_sent(s, e, m->ticket_id, m->version)) {
        count_dedupe(s);
        return;
    }
    if (e->watch_pending) {
        /* Released right after the `watching` reply (MSG-041). */
        struct held *h = &e->held;
        char *copy;

        if (h->present && !h->ended && h->version >= m->version) {
            count_dedupe(s);
            return;
        }
        copy = mw_strndup(m->envelope, m->envelope_len);
        if (!copy)
            return; /* the attach result carries the assignment anyway if it was before */
        held_clear(h);
        h->present = true;
        h->version = m->version;
        h->assigned_ms = m->assigned_ms;
        h->recovery = m->recovery;
        h->envelope = copy;
        h->envelope_len = m->envelope_len;
        return;
    }
    deliver_assigned(s, e, m->envelope, m->envelope_len, m->version, m->assigned_ms, !m->recovery);
}

void mw_session_push_ended(struct mw_session *s, const struct mw_ticket *t)
{
    struct entry *e;

    if (!s || s->closed || !t)
        return;
    e = find_live(s, t->id);
    if (!e || already_sent(s, e, t->id, t->version)) {
        count_dedupe(s);
        return;
    }
    if (e->watch_pending) {
        struct held *h = &e->held;

        if (h->present && h->version >= t->version)
            return;
        held_clear(h);
        h->present = true;
        h->ended = true;
        h->version = t->version;
        h->state = t->state;
        return;
    }
    deliver_ended(s, e, t);
}

bool mw_session_busy(const struct mw_session *s)
{
    return s && !s->closed && !s->close_asked && (s->busy || s->q_head != NULL);
}
