/* map: the one hash map of the server, intrusive and chained (the shape of
 * the Linux hlist and nghttp2_map): the hub's routes, the matchmaker's ticket
 * and pool indexes and the memory store's ticket and idempotency indexes all
 * use it.
 *
 * A record embeds a struct mw_map_node per map it is in. The caller hashes
 * its key (keyed SipHash, ticket.h: keys are client-chosen) and compares
 * keys itself while walking a bucket:
 *
 *     for (n = mw_map_bucket(&m, h); n; n = n->next)
 *         if (n->hash == h && strcmp(MW_CONTAINER_OF(n, struct rec, node)->id, id) == 0)
 *             return ...;
 *
 * The map owns only its bucket array; nodes belong to the caller. Bound:
 * the bucket array doubles when the load passes 1, up to max_buckets; past
 * that, or when an allocation fails, chains just get longer (still
 * correct). Not thread-safe (one event loop). */
#ifndef MW_MAP_H
#define MW_MAP_H

#include <stddef.h>
#include <stdint.h>

/* The struct that embeds member at ptr; the _CONST form for a const ptr. */
#define MW_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define MW_CONTAINER_OF_CONST(ptr, type, member)                                                   \
    ((const type *)(const void *)((const char *)(ptr)-offsetof(type, member)))

struct mw_map_node {
    struct mw_map_node *next; /* private: the bucket's chain */
    uint64_t hash;            /* read-only for the caller while linked */
};

struct mw_map {
    struct mw_map_node **b; /* private */
    size_t nb;              /* private: buckets, a power of two */
    size_t n;               /* read-only: nodes linked */
    size_t max_nb;          /* private */
};

/* Sets up an empty map with `initial` buckets (a power of two, at least 1),
 * growing to at most max_buckets (a power of two >= initial). Returns 0 or
 * MW_ENOMEM, MW_EINVAL. */
int mw_map_init(struct mw_map *m, size_t initial, size_t max_buckets);

/* Frees the bucket array (not the nodes); the map is empty afterwards.
 * NULL-safe and safe on a map whose init failed. */
void mw_map_release(struct mw_map *m);

/* Links node n (not linked anywhere) under hash h. Never fails. */
void mw_map_insert(struct mw_map *m, struct mw_map_node *n, uint64_t h);

/* Unlinks node n, which must be linked in m. */
void mw_map_remove(struct mw_map *m, struct mw_map_node *n);

/* The chain that holds every node of hash h (among others). */
static inline struct mw_map_node *mw_map_bucket(const struct mw_map *m, uint64_t h)
{
    return m->b[h & (m->nb - 1)];
}

/* Calls fn(node, ud) for every node; fn must not insert or remove. */
void mw_map_foreach(const struct mw_map *m, void (*fn)(const struct mw_map_node *n, void *ud),
                    void *ud);

/* Unlinks every node, calling fn(node, ud) for each after it is unlinked
 * (fn may free it). */
void mw_map_drain(struct mw_map *m, void (*fn)(struct mw_map_node *n, void *ud), void *ud);

#endif /* MW_MAP_H */
