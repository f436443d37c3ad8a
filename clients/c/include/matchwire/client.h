/* matchwire/client.h: the Matchwire C client library (spec/client.md).
 *
 * A client holds one WebSocket (ws:// or wss://, subprotocol matchwire.v1)
 * to a Matchwire server's /realtime on behalf of a player, and does every
 * duty of spec/client.md for the application: idempotency keys and replay
 * after a reconnect, at most one assignment per ticket across connections,
 * strict decoding and liberal reading of server messages, the close-code
 * table with full-jitter backoff, re-watch after a reconnect, pacing, pings
 * and a liveness check, and player tokens (spec/auth.md).
 *
 * Driving it. The client never starts a thread and never blocks unless asked
 * to: the game calls mwc_service(client, 0) once per frame (or
 * mwc_service(client, timeout_ms) in a loop of its own), and every callback
 * runs inside that call, on the calling thread. Alternatively the client runs
 * on an existing libuv or libev loop (mwc_options.uv_loop / .ev_loop): then
 * the loop drives it and mwc_service() must not be called.
 *
 * Threads. One thread owns a client: every mwc_* call on a client, and its
 * callbacks, happen on that thread. Different clients may live on different
 * threads. Nothing here is safe to call from another thread.
 *
 * Lifetimes. mwc_new() copies its options; mwc_free() releases everything at
 * once without a close frame (call mwc_close() first and service until the
 * `closed` callback for a clean end). mwc_free() from inside a callback is
 * deferred to the end of the current mwc_service() call (hiredis's rule);
 * the client fires no callback after mwc_free() returns. On a foreign loop
 * there is no mwc_service() to finish the job: call mwc_free() from your
 * own code there, never from one of the client's callbacks.
 *
 * Errors. Functions named as actions return 0 or a negative MWC_E* code
 * (mwc_strerror()). A call that fails never fires a callback for it.
 *
 * Strings. Every const char * passed in is borrowed for the duration of the
 * call (copied when kept). Every const char * passed to a callback is
 * borrowed until the callback returns: copy what you keep. */
#ifndef MATCHWIRE_CLIENT_H
#define MATCHWIRE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MWC_VERSION "0.1.0"

/* Return codes: 0 or one of these (the values of the server's MW_E* codes). */
enum {
    MWC_ENOMEM = -1,  /* allocation failed */
    MWC_EINVAL = -2,  /* invalid argument, or a request that breaks messages.md (CLI-003) */
    MWC_ESTATE = -4,  /* not allowed now (not connected, closing, stopped) */
    MWC_ELIMIT = -5,  /* a stated bound was reached (tickets, queued requests) */
    MWC_EIO = -8,     /* the transport (libwebsockets) failed */
    MWC_ECLOSED = -9, /* the client is closing, or closed or stopped (on_closed with
                       * reconnect false came): it sends nothing any more */
};
/* A static string for an MWC_E* code (or "ok"). */
const char *mwc_strerror(int err);

struct mwc_client;

/* Connection states, reported through on_state. */
enum mwc_state {
    MWC_STATE_IDLE = 0,   /* mwc_connect() not called yet */
    MWC_STATE_CONNECTING, /* a TCP/TLS/WebSocket handshake is under way */
    MWC_STATE_OPEN,       /* connected: requests flow */
    MWC_STATE_BACKOFF,    /* waiting before the next attempt (spec/client.md 5.2) */
    MWC_STATE_STOPPED,    /* will not reconnect by itself (a stop code, mwc_close()) */
};
const char *mwc_state_name(enum mwc_state s);

/* An assignment the application should act on (join the match). Every
 * pointer is borrowed until the callback returns. */
struct mwc_assignment {
    const char *ticket_id;
    uint64_t version;
    const char *match_id;
    const char *connection;      /* host:port of the game server */
    const char *assigned_at;     /* RFC 3339 text as received, or NULL */
    const char *assignment_json; /* the whole `assignment` object (players...), compact JSON */
};

/* A request that failed, as the application sees it: a server error that is
 * not retried (CLI-025), or a retryable one the client gave up on. */
struct mwc_error {
    const char *ref;       /* the enqueue's ref, or NULL */
    const char *ticket_id; /* the watch's or cancel's ticket, or NULL */
    const char *code;      /* the wire code ("not_found", ..., or one unknown to us: CLI-024) */
    bool retryable;
    const char *message; /* the server's message, or NULL; for people, never parse it */
};

/* Callbacks. Any may be NULL. c is the client, ud the options' userdata. All
 * run inside mwc_service() (or the foreign loop), never inside another mwc_*
 * call, on the owning thread. */
struct mwc_callbacks {
    /* The connection state changed. */
    void (*on_state)(struct mwc_client *c, enum mwc_state state, void *ud);
    /* The client learned the ticket of an enqueue: once per ref. */
    void (*on_enqueued)(struct mwc_client *c, const char *ref, const char *ticket_id,
                        const char *state, uint64_t version, void *ud);
    /* Join the match: at most once per ticket, across connections (CLI-030). */
    void (*on_assigned)(struct mwc_client *c, const struct mwc_assignment *a, void *ud);
    /* The ticket was cancelled or expired (state "cancelled" / "expired"). */
    void (*on_ended)(struct mwc_client *c, const char *ticket_id, const char *state,
                     uint64_t version, void *ud);
    /* A re-watch after a reconnect found the ticket gone (CLI-051). The
     * client will not enqueue again by itself. */
    void (*on_lost)(struct mwc_client *c, const char *ticket_id, void *ud);
    /* A watch the application asked for was answered (state, version). */
    void (*on_watching)(struct mwc_client *c, const char *ticket_id, const char *state,
                        uint64_t version, void *ud);
    /* A request failed (see struct mwc_error). */
    void (*on_error)(struct mwc_client *c, const struct mwc_error *e, void *ud);
    /* A connection (or an attempt) ended. code: the close code (1006 when no
     * close frame came), 0 when the handshake never completed; http_status:
     * the refusal's status, or 0. reconnect: whether the client will try
     * again by itself; false means it stopped (state MWC_STATE_STOPPED). */
    void (*on_closed)(struct mwc_client *c, int code, int http_status, bool reconnect, void *ud);
    /* A server message was skipped as malformed (CLI-020); for logs. */
    void (*on_protocol_error)(struct mwc_client *c, const char *detail, void *ud);
    /* The token was refused (401) or expired (close 4003): write a new one,
     * NUL-terminated, into out[0..cap) and return its length, or return -1
     * for "no token" (the client then stops; so does a token with a control
     * byte such as CR or LF). Called before the next attempt.
     * Without this callback a refused token stops the client. */
    int (*refresh_token)(struct mwc_client *c, char *out, size_t cap, void *ud);
};

#define MWC_TOKEN_MAX 8192 /* bytes of a token, its refreshes included */

/* Options for mwc_new(). Zero-initialise, then set what you need. All
 * strings are copied by mwc_new(). */
struct mwc_options {
    const char *url;     /* required: ws://host:port/realtime or wss://... */
    const char *token;   /* player token sent as Authorization: Bearer, or NULL */
    const char *ca_file; /* PEM CA file trusted for wss:// (NULL: the system's) */
    struct mwc_callbacks cb;
    void *userdata; /* passed to every callback; borrowed */
    /* Foreign event loop (at most one): the client then runs on it and
     * mwc_service() is not called. Borrowed: the loop must outlive the client.
     * uv_loop is a uv_loop_t *, ev_loop a struct ev_loop *. */
    void *uv_loop;
    void *ev_loop;
};

/* Creates a client (does not connect). Returns NULL when opts is invalid (no
 * url, a url that is not ws:// or wss://, a token over MWC_TOKEN_MAX, a
 * control byte such as CR or LF in the url or token, both loops) or on
 * allocation or libwebsockets failure. Free with mwc_free(). */
struct mwc_client *mwc_new(const struct mwc_options *opts);

/* Releases the client at once (no close frame; see mwc_close()). NULL-safe.
 * Inside a callback the release happens when mwc_service() returns. */
void mwc_free(struct mwc_client *c);

/* Starts connecting; from then on the client reconnects by spec/client.md
 * section 5 until mwc_close() or a stop. Once only: after a stop (on_closed
 * with reconnect false) the application that wants to go on makes a new
 * client, with what it fixed (a new token, another url). Returns 0,
 * MWC_ESTATE (already started) or MWC_ECLOSED. */
int mwc_connect(struct mwc_client *c);

/* Runs the client: network I/O, timers, callbacks. Waits at most timeout_ms
 * for something to happen (0: does not wait; a game calls it each frame).
 * Returns 0, MWC_ESTATE (foreign loop mode, or called from inside one of the
 * client's callbacks: it does nothing then) or MWC_EIO. */
int mwc_service(struct mwc_client *c, int timeout_ms);

/* An enqueue. ref: the application's name for this request (1..64 bytes),
 * echoed in on_enqueued and on_error. idempotency_key: NULL to let the
 * client generate one (32 random hex digits, CLI-010); a given key is the
 * caller's promise that it names this one ticket (CLI-013).
 * attributes_json: a JSON object text or NULL. */
struct mwc_enqueue {
    const char *ref;
    const char *queue;
    const char *player_id;
    const char *attributes_json;
    const char *idempotency_key;
};

/* Asks for a ticket. Validated locally first (CLI-003): a request that
 * breaks messages.md section 3 returns MWC_EINVAL with a reason in
 * detail[0..detail_cap) (may be NULL) and sends nothing. Otherwise the
 * request is queued (sent when connected, paced, replayed after a reconnect
 * until answered, retried on retryable errors); the outcome arrives as
 * on_enqueued or on_error with the same ref. Returns 0, MWC_EINVAL, MWC_ELIMIT
 * (too many requests or tickets held: MWC_MAX_PENDING, MWC_MAX_TICKETS),
 * MWC_ENOMEM or MWC_ECLOSED. */
#define MWC_MAX_TICKETS 64
#define MWC_MAX_PENDING 64
int mwc_enqueue(struct mwc_client *c, const struct mwc_enqueue *req, char *detail,
                size_t detail_cap);

/* Watches a ticket (kept and re-watched after reconnects until it ends).
 * Returns 0, MWC_EINVAL (not a ticket id), MWC_ELIMIT (MWC_MAX_TICKETS held,
 * or MWC_MAX_PENDING watches and cancels waiting to be sent), MWC_ENOMEM or
 * MWC_ECLOSED. */
int mwc_watch(struct mwc_client *c, const char *ticket_id);

/* Cancels a ticket (sent now if connected, else on the next connection).
 * Returns 0, MWC_EINVAL, MWC_ELIMIT (MWC_MAX_PENDING watches and cancels
 * waiting to be sent), MWC_ENOMEM or MWC_ECLOSED. */
int mwc_cancel(struct mwc_client *c, const char *ticket_id);

/* Closes: a close frame with 1000 (CLI-080), no reconnection. on_closed
 * (1000, reconnect false) follows from mwc_service(). Returns 0 or
 * MWC_ECLOSED (already closing, or already stopped: on_closed with
 * reconnect false came before, and none follows; mwc_free() at once). */
int mwc_close(struct mwc_client *c);

/* The current state. */
enum mwc_state mwc_get_state(const struct mwc_client *c);

#ifdef __cplusplus
}
#endif

#endif /* MATCHWIRE_CLIENT_H */
