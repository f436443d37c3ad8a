/* channel_redis: the channel over Redis pub/sub (spec/channel.md, CHN-030..033).
 *
 * Two connections: a command connection that PUBLISHes, made at creation,
 * and a subscriber connection, made on the first subscribe(), that holds
 * SUBSCRIBE <prefix>matchmaking:assigned and fans every valid message out to
 * all local subscribers. Every SUBSCRIBE confirmation (the first one and each
 * one after a reconnect) fires on_resubscribed, so the owner re-reads its
 * watched tickets (CHN-023): pub/sub is at most once, the store is the
 * truth. A frozen Redis is found on the subscriber connection too, though it
 * waits for no reply: redis_conn probes a quiet subscribed connection and
 * resets it when Redis does not answer in time (CHN-104, CHN-105); the
 * reconnect subscribes again and fires on_resubscribed. */
#include "channel_redis.h"

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "log.h"
#include "ratelimit.h"

#define CHR_MAX_SUBSCRIBERS 64        /* subscribe beyond: MW_ELIMIT */
#define CHR_MAX_INFLIGHT    65536     /* publishes awaiting Redis' reply; beyond: MW_ELIMIT */
#define CHR_NAME_MAX        (64 + 32) /* prefix + "matchmaking:assigned" */
/* Drop logging: at most 5 lines a second, bursts of 10 (CHN-013). */
#define CHR_LOG_PER_SEC 5.0
#define CHR_LOG_BURST   10.0

struct chr_sub {
    mw_channel_cb cb;
    void *ud;
};

struct chr {
    struct ev_loop *loop;
    struct mw_redis_opts opts;
    struct mw_metrics *metrics;    /* borrowed, may be NULL */
    struct mw_channel_hooks hooks; /* the owner's, copied */
    bool closing;
    char channel[CHR_NAME_MAX];
    size_t channel_len;

    struct mw_redis_conn *cmd; /* PUBLISH */
    struct mw_redis_conn *sub; /* SUBSCRIBE, NULL until the first subscriber */
    bool subscribed;           /* a SUBSCRIBE confirmation since the last (re)connect */
    uint64_t subscriptions;    /* confirmations seen (1 + reconnects) */

    struct chr_sub subs[CHR_MAX_SUBSCRIBERS];
    size_t n_subs;
    size_t inflight;   /* PUBLISH commands not yet answered */
    struct mw_buf pub; /* payload scratch, reused */
    struct mw_ratelimit drop_rl;
    uint64_t drops; /* all reasons, for the log line */
};

/* ---- Receive -------------------------------------------------------------- */

static int64_t loop_ms(const struct chr *c)
{
    return (int64_t)(ev_now(c->loop) * 1000.0);
}

static void count_drop(struct chr *c, enum mw_drop_reason why, size_t len)
{
    if (why <= MW_DROP_NONE || why >= MW_DROP__COUNT)
        why = MW_DROP_BAD_PAYLOAD;
    c->drops++;
    if (c->metrics)
        c->metrics->channel_drops[why]++;
    if (mw_ratelimit_allow(&c->drop_rl, loop_ms(c))) {
        mw_log(MW_LOG_WARN, "channel %s: dropped a %zu-byte payload: %s (%llu dropped in all)",
               c->channel, len, mw_drop_reason_name(why), (unsigned long long)c->drops);
    }
}

static void deliver(struct chr *c, const char *payload, size_t len)
{
    struct mw_assigned_owned owned;
    struct mw_assigned view;
    enum mw_drop_reason why = MW_DROP_NONE;
    size_t n;
    int rc;

    rc = mw_channel_payload_decode(payload, len, &owned, &why);
    if (rc == MW_ENOMEM) {
        if (mw_ratelimit_allow(&c->drop_rl, loop_ms(c)))
            mw_log(MW_LOG_ERR, "channel %s: out of memory decoding a payload", c->channel);
        return;
    }
    if (rc) {
        count_drop(c, why, len);
        return;
    }
    mw_assigned_view(&owned, &view);
    /* A subscriber may add subscribers while we deliver: they start with
     * the next message. */
    n = c->n_subs;
    for (size_t i = 0; i < n; i++)
        c->subs[i].cb(c->subs[i].ud, &view);
    mw_assigned_owned_clear(&owned);
}

static bool str_is(const redisReply *r, const char *s)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

/* hiredis calls this for the SUBSCRIBE confirmation, for every message on
 * the channel, and with NULL when the connection goes away. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct chr *c = privdata;
    redisReply *reply = r;

    (void)ac;
    if (!reply) {
        c->subscribed = false;
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    if (str_is(reply->element[0], "message")) {
        const redisReply *p = reply->element[2];

        if (p->type != REDIS_REPLY_STRING) {
            count_drop(c, MW_DROP_BAD_PAYLOAD, 0);
            return;
        }
        deliver(c, p->str, p->len);
    } else if (str_is(reply->element[0], "subscribe")) {
        c->subscribed = true;
        c->subscriptions++;
        mw_log(MW_LOG_NOTICE, "channel %s: subscribed (%llu)", c->channel,
               (unsigned long long)c->subscriptions);
        if (c->hooks.on_resubscribed && !c->closing)
            c->hooks.on_resubscribed(c->hooks.ud);
    }
}

static void on_sub_ready(void *ud, struct mw_redis_conn *conn)
{
    struct chr *c = ud;
    redisAsyncContext *ac = mw_redis_conn_ctx(conn);

    c->subscribed = false;
    if (!ac || redisAsyncCommand(ac, on_sub_reply, c, "SUBSCRIBE %b", c->channel, c->channel_len) !=
                   REDIS_OK) {
        /* The context is already going away; the next ready retries. */
        mw_log(MW_LOG_WARN, "channel %s: cannot send SUBSCRIBE", c->channel);
    }
}

static void on_sub_lost(void *ud, struct mw_redis_conn *conn)
{
    struct chr *c = ud;

    (void)conn;
    c->subscribed = false;
}

/* ---- Publish -------------------------------------------------------------- */

static void on_publish_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct chr *c = privdata;
    redisReply *reply = r;

    (void)ac;
    if (c->inflight > 0)
        c->inflight--;
    if (reply && reply->type == REDIS_REPLY_ERROR && mw_ratelimit_allow(&c->drop_rl, loop_ms(c)))
        mw_log(MW_LOG_WARN, "channel %s: PUBLISH failed: %s", c->channel, reply->str);
}

static int chr_publish(void *impl, const struct mw_assigned *msg)
{
    struct chr *c = impl;
    redisAsyncContext *ac = mw_redis_conn_ctx(c->cmd);
    int rc;

    if (!msg || !msg->ticket_id || !msg->envelope)
        return MW_EINVAL;
    if (!ac)
        return MW_EUNAVAIL; /* CHN-033: the store already holds the assignment */
    if (c->inflight >= CHR_MAX_INFLIGHT)
        return MW_ELIMIT;
    mw_buf_reset(&c->pub);
    rc = mw_channel_payload_encode(&c->pub, msg);
    if (rc)
        return rc;
    if (redisAsyncCommand(ac, on_publish_reply, c, "PUBLISH %b %b", c->channel, c->channel_len,
                          c->pub.data, c->pub.len) != REDIS_OK)
        return MW_EUNAVAIL;
    c->inflight++;
    return 0;
}

/* ---- Subscribe, destroy ---------------------------------------------------- */

static int chr_subscribe(void *impl, mw_channel_cb cb, void *userdata)
{
    struct chr *c = impl;

    if (!cb)
        return MW_EINVAL;
    if (c->n_subs == CHR_MAX_SUBSCRIBERS)
        return MW_ELIMIT;
    if (!c->sub) {
        c->sub = mw_redis_conn_new(c->loop, &c->opts, "sub", on_sub_ready, on_sub_lost, c);
        if (!c->sub)
            return MW_ENOMEM;
    }
    c->subs[c->n_subs].cb = cb;
    c->subs[c->n_subs].ud = userdata;
    c->n_subs++;
    return 0;
}

static void chr_destroy(void *impl)
{
    struct chr *c = impl;

    if (!c)
        return;
    c->closing = true;
    /* Connections first: their pending callbacks (NULL replies) still find c. */
    mw_redis_conn_free(c->sub);
    mw_redis_conn_free(c->cmd);
    mw_buf_release(&c->pub);
    mw_free(c);
}

static int chr_ready(void *impl, char *reason, size_t reason_len)
{
    const struct chr *c = impl;
    const char *why = NULL;

    if (!mw_redis_conn_ready(c->cmd))
        why = mw_redis_conn_error(c->cmd);
    else if (c->n_subs > 0 && !mw_redis_conn_ready(c->sub))
        why = mw_redis_conn_error(c->sub);
    else if (c->n_subs > 0 && !c->subscribed)
        why = "redis: subscription pending";
    if (!why) {
        if (reason && reason_len)
            reason[0] = '\0';
        return 0;
    }
    if (reason && reason_len)
        snprintf(reason, reason_len, "redis channel: %s", why);
    return MW_EUNAVAIL;
}

static const struct mw_channel_ops chr_ops = {
    .publish = chr_publish,
    .subscribe = chr_subscribe,
    .ready = chr_ready,
    .destroy = chr_destroy,
};

int mw_channel_redis_new(struct mw_channel *out, const struct mw_channel_hooks *hooks,
                         struct ev_loop *loop, const struct mw_redis_opts *o,
                         struct mw_metrics *metrics)
{
    struct chr *c;
    int n;

    if (!out || !loop || !o)
        return MW_EINVAL;
    c = mw_calloc(1, sizeof(*c));
    if (!c)
        return MW_ENOMEM;
    c->loop = loop;
    c->opts = *o;
    c->opts.prefix[sizeof(c->opts.prefix) - 1] = '\0';
    c->metrics = metrics;
    if (hooks)
        c->hooks = *hooks;
    n = snprintf(c->channel, sizeof(c->channel), "%s%s", c->opts.prefix, MW_CHANNEL_NAME);
    if (n < 0 || (size_t)n >= sizeof(c->channel)) {
        mw_free(c);
        return MW_EINVAL;
    }
    c->channel_len = (size_t)n;
    /* Payload bound plus room for the {"ticketId":..,"envelope":..} frame. */
    mw_buf_init(&c->pub, MW_CHANNEL_PAYLOAD_MAX + 256);
    mw_ratelimit_init(&c->drop_rl, CHR_LOG_PER_SEC, CHR_LOG_BURST);
    c->cmd = mw_redis_conn_new(loop, &c->opts, "pub", NULL, NULL, c);
    if (!c->cmd) {
        mw_free(c);
        return MW_ENOMEM;
    }
    out->ops = &chr_ops;
    out->impl = c;
    return 0;
}
