/* utf8: the one UTF-8 rule of the server (RFC 3629: no overlong forms, no
 * UTF-16 surrogates, nothing above U+10FFFF), used whole by the JSON scanner
 * (json.c) and fragment by fragment by the gateway (MSG-092). */
#ifndef MW_UTF8_H
#define MW_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* For a lead byte c >= 0x80: false when no sequence starts with it;
 * otherwise true with *need the continuation bytes that follow (1..3) and
 * [*lo, *hi] the range allowed for the first of them (the others are
 * always 0x80..0xBF). */
static inline bool mw_utf8_lead(unsigned char c, unsigned *need, unsigned char *lo,
                                unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        *need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        *need = 2;
        if (c == 0xE0)
            *lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            *hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        *need = 3;
        if (c == 0xF0)
            *lo = 0x90; /* no overlong forms */
        else if (c == 0xF4)
            *hi = 0x8F; /* at most U+10FFFF */
    } else {
        return false;
    }
    return true;
}

/* An incremental checker: zero-initialise, feed the bytes of one message
 * in as many pieces as they come, and at the end of the message check
 * mw_utf8_complete(). */
struct mw_utf8 {
    uint8_t need;   /* continuation bytes still expected */
    uint8_t lo, hi; /* allowed range of the next continuation byte */
};

/* Feeds p[0..n). Returns false at the first byte that cannot continue
 * valid UTF-8 (the state is then meaningless). */
bool mw_utf8_feed(struct mw_utf8 *v, const unsigned char *p, size_t n);

/* Whether what was fed so far ends on a character boundary. */
static inline bool mw_utf8_complete(const struct mw_utf8 *v)
{
    return v->need == 0;
}

#endif /* MW_UTF8_H */
