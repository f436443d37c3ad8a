/* buf: bounded growable byte buffer. */
#include "buf.h"

#include "alloc.h"
#include "error.h"
#include "invariant.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void mw_buf_init(struct mw_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : (size_t)1 << 20;
}

void mw_buf_release(struct mw_buf *b)
{
    if (!b)
        return;
    mw_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void mw_buf_reset(struct mw_buf *b)
{
    mw_buf_truncate(b, 0);
}

void mw_buf_truncate(struct mw_buf *b, size_t len)
{
    MW_ASSERT(len <= b->len);
    if (len > b->len)
        return;
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

static int reserve(struct mw_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return MW_ELIMIT;
    need = b->len + extra + 1; /* NUL */
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    p = mw_realloc(b->data, cap);
    if (!p)
        return MW_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int mw_buf_append(struct mw_buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int mw_buf_puts(struct mw_buf *b, const char *s)
{
    return mw_buf_append(b, s, strlen(s));
}

int mw_buf_printf(struct mw_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return MW_EINVAL;
    if ((size_t)n < sizeof(small))
        return mw_buf_append(b, small, (size_t)n);
    rc = reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}
