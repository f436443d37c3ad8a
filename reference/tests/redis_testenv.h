/* redis_testenv: a real redis-server for the Redis backend tests, started on
 * a free loopback port (no persistence), stopped, killed and restarted on the
 * same port; a blocking side client for setup and raw commands; and a loop
 * runner with a deadline. Header-only; every function static inline.
 *
 * A missing redis-server binary FAILS the test (make test installs it). */
#ifndef MW_REDIS_TESTENV_H
#define MW_REDIS_TESTENV_H

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_conn.h"

struct mwt_redis {
    pid_t pid;
    int port;
    char password[64]; /* "" for none: --requirepass when set */
};

/* The kernel's ephemeral port range (ip_local_port_range; its default
 * when unreadable). */
static inline void mwt_ephemeral_range(int *lo, int *hi)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

    *lo = 32768;
    *hi = 60999;
    if (f) {
        if (fscanf(f, "%d %d", lo, hi) != 2) {
            *lo = 32768;
            *hi = 60999;
        }
        fclose(f);
    }
}

/* A port nobody listens on right now, BELOW the ephemeral range: a port
 * from bind(:0) is an ephemeral one, and while a test's server is down
 * (restart tests) an outgoing connection, ours included, can take it as
 * its source port (a reconnect to 127.0.0.1:p can even connect to itself,
 * TCP simultaneous open), and then the server cannot bind it again. Random
 * candidates, so tests running in parallel (ctest -j) rarely collide; each
 * is checked by bind(). Returns the port or -1. */
static inline int mwt_free_port(void)
{
    struct sockaddr_in a;
    int lo, hi, span;
    unsigned seed;
    struct timespec ts;

    mwt_ephemeral_range(&lo, &hi);
    (void)hi;
    if (lo > 20000 + 1024) {
        span = lo - 1 - 20000;
        lo = 20000;
    } else {
        span = lo - 1 - 1024;
        lo = 1024;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec;
    for (int tries = 0; tries < 200 && span > 0; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, port, ok;

        if (fd < 0)
            return -1;
        seed = seed * 1103515245u + 12345u;
        port = lo + (int)((seed >> 8) % (unsigned)span);
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)port);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return port;
    }
    return -1;
}

static inline void mwt_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A blocking client to r (test side only), authenticated. NULL on failure. */
static inline redisContext *mwt_client(const struct mwt_redis *r)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    redisReply *rep;

    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    if (r->password[0]) {
        rep = redisCommand(c, "AUTH %s", r->password);
        if (rep)
            freeReplyObject(rep);
    }
    return c;
}

/* Starts redis-server on r->port (0: pick a free one) and waits until it
 * answers PING (5 s). Returns 0 or -1. */
static inline int mwt_redis_start(struct mwt_redis *r)
{
    char port[16];
    pid_t pid;

    if (r->port == 0)
        r->port = mwt_free_port();
    if (r->port <= 0)
        return -1;
    snprintf(port, sizeof(port), "%d", r->port);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        char *argv[20];
        int n = 0;

        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        argv[n++] = "redis-server";
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "no";
        argv[n++] = "--daemonize";
        argv[n++] = "no";
        if (r->password[0]) {
            argv[n++] = "--requirepass";
            argv[n++] = r->password;
        }
        argv[n] = NULL;
        execvp("redis-server", argv);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 500; i++) {
        int status;
        redisContext *c;

        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "redis-server exited (%d): is it installed?\n", status);
            r->pid = 0;
            return -1;
        }
        c = mwt_client(r);
        if (c) {
            redisReply *rep = redisCommand(c, "PING");
            bool ok = rep && rep->type == REDIS_REPLY_STATUS;

            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return 0;
        }
        mwt_sleep_ms(10);
    }
    return -1;
}

/* Stops the server (sig: SIGTERM for a clean stop, SIGKILL for a crash) and
 * reaps it. The port stays in r->port for a restart. */
static inline void mwt_redis_stop(struct mwt_redis *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

/* Runs one blocking command (printf-like, hiredis format) on a fresh client.
 * Returns the reply (caller frees with freeReplyObject) or NULL. */
static inline redisReply *mwt_cmd(const struct mwt_redis *r, const char *fmt, ...)
{
    redisContext *c = mwt_client(r);
    redisReply *rep = NULL;
    va_list ap;

    if (!c)
        return NULL;
    va_start(ap, fmt);
    rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}

/* Options for a connection to r. */
static inline struct mw_redis_opts mwt_opts(const struct mwt_redis *r, const char *prefix)
{
    struct mw_redis_opts o;

    memset(&o, 0, sizeof(o));
    snprintf(o.host, sizeof(o.host), "127.0.0.1");
    o.port = (uint16_t)r->port;
    snprintf(o.password, sizeof(o.password), "%s", r->password);
    snprintf(o.prefix, sizeof(o.prefix), "%s", prefix ? prefix : "");
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    return o;
}

/* ---- Loop runner --------------------------------------------------------- */

static inline void mwt_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs loop until pred(ud) is true or timeout_s passes. Returns pred's value
 * at the end. pred NULL: run for the whole timeout. */
static inline bool mwt_run_until(struct ev_loop *loop, bool (*pred)(void *ud), void *ud,
                                 double timeout_s)
{
    ev_timer tick;
    ev_tstamp end;
    bool ok = false;

    ev_now_update(loop);
    end = ev_now(loop) + timeout_s;
    ev_timer_init(&tick, mwt_tick, 0.005, 0.005);
    ev_timer_start(loop, &tick);
    for (;;) {
        if (pred && pred(ud)) {
            ok = true;
            break;
        }
        if (ev_now(loop) >= end)
            break;
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &tick);
    return ok;
}

/* Wall-clock milliseconds (for rate limiters and store times in tests). */
static inline int64_t mwt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline bool mwt_conn_ready_pred(void *ud)
{
    return mw_redis_conn_ready(ud);
}

#endif /* MW_REDIS_TESTENV_H */
