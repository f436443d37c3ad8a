/* mwc-find-match: asks a Matchwire server for a match and prints the
 * assignment (a person's way to try the C client; it rides through server
 * restarts: the library reconnects, re-watches and replays).
 *
 *   mwc-find-match --url ws://127.0.0.1:8080/realtime --queue demo --player alice
 *
 * Prints the assignment as one JSON line on stdout and exits 0; exits 1 when
 * the ticket ends without a match, 2 when the client stops, 64 on bad usage.
 * Connection state changes go to stderr. */
#define _POSIX_C_SOURCE 200809L /* POSIX names beside C11 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "matchwire/client.h"

struct run {
    int exit_code;          /* -1 while running */
    struct mwc_enqueue req; /* what to ask for (strings borrowed from argv) */
    int requests;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void on_state(struct mwc_client *c, enum mwc_state s, void *ud)
{
    fprintf(stderr, "mwc-find-match: %s\n", mwc_state_name(s));
}

static void on_enqueued(struct mwc_client *c, const char *ref, const char *tid, const char *state,
                        uint64_t version, void *ud)
{
    fprintf(stderr, "mwc-find-match: ticket %s (%s)\n", tid, state);
}

static void on_assigned(struct mwc_client *c, const struct mwc_assignment *a, void *ud)
{
    struct run *r = ud;

    printf("{\"ticketId\":\"%s\",\"matchId\":\"%s\",\"connection\":\"%s\",\"assignment\":%s}\n",
           a->ticket_id, a->match_id, a->connection, a->assignment_json);
    fflush(stdout);
    r->exit_code = 0;
    mwc_close(c);
}

static void on_ended(struct mwc_client *c, const char *tid, const char *state, uint64_t version,
                     void *ud)
{
    struct run *r = ud;

    fprintf(stderr, "mwc-find-match: ticket %s %s\n", tid, state);
    r->exit_code = 1;
    mwc_close(c);
}

/* The ticket is gone (a server restart without a persistent store): this
 * application still wants a match, so it asks again, under a new ref and
 * with a new idempotency key (spec/client.md CLI-051, CLI-013). */
static void on_lost(struct mwc_client *c, const char *tid, void *ud)
{
    struct run *r = ud;
    char ref[32], detail[128];
    int rc;

    fprintf(stderr, "mwc-find-match: ticket %s is gone; asking again\n", tid);
    snprintf(ref, sizeof(ref), "find-match-%d", ++r->requests);
    r->req.ref = ref;
    rc = mwc_enqueue(c, &r->req, detail, sizeof(detail));
    if (rc != 0) {
        fprintf(stderr, "mwc-find-match: %s: %s\n", mwc_strerror(rc), detail);
        r->exit_code = 1;
        mwc_close(c);
    }
}

static void on_error(struct mwc_client *c, const struct mwc_error *e, void *ud)
{
    struct run *r = ud;

    fprintf(stderr, "mwc-find-match: error %s%s%s\n", e->code, e->message ? ": " : "",
            e->message ? e->message : "");
    r->exit_code = 1;
    mwc_close(c);
}

static void on_closed(struct mwc_client *c, int code, int status, bool reconnect, void *ud)
{
    struct run *r = ud;

    fprintf(stderr, "mwc-find-match: connection ended (close %d, http %d)%s\n", code, status,
            reconnect ? ", reconnecting" : "");
    if (!reconnect && r->exit_code < 0)
        r->exit_code = 2;
}

static void on_protocol_error(struct mwc_client *c, const char *detail, void *ud)
{
    fprintf(stderr, "mwc-find-match: skipped a server message: %s\n", detail);
}

static void usage(void)
{
    fprintf(stderr, "usage: mwc-find-match --url ws[s]://HOST:PORT/realtime --queue Q --player P\n"
                    "                      [--region R] [--token T] [--ca CA.pem]\n");
}

int main(int argc, char **argv)
{
    const char *url = NULL, *queue = NULL, *player = NULL, *region = NULL;
    struct mwc_options o;
    struct run r = {.exit_code = -1};
    struct mwc_enqueue *e = &r.req;
    struct mwc_client *c;
    char attrs[256], detail[256];
    int rc;

    memset(&o, 0, sizeof(o));
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--queue") == 0)
            queue = argv[i + 1];
        else if (strcmp(argv[i], "--player") == 0)
            player = argv[i + 1];
        else if (strcmp(argv[i], "--region") == 0)
            region = argv[i + 1];
        else if (strcmp(argv[i], "--token") == 0)
            o.token = argv[i + 1];
        else if (strcmp(argv[i], "--ca") == 0)
            o.ca_file = argv[i + 1];
        else {
            usage();
            return 64;
        }
    }
    if (!url || !queue || !player || argc % 2 == 0) {
        usage();
        return 64;
    }
    lws_set_log_level(LLL_ERR, NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    o.url = url;
    o.userdata = &r;
    o.cb.on_state = on_state;
    o.cb.on_enqueued = on_enqueued;
    o.cb.on_assigned = on_assigned;
    o.cb.on_ended = on_ended;
    o.cb.on_lost = on_lost;
    o.cb.on_error = on_error;
    o.cb.on_closed = on_closed;
    o.cb.on_protocol_error = on_protocol_error;
    c = mwc_new(&o);
    if (!c) {
        fprintf(stderr, "mwc-find-match: cannot create a client for %s\n", url);
        return 64;
    }
    e->ref = "find-match-0";
    e->queue = queue;
    e->player_id = player;
    if (region) {
        snprintf(attrs, sizeof(attrs), "{\"region\":\"%s\"}", region);
        e->attributes_json = attrs;
    }
    rc = mwc_enqueue(c, e, detail, sizeof(detail));
    if (rc != 0) {
        fprintf(stderr, "mwc-find-match: %s: %s\n", mwc_strerror(rc), detail);
        mwc_free(c);
        return 64;
    }
    mwc_connect(c);
    while (mwc_get_state(c) != MWC_STATE_STOPPED) {
        if (interrupted && mwc_close(c) == 0)
            r.exit_code = 130;
        mwc_service(c, 100);
    }
    mwc_free(c);
    return r.exit_code < 0 ? 2 : r.exit_code;
}
