/* ticket_store_redis_feed: the Redis ticket store's worker feed
 * (spec/channel.md CHN-080..083): on its own connection, the worker lease
 * (acquired, renewed while held, retried while another worker holds it);
 * on gaining it, the group's pending entries claimed, then the matchmaker
 * rebuilt from mw:queue in pages, then the hand-off stream read through the
 * consumer group (NOACK: the rebuild, not a pending list, recovers what a
 * lost reply carried). Part of ticket_store_redis. */
#include "ticket_store_redis_feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"

/* ---- Feed: lease, claim, rebuild, read (CHN-080..083) ----------------------- */

static void feed_lease(struct tsr *s);
static void feed_read(struct tsr *s);
static void feed_page(struct tsr *s);
static void feed_claim(struct tsr *s, const char *cursor);

/* Hands one stream entry ([id, [field, value, ...]]) to the subscriber.
 * Entries carry the ticket's fields (queued) or id, state and version
 * (removed), so no read of the hash is needed. */
static void feed_entry(struct tsr *s, const redisReply *e)
{
    const redisReply *fields;
    struct mw_ticket t;
    bool removed = false;

    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2)
        return; /* XAUTOCLAIM: an entry trimmed away */
    fields = e->element[1];
    if (fields->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (mw__tsr_str_is(fields->element[i], "op"))
            removed = mw__tsr_str_is(fields->element[i + 1], "removed");
    if (mw__tsr_ticket_from_fields(&t, fields->element, fields->elements) != 0) {
        if (mw_ratelimit_allow(&s->rl, mw__tsr_loop_ms(s)))
            mw_log(MW_LOG_WARN, "ticket store: skipped a malformed stream entry");
        return;
    }
    if (s->feed_cb && !s->closing)
        s->feed_cb(s->feed_ud, removed ? MW_FEED_REMOVED : MW_FEED_QUEUED, &t);
    mw_ticket_clear(&t);
}

/* Delivers every entry of a reply array; with ack, XACKs them in one
 * command (claimed entries: they sit in the group's pending list; entries
 * read with NOACK never enter it). */
static void feed_entries(struct tsr *s, redisAsyncContext *ac, const redisReply *entries, bool ack)
{
    const char *argv[3 + TSR_PAGE];
    size_t lens[3 + TSR_PAGE];
    int n = 0;

    if (!entries || entries->type != REDIS_REPLY_ARRAY)
        return;
    argv[n] = "XACK";
    lens[n++] = 4;
    argv[n] = s->k_stream;
    lens[n++] = strlen(s->k_stream);
    argv[n] = TSR_GROUP;
    lens[n++] = strlen(TSR_GROUP);
    for (size_t i = 0; i < entries->elements && n < 3 + TSR_PAGE; i++) {
        const redisReply *e = entries->element[i];

        feed_entry(s, e);
        if (e && e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
            e->element[0]->type == REDIS_REPLY_STRING) {
            argv[n] = e->element[0]->str;
            lens[n++] = e->element[0]->len;
        }
    }
    if (ack && n > 3)
        redisAsyncCommandArgv(ac, NULL, NULL, n, argv, lens);
}

/* Whether the holder renews its lease before the next read: not yet leader,
 * TSR_LEASE_RENEW_S or more since the last successful renewal, or the clock
 * went back (ev_now() is wall-clock time). A read blocks at most
 * TSR_READ_BLOCK_MS, so the lease is renewed at least every 2 s, far inside
 * its 10 s TTL, while a busy worker no longer runs the lease script before
 * each of its many reads. */
static bool lease_due(const struct tsr *s)
{
    double now = ev_now(s->loop);

    return !s->leader || now - s->lease_at >= TSR_LEASE_RENEW_S || now < s->lease_at;
}

/* After a read: renew the lease first when it is due (CHN-082), else read. */
static void feed_next(struct tsr *s)
{
    if (lease_due(s))
        feed_lease(s);
    else
        feed_read(s);
}

static void on_pace_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tsr *s = w->data;

    (void)loop;
    (void)revents;
    if (s->fstate == F_PACE && !s->closing)
        feed_next(s);
}

static void on_read_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;
    size_t n = 0;

    if (!reply || s->closing || s->fstate != F_READ)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: Redis lost its data (restart without persistence).
         * Start over: lease, group, rebuild. */
        mw_log(MW_LOG_WARN, "ticket store feed: %s; rebuilding", reply->str);
        s->leader = false;
        feed_lease(s);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *sr = reply->element[i];

            if (sr->type == REDIS_REPLY_ARRAY && sr->elements == 2) {
                feed_entries(s, ac, sr->element[1], false);
                if (sr->element[1]->type == REDIS_REPLY_ARRAY)
                    n += sr->element[1]->elements;
            }
        }
    }
    /* Not faster than work arrives: a read that found some entries but
     * not a full batch is followed by the next one only after
     * TSR_READ_PACE_S, so entries gather into fewer, larger reads (each
     * read costs Redis a seek into the stream's tail node, whatever it
     * returns). An empty read (BLOCK timed out) or a full one: at once. */
    if (n > 0 && n < (size_t)atoi(TSR_READ_COUNT) && TSR_READ_PACE_S > 0) {
        s->fstate = F_PACE;
        ev_timer_set(&s->pace, TSR_READ_PACE_S, 0.0);
        ev_timer_start(s->loop, &s->pace);
        return;
    }
    feed_next(s);
}

static void feed_read(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->feed);
    /* Blocks for less than the connection's command timeout (CHN-104). */
    long long block = mw_redis_conn_timeout_ms(s->feed) / 2;

    if (!ac)
        return;
    if (block > atoll(TSR_READ_BLOCK_MS))
        block = atoll(TSR_READ_BLOCK_MS);
    /* Formatted once (per BLOCK value): hiredis' printf-style formatting
     * cost the worker more than handling the reply. */
    if (!s->read_cmd || s->read_block != block) {
        char *cmd = NULL;
        int len = redisFormatCommand(&cmd,
                                     "XREADGROUP GROUP " TSR_GROUP " %s COUNT " TSR_READ_COUNT
                                     " BLOCK %lld NOACK STREAMS %s >",
                                     s->consumer, block, s->k_stream);

        if (len <= 0) {
            s->fstate = F_OFF;
            return;
        }
        redisFreeCommand(s->read_cmd);
        s->read_cmd = cmd;
        s->read_cmd_len = (size_t)len;
        s->read_block = block;
    }
    s->fstate = F_READ;
    if (redisAsyncFormattedCommand(ac, on_read_reply, s, s->read_cmd, s->read_cmd_len) != REDIS_OK)
        s->fstate = F_OFF;
}

static bool tie_seen(const struct tsr *s, const char *id, size_t len)
{
    for (size_t i = 0; i < s->n_ties; i++)
        if (strlen(s->ties[i]) == len && memcmp(s->ties[i], id, len) == 0)
            return true;
    return false;
}

static void on_page_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;
    size_t fresh = 0;

    (void)ac;
    if (!reply || s->closing || s->fstate != F_REBUILD)
        return;
    if (reply->type != REDIS_REPLY_ARRAY) {
        mw__tsr_reply_failure(s, reply, "rebuild");
        feed_read(s);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        struct mw_ticket t;
        double score;
        char sc[64];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 3 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[1]->type != REDIS_REPLY_STRING || e->element[1]->len >= sizeof(sc))
            continue;
        memcpy(sc, e->element[1]->str, e->element[1]->len);
        sc[e->element[1]->len] = '\0';
        score = strtod(sc, NULL);
        if (score == s->page_score && tie_seen(s, e->element[0]->str, e->element[0]->len))
            continue;
        fresh++;
        if (score != s->page_score) {
            s->page_score = score;
            s->n_ties = 0;
        }
        if (s->n_ties < TSR_TIES_MAX && e->element[0]->len <= MW_TICKET_ID_LEN) {
            memcpy(s->ties[s->n_ties], e->element[0]->str, e->element[0]->len);
            s->ties[s->n_ties][e->element[0]->len] = '\0';
            s->n_ties++;
        }
        if (mw__tsr_ticket_from_reply(&t, e->element[2]) == 0) {
            if (t.state == MW_TICKET_QUEUED && s->feed_cb)
                s->feed_cb(s->feed_ud, MW_FEED_QUEUED, &t);
            mw_ticket_clear(&t);
        }
    }
    if (fresh == 0 || s->n_ties >= TSR_TIES_MAX) {
        /* Done (or a pathological pile-up at one millisecond: move on). */
        if (fresh == 0) {
            s->n_ties = 0;
            feed_read(s);
            return;
        }
        s->page_score += 1.0;
        s->n_ties = 0;
    }
    feed_page(s);
}

static void feed_page(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->feed);
    char min[32], cnt[24];
    const char *v[5] = {"1", s->k_queue, s->opts.prefix, min, cnt};
    size_t l[5];

    if (!ac)
        return;
    s->fstate = F_REBUILD;
    snprintf(min, sizeof(min), "%.0f", s->page_score);
    snprintf(cnt, sizeof(cnt), "%zu", TSR_PAGE + s->n_ties);
    for (int i = 0; i < 5; i++)
        l[i] = strlen(v[i]);
    if (mw__tsr_script_send(s, ac, SC_PAGE, 5, v, l, on_page_reply, s) != 0)
        s->fstate = F_OFF;
}

static void on_claim_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;
    char cursor[64];

    if (!reply || s->closing || s->fstate != F_CLAIM)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[0]->len >= sizeof(cursor)) {
        mw__tsr_reply_failure(s, reply, "claim");
        goto rebuild;
    }
    feed_entries(s, ac, reply->element[1], true);
    memcpy(cursor, reply->element[0]->str, reply->element[0]->len);
    cursor[reply->element[0]->len] = '\0';
    if (strcmp(cursor, "0-0") != 0) {
        feed_claim(s, cursor);
        return;
    }
rebuild:
    s->page_score = 0;
    s->n_ties = 0;
    feed_page(s);
}

static void feed_claim(struct tsr *s, const char *cursor)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->feed);

    if (!ac)
        return;
    s->fstate = F_CLAIM;
    if (redisAsyncCommand(ac, on_claim_reply, s, "XAUTOCLAIM %s " TSR_GROUP " %s 0 %s COUNT 128",
                          s->k_stream, s->consumer, cursor) != REDIS_OK)
        s->fstate = F_OFF;
}

static void on_lease_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct tsr *s = privdata;
    redisReply *reply = r;
    bool was_leader = s->leader;

    if (!reply || s->closing || s->fstate != F_LEASE)
        return;
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer == 0) {
        if (reply->type != REDIS_REPLY_INTEGER)
            mw__tsr_reply_failure(s, reply, "lease");
        if (was_leader)
            mw_log(MW_LOG_WARN, "ticket store feed: lost the worker lease");
        s->leader = false;
        s->fstate = F_STANDBY;
        ev_timer_set(&s->standby, TSR_STANDBY_S, 0.0);
        ev_timer_start(s->loop, &s->standby);
        return;
    }
    s->leader = true;
    s->lease_at = s->lease_sent_at;
    if (was_leader) {
        feed_read(s);
        return;
    }
    mw_log(MW_LOG_NOTICE, "ticket store feed: %s holds the worker lease", s->consumer);
    /* New leader: group (BUSYGROUP when it exists: ignored), claim what other
     * consumers left pending, rebuild from mw:queue, then read. */
    redisAsyncCommand(ac, NULL, NULL, "XGROUP CREATE %s " TSR_GROUP " $ MKSTREAM", s->k_stream);
    feed_claim(s, "0-0");
}

static void feed_lease(struct tsr *s)
{
    redisAsyncContext *ac = mw_redis_conn_ctx(s->feed);
    char ms[24];
    const char *v[4] = {"1", s->k_lease, s->consumer, ms};
    size_t l[4];

    if (!ac || !s->feed_cb) {
        s->fstate = F_OFF;
        return;
    }
    s->fstate = F_LEASE;
    s->lease_sent_at = ev_now(s->loop);
    snprintf(ms, sizeof(ms), "%d", TSR_LEASE_MS);
    for (int i = 0; i < 4; i++)
        l[i] = strlen(v[i]);
    if (mw__tsr_script_send(s, ac, SC_LEASE, 4, v, l, on_lease_reply, s) != 0)
        s->fstate = F_OFF;
}

static void on_standby_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tsr *s = w->data;

    (void)loop;
    (void)revents;
    if (s->fstate == F_STANDBY)
        feed_lease(s);
}

static void on_feed_ready(void *ud, struct mw_redis_conn *c)
{
    struct tsr *s = ud;

    (void)c;
    ev_timer_stop(s->loop, &s->pace);
    s->leader = false; /* re-check, re-claim and rebuild after any reconnect */
    feed_lease(s);
}

static void on_feed_lost(void *ud, struct mw_redis_conn *c)
{
    struct tsr *s = ud;

    (void)c;
    ev_timer_stop(s->loop, &s->standby);
    ev_timer_stop(s->loop, &s->pace);
    s->fstate = F_OFF;
    s->leader = false;
}

int mw__tsr_feed(void *impl, mw_feed_cb cb, void *ud)
{
    struct tsr *s = impl;

    if (!cb)
        return MW_EINVAL;
    if (s->closing)
        return MW_ECLOSED;
    if (s->feed_cb)
        return MW_EEXIST;
    s->ties = mw_calloc(TSR_TIES_MAX, sizeof(*s->ties));
    if (!s->ties)
        return MW_ENOMEM;
    s->feed = mw_redis_conn_new(s->loop, &s->opts, "feed", on_feed_ready, on_feed_lost, s);
    if (!s->feed) {
        mw_free(s->ties);
        s->ties = NULL;
        return MW_ENOMEM;
    }
    s->feed_cb = cb;
    s->feed_ud = ud;
    return 0;
}

void mw__tsr_feed_init(struct tsr *s)
{
    ev_timer_init(&s->standby, on_standby_timer, TSR_STANDBY_S, 0.0);
    s->standby.data = s;
    ev_timer_init(&s->pace, on_pace_timer, TSR_READ_PACE_S, 0.0);
    s->pace.data = s;
}

void mw__tsr_feed_stop(struct tsr *s)
{
    ev_timer_stop(s->loop, &s->standby);
    ev_timer_stop(s->loop, &s->pace);
    redisFreeCommand(s->read_cmd);
    s->read_cmd = NULL;
}
