/* The client on a foreign libev loop (mwc_options.ev_loop): two clients are
 * matched against a real server (tests/foreign_loops.sh starts it), then
 * closed and freed. Usage: foreign_loop_ev URL */
#define _POSIX_C_SOURCE 200809L /* uv.h: pthread types */
#include <stdio.h>
#include <string.h>
#include <ev.h>
#include <libwebsockets.h>
#include "matchwire/client.h"
static int assigned, stopped;
/* client.h: callbacks never run inside another mwc_* call, on a foreign loop
 * too: set around this program's own calls, checked in every callback. */
static int in_call, cb_in_call;
static void on_assigned(struct mwc_client *c, const struct mwc_assignment *a, void *ud)
{
    printf("%s assigned %s\n", (char *)ud, a->match_id);
    cb_in_call += in_call;
    assigned++;
    mwc_close(c);
}
static void on_state(struct mwc_client *c, enum mwc_state s, void *ud)
{
    printf("%s %s\n", (char *)ud, mwc_state_name(s));
    cb_in_call += in_call;
    if (s == MWC_STATE_STOPPED)
        stopped++;
}
static void tick(struct ev_loop *l, ev_timer *t, int r)
{
    if (stopped == 2)
        ev_break(l, EVBREAK_ALL);
}
int main(int argc, char **argv)
{
    struct ev_loop *loop = ev_loop_new(0);
    ev_timer t;
    ev_timer_init(&t, tick, 0.05, 0.05);
    ev_timer_start(loop, &t);
    lws_set_log_level(LLL_ERR, NULL);
    struct mwc_client *cs[2];
    static char names[2][8] = {"alice", "bob"};
    for (int i = 0; i < 2; i++) {
        struct mwc_options o;
        memset(&o, 0, sizeof o);
        o.url = argv[1];
        o.ev_loop = loop;
        o.userdata = names[i];
        o.cb.on_assigned = on_assigned;
        o.cb.on_state = on_state;
        cs[i] = mwc_new(&o);
        if (!cs[i]) {
            puts("new failed");
            return 1;
        }
        struct mwc_enqueue e = {.ref = "r", .queue = "demo", .player_id = names[i]};
        in_call = 1;
        if (mwc_enqueue(cs[i], &e, NULL, 0))
            return 2;
        if (mwc_connect(cs[i]))
            return 3;
        in_call = 0;
    }
    ev_run(loop, 0);
    for (int i = 0; i < 2; i++)
        mwc_free(cs[i]);
    ev_timer_stop(loop, &t);
    ev_loop_destroy(loop);
    printf("assigned %d\n", assigned);
    if (cb_in_call)
        printf("%d callbacks ran inside an mwc_* call\n", cb_in_call);
    return assigned == 2 && cb_in_call == 0 ? 0 : 1;
}
