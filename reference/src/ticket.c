/* ticket: ticket records (copy/clear), state names, UUID v4 ticket ids from
 * a cryptographically secure source. */
/* getrandom(2) is outside strict C11. */
#define _GNU_SOURCE
#include "ticket.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "alloc.h"
#include "error.h"

/* ---- States ---------------------------------------------------------------- */

static const char *const state_names[] = {
    [MW_TICKET_QUEUED] = "queued",
    [MW_TICKET_ASSIGNED] = "assigned",
    [MW_TICKET_CANCELLED] = "cancelled",
    [MW_TICKET_EXPIRED] = "expired",
};

const char *mw_ticket_state_name(enum mw_ticket_state s)
{
    if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
        return "unknown";
    return state_names[s];
}

int mw_ticket_state_parse(const char *name, enum mw_ticket_state *out)
{
    if (!name)
        return MW_EINVAL;
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (enum mw_ticket_state)i;
            return 0;
        }
    }
    return MW_EINVAL;
}

/* ---- Records --------------------------------------------------------------- */

int mw_ticket_copy(struct mw_ticket *dst, const struct mw_ticket *src)
{
    char *attrs = NULL, *env = NULL;

    if (src->attributes_json) {
        attrs = mw_strndup(src->attributes_json, strlen(src->attributes_json));
        if (!attrs)
            goto out_nomem;
    }
    if (src->assigned_envelope) {
        env = mw_strndup(src->assigned_envelope, src->assigned_envelope_len);
        if (!env)
            goto out_free_attrs;
    }
    *dst = *src;
    dst->attributes_json = attrs;
    dst->assigned_envelope = env;
    dst->assigned_envelope_len = env ? src->assigned_envelope_len : 0;
    return 0;

out_free_attrs:
    mw_free(attrs);
out_nomem:
    dst->attributes_json = NULL;
    dst->assigned_envelope = NULL;
    dst->assigned_envelope_len = 0;
    return MW_ENOMEM;
}

void mw_ticket_clear(struct mw_ticket *t)
{
    if (!t)
        return;
    mw_free(t->attributes_json);
    mw_free(t->assigned_envelope);
    t->attributes_json = NULL;
    t->assigned_envelope = NULL;
    t->assigned_envelope_len = 0;
}

/* ---- Random ids ------------------------------------------------------------ */

int mw_random_os(void *ud, void *buf, size_t n)
{
    unsigned char *p = buf;

    (void)ud;
    /* getrandom(2) may return fewer bytes than asked (over 256 bytes, or when
     * interrupted by a signal): loop until everything is filled. */
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return MW_EIO;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

void mw_random_pool_init(struct mw_random_pool *p, mw_random_fn fill, void *fill_ud)
{
    p->fill = fill;
    p->fill_ud = fill_ud;
    p->pos = sizeof(p->buf);
}

int mw_random_pool_read(void *ud, void *buf, size_t n)
{
    struct mw_random_pool *p = ud;
    int rc;

    if (n > sizeof(p->buf))
        return p->fill(p->fill_ud, buf, n);
    if (sizeof(p->buf) - p->pos < n) {
        /* Too little left: discard it and read a whole pool. */
        explicit_bzero(p->buf + p->pos, sizeof(p->buf) - p->pos);
        p->pos = sizeof(p->buf);
        rc = p->fill(p->fill_ud, p->buf, sizeof(p->buf));
        if (rc) {
            explicit_bzero(p->buf, sizeof(p->buf));
            return rc;
        }
        p->pos = 0;
    }
    memcpy(buf, p->buf + p->pos, n);
    explicit_bzero(p->buf + p->pos, n); /* each byte is handed out once */
    p->pos += n;
    return 0;
}

void mw_random_pool_wipe(struct mw_random_pool *p)
{
    if (!p)
        return;
    explicit_bzero(p->buf, sizeof(p->buf));
    p->pos = sizeof(p->buf);
}

int mw_uuid4(mw_random_fn rnd, void *rnd_ud, char out[MW_TICKET_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];
    size_t o = 0;
    int rc;

    rc = rnd(rnd_ud, r, sizeof(r));
    if (rc)
        return rc;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* variant 10xx (RFC 4122) */
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[r[i] >> 4];
        out[o++] = hex[r[i] & 0x0f];
    }
    out[o] = '\0';
    return 0;
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool mw_uuid4_valid(const char *s, size_t len)
{
    if (!s || len != MW_TICKET_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!is_lower_hex(s[i])) {
            return false;
        }
    }
    /* xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx */
    return s[14] == '4' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');
}

bool mw_queue_name_valid(const char *s, size_t n)
{
    if (!s || n < 1 || n > MW_QUEUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- Hashing --------------------------------------------------------------- */

/* SipHash-2-4, from the paper's description ("SipHash: a fast short-input
 * PRF", section 2): four 64-bit words of state, 2 compression rounds per
 * 8-byte little-endian block, the length mod 256 in the top byte of the
 * last block, 4 finalization rounds. Byte-at-a-time so a pair can be
 * hashed without building it. */
struct sip {
    uint64_t v0, v1, v2, v3;
    uint64_t m;     /* the block being filled */
    unsigned mlen;  /* its bytes */
    uint64_t total; /* bytes hashed */
};

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(struct sip *s)
{
    s->v0 += s->v1;
    s->v1 = SIP_ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = SIP_ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = SIP_ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = SIP_ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = SIP_ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = SIP_ROTL(s->v2, 32);
}

static void sip_init(struct sip *s, const struct mw_hash_key *key)
{
    s->v0 = key->k0 ^ 0x736f6d6570736575ULL;
    s->v1 = key->k1 ^ 0x646f72616e646f6dULL;
    s->v2 = key->k0 ^ 0x6c7967656e657261ULL;
    s->v3 = key->k1 ^ 0x7465646279746573ULL;
    s->m = 0;
    s->mlen = 0;
    s->total = 0;
}

static void sip_block(struct sip *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

static void sip_byte(struct sip *s, unsigned char c)
{
    s->m |= (uint64_t)c << (8 * s->mlen);
    s->total++;
    if (++s->mlen == 8) {
        sip_block(s, s->m);
        s->m = 0;
        s->mlen = 0;
    }
}

static void sip_bytes(struct sip *s, const unsigned char *p, size_t n)
{
    /* Whole blocks straight from the input when aligned on a block. */
    while (n && s->mlen) {
        sip_byte(s, *p++);
        n--;
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t m = 0;

        for (int i = 7; i >= 0; i--)
            m = m << 8 | p[i];
        sip_block(s, m);
        s->total += 8;
    }
    while (n--)
        sip_byte(s, *p++);
}

static uint64_t sip_final(struct sip *s)
{
    uint64_t b = s->m | (s->total & 0xff) << 56;

    sip_block(s, b);
    s->v2 ^= 0xff;
    sip_round(s);
    sip_round(s);
    sip_round(s);
    sip_round(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

int mw_hash_key_random(struct mw_hash_key *key, mw_random_fn rnd, void *rnd_ud)
{
    unsigned char r[16];
    int rc = rnd(rnd_ud, r, sizeof(r));

    if (rc)
        return rc;
    key->k0 = key->k1 = 0;
    for (int i = 7; i >= 0; i--) {
        key->k0 = key->k0 << 8 | r[i];
        key->k1 = key->k1 << 8 | r[8 + i];
    }
    return 0;
}

/* One SipRound on four local words (the paper's figure), so that the whole
 * hash of one buffer stays in registers. */
#define SIP_ROUND(v0, v1, v2, v3)                                                                  \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = SIP_ROTL(v1, 13);                                                                     \
        v1 ^= v0;                                                                                  \
        v0 = SIP_ROTL(v0, 32);                                                                     \
        v2 += v3;                                                                                  \
        v3 = SIP_ROTL(v3, 16);                                                                     \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = SIP_ROTL(v3, 21);                                                                     \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = SIP_ROTL(v1, 17);                                                                     \
        v1 ^= v2;                                                                                  \
        v2 = SIP_ROTL(v2, 32);                                                                     \
    } while (0)

static uint64_t sip_load_le(const unsigned char *p, size_t n)
{
    uint64_t m = 0;

    for (size_t i = n; i-- > 0;)
        m = m << 8 | p[i];
    return m;
}

/* The same function as sip_init/sip_bytes/sip_final for one contiguous
 * buffer (every map lookup hashes one id: ~9 per assignment), with the state
 * in locals instead of a struct behind a pointer. The tests check it against
 * the paper's vectors and against the byte-at-a-time path for lengths 0..64. */
uint64_t mw_siphash(const struct mw_hash_key *key, const void *p, size_t n)
{
    const unsigned char *in = p;
    uint64_t v0 = key->k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = key->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = key->k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = key->k1 ^ 0x7465646279746573ULL;
    uint64_t m;
    size_t left = n;

    for (; left >= 8; in += 8, left -= 8) {
        /* A whole block: one unaligned load, little-endian as the paper says. */
        memcpy(&m, in, sizeof(m));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        m = __builtin_bswap64(m);
#endif
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    m = sip_load_le(in, left) | (uint64_t)(n & 0xff) << 56;
    v3 ^= m;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= m;
    v2 ^= 0xff;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t mw_hash_str(const struct mw_hash_key *key, const char *str)
{
    return mw_siphash(key, str, strlen(str));
}

uint64_t mw_hash_pair(const struct mw_hash_key *key, const char *a, const char *b)
{
    struct sip s;

    sip_init(&s, key);
    sip_bytes(&s, (const unsigned char *)a, strlen(a));
    sip_byte(&s, 0xff);
    sip_bytes(&s, (const unsigned char *)b, strlen(b));
    return sip_final(&s);
}

/* ---- Time ------------------------------------------------------------------ */
