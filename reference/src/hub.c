/* hub: the gateway's routing table, ticket id -> the watchers of it.
 *
 * One map entry per watched ticket (map.h), each holding a small array of
 * watcher pointers. Pushing to a ticket's watchers may lead a watcher to
 * unwatch (or watch) during the loop, so an entry being iterated only marks
 * removed slots empty and is compacted (or freed) when the iteration ends.
 * The hub knows watchers only through their ops (hub.h): it includes no
 * session header. */
#include "hub.h"

#include "alloc.h"
#include "error.h"
#include "map.h"

#include <stdbool.h>
#include <string.h>

#define HUB_DEFAULT_MAX_WATCHES 1000000
#define HUB_INITIAL_BUCKETS     256
#define HUB_MAX_BUCKETS         ((size_t)1 << 24)
/* Watchers held in the entry itself: a ticket is usually watched by its one
 * creator (two with a second device), so watching it allocates only the
 * entry. */
#define HUB_INLINE_WATCHERS 2

struct hub_entry {
    struct mw_map_node node;
    char ticket_id[MW_CHANNEL_TICKET_ID_MAX + 1];
    struct mw_watcher **w; /* inl or owned; NULL slots only while iterating */
    size_t n, cap;
    unsigned iterating; /* nesting depth of pushes in progress */
    size_t holes;       /* NULL slots to compact after iterating */
    struct mw_watcher *inl[HUB_INLINE_WATCHERS];
};

static void entry_free(struct hub_entry *e)
{
    if (e->w != e->inl)
        mw_free(e->w);
    mw_free(e);
}

struct mw_hub {
    struct mw_map entries;
    size_t n_watches; /* (ticket, watcher) pairs */
    size_t max_watches;
    struct mw_hash_key key; /* ticket ids can be chosen by clients (watch) */
};

struct mw_hub *mw_hub_new(size_t max_watches)
{
    struct mw_hash_key key;

    if (mw_hash_key_random(&key, mw_random_os, NULL) != 0)
        return NULL;
    return mw_hub_new_keyed(max_watches, &key);
}

struct mw_hub *mw_hub_new_keyed(size_t max_watches, const struct mw_hash_key *key)
{
    struct mw_hub *h = mw_calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    if (mw_map_init(&h->entries, HUB_INITIAL_BUCKETS, HUB_MAX_BUCKETS) != 0) {
        mw_free(h);
        return NULL;
    }
    h->max_watches = max_watches ? max_watches : HUB_DEFAULT_MAX_WATCHES;
    h->key = *key;
    return h;
}

static void entry_drop(struct mw_map_node *n, void *ud)
{
    (void)ud;
    entry_free(MW_CONTAINER_OF(n, struct hub_entry, node));
}

void mw_hub_free(struct mw_hub *h)
{
    if (!h)
        return;
    mw_map_drain(&h->entries, entry_drop, NULL);
    mw_map_release(&h->entries);
    mw_free(h);
}

static struct hub_entry *find(const struct mw_hub *h, const char *id, uint64_t hash)
{
    for (struct mw_map_node *n = mw_map_bucket(&h->entries, hash); n; n = n->next) {
        struct hub_entry *e = MW_CONTAINER_OF(n, struct hub_entry, node);

        if (n->hash == hash && strcmp(e->ticket_id, id) == 0)
            return e;
    }
    return NULL;
}

static void entry_unlink_free(struct mw_hub *h, struct hub_entry *e)
{
    mw_map_remove(&h->entries, &e->node);
    entry_free(e);
}

int mw_hub_watch(struct mw_hub *h, const char *ticket_id, struct mw_watcher *w)
{
    size_t id_len;
    uint64_t hash;
    struct hub_entry *e;
    bool fresh = false;

    if (!h || !ticket_id || !w)
        return MW_EINVAL;
    id_len = strlen(ticket_id);
    if (id_len == 0 || id_len > MW_CHANNEL_TICKET_ID_MAX)
        return MW_EINVAL;
    hash = mw_hash_str(&h->key, ticket_id);
    e = find(h, ticket_id, hash);
    if (e) {
        for (size_t i = 0; i < e->n; i++)
            if (e->w[i] == w)
                return 0; /* watching twice is a no-op */
    }
    if (h->n_watches >= h->max_watches)
        return MW_ELIMIT;
    if (!e) {
        e = mw_calloc(1, sizeof(*e));
        if (!e)
            return MW_ENOMEM;
        memcpy(e->ticket_id, ticket_id, id_len + 1);
        e->w = e->inl;
        e->cap = HUB_INLINE_WATCHERS;
        fresh = true;
    }
    if (e->n == e->cap) { /* never for a fresh entry */
        size_t ncap = e->cap * 2;
        struct mw_watcher **nw;

        if (e->w == e->inl) {
            nw = mw_malloc(ncap * sizeof(*nw));
            if (nw)
                memcpy(nw, e->inl, e->n * sizeof(*nw));
        } else {
            nw = mw_realloc(e->w, ncap * sizeof(*nw));
        }
        if (!nw)
            return MW_ENOMEM;
        e->w = nw;
        e->cap = ncap;
    }
    e->w[e->n++] = w;
    h->n_watches++;
    if (fresh)
        mw_map_insert(&h->entries, &e->node, hash);
    return 0;
}

void mw_hub_unwatch(struct mw_hub *h, const char *ticket_id, struct mw_watcher *w)
{
    struct hub_entry *e;

    if (!h || !ticket_id || !w)
        return;
    e = find(h, ticket_id, mw_hash_str(&h->key, ticket_id));
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++) {
        if (e->w[i] != w)
            continue;
        h->n_watches--;
        if (e->iterating) {
            e->w[i] = NULL; /* compacted when the push loop ends */
            e->holes++;
            return;
        }
        e->w[i] = e->w[--e->n];
        if (e->n == 0)
            entry_unlink_free(h, e);
        return;
    }
}

/* Ends a push loop over e: compacts the holes left by unwatch, frees e when
 * nobody watches any more. */
static void entry_end_iteration(struct mw_hub *h, struct hub_entry *e)
{
    size_t k = 0;

    if (--e->iterating > 0 || e->holes == 0)
        return;
    for (size_t i = 0; i < e->n; i++)
        if (e->w[i])
            e->w[k++] = e->w[i];
    e->n = k;
    e->holes = 0;
    if (e->n == 0)
        entry_unlink_free(h, e);
}

void mw_hub_on_assigned(void *hub, const struct mw_assigned *msg)
{
    struct mw_hub *h = hub;
    struct hub_entry *e;
    size_t n;

    if (!h || !msg || !msg->ticket_id)
        return;
    e = find(h, msg->ticket_id, mw_hash_str(&h->key, msg->ticket_id));
    if (!e)
        return; /* nobody here watches it: the store still has it */
    /* Watchers that start watching during the loop are not pushed to here:
     * they read the store after registering (subscribe-before-read). */
    n = e->n;
    e->iterating++;
    for (size_t i = 0; i < n; i++)
        if (e->w[i])
            e->w[i]->ops->assigned(e->w[i], msg);
    entry_end_iteration(h, e);
}

void mw_hub_on_ended(void *hub, const struct mw_ticket *t)
{
    struct mw_hub *h = hub;
    struct hub_entry *e;
    size_t n;

    if (!h || !t)
        return;
    e = find(h, t->id, mw_hash_str(&h->key, t->id));
    if (!e)
        return;
    n = e->n;
    e->iterating++;
    for (size_t i = 0; i < n; i++)
        if (e->w[i])
            e->w[i]->ops->ended(e->w[i], t);
    entry_end_iteration(h, e);
}

void mw_hub_on_reread(void *hub, const struct mw_ticket *t)
{
    if (!hub || !t)
        return;
    if (t->state == MW_TICKET_ASSIGNED && t->assigned_envelope) {
        struct mw_assigned a = {
            .ticket_id = t->id,
            .envelope = t->assigned_envelope,
            .envelope_len = t->assigned_envelope_len,
            .version = t->version,
            .assigned_ms = t->ended_ms,
            .recovery = true,
        };

        mw_hub_on_assigned(hub, &a);
    } else if (t->state == MW_TICKET_CANCELLED || t->state == MW_TICKET_EXPIRED) {
        mw_hub_on_ended(hub, t);
    }
}

size_t mw_hub_watch_count(const struct mw_hub *h)
{
    return h ? h->n_watches : 0;
}

struct foreach_ctx {
    void (*fn)(void *ud, const char *ticket_id);
    void *ud;
    size_t n;
};

static void foreach_entry(const struct mw_map_node *m, void *ud)
{
    const struct hub_entry *e = MW_CONTAINER_OF_CONST(m, struct hub_entry, node);
    struct foreach_ctx *c = ud;

    if (e->n > e->holes) {
        c->fn(c->ud, e->ticket_id);
        c->n++;
    }
}

size_t mw_hub_foreach_ticket(const struct mw_hub *h, void (*fn)(void *ud, const char *ticket_id),
                             void *ud)
{
    struct foreach_ctx c = {.fn = fn, .ud = ud};

    if (!h)
        return 0;
    mw_map_foreach(&h->entries, foreach_entry, &c);
    return c.n;
}
