/* config: the server's command line and environment (the seed's REDIS_HOST,
 * REDIS_PORT, MATCHMAKING_ROLE), parsed into one const struct. Pure. */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "matchmaker.h"
#include "session.h"
#include "worker.h"

enum mw_role { MW_ROLE_ALL = 0, MW_ROLE_API, MW_ROLE_WORKER };
enum mw_channel_kind { MW_CHANNEL_MEMORY = 0, MW_CHANNEL_REDIS };
enum mw_store_kind { MW_STORE_MEMORY = 0, MW_STORE_REDIS };

struct mw_config {
    char listen_host[256]; /* --listen host:port (127.0.0.1:8080) */
    uint16_t listen_port;
    enum mw_channel_kind channel; /* --channel memory|redis */
    enum mw_store_kind store;     /* --store memory|redis (absent: as --channel) */
    enum mw_role role;            /* --role all|api|worker, or MATCHMAKING_ROLE */
    /* --redis redis://[:password@]host:port[/db], or REDIS_HOST/REDIS_PORT */
    char redis_host[256];
    uint16_t redis_port;
    char redis_password[256];
    int redis_db;
    char redis_prefix[64]; /* --redis-prefix (""): prepended to keys and the channel name */
    /* --redis-timeout MS (2000): a Redis command's bound, spec/channel.md CHN-104 */
    int64_t redis_timeout_ms;
    struct mw_worker_config worker;  /* --match-size N, --queue-size q=N, --game-servers */
    int64_t ticket_ttl_ms;           /* --ticket-ttl SECONDS (600) */
    int64_t assigned_ttl_ms;         /* --assigned-ttl SECONDS (600) */
    int64_t grace_ms;                /* --grace SECONDS (30); fractions allowed: 0.5 */
    unsigned max_connections;        /* --max-connections (19000) */
    struct mw_session_limits limits; /* --max-tickets, --rate, --rate-burst, --max-errors */
    size_t outbound_max_messages;    /* --outbound-max-messages (256) */
    size_t outbound_max_bytes;       /* --outbound-max-bytes (1 MiB) */
    size_t reassembly_budget;        /* --reassembly-budget (64 MiB): all partial messages */
    int idle_timeout_s;              /* --idle-timeout SECONDS (60): ping after, close if no pong */
    int log_level;                   /* --log-level 0..4 (2: notice) or -v */
    bool help;                       /* --help was given */
};

/* Fills cfg from argv and env (env: NULL-terminated "K=V" array, or NULL for
 * none), starting from mw_config_defaults(). Flags win over env; env is read
 * only for an absent flag (empty variables count as unset); REDIS_HOST set
 * and --channel absent selects the redis channel; --store absent takes the
 * channel's backend (so --channel redis alone picks both, as before).
 * Re-entrant (no getopt state). With --help, returns 0 and cfg->help set
 * without checking the environment.
 * Returns 0, or MW_EINVAL with a one-line reason naming the flag or variable
 * in err (may be NULL; the caller prints it and exits 2). */
int mw_config_parse(struct mw_config *cfg, int argc, char *const argv[], char *const env[],
                    char *err, size_t err_len);
/* Sets every default. */
void mw_config_defaults(struct mw_config *cfg);
/* The --help text. */
const char *mw_config_usage(void);

#endif /* MW_CONFIG_H */
