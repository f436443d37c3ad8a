/* bench_hist: fixed-memory log-linear latency histogram (see bench_hist.h). */
#include "bench_hist.h"

#include <math.h>
#include <stdlib.h>

/* Exact buckets below 2^LINEAR_BITS; then HALF buckets per power of two. */
#define LINEAR_BITS 8
#define LINEAR      (1u << LINEAR_BITS) /* 256 */
#define HALF        (LINEAR / 2)        /* 128 */
#define MAX_MSB     39                  /* values < 2^40 */
#define N_BUCKETS   (LINEAR + (MAX_MSB - LINEAR_BITS + 1) * HALF)

struct mw_bench_hist {
    uint64_t counts[N_BUCKETS];
    uint64_t total;
    uint64_t min;
    uint64_t max;
    uint64_t clamped;
    double sum;
};

struct mw_bench_hist *mw_bench_hist_new(void)
{
    return calloc(1, sizeof(struct mw_bench_hist));
}

void mw_bench_hist_free(struct mw_bench_hist *h)
{
    free(h);
}

static unsigned bucket_of(uint64_t v)
{
    if (v < LINEAR)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - (LINEAR_BITS - 1);
    uint64_t top = v >> shift; /* in [HALF, LINEAR) */
    return LINEAR + (shift - 1) * HALF + (unsigned)(top - HALF);
}

/* The highest value that falls in bucket idx. */
static uint64_t bucket_high(unsigned idx)
{
    if (idx < LINEAR)
        return idx;
    unsigned shift = (idx - LINEAR) / HALF + 1;
    uint64_t top = (idx - LINEAR) % HALF + HALF;
    return (top << shift) + (((uint64_t)1 << shift) - 1);
}

void mw_bench_hist_record(struct mw_bench_hist *h, uint64_t ns)
{
    if (h->total == 0 || ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
    h->total++;
    h->sum += (double)ns;
    if (ns >= MW_BENCH_HIST_MAX_NS) {
        h->clamped++;
        ns = MW_BENCH_HIST_MAX_NS - 1;
    }
    h->counts[bucket_of(ns)]++;
}

uint64_t mw_bench_hist_count(const struct mw_bench_hist *h)
{
    return h->total;
}

uint64_t mw_bench_hist_min(const struct mw_bench_hist *h)
{
    return h->total ? h->min : 0;
}

uint64_t mw_bench_hist_max(const struct mw_bench_hist *h)
{
    return h->max;
}

double mw_bench_hist_mean(const struct mw_bench_hist *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}

uint64_t mw_bench_hist_clamped(const struct mw_bench_hist *h)
{
    return h->clamped;
}

uint64_t mw_bench_hist_percentile(const struct mw_bench_hist *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p > 100.0)
        p = 100.0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < N_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

void mw_bench_hist_merge(struct mw_bench_hist *dst, const struct mw_bench_hist *src)
{
    if (src->total == 0)
        return;
    for (unsigned i = 0; i < N_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    if (dst->total == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->total += src->total;
    dst->sum += src->sum;
    dst->clamped += src->clamped;
}
