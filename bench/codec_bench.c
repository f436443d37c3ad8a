/* codec_bench: cost of the strict envelope codec against bare cJSON on a
 * typical ~200-byte match.assigned envelope.
 *
 *   parse:     mw_envelope_parse + clear   vs  cJSON_ParseWithLengthOpts + Delete
 *   serialize: mw_envelope_serialize       vs  cJSON_PrintUnformatted + free
 *
 * Each pair runs baseline and candidate alternately, R runs of N iterations
 * each; it prints the median ns/op of each and the median per-run ratio
 * (robust when other processes share the machine).
 * Usage: mw_codec_bench [-n iterations] [-r runs]. Target: strict <= 1.5x. */
#define _POSIX_C_SOURCE 200809L

#include "alloc.h"
#include "envelope.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char TYPICAL[] =
    "{\"type\":\"match.assigned\",\"v\":1,\"data\":{\"ticketId\":\"tk_01HZX3K9M2\","
    "\"matchId\":\"m_7f3a9c\",\"queue\":\"ranked_eu\",\"server\":{\"host\":\"203.0.113.7\","
    "\"port\":7777},\"players\":[\"p_1\",\"p_2\"],\"token\":\"abc.def.ghi\",\"version\":3}}";

struct ctx {
    const char *buf; /* exact-size copy, no NUL */
    size_t len;
    struct mw_envelope env;
    cJSON *tree;
};

static volatile size_t sink;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void run_cjson_parse(struct ctx *c, long n)
{
    for (long i = 0; i < n; i++) {
        const char *end = NULL;
        cJSON *t = cJSON_ParseWithLengthOpts(c->buf, c->len, &end, 0);
        if (!t || end != c->buf + c->len)
            abort();
        sink += (size_t)t->type;
        cJSON_Delete(t);
    }
}

static void run_strict_parse(struct ctx *c, long n)
{
    for (long i = 0; i < n; i++) {
        struct mw_envelope e;
        if (mw_envelope_parse(c->buf, c->len, &e, NULL) != 0)
            abort();
        sink += (size_t)e.v;
        mw_envelope_clear(&e);
    }
}

static void run_strict_json(struct ctx *c, long n)
{
    for (long i = 0; i < n; i++) {
        cJSON *t = NULL;
        if (mw_json_parse(c->buf, c->len, MW_JSON_MAX_DEPTH, &t, NULL) != 0)
            abort();
        sink += (size_t)t->type;
        cJSON_Delete(t);
    }
}

static void run_strict_check(struct ctx *c, long n)
{
    for (long i = 0; i < n; i++) {
        if (mw_json_check(c->buf, c->len, MW_JSON_MAX_DEPTH, NULL) != 0)
            abort();
        sink += 1;
    }
}

static void run_cjson_print(struct ctx *c, long n)
{
    for (long i = 0; i < n; i++) {
        char *s = cJSON_PrintUnformatted(c->tree);
        if (!s)
            abort();
        sink += (size_t)s[0];
        cJSON_free(s);
    }
}

static void run_strict_serialize(struct ctx *c, long n)
{
    for (long i = 0; i < n; i++) {
        struct mw_buf b;
        mw_buf_init(&b, MW_ENVELOPE_MAX_BYTES);
        if (mw_envelope_serialize(&c->env, &b) != 0)
            abort();
        sink += b.len;
        mw_buf_release(&b);
    }
}

static void run_strict_serialize_reuse(struct ctx *c, long n)
{
    struct mw_buf b;
    mw_buf_init(&b, MW_ENVELOPE_MAX_BYTES);
    for (long i = 0; i < n; i++) {
        mw_buf_reset(&b);
        if (mw_envelope_serialize(&c->env, &b) != 0)
            abort();
        sink += b.len;
    }
    mw_buf_release(&b);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double time_run(void (*fn)(struct ctx *, long), struct ctx *c, long n)
{
    double t0 = now_ns();
    fn(c, n);
    return (now_ns() - t0) / (double)n;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return v[n / 2];
}

/* Runs base and cand alternately (after a warm-up), so that load from other
 * processes hits both alike. Returns the medians of ns/op and of the per-run
 * ratio cand/base. */
static void measure_pair(void (*base)(struct ctx *, long), void (*cand)(struct ctx *, long),
                         struct ctx *c, long n, int runs, double *base_ns, double *cand_ns,
                         double *ratio)
{
    double tb[64], tc[64], tr[64];
    int r;

    base(c, n / 10 + 1);
    cand(c, n / 10 + 1);
    for (r = 0; r < runs; r++) {
        tb[r] = time_run(base, c, n);
        tc[r] = time_run(cand, c, n);
        tr[r] = tc[r] / tb[r];
    }
    *base_ns = median(tb, runs);
    *cand_ns = median(tc, runs);
    *ratio = median(tr, runs);
}

static void cpu_model(char *out, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];

    snprintf(out, n, "unknown");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 2;
                p[strcspn(p, "\n")] = '\0';
                snprintf(out, n, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    long n = 200000;
    int runs = 7, i;
    struct ctx c;
    char *copy, cpu[128];
    const char *end = NULL;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0)
            n = atol(argv[i + 1]);
        else if (strcmp(argv[i], "-r") == 0)
            runs = atoi(argv[i + 1]);
    }
    if (n < 1 || runs < 1 || runs > 64) {
        fprintf(stderr, "usage: mw_codec_bench [-n iterations] [-r runs (1..64)]\n");
        return 2;
    }
    mw_alloc_set(NULL); /* both sides allocate through the same hooks */
    c.len = sizeof(TYPICAL) - 1;
    copy = mw_malloc(c.len);
    if (!copy)
        return 1;
    memcpy(copy, TYPICAL, c.len);
    c.buf = copy;
    if (mw_envelope_parse(c.buf, c.len, &c.env, NULL) != 0)
        return 1;
    c.tree = cJSON_ParseWithLengthOpts(c.buf, c.len, &end, 0);
    if (!c.tree)
        return 1;

    cpu_model(cpu, sizeof(cpu));
    printf("envelope: %zu bytes; %ld iterations x %d runs (median); cpu: %s\n", c.len, n, runs,
           cpu);
    {
        static const struct {
            const char *name;
            void (*fn)(struct ctx *, long);
            int base; /* 0: parse baseline, 1: serialize baseline */
        } cands[] = {
            {"parse     mw_envelope_parse+clear          ", run_strict_parse, 0},
            {"parse     mw_json_parse+Delete (tree only) ", run_strict_json, 0},
            {"check     mw_json_check (no tree)          ", run_strict_check, 0},
            {"serialize mw_envelope_serialize (new buf)  ", run_strict_serialize, 1},
            {"serialize mw_envelope_serialize (reused)   ", run_strict_serialize_reuse, 1},
        };
        double ratios[5];
        size_t k;

        for (k = 0; k < sizeof(cands) / sizeof(cands[0]); k++) {
            double b, x, r;
            measure_pair(cands[k].base ? run_cjson_print : run_cjson_parse, cands[k].fn, &c, n,
                         runs, &b, &x, &r);
            printf("%s %8.1f ns/op  vs %s %8.1f ns/op  ratio %.2fx\n", cands[k].name, x,
                   cands[k].base ? "cJSON_PrintUnformatted+free     "
                                 : "cJSON_ParseWithLengthOpts+Delete",
                   b, r);
            ratios[k] = r;
        }
        printf("target strict <= 1.5x bare cJSON (median of per-run ratios): parse %s (%.2fx), "
               "serialize %s (%.2fx)\n",
               ratios[0] <= 1.5 ? "met" : "MISSED", ratios[0], ratios[3] <= 1.5 ? "met" : "MISSED",
               ratios[3]);
    }
    cJSON_Delete(c.tree);
    mw_envelope_clear(&c.env);
    mw_free(copy);
    return 0;
}
