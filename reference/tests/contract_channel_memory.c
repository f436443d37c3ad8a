/* The channel contract (contract_channel.h) run against the memory channel
 * (channel_memory.c): one defer queue is its whole loop. */
#include "contract_channel.h"
#include "mwt_filter.h"

#include "channel_memory.h"
#include "defer.h"

static int ccm_group_setup(void)
{
    return 0;
}

static void ccm_group_teardown(void) {}

static void *ccm_env_new(void)
{
    return mw_defer_new(NULL, NULL);
}

static void ccm_env_free(void *env)
{
    mw_defer_free(env);
}

static int ccm_channel_new(void *env, struct mw_channel *ch, const struct mw_channel_hooks *hooks)
{
    return mw_channel_memory_new(ch, hooks, env, 0);
}

/* Nothing happens but what the defer queue holds. */
static bool ccm_run_until(void *env, bool (*pred)(void *ud), void *ud, double timeout_s)
{
    (void)timeout_s;
    for (;;) {
        if (pred && pred(ud))
            return true;
        if (!mw_defer_pending(env))
            return false;
        mw_defer_run(env, 1);
    }
}

int main(int argc, char **argv)
{
    static const struct ct_chan_backend memory = {
        .name = "channel_contract_memory",
        .group_setup = ccm_group_setup,
        .group_teardown = ccm_group_teardown,
        .env_new = ccm_env_new,
        .env_free = ccm_env_free,
        .channel_new = ccm_channel_new,
        .run_until = ccm_run_until,
    };

    mwt_filter(argc, argv);
    return ct_chan_run(&memory);
}
