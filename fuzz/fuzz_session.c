/* fuzz_session: the gateway's protocol core driven end to end.
 *
 * Each input is a program of operations on a small world: up to NCONN
 * connections (sessions with a recording io table), the memory ticket store,
 * the worker (matchmaker + commit + publish), the in-memory channel, the hub,
 * one defer queue and a fake clock. Operations: client text messages built
 * from a catalogue of templates or taken raw from the input, disconnect,
 * reconnect, clock ticks with a store sweep, defer pumps (which is when the
 * store answers, the worker forms matches and the channel delivers), and
 * outbound drains. After every operation and inside every io callback the
 * protocol's promises are checked:
 *   - every output is a valid envelope of a server type, <= 65,536 bytes;
 *   - per (connection, ticket) versions never fall; at most one push;
 *     never the same match.assigned twice (MSG-072);
 *   - no push to a connection that was not told it watches the ticket (an
 *     `enqueued` or `watching` reply first), none after its own `cancelled`
 *     reply (MSG-062), none and no io call at all after on_close;
 *   - a ticket is never in two matches; its final state is the same wherever
 *     it is reported, and state/version agree (queued 1, final 2);
 *   - replies come in request order (ids this harness generated) and, once
 *     everything has run, every message got exactly one reply (MSG-010)
 *     unless the connection was asked to close or blocked;
 *   - outbound is bounded: the fake edge holds at most OUT_MAX unread
 *     messages and answers MW_ELIMIT beyond, then closes the connection.
 * Teardown runs in the documented order and ASan checks nothing leaks. */
#define _GNU_SOURCE /* memmem */
#include "fuzz_common.h"

#include <stddef.h>

#include "buf.h"
#include "channel.h"
#include "channel_memory.h"
#include "defer.h"
#include "envelope.h"
#include "error.h"
#include "hub.h"
#include "messages.h"
#include "session.h"
#include "ticket.h"
#include "ticket_store.h"
#include "ticket_store_memory.h"
#include "worker.h"

#define NCONN      3
#define MAX_INC    64  /* connection incarnations per input */
#define MAX_GLOBAL 128 /* tickets tracked in all */
#define MAX_GEN    256 /* generated request ids per incarnation */
#define OUT_MAX    48  /* unread outbound messages the fake edge holds */
#define MAX_OPS    400
#define MAX_TK     (MAX_OPS + 8) /* tickets one incarnation can see: one per text at most */
#define START_MS   1795000000000LL

struct tk { /* one ticket as one incarnation saw it */
    char id[MW_TICKET_ID_LEN + 1];
    uint64_t max_version;
    bool routed;     /* got `enqueued` / `watching` for it */
    bool own_cancel; /* got `cancelled` for it */
    unsigned pushes; /* match.assigned / ticket.* received */
    int final_state; /* -1 unknown, else enum mw_ticket_state */
};

struct inc { /* one connection incarnation: the io_ud of one session */
    struct world *w;
    unsigned no;
    struct mw_session *s;
    bool open;        /* on_close not yet called */
    bool close_asked; /* io->close called */
    bool blocked;     /* send answered MW_ELIMIT */
    bool forged;      /* a raw text could imitate generated ids: no order check */
    unsigned unread;
    unsigned texts, replies;
    struct tk tk[MAX_TK];
    unsigned ntk;
    unsigned gen[MAX_GEN]; /* generated request numbers awaiting their reply, FIFO */
    unsigned gen_head, gen_tail;
    unsigned next_req;
};

struct gticket {
    char id[MW_TICKET_ID_LEN + 1];
    char match_id[MW_MATCH_ID_LEN + 1]; /* "" until assigned */
    int final_state;
};

struct world {
    int64_t now;
    uint64_t rnd[2];
    struct mw_defer *defer;
    struct mw_ticket_store store;
    struct mw_channel chan;
    struct mw_hub *hub;
    struct mw_worker *worker;
    struct mw_session_env env;
    struct mw_session_io io;
    struct inc inc[MAX_INC];
    unsigned ninc;
    struct inc *conn[NCONN]; /* current incarnation of each connection, or NULL */
    struct gticket g[MAX_GLOBAL];
    unsigned ng;
    bool store_ok, chan_ok;
    bool trace; /* FUZZ_SESSION_TRACE set: print every output (reproducing a report) */
};

/* ---- Bookkeeping ---------------------------------------------------------- */

static struct gticket *gfind(struct world *w, const char *id, bool add)
{
    unsigned i;

    for (i = 0; i < w->ng; i++)
        if (strcmp(w->g[i].id, id) == 0)
            return &w->g[i];
    if (!add || w->ng == MAX_GLOBAL)
        return NULL;
    memset(&w->g[w->ng], 0, sizeof(w->g[0]));
    snprintf(w->g[w->ng].id, sizeof(w->g[0].id), "%s", id);
    w->g[w->ng].final_state = -1;
    return &w->g[w->ng++];
}

static struct tk *tfind(struct inc *c, const char *id)
{
    unsigned i;

    for (i = 0; i < c->ntk; i++)
        if (strcmp(c->tk[i].id, id) == 0)
            return &c->tk[i];
    FUZZ_CHECK(c->ntk < MAX_TK); /* each text names at most one new ticket */
    memset(&c->tk[c->ntk], 0, sizeof(c->tk[0]));
    snprintf(c->tk[c->ntk].id, sizeof(c->tk[0].id), "%s", id);
    c->tk[c->ntk].final_state = -1;
    return &c->tk[c->ntk++];
}

/* A final state seen for a ticket must be the one seen everywhere. */
static void note_state(struct world *w, struct tk *t, int state, uint64_t version)
{
    struct gticket *g = gfind(w, t->id, true);

    FUZZ_CHECK_MSG((state == MW_TICKET_QUEUED) == (version == 1),
                   "ticket %s state %d with version %llu", t->id, state,
                   (unsigned long long)version);
    if (state == MW_TICKET_QUEUED)
        return;
    FUZZ_CHECK_MSG(t->final_state == -1 || t->final_state == state, "ticket %s: final %d then %d",
                   t->id, t->final_state, state);
    t->final_state = state;
    if (g) {
        FUZZ_CHECK_MSG(g->final_state == -1 || g->final_state == state,
                       "ticket %s: final %d elsewhere, %d here", t->id, g->final_state, state);
        g->final_state = state;
    }
}

static int state_of(const char *name)
{
    enum mw_ticket_state st;

    FUZZ_CHECK_MSG(mw_ticket_state_parse(name, &st) == 0, "state \"%s\"", name);
    return (int)st;
}

static const char *str_of(const cJSON *obj, const char *key)
{
    const cJSON *m = mw_json_get(obj, key);

    FUZZ_CHECK_MSG(cJSON_IsString(m), "member %s", key);
    return m->valuestring;
}

static uint64_t version_of(const cJSON *data)
{
    const cJSON *m = mw_json_get(data, "version");

    FUZZ_CHECK(cJSON_IsNumber(m) && m->valuedouble >= 1 && m->valuedouble <= 3);
    return (uint64_t)m->valuedouble;
}

static void see_version(struct tk *t, uint64_t v)
{
    FUZZ_CHECK_MSG(v >= t->max_version, "ticket %s: version %llu after %llu", t->id,
                   (unsigned long long)v, (unsigned long long)t->max_version);
    t->max_version = v;
}

/* A match id for a ticket is given once, ever. */
static void see_match(struct world *w, const char *ticket, const char *match_id)
{
    struct gticket *g = gfind(w, ticket, true);

    if (!g)
        return;
    if (g->match_id[0] == '\0')
        snprintf(g->match_id, sizeof(g->match_id), "%s", match_id);
    else
        FUZZ_CHECK_MSG(strcmp(g->match_id, match_id) == 0, "ticket %s in matches %s and %s", ticket,
                       g->match_id, match_id);
}

/* ---- The recording io table ------------------------------------------------- */

static void check_reply_order(struct inc *c, const struct mw_envelope *env)
{
    unsigned n, k;
    char tail;

    if (!env->has_id || c->forged || sscanf(env->id, "g%u-%u%c", &n, &k, &tail) != 2 || n != c->no)
        return;
    /* It must answer the oldest generated request still unanswered (those
     * before it that got no reply with their id were rejected before their
     * id could be read: impossible for generated texts). */
    FUZZ_CHECK_MSG(c->gen_head != c->gen_tail && c->gen[c->gen_head % MAX_GEN] == k,
                   "reply to g%u-%u out of order", n, k);
    c->gen_head++;
}

static int io_send(void *ud, const char *buf, size_t len, int64_t assigned_ms)
{
    struct inc *c = ud;
    struct world *w = c->w;
    struct mw_envelope env;
    struct mw_parse_error err;
    const cJSON *d;
    char *copy;
    int rc;

    FUZZ_CHECK_MSG(c->open, "send on connection %u after on_close", c->no);
    FUZZ_CHECK(len > 0 && len <= MW_ENVELOPE_MAX_BYTES);
    if (c->blocked || c->unread >= OUT_MAX) {
        c->blocked = true; /* the edge closes it 4001 at the next step */
        return MW_ELIMIT;
    }
    c->unread++;
    if (w->trace)
        fprintf(stderr, "[t=%lld] conn %u <- %.*s\n", (long long)(w->now - START_MS), c->no,
                (int)len, buf);
    copy = fuzz_dup_exact((const uint8_t *)buf, len);
    rc = mw_envelope_parse(copy, len, &env, &err);
    FUZZ_CHECK_MSG(rc == 0, "output is not an envelope: %s at %zu: %.*s", err.message, err.offset,
                   (int)(len > 300 ? 300 : len), copy);
    free(copy);
    FUZZ_CHECK(env.v == 1);
    d = env.data;

    if (strcmp(env.type, "match.assigned") == 0 || strcmp(env.type, "ticket.expired") == 0 ||
        strcmp(env.type, "ticket.cancelled") == 0) {
        const char *tid = str_of(d, "ticketId");
        struct tk *t = tfind(c, tid);
        uint64_t v = version_of(d);

        FUZZ_CHECK_MSG(!env.has_id, "push with an id");
        FUZZ_CHECK_MSG(t->routed, "push %s for %s to connection %u that never watched it", env.type,
                       tid, c->no);
        FUZZ_CHECK_MSG(t->pushes == 0, "second push (%s) for %s on connection %u", env.type, tid,
                       c->no);
        t->pushes++;
        see_version(t, v);
        if (env.type[0] == 'm') {
            const char *mt = NULL;
            uint64_t mv = 0;
            int64_t at = 0;
            FUZZ_CHECK(mw_msg_check_match_assigned(&env, &mt, &mv, &at, &err) == 0);
            /* 0 for a stored assignment replayed after a watch (kept out
             * of the latency histogram), else the assignment time. */
            FUZZ_CHECK(assigned_ms == at || assigned_ms == 0);
            see_match(w, tid, str_of(mw_json_get(d, "assignment"), "matchId"));
            note_state(w, t, MW_TICKET_ASSIGNED, v);
        } else {
            FUZZ_CHECK(assigned_ms == 0);
            FUZZ_CHECK_MSG(!(t->own_cancel && env.type[7] == 'c'),
                           "ticket.cancelled push after own cancel of %s", tid);
            note_state(w, t, env.type[7] == 'e' ? MW_TICKET_EXPIRED : MW_TICKET_CANCELLED, v);
        }
    } else {
        c->replies++;
        FUZZ_CHECK_MSG(c->replies <= c->texts, "connection %u: %u replies to %u messages", c->no,
                       c->replies, c->texts);
        FUZZ_CHECK(assigned_ms == 0);
        check_reply_order(c, &env);
        if (strcmp(env.type, "enqueued") == 0 || strcmp(env.type, "watching") == 0) {
            struct tk *t = tfind(c, str_of(d, "ticketId"));
            uint64_t v = version_of(d);
            int st = state_of(str_of(d, "state"));
            t->routed = true;
            see_version(t, v);
            note_state(w, t, st, v);
            FUZZ_CHECK(env.type[0] == 'w' || st == MW_TICKET_QUEUED || v > 1);
            gfind(w, t->id, true);
        } else if (strcmp(env.type, "cancelled") == 0) {
            struct tk *t = tfind(c, str_of(d, "ticketId"));
            uint64_t v = version_of(d);
            FUZZ_CHECK_MSG(t->pushes == 0 || t->final_state == MW_TICKET_CANCELLED,
                           "cancelled reply for %s after a push", t->id);
            t->own_cancel = true;
            see_version(t, v);
            note_state(w, t, MW_TICKET_CANCELLED, v);
        } else if (strcmp(env.type, "error") == 0) {
            /* Any registry code: "unavailable" too, since the store's
             * max_tickets (24 here) answers MW_ELIMIT when full. */
            FUZZ_CHECK(cJSON_IsBool(mw_json_get(d, "retryable")));
            (void)str_of(d, "code");
        } else {
            FUZZ_CHECK_MSG(strcmp(env.type, "pong") == 0, "unexpected type %s", env.type);
        }
    }
    mw_envelope_clear(&env);
    return 0;
}

static void io_close(void *ud, uint16_t code, const char *reason)
{
    struct inc *c = ud;

    FUZZ_CHECK_MSG(c->open, "close on connection %u after on_close", c->no);
    FUZZ_CHECK(reason != NULL);
    FUZZ_CHECK_MSG(code == MW_CLOSE_POLICY || code == MW_CLOSE_INTERNAL ||
                       code == MW_CLOSE_NORMAL || code == MW_CLOSE_GOING_AWAY,
                   "close code %u", code);
    c->close_asked = true;
}

/* A second channel subscriber: every published assignment is a valid
 * match.assigned for its ticket, and a ticket is published in one match. */
static void spy(void *ud, const struct mw_assigned *m)
{
    struct world *w = ud;
    struct mw_envelope env;
    struct mw_parse_error err;
    const char *tid = NULL;
    uint64_t v = 0;
    int64_t at = 0;
    char *copy = fuzz_dup_exact((const uint8_t *)m->envelope, m->envelope_len);

    FUZZ_CHECK(mw_envelope_parse(copy, m->envelope_len, &env, &err) == 0);
    FUZZ_CHECK(mw_msg_check_match_assigned(&env, &tid, &v, &at, &err) == 0);
    FUZZ_CHECK(strcmp(tid, m->ticket_id) == 0 && v == m->version && at == m->assigned_ms);
    FUZZ_CHECK(v == 2);
    see_match(w, tid, str_of(mw_json_get(env.data, "assignment"), "matchId"));
    mw_envelope_clear(&env);
    free(copy);
}

static int64_t clock_now(void *ud)
{
    return ((const struct world *)ud)->now;
}

/* ---- Operations ----------------------------------------------------------- */

struct prog {
    const uint8_t *p;
    size_t n;
};

static uint8_t next(struct prog *pr)
{
    uint8_t b;

    if (pr->n == 0)
        return 0;
    b = *pr->p++;
    pr->n--;
    return b;
}

static void connect_slot(struct world *w, unsigned slot)
{
    struct inc *c;

    if (w->conn[slot] || w->ninc == MAX_INC)
        return;
    c = &w->inc[w->ninc];
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->no = w->ninc++;
    c->open = true;
    c->s = mw_session_new(&w->env, &w->io, c);
    FUZZ_CHECK(c->s != NULL);
    w->conn[slot] = c;
}

static void disconnect_slot(struct world *w, unsigned slot)
{
    struct inc *c = w->conn[slot];

    if (!c)
        return;
    c->open = false; /* from here on any io call on it is a bug */
    mw_session_on_close(c->s, w->now);
    c->s = NULL;
    w->conn[slot] = NULL;
}

/* The edge: deliver one text after its own checks (UTF-8, size). */
static void deliver(struct world *w, unsigned slot, const char *text, size_t len)
{
    struct inc *c = w->conn[slot];

    if (!c || c->close_asked || c->blocked)
        return;
    if (len > MW_ENVELOPE_MAX_BYTES)
        return;
    c->texts++;
    if (w->trace)
        fprintf(stderr, "[t=%lld] conn %u -> %.*s\n", (long long)(w->now - START_MS), c->no,
                (int)len, text);
    mw_session_on_text(c->s, text, len, w->now);
}

/* Strict UTF-8 as the edge (lws) checks it: noncharacters allowed. */
static bool utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint32_t cp;
        size_t k, j;
        if (s[i] < 0x80) {
            i++;
            continue;
        } else if (s[i] >= 0xC2 && s[i] <= 0xDF) {
            k = 2, cp = s[i] & 0x1F;
        } else if (s[i] >= 0xE0 && s[i] <= 0xEF) {
            k = 3, cp = s[i] & 0x0F;
        } else if (s[i] >= 0xF0 && s[i] <= 0xF4) {
            k = 4, cp = s[i] & 0x07;
        } else {
            return false;
        }
        if (i + k > n)
            return false;
        for (j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k;
    }
    return true;
}

static const char *const queues[] = {"duel", "trio", "solo", "duel"};
static const char *const regions[] = {"", "eu", "us", ""};

/* A ticket id to cancel/watch: one some connection saw, or a made-up one. */
static const char *pick_ticket(struct world *w, uint8_t b)
{
    if (w->ng == 0 || b % 8 == 7)
        return b % 2 ? "0f8fad5b-d9cb-469f-a165-70867728950e" : "not-a-ticket";
    return w->g[b % w->ng].id;
}

static void op_template(struct world *w, struct prog *pr)
{
    uint8_t slot = next(pr) % NCONN, t = next(pr), a = next(pr), b = next(pr);
    struct inc *c = w->conn[slot];
    char text[512], id[40] = "";
    int n;

    if (!c)
        return;
    if (!(t & 0x80)) { /* with a generated id: replies are checked for order */
        if (c->gen_tail - c->gen_head >= MAX_GEN)
            return;
        snprintf(id, sizeof(id), "\"id\":\"g%u-%u\",", c->no, c->next_req);
        c->gen[c->gen_tail++ % MAX_GEN] = c->next_req++;
    }
    switch (t % 8) {
    case 0:
    case 1: {
        const char *region = regions[(a >> 2) % 4];
        char attrs[64] = "", idem[48] = "";
        if (region[0])
            snprintf(attrs, sizeof(attrs), ",\"attributes\":{\"region\":\"%s\",\"mmr\":%u}", region,
                     b);
        if (a & 0x40)
            snprintf(idem, sizeof(idem), ",\"idempotencyKey\":\"k%u\"", (b >> 4) % 4);
        n = snprintf(text, sizeof(text),
                     "{\"type\":\"enqueue\",\"v\":1,%s\"data\":{\"queue\":\"%s\",\"playerId\":"
                     "\"p%u\"%s%s}}",
                     id, queues[a % 4], (a >> 4) % 4, attrs, idem);
        break;
    }
    case 2:
        n = snprintf(text, sizeof(text),
                     "{\"type\":\"cancel\",\"v\":1,%s\"data\":{\"ticketId\":\"%s\"}}", id,
                     pick_ticket(w, a));
        break;
    case 3:
    case 4:
        n = snprintf(text, sizeof(text),
                     "{\"type\":\"watch\",\"v\":1,%s\"data\":{\"ticketId\":\"%s\"}}", id,
                     pick_ticket(w, a));
        break;
    case 5:
        n = snprintf(text, sizeof(text), "{\"type\":\"ping\",\"v\":1,%s\"data\":{}}", id);
        break;
    case 6:
        n = snprintf(text, sizeof(text), "{\"type\":\"pong\",\"v\":1,%s\"data\":{}}", id);
        break;
    default:
        n = snprintf(text, sizeof(text), "{\"type\":\"enqueue\",\"v\":%u,%s\"data\":{}}", a % 3,
                     id);
        break;
    }
    deliver(w, slot, text, (size_t)n);
}

static void op_raw(struct world *w, struct prog *pr)
{
    uint8_t slot = next(pr) % NCONN;
    size_t len = next(pr);
    struct inc *c = w->conn[slot];
    char *text;

    len = len < pr->n ? len : pr->n;
    if (!c) {
        pr->p += len, pr->n -= len;
        return;
    }
    if (!utf8_ok(pr->p, len)) {
        /* The edge closes 1007 without involving the session. */
        disconnect_slot(w, slot);
        pr->p += len, pr->n -= len;
        return;
    }
    text = fuzz_dup_exact(pr->p, len);
    pr->p += len, pr->n -= len;
    if (memmem(text, len, "\"g", 2))
        c->forged = true;
    deliver(w, slot, text, len);
    free(text);
}

static void pump(struct world *w, size_t budget)
{
    mw_defer_run(w->defer, budget);
}

static void pump_all(struct world *w)
{
    unsigned i;

    for (i = 0; i < 10000 && mw_defer_pending(w->defer) > 0; i++)
        mw_defer_run(w->defer, 0);
    FUZZ_CHECK_MSG(mw_defer_pending(w->defer) == 0, "defer queue never drains");
}

/* The edge closes what it must (4001 after MW_ELIMIT, or a close the
 * session asked for) between operations, never inside a callback. */
static void edge_housekeeping(struct world *w)
{
    unsigned i;

    for (i = 0; i < NCONN; i++) {
        struct inc *c = w->conn[i];
        if (c && (c->blocked || c->close_asked))
            disconnect_slot(w, i);
    }
}

static bool world_init(struct world *w, const uint8_t *data, size_t size)
{
    struct mw_ticket_store_config scfg = {
        .ticket_ttl_ms = 600000, .assigned_ttl_ms = 600000, .grace_ms = 30000, .max_tickets = 24};
    struct mw_worker_config wcfg;

    /* Everything but the incarnations (large; each is zeroed when used). */
    memset(w, 0, offsetof(struct world, inc));
    memset(&w->ninc, 0, sizeof(*w) - offsetof(struct world, ninc));
    w->now = START_MS;
    w->trace = getenv("FUZZ_SESSION_TRACE") != NULL;
    w->rnd[0] = size ? data[0] : 0;
    w->defer = mw_defer_new(NULL, NULL);
    FUZZ_CHECK(w->defer != NULL);
    w->hub = mw_hub_new(64);
    FUZZ_CHECK(w->hub != NULL);
    FUZZ_CHECK(mw_ticket_store_memory_new(
                   &w->store, &scfg,
                   &(struct mw_ticket_store_hooks){.on_ended = mw_hub_on_ended, .ud = w->hub},
                   w->defer, fuzz_random, w->rnd) == 0);
    w->store_ok = true;
    FUZZ_CHECK(mw_channel_memory_new(&w->chan, NULL, w->defer, 32) == 0);
    w->chan_ok = true;
    FUZZ_CHECK(mw_channel_subscribe(&w->chan, mw_hub_on_assigned, w->hub) == 0);
    FUZZ_CHECK(mw_channel_subscribe(&w->chan, spy, w) == 0);

    memset(&wcfg, 0, sizeof(wcfg));
    wcfg.mm.match_size = 2;
    wcfg.mm.n_overrides = 2;
    snprintf(wcfg.mm.overrides[0].queue, sizeof(wcfg.mm.overrides[0].queue), "trio");
    wcfg.mm.overrides[0].size = 3;
    snprintf(wcfg.mm.overrides[1].queue, sizeof(wcfg.mm.overrides[1].queue), "solo");
    wcfg.mm.overrides[1].size = 1;
    wcfg.mm.max_waiting = 64;
    wcfg.n_game_servers = 2;
    snprintf(wcfg.game_servers[0], sizeof(wcfg.game_servers[0]), "10.0.0.1:7777");
    snprintf(wcfg.game_servers[1], sizeof(wcfg.game_servers[1]), "[::1]:7778");
    w->worker = mw_worker_new(&wcfg, &w->store, &w->chan, fuzz_random, w->rnd, clock_now, w);
    FUZZ_CHECK(w->worker != NULL);

    w->env.store = &w->store;
    w->env.hub = w->hub;
    w->env.metrics = NULL;
    w->env.limits.max_tickets = 8;
    w->env.limits.max_consecutive_errors = 10;
    w->env.limits.rate_per_sec = 20; /* lower than the server's, so a program reaches it */
    w->env.limits.rate_burst = 30;
    w->io.send = io_send;
    w->io.close = io_close;
    return true;
}

static void world_end(struct world *w)
{
    unsigned i;

    /* Let everything in flight finish, then every open connection must
     * have answered every message (MSG-010). */
    pump_all(w);
    edge_housekeeping(w);
    pump_all(w);
    for (i = 0; i < NCONN; i++) {
        struct inc *c = w->conn[i];
        if (c && !c->close_asked && !c->blocked)
            FUZZ_CHECK_MSG(c->replies == c->texts, "connection %u: %u replies to %u messages",
                           c->no, c->replies, c->texts);
    }
    for (i = 0; i < NCONN; i++)
        disconnect_slot(w, i);
    pump_all(w);
    /* worker.h: the store first (its pending callbacks still find the
     * worker), then the worker; the channel before the hub it feeds. */
    mw_ticket_store_destroy(&w->store);
    mw_worker_free(w->worker);
    mw_channel_destroy(&w->chan);
    mw_hub_free(w->hub);
    mw_defer_free(w->defer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct world world; /* large: kept off the stack; reset per input */
    struct world *w = &world;
    struct prog pr = {data, size};
    unsigned ops = 0;

    world_init(w, data, size);
    next(&pr); /* the random seed byte */
    connect_slot(w, 0);
    while (pr.n > 0 && ops++ < MAX_OPS) {
        uint8_t op = next(&pr);
        switch (op % 10) {
        case 0:
        case 1:
        case 2:
            op_template(w, &pr);
            break;
        case 3:
            op_raw(w, &pr);
            break;
        case 4:
            disconnect_slot(w, next(&pr) % NCONN);
            break;
        case 5:
            connect_slot(w, next(&pr) % NCONN);
            break;
        case 6: { /* the clock moves; the server's sweep timer fires */
            uint8_t b = next(&pr);
            w->now += (int64_t)(b & 0x3F) * (b & 0x40 ? 60000 : 1000);
            FUZZ_CHECK(mw_ticket_store_sweep(&w->store, w->now) >= 0);
            break;
        }
        case 7:
        case 8:
            pump(w, next(&pr) % 8);
            break;
        default: { /* the client reads what was sent to it */
            struct inc *c = w->conn[next(&pr) % NCONN];
            if (c)
                c->unread = 0;
            break;
        }
        }
        edge_housekeeping(w);
        FUZZ_CHECK(mw_hub_watch_count(w->hub) <= 64);
    }
    world_end(w);
    return 0;
}
