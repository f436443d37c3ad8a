/* metrics: counters, a log-linear latency histogram, and the Prometheus text
 * exposition (format 0.0.4) served at GET /metrics. */
#include "metrics.h"

#include <string.h>

/* ---- Histogram ----------------------------------------------------------------
 * HDR-style log-linear buckets: values 0..15 us get one bucket each; above,
 * each power of two [2^p, 2^(p+1)) is split into MW_HIST_SUB equal buckets,
 * so a bucket's width is at most 1/16 of its lower bound (<= 6.25% relative
 * error). Values past the last bucket are counted in it. */

#define HIST_BUCKETS (MW_HIST_POW * MW_HIST_SUB)
#define SUB_BITS     4 /* log2(MW_HIST_SUB) */

static unsigned floor_log2(uint64_t v)
{
    unsigned p = 0;

    while (v >>= 1)
        p++;
    return p;
}

static size_t bucket_of(uint64_t us)
{
    unsigned p, shift;
    size_t i;

    if (us < MW_HIST_SUB)
        return (size_t)us;
    p = floor_log2(us);
    shift = p - SUB_BITS;
    i = (size_t)(p - SUB_BITS + 1) * MW_HIST_SUB + (size_t)((us >> shift) - MW_HIST_SUB);
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

/* Smallest and largest value of bucket i. */
static uint64_t bucket_low(size_t i)
{
    size_t g = i / MW_HIST_SUB, sub = i % MW_HIST_SUB;

    if (g == 0)
        return (uint64_t)i;
    return (uint64_t)(MW_HIST_SUB + sub) << (g - 1);
}

static uint64_t bucket_high(size_t i)
{
    size_t g = i / MW_HIST_SUB;

    if (g == 0)
        return (uint64_t)i;
    return bucket_low(i) + ((uint64_t)1 << (g - 1)) - 1;
}

void mw_hist_record(struct mw_hist *h, uint64_t us)
{
    h->counts[bucket_of(us)]++;
    h->n++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

uint64_t mw_hist_quantile(const struct mw_hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (h->n == 0)
        return 0;
    if (!(q > 0)) /* also NaN */
        q = 0;
    if (q > 1)
        q = 1;
    rank = (uint64_t)(q * (double)h->n);
    if ((double)rank < q * (double)h->n)
        rank++; /* ceil */
    if (rank < 1)
        rank = 1;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t hi = i == HIST_BUCKETS - 1 ? h->max_us : bucket_high(i); /* overflow */
            return hi < h->max_us ? hi : h->max_us; /* never above what was seen */
        }
    }
    return h->max_us;
}

/* ---- Counters ---------------------------------------------------------------- */

/* Close codes with a slot of their own: the registry (messages.md 8.2) and
 * 1006, what a dropped TCP connection reports. A free slot (code 0), if any,
 * goes to the first other code seen; the last slot counts every other code,
 * rendered as code="other", so the label set stays bounded. */
static const uint16_t known_closes[] = {1000, 1001, 1003, 1006, 1007, 1008,
                                        1009, 1011, 1013, 4001, 4002};
#define OTHER_SLOT (MW_CLOSE_CODES_TRACKED - 1)

_Static_assert(sizeof(known_closes) / sizeof(known_closes[0]) < MW_CLOSE_CODES_TRACKED,
               "close code slots");

void mw_metrics_init(struct mw_metrics *m)
{
    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < sizeof(known_closes) / sizeof(known_closes[0]); i++)
        m->close_codes[i] = known_closes[i];
}

void mw_metrics_count_close(struct mw_metrics *m, uint16_t code)
{
    for (size_t i = 0; i < OTHER_SLOT; i++) {
        if (m->close_codes[i] == code && code != 0) {
            m->closes[i]++;
            return;
        }
        if (m->close_codes[i] == 0 && code != 0) {
            m->close_codes[i] = code;
            m->closes[i]++;
            return;
        }
    }
    m->closes[OTHER_SLOT]++;
}

/* ---- Prometheus text format ---------------------------------------------------- */

static const char *const state_labels[4] = {"queued", "assigned", "cancelled", "expired"};

/* Fixed `le` bounds of matchwire_assign_to_write_seconds, in microseconds,
 * with their label text. */
static const struct {
    uint64_t us;
    const char *le;
} le_bounds[] = {
    {50, "5e-05"},    {100, "0.0001"},  {250, "0.00025"}, {500, "0.0005"},  {1000, "0.001"},
    {2500, "0.0025"}, {5000, "0.005"},  {10000, "0.01"},  {25000, "0.025"}, {50000, "0.05"},
    {100000, "0.1"},  {250000, "0.25"}, {500000, "0.5"},  {1000000, "1"},
};

static int family(struct mw_buf *out, const char *name, const char *type, const char *help)
{
    return mw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int simple(struct mw_buf *out, const char *name, const char *type, const char *help,
                  uint64_t v)
{
    int rc = family(out, name, type, help);
    return rc ? rc : mw_buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

/* Observations <= bound: every bucket whose lowest value is <= bound (exact
 * when bound + 1 starts a bucket, else over by at most one bucket width). */
static uint64_t hist_le(const struct mw_hist *h, uint64_t bound_us)
{
    uint64_t c = 0;

    for (size_t i = 0; i < HIST_BUCKETS && bucket_low(i) <= bound_us; i++)
        c += h->counts[i];
    return c;
}

int mw_metrics_render(const struct mw_metrics *m, const struct mw_metrics_gauges *g,
                      struct mw_buf *out)
{
    static const struct mw_metrics_gauges none = {{0, 0, 0, 0}, 0, 0, 0};
    size_t start = out->len;
    const struct mw_hist *h = &m->assign_to_write_us;
    int rc;

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((rc = (x)) != 0)                                                                       \
            goto out_fail;                                                                         \
    } while (0)

    if (!g)
        g = &none;
    TRY(simple(out, "matchwire_connections_open", "gauge", "Open WebSocket connections.",
               m->connections_open));
    TRY(simple(out, "matchwire_connections_total", "counter", "WebSocket connections accepted.",
               m->connections_total));
    TRY(simple(out, "matchwire_connections_refused_total", "counter",
               "WebSocket connections refused over --max-connections.", m->connections_refused));
    TRY(simple(out, "matchwire_messages_in_total", "counter", "Text messages received.",
               m->messages_in));
    TRY(simple(out, "matchwire_messages_out_total", "counter", "Text messages sent.",
               m->messages_out));

    TRY(family(out, "matchwire_tickets", "gauge", "Live tickets in the store, by state."));
    for (int s = 0; s < 4; s++)
        TRY(mw_buf_printf(out, "matchwire_tickets{state=\"%s\"} %llu\n", state_labels[s],
                          (unsigned long long)g->tickets[s]));

    TRY(simple(out, "matchwire_matches_total", "counter", "Matches formed and committed.",
               m->matches_total));
    TRY(simple(out, "matchwire_pushes_total", "counter",
               "match.assigned pushes queued to a connection.", m->pushes_total));
    TRY(simple(out, "matchwire_pushes_deduped_total", "counter",
               "Pushes dropped because the connection already had that version.",
               m->pushes_deduped));
    TRY(simple(out, "matchwire_outbound_drops_total", "counter",
               "Outbound messages not queued because the connection's bound was reached.",
               m->outbound_drops));
    TRY(simple(out, "matchwire_outbound_queued_total", "counter",
               "Outbound messages that waited in their connection's queue (socket not writable).",
               m->outbound_queued));
    TRY(simple(out, "matchwire_outbound_partial_writes_total", "counter",
               "Direct writes the kernel took only part of (lws sends the rest).",
               m->outbound_partial));
    TRY(simple(out, "matchwire_outbound_stalled_total", "counter",
               "Connections dropped because their socket stayed full (the client does not read).",
               m->outbound_stalled));
    TRY(simple(out, "matchwire_reassembly_refused_total", "counter",
               "Connections closed 1013 because the server-wide reassembly budget was reached.",
               m->reassembly_refused));

    TRY(family(out, "matchwire_errors_total", "counter", "error replies sent, by code."));
    for (int c = MW_CODE_NONE + 1; c < MW_CODE__COUNT; c++)
        TRY(mw_buf_printf(out, "matchwire_errors_total{code=\"%s\"} %llu\n",
                          mw_code_name((enum mw_code)c), (unsigned long long)m->errors[c]));

    TRY(family(out, "matchwire_channel_drops_total", "counter",
               "Channel payloads dropped, by reason."));
    for (int r = MW_DROP_NONE + 1; r < MW_DROP__COUNT; r++)
        TRY(mw_buf_printf(out, "matchwire_channel_drops_total{reason=\"%s\"} %llu\n",
                          mw_drop_reason_name((enum mw_drop_reason)r),
                          (unsigned long long)m->channel_drops[r]));

    TRY(family(out, "matchwire_closes_total", "counter", "WebSocket closes, by close code."));
    for (int i = 0; i < OTHER_SLOT; i++) {
        if (m->close_codes[i])
            TRY(mw_buf_printf(out, "matchwire_closes_total{code=\"%u\"} %llu\n",
                              (unsigned)m->close_codes[i], (unsigned long long)m->closes[i]));
    }
    TRY(mw_buf_printf(out, "matchwire_closes_total{code=\"other\"} %llu\n",
                      (unsigned long long)m->closes[OTHER_SLOT]));

    TRY(simple(out, "matchwire_watches", "gauge", "(ticket, connection) watch pairs.", g->watches));
    TRY(simple(out, "matchwire_waiting_tickets", "gauge",
               "Tickets waiting in this process's matchmaker.", g->waiting));
    TRY(simple(out, "matchwire_ready", "gauge", "1 when the server can serve, else 0.",
               g->ready ? 1 : 0));
    TRY(simple(out, "matchwire_http_requests_total", "counter", "HTTP requests served.",
               m->http_requests));

    TRY(family(out, "matchwire_assign_to_write_seconds", "histogram",
               "From an assignment's commit (assignedAt) to its match.assigned being written."));
    for (size_t i = 0; i < sizeof(le_bounds) / sizeof(le_bounds[0]); i++)
        TRY(mw_buf_printf(out, "matchwire_assign_to_write_seconds_bucket{le=\"%s\"} %llu\n",
                          le_bounds[i].le, (unsigned long long)hist_le(h, le_bounds[i].us)));
    TRY(mw_buf_printf(out, "matchwire_assign_to_write_seconds_bucket{le=\"+Inf\"} %llu\n",
                      (unsigned long long)h->n));
    TRY(mw_buf_printf(out, "matchwire_assign_to_write_seconds_sum %llu.%06llu\n",
                      (unsigned long long)(h->sum_us / 1000000),
                      (unsigned long long)(h->sum_us % 1000000)));
    TRY(mw_buf_printf(out, "matchwire_assign_to_write_seconds_count %llu\n",
                      (unsigned long long)h->n));
#undef TRY
    return 0;

out_fail:
    mw_buf_truncate(out, start);
    return rc;
}
