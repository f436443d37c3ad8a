/* mwc-kit-adapter: the client conformance kit's adapter for the C client
 * (conformance/client/README.md): JSON-lines commands on stdin, one JSON
 * event per line on stdout. It adds nothing of its own (no retries, no
 * deduplication, no validation): every behaviour the kit sees is the
 * library's. stdin is polled without blocking beside mwc_service().
 *
 *   conformance/client/run --client-cmd "build-hc/clients/c/mwc-kit-adapter" */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strdup */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libwebsockets.h>

#include "matchwire/client.h"

#define LINE_MAX_BYTES (1 << 20)
#define MAX_TOKENS     64

struct adapter {
    struct mwc_client *client;
    char *tokens[MAX_TOKENS]; /* the refresh callback's answers, in order */
    size_t n_tokens, next_token;
    bool stopped;
};

/* ---- output --------------------------------------------------------------- */

static void put_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void put_member(const char *k, const char *v)
{
    printf(",\"%s\":", k);
    if (v)
        put_str(v);
    else
        fputs("null", stdout);
}

static void end_event(void)
{
    fputs("}\n", stdout);
    fflush(stdout);
}

static void on_state(struct mwc_client *c, enum mwc_state s, void *ud)
{
    if (s == MWC_STATE_OPEN) {
        fputs("{\"event\":\"open\"", stdout);
        end_event();
    } else if (s == MWC_STATE_BACKOFF) {
        fputs("{\"event\":\"reconnecting\"", stdout);
        end_event();
    } else if (s == MWC_STATE_STOPPED) {
        ((struct adapter *)ud)->stopped = true;
    }
}

static void on_enqueued(struct mwc_client *c, const char *ref, const char *tid, const char *state,
                        uint64_t version, void *ud)
{
    fputs("{\"event\":\"enqueued\"", stdout);
    put_member("ref", ref);
    put_member("ticketId", tid);
    put_member("state", state);
    printf(",\"version\":%llu", (unsigned long long)version);
    end_event();
}

static void on_assigned(struct mwc_client *c, const struct mwc_assignment *a, void *ud)
{
    fputs("{\"event\":\"assigned\"", stdout);
    put_member("ticketId", a->ticket_id);
    printf(",\"version\":%llu", (unsigned long long)a->version);
    put_member("matchId", a->match_id);
    put_member("connection", a->connection);
    end_event();
}

static void on_ended(struct mwc_client *c, const char *tid, const char *state, uint64_t version,
                     void *ud)
{
    fputs("{\"event\":\"ended\"", stdout);
    put_member("ticketId", tid);
    put_member("state", state);
    printf(",\"version\":%llu", (unsigned long long)version);
    end_event();
}

static void on_lost(struct mwc_client *c, const char *tid, void *ud)
{
    fputs("{\"event\":\"lost\"", stdout);
    put_member("ticketId", tid);
    end_event();
}

static void on_watching(struct mwc_client *c, const char *tid, const char *state, uint64_t version,
                        void *ud)
{
    fputs("{\"event\":\"watching\"", stdout);
    put_member("ticketId", tid);
    put_member("state", state);
    printf(",\"version\":%llu", (unsigned long long)version);
    end_event();
}

static void on_error(struct mwc_client *c, const struct mwc_error *e, void *ud)
{
    fputs("{\"event\":\"error\"", stdout);
    if (e->ref)
        put_member("ref", e->ref);
    if (e->ticket_id)
        put_member("ticketId", e->ticket_id);
    put_member("code", e->code);
    printf(",\"retryable\":%s", e->retryable ? "true" : "false");
    end_event();
}

static void on_closed(struct mwc_client *c, int code, int status, bool reconnect, void *ud)
{
    fputs("{\"event\":\"closed\",\"code\":", stdout);
    if (code)
        printf("%d", code);
    else
        fputs("null", stdout);
    if (status)
        printf(",\"status\":%d", status);
    printf(",\"reconnect\":%s", reconnect ? "true" : "false");
    end_event();
}

static void on_protocol_error(struct mwc_client *c, const char *detail, void *ud)
{
    fputs("{\"event\":\"protocolError\"", stdout);
    put_member("detail", detail);
    end_event();
}

static int refresh_token(struct mwc_client *c, char *out, size_t cap, void *ud)
{
    struct adapter *a = ud;
    const char *t;

    fputs("{\"event\":\"tokenRefresh\"", stdout);
    end_event();
    if (a->next_token >= a->n_tokens)
        return -1;
    t = a->tokens[a->next_token++];
    if (strlen(t) + 1 > cap)
        return -1;
    memcpy(out, t, strlen(t) + 1);
    return (int)strlen(t);
}

static void local_error(const char *ref, int rc, const char *detail)
{
    fputs("{\"event\":\"error\"", stdout);
    put_member("ref", ref);
    put_member("code", rc == MWC_EINVAL ? "bad_message" : mwc_strerror(rc));
    fputs(",\"retryable\":false,\"local\":true", stdout);
    put_member("detail", detail);
    end_event();
}

/* ---- commands ------------------------------------------------------------- */

static const char *str_member(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void do_connect(struct adapter *a, const cJSON *cmd)
{
    struct mwc_options o;
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(cmd, "tokens"), *t;

    if (a->client)
        return;
    memset(&o, 0, sizeof(o));
    o.url = str_member(cmd, "url");
    o.ca_file = str_member(cmd, "ca");
    o.token = str_member(cmd, "token");
    o.userdata = a;
    o.cb.on_state = on_state;
    o.cb.on_enqueued = on_enqueued;
    o.cb.on_assigned = on_assigned;
    o.cb.on_ended = on_ended;
    o.cb.on_lost = on_lost;
    o.cb.on_watching = on_watching;
    o.cb.on_error = on_error;
    o.cb.on_closed = on_closed;
    o.cb.on_protocol_error = on_protocol_error;
    o.cb.refresh_token = refresh_token;
    cJSON_ArrayForEach(t, toks)
    {
        if (cJSON_IsString(t) && a->n_tokens < MAX_TOKENS)
            a->tokens[a->n_tokens++] = strdup(t->valuestring);
    }
    a->client = mwc_new(&o);
    if (!a->client) {
        on_protocol_error(NULL, "mwc_new failed (bad url or options)", a);
        return;
    }
    mwc_connect(a->client);
}

static void do_enqueue(struct adapter *a, const cJSON *cmd)
{
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(cmd, "attributes");
    char *attrs_text = NULL, detail[256] = "";
    struct mwc_enqueue e;
    int rc;

    memset(&e, 0, sizeof(e));
    e.ref = str_member(cmd, "ref");
    e.queue = str_member(cmd, "queue");
    e.player_id = str_member(cmd, "playerId");
    if (attrs && !cJSON_IsNull(attrs)) {
        attrs_text = cJSON_PrintUnformatted(attrs);
        e.attributes_json = attrs_text;
    }
    rc = a->client ? mwc_enqueue(a->client, &e, detail, sizeof(detail)) : MWC_ESTATE;
    if (rc != 0)
        local_error(e.ref ? e.ref : "", rc, detail);
    cJSON_free(attrs_text);
}

/* Returns false on `close`. */
static bool handle_line(struct adapter *a, const char *line)
{
    cJSON *cmd = cJSON_Parse(line);
    const char *name;
    bool go_on = true;

    if (!cmd)
        return true;
    name = str_member(cmd, "cmd");
    if (!name) {
    } else if (strcmp(name, "connect") == 0) {
        do_connect(a, cmd);
    } else if (strcmp(name, "enqueue") == 0) {
        do_enqueue(a, cmd);
    } else if (strcmp(name, "watch") == 0 && a->client) {
        const char *tid = str_member(cmd, "ticketId");
        int rc = mwc_watch(a->client, tid);
        if (rc != 0)
            fprintf(stderr, "watch: %s\n", mwc_strerror(rc));
    } else if (strcmp(name, "cancel") == 0 && a->client) {
        const char *tid = str_member(cmd, "ticketId");
        int rc = mwc_cancel(a->client, tid);
        if (rc != 0)
            fprintf(stderr, "cancel: %s\n", mwc_strerror(rc));
    } else if (strcmp(name, "close") == 0) {
        go_on = false;
    }
    cJSON_Delete(cmd);
    return go_on;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void)
{
    struct adapter a;
    char *buf = malloc(LINE_MAX_BYTES);
    size_t len = 0;
    bool go_on = true, eof = false;

    if (!buf)
        return 1;
    memset(&a, 0, sizeof(a));
    lws_set_log_level(LLL_ERR, NULL);
    while (go_on && !eof) {
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int n = poll(&pfd, 1, a.client ? 0 : 1000);

        if (n > 0) {
            ssize_t r = read(0, buf + len, LINE_MAX_BYTES - 1 - len);
            if (r <= 0 && !(r < 0 && errno == EINTR)) {
                eof = true;
            } else if (r > 0) {
                char *nl;
                len += (size_t)r;
                while (go_on && (nl = memchr(buf, '\n', len)) != NULL) {
                    *nl = '\0';
                    go_on = handle_line(&a, buf);
                    len -= (size_t)(nl + 1 - buf);
                    memmove(buf, nl + 1, len);
                }
                if (len == LINE_MAX_BYTES - 1)
                    len = 0; /* an over-long line is dropped */
            }
        }
        if (a.client && go_on)
            mwc_service(a.client, 10);
    }
    if (a.client) {
        int64_t until = mono_ms() + 3000;
        mwc_close(a.client);
        while (!a.stopped && mono_ms() < until)
            mwc_service(a.client, 20);
        mwc_free(a.client);
    } else {
        on_closed(NULL, 1000, 0, false, &a);
    }
    for (size_t i = 0; i < a.n_tokens; i++)
        free(a.tokens[i]);
    free(buf);
    return 0;
}
