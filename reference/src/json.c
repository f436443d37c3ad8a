/* json: single-pass strict I-JSON scanner that builds cJSON trees, and the
 * canonical compact writer. */
#include "json.h"

#include "alloc.h"
#include "utf8.h"

#include <limits.h>
#include <stdalign.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Character helpers                                                         */
/* ------------------------------------------------------------------------ */

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Noncharacters: U+FDD0..U+FDEF and U+xFFFE/U+xFFFF in every plane. */
static inline bool is_nonchar(uint32_t cp)
{
    return (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

/* Reads 4 hex digits at p (4 bytes readable); -1 when any is not hex. */
static inline long hex4(const unsigned char *p)
{
    int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), d = hexval(p[3]);
    if ((a | b | c | d) < 0)
        return -1;
    return (long)((a << 12) | (b << 8) | (c << 4) | d);
}

/* Validates one UTF-8 sequence starting at p (p[0] >= 0x80). Returns its
 * length, or 0 when ill-formed (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF), truncated, or a noncharacter (*nonchar set). */
static inline size_t utf8_seq(const unsigned char *p, const unsigned char *end, uint32_t *cp_out,
                              bool *nonchar)
{
    unsigned char c = p[0], lo, hi;
    unsigned need;
    size_t n, i;
    uint32_t cp;

    *nonchar = false;
    if (!mw_utf8_lead(c, &need, &lo, &hi)) /* the one UTF-8 rule (utf8.h) */
        return 0;
    n = need + 1;
    cp = c & (0x7Fu >> n); /* the lead byte's payload bits: 5, 4 or 3 */
    if ((size_t)(end - p) < n)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    cp = (cp << 6) | (p[1] & 0x3F);
    for (i = 2; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (n == 3 || n == 4) {
        if (is_nonchar(cp)) {
            *nonchar = true;
            *cp_out = cp;
            return 0;
        }
    }
    *cp_out = cp;
    return n;
}

static inline size_t utf8_encode(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes an already validated escape at p ('\\'), returning the code point
 * and setting *n to the escape's length (2, 6 or 12). */
static uint32_t decode_escape(const unsigned char *p, size_t *n)
{
    uint32_t cp, lo;

    *n = 2;
    switch (p[1]) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return p[1]; /* " \ / */
    }
    cp = (uint32_t)hex4(p + 2);
    *n = 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        lo = (uint32_t)hex4(p + 8);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        *n = 12;
    }
    return cp;
}

/* Decodes validated string content src[0..n) into dst (room for n bytes:
 * decoding never grows). Returns the decoded length. */
static size_t decode_string(const unsigned char *src, size_t n, unsigned char *dst)
{
    const unsigned char *end = src + n;
    unsigned char *o = dst;

    while (src < end) {
        const unsigned char *bs = memchr(src, '\\', (size_t)(end - src));
        size_t run = bs ? (size_t)(bs - src) : (size_t)(end - src);
        size_t elen;

        memcpy(o, src, run);
        o += run;
        src += run;
        if (!bs)
            break;
        o += utf8_encode(decode_escape(src, &elen), o);
        src += elen;
    }
    return (size_t)(o - dst);
}

/* Streams the decoded bytes of validated string content, for comparisons
 * that must not allocate. */
struct dec_iter {
    const unsigned char *p, *end;
    unsigned char pend[4];
    unsigned char npend, ipend;
};

static int dec_next(struct dec_iter *it)
{
    size_t elen;

    if (it->ipend < it->npend)
        return it->pend[it->ipend++];
    if (it->p >= it->end)
        return -1;
    if (*it->p != '\\')
        return *it->p++;
    it->npend = (unsigned char)utf8_encode(decode_escape(it->p, &elen), it->pend);
    it->p += elen;
    it->ipend = 1;
    return it->pend[0];
}

static bool dec_equal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    struct dec_iter x = {.p = a, .end = a + alen}, y = {.p = b, .end = b + blen};
    int c;

    do {
        c = dec_next(&x);
        if (c != dec_next(&y))
            return false;
    } while (c >= 0);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Scanner state                                                             */
/* ------------------------------------------------------------------------ */

/* One member name seen so far, for duplicate detection. */
struct key_ent {
    uint32_t serial; /* which object (numbered in opening order) */
    uint32_t hash;   /* FNV-1a of the decoded name */
    uint32_t start;  /* offset of the first content byte */
    uint32_t len;    /* raw content length */
    bool esc;        /* raw content has escapes */
};

#define KEYS_INLINE  32
#define SLOTS_INLINE 64

struct scanner {
    const unsigned char *p0, *end;
    struct mw_parse_error *err;
    int max_depth;
    int depth;
    bool build;

    /* per open container */
    unsigned char is_obj[MW_JSON_DEPTH_CAP];
    uint32_t serial[MW_JSON_DEPTH_CAP];
    cJSON *node[MW_JSON_DEPTH_CAP];
    uint32_t next_serial;

    cJSON *root;
    char *pending_key; /* owned: the name of the member whose value comes next */

    /* open-addressing table of member names: slots hold key index + 1 */
    struct key_ent *keys;
    uint32_t nkeys, capkeys;
    uint32_t *slots;
    uint32_t nslots;

    struct mw_json_arena *arena; /* NULL: nodes and strings from mw_malloc, one each */
    struct mw_json_track *track;
    size_t ntrack;
    long cur_track; /* track entry of the top-level member being scanned, or -1 */
    /* Non-canonical spellings seen so far (whitespace, an escape or a number
     * mw_json_write would spell otherwise); a tracked member is canonical
     * when the count did not move while it was scanned. */
    uint32_t noncanon;
    uint32_t noncanon_at; /* the count when the tracked member's name was read */

    struct key_ent keys_inline[KEYS_INLINE];
    uint32_t slots_inline[SLOTS_INLINE];
};

static int fail(struct scanner *s, const unsigned char *at, enum mw_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct scanner *s, const unsigned char *at, enum mw_code code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mw_parse_error_vset(s->err, code, (size_t)(at - s->p0), fmt, ap);
    va_end(ap);
    return MW_EINVAL;
}

int mw_parse_error_vset(struct mw_parse_error *err, enum mw_code code, size_t offset,
                        const char *fmt, va_list ap)
{
    if (!err)
        return MW_EINVAL;
    err->code = code;
    err->offset = offset;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    return MW_EINVAL;
}

int mw_parse_error_set(struct mw_parse_error *err, enum mw_code code, size_t offset,
                       const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    mw_parse_error_vset(err, code, offset, fmt, ap);
    va_end(ap);
    return MW_EINVAL;
}

static int oom(struct scanner *s)
{
    if (s->err) {
        s->err->code = MW_CODE_INTERNAL;
        s->err->offset = SIZE_MAX;
        snprintf(s->err->message, sizeof(s->err->message), "out of memory");
    }
    return MW_ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* Duplicate member names                                                    */
/* ------------------------------------------------------------------------ */

static inline uint32_t slot_of(uint32_t serial, uint32_t hash, uint32_t mask)
{
    uint32_t h = hash ^ (serial * 0x9E3779B1u);
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    return h & mask;
}

static bool key_equal(const struct scanner *s, const struct key_ent *a, const struct key_ent *b)
{
    const unsigned char *pa = s->p0 + a->start, *pb = s->p0 + b->start;

    if (!a->esc && !b->esc)
        return a->len == b->len && memcmp(pa, pb, a->len) == 0;
    return dec_equal(pa, a->len, pb, b->len);
}

static int grow_keys(struct scanner *s)
{
    uint32_t ncap = s->capkeys * 2, nslots = s->nslots * 2, i;
    struct key_ent *k;
    uint32_t *sl;

    k = mw_malloc(sizeof(*k) * ncap);
    sl = mw_calloc(nslots, sizeof(*sl));
    if (!k || !sl) {
        mw_free(k);
        mw_free(sl);
        return MW_ENOMEM;
    }
    memcpy(k, s->keys, sizeof(*k) * s->nkeys);
    for (i = 0; i < s->nkeys; i++) {
        uint32_t j = slot_of(k[i].serial, k[i].hash, nslots - 1);
        while (sl[j])
            j = (j + 1) & (nslots - 1);
        sl[j] = i + 1;
    }
    if (s->keys != s->keys_inline)
        mw_free(s->keys);
    if (s->slots != s->slots_inline)
        mw_free(s->slots);
    s->keys = k;
    s->slots = sl;
    s->capkeys = ncap;
    s->nslots = nslots;
    return 0;
}

/* Records a member name; MW_EEXIST when the object already has it. */
static int add_key(struct scanner *s, const struct key_ent *e)
{
    uint32_t mask, j;
    int rc;

    if (s->nkeys >= s->capkeys || s->nkeys + 1 > s->nslots / 4 * 3) {
        rc = grow_keys(s);
        if (rc)
            return rc;
    }
    mask = s->nslots - 1;
    j = slot_of(e->serial, e->hash, mask);
    while (s->slots[j]) {
        const struct key_ent *k = &s->keys[s->slots[j] - 1];
        if (k->serial == e->serial && k->hash == e->hash && key_equal(s, k, e))
            return MW_EEXIST;
        j = (j + 1) & mask;
    }
    s->keys[s->nkeys++] = *e;
    s->slots[j] = s->nkeys;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                    */
/* ------------------------------------------------------------------------ */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME  16777619u

/* Scans a string whose opening quote is at q. On success sets *endp past the
 * closing quote, *esc when it has escapes, and *hash (FNV-1a of the decoded
 * bytes) when want_hash. */
static inline int scan_string(struct scanner *s, const unsigned char *q, const unsigned char **endp,
                              bool *esc, uint32_t *hash, bool want_hash)
{
    const unsigned char *p = q + 1, *end = s->end;
    uint32_t h = FNV_OFFSET;
    bool e = false;

    for (;;) {
        unsigned char c;

        if (p >= end)
            return fail(s, p, MW_CODE_BAD_JSON, "unterminated string");
        c = *p;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            if (want_hash)
                h = (h ^ c) * FNV_PRIME;
            p++;
            continue;
        }
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(s, p, MW_CODE_BAD_JSON, "control byte 0x%02x in string (must be escaped)",
                        c);
        if (c == '\\') {
            size_t avail = (size_t)(end - p);
            uint32_t cp;
            long lo;

            e = true;
            if (avail < 2)
                return fail(s, p, MW_CODE_BAD_JSON, "unterminated escape");
            switch (p[1]) {
            case '/': /* mw_json_write writes '/' raw */
                s->noncanon++;
                /* fall through */
            case '"':
            case '\\':
                cp = p[1];
                p += 2;
                break;
            case 'b':
                cp = '\b';
                p += 2;
                break;
            case 'f':
                cp = '\f';
                p += 2;
                break;
            case 'n':
                cp = '\n';
                p += 2;
                break;
            case 'r':
                cp = '\r';
                p += 2;
                break;
            case 't':
                cp = '\t';
                p += 2;
                break;
            case 'u': {
                long v = avail >= 6 ? hex4(p + 2) : -1;
                if (v < 0)
                    return fail(s, p, MW_CODE_BAD_JSON, "invalid \\u escape");
                cp = (uint32_t)v;
                /* mw_json_write spells \u only for the other bytes below
                 * 0x20, as \u00xx in lower case. */
                if (cp >= 0x20 || cp == '\b' || cp == '\f' || cp == '\n' || cp == '\r' ||
                    cp == '\t' || (p[5] >= 'A' && p[5] <= 'F'))
                    s->noncanon++;
                if (cp == 0)
                    return fail(s, p, MW_CODE_BAD_JSON, "\\u0000 is not allowed");
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(s, p, MW_CODE_BAD_JSON, "unpaired surrogate \\u%04lX", v);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    lo = (avail >= 12 && p[6] == '\\' && p[7] == 'u') ? hex4(p + 8) : -1;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail(s, p, MW_CODE_BAD_JSON, "unpaired surrogate \\u%04lX", v);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                    p += 6;
                }
                if (is_nonchar(cp))
                    return fail(s, p - (cp > 0xFFFF ? 6 : 0), MW_CODE_BAD_JSON,
                                "noncharacter U+%04X is not allowed", (unsigned)cp);
                p += 6;
                break;
            }
            default:
                return fail(s, p, MW_CODE_BAD_JSON, "invalid escape");
            }
            if (want_hash) {
                unsigned char u[4];
                size_t n = utf8_encode(cp, u), i;
                for (i = 0; i < n; i++)
                    h = (h ^ u[i]) * FNV_PRIME;
            }
            continue;
        }
        /* c >= 0x80 */
        {
            uint32_t cp = 0;
            bool nonchar;
            size_t n = utf8_seq(p, end, &cp, &nonchar), i;

            if (!n) {
                if (nonchar)
                    return fail(s, p, MW_CODE_BAD_JSON, "noncharacter U+%04X is not allowed",
                                (unsigned)cp);
                return fail(s, p, MW_CODE_BAD_JSON, "invalid UTF-8");
            }
            if (want_hash)
                for (i = 0; i < n; i++)
                    h = (h ^ p[i]) * FNV_PRIME;
            p += n;
        }
    }
    *endp = p + 1;
    *esc = e;
    if (want_hash)
        *hash = h;
    return 0;
}

/* Scans a number at q (prefix rule for grammar faults). Sets *endp, *plain
 * (no fraction or exponent) and, when building or needed for the overflow
 * check, *d. */
static int scan_number(struct scanner *s, const unsigned char *q, const unsigned char **endp,
                       bool *plain, double *d)
{
    const unsigned char *p = q, *end = s->end, *dig;
    bool neg = false, pl = true;
    size_t ndig;

    if (*p == '-') {
        neg = true;
        p++;
    }
    if (p >= end)
        return fail(s, p, MW_CODE_BAD_JSON, "unexpected end of input in number");
    dig = p;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        p++;
        while (p < end && is_digit(*p))
            p++;
    } else {
        return fail(s, p, MW_CODE_BAD_JSON, "expected a digit");
    }
    ndig = (size_t)(p - dig);
    if (p < end && *p == '.') {
        pl = false;
        p++;
        if (p >= end)
            return fail(s, p, MW_CODE_BAD_JSON, "unexpected end of input in number");
        if (!is_digit(*p))
            return fail(s, p, MW_CODE_BAD_JSON, "expected a digit after '.'");
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        pl = false;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end)
            return fail(s, p, MW_CODE_BAD_JSON, "unexpected end of input in number");
        if (!is_digit(*p))
            return fail(s, p, MW_CODE_BAD_JSON, "expected a digit in exponent");
        while (p < end && is_digit(*p))
            p++;
    }
    *endp = p;
    *plain = pl;
    if (pl && ndig <= 15) {
        /* Exact: fewer than 2^53. -0 stays -0. */
        uint64_t u = 0;
        const unsigned char *i;
        if (s->build) {
            for (i = dig; i < p; i++)
                u = u * 10 + (uint64_t)(*i - '0');
            *d = neg ? -(double)u : (double)u;
        }
        return 0;
    }
    {
        char small[64], *tmp = small;
        size_t n = (size_t)(p - q);
        double v;

        if (n >= sizeof(small)) {
            tmp = mw_malloc(n + 1);
            if (!tmp)
                return oom(s);
        }
        memcpy(tmp, q, n);
        tmp[n] = '\0';
        v = strtod(tmp, NULL);
        if (tmp != small)
            mw_free(tmp);
        if (isinf(v))
            return fail(s, q, MW_CODE_BAD_JSON,
                        "number out of range (overflows an IEEE 754 double)");
        *d = v;
    }
    return 0;
}

static inline int scan_literal(struct scanner *s, const unsigned char *q, const char *lit, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (q + i >= s->end)
            return fail(s, q + i, MW_CODE_BAD_JSON, "unexpected end of input in literal");
        if (q[i] != (unsigned char)lit[i])
            return fail(s, q + i, MW_CODE_BAD_JSON, "invalid literal");
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Tree building                                                             */
/* ------------------------------------------------------------------------ */

/* Links item (owned from here on) under the open container, or makes it the
 * root. Same list shape as cJSON's parser: child->prev is the last item. */
static void attach(struct scanner *s, cJSON *item)
{
    cJSON *parent, *head;

    if (s->depth == 0) {
        s->root = item;
        return;
    }
    parent = s->node[s->depth - 1];
    if (s->is_obj[s->depth - 1]) {
        item->string = s->pending_key;
        s->pending_key = NULL;
    }
    head = parent->child;
    if (!head) {
        parent->child = item;
        item->prev = item;
    } else {
        head->prev->next = item;
        item->prev = head->prev;
        head->prev = item;
    }
}

/* ------------------------------------------------------------------------ */
/* Arena                                                                     */
/* ------------------------------------------------------------------------ */

#define ARENA_ALIGN       alignof(max_align_t)
#define ARENA_FIRST_BLOCK 4096

struct mw_json_arena_block {
    struct mw_json_arena_block *next;
    alignas(max_align_t) unsigned char data[];
};

static unsigned char *align_up(unsigned char *p)
{
    uintptr_t u = (uintptr_t)p;

    return p + ((ARENA_ALIGN - u % ARENA_ALIGN) % ARENA_ALIGN);
}

void mw_json_arena_init(struct mw_json_arena *a, void *buf, size_t len)
{
    a->p = buf ? align_up(buf) : NULL;
    a->end = buf ? (unsigned char *)buf + len : NULL;
    if (a->p > a->end)
        a->p = a->end;
    a->blocks = NULL;
    a->next = ARENA_FIRST_BLOCK;
}

void mw_json_arena_release(struct mw_json_arena *a)
{
    struct mw_json_arena_block *b = a->blocks, *next;

    for (; b; b = next) {
        next = b->next;
        mw_free(b);
    }
    a->blocks = NULL;
    a->p = a->end = NULL;
}

/* n bytes aligned for any type, or NULL (out of memory). */
static void *arena_alloc(struct mw_json_arena *a, size_t n)
{
    unsigned char *r;

    if (a->p && (size_t)(a->end - a->p) >= n) {
        r = a->p;
        a->p = align_up(a->p + n);
        if (a->p > a->end)
            a->p = a->end;
        return r;
    }
    {
        size_t size = a->next > n ? a->next : n;
        struct mw_json_arena_block *b;

        if (size > SIZE_MAX / 2 - sizeof(*b))
            return NULL;
        b = mw_malloc(sizeof(*b) + size);
        if (!b)
            return NULL;
        b->next = a->blocks;
        a->blocks = b;
        a->next = 2 * size;
        a->p = align_up(b->data + n);
        a->end = b->data + size;
        if (a->p > a->end)
            a->p = a->end;
        return b->data;
    }
}

/* A new node of type (cJSON_Object ... cJSON_Number, cJSON_String with
 * valuestring set by the caller), as cJSON_Create* makes it; from the arena
 * when there is one. NULL: out of memory. */
static cJSON *new_node(struct scanner *s, int type, double d)
{
    cJSON *c;

    if (!s->arena) {
        switch (type) {
        case cJSON_Object:
            return cJSON_CreateObject();
        case cJSON_Array:
            return cJSON_CreateArray();
        case cJSON_True:
            return cJSON_CreateTrue();
        case cJSON_False:
            return cJSON_CreateFalse();
        case cJSON_Number:
            return cJSON_CreateNumber(d);
        default:
            c = cJSON_CreateNull();
            if (c)
                c->type = type;
            return c;
        }
    }
    c = arena_alloc(s->arena, sizeof(*c));
    if (!c)
        return NULL;
    memset(c, 0, sizeof(*c));
    c->type = type;
    if (type == cJSON_Number) {
        /* As cJSON_CreateNumber: valueint saturates. */
        c->valuedouble = d;
        if (d >= INT_MAX)
            c->valueint = INT_MAX;
        else if (d <= (double)INT_MIN)
            c->valueint = INT_MIN;
        else
            c->valueint = (int)d;
    }
    return c;
}

static void free_string(struct scanner *s, char *str)
{
    if (!s->arena)
        mw_free(str);
}

static int make_string(struct scanner *s, const unsigned char *q, const unsigned char *qend,
                       bool esc, char **out)
{
    size_t raw = (size_t)(qend - q) - 2, n;
    char *str = s->arena ? arena_alloc(s->arena, raw + 1) : mw_malloc(raw + 1);

    if (!str)
        return oom(s);
    if (esc) {
        n = decode_string(q + 1, raw, (unsigned char *)str);
    } else {
        memcpy(str, q + 1, raw);
        n = raw;
    }
    str[n] = '\0';
    *out = str;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The scanner                                                               */
/* ------------------------------------------------------------------------ */

static bool track_match(const struct scanner *s, const unsigned char *q, size_t rawlen, bool esc,
                        const char *key)
{
    size_t kl = strlen(key);

    if (!esc)
        return rawlen == kl && memcmp(q, key, kl) == 0;
    return dec_equal(q, rawlen, (const unsigned char *)key, kl);
}

static inline const unsigned char *skip_ws(struct scanner *s, const unsigned char *p,
                                           const unsigned char *end)
{
    if (p < end && is_ws(*p)) {
        s->noncanon++; /* mw_json_write writes no whitespace */
        do
            p++;
        while (p < end && is_ws(*p));
    }
    return p;
}

static int scan(struct scanner *s)
{
    const unsigned char *p = s->p0, *end = s->end, *q;
    cJSON *item = NULL;
    int rc;

value:
    p = skip_ws(s, p, end);
    if (p >= end)
        return fail(s, p, MW_CODE_BAD_JSON, "unexpected end of input, expected a value");
    if (s->cur_track >= 0 && s->depth == 1)
        s->track[s->cur_track].offset = (size_t)(p - s->p0);
    q = p;
    switch (*p) {
    case '{':
    case '[': {
        bool obj = *p == '{';
        if (s->depth >= s->max_depth)
            return fail(s, p, MW_CODE_TOO_DEEP, "nesting deeper than %d", s->max_depth);
        if (s->build) {
            item = new_node(s, obj ? cJSON_Object : cJSON_Array, 0);
            if (!item)
                return oom(s);
            attach(s, item);
            s->node[s->depth] = item;
        }
        s->is_obj[s->depth] = obj;
        if (obj)
            s->serial[s->depth] = ++s->next_serial;
        s->depth++;
        p = skip_ws(s, p + 1, end);
        if (p < end && *p == (obj ? '}' : ']')) {
            p++;
            goto close;
        }
        if (obj)
            goto key;
        goto value;
    }
    case '"': {
        bool esc;
        rc = scan_string(s, q, &p, &esc, NULL, false);
        if (rc)
            return rc;
        if (s->build) {
            char *str;
            rc = make_string(s, q, p, esc, &str);
            if (rc)
                return rc;
            item = new_node(s, cJSON_String, 0);
            if (!item) {
                free_string(s, str);
                return oom(s);
            }
            item->valuestring = str;
        }
        break;
    }
    case 't':
        rc = scan_literal(s, q, "true", 4);
        if (rc)
            return rc;
        p += 4;
        if (s->build && !(item = new_node(s, cJSON_True, 0)))
            return oom(s);
        break;
    case 'f':
        rc = scan_literal(s, q, "false", 5);
        if (rc)
            return rc;
        p += 5;
        if (s->build && !(item = new_node(s, cJSON_False, 0)))
            return oom(s);
        break;
    case 'n':
        rc = scan_literal(s, q, "null", 4);
        if (rc)
            return rc;
        p += 4;
        if (s->build && !(item = new_node(s, cJSON_NULL, 0)))
            return oom(s);
        break;
    default:
        if (*p == '-' || is_digit(*p)) {
            bool plain = false;
            double d = 0;
            rc = scan_number(s, q, &p, &plain, &d);
            if (rc)
                return rc;
            /* mw_json_write spells a number as its source only when it
             * is an integer of at most 15 digits (-0 included). */
            if (!plain || (size_t)(p - q) - (*q == '-') > 15)
                s->noncanon++;
            if (s->cur_track >= 0 && s->depth == 1)
                s->track[s->cur_track].plain_int = plain;
            if (s->build && !(item = new_node(s, cJSON_Number, d)))
                return oom(s);
            break;
        }
        return fail(s, p, MW_CODE_BAD_JSON, "unexpected byte 0x%02x, expected a value", *p);
    }
    if (s->build)
        attach(s, item);
    goto after;

close:
    s->depth--;

after:
    if (s->depth == 0) {
        p = skip_ws(s, p, end);
        if (p != end)
            return fail(s, p, MW_CODE_BAD_JSON, "unexpected data after the top-level value");
        return 0;
    }
    if (s->depth == 1 && s->cur_track >= 0) {
        struct mw_json_track *t = &s->track[s->cur_track];
        t->found = true;
        t->len = (size_t)(p - s->p0) - t->offset;
        t->canonical = s->noncanon == s->noncanon_at;
        s->cur_track = -1;
    }
    p = skip_ws(s, p, end);
    if (p >= end)
        return fail(s, p, MW_CODE_BAD_JSON, "unexpected end of input");
    if (s->is_obj[s->depth - 1]) {
        if (*p == '}') {
            p++;
            goto close;
        }
        if (*p != ',')
            return fail(s, p, MW_CODE_BAD_JSON, "expected ',' or '}'");
        p = skip_ws(s, p + 1, end);
        goto key;
    }
    if (*p == ']') {
        p++;
        goto close;
    }
    if (*p != ',')
        return fail(s, p, MW_CODE_BAD_JSON, "expected ',' or ']'");
    p++;
    goto value;

key:
    if (p >= end)
        return fail(s, p, MW_CODE_BAD_JSON, "unexpected end of input, expected a member name");
    if (*p != '"')
        return fail(s, p, MW_CODE_BAD_JSON, "expected a member name (string)");
    {
        struct key_ent e;
        bool esc;
        q = p;
        rc = scan_string(s, q, &p, &esc, &e.hash, true);
        if (rc)
            return rc;
        e.serial = s->serial[s->depth - 1];
        e.start = (uint32_t)(q + 1 - s->p0);
        e.len = (uint32_t)(p - q - 2);
        e.esc = esc;
        rc = add_key(s, &e);
        if (rc == MW_EEXIST)
            return fail(s, q, MW_CODE_BAD_JSON, "duplicate member name");
        if (rc)
            return oom(s);
        if (s->depth == 1 && s->track) {
            size_t i;
            for (i = 0; i < s->ntrack; i++) {
                if (track_match(s, q + 1, e.len, esc, s->track[i].key)) {
                    s->cur_track = (long)i;
                    s->noncanon_at = s->noncanon;
                    break;
                }
            }
        }
        if (s->build) {
            rc = make_string(s, q, p, esc, &s->pending_key);
            if (rc)
                return rc;
        }
    }
    p = skip_ws(s, p, end);
    if (p >= end)
        return fail(s, p, MW_CODE_BAD_JSON, "unexpected end of input, expected ':'");
    if (*p != ':')
        return fail(s, p, MW_CODE_BAD_JSON, "expected ':'");
    p++;
    goto value;
}

static int parse(const char *buf, size_t len, int max_depth, struct mw_json_track *track, size_t n,
                 struct mw_json_arena *arena, cJSON **out, struct mw_parse_error *err)
{
    struct scanner *s, local;
    size_t i;
    int rc;

    s = &local;
    if (out)
        *out = NULL;
    if (err) {
        err->code = MW_CODE_NONE;
        err->offset = SIZE_MAX;
        err->message[0] = '\0';
    }
    for (i = 0; i < n; i++) {
        track[i].found = false;
        track[i].offset = 0;
        track[i].len = 0;
        track[i].plain_int = false;
        track[i].canonical = false;
    }
    if (!buf) {
        if (len)
            return MW_EINVAL;
        buf = ""; /* an empty text; never NULL arithmetic */
    }
    s->p0 = (const unsigned char *)buf;
    s->end = s->p0 + len;
    s->err = err;
    if (len > MW_JSON_MAX_LEN) {
        s->end = s->p0; /* never read */
        return fail(s, s->p0 + MW_JSON_MAX_LEN, MW_CODE_TOO_LARGE, "input too large");
    }
    if (max_depth <= 0)
        max_depth = MW_JSON_MAX_DEPTH;
    if (max_depth > MW_JSON_DEPTH_CAP)
        max_depth = MW_JSON_DEPTH_CAP;
    s->max_depth = max_depth;
    s->depth = 0;
    s->build = out != NULL;
    s->arena = arena;
    s->next_serial = 0;
    s->root = NULL;
    s->pending_key = NULL;
    s->keys = s->keys_inline;
    s->nkeys = 0;
    s->capkeys = KEYS_INLINE;
    s->slots = s->slots_inline;
    s->nslots = SLOTS_INLINE;
    memset(s->slots_inline, 0, sizeof(s->slots_inline));
    s->track = n ? track : NULL;
    s->ntrack = n;
    s->cur_track = -1;
    s->noncanon = 0;
    s->noncanon_at = 0;

    rc = scan(s);

    free_string(s, s->pending_key);
    if (s->keys != s->keys_inline)
        mw_free(s->keys);
    if (s->slots != s->slots_inline)
        mw_free(s->slots);
    if (rc) {
        if (!arena)
            cJSON_Delete(s->root);
        for (i = 0; i < n; i++)
            track[i].found = false;
        return rc;
    }
    if (out)
        *out = s->root;
    return 0;
}

int mw_json_parse_tracked(const char *buf, size_t len, int max_depth, struct mw_json_track *track,
                          size_t n, cJSON **out, struct mw_parse_error *err)
{
    return parse(buf, len, max_depth, track, n, NULL, out, err);
}

int mw_json_parse_arena(const char *buf, size_t len, int max_depth, struct mw_json_track *track,
                        size_t n, struct mw_json_arena *arena, cJSON **out,
                        struct mw_parse_error *err)
{
    if (!arena || !out)
        return MW_EINVAL;
    return parse(buf, len, max_depth, track, n, arena, out, err);
}

int mw_json_check(const char *buf, size_t len, int max_depth, struct mw_parse_error *err)
{
    return mw_json_parse_tracked(buf, len, max_depth, NULL, 0, NULL, err);
}

int mw_json_parse(const char *buf, size_t len, int max_depth, cJSON **out,
                  struct mw_parse_error *err)
{
    if (!out)
        return MW_EINVAL;
    return mw_json_parse_tracked(buf, len, max_depth, NULL, 0, out, err);
}

/* ------------------------------------------------------------------------ */
/* Lookup                                                                    */
/* ------------------------------------------------------------------------ */

const cJSON *mw_json_get(const cJSON *obj, const char *key)
{
    const cJSON *c;

    if (!obj || !cJSON_IsObject(obj) || !key)
        return NULL;
    for (c = obj->child; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0)
            return c;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Canonical writer                                                          */
/* ------------------------------------------------------------------------ */

int mw_json_write_int(struct mw_buf *b, int64_t v)
{
    char tmp[24], *o = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--o = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--o = '-';
    return mw_buf_append(b, o, (size_t)(tmp + sizeof(tmp) - o));
}

int mw_json_write_number(struct mw_buf *b, double d)
{
    char tmp[40];
    int prec, n = 0;

    if (!isfinite(d))
        return MW_EINVAL;
    if (d == 0 && signbit(d))
        return mw_buf_append(b, "-0", 2);
    if (fabs(d) <= 9007199254740991.0 && d == trunc(d))
        return mw_json_write_int(b, (int64_t)d);
    for (prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (n <= 0 || (size_t)n >= sizeof(tmp))
            return MW_EINVAL;
        if (strtod(tmp, NULL) == d)
            break;
    }
    return mw_buf_append(b, tmp, (size_t)n);
}

int mw_json_write_string(struct mw_buf *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str, *end = s + len, *run;
    int rc;

    rc = mw_buf_append(b, "\"", 1);
    if (rc)
        return rc;
    run = s;
    while (s < end) {
        unsigned char c = *s;
        char esc[6];
        size_t n;

        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0x80) {
            uint32_t cp;
            bool nonchar;
            size_t sl = utf8_seq(s, end, &cp, &nonchar);
            if (!sl)
                return MW_EINVAL;
            s += sl;
            continue;
        }
        if (c == 0)
            return MW_EINVAL;
        rc = mw_buf_append(b, run, (size_t)(s - run));
        if (rc)
            return rc;
        esc[0] = '\\';
        n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        rc = mw_buf_append(b, esc, n);
        if (rc)
            return rc;
        s++;
        run = s;
    }
    rc = mw_buf_append(b, run, (size_t)(s - run));
    if (rc)
        return rc;
    return mw_buf_append(b, "\"", 1);
}

static int write_value(struct mw_buf *b, const cJSON *v, int depth)
{
    const cJSON *c;
    bool obj;
    int rc;

    if (!v)
        return MW_EINVAL;
    switch (v->type & 0xFF) {
    case cJSON_False:
        return mw_buf_append(b, "false", 5);
    case cJSON_True:
        return mw_buf_append(b, "true", 4);
    case cJSON_NULL:
        return mw_buf_append(b, "null", 4);
    case cJSON_Number:
        return mw_json_write_number(b, v->valuedouble);
    case cJSON_String:
        if (!v->valuestring)
            return MW_EINVAL;
        return mw_json_write_string(b, v->valuestring, strlen(v->valuestring));
    case cJSON_Array:
        obj = false;
        break;
    case cJSON_Object:
        obj = true;
        break;
    default:
        return MW_EINVAL;
    }
    if (depth >= MW_JSON_WRITE_MAX_DEPTH)
        return MW_EINVAL;
    rc = mw_buf_append(b, obj ? "{" : "[", 1);
    for (c = v->child; !rc && c; c = c->next) {
        if (c != v->child)
            rc = mw_buf_append(b, ",", 1);
        if (!rc && obj) {
            if (!c->string)
                return MW_EINVAL;
            rc = mw_json_write_string(b, c->string, strlen(c->string));
            if (!rc)
                rc = mw_buf_append(b, ":", 1);
        }
        if (!rc)
            rc = write_value(b, c, depth + 1);
    }
    if (rc)
        return rc;
    return mw_buf_append(b, obj ? "}" : "]", 1);
}

int mw_json_write(struct mw_buf *b, const cJSON *value)
{
    return write_value(b, value, 0);
}
