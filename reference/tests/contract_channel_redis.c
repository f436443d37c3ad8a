/* The channel contract (contract_channel.h) run against the Redis channel
 * (channel_redis.c) on a redis-server of its own (redis_testenv.h). */
#define _POSIX_C_SOURCE 200809L /* kill, nanosleep, clock_gettime (redis_testenv.h) */

#include "contract_channel.h"
#include "mwt_filter.h"

#include <signal.h>

#include "channel_redis.h"
#include "log.h"
#include "redis_testenv.h"

static struct mwt_redis ccr_redis; /* one server for the whole run */

static int ccr_group_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    mw_log_setup(NULL, NULL, MW_LOG_WARN);
    return mwt_redis_start(&ccr_redis) == 0 ? 0 : -1;
}

static void ccr_group_teardown(void)
{
    mwt_redis_stop(&ccr_redis, SIGTERM);
}

static void *ccr_env_new(void)
{
    return ev_loop_new(EVFLAG_AUTO);
}

static void ccr_env_free(void *env)
{
    ev_loop_destroy(env);
}

static int ccr_channel_new(void *env, struct mw_channel *ch, const struct mw_channel_hooks *hooks)
{
    struct mw_redis_opts o = mwt_opts(&ccr_redis, "c:");

    return mw_channel_redis_new(ch, hooks, env, &o, NULL);
}

static bool ccr_run_until(void *env, bool (*pred)(void *ud), void *ud, double timeout_s)
{
    return mwt_run_until(env, pred, ud, timeout_s);
}

int main(int argc, char **argv)
{
    static const struct ct_chan_backend redis = {
        .name = "channel_contract_redis",
        .group_setup = ccr_group_setup,
        .group_teardown = ccr_group_teardown,
        .env_new = ccr_env_new,
        .env_free = ccr_env_free,
        .channel_new = ccr_channel_new,
        .run_until = ccr_run_until,
    };

    mwt_filter(argc, argv);
    return ct_chan_run(&redis);
}
