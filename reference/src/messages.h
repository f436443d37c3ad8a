/* messages: the message catalogue (spec/messages.md).
 *
 * Decodes client messages (enqueue, cancel, watch, ping; all v1) from raw
 * WebSocket text into typed structs, and encodes every server message
 * (enqueued, cancelled, watching, pong, error, match.assigned,
 * ticket.expired, ticket.cancelled) as canonical envelope text. Also the HTTP
 * ticket resource. Pure: no sockets, no clock. */
#ifndef MW_MESSAGES_H
#define MW_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "error.h"
#include "ticket.h"

enum mw_msg_type {
    MW_MSG_ENQUEUE = 1,
    MW_MSG_CANCEL,
    MW_MSG_WATCH,
    MW_MSG_PING,
};

/* A decoded client message. Owns attributes_json (mw_client_msg_clear). */
struct mw_client_msg {
    enum mw_msg_type type;
    bool has_id;
    char id[MW_ID_MAX + 1];
    struct mw_enqueue_req enqueue;        /* MW_MSG_ENQUEUE; .watched = true */
    char ticket_id[MW_TICKET_ID_LEN + 1]; /* MW_MSG_CANCEL, MW_MSG_WATCH */
};

/* Why decoding failed: the protocol code, where, why, and the request's id
 * when the envelope itself was readable (so the error can echo it). */
struct mw_msg_error {
    struct mw_parse_error e; /* code: any envelope or message-layer code */
    bool has_id;
    char id[MW_ID_MAX + 1];
};

/* Decodes one client text message buf[0..len). Returns 0 (out owns its
 * attributes; release with mw_client_msg_clear), MW_EINVAL (err filled:
 * bad_json, too_large, too_deep, bad_envelope, unknown_type,
 * unsupported_version, bad_message; a ticketId that is not a syntactically
 * valid ticket id is not_found) or MW_ENOMEM. */
int mw_msg_decode(const char *buf, size_t len, struct mw_client_msg *out, struct mw_msg_error *err);
/* Same, from an already-parsed envelope (borrowed). */
int mw_msg_decode_envelope(const struct mw_envelope *env, struct mw_client_msg *out,
                           struct mw_msg_error *err);
void mw_client_msg_clear(struct mw_client_msg *m);

/* Validates the `data` of an enqueue (the HTTP POST body has the same shape)
 * into req; req->attributes_json is then owned by the caller (mw_free). */
int mw_msg_decode_enqueue_data(const cJSON *data, struct mw_enqueue_req *req,
                               struct mw_parse_error *err);

/* Checks that env is a valid match.assigned v1 envelope; on success fills
 * the ticket id (borrowed pointer into env->data), version and assignedAt
 * (each out pointer may be NULL). Used on channel payloads from any worker:
 * no id (a push), data.ticketId 1..64 printable ASCII, version an integer
 * 1..2^53-1, assignment {matchId 1..128 bytes, connection host:port (port
 * 1..65535), players 1..16 objects with playerId 1..128 bytes,
 * assignedAt RFC 3339 UTC "Z" with or without a fraction}; no ticketId in
 * assignment or players (MSG-061); unknown members ignored. Returns 0 or
 * MW_EINVAL (err, may be NULL: unknown_type, unsupported_version or
 * bad_message). */
int mw_msg_check_match_assigned(const struct mw_envelope *env, const char **ticket_id,
                                uint64_t *version, int64_t *assigned_ms,
                                struct mw_parse_error *err);

/* ---- Encoders: each appends one canonical envelope to b ------------------
 * id: the request's correlation id to echo, or NULL. Each returns 0,
 * MW_ENOMEM or MW_ELIMIT (MW_EINVAL where noted, or for a string json.h
 * cannot write); on error b is restored to its previous length. */
int mw_msg_encode_enqueued(struct mw_buf *b, const char *id, const struct mw_ticket *t);
int mw_msg_encode_cancelled(struct mw_buf *b, const char *id, const struct mw_ticket *t);
int mw_msg_encode_watching(struct mw_buf *b, const char *id, const struct mw_ticket *t);
int mw_msg_encode_pong(struct mw_buf *b, const char *id);
/* offset: SIZE_MAX when none applies. */
int mw_msg_encode_error(struct mw_buf *b, const char *id, enum mw_code code, const char *message,
                        size_t offset);
/* match.assigned for ticket i of m (players: every player of the match,
 * without ticket ids: an assignment never reveals another ticket's id).
 * MW_EINVAL when i >= m->n. Allocates nothing but b's storage. */
int mw_msg_encode_match_assigned(struct mw_buf *b, const struct mw_match *m, size_t i,
                                 uint64_t version);
/* ticket.expired or ticket.cancelled push, by t->state (MW_EINVAL for
 * queued or assigned). */
int mw_msg_encode_ticket_ended(struct mw_buf *b, const struct mw_ticket *t);

/* The HTTP ticket resource (not an envelope): {"ticketId","queue",
 * "playerId","state","version","createdAt","expiresAt","assignment"?}.
 * assignment (state assigned only) is the object of t->assigned_envelope;
 * MW_EINVAL when that is missing or has no data.assignment object. */
int mw_msg_encode_ticket_resource(struct mw_buf *b, const struct mw_ticket *t);

#endif /* MW_MESSAGES_H */
