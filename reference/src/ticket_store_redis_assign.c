/* ticket_store_redis_assign: the Redis ticket store's assignments
 * (spec/channel.md CHN-060..062): the matches a worker forms in one loop
 * turn go to Redis as one call of the assign script, each its own
 * compare-and-set with its own result; the script publishes each assigned
 * ticket's payload with its commit. Part of ticket_store_redis. */
#include "ticket_store_redis_assign.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "ticket_store_redis_create.h"

/* ---- Assign: the matches of one loop turn in one script call (CHN-060) ----
 * mw__tsr_assign() copies the match into the open batch; the batch goes out at
 * the end of the loop turn (ev_prepare; an ev_idle keeps the poll from
 * blocking when the assign came from another prepare callback), so the
 * matches a worker forms from one stream read cost Redis one EVALSHA, not
 * one each. Each match keeps its own compare-and-set and its own callback,
 * called in the order of the assign calls. */

/* Calls p's callback with the result of its match, from its part r of the
 * reply: -1 committed, else the index of the first ticket that failed the
 * compare-and-set. The script returns nothing the worker knows: the
 * tickets the callback gets are built from the match kept in p. */
static void batch_answer(struct tsr *s, struct pend *p, const redisReply *r)
{
    struct mw_assign_result res = {0};
    struct mw_ticket ts[MW_MATCH_SIZE_MAX];
    size_t off = 0;

    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < -1 || r->integer >= (long long)p->n) {
        res.status = mw__tsr_reply_failure(s, r, "assign");
        p->cb(p->ud, &res);
        return;
    }
    if (r->integer >= 0) {
        res.status = MW_ESTATE;
        res.failed = (size_t)r->integer;
        p->cb(p->ud, &res);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        struct mw_ticket *t = &ts[i];

        /* What an assigned ticket's reader needs; the rest stays empty. */
        memcpy(t->id, p->ids[i], sizeof(t->id));
        t->queue[0] = t->player_id[0] = t->region[0] = t->idem_key[0] = '\0';
        t->has_idem_key = false;
        t->state = MW_TICKET_ASSIGNED;
        t->version = p->versions[i];
        t->created_ms = t->expires_ms = 0;
        t->ended_ms = p->at;
        t->attributes_json = NULL;
        t->assigned_envelope = p->env + off;
        t->assigned_envelope_len = p->env_len[i];
        t->replayed = false;
        off += p->env_len[i] + 1;
    }
    res.n = p->n;
    res.tickets = ts;
    res.published = true; /* by the script, with the commit (CHN-062) */
    p->cb(p->ud, &res);
}

static void batch_fail(struct pend *p, int status)
{
    struct mw_assign_result res = {.status = status};

    p->cb(p->ud, &res);
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->k; i++)
        mw_free(b->p[i]);
    mw_free(b);
}

static void on_batch_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct batch *b = privdata;
    struct tsr *s = b->s;
    const redisReply *reply = r;
    bool each = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == b->k;

    (void)ac;
    s->inflight -= b->k;
    for (size_t i = 0; i < b->k; i++)
        batch_answer(s, b->p[i], each ? reply->element[i] : reply);
    batch_free(b);
}

/* A batch's script arguments: sized for the batch (struct args is for one
 * match). */
struct bargs {
    const char **v;
    size_t *l;
    char (*num)[24];
    int n;
    size_t ni;
};

static void barg(struct bargs *a, const char *str, size_t len)
{
    a->v[a->n] = str;
    a->l[a->n++] = len;
}

static void barg_int(struct bargs *a, int64_t x)
{
    int n = snprintf(a->num[a->ni], sizeof(a->num[a->ni]), "%" PRId64, x);

    barg(a, a->num[a->ni++], n > 0 ? (size_t)n : 0);
}

/* Sends batch b as one script call; 0, or an error (b untouched). */
static int batch_send(struct tsr *s, struct batch *b)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    size_t argc = 7, nums = 2;
    struct bargs a = {0};
    int rc = MW_ENOMEM;

    if (s->closing)
        return MW_ECLOSED;
    if (!ac)
        return MW_EUNAVAIL;
    for (size_t i = 0; i < b->k; i++) {
        argc += 3 + 3 * b->p[i]->n;
        nums += 2 + b->p[i]->n;
    }
    a.v = mw_malloc(argc * sizeof(*a.v));
    a.l = mw_malloc(argc * sizeof(*a.l));
    a.num = mw_malloc(nums * sizeof(*a.num));
    if (!a.v || !a.l || !a.num)
        goto out;
    /* As args_script(): numkeys, prefix, maxlen, retention, origin, now. */
    barg(&a, "0", 1);
    barg(&a, s->opts.prefix, strlen(s->opts.prefix));
    barg(&a, s->s_maxlen, strlen(s->s_maxlen));
    barg(&a, s->s_ret, strlen(s->s_ret));
    barg(&a, s->origin, strlen(s->origin));
    barg_int(&a, b->p[0]->at);
    barg_int(&a, (int64_t)b->k);
    for (size_t i = 0; i < b->k; i++) {
        const struct pend *p = b->p[i];
        size_t off = 0;

        barg_int(&a, (int64_t)p->n);
        barg(&a, p->match_id, strlen(p->match_id));
        barg_int(&a, p->at);
        for (size_t j = 0; j < p->n; j++) {
            barg(&a, p->ids[j], strlen(p->ids[j]));
            barg_int(&a, (int64_t)p->versions[j]);
            barg(&a, p->env + off, p->env_len[j]);
            off += p->env_len[j] + 1;
        }
    }
    rc = mw__tsr_script_send(s, ac, SC_ASSIGN, a.n, a.v, a.l, on_batch_reply, b);
out:
    mw_free(a.v);
    mw_free(a.l);
    mw_free(a.num);
    return rc;
}

/* Sends every batch (end of the loop turn); a batch that cannot go out
 * fails each of its assigns (their callbacks run here, never inside the
 * assign call). */
void mw__tsr_assign_flush(struct tsr *s)
{
    struct batch *b = s->batch_head;

    s->batch_head = s->batch_tail = NULL;
    while (b) {
        struct batch *next = b->next;
        int rc = batch_send(s, b);

        if (rc) {
            s->inflight -= b->k;
            for (size_t i = 0; i < b->k; i++)
                batch_fail(b->p[i], rc);
            batch_free(b);
        }
        b = next;
    }
}

/* (ticket_store_redis_int.h) */
void mw__tsr_batches_flush(struct tsr *s)
{
    ev_prepare_stop(s->loop, &s->batch_prepare);
    ev_idle_stop(s->loop, &s->batch_idle);
    mw__tsr_create_flush(s);
    mw__tsr_assign_flush(s);
}

/* (ticket_store_redis_int.h) */
void mw__tsr_batches_arm(struct tsr *s)
{
    if (!ev_is_active(&s->batch_prepare)) {
        ev_prepare_start(s->loop, &s->batch_prepare);
        ev_idle_start(s->loop, &s->batch_idle);
    }
}

static void on_batch_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    mw__tsr_batches_flush(w->data);
}

static void on_batch_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)revents;
    mw__tsr_batches_flush(w->data);
}

int mw__tsr_assign(void *impl, const struct mw_match *m, mw_assign_cb cb, void *ud)
{
    struct tsr *s = impl;
    struct batch *b;
    struct pend *p;
    size_t total = 0, off = 0;

    if (!m || !cb || m->n == 0 || m->n > MW_MATCH_SIZE_MAX)
        return MW_EINVAL;
    for (size_t i = 0; i < m->n; i++) {
        if (!m->envelopes[i] || m->envelope_lens[i] == 0 || m->versions[i] < 2)
            return MW_EINVAL;
        total += m->envelope_lens[i];
    }
    if (s->closing)
        return MW_ECLOSED;
    if (!mw_redis_conn_ctx(s->cmd))
        return MW_EUNAVAIL;
    if (s->inflight >= TSR_MAX_INFLIGHT)
        return MW_ELIMIT;
    b = s->batch_tail;
    if (!b || b->k == TSR_BATCH_MAX) {
        b = mw_calloc(1, sizeof(*b));
        if (!b)
            return MW_ENOMEM;
        b->s = s;
    }
    p = mw_malloc(sizeof(*p) + total + m->n); /* each envelope NUL-terminated */
    if (!p) {
        if (b != s->batch_tail)
            mw_free(b);
        return MW_ENOMEM;
    }
    p->cb = cb;
    p->ud = ud;
    p->at = m->assigned_ms;
    p->n = m->n;
    memcpy(p->match_id, m->match_id, sizeof(p->match_id));
    p->match_id[MW_MATCH_ID_LEN] = '\0';
    for (size_t i = 0; i < m->n; i++) {
        memcpy(p->ids[i], m->ticket_ids[i], sizeof(p->ids[i]));
        p->ids[i][MW_TICKET_ID_LEN] = '\0';
        p->versions[i] = m->versions[i];
        p->env_len[i] = m->envelope_lens[i];
        memcpy(p->env + off, m->envelopes[i], m->envelope_lens[i]);
        off += m->envelope_lens[i];
        p->env[off++] = '\0';
    }
    if (b != s->batch_tail) {
        if (s->batch_tail)
            s->batch_tail->next = b;
        else
            s->batch_head = b;
        s->batch_tail = b;
    }
    b->p[b->k++] = p;
    s->inflight++;
    mw__tsr_batches_arm(s);
    return 0;
}

void mw__tsr_assign_init(struct tsr *s)
{
    ev_prepare_init(&s->batch_prepare, on_batch_prepare);
    s->batch_prepare.data = s;
    ev_idle_init(&s->batch_idle, on_batch_idle);
    s->batch_idle.data = s;
}
