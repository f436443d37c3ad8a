/* ticket_store_redis_create: the Redis ticket store's creates
 * (spec/channel.md CHN-050, CHN-051): the creates of one loop turn go to
 * Redis as one call of the create script, each handled on its own with its
 * own result. The script answers a new ticket with CREATED alone: the
 * caller already knows every field it wrote, so the ticket the callback
 * gets is the one kept here, not one read back from Redis. Part of
 * ticket_store_redis. */
#include "ticket_store_redis_create.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "ticket_store_redis_batch.h"

/* Calls p's callback with the result r of its create (one element of the
 * batch's reply, or the whole reply when it is not one result per
 * create: NULL when the connection dropped, an error). */
static void answer(struct tsr *s, void *item, const redisReply *r, bool each)
{
    struct cpend *p = item;
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

/* Sends batch b as one script call; 0, or an error (b untouched). */
static int cbatch_send(struct tsr *s, struct tsr_batch *b)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->cmd);
    struct tsr_args a;
    int rc;

    if (s->closing)
        return MW_ECLOSED;
    if (!ac)
        return MW_EUNAVAIL;
    if (mw__tsr_args_reserve(&a, TSR_ARGS_SCRIPT_HEAD + 3 + 11 * b->k, 4 + 2 * b->k) != 0)
        return MW_ENOMEM;
    mw__tsr_args_script(&a, s, ((const struct cpend *)b->p[0])->t.created_ms);
    mw__tsr_args_int(&a, s->cfg.ticket_ttl_ms + s->cfg.assigned_ttl_ms);
    mw__tsr_args_int(&a, (int64_t)s->cfg.max_tickets);
    mw__tsr_args_int(&a, (int64_t)b->k);
    for (size_t i = 0; i < b->k; i++) {
        const struct cpend *p = b->p[i];
        const struct mw_ticket *t = &p->t;

        mw__tsr_args_str(&a, t->id);
        mw__tsr_args_str(&a, t->queue);
        mw__tsr_args_str(&a, t->player_id);
        mw__tsr_args_str(&a, t->region);
        mw__tsr_args_str(&a, t->has_idem_key ? "1" : "0");
        mw__tsr_args_str(&a, t->has_idem_key ? t->idem_key : "");
        mw__tsr_args_int(&a, t->created_ms);
        mw__tsr_args_int(&a, t->expires_ms);
        mw__tsr_args_str(&a, t->attributes_json ? "1" : "0");
        mw__tsr_args_str(&a, t->attributes_json ? t->attributes_json : "");
        mw__tsr_args_str(&a, p->watched ? "1" : "0");
    }
    rc = mw__tsr_script_send(s, ac, SC_CREATE, a.n, a.v, a.l, mw__tsr_batch_on_reply, b);
    mw__tsr_args_release(&a);
    return rc;
}

/* A create that never went out: nothing ran, nothing is owed. */
static void cbatch_fail(struct tsr *s, void *item, int status)
{
    struct cpend *p = item;

    (void)s;
    p->cb(p->ud, status, NULL);
}

const struct tsr_batch_kind mw__tsr_create_kind = {
    .send = cbatch_send, .answer = answer, .fail = cbatch_fail};

/* (ticket_store_redis_create.h) */
int mw__tsr_create(void *impl, const struct mw_enqueue_req *req, int64_t now_ms, char *id_out,
                   mw_ticket_cb cb, void *ud)
{
    struct tsr *s = impl;
    size_t alen;
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
    p = mw_malloc(sizeof(*p) + alen);
    if (!p)
        return MW_ENOMEM;
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
    if (mw__tsr_batch_add(s, &s->creates, p) != 0) {
        mw_free(p);
        return MW_ENOMEM;
    }
    if (id_out)
        memcpy(id_out, id, sizeof(id));
    return 0;
}
