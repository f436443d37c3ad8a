/* Built against the installed library with nothing but
 * `pkg-config --cflags --libs matchwire-client` (tests/install_pkgconfig.sh):
 * proves the header, the library and the .pc file are installed and whole.
 * Creates a client, refuses a bad request locally, frees it. */
#include <stdio.h>
#include <string.h>

#include <matchwire/client.h>

int main(void)
{
    struct mwc_options o;
    struct mwc_enqueue e = {.ref = "r1", .queue = "Bad Queue", .player_id = "p"};
    struct mwc_client *c;
    char detail[128];
    int rc;

    memset(&o, 0, sizeof(o));
    o.url = "ws://127.0.0.1:1/realtime";
    c = mwc_new(&o);
    if (!c)
        return 1;
    rc = mwc_enqueue(c, &e, detail, sizeof(detail));
    printf("matchwire-client %s: enqueue -> %s (%s), state %s\n", MWC_VERSION, mwc_strerror(rc),
           detail, mwc_state_name(mwc_get_state(c)));
    mwc_free(c);
    return rc == MWC_EINVAL ? 0 : 1;
}
