/* alloc: the one allocator every Matchwire module (and cJSON) goes through.
 *
 * Tests swap it to fail the Nth allocation (nghttp2/sqlite style OOM
 * injection). The allocator is process-wide because cJSON's hooks are; it is
 * set once at start-up, before any other thread or loop runs. */
#ifndef MW_ALLOC_H
#define MW_ALLOC_H

#include <stddef.h>

struct mw_allocator {
    void *(*malloc)(size_t size, void *ud);
    void *(*realloc)(void *ptr, size_t size, void *ud);
    void (*free)(void *ptr, void *ud);
    void *ud;
};

/* Installs a (borrowed, must outlive its use) allocator, or the libc one when
 * a is NULL. Also installs it as cJSON's hooks. */
void mw_alloc_set(const struct mw_allocator *a);

void *mw_malloc(size_t size);
void *mw_calloc(size_t n, size_t size); /* NULL on overflow of n*size */
void *mw_realloc(void *ptr, size_t size);
void mw_free(void *ptr);                   /* mw_free(NULL) does nothing */
char *mw_strndup(const char *s, size_t n); /* caller frees with mw_free(); NUL-terminated */

/* Test helper: after this call, the (n+1)th allocation from now fails and
 * every later one too, until mw_alloc_fail_reset(). n < 0 disables failing.
 * Returns nothing; counts allocations in mw_alloc_count(). */
void mw_alloc_fail_after(long n);
void mw_alloc_fail_reset(void);
unsigned long mw_alloc_count(void);

#endif /* MW_ALLOC_H */
