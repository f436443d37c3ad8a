/* Tests of the public client (client.h) that need its transport but no
 * server: what an application may do from inside a callback. The client
 * connects to 127.0.0.1 port 1, where nothing listens, so every attempt is
 * refused (on_closed with reconnect true, then on_state BACKOFF, from the
 * same refusal). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "matchwire/client.h"

struct app {
    struct mwc_client *c;
    bool freed;                /* mwc_free() was called */
    int after_free;            /* callbacks seen after it */
    int closed;                /* on_closed calls */
    int service_rc;            /* what mwc_service() returned inside a callback */
    bool call_service;         /* on_closed calls mwc_service() */
    bool free_in_closed;       /* on_closed calls mwc_free() */
    enum mwc_state last_state; /* from on_state */
};

static void on_state(struct mwc_client *c, enum mwc_state s, void *ud)
{
    struct app *a = ud;

    (void)c;
    if (a->freed)
        a->after_free++;
    a->last_state = s;
}

static void on_closed(struct mwc_client *c, int code, int status, bool reconnect, void *ud)
{
    struct app *a = ud;

    (void)code;
    (void)status;
    (void)reconnect;
    if (a->freed) {
        a->after_free++;
        return;
    }
    a->closed++;
    if (a->call_service)
        a->service_rc = mwc_service(c, 0);
    if (a->free_in_closed) {
        mwc_free(c);
        a->freed = true;
    }
}

static struct mwc_client *new_client(struct app *a)
{
    struct mwc_options o = {.url = "ws://127.0.0.1:1/realtime",
                            .cb = {.on_state = on_state, .on_closed = on_closed},
                            .userdata = a};
    struct mwc_client *c = mwc_new(&o);

    assert_non_null(c);
    a->c = c;
    assert_int_equal(mwc_connect(c), 0);
    return c;
}

/* client.h: "the client fires no callback after mwc_free() returns", also
 * when it is called inside a callback and the release is deferred. */
static void test_free_inside_callback_silences(void **state)
{
    struct app a = {.free_in_closed = true};
    struct mwc_client *c = new_client(&a);

    (void)state;
    for (int i = 0; i < 200 && !a.freed; i++)
        mwc_service(c, 20); /* c is released inside the call that frees it */
    assert_true(a.freed);
    assert_int_equal(a.closed, 1);
    assert_int_equal(a.after_free, 0); /* not even the on_state(BACKOFF) of that refusal */
}

/* mwc_service() from inside a callback would re-enter lws_service(): it is
 * refused with MWC_ESTATE, and the client goes on. */
static void test_service_inside_callback_refused(void **state)
{
    struct app a = {.call_service = true, .service_rc = 1};
    struct mwc_client *c = new_client(&a);

    (void)state;
    for (int i = 0; i < 200 && a.closed == 0; i++)
        assert_int_equal(mwc_service(c, 20), 0);
    assert_int_equal(a.closed, 1);
    assert_int_equal(a.service_rc, MWC_ESTATE);
    assert_int_equal(a.last_state, MWC_STATE_BACKOFF);
    mwc_free(c);
}

/* Options that would put a CR or LF into the handshake (header injection)
 * are refused by mwc_new() instead of failing every attempt for ever. */
static void test_new_refuses_control_bytes(void **state)
{
    struct mwc_options o = {.url = "ws://127.0.0.1:1/realtime", .token = "ok.token"};
    struct mwc_client *c;

    (void)state;
    c = mwc_new(&o);
    assert_non_null(c);
    mwc_free(c);
    o.token = "tok\r\nX-Evil: 1";
    assert_null(mwc_new(&o));
    o.token = NULL;
    o.url = "ws://127.0.0.1:1/realtime\r\nX-Evil: 1";
    assert_null(mwc_new(&o));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_refuses_control_bytes),
        cmocka_unit_test(test_free_inside_callback_silences),
        cmocka_unit_test(test_service_inside_callback_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
