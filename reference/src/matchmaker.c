/* matchmaker: FIFO per (queue, region) pool, match formation.
 *
 * Each waiting ticket is a node in its pool's doubly-linked FIFO and in an
 * index by ticket id (map.h), so add, remove and requeue are O(1) on
 * average. Pools are in a map keyed by (queue, region) and are freed when
 * empty (except while a match callback is running, when they are freed
 * afterwards). */
#include "matchmaker.h"

#include "alloc.h"
#include "error.h"
#include "invariant.h"
#include "map.h"

#include <string.h>

#define MM_DEFAULT_SIZE        2
#define MM_DEFAULT_MAX_WAITING 1000000
#define MM_POOL_BUCKETS        64 /* initial; the pool map grows by doubling */
#define MM_POOL_MAX_BUCKETS    ((size_t)1 << 20)
#define MM_INITIAL_BUCKETS     256
#define MM_MAX_BUCKETS         ((size_t)1 << 24)

struct mm_pool;

struct mm_node {
    struct mw_mm_entry e;
    struct mm_pool *pool;
    struct mm_node *prev, *next; /* FIFO */
    struct mw_map_node id_node;  /* in mm->ids */
};

struct mm_pool {
    struct mw_map_node node; /* in mm->pools */
    char queue[MW_QUEUE_MAX + 1];
    char region[MW_REGION_MAX + 1];
    unsigned size;
    struct mm_node *head, *tail;
    size_t n;
    bool sweep_pending; /* on mm->sweep: emptied while a match formed */
    struct mm_pool *sweep_next;
};

struct mw_matchmaker {
    struct mw_matchmaker_config cfg;
    mw_mm_match_cb cb;
    void *ud;
    struct mw_map pools; /* struct mm_pool by (queue, region) */
    struct mw_map ids;   /* struct mm_node by ticket id */
    size_t waiting;
    unsigned forming;       /* depth of match callbacks in progress */
    struct mm_pool *sweep;  /* pools that emptied while forming: freed after */
    struct mw_hash_key key; /* (queue, region) are client-chosen */
};

static uint64_t pool_hash(const struct mw_matchmaker *mm, const char *queue, const char *region)
{
    return mw_hash_pair(&mm->key, queue, region);
}

static unsigned clamp_size(unsigned n)
{
    if (n < 1)
        return MM_DEFAULT_SIZE;
    return n > MW_MATCH_SIZE_MAX ? MW_MATCH_SIZE_MAX : n;
}

struct mw_matchmaker *mw_matchmaker_new(const struct mw_matchmaker_config *cfg, mw_mm_match_cb cb,
                                        void *ud)
{
    struct mw_matchmaker *mm;

    if (!cfg || !cb || cfg->n_overrides > MW_MM_MAX_OVERRIDES)
        return NULL;
    mm = mw_calloc(1, sizeof(*mm));
    if (!mm)
        return NULL;
    mm->cfg = *cfg;
    if (cfg->has_hash_key)
        mm->key = cfg->hash_key;
    else if (mw_hash_key_random(&mm->key, mw_random_os, NULL) != 0) {
        mw_free(mm);
        return NULL;
    }
    mm->cfg.match_size = clamp_size(cfg->match_size);
    if (!mm->cfg.rule)
        mm->cfg.rule = &mw_match_rule_fifo;
    for (size_t i = 0; i < mm->cfg.n_overrides; i++)
        mm->cfg.overrides[i].size = clamp_size(mm->cfg.overrides[i].size);
    if (mm->cfg.max_waiting == 0)
        mm->cfg.max_waiting = MM_DEFAULT_MAX_WAITING;
    mm->cb = cb;
    mm->ud = ud;
    if (mw_map_init(&mm->ids, MM_INITIAL_BUCKETS, MM_MAX_BUCKETS) != 0 ||
        mw_map_init(&mm->pools, MM_POOL_BUCKETS, MM_POOL_MAX_BUCKETS) != 0) {
        mw_map_release(&mm->ids);
        mw_free(mm);
        return NULL;
    }
    return mm;
}

static void pool_drop(struct mw_map_node *m, void *ud)
{
    struct mm_pool *p = MW_CONTAINER_OF(m, struct mm_pool, node);
    struct mm_node *n = p->head;

    (void)ud;
    while (n) {
        struct mm_node *nn = n->next;

        mw_free(n);
        n = nn;
    }
    mw_free(p);
}

void mw_matchmaker_free(struct mw_matchmaker *mm)
{
    if (!mm)
        return;
    mw_map_drain(&mm->pools, pool_drop, NULL); /* the nodes go with their pools */
    mw_map_release(&mm->pools);
    mw_map_release(&mm->ids);
    mw_free(mm);
}

unsigned mw_matchmaker_size_for(const struct mw_matchmaker *mm, const char *queue)
{
    for (size_t i = 0; i < mm->cfg.n_overrides; i++)
        if (strcmp(mm->cfg.overrides[i].queue, queue) == 0)
            return mm->cfg.overrides[i].size;
    return mm->cfg.match_size;
}

size_t mw_matchmaker_waiting(const struct mw_matchmaker *mm)
{
    return mm->waiting;
}

/* ---- Id index ------------------------------------------------------------ */

static struct mm_node *id_find(const struct mw_matchmaker *mm, const char *id, uint64_t h)
{
    for (struct mw_map_node *m = mw_map_bucket(&mm->ids, h); m; m = m->next) {
        struct mm_node *n = MW_CONTAINER_OF(m, struct mm_node, id_node);

        if (m->hash == h && strcmp(n->e.ticket_id, id) == 0)
            return n;
    }
    return NULL;
}

/* ---- Pools --------------------------------------------------------------- */

static struct mm_pool *pool_get(struct mw_matchmaker *mm, const char *queue, const char *region,
                                bool create)
{
    uint64_t h = pool_hash(mm, queue, region);
    struct mm_pool *p;

    for (struct mw_map_node *m = mw_map_bucket(&mm->pools, h); m; m = m->next) {
        p = MW_CONTAINER_OF(m, struct mm_pool, node);
        if (m->hash == h && strcmp(p->queue, queue) == 0 && strcmp(p->region, region) == 0)
            return p;
    }
    if (!create)
        return NULL;
    if (strlen(queue) > MW_QUEUE_MAX || strlen(region) > MW_REGION_MAX)
        return NULL;
    p = mw_calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    memcpy(p->queue, queue, strlen(queue) + 1);
    memcpy(p->region, region, strlen(region) + 1);
    p->size = mw_matchmaker_size_for(mm, queue);
    mw_map_insert(&mm->pools, &p->node, h);
    return p;
}

/* A pool that emptied while a match callback runs (which may still use it
 * or requeue into it) is freed when the outermost callback returns. */
static void pool_defer_free(struct mw_matchmaker *mm, struct mm_pool *p)
{
    if (p->sweep_pending)
        return;
    p->sweep_pending = true;
    p->sweep_next = mm->sweep;
    mm->sweep = p;
}

static void pool_free_if_empty(struct mw_matchmaker *mm, struct mm_pool *p)
{
    if (p->n > 0)
        return;
    if (mm->forming > 0 || p->sweep_pending) {
        pool_defer_free(mm, p);
        return;
    }
    mw_map_remove(&mm->pools, &p->node);
    mw_free(p);
}

/* Frees the pools that emptied during the callbacks and are still empty
 * (only those: not a walk over every bucket per match). */
static void pools_sweep_empty(struct mw_matchmaker *mm)
{
    while (mm->sweep) {
        struct mm_pool *p = mm->sweep;

        mm->sweep = p->sweep_next;
        p->sweep_pending = false;
        pool_free_if_empty(mm, p);
    }
}

static void unlink_node(struct mw_matchmaker *mm, struct mm_node *n)
{
    struct mm_pool *p = n->pool;

    if (n->prev)
        n->prev->next = n->next;
    else
        p->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        p->tail = n->prev;
    p->n--;
    mw_map_remove(&mm->ids, &n->id_node);
    mm->waiting--;
}

static const struct mw_mm_entry *view_next(const void **cursor)
{
    const struct mm_node *n = *cursor;

    if (!n)
        return NULL;
    *cursor = n->next;
    return &n->e;
}

/* Asks the rule for one match of p; moves its entries to group and returns
 * how many (0: none now). */
static size_t take_match(struct mw_matchmaker *mm, struct mm_pool *p,
                         struct mw_mm_entry group[MW_MATCH_SIZE_MAX])
{
    const struct mw_mm_pool_view view = {.queue = p->queue,
                                         .region = p->region,
                                         .size = p->size,
                                         .n = p->n,
                                         .first = p->head,
                                         .next = view_next};
    size_t picks[MW_MATCH_SIZE_MAX], k, pos = 0, j = 0;
    struct mm_node *n = p->head;

    k = mm->cfg.rule->pick(mm->cfg.rule->ud, &view, picks);
    MW_ASSERT(k <= MW_MATCH_SIZE_MAX);
    if (k == 0 || k > MW_MATCH_SIZE_MAX)
        return 0;
    while (n && j < k) {
        struct mm_node *next = n->next;

        MW_ASSERT(picks[j] >= pos); /* strictly ascending (match_rule.h) */
        if (pos == picks[j]) {
            group[j++] = n->e;
            unlink_node(mm, n);
            mw_free(n);
        }
        pos++;
        n = next;
    }
    MW_ASSERT(j == k); /* every position < pool->n */
    return j;
}

/* Forms every match the pool now allows, as the rule picks them. */
static void form(struct mw_matchmaker *mm, struct mm_pool *p)
{
    bool formed = false;

    for (;;) {
        struct mw_mm_entry group[MW_MATCH_SIZE_MAX];
        struct mw_mm_group g;
        size_t k = take_match(mm, p, group);

        if (k == 0)
            break;
        g = (struct mw_mm_group){.queue = p->queue, .region = p->region, .n = k, .entries = group};
        mm->forming++;
        mm->cb(mm->ud, &g); /* may requeue into this or another pool */
        mm->forming--;
        formed = true;
    }
    if (formed && p->n == 0)
        pool_defer_free(mm, p);
    if (formed && mm->forming == 0)
        pools_sweep_empty(mm);
}

static struct mm_node *node_new(struct mm_pool *p, const struct mw_mm_entry *e)
{
    struct mm_node *n = mw_calloc(1, sizeof(*n));

    if (!n)
        return NULL;
    n->e = *e;
    n->pool = p;
    return n;
}

static void index_node(struct mw_matchmaker *mm, struct mm_node *n, uint64_t h)
{
    mw_map_insert(&mm->ids, &n->id_node, h);
    mm->waiting++;
    n->pool->n++;
}

int mw_matchmaker_add(struct mw_matchmaker *mm, const struct mw_ticket *t)
{
    struct mw_mm_entry e;
    struct mm_pool *p;
    struct mm_node *n;
    uint64_t h;

    if (!mm || !t)
        return MW_EINVAL;
    h = mw_hash_str(&mm->key, t->id);
    if (id_find(mm, t->id, h))
        return 0; /* already waiting: the feed may deliver twice */
    if (mm->waiting >= mm->cfg.max_waiting)
        return MW_ELIMIT;
    memset(&e, 0, sizeof(e));
    memcpy(e.ticket_id, t->id, sizeof(e.ticket_id));
    memcpy(e.player_id, t->player_id, sizeof(e.player_id));
    e.version = t->version;
    p = pool_get(mm, t->queue, t->region, true);
    if (!p)
        return MW_ENOMEM;
    n = node_new(p, &e);
    if (!n) {
        pool_free_if_empty(mm, p);
        return MW_ENOMEM;
    }
    n->prev = p->tail;
    if (p->tail)
        p->tail->next = n;
    else
        p->head = n;
    p->tail = n;
    index_node(mm, n, h);
    form(mm, p);
    return 0;
}

int mw_matchmaker_requeue(struct mw_matchmaker *mm, const char *queue, const char *region,
                          const struct mw_mm_entry *entries, size_t n)
{
    struct mm_pool *p;
    int rc = 0;

    if (!mm || !queue || !region || (n && !entries))
        return MW_EINVAL;
    if (n == 0)
        return 0;
    p = pool_get(mm, queue, region, true);
    if (!p)
        return MW_ENOMEM;
    /* Back to the front, in their order: push the last one first. Not
     * bounded by max_waiting: these tickets were waiting a moment ago. */
    for (size_t i = n; i-- > 0;) {
        uint64_t h = mw_hash_str(&mm->key, entries[i].ticket_id);
        struct mm_node *nd;

        if (id_find(mm, entries[i].ticket_id, h))
            continue;
        nd = node_new(p, &entries[i]);
        if (!nd) {
            rc = MW_ENOMEM; /* this ticket is lost to matching; the store expires it */
            continue;
        }
        nd->next = p->head;
        if (p->head)
            p->head->prev = nd;
        else
            p->tail = nd;
        p->head = nd;
        index_node(mm, nd, h);
    }
    if (p->n == 0) { /* all were waiting already, or none could be stored */
        pool_free_if_empty(mm, p);
        return rc;
    }
    form(mm, p); /* may free p */
    return rc;
}

bool mw_matchmaker_remove(struct mw_matchmaker *mm, const char *ticket_id)
{
    struct mm_node *n;
    struct mm_pool *p;

    if (!mm || !ticket_id)
        return false;
    n = id_find(mm, ticket_id, mw_hash_str(&mm->key, ticket_id));
    if (!n)
        return false;
    p = n->pool;
    unlink_node(mm, n);
    mw_free(n);
    pool_free_if_empty(mm, p);
    return true;
}
