/* json: strict I-JSON (RFC 8259 restricted by RFC 7493) over exact-length
 * buffers, producing cJSON trees, plus a canonical compact writer.
 *
 * cJSON's parser accepts too much (leading zeros, raw control bytes, \uqqqq,
 * duplicate keys, invalid UTF-8, NUL truncation, 1e400): mw_json_parse() uses
 * its own single-pass strict scanner, which builds the cJSON tree as it goes
 * (cJSON_Create* nodes, allocated through mw_malloc via cJSON's hooks, or
 * carved from an arena: mw_json_parse_arena). cJSON's parser is never
 * called.
 *
 * Error offsets (spec/envelope.md, "Error offsets"): grammar faults report the
 * first byte at which the input stops being a prefix of a valid text (the
 * input length when it ends early); inside strings, a faulty escape reports
 * its backslash, faulty UTF-8 its first byte; a number that overflows to
 * infinity its first byte; a duplicate member name its opening quote; too_deep
 * the bracket that opens level max_depth + 1.
 *
 * Numbers are converted with strtod(): the process must keep LC_NUMERIC as
 * "C" (the default; the same holds for cJSON). */
#ifndef MW_JSON_H
#define MW_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#define MW_JSON_MAX_DEPTH       32          /* arrays+objects nesting, the top level counts as 1 */
#define MW_JSON_DEPTH_CAP       256         /* largest max_depth accepted (larger is clamped) */
#define MW_JSON_MAX_LEN         0xFFFFFFF0u /* longer inputs fail with too_large */
#define MW_JSON_WRITE_MAX_DEPTH 64          /* mw_json_write() refuses deeper trees (MW_EINVAL) */

/* A typed failure: which code, where, why. */
struct mw_parse_error {
    enum mw_code code; /* MW_CODE_BAD_JSON, MW_CODE_TOO_DEEP, MW_CODE_TOO_LARGE, ... */
    size_t offset;     /* byte offset of the fault in the input; SIZE_MAX when none applies */
    char message[128]; /* human-readable, NUL-terminated, ASCII */
};

/* Fills *err (NULL: does nothing) with code, offset (SIZE_MAX when none
 * applies) and a printf-formatted message, truncated to fit. Returns
 * MW_EINVAL, so a failing path can `return mw_parse_error_set(...)`. The one
 * place every decoder (json, envelope, messages) reports a failure. */
int mw_parse_error_set(struct mw_parse_error *err, enum mw_code code, size_t offset,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int mw_parse_error_vset(struct mw_parse_error *err, enum mw_code code, size_t offset,
                        const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/* Checks buf[0..len) (borrowed) as one strict I-JSON text; never reads
 * outside it and needs no NUL terminator. max_depth bounds nesting (<= 0:
 * MW_JSON_MAX_DEPTH; clamped to MW_JSON_DEPTH_CAP). err may be NULL.
 * Returns 0, MW_EINVAL (*err: bad_json, too_deep, or too_large beyond
 * MW_JSON_MAX_LEN) or MW_ENOMEM (duplicate-name table; *err: internal).
 * Memory used is O(number of member names), freed before return. */
int mw_json_check(const char *buf, size_t len, int max_depth, struct mw_parse_error *err);

/* Checks and parses into a cJSON tree in one pass. On success *out is owned
 * by the caller (cJSON_Delete); on failure *out is NULL. Returns 0, MW_EINVAL
 * (err filled) or MW_ENOMEM (err: internal). */
int mw_json_parse(const char *buf, size_t len, int max_depth, cJSON **out,
                  struct mw_parse_error *err);

/* Facts about one member of the top-level object, recorded from the source
 * text during the scan (cJSON cannot tell 1 from 1.0 or 1e0). */
struct mw_json_track {
    const char *key; /* in (borrowed): exact member name, NUL-terminated */
    bool found;      /* out: the top-level value is an object with this member */
    size_t offset;   /* out: byte offset of the member value's first byte */
    size_t len;      /* out: byte length of the member value's text */
    bool plain_int;  /* out: the value is a number written -?(0|[1-9][0-9]*) */
    /* out: the member's name and value are written exactly as mw_json_write
     * writes them (no whitespace, only the escapes it makes, integers of at
     * most 15 digits): mw_json_write of the parsed value gives back
     * buf[offset, offset + len). False means "not known to be", not
     * "differs": an escape or number spelled otherwise may still write back
     * the same. */
    bool canonical;
};

/* mw_json_parse() (out may be NULL: check only) that also fills track[0..n)
 * (caller storage; found=false for every entry on entry). Same returns. */
int mw_json_parse_tracked(const char *buf, size_t len, int max_depth, struct mw_json_track *track,
                          size_t n, cJSON **out, struct mw_parse_error *err);

/* An arena for a tree that is used and dropped at once (a channel payload,
 * read by one gateway and forgotten): its nodes and strings are carved from
 * blocks freed together by mw_json_arena_release(), not allocated one by
 * one. The first block is the caller's (buf of len bytes, e.g. on its stack;
 * NULL for none); further blocks come from mw_malloc, each at least twice
 * the last. A tree parsed into an arena must never reach cJSON_Delete() or
 * any cJSON call that frees, moves or adds nodes: it is read only, and dies
 * with the arena. */
struct mw_json_arena_block;
struct mw_json_arena {
    unsigned char *p, *end;             /* free space of the current block */
    struct mw_json_arena_block *blocks; /* the heap blocks, newest first */
    size_t next;                        /* the size of the next heap block */
};

void mw_json_arena_init(struct mw_json_arena *a, void *buf, size_t len);
/* Frees the heap blocks; every tree of a is gone. a may be initialised
 * again. */
void mw_json_arena_release(struct mw_json_arena *a);

/* mw_json_parse_tracked() with the tree (out, not NULL) in arena. On
 * failure the arena may hold unreachable memory until its release. */
int mw_json_parse_arena(const char *buf, size_t len, int max_depth, struct mw_json_track *track,
                        size_t n, struct mw_json_arena *arena, cJSON **out,
                        struct mw_parse_error *err);

/* Canonical compact writers (spec/envelope.md, "Canonical serialization").
 * Integral numbers in [-(2^53-1), 2^53-1] are printed as plain integers (-0
 * as "-0"); other numbers with the first of %.15g, %.16g, %.17g that reads
 * back as the same double. Strings escape only ", \ and bytes < 0x20 (\b \f
 * \n \r \t, else \u00xx lowercase); everything else is written raw.
 * Each returns 0, MW_ENOMEM, MW_ELIMIT (buffer bound) or MW_EINVAL (a value
 * that I-JSON cannot carry: NaN/Inf, invalid or noncharacter UTF-8, a NUL,
 * cJSON_Raw/invalid nodes, nesting over MW_JSON_WRITE_MAX_DEPTH). On error b
 * may hold a partial write: callers reset or discard it. Duplicate member
 * names are not detected (trees from mw_json_parse() have none). */
int mw_json_write(struct mw_buf *b, const cJSON *value);
int mw_json_write_string(struct mw_buf *b, const char *s, size_t len);
int mw_json_write_int(struct mw_buf *b, int64_t v);
int mw_json_write_number(struct mw_buf *b, double d);

/* Case-sensitive member lookup that compares the full key (never
 * cJSON_GetObjectItem). NULL when absent or obj is not an object. */
const cJSON *mw_json_get(const cJSON *obj, const char *key);

#endif /* MW_JSON_H */
