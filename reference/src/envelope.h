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
#define MW_TYPE_MAX           64 /* bytes */
#define MW_ID_MAX             64 /* bytes */

struct mw_envelope {
    char type[MW_TYPE_MAX + 1]; /* NUL-terminated, matches ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$ */
    int64_t v;                  /* 1 .. 2^31-1 */
    cJSON *data;                /* owned: always an object (possibly empty) */
    bool has_id;
    char id[MW_ID_MAX + 1]; /* NUL-terminated, 1..64 printable ASCII bytes when has_id */
};

/* Parses buf[0..len) (borrowed; no NUL needed) into *out (caller storage).
 * On success *out owns its data tree: release with mw_envelope_clear(). On
 * failure *out holds nothing to release and *err (may be NULL) says why:
 *   too_large    len > 65,536; offset 65536 (the first byte over the limit)
 *   bad_json     not strict I-JSON; offset of the fault (json.h)
 *   too_deep     nesting over 32; offset of the bracket opening level 33
 *   bad_envelope offset of the offending member's value, of the top-level
 *                value when it is not an object, SIZE_MAX for a missing member
 * Checks run in that order, then members type, v, id, data; the first failure
 * is reported. After a bad_envelope failure, out->has_id/out->id are set when
 * the top-level object has a valid "id" (so the error can echo it, MSG-012);
 * out->data is NULL. Returns 0, MW_EINVAL or MW_ENOMEM (err: internal). */
int mw_envelope_parse(const char *buf, size_t len, struct mw_envelope *out,
                      struct mw_parse_error *err);

/* Same member checks on an already parsed tree (borrowed; e.g. the envelope
 * nested in a channel payload, parsed with mw_json_parse()). Without source
 * text `v` is accepted when its double is an integer in range (so 1.0 passes
 * here) and offsets are SIZE_MAX. On success out->data is a deep copy owned
 * by *out. Returns 0, MW_EINVAL (bad_envelope) or MW_ENOMEM. */
int mw_envelope_from_json(const cJSON *root, struct mw_envelope *out, struct mw_parse_error *err);

/* mw_envelope_from_json() without the copy: on success out->data is
 * root's "data" member, borrowed (valid while root lives, read only; never
 * mw_envelope_clear() a view). Serializing a view works as for an owned
 * envelope. Same returns but for MW_ENOMEM, which it cannot fail with. */
int mw_envelope_view_json(const cJSON *root, struct mw_envelope *out, struct mw_parse_error *err);

/* Releases what *e owns; e may then be reused. NULL-safe. */
void mw_envelope_clear(struct mw_envelope *e);

/* Appends the canonical compact serialization to b:
 * {"type":...,"v":...,"id":...,"data":...} ("id" only when has_id).
 * parse(serialize(e)) equals e, as long as the output stays within the
 * 65,536-byte envelope limit (the canonical form can outgrow the input, e.g.
 * 9e15 becomes 16 digits; spec ENV-065). Returns 0, MW_ENOMEM, MW_ELIMIT, or MW_EINVAL
 * when *e breaks a rule (type/id syntax, v range, data not an object, a value
 * json.h cannot write). On error b is restored to its previous length. The
 * 65,536-byte limit is the caller's bound on b. */
int mw_envelope_serialize(const struct mw_envelope *e, struct mw_buf *b);

/* Deep equality: same type, v, id, and data with the same members in the same
 * order; numbers compared bit-exactly (so 0 != -0). */
bool mw_envelope_equal(const struct mw_envelope *a, const struct mw_envelope *b);

/* Predicates for the member rules, usable on their own (s: n bytes). */
bool mw_envelope_type_valid(const char *s, size_t n);
bool mw_envelope_id_valid(const char *s, size_t n);

#endif /* MW_ENVELOPE_H */
