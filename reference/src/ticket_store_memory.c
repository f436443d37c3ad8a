/* ticket_store_memory: the in-memory ticket store (the embedded default).
 *
 * Records live in a hash map (map.h) by ticket id, and those with an
 * idempotency key also in a second map by (player id, key); both maps are
 * intrusive (the links are in the record), so a record costs one
 * allocation plus its strings. Three intrusive FIFO lists make the sweep cost
 * proportional to what it changes: queued tickets in creation order (the ttl
 * is uniform, so that is expiry order), unwatched queued tickets in the order
 * their grace deadline was set, and final tickets in the order they became
 * final. (A clock stepping backwards only delays a sweep.)
 *
 * Asynchrony: every operation's result is an `op` (with a snapshot copy of
 * the ticket taken at the time of the operation) appended to the store's own
 * FIFO; one "pump" call on the defer queue runs the ops that were queued when
 * it started. So callbacks and feed events are never delivered before the
 * call returns, they are delivered in the order of the operations, and
 * destroy can withdraw the single pump call (mw_defer_cancel) and fail the
 * pending ops with MW_ECLOSED. Every allocation an operation needs is made
 * before it changes anything, so a failed call (MW_ENOMEM) changes nothing
 * and never fires its callback. */
#include "ticket_store_memory.h"

#include "alloc.h"
#include "error.h"
#include "log.h"
#include "map.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define TSM_DEFAULT_TTL_MS          (600 * 1000)
#define TSM_DEFAULT_ASSIGNED_TTL_MS (600 * 1000)
#define TSM_DEFAULT_GRACE_MS        (30 * 1000)
#define TSM_DEFAULT_MAX_TICKETS     1000000
#define TSM_INITIAL_BUCKETS         256
#define TSM_MAX_BUCKETS             ((size_t)1 << 24)

/* ---- Records and indexes ------------------------------------------------- */

struct rec {
    struct mw_ticket t; /* owns attributes_json and assigned_envelope */
    uint64_t id_hash;   /* computed before the record is linked */
    uint64_t idem_hash;
    struct mw_map_node id_node;   /* in by_id */
    struct mw_map_node idem_node; /* in by_idem (has_idem_key only) */
    /* Age list: the queued list while queued, the final list afterwards. */
    struct rec *age_prev, *age_next;
    struct rec *grace_prev, *grace_next;
    bool in_grace;
    size_t watchers;
    int64_t grace_deadline_ms; /* valid while in_grace */
    int64_t final_ms;          /* when the ticket became final */
    /* Undelivered assign results whose snapshot borrows this record's
     * strings (attributes, envelope): the sweep does not forget it until
     * they are delivered (the next pump). */
    unsigned pins;
};

struct rec_list {
    struct rec *head, *tail;
};

/* ---- Deferred results ------------------------------------------------------ */

enum op_kind {
    OP_TICKET, /* a mw_ticket_cb result */
    OP_ASSIGN, /* a mw_assign_cb result */
    OP_QUEUED, /* feed: QUEUED */
    OP_ENDED,  /* feed: REMOVED, then hooks.on_ended */
};

struct op {
    struct op *next;
    enum op_kind kind;
    int status;
    mw_ticket_cb cb;
    mw_assign_cb acb;
    void *ud;
    bool has_ticket;
    struct mw_ticket t; /* snapshot (OP_TICKET with has_ticket, OP_QUEUED, OP_ENDED) */
    size_t failed;      /* OP_ASSIGN */
    size_t n;
    /* OP_ASSIGN success: n snapshots, each borrowing the strings of the
     * record pinned[i] (one allocation; no copy of the envelopes). */
    struct mw_ticket *tickets;
    struct rec **pinned;
};

/* An assign result's snapshots and record pointers share one allocation. */
_Static_assert(sizeof(struct mw_ticket) % _Alignof(struct rec *) == 0,
               "record pointers after the snapshots are aligned");

struct tsm {
    struct mw_ticket_store_hooks hooks; /* the owner's, copied */
    struct mw_ticket_store_config cfg;
    struct mw_defer *defer;
    mw_random_fn rnd;
    void *rnd_ud;

    struct mw_map by_id;    /* struct rec by ticket id */
    struct mw_map by_idem;  /* struct rec by (playerId, idempotencyKey) */
    struct rec_list queued; /* age list of queued tickets, creation order */
    struct rec_list final;  /* age list of final tickets, final_ms order */
    struct rec_list grace;  /* grace list, deadline order */
    size_t n_records;
    uint64_t counts[4];

    mw_feed_cb feed_cb;
    void *feed_ud;

    struct op *ops_head, *ops_tail;
    size_t n_ops;
    bool pump_posted;
    bool in_pump;
    bool closing;
    /* Key of both indexes' hash: (playerId, idempotencyKey) is chosen by
     * clients. Drawn from rnd at construction. */
    struct mw_hash_key hash_key;
};

static uint64_t hash_id(const struct tsm *s, const char *id)
{
    return mw_hash_str(&s->hash_key, id);
}

static uint64_t hash_idem(const struct tsm *s, const char *player_id, const char *key)
{
    return mw_hash_pair(&s->hash_key, player_id, key);
}

static struct rec *find_by_id(const struct tsm *s, const char *id)
{
    uint64_t h = hash_id(s, id);

    for (struct mw_map_node *m = mw_map_bucket(&s->by_id, h); m; m = m->next) {
        struct rec *r = MW_CONTAINER_OF(m, struct rec, id_node);

        if (m->hash == h && strcmp(r->t.id, id) == 0)
            return r;
    }
    return NULL;
}

static struct rec *find_by_idem(const struct tsm *s, const char *player_id, const char *key)
{
    uint64_t h = hash_idem(s, player_id, key);

    for (struct mw_map_node *m = mw_map_bucket(&s->by_idem, h); m; m = m->next) {
        struct rec *r = MW_CONTAINER_OF(m, struct rec, idem_node);

        if (m->hash == h && strcmp(r->t.player_id, player_id) == 0 &&
            strcmp(r->t.idem_key, key) == 0)
            return r;
    }
    return NULL;
}

/* ---- Intrusive lists ------------------------------------------------------- */

static void age_append(struct rec_list *l, struct rec *r)
{
    r->age_next = NULL;
    r->age_prev = l->tail;
    if (l->tail)
        l->tail->age_next = r;
    else
        l->head = r;
    l->tail = r;
}

static void age_remove(struct rec_list *l, struct rec *r)
{
    if (r->age_prev)
        r->age_prev->age_next = r->age_next;
    else
        l->head = r->age_next;
    if (r->age_next)
        r->age_next->age_prev = r->age_prev;
    else
        l->tail = r->age_prev;
    r->age_prev = r->age_next = NULL;
}

static void grace_append(struct rec_list *l, struct rec *r)
{
    r->grace_next = NULL;
    r->grace_prev = l->tail;
    if (l->tail)
        l->tail->grace_next = r;
    else
        l->head = r;
    l->tail = r;
    r->in_grace = true;
}

static void grace_remove(struct rec_list *l, struct rec *r)
{
    if (!r->in_grace)
        return;
    if (r->grace_prev)
        r->grace_prev->grace_next = r->grace_next;
    else
        l->head = r->grace_next;
    if (r->grace_next)
        r->grace_next->grace_prev = r->grace_prev;
    else
        l->tail = r->grace_prev;
    r->grace_prev = r->grace_next = NULL;
    r->in_grace = false;
}

/* ---- Ops: allocation, queueing, delivery ----------------------------------- */

static void op_free(struct op *op)
{
    if (!op)
        return;
    mw_ticket_clear(&op->t);
    if (op->tickets) {
        for (size_t i = 0; op->pinned && i < op->n; i++)
            op->pinned[i]->pins--;
        mw_free(op->tickets); /* and pinned: the same allocation */
    }
    mw_free(op);
}

/* A new op; with r, it carries a snapshot of r as it is now. NULL on OOM. */
static struct op *op_new(enum op_kind kind, const struct rec *r)
{
    struct op *op = mw_calloc(1, sizeof(*op));

    if (!op)
        return NULL;
    op->kind = kind;
    if (r) {
        if (mw_ticket_copy(&op->t, &r->t) != 0) {
            mw_free(op);
            return NULL;
        }
        op->has_ticket = true;
    }
    return op;
}

static void ops_append(struct tsm *s, struct op *op)
{
    op->next = NULL;
    if (s->ops_tail)
        s->ops_tail->next = op;
    else
        s->ops_head = op;
    s->ops_tail = op;
    s->n_ops++;
}

static struct op *ops_pop(struct tsm *s)
{
    struct op *op = s->ops_head;

    if (!op)
        return NULL;
    s->ops_head = op->next;
    if (!s->ops_head)
        s->ops_tail = NULL;
    s->n_ops--;
    op->next = NULL;
    return op;
}

static void pump(void *arg);

/* Makes sure a pump call is on the defer queue. 0 or MW_ENOMEM. */
static int ensure_pump(struct tsm *s)
{
    int rc;

    if (s->pump_posted)
        return 0;
    rc = mw_defer_post(s->defer, pump, s);
    if (rc)
        return rc;
    s->pump_posted = true;
    return 0;
}

static void op_deliver(struct tsm *s, struct op *op)
{
    struct mw_assign_result ar;

    switch (op->kind) {
    case OP_TICKET:
        if (op->cb)
            op->cb(op->ud, op->status, op->has_ticket ? &op->t : NULL);
        break;
    case OP_ASSIGN:
        ar = (struct mw_assign_result){
            .status = op->status, .failed = op->failed, .n = op->n, .tickets = op->tickets};
        if (op->acb)
            op->acb(op->ud, &ar);
        break;
    case OP_QUEUED:
        if (s->feed_cb)
            s->feed_cb(s->feed_ud, MW_FEED_QUEUED, &op->t);
        break;
    case OP_ENDED:
        if (s->feed_cb)
            s->feed_cb(s->feed_ud, MW_FEED_REMOVED, &op->t);
        /* The feed callback may have destroyed the store. */
        if (!s->closing && s->hooks.on_ended)
            s->hooks.on_ended(s->hooks.ud, &op->t);
        break;
    }
}

/* Pending results at destroy: callbacks get MW_ECLOSED, feed events drop. */
static void op_deliver_closed(struct op *op)
{
    struct mw_assign_result ar = {.status = MW_ECLOSED};

    if (op->kind == OP_TICKET && op->cb)
        op->cb(op->ud, MW_ECLOSED, NULL);
    else if (op->kind == OP_ASSIGN && op->acb)
        op->acb(op->ud, &ar);
}

static void rec_unlinked(struct mw_map_node *m, void *ud)
{
    (void)m;
    (void)ud; /* freed with the id map */
}

static void rec_drop(struct mw_map_node *m, void *ud)
{
    struct rec *r = MW_CONTAINER_OF(m, struct rec, id_node);

    (void)ud;
    mw_ticket_clear(&r->t);
    mw_free(r);
}

static void free_everything(struct tsm *s)
{
    struct op *op;

    while ((op = ops_pop(s)) != NULL) {
        op_deliver_closed(op);
        op_free(op);
    }
    mw_map_drain(&s->by_idem, rec_unlinked, NULL);
    mw_map_drain(&s->by_id, rec_drop, NULL); /* every record is here */
    mw_map_release(&s->by_id);
    mw_map_release(&s->by_idem);
    mw_free(s);
}

/* The defer call: delivers the ops queued when it started, in order; ops
 * queued by their callbacks wait for the next pump (loop fairness). */
static void pump(void *arg)
{
    struct tsm *s = arg;
    size_t n = s->n_ops;

    s->pump_posted = false;
    s->in_pump = true;
    for (size_t i = 0; i < n && !s->closing; i++) {
        struct op *op = ops_pop(s);
        if (!op)
            break;
        op_deliver(s, op);
        op_free(op);
    }
    s->in_pump = false;
    if (s->closing) { /* destroyed from inside a callback */
        free_everything(s);
        return;
    }
    if (s->ops_head && ensure_pump(s) != 0)
        mw_log(MW_LOG_ERR,
               "ticket_store_memory: cannot re-post pump; %zu results wait for the "
               "next operation",
               s->n_ops);
}

/* ---- State transitions ------------------------------------------------------ */

/* queued -> final state: leaves the queued and grace lists, joins the final
 * list. The caller sets the version. */
static void make_final(struct tsm *s, struct rec *r, enum mw_ticket_state st, int64_t now_ms)
{
    s->counts[r->t.state]--;
    s->counts[st]++;
    r->t.state = st;
    r->t.ended_ms = now_ms;
    age_remove(&s->queued, r);
    grace_remove(&s->grace, r);
    r->final_ms = now_ms;
    age_append(&s->final, r);
}

static void forget(struct tsm *s, struct rec *r)
{
    age_remove(&s->final, r);
    grace_remove(&s->grace, r);
    mw_map_remove(&s->by_id, &r->id_node);
    if (r->t.has_idem_key)
        mw_map_remove(&s->by_idem, &r->idem_node);
    s->counts[r->t.state]--;
    s->n_records--;
    mw_ticket_clear(&r->t);
    mw_free(r);
}

/* ---- Operations ------------------------------------------------------------- */

/* Queues a plain result: status, and a snapshot of r when r is given. */
static int post_result(struct tsm *s, int status, const struct rec *r, mw_ticket_cb cb, void *ud)
{
    struct op *op = op_new(OP_TICKET, r);
    int rc;

    if (!op)
        return MW_ENOMEM;
    rc = ensure_pump(s);
    if (rc) {
        op_free(op);
        return rc;
    }
    op->status = status;
    op->cb = cb;
    op->ud = ud;
    ops_append(s, op);
    return 0;
}

/* Watchers are counted only while the ticket is queued (CHN-040/071): a
 * final ticket's count is left as it was, and detach does not touch it. */
static void watcher_add(struct tsm *s, struct rec *r)
{
    if (r->t.state != MW_TICKET_QUEUED)
        return;
    r->watchers++;
    grace_remove(&s->grace, r);
}

static int tsm_create(void *impl, const struct mw_enqueue_req *req, int64_t now_ms, char *id_out,
                      mw_ticket_cb cb, void *ud)
{
    struct tsm *s = impl;
    struct rec *r = NULL;
    struct op *res = NULL, *fed = NULL;
    int rc;

    if (s->closing)
        return MW_ECLOSED;
    if (!req)
        return MW_EINVAL;

    if (req->has_idem_key) {
        struct rec *old = find_by_idem(s, req->player_id, req->idem_key);
        if (old) {
            /* MSG-026: the same ticket, as it is now. A WebSocket creator
             * watches it like a new one. */
            res = op_new(OP_TICKET, old);
            if (!res)
                return MW_ENOMEM;
            res->t.replayed = true;
            rc = ensure_pump(s);
            if (rc)
                goto out_free_ops;
            if (req->watched)
                watcher_add(s, old);
            res->cb = cb;
            res->ud = ud;
            ops_append(s, res);
            if (id_out) /* known now: the callback reports this ticket */
                memcpy(id_out, old->t.id, MW_TICKET_ID_LEN + 1);
            return 0;
        }
    }

    if (s->n_records >= s->cfg.max_tickets)
        return MW_ELIMIT;

    r = mw_calloc(1, sizeof(*r));
    if (!r)
        return MW_ENOMEM;
    for (int tries = 0;; tries++) {
        rc = mw_uuid4(s->rnd, s->rnd_ud, r->t.id);
        if (rc)
            goto out_free_rec;
        if (!find_by_id(s, r->t.id))
            break;
        if (tries == 3) { /* a repeating random source */
            rc = MW_EIO;
            goto out_free_rec;
        }
    }
    /* Field copies are bounded by the request's own array sizes. */
    memcpy(r->t.queue, req->queue, sizeof(r->t.queue));
    memcpy(r->t.player_id, req->player_id, sizeof(r->t.player_id));
    memcpy(r->t.region, req->region, sizeof(r->t.region));
    r->t.queue[MW_QUEUE_MAX] = '\0';
    r->t.player_id[MW_PLAYER_ID_MAX] = '\0';
    r->t.region[MW_REGION_MAX] = '\0';
    if (req->has_idem_key) {
        memcpy(r->t.idem_key, req->idem_key, sizeof(r->t.idem_key));
        r->t.idem_key[MW_IDEM_KEY_MAX] = '\0';
        r->t.has_idem_key = true;
    }
    r->t.state = MW_TICKET_QUEUED;
    r->t.version = 1;
    r->t.created_ms = now_ms;
    r->t.expires_ms = now_ms + s->cfg.ticket_ttl_ms;
    if (req->attributes_json) {
        r->t.attributes_json = mw_strndup(req->attributes_json, strlen(req->attributes_json));
        if (!r->t.attributes_json) {
            rc = MW_ENOMEM;
            goto out_free_rec;
        }
    }
    r->watchers = req->watched ? 1 : 0;
    r->id_hash = hash_id(s, r->t.id);
    if (r->t.has_idem_key)
        r->idem_hash = hash_idem(s, r->t.player_id, r->t.idem_key);

    rc = MW_ENOMEM;
    res = op_new(OP_TICKET, r);
    if (!res)
        goto out_free_rec;
    if (s->feed_cb) {
        fed = op_new(OP_QUEUED, r);
        if (!fed)
            goto out_free_ops;
    }
    rc = ensure_pump(s);
    if (rc)
        goto out_free_ops;

    /* Commit: nothing below can fail. */
    mw_map_insert(&s->by_id, &r->id_node, r->id_hash);
    if (r->t.has_idem_key)
        mw_map_insert(&s->by_idem, &r->idem_node, r->idem_hash);
    age_append(&s->queued, r);
    s->n_records++;
    s->counts[MW_TICKET_QUEUED]++;
    res->cb = cb;
    res->ud = ud;
    /* The creator's result first, then the feed: a session registers its
     * route in its create callback before the worker can see the ticket. */
    ops_append(s, res);
    if (fed)
        ops_append(s, fed);
    if (id_out)
        memcpy(id_out, r->t.id, MW_TICKET_ID_LEN + 1);
    return 0;

out_free_ops:
    op_free(fed);
    op_free(res);
out_free_rec:
    if (r) {
        mw_ticket_clear(&r->t);
        mw_free(r);
    }
    return rc;
}

static int tsm_get(void *impl, const char *ticket_id, mw_ticket_cb cb, void *ud)
{
    struct tsm *s = impl;
    struct rec *r;

    if (s->closing)
        return MW_ECLOSED;
    if (!ticket_id)
        return MW_EINVAL;
    r = find_by_id(s, ticket_id);
    return post_result(s, r ? 0 : MW_ENOTFOUND, r, cb, ud);
}

static int tsm_cancel(void *impl, const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    struct tsm *s = impl;
    struct rec *r;
    struct op *res, *ended;
    int rc;

    if (s->closing)
        return MW_ECLOSED;
    if (!ticket_id)
        return MW_EINVAL;
    r = find_by_id(s, ticket_id);
    if (!r)
        return post_result(s, MW_ENOTFOUND, NULL, cb, ud);
    if (r->t.state == MW_TICKET_ASSIGNED)
        return post_result(s, MW_ESTATE, r, cb, ud); /* already_assigned */
    if (r->t.state != MW_TICKET_QUEUED)
        return post_result(s, MW_ENOTFOUND, NULL, cb, ud); /* MSG-031 */

    res = op_new(OP_TICKET, r);
    ended = op_new(OP_ENDED, r);
    rc = MW_ENOMEM;
    if (!res || !ended)
        goto out_free;
    rc = ensure_pump(s);
    if (rc)
        goto out_free;
    make_final(s, r, MW_TICKET_CANCELLED, now_ms);
    r->t.version++;
    res->t.state = ended->t.state = r->t.state;
    res->t.version = ended->t.version = r->t.version;
    res->cb = cb;
    res->ud = ud;
    ops_append(s, res);
    ops_append(s, ended);
    return 0;

out_free:
    op_free(res);
    op_free(ended);
    return rc;
}

static int tsm_attach(void *impl, const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    struct tsm *s = impl;
    struct rec *r;
    int rc;

    (void)now_ms;
    if (s->closing)
        return MW_ECLOSED;
    if (!ticket_id)
        return MW_EINVAL;
    r = find_by_id(s, ticket_id);
    if (!r)
        return post_result(s, MW_ENOTFOUND, NULL, cb, ud);
    rc = post_result(s, 0, r, cb, ud);
    if (rc)
        return rc;
    watcher_add(s, r);
    return 0;
}

static int tsm_detach(void *impl, const char *ticket_id, int64_t now_ms)
{
    struct tsm *s = impl;
    struct rec *r;

    if (s->closing)
        return MW_ECLOSED;
    if (!ticket_id)
        return MW_EINVAL;
    r = find_by_id(s, ticket_id);
    if (!r)
        return MW_ENOTFOUND;
    if (r->t.state != MW_TICKET_QUEUED)
        return 0; /* final: watchers no longer matter (CHN-071) */
    if (r->watchers == 0)
        return MW_ESTATE; /* unbalanced detach */
    r->watchers--;
    if (r->watchers == 0) {
        grace_remove(&s->grace, r);
        r->grace_deadline_ms = now_ms + s->cfg.grace_ms;
        grace_append(&s->grace, r);
    }
    return 0;
}

static int tsm_assign(void *impl, const struct mw_match *m, mw_assign_cb cb, void *ud)
{
    struct tsm *s = impl;
    struct rec *recs[MW_MATCH_SIZE_MAX];
    char *envs[MW_MATCH_SIZE_MAX] = {0};
    struct op *op;
    int rc = MW_ENOMEM;
    size_t i;

    if (s->closing)
        return MW_ECLOSED;
    if (!m || m->n == 0 || m->n > MW_MATCH_SIZE_MAX)
        return MW_EINVAL;
    for (i = 0; i < m->n; i++)
        if (!m->envelopes[i] || m->envelope_lens[i] == 0)
            return MW_EINVAL;
    op = op_new(OP_ASSIGN, NULL);
    if (!op)
        return MW_ENOMEM;
    op->acb = cb;
    op->ud = ud;

    /* Compare: every ticket queued at exactly versions[i] - 1, no ticket twice. */
    for (i = 0; i < m->n; i++) {
        struct rec *r = find_by_id(s, m->ticket_ids[i]);
        bool dup = false;

        for (size_t j = 0; r && j < i; j++)
            dup = dup || recs[j] == r;
        if (!r || dup || r->t.state != MW_TICKET_QUEUED || r->t.version + 1 != m->versions[i]) {
            op->status = MW_ESTATE;
            op->failed = i;
            rc = ensure_pump(s);
            if (rc)
                goto out_free;
            ops_append(s, op);
            return 0;
        }
        recs[i] = r;
    }

    /* Prepare every allocation, then set: all or nothing. The snapshots
     * and their record pointers are one block; the records own the only
     * copy of each envelope, which the snapshots borrow (pinned). */
    op->tickets = mw_calloc(1, m->n * (sizeof(*op->tickets) + sizeof(*op->pinned)));
    if (!op->tickets)
        goto out_free;
    for (i = 0; i < m->n; i++) {
        envs[i] = mw_strndup(m->envelopes[i], m->envelope_lens[i]);
        if (!envs[i])
            goto out_free;
    }
    rc = ensure_pump(s);
    if (rc)
        goto out_free;

    op->pinned = (struct rec **)(void *)(op->tickets + m->n);
    op->n = m->n;
    for (i = 0; i < m->n; i++) {
        struct rec *r = recs[i];

        make_final(s, r, MW_TICKET_ASSIGNED, m->assigned_ms);
        r->t.version = m->versions[i];
        r->t.assigned_envelope = envs[i];
        r->t.assigned_envelope_len = m->envelope_lens[i];
        op->tickets[i] = r->t; /* borrows attributes_json and assigned_envelope */
        op->pinned[i] = r;
        r->pins++;
    }
    ops_append(s, op);
    return 0;

out_free:
    for (i = 0; i < m->n; i++)
        mw_free(envs[i]);
    op_free(op);
    return rc;
}

static int tsm_feed(void *impl, mw_feed_cb cb, void *ud)
{
    struct tsm *s = impl;
    struct op *head = NULL, **tailp = &head;
    size_t n = 0;
    int rc;

    if (s->closing)
        return MW_ECLOSED;
    if (!cb)
        return MW_EINVAL;
    if (s->feed_cb)
        return MW_EEXIST; /* one subscriber */
    /* Tickets already queued are delivered first, oldest first, so a late
     * subscriber misses nothing. */
    for (struct rec *r = s->queued.head; r; r = r->age_next) {
        struct op *op = op_new(OP_QUEUED, r);
        if (!op) {
            rc = MW_ENOMEM;
            goto out_free;
        }
        *tailp = op;
        tailp = &op->next;
        n++;
    }
    if (n > 0) {
        rc = ensure_pump(s);
        if (rc)
            goto out_free;
    }
    s->feed_cb = cb;
    s->feed_ud = ud;
    while (head) {
        struct op *next = head->next;
        ops_append(s, head);
        head = next;
    }
    return 0;

out_free:
    while (head) {
        struct op *next = head->next;
        op_free(head);
        head = next;
    }
    return rc;
}

/* Ends a queued ticket from the sweep (expired, or cancelled by grace). */
static int sweep_end(struct tsm *s, struct rec *r, enum mw_ticket_state st, int64_t now_ms)
{
    struct op *ended = op_new(OP_ENDED, r);
    int rc;

    if (!ended)
        return MW_ENOMEM;
    rc = ensure_pump(s);
    if (rc) {
        op_free(ended);
        return rc;
    }
    make_final(s, r, st, now_ms);
    r->t.version++;
    ended->t.state = st;
    ended->t.version = r->t.version;
    ops_append(s, ended);
    return 0;
}

static int tsm_sweep(void *impl, int64_t now_ms)
{
    struct tsm *s = impl;
    int changed = 0, rc;

    if (s->closing)
        return MW_ECLOSED;
    while (s->queued.head && s->queued.head->t.expires_ms <= now_ms) {
        rc = sweep_end(s, s->queued.head, MW_TICKET_EXPIRED, now_ms);
        if (rc)
            return rc;
        changed++;
    }
    while (s->grace.head && s->grace.head->grace_deadline_ms <= now_ms) {
        rc = sweep_end(s, s->grace.head, MW_TICKET_CANCELLED, now_ms);
        if (rc)
            return rc;
        changed++;
    }
    /* (A pinned head waits for its assign result's delivery, one pump.) */
    while (s->final.head && !s->final.head->pins &&
           now_ms - s->final.head->final_ms >= s->cfg.assigned_ttl_ms) {
        forget(s, s->final.head);
        changed++;
    }
    return changed;
}

static void tsm_counts(void *impl, uint64_t n[4])
{
    const struct tsm *s = impl;

    memcpy(n, s->counts, sizeof(s->counts));
}

static int tsm_ready(void *impl, char *reason, size_t reason_len)
{
    (void)impl;
    if (reason && reason_len)
        reason[0] = '\0';
    return 0;
}

static void tsm_destroy(void *impl)
{
    struct tsm *s = impl;

    if (!s || s->closing)
        return;
    s->closing = true;
    if (s->pump_posted)
        mw_defer_cancel(s->defer, pump, s);
    s->pump_posted = false;
    if (s->in_pump)
        return; /* the running pump frees everything when the callback returns */
    free_everything(s);
}

static const struct mw_ticket_store_ops tsm_ops = {
    .create = tsm_create,
    .get = tsm_get,
    .cancel = tsm_cancel,
    .attach = tsm_attach,
    .detach = tsm_detach,
    .assign = tsm_assign,
    .feed = tsm_feed,
    .sweep = tsm_sweep,
    .counts = tsm_counts,
    .ready = tsm_ready,
    .destroy = tsm_destroy,
};

int mw_ticket_store_memory_new(struct mw_ticket_store *out,
                               const struct mw_ticket_store_config *cfg,
                               const struct mw_ticket_store_hooks *hooks, struct mw_defer *defer,
                               mw_random_fn rnd, void *rnd_ud)
{
    struct tsm *s;

    if (!out || !defer || !rnd)
        return MW_EINVAL;
    s = mw_calloc(1, sizeof(*s));
    if (!s)
        return MW_ENOMEM;
    if (cfg)
        s->cfg = *cfg;
    if (s->cfg.ticket_ttl_ms <= 0)
        s->cfg.ticket_ttl_ms = TSM_DEFAULT_TTL_MS;
    if (s->cfg.assigned_ttl_ms <= 0)
        s->cfg.assigned_ttl_ms = TSM_DEFAULT_ASSIGNED_TTL_MS;
    if (s->cfg.grace_ms <= 0)
        s->cfg.grace_ms = TSM_DEFAULT_GRACE_MS;
    if (s->cfg.max_tickets == 0)
        s->cfg.max_tickets = TSM_DEFAULT_MAX_TICKETS;
    if (hooks)
        s->hooks = *hooks;
    s->defer = defer;
    s->rnd = rnd;
    s->rnd_ud = rnd_ud;
    if (mw_hash_key_random(&s->hash_key, rnd, rnd_ud) != 0) {
        mw_free(s);
        return MW_EIO;
    }
    if (mw_map_init(&s->by_id, TSM_INITIAL_BUCKETS, TSM_MAX_BUCKETS) != 0)
        goto out_free;
    if (mw_map_init(&s->by_idem, TSM_INITIAL_BUCKETS, TSM_MAX_BUCKETS) != 0)
        goto out_free_id;
    out->ops = &tsm_ops;
    out->impl = s;
    return 0;

out_free_id:
    mw_map_release(&s->by_id);
out_free:
    mw_free(s);
    return MW_ENOMEM;
}
