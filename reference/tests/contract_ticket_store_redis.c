/* The ticket store contract (contract_ticket_store.h) run against the Redis
 * store (ticket_store_redis.c) on a redis-server of its own
 * (redis_testenv.h), flushed before every test. */
#define _POSIX_C_SOURCE 200809L /* kill, nanosleep, clock_gettime (redis_testenv.h) */

#include "contract_ticket_store.h"
#include "mwt_filter.h"

#include <signal.h>

#include "fake_random.h"
#include "log.h"
#include "redis_testenv.h"
#include "ticket_store_redis.h"

struct ctr_env {
    struct ev_loop *loop;
    struct fake_rng rng;
};

static struct mwt_redis ctr_redis; /* one server for the whole run */

static int ctr_group_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    mw_log_setup(NULL, NULL, MW_LOG_WARN);
    return mwt_redis_start(&ctr_redis) == 0 ? 0 : -1;
}

static void ctr_group_teardown(void)
{
    mwt_redis_stop(&ctr_redis, SIGTERM);
}

static void *ctr_env_new(void)
{
    struct ctr_env *e;
    redisReply *rep = mwt_cmd(&ctr_redis, "FLUSHALL");

    if (!rep)
        return NULL;
    freeReplyObject(rep);
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->rng.s = 0x9e3779b97f4a7c15ULL;
    e->loop = ev_loop_new(EVFLAG_AUTO);
    if (!e->loop) {
        free(e);
        return NULL;
    }
    return e;
}

static void ctr_env_free(void *env)
{
    struct ctr_env *e = env;

    ev_loop_destroy(e->loop);
    free(e);
}

static int ctr_store_new(void *env, struct mw_ticket_store *st,
                         const struct mw_ticket_store_config *cfg,
                         const struct mw_ticket_store_hooks *hooks)
{
    struct ctr_env *e = env;
    struct mw_redis_opts o = mwt_opts(&ctr_redis, "c:");

    return mw_ticket_store_redis_new(st, cfg, hooks, e->loop, &o, "contract", fake_rng_fill,
                                     &e->rng);
}

static bool ctr_run_until(void *env, bool (*pred)(void *ud), void *ud, double timeout_s)
{
    struct ctr_env *e = env;

    return mwt_run_until(e->loop, pred, ud, timeout_s);
}

int main(int argc, char **argv)
{
    static const struct ct_store_backend redis = {
        .name = "ticket_store_contract_redis",
        .publishes = true, /* the assign script publishes (CHN-062) */
        .group_setup = ctr_group_setup,
        .group_teardown = ctr_group_teardown,
        .env_new = ctr_env_new,
        .env_free = ctr_env_free,
        .store_new = ctr_store_new,
        .run_until = ctr_run_until,
        .now_ms = mwt_now_ms,
    };

    mwt_filter(argc, argv);
    return ct_store_run(&redis);
}
