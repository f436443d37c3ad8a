/* The ticket store contract (contract_ticket_store.h) run against the
 * memory store (ticket_store_memory.c): one defer queue is its whole loop. */
#include "contract_ticket_store.h"
#include "mwt_filter.h"

#include "defer.h"
#include "fake_random.h"
#include "ticket_store_memory.h"

#define CTM_T0 1700000000000LL

struct ctm_env {
    struct mw_defer *d;
    struct fake_rng rng;
};

static int ctm_group_setup(void)
{
    return 0;
}

static void ctm_group_teardown(void) {}

static void *ctm_env_new(void)
{
    struct ctm_env *e = calloc(1, sizeof(*e));

    if (!e)
        return NULL;
    e->rng.s = 0x9e3779b97f4a7c15ULL;
    e->d = mw_defer_new(NULL, NULL);
    if (!e->d) {
        free(e);
        return NULL;
    }
    return e;
}

static void ctm_env_free(void *env)
{
    struct ctm_env *e = env;

    mw_defer_free(e->d);
    free(e);
}

static int ctm_store_new(void *env, struct mw_ticket_store *st,
                         const struct mw_ticket_store_config *cfg,
                         const struct mw_ticket_store_hooks *hooks)
{
    struct ctm_env *e = env;

    return mw_ticket_store_memory_new(st, cfg, hooks, e->d, fake_rng_fill, &e->rng);
}

/* Nothing happens but what the defer queue holds: run it until pred holds
 * or it is empty. */
static bool ctm_run_until(void *env, bool (*pred)(void *ud), void *ud, double timeout_s)
{
    struct ctm_env *e = env;

    (void)timeout_s;
    for (;;) {
        if (pred && pred(ud))
            return true;
        if (!mw_defer_pending(e->d))
            return false;
        mw_defer_run(e->d, 1);
    }
}

static int64_t ctm_now_ms(void)
{
    return CTM_T0;
}

int main(int argc, char **argv)
{
    static const struct ct_store_backend memory = {
        .name = "ticket_store_contract_memory",
        .publishes = false,
        .group_setup = ctm_group_setup,
        .group_teardown = ctm_group_teardown,
        .env_new = ctm_env_new,
        .env_free = ctm_env_free,
        .store_new = ctm_store_new,
        .run_until = ctm_run_until,
        .now_ms = ctm_now_ms,
    };

    mwt_filter(argc, argv);
    return ct_store_run(&memory);
}
