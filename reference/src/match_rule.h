/* match_rule: which waiting tickets of one pool form a match (the policy),
 * apart from the matchmaker's pools and indexes (the mechanism, matchmaker.c).
 * A new rule (skill bands, latency, parties) is a new rule here and one line
 * of the matchmaker's config; the pools, the id index and the requeue logic
 * do not change.
 *
 * A rule is pure: it reads a read-only view of one pool (its waiting
 * tickets, oldest first) and answers with the positions of the tickets that
 * form one match now. The matchmaker asks again after every match it forms,
 * until the rule answers 0. */
#ifndef MW_MATCH_RULE_H
#define MW_MATCH_RULE_H

#include <stddef.h>
#include <stdint.h>

#include "ticket.h"

/* One waiting ticket, as the matchmaker keeps it. */
struct mw_mm_entry {
    char ticket_id[MW_TICKET_ID_LEN + 1];
    char player_id[MW_PLAYER_ID_MAX + 1];
    uint64_t version; /* queued version (1) */
};

/* A read-only walk over one pool: `first`, then next() until it returns NULL.
 * Everything borrowed for the duration of the rule's call. */
struct mw_mm_pool_view {
    const char *queue;
    const char *region;
    unsigned size; /* the queue's match size (its override, or the default) */
    size_t n;      /* tickets waiting in the pool */
    const void *first;
    /* The entry at *cursor, advancing *cursor; NULL at the end. */
    const struct mw_mm_entry *(*next)(const void **cursor);
};

struct mw_match_rule {
    /* Chooses one match from pool: writes the positions of its tickets (0 =
     * oldest, strictly ascending, each < pool->n) to picks and returns how
     * many (1..MW_MATCH_SIZE_MAX), or 0 when no match can form now. Must not
     * keep pointers into the view. */
    size_t (*pick)(const void *ud, const struct mw_mm_pool_view *pool,
                   size_t picks[MW_MATCH_SIZE_MAX]);
    const void *ud;
};

/* The reference's rule (MSG-080..082): as soon as `size` tickets wait in a
 * (queue, region) pool, the `size` oldest form a match. */
extern const struct mw_match_rule mw_match_rule_fifo;

#endif /* MW_MATCH_RULE_H */
