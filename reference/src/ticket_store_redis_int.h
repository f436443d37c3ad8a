/* ticket_store_redis_int: what the files of the Redis ticket store share,
 * and nothing else includes: the state (struct tsr), the script ids, and the
 * helpers of ticket_store_redis.c the others call (mw__tsr_*). The module
 * is ticket_store_redis.c (scripts and their NOSCRIPT fallback, requests,
 * operations, sweep, counts, ended notices, lifetime),
 * ticket_store_redis_batch.c (the end-of-turn batching both use),
 * ticket_store_redis_create.c (the creates),
 * ticket_store_redis_assign.c (the assigns) and
 * ticket_store_redis_feed.c (the worker feed); the scripts themselves are
 * the .lua files of lua/, embedded at build time (lua/embed.cmake makes
 * redis_scripts.h in the build tree). */
#ifndef MW_TICKET_STORE_REDIS_INT_H
#define MW_TICKET_STORE_REDIS_INT_H

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "ratelimit.h"
#include "redis_conn.h"
#include "ticket_store.h"

#define TSR_DEFAULT_TTL_MS      600000
#define TSR_DEFAULT_ATTL_MS     600000
#define TSR_DEFAULT_GRACE_MS    30000
#define TSR_DEFAULT_MAX_TICKETS 1000000
#define TSR_MAX_INFLIGHT        65536 /* requests awaiting Redis; beyond: MW_ELIMIT */
#define TSR_SWEEP_BATCH         "256"
#define TSR_LEASE_MS            10000
#define TSR_LEASE_RENEW_S       1.0 /* renewal interval while held (CHN-082; lease_due()) */
#define TSR_STANDBY_S           3.0 /* lease retry while another worker holds it */
#define TSR_READ_COUNT          "128"
#define TSR_READ_BLOCK_MS       "1000"
#define TSR_READ_PACE_S         0.0005 /* between a partial read and the next (feed_next) */
#define TSR_PAGE                256
#define TSR_TIES_MAX            4096 /* ids remembered at one score while paging */
#define TSR_COUNTS_PERIOD_S     1.0
#define TSR_GROUP               "workers"
#define TSR_KEY_MAX             (64 + 32)
#define TSR_ARGS_INLINE         12   /* arguments a call holds without allocating */
#define TSR_BATCH_MAX           64   /* matches per assign call, creates per create call */
#define TSR_OWED_MAX            4096 /* detaches owed to Redis (CHN-074); beyond: dropped */
#define TSR_FLUSH_MS            500  /* at destroy: longest wait to write what is buffered */

/* The scripts, by id: text, and the SHA1 that SCRIPT LOAD answered. */
enum script_id {
    SC_CREATE = 0,
    SC_CANCEL,
    SC_ATTACH,
    SC_DETACH,
    SC_ASSIGN,
    SC_SWEEP,
    SC_LEASE,
    SC_PAGE,
    SC_COUNT
};

struct tsr;

struct script {
    struct tsr *s;
    char sha[41];
    bool loaded;  /* sha valid and (as far as we know) in Redis' script cache */
    bool loading; /* a SCRIPT LOAD is in flight */
};

enum feed_state {
    F_OFF = 0, /* no subscriber, or the feed connection is down */
    F_LEASE,   /* lease script in flight */
    F_STANDBY, /* another worker holds the lease; timer armed */
    F_CLAIM,   /* XAUTOCLAIM in flight */
    F_REBUILD, /* a page of mw:queue in flight */
    F_READ,    /* XREADGROUP in flight */
    F_PACE,    /* between two reads (TSR_READ_PACE_S); timer armed */
};

struct tsr_batch_kind;

/* The creates or the assigns of one loop turn, sent as one script call (up
 * to TSR_BATCH_MAX of them; more make another batch):
 * ticket_store_redis_batch.h. */
struct tsr_batch {
    struct tsr *s;
    const struct tsr_batch_kind *kind;
    struct tsr_batch *next;
    size_t k;
    void *p[TSR_BATCH_MAX]; /* owned: struct cpend * or struct pend *, by the queue's kind */
};

/* How one kind of batch goes out, and how its items fail unsent. */
struct tsr_batch_kind {
    /* Sends b as one script call with mw__tsr_batch_on_reply and b as its
     * callback (which then owns b): 0, or an error with b untouched. */
    int (*send)(struct tsr *s, struct tsr_batch *b);
    /* Answers one item from its part r of the reply (each: the reply had
     * one part per item), or from the whole reply when it had not (each
     * false; r NULL when the connection dropped or stalled). */
    void (*answer)(struct tsr *s, void *item, const redisReply *r, bool each);
    /* Answers one item that never went out (nothing ran) with status. */
    void (*fail)(struct tsr *s, void *item, int status);
};

/* Batches not sent yet, oldest first. */
struct tsr_batchq {
    const struct tsr_batch_kind *kind;
    struct tsr_batch *head, *tail;
};

struct tsr {
    struct mw_ticket_store_hooks hooks; /* the owner's, copied */
    struct ev_loop *loop;
    struct mw_ticket_store_config cfg;
    struct mw_redis_opts opts;
    char consumer[64];
    char origin[33]; /* random hex: this instance's ended notices */
    mw_random_fn rnd;
    void *rnd_ud;
    char k_lease[TSR_KEY_MAX], k_queue[TSR_KEY_MAX], k_stream[TSR_KEY_MAX];
    char k_counts[TSR_KEY_MAX], k_deadlines[TSR_KEY_MAX], ch_ended[TSR_KEY_MAX];
    char s_maxlen[24], s_ret[24];

    struct mw_redis_conn *cmd; /* scripts and reads */
    struct script scripts[SC_COUNT];
    struct mw_redis_conn *sub;  /* SUBSCRIBE matchmaking:ended */
    struct mw_redis_conn *feed; /* lease + XREADGROUP, when a feed subscriber exists */
    bool subscribed;

    mw_feed_cb feed_cb;
    void *feed_ud;
    enum feed_state fstate;
    bool leader;
    double lease_sent_at; /* ev_now() when the lease script in flight was sent */
    double lease_at;      /* ev_now() when the last successful one was sent */
    ev_timer standby;
    ev_timer pace;  /* the next read, after a read that found less than a batch */
    char *read_cmd; /* the XREADGROUP, formatted (redisFormatCommand) for read_block */
    size_t read_cmd_len;
    long long read_block;
    double page_score;                  /* rebuild cursor: next page starts at this score */
    char (*ties)[MW_TICKET_ID_LEN + 1]; /* ids already delivered at page_score */
    size_t n_ties;

    uint64_t counts[4];
    bool counts_inflight;
    ev_timer counts_timer;
    bool sweep_inflight;
    uint64_t swept; /* tickets changed by passes answered since the last sweep() */
    size_t inflight;
    uint64_t noscript_retries; /* calls sent again as EVAL after NOSCRIPT */
    struct tsr_batchq creates; /* not sent yet */
    struct tsr_batchq assigns; /* not sent yet */
    ev_prepare batch_prepare;  /* sends both at the end of the turn */
    ev_idle batch_idle;        /* keeps that turn's poll from blocking */
    bool closing;
    struct mw_ratelimit rl;
    /* Detaches owed to Redis (CHN-074): the ids of watched creates whose
     * reply was lost (the create may have run and counted a watcher nobody
     * holds) and of detaches that could not be sent (connection down). Sent
     * when the command connection is ready again. At most TSR_OWED_MAX,
     * allocated on first use; beyond, dropped and counted (those tickets
     * end by expiry instead of grace). */
    char (*owed)[MW_TICKET_ID_LEN + 1];
    size_t n_owed;
    uint64_t owed_dropped;
};

/* An assign accepted by mw__tsr_assign(), waiting for the end of the loop turn
 * (then for its batch's reply): the match copied (it is borrowed by the
 * call), its envelopes in env[] back to back, each followed by a NUL. */
struct pend {
    mw_assign_cb cb;
    void *ud;
    int64_t at;
    size_t n;
    char match_id[MW_MATCH_ID_LEN + 1];
    char ids[MW_MATCH_SIZE_MAX][MW_TICKET_ID_LEN + 1];
    uint64_t versions[MW_MATCH_SIZE_MAX];
    size_t env_len[MW_MATCH_SIZE_MAX];
    char env[];
};

/* A create accepted by mw__tsr_create(), waiting for the end of the loop
 * turn (then for its batch's reply): the ticket as the script writes it
 * (what the callback gets when it answers CREATED: the script returns
 * nothing the caller knows), its attributes text in attrs[]. */
struct cpend {
    mw_ticket_cb cb;
    void *ud;
    bool watched;
    struct mw_ticket t; /* t.attributes_json points into attrs (or NULL) */
    char attrs[];
};

/* ---- Helpers of ticket_store_redis.c -------------------------------------- */

/* A command's or script call's arguments: strings borrowed from the caller
 * (until the send returns) and integers formatted into the struct. Room for
 * TSR_ARGS_INLINE of each without allocating; a batch reserves its own
 * (mw__tsr_args_reserve). Adding beyond what was reserved is a bug
 * (MW_ASSERT). */
struct tsr_args {
    const char **v;
    size_t *l;
    char (*num)[24];
    int n;
    size_t ni, cap, capnum;
    const char *v_inline[TSR_ARGS_INLINE];
    size_t l_inline[TSR_ARGS_INLINE];
    char num_inline[TSR_ARGS_INLINE][24];
};

/* Makes a ready for argc arguments of which nums are integers: 0, or
 * MW_ENOMEM (a then holds nothing). Release with mw__tsr_args_release(). */
int mw__tsr_args_reserve(struct tsr_args *a, size_t argc, size_t nums);
void mw__tsr_args_release(struct tsr_args *a);
void mw__tsr_args_add(struct tsr_args *a, const char *str, size_t len);
void mw__tsr_args_str(struct tsr_args *a, const char *str);
void mw__tsr_args_int(struct tsr_args *a, int64_t x);
/* The arguments every script takes first (spec/channel.md section 5):
 * numkeys 0, prefix, stream maxlen, retention, origin, now
 * (mw__tsr_script_send() puts EVALSHA <sha> or EVAL <text> in front). */
#define TSR_ARGS_SCRIPT_HEAD 6
void mw__tsr_args_script(struct tsr_args *a, const struct tsr *s, int64_t now_ms);

/* Whether r is a string or status reply equal to s. */
bool mw__tsr_str_is(const redisReply *r, const char *s);
/* r as an integer (an integer reply, or a string of one); *ok false when not. */
int64_t mw__tsr_reply_int(const redisReply *r, bool *ok);
/* Fills t (cleared first; caller frees with mw_ticket_clear()) from the
 * field/value pairs el[0..n): 0, MW_EIO (malformed) or MW_ENOMEM. */
int mw__tsr_ticket_from_fields(struct mw_ticket *t, redisReply *const *el, size_t n);
/* The same from a HGETALL array reply: also MW_ENOTFOUND for an empty one. */
int mw__tsr_ticket_from_reply(struct mw_ticket *t, const redisReply *r);
/* The loop's time in unix ms. */
int64_t mw__tsr_loop_ms(const struct tsr *s);
/* The status for a reply that is not what was expected (logged at a bounded
 * rate): MW_ECLOSED or MW_EUNAVAIL for none, MW_EUNAVAIL for an error reply,
 * MW_EIO otherwise. */
int mw__tsr_reply_failure(struct tsr *s, const redisReply *r, const char *what);
/* Sends script id with the arguments argv[0..argc) that follow the script
 * (numkeys first; borrowed until return) on ac: EVALSHA when the script is
 * loaded, else EVAL; a NOSCRIPT answer is sent once more as EVAL.
 * cb(ac, reply, priv) gets the reply (NULL when the connection drops).
 * Returns 0, MW_EINVAL, MW_ENOMEM or MW_EUNAVAIL (cb then never called). */
/* A detach Redis must get once it can (CHN-074; struct tsr's owed).
 * Returns 0, or MW_ELIMIT / MW_ENOMEM when it was dropped (counted). */
int mw__tsr_owe_detach(struct tsr *s, const char *ticket_id);
int mw__tsr_script_send(struct tsr *s, redisAsyncContext *ac, enum script_id id, int argc,
                        const char *const *argv, const size_t *lens, redisCallbackFn *cb,
                        void *priv);

#endif /* MW_TICKET_STORE_REDIS_INT_H */
