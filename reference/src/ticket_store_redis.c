/* ticket_store_redis: the ticket store over Redis (spec/channel.md §5), so
 * many server instances share one truth.
 *
 * Every state change is one Lua script on the command connection, so it is
 * atomic across instances (sent as EVALSHA once SCRIPT LOAD, sent on every
 * (re)connect, has answered; EVAL before that, and once again with EVAL
 * when Redis answers NOSCRIPT, e.g. after SCRIPT FLUSH): create with
 * idempotency (ticket_store_redis_create.c: the creates of one loop turn in
 * one call), cancel, attach, detach, the assignment compare-and-set
 * (ticket_store_redis_assign.c: likewise batched), and the sweep. Scripts
 * answer only what the caller does not know (spec/channel.md section 5,
 * layout 2). The scripts are the .lua
 * files of lua/, embedded at build time. Ends without assignment are
 * published by the script on <prefix>matchmaking:ended; each instance
 * subscribes (own connection) and calls the owner's on_ended hook for the
 * ends other instances made, and calls it itself for its own (after the
 * cancel callback, like the memory store), so notices from its own origin
 * are skipped. The worker's feed (ticket_store_redis_feed.c) reads the
 * hand-off stream through the consumer group "workers" on a third
 * connection, while holding the worker lease (CHN-082/083). */
#include "ticket_store_redis.h"

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "invariant.h"
#include "json.h"
#include "log.h"
#include "ratelimit.h"
#include "redis_scripts.h"
#include "ticket_store_redis_assign.h"
#include "ticket_store_redis_batch.h"
#include "ticket_store_redis_create.h"
#include "ticket_store_redis_feed.h"
#include "ticket_store_redis_int.h"

/* The scripts' text (the .lua files of lua/), by id. */
static const char *const script_text[SC_COUNT] = {
    [SC_CREATE] = mw_lua_create, [SC_CANCEL] = mw_lua_cancel, [SC_ATTACH] = mw_lua_attach,
    [SC_DETACH] = mw_lua_detach, [SC_ASSIGN] = mw_lua_assign, [SC_SWEEP] = mw_lua_sweep,
    [SC_LEASE] = mw_lua_lease,   [SC_PAGE] = mw_lua_page,
};

/* ---- Requests --------------------------------------------------------------- */

enum req_kind { R_TICKET = 0, R_CANCEL, R_GET };

struct req {
    struct tsr *s;
    enum req_kind kind;
    mw_ticket_cb cb;
    void *ud;
    /* A watched create: when its reply is lost, its id's detach is owed. */
    bool owe_if_lost;
    char id[MW_TICKET_ID_LEN + 1];
};

/* ---- Small helpers ---------------------------------------------------------- */

/* (ticket_store_redis_int.h) */
int mw__tsr_args_reserve(struct tsr_args *a, size_t argc, size_t nums)
{
    a->n = 0;
    a->ni = 0;
    a->v = a->v_inline;
    a->l = a->l_inline;
    a->num = a->num_inline;
    a->cap = a->capnum = TSR_ARGS_INLINE;
    if (argc <= TSR_ARGS_INLINE && nums <= TSR_ARGS_INLINE)
        return 0;
    a->v = mw_malloc(argc * sizeof(*a->v));
    a->l = mw_malloc(argc * sizeof(*a->l));
    a->num = mw_malloc(nums * sizeof(*a->num));
    a->cap = argc;
    a->capnum = nums;
    if (!a->v || !a->l || !a->num) {
        mw__tsr_args_release(a);
        return MW_ENOMEM;
    }
    return 0;
}

/* (ticket_store_redis_int.h) */
void mw__tsr_args_release(struct tsr_args *a)
{
    if (a->v != a->v_inline)
        mw_free(a->v);
    if (a->l != a->l_inline)
        mw_free(a->l);
    if (a->num != a->num_inline)
        mw_free(a->num);
    a->v = a->v_inline;
    a->l = a->l_inline;
    a->num = a->num_inline;
    a->cap = a->capnum = 0;
    a->n = 0;
    a->ni = 0;
}

/* (ticket_store_redis_int.h) */
void mw__tsr_args_add(struct tsr_args *a, const char *str, size_t len)
{
    MW_ASSERT((size_t)a->n < a->cap);
    a->v[a->n] = str;
    a->l[a->n++] = len;
}

/* (ticket_store_redis_int.h) */
void mw__tsr_args_str(struct tsr_args *a, const char *str)
{
    mw__tsr_args_add(a, str, strlen(str));
}

/* (ticket_store_redis_int.h) */
void mw__tsr_args_int(struct tsr_args *a, int64_t x)
{
    int n;

    MW_ASSERT(a->ni < a->capnum);
    n = snprintf(a->num[a->ni], sizeof(a->num[a->ni]), "%" PRId64, x);
    mw__tsr_args_add(a, a->num[a->ni++], n > 0 ? (size_t)n : 0);
}

/* (ticket_store_redis_int.h) */
void mw__tsr_args_script(struct tsr_args *a, const struct tsr *s, int64_t now_ms)
{
    mw__tsr_args_add(a, "0", 1);
    mw__tsr_args_str(a, s->opts.prefix);
    mw__tsr_args_str(a, s->s_maxlen);
    mw__tsr_args_str(a, s->s_ret);
    mw__tsr_args_str(a, s->origin);
    mw__tsr_args_int(a, now_ms);
}

bool mw__tsr_str_is(const redisReply *r, const char *s)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

int64_t mw__tsr_reply_int(const redisReply *r, bool *ok)
{
    char buf[32], *end;
    long long v;

    if (r && r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(buf)) {
        *ok = false;
        return 0;
    }
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    v = strtoll(buf, &end, 10);
    if (*end != '\0')
        *ok = false;
    return v;
}

static void copy_field(char *dst, size_t cap, const redisReply *v, bool *ok)
{
    if (v->len >= cap) {
        *ok = false;
        return;
    }
    memcpy(dst, v->str, v->len);
    dst[v->len] = '\0';
}

/* Fills t (which owns nothing yet) from a flat field/value array (HGETALL,
 * or a stream entry). Unknown fields are ignored (CHN-040). Returns 0,
 * MW_ENOTFOUND (empty), MW_EIO (malformed) or MW_ENOMEM; on error t owns
 * nothing. */
int mw__tsr_ticket_from_fields(struct mw_ticket *t, redisReply *const *el, size_t n)
{
    bool ok = true, has_id = false, has_state = false;

    memset(t, 0, sizeof(*t));
    if (n == 0)
        return MW_ENOTFOUND;
    if (n % 2)
        return MW_EIO;
    for (size_t i = 0; i + 1 < n && ok; i += 2) {
        const redisReply *f = el[i], *v = el[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            ok = false;
            break;
        }
        if (mw__tsr_str_is(f, "id")) {
            copy_field(t->id, sizeof(t->id), v, &ok);
            has_id = true;
        } else if (mw__tsr_str_is(f, "queue")) {
            copy_field(t->queue, sizeof(t->queue), v, &ok);
        } else if (mw__tsr_str_is(f, "playerId")) {
            copy_field(t->player_id, sizeof(t->player_id), v, &ok);
        } else if (mw__tsr_str_is(f, "region")) {
            copy_field(t->region, sizeof(t->region), v, &ok);
        } else if (mw__tsr_str_is(f, "idemKey")) {
            copy_field(t->idem_key, sizeof(t->idem_key), v, &ok);
            t->has_idem_key = true;
        } else if (mw__tsr_str_is(f, "state")) {
            char st[16];

            copy_field(st, sizeof(st), v, &ok);
            if (ok && mw_ticket_state_parse(st, &t->state) != 0)
                ok = false;
            has_state = true;
        } else if (mw__tsr_str_is(f, "version")) {
            int64_t x = mw__tsr_reply_int(v, &ok);

            t->version = x > 0 ? (uint64_t)x : 0;
        } else if (mw__tsr_str_is(f, "createdAt")) {
            t->created_ms = mw__tsr_reply_int(v, &ok);
        } else if (mw__tsr_str_is(f, "expiresAt")) {
            t->expires_ms = mw__tsr_reply_int(v, &ok);
        } else if (mw__tsr_str_is(f, "endedAt")) {
            t->ended_ms = mw__tsr_reply_int(v, &ok);
        } else if (mw__tsr_str_is(f, "attributes") && !t->attributes_json) {
            t->attributes_json = mw_strndup(v->str, v->len);
            if (!t->attributes_json)
                goto out_nomem;
        } else if (mw__tsr_str_is(f, "envelope") && !t->assigned_envelope) {
            t->assigned_envelope = mw_strndup(v->str, v->len);
            if (!t->assigned_envelope)
                goto out_nomem;
            t->assigned_envelope_len = v->len;
        }
    }
    if (!ok || !has_id || !has_state || t->version == 0) {
        mw_ticket_clear(t);
        memset(t, 0, sizeof(*t));
        return MW_EIO;
    }
    return 0;
out_nomem:
    mw_ticket_clear(t);
    memset(t, 0, sizeof(*t));
    return MW_ENOMEM;
}

int mw__tsr_ticket_from_reply(struct mw_ticket *t, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return MW_EIO;
    return mw__tsr_ticket_from_fields(t, r->element, r->elements);
}

int64_t mw__tsr_loop_ms(const struct tsr *s)
{
    return (int64_t)(ev_now(s->loop) * 1000.0);
}

/* Status for a reply that is not what we expected. */
int mw__tsr_reply_failure(struct tsr *s, const redisReply *r, const char *what)
{
    if (!r)
        return s->closing ? MW_ECLOSED : MW_EUNAVAIL;
    if (mw_ratelimit_allow(&s->rl, mw__tsr_loop_ms(s)))
        mw_log(MW_LOG_WARN, "ticket store %s: unexpected reply%s%s", what,
               r->type == REDIS_REPLY_ERROR ? ": " : "",
               r->type == REDIS_REPLY_ERROR ? r->str : "");
    return r->type == REDIS_REPLY_ERROR ? MW_EUNAVAIL : MW_EIO;
}

static void call_ended(struct tsr *s, const struct mw_ticket *t)
{
    if (!s->closing && s->hooks.on_ended)
        s->hooks.on_ended(s->hooks.ud, t);
}

/* ---- Scripts: EVALSHA, SCRIPT LOAD, NOSCRIPT fallback ---------------------- */

/* A script call in flight: forwards the reply to cb(ac, reply, priv), except
 * a NOSCRIPT error to an EVALSHA, which it answers by sending the same call
 * again as EVAL (once) on the same connection. For that, an EVALSHA call
 * keeps its arguments (after the script): argv and lens point into the
 * same allocation; argc is 0 once there is nothing to fall back to. */
struct call {
    struct tsr *s;
    enum script_id id;
    redisCallbackFn *cb;
    void *priv;
    int argc;
    const char **argv;
    size_t *lens;
};

static void on_load_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct script *sc = privdata;
    redisReply *reply = r;

    (void)ac;
    sc->loading = false;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(sc->sha, reply->str, 40);
        sc->sha[40] = '\0';
        sc->loaded = true;
    } else if (reply) {
        mw__tsr_reply_failure(sc->s, reply, "script load");
    }
}

/* Sends SCRIPT LOAD for every script not loaded (nor loading) on the
 * command connection, when it is ready. Calls sent before the answer use
 * EVAL; the command connection answers in order, so every call sent on it
 * after this one finds the scripts loaded. */
static void scripts_load(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);

    for (int i = 0; ac && i < SC_COUNT; i++) {
        struct script *sc = &s->scripts[i];

        if (sc->loaded || sc->loading)
            continue;
        if (redisAsyncCommand(ac, on_load_reply, sc, "SCRIPT LOAD %s", script_text[i]) == REDIS_OK)
            sc->loading = true;
    }
}

/* Redis' script cache lost our scripts (SCRIPT FLUSH, a restart): EVAL
 * until they are loaded again. */
static void scripts_forget(struct tsr *s)
{
    for (int i = 0; i < SC_COUNT; i++)
        s->scripts[i].loaded = false;
}

static void on_call_reply(redisAsyncContext *ac, void *r, void *privdata);

/* A call for script id; with keep, a copy of the arguments argv[0..argc)
 * for the NOSCRIPT fallback, in the same allocation. NULL: out of memory. */
static struct call *call_new(struct tsr *s, enum script_id id, redisCallbackFn *cb, void *priv,
                             bool keep, int argc, const char *const *argv, const size_t *lens)
{
    size_t bytes = 0, n = keep ? (size_t)argc : 0;
    struct call *call;
    char *p;

    for (size_t i = 0; i < n; i++)
        bytes += lens[i];
    call = mw_malloc(sizeof(*call) + n * (sizeof(size_t) + sizeof(char *)) + bytes);
    if (!call)
        return NULL;
    *call = (struct call){.s = s, .id = id, .cb = cb, .priv = priv, .argc = (int)n};
    call->lens = (size_t *)(call + 1);
    call->argv = (const char **)(call->lens + n);
    p = (char *)(call->argv + n);
    for (size_t i = 0; i < n; i++) {
        call->lens[i] = lens[i];
        call->argv[i] = p;
        if (lens[i])
            memcpy(p, argv[i], lens[i]);
        p += lens[i];
    }
    return call;
}

/* Writes <mark><n>\r\n at p (a RESP array or bulk header); returns its
 * length (at most 23 bytes). */
static size_t resp_head(char *p, char mark, size_t n)
{
    char d[20];
    size_t k = 0, len = 0;

    do {
        d[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    p[len++] = mark;
    while (k)
        p[len++] = d[--k];
    p[len++] = '\r';
    p[len++] = '\n';
    return len;
}

/* Appends one RESP bulk string at p; returns what it wrote. */
static size_t resp_bulk(char *p, const char *s, size_t n)
{
    size_t len = resp_head(p, '$', n);

    if (n)
        memcpy(p + len, s, n);
    len += n;
    p[len++] = '\r';
    p[len++] = '\n';
    return len;
}

/* Sends <cmd> <script> argv[0..argc) on ac, replies to on_call_reply with
 * call. The command is formatted here, in one allocation: hiredis' own
 * formatter (sdscatfmt and a growing buffer per argument) cost the server
 * more than everything else it does to send a script call. Returns 0,
 * MW_ENOMEM or MW_EUNAVAIL. */
static int call_send(redisAsyncContext *ac, struct call *call, const char *cmd, const char *script,
                     int argc, const char *const *argv, const size_t *lens)
{
    size_t cl = strlen(cmd), sl = strlen(script), total = 23 + 27 + cl + 27 + sl, n;
    char *buf;
    int rc = 0;

    for (int i = 0; i < argc; i++)
        total += 27 + lens[i]; /* "$" 20 digits "\r\n" bytes "\r\n" */
    buf = mw_malloc(total);
    if (!buf)
        return MW_ENOMEM;
    n = resp_head(buf, '*', (size_t)argc + 2);
    n += resp_bulk(buf + n, cmd, cl);
    n += resp_bulk(buf + n, script, sl);
    for (int i = 0; i < argc; i++)
        n += resp_bulk(buf + n, argv[i], lens[i]);
    MW_ASSERT(n <= total);
    if (redisAsyncFormattedCommand(ac, on_call_reply, call, buf, n) != REDIS_OK)
        rc = MW_EUNAVAIL;
    mw_free(buf);
    return rc;
}

static void on_call_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct call *call = privdata;
    struct tsr *s = call->s;
    redisReply *reply = r;

    if (reply && reply->type == REDIS_REPLY_ERROR && call->argc && !s->closing &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        int argc = call->argc;

        scripts_forget(s);
        scripts_load(s);
        call->argc = 0; /* once */
        /* The same call again as EVAL, formatted anew from its arguments. */
        if (call_send(ac, call, "EVAL", script_text[call->id], argc, call->argv, call->lens) == 0) {
            s->noscript_retries++;
            return; /* the EVAL's reply comes to this function again */
        }
    }
    call->cb(ac, r, call->priv);
    mw_free(call);
}

/* (ticket_store_redis_int.h) */
int mw__tsr_script_send(struct tsr *s, redisAsyncContext *ac, enum script_id id, int argc,
                        const char *const *argv, const size_t *lens, redisCallbackFn *cb,
                        void *priv)
{
    const struct script *sc = &s->scripts[id];
    struct call *call;
    int rc;

    if (argc < 0)
        return MW_EINVAL;
    /* Sent as EVAL: nothing to fall back to, nothing to keep. */
    call = call_new(s, id, cb, priv, sc->loaded, argc, argv, lens);
    if (!call)
        return MW_ENOMEM;
    rc = call_send(ac, call, sc->loaded ? "EVALSHA" : "EVAL",
                   sc->loaded ? sc->sha : script_text[id], argc, argv, lens);
    if (rc)
        mw_free(call);
    return rc;
}

static void owed_flush(struct tsr *s);

static void on_cmd_ready(void *ud, struct mw_redis_conn *c)
{
    struct tsr *s = ud;

    (void)c;
    /* A new connection may reach a new server (restart): load again. The
     * loads go first, before any call this connection sends. */
    for (int i = 0; i < SC_COUNT; i++)
        s->scripts[i].loading = false; /* the lost connection's loads got NULL replies */
    scripts_forget(s);
    scripts_load(s);
    owed_flush(s);
}

/* ---- Request plumbing ------------------------------------------------------- */

static void on_script_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Sends a request: script `script` with the arguments a (mw__tsr_args_script()), or
 * a plain command a when script is SC_COUNT. */
static int send_req(struct tsr *s, enum script_id script, struct tsr_args *a, enum req_kind kind,
                    mw_ticket_cb cb, void *ud, const char *owe_id)
{
    int rc;

    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    struct req *q;

    if (s->closing)
        return MW_ECLOSED;
    if (!ac)
        return MW_EUNAVAIL;
    if (s->inflight >= TSR_MAX_INFLIGHT)
        return MW_ELIMIT;
    q = mw_malloc(sizeof(*q));
    if (!q)
        return MW_ENOMEM;
    *q = (struct req){.s = s, .kind = kind, .cb = cb, .ud = ud};
    if (owe_id) {
        q->owe_if_lost = true;
        memcpy(q->id, owe_id, sizeof(q->id));
    }
    if (script == SC_COUNT)
        rc = redisAsyncCommandArgv(ac, on_script_reply, q, a->n, a->v, a->l) == REDIS_OK
                 ? 0
                 : MW_EUNAVAIL;
    else
        rc = mw__tsr_script_send(s, ac, script, a->n, a->v, a->l, on_script_reply, q);
    if (rc) {
        mw_free(q);
        return rc;
    }
    s->inflight++;
    return 0;
}

/* Calls q's ticket callback with status and the ticket parsed from tr (a
 * HGETALL array). replayed: create answered an existing ticket (MSG-026), so
 * the snapshot says so (ticket.h; HTTP answers 200, MSG-110). */
static void finish_ticket(struct req *q, int status, const redisReply *tr, bool replayed)
{
    struct mw_ticket t;
    int rc;

    if (status == 0 || status == MW_ESTATE) {
        rc = mw__tsr_ticket_from_reply(&t, tr);
        if (rc == 0) {
            t.replayed = replayed;
            q->cb(q->ud, status, &t);
            if (q->kind == R_CANCEL && status == 0)
                call_ended(q->s, &t); /* after the canceller's callback */
            mw_ticket_clear(&t);
            return;
        }
        status = rc == MW_ENOTFOUND ? MW_ENOTFOUND : rc;
    }
    q->cb(q->ud, status, NULL);
}

static void on_script_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct req *q = privdata;
    struct tsr *s = q->s;
    redisReply *reply = r;

    (void)ac;
    s->inflight--;
    if (!reply && q->owe_if_lost && !s->closing)
        mw__tsr_owe_detach(s, q->id); /* the create may have run (CHN-074) */
    if (q->kind == R_GET) {
        /* Plain HGETALL: an empty array is not_found. */
        if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 0)
            finish_ticket(q, MW_ENOTFOUND, NULL, false);
        else if (reply && reply->type == REDIS_REPLY_ARRAY)
            finish_ticket(q, 0, reply, false);
        else
            finish_ticket(q, mw__tsr_reply_failure(s, reply, "get"), NULL, false);
        goto out;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        finish_ticket(q, mw__tsr_reply_failure(s, reply, "script"), NULL, false);
        goto out;
    }
    if (mw__tsr_str_is(reply->element[0], "NOTFOUND"))
        finish_ticket(q, MW_ENOTFOUND, NULL, false);
    else if (mw__tsr_str_is(reply->element[0], "LIMIT"))
        finish_ticket(q, MW_ELIMIT, NULL, false);
    else if (mw__tsr_str_is(reply->element[0], "DUPID"))
        finish_ticket(q, MW_EIO, NULL, false); /* a repeating random source */
    else if (reply->elements >= 2 && mw__tsr_str_is(reply->element[0], "STATE"))
        finish_ticket(q, MW_ESTATE, reply->element[1], false);
    else if (reply->elements >= 2)
        /* OK, CREATED, or EXISTING: create's idempotency hit (MSG-026). */
        finish_ticket(q, 0, reply->element[1], mw__tsr_str_is(reply->element[0], "EXISTING"));
    else
        finish_ticket(q, mw__tsr_reply_failure(s, reply, "script"), NULL, false);
out:
    mw_free(q);
}

/* ---- Operations ------------------------------------------------------------- */

static int tsr_get(void *impl, const char *ticket_id, mw_ticket_cb cb, void *ud)
{
    struct tsr *s = impl;
    struct tsr_args a;
    char key[TSR_KEY_MAX + MW_TICKET_ID_LEN + 1];

    if (!ticket_id || !cb)
        return MW_EINVAL;
    snprintf(key, sizeof(key), "%smw:ticket:%.36s", s->opts.prefix, ticket_id);
    mw__tsr_args_reserve(&a, 2, 0); /* inline: cannot fail */
    mw__tsr_args_add(&a, "HGETALL", 7);
    mw__tsr_args_str(&a, key);
    return send_req(s, SC_COUNT, &a, R_GET, cb, ud, NULL);
}

static int simple_script(struct tsr *s, enum script_id script, enum req_kind kind,
                         const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    struct tsr_args a;

    if (!ticket_id || !cb)
        return MW_EINVAL;
    if (strlen(ticket_id) > MW_TICKET_ID_LEN)
        ticket_id = "-";                                   /* never a key: not_found */
    mw__tsr_args_reserve(&a, TSR_ARGS_SCRIPT_HEAD + 1, 1); /* inline: cannot fail */
    mw__tsr_args_script(&a, s, now_ms);
    mw__tsr_args_str(&a, ticket_id);
    return send_req(s, script, &a, kind, cb, ud, NULL);
}

static int tsr_cancel(void *impl, const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    return simple_script(impl, SC_CANCEL, R_CANCEL, ticket_id, now_ms, cb, ud);
}

static int tsr_attach(void *impl, const char *ticket_id, int64_t now_ms, mw_ticket_cb cb, void *ud)
{
    return simple_script(impl, SC_ATTACH, R_TICKET, ticket_id, now_ms, cb, ud);
}

static void on_ignored_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;

    (void)ac;
    s->inflight--;
    if (reply && reply->type == REDIS_REPLY_ERROR && mw_ratelimit_allow(&s->rl, mw__tsr_loop_ms(s)))
        mw_log(MW_LOG_WARN, "ticket store: %s", reply->str);
}

/* Sends the detach script for ticket_id; 0 or an error. */
static int detach_send(struct tsr *s, redisAsyncContext *ac, const char *ticket_id, int64_t now_ms)
{
    struct tsr_args a;
    int rc;

    mw__tsr_args_reserve(&a, TSR_ARGS_SCRIPT_HEAD + 2, 2); /* inline: cannot fail */
    mw__tsr_args_script(&a, s, now_ms);
    mw__tsr_args_str(&a, ticket_id);
    mw__tsr_args_int(&a, s->cfg.grace_ms);
    rc = mw__tsr_script_send(s, ac, SC_DETACH, a.n, a.v, a.l, on_ignored_reply, s);
    if (rc)
        return rc;
    s->inflight++;
    return 0;
}

/* (ticket_store_redis_int.h) */
int mw__tsr_owe_detach(struct tsr *s, const char *ticket_id)
{
    if (!s->owed)
        s->owed = mw_malloc(TSR_OWED_MAX * sizeof(*s->owed));
    if (!s->owed || s->n_owed == TSR_OWED_MAX) {
        s->owed_dropped++;
        if (mw_ratelimit_allow(&s->rl, mw__tsr_loop_ms(s)))
            mw_log(MW_LOG_WARN,
                   "ticket store: %" PRIu64 " detaches dropped (%zu owed); those tickets end "
                   "by expiry",
                   s->owed_dropped, s->n_owed);
        return s->owed ? MW_ELIMIT : MW_ENOMEM;
    }
    snprintf(s->owed[s->n_owed++], MW_TICKET_ID_LEN + 1, "%s", ticket_id);
    return 0;
}

/* The command connection is ready again: pays what is owed, at the current
 * time (the grace period starts now). What cannot be sent stays owed. */
static void owed_flush(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    size_t i = 0;

    while (ac && i < s->n_owed && detach_send(s, ac, s->owed[i], mw__tsr_loop_ms(s)) == 0)
        i++;
    if (i == 0)
        return; /* also: owed may be NULL, and memmove(NULL, ...) is undefined */
    memmove(s->owed, s->owed + i, (s->n_owed - i) * sizeof(*s->owed));
    s->n_owed -= i;
}

static int tsr_detach(void *impl, const char *ticket_id, int64_t now_ms)
{
    struct tsr *s = impl;
    redisAsyncContext *ac;

    if (!ticket_id)
        return MW_EINVAL;
    if (s->closing)
        return MW_ECLOSED;
    if (strlen(ticket_id) > MW_TICKET_ID_LEN)
        return MW_ENOTFOUND;
    ac = mw_redis_conn_ctx(s->cmd);
    if (!ac || detach_send(s, ac, ticket_id, now_ms) != 0)
        return mw__tsr_owe_detach(s, ticket_id); /* never lost quietly (CHN-074) */
    return 0;
}

static void on_sweep_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;
    const redisReply *ended;

    (void)ac;
    s->inflight--;
    s->sweep_inflight = false;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER || reply->element[0]->integer < 0 ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        if (reply)
            mw__tsr_reply_failure(s, reply, "sweep");
        return;
    }
    s->swept += (uint64_t)reply->element[0]->integer;
    ended = reply->element[1];
    for (size_t i = 0; i < ended->elements; i++) {
        struct mw_ticket t;

        s->swept++;
        if (mw__tsr_ticket_from_reply(&t, ended->element[i]) == 0) {
            call_ended(s, &t);
            mw_ticket_clear(&t);
        }
    }
}

static int tsr_sweep(void *impl, int64_t now_ms)
{
    struct tsr *s = impl;
    redisAsyncContext *ac;
    struct tsr_args a;
    int rc, done;

    if (s->closing)
        return MW_ECLOSED;
    ac = mw_redis_conn_ctx(s->cmd);
    if (!ac)
        return MW_EUNAVAIL;
    /* What the passes answered since the last call changed (ticket_store.h). */
    done = s->swept > INT_MAX ? INT_MAX : (int)s->swept;
    s->swept = 0;
    if (s->sweep_inflight)
        return done; /* the previous pass has not answered yet */
    mw__tsr_args_reserve(&a, TSR_ARGS_SCRIPT_HEAD + 1, 1); /* inline: cannot fail */
    mw__tsr_args_script(&a, s, now_ms);
    mw__tsr_args_str(&a, TSR_SWEEP_BATCH);
    rc = mw__tsr_script_send(s, ac, SC_SWEEP, a.n, a.v, a.l, on_sweep_reply, s);
    if (rc) {
        s->swept += (uint64_t)done; /* reported by the next call */
        return rc;
    }
    s->inflight++;
    s->sweep_inflight = true;
    return done;
}

static void tsr_counts(void *impl, uint64_t n[4])
{
    struct tsr *s = impl;

    memcpy(n, s->counts, sizeof(s->counts));
}

static int tsr_ready(void *impl, char *reason, size_t reason_len)
{
    struct tsr *s = impl;
    const struct mw_redis_conn *bad = NULL;

    if (s->closing) {
        if (reason && reason_len)
            snprintf(reason, reason_len, "ticket store closing");
        return MW_ECLOSED;
    }
    if (!mw_redis_conn_ready(s->cmd))
        bad = s->cmd;
    else if (!mw_redis_conn_ready(s->sub))
        bad = s->sub;
    else if (s->feed && !mw_redis_conn_ready(s->feed))
        bad = s->feed;
    if (!bad) {
        if (reason && reason_len)
            reason[0] = '\0';
        return 0;
    }
    if (reason && reason_len)
        snprintf(reason, reason_len, "%s", mw_redis_conn_error(bad));
    return MW_EUNAVAIL;
}

/* ---- Counts ----------------------------------------------------------------- */

/* The EXEC of on_counts_timer(): [ZCARD mw:queue, ZCARD mw:deadlines,
 * [cancelled, expired] of mw:counts]. Queued tickets are the queue; every
 * live ticket has a deadline; assigned ones are the rest (CHN-040: no
 * counter is written per created or assigned ticket). */
static void on_counts_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;
    const redisReply *ended;
    int64_t v[4] = {0}, live;
    bool ok = true;

    (void)ac;
    s->counts_inflight = false;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[2]->type != REDIS_REPLY_ARRAY || reply->element[2]->elements != 2)
        return;
    v[MW_TICKET_QUEUED] = mw__tsr_reply_int(reply->element[0], &ok);
    live = mw__tsr_reply_int(reply->element[1], &ok);
    ended = reply->element[2];
    for (size_t i = 0; i < 2; i++) {
        int64_t x = ended->element[i]->type == REDIS_REPLY_NIL
                        ? 0
                        : mw__tsr_reply_int(ended->element[i], &ok);

        v[i == 0 ? MW_TICKET_CANCELLED : MW_TICKET_EXPIRED] = x > 0 ? x : 0;
    }
    if (!ok)
        return;
    v[MW_TICKET_ASSIGNED] =
        live - v[MW_TICKET_QUEUED] - v[MW_TICKET_CANCELLED] - v[MW_TICKET_EXPIRED];
    for (size_t i = 0; i < 4; i++)
        s->counts[i] = v[i] > 0 ? (uint64_t)v[i] : 0;
}

static void on_counts_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tsr *s = w->data;
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);

    (void)loop;
    (void)revents;
    if (!ac || s->counts_inflight)
        return;
    /* One transaction, so the three reads see one moment. */
    if (redisAsyncCommand(ac, NULL, NULL, "MULTI") != REDIS_OK ||
        redisAsyncCommand(ac, NULL, NULL, "ZCARD %s", s->k_queue) != REDIS_OK ||
        redisAsyncCommand(ac, NULL, NULL, "ZCARD %s", s->k_deadlines) != REDIS_OK ||
        redisAsyncCommand(ac, NULL, NULL, "HMGET %s cancelled expired", s->k_counts) != REDIS_OK)
        return;
    if (redisAsyncCommand(ac, on_counts_reply, s, "EXEC") == REDIS_OK)
        s->counts_inflight = true;
}

/* ---- Ended notices (CHN-031) ------------------------------------------------ */

static void on_ended_notice(struct tsr *s, const char *buf, size_t len)
{
    struct mw_parse_error pe;
    cJSON *root = NULL;
    const cJSON *id, *st, *ver, *origin;
    struct mw_ticket t;

    if (mw_json_parse(buf, len, 4, &root, &pe) != 0)
        goto bad;
    id = mw_json_get(root, "ticketId");
    st = mw_json_get(root, "state");
    ver = mw_json_get(root, "version");
    origin = mw_json_get(root, "origin");
    if (cJSON_IsString(origin) && strcmp(origin->valuestring, s->origin) == 0)
        goto out; /* ours: on_ended was called locally */
    memset(&t, 0, sizeof(t));
    if (!cJSON_IsString(id) || !mw_uuid4_valid(id->valuestring, strlen(id->valuestring)) ||
        !cJSON_IsString(st) || mw_ticket_state_parse(st->valuestring, &t.state) != 0 ||
        (t.state != MW_TICKET_CANCELLED && t.state != MW_TICKET_EXPIRED) || !cJSON_IsNumber(ver) ||
        ver->valuedouble < 2 || ver->valuedouble > 9007199254740991.0 ||
        ver->valuedouble != (double)(uint64_t)ver->valuedouble)
        goto bad;
    memcpy(t.id, id->valuestring, MW_TICKET_ID_LEN + 1);
    t.version = (uint64_t)ver->valuedouble;
    call_ended(s, &t);
    goto out;
bad:
    if (mw_ratelimit_allow(&s->rl, mw__tsr_loop_ms(s)))
        mw_log(MW_LOG_WARN, "channel %s: dropped a malformed %zu-byte notice", s->ch_ended, len);
out:
    cJSON_Delete(root);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;

    (void)ac;
    if (!reply) {
        s->subscribed = false;
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    if (mw__tsr_str_is(reply->element[0], "message") &&
        reply->element[2]->type == REDIS_REPLY_STRING) {
        if (!s->closing)
            on_ended_notice(s, reply->element[2]->str, reply->element[2]->len);
    } else if (mw__tsr_str_is(reply->element[0], "subscribe")) {
        s->subscribed = true;
        if (s->hooks.on_resubscribed && !s->closing)
            s->hooks.on_resubscribed(s->hooks.ud);
    }
}

static void on_sub_ready(void *ud, struct mw_redis_conn *c)
{
    struct tsr *s = ud;
    redisAsyncContext *ac = mw_redis_conn_ctx(c);

    s->subscribed = false;
    if (!ac || redisAsyncCommand(ac, on_sub_reply, s, "SUBSCRIBE %s", s->ch_ended) != REDIS_OK)
        mw_log(MW_LOG_WARN, "ticket store: cannot send SUBSCRIBE %s", s->ch_ended);
}

/* ---- Lifetime --------------------------------------------------------------- */

/* Writes what the command connection still holds (the detaches of the
 * sessions closed at shutdown) before it is freed, which would drop it:
 * at most TSR_FLUSH_MS, blocking (teardown: the loop is done). */
static void flush_output(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    double until = ev_time() + TSR_FLUSH_MS / 1000.0;
    int done = 0;

    while (ac && !done && redisBufferWrite(&ac->c, &done) == REDIS_OK && !done) {
        struct pollfd pfd = {.fd = ac->c.fd, .events = POLLOUT};
        int left = (int)((until - ev_time()) * 1000.0);

        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
    }
}

static void tsr_destroy(void *impl)
{
    struct tsr *s = impl;

    if (!s)
        return;
    s->closing = true;
    ev_timer_stop(s->loop, &s->counts_timer);
    mw__tsr_feed_stop(s);
    mw__tsr_batches_flush(s); /* creates and assigns not sent yet: MW_ECLOSED */
    flush_output(s);
    /* Pending callbacks run now with NULL replies: MW_ECLOSED (closing). */
    mw_redis_conn_free(s->feed);
    mw_redis_conn_free(s->sub);
    mw_redis_conn_free(s->cmd);
    mw_free(s->ties);
    mw_free(s->owed);
    mw_free(s);
}

static const struct mw_ticket_store_ops tsr_ops = {
    .create = mw__tsr_create,
    .get = tsr_get,
    .cancel = tsr_cancel,
    .attach = tsr_attach,
    .detach = tsr_detach,
    .assign = mw__tsr_assign,
    .feed = mw__tsr_feed,
    .sweep = tsr_sweep,
    .counts = tsr_counts,
    .ready = tsr_ready,
    .destroy = tsr_destroy,
};

static bool key_name(char *out, const char *prefix, const char *name)
{
    int n = snprintf(out, TSR_KEY_MAX, "%s%s", prefix, name);

    return n > 0 && n < TSR_KEY_MAX;
}

int mw_ticket_store_redis_new(struct mw_ticket_store *out, const struct mw_ticket_store_config *cfg,
                              const struct mw_ticket_store_hooks *hooks, struct ev_loop *loop,
                              const struct mw_redis_opts *o, const char *consumer_name,
                              mw_random_fn rnd, void *rnd_ud)
{
    struct tsr *s;
    unsigned char nonce[16];
    int rc = MW_ENOMEM;

    if (!out || !loop || !o || !rnd)
        return MW_EINVAL;
    s = mw_calloc(1, sizeof(*s));
    if (!s)
        return MW_ENOMEM;
    if (hooks)
        s->hooks = *hooks;
    s->loop = loop;
    if (cfg)
        s->cfg = *cfg;
    if (s->cfg.ticket_ttl_ms <= 0)
        s->cfg.ticket_ttl_ms = TSR_DEFAULT_TTL_MS;
    if (s->cfg.assigned_ttl_ms <= 0)
        s->cfg.assigned_ttl_ms = TSR_DEFAULT_ATTL_MS;
    if (s->cfg.grace_ms <= 0)
        s->cfg.grace_ms = TSR_DEFAULT_GRACE_MS;
    if (s->cfg.max_tickets == 0)
        s->cfg.max_tickets = TSR_DEFAULT_MAX_TICKETS;
    s->opts = *o;
    s->opts.prefix[sizeof(s->opts.prefix) - 1] = '\0';
    s->rnd = rnd;
    s->rnd_ud = rnd_ud;
    rc = rnd(rnd_ud, nonce, sizeof(nonce));
    if (rc)
        goto out_free;
    for (size_t i = 0; i < sizeof(nonce); i++)
        snprintf(s->origin + 2 * i, 3, "%02x", nonce[i]);
    if (consumer_name && consumer_name[0])
        snprintf(s->consumer, sizeof(s->consumer), "%s", consumer_name);
    else
        snprintf(s->consumer, sizeof(s->consumer), "w-%.16s", s->origin);
    rc = MW_EINVAL;
    if (!key_name(s->k_lease, s->opts.prefix, "mw:worker:lease") ||
        !key_name(s->k_queue, s->opts.prefix, "mw:queue") ||
        !key_name(s->k_stream, s->opts.prefix, "mw:tickets") ||
        !key_name(s->k_counts, s->opts.prefix, "mw:counts") ||
        !key_name(s->k_deadlines, s->opts.prefix, "mw:deadlines") ||
        !key_name(s->ch_ended, s->opts.prefix, "matchmaking:ended"))
        goto out_free;
    snprintf(s->s_maxlen, sizeof(s->s_maxlen), "%zu", s->cfg.max_tickets);
    snprintf(s->s_ret, sizeof(s->s_ret), "%" PRId64, s->cfg.assigned_ttl_ms);
    mw_ratelimit_init(&s->rl, 5.0, 10.0);
    mw__tsr_feed_init(s);
    ev_timer_init(&s->counts_timer, on_counts_timer, 0.0, TSR_COUNTS_PERIOD_S);
    s->counts_timer.data = s;
    mw__tsr_batches_init(s, &mw__tsr_create_kind, &mw__tsr_assign_kind);
    rc = MW_ENOMEM;
    for (int i = 0; i < SC_COUNT; i++)
        s->scripts[i].s = s;
    s->cmd = mw_redis_conn_new(loop, &s->opts, "store", on_cmd_ready, NULL, s);
    s->sub = mw_redis_conn_new(loop, &s->opts, "store-sub", on_sub_ready, NULL, s);
    if (!s->cmd || !s->sub)
        goto out_free_conns;
    ev_timer_start(loop, &s->counts_timer);
    out->ops = &tsr_ops;
    out->impl = s;
    return 0;

out_free_conns:
    mw_redis_conn_free(s->sub);
    mw_redis_conn_free(s->cmd);
out_free:
    mw_free(s);
    return rc;
}
