/* codec_bench: cost of the strict envelope codec against bare cJSON on a
 * typical ~200-byte match.assigned envelope.
 *
 *   parse:     mw_envelope_parse + clear   vs  cJSON_ParseWithLengthOpts + Delete
 *   serialize: mw_envelope_serialize       vs  cJSON_PrintUnformatted + free
 *
 * Each measurement is the median of R runs of N iterations, in ns/op.
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

/* Median ns/op over runs of n iterations (after one warm-up run). */
static double measure(void (*fn)(struct ctx *, long), struct ctx *c, long n, int runs)
{
    double t[64];
    int r;

    fn(c, n / 10 + 1);
    for (r = 0; r < runs; r++) {
        double t0 = now_ns();
        fn(c, n);
        t[r] = (now_ns() - t0) / (double)n;
    }
    qsort(t, (size_t)runs, sizeof(t[0]), cmp_double);
    return t[runs / 2];
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
    double cp, sp, sj, sc, cs, ss, ssr;
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
    cp = measure(run_cjson_parse, &c, n, runs);
    sp = measure(run_strict_parse, &c, n, runs);
    sj = measure(run_strict_json, &c, n, runs);
    sc = measure(run_strict_check, &c, n, runs);
    cs = measure(run_cjson_print, &c, n, runs);
    ss = measure(run_strict_serialize, &c, n, runs);
    ssr = measure(run_strict_serialize_reuse, &c, n, runs);
    printf("parse     cJSON_ParseWithLengthOpts+Delete  %8.1f ns/op\n", cp);
    printf("parse     mw_envelope_parse+clear           %8.1f ns/op  ratio %.2fx\n", sp, sp / cp);
    printf("parse     mw_json_parse+Delete (tree only)  %8.1f ns/op  ratio %.2fx\n", sj, sj / cp);
    printf("check     mw_json_check (no tree)           %8.1f ns/op  ratio %.2fx\n", sc, sc / cp);
    printf("serialize cJSON_PrintUnformatted+free       %8.1f ns/op\n", cs);
    printf("serialize mw_envelope_serialize (new buf)   %8.1f ns/op  ratio %.2fx\n", ss, ss / cs);
    printf("serialize mw_envelope_serialize (reused)    %8.1f ns/op  ratio %.2fx\n", ssr, ssr / cs);
    printf("target strict <= 1.5x bare cJSON: parse %s, serialize %s\n",
           sp / cp <= 1.5 ? "met" : "MISSED", ss / cs <= 1.5 ? "met" : "MISSED");
    cJSON_Delete(c.tree);
    mw_envelope_clear(&c.env);
    mw_free(copy);
    return 0;
}
