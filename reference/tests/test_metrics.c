/* Tests for metrics: histogram buckets and quantiles against exact values
 * (within the bucket error), close-code slots, and the exact Prometheus text
 * lines (HELP/TYPE, labels, cumulative buckets, sum, count). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mwt_filter.h"

#include "alloc.h"
#include "error.h"
#include "metrics.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_hist_small_values_exact(void **state)
{
    struct mw_hist *h = calloc(1, sizeof(*h));

    (void)state;
    assert_non_null(h);
    assert_int_equal(mw_hist_quantile(h, 0.5), 0); /* empty */
    for (uint64_t v = 0; v < 32; v++)
        mw_hist_record(h, v);
    assert_int_equal(h->n, 32);
    assert_int_equal(h->sum_us, 31 * 32 / 2);
    assert_int_equal(h->max_us, 31);
    /* below 32 every value has its own bucket: quantiles are exact */
    assert_int_equal(mw_hist_quantile(h, 0), 0);
    assert_int_equal(mw_hist_quantile(h, 1.0 / 32), 0);
    assert_int_equal(mw_hist_quantile(h, 0.5), 15);
    assert_int_equal(mw_hist_quantile(h, 0.51), 16);
    assert_int_equal(mw_hist_quantile(h, 1), 31);
    assert_int_equal(mw_hist_quantile(h, 2), 31); /* clamped */
    assert_int_equal(mw_hist_quantile(h, -1), 0); /* clamped */
    free(h);
}

static void test_hist_accuracy(void **state)
{
    enum { N = 20000 };
    struct mw_hist *h = calloc(1, sizeof(*h));
    uint64_t *vals = malloc(N * sizeof(*vals));
    uint64_t x = 88172645463325252ULL;
    static const double qs[] = {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0};

    (void)state;
    assert_non_null(h);
    assert_non_null(vals);
    /* log-uniform values from 1 us to ~17 s */
    for (int i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        vals[i] = ((x >> 11) & ((1ULL << (1 + x % 34)) - 1)) + 1;
        mw_hist_record(h, vals[i]);
    }
    qsort(vals, N, sizeof(*vals), cmp_u64);
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        size_t rank = (size_t)(qs[k] * N + 0.999999);
        uint64_t exact = vals[(rank ? rank : 1) - 1], got = mw_hist_quantile(h, qs[k]);
        /* the bucket's upper bound: never below, at most 1/16 above */
        if (got < exact || (double)got > (double)exact * (1.0 + 1.0 / 16) + 1)
            print_error("q %.3f: exact %llu got %llu\n", qs[k], (unsigned long long)exact,
                        (unsigned long long)got);
        assert_true(got >= exact);
        assert_true((double)got <= (double)exact * (1.0 + 1.0 / 16) + 1);
    }
    assert_int_equal(mw_hist_quantile(h, 1), vals[N - 1]);
    free(vals);
    free(h);
}

static void test_hist_huge(void **state)
{
    struct mw_hist *h = calloc(1, sizeof(*h));

    (void)state;
    assert_non_null(h);
    mw_hist_record(h, UINT64_MAX / 4); /* past the last bucket: still counted */
    mw_hist_record(h, (1ULL << 41) + 12345);
    assert_int_equal(h->n, 2);
    assert_int_equal(mw_hist_quantile(h, 1), UINT64_MAX / 4);
    free(h);
}

static void test_close_codes(void **state)
{
    struct mw_metrics *m = malloc(sizeof(*m));
    struct mw_buf b;

    (void)state;
    assert_non_null(m);
    mw_metrics_init(m);
    mw_metrics_count_close(m, 1000);
    mw_metrics_count_close(m, 1000);
    mw_metrics_count_close(m, 4001);
    mw_metrics_count_close(m, 1006);
    mw_metrics_count_close(m, 3000); /* not tracked: "other" */
    mw_metrics_count_close(m, 4999);
    mw_metrics_count_close(m, 0);
    mw_buf_init(&b, 0);
    assert_int_equal(mw_metrics_render(m, NULL, &b), 0);
    assert_non_null(strstr(b.data, "\nmatchwire_closes_total{code=\"1000\"} 2\n"));
    assert_non_null(strstr(b.data, "\nmatchwire_closes_total{code=\"4001\"} 1\n"));
    assert_non_null(strstr(b.data, "\nmatchwire_closes_total{code=\"1006\"} 1\n"));
    assert_non_null(strstr(b.data, "\nmatchwire_closes_total{code=\"1013\"} 0\n"));
    assert_non_null(strstr(b.data, "\nmatchwire_closes_total{code=\"other\"} 3\n"));
    assert_null(strstr(b.data, "code=\"3000\""));
    assert_null(strstr(b.data, "code=\"0\""));
    mw_buf_release(&b);
    free(m);
}

static void test_render_exact_lines(void **state)
{
    struct mw_metrics *m = malloc(sizeof(*m));
    struct mw_metrics_gauges g = {{3, 2, 1, 4}, 7, 5, 1};
    struct mw_buf b;
    static const char *const lines[] = {
        "# HELP matchwire_connections_open ",
        "# TYPE matchwire_connections_open gauge\nmatchwire_connections_open 3\n",
        "# TYPE matchwire_connections_total counter\nmatchwire_connections_total 10\n",
        "# TYPE matchwire_connections_refused_total counter\n"
        "matchwire_connections_refused_total 1\n",
        "# TYPE matchwire_messages_in_total counter\nmatchwire_messages_in_total 100\n",
        "# TYPE matchwire_messages_out_total counter\nmatchwire_messages_out_total 90\n",
        "# TYPE matchwire_tickets gauge\nmatchwire_tickets{state=\"queued\"} 3\n"
        "matchwire_tickets{state=\"assigned\"} 2\nmatchwire_tickets{state=\"cancelled\"} 1\n"
        "matchwire_tickets{state=\"expired\"} 4\n",
        "# TYPE matchwire_matches_total counter\nmatchwire_matches_total 6\n",
        "# TYPE matchwire_pushes_total counter\nmatchwire_pushes_total 12\n",
        "# TYPE matchwire_pushes_deduped_total counter\nmatchwire_pushes_deduped_total 2\n",
        "# TYPE matchwire_outbound_drops_total counter\nmatchwire_outbound_drops_total 1\n",
        "# TYPE matchwire_outbound_queued_total counter\nmatchwire_outbound_queued_total 7\n",
        "# TYPE matchwire_outbound_partial_writes_total counter\n"
        "matchwire_outbound_partial_writes_total 3\n",
        "# TYPE matchwire_outbound_stalled_total counter\nmatchwire_outbound_stalled_total 2\n",
        "matchwire_reassembly_refused_total 1\n",
        "# TYPE matchwire_errors_total counter\nmatchwire_errors_total{code=\"bad_json\"} 4\n",
        "\nmatchwire_errors_total{code=\"rate_limited\"} 9\n",
        "\nmatchwire_errors_total{code=\"internal\"} 0\n",
        "# TYPE matchwire_channel_drops_total counter\n"
        "matchwire_channel_drops_total{reason=\"too_large\"} 0\n",
        "\nmatchwire_channel_drops_total{reason=\"ticket_mismatch\"} 5\n",
        "\nmatchwire_channel_drops_total{reason=\"not_match_assigned\"} 0\n",
        "# TYPE matchwire_closes_total counter\n",
        "# TYPE matchwire_watches gauge\nmatchwire_watches 7\n",
        "# TYPE matchwire_waiting_tickets gauge\nmatchwire_waiting_tickets 5\n",
        "# TYPE matchwire_ready gauge\nmatchwire_ready 1\n",
        "# TYPE matchwire_http_requests_total counter\nmatchwire_http_requests_total 8\n",
        "# TYPE matchwire_assign_to_write_seconds histogram\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"5e-05\"} 1\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.0001\"} 2\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.00025\"} 2\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.0005\"} 2\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.001\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.0025\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.005\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.01\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.025\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.05\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.1\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.25\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"0.5\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"1\"} 3\n"
        "matchwire_assign_to_write_seconds_bucket{le=\"+Inf\"} 4\n"
        "matchwire_assign_to_write_seconds_sum 3.001060\n"
        "matchwire_assign_to_write_seconds_count 4\n",
    };

    (void)state;
    assert_non_null(m);
    mw_metrics_init(m);
    m->connections_open = 3;
    m->connections_total = 10;
    m->connections_refused = 1;
    m->messages_in = 100;
    m->messages_out = 90;
    m->matches_total = 6;
    m->pushes_total = 12;
    m->pushes_deduped = 2;
    m->outbound_drops = 1;
    m->outbound_queued = 7;
    m->outbound_partial = 3;
    m->outbound_stalled = 2;
    m->reassembly_refused = 1;
    m->errors[MW_CODE_BAD_JSON] = 4;
    m->errors[MW_CODE_RATE_LIMITED] = 9;
    m->channel_drops[MW_DROP_TICKET_MISMATCH] = 5;
    m->http_requests = 8;
    mw_hist_record(&m->assign_to_write_us, 40);      /* <= 50 us */
    mw_hist_record(&m->assign_to_write_us, 96);      /* <= 100 us (bucket 96..99) */
    mw_hist_record(&m->assign_to_write_us, 924);     /* <= 1 ms */
    mw_hist_record(&m->assign_to_write_us, 3000000); /* 3 s: only +Inf */
    mw_buf_init(&b, 0);
    assert_int_equal(mw_metrics_render(m, &g, &b), 0);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        if (!strstr(b.data, lines[i]))
            print_error("missing:\n%s\nin:\n%s\n", lines[i], b.data);
        assert_non_null(strstr(b.data, lines[i]));
    }
    /* every family has HELP and TYPE; every sample line is "name[{labels}] value" */
    {
        size_t helps = 0, types = 0;
        for (const char *p = b.data; (p = strstr(p, "# HELP ")) != NULL; p++)
            helps++;
        for (const char *p = b.data; (p = strstr(p, "# TYPE ")) != NULL; p++)
            types++;
        assert_int_equal(helps, 22);
        assert_int_equal(types, 22);
        assert_int_equal(b.data[b.len - 1], '\n');
    }
    /* cumulative: bucket counts never decrease */
    {
        unsigned long long prev = 0, v;
        const char *p = b.data;
        while ((p = strstr(p, "_seconds_bucket{le=\"")) != NULL) {
            p = strchr(p, '}');
            assert_int_equal(sscanf(p + 1, " %llu", &v), 1);
            assert_true(v >= prev);
            prev = v;
        }
        assert_int_equal(prev, 4);
    }
    mw_buf_release(&b);

    /* bounded output: MW_ELIMIT and the buffer as it was */
    mw_buf_init(&b, 512);
    assert_int_equal(mw_buf_puts(&b, "x"), 0);
    assert_int_equal(mw_metrics_render(m, &g, &b), MW_ELIMIT);
    assert_string_equal(b.data, "x");
    mw_buf_release(&b);

    /* allocation failure */
    mw_buf_init(&b, 0);
    mw_alloc_fail_after(0);
    assert_int_equal(mw_metrics_render(m, &g, &b), MW_ENOMEM);
    mw_alloc_fail_reset();
    assert_int_equal(b.len, 0);
    mw_buf_release(&b);
    free(m);
}

int main(int argc, char **argv)
{
    mwt_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_small_values_exact),
        cmocka_unit_test(test_hist_accuracy),
        cmocka_unit_test(test_hist_huge),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_render_exact_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
