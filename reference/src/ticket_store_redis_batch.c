/* ticket_store_redis_batch: the end-of-turn batching of the Redis ticket
 * store (ticket_store_redis_batch.h). Part of ticket_store_redis. */
#include "ticket_store_redis_batch.h"

#include "alloc.h"
#include "error.h"
#include "invariant.h"

static void batch_free(struct tsr_batch *b)
{
    for (size_t i = 0; i < b->k; i++)
        mw_free(b->p[i]);
    mw_free(b);
}

/* (ticket_store_redis_batch.h) */
void mw__tsr_batch_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr_batch *b = privdata;
    struct tsr *s = b->s;
    const redisReply *reply = r;
    bool each = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == b->k;

    (void)ac;
    MW_ASSERT(s->inflight >= b->k);
    s->inflight -= b->k;
    for (size_t i = 0; i < b->k; i++)
        b->kind->answer(s, b->p[i], each ? reply->element[i] : reply, each);
    batch_free(b);
}

static void arm(struct tsr *s)
{
    if (!ev_is_active(&s->batch_prepare)) {
        ev_prepare_start(s->loop, &s->batch_prepare);
        ev_idle_start(s->loop, &s->batch_idle);
    }
}

/* (ticket_store_redis_batch.h) */
int mw__tsr_batch_add(struct tsr *s, struct tsr_batchq *q, void *item)
{
    struct tsr_batch *b = q->tail;

    if (!b || b->k == TSR_BATCH_MAX) {
        b = mw_calloc(1, sizeof(*b));
        if (!b)
            return MW_ENOMEM;
        b->s = s;
        b->kind = q->kind;
        if (q->tail)
            q->tail->next = b;
        else
            q->head = b;
        q->tail = b;
    }
    b->p[b->k++] = item;
    s->inflight++;
    arm(s);
    return 0;
}

static void queue_flush(struct tsr *s, struct tsr_batchq *q)
{
    struct tsr_batch *b = q->head;

    q->head = q->tail = NULL;
    while (b) {
        struct tsr_batch *next = b->next;
        int rc;

        MW_ASSERT(b->k > 0 && b->k <= TSR_BATCH_MAX);
        b->next = NULL;
        rc = q->kind->send(s, b);
        if (rc) {
            /* Never sent: nothing ran, nothing is owed. */
            MW_ASSERT(s->inflight >= b->k);
            s->inflight -= b->k;
            for (size_t i = 0; i < b->k; i++)
                q->kind->fail(s, b->p[i], rc);
            batch_free(b);
        }
        b = next;
    }
}

/* (ticket_store_redis_batch.h) */
void mw__tsr_batches_flush(struct tsr *s)
{
    ev_prepare_stop(s->loop, &s->batch_prepare);
    ev_idle_stop(s->loop, &s->batch_idle);
    queue_flush(s, &s->creates);
    queue_flush(s, &s->assigns);
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

/* (ticket_store_redis_batch.h) */
void mw__tsr_batches_init(struct tsr *s, const struct tsr_batch_kind *creates,
                          const struct tsr_batch_kind *assigns)
{
    s->creates = (struct tsr_batchq){.kind = creates};
    s->assigns = (struct tsr_batchq){.kind = assigns};
    ev_prepare_init(&s->batch_prepare, on_batch_prepare);
    s->batch_prepare.data = s;
    ev_idle_init(&s->batch_idle, on_batch_idle);
    s->batch_idle.data = s;
}
