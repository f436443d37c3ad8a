/* matchwire-server: the reference server's main(). Parses flags and
 * environment, starts the server, runs until SIGINT/SIGTERM, exits 0. */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "server.h"

extern char **environ;

int main(int argc, char **argv)
{
    struct mw_config cfg;
    struct mw_server *s;
    char err[256] = "";
    const char *host;
    bool tls;
    int rc;

    mw_alloc_set(NULL);
    /* hiredis writes with write(2): a Redis that went away must give EPIPE,
     * not kill the process. (lws sends with MSG_NOSIGNAL itself.) */
    {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    if (mw_config_parse(&cfg, argc, argv, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "matchwire-server: %s\ntry --help\n", err);
        return 2;
    }
    if (cfg.help) {
        struct mw_buf usage;
        int urc;

        mw_buf_init(&usage, 0);
        urc = mw_config_usage(&usage);
        if (!urc)
            fputs(usage.data, stdout);
        mw_buf_release(&usage);
        return urc ? 1 : 0;
    }
    s = mw_server_new(&cfg);
    if (!s)
        return 1;
    host = cfg.listen_host[0] ? cfg.listen_host : "0.0.0.0";
    tls = mw_config_tls_on(&cfg);
    printf("matchwire-server listening on %s://%s:%u/ (demo page), %s://%s:%u/realtime\n",
           tls ? "https" : "http", host, (unsigned)mw_server_port(s), tls ? "wss" : "ws", host,
           (unsigned)mw_server_port(s));
    fflush(stdout);
    rc = mw_server_run(s);
    mw_server_free(s);
    return rc;
}
