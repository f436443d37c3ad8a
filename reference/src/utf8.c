/* utf8: the incremental checker (see utf8.h). */
#include "utf8.h"

bool mw_utf8_feed(struct mw_utf8 *v, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i], lo, hi;
        unsigned need;

        if (v->need) {
            if (c < v->lo || c > v->hi)
                return false;
            v->lo = 0x80;
            v->hi = 0xBF;
            v->need--;
            continue;
        }
        if (c < 0x80)
            continue;
        if (!mw_utf8_lead(c, &need, &lo, &hi))
            return false;
        v->need = (uint8_t)need;
        v->lo = lo;
        v->hi = hi;
    }
    return true;
}
