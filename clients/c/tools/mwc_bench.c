/* mwc-bench: what the C client costs its game, measured in one process:
 * RSS and CPU per idle client, driven the way a game drives it (mwc_service
 * (c, 0) once per frame at 60 frames per second), and CPU per assignment.
 * The server runs elsewhere (its CPU is not counted here).
 *
 *   mwc-bench URL CLIENTS IDLE_SECONDS
 *
 * Phase 1 opens CLIENTS clients (each its own lws context, as mwc_new
 * makes), phase 2 services them idle for IDLE_SECONDS at 60 Hz, phase 3 has
 * every client enqueue ROUNDS times in queue "bench" (a server with
 * --match-size 2 pairs them), each time servicing until every client was
 * assigned. Prints one line
 * per figure. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <libwebsockets.h>

#include "matchwire/client.h"

#define ROUNDS 20 /* assignments per client in phase 3 */

struct counts {
    int open, assigned;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            break;
    fclose(f);
    return v;
}

static void on_state(struct mwc_client *c, enum mwc_state s, void *ud)
{
    if (s == MWC_STATE_OPEN)
        ((struct counts *)ud)->open++;
}

static void on_assigned(struct mwc_client *c, const struct mwc_assignment *a, void *ud)
{
    ((struct counts *)ud)->assigned++;
}

static void frame_sleep(double until)
{
    double d = until - now_s();
    struct timespec ts;

    if (d <= 0)
        return;
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    struct mwc_options o;
    struct mwc_client **cs;
    struct counts k = {0};
    int n, idle_s;
    long rss0, rss1, rss2;
    double t, c0, c1, frame = 1.0 / 60, next, idle_rate, dur;

    if (argc != 4 || (n = atoi(argv[2])) <= 0 || (idle_s = atoi(argv[3])) <= 0) {
        fprintf(stderr, "usage: mwc-bench URL CLIENTS IDLE_SECONDS\n");
        return 64;
    }
    lws_set_log_level(LLL_ERR, NULL);
    cs = calloc((size_t)n, sizeof(*cs));
    if (!cs)
        return 1;
    memset(&o, 0, sizeof(o));
    o.url = argv[1];
    o.userdata = &k;
    o.cb.on_state = on_state;
    o.cb.on_assigned = on_assigned;
    rss0 = rss_kib();
    for (int i = 0; i < n; i++) {
        cs[i] = mwc_new(&o);
        if (!cs[i] || mwc_connect(cs[i]) != 0) {
            fprintf(stderr, "mwc-bench: client %d failed\n", i);
            return 1;
        }
    }
    t = now_s();
    while (k.open < n && now_s() - t < 30)
        for (int i = 0; i < n; i++)
            mwc_service(cs[i], 0);
    if (k.open < n) {
        fprintf(stderr, "mwc-bench: only %d of %d clients opened\n", k.open, n);
        return 1;
    }
    rss1 = rss_kib();
    /* idle: the game's loop, 60 frames per second, every client serviced */
    c0 = cpu_s();
    t = now_s();
    next = t;
    while (now_s() - t < idle_s) {
        for (int i = 0; i < n; i++)
            mwc_service(cs[i], 0);
        next += frame;
        frame_sleep(next);
    }
    c1 = cpu_s();
    idle_rate = (c1 - c0) / idle_s; /* CPU seconds per second, all clients idle */
    printf("clients %d: RSS before %ld KiB, with all open %ld KiB: %.1f KiB per client\n", n, rss0,
           rss1, (double)(rss1 - rss0) / n);
    printf("idle %d s at 60 Hz: CPU %.3f s: %.2f us per client per second (%.3f%% of a core "
           "per client)\n",
           idle_s, c1 - c0, (c1 - c0) * 1e6 / n / idle_s, (c1 - c0) * 100.0 / n / idle_s);
    /* assignments: ROUNDS rounds, every client asks once per round; the
     * server pairs them. The idle polling of the same duration is
     * subtracted (the idle phase measured its rate). */
    c0 = cpu_s();
    t = now_s();
    next = t;
    for (int r = 0; r < ROUNDS; r++) {
        int want = (r + 1) * n;
        for (int i = 0; i < n; i++) {
            char ref[32], player[32];
            struct mwc_enqueue e = {.ref = ref, .queue = "bench", .player_id = player};
            snprintf(ref, sizeof(ref), "r%d-%d", r, i);
            snprintf(player, sizeof(player), "bench-%d", i);
            if (mwc_enqueue(cs[i], &e, NULL, 0) != 0)
                return 1;
        }
        while (k.assigned < want && now_s() - t < 120) {
            for (int i = 0; i < n; i++)
                mwc_service(cs[i], 0);
            next += frame;
            frame_sleep(next);
        }
    }
    c1 = cpu_s();
    dur = now_s() - t;
    rss2 = rss_kib();
    printf("assignments %d of %d in %.2f s at 60 Hz: CPU %.3f s (%.1f us per assignment), "
           "%.3f s over the idle rate: %.1f us per assignment (enqueue sent, reply and push "
           "decoded); RSS after %ld KiB\n",
           k.assigned, ROUNDS * n, dur, c1 - c0, (c1 - c0) * 1e6 / (k.assigned ? k.assigned : 1),
           c1 - c0 - idle_rate * dur,
           (c1 - c0 - idle_rate * dur) * 1e6 / (k.assigned ? k.assigned : 1), rss2);
    for (int i = 0; i < n; i++)
        mwc_free(cs[i]);
    free(cs);
    return k.assigned == ROUNDS * n ? 0 : 1;
}
