/* worker: the matchmaking role. Feed -> matchmaker -> store commit (CAS) ->
 * channel publish, in that order: the store is the truth, the publish only a
 * hint.
 *
 * Each formed group becomes a heap "commit" (the match, its envelopes, the
 * entries to requeue) that lives until the store's assign callback. The
 * worker keeps its commits on a list so that whichever goes first, store or
 * worker, nobody touches freed memory: a store destroyed first calls back
 * with MW_ECLOSED; a worker freed first orphans its commits, which the store
 * later frees in the callback. A group whose assign call fails at once is
 * parked and requeued on the next feed event or callback (a later loop turn),
 * never from inside the matchmaker's callback, which would spin.
 *
 * A commit is sized for MW_MATCH_SIZE_MAX players (struct mw_match is), but
 * only the first n players' fields are written: nothing is zeroed (a calloc
 * of all 6.8 KB cost ~5,000 instructions per assignment for 2-player
 * matches). Finished commits go to a small free list (WORKER_FREE_MAX) that
 * keeps their envelope buffers' storage, so in steady state forming a match
 * neither mallocs nor grows a buffer by realloc. */
#include "worker.h"

#include "alloc.h"
#include "error.h"
#include "failpoint.h"
#include "log.h"
#include "messages.h"

#include <stdbool.h>
#include <string.h>

#define WORKER_MAX_PARKED 64
/* Idle commits kept for reuse. Bound: 16 x (~7 KB + the kept envelope
 * buffers, each at most WORKER_KEEP_ENV_CAP) for 2-player matches ~0.2 MB;
 * a buffer that grew larger (a big match) is released, not kept. */
#define WORKER_FREE_MAX     16
#define WORKER_KEEP_ENV_CAP 4096

struct commit {
    struct commit *prev, *next; /* the worker's pending list */
    struct mw_worker *w;        /* NULL when the worker was freed first */
    char queue[MW_QUEUE_MAX + 1];
    char region[MW_REGION_MAX + 1];
    size_t n;
    struct mw_mm_entry entries[MW_MATCH_SIZE_MAX];
    struct mw_match m;
    struct mw_buf env[MW_MATCH_SIZE_MAX];
};

struct mw_worker {
    struct mw_worker_config cfg;
    struct mw_ticket_store *store;
    struct mw_channel *channel;
    struct mw_matchmaker *mm;
    mw_random_fn rnd;
    void *rnd_ud;
    int64_t (*now_fn)(void *ud);
    void *now_ud;
    size_t next_server;
    struct mw_worker_stats stats;
    struct mw_ratelimit log_rl;
    struct commit *pending;
    struct commit *free_list[WORKER_FREE_MAX]; /* idle commits, envelope storage kept */
    size_t n_free;
    struct commit *parked[WORKER_MAX_PARKED];
    size_t n_parked;
    bool unparking;
};

static void commit_destroy(struct commit *c)
{
    for (size_t i = 0; i < MW_MATCH_SIZE_MAX; i++)
        mw_buf_release(&c->env[i]);
    mw_free(c);
}

/* A commit with every envelope buffer empty, from the free list or the heap
 * (uninitialised but for the buffers). NULL when out of memory. */
static struct commit *commit_get(struct mw_worker *w)
{
    struct commit *c;

    if (w->n_free > 0)
        return w->free_list[--w->n_free];
    c = mw_malloc(sizeof(*c));
    if (!c)
        return NULL;
    for (size_t i = 0; i < MW_MATCH_SIZE_MAX; i++)
        mw_buf_init(&c->env[i], MW_ENVELOPE_MAX_BYTES);
    return c;
}

/* Done with c: back to w's free list (w NULL: the worker is gone) or freed. */
static void commit_put(struct mw_worker *w, struct commit *c)
{
    if (!w || w->n_free == WORKER_FREE_MAX) {
        commit_destroy(c);
        return;
    }
    for (size_t i = 0; i < MW_MATCH_SIZE_MAX; i++) {
        if (c->env[i].cap > WORKER_KEEP_ENV_CAP)
            mw_buf_release(&c->env[i]);
        else
            mw_buf_reset(&c->env[i]);
    }
    w->free_list[w->n_free++] = c;
}

static void pending_add(struct mw_worker *w, struct commit *c)
{
    c->prev = NULL;
    c->next = w->pending;
    if (w->pending)
        w->pending->prev = c;
    w->pending = c;
}

static void pending_remove(struct mw_worker *w, struct commit *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        w->pending = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static bool log_ok(struct mw_worker *w)
{
    return mw_ratelimit_allow(&w->log_rl, w->now_fn(w->now_ud));
}

static void requeue_except(struct mw_worker *w, const struct commit *c, size_t skip)
{
    struct mw_mm_entry keep[MW_MATCH_SIZE_MAX];
    size_t k = 0;
    int rc;

    for (size_t i = 0; i < c->n; i++)
        if (i != skip)
            keep[k++] = c->entries[i];
    rc = mw_matchmaker_requeue(w->mm, c->queue, c->region, keep, k);
    if (rc && log_ok(w))
        mw_log(MW_LOG_ERR, "worker: requeue failed (%s); tickets wait for expiry", mw_strerror(rc));
}

/* Requeues groups whose assign call failed at once (from a later turn). */
static void unpark(struct mw_worker *w)
{
    if (w->n_parked == 0 || w->unparking)
        return;
    w->unparking = true;
    while (w->n_parked > 0) {
        struct commit *c = w->parked[--w->n_parked];
        requeue_except(w, c, SIZE_MAX);
        commit_put(w, c);
    }
    w->unparking = false;
}

static void on_assigned(void *ud, const struct mw_assign_result *r)
{
    struct commit *c = ud;
    struct mw_worker *w = c->w;

    if (!w || r->status == MW_ECLOSED) {
        /* Worker gone, or store destroyed: nothing to publish or requeue. */
        if (w)
            pending_remove(w, c);
        commit_put(w, c);
        return;
    }
    pending_remove(w, c);
    if (r->status == 0) {
        w->stats.matches++;
        mw_failpoint_crash("worker_after_commit");
        if (r->published) {
            /* The store published with the commit (CHN-062). */
            w->stats.published += r->n;
            goto out;
        }
        for (size_t i = 0; i < r->n; i++) {
            const struct mw_ticket *t = &r->tickets[i];
            struct mw_assigned a = {.ticket_id = t->id,
                                    .envelope = t->assigned_envelope,
                                    .envelope_len = t->assigned_envelope_len,
                                    .version = t->version,
                                    .assigned_ms = c->m.assigned_ms};
            int rc = mw_channel_publish(w->channel, &a);
            if (rc) {
                /* The store has it: a watcher gets it on its next watch. */
                w->stats.publish_errors++;
                if (log_ok(w))
                    mw_log(MW_LOG_WARN, "worker: publish failed (%s)", mw_strerror(rc));
            } else {
                w->stats.published++;
            }
        }
    } else if (r->status == MW_ESTATE) {
        /* One ticket left the queue meanwhile: it is gone; the others go
         * back to the front of their pool. */
        w->stats.commit_conflicts++;
        requeue_except(w, c, r->failed);
    } else {
        if (log_ok(w))
            mw_log(MW_LOG_WARN, "worker: commit failed (%s); requeued", mw_strerror(r->status));
        requeue_except(w, c, SIZE_MAX);
    }
out:
    commit_put(w, c);
    unpark(w);
}

static void park(struct mw_worker *w, struct commit *c, int rc)
{
    if (log_ok(w))
        mw_log(MW_LOG_WARN, "worker: cannot commit a match now (%s)", mw_strerror(rc));
    if (w->n_parked == WORKER_MAX_PARKED) {
        if (log_ok(w))
            mw_log(MW_LOG_ERR, "worker: too many parked groups; %zu tickets wait for expiry", c->n);
        commit_put(w, c);
        return;
    }
    w->parked[w->n_parked++] = c;
}

/* A group formed: build the match and its envelopes, commit it. */
static void on_group(void *ud, const struct mw_mm_group *g)
{
    struct mw_worker *w = ud;
    struct commit *c = commit_get(w);
    int rc;

    if (!c) {
        if (log_ok(w))
            mw_log(MW_LOG_ERR, "worker: out of memory forming a match; tickets wait for expiry");
        return;
    }
    /* Only what the n players use is written (see the top of the file). */
    c->prev = c->next = NULL;
    c->w = NULL;
    c->n = g->n;
    memcpy(c->entries, g->entries, g->n * sizeof(g->entries[0]));
    memcpy(c->queue, g->queue, strlen(g->queue) + 1);
    memcpy(c->region, g->region, strlen(g->region) + 1);

    rc = mw_uuid4(w->rnd, w->rnd_ud, c->m.match_id);
    if (rc)
        goto out_park;
    memcpy(c->m.connection, w->cfg.game_servers[w->next_server], sizeof(c->m.connection));
    w->next_server = (w->next_server + 1) % w->cfg.n_game_servers;
    c->m.assigned_ms = w->now_fn(w->now_ud);
    c->m.n = c->n;
    for (size_t i = 0; i < c->n; i++) {
        memcpy(c->m.ticket_ids[i], c->entries[i].ticket_id, sizeof(c->m.ticket_ids[i]));
        memcpy(c->m.player_ids[i], c->entries[i].player_id, sizeof(c->m.player_ids[i]));
        c->m.versions[i] = c->entries[i].version + 1;
    }
    for (size_t i = 0; i < c->n; i++) {
        rc = mw_msg_encode_match_assigned(&c->env[i], &c->m, i, c->m.versions[i]);
        if (rc)
            goto out_park;
        c->m.envelopes[i] = c->env[i].data;
        c->m.envelope_lens[i] = c->env[i].len;
    }
    rc = mw_ticket_store_assign(w->store, &c->m, on_assigned, c);
    if (rc)
        goto out_park;
    c->w = w;
    pending_add(w, c);
    return;

out_park:
    park(w, c, rc);
}

static void on_feed(void *ud, enum mw_feed_event ev, const struct mw_ticket *t)
{
    struct mw_worker *w = ud;
    int rc;

    unpark(w);
    if (ev == MW_FEED_QUEUED) {
        if (t->state != MW_TICKET_QUEUED)
            return;
        rc = mw_matchmaker_add(w->mm, t);
        if (rc && log_ok(w))
            mw_log(MW_LOG_WARN, "worker: ticket not matched (%s)", mw_strerror(rc));
    } else {
        (void)mw_matchmaker_remove(w->mm, t->id);
    }
}

struct mw_worker *mw_worker_new(const struct mw_worker_config *cfg, struct mw_ticket_store *store,
                                struct mw_channel *channel, mw_random_fn rnd, void *rnd_ud,
                                int64_t (*now_fn)(void *ud), void *now_ud)
{
    struct mw_worker *w;

    if (!cfg || !store || !channel || !rnd || !now_fn || cfg->n_game_servers == 0 ||
        cfg->n_game_servers > MW_GAME_SERVERS_MAX)
        return NULL;
    w = mw_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->cfg = *cfg;
    w->store = store;
    w->channel = channel;
    w->rnd = rnd;
    w->rnd_ud = rnd_ud;
    w->now_fn = now_fn;
    w->now_ud = now_ud;
    mw_ratelimit_init(&w->log_rl, 1, 10);
    w->mm = mw_matchmaker_new(&cfg->mm, on_group, w);
    if (!w->mm)
        goto out_free;
    if (mw_ticket_store_feed(store, on_feed, w) != 0)
        goto out_free_mm;
    return w;

out_free_mm:
    mw_matchmaker_free(w->mm);
out_free:
    mw_free(w);
    return NULL;
}

void mw_worker_free(struct mw_worker *w)
{
    if (!w)
        return;
    /* Commits still in the store: orphaned, freed by their callback. */
    for (struct commit *c = w->pending; c; c = c->next)
        c->w = NULL;
    while (w->n_parked > 0)
        commit_destroy(w->parked[--w->n_parked]);
    while (w->n_free > 0)
        commit_destroy(w->free_list[--w->n_free]);
    mw_matchmaker_free(w->mm);
    mw_free(w);
}

void mw_worker_stats(const struct mw_worker *w, struct mw_worker_stats *out)
{
    *out = w->stats;
}

size_t mw_worker_waiting(const struct mw_worker *w)
{
    return mw_matchmaker_waiting(w->mm);
}
