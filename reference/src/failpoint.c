/* failpoint: test-only crash points (see failpoint.h). */
#include "failpoint.h"

#ifdef MW_FAILPOINTS
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Whether `name` is an element of the comma-separated list. */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len == n && memcmp(p, name, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

void mw_failpoint_crash(const char *name)
{
    const char *list = getenv("MW_FAILPOINTS");

    if (!list || !listed(list, name))
        return;
    mw_log(MW_LOG_ERR, "failpoint %s: killing this process (SIGKILL)", name);
    raise(SIGKILL);
}
#else
void mw_failpoint_crash(const char *name)
{
    (void)name;
}
#endif
