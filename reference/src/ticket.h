/* ticket: the ticket record shared by the store backends, the session, the
 * matchmaker and the HTTP API; ticket ids; state names. */
#ifndef MW_TICKET_H
#define MW_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MW_TICKET_ID_LEN  36  /* UUID v4 text: 122 random bits */
#define MW_QUEUE_MAX      64  /* bytes of [a-z0-9_-] */
#define MW_PLAYER_ID_MAX  128 /* bytes of UTF-8 */
#define MW_REGION_MAX     64  /* bytes; longer region values are bad_message */
#define MW_IDEM_KEY_MAX   64  /* bytes */
#define MW_ATTRS_MAX      16  /* members of `attributes` */
#define MW_MATCH_ID_LEN   36  /* UUID v4 text */
#define MW_CONNECTION_MAX 261 /* host:port, host up to 255 bytes */
#define MW_MATCH_SIZE_MAX 16  /* players per match */

enum mw_ticket_state {
    MW_TICKET_QUEUED = 0,
    MW_TICKET_ASSIGNED,
    MW_TICKET_CANCELLED,
    MW_TICKET_EXPIRED,
};

/* Wire name: "queued", "assigned", "cancelled", "expired". */
const char *mw_ticket_state_name(enum mw_ticket_state s);
/* Parses a wire name; returns 0 or MW_EINVAL. */
int mw_ticket_state_parse(const char *name, enum mw_ticket_state *out);

/* An enqueue request, already validated by the message layer. All strings
 * NUL-terminated. Borrowed by every function that takes it. */
struct mw_enqueue_req {
    char queue[MW_QUEUE_MAX + 1];
    char player_id[MW_PLAYER_ID_MAX + 1];
    char region[MW_REGION_MAX + 1]; /* "" when attributes.region is absent */
    char idem_key[MW_IDEM_KEY_MAX + 1];
    bool has_idem_key;
    char *attributes_json; /* canonical JSON object text or NULL; borrowed */
    bool watched;          /* created over WebSocket: the creator watches it */
};

/* A ticket as a store returns it. Store callbacks lend it for the duration
 * of the callback only: copy what you keep (mw_ticket_copy). */
struct mw_ticket {
    char id[MW_TICKET_ID_LEN + 1];
    char queue[MW_QUEUE_MAX + 1];
    char player_id[MW_PLAYER_ID_MAX + 1];
    char region[MW_REGION_MAX + 1];
    char idem_key[MW_IDEM_KEY_MAX + 1];
    bool has_idem_key;
    enum mw_ticket_state state;
    uint64_t version;      /* 1 at creation; +1 on every state change */
    int64_t created_ms;    /* unix ms */
    int64_t expires_ms;    /* unix ms: when a queued ticket expires (expiresAt) */
    int64_t ended_ms;      /* unix ms: when it became final (assigned: the match's
                            * assignedAt); 0 while queued or when the store did not say */
    char *attributes_json; /* owned by the ticket; NULL when none */
    /* When state == ASSIGNED: the exact match.assigned envelope (canonical
     * JSON text) this ticket's watchers receive. Owned by the ticket. */
    char *assigned_envelope;
    size_t assigned_envelope_len;
    /* Only in a create result: true when the idempotency rule returned an
     * existing ticket (MSG-026; HTTP answers 200, not 201). A backend that
     * does not set it leaves false. */
    bool replayed;
};

/* Deep copy into dst (which must not own anything yet). Returns 0 or
 * MW_ENOMEM (dst then owns nothing). */
int mw_ticket_copy(struct mw_ticket *dst, const struct mw_ticket *src);
/* Frees what t owns (not t itself). NULL-safe. */
void mw_ticket_clear(struct mw_ticket *t);

/* A random source: fills buf with n cryptographically random bytes, returns
 * 0 or a negative MW_E* code. The edge supplies getrandom(2); tests a PRNG. */
typedef int (*mw_random_fn)(void *ud, void *buf, size_t n);
/* The OS source (getrandom(2)); ud unused. */
int mw_random_os(void *ud, void *buf, size_t n);

/* A buffered random source: one read of MW_RANDOM_POOL_BYTES from an
 * underlying source (getrandom(2) in the server) feeds many ids, instead of
 * one system call per ticket id and per match id. The bytes are those of the
 * underlying source, handed out once each and erased from the pool as they
 * are handed out, so a UUID v4 still carries 122 bits straight from the OS
 * CSPRNG and a later memory disclosure does not reveal ids already given.
 * No global: the pool lives in its owner's context (the server) and is passed
 * as the ud of mw_random_pool_read. Not for use across fork(). Fields are
 * private. */
#define MW_RANDOM_POOL_BYTES 4096
struct mw_random_pool {
    mw_random_fn fill; /* the underlying source */
    void *fill_ud;
    size_t pos; /* next unused byte of buf; MW_RANDOM_POOL_BYTES when empty */
    unsigned char buf[MW_RANDOM_POOL_BYTES];
};
/* Makes an empty pool over fill (borrowed; fill_ud too): the first read
 * refills it. */
void mw_random_pool_init(struct mw_random_pool *p, mw_random_fn fill, void *fill_ud);
/* An mw_random_fn: ud is a struct mw_random_pool *. Fills buf with n bytes,
 * refilling the whole pool from the underlying source when what is left is
 * short (the leftover is discarded, never reused); a request larger than the
 * pool goes straight to the underlying source. Returns 0 or the underlying
 * source's error (buf then holds no pool bytes, the pool is left empty and
 * the next call tries again). */
int mw_random_pool_read(void *ud, void *buf, size_t n);
/* Erases the pool's bytes (call before freeing its owner). NULL-safe. */
void mw_random_pool_wipe(struct mw_random_pool *p);

/* Writes a UUID v4 (lowercase, 36 chars + NUL) into out. Returns 0 or the
 * random source's error. */
int mw_uuid4(mw_random_fn rnd, void *rnd_ud, char out[MW_TICKET_ID_LEN + 1]);
/* True when s is a syntactically valid lowercase UUID v4 text of 36 bytes. */
bool mw_uuid4_valid(const char *s, size_t len);

/* True when s[0..n) is a queue name (MSG-020): 1 to MW_QUEUE_MAX bytes, each
 * of a-z 0-9 _ -. Used by the message codec and the --queue-size flag. */
bool mw_queue_name_valid(const char *s, size_t n);

/* The key of the in-memory maps' hash (hub, matchmaker, memory store,
 * session): each map draws its own from its instance's random source when
 * it is built, so a client cannot choose strings that collide in it (hash
 * flooding). Tests use fixed keys. */
struct mw_hash_key {
    uint64_t k0, k1;
};

/* Fills key from the random source. Returns 0 or the source's error. */
int mw_hash_key_random(struct mw_hash_key *key, mw_random_fn rnd, void *rnd_ud);

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of p[0..n) under key (k0 is
 * the key's bytes 0..7 little-endian, k1 bytes 8..15). Borrowed inputs. */
uint64_t mw_siphash(const struct mw_hash_key *key, const void *p, size_t n);
/* SipHash-2-4 of a NUL-terminated string (borrowed). */
uint64_t mw_hash_str(const struct mw_hash_key *key, const char *s);
/* SipHash-2-4 of the pair (a, b) with a 0xff byte between them (0xff occurs
 * in neither UTF-8 nor ASCII, so ("ab","c") and ("a","bc") differ). */
uint64_t mw_hash_pair(const struct mw_hash_key *key, const char *a, const char *b);

/* A match the worker wants to commit (ticket_store.h, assign: borrowed).
 * The worker builds each ticket's match.assigned envelope itself (with
 * version = the queued version + 1); the store commits it only if every ticket
 * is still queued at exactly versions[i] - 1 (compare-and-set), so two
 * workers can never put one ticket in two matches. */
struct mw_match {
    char match_id[MW_MATCH_ID_LEN + 1];
    char connection[MW_CONNECTION_MAX + 1];
    int64_t assigned_ms;
    size_t n; /* 1..MW_MATCH_SIZE_MAX */
    char ticket_ids[MW_MATCH_SIZE_MAX][MW_TICKET_ID_LEN + 1];
    char player_ids[MW_MATCH_SIZE_MAX][MW_PLAYER_ID_MAX + 1];
    uint64_t versions[MW_MATCH_SIZE_MAX];     /* version each ticket gets */
    const char *envelopes[MW_MATCH_SIZE_MAX]; /* canonical match.assigned text, borrowed */
    size_t envelope_lens[MW_MATCH_SIZE_MAX];
};

#endif /* MW_TICKET_H */
