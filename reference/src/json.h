/* json: strict I-JSON (RFC 8259 restricted by RFC 7493) over exact-length
 * buffers, on top of cJSON, plus a canonical compact writer.
 *
 * cJSON alone accepts too much (leading zeros, raw control bytes, \uqqqq,
 * duplicate keys, invalid UTF-8, NUL truncation): mw_json_parse() runs its own
 * strict scanner first and only then builds the cJSON tree. */
#ifndef MW_JSON_H
#define MW_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#define MW_JSON_MAX_DEPTH 32 /* arrays+objects nesting, the top level counts as 1 */

/* A typed failure: which code, where, why. */
struct mw_parse_error {
    enum mw_code code; /* MW_CODE_BAD_JSON, MW_CODE_TOO_DEEP, MW_CODE_TOO_LARGE, ... */
    size_t offset;     /* byte offset of the fault in the input; SIZE_MAX when none applies */
    char message[128]; /* human-readable, NUL-terminated, ASCII */
};

/* Checks buf[0..len) as one strict I-JSON text; never reads outside it and
 * needs no NUL terminator. max_depth bounds nesting (0: MW_JSON_MAX_DEPTH).
 * Returns 0, or MW_EINVAL with *err filled (err may be NULL). */
int mw_json_check(const char *buf, size_t len, int max_depth, struct mw_parse_error *err);

/* Checks, then parses into a cJSON tree. On success *out is owned by the
 * caller (cJSON_Delete). Returns 0, MW_EINVAL (err filled) or MW_ENOMEM. */
int mw_json_parse(const char *buf, size_t len, int max_depth, cJSON **out,
                  struct mw_parse_error *err);

/* Canonical compact writers. Integers in [-(2^53-1), 2^53-1] are printed
 * exactly as integers; other numbers with the shortest text that reads back
 * as the same double. Strings are escaped minimally (", \, control bytes).
 * Each returns 0, MW_ENOMEM, MW_ELIMIT (buffer bound) or MW_EINVAL (a value
 * that I-JSON cannot carry: NaN/Inf, invalid tree). */
int mw_json_write(struct mw_buf *b, const cJSON *value);
int mw_json_write_string(struct mw_buf *b, const char *s, size_t len);
int mw_json_write_int(struct mw_buf *b, int64_t v);

/* Case-sensitive member lookup that compares the full key (never
 * cJSON_GetObjectItem). NULL when absent or obj is not an object. */
const cJSON *mw_json_get(const cJSON *obj, const char *key);

#endif /* MW_JSON_H */
