/* rfc3339: the protocol's timestamps (spec/messages.md §6), written and
 * read side by side so the two cannot drift apart. Pure: no time zone, no
 * libc locale or TZ state on the parse side. */
#include "rfc3339.h"

#include <string.h>

/* ---- Format ------------------------------------------------------------- */

static void put_digits(char *p, unsigned v, int n)
{
    while (n-- > 0) {
        p[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
 * civil_from_days, the inverse of days_from_civil below). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void mw_rfc3339_format(int64_t unix_ms, char out[32])
{
    /* Four-digit years only: 0000-01-01 .. 9999-12-31T23:59:59.999. */
    static const int64_t lo = -62167219200000LL, hi = 253402300799999LL;
    int64_t days, ms_of_day, y;
    unsigned mo, d, secs;

    if (unix_ms < lo || unix_ms > hi) {
        /* Clamped to the epoch so the output is always well-formed. */
        memcpy(out, "1970-01-01T00:00:00.000Z", 25);
        return;
    }
    days = unix_ms / 86400000;
    ms_of_day = unix_ms % 86400000;
    if (ms_of_day < 0) { /* floor division for times before 1970 */
        ms_of_day += 86400000;
        days -= 1;
    }
    civil_from_days(days, &y, &mo, &d);
    secs = (unsigned)(ms_of_day / 1000);
    /* YYYY-MM-DDTHH:MM:SS.sssZ */
    put_digits(out, (unsigned)y, 4);
    out[4] = '-';
    put_digits(out + 5, mo, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, secs / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, secs / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, secs % 60, 2);
    out[19] = '.';
    put_digits(out + 20, (unsigned)(ms_of_day % 1000), 3);
    out[23] = 'Z';
    out[24] = '\0';
}

/* ---- Parse -------------------------------------------------------------- */

static int read_digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): no time zone, no libc state. */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool mw_rfc3339_parse(const char *s, size_t len, int64_t *ms_out)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, mon, day, hour, min, sec, ms = 0;
    size_t p = 19;

    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return false;
    year = read_digits(s, 4);
    mon = read_digits(s + 5, 2);
    day = read_digits(s + 8, 2);
    hour = read_digits(s + 11, 2);
    min = read_digits(s + 14, 2);
    sec = read_digits(s + 17, 2);
    if (year < 0 || mon < 1 || mon > 12 || day < 1 || hour < 0 || hour > 23 || min < 0 ||
        min > 59 || sec < 0 || sec > 60)
        return false;
    if (day > dim[mon - 1] + (mon == 2 && is_leap(year)))
        return false;
    if (s[p] == '.') {
        size_t start = ++p;
        while (p < len && s[p] >= '0' && s[p] <= '9') {
            if (p - start < 3)
                ms = ms * 10 + (s[p] - '0');
            p++;
        }
        if (p == start)
            return false;
        for (size_t k = p - start; k < 3; k++)
            ms *= 10;
    }
    if (p + 1 != len || (s[p] != 'Z' && s[p] != 'z'))
        return false;
    *ms_out = ((days_from_civil(year, mon, day) * 24 + hour) * 60 + min) * 60000 +
              (int64_t)sec * 1000 + ms;
    return true;
}
