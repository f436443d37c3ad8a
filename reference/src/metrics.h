/* metrics: the server's counters and histograms, rendered in the Prometheus
 * text exposition format for GET /metrics. Plain fields, incremented by the
 * modules that own the events (one loop: no atomics needed). */
#ifndef MW_METRICS_H
#define MW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "channel.h"
#include "error.h"

/* Log-linear latency histogram in microseconds (HDR-style buckets, fixed
 * memory). Prometheus output uses a fixed set of `le` bounds. */
#define MW_HIST_SUB 16 /* linear sub-buckets per power of two */
#define MW_HIST_POW 40 /* covers up to 2^40 us */
struct mw_hist {
    uint64_t counts[MW_HIST_POW * MW_HIST_SUB];
    uint64_t n;
    uint64_t sum_us;
    uint64_t max_us;
};
void mw_hist_record(struct mw_hist *h, uint64_t us);
/* Value at quantile q in [0,1] (upper bound of its bucket); 0 when empty. */
uint64_t mw_hist_quantile(const struct mw_hist *h, double q);

#define MW_CLOSE_CODES_TRACKED 12

struct mw_metrics {
    uint64_t connections_total;   /* accepted WebSocket connections */
    uint64_t connections_open;    /* gauge */
    uint64_t connections_refused; /* over --max-connections */
    uint64_t messages_in;
    uint64_t messages_out;
    uint64_t matches_total;
    uint64_t pushes_total;                  /* match.assigned written to a socket queue */
    uint64_t pushes_deduped;                /* dropped because that version was already sent */
    uint64_t outbound_drops;                /* messages not queued because the bound was reached */
    uint64_t outbound_queued;               /* messages that waited in a connection's queue */
    uint64_t outbound_partial;              /* direct writes the kernel took part of */
    uint64_t outbound_stalled;              /* connections dropped: socket full for GW_STALL_S */
    uint64_t reassembly_refused;            /* closed 1013: reassembly budget (MSG-122) */
    uint64_t errors[MW_CODE__COUNT];        /* error replies by code */
    uint64_t channel_drops[MW_DROP__COUNT]; /* channel payloads dropped by reason */
    uint16_t close_codes[MW_CLOSE_CODES_TRACKED]; /* the codes counted below, 0 = unused slot */
    uint64_t closes[MW_CLOSE_CODES_TRACKED];
    uint64_t http_requests;
    struct mw_hist assign_to_write_us; /* assignment commit -> socket write */
};

void mw_metrics_init(struct mw_metrics *m);
void mw_metrics_count_close(struct mw_metrics *m, uint16_t code);

/* Gauges read at render time from the store/hub/worker. */
struct mw_metrics_gauges {
    uint64_t tickets[4]; /* by enum mw_ticket_state */
    uint64_t watches;
    uint64_t waiting; /* tickets waiting in this process's matchmaker */
    int ready;        /* 1 ready, 0 not */
};

/* Appends the Prometheus text format (metric names matchwire_*). Returns 0,
 * MW_ENOMEM or MW_ELIMIT. */
int mw_metrics_render(const struct mw_metrics *m, const struct mw_metrics_gauges *g,
                      struct mw_buf *out);

#endif /* MW_METRICS_H */
