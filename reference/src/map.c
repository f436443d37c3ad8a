/* map: intrusive chained hash map (see map.h). */
#include "map.h"

#include "alloc.h"
#include "invariant.h"
#include "error.h"

#include <stdbool.h>

static bool pow2(size_t n)
{
    return n && (n & (n - 1)) == 0;
}

int mw_map_init(struct mw_map *m, size_t initial, size_t max_buckets)
{
    m->b = NULL;
    m->nb = 0;
    m->n = 0;
    m->max_nb = 0;
    if (!pow2(initial) || !pow2(max_buckets) || max_buckets < initial)
        return MW_EINVAL;
    m->b = mw_calloc(initial, sizeof(*m->b));
    if (!m->b)
        return MW_ENOMEM;
    m->nb = initial;
    m->max_nb = max_buckets;
    return 0;
}

void mw_map_release(struct mw_map *m)
{
    if (!m)
        return;
    mw_free(m->b);
    m->b = NULL;
    m->nb = 0;
    m->n = 0;
}

/* Doubles the buckets at load > 1; on allocation failure chains just grow. */
static void maybe_grow(struct mw_map *m)
{
    size_t nnb = m->nb * 2;
    struct mw_map_node **nb;

    if (m->n <= m->nb || nnb > m->max_nb)
        return;
    nb = mw_calloc(nnb, sizeof(*nb));
    if (!nb)
        return;
    for (size_t i = 0; i < m->nb; i++) {
        struct mw_map_node *n = m->b[i];

        while (n) {
            struct mw_map_node *next = n->next;
            size_t j = n->hash & (nnb - 1);

            n->next = nb[j];
            nb[j] = n;
            n = next;
        }
    }
    mw_free(m->b);
    m->b = nb;
    m->nb = nnb;
}

void mw_map_insert(struct mw_map *m, struct mw_map_node *n, uint64_t h)
{
    struct mw_map_node **head = &m->b[h & (m->nb - 1)];

    n->hash = h;
    n->next = *head;
    *head = n;
    m->n++;
    maybe_grow(m);
}

void mw_map_remove(struct mw_map *m, struct mw_map_node *n)
{
    struct mw_map_node **pp = &m->b[n->hash & (m->nb - 1)];

    while (*pp && *pp != n)
        pp = &(*pp)->next;
    MW_ASSERT(*pp == n); /* n must be linked in m */
    if (!*pp)
        return;
    *pp = n->next;
    n->next = NULL;
    m->n--;
}

void mw_map_foreach(const struct mw_map *m, void (*fn)(const struct mw_map_node *n, void *ud),
                    void *ud)
{
    for (size_t i = 0; i < m->nb; i++)
        for (const struct mw_map_node *n = m->b[i]; n; n = n->next)
            fn(n, ud);
}

void mw_map_drain(struct mw_map *m, void (*fn)(struct mw_map_node *n, void *ud), void *ud)
{
    for (size_t i = 0; i < m->nb; i++) {
        struct mw_map_node *n = m->b[i];

        m->b[i] = NULL;
        while (n) {
            struct mw_map_node *next = n->next;

            n->next = NULL;
            m->n--;
            fn(n, ud);
            n = next;
        }
    }
}
