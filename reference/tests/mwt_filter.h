/* mwt_filter: run some of a cmocka program's tests, as `ctest -R` picks
 * programs: `build/reference/test_session 'test_watch*'`, or the pattern in
 * MW_TEST_FILTER (cmocka's glob: '*' and '?'). Include after <cmocka.h>;
 * call first thing in main. */
#ifndef MWT_FILTER_H
#define MWT_FILTER_H

#include <stdlib.h>

static inline void mwt_filter(int argc, char **argv)
{
    const char *pattern = argc > 1 ? argv[1] : getenv("MW_TEST_FILTER");

    if (pattern && *pattern)
        cmocka_set_test_filter(pattern);
}

#endif /* MWT_FILTER_H */
