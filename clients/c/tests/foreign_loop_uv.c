/* The client on a foreign libuv loop (mwc_options.uv_loop): two clients are
 * matched against a real server (tests/foreign_loops.sh starts it), then
 * closed and freed, and the loop closes cleanly. mwc_service() must refuse
 * in this mode. Usage: foreign_loop_uv URL */
#define _POSIX_C_SOURCE 200809L /* uv.h: pthread types */
#include <stdio.h>
#include <string.h>
#include <uv.h>
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
static void tick(uv_timer_t *t)
{
    if (stopped == 2)
        uv_stop(t->loop);
}
int main(int argc, char **argv)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 50, 50);
    lws_set_log_level(LLL_ERR, NULL);
    struct mwc_client *cs[2];
    static char names[2][8] = {"alice", "bob"};
    for (int i = 0; i < 2; i++) {
        struct mwc_options o;
        memset(&o, 0, sizeof o);
        o.url = argv[1];
        o.uv_loop = &loop;
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
        if (mwc_service(cs[i], 0) != MWC_ESTATE)
            return 4;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 2; i++)
        mwc_free(cs[i]);
    uv_timer_stop(&t);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    printf("assigned %d, loop close %d\n", assigned, uv_loop_close(&loop));
    if (cb_in_call)
        printf("%d callbacks ran inside an mwc_* call\n", cb_in_call);
    return assigned == 2 && cb_in_call == 0 ? 0 : 1;
}
