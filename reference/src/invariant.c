/* invariant: the failure path of MW_ASSERT (see invariant.h). */
#include "invariant.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef MW_ASSERTIONS
void mw_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "matchwire: invariant violated at %s:%d: %s\n", file, line, cond);
    fflush(stderr);
    abort();
}
#else
/* A translation unit must not be empty (ISO C). */
typedef int mw_invariant_unused;
#endif
