/* log: the single logging entry point and a token-bucket rate limiter. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

/* Process-wide, set once at start-up before the loop runs (like the allocator). */
static mw_log_sink log_sink;
static void *log_ud;
static enum mw_log_level log_max = MW_LOG_NOTICE;

void mw_log_setup(mw_log_sink sink, void *ud, enum mw_log_level max_level)
{
    log_sink = sink;
    log_ud = ud;
    log_max = max_level;
}

void mw_log(enum mw_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"E", "W", "N", "I", "D"};
    char line[512];
    va_list ap;

    if (level > log_max)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (log_sink)
        log_sink(level, line, log_ud);
    else
        fprintf(stderr, "[%s] %s\n", names[level], line);
}
