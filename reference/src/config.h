/* config: the server's command line and environment (the seed's REDIS_HOST,
 * REDIS_PORT, MATCHMAKING_ROLE), parsed into one const struct. Pure, except
 * that it reads the files of --redis-password-file and --service-token-file
 * (mw_config_read_file; key files and the TLS certificate and key are read
 * by the server). */
#ifndef MW_CONFIG_H
#define MW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "matchmaker.h"
#include "session.h"
#include "token.h"
#include "worker.h"

enum mw_role { MW_ROLE_ALL = 0, MW_ROLE_API, MW_ROLE_WORKER };
enum mw_channel_kind { MW_CHANNEL_MEMORY = 0, MW_CHANNEL_REDIS };
enum mw_store_kind { MW_STORE_MEMORY = 0, MW_STORE_REDIS };

#define MW_CONFIG_PATH_MAX    512 /* bytes of a file name in a flag */
#define MW_CONFIG_ORIGINS_MAX 16  /* --allowed-origin entries */
#define MW_CONFIG_ORIGIN_MAX  255 /* bytes of one serialized origin */

/* A player-token key named on the command line (spec/auth.md section 10).
 * Only the file name: mw_server_new() reads the file and refuses to start
 * when it is unusable (AUTH-003). */
struct mw_config_key {
    enum mw_token_alg alg;             /* HS256 (--auth-hs256-secret-file), RS256, EdDSA */
    char path[MW_CONFIG_PATH_MAX + 1]; /* the file */
    char kid[MW_TOKEN_KID_MAX + 1];    /* "" when none */
};

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
    /* Auth (spec/auth.md): keys by file (read by the server), the HS256
     * secret of MATCHWIRE_AUTH_HS256_SECRET, claims policy, the service
     * token and the Redis password (read here from their file or variable:
     * secrets are never needed on the command line, AUTH-080). */
    /* --auth-hs256-secret-file, --auth-public-key */
    struct mw_config_key auth_keys[MW_TOKEN_KEYS_MAX];
    size_t n_auth_keys;
    /* MATCHWIRE_AUTH_HS256_SECRET ("": unset) */
    char auth_hs256_env[MW_TOKEN_SECRET_MAX + 1];
    size_t auth_hs256_env_len;
    char auth_audience[MW_TOKEN_CLAIM_MAX + 1]; /* --auth-audience ("": none) */
    char auth_issuer[MW_TOKEN_CLAIM_MAX + 1];   /* --auth-issuer ("": none) */
    int64_t auth_leeway_s;                      /* --auth-leeway (30) */
    /* --service-token-file or MATCHWIRE_SERVICE_TOKEN; length 0: none */
    char service_token[MW_TOKEN_SECRET_MAX + 1];
    size_t service_token_len;
    /* --allowed-origin (AUTH-090) */
    char allowed_origins[MW_CONFIG_ORIGINS_MAX][MW_CONFIG_ORIGIN_MAX + 1];
    size_t n_allowed_origins;
    /* --tls-cert FILE and --tls-key FILE, or MATCHWIRE_TLS_CERT and
     * MATCHWIRE_TLS_KEY: both or neither ("": plain ws:// and http://).
     * Only the file names: the gateway reads and checks the files at start
     * (spec/messages.md MSG-150). */
    char tls_cert[MW_CONFIG_PATH_MAX + 1];
    char tls_key[MW_CONFIG_PATH_MAX + 1];
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
/* Reads a secret or key file into buf[0..cap) minus one trailing "\n" or
 * "\r\n" (AUTH-081); *len set. Returns 0, or MW_EINVAL (cannot be read,
 * empty, or cap bytes or more) with a reason naming what (never the
 * content) in err. */
int mw_config_read_file(const char *what, const char *path, char *buf, size_t cap, size_t *len,
                        char *err, size_t err_len);
/* Whether --tls-cert and --tls-key were given (the port speaks TLS only). */
bool mw_config_tls_on(const struct mw_config *cfg);
/* Whether the auth configuration has any player-token key (AUTH-001). */
bool mw_config_auth_on(const struct mw_config *cfg);
/* Sets every default (the option table's, config.c). */
void mw_config_defaults(struct mw_config *cfg);
/* The --help text. */
/* Appends the --help text, made from the option table (every option's
 * name, value, default and help in one place). Returns 0, MW_ENOMEM or
 * MW_ELIMIT. */
int mw_config_usage(struct mw_buf *out);

#endif /* MW_CONFIG_H */
