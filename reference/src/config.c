/* config: the server's command line and environment, parsed by hand (no
 * getopt: its state is global, and tests parse many command lines in one
 * process). Every value is range-checked; every failure is one line naming
 * the flag or variable. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "invariant.h"

#define MAX_SECONDS 604800 /* 7 days: the largest TTL/grace accepted */

/* ---- Value parsers -------------------------------------------------------- */

static int bad(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (err && err_len) {
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return MW_EINVAL;
}

/* Decimal digits only, no sign, no spaces; false on overflow past max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        uint64_t d = (uint64_t)(*s - '0');
        if (d > max || v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* "12", "0.5", "1.250": a non-negative decimal with at most three fraction
 * digits, in thousandths. */
static bool parse_milli(const char *s, uint64_t max_units, uint64_t *out)
{
    uint64_t whole = 0, frac = 0;
    const char *dot = strchr(s, '.');
    char ip[24];
    size_t n = dot ? (size_t)(dot - s) : strlen(s);

    if (n == 0 || n >= sizeof(ip))
        return false;
    memcpy(ip, s, n);
    ip[n] = '\0';
    if (!parse_u64(ip, max_units, &whole))
        return false;
    if (dot) {
        size_t fl = strlen(dot + 1);
        if (fl < 1 || fl > 3 || !parse_u64(dot + 1, 999, &frac))
            return false;
        for (; fl < 3; fl++)
            frac *= 10;
    }
    if (whole == max_units && frac > 0)
        return false;
    *out = whole * 1000 + frac;
    return true;
}

/* host:port. Host 0..255 bytes of visible ASCII (empty only when
 * allow_empty_host), or [IPv6] (brackets stripped into host). Port
 * min_port..65535. */
static bool parse_hostport(const char *s, bool allow_empty_host, unsigned min_port, char *host,
                           size_t host_size, uint16_t *port)
{
    const char *colon = strrchr(s, ':'), *h = s;
    size_t hl;
    uint64_t p;

    if (!colon)
        return false;
    hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        h = s + 1;
        hl -= 2;
        if (hl == 0)
            return false;
    } else if (memchr(s, ':', hl)) {
        return false; /* an IPv6 address needs brackets */
    }
    if (hl > 255 || hl >= host_size || (hl == 0 && !allow_empty_host))
        return false;
    for (size_t i = 0; i < hl; i++) {
        if ((unsigned char)h[i] <= 0x20 || (unsigned char)h[i] >= 0x7f || h[i] == '/' ||
            h[i] == '@' || h[i] == '[' || h[i] == ']')
            return false;
    }
    if (strlen(colon + 1) > 5 || !parse_u64(colon + 1, 65535, &p) || p < min_port)
        return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return true;
}

/* url with its userinfo (what precedes the last '@' of the authority)
 * replaced by "***", so an error never shows a password (AUTH-080). */
static const char *redact_url(const char *url, char *out, size_t n)
{
    const char *sep = strstr(url, "://");
    const char *auth = sep ? sep + 3 : url;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = NULL;

    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (!at) {
        /* no authority we recognise: an '@' anywhere may still hide a password */
        at = strrchr(url, '@');
        if (!at) {
            snprintf(out, n, "%s", url);
            return out;
        }
        auth = url;
    }
    snprintf(out, n, "%.*s***%s", (int)(auth - url), url, at);
    return out;
}

/* redis://[[user]:password@]host[:port][/db] */
static int parse_redis_url(struct mw_config *cfg, const char *url, const char *what, char *err,
                           size_t err_len)
{
    static const char scheme[] = "redis://";
    char hostport[300], host[256];
    const char *rest, *at, *slash;
    uint64_t db = 0;
    uint16_t port = 6379;
    size_t n;
    char shown[320];

    redact_url(url, shown, sizeof(shown)); /* what messages show */
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return bad(err, err_len, "%s: '%s' is not a redis:// URL", what, shown);
    rest = url + sizeof(scheme) - 1;
    cfg->redis_password[0] = '\0';
    at = strrchr(rest, '@');
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        size_t ul, pl;
        if (!colon)
            return bad(err, err_len, "%s: credentials must be [user]:password@", what);
        ul = (size_t)(colon - rest);
        pl = (size_t)(at - colon - 1);
        /* hiredis 0.14 AUTH takes a password only, which Redis applies to
         * the user "default": any other user would be silently ignored. */
        if (ul && !(ul == 7 && memcmp(rest, "default", 7) == 0))
            return bad(err, err_len, "%s: only the user 'default' is supported", what);
        if (pl == 0 || pl >= sizeof(cfg->redis_password))
            return bad(err, err_len, "%s: password must be 1 to %zu bytes", what,
                       sizeof(cfg->redis_password) - 1);
        memcpy(cfg->redis_password, colon + 1, pl);
        cfg->redis_password[pl] = '\0';
        rest = at + 1;
    }
    slash = strchr(rest, '/');
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= sizeof(hostport))
        return bad(err, err_len, "%s: missing or too long host in '%s'", what, shown);
    memcpy(hostport, rest, n);
    hostport[n] = '\0';
    if (slash && !parse_u64(slash + 1, 65535, &db))
        return bad(err, err_len, "%s: database must be a number 0..65535 in '%s'", what, shown);
    /* host alone (port 6379), or host:port */
    if (strchr(hostport, ':') && !(hostport[0] == '[' && hostport[n - 1] == ']')) {
        if (!parse_hostport(hostport, false, 1, host, sizeof(host), &port))
            return bad(err, err_len, "%s: bad host:port in '%s'", what, shown);
    } else {
        char with_port[320];
        snprintf(with_port, sizeof(with_port), "%s:6379", hostport);
        if (!parse_hostport(with_port, false, 1, host, sizeof(host), &port))
            return bad(err, err_len, "%s: bad host in '%s'", what, shown);
    }
    memcpy(cfg->redis_host, host, strlen(host) + 1);
    cfg->redis_port = port;
    cfg->redis_db = (int)db;
    return 0;
}

static int parse_game_servers(struct mw_config *cfg, const char *list, char *err, size_t err_len)
{
    const char *p = list;
    size_t n = 0;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[MW_CONNECTION_MAX + 1], host[256];
        uint16_t port;

        if (n == MW_GAME_SERVERS_MAX)
            return bad(err, err_len, "--game-servers: more than %d servers", MW_GAME_SERVERS_MAX);
        if (len == 0 || len > MW_CONNECTION_MAX)
            return bad(err, err_len, "--game-servers: empty or too long entry in '%s'", list);
        memcpy(item, p, len);
        item[len] = '\0';
        if (!parse_hostport(item, false, 1, host, sizeof(host), &port))
            return bad(err, err_len, "--game-servers: '%s' is not host:port", item);
        /* kept as written: it is what clients receive as `connection` */
        memcpy(cfg->worker.game_servers[n], item, len + 1);
        n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    cfg->worker.n_game_servers = n;
    return 0;
}

static int parse_queue_size(struct mw_config *cfg, const char *v, char *err, size_t err_len)
{
    struct mw_matchmaker_config *mm = &cfg->worker.mm;
    const char *eq = strchr(v, '=');
    uint64_t size;
    size_t ql, i;

    if (!eq)
        return bad(err, err_len, "--queue-size: expected QUEUE=N, got '%s'", v);
    ql = (size_t)(eq - v);
    if (!mw_queue_name_valid(v, ql))
        return bad(err, err_len, "--queue-size: queue must be 1 to %d bytes of a-z 0-9 _ -",
                   MW_QUEUE_MAX);
    if (!parse_u64(eq + 1, MW_MATCH_SIZE_MAX, &size) || size < 1)
        return bad(err, err_len, "--queue-size: size must be 1..%d, got '%s'", MW_MATCH_SIZE_MAX,
                   eq + 1);
    for (i = 0; i < mm->n_overrides; i++) {
        if (strlen(mm->overrides[i].queue) == ql && memcmp(mm->overrides[i].queue, v, ql) == 0)
            break;
    }
    if (i == mm->n_overrides) {
        if (mm->n_overrides == MW_MM_MAX_OVERRIDES)
            return bad(err, err_len, "--queue-size: more than %d queues", MW_MM_MAX_OVERRIDES);
        mm->n_overrides++;
    }
    memcpy(mm->overrides[i].queue, v, ql);
    mm->overrides[i].queue[ql] = '\0';
    mm->overrides[i].size = (unsigned)size;
    return 0;
}

static bool parse_role(const char *v, enum mw_role *out)
{
    if (strcmp(v, "all") == 0)
        *out = MW_ROLE_ALL;
    else if (strcmp(v, "api") == 0)
        *out = MW_ROLE_API;
    else if (strcmp(v, "worker") == 0)
        *out = MW_ROLE_WORKER;
    else
        return false;
    return true;
}

/* ---- Flags ---------------------------------------------------------------- */

enum opt_id {
    O_LISTEN,
    O_CHANNEL,
    O_STORE,
    O_ROLE,
    O_REDIS,
    O_REDIS_PREFIX,
    O_REDIS_TIMEOUT,
    O_MATCH_SIZE,
    O_QUEUE_SIZE,
    O_GAME_SERVERS,
    O_TICKET_TTL,
    O_ASSIGNED_TTL,
    O_GRACE,
    O_MAX_CONNECTIONS,
    O_MAX_TICKETS,
    O_RATE,
    O_RATE_BURST,
    O_MAX_ERRORS,
    O_OUTBOUND_MAX_MESSAGES,
    O_OUTBOUND_MAX_BYTES,
    O_REASSEMBLY_BUDGET,
    O_IDLE_TIMEOUT,
    O_LOG_LEVEL,
    O_REDIS_PASSWORD_FILE,
    O_AUTH_HS256_SECRET_FILE,
    O_AUTH_PUBLIC_KEY,
    O_AUTH_AUDIENCE,
    O_AUTH_ISSUER,
    O_AUTH_LEEWAY,
    O_SERVICE_TOKEN_FILE,
    O_ALLOWED_ORIGIN,
    O_TLS_CERT,
    O_TLS_KEY,
    O__COUNT
};

/* ---- Auth flags (spec/auth.md section 10) ----------------------------------- */

/* FILE[:KID] (the kid is what follows the last ':'; a file name with a
 * ':' needs an explicit kid, or none: "FILE:" ). */
static int parse_key_flag(struct mw_config *cfg, const char *name, enum mw_token_alg alg,
                          const char *v, char *err, size_t err_len)
{
    struct mw_config_key *k;
    const char *colon = strrchr(v, ':');
    size_t pl = colon ? (size_t)(colon - v) : strlen(v);
    size_t kl = colon ? strlen(colon + 1) : 0;

    if (cfg->n_auth_keys == MW_TOKEN_KEYS_MAX)
        return bad(err, err_len, "--%s: more than %d keys", name, MW_TOKEN_KEYS_MAX);
    if (pl == 0 || pl > MW_CONFIG_PATH_MAX)
        return bad(err, err_len, "--%s: expected FILE[:KID]", name);
    if (kl > MW_TOKEN_KID_MAX)
        return bad(err, err_len, "--%s: kid over %d bytes", name, MW_TOKEN_KID_MAX);
    for (size_t i = 0; i < kl; i++)
        if ((unsigned char)colon[1 + i] < 0x21 || (unsigned char)colon[1 + i] > 0x7e)
            return bad(err, err_len, "--%s: kid must be visible ASCII", name);
    for (size_t i = 0; kl && i < cfg->n_auth_keys; i++)
        if (strcmp(cfg->auth_keys[i].kid, colon + 1) == 0)
            return bad(err, err_len, "--%s: kid '%s' given twice (AUTH-003)", name, colon + 1);
    k = &cfg->auth_keys[cfg->n_auth_keys++];
    k->alg = alg;
    memcpy(k->path, v, pl);
    k->path[pl] = '\0';
    memcpy(k->kid, colon ? colon + 1 : "", kl + 1);
    return 0;
}

/* ALG:FILE[:KID] */
static int parse_public_key_flag(struct mw_config *cfg, const char *v, char *err, size_t err_len)
{
    const char *colon = strchr(v, ':');
    enum mw_token_alg alg;

    if (colon && (size_t)(colon - v) == 5 && memcmp(v, "RS256", 5) == 0)
        alg = MW_TOKEN_ALG_RS256;
    else if (colon && (size_t)(colon - v) == 5 && memcmp(v, "EdDSA", 5) == 0)
        alg = MW_TOKEN_ALG_EDDSA;
    else
        return bad(err, err_len,
                   "--auth-public-key: expected RS256:FILE[:KID] or EdDSA:FILE[:KID]");
    return parse_key_flag(cfg, "auth-public-key", alg, colon + 1, err, err_len);
}

/* A serialized origin (RFC 6454): scheme "://" host [":" port], visible
 * ASCII, no path; "null" is never allowed (AUTH-090). */
static int parse_origin_flag(struct mw_config *cfg, const char *v, char *err, size_t err_len)
{
    const char *sep = strstr(v, "://");
    size_t n = strlen(v);

    if (cfg->n_allowed_origins == MW_CONFIG_ORIGINS_MAX)
        return bad(err, err_len, "--allowed-origin: more than %d origins", MW_CONFIG_ORIGINS_MAX);
    if (!sep || sep == v || n > MW_CONFIG_ORIGIN_MAX || sep[3] == '\0' || strchr(sep + 3, '/') ||
        strchr(sep + 3, '?') || strchr(sep + 3, '#'))
        return bad(err, err_len, "--allowed-origin: expected scheme://host[:port], got '%.64s'", v);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
            return bad(err, err_len, "--allowed-origin: visible ASCII only");
    memcpy(cfg->allowed_origins[cfg->n_allowed_origins++], v, n + 1);
    return 0;
}

/* A claim value to require (aud, iss): 1..MW_TOKEN_CLAIM_MAX bytes. */
static int parse_claim_flag(char *out, const char *name, const char *v, char *err, size_t err_len)
{
    size_t n = strlen(v);

    if (n == 0 || n > MW_TOKEN_CLAIM_MAX)
        return bad(err, err_len, "--%s: 1 to %d bytes", name, MW_TOKEN_CLAIM_MAX);
    memcpy(out, v, n + 1);
    return 0;
}

/* An unsigned flag value in [lo, hi]. */
static int uint_flag(const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
                     char *err, size_t err_len)
{
    if (!parse_u64(v, hi, out) || *out < lo)
        return bad(err, err_len, "--%s: expected an integer %llu..%llu, got '%s'", name,
                   (unsigned long long)lo, (unsigned long long)hi, v);
    return 0;
}

/* Seconds with up to three decimals, in [lo_ms, hi_s] -> milliseconds. */
static int seconds_flag(const char *name, const char *v, uint64_t lo_ms, uint64_t hi_s,
                        int64_t *out_ms, char *err, size_t err_len)
{
    uint64_t ms;

    if (!parse_milli(v, hi_s, &ms) || ms < lo_ms)
        return bad(err, err_len, "--%s: expected seconds %s%llu (up to 3 decimals), got '%s'", name,
                   lo_ms ? "0.001.." : "0..", (unsigned long long)hi_s, v);
    *out_ms = (int64_t)ms;
    return 0;
}

/* ---- The option table ------------------------------------------------------
 * Every option once (redis's config.c is the model): its name, the value it
 * shows in --help, its default written as a flag value and applied by the
 * same parser as the flag (so mw_config_defaults() and --help cannot
 * disagree with it), its help, and how it is read: an integer or seconds
 * into a field, with its range, or a parser of its own. */

enum opt_kind { K_UINT, K_SECONDS, K_CUSTOM };
enum opt_type { T_UNSIGNED, T_SIZE, T_INT, T_I64, T_DOUBLE, T_U16 };

struct opt {
    const char *name;    /* the flag, without "--" */
    const char *arg;     /* its value in --help */
    const char *def;     /* the default as a flag value; NULL: none (zero, empty) */
    bool show_def;       /* --help appends " (def)" */
    const char *help;    /* "\n" continues on the next line of --help */
    const char *section; /* a heading --help prints before this option */
    enum opt_kind kind;
    enum opt_type type; /* K_UINT: the field's type (K_SECONDS: int64_t ms) */
    size_t off;         /* the field (K_UINT, K_SECONDS) */
    uint64_t lo, hi;    /* K_UINT: the range; K_SECONDS: lo in ms, hi in s */
    int (*parse)(struct mw_config *cfg, const char *name, const char *v, char *err,
                 size_t err_len); /* K_CUSTOM */
};

#define FIELD(f) offsetof(struct mw_config, f)

static int p_listen(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    (void)name;
    if (!parse_hostport(v, true, 0, cfg->listen_host, sizeof(cfg->listen_host), &cfg->listen_port))
        return bad(err, n, "--listen: expected HOST:PORT (port 0..65535), got '%s'", v);
    return 0;
}

static int p_channel(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    (void)name;
    if (strcmp(v, "memory") == 0)
        cfg->channel = MW_CHANNEL_MEMORY;
    else if (strcmp(v, "redis") == 0)
        cfg->channel = MW_CHANNEL_REDIS;
    else
        return bad(err, n, "--channel: expected memory or redis, got '%s'", v);
    return 0;
}

static int p_store(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    (void)name;
    if (strcmp(v, "memory") == 0)
        cfg->store = MW_STORE_MEMORY;
    else if (strcmp(v, "redis") == 0)
        cfg->store = MW_STORE_REDIS;
    else
        return bad(err, n, "--store: expected memory or redis, got '%s'", v);
    return 0;
}

static int p_role(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    (void)name;
    if (!parse_role(v, &cfg->role))
        return bad(err, n, "--role: expected all, api or worker, got '%s'", v);
    return 0;
}

static int p_redis(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    (void)name;
    return parse_redis_url(cfg, v, "--redis", err, n);
}

static int p_redis_prefix(struct mw_config *cfg, const char *name, const char *v, char *err,
                          size_t n)
{
    size_t len = strlen(v);

    (void)name;
    if (len >= sizeof(cfg->redis_prefix))
        return bad(err, n, "--redis-prefix: at most %zu bytes", sizeof(cfg->redis_prefix) - 1);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
            return bad(err, n, "--redis-prefix: visible ASCII only");
    }
    memcpy(cfg->redis_prefix, v, len + 1);
    return 0;
}

static int p_queue_size(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    (void)name;
    return parse_queue_size(cfg, v, err, n);
}

static int p_game_servers(struct mw_config *cfg, const char *name, const char *v, char *err,
                          size_t n)
{
    (void)name;
    return parse_game_servers(cfg, v, err, n);
}

static int p_hs256(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    return parse_key_flag(cfg, name, MW_TOKEN_ALG_HS256, v, err, n);
}

static int p_public_key(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    (void)name;
    return parse_public_key_flag(cfg, v, err, n);
}

static int p_audience(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    return parse_claim_flag(cfg->auth_audience, name, v, err, n);
}

static int p_issuer(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    return parse_claim_flag(cfg->auth_issuer, name, v, err, n);
}

static int p_origin(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    (void)name;
    return parse_origin_flag(cfg, v, err, n);
}

/* A file name kept for the server, which reads the file at start. */
static int path_flag(char *out, const char *name, const char *v, char *err, size_t err_len)
{
    size_t n = strlen(v);

    if (n == 0 || n > MW_CONFIG_PATH_MAX)
        return bad(err, err_len, "--%s: expected a file name of 1 to %d bytes", name,
                   MW_CONFIG_PATH_MAX);
    memcpy(out, v, n + 1);
    return 0;
}

static int p_tls_cert(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    return path_flag(cfg->tls_cert, name, v, err, n);
}

static int p_tls_key(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    return path_flag(cfg->tls_key, name, v, err, n);
}

/* A file read once parsing is done (mw_config_parse, apply_secrets). */
static int p_later(struct mw_config *cfg, const char *name, const char *v, char *err, size_t n)
{
    (void)cfg, (void)name, (void)v, (void)err, (void)n;
    return 0;
}

#define UINT(t, f, l, h) .kind = K_UINT, .type = (t), .off = FIELD(f), .lo = (l), .hi = (h)
#define SECS(f, l, h)    .kind = K_SECONDS, .type = T_I64, .off = FIELD(f), .lo = (l), .hi = (h)
#define CUSTOM(fn)       .kind = K_CUSTOM, .parse = (fn)

static const struct opt opts[O__COUNT] = {
    [O_LISTEN] = {"listen", "HOST:PORT", "127.0.0.1:8080", false,
                  "address to serve WebSocket and HTTP on (127.0.0.1:8080;\n"
                  "[::1]:8080 for IPv6, :8080 for every interface, port 0\nfor any free port)",
                  NULL, CUSTOM(p_listen)},
    [O_CHANNEL] = {"channel", "memory|redis", "memory", true, "assignment channel backend", NULL,
                   CUSTOM(p_channel)},
    [O_STORE] = {"store", "memory|redis", "memory", false,
                 "ticket store backend (absent: the --channel one;\n"
                 "a redis store needs the redis channel)",
                 NULL, CUSTOM(p_store)},
    [O_ROLE] = {"role", "all|api|worker", "all", false,
                "all: gateway + matchmaker in one process; api: gateway\n"
                "only; worker: matchmaker only (api/worker need redis)",
                NULL, CUSTOM(p_role)},
    [O_REDIS] = {"redis", "URL", "redis://127.0.0.1:6379", false,
                 "redis://[[user]:password@]host[:port][/db]\n"
                 "(redis://127.0.0.1:6379/0; user: only 'default')",
                 NULL, CUSTOM(p_redis)},
    [O_REDIS_PREFIX] = {"redis-prefix", "PREFIX", NULL, false,
                        "prepended to every Redis key and the channel name (\"\")", NULL,
                        CUSTOM(p_redis_prefix)},
    [O_REDIS_TIMEOUT] = {"redis-timeout", "MS", "2000", true,
                         "a Redis command unanswered this long fails as\n"
                         "unavailable; the connection is reset",
                         NULL, UINT(T_I64, redis_timeout_ms, 50, 600000)},
    [O_REDIS_PASSWORD_FILE] = {"redis-password-file", "FILE", NULL, false,
                               "the Redis password (instead of in --redis)", NULL, CUSTOM(p_later)},
    [O_MATCH_SIZE] = {"match-size", "N", "2", true, "players per match, 1..16", NULL,
                      UINT(T_UNSIGNED, worker.mm.match_size, 1, MW_MATCH_SIZE_MAX)},
    [O_QUEUE_SIZE] = {"queue-size", "QUEUE=N", NULL, false,
                      "match size for one queue, repeatable (at most 32)", NULL,
                      CUSTOM(p_queue_size)},
    [O_GAME_SERVERS] = {"game-servers", "H:P,...", "127.0.0.1:7777", true,
                        "game servers handed out round-robin, 1..64", NULL, CUSTOM(p_game_servers)},
    [O_TICKET_TTL] = {"ticket-ttl", "SECONDS", "600", true, "a queued ticket expires after this",
                      NULL, SECS(ticket_ttl_ms, 1, MAX_SECONDS)},
    [O_ASSIGNED_TTL] = {"assigned-ttl", "SECONDS", "600", true,
                        "ended tickets stay readable this long", NULL,
                        SECS(assigned_ttl_ms, 1, MAX_SECONDS)},
    [O_GRACE] = {"grace", "SECONDS", "30", true,
                 "an unwatched queued ticket is cancelled after this", NULL,
                 SECS(grace_ms, 0, MAX_SECONDS)},
    [O_MAX_CONNECTIONS] = {"max-connections", "N", "19000", true,
                           "WebSocket connections; more are refused", NULL,
                           UINT(T_UNSIGNED, max_connections, 1, 1000000)},
    [O_MAX_TICKETS] = {"max-tickets", "N", "8", true, "live tickets per connection", NULL,
                       UINT(T_UNSIGNED, limits.max_tickets, 1, 1024)},
    [O_RATE] = {"rate", "N", "50", true, "messages per second per connection", NULL,
                UINT(T_DOUBLE, limits.rate_per_sec, 1, 1000000)},
    [O_RATE_BURST] = {"rate-burst", "N", "100", true, "burst above the rate", NULL,
                      UINT(T_DOUBLE, limits.rate_burst, 1, 1000000)},
    [O_MAX_ERRORS] = {"max-errors", "N", "10", true, "consecutive errors before close 1008", NULL,
                      UINT(T_UNSIGNED, limits.max_consecutive_errors, 1, 1000)},
    [O_OUTBOUND_MAX_MESSAGES] = {"outbound-max-messages", "N", "256", true,
                                 "queued outbound messages per connection", NULL,
                                 UINT(T_SIZE, outbound_max_messages, 1, 1000000)},
    /* at least one largest message (65,536 bytes) must fit */
    [O_OUTBOUND_MAX_BYTES] = {"outbound-max-bytes", "N", "1048576", true,
                              "queued outbound bytes per connection", NULL,
                              UINT(T_SIZE, outbound_max_bytes, 65536, (uint64_t)1 << 30)},
    /* at least one largest message (65,536 bytes) must fit (MSG-122) */
    [O_REASSEMBLY_BUDGET] = {"reassembly-budget", "N", "67108864", true,
                             "bytes of unfinished inbound messages, all connections\n"
                             "together; one that would go over closes 1013",
                             NULL, UINT(T_SIZE, reassembly_budget, 65537, (uint64_t)1 << 32)},
    [O_IDLE_TIMEOUT] = {"idle-timeout", "SECONDS", "60", true,
                        "ping an idle connection after this, close without pong", NULL,
                        UINT(T_INT, idle_timeout_s, 1, 86400)},
    [O_LOG_LEVEL] = {"log-level", "0..4", "2", true, "0 err, 1 warn, 2 notice, 3 info, 4 debug",
                     NULL, UINT(T_INT, log_level, 0, 4)},
    [O_AUTH_HS256_SECRET_FILE] = {"auth-hs256-secret-file", "FILE[:KID]", NULL, false,
                                  "an HS256 secret (32..1024 bytes), repeatable",
                                  "Authentication (spec/auth.md; with no key every client may act "
                                  "as any player):",
                                  CUSTOM(p_hs256)},
    [O_AUTH_PUBLIC_KEY] = {"auth-public-key", "ALG:FILE[:KID]", NULL, false,
                           "ALG RS256 or EdDSA, a PEM public key, repeatable", NULL,
                           CUSTOM(p_public_key)},
    [O_AUTH_AUDIENCE] = {"auth-audience", "S", NULL, false, "tokens must carry this aud (AUTH-035)",
                         NULL, CUSTOM(p_audience)},
    [O_AUTH_ISSUER] = {"auth-issuer", "S", NULL, false, "tokens must carry this iss (AUTH-036)",
                       NULL, CUSTOM(p_issuer)},
    [O_AUTH_LEEWAY] = {"auth-leeway", "SECONDS", "30", true,
                       "clock skew allowed on exp/nbf/iat, 0..300", NULL,
                       UINT(T_I64, auth_leeway_s, 0, MW_TOKEN_LEEWAY_MAX)},
    [O_SERVICE_TOKEN_FILE] = {"service-token-file", "FILE", NULL, false,
                              "the HTTP API's and /metrics' token (32..1024 bytes)", NULL,
                              CUSTOM(p_later)},
    [O_ALLOWED_ORIGIN] = {"allowed-origin", "ORIGIN", NULL, false,
                          "WebSocket Origin allow-list, repeatable (unset: any)", NULL,
                          CUSTOM(p_origin)},
    [O_TLS_CERT] = {"tls-cert", "FILE", NULL, false,
                    "PEM certificate chain, the server's first (with\n"
                    "--tls-key: wss:// and https:// only, TLS 1.2+)",
                    "TLS (spec/messages.md section 1.1; without both the port speaks plain\n"
                    "ws:// and http://):",
                    CUSTOM(p_tls_cert)},
    [O_TLS_KEY] = {"tls-key", "FILE", NULL, false,
                   "its PEM private key, unencrypted (a secret: keep the\n"
                   "file mode 0600)",
                   NULL, CUSTOM(p_tls_key)},
};

static void set_field(struct mw_config *cfg, const struct opt *o, uint64_t u)
{
    void *f = (char *)cfg + o->off;

    switch (o->type) {
    case T_UNSIGNED:
        *(unsigned *)f = (unsigned)u;
        break;
    case T_SIZE:
        *(size_t *)f = (size_t)u;
        break;
    case T_INT:
        *(int *)f = (int)u;
        break;
    case T_I64:
        *(int64_t *)f = (int64_t)u;
        break;
    case T_DOUBLE:
        *(double *)f = (double)u;
        break;
    case T_U16:
        *(uint16_t *)f = (uint16_t)u;
        break;
    }
}

static int apply_flag(struct mw_config *cfg, enum opt_id id, const char *v, char *err,
                      size_t err_len)
{
    const struct opt *o = &opts[id];
    uint64_t u = 0;
    int64_t ms = 0;
    int rc;

    switch (o->kind) {
    case K_UINT:
        rc = uint_flag(o->name, v, o->lo, o->hi, &u, err, err_len);
        if (!rc)
            set_field(cfg, o, u);
        return rc;
    case K_SECONDS:
        rc = seconds_flag(o->name, v, o->lo, o->hi, &ms, err, err_len);
        if (!rc)
            *(int64_t *)(void *)((char *)cfg + o->off) = ms;
        return rc;
    case K_CUSTOM:
        return o->parse(cfg, o->name, v, err, err_len);
    }
    return MW_EINVAL;
}

/* ---- Defaults and --help, from the table ------------------------------------ */

void mw_config_defaults(struct mw_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (int i = 0; i < O__COUNT; i++) {
        if (opts[i].def) {
            int rc = apply_flag(cfg, (enum opt_id)i, opts[i].def, NULL, 0);

            MW_ASSERT(rc == 0); /* every default is a valid value of its flag */
            (void)rc;
        }
    }
    /* Derived: sessions remember deliveries as long as the store keeps them. */
    cfg->limits.retention_ms = cfg->assigned_ttl_ms;
}

int mw_config_usage(struct mw_buf *out)
{
    int rc = mw_buf_puts(out, "usage: matchwire-server [options]\n\n");

    for (int i = 0; !rc && i < O__COUNT; i++) {
        const struct opt *o = &opts[i];
        char head[64];
        int n = snprintf(head, sizeof(head), "  --%s %s", o->name, o->arg);
        const char *h = o->help;

        if (o->section)
            rc = mw_buf_printf(out, "\n%s\n", o->section);
        /* the help from column 30, or after two spaces when the flag is longer */
        if (!rc)
            rc = mw_buf_printf(out, "%-*s", n < 30 ? 30 : n + 2, head);
        while (!rc && h) {
            const char *nl = strchr(h, '\n');
            int len = nl ? (int)(nl - h) : (int)strlen(h);

            rc = mw_buf_printf(out, "%.*s", len, h);
            if (!rc && nl)
                rc = mw_buf_printf(out, "\n%30s", "");
            h = nl ? nl + 1 : NULL;
        }
        if (!rc && o->show_def)
            rc = mw_buf_printf(out, " (%s)", o->def);
        if (!rc)
            rc = mw_buf_puts(out, "\n");
    }
    if (!rc)
        rc = mw_buf_puts(
            out,
            "  -v                          one level more verbose (repeatable)\n"
            "  -h, --help                  this text\n"
            "\n"
            "SECONDS may have up to three decimals (--grace 0.5). A flag may be written\n"
            "--flag VALUE or --flag=VALUE.\n"
            "\n"
            "Environment (the seed service's variables; a flag always wins):\n"
            "  REDIS_HOST, REDIS_PORT      Redis address when --redis is absent. When REDIS_HOST\n"
            "                              is set and --channel is absent, the channel is redis\n"
            "                              (and the store, unless --store says otherwise: the\n"
            "                              seed used Redis whenever REDIS_HOST was set).\n"
            "  MATCHMAKING_ROLE            api | worker | all, when --role is absent.\n"
            "  REDIS_PASSWORD              the Redis password, when neither --redis nor\n"
            "                              --redis-password-file gives one.\n"
            "  MATCHWIRE_AUTH_HS256_SECRET an HS256 secret (one more key, no kid).\n"
            "  MATCHWIRE_SERVICE_TOKEN     the service token, when --service-token-file is "
            "absent.\n"
            "  MATCHWIRE_TLS_CERT, MATCHWIRE_TLS_KEY\n"
            "                              --tls-cert and --tls-key, when absent.\n"
            "Empty variables count as unset.\n");
    return rc;
}

/* ---- Environment ---------------------------------------------------------- */

/* Value of NAME in env ("K=V" entries), NULL when absent or empty. */
static const char *env_get(char *const env[], const char *name)
{
    size_t n = strlen(name);

    if (!env)
        return NULL;
    for (size_t i = 0; env[i]; i++) {
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i][n + 1] ? env[i] + n + 1 : NULL;
    }
    return NULL;
}

static int apply_env(struct mw_config *cfg, char *const env[], const bool seen[O__COUNT], char *err,
                     size_t err_len)
{
    const char *host = env_get(env, "REDIS_HOST"), *port = env_get(env, "REDIS_PORT"),
               *role = env_get(env, "MATCHMAKING_ROLE");

    if (!seen[O_REDIS]) {
        if (host) {
            char hp[300], h[256];
            uint16_t p;
            /* a bare host name or address; [v6] or v6 without brackets */
            if (strchr(host, ':') && host[0] != '[')
                snprintf(hp, sizeof(hp), "[%s]:6379", host);
            else
                snprintf(hp, sizeof(hp), "%s:6379", host);
            if (strlen(host) > 255 || !parse_hostport(hp, false, 1, h, sizeof(h), &p))
                return bad(err, err_len, "REDIS_HOST: '%s' is not a host name or address", host);
            memcpy(cfg->redis_host, h, strlen(h) + 1);
        }
        if (port) {
            uint64_t u;
            if (!parse_u64(port, 65535, &u) || u < 1)
                return bad(err, err_len, "REDIS_PORT: expected 1..65535, got '%s'", port);
            cfg->redis_port = (uint16_t)u;
        }
    }
    if (host && !seen[O_CHANNEL])
        cfg->channel = MW_CHANNEL_REDIS;
    if (role && !seen[O_ROLE] && !parse_role(role, &cfg->role))
        return bad(err, err_len, "MATCHMAKING_ROLE: expected api, worker or all, got '%s'", role);
    return 0;
}

/* ---- Entry point ---------------------------------------------------------- */

int mw_config_read_file(const char *what, const char *path, char *buf, size_t cap, size_t *len,
                        char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f)
        return bad(err, err_len, "%s: cannot read '%s': %s", what, path, strerror(errno));
    n = fread(buf, 1, cap, f);
    if (ferror(f)) {
        fclose(f);
        return bad(err, err_len, "%s: cannot read '%s'", what, path);
    }
    fclose(f);
    if (n == cap)
        return bad(err, err_len, "%s: '%s' is %zu bytes or more", what, path, cap);
    n = mw_token_secret_trim(buf, n);
    if (n == 0)
        return bad(err, err_len, "%s: '%s' is empty", what, path);
    buf[n] = '\0';
    *len = n;
    return 0;
}

bool mw_config_tls_on(const struct mw_config *cfg)
{
    return cfg->tls_cert[0] && cfg->tls_key[0];
}

/* --tls-cert and --tls-key, else their variables: both or neither. */
static int apply_tls(struct mw_config *cfg, char *const env[], const bool seen[O__COUNT], char *err,
                     size_t err_len)
{
    const char *v;
    int rc;

    if (!seen[O_TLS_CERT] && (v = env_get(env, "MATCHWIRE_TLS_CERT")) != NULL) {
        rc = path_flag(cfg->tls_cert, "tls-cert (MATCHWIRE_TLS_CERT)", v, err, err_len);
        if (rc)
            return rc;
    }
    if (!seen[O_TLS_KEY] && (v = env_get(env, "MATCHWIRE_TLS_KEY")) != NULL) {
        rc = path_flag(cfg->tls_key, "tls-key (MATCHWIRE_TLS_KEY)", v, err, err_len);
        if (rc)
            return rc;
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0])
        return bad(err, err_len, "--tls-cert and --tls-key go together: %s is missing",
                   cfg->tls_cert[0] ? "--tls-key (or MATCHWIRE_TLS_KEY)"
                                    : "--tls-cert (or MATCHWIRE_TLS_CERT)");
    return 0;
}

bool mw_config_auth_on(const struct mw_config *cfg)
{
    return cfg->n_auth_keys > 0 || cfg->auth_hs256_env_len > 0;
}

/* Secrets from their files or variables (AUTH-080), and the auth
 * consistency checks that need no file (AUTH-003). */
static int apply_secrets(struct mw_config *cfg, char *const env[], const char *redis_pw_file,
                         const char *service_file, char *err, size_t err_len)
{
    const char *v;
    size_t n;
    int rc;

    if (redis_pw_file) {
        if (cfg->redis_password[0])
            return bad(err, err_len, "--redis-password-file: --redis already carries a password");
        rc = mw_config_read_file("--redis-password-file", redis_pw_file, cfg->redis_password,
                                 sizeof(cfg->redis_password), &n, err, err_len);
        if (rc)
            return rc;
    } else if (!cfg->redis_password[0] && (v = env_get(env, "REDIS_PASSWORD")) != NULL) {
        if (strlen(v) >= sizeof(cfg->redis_password))
            return bad(err, err_len, "REDIS_PASSWORD: at most %zu bytes",
                       sizeof(cfg->redis_password) - 1);
        memcpy(cfg->redis_password, v, strlen(v) + 1);
    }
    if (service_file) {
        rc = mw_config_read_file("--service-token-file", service_file, cfg->service_token,
                                 sizeof(cfg->service_token), &cfg->service_token_len, err, err_len);
        if (rc)
            return rc;
    } else if ((v = env_get(env, "MATCHWIRE_SERVICE_TOKEN")) != NULL) {
        n = strlen(v);
        if (n >= sizeof(cfg->service_token))
            return bad(err, err_len, "MATCHWIRE_SERVICE_TOKEN: at most %d bytes",
                       MW_TOKEN_SECRET_MAX);
        memcpy(cfg->service_token, v, n + 1);
        cfg->service_token_len = n;
    }
    if (cfg->service_token_len && cfg->service_token_len < MW_TOKEN_SECRET_MIN)
        return bad(err, err_len, "service token: at least %d bytes (AUTH-003)",
                   MW_TOKEN_SECRET_MIN);
    if ((v = env_get(env, "MATCHWIRE_AUTH_HS256_SECRET")) != NULL) {
        n = strlen(v);
        if (n < MW_TOKEN_SECRET_MIN || n > MW_TOKEN_SECRET_MAX)
            return bad(err, err_len, "MATCHWIRE_AUTH_HS256_SECRET: %d to %d bytes (AUTH-021)",
                       MW_TOKEN_SECRET_MIN, MW_TOKEN_SECRET_MAX);
        if (cfg->n_auth_keys == MW_TOKEN_KEYS_MAX)
            return bad(err, err_len, "MATCHWIRE_AUTH_HS256_SECRET: more than %d keys",
                       MW_TOKEN_KEYS_MAX);
        memcpy(cfg->auth_hs256_env, v, n + 1);
        cfg->auth_hs256_env_len = n;
    }
    return 0;
}

int mw_config_parse(struct mw_config *cfg, int argc, char *const argv[], char *const env[],
                    char *err, size_t err_len)
{
    bool seen[O__COUNT] = {false};
    const char *redis_pw_file = NULL, *service_file = NULL;
    int i, rc;

    mw_config_defaults(cfg);
    if (err && err_len)
        err[0] = '\0';
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *value;
        size_t nl;
        int o;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cfg->help = true;
            continue;
        }
        if (a[0] == '-' && a[1] == 'v' && strspn(a + 1, "v") == strlen(a + 1)) {
            cfg->log_level += (int)strlen(a + 1);
            if (cfg->log_level > 4)
                cfg->log_level = 4;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return bad(err, err_len, "unexpected argument '%s'", a);
        name = a + 2;
        eq = strchr(name, '=');
        nl = eq ? (size_t)(eq - name) : strlen(name);
        for (o = 0; o < O__COUNT; o++) {
            if (strlen(opts[o].name) == nl && memcmp(opts[o].name, name, nl) == 0)
                break;
        }
        if (o == O__COUNT)
            return bad(err, err_len, "unknown option '--%.*s'", (int)(nl > 64 ? 64 : nl), name);
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return bad(err, err_len, "--%s needs a value", opts[o].name);
            value = argv[++i];
        }
        rc = apply_flag(cfg, (enum opt_id)o, value, err, err_len);
        if (rc)
            return rc;
        if (o == O_REDIS_PASSWORD_FILE)
            redis_pw_file = value;
        else if (o == O_SERVICE_TOKEN_FILE)
            service_file = value;
        seen[o] = true;
    }
    if (cfg->help)
        return 0;
    rc = apply_env(cfg, env, seen, err, err_len);
    if (rc)
        return rc;
    rc = apply_secrets(cfg, env, redis_pw_file, service_file, err, err_len);
    if (rc)
        return rc;
    rc = apply_tls(cfg, env, seen, err, err_len);
    if (rc)
        return rc;
    /* AUTH-003: claims checks without a key would silently do nothing. */
    if (!mw_config_auth_on(cfg) &&
        (seen[O_AUTH_AUDIENCE] || seen[O_AUTH_ISSUER] || seen[O_AUTH_LEEWAY]))
        return bad(err, err_len,
                   "--auth-audience, --auth-issuer and --auth-leeway need a player-token key "
                   "(--auth-hs256-secret-file or --auth-public-key; AUTH-003)");
    /* Sessions remember deliveries as long as the store keeps tickets. */
    cfg->limits.retention_ms = cfg->assigned_ttl_ms;
    if (!seen[O_STORE]) /* --channel (or REDIS_HOST) picks both, as it always did */
        cfg->store = cfg->channel == MW_CHANNEL_REDIS ? MW_STORE_REDIS : MW_STORE_MEMORY;
    /* The Redis store publishes assignments in its script (CHN-062), on
     * Redis: a memory channel would never hear of them. */
    if (cfg->store == MW_STORE_REDIS && cfg->channel != MW_CHANNEL_REDIS)
        return bad(err, err_len,
                   "--store redis needs --channel redis: the store publishes "
                   "assignments on Redis (spec/channel.md CHN-062)");
    if (cfg->role != MW_ROLE_ALL && cfg->channel == MW_CHANNEL_MEMORY)
        return bad(err, err_len,
                   "--role %s needs --channel redis: a memory channel cannot reach another process",
                   cfg->role == MW_ROLE_API ? "api" : "worker");
    if (cfg->role != MW_ROLE_ALL && cfg->store == MW_STORE_MEMORY)
        return bad(err, err_len,
                   "--role %s needs --store redis: a memory store cannot reach another process",
                   cfg->role == MW_ROLE_API ? "api" : "worker");
    return 0;
}
