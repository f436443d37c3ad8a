/* ticket_store_redis_create: the Redis ticket store's creates
 * (spec/channel.md CHN-050, CHN-051): the creates of one loop turn go to
 * Redis as one call of the create script, each handled on its own with its
 * own result. The script answers a new ticket with CREATED alone: the
 * caller already knows every field it wrote, so the ticket the callback
 * gets is the one kept here, not one read back from Redis. Part of
 * ticket_store_redis. */
#include "ticket_store_redis_create.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

/* A batch's script arguments, sized for the batch. */
struct cargs {
    const char **v;
    size_t *l;
    char (*num)[24];
    int n;
    size_t ni;
};

static void ca_add(struct cargs *a, const char *str, size_t len)
{
    a->v[a->n] = str;
    a->l[a->n++] = len;
}

static void ca_str(struct cargs *a, const char *str)
{
    ca_add(a, str, strlen(str));
}

static void ca_int(struct cargs *a, int64_t x)
{
    int n = snprintf(a->num[a->ni], sizeof(a->num[a->ni]), "%" PRId64, x);

    ca_add(a, a->num[a->ni++], n > 0 ? (size_t)n : 0);
}

static void cbatch_free(struct cbatch *b)
{
    for (size_t i = 0; i < b->k; i++)
        mw_free(b->p[i]);
    mw_free(b);
}

/* Calls p's callback with the result r of its create (one element of the
 * batch's reply, or the whole reply when it is not one result per
 * create: NULL when the connection dropped, an error). */
static void answer(struct tsr *s, struct cpend *p, const redisReply *r, bool each)
{
    struct mw_ticket t;
    int rc;

    if (each && mw__tsr_str_is(r, "CREATED")) {
        p->cb(p->ud, 0, &p->t);
        return;
    }
    if (each && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        mw__tsr_str_is(r->element[0], "EXISTING")) {
        /* The idempotency rule (MSG-026): the ticket as Redis holds it. */
        rc = mw__tsr_ticket_from_reply(&t, r->element[1]);
        if (rc == 0) {
            t.replayed = true;
            p->cb(p->ud, 0, &t);
            mw_ticket_clear(&t);
            return;
        }
        p->cb(p->ud, rc == MW_ENOTFOUND ? MW_EIO : rc, NULL);
        return;
    }
    if (each && mw__tsr_str_is(r, "LIMIT")) {
        p->cb(p->ud, MW_ELIMIT, NULL);
        return;
    }
    if (each && mw__tsr_str_is(r, "DUPID")) {
        p->cb(p->ud, MW_EIO, NULL); /* a repeating random source */
        return;
    }
    /* No reply (the connection dropped or stalled), an error reply (a
     * script error may stop a batch midway, after earlier creates were
     * written), or anything else: the create may have run and counted a watcher
     * that no connection holds (CHN-074). For an id that was never
     * created the detach finds no hash and changes nothing. */
    if (p->watched && !s->closing)
        mw__tsr_owe_detach(s, p->t.id);
    p->cb(p->ud, mw__tsr_reply_failure(s, r, "create"), NULL);
}

static void on_cbatch_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct cbatch *b = privdata;
    struct tsr *s = b->s;
    const redisReply *reply = r;
    bool each = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == b->k;

    (void)ac;
    s->inflight -= b->k;
    for (size_t i = 0; i < b->k; i++)
        answer(s, b->p[i], each ? reply->element[i] : reply, each);
    cbatch_free(b);
}

/* Sends batch b as one script call; 0, or an error (b untouched). */
static int cbatch_send(struct tsr *s, struct cbatch *b)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    size_t argc = 9 + 11 * b->k, nums = 4 + 2 * b->k;
    struct cargs a = {0};
    int rc = MW_ENOMEM;

    if (s->closing)
        return MW_ECLOSED;
    if (!ac)
        return MW_EUNAVAIL;
    a.v = mw_malloc(argc * sizeof(*a.v));
    a.l = mw_malloc(argc * sizeof(*a.l));
    a.num = mw_malloc(nums * sizeof(*a.num));
    if (!a.v || !a.l || !a.num)
        goto out;
    /* As args_script(): numkeys, prefix, maxlen, retention, origin, now. */
    ca_add(&a, "0", 1);
    ca_str(&a, s->opts.prefix);
    ca_str(&a, s->s_maxlen);
    ca_str(&a, s->s_ret);
    ca_str(&a, s->origin);
    ca_int(&a, b->p[0]->t.created_ms);
    ca_int(&a, s->cfg.ticket_ttl_ms + s->cfg.assigned_ttl_ms);
    ca_int(&a, (int64_t)s->cfg.max_tickets);
    ca_int(&a, (int64_t)b->k);
    for (size_t i = 0; i < b->k; i++) {
        const struct cpend *p = b->p[i];
        const struct mw_ticket *t = &p->t;

        ca_str(&a, t->id);
        ca_str(&a, t->queue);
        ca_str(&a, t->player_id);
        ca_str(&a, t->region);
        ca_str(&a, t->has_idem_key ? "1" : "0");
        ca_str(&a, t->has_idem_key ? t->idem_key : "");
        ca_int(&a, t->created_ms);
        ca_int(&a, t->expires_ms);
        ca_str(&a, t->attributes_json ? "1" : "0");
        ca_str(&a, t->attributes_json ? t->attributes_json : "");
        ca_str(&a, p->watched ? "1" : "0");
    }
    rc = mw__tsr_script_send(s, ac, SC_CREATE, a.n, a.v, a.l, on_cbatch_reply, b);
out:
    mw_free(a.v);
    mw_free(a.l);
    mw_free(a.num);
    return rc;
}

/* (ticket_store_redis_create.h) */
void mw__tsr_create_flush(struct tsr *s)
{
    struct cbatch *b = s->cbatch_head;

    s->cbatch_head = s->cbatch_tail = NULL;
    while (b) {
        struct cbatch *next = b->next;
        int rc = cbatch_send(s, b);

        if (rc) {
            /* Never sent: nothing ran, nothing is owed. */
            s->inflight -= b->k;
            for (size_t i = 0; i < b->k; i++)
                b->p[i]->cb(b->p[i]->ud, rc, NULL);
            cbatch_free(b);
        }
        b = next;
    }
}

/* (ticket_store_redis_create.h) */
int mw__tsr_create(void *impl, const struct mw_enqueue_req *req, int64_t now_ms, char *id_out,
                   mw_ticket_cb cb, void *ud)
{
    struct tsr *s = impl;
    size_t alen;
    struct cbatch *b;
    struct cpend *p;
    char id[MW_TICKET_ID_LEN + 1];
    int rc;

    if (!req || !cb)
        return MW_EINVAL;
    if (s->closing)
        return MW_ECLOSED;
    if (!mw_redis_conn_ready(s->cmd))
        return MW_EUNAVAIL;
    if (s->inflight >= TSR_MAX_INFLIGHT)
        return MW_ELIMIT;
    rc = mw_uuid4(s->rnd, s->rnd_ud, id);
    if (rc)
        return rc;
    alen = req->attributes_json ? strlen(req->attributes_json) + 1 : 0;
    b = s->cbatch_tail;
    if (!b || b->k == TSR_BATCH_MAX) {
        b = mw_calloc(1, sizeof(*b));
        if (!b)
            return MW_ENOMEM;
        b->s = s;
    }
    p = mw_malloc(sizeof(*p) + alen);
    if (!p) {
        if (b != s->cbatch_tail)
            mw_free(b);
        return MW_ENOMEM;
    }
    p->cb = cb;
    p->ud = ud;
    p->watched = req->watched;
    /* The ticket exactly as the script writes it (CHN-040, CHN-050). */
    memset(&p->t, 0, sizeof(p->t));
    memcpy(p->t.id, id, sizeof(p->t.id));
    snprintf(p->t.queue, sizeof(p->t.queue), "%s", req->queue);
    snprintf(p->t.player_id, sizeof(p->t.player_id), "%s", req->player_id);
    snprintf(p->t.region, sizeof(p->t.region), "%s", req->region);
    if (req->has_idem_key) {
        snprintf(p->t.idem_key, sizeof(p->t.idem_key), "%s", req->idem_key);
        p->t.has_idem_key = true;
    }
    p->t.state = MW_TICKET_QUEUED;
    p->t.version = 1;
    p->t.created_ms = now_ms;
    p->t.expires_ms = now_ms + s->cfg.ticket_ttl_ms;
    if (alen) {
        memcpy(p->attrs, req->attributes_json, alen);
        p->t.attributes_json = p->attrs;
    }
    if (b != s->cbatch_tail) {
        if (s->cbatch_tail)
            s->cbatch_tail->next = b;
        else
            s->cbatch_head = b;
        s->cbatch_tail = b;
    }
    b->p[b->k++] = p;
    s->inflight++;
    mw__tsr_batches_arm(s);
    if (id_out)
        memcpy(id_out, id, sizeof(id));
    return 0;
}
