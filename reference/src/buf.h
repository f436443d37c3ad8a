/* buf: a growable byte buffer with a hard upper bound, for building replies
 * and serialized envelopes. */
#ifndef MW_BUF_H
#define MW_BUF_H

#include <stddef.h>

struct mw_buf {
    char *data; /* owned; NUL-terminated after every successful append */
    size_t len;
    size_t cap;
    size_t max; /* appends that would exceed max bytes fail with MW_ELIMIT */
};

/* Initialises an empty buffer bounded to max bytes (0: 1 MiB). No allocation. */
void mw_buf_init(struct mw_buf *b, size_t max);
/* Frees the storage; the buffer may be re-initialised. NULL-safe. */
void mw_buf_release(struct mw_buf *b);
/* Drops the contents, keeps the storage. */
void mw_buf_reset(struct mw_buf *b);
/* Cuts the contents back to their first len bytes (len <= b->len: undoes
 * appends made after a mark, e.g. on a failed encode), keeps the storage. */
void mw_buf_truncate(struct mw_buf *b, size_t len);

/* Each returns 0, MW_ENOMEM, or MW_ELIMIT (buffer unchanged on error). */
int mw_buf_append(struct mw_buf *b, const void *p, size_t n);
int mw_buf_puts(struct mw_buf *b, const char *s);
int mw_buf_printf(struct mw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* MW_BUF_H */
