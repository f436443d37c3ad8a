/* rfc3339: RFC 3339 UTC timestamps as the protocol writes and reads them
 * (spec/messages.md §6: `expiresAt`, `createdAt`, `assignedAt`). */
#ifndef MW_RFC3339_H
#define MW_RFC3339_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes unix_ms as "2026-11-27T11:40:48.123Z" (always 24 chars + NUL,
 * milliseconds, UTC "Z"). Times outside four-digit years are written as
 * the epoch, so the output is always well-formed. */
void mw_rfc3339_format(int64_t unix_ms, char out[32]);

/* Reads an RFC 3339 date-time in UTC from s[0..len) (exact length):
 * YYYY-MM-DD"T"HH:MM:SS[.frac]"Z" ("t"/"z" also, as RFC 3339 allows; any
 * number of fraction digits, milliseconds kept). Numeric offsets are
 * refused: the protocol's timestamps are UTC with Z. Returns true with
 * *ms_out set, false for anything else (*ms_out untouched). */
bool mw_rfc3339_parse(const char *s, size_t len, int64_t *ms_out);

#endif /* MW_RFC3339_H */
