/* ticket_store_redis_assign: the Redis ticket store's assignments
 * (spec/channel.md CHN-060..062): the matches a worker forms in one loop
 * turn go to Redis as one call of the assign script, each its own
 * compare-and-set with its own result; the script publishes each assigned
 * ticket's payload with its commit. Part of ticket_store_redis. */
#include "ticket_store_redis_assign.h"

#include <string.h>

#include "alloc.h"
#include "error.h"
#include "ticket_store_redis_batch.h"

/* Calls p's callback with the result of its match, from its part r of the
 * reply: -1 committed, else the index of the first ticket that failed the
 * compare-and-set. The script returns nothing the worker knows: the
 * tickets the callback gets are built from the match kept in p. */
static void batch_answer(struct tsr *s, void *item, const redisReply *r, bool each)
{
    struct pend *p = item;
    struct mw_assign_result res = {0};
    struct mw_ticket ts[MW_MATCH_SIZE_MAX];
    size_t off = 0;

    if (!each || !r || r->type != REDIS_REPLY_INTEGER || r->integer < -1 ||
        r->integer >= (long long)p->n) {
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

/* Sends batch b as one script call; 0, or an error (b untouched). */
static int batch_send(struct tsr *s, struct tsr_batch *b)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    size_t argc = TSR_ARGS_SCRIPT_HEAD + 1, nums = 2;
    struct tsr_args a;
    int rc;

    if (s->closing)
        return MW_ECLOSED;
    if (!ac)
        return MW_EUNAVAIL;
    for (size_t i = 0; i < b->k; i++) {
        const struct pend *p = b->p[i];

        argc += 3 + 3 * p->n;
        nums += 2 + p->n;
    }
    if (mw__tsr_args_reserve(&a, argc, nums) != 0)
        return MW_ENOMEM;
    mw__tsr_args_script(&a, s, ((const struct pend *)b->p[0])->at);
    mw__tsr_args_int(&a, (int64_t)b->k);
    for (size_t i = 0; i < b->k; i++) {
        const struct pend *p = b->p[i];
        size_t off = 0;

        mw__tsr_args_int(&a, (int64_t)p->n);
        mw__tsr_args_str(&a, p->match_id);
        mw__tsr_args_int(&a, p->at);
        for (size_t j = 0; j < p->n; j++) {
            mw__tsr_args_str(&a, p->ids[j]);
            mw__tsr_args_int(&a, (int64_t)p->versions[j]);
            mw__tsr_args_add(&a, p->env + off, p->env_len[j]);
            off += p->env_len[j] + 1;
        }
    }
    rc = mw__tsr_script_send(s, ac, SC_ASSIGN, a.n, a.v, a.l, mw__tsr_batch_on_reply, b);
    mw__tsr_args_release(&a);
    return rc;
}

/* An assign that never went out: nothing ran. */
static void batch_fail(struct tsr *s, void *item, int status)
{
    struct pend *p = item;
    struct mw_assign_result res = {.status = status};

    (void)s;
    p->cb(p->ud, &res);
}

const struct tsr_batch_kind mw__tsr_assign_kind = {
    .send = batch_send, .answer = batch_answer, .fail = batch_fail};

/* (ticket_store_redis_assign.h) */
int mw__tsr_assign(void *impl, const struct mw_match *m, mw_assign_cb cb, void *ud)
{
    struct tsr *s = impl;
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
    p = mw_malloc(sizeof(*p) + total + m->n); /* each envelope NUL-terminated */
    if (!p)
        return MW_ENOMEM;
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
    if (mw__tsr_batch_add(s, &s->assigns, p) != 0) {
        mw_free(p);
        return MW_ENOMEM;
    }
    return 0;
}
