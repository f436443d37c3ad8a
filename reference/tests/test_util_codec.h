/* test_util_codec: header-only helpers for the codec tests (test_json,
 * test_envelope): a leak-counting allocator, file reading, vector indexes. */
#ifndef MW_TEST_UTIL_CODEC_H
#define MW_TEST_UTIL_CODEC_H

#include "alloc.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counts live blocks so OOM tests can assert that every failure path frees
 * everything. Blocks carry a size header so realloc can be tracked. */
struct mwt_counter {
    long live;
};

static inline void *mwt_malloc(size_t size, void *ud)
{
    void *p = malloc(size);
    if (p)
        ((struct mwt_counter *)ud)->live++;
    return p;
}

static inline void *mwt_realloc(void *ptr, size_t size, void *ud)
{
    void *p = realloc(ptr, size);
    if (p && !ptr)
        ((struct mwt_counter *)ud)->live++;
    return p;
}

static inline void mwt_free(void *ptr, void *ud)
{
    if (ptr)
        ((struct mwt_counter *)ud)->live--;
    free(ptr);
}

static struct mwt_counter mwt_count;
static const struct mw_allocator mwt_allocator = {
    .malloc = mwt_malloc,
    .realloc = mwt_realloc,
    .free = mwt_free,
    .ud = &mwt_count,
};

/* Installs the counting allocator (also as cJSON's hooks). */
static inline void mwt_alloc_install(void)
{
    mw_alloc_set(&mwt_allocator);
}

static inline long mwt_live(void)
{
    return mwt_count.live;
}

/* Reads a whole file into an exact-size mw_malloc'd buffer (no NUL, so
 * sanitizers catch reads past the end). NULL on error. */
static inline char *mwt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = mw_malloc((size_t)n);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            mw_free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

/* Copies s (n bytes) into an exact-size buffer, for boundary checking. */
static inline char *mwt_exact(const char *s, size_t n)
{
    char *p = mw_malloc(n);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

/* Loads spec/vectors/<suite>/index.json with the strict parser itself. */
static inline cJSON *mwt_load_index(const char *suite)
{
    char path[512];
    size_t len = 0;
    char *buf;
    cJSON *root = NULL;
    struct mw_parse_error err;

    snprintf(path, sizeof(path), "%s/spec/vectors/%s/index.json", MW_SOURCE_DIR, suite);
    buf = mwt_read_file(path, &len);
    if (!buf)
        return NULL;
    if (mw_json_parse(buf, len, 8, &root, &err) != 0)
        fprintf(stderr, "%s: %s at %zu: %s\n", path, mw_code_name(err.code), err.offset,
                err.message);
    mw_free(buf);
    return root;
}

/* Reads a vector's file (rel to the suite directory). */
static inline char *mwt_read_vector(const char *suite, const char *rel, size_t *len)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/spec/vectors/%s/%s", MW_SOURCE_DIR, suite, rel);
    return mwt_read_file(path, len);
}

static inline const char *mwt_str(const cJSON *obj, const char *key)
{
    const cJSON *v = mw_json_get(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#endif /* MW_TEST_UTIL_CODEC_H */
