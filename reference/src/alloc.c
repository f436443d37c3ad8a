/* alloc: process-wide injectable allocator, shared with cJSON. */
#include "alloc.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *libc_malloc(size_t size, void *ud)
{
    (void)ud;
    return malloc(size);
}

static void *libc_realloc(void *ptr, size_t size, void *ud)
{
    (void)ud;
    return realloc(ptr, size);
}

static void libc_free(void *ptr, void *ud)
{
    (void)ud;
    free(ptr);
}

static const struct mw_allocator libc_allocator = {
    .malloc = libc_malloc,
    .realloc = libc_realloc,
    .free = libc_free,
    .ud = NULL,
};

/* Process-wide by necessity (cJSON hooks are global); set before any loop runs. */
static const struct mw_allocator *cur = &libc_allocator;
static long fail_after = -1;
static unsigned long n_allocs;

static int should_fail(void)
{
    n_allocs++;
    if (fail_after < 0)
        return 0;
    if (fail_after == 0)
        return 1;
    fail_after--;
    return 0;
}

void *mw_malloc(size_t size)
{
    if (should_fail())
        return NULL;
    return cur->malloc(size ? size : 1, cur->ud);
}

void *mw_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = mw_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *mw_realloc(void *ptr, size_t size)
{
    if (should_fail())
        return NULL;
    return cur->realloc(ptr, size ? size : 1, cur->ud);
}

void mw_free(void *ptr)
{
    if (ptr)
        cur->free(ptr, cur->ud);
}

char *mw_strndup(const char *s, size_t n)
{
    char *p = mw_malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void *cjson_malloc(size_t size)
{
    return mw_malloc(size);
}

static void cjson_free(void *ptr)
{
    mw_free(ptr);
}

void mw_alloc_set(const struct mw_allocator *a)
{
    cJSON_Hooks hooks = {.malloc_fn = cjson_malloc, .free_fn = cjson_free};

    cur = a ? a : &libc_allocator;
    cJSON_InitHooks(&hooks);
}

void mw_alloc_fail_after(long n)
{
    /* Route cJSON through us so its allocations can fail too. */
    mw_alloc_set(cur);
    fail_after = n;
}

void mw_alloc_fail_reset(void)
{
    fail_after = -1;
}

unsigned long mw_alloc_count(void)
{
    return n_allocs;
}
