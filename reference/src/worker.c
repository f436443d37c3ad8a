/* worker: the matchmaking role. Feed -> matchmaker -> store commit (CAS) ->
 * channel publish, in that order: the store is the truth, the publish only a
 * hint.
 *
 * Each formed group becomes a heap "commit" (the match, its envelopes, the
 * entries to requeue) that lives until the store's assign callback. The
 * worker keeps its commits on a list so that whichever goes first, store or
 * worker, nobody touches freed memory: a store destroyed first calls back
 * with MW_ECLOSED; a worker freed first orphans its commits, which the store
 * later frees in the callback.
 *
 * A group whose commit fails for want of the store (the assign call
 * refuses it, or its callback says unavailable: Redis down or stalled) is
 * parked, never requeued at once: the matchmaker would form the same match
 * and the store fail it again, a loop with no end while Redis is down
 * (issue 11). Parked groups go back to the matchmaker only when the store
 * says it is ready AND a not-before time has passed, which doubles with
 * every failure in a row (WORKER_RETRY_MIN_MS to WORKER_RETRY_MAX_MS) and
 * resets on a commit that succeeds (spec/channel.md CHN-106). The check
 * runs on feed events, assign callbacks and mw_worker_retry(), which the
 * server calls from a timer (the worker has no clock of its own). Nothing
 * is dropped: the compare-and-set makes a retried group safe even when its
 * tickets also came back through the feed's rebuild.
 *
 * A commit is sized for MW_MATCH_SIZE_MAX players (struct mw_match is), but
 * only the first n players' fields are written: nothing is zeroed (zeroing
 * all 6.8 KB was a measurable share of the assignment path). Finished
 * commits go to a small free list (WORKER_FREE_MAX) that keeps their
 * envelope buffers' storage, so in steady state forming a match neither
 * mallocs nor grows a buffer by realloc. */
#include "worker.h"

#include "alloc.h"
#include "error.h"
#include "failpoint.h"
#include "log.h"
#include "ratelimit.h"
#include "messages.h"

#include <stdbool.h>
#include <string.h>

/* Backoff between retries of parked groups (CHN-106). */
#define WORKER_RETRY_MIN_MS 100
#define WORKER_RETRY_MAX_MS 2000
/* Idle commits kept for reuse. Bound: 16 x (~7 KB + the kept envelope
 * buffers, each at most WORKER_KEEP_ENV_CAP) for 2-player matches ~0.2 MB;
 * a buffer that grew larger (a big match) is released, not kept. */
#define WORKER_FREE_MAX     16
#define WORKER_KEEP_ENV_CAP 4096

struct commit {
    struct commit *prev, *next; /* the worker's pending list, or its parked list */
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
    /* Groups waiting for the store (oldest first). Bound: their tickets
     * left the matchmaker, whose max_waiting bounds them. */
    struct commit *parked_head, *parked_tail;
    size_t n_parked;
    int64_t retry_at_ms;    /* parked groups wait until then (unix ms) */
    int64_t retry_delay_ms; /* the current backoff; 0 after a successful commit */
    uint64_t park_events;   /* groups parked since _new, for the unpark loop guard */
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

static void parked_append(struct mw_worker *w, struct commit *c)
{
    c->next = NULL;
    c->prev = w->parked_tail;
    if (w->parked_tail)
        w->parked_tail->next = c;
    else
        w->parked_head = c;
    w->parked_tail = c;
    w->n_parked++;
}

/* The store cannot take commits now: back off before the next try. */
static void backoff(struct mw_worker *w, int64_t now)
{
    if (w->retry_delay_ms == 0)
        w->retry_delay_ms = WORKER_RETRY_MIN_MS;
    else if (w->retry_delay_ms < WORKER_RETRY_MAX_MS)
        w->retry_delay_ms *= 2;
    if (w->retry_delay_ms > WORKER_RETRY_MAX_MS)
        w->retry_delay_ms = WORKER_RETRY_MAX_MS;
    w->retry_at_ms = now + w->retry_delay_ms;
}

/* Whether parked groups may go back now: the backoff has passed (or the
 * clock went back by more than a backoff) and the store says it is ready. */
static bool retry_due(struct mw_worker *w, int64_t now)
{
    if (now < w->retry_at_ms && w->retry_at_ms - now <= WORKER_RETRY_MAX_MS)
        return false;
    return w->store->ops->ready(w->store->impl, NULL, 0) == 0;
}

/* Requeues the parked groups, oldest first, when due (never from inside
 * the matchmaker's callback: `unparking`). A group that fails again is
 * parked again with a longer backoff, and then the rest wait too: each
 * group is tried at most once per call. */
static void unpark(struct mw_worker *w, int64_t now)
{
    struct commit *c;
    uint64_t parks;

    if (w->n_parked == 0 || w->unparking || !retry_due(w, now))
        return;
    w->unparking = true;
    c = w->parked_head;
    w->parked_head = w->parked_tail = NULL;
    w->n_parked = 0;
    parks = w->park_events;
    while (c) {
        struct commit *next = c->next;

        if (w->park_events != parks) {
            parked_append(w, c); /* the store failed again: wait with the others */
        } else {
            requeue_except(w, c, SIZE_MAX);
            commit_put(w, c);
        }
        c = next;
    }
    w->unparking = false;
}

static void park(struct mw_worker *w, struct commit *c, int rc)
{
    int64_t now = w->now_fn(w->now_ud);

    if (log_ok(w))
        mw_log(MW_LOG_WARN,
               "worker: cannot commit a match now (%s); retrying when the store is ready",
               mw_strerror(rc));
    w->park_events++;
    backoff(w, now);
    parked_append(w, c);
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
        w->retry_delay_ms = 0;
        w->retry_at_ms = 0;
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
        /* Unavailable (Redis down or stalled), out of memory, a bad reply:
         * the match did not commit, or we cannot tell. Parked, so the
         * matchmaker does not form it again at once (CHN-106); a retry of
         * a match that did commit fails its compare-and-set. */
        w->stats.commit_failures++;
        park(w, c, r->status);
        return;
    }
out:
    commit_put(w, c);
    unpark(w, w->now_fn(w->now_ud));
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

    unpark(w, w->now_fn(w->now_ud));
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
    while (w->parked_head) {
        struct commit *c = w->parked_head;

        w->parked_head = c->next;
        commit_destroy(c);
    }
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

size_t mw_worker_parked(const struct mw_worker *w)
{
    size_t n = 0;

    for (const struct commit *c = w->parked_head; c; c = c->next)
        n += c->n;
    return n;
}

int mw_worker_retry(struct mw_worker *w, int64_t now_ms)
{
    if (!w)
        return MW_EINVAL;
    unpark(w, now_ms);
    return w->n_parked ? MW_EAGAIN : 0;
}
