/* bench_hist: a fixed-memory log-linear latency histogram (HDR style) for
 * the benchmark. Values are nanoseconds. Values below 256 ns are exact;
 * above, each power of two is split into 128 equal buckets, so a reported
 * percentile is within 1/128 (0.8 %) of the true value. Values above
 * MW_BENCH_HIST_MAX_NS are clamped into the top bucket and counted in
 * `clamped`; the exact maximum is tracked separately. No allocation after
 * mw_bench_hist_new(). */
#ifndef MW_BENCH_HIST_H
#define MW_BENCH_HIST_H

#include <stdint.h>

/* 2^40 ns (~18 minutes): longer than any bounded run. */
#define MW_BENCH_HIST_MAX_NS ((uint64_t)1 << 40)

struct mw_bench_hist;

/* Returns an empty histogram, or NULL on allocation failure. Caller frees
 * with mw_bench_hist_free(). */
struct mw_bench_hist *mw_bench_hist_new(void);
/* NULL-safe. */
void mw_bench_hist_free(struct mw_bench_hist *h);

/* Counts one value (ns). */
void mw_bench_hist_record(struct mw_bench_hist *h, uint64_t ns);

/* Number of values recorded. */
uint64_t mw_bench_hist_count(const struct mw_bench_hist *h);
/* Exact smallest and largest values recorded (0 when empty). */
uint64_t mw_bench_hist_min(const struct mw_bench_hist *h);
uint64_t mw_bench_hist_max(const struct mw_bench_hist *h);
/* Arithmetic mean (ns; 0 when empty). */
double mw_bench_hist_mean(const struct mw_bench_hist *h);
/* Values above MW_BENCH_HIST_MAX_NS, clamped into the top bucket. */
uint64_t mw_bench_hist_clamped(const struct mw_bench_hist *h);

/* The value at percentile p (0 < p <= 100): the highest value equivalent to
 * the bucket holding the ceil(p/100 * count)-th smallest value, capped at the
 * exact maximum, so it never understates. 0 when empty. */
uint64_t mw_bench_hist_percentile(const struct mw_bench_hist *h, double p);

/* Adds every count of src to dst. */
void mw_bench_hist_merge(struct mw_bench_hist *dst, const struct mw_bench_hist *src);

#endif /* MW_BENCH_HIST_H */
