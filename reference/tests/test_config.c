/* Tests for config: defaults, every flag (both spellings), environment
 * precedence (REDIS_HOST, REDIS_PORT, MATCHMAKING_ROLE), and every error,
 * over many parses in one process (no hidden getopt state). */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "config.h"
#include "error.h"

#define MAXARGS 64

/* Parses a NULL-terminated list of arguments with env (may be NULL). */
static int parse_env(struct mw_config *cfg, char *err, char *const env[], ...)
{
    char *argv[MAXARGS];
    int argc = 0;
    va_list ap;

    argv[argc++] = (char *)"matchwire-server";
    va_start(ap, env);
    for (char *a; (a = va_arg(ap, char *)) != NULL;) {
        assert_true(argc < MAXARGS - 1);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    memset(err, 0, 256);
    return mw_config_parse(cfg, argc, argv, env, err, 256);
}

#define PARSE(cfg, err, ...)          parse_env(cfg, err, NULL, __VA_ARGS__, (char *)NULL)
#define PARSE_ENV(cfg, err, env, ...) parse_env(cfg, err, env, __VA_ARGS__, (char *)NULL)

/* Expects failure with a one-line message containing `needle`. */
static void expect_error(const char *needle, ...)
{
    char *argv[MAXARGS];
    int argc = 0;
    char err[256];
    struct mw_config cfg;
    va_list ap;
    int rc;

    argv[argc++] = (char *)"matchwire-server";
    va_start(ap, needle);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    memset(err, 0, sizeof(err));
    rc = mw_config_parse(&cfg, argc, argv, NULL, err, sizeof(err));
    if (rc != MW_EINVAL || !strstr(err, needle))
        print_error("%s %s: rc %d, err '%s', want '%s'\n", argv[1], argc > 2 ? argv[2] : "", rc,
                    err, needle);
    assert_int_equal(rc, MW_EINVAL);
    assert_non_null(strstr(err, needle));
    assert_null(strchr(err, '\n'));
}
#define EXPECT_ERROR(needle, ...) expect_error(needle, __VA_ARGS__, (char *)NULL)

static void test_defaults(void **state)
{
    struct mw_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(parse_env(&cfg, err, NULL, (char *)NULL), 0);
    assert_string_equal(err, "");
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_int_equal(cfg.channel, MW_CHANNEL_MEMORY);
    assert_int_equal(cfg.store, MW_STORE_MEMORY);
    assert_int_equal(cfg.role, MW_ROLE_ALL);
    assert_string_equal(cfg.redis_host, "127.0.0.1");
    assert_int_equal(cfg.redis_port, 6379);
    assert_string_equal(cfg.redis_password, "");
    assert_int_equal(cfg.redis_db, 0);
    assert_string_equal(cfg.redis_prefix, "");
    assert_int_equal(cfg.redis_timeout_ms, 2000);
    assert_int_equal(cfg.worker.mm.match_size, 2);
    assert_int_equal(cfg.worker.mm.n_overrides, 0);
    assert_int_equal(cfg.worker.n_game_servers, 1);
    assert_string_equal(cfg.worker.game_servers[0], "127.0.0.1:7777");
    assert_int_equal(cfg.ticket_ttl_ms, 600000);
    assert_int_equal(cfg.assigned_ttl_ms, 600000);
    assert_int_equal(cfg.limits.retention_ms, 600000);
    assert_int_equal(cfg.grace_ms, 30000);
    assert_int_equal(cfg.max_connections, 19000);
    assert_int_equal(cfg.limits.max_tickets, 8);
    assert_int_equal(cfg.limits.max_consecutive_errors, 10);
    assert_true(cfg.limits.rate_per_sec == 50);
    assert_true(cfg.limits.rate_burst == 100);
    assert_int_equal(cfg.outbound_max_messages, 256);
    assert_int_equal(cfg.outbound_max_bytes, 1048576);
    assert_int_equal(cfg.reassembly_budget, (size_t)64 << 20);
    assert_int_equal(cfg.idle_timeout_s, 60);
    assert_int_equal(cfg.log_level, 2);
    assert_false(cfg.help);

    /* mw_config_defaults gives the same */
    {
        struct mw_config d;
        mw_config_defaults(&d);
        assert_memory_equal(&d, &cfg, sizeof(d));
    }
}

static void test_every_flag(void **state)
{
    struct mw_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(PARSE(&cfg, err, "--listen", "0.0.0.0:9000", "--channel", "redis", "--role",
                           "api", "--redis", "redis://:s3cret@redis.internal:6380/3",
                           "--redis-prefix", "mw:", "--match-size", "4", "--queue-size", "duo=2",
                           "--queue-size", "squad=16", "--game-servers",
                           "gs1:7000,gs2:7001,[::1]:7002", "--ticket-ttl", "120", "--assigned-ttl",
                           "60.5", "--grace", "0.5", "--max-connections", "500", "--max-tickets",
                           "3", "--rate", "5", "--rate-burst", "7", "--max-errors", "4",
                           "--outbound-max-messages", "32", "--outbound-max-bytes", "65536",
                           "--idle-timeout", "15", "--log-level", "4", "--redis-timeout", "750"),
                     0);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9000);
    assert_int_equal(cfg.channel, MW_CHANNEL_REDIS);
    assert_int_equal(cfg.store, MW_STORE_REDIS); /* --channel redis alone picks both */
    assert_int_equal(cfg.role, MW_ROLE_API);
    assert_string_equal(cfg.redis_host, "redis.internal");
    assert_int_equal(cfg.redis_port, 6380);
    assert_string_equal(cfg.redis_password, "s3cret");
    assert_int_equal(cfg.redis_db, 3);
    assert_string_equal(cfg.redis_prefix, "mw:");
    assert_int_equal(cfg.worker.mm.match_size, 4);
    assert_int_equal(cfg.worker.mm.n_overrides, 2);
    assert_string_equal(cfg.worker.mm.overrides[0].queue, "duo");
    assert_int_equal(cfg.worker.mm.overrides[0].size, 2);
    assert_string_equal(cfg.worker.mm.overrides[1].queue, "squad");
    assert_int_equal(cfg.worker.mm.overrides[1].size, 16);
    assert_int_equal(cfg.worker.n_game_servers, 3);
    assert_string_equal(cfg.worker.game_servers[0], "gs1:7000");
    assert_string_equal(cfg.worker.game_servers[1], "gs2:7001");
    assert_string_equal(cfg.worker.game_servers[2], "[::1]:7002");
    assert_int_equal(cfg.ticket_ttl_ms, 120000);
    assert_int_equal(cfg.assigned_ttl_ms, 60500);
    assert_int_equal(cfg.limits.retention_ms, 60500);
    assert_int_equal(cfg.grace_ms, 500);
    assert_int_equal(cfg.max_connections, 500);
    assert_int_equal(cfg.limits.max_tickets, 3);
    assert_true(cfg.limits.rate_per_sec == 5);
    assert_true(cfg.limits.rate_burst == 7);
    assert_int_equal(cfg.limits.max_consecutive_errors, 4);
    assert_int_equal(cfg.outbound_max_messages, 32);
    assert_int_equal(cfg.outbound_max_bytes, 65536);
    assert_int_equal(cfg.idle_timeout_s, 15);
    assert_int_equal(cfg.log_level, 4);
    assert_int_equal(cfg.redis_timeout_ms, 750);

    /* --flag=value spelling, and a second parse starts from the defaults */
    assert_int_equal(PARSE(&cfg, err, "--listen=[::1]:0", "--match-size=16", "--grace=0",
                           "--queue-size=duo=3", "--queue-size=duo=5", "--role=worker",
                           "--channel=redis", "--redis=redis://default:pw@10.1.2.3"),
                     0);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 0);
    assert_int_equal(cfg.worker.mm.match_size, 16);
    assert_int_equal(cfg.grace_ms, 0);
    assert_int_equal(cfg.worker.mm.n_overrides, 1); /* repeated queue: last wins */
    assert_int_equal(cfg.worker.mm.overrides[0].size, 5);
    assert_int_equal(cfg.role, MW_ROLE_WORKER);
    assert_string_equal(cfg.redis_host, "10.1.2.3");
    assert_int_equal(cfg.redis_port, 6379);
    assert_string_equal(cfg.redis_password, "pw");
    assert_int_equal(cfg.redis_db, 0);
    assert_string_equal(cfg.redis_prefix, "");
    assert_int_equal(cfg.worker.n_game_servers, 1);

    /* :PORT listens on every interface */
    assert_int_equal(PARSE(&cfg, err, "--listen", ":8081"), 0);
    assert_string_equal(cfg.listen_host, "");
    assert_int_equal(cfg.listen_port, 8081);
}

static void test_verbose_and_help(void **state)
{
    struct mw_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(PARSE(&cfg, err, "-v"), 0);
    assert_int_equal(cfg.log_level, 3);
    assert_int_equal(PARSE(&cfg, err, "-v", "-v", "-v"), 0);
    assert_int_equal(cfg.log_level, 4); /* capped */
    assert_int_equal(PARSE(&cfg, err, "-vv"), 0);
    assert_int_equal(cfg.log_level, 4);
    assert_int_equal(PARSE(&cfg, err, "--log-level", "0", "-v"), 0);
    assert_int_equal(cfg.log_level, 1);
    assert_int_equal(PARSE(&cfg, err, "--help"), 0);
    assert_true(cfg.help);
    assert_int_equal(PARSE(&cfg, err, "-h"), 0);
    assert_true(cfg.help);
    /* --help wins over a config that would not validate */
    assert_int_equal(PARSE(&cfg, err, "--role", "api", "--help"), 0);
    assert_true(cfg.help);

    /* the usage names every flag and the environment rules */
    {
        static const char *const names[] = {
            "--listen",
            "--channel",
            "--role",
            "--redis ",
            "--redis-prefix",
            "--redis-timeout",
            "--match-size",
            "--queue-size",
            "--game-servers",
            "--ticket-ttl",
            "--assigned-ttl",
            "--grace",
            "--max-connections",
            "--max-tickets",
            "--rate ",
            "--rate-burst",
            "--max-errors",
            "--outbound-max-messages",
            "--outbound-max-bytes",
            "--idle-timeout",
            "--log-level",
            "-v",
            "--help",
            "REDIS_HOST",
            "REDIS_PORT",
            "MATCHMAKING_ROLE",
            "the channel is redis",
        };
        struct mw_buf ub;
        const char *u;

        mw_buf_init(&ub, 0);
        assert_int_equal(mw_config_usage(&ub), 0);
        u = ub.data;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (!strstr(u, names[i]))
                print_error("usage lacks %s\n", names[i]);
            assert_non_null(strstr(u, names[i]));
        }
        /* Defaults shown are the defaults applied (one table). */
        assert_non_null(
            strstr(u, "--ticket-ttl SECONDS        a queued ticket expires after this (600)"));
        assert_non_null(strstr(u, "--reassembly-budget N"));
        mw_buf_release(&ub);
    }
}

static void test_env(void **state)
{
    struct mw_config cfg;
    char err[256];
    char *const env_redis[] = {(char *)"PATH=/bin", (char *)"REDIS_HOST=redis",
                               (char *)"REDIS_PORT=6390", NULL};
    char *const env_role[] = {(char *)"REDIS_HOST=r", (char *)"MATCHMAKING_ROLE=worker", NULL};
    char *const env_empty[] = {(char *)"REDIS_HOST=", (char *)"MATCHMAKING_ROLE=", NULL};
    char *const env_prefix[] = {(char *)"REDIS_HOSTNAME=x", (char *)"XREDIS_HOST=y", NULL};

    (void)state;
    /* REDIS_HOST selects redis when --channel is absent (the seed's rule),
     * for the store too */
    assert_int_equal(PARSE_ENV(&cfg, err, env_redis, "--log-level", "2"), 0);
    assert_int_equal(cfg.channel, MW_CHANNEL_REDIS);
    assert_int_equal(cfg.store, MW_STORE_REDIS);
    assert_string_equal(cfg.redis_host, "redis");
    assert_int_equal(cfg.redis_port, 6390);
    /* flags win */
    assert_int_equal(PARSE_ENV(&cfg, err, env_redis, "--channel", "memory"), 0);
    assert_int_equal(cfg.channel, MW_CHANNEL_MEMORY);
    assert_int_equal(cfg.store, MW_STORE_MEMORY);
    /* each backend on its own: a memory store with the Redis channel */
    assert_int_equal(PARSE_ENV(&cfg, err, env_redis, "--store", "memory"), 0);
    assert_int_equal(cfg.channel, MW_CHANNEL_REDIS);
    assert_int_equal(cfg.store, MW_STORE_MEMORY);
    assert_string_equal(cfg.redis_host, "redis");
    assert_int_equal(PARSE_ENV(&cfg, err, env_redis, "--redis", "redis://other:1/2"), 0);
    assert_string_equal(cfg.redis_host, "other");
    assert_int_equal(cfg.redis_port, 1);
    assert_int_equal(cfg.redis_db, 2);
    assert_int_equal(cfg.channel, MW_CHANNEL_REDIS);

    /* MATCHMAKING_ROLE */
    assert_int_equal(PARSE_ENV(&cfg, err, env_role, "-v"), 0);
    assert_int_equal(cfg.role, MW_ROLE_WORKER);
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(PARSE_ENV(&cfg, err, env_role, "--role", "all"), 0);
    assert_int_equal(cfg.role, MW_ROLE_ALL);

    /* empty variables count as unset; names match exactly */
    assert_int_equal(PARSE_ENV(&cfg, err, env_empty, "-v"), 0);
    assert_int_equal(cfg.channel, MW_CHANNEL_MEMORY);
    assert_int_equal(cfg.role, MW_ROLE_ALL);
    assert_int_equal(PARSE_ENV(&cfg, err, env_prefix, "-v"), 0);
    assert_int_equal(cfg.channel, MW_CHANNEL_MEMORY);
    assert_string_equal(cfg.redis_host, "127.0.0.1");

    /* bad values in the environment name the variable */
    {
        char *const e1[] = {(char *)"REDIS_PORT=0", NULL};
        char *const e2[] = {(char *)"REDIS_PORT=6379x", NULL};
        char *const e3[] = {(char *)"MATCHMAKING_ROLE=gateway", NULL};
        char *const e4[] = {(char *)"REDIS_HOST=a b", NULL};
        char *const e5[] = {(char *)"MATCHMAKING_ROLE=api", NULL};
        char *const e6[] = {(char *)"REDIS_HOST=::1", NULL};
        assert_int_equal(PARSE_ENV(&cfg, err, e1, "-v"), MW_EINVAL);
        assert_non_null(strstr(err, "REDIS_PORT"));
        assert_int_equal(PARSE_ENV(&cfg, err, e2, "-v"), MW_EINVAL);
        assert_non_null(strstr(err, "REDIS_PORT"));
        assert_int_equal(PARSE_ENV(&cfg, err, e3, "-v"), MW_EINVAL);
        assert_non_null(strstr(err, "MATCHMAKING_ROLE"));
        assert_int_equal(PARSE_ENV(&cfg, err, e4, "-v"), MW_EINVAL);
        assert_non_null(strstr(err, "REDIS_HOST"));
        /* role api without a shared channel cannot work */
        assert_int_equal(PARSE_ENV(&cfg, err, e5, "-v"), MW_EINVAL);
        assert_non_null(strstr(err, "--channel redis"));
        /* the environment is not read when the flag is given */
        assert_int_equal(PARSE_ENV(&cfg, err, e1, "--redis", "redis://h:1"), 0);
        assert_int_equal(PARSE_ENV(&cfg, err, e3, "--role", "all"), 0);
        assert_int_equal(PARSE_ENV(&cfg, err, e6, "-v"), 0);
        assert_string_equal(cfg.redis_host, "::1");
    }
}

static void test_redis_urls(void **state)
{
    struct mw_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(PARSE(&cfg, err, "--redis", "redis://localhost"), 0);
    assert_string_equal(cfg.redis_host, "localhost");
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(cfg.redis_db, 0);
    assert_int_equal(PARSE(&cfg, err, "--redis", "redis://[::1]:7000/15"), 0);
    assert_string_equal(cfg.redis_host, "::1");
    assert_int_equal(cfg.redis_port, 7000);
    assert_int_equal(cfg.redis_db, 15);
    assert_int_equal(PARSE(&cfg, err, "--redis", "redis://:p@ss:w0rd@h:1"), 0);
    assert_string_equal(cfg.redis_password, "p@ss:w0rd");
    assert_string_equal(cfg.redis_host, "h");
    assert_int_equal(PARSE(&cfg, err, "--redis", "redis://[::1]"), 0);
    assert_string_equal(cfg.redis_host, "::1");
    assert_int_equal(cfg.redis_port, 6379);

    EXPECT_ERROR("--redis", "--redis", "rediss://h:1");
    EXPECT_ERROR("--redis", "--redis", "http://h:1");
    EXPECT_ERROR("--redis", "--redis", "h:6379");
    EXPECT_ERROR("--redis", "--redis", "redis://");
    EXPECT_ERROR("--redis", "--redis", "redis:///0");
    EXPECT_ERROR("--redis", "--redis", "redis://h:0");
    EXPECT_ERROR("--redis", "--redis", "redis://h:65536");
    EXPECT_ERROR("--redis", "--redis", "redis://h:abc");
    EXPECT_ERROR("--redis", "--redis", "redis://h:1/x");
    EXPECT_ERROR("--redis", "--redis", "redis://h:1/");
    EXPECT_ERROR("--redis", "--redis", "redis://h:1/0?timeout=1");
    EXPECT_ERROR("--redis", "--redis", "redis://pw@h:1");
    EXPECT_ERROR("--redis", "--redis", "redis://:@h:1");
    EXPECT_ERROR("only the user 'default'", "--redis", "redis://alice:pw@h:1");
    EXPECT_ERROR("--redis", "--redis", "redis://::1:6379");
    EXPECT_ERROR("--redis", "--redis", "redis://h h:1");
}

static void test_errors(void **state)
{
    char long_prefix[80], many[64 * 12 + 16];
    size_t n = 0;

    (void)state;
    EXPECT_ERROR("unknown option '--nope'", "--nope", "1");
    EXPECT_ERROR("unknown option '--listenx'", "--listenx=1");
    EXPECT_ERROR("unexpected argument 'extra'", "extra");
    EXPECT_ERROR("unexpected argument '-x'", "-x");
    EXPECT_ERROR("unexpected argument '--'", "--");
    EXPECT_ERROR("--listen needs a value", "--listen");
    EXPECT_ERROR("--match-size needs a value", "--match-size");

    EXPECT_ERROR("--listen", "--listen", "8080");
    EXPECT_ERROR("--listen", "--listen", "h:");
    EXPECT_ERROR("--listen", "--listen", "h:65536");
    EXPECT_ERROR("--listen", "--listen", "h:-1");
    EXPECT_ERROR("--listen", "--listen", "::1:80");
    EXPECT_ERROR("--listen", "--listen", "[]:80");
    EXPECT_ERROR("--channel", "--channel", "kafka");
    EXPECT_ERROR("--channel", "--channel", "");
    EXPECT_ERROR("--role", "--role", "gateway");
    EXPECT_ERROR("--role worker needs --channel redis", "--role", "worker");
    EXPECT_ERROR("--store", "--store", "kafka");
    /* the Redis store publishes on Redis (CHN-062): not with a memory channel */
    EXPECT_ERROR("--store redis needs --channel redis", "--store", "redis");
    EXPECT_ERROR("--role api needs --store redis", "--channel", "redis", "--store", "memory",
                 "--role", "api");
    memset(long_prefix, 'p', 64);
    long_prefix[64] = '\0';
    EXPECT_ERROR("--redis-prefix", "--redis-prefix", long_prefix);
    EXPECT_ERROR("--redis-prefix", "--redis-prefix", "a b");
    EXPECT_ERROR("--redis-timeout", "--redis-timeout", "49");
    EXPECT_ERROR("--redis-timeout", "--redis-timeout", "600001");
    EXPECT_ERROR("--redis-timeout", "--redis-timeout", "1.5");

    EXPECT_ERROR("--match-size", "--match-size", "0");
    EXPECT_ERROR("--match-size", "--match-size", "17");
    EXPECT_ERROR("--match-size", "--match-size", "-2");
    EXPECT_ERROR("--match-size", "--match-size", "2x");
    EXPECT_ERROR("--match-size", "--match-size", " 2");
    EXPECT_ERROR("--match-size", "--match-size", "99999999999999999999999");
    EXPECT_ERROR("--queue-size", "--queue-size", "duo");
    EXPECT_ERROR("--queue-size", "--queue-size", "=2");
    EXPECT_ERROR("--queue-size", "--queue-size", "Duo=2");
    EXPECT_ERROR("--queue-size", "--queue-size", "duo=0");
    EXPECT_ERROR("--queue-size", "--queue-size", "duo=17");
    EXPECT_ERROR("--queue-size", "--queue-size", "duo=");
    {
        /* 33 distinct queues: over the bound */
        char *argv[70];
        char names[33][8];
        char err[256];
        struct mw_config cfg;
        int argc = 0;
        argv[argc++] = (char *)"x";
        for (int i = 0; i < 33; i++) {
            snprintf(names[i], sizeof(names[i]), "q%d=2", i);
            argv[argc++] = (char *)"--queue-size";
            argv[argc++] = names[i];
        }
        argv[argc] = NULL;
        assert_int_equal(mw_config_parse(&cfg, argc - 2, argv, NULL, err, sizeof(err)), 0);
        assert_int_equal(cfg.worker.mm.n_overrides, 32);
        assert_int_equal(mw_config_parse(&cfg, argc, argv, NULL, err, sizeof(err)), MW_EINVAL);
        assert_non_null(strstr(err, "--queue-size"));
    }
    EXPECT_ERROR("--game-servers", "--game-servers", "");
    EXPECT_ERROR("--game-servers", "--game-servers", "gs1");
    EXPECT_ERROR("--game-servers", "--game-servers", "gs1:1,");
    EXPECT_ERROR("--game-servers", "--game-servers", ",gs1:1");
    EXPECT_ERROR("--game-servers", "--game-servers", "gs1:1,,gs2:2");
    EXPECT_ERROR("--game-servers", "--game-servers", "gs1:0");
    EXPECT_ERROR("--game-servers", "--game-servers", "gs 1:1");
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%sg%d:1", i ? "," : "", i);
    EXPECT_ERROR("more than 64", "--game-servers", many);
    many[n - 6] = '\0'; /* drop the 65th: 64 servers are fine */
    {
        struct mw_config cfg;
        char err[256];
        assert_int_equal(PARSE(&cfg, err, "--game-servers", many), 0);
        assert_int_equal(cfg.worker.n_game_servers, 64);
        assert_string_equal(cfg.worker.game_servers[63], "g63:1");
    }

    EXPECT_ERROR("--ticket-ttl", "--ticket-ttl", "0");
    EXPECT_ERROR("--ticket-ttl", "--ticket-ttl", "abc");
    EXPECT_ERROR("--ticket-ttl", "--ticket-ttl", "1.2345");
    EXPECT_ERROR("--ticket-ttl", "--ticket-ttl", "1.");
    EXPECT_ERROR("--ticket-ttl", "--ticket-ttl", ".5");
    EXPECT_ERROR("--ticket-ttl", "--ticket-ttl", "-1");
    EXPECT_ERROR("--ticket-ttl", "--ticket-ttl", "604800.001");
    EXPECT_ERROR("--assigned-ttl", "--assigned-ttl", "0.000");
    EXPECT_ERROR("--grace", "--grace", "1e3");
    EXPECT_ERROR("--grace", "--grace", "604801");
    EXPECT_ERROR("--max-connections", "--max-connections", "0");
    EXPECT_ERROR("--max-connections", "--max-connections", "1000001");
    EXPECT_ERROR("--max-tickets", "--max-tickets", "0");
    EXPECT_ERROR("--rate", "--rate", "0");
    EXPECT_ERROR("--rate", "--rate", "1.5");
    EXPECT_ERROR("--rate-burst", "--rate-burst", "0");
    EXPECT_ERROR("--max-errors", "--max-errors", "0");
    EXPECT_ERROR("--outbound-max-messages", "--outbound-max-messages", "0");
    EXPECT_ERROR("--outbound-max-bytes", "--outbound-max-bytes", "65535");
    EXPECT_ERROR("--reassembly-budget", "--reassembly-budget", "65536");
    EXPECT_ERROR("--idle-timeout", "--idle-timeout", "0");
    EXPECT_ERROR("--idle-timeout", "--idle-timeout", "0.5");
    EXPECT_ERROR("--log-level", "--log-level", "5");
    EXPECT_ERROR("--log-level", "--log-level", "debug");
}

static void test_boundaries_accepted(void **state)
{
    struct mw_config cfg;
    char err[256];

    (void)state;
    assert_int_equal(PARSE(&cfg, err, "--ticket-ttl", "604800", "--assigned-ttl", "0.001",
                           "--grace", "604800.000", "--max-connections", "1000000", "--max-tickets",
                           "1024", "--max-errors", "1000", "--rate", "1000000", "--rate-burst", "1",
                           "--outbound-max-bytes", "1073741824", "--idle-timeout", "86400",
                           "--match-size", "1", "--log-level", "0"),
                     0);
    assert_int_equal(cfg.ticket_ttl_ms, 604800000);
    assert_int_equal(cfg.assigned_ttl_ms, 1);
    assert_int_equal(cfg.grace_ms, 604800000);
    assert_int_equal(cfg.max_connections, 1000000);
    assert_int_equal(cfg.limits.max_tickets, 1024);
    assert_int_equal(cfg.outbound_max_bytes, 1073741824);
    assert_int_equal(cfg.worker.mm.match_size, 1);
    assert_int_equal(cfg.log_level, 0);
    assert_int_equal(PARSE(&cfg, err, "--reassembly-budget", "65537"), 0);
    assert_int_equal(cfg.reassembly_budget, 65537);
    assert_int_equal(PARSE(&cfg, err, "--reassembly-budget", "4294967296"), 0);
    assert_int_equal(cfg.reassembly_budget, (size_t)1 << 32);
    assert_int_equal(PARSE(&cfg, err, "--grace", "1.25"), 0);
    assert_int_equal(cfg.grace_ms, 1250);
    assert_int_equal(PARSE(&cfg, err, "--grace", "0.05"), 0);
    assert_int_equal(cfg.grace_ms, 50);
    /* err may be NULL */
    {
        char *argv[] = {(char *)"x", (char *)"--nope", NULL};
        assert_int_equal(mw_config_parse(&cfg, 2, argv, NULL, NULL, 0), MW_EINVAL);
    }
}

/* ---- Secrets and auth (spec/auth.md AUTH-003, AUTH-080, AUTH-081) ---------- */

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    fclose(f);
}

/* AUTH-080: no error message about a --redis URL shows its password. */
static void test_redis_url_errors_hide_password(void **state)
{
    static char *const urls[] = {
        "redis://:hunter2secret@bad host:1/0", "redis://:hunter2secret@h:99999",
        "redis://:hunter2secret@h:1/notadb",   "rediss://:hunter2secret@h:1",
        "http://user:hunter2secret@h",         "redis://:hunter2secret@",
        "redis://:p@ss:hunter2secret@h:x",     "hunter2secret@h",
        "redis://:hunter2secret/x@h:1/zz",     "redis://:hunter2secret?@h:1/zz",
    };
    struct mw_config cfg;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        int rc = PARSE(&cfg, err, "--redis", urls[i]);

        if (rc != MW_EINVAL || strstr(err, "hunter2") || !strstr(err, "--redis"))
            print_error("%s: rc %d, err '%s'\n", urls[i], rc, err);
        assert_int_equal(rc, MW_EINVAL);
        assert_null(strstr(err, "hunter2"));
        assert_null(strstr(err, "secret"));
    }
}

static void test_redis_password_sources(void **state)
{
    char path[] = "/tmp/mw_test_config_pw_XXXXXX";
    char *const env_pw[] = {(char *)"REDIS_PASSWORD=fromenv", NULL};
    struct mw_config cfg;
    char err[256];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "fromfile\r\n"); /* AUTH-081: one trailing CRLF goes */
    assert_int_equal(PARSE(&cfg, err, "--redis-password-file", path), 0);
    assert_string_equal(cfg.redis_password, "fromfile");
    /* the variable only when nothing else gives one */
    assert_int_equal(PARSE_ENV(&cfg, err, env_pw, "--redis", "redis://h:1"), 0);
    assert_string_equal(cfg.redis_password, "fromenv");
    assert_int_equal(PARSE_ENV(&cfg, err, env_pw, "--redis", "redis://:url@h:1"), 0);
    assert_string_equal(cfg.redis_password, "url");
    assert_int_equal(PARSE_ENV(&cfg, err, env_pw, "--redis-password-file", path), 0);
    assert_string_equal(cfg.redis_password, "fromfile");
    /* both in the URL and in a file: which one? refused */
    assert_int_equal(PARSE(&cfg, err, "--redis", "redis://:url@h:1", "--redis-password-file", path),
                     MW_EINVAL);
    assert_null(strstr(err, "url@"));
    write_file(path, "\n");
    assert_int_equal(PARSE(&cfg, err, "--redis-password-file", path), MW_EINVAL);
    assert_non_null(strstr(err, "empty"));
    unlink(path);
    assert_int_equal(PARSE(&cfg, err, "--redis-password-file", path), MW_EINVAL);
    assert_non_null(strstr(err, "cannot read"));
}

static void test_auth_flags(void **state)
{
    char path[] = "/tmp/mw_test_config_svc_XXXXXX";
    char *const env_auth[] = {
        (char *)"MATCHWIRE_AUTH_HS256_SECRET=0123456789abcdef0123456789abcdef",
        (char *)"MATCHWIRE_SERVICE_TOKEN=svc-0123456789abcdef0123456789abcdef", NULL};
    char *const env_short[] = {(char *)"MATCHWIRE_AUTH_HS256_SECRET=short", NULL};
    struct mw_config cfg;
    char err[256];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    /* defaults: auth off, leeway 30 */
    assert_int_equal(PARSE(&cfg, err, "--listen", "127.0.0.1:1"), 0);
    assert_false(mw_config_auth_on(&cfg));
    assert_int_equal(cfg.auth_leeway_s, 30);
    assert_int_equal(cfg.service_token_len, 0);
    assert_int_equal(PARSE(&cfg, err, "--auth-hs256-secret-file", "/k/a:2026-12",
                           "--auth-hs256-secret-file", "/k/b", "--auth-public-key",
                           "EdDSA:/k/ed.pub:ed1", "--auth-public-key=RS256:/k/rsa.pub",
                           "--auth-audience", "matchwire", "--auth-issuer", "https://id.example",
                           "--auth-leeway", "0", "--allowed-origin", "https://play.example.com",
                           "--allowed-origin", "http://127.0.0.1:8080"),
                     0);
    assert_true(mw_config_auth_on(&cfg));
    assert_int_equal(cfg.n_auth_keys, 4);
    assert_int_equal(cfg.auth_keys[0].alg, MW_TOKEN_ALG_HS256);
    assert_string_equal(cfg.auth_keys[0].path, "/k/a");
    assert_string_equal(cfg.auth_keys[0].kid, "2026-12");
    assert_string_equal(cfg.auth_keys[1].kid, "");
    assert_int_equal(cfg.auth_keys[2].alg, MW_TOKEN_ALG_EDDSA);
    assert_string_equal(cfg.auth_keys[2].path, "/k/ed.pub");
    assert_int_equal(cfg.auth_keys[3].alg, MW_TOKEN_ALG_RS256);
    assert_string_equal(cfg.auth_audience, "matchwire");
    assert_string_equal(cfg.auth_issuer, "https://id.example");
    assert_int_equal(cfg.auth_leeway_s, 0);
    assert_int_equal(cfg.n_allowed_origins, 2);
    assert_string_equal(cfg.allowed_origins[1], "http://127.0.0.1:8080");
    /* secrets from the environment */
    assert_int_equal(PARSE_ENV(&cfg, err, env_auth, "--listen", "127.0.0.1:1"), 0);
    assert_true(mw_config_auth_on(&cfg));
    assert_int_equal(cfg.auth_hs256_env_len, 32);
    assert_int_equal(cfg.service_token_len, 36);
    /* the service token from a file wins over the variable */
    write_file(path, "file-0123456789abcdef0123456789abcdef\n");
    assert_int_equal(PARSE_ENV(&cfg, err, env_auth, "--service-token-file", path), 0);
    assert_int_equal(cfg.service_token_len, 37);
    assert_memory_equal(cfg.service_token, "file-", 5);
    /* AUTH-003 */
    write_file(path, "too-short\n");
    assert_int_equal(PARSE(&cfg, err, "--service-token-file", path), MW_EINVAL);
    assert_non_null(strstr(err, "at least 32"));
    assert_null(strstr(err, "too-short"));
    assert_int_equal(PARSE_ENV(&cfg, err, env_short, "--listen", "127.0.0.1:1"), MW_EINVAL);
    assert_null(strstr(err, "short"));
    unlink(path);
    EXPECT_ERROR("AUTH-003", "--auth-audience", "x");
    EXPECT_ERROR("AUTH-003", "--auth-issuer", "x");
    EXPECT_ERROR("AUTH-003", "--auth-leeway", "10");
    EXPECT_ERROR("kid 'a' given twice", "--auth-hs256-secret-file", "/x:a", "--auth-public-key",
                 "EdDSA:/y:a");
    EXPECT_ERROR("--auth-leeway", "--auth-hs256-secret-file", "/x", "--auth-leeway", "301");
    EXPECT_ERROR("--auth-public-key", "--auth-public-key", "HS256:/x");
    EXPECT_ERROR("--auth-public-key", "--auth-public-key", "none:/x");
    EXPECT_ERROR("--auth-hs256-secret-file", "--auth-hs256-secret-file", ":kid");
    EXPECT_ERROR("--allowed-origin", "--allowed-origin", "null");
    EXPECT_ERROR("--allowed-origin", "--allowed-origin", "https://a.example/path");
    EXPECT_ERROR("--auth-audience", "--auth-hs256-secret-file", "/x", "--auth-audience", "");
}

/* --tls-cert / --tls-key and their variables: both or neither, flags win,
 * names only (the gateway reads the files), the --help lines. */
static void test_tls_flags(void **state)
{
    char *const env_tls[] = {(char *)"MATCHWIRE_TLS_CERT=/env/cert.pem",
                             (char *)"MATCHWIRE_TLS_KEY=/env/key.pem", NULL};
    char *const env_cert_only[] = {(char *)"MATCHWIRE_TLS_CERT=/env/cert.pem", NULL};
    char *const env_empty[] = {(char *)"MATCHWIRE_TLS_CERT=", (char *)"MATCHWIRE_TLS_KEY=", NULL};
    char long_name[MW_CONFIG_PATH_MAX + 2];
    struct mw_config cfg;
    struct mw_buf usage;
    char err[256];

    (void)state;
    /* default: plain */
    assert_int_equal(PARSE(&cfg, err, "--listen", "127.0.0.1:1"), 0);
    assert_false(mw_config_tls_on(&cfg));
    assert_string_equal(cfg.tls_cert, "");
    assert_string_equal(cfg.tls_key, "");
    /* both flags, both spellings */
    assert_int_equal(PARSE(&cfg, err, "--tls-cert", "/c/chain.pem", "--tls-key=/c/key.pem"), 0);
    assert_true(mw_config_tls_on(&cfg));
    assert_string_equal(cfg.tls_cert, "/c/chain.pem");
    assert_string_equal(cfg.tls_key, "/c/key.pem");
    /* the variables, and a flag wins over its variable */
    assert_int_equal(PARSE_ENV(&cfg, err, env_tls, "--listen", "127.0.0.1:1"), 0);
    assert_true(mw_config_tls_on(&cfg));
    assert_string_equal(cfg.tls_cert, "/env/cert.pem");
    assert_string_equal(cfg.tls_key, "/env/key.pem");
    assert_int_equal(PARSE_ENV(&cfg, err, env_tls, "--tls-key", "/flag/key.pem"), 0);
    assert_string_equal(cfg.tls_cert, "/env/cert.pem");
    assert_string_equal(cfg.tls_key, "/flag/key.pem");
    /* empty variables count as unset */
    assert_int_equal(PARSE_ENV(&cfg, err, env_empty, "--listen", "127.0.0.1:1"), 0);
    assert_false(mw_config_tls_on(&cfg));
    /* both or neither, from any source */
    EXPECT_ERROR("--tls-key (or MATCHWIRE_TLS_KEY) is missing", "--tls-cert", "/c");
    EXPECT_ERROR("--tls-cert (or MATCHWIRE_TLS_CERT) is missing", "--tls-key", "/k");
    assert_int_equal(PARSE_ENV(&cfg, err, env_cert_only, "--listen", "127.0.0.1:1"), MW_EINVAL);
    assert_non_null(strstr(err, "go together"));
    assert_int_equal(PARSE_ENV(&cfg, err, env_cert_only, "--tls-key", "/k"), 0);
    assert_true(mw_config_tls_on(&cfg));
    /* names: 1..MW_CONFIG_PATH_MAX bytes */
    EXPECT_ERROR("--tls-cert: expected a file name", "--tls-cert", "", "--tls-key", "/k");
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    EXPECT_ERROR("--tls-key: expected a file name", "--tls-cert", "/c", "--tls-key", long_name);
    long_name[MW_CONFIG_PATH_MAX] = '\0';
    assert_int_equal(PARSE(&cfg, err, "--tls-cert", long_name, "--tls-key", long_name), 0);
    /* --help names both flags and both variables */
    mw_buf_init(&usage, 0);
    assert_int_equal(mw_config_usage(&usage), 0);
    assert_non_null(strstr(usage.data, "--tls-cert FILE"));
    assert_non_null(strstr(usage.data, "--tls-key FILE"));
    assert_non_null(strstr(usage.data, "MATCHWIRE_TLS_CERT, MATCHWIRE_TLS_KEY"));
    mw_buf_release(&usage);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_flag),
        cmocka_unit_test(test_verbose_and_help),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_redis_urls),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_boundaries_accepted),
        cmocka_unit_test(test_redis_url_errors_hide_password),
        cmocka_unit_test(test_redis_password_sources),
        cmocka_unit_test(test_auth_flags),
        cmocka_unit_test(test_tls_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
