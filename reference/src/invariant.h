/* invariant: MW_ASSERT(cond), the check at every "cannot happen" branch.
 *
 * On in Debug, sanitizer and fuzz builds (CMake defines MW_ASSERTIONS
 * there, or -DMW_ASSERTIONS=ON asks for it): a violated invariant prints
 * the condition and its place and aborts, so unit tests, the sanitizers and
 * the fuzzers see it instead of a log line. Off in release builds, where it
 * compiles to nothing and evaluates nothing; the code after it still copes
 * with the case where it can. Never put a side effect in cond. */
#ifndef MW_INVARIANT_H
#define MW_INVARIANT_H

#ifdef MW_ASSERTIONS
/* Reports the failed condition and aborts. */
void mw_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));
#define MW_ASSERT(cond) ((cond) ? (void)0 : mw_assert_fail(#cond, __FILE__, __LINE__))
#else
#define MW_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

#endif /* MW_INVARIANT_H */
