/* matchmaker: the pools of waiting tickets, one per (queue, region), and the
 * index by ticket id; which tickets of a pool form a match is the rule's
 * (match_rule.h; the reference's: the `size` oldest as soon as `size` wait).
 *
 * Pure and synchronous: tickets go in, groups of compatible tickets come out.
 * Tickets whose attributes.region differ are never matched together (an
 * absent region is its own pool ""). Idempotent on ticket id (adding a
 * ticket that is already waiting does nothing). */
#ifndef MW_MATCHMAKER_H
#define MW_MATCHMAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "match_rule.h"
#include "ticket.h"

#define MW_MM_MAX_OVERRIDES 32

struct mw_matchmaker;

struct mw_mm_override {
    char queue[MW_QUEUE_MAX + 1];
    unsigned size; /* 1..MW_MATCH_SIZE_MAX */
};

struct mw_matchmaker_config {
    unsigned match_size; /* default players per match (2) */
    size_t n_overrides;
    struct mw_mm_override overrides[MW_MM_MAX_OVERRIDES];
    size_t max_waiting; /* bound on waiting tickets; add fails MW_ELIMIT (0: 1,000,000) */
    /* Key of the pool and id maps' hash ((queue, region) are chosen by
     * clients): the instance's random source's, or fixed in tests. Without
     * one (has_hash_key false) the matchmaker draws one from the OS. */
    bool has_hash_key;
    struct mw_hash_key hash_key;
    /* Which waiting tickets form a match (borrowed, must outlive the
     * matchmaker); NULL: mw_match_rule_fifo. */
    const struct mw_match_rule *rule;
};

/* A formed group, oldest ticket first. Borrowed by the callback. */
struct mw_mm_group {
    const char *queue;
    const char *region;
    size_t n;
    const struct mw_mm_entry *entries;
};

/* Called once per formed group, synchronously from add(); the group's
 * tickets have already left the matchmaker. Must not call back into the
 * matchmaker except mw_matchmaker_requeue(). */
typedef void (*mw_mm_match_cb)(void *ud, const struct mw_mm_group *g);

/* Returns a new matchmaker or NULL. cfg copied. */
struct mw_matchmaker *mw_matchmaker_new(const struct mw_matchmaker_config *cfg, mw_mm_match_cb cb,
                                        void *ud);
void mw_matchmaker_free(struct mw_matchmaker *mm); /* NULL-safe */

/* Adds a queued ticket (borrowed) and forms every match that is now
 * possible. Returns 0 (also when the ticket was already waiting), MW_ELIMIT,
 * MW_ENOMEM. */
int mw_matchmaker_add(struct mw_matchmaker *mm, const struct mw_ticket *t);
/* Puts entries back at the FRONT of their pool, keeping their order (after a
 * commit failed for another ticket of the group); may form matches. */
int mw_matchmaker_requeue(struct mw_matchmaker *mm, const char *queue, const char *region,
                          const struct mw_mm_entry *entries, size_t n);
/* Removes a waiting ticket (cancelled/expired). Returns true when it was waiting. */
bool mw_matchmaker_remove(struct mw_matchmaker *mm, const char *ticket_id);
/* Number of waiting tickets. */
size_t mw_matchmaker_waiting(const struct mw_matchmaker *mm);
/* The match size for a queue (override or default). */
unsigned mw_matchmaker_size_for(const struct mw_matchmaker *mm, const char *queue);

#endif /* MW_MATCHMAKER_H */
