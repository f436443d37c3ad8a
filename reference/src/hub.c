/* hub: the gateway's routing table, ticket id -> the sessions watching it.
 *
 * A chained hash map of entries, one per watched ticket, each holding a
 * small array of session pointers. Pushing to a ticket's watchers may lead a
 * session to unwatch (or watch) during the loop, so an entry being iterated
 * only marks removed slots empty and is compacted (or freed) when the
 * iteration ends. */
#include "hub.h"

#include "alloc.h"
#include "error.h"
#include "session.h"

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
    struct hub_entry *next;
    uint64_t hash;
    char ticket_id[MW_CHANNEL_TICKET_ID_MAX + 1];
    struct mw_session **s; /* inl or owned; NULL slots only while iterating */
    size_t n, cap;
    unsigned iterating; /* nesting depth of pushes in progress */
    size_t holes;       /* NULL slots to compact after iterating */
    struct mw_session *inl[HUB_INLINE_WATCHERS];
};

static void entry_free(struct hub_entry *e)
{
    if (e->s != e->inl)
        mw_free(e->s);
    mw_free(e);
}

struct mw_hub {
    struct hub_entry **b;
    size_t nb; /* power of two */
    size_t n_entries;
    size_t n_watches; /* (ticket, session) pairs */
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
    h->b = mw_calloc(HUB_INITIAL_BUCKETS, sizeof(*h->b));
    if (!h->b) {
        mw_free(h);
        return NULL;
    }
    h->nb = HUB_INITIAL_BUCKETS;
    h->max_watches = max_watches ? max_watches : HUB_DEFAULT_MAX_WATCHES;
    h->key = *key;
    return h;
}

void mw_hub_free(struct mw_hub *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nb; i++) {
        struct hub_entry *e = h->b[i];
        while (e) {
            struct hub_entry *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    mw_free(h->b);
    mw_free(h);
}

static struct hub_entry *find(const struct mw_hub *h, const char *id, uint64_t hash)
{
    for (struct hub_entry *e = h->b[hash & (h->nb - 1)]; e; e = e->next)
        if (e->hash == hash && strcmp(e->ticket_id, id) == 0)
            return e;
    return NULL;
}

/* Doubles the buckets at load > 1; on allocation failure chains just grow. */
static void maybe_grow(struct mw_hub *h)
{
    size_t nnb = h->nb * 2;
    struct hub_entry **nb;

    if (h->n_entries <= h->nb || nnb > HUB_MAX_BUCKETS)
        return;
    nb = mw_calloc(nnb, sizeof(*nb));
    if (!nb)
        return;
    for (size_t i = 0; i < h->nb; i++) {
        struct hub_entry *e = h->b[i];
        while (e) {
            struct hub_entry *next = e->next;
            size_t j = e->hash & (nnb - 1);
            e->next = nb[j];
            nb[j] = e;
            e = next;
        }
    }
    mw_free(h->b);
    h->b = nb;
    h->nb = nnb;
}

static void entry_unlink_free(struct mw_hub *h, struct hub_entry *e)
{
    struct hub_entry **pp = &h->b[e->hash & (h->nb - 1)];

    for (; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    h->n_entries--;
    entry_free(e);
}

int mw_hub_watch(struct mw_hub *h, const char *ticket_id, struct mw_session *s)
{
    size_t id_len;
    uint64_t hash;
    struct hub_entry *e;
    bool fresh = false;

    if (!h || !ticket_id || !s)
        return MW_EINVAL;
    id_len = strlen(ticket_id);
    if (id_len == 0 || id_len > MW_CHANNEL_TICKET_ID_MAX)
        return MW_EINVAL;
    hash = mw_hash_str(&h->key, ticket_id);
    e = find(h, ticket_id, hash);
    if (e) {
        for (size_t i = 0; i < e->n; i++)
            if (e->s[i] == s)
                return 0; /* watching twice is a no-op */
    }
    if (h->n_watches >= h->max_watches)
        return MW_ELIMIT;
    if (!e) {
        e = mw_calloc(1, sizeof(*e));
        if (!e)
            return MW_ENOMEM;
        e->hash = hash;
        memcpy(e->ticket_id, ticket_id, id_len + 1);
        e->s = e->inl;
        e->cap = HUB_INLINE_WATCHERS;
        fresh = true;
    }
    if (e->n == e->cap) { /* never for a fresh entry */
        size_t ncap = e->cap * 2;
        struct mw_session **ns;

        if (e->s == e->inl) {
            ns = mw_malloc(ncap * sizeof(*ns));
            if (ns)
                memcpy(ns, e->inl, e->n * sizeof(*ns));
        } else {
            ns = mw_realloc(e->s, ncap * sizeof(*ns));
        }
        if (!ns)
            return MW_ENOMEM;
        e->s = ns;
        e->cap = ncap;
    }
    e->s[e->n++] = s;
    h->n_watches++;
    if (fresh) {
        size_t j = hash & (h->nb - 1);
        e->next = h->b[j];
        h->b[j] = e;
        h->n_entries++;
        maybe_grow(h);
    }
    return 0;
}

void mw_hub_unwatch(struct mw_hub *h, const char *ticket_id, struct mw_session *s)
{
    struct hub_entry *e;

    if (!h || !ticket_id || !s)
        return;
    e = find(h, ticket_id, mw_hash_str(&h->key, ticket_id));
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++) {
        if (e->s[i] != s)
            continue;
        h->n_watches--;
        if (e->iterating) {
            e->s[i] = NULL; /* compacted when the push loop ends */
            e->holes++;
            return;
        }
        e->s[i] = e->s[--e->n];
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
        if (e->s[i])
            e->s[k++] = e->s[i];
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
    /* Sessions that start watching during the loop are not pushed to here:
     * they read the store after registering (subscribe-before-read). */
    n = e->n;
    e->iterating++;
    for (size_t i = 0; i < n; i++)
        if (e->s[i])
            mw_session_push_assigned(e->s[i], msg);
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
        if (e->s[i])
            mw_session_push_ended(e->s[i], t);
    entry_end_iteration(h, e);
}

size_t mw_hub_watch_count(const struct mw_hub *h)
{
    return h ? h->n_watches : 0;
}

size_t mw_hub_foreach_ticket(const struct mw_hub *h, void (*fn)(void *ud, const char *ticket_id),
                             void *ud)
{
    size_t n = 0;

    if (!h)
        return 0;
    for (size_t i = 0; i < h->nb; i++)
        for (const struct hub_entry *e = h->b[i]; e; e = e->next)
            if (e->n > e->holes) {
                fn(ud, e->ticket_id);
                n++;
            }
    return n;
}
