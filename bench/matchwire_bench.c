/* matchwire-bench: an open-loop load generator for any Matchwire server.
 *
 * Opens N WebSocket connections (subprotocol matchwire.v1) to one or two
 * gateways, spread over 127.0.0.x source addresses, then offers `enqueue`s
 * on a fixed schedule (rate R assignments per second, in groups of the
 * match size so players pair up at once) from connections that hold no live
 * ticket. Latency is measured from each ticket's INTENDED send time, so a
 * slow server (or a late generator) cannot hide its delay (coordinated
 * omission corrected). Counts lost, duplicate and malformed assignments,
 * and reads the server's CPU and RSS from /proc.
 *
 * One thread, one epoll loop, no allocation on the hot path except cJSON's
 * parse of each server message. Traffic only to 127.0.0.0/8. Every phase
 * has a deadline, so every run stops by itself. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "bench_hist.h"
#include "bench_ws.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ===================================================================== */
/* Bounds                                                                 */
/* ===================================================================== */

#define MAX_PIDS    8
#define MAX_CODES   16        /* distinct error / close codes counted by name */
#define MAX_TICKETS 20000000u /* tickets per run: 16 bytes each, 320 MB at most */
#define MAX_CONNS   1000000u
#define RECENT      4 /* past tickets remembered per connection (duplicates) */
#define IN_BOUND    (MW_BENCH_WS_MAX_PAYLOAD + 16) /* partial input kept per connection */
#define OUT_BOUND   (64 * 1024)                    /* unsent output per connection */
#define SCRATCH     (256 * 1024)
#define NONE        UINT32_MAX
#define NS          1000000000ull
#define SUBPROTOCOL "matchwire.v1"

/* The one global: set by SIGINT/SIGTERM, read by the loop. */
static volatile sig_atomic_t g_stop;

/* ===================================================================== */
/* Types                                                                  */
/* ===================================================================== */

struct target {
    char host[64];
    unsigned port;
    char path[128];
    struct sockaddr_in addr;
};

struct options {
    struct target url[2];
    unsigned n_urls;
    unsigned connections;
    double rate; /* assignments per second offered; 0: hold idle */
    double duration_s;
    double warmup_s;
    double timeout_s;
    double connect_timeout_s;
    double settle_s;
    char queue[65];
    unsigned match_size;
    int pids[MAX_PIDS]; /* servers: CPU and RSS */
    unsigned n_pids;
    int aux_pids[MAX_PIDS]; /* helpers such as redis-server: CPU only, reported apart */
    unsigned n_aux;
    const char *json_path;
    const char *label;
    unsigned src_addrs;
    unsigned connect_concurrency;
    bool no_subprotocol;
    bool check;
    bool quiet;
    char prefix[32];
};

enum conn_state { CS_NEW = 0, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN, CS_CLOSED };

/* A bounded byte buffer, allocated only when needed. */
struct bytes {
    uint8_t *p;
    uint32_t len;
    uint32_t cap;
};

struct conn {
    int fd;
    uint8_t state;
    uint8_t gw;      /* index into options.url */
    uint8_t frag_op; /* opcode of a fragmented message in progress, 0 none */
    uint8_t recent_pos;
    bool writing;  /* EPOLLOUT armed */
    bool in_idle;  /* on the idle FIFO */
    uint32_t live; /* seq of the live ticket, or NONE */
    uint32_t recent[RECENT];
    uint32_t next_idle;
    uint64_t started_ns;
    char accept[MW_BENCH_WS_ACCEPT_LEN + 1];
    struct bytes in;   /* partial frame carried over between reads */
    struct bytes out;  /* bytes the socket did not take yet */
    struct bytes frag; /* fragmented message being reassembled */
};

enum {
    T_SENT = 1,
    T_ENQUEUED = 2,
    T_ASSIGNED = 4,
    T_REJECTED = 8,
    T_ENDED = 16, /* expired or cancelled by the server */
    T_HASID = 32,
};

struct ticket {
    uint64_t id_hash; /* FNV-1a of the ticketId the server gave */
    uint32_t conn;
    uint8_t flags;
};

struct named_count {
    char name[32];
    uint64_t n;
};

struct counters {
    uint64_t sent;
    uint64_t enqueued;
    uint64_t assigned;
    uint64_t assigned_in_window;
    uint64_t duplicate;
    uint64_t malformed;
    uint64_t rejected;
    uint64_t ended;
    uint64_t cross_gateway;
    uint64_t pings;
    uint64_t closed_by_server;
    uint64_t io_errors;
};

struct proc_sample {
    uint64_t cpu_ticks[MAX_PIDS];
    uint64_t rss_kib[MAX_PIDS];
    uint64_t aux_ticks[MAX_PIDS];
    uint64_t self_ticks; /* this generator */
    uint64_t busy_ticks; /* every CPU of the machine: all but idle and iowait */
};

struct bench {
    struct options o;
    int ep;
    uint64_t rng;
    struct conn *conns;
    struct ticket *tickets;
    uint32_t n_tickets; /* scheduled over the run */
    uint32_t next_seq;  /* next ticket to send */
    uint32_t idle_head, idle_tail, n_idle;
    uint64_t t0_ns, warm_ns, end_ns;
    double group_period_ns;
    bool in_window;
    uint8_t *scratch;

    /* connect phase */
    uint32_t next_connect;
    uint32_t connecting; /* in CONNECTING or HANDSHAKE */
    uint32_t n_open;
    uint32_t n_failed;
    struct named_count fail_reasons[MAX_CODES];
    struct named_count close_codes[MAX_CODES];
    struct named_count error_codes[MAX_CODES];

    struct counters c;
    struct mw_bench_hist *h_enqueued;
    struct mw_bench_hist *h_assigned;
    struct mw_bench_hist *h_lag; /* how late the generator sent (diagnostic) */
    struct mw_bench_hist *h_connect;

    /* measurements */
    struct proc_sample rss_before, rss_after, cpu_start, cpu_end;
    bool have_rss, have_cpu;
    struct rusage ru_start, ru_end;
    uint64_t window_ns;
    uint64_t lost, lost_no_reply, unsent;
    double achieved;
};

/* ===================================================================== */
/* Small helpers                                                          */
/* ===================================================================== */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h | 1; /* never 0 */
}

static void count_name(struct named_count *t, const char *name)
{
    for (unsigned i = 0; i < MAX_CODES; i++) {
        if (t[i].n == 0) {
            snprintf(t[i].name, sizeof(t[i].name), "%s", name);
            t[i].n = 1;
            return;
        }
        if (strcmp(t[i].name, name) == 0) {
            t[i].n++;
            return;
        }
    }
    /* Table full: the last slot counts every other name. */
    snprintf(t[MAX_CODES - 1].name, sizeof(t[MAX_CODES - 1].name), "%s", "other");
    t[MAX_CODES - 1].n++;
}

/* Appends src[0..n) to b, growing it up to bound. Returns 0 or -1. */
static int bytes_append(struct bytes *b, const void *src, size_t n, uint32_t bound)
{
    if ((size_t)b->len + n > bound)
        return -1;
    if (b->len + n > b->cap) {
        uint32_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > bound)
            cap = bound;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += (uint32_t)n;
    return 0;
}

static void bytes_consume(struct bytes *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        free(b->p); /* idle connections hold no buffers */
        b->p = NULL;
        b->cap = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= (uint32_t)n;
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Intended send time of ticket seq: groups of match_size share one. */
static uint64_t intended_ns(const struct bench *b, uint32_t seq)
{
    uint64_t group = seq / b->o.match_size;
    return b->t0_ns + (uint64_t)((double)group * b->group_period_ns);
}

/* ===================================================================== */
/* /proc readings                                                         */
/* ===================================================================== */

/* utime+stime of pid in clock ticks, or -1. */
static int64_t proc_cpu_ticks(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* After ") ": field 3 (state) ... field 14 utime, 15 stime. */
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (int64_t)(ut + st);
}

/* VmRSS of pid in KiB, or -1. */
static int64_t proc_rss_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int64_t kib = -1;
    while (fgets(line, sizeof(line), f)) {
        long long v;
        if (sscanf(line, "VmRSS: %lld kB", &v) == 1) {
            kib = v;
            break;
        }
    }
    fclose(f);
    return kib;
}

/* Non-idle clock ticks of the whole machine (/proc/stat "cpu" line). */
static uint64_t machine_busy_ticks(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 5)
        return 0;
    /* user nice system idle iowait irq softirq steal: all but idle, iowait */
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

static bool sample_procs(const struct bench *b, struct proc_sample *s)
{
    int64_t self = proc_cpu_ticks((int)getpid());
    s->self_ticks = self < 0 ? 0 : (uint64_t)self;
    s->busy_ticks = machine_busy_ticks();
    for (unsigned i = 0; i < b->o.n_pids; i++) {
        int64_t t = proc_cpu_ticks(b->o.pids[i]);
        int64_t r = proc_rss_kib(b->o.pids[i]);
        if (t < 0 || r < 0)
            return false;
        s->cpu_ticks[i] = (uint64_t)t;
        s->rss_kib[i] = (uint64_t)r;
    }
    for (unsigned i = 0; i < b->o.n_aux; i++) {
        int64_t t = proc_cpu_ticks(b->o.aux_pids[i]);
        s->aux_ticks[i] = t < 0 ? 0 : (uint64_t)t;
    }
    return b->o.n_pids > 0;
}

static uint64_t sum_rss(const struct bench *b, const struct proc_sample *s)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < b->o.n_pids; i++)
        t += s->rss_kib[i];
    return t;
}

static uint64_t sum_cpu(const struct bench *b, const struct proc_sample *s)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < b->o.n_pids; i++)
        t += s->cpu_ticks[i];
    return t;
}

/* ===================================================================== */
/* Connections                                                            */
/* ===================================================================== */

static void idle_push(struct bench *b, uint32_t ci)
{
    struct conn *c = &b->conns[ci];
    if (c->in_idle || c->state != CS_OPEN)
        return;
    c->in_idle = true;
    c->next_idle = NONE;
    if (b->idle_tail == NONE)
        b->idle_head = ci;
    else
        b->conns[b->idle_tail].next_idle = ci;
    b->idle_tail = ci;
    b->n_idle++;
}

/* The least recently used idle open connection, or NONE. */
static uint32_t idle_pop(struct bench *b)
{
    while (b->idle_head != NONE) {
        uint32_t ci = b->idle_head;
        struct conn *c = &b->conns[ci];
        b->idle_head = c->next_idle;
        if (b->idle_head == NONE)
            b->idle_tail = NONE;
        c->in_idle = false;
        b->n_idle--;
        if (c->state == CS_OPEN && c->live == NONE)
            return ci;
    }
    return NONE;
}

static void conn_close(struct bench *b, uint32_t ci, const char *fail_reason)
{
    struct conn *c = &b->conns[ci];
    if (c->state == CS_CLOSED)
        return;
    if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE) {
        b->connecting--;
        b->n_failed++;
        count_name(b->fail_reasons, fail_reason ? fail_reason : "closed");
    } else if (c->state == CS_OPEN) {
        b->n_open--;
    }
    if (c->fd >= 0) {
        epoll_ctl(b->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = CS_CLOSED;
    bytes_free(&c->in);
    bytes_free(&c->out);
    bytes_free(&c->frag);
}

static void set_events(struct bench *b, uint32_t ci, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.u32 = ci};
    epoll_ctl(b->ep, EPOLL_CTL_MOD, b->conns[ci].fd, &e);
}

/* Writes data, keeping what the socket does not take. Returns 0 or -1 (the
 * connection was closed). */
static int conn_write(struct bench *b, uint32_t ci, const void *data, size_t len)
{
    struct conn *c = &b->conns[ci];
    size_t off = 0;
    if (c->out.len == 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            b->c.io_errors++;
            conn_close(b, ci, "send");
            return -1;
        }
        off = n > 0 ? (size_t)n : 0;
        if (off == len)
            return 0;
    }
    if (bytes_append(&c->out, (const uint8_t *)data + off, len - off, OUT_BOUND) != 0) {
        b->c.io_errors++;
        conn_close(b, ci, "outbuf");
        return -1;
    }
    if (!c->writing) {
        c->writing = true;
        set_events(b, ci, EPOLLIN | EPOLLOUT);
    }
    return 0;
}

static void conn_flush(struct bench *b, uint32_t ci)
{
    struct conn *c = &b->conns[ci];
    if (c->out.len) {
        ssize_t n = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            b->c.io_errors++;
            conn_close(b, ci, "send");
            return;
        }
        bytes_consume(&c->out, (size_t)n);
    }
    if (c->out.len == 0 && c->writing) {
        c->writing = false;
        set_events(b, ci, EPOLLIN);
    }
}

static int send_frame(struct bench *b, uint32_t ci, unsigned op, const void *p, size_t n)
{
    uint8_t frame[1024];
    uint64_t r = xorshift(&b->rng);
    uint8_t mask[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
    int len = mw_bench_ws_frame(frame, sizeof(frame), op, p, n, mask);
    if (len < 0)
        return -1;
    return conn_write(b, ci, frame, (size_t)len);
}

static int start_connect(struct bench *b, uint32_t ci)
{
    struct conn *c = &b->conns[ci];
    const struct target *t = &b->o.url[c->gw];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
    src.sin_addr.s_addr = htonl(0x7F000001u + ci % b->o.src_addrs);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        (connect(fd, (const struct sockaddr *)&t->addr, sizeof(t->addr)) != 0 &&
         errno != EINPROGRESS)) {
        int e = errno;
        close(fd);
        return -e;
    }
    c->fd = fd;
    c->state = CS_CONNECTING;
    c->started_ns = now_ns();
    struct epoll_event e = {.events = EPOLLOUT, .data.u32 = ci};
    if (epoll_ctl(b->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        int err = errno;
        close(fd);
        c->fd = -1;
        c->state = CS_NEW;
        return -err;
    }
    b->connecting++;
    return 0;
}

/* TCP is up: send the upgrade request. */
static void on_connected(struct bench *b, uint32_t ci)
{
    struct conn *c = &b->conns[ci];
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
        conn_close(b, ci, err == ECONNREFUSED ? "refused" : "connect");
        return;
    }
    uint8_t nonce[16];
    uint64_t r1 = xorshift(&b->rng), r2 = xorshift(&b->rng);
    memcpy(nonce, &r1, 8);
    memcpy(nonce + 8, &r2, 8);
    char key[MW_BENCH_WS_KEY_LEN + 1];
    mw_bench_ws_key(nonce, key);
    if (mw_bench_ws_accept(key, c->accept) != 0) {
        conn_close(b, ci, "sha1");
        return;
    }
    const struct target *t = &b->o.url[c->gw];
    char req[512];
    int n = mw_bench_ws_request(req, sizeof(req), t->host, t->port, t->path, key,
                                b->o.no_subprotocol ? NULL : SUBPROTOCOL);
    if (n < 0) {
        conn_close(b, ci, "request");
        return;
    }
    c->state = CS_HANDSHAKE;
    set_events(b, ci, EPOLLIN);
    conn_write(b, ci, req, (size_t)n);
}

/* ===================================================================== */
/* Protocol: enqueue out, server messages in                             */
/* ===================================================================== */

static bool in_window(const struct bench *b, uint32_t seq)
{
    return intended_ns(b, seq) >= b->warm_ns;
}

static void send_enqueue(struct bench *b, uint32_t ci, uint32_t seq, uint64_t now)
{
    struct conn *c = &b->conns[ci];
    char msg[512];
    int n = snprintf(msg, sizeof(msg),
                     "{\"type\":\"enqueue\",\"v\":1,\"id\":\"t%" PRIu32 "\",\"data\":"
                     "{\"queue\":\"%s\",\"playerId\":\"%s-%" PRIu32 "-%" PRIu32 "\"}}",
                     seq, b->o.queue, b->o.prefix, ci, seq);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return;
    struct ticket *t = &b->tickets[seq];
    t->conn = ci;
    t->flags = T_SENT;
    t->id_hash = 0;
    c->live = seq;
    b->c.sent++;
    uint64_t due = intended_ns(b, seq);
    mw_bench_hist_record(b->h_lag, now > due ? now - due : 0);
    send_frame(b, ci, MW_BENCH_WS_OP_TEXT, msg, (size_t)n);
}

/* The live ticket of c became final: remember it, free the connection. */
static void ticket_done(struct bench *b, uint32_t ci, uint32_t seq)
{
    struct conn *c = &b->conns[ci];
    if (c->live == seq)
        c->live = NONE;
    c->recent[c->recent_pos] = seq;
    c->recent_pos = (uint8_t)((c->recent_pos + 1) % RECENT);
    idle_push(b, ci);
}

static const cJSON *member(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static bool is_int(const cJSON *n, double want)
{
    return cJSON_IsNumber(n) && n->valuedouble == want;
}

/* Parses "t<seq>" into seq. */
static bool parse_req_id(const char *s, uint32_t *seq)
{
    if (s[0] != 't' || s[1] < '0' || s[1] > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s + 1, &end, 10);
    if (errno || *end || v >= UINT32_MAX)
        return false;
    *seq = (uint32_t)v;
    return true;
}

static void on_enqueued(struct bench *b, uint32_t ci, uint32_t seq, const cJSON *data, uint64_t now)
{
    struct ticket *t = &b->tickets[seq];
    const cJSON *tid = member(data, "ticketId");
    const cJSON *state = member(data, "state");
    if (!cJSON_IsString(tid) || !cJSON_IsString(state) || strcmp(state->valuestring, "queued") ||
        !is_int(member(data, "version"), 1) || (t->flags & T_ENQUEUED)) {
        b->c.malformed++;
        return;
    }
    uint64_t h = fnv1a(tid->valuestring, strlen(tid->valuestring));
    if ((t->flags & T_HASID) && t->id_hash != h) {
        /* The push that came before this reply named another ticket: it was
         * not this ticket's assignment after all, so the ticket counts as
         * lost (its connection already moved on). */
        b->c.malformed++;
        if (t->flags & T_ASSIGNED) {
            t->flags &= (uint8_t)~T_ASSIGNED;
            b->c.assigned--;
        }
        return;
    }
    t->id_hash = h;
    t->flags |= T_ENQUEUED | T_HASID;
    b->c.enqueued++;
    if (in_window(b, seq))
        mw_bench_hist_record(b->h_enqueued, now - intended_ns(b, seq));
    (void)ci;
}

/* Does players (array of {"playerId"}) hold want? Also tells whether a
 * player of another gateway is in the match. */
static bool players_hold(const struct bench *b, const cJSON *players, const char *want, int my_gw,
                         bool *cross)
{
    bool found = false;
    size_t plen = strlen(b->o.prefix);
    const cJSON *p;
    cJSON_ArrayForEach(p, players)
    {
        const cJSON *id = member(p, "playerId");
        if (!cJSON_IsObject(p) || !cJSON_IsString(id))
            return false;
        if (strcmp(id->valuestring, want) == 0)
            found = true;
        /* Our player ids are <prefix>-<conn>-<seq>: the conn gives the gateway. */
        const char *s = id->valuestring;
        if (strncmp(s, b->o.prefix, plen) == 0 && s[plen] == '-') {
            unsigned long other = strtoul(s + plen + 1, NULL, 10);
            if (other < b->o.connections && b->conns[other].gw != my_gw)
                *cross = true;
        }
    }
    return found;
}

static void on_assigned(struct bench *b, uint32_t ci, const cJSON *data, uint64_t now)
{
    struct conn *c = &b->conns[ci];
    const cJSON *tid = member(data, "ticketId");
    const cJSON *as = member(data, "assignment");
    const cJSON *players = as ? member(as, "players") : NULL;
    if (!cJSON_IsString(tid) || !is_int(member(data, "version"), 2) || !cJSON_IsObject(as) ||
        !cJSON_IsString(member(as, "matchId")) || !cJSON_IsString(member(as, "connection")) ||
        !cJSON_IsArray(players)) {
        b->c.malformed++;
        return;
    }
    uint64_t h = fnv1a(tid->valuestring, strlen(tid->valuestring));
    uint32_t seq = NONE;
    if (c->live != NONE) {
        struct ticket *t = &b->tickets[c->live];
        if (!(t->flags & T_HASID) || t->id_hash == h)
            seq = c->live;
    }
    if (seq == NONE) {
        for (unsigned i = 0; i < RECENT; i++) {
            uint32_t r = c->recent[i];
            if (r != NONE && (b->tickets[r].flags & T_HASID) && b->tickets[r].id_hash == h) {
                if (b->tickets[r].flags & T_ASSIGNED)
                    b->c.duplicate++;
                else
                    b->c.malformed++; /* a push for a ticket that ended otherwise */
                return;
            }
        }
        b->c.malformed++; /* not a ticket of this connection */
        return;
    }
    char want[96];
    snprintf(want, sizeof(want), "%s-%" PRIu32 "-%" PRIu32, b->o.prefix, ci, seq);
    bool cross = false;
    if (!players_hold(b, players, want, c->gw, &cross)) {
        b->c.malformed++;
        return;
    }
    struct ticket *t = &b->tickets[seq];
    t->id_hash = h;
    t->flags |= T_ASSIGNED | T_HASID;
    b->c.assigned++;
    if (cross)
        b->c.cross_gateway++;
    if (now >= b->warm_ns && now < b->end_ns)
        b->c.assigned_in_window++;
    if (in_window(b, seq))
        mw_bench_hist_record(b->h_assigned, now - intended_ns(b, seq));
    ticket_done(b, ci, seq);
}

static void on_error_reply(struct bench *b, uint32_t ci, uint32_t seq, const cJSON *data)
{
    const cJSON *code = member(data, "code");
    count_name(b->error_codes, cJSON_IsString(code) ? code->valuestring : "?");
    b->tickets[seq].flags |= T_REJECTED;
    b->c.rejected++;
    ticket_done(b, ci, seq);
}

static void on_ended(struct bench *b, uint32_t ci, const cJSON *data)
{
    struct conn *c = &b->conns[ci];
    const cJSON *tid = member(data, "ticketId");
    if (!cJSON_IsString(tid) || c->live == NONE) {
        b->c.malformed++;
        return;
    }
    struct ticket *t = &b->tickets[c->live];
    uint64_t h = fnv1a(tid->valuestring, strlen(tid->valuestring));
    if (!(t->flags & T_HASID) || t->id_hash != h) {
        b->c.malformed++;
        return;
    }
    t->flags |= T_ENDED;
    b->c.ended++;
    ticket_done(b, ci, c->live);
}

/* One complete text message from the server. */
static void on_message(struct bench *b, uint32_t ci, const char *buf, size_t len, uint64_t now)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        b->c.malformed++;
        return;
    }
    while (end && end < buf + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    const cJSON *type = member(root, "type");
    const cJSON *data = member(root, "data");
    const cJSON *id = member(root, "id");
    if (end != buf + len || !cJSON_IsObject(root) || !cJSON_IsString(type) ||
        !is_int(member(root, "v"), 1) || !cJSON_IsObject(data) || (id && !cJSON_IsString(id))) {
        b->c.malformed++;
        goto out_free;
    }
    const char *ty = type->valuestring;
    if (strcmp(ty, "match.assigned") == 0) {
        if (id)
            b->c.malformed++; /* pushes never carry an id */
        else
            on_assigned(b, ci, data, now);
        goto out_free;
    }
    if (strcmp(ty, "ticket.expired") == 0 || strcmp(ty, "ticket.cancelled") == 0) {
        on_ended(b, ci, data);
        goto out_free;
    }
    /* Replies: correlated by our request id. */
    uint32_t seq;
    if (!id || !parse_req_id(id->valuestring, &seq) || seq >= b->next_seq ||
        b->tickets[seq].conn != ci || (b->tickets[seq].flags & T_REJECTED)) {
        if (strcmp(ty, "error") == 0)
            count_name(b->error_codes, "unsolicited");
        b->c.malformed++;
        goto out_free;
    }
    if (strcmp(ty, "enqueued") == 0)
        on_enqueued(b, ci, seq, data, now);
    else if (strcmp(ty, "error") == 0)
        on_error_reply(b, ci, seq, data);
    else
        b->c.malformed++;
out_free:
    cJSON_Delete(root);
}

/* ===================================================================== */
/* Input                                                                  */
/* ===================================================================== */

static void on_server_close(struct bench *b, uint32_t ci, const uint8_t *p, size_t n)
{
    char name[32];
    unsigned code = n >= 2 ? ((unsigned)p[0] << 8 | p[1]) : 1005;
    snprintf(name, sizeof(name), "%u", code);
    count_name(b->close_codes, name);
    b->c.closed_by_server++;
    uint8_t reply[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    send_frame(b, ci, MW_BENCH_WS_OP_CLOSE, reply, code == 1005 ? 0 : 2);
}

/* Parses frames in buf[0..len); returns bytes consumed, or -1 when the
 * connection was closed. */
static long process_frames(struct bench *b, uint32_t ci, const uint8_t *buf, size_t len,
                           uint64_t now)
{
    struct conn *c = &b->conns[ci];
    size_t off = 0;
    while (off < len) {
        struct mw_bench_ws_frame f;
        int n = mw_bench_ws_parse_frame(buf + off, len - off, &f);
        if (n == 0)
            break;
        if (n < 0) {
            b->c.malformed++;
            conn_close(b, ci, NULL);
            return -1;
        }
        off += (size_t)n;
        switch (f.opcode) {
        case MW_BENCH_WS_OP_TEXT:
            if (c->frag_op) {
                b->c.malformed++;
                break;
            }
            if (f.fin) {
                on_message(b, ci, (const char *)f.payload, f.len, now);
            } else {
                c->frag_op = MW_BENCH_WS_OP_TEXT;
                if (bytes_append(&c->frag, f.payload, f.len, MW_BENCH_WS_MAX_PAYLOAD) != 0)
                    goto too_big;
            }
            break;
        case MW_BENCH_WS_OP_CONT:
            if (!c->frag_op) {
                b->c.malformed++;
                break;
            }
            if (bytes_append(&c->frag, f.payload, f.len, MW_BENCH_WS_MAX_PAYLOAD) != 0)
                goto too_big;
            if (f.fin) {
                on_message(b, ci, (const char *)c->frag.p, c->frag.len, now);
                c->frag_op = 0;
                bytes_free(&c->frag);
            }
            break;
        case MW_BENCH_WS_OP_BINARY:
            b->c.malformed++; /* MSG-002: every message is text */
            break;
        case MW_BENCH_WS_OP_PING:
            b->c.pings++;
            if (send_frame(b, ci, MW_BENCH_WS_OP_PONG, f.payload, f.len) != 0)
                return -1;
            break;
        case MW_BENCH_WS_OP_PONG:
            break;
        case MW_BENCH_WS_OP_CLOSE:
            on_server_close(b, ci, f.payload, f.len);
            conn_close(b, ci, NULL);
            return -1;
        }
        if (c->state == CS_CLOSED)
            return -1;
    }
    return (long)off;
too_big:
    b->c.malformed++;
    conn_close(b, ci, NULL);
    return -1;
}

/* Handshake bytes, then frames. Returns bytes consumed or -1 (closed). */
static long process_input(struct bench *b, uint32_t ci, const uint8_t *buf, size_t len,
                          uint64_t now)
{
    struct conn *c = &b->conns[ci];
    size_t off = 0;
    if (c->state == CS_HANDSHAKE) {
        int status = 0;
        int n = mw_bench_ws_parse_response((const char *)buf, len, c->accept,
                                           b->o.no_subprotocol ? NULL : SUBPROTOCOL, &status);
        if (n == 0)
            return 0;
        if (n < 0) {
            char why[32];
            if (n == MW_BENCH_WS_ESTATUS)
                snprintf(why, sizeof(why), "http_%d", status);
            else
                snprintf(why, sizeof(why), "%s",
                         n == MW_BENCH_WS_EACCEPT     ? "bad_accept"
                         : n == MW_BENCH_WS_ESUBPROTO ? "bad_subprotocol"
                                                      : "bad_response");
            conn_close(b, ci, why);
            return -1;
        }
        off = (size_t)n;
        c->state = CS_OPEN;
        b->connecting--;
        b->n_open++;
        mw_bench_hist_record(b->h_connect, now - c->started_ns);
        idle_push(b, ci);
    }
    long m = process_frames(b, ci, buf + off, len - off, now);
    return m < 0 ? -1 : (long)off + m;
}

static void on_readable(struct bench *b, uint32_t ci, uint64_t now)
{
    struct conn *c = &b->conns[ci];
    ssize_t n;
    if (c->in.len == 0) {
        n = recv(c->fd, b->scratch, SCRATCH, 0);
        if (n > 0) {
            long used = process_input(b, ci, b->scratch, (size_t)n, now);
            if (used >= 0 && (size_t)used < (size_t)n &&
                bytes_append(&c->in, b->scratch + used, (size_t)n - (size_t)used, IN_BOUND) != 0)
                conn_close(b, ci, "inbuf");
            return;
        }
    } else {
        /* A partial frame is pending: read behind it. */
        uint8_t tmp[16384];
        n = recv(c->fd, tmp, sizeof(tmp), 0);
        if (n > 0) {
            if (bytes_append(&c->in, tmp, (size_t)n, IN_BOUND) != 0) {
                conn_close(b, ci, "inbuf");
                return;
            }
            long used = process_input(b, ci, c->in.p, c->in.len, now);
            if (used > 0)
                bytes_consume(&c->in, (size_t)used);
            return;
        }
    }
    if (n == 0) {
        if (c->state == CS_OPEN)
            count_name(b->close_codes, "eof");
        if (c->state == CS_OPEN)
            b->c.closed_by_server++;
        conn_close(b, ci, "eof");
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        b->c.io_errors++;
        if (c->state == CS_OPEN)
            b->c.closed_by_server++;
        conn_close(b, ci, "reset");
    }
}

/* ===================================================================== */
/* The loop                                                               */
/* ===================================================================== */

static void poll_once(struct bench *b, uint64_t deadline_ns)
{
    struct epoll_event ev[512];
    uint64_t now = now_ns();
    uint64_t wait = deadline_ns > now ? deadline_ns - now : 0;
    if (wait > 100 * 1000000ull)
        wait = 100 * 1000000ull; /* wake at least every 100 ms (signals, deadlines) */
    struct timespec ts = {.tv_sec = (time_t)(wait / NS), .tv_nsec = (long)(wait % NS)};
    int n = epoll_pwait2(b->ep, ev, 512, &ts, NULL);
    if (n < 0 && errno == ENOSYS)
        n = epoll_wait(b->ep, ev, 512, (int)((wait + 999999) / 1000000));
    if (n <= 0)
        return;
    now = now_ns();
    for (int i = 0; i < n; i++) {
        uint32_t ci = ev[i].data.u32;
        struct conn *c = &b->conns[ci];
        if (c->state == CS_CLOSED)
            continue;
        if (c->state == CS_CONNECTING) {
            on_connected(b, ci);
            continue;
        }
        if (ev[i].events & EPOLLOUT)
            conn_flush(b, ci);
        if (c->state != CS_CLOSED && (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            on_readable(b, ci, now);
    }
}

/* Sends every ticket that is due and has a free connection. */
static void dispatch_due(struct bench *b, uint64_t now)
{
    while (b->next_seq < b->n_tickets && intended_ns(b, b->next_seq) <= now) {
        uint32_t ci = idle_pop(b);
        if (ci == NONE)
            return;
        send_enqueue(b, ci, b->next_seq, now);
        b->next_seq++;
    }
}

static void connect_phase(struct bench *b)
{
    uint64_t start = now_ns();
    uint64_t deadline = start + (uint64_t)(b->o.connect_timeout_s * NS);
    while (!g_stop) {
        while (b->next_connect < b->o.connections && b->connecting < b->o.connect_concurrency) {
            uint32_t ci = b->next_connect++;
            int rc = start_connect(b, ci);
            if (rc != 0) {
                b->conns[ci].state = CS_CLOSED;
                b->n_failed++;
                count_name(b->fail_reasons, rc == -EMFILE ? "emfile" : "socket");
            }
        }
        if (b->n_open + b->n_failed >= b->o.connections)
            break;
        uint64_t now = now_ns();
        if (now >= deadline)
            break;
        poll_once(b, now + 50 * 1000000ull);
    }
    /* Whatever is still connecting has run out of time. */
    for (uint32_t ci = 0; ci < b->o.connections; ci++) {
        struct conn *c = &b->conns[ci];
        if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE)
            conn_close(b, ci, "timeout");
        else if (c->state == CS_NEW) {
            c->state = CS_CLOSED;
            b->n_failed++;
            count_name(b->fail_reasons, "not_started");
        }
    }
}

static void run_for(struct bench *b, double seconds)
{
    uint64_t deadline = now_ns() + (uint64_t)(seconds * NS);
    while (!g_stop && now_ns() < deadline)
        poll_once(b, deadline);
}

static bool all_final(const struct bench *b)
{
    for (uint32_t ci = 0; ci < b->o.connections; ci++)
        if (b->conns[ci].state == CS_OPEN && b->conns[ci].live != NONE)
            return false;
    return true;
}

static void load_phase(struct bench *b)
{
    b->t0_ns = now_ns() + 1000000ull;
    b->warm_ns = b->t0_ns + (uint64_t)(b->o.warmup_s * NS);
    b->end_ns = b->t0_ns + (uint64_t)(b->o.duration_s * NS);
    bool warm_taken = false;
    for (;;) {
        uint64_t now = now_ns();
        /* Tickets due before the end are sent even when the loop woke late. */
        dispatch_due(b, now < b->end_ns ? now : b->end_ns - 1);
        if (g_stop || now >= b->end_ns)
            break;
        if (!warm_taken && now >= b->warm_ns) {
            warm_taken = true;
            b->have_cpu = sample_procs(b, &b->cpu_start);
            getrusage(RUSAGE_SELF, &b->ru_start);
        }
        uint64_t next = b->end_ns;
        if (!warm_taken && b->warm_ns < next)
            next = b->warm_ns;
        if (b->next_seq < b->n_tickets && b->n_idle > 0) {
            uint64_t due = intended_ns(b, b->next_seq);
            if (due < next)
                next = due;
        }
        poll_once(b, next);
    }
    if (!warm_taken) {
        b->have_cpu = sample_procs(b, &b->cpu_start);
        getrusage(RUSAGE_SELF, &b->ru_start);
    }
    if (b->have_cpu)
        b->have_cpu = sample_procs(b, &b->cpu_end);
    getrusage(RUSAGE_SELF, &b->ru_end);
    /* Rates are over [warmup, duration): assignments received in it. */
    b->window_ns = b->end_ns - (b->warm_ns < b->end_ns ? b->warm_ns : b->t0_ns);

    /* Drain: no new tickets; wait for the outstanding ones. */
    uint64_t deadline = now_ns() + (uint64_t)(b->o.timeout_s * NS);
    while (!g_stop && now_ns() < deadline && (b->next_seq < b->n_tickets || !all_final(b))) {
        dispatch_due(b, now_ns()); /* late tickets still wait for a free connection */
        poll_once(b, deadline);
    }
}

/* ===================================================================== */
/* Results                                                                */
/* ===================================================================== */

static void finish(struct bench *b)
{
    for (uint32_t s = 0; s < b->next_seq; s++) {
        uint8_t f = b->tickets[s].flags;
        if ((f & T_SENT) && !(f & (T_ASSIGNED | T_REJECTED))) {
            b->lost++;
            if (!(f & T_ENQUEUED))
                b->lost_no_reply++;
        }
    }
    b->unsent = b->n_tickets - b->next_seq;
    double win = (double)b->window_ns / (double)NS;
    b->achieved = win > 0 ? (double)b->c.assigned_in_window / win : 0.0;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static bool run_ok(const struct bench *b)
{
    return b->n_failed == 0 && b->lost == 0 && b->c.duplicate == 0 && b->c.malformed == 0 &&
           b->c.rejected == 0 && b->c.closed_by_server == 0 && b->unsent == 0;
}

static double cpu_us_per_assignment(const struct bench *b)
{
    if (!b->have_cpu || b->c.assigned_in_window == 0)
        return -1;
    double ticks = (double)(sum_cpu(b, &b->cpu_end) - sum_cpu(b, &b->cpu_start));
    return ticks * 1e6 / (double)sysconf(_SC_CLK_TCK) / (double)b->c.assigned_in_window;
}

static double aux_cpu_us_per_assignment(const struct bench *b)
{
    if (!b->have_cpu || b->o.n_aux == 0 || b->c.assigned_in_window == 0)
        return -1;
    uint64_t t = 0;
    for (unsigned i = 0; i < b->o.n_aux; i++)
        t += b->cpu_end.aux_ticks[i] - b->cpu_start.aux_ticks[i];
    return (double)t * 1e6 / (double)sysconf(_SC_CLK_TCK) / (double)b->c.assigned_in_window;
}

static double server_cpu_util(const struct bench *b)
{
    if (!b->have_cpu || b->window_ns == 0)
        return -1;
    double ticks = (double)(sum_cpu(b, &b->cpu_end) - sum_cpu(b, &b->cpu_start));
    return ticks / (double)sysconf(_SC_CLK_TCK) / ((double)b->window_ns / NS);
}

/* Cores used by everything else on the machine during the window: a run
 * with a high figure here was disturbed by other work. */
static double other_cores(const struct bench *b)
{
    if (!b->have_cpu || b->window_ns == 0)
        return -1;
    double busy = (double)(b->cpu_end.busy_ticks - b->cpu_start.busy_ticks);
    double ours = (double)(sum_cpu(b, &b->cpu_end) - sum_cpu(b, &b->cpu_start)) +
                  (double)(b->cpu_end.self_ticks - b->cpu_start.self_ticks);
    for (unsigned i = 0; i < b->o.n_aux; i++)
        ours += (double)(b->cpu_end.aux_ticks[i] - b->cpu_start.aux_ticks[i]);
    double other = busy - ours;
    if (other < 0)
        other = 0;
    return other / (double)sysconf(_SC_CLK_TCK) / ((double)b->window_ns / NS);
}

static double rss_per_conn(const struct bench *b)
{
    if (!b->have_rss || b->n_open == 0)
        return -1;
    double d = (double)sum_rss(b, &b->rss_after) - (double)sum_rss(b, &b->rss_before);
    return d * 1024.0 / (double)b->n_open;
}

static double tv_s(struct timeval t)
{
    return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

static double bench_cpu_util(const struct bench *b)
{
    if (b->window_ns == 0)
        return -1;
    double s = tv_s(b->ru_end.ru_utime) + tv_s(b->ru_end.ru_stime) - tv_s(b->ru_start.ru_utime) -
               tv_s(b->ru_start.ru_stime);
    return s / ((double)b->window_ns / NS);
}

static void print_hist_row(FILE *f, const char *name, const struct mw_bench_hist *h)
{
    fprintf(f, "  %-20s %10" PRIu64 " %9.1f %9.1f %9.1f %9.1f %10.1f %9.1f\n", name,
            mw_bench_hist_count(h), us(mw_bench_hist_percentile(h, 50)),
            us(mw_bench_hist_percentile(h, 90)), us(mw_bench_hist_percentile(h, 99)),
            us(mw_bench_hist_percentile(h, 99.9)), us(mw_bench_hist_max(h)),
            mw_bench_hist_mean(h) / 1000.0);
}

static void print_counts(FILE *f, const char *title, const struct named_count *t)
{
    if (t[0].n == 0)
        return;
    fprintf(f, "  %s:", title);
    for (unsigned i = 0; i < MAX_CODES && t[i].n; i++)
        fprintf(f, " %s=%" PRIu64, t[i].name, t[i].n);
    fputc('\n', f);
}

static void print_human(const struct bench *b, FILE *f)
{
    const struct options *o = &b->o;
    fprintf(f, "matchwire-bench%s%s\n", o->label ? ": " : "", o->label ? o->label : "");
    fprintf(f, "  target     ws://%s:%u%s", o->url[0].host, o->url[0].port, o->url[0].path);
    if (o->n_urls > 1)
        fprintf(f, " + ws://%s:%u%s", o->url[1].host, o->url[1].port, o->url[1].path);
    fprintf(f, "  queue %s, match size %u\n", o->queue, o->match_size);
    fprintf(f, "  connections requested %u, open %u, failed %u, closed by server %" PRIu64 "\n",
            o->connections, b->n_open, b->n_failed, b->c.closed_by_server);
    print_counts(f, "connect failures", b->fail_reasons);
    print_counts(f, "close codes", b->close_codes);
    if (mw_bench_hist_count(b->h_connect))
        fprintf(f, "  connect+handshake p50 %.1f us, p99 %.1f us\n",
                us(mw_bench_hist_percentile(b->h_connect, 50)),
                us(mw_bench_hist_percentile(b->h_connect, 99)));
    if (o->rate > 0) {
        fprintf(f, "  offered    %.1f assignments/s for %.1f s (warmup %.1f s excluded)\n", o->rate,
                o->duration_s, o->warmup_s);
        fprintf(f, "  achieved   %.1f assignments/s (%.2f %% of offered)\n", b->achieved,
                100.0 * b->achieved / o->rate);
        fprintf(f,
                "  sent %" PRIu64 ", unsent %" PRIu64 ", enqueued %" PRIu64 ", assigned %" PRIu64
                ", cross-gateway %" PRIu64 "\n",
                b->c.sent, b->unsent, b->c.enqueued, b->c.assigned, b->c.cross_gateway);
        fprintf(f, "  latency from intended send time (us):\n");
        fprintf(f, "  %-20s %10s %9s %9s %9s %9s %10s %9s\n", "", "count", "p50", "p90", "p99",
                "p99.9", "max", "mean");
        print_hist_row(f, "enqueue->enqueued", b->h_enqueued);
        print_hist_row(f, "enqueue->assigned", b->h_assigned);
        print_hist_row(f, "generator lag", b->h_lag);
        fprintf(f,
                "  lost %" PRIu64 " (no reply %" PRIu64 "), duplicate %" PRIu64
                ", malformed %" PRIu64 ", rejected %" PRIu64 ", ended %" PRIu64 "\n",
                b->lost, b->lost_no_reply, b->c.duplicate, b->c.malformed, b->c.rejected,
                b->c.ended);
        print_counts(f, "error codes", b->error_codes);
        double cpu = cpu_us_per_assignment(b);
        if (cpu >= 0)
            fprintf(f, "  server CPU %.2f us per assignment (%.0f %% of one core)\n", cpu,
                    100.0 * server_cpu_util(b));
        double aux = aux_cpu_us_per_assignment(b);
        if (aux >= 0)
            fprintf(f, "  aux CPU    %.2f us per assignment (--aux-pid)\n", aux);
        fprintf(f, "  bench CPU  %.0f %% of one core\n", 100.0 * bench_cpu_util(b));
        if (other_cores(b) >= 0)
            fprintf(f, "  other work on the machine during the window: %.2f cores\n",
                    other_cores(b));
    } else {
        fprintf(
            f,
            "  held idle for %.1f s; lost/duplicate/malformed: n/a (no load), malformed %" PRIu64
            ", pings answered %" PRIu64 "\n",
            o->duration_s, b->c.malformed, b->c.pings);
        if (server_cpu_util(b) >= 0)
            fprintf(f, "  server CPU while idle: %.1f %% of one core\n",
                    100.0 * server_cpu_util(b));
    }
    if (b->have_rss)
        fprintf(f,
                "  server RSS %" PRIu64 " KiB before, %" PRIu64
                " KiB with connections open: %.0f bytes per connection\n",
                sum_rss(b, &b->rss_before), sum_rss(b, &b->rss_after), rss_per_conn(b));
    fprintf(f, "  result     %s\n",
            run_ok(b) ? "OK (nothing lost, duplicated or malformed)" : "NOT OK");
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_hist(FILE *f, const char *name, const struct mw_bench_hist *h)
{
    fprintf(f,
            "\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
            "\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f}",
            name, mw_bench_hist_count(h), us(mw_bench_hist_percentile(h, 50)),
            us(mw_bench_hist_percentile(h, 90)), us(mw_bench_hist_percentile(h, 99)),
            us(mw_bench_hist_percentile(h, 99.9)), us(mw_bench_hist_max(h)),
            mw_bench_hist_mean(h) / 1000.0);
}

static void json_counts(FILE *f, const char *name, const struct named_count *t)
{
    fprintf(f, "\"%s\":{", name);
    for (unsigned i = 0; i < MAX_CODES && t[i].n; i++) {
        if (i)
            fputc(',', f);
        json_str(f, t[i].name);
        fprintf(f, ":%" PRIu64, t[i].n);
    }
    fputc('}', f);
}

static void json_num_or_null(FILE *f, const char *name, double v, int decimals)
{
    fprintf(f, ",\"%s\":", name);
    if (v < 0)
        fputs("null", f);
    else
        fprintf(f, "%.*f", decimals, v);
}

static int write_json(const struct bench *b, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    const struct options *o = &b->o;
    fputs("{\"label\":", f);
    json_str(f, o->label ? o->label : "");
    fprintf(f, ",\"url\":\"ws://%s:%u%s\"", o->url[0].host, o->url[0].port, o->url[0].path);
    if (o->n_urls > 1)
        fprintf(f, ",\"url2\":\"ws://%s:%u%s\"", o->url[1].host, o->url[1].port, o->url[1].path);
    fputs(",\"queue\":", f);
    json_str(f, o->queue);
    fprintf(f,
            ",\"match_size\":%u,\"connections\":%u,\"connections_open\":%u,"
            "\"connections_failed\":%u,\"closed_by_server\":%" PRIu64 ",",
            o->match_size, o->connections, b->n_open, b->n_failed, b->c.closed_by_server);
    json_counts(f, "connect_failures", b->fail_reasons);
    fputc(',', f);
    json_counts(f, "close_codes", b->close_codes);
    fprintf(f, ",\"offered_rate\":%.1f,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"timeout_s\":%.3f",
            o->rate, o->duration_s, o->warmup_s, o->timeout_s);
    fprintf(f,
            ",\"achieved_rate\":%.1f,\"sent\":%" PRIu64 ",\"unsent\":%" PRIu64
            ",\"enqueued\":%" PRIu64 ",\"assigned\":%" PRIu64 ",\"assigned_in_window\":%" PRIu64
            ",\"cross_gateway\":%" PRIu64,
            b->achieved, b->c.sent, b->unsent, b->c.enqueued, b->c.assigned,
            b->c.assigned_in_window, b->c.cross_gateway);
    fprintf(f,
            ",\"lost\":%" PRIu64 ",\"lost_no_reply\":%" PRIu64 ",\"duplicate\":%" PRIu64
            ",\"malformed\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"ended\":%" PRIu64
            ",\"pings\":%" PRIu64 ",",
            b->lost, b->lost_no_reply, b->c.duplicate, b->c.malformed, b->c.rejected, b->c.ended,
            b->c.pings);
    json_counts(f, "error_codes", b->error_codes);
    fputs(",\"latency_us\":{", f);
    json_hist(f, "enqueued", b->h_enqueued);
    fputc(',', f);
    json_hist(f, "assigned", b->h_assigned);
    fputc(',', f);
    json_hist(f, "generator_lag", b->h_lag);
    fputc(',', f);
    json_hist(f, "connect", b->h_connect);
    fputs("},\"server\":{\"pids\":[", f);
    for (unsigned i = 0; i < o->n_pids; i++)
        fprintf(f, "%s%d", i ? "," : "", o->pids[i]);
    fputc(']', f);
    json_num_or_null(f, "cpu_us_per_assignment", cpu_us_per_assignment(b), 3);
    json_num_or_null(f, "cpu_utilization", server_cpu_util(b), 3);
    json_num_or_null(f, "aux_cpu_us_per_assignment", aux_cpu_us_per_assignment(b), 3);
    json_num_or_null(f, "rss_before_kib", b->have_rss ? (double)sum_rss(b, &b->rss_before) : -1, 0);
    json_num_or_null(f, "rss_after_kib", b->have_rss ? (double)sum_rss(b, &b->rss_after) : -1, 0);
    json_num_or_null(f, "rss_per_connection_bytes", rss_per_conn(b), 1);
    fputs("}", f);
    json_num_or_null(f, "bench_cpu_utilization", bench_cpu_util(b), 3);
    json_num_or_null(f, "other_cores", other_cores(b), 3);
    fprintf(f, ",\"nproc\":%ld", sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(f, ",\"ok\":%s}\n", run_ok(b) ? "true" : "false");
    return fclose(f) == 0 ? 0 : -1;
}

/* ===================================================================== */
/* Command line                                                           */
/* ===================================================================== */

static const char USAGE[] =
    "usage: matchwire-bench --url ws://127.0.0.1:PORT/realtime [options]\n"
    "  --url2 URL             second gateway: connections alternate between the two\n"
    "  --connections N        WebSocket connections to hold (1000)\n"
    "  --rate R               offered assignments per second; 0 holds the connections idle (0)\n"
    "  --duration S           seconds of offered load, or of holding (10)\n"
    "  --warmup S             first seconds excluded from latency and rates (1)\n"
    "  --timeout S            after the load, wait this long for outstanding tickets (10)\n"
    "  --queue Q              queue name (bench)\n"
    "  --match-size M         players per match on that queue (2)\n"
    "  --server-pid PID       server process to sample /proc for CPU and RSS (repeatable, 8)\n"
    "  --aux-pid PID          helper process (e.g. redis-server): CPU only, reported apart\n"
    "  --json FILE            also write the results as one JSON object\n"
    "  --label TEXT           a name for this run in the outputs\n"
    "  --src-addrs K          spread source addresses over 127.0.0.1..127.0.0.K (16)\n"
    "  --connect-concurrency C  connections being opened at once (256)\n"
    "  --connect-timeout S    give up opening connections after S seconds (120)\n"
    "  --settle S             wait after connecting before reading RSS (1)\n"
    "  --no-subprotocol       offer no Sec-WebSocket-Protocol\n"
    "  --check                exit 1 unless every connection opened and nothing was lost,\n"
    "                         duplicated, malformed, rejected or left unsent\n"
    "  --quiet                no human table on stdout\n"
    "An assignment is one ticket receiving match.assigned (a 2-player match is 2).\n"
    "Exit: 0 run done (and OK with --check), 1 --check failed, 2 usage, 3 setup failed.\n";

static int parse_url(const char *s, struct target *t)
{
    if (strncmp(s, "ws://", 5) != 0)
        return -1;
    s += 5;
    const char *colon = strchr(s, ':');
    const char *slash = strchr(s, '/');
    if (!colon || (slash && slash < colon) || (size_t)(colon - s) >= sizeof(t->host))
        return -1;
    memcpy(t->host, s, (size_t)(colon - s));
    t->host[colon - s] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (port == 0 || port > 65535 || (*end && *end != '/'))
        return -1;
    t->port = (unsigned)port;
    snprintf(t->path, sizeof(t->path), "%s", *end ? end : "/realtime");
    const char *ip = strcmp(t->host, "localhost") == 0 ? "127.0.0.1" : t->host;
    memset(&t->addr, 0, sizeof(t->addr));
    t->addr.sin_family = AF_INET;
    t->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &t->addr.sin_addr) != 1)
        return -1;
    /* Traffic only to loopback. */
    if ((ntohl(t->addr.sin_addr.s_addr) >> 24) != 127)
        return -2;
    return 0;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    double d;
    if (!parse_double(s, lo, hi, &d) || d != floor(d))
        return false;
    *out = (unsigned)d;
    return true;
}

static bool queue_valid(const char *q)
{
    size_t n = strlen(q);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((q[i] >= 'a' && q[i] <= 'z') || (q[i] >= '0' && q[i] <= '9') || q[i] == '_' ||
              q[i] == '-'))
            return false;
    return true;
}

static int parse_args(struct options *o, int argc, char **argv)
{
    *o = (struct options){
        .connections = 1000,
        .rate = 0,
        .duration_s = 10,
        .warmup_s = 1,
        .timeout_s = 10,
        .connect_timeout_s = 120,
        .settle_s = 1,
        .match_size = 2,
        .src_addrs = 16,
        .connect_concurrency = 256,
    };
    snprintf(o->queue, sizeof(o->queue), "bench");
    snprintf(o->prefix, sizeof(o->prefix), "b%d", (int)getpid());
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (strcmp(a, "--no-subprotocol") == 0) {
            o->no_subprotocol = true;
            continue;
        } else if (strcmp(a, "--check") == 0) {
            o->check = true;
            continue;
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "matchwire-bench: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--url") == 0 || strcmp(a, "--url2") == 0) {
            int rc = parse_url(v, &o->url[a[5] == '2' ? 1 : 0]);
            if (rc == -2) {
                fprintf(stderr, "matchwire-bench: %s: only loopback (127.0.0.0/8) targets\n", v);
                return -1;
            }
            ok = rc == 0;
            if (ok && a[5] == '2')
                o->n_urls = 2;
            else if (ok && o->n_urls == 0)
                o->n_urls = 1;
        } else if (strcmp(a, "--connections") == 0)
            ok = parse_uint(v, 1, MAX_CONNS, &o->connections);
        else if (strcmp(a, "--rate") == 0)
            ok = parse_double(v, 0, 10e6, &o->rate);
        else if (strcmp(a, "--duration") == 0)
            ok = parse_double(v, 0.1, 3600, &o->duration_s);
        else if (strcmp(a, "--warmup") == 0)
            ok = parse_double(v, 0, 3600, &o->warmup_s);
        else if (strcmp(a, "--timeout") == 0)
            ok = parse_double(v, 0, 3600, &o->timeout_s);
        else if (strcmp(a, "--connect-timeout") == 0)
            ok = parse_double(v, 0.1, 3600, &o->connect_timeout_s);
        else if (strcmp(a, "--settle") == 0)
            ok = parse_double(v, 0, 600, &o->settle_s);
        else if (strcmp(a, "--queue") == 0) {
            ok = queue_valid(v);
            if (ok)
                snprintf(o->queue, sizeof(o->queue), "%s", v);
        } else if (strcmp(a, "--match-size") == 0)
            ok = parse_uint(v, 1, 1000, &o->match_size);
        else if (strcmp(a, "--server-pid") == 0) {
            unsigned pid;
            ok = o->n_pids < MAX_PIDS && parse_uint(v, 1, INT_MAX, &pid);
            if (ok)
                o->pids[o->n_pids++] = (int)pid;
        } else if (strcmp(a, "--aux-pid") == 0) {
            unsigned pid;
            ok = o->n_aux < MAX_PIDS && parse_uint(v, 1, INT_MAX, &pid);
            if (ok)
                o->aux_pids[o->n_aux++] = (int)pid;
        } else if (strcmp(a, "--json") == 0)
            o->json_path = v;
        else if (strcmp(a, "--label") == 0)
            o->label = v;
        else if (strcmp(a, "--src-addrs") == 0)
            ok = parse_uint(v, 1, 254, &o->src_addrs);
        else if (strcmp(a, "--connect-concurrency") == 0)
            ok = parse_uint(v, 1, 100000, &o->connect_concurrency);
        else {
            fprintf(stderr, "matchwire-bench: unknown option %s\n%s", a, USAGE);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "matchwire-bench: bad value for %s: %s\n", a, v);
            return -1;
        }
    }
    if (o->n_urls == 0 || o->url[0].port == 0) {
        fprintf(stderr, "matchwire-bench: --url is required\n%s", USAGE);
        return -1;
    }
    if (o->n_urls == 2 && o->url[1].port == 0) {
        fprintf(stderr, "matchwire-bench: --url2 without --url\n");
        return -1;
    }
    if (o->warmup_s >= o->duration_s && o->rate > 0)
        o->warmup_s = 0;
    double tickets = o->rate * o->duration_s;
    if (tickets > MAX_TICKETS) {
        fprintf(stderr, "matchwire-bench: rate x duration over %u tickets\n", MAX_TICKETS);
        return -1;
    }
    return 0;
}

/* ===================================================================== */
/* main                                                                   */
/* ===================================================================== */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int raise_fd_limit(unsigned need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need + 32) {
        fprintf(stderr,
                "matchwire-bench: %u connections need %u descriptors; the hard limit is %llu\n",
                need, need + 32, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct bench b;
    memset(&b, 0, sizeof(b));
    b.ep = -1;
    int rc = 3;
    if (parse_args(&b.o, argc, argv) != 0)
        return 2;
    if (raise_fd_limit(b.o.connections) != 0)
        return 3;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* precise wake-ups for the schedule */

    if (getrandom(&b.rng, sizeof(b.rng), 0) != sizeof(b.rng) || b.rng == 0)
        b.rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)now_ns();
    b.o.n_urls = b.o.n_urls ? b.o.n_urls : 1;
    b.idle_head = b.idle_tail = NONE;
    b.n_tickets = (uint32_t)(ceil(b.o.rate * b.o.duration_s / b.o.match_size) * b.o.match_size);
    b.group_period_ns = b.o.rate > 0 ? (double)b.o.match_size * 1e9 / b.o.rate : 0;
    b.conns = calloc(b.o.connections, sizeof(*b.conns));
    b.tickets = calloc(b.n_tickets ? b.n_tickets : 1, sizeof(*b.tickets));
    b.scratch = malloc(SCRATCH);
    b.h_enqueued = mw_bench_hist_new();
    b.h_assigned = mw_bench_hist_new();
    b.h_lag = mw_bench_hist_new();
    b.h_connect = mw_bench_hist_new();
    if (!b.conns || !b.tickets || !b.scratch || !b.h_enqueued || !b.h_assigned || !b.h_lag ||
        !b.h_connect) {
        fprintf(stderr, "matchwire-bench: out of memory\n");
        goto out_free;
    }
    for (uint32_t i = 0; i < b.o.connections; i++) {
        struct conn *c = &b.conns[i];
        c->fd = -1;
        c->live = NONE;
        c->gw = (uint8_t)(i % b.o.n_urls);
        for (unsigned k = 0; k < RECENT; k++)
            c->recent[k] = NONE;
    }
    b.ep = epoll_create1(EPOLL_CLOEXEC);
    if (b.ep < 0) {
        perror("matchwire-bench: epoll_create1");
        goto out_free;
    }
    if (b.o.rate > 0 && b.o.rate / b.o.connections > 40)
        fprintf(stderr,
                "matchwire-bench: warning: %.1f enqueues/s per connection; the reference "
                "limits a connection to 50 messages/s\n",
                b.o.rate / b.o.connections);

    if (b.o.rate > 0 && (double)b.n_tickets / b.o.connections > 250)
        fprintf(stderr,
                "matchwire-bench: warning: %.0f tickets per connection; the reference server "
                "refuses a connection's enqueues (too_many_tickets) once it delivered 256 "
                "assignments within the retention period\n",
                (double)b.n_tickets / b.o.connections);
    bool have_before = sample_procs(&b, &b.rss_before);
    connect_phase(&b);
    if (!b.o.quiet)
        fprintf(stderr, "matchwire-bench: %u of %u connections open (%u failed)\n", b.n_open,
                b.o.connections, b.n_failed);
    if (b.n_open == 0) {
        fprintf(stderr, "matchwire-bench: no connection could be opened\n");
        print_counts(stderr, "connect failures", b.fail_reasons);
        goto out_free;
    }
    run_for(&b, b.o.settle_s);
    b.have_rss = have_before && sample_procs(&b, &b.rss_after);

    if (b.o.rate > 0) {
        load_phase(&b);
    } else {
        /* Holding idle: the server's CPU while it only keeps connections. */
        getrusage(RUSAGE_SELF, &b.ru_start);
        b.have_cpu = sample_procs(&b, &b.cpu_start);
        uint64_t t = now_ns();
        run_for(&b, b.o.duration_s);
        b.window_ns = now_ns() - t;
        if (b.have_cpu)
            b.have_cpu = sample_procs(&b, &b.cpu_end);
        getrusage(RUSAGE_SELF, &b.ru_end);
    }
    finish(&b);
    if (!b.o.quiet)
        print_human(&b, stdout);
    if (b.o.json_path && write_json(&b, b.o.json_path) != 0)
        fprintf(stderr, "matchwire-bench: cannot write %s\n", b.o.json_path);
    rc = (b.o.check && !run_ok(&b)) ? 1 : 0;
    if (g_stop)
        rc = rc ? rc : 1;

out_free:
    if (b.conns) {
        /* Normal closure (1000) for open connections, then drop the rest. */
        static const uint8_t bye[2] = {0x03, 0xE8};
        for (uint32_t i = 0; i < b.o.connections; i++)
            if (b.conns[i].state == CS_OPEN)
                send_frame(&b, i, MW_BENCH_WS_OP_CLOSE, bye, sizeof(bye));
        for (uint32_t i = 0; i < b.o.connections; i++)
            if (b.conns[i].state != CS_CLOSED && b.conns[i].fd >= 0)
                conn_close(&b, i, NULL);
    }
    if (b.ep >= 0)
        close(b.ep);
    mw_bench_hist_free(b.h_enqueued);
    mw_bench_hist_free(b.h_assigned);
    mw_bench_hist_free(b.h_lag);
    mw_bench_hist_free(b.h_connect);
    free(b.scratch);
    free(b.tickets);
    free(b.conns);
    return rc;
}
