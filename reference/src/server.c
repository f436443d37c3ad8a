/* server: one server context from a config, fixed teardown order. */
#define _POSIX_C_SOURCE 200809L /* gethostname */
#include "server.h"

#include <ev.h>
#include <libwebsockets.h>
#include <openssl/crypto.h> /* OPENSSL_cleanse */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "channel.h"
#include "channel_memory.h"
#include "error.h"
#include "gateway.h"
#include "http.h"
#include "hub.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "session.h"
#include "ticket_store.h"
#include "token.h"
#include "ticket_store_memory.h"
#include "worker.h"
#include "channel_redis.h"
#include "ticket_store_redis.h"

#define SERVER_SWEEP_MAX_MS    100
#define SERVER_SWEEP_MIN_MS    10
#define SERVER_SHUTDOWN_POLL_S 0.02

struct mw_server {
    struct mw_config cfg;
    struct mw_loop *loop;
    struct mw_metrics metrics;
    struct mw_ticket_store store;
    bool have_store;
    struct mw_channel channel;
    bool have_channel;
    struct mw_hub *hub;
    struct mw_worker *worker;
    struct mw_http *http;
    struct mw_gateway *gw;
    struct mw_token_keys *auth_keys; /* player-token keys (spec/auth.md); empty: auth off */
    struct mw_session_env senv;
    struct mw_buf session_out; /* senv.scratch: every session's reply buffer */
    /* Ticket and match ids: getrandom(2) read 4 KiB at a time (one system
     * call per ~256 ids instead of one per id); see ticket.h. */
    struct mw_random_pool rnd;
    ev_timer sweep;
    ev_timer shutdown;
    int64_t shutdown_deadline_ms; /* monotonic */
    bool stopping;
};

/* ---- Logging -------------------------------------------------------------- */

/* mw_log filters by level itself; every line it lets through reaches lws's
 * log as err, warn or user (lws's notice/info are lws's own chatter). */
static void server_log_sink(enum mw_log_level level, const char *line, void *ud)
{
    (void)ud;
    switch (level) {
    case MW_LOG_ERR:
        lwsl_err("%s\n", line);
        break;
    case MW_LOG_WARN:
        lwsl_warn("%s\n", line);
        break;
    default:
        lwsl_user("%s\n", line);
        break;
    }
}

static int server_lws_log_mask(int level)
{
    int mask = LLL_ERR | LLL_USER;

    if (level >= 1)
        mask |= LLL_WARN;
    if (level >= 3)
        mask |= LLL_NOTICE;
    if (level >= 4)
        mask |= LLL_INFO | LLL_DEBUG;
    return mask;
}

/* ---- Callbacks from the parts --------------------------------------------- */

static int server_ready(void *ud, char *reason, size_t reason_len)
{
    struct mw_server *s = ud;

    if (s->stopping) {
        snprintf(reason, reason_len, "shutting down");
        return MW_ECLOSED;
    }
    if (s->have_store) {
        int rc = mw_ticket_store_ready(&s->store, reason, reason_len);

        if (rc)
            return rc;
    }
    if (s->have_channel)
        return mw_channel_ready(&s->channel, reason, reason_len);
    return 0;
}

static void server_gauges(void *ud, struct mw_metrics_gauges *g)
{
    struct mw_server *s = ud;
    char reason[64]; /* unused beyond the return code; room for any reason */

    if (s->have_store)
        mw_ticket_store_counts(&s->store, g->tickets);
    if (s->hub)
        g->watches = mw_hub_watch_count(s->hub);
    if (s->worker) {
        struct mw_worker_stats st;

        mw_worker_stats(s->worker, &st);
        g->waiting = mw_worker_waiting(s->worker);
        s->metrics.matches_total = st.matches;
    }
    g->ready = server_ready(s, reason, sizeof(reason)) == 0;
}

static void server_sweep_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct mw_server *s = w->data;
    int rc;

    (void)ev;
    (void)revents;
    rc = mw_ticket_store_sweep(&s->store, mw_loop_now_ms());
    if (rc < 0 && rc != MW_EUNAVAIL)
        mw_log(MW_LOG_WARN, "server: sweep failed: %s", mw_strerror(rc));
    /* Matches the store could not take wait for it to be ready (CHN-106). */
    if (s->worker)
        (void)mw_worker_retry(s->worker, mw_loop_now_ms());
}

static void server_shutdown_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct mw_server *s = w->data;

    (void)revents;
    if (mw_gateway_open(s->gw) == 0 || mw_loop_mono_ms() >= s->shutdown_deadline_ms) {
        if (mw_gateway_open(s->gw))
            mw_log(MW_LOG_WARN, "server: %zu connections did not close in time, dropping",
                   mw_gateway_open(s->gw));
        ev_timer_stop(ev, w);
        mw_loop_stop(s->loop);
    }
}

static void server_signal_cb(void *ud, int signum)
{
    struct mw_server *s = ud;

    mw_log(MW_LOG_NOTICE, "server: signal %d, shutting down", signum);
    mw_server_stop(s);
}

/* ---- Construction --------------------------------------------------------- */

/* Whether b[0..n) contains a PEM armour line ("-----BEGIN"). */
static bool server_is_pem(const char *b, size_t n)
{
    for (size_t i = 0; i + 10 <= n; i++)
        if (memcmp(b + i, "-----BEGIN", 10) == 0)
            return true;
    return false;
}

/* The player-token key set from the configured files and variable; refuses
 * to start on any unusable key (AUTH-003), says loudly when auth is off
 * (AUTH-002). Secrets never reach the log. */
static int server_load_auth(struct mw_server *s)
{
    const struct mw_config *cfg = &s->cfg;
    char err[256];
    char *buf;
    int rc = 0;

    s->auth_keys = mw_token_keys_new();
    buf = mw_malloc(MW_TOKEN_PEM_MAX + 1);
    if (!s->auth_keys || !buf) {
        mw_free(buf);
        return MW_ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_auth_keys && !rc; i++) {
        const struct mw_config_key *k = &cfg->auth_keys[i];
        bool hs = k->alg == MW_TOKEN_ALG_HS256;
        size_t len = 0;

        rc = mw_config_read_file(hs ? "--auth-hs256-secret-file" : "--auth-public-key", k->path,
                                 buf, hs ? MW_TOKEN_SECRET_MAX + 1 : MW_TOKEN_PEM_MAX + 1, &len,
                                 err, sizeof(err));
        if (rc) {
            mw_log(MW_LOG_ERR, "server: %s", err);
            break;
        }
        if (hs && server_is_pem(buf, len)) {
            /* AUTH-022: a PEM text is never an HMAC secret. */
            mw_log(MW_LOG_ERR,
                   "server: --auth-hs256-secret-file %s: a PEM text is not an HS256 "
                   "secret (AUTH-022)",
                   k->path);
            rc = MW_EINVAL;
        } else {
            rc = hs ? mw_token_keys_add_hs256(s->auth_keys, buf, len, k->kid[0] ? k->kid : NULL)
                    : mw_token_keys_add_pem(s->auth_keys, k->alg, buf, len,
                                            k->kid[0] ? k->kid : NULL);
            if (rc)
                mw_log(MW_LOG_ERR, "server: %s key %s%s%s: %s (AUTH-003)",
                       mw_token_alg_name(k->alg), k->path, k->kid[0] ? " kid " : "", k->kid,
                       rc == MW_EINVAL ? "unusable for its algorithm (size, type or kid)"
                                       : mw_strerror(rc));
        }
        OPENSSL_cleanse(buf, MW_TOKEN_PEM_MAX + 1);
    }
    mw_free(buf);
    if (!rc && cfg->auth_hs256_env_len) {
        if (server_is_pem(cfg->auth_hs256_env, cfg->auth_hs256_env_len))
            rc = MW_EINVAL;
        else
            rc = mw_token_keys_add_hs256(s->auth_keys, cfg->auth_hs256_env, cfg->auth_hs256_env_len,
                                         NULL);
        if (rc)
            mw_log(MW_LOG_ERR, "server: MATCHWIRE_AUTH_HS256_SECRET: unusable (AUTH-003)");
    }
    if (rc)
        return rc;
    if (mw_token_keys_count(s->auth_keys) == 0)
        mw_log(MW_LOG_WARN, "AUTH IS OFF: any client may act as any player; configure "
                            "--auth-hs256-secret-file or --auth-public-key");
    else
        mw_log(MW_LOG_NOTICE, "server: auth on: %zu player-token key(s)%s",
               mw_token_keys_count(s->auth_keys), cfg->service_token_len ? ", service token" : "");
    return 0;
}

static void server_redis_opts(const struct mw_config *cfg, struct mw_redis_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->host, sizeof(o->host), "%s", cfg->redis_host);
    o->port = cfg->redis_port;
    snprintf(o->password, sizeof(o->password), "%s", cfg->redis_password);
    o->db = cfg->redis_db;
    snprintf(o->prefix, sizeof(o->prefix), "%s", cfg->redis_prefix);
    o->timeout_ms = cfg->redis_timeout_ms; /* CHN-104 */
}

/* ---- Re-read after resubscription (CHN-023) --------------------------------
 * Redis pub/sub is at-most-once: what was published while this instance's
 * subscription was down is lost. So after every (re)subscription, every
 * watched ticket is read again from the store (the truth) and pushed through
 * the hub, whose sessions drop versions they already sent. */

static void server_reread_done(void *ud, int status, const struct mw_ticket *t)
{
    struct mw_server *s = ud;

    if (status || !t || !s->hub)
        return;
    mw_hub_on_reread(s->hub, t);
}

static void server_reread_one(void *ud, const char *ticket_id)
{
    struct mw_server *s = ud;

    /* A failure (Redis down again) is fine: the next resubscription re-reads. */
    (void)mw_ticket_store_get(&s->store, ticket_id, server_reread_done, s);
}

static void server_reread(void *ud)
{
    struct mw_server *s = ud;
    size_t n;

    if (!s->hub)
        return;
    n = mw_hub_foreach_ticket(s->hub, server_reread_one, s);
    if (n)
        mw_log(MW_LOG_NOTICE, "server: resubscribed, re-reading %zu watched tickets", n);
}

/* A ticket ended without assignment: its watchers hear it (MSG-062). */
static void server_on_ended(void *ud, const struct mw_ticket *t)
{
    struct mw_server *s = ud;

    mw_hub_on_ended(s->hub, t);
}

/* ---- Backends --------------------------------------------------------------
 * One row per backend: what --store and --channel name, and how to make
 * its store and its channel. Everything else about a backend goes through
 * its ops table (ready, counts, sweep) and the hooks given here. */

static int server_store_memory(struct mw_server *s, const struct mw_ticket_store_config *scfg,
                               const struct mw_ticket_store_hooks *h)
{
    return mw_ticket_store_memory_new(&s->store, scfg, h, mw_loop_defer(s->loop),
                                      mw_random_pool_read, &s->rnd);
}

static int server_channel_memory(struct mw_server *s, const struct mw_channel_hooks *h)
{
    return mw_channel_memory_new(&s->channel, h, mw_loop_defer(s->loop), 0);
}

static int server_store_redis(struct mw_server *s, const struct mw_ticket_store_config *scfg,
                              const struct mw_ticket_store_hooks *h)
{
    struct mw_redis_opts ro;
    char consumer[128], host[64] = "host";

    server_redis_opts(&s->cfg, &ro);
    gethostname(host, sizeof(host) - 1);
    snprintf(consumer, sizeof(consumer), "%s-%ld", host, (long)getpid());
    return mw_ticket_store_redis_new(&s->store, scfg, h, mw_loop_ev(s->loop), &ro, consumer,
                                     mw_random_pool_read, &s->rnd);
}

static int server_channel_redis(struct mw_server *s, const struct mw_channel_hooks *h)
{
    struct mw_redis_opts ro;

    server_redis_opts(&s->cfg, &ro);
    return mw_channel_redis_new(&s->channel, h, mw_loop_ev(s->loop), &ro, &s->metrics);
}

static const struct server_backend {
    const char *name; /* --store / --channel value */
    int (*store_new)(struct mw_server *s, const struct mw_ticket_store_config *scfg,
                     const struct mw_ticket_store_hooks *h);
    int (*channel_new)(struct mw_server *s, const struct mw_channel_hooks *h);
} server_backends[] = {
    [MW_STORE_MEMORY] = {.name = "memory",
                         .store_new = server_store_memory,
                         .channel_new = server_channel_memory},
    [MW_STORE_REDIS] = {.name = "redis",
                        .store_new = server_store_redis,
                        .channel_new = server_channel_redis},
};
_Static_assert((int)MW_STORE_MEMORY == (int)MW_CHANNEL_MEMORY &&
                   (int)MW_STORE_REDIS == (int)MW_CHANNEL_REDIS,
               "--store and --channel index one backend table");

static int server_make_backends(struct mw_server *s)
{
    const struct mw_config *cfg = &s->cfg;
    const struct server_backend *sb = &server_backends[cfg->store];
    const struct server_backend *cb = &server_backends[cfg->channel];
    struct mw_ticket_store_config scfg;
    /* The hub (api roles) hears of ends, and re-reads what the store's and
     * the channel's notices may have lost (CHN-023). */
    struct mw_ticket_store_hooks sh = {
        .on_ended = s->hub ? server_on_ended : NULL,
        .on_resubscribed = s->hub ? server_reread : NULL,
        .ud = s,
    };
    struct mw_channel_hooks ch = {.on_resubscribed = s->hub ? server_reread : NULL, .ud = s};
    int rc;

    memset(&scfg, 0, sizeof(scfg));
    scfg.ticket_ttl_ms = cfg->ticket_ttl_ms;
    scfg.assigned_ttl_ms = cfg->assigned_ttl_ms;
    scfg.grace_ms = cfg->grace_ms;

    rc = sb->store_new(s, &scfg, &sh);
    if (rc) {
        mw_log(MW_LOG_ERR, "server: %s ticket store: %s", sb->name, mw_strerror(rc));
        return rc;
    }
    s->have_store = true;
    rc = cb->channel_new(s, &ch);
    if (rc) {
        mw_log(MW_LOG_ERR, "server: %s channel: %s", cb->name, mw_strerror(rc));
        return rc;
    }
    s->have_channel = true;
    return 0;
}

static double server_sweep_period_s(const struct mw_config *cfg)
{
    int64_t ms = SERVER_SWEEP_MAX_MS;
    int64_t shortest = cfg->grace_ms < cfg->ticket_ttl_ms ? cfg->grace_ms : cfg->ticket_ttl_ms;

    if (shortest > 0 && shortest / 4 < ms)
        ms = shortest / 4;
    if (ms < SERVER_SWEEP_MIN_MS)
        ms = SERVER_SWEEP_MIN_MS;
    return (double)ms / 1000.0;
}

struct mw_server *mw_server_new(const struct mw_config *cfg)
{
    struct mw_gateway_config gcfg;
    struct mw_http_env henv;
    struct mw_server *s;
    bool api = cfg->role != MW_ROLE_WORKER;
    bool work = cfg->role != MW_ROLE_API;

    lws_set_log_level(server_lws_log_mask(cfg->log_level), NULL);
    mw_log_setup(server_log_sink, NULL,
                 cfg->log_level > MW_LOG_DEBUG
                     ? MW_LOG_DEBUG
                     : (enum mw_log_level)(cfg->log_level < 0 ? 0 : cfg->log_level));
    s = mw_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    mw_metrics_init(&s->metrics);
    mw_random_pool_init(&s->rnd, mw_random_os, NULL);

    s->loop = mw_loop_new();
    if (!s->loop)
        goto fail;
    if (server_load_auth(s))
        goto fail;
    if (api) {
        /* Every map keyed by client-chosen strings hashes with its own
         * random key (hash flooding): hub, matchmaker, memory store,
         * sessions. */
        struct mw_hash_key hk;

        if (mw_hash_key_random(&hk, mw_random_os, NULL) != 0)
            goto fail;
        s->hub = mw_hub_new_keyed(0, &hk);
        if (!s->hub)
            goto fail;
    }
    /* After the hub: the backends' hooks (server_make_backends) reach it. */
    if (server_make_backends(s))
        goto fail;
    if (api && mw_channel_subscribe(&s->channel, mw_hub_on_assigned, s->hub))
        goto fail;
    if (work) {
        struct mw_worker_config wcfg = cfg->worker;

        wcfg.mm.has_hash_key = true;
        if (mw_hash_key_random(&wcfg.mm.hash_key, mw_random_os, NULL) != 0)
            goto fail;
        s->worker = mw_worker_new(&wcfg, &s->store, &s->channel, mw_random_pool_read, &s->rnd,
                                  mw_loop_now_fn, NULL);
        if (!s->worker)
            goto fail;
    }

    s->senv.store = &s->store;
    s->senv.hub = s->hub;
    s->senv.metrics = &s->metrics;
    s->senv.limits = cfg->limits;
    mw_buf_init(&s->session_out, MW_SESSION_OUT_MAX);
    s->senv.scratch = &s->session_out;
    if (mw_hash_key_random(&s->senv.hash_key, mw_random_os, NULL) != 0)
        goto fail;

    memset(&henv, 0, sizeof(henv));
    henv.store = &s->store;
    henv.metrics = &s->metrics;
    henv.role = cfg->role == MW_ROLE_ALL ? "all" : cfg->role == MW_ROLE_API ? "api" : "worker";
    henv.channel = server_backends[cfg->channel].name;
    henv.tickets_api = api;
    henv.ready = server_ready;
    henv.gauges = server_gauges;
    henv.ud = s;
    henv.auth_keys = s->auth_keys;
    mw_token_policy_init(&henv.auth_policy);
    henv.auth_policy.leeway_s = s->cfg.auth_leeway_s;
    henv.auth_policy.audience = s->cfg.auth_audience[0] ? s->cfg.auth_audience : NULL;
    henv.auth_policy.issuer = s->cfg.auth_issuer[0] ? s->cfg.auth_issuer : NULL;
    henv.service_token = s->cfg.service_token_len ? s->cfg.service_token : NULL;
    henv.service_token_len = s->cfg.service_token_len;
    s->http = mw_http_new(&henv);
    if (!s->http)
        goto fail;

    memset(&gcfg, 0, sizeof(gcfg));
    snprintf(gcfg.host, sizeof(gcfg.host), "%s", cfg->listen_host);
    gcfg.port = cfg->listen_port;
    gcfg.max_connections = cfg->max_connections;
    gcfg.outbound_max_messages = cfg->outbound_max_messages;
    gcfg.outbound_max_bytes = cfg->outbound_max_bytes;
    gcfg.reassembly_budget = cfg->reassembly_budget;
    gcfg.idle_timeout_s = cfg->idle_timeout_s;
    gcfg.websocket = api;
    gcfg.lws_log_level = server_lws_log_mask(cfg->log_level);
    gcfg.auth_keys = s->auth_keys;
    gcfg.auth_policy = henv.auth_policy;
    for (size_t i = 0; i < s->cfg.n_allowed_origins && i < MW_GATEWAY_ORIGINS_MAX; i++)
        gcfg.allowed_origins[gcfg.n_allowed_origins++] = s->cfg.allowed_origins[i];
    if (mw_config_tls_on(&s->cfg)) {
        /* The server's copy of the names outlives the gateway. */
        gcfg.tls_cert = s->cfg.tls_cert;
        gcfg.tls_key = s->cfg.tls_key;
    }
    s->gw = mw_gateway_new(&gcfg, mw_loop_ev(s->loop), &s->senv, s->http, &s->metrics);
    if (!s->gw)
        goto fail;
    if (gcfg.tls_cert)
        mw_log(MW_LOG_NOTICE, "server: TLS on (TLS 1.2+): wss:// and https:// only");

    /* The expiry pass runs where the matchmaking runs (roles all and worker;
     * ticket_store_redis.h: sweep in worker-role instances only). */
    ev_timer_init(&s->sweep, server_sweep_cb, server_sweep_period_s(cfg),
                  server_sweep_period_s(cfg));
    s->sweep.data = s;
    if (work)
        ev_timer_start(mw_loop_ev(s->loop), &s->sweep);
    ev_init(&s->shutdown, server_shutdown_cb);
    s->shutdown.repeat = SERVER_SHUTDOWN_POLL_S;
    s->shutdown.data = s;
    mw_loop_watch_signals(s->loop, server_signal_cb, s);
    return s;

fail:
    mw_log(MW_LOG_ERR, "server: start-up failed");
    mw_server_free(s);
    return NULL;
}

int mw_server_run(struct mw_server *s)
{
    mw_loop_run(s->loop);
    return 0;
}

void mw_server_stop(struct mw_server *s)
{
    struct ev_loop *ev = mw_loop_ev(s->loop);

    if (s->stopping)
        return;
    s->stopping = true;
    /* A second signal now terminates the default way. */
    mw_loop_unwatch_signals(s->loop);
    ev_timer_stop(ev, &s->sweep);
    if (!s->gw) {
        mw_loop_stop(s->loop);
        return;
    }
    mw_gateway_shutdown(s->gw); /* stop accepting; every WebSocket closes 1001 */
    s->shutdown_deadline_ms = mw_loop_mono_ms() + MW_SERVER_SHUTDOWN_WAIT_MS;
    ev_timer_again(ev, &s->shutdown);
}

uint16_t mw_server_port(const struct mw_server *s)
{
    return mw_gateway_port(s->gw);
}

void mw_server_free(struct mw_server *s)
{
    if (!s)
        return;
    if (s->loop) {
        struct ev_loop *ev = mw_loop_ev(s->loop);

        mw_loop_unwatch_signals(s->loop);
        ev_timer_stop(ev, &s->sweep);
        ev_timer_stop(ev, &s->shutdown);
    }
    /* 1. Gateway: every session is closed while store and hub exist. */
    mw_gateway_free(s->gw);
    s->gw = NULL;
    /* 2. Store: pending callbacks get MW_ECLOSED; sessions, HTTP requests and
     *    the worker they point at still exist. */
    if (s->have_store)
        mw_ticket_store_destroy(&s->store);
    s->have_store = false;
    /* 3. HTTP routes (no request can call back any more). */
    mw_http_free(s->http);
    /* 4. Worker. */
    mw_worker_free(s->worker);
    /* 5. Channel (pending deliveries dropped). */
    if (s->have_channel)
        mw_channel_destroy(&s->channel);
    s->have_channel = false;
    /* 6. Hub. */
    mw_hub_free(s->hub);
    /* 7. Loop: defer queue, then the ev loop. */
    mw_loop_free(s->loop);
    /* 8. The sessions' reply buffer (the last session went with the store). */
    mw_buf_release(&s->session_out);
    /* 9. Unused random bytes: erased (ids already handed out stay secret). */
    mw_random_pool_wipe(&s->rnd);
    /* 10. Keys (wiped by their free) and the secrets of the config copy. */
    mw_token_keys_free(s->auth_keys);
    OPENSSL_cleanse(&s->cfg, sizeof(s->cfg));
    mw_free(s);
}
