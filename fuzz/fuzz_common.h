/* fuzz_common: helpers shared by the libFuzzer harnesses (and their replay
 * driver): the entry-point prototypes, a trap that names the broken
 * invariant, exact-length input copies, and independent re-implementations
 * of the envelope rules (so a harness never checks the codec with the
 * codec's own predicates). Header-only: every function is static inline. */
#ifndef MW_FUZZ_COMMON_H
#define MW_FUZZ_COMMON_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer entry points (defined by each harness). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant broke: say which, where, and abort (libFuzzer and the replay
 * driver both report the input that did it). */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_CHECK_MSG(cond, ...)                                                                  \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d): ", #cond, __FILE__, __LINE__);         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A heap copy of exactly size bytes (at least 1 byte allocated, so size 0
 * still yields a unique pointer): ASan then catches any read past the end,
 * which a fuzzer's own buffer might hide. Caller frees with free(). */
static inline char *fuzz_dup_exact(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);

    FUZZ_CHECK(p != NULL);
    if (size)
        memcpy(p, data, size);
    else
        p[0] = '\0'; /* never read as input (size 0), but defined */
    return p;
}

/* ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$, 1..64 bytes. */
static inline bool fuzz_type_ok(const char *s)
{
    size_t n = strlen(s), i;
    bool seg_start = true;

    if (n == 0 || n > 64)
        return false;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (seg_start) {
            if (!(c >= 'a' && c <= 'z'))
                return false;
            seg_start = false;
        } else if (c == '.') {
            seg_start = true;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return !seg_start;
}

/* 1..64 bytes of printable ASCII (0x20..0x7E). */
static inline bool fuzz_id_ok(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > 64)
        return false;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
            return false;
    return true;
}

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF), no NUL,
 * no noncharacter (I-JSON, RFC 7493 2.1). s is NUL-terminated. */
static inline bool fuzz_ijson_string_ok(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    while (*s) {
        uint32_t cp;
        size_t n, i;
        if (s[0] < 0x80) {
            s++;
            continue;
        } else if (s[0] >= 0xC2 && s[0] <= 0xDF) {
            n = 2;
            cp = s[0] & 0x1F;
        } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
            n = 3;
            cp = s[0] & 0x0F;
        } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
            n = 4;
            cp = s[0] & 0x07;
        } else {
            return false;
        }
        for (i = 1; i < n; i++) {
            if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
                return false;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return false;
        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
            return false;
        s += n;
    }
    return true;
}

/* Walks a tree as the strict parser must have built it: every node of a
 * known type, strings and names valid I-JSON strings, numbers finite, no
 * duplicate member names, nesting (this node at level `level`, the top level
 * being 1) within max_depth. Returns false at the first violation. */
static inline bool fuzz_tree_ok(const cJSON *node, int level, int max_depth)
{
    const cJSON *c, *d;

    if (!node)
        return false;
    switch (node->type & 0xFF) {
    case cJSON_False:
    case cJSON_True:
    case cJSON_NULL:
        return true;
    case cJSON_Number:
        return isfinite(node->valuedouble);
    case cJSON_String:
        return node->valuestring && fuzz_ijson_string_ok(node->valuestring);
    case cJSON_Array:
    case cJSON_Object:
        /* Only arrays and objects nest (ENV depth rule): a scalar inside an
         * array at depth 32 is within the limit. */
        if (level > max_depth)
            return false;
        for (c = node->child; c; c = c->next) {
            if ((node->type & 0xFF) == cJSON_Object) {
                if (!c->string || !fuzz_ijson_string_ok(c->string))
                    return false;
                for (d = node->child; d != c; d = d->next)
                    if (strcmp(d->string, c->string) == 0)
                        return false;
            }
            if (!fuzz_tree_ok(c, level + 1, max_depth))
                return false;
        }
        return true;
    default:
        return false;
    }
}

/* Deterministic pseudo-random source for harnesses that need ticket or
 * match ids (splitmix64; ud points to caller-owned uint64_t[2], [0] the seed).
 * Matches mw_random_fn. */
static inline int fuzz_random(void *ud, void *buf, size_t n)
{
    uint64_t *state = ud;
    unsigned char *out = buf;
    size_t i;

    for (i = 0; i < n; i++) {
        uint64_t z;
        if (i % 8 == 0) {
            z = (*state += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            memcpy(&state[1], &z, sizeof(z));
        }
        out[i] = ((const unsigned char *)&state[1])[i % 8];
    }
    return 0;
}

#endif /* MW_FUZZ_COMMON_H */
