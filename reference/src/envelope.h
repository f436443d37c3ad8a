/* envelope: the v1 envelope codec (spec/envelope.md).
 *
 * An envelope is one strict I-JSON object {"type", "v", "data", "id"?} of at
 * most 65,536 bytes and nesting depth 32. This module checks structure only;
 * whether a type/version is known is the message catalogue's job
 * (messages.h). */
#ifndef MW_ENVELOPE_H
#define MW_ENVELOPE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "json.h"

#define MW_ENVELOPE_MAX_BYTES 65536
#define MW_ENVELOPE_MAX_DEPTH 32
#define MW_TYPE_MAX 64 /* bytes */
#define MW_ID_MAX 64   /* bytes */

struct mw_envelope {
    char type[MW_TYPE_MAX + 1]; /* NUL-terminated, matches ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$ */
    int64_t v;                  /* 1 .. 2^31-1 */
    cJSON *data;                /* owned: always an object (possibly empty) */
    bool has_id;
    char id[MW_ID_MAX + 1]; /* NUL-terminated, 1..64 printable ASCII bytes when has_id */
};

/* Parses buf[0..len) (no NUL needed) into *out (caller storage). On success
 * *out owns its data tree: release with mw_envelope_clear(). On failure *out
 * holds nothing to release and *err says why: too_large (len > 65,536, offset
 * 65536), bad_json / too_deep (offset of the fault), bad_envelope (offset of
 * the offending member's value, or 0). Returns 0, MW_EINVAL or MW_ENOMEM. */
int mw_envelope_parse(const char *buf, size_t len, struct mw_envelope *out,
                      struct mw_parse_error *err);

/* Same checks on an already parsed tree (borrowed; e.g. the envelope nested in
 * a channel payload). On success out->data is a deep copy owned by *out. */
int mw_envelope_from_json(const cJSON *root, struct mw_envelope *out,
                          struct mw_parse_error *err);

/* Releases what *e owns; e may then be reused. NULL-safe. */
void mw_envelope_clear(struct mw_envelope *e);

/* Appends the canonical compact serialization to b:
 * {"type":...,"v":...,"id":...,"data":...} ("id" only when has_id).
 * parse(serialize(e)) equals e. Returns 0, MW_ENOMEM, MW_ELIMIT, MW_EINVAL. */
int mw_envelope_serialize(const struct mw_envelope *e, struct mw_buf *b);

/* Deep equality (numbers compared bit-exactly). */
bool mw_envelope_equal(const struct mw_envelope *a, const struct mw_envelope *b);

#endif /* MW_ENVELOPE_H */
