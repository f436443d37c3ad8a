/* ticket_store_redis: the Redis ticket store backend (spec/channel.md, "Redis
 * data layout"). Ticket hashes with TTLs, an idempotency index, atomic
 * compare-and-set assignment (Lua), and the ticket hand-off to workers on a
 * Redis Stream with a consumer group (XADD / XREADGROUP / XACK). */
#ifndef MW_TICKET_STORE_REDIS_H
#define MW_TICKET_STORE_REDIS_H

#include <stdbool.h>

#include "redis_conn.h"
#include "ticket_store.h"

struct ev_loop;

/* Creates the backend in *out (caller storage). cfg, hooks and o copied (cfg
 * NULL or a zero field: its default; hooks NULL: none); loop borrowed; rnd makes
 * ticket ids and this instance's origin nonce. consumer_name names this
 * instance in the stream's consumer group and as holder of the worker lease
 * (only used when a feed subscriber exists, i.e. in the worker role; NULL:
 * a random name; give a stable one, e.g. the host name, so a restarted
 * worker reclaims its own pending entries). Returns 0, MW_EINVAL (prefix too
 * long) or MW_ENOMEM; never blocks. Operations while Redis is down fail with
 * MW_EUNAVAIL (synchronously, no callback). Connections: one for commands,
 * one subscribed to <prefix>matchmaking:ended, one for the feed (worker).
 *
 * Backend details (differences from the memory store are marked *):
 * - a callback's ticket is NULL when its status is neither 0 nor MW_ESTATE;
 *   create's ticket has `replayed` set when the idempotency rule answered an
 *   existing ticket (MSG-026), as the memory store does;
 *   statuses also include MW_EIO (a ticket hash that does not parse) and
 *   MW_ELIMIT for create (max_tickets tickets not yet forgotten);
 * - cancel() of a cancelled or expired ticket gives MW_ENOTFOUND (MSG-031);
 * - * detach() is fire-and-forget: 0 once sent (an unknown ticket or an
 *   unbalanced detach is ignored by the script), MW_EUNAVAIL when down;
 * - * sweep() is asynchronous: it sends a pass (unless one is still
 *   running) and returns what the passes answered since the previous call
 *   changed (ended or forgotten), so a pass is counted by the next call;
 *   what it ended arrives through on_ended (this instance) and the ended
 *   notices (other instances), and on the feed as REMOVED via the stream.
 *   Run it in worker-role instances only (any number);
 * - on_ended: called for every end without assignment made by ANY instance:
 *   for this instance's cancel() after its callback, for its sweep when the
 *   pass answers, and for other instances' ends when their notice arrives
 *   (CHN-031; such a ticket carries only id, state and version). A notice
 *   lost while the subscription was down is not replayed: hooks'
 *   on_resubscribed is called after every SUBSCRIBE confirmation of the
 *   ended-notice channel, the first one included, and the owner re-reads its
 *   watched tickets then (CHN-023), exactly as on the channel's;
 * - * feed(): the worker lease decides which worker instance is fed; the
 *   others stand by. On gaining the lease the feed first delivers every
 *   queued ticket (claimed pending entries, then all of mw:queue, oldest
 *   first), then new entries; duplicates are possible (at least once);
 * - counts() is refreshed from <prefix>mw:counts every second (approximate,
 *   all instances together);
 * - scripts go as EVALSHA once SCRIPT LOAD (sent on every connect of the
 *   command connection) has answered, as EVAL before; a call answered
 *   NOSCRIPT (SCRIPT FLUSH, a restarted server) is sent once more as EVAL
 *   and every script is loaded again. Such a retried call runs after
 *   whatever was sent after it on its connection. An EVALSHA call keeps a
 *   copy of its arguments until answered, and the retry formats the EVAL
 *   command anew from them.
 * The module's files: ticket_store_redis.c, ticket_store_redis_assign.c,
 * ticket_store_redis_feed.c (ticket_store_redis_int.h between them), and
 * the scripts in lua/. */
int mw_ticket_store_redis_new(struct mw_ticket_store *out, const struct mw_ticket_store_config *cfg,
                              const struct mw_ticket_store_hooks *hooks, struct ev_loop *loop,
                              const struct mw_redis_opts *o, const char *consumer_name,
                              mw_random_fn rnd, void *rnd_ud);

#endif /* MW_TICKET_STORE_REDIS_H */
