/* fuzz_diff_jansson: differential test of the strict JSON scanner against a
 * second strict parser, jansson 2.14.
 *
 * For arbitrary bytes: mw_json_check() and mw_json_parse() must agree with
 * each other (same verdict, code and offset), and with json_loadb() (flags
 * JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL; NUL
 * in strings rejected, trailing data rejected) on accept/reject, except for
 * the differences listed in fuzz/README.md ("jansson differences"), which are
 * filtered here:
 *   - noncharacters (U+FDD0..U+FDEF, U+xFFFE/xFFFF): I-JSON forbids them,
 *     jansson accepts them. Filtered when our error offset points at one.
 *   - nesting: we are run at MW_JSON_DEPTH_CAP (256), jansson allows 2048.
 *     Filtered when we report too_deep.
 *   - a NUL byte right after a number or a literal: jansson's lexer drops
 *     it ("[1\0]", "4\0", "[null\0]", "true\0" load). Filtered when our
 *     error offset is a NUL byte that follows a digit or true/false/null.
 * When both accept, the trees must be equal: same shapes, member names and
 * order, strings byte for byte, numbers bit for bit. The arena parse
 * (mw_json_parse_arena, with a small first block so that most inputs need
 * heap blocks too) must give the same verdict, error and tree. */
#include "fuzz_common.h"

#include "json.h"

#include <jansson.h>

#define DIFF_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL)

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads \uXXXX at p (6 bytes available); returns the code unit or -1. */
static long u_escape(const char *p, const char *end)
{
    long v = 0;
    int i;

    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    for (i = 2; i < 6; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static bool is_nonchar(uint32_t cp)
{
    return (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
}

/* Whether the text at buf+off is a noncharacter: an escape (or escaped
 * surrogate pair) or a raw well-formed UTF-8 sequence. */
static bool nonchar_at(const char *buf, size_t len, size_t off)
{
    const unsigned char *p = (const unsigned char *)buf + off;
    const char *end = buf + len;
    uint32_t cp;
    long hi, lo;

    if (off >= len)
        return false;
    if (p[0] == '\\') {
        hi = u_escape((const char *)p, end);
        if (hi < 0)
            return false;
        if (hi >= 0xD800 && hi <= 0xDBFF) {
            lo = u_escape((const char *)p + 6, end);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return false;
            cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        } else {
            cp = (uint32_t)hi;
        }
        return is_nonchar(cp);
    }
    if (p[0] == 0xEF && off + 3 <= len) { /* U+FDD0..U+FDEF, U+FFFE, U+FFFF */
        cp = ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && is_nonchar(cp);
    }
    if (p[0] >= 0xF0 && p[0] <= 0xF4 && off + 4 <= len) {
        cp = ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
             ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        return (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 &&
               cp >= 0x10000 && cp <= 0x10FFFF && is_nonchar(cp);
    }
    return false;
}

static bool ends_with(const char *buf, size_t off, const char *word)
{
    size_t n = strlen(word);

    return off >= n && memcmp(buf + off - n, word, n) == 0;
}

/* jansson drops a NUL that directly follows a number or a literal. */
static bool nul_after_token(const char *buf, size_t len, size_t off)
{
    if (off == 0 || off >= len || buf[off] != '\0')
        return false;
    return (buf[off - 1] >= '0' && buf[off - 1] <= '9') || ends_with(buf, off, "true") ||
           ends_with(buf, off, "false") || ends_with(buf, off, "null");
}

static bool same_value(const cJSON *c, json_t *j)
{
    switch (c->type & 0xFF) {
    case cJSON_False:
        return json_is_false(j);
    case cJSON_True:
        return json_is_true(j);
    case cJSON_NULL:
        return json_is_null(j);
    case cJSON_Number: {
        double d;
        if (!json_is_real(j))
            return false;
        d = json_real_value(j);
        return memcmp(&d, &c->valuedouble, sizeof(d)) == 0;
    }
    case cJSON_String:
        return json_is_string(j) && strlen(c->valuestring) == json_string_length(j) &&
               memcmp(c->valuestring, json_string_value(j), json_string_length(j)) == 0;
    case cJSON_Array: {
        const cJSON *x;
        size_t i = 0;
        if (!json_is_array(j))
            return false;
        for (x = c->child; x; x = x->next, i++)
            if (i >= json_array_size(j) || !same_value(x, json_array_get(j, i)))
                return false;
        return i == json_array_size(j);
    }
    case cJSON_Object: {
        const cJSON *x = c->child;
        const char *key;
        json_t *v;
        if (!json_is_object(j))
            return false;
        /* jansson keeps insertion order: walk both in step. */
        json_object_foreach(j, key, v)
        {
            if (!x || strcmp(x->string, key) != 0 || !same_value(x, v))
                return false;
            x = x->next;
        }
        return x == NULL;
    }
    default:
        return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup_exact(data, size);
    struct mw_parse_error e1, e2, e3;
    unsigned char first[256];
    struct mw_json_arena arena;
    json_error_t jerr;
    cJSON *tree = NULL, *atree = NULL;
    json_t *j;
    int r1, r2, r3;

    r1 = mw_json_check(buf, size, MW_JSON_DEPTH_CAP, &e1);
    r2 = mw_json_parse(buf, size, MW_JSON_DEPTH_CAP, &tree, &e2);
    /* check and parse are one scanner: identical verdicts and errors. */
    FUZZ_CHECK_MSG(r1 == r2, "check %d parse %d", r1, r2);
    FUZZ_CHECK(r1 == 0 || r1 == MW_EINVAL);
    if (r1) {
        FUZZ_CHECK(tree == NULL);
        FUZZ_CHECK_MSG(e1.code == e2.code && e1.offset == e2.offset,
                       "check %d@%zu (%s) parse %d@%zu (%s)", (int)e1.code, e1.offset, e1.message,
                       (int)e2.code, e2.offset, e2.message);
        FUZZ_CHECK(e1.code == MW_CODE_BAD_JSON || e1.code == MW_CODE_TOO_DEEP);
        FUZZ_CHECK(e1.offset <= size);
    } else {
        FUZZ_CHECK(tree != NULL);
        FUZZ_CHECK(fuzz_tree_ok(tree, 1, MW_JSON_DEPTH_CAP));
    }

    j = json_loadb(buf, size, DIFF_FLAGS, &jerr);
    if (r1 == 0) {
        FUZZ_CHECK_MSG(j != NULL, "we accept, jansson rejects: %s (line %d col %d pos %d)",
                       jerr.text, jerr.line, jerr.column, jerr.position);
        FUZZ_CHECK_MSG(same_value(tree, j), "trees differ");
    } else if (j != NULL) {
        /* We reject, jansson accepts: only the documented differences. */
        bool explained = e1.code == MW_CODE_TOO_DEEP || nonchar_at(buf, size, e1.offset) ||
                         nul_after_token(buf, size, e1.offset);
        FUZZ_CHECK_MSG(explained, "we reject (%s at %zu), jansson accepts", e1.message, e1.offset);
    }

    mw_json_arena_init(&arena, first, sizeof(first));
    r3 = mw_json_parse_arena(buf, size, MW_JSON_DEPTH_CAP, NULL, 0, &arena, &atree, &e3);
    FUZZ_CHECK_MSG(r3 == r2, "parse %d arena parse %d", r2, r3);
    if (r3) {
        FUZZ_CHECK(atree == NULL && e3.code == e2.code && e3.offset == e2.offset);
    } else {
        FUZZ_CHECK(fuzz_tree_ok(atree, 1, MW_JSON_DEPTH_CAP));
        FUZZ_CHECK_MSG(same_value(atree, j), "arena tree differs");
    }
    mw_json_arena_release(&arena);

    json_decref(j);
    cJSON_Delete(tree);
    free(buf);
    return 0;
}
