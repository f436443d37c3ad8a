/* match_rule: match formation policies (see match_rule.h). */
#include "match_rule.h"

static size_t fifo_pick(const void *ud, const struct mw_mm_pool_view *pool,
                        size_t picks[MW_MATCH_SIZE_MAX])
{
    (void)ud;
    if (pool->size < 1 || pool->size > MW_MATCH_SIZE_MAX || pool->n < pool->size)
        return 0;
    for (size_t i = 0; i < pool->size; i++)
        picks[i] = i;
    return pool->size;
}

const struct mw_match_rule mw_match_rule_fifo = {.pick = fifo_pick, .ud = NULL};
