"""Client conformance scenarios: one (or more) per requirement of
spec/client.md, each naming the ids it verifies. The kit plays the server;
the client under test is driven through its adapter (spec/testing.md
TST-060..TST-079). Timing is measured on the wire, at the kit's server.
"""

import asyncio
import json

from kit import (CAP, FLOOR, FLOOR_SLACK, LATE_SLACK, Failure, env, new_ticket_id, new_token, now,
                 scenario)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


async def enqueue_and_reply(c, conn, ref="e1", queue="ranked", player="p1", state="queued", version=1,
                            ticket_id=None, attributes=None):
    kw = {"attributes": attributes} if attributes is not None else {}
    await c.send(cmd="enqueue", ref=ref, queue=queue, playerId=player, **kw)
    req = await conn.recv_type("enqueue")
    tid = await conn.enqueued(req, ticket_id, state, version)
    await c.expect("enqueued", 5.0, ref=ref)
    return req, tid


async def no_attempt(s, seconds, why):
    n = len(s.attempts)
    await asyncio.sleep(seconds)
    check(len(s.attempts) == n, "%s: the client connected again %.2fs later" % (
        why, (s.attempts[n]["t"] - s.attempts[n - 1]["t"]) if len(s.attempts) > n else 0))


# ---- 1. Connecting ---------------------------------------------------------

@scenario("CLI-001", tags="core")
async def handshake(ctx):
    """The client connects to /realtime and offers matchwire.v1."""
    s, c, conn = await ctx.setup()
    a = s.attempts[0]
    check(a["path"].split("?")[0] == "/realtime", "handshake path %r, not /realtime" % a["path"])
    offered = [p.strip() for p in a["protocols"].split(",") if p.strip()]
    check("matchwire.v1" in offered, "Sec-WebSocket-Protocol offered: %r (no matchwire.v1)" % a["protocols"])


@scenario("CLI-001")
async def handshake_wrong_subprotocol(ctx):
    """A 101 that selects a subprotocol other than matchwire.v1 fails the
    connection: the client does not use it and does not retry."""
    s = await ctx.server()
    s.select = "other.v9"
    c = await ctx.client(s)
    await s.next_attempt(0, 5.0)
    await no_attempt(s, 2.5, "a 101 with the wrong subprotocol is final")
    check(not c.find("open"), "the client reported the connection open")
    for conn in s.all_conns:
        m = await conn.maybe_recv(0.1)
        check(m is None, "the client sent a message on it: %s" % m)


@scenario("CLI-002", tags="core")
async def requests_valid(ctx):
    """Every frame the client sends is one text message holding a valid v1
    envelope with an id, whose data follows messages.md section 3."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn, attributes={"region": "eu", "mmr": 1500})
    await c.send(cmd="watch", ticketId=tid)
    w = await conn.recv_type("watch")
    await conn.reply(w, "watching", {"ticketId": tid, "state": "queued", "version": 1})
    await c.send(cmd="cancel", ticketId=tid)
    k = await conn.recv_type("cancel")
    await conn.reply(k, "cancelled", {"ticketId": tid, "version": 2})
    await c.expect("ended", 5.0, ticketId=tid, state="cancelled")
    for m in (req, w, k):
        check(isinstance(m.get("id"), str), "request without an id (CLI-002): %s" % m)
    check(not ctx.violations, "; ".join(ctx.violations[:3]))


@scenario("CLI-003", tags="core")
async def local_validation(ctx):
    """An enqueue the application asks for that breaks MSG-020 is refused
    locally (an error event, code bad_message) and never sent."""
    s, c, conn = await ctx.setup()
    await c.send(cmd="enqueue", ref="bad", queue="Bad Queue!", playerId="p1")
    ev = await c.expect("error", 5.0, ref="bad")
    check(ev.get("code") == "bad_message", "local refusal has code %r, not bad_message" % ev.get("code"))
    m = await conn.maybe_recv(1.0)
    check(m is None, "the client sent the invalid request: %s" % m)


# Certificate verification (CLI-004): TLS mode only. The kit's server
# presents a certificate the client must refuse and records each TCP
# connection, its TLS handshake and every byte sent after it. What the
# client does after refusing is not checked (a native client stops as after
# 1015, a browser sees 1006 and retries): only that nothing went over the
# connection, that the application never heard `open`, and that no request
# succeeded.

CERT_QUIET = 3.5     # seconds watched after the first TCP connection
TLS_ONLY_WHY = "a certificate to refuse exists only over wss://"


async def _refuses_certificate(ctx, kind, what):
    p = await ctx.probe(kind)
    c = await ctx.client(p)
    await c.send(cmd="enqueue", ref="e1", queue="ranked", playerId="p1")
    end = now() + 10.0
    while not p.conns and now() < end:
        await asyncio.sleep(0.02)
    check(p.conns, "the client made no TCP connection to %s within 10s: nothing to check (CLI-001)" % p.url)
    await asyncio.sleep(max(0.0, p.conns[0]["t"] + CERT_QUIET - now()))
    sent = p.received()
    if sent:
        data = sent[0]["data"]
        head = data.split(b"\r\n\r\n")[0].decode("latin-1")
        upgrade = head.startswith("GET ") and "upgrade: websocket" in head.lower()
        raise Failure("the client sent %s over a connection whose certificate %s: %r, %d bytes "
                      "(connections: %s; what it sent: %r)" % (
                          "an HTTP upgrade request" if upgrade else "application data", what,
                          head.split("\r\n")[0][:80], len(data), p.describe(), head[:600]))
    check(not c.find("open"), "the client reported the connection open (open event), although the server's "
          "certificate %s (connections: %s)" % (what, p.describe()))
    for ev in ("enqueued", "assigned"):
        check(not c.find(ev), "a request succeeded (%s event) with no server it could trust" % ev)


@scenario("CLI-004", tags="core", tls_only=TLS_ONLY_WHY)
async def tls_untrusted_ca(ctx):
    """The server presents a certificate for localhost from another CA
    than the `ca` given (same subject name, another key): the client
    sends no upgrade request and no byte over it, reports no `open`, and
    no request succeeds (stopping or retrying are both accepted)."""
    await _refuses_certificate(ctx, "untrusted_ca", "is signed by a CA the client was not told to trust")


@scenario("CLI-004", tags="core", tls_only=TLS_ONLY_WHY)
async def tls_wrong_host(ctx):
    """The server presents a certificate from the right CA for another
    host only (DNS:otherhost.invalid, not localhost): the client sends no
    upgrade request and no byte over it, reports no `open`, and no request
    succeeds (stopping or retrying are both accepted)."""
    await _refuses_certificate(ctx, "wrong_host", "names only otherhost.invalid, not localhost")


# ---- 2. Requests -----------------------------------------------------------

@scenario("CLI-010", "CLI-013", tags="core")
async def idempotency_key(ctx):
    """Every enqueue carries an idempotencyKey, a new one per new enqueue."""
    s, c, conn = await ctx.setup()
    r1, _ = await enqueue_and_reply(c, conn, "e1", player="p1")
    r2, _ = await enqueue_and_reply(c, conn, "e2", player="p1")
    k1, k2 = r1["data"].get("idempotencyKey"), r2["data"].get("idempotencyKey")
    check(isinstance(k1, str) and isinstance(k2, str), "enqueue without idempotencyKey: %s" % r1["data"])
    check(k1 != k2, "two different enqueues share the idempotencyKey %r" % k1)


@scenario("CLI-011", "CLI-013", tags="core")
async def replay_unacked_enqueue(ctx):
    """An enqueue whose reply never came (TCP dropped) is sent again after
    the reconnect, with the same idempotencyKey, playerId, queue and
    attributes; the application hears of the ticket once."""
    s, c, conn = await ctx.setup()
    await c.send(cmd="enqueue", ref="e1", queue="ranked", playerId="p1", attributes={"region": "eu"})
    r1 = await conn.recv_type("enqueue")
    conn.abort()
    conn2 = await s.accept(LATE_SLACK + 2, "reconnection")
    r2 = await conn2.recv_type("enqueue", 5.0)
    for k in ("idempotencyKey", "playerId", "queue", "attributes"):
        check(r2["data"].get(k) == r1["data"].get(k),
              "replayed enqueue changed %s: %r -> %r" % (k, r1["data"].get(k), r2["data"].get(k)))
    tid = await conn2.enqueued(r2)
    await c.expect("enqueued", 5.0, ref="e1", ticketId=tid)
    await asyncio.sleep(0.5)
    check(len(c.find("enqueued", ref="e1")) == 1, "enqueued reported more than once")


@scenario("CLI-012", tags="core")
async def enqueue_unavailable(ctx):
    """`unavailable` to an enqueue: the outcome is unknown (MSG-135); the
    client retries after a delay with the same idempotencyKey."""
    s, c, conn = await ctx.setup()
    await c.send(cmd="enqueue", ref="e1", queue="ranked", playerId="p1")
    r1 = await conn.recv_type("enqueue")
    await conn.error(r1, "unavailable", True)
    t_err = now()
    r2 = await conn.recv_type("enqueue", CAP + LATE_SLACK)
    gap = now() - t_err
    check(gap >= FLOOR - FLOOR_SLACK, "retried after %.3fs, before the floor of %.2fs" % (gap, FLOOR))
    check(r2["data"].get("idempotencyKey") == r1["data"].get("idempotencyKey") is not None,
          "retry changed the idempotencyKey: %r -> %r" % (r1["data"].get("idempotencyKey"),
                                                           r2["data"].get("idempotencyKey")))
    tid = await conn.enqueued(r2)
    await c.expect("enqueued", 5.0, ref="e1", ticketId=tid)


@scenario("CLI-025", tags="core")
async def non_retryable_error(ctx):
    """A request answered with a non-retryable error is reported to the
    application and not sent again."""
    s, c, conn = await ctx.setup()
    await c.send(cmd="enqueue", ref="e1", queue="ranked", playerId="p1")
    r1 = await conn.recv_type("enqueue")
    await conn.error(r1, "bad_message", False)
    ev = await c.expect("error", 5.0, ref="e1")
    check(ev.get("code") == "bad_message", "error event code %r" % ev.get("code"))
    m = await conn.maybe_recv(2.0)
    check(m is None or m.get("type") != "enqueue", "the client resent a request answered retryable:false")


@scenario("CLI-024")
async def unknown_error_code(ctx):
    """An error code the client does not know is an error like any other
    (by its `retryable`): reported, not fatal, the connection stays."""
    s, c, conn = await ctx.setup()
    await c.send(cmd="enqueue", ref="e1", queue="ranked", playerId="p1")
    r1 = await conn.recv_type("enqueue")
    await conn.error(r1, "quota_exceeded", False)
    ev = await c.expect("error", 5.0, ref="e1")
    check(ev.get("code") == "quota_exceeded", "error event code %r" % ev.get("code"))
    await asyncio.sleep(0.3)
    check(conn.closed_at is None and not conn.ws.closed, "the client closed the connection after an unknown "
          "error code")
    await enqueue_and_reply(c, conn, "e2")
    check(len(s.attempts) == 1, "the client reconnected after an unknown error code")


# ---- 3. Receiving ----------------------------------------------------------

@scenario("CLI-020", tags="core")
async def malformed_message(ctx):
    """Malformed server messages (not I-JSON, duplicate names, not an
    envelope) are reported as protocol errors and skipped; the connection
    and the next valid push are unaffected."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn)
    bads = ('{"type":"match.assigned",', "[1,]", '{"type":"pong","v":1,"v":1,"data":{}}',
            '{"type":"pong","data":{}}', "NaN")
    for bad in bads:
        await conn.send(bad)
    mid = await conn.assigned(tid)
    await c.expect("assigned", 5.0, ticketId=tid, matchId=mid)
    # CLI-020: each one is reported (a decoder that accepts duplicate names
    # reports four, not five).
    for i in range(len(bads)):
        try:
            await c.expect("protocolError", 2.0)
        except Failure:
            check(False, "%d protocolError events for %d malformed messages (%s)"
                  % (i, len(bads), ", ".join(repr(b) for b in bads)))
    check(len(s.attempts) == 1 and c.alive(), "the connection or the client did not survive")


@scenario("CLI-021")
async def unknown_members(ctx):
    """Members the client does not know (top level, data, assignment,
    players) are ignored."""
    s, c, conn = await ctx.setup()
    await c.send(cmd="enqueue", ref="e1", queue="ranked", playerId="p1")
    r = await conn.recv_type("enqueue")
    tid = new_ticket_id()
    await conn.send(env("enqueued", {"ticketId": tid, "queue": "ranked", "state": "queued", "version": 1,
                                     "expiresAt": "2030-01-01T00:00:00.000Z", "priority": 3, "lobby": {"a": [1]}},
                        r["id"], trace="x-1"))
    await c.expect("enqueued", 5.0, ref="e1", ticketId=tid)
    a = {"matchId": "m-extra", "connection": "10.0.0.5:7777", "region": "eu", "ttl": 30,
         "players": [{"playerId": "p1", "team": 1}, {"playerId": "p2", "team": 2}],
         "assignedAt": "2030-01-01T00:00:00.000Z"}
    await conn.send(env("match.assigned", {"ticketId": tid, "version": 2, "assignment": a, "hint": True},
                        shard=7))
    await c.expect("assigned", 5.0, ticketId=tid, matchId="m-extra")


@scenario("CLI-022", tags="core")
async def unknown_type(ctx):
    """A message of a type the client does not know is ignored."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn)
    await conn.send(env("ticket.moved", {"ticketId": tid, "version": 2}))
    await conn.send(env("lobby.chat", {"text": "hi"}, "r1"))
    mid = await conn.assigned(tid)
    await c.expect("assigned", 5.0, ticketId=tid, matchId=mid)
    check(len(s.attempts) == 1 and c.alive(), "the connection or the client did not survive")


@scenario("CLI-023")
async def v2_message(ctx):
    """A known type with a version the client does not support (v2) is
    ignored, not read as v1."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn)
    await conn.send(env("match.assigned", {"ticketId": tid, "version": 2, "assignment": {
        "matchId": "m-v2", "connection": "10.0.0.5:7777", "players": [{"playerId": "p1"}],
        "assignedAt": "2030-01-01T00:00:00.000Z"}}, v=2))
    mid = await conn.assigned(tid, match_id="m-v1")
    ev = await c.expect("assigned", 5.0, ticketId=tid)
    check(ev.get("matchId") == mid, "the client applied the v2 message (matchId %r)" % ev.get("matchId"))


@scenario("CLI-026")
async def binary_frame(ctx):
    """A binary frame is not an envelope: never parsed as one."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn)
    fake = env("match.assigned", {"ticketId": tid, "version": 2, "assignment": {
        "matchId": "m-binary", "connection": "10.0.0.5:7777", "players": [{"playerId": "p1"}],
        "assignedAt": "2030-01-01T00:00:00.000Z"}})
    await conn.send_binary(json.dumps(fake).encode())
    mid = await conn.assigned(tid, match_id="m-text")
    ev = await c.expect("assigned", 5.0, ticketId=tid)
    check(ev.get("matchId") == mid, "the client applied a binary frame (matchId %r)" % ev.get("matchId"))


@scenario("CLI-027", tags="core")
async def push_before_reply(ctx):
    """A match.assigned that arrives before the enqueued reply naming its
    ticket is applied once the reply arrives (never lost, never twice)."""
    s, c, conn = await ctx.setup()
    await c.send(cmd="enqueue", ref="e1", queue="ranked", playerId="p1")
    r = await conn.recv_type("enqueue")
    tid = new_ticket_id()
    mid = await conn.assigned(tid)
    await conn.enqueued(r, tid, "queued", 1)
    await c.expect("enqueued", 5.0, ref="e1", ticketId=tid)
    await c.expect("assigned", 5.0, ticketId=tid, matchId=mid)
    await asyncio.sleep(0.5)
    check(len(c.find("assigned", ticketId=tid)) == 1, "the assignment was applied twice")


@scenario("CLI-028")
async def opaque_ids(ctx):
    """Ticket and match ids of another form than UUID v4 (MSG-073) are as
    good: the client uses them as they are."""
    s, c, conn = await ctx.setup()
    ids = ["tk_01HZX3QK7VN4.b~c-d", "Zm9vYmFyYmF6cXV4MTIzNDU2"]
    for i, tid in enumerate(ids):
        await enqueue_and_reply(c, conn, "e%d" % i, player="p%d" % i, ticket_id=tid)
    await conn.assigned(ids[0], match_id="42")
    await c.expect("assigned", 5.0, ticketId=ids[0], matchId="42")
    await conn.send(env("ticket.expired", {"ticketId": ids[1], "version": 2}))
    await c.expect("ended", 5.0, ticketId=ids[1], state="expired")


@scenario("CLI-029")
async def timestamps_liberal(ctx):
    """assignedAt without fraction, with microseconds, or with lower-case t
    and z is accepted: the assignment is applied."""
    s, c, conn = await ctx.setup()
    forms = ["2030-01-01T00:00:00Z", "2030-01-01t00:00:00.123456z", "2030-01-01T00:00:00.5Z"]
    for i, at in enumerate(forms):
        req, tid = await enqueue_and_reply(c, conn, "e%d" % i, player="p%d" % i)
        a = {"matchId": "m-%d" % i, "connection": "10.0.0.5:7777", "players": [{"playerId": "p%d" % i}],
             "assignedAt": at}
        await conn.send(env("match.assigned", {"ticketId": tid, "version": 2, "assignment": a}))
        await c.expect("assigned", 5.0, ticketId=tid, matchId="m-%d" % i)


# ---- 4. Assignments and ticket state ---------------------------------------

@scenario("CLI-030", tags="core")
async def dedup_across_reconnect(ctx):
    """The same match.assigned received again on a new connection (after a
    re-watch, a replayed enqueue, or a duplicated hint) is not applied
    twice."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn)
    mid = await conn.assigned(tid)
    await c.expect("assigned", 5.0, ticketId=tid)
    conn.abort()
    conn2 = await s.accept(LATE_SLACK + 2, "reconnection")
    await c.expect("open", 5.0)
    await conn2.send(env("match.assigned", {"ticketId": tid, "version": 2, "assignment": {
        "matchId": mid, "connection": "10.0.0.5:7777", "players": [{"playerId": "p1"}, {"playerId": "p2"}],
        "assignedAt": "2030-01-01T00:00:00.000Z"}}))
    await c.send(cmd="watch", ticketId=tid)
    w = await conn2.recv_type("watch")
    await conn2.reply(w, "watching", {"ticketId": tid, "state": "assigned", "version": 2})
    await conn2.assigned(tid, match_id=mid)
    await asyncio.sleep(1.0)
    n = len(c.find("assigned", ticketId=tid))
    check(n == 1, "the assignment was applied %d times across connections" % n)


@scenario("CLI-031", tags="core")
async def stale_version(ctx):
    """Pushes with a version not above the one the client holds change
    nothing: no 'ended' after an assignment, no going back."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn)
    await conn.assigned(tid, 2)
    await c.expect("assigned", 5.0, ticketId=tid)
    await conn.send(env("ticket.cancelled", {"ticketId": tid, "version": 2}))
    await conn.send(env("ticket.expired", {"ticketId": tid, "version": 1}))
    await asyncio.sleep(1.0)
    check(not c.find("ended", ticketId=tid), "the client applied a stale push after the assignment")


@scenario("CLI-032")
async def ended_push(ctx):
    """ticket.expired ends the ticket: reported to the application, and not
    watched again after a reconnect."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn)
    await conn.send(env("ticket.expired", {"ticketId": tid, "version": 2}))
    await c.expect("ended", 5.0, ticketId=tid, state="expired")
    conn.abort()
    conn2 = await s.accept(LATE_SLACK + 2, "reconnection")
    got = await conn2.serve(1.5)
    watched = [m for m in got if m.get("type") == "watch" and m["data"].get("ticketId") == tid]
    check(not watched, "the client re-watched a ticket that had ended")


# ---- 5. Reconnecting -------------------------------------------------------

CORE_CODES = (1005, 1006, 1000, 1008, 503, 400)   # of the generated scenarios, these are in the core set


def _retry_close(code):
    @scenario("CLI-040", name="close_retry_%d" % code, tags="core" if code in CORE_CODES else "")
    async def fn(ctx):
        s, c, conn = await ctx.setup()
        await conn.close(code)
        t = conn.closed_at
        a = await s.next_attempt(1, 0.5 + LATE_SLACK + 1)
        check(a is not None, "no reconnection after close %d (retryable)" % code)
        gap = a["t"] - t
        check(gap >= FLOOR - FLOOR_SLACK, "reconnected %.3fs after close %d, before the floor" % (gap, code))
    fn.__doc__ = "Close %d is retryable: the client reconnects after a delay." % code


for _code in (1001, 1005, 1006, 1011, 1012, 1013, 1014, 4001, 4002, 4999):
    _retry_close(_code)


def _terminal_close(code):
    @scenario("CLI-041", name="close_terminal_%d" % code, tags="core" if code in CORE_CODES else "")
    async def fn(ctx):
        s, c, conn = await ctx.setup()
        await conn.close(code)
        await no_attempt(s, 2.5, "close %d is terminal" % code)
        ev = await c.expect("closed", 2.0)
        check(ev.get("reconnect") is False, "closed event does not say reconnect:false: %s" % ev)
    fn.__doc__ = "Close %d is terminal: the client does not reconnect by itself." % code


for _code in (1000, 1002, 1003, 1007, 1008, 1009):
    _terminal_close(_code)


def _retry_status(status):
    @scenario("CLI-042", name="handshake_retry_%d" % status, tags="core" if status in CORE_CODES else "")
    async def fn(ctx):
        s = await ctx.server()
        s.refuse = [status]
        c = await ctx.client(s)
        a = await s.next_attempt(1, 0.5 + LATE_SLACK + 2)
        check(a is not None, "no new attempt after HTTP %d (retryable)" % status)
        gap = a["t"] - s.attempts[0]["t"]
        check(gap >= FLOOR - FLOOR_SLACK, "retried %.3fs after HTTP %d, before the floor" % (gap, status))
        await c.expect("open", 5.0)
    fn.__doc__ = "A handshake refused with HTTP %d is retried after a delay." % status


for _st in (408, 429, 500, 502, 503, 504):
    _retry_status(_st)


def _stop_status(status):
    @scenario("CLI-042", name="handshake_stop_%d" % status, tags="core" if status in CORE_CODES else "")
    async def fn(ctx):
        s = await ctx.server()
        s.refuse_all = status
        c = await ctx.client(s)
        await s.next_attempt(0, 5.0)
        await no_attempt(s, 2.5, "HTTP %d is final" % status)
        ev = await c.expect("closed", 2.0)
        check(ev.get("reconnect") is False, "closed event does not say reconnect:false: %s" % ev)
    fn.__doc__ = "A handshake refused with HTTP %d is not retried." % status


for _st in (400, 403, 404, 426):
    _stop_status(_st)


@scenario("CLI-043", timeout=40, tags="core")
async def backoff_floor(ctx):
    """Every reconnection waits at least the floor (250 ms), also after a
    connection that opened and was dropped at once."""
    s = await ctx.server()
    await ctx.client(s)
    for i in range(5):
        conn = await s.accept(15.0, "connection %d" % (i + 1))
        conn.abort()
    await s.accept(15.0, "connection 6")
    gaps = s.gaps()
    check(min(gaps) >= FLOOR - FLOOR_SLACK, "reconnect gaps %s: below the floor of %.2fs" % (
        ["%.3f" % g for g in gaps], FLOOR))


async def _refusing_client(ctx, name, n_attempts, status=503, deadline=90.0, cap_check=False):
    s = await ctx.server(name)
    s.refuse_all = status
    await ctx.client(s, name="client-" + name)
    end = now() + deadline
    while len(s.attempts) < n_attempts:
        last = s.attempts[-1]["t"] if s.attempts else now()
        if cap_check and s.attempts and now() - last > CAP + LATE_SLACK:
            raise Failure("no attempt for %.1fs after attempt %d: over the cap of %.0fs (gaps %s)" % (
                now() - last, len(s.attempts), CAP, ["%.2f" % g for g in s.gaps()]))
        if now() > end:
            raise Failure("only %d attempts in %.0fs (gaps %s)" % (len(s.attempts), deadline,
                                                                 ["%.2f" % g for g in s.gaps()]))
        await asyncio.sleep(0.02)
    return s


@scenario("CLI-044", timeout=90)
async def backoff_jitter(ctx):
    """Two clients refused identically do not retry in lockstep: their
    delays are randomized (full jitter)."""
    s1, s2 = await asyncio.gather(_refusing_client(ctx, "a", 8), _refusing_client(ctx, "b", 8))
    g1, g2 = s1.gaps()[2:7], s2.gaps()[2:7]
    diff = sum(abs(x - y) for x, y in zip(g1, g2))
    check(diff > 1.0, "delays of two clients differ by %.3fs in total over 5 retries: no jitter "
          "(a: %s, b: %s)" % (diff, ["%.2f" % g for g in g1], ["%.2f" % g for g in g2]))


@scenario("CLI-045", timeout=120)
async def backoff_cap(ctx):
    """Delays grow (exponentially) while refusals go on, and never exceed
    the cap (10 s)."""
    s = await _refusing_client(ctx, "cap", 12, deadline=110, cap_check=True)
    g = s.gaps()
    check(max(g) <= CAP + LATE_SLACK, "a delay of %.2fs is over the cap of %.0fs" % (max(g), CAP))
    check(sum(g[3:7]) >= 2.5, "delays do not grow: %s" % ["%.2f" % x for x in g])


@scenario("CLI-047", timeout=60)
async def backoff_reset(ctx):
    """A connection closed right after its handshake (1013, MSG-098) does
    not reset the backoff: delays keep growing."""
    s = await ctx.server()
    await ctx.client(s)
    for i in range(8):
        conn = await s.accept(CAP + LATE_SLACK + 1, "connection %d" % (i + 1))
        await conn.close(1013)
    g = s.gaps()
    check(sum(g[3:7]) >= 2.5, "delays after 1013 do not grow: %s" % ["%.2f" % x for x in g])


@scenario("CLI-046", timeout=30)
async def retry_after(ctx):
    """A 503 with Retry-After: 3 delays the next attempt by 3 s."""
    s = await ctx.server()
    s.refuse = [(503, [("Retry-After", "3")])]
    await ctx.client(s)
    a = await s.next_attempt(1, 3 + CAP + LATE_SLACK)
    check(a is not None, "no new attempt after 503")
    gap = a["t"] - s.attempts[0]["t"]
    check(gap >= 3 - FLOOR_SLACK, "retried %.2fs after a 503 with Retry-After: 3" % gap)


@scenario("CLI-050", tags="core")
async def rewatch(ctx):
    """After a reconnect the client watches again every ticket it holds
    that has not ended."""
    s, c, conn = await ctx.setup()
    req, t1 = await enqueue_and_reply(c, conn, "e1")
    req, t2 = await enqueue_and_reply(c, conn, "e2", player="p2")
    conn.abort()
    conn2 = await s.accept(LATE_SLACK + 2, "reconnection")
    got = await conn2.serve(2.0)
    watched = {m["data"].get("ticketId") for m in got if m.get("type") == "watch"}
    check({t1, t2} <= watched, "re-watched %s of %s" % (sorted(watched), sorted({t1, t2})))


@scenario("CLI-051", tags="core")
async def rewatch_not_found(ctx):
    """not_found to a re-watch: the ticket is gone; the application is told
    (lost) and the client stops watching it."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn)
    conn.abort()
    conn2 = await s.accept(LATE_SLACK + 2, "reconnection")
    w = await conn2.recv_type("watch")
    check(w["data"].get("ticketId") == tid, "re-watched %s" % w["data"])
    await conn2.error(w, "not_found", False)
    await c.expect("lost", 5.0, ticketId=tid)
    conn2.abort()
    conn3 = await s.accept(LATE_SLACK + 2, "second reconnection")
    got = await conn3.serve(1.5)
    check(not [m for m in got if m.get("type") == "watch"], "the client watched a lost ticket again")


@scenario("CLI-052")
async def rewatch_final_state(ctx):
    """A re-watch answered with state expired ends the ticket (ended)."""
    s, c, conn = await ctx.setup()
    req, tid = await enqueue_and_reply(c, conn)
    conn.abort()
    conn2 = await s.accept(LATE_SLACK + 2, "reconnection")
    w = await conn2.recv_type("watch")
    await conn2.reply(w, "watching", {"ticketId": tid, "state": "expired", "version": 2})
    await c.expect("ended", 5.0, ticketId=tid, state="expired")


# ---- 6. Pacing -------------------------------------------------------------

@scenario("CLI-060", timeout=30)
async def pacing(ctx):
    """40 requests asked for at once go out at most 20 at once and 10 per
    second after that."""
    s, c, conn = await ctx.setup()
    for i in range(40):
        await c.send(cmd="cancel", ticketId=new_ticket_id())
    times = []
    for i in range(40):
        m = await conn.recv_type("cancel", 10.0)
        times.append(now())
        await conn.error(m, "not_found", False)
    worst = 0.0
    for i in range(len(times)):
        for j in range(i, len(times)):
            excess = (j - i + 1) - (20 + 10 * (times[j] - times[i]))
            worst = max(worst, excess)
    check(worst <= 2, "%d messages over the pace of 20 + 10/s (sent in %.2fs)" % (worst, times[-1] - times[0]))


@scenario("CLI-061")
async def rate_limited(ctx):
    """After rate_limited the client waits at least 1 s before resending."""
    s, c, conn = await ctx.setup()
    await c.send(cmd="enqueue", ref="e1", queue="ranked", playerId="p1")
    r1 = await conn.recv_type("enqueue")
    await conn.error(r1, "rate_limited", True)
    t = now()
    r2 = await conn.recv_type("enqueue", CAP + LATE_SLACK)
    gap = now() - t
    check(gap >= 1.0 - FLOOR_SLACK, "resent %.3fs after rate_limited" % gap)
    check(r2["data"].get("idempotencyKey") == r1["data"].get("idempotencyKey"), "the key changed")
    await conn.enqueued(r2)
    await c.expect("enqueued", 5.0, ref="e1")


# ---- 7. Liveness -----------------------------------------------------------

@scenario("CLI-070", tags="core")
async def server_ping(ctx):
    """A WebSocket ping from the server is answered with a pong."""
    s, c, conn = await ctx.setup()
    for _ in range(2):
        check(await conn.ping(3.0), "no pong within 3s")


@scenario("CLI-071", timeout=60)
async def stall(ctx):
    """A connection on which nothing arrives (the server stalls: no reply,
    no pong, no close) is given up and replaced within 30 s."""
    s, c, conn = await ctx.setup()
    conn.stall()
    conn2 = await s.accept(30 + LATE_SLACK, "reconnection after the stall")
    check(conn2 is not None, "no reconnection")


# ---- 8. Closing ------------------------------------------------------------

@scenario("CLI-080", tags="core")
async def close_command(ctx):
    """The application closes: a close frame with 1000, no reconnection."""
    s, c, conn = await ctx.setup()
    await c.send(cmd="close")
    try:
        await asyncio.wait_for(conn.ws.wait_closed(), 5)
    except asyncio.TimeoutError:
        raise Failure("the connection was not closed within 5s")
    check(conn.ws.close_code == 1000, "closed with %s, not 1000" % conn.ws.close_code)
    await no_attempt(s, 1.5, "after the application's close")


# ---- 9. Authentication -------------------------------------------------------
#
# The kit gives the client a token (and the answers of its refresh callback,
# `tokens`) in `connect`, reads the token of every handshake as a server does
# (auth.md AUTH-010..012: the Authorization header wins, else access_token)
# and compares it byte for byte with the one the client must present.

UNAUTHORIZED = (401, [("WWW-Authenticate", 'Bearer realm="matchwire", error="invalid_token"'),
                      ("Content-Type", "application/json")],
                b'{"code":"unauthorized","message":"token refused by the client kit","retryable":false}')


def check_token(s, n, expected, what):
    """Handshake attempt n (0-based) presented exactly `expected`."""
    a = s.attempts[n]
    check(a["token_problem"] is None, "%s (handshake %d): %s (CLI-090)" % (what, n + 1, a["token_problem"]))
    check(a["token"] == expected, "%s (handshake %d): presented %s, expected %r (CLI-090)" % (
        what, n + 1, "no token" if a["token"] is None else repr(a["token"]), expected))


async def refreshed(c, timeout=2.0):
    """The client called its refresh callback (the adapter printed
    tokenRefresh)."""
    try:
        await c.expect("tokenRefresh", timeout)
    except Failure:
        raise Failure("the client did not call its token refresh callback (no tokenRefresh event)")


async def expect_stop(s, c, why, quiet=3.0):
    """The client stopped: no further attempt for `quiet` seconds, and the
    application was told (a closed event with reconnect false)."""
    await no_attempt(s, quiet, why)
    try:
        await c.expect("closed", 2.0, reconnect=False)
    except Failure:
        raise Failure("%s, but the application was not told (no closed event with reconnect:false; got %s)" % (
            why, [{k: v for k, v in e.items() if not k.startswith("_")} for e in c.find("closed")]))


@scenario("CLI-090", tags="core")
async def token_every_handshake(ctx):
    """A client with a token presents exactly that token (Authorization:
    Bearer, or access_token) on its first handshake, on the retry after a
    refused handshake (503) and on reconnections after 1006."""
    tok = new_token("every")
    s = await ctx.server()
    s.refuse = [503]
    c = await ctx.client(s, token=tok, tokens=[])
    conn = await s.accept(10.0, "connection after the 503")
    await c.expect("open", 5.0)
    for i in range(2):
        conn.abort()
        conn = await s.accept(LATE_SLACK + 3, "reconnection %d after 1006" % (i + 1))
    check(len(s.attempts) == 4, "%d handshakes, expected 4" % len(s.attempts))
    for n, what in enumerate(("first handshake", "retry after 503", "reconnection after 1006",
                              "second reconnection after 1006")):
        check_token(s, n, tok, what)


@scenario("CLI-090", "CLI-091", tags="core")
async def token_expired_refresh(ctx):
    """Close 4003 (token expired): the client calls its refresh callback,
    reconnects after a backoff delay (at least the floor) presenting the new
    token, and keeps presenting the new one (a 1006 later)."""
    t1, t2 = new_token("old"), new_token("new")
    s, c, conn = await ctx.setup(token=t1, tokens=[t2])
    check_token(s, 0, t1, "first handshake")
    await conn.close(4003, "token expired")
    t = conn.closed_at
    a = await s.next_attempt(1, 0.5 + LATE_SLACK + 1)
    check(a is not None, "no reconnection after close 4003 with a new token available (CLI-091)")
    gap = a["t"] - t
    check(gap >= FLOOR - FLOOR_SLACK, "reconnected %.3fs after 4003, before the backoff floor (CLI-091)" % gap)
    check_token(s, 1, t2, "reconnection after 4003")
    await refreshed(c)
    conn2 = await s.accept(5.0, "the connection after 4003")
    await c.expect("open", 5.0)
    conn2.abort()
    await s.accept(LATE_SLACK + 3, "reconnection after 1006")
    check_token(s, 2, t2, "reconnection after 1006 (after the refresh)")


@scenario("CLI-092", tags="core")
async def token_expired_no_token(ctx):
    """Close 4003 and the refresh callback has no token: the client stops
    (no reconnection) and tells the application (closed, reconnect false)."""
    s, c, conn = await ctx.setup(token=new_token("only"), tokens=[])
    await conn.close(4003, "token expired")
    await refreshed(c, 3.0)
    await expect_stop(s, c, "4003 with no new token is final")


@scenario("CLI-093", tags="core")
async def unauthorized_refresh_retry(ctx):
    """A handshake refused 401: the client calls its refresh callback and
    retries once, after a backoff delay, with the new token."""
    t1, t2 = new_token("old"), new_token("new")
    s = await ctx.server()
    s.refuse = [UNAUTHORIZED]
    c = await ctx.client(s, token=t1, tokens=[t2])
    a = await s.next_attempt(1, 5 + 0.5 + LATE_SLACK + 1)
    check(a is not None, "no new attempt after a 401 with a new token available (CLI-093)")
    gap = a["t"] - s.attempts[0]["t"]
    check(gap >= FLOOR - FLOOR_SLACK, "retried %.3fs after the 401, before the backoff floor" % gap)
    check_token(s, 0, t1, "first handshake")
    check_token(s, 1, t2, "retry after 401")
    await refreshed(c)
    await c.expect("open", 5.0)


@scenario("CLI-094", tags="core")
async def unauthorized_twice_stop(ctx):
    """401, a new token, 401 again: the client stops (no third attempt,
    although its callback would give another token) and tells the
    application."""
    t1, t2, t3 = new_token("a"), new_token("b"), new_token("c")
    s = await ctx.server()
    s.refuse_all = UNAUTHORIZED
    c = await ctx.client(s, token=t1, tokens=[t2, t3])
    a = await s.next_attempt(1, 5 + 0.5 + LATE_SLACK + 1)
    check(a is not None, "no retry after the first 401 with a new token available (CLI-093)")
    check_token(s, 1, t2, "retry after 401")
    await expect_stop(s, c, "a second 401 in a row is final")
    check(len(s.attempts) == 2, "%d handshakes after two 401s" % len(s.attempts))


@scenario("CLI-093", "CLI-094")
async def unauthorized_after_success(ctx):
    """A successful handshake ends a row of 401s: 401, retry with a new
    token (open), TCP dropped, 401 again: the client refreshes and retries
    again with the next token."""
    t1, t2, t3 = new_token("a"), new_token("b"), new_token("c")
    s = await ctx.server()
    s.refuse = [UNAUTHORIZED]
    c = await ctx.client(s, token=t1, tokens=[t2, t3])
    conn = await s.accept(10.0, "the connection after the first 401")
    await c.expect("open", 5.0)
    check_token(s, 1, t2, "retry after the first 401")
    s.refuse = [UNAUTHORIZED]
    conn.abort()
    a = await s.next_attempt(3, 2 * (LATE_SLACK + 2))
    check(a is not None, "no retry after a 401 that followed a successful handshake (%d handshakes)" %
          len(s.attempts))
    check_token(s, 3, t3, "retry after the second 401 (not in a row)")
    await s.accept(5.0, "the connection after the second 401")


@scenario("CLI-094", tags="core")
async def unauthorized_no_token_stop(ctx):
    """401 and the refresh callback has no token: the client stops after
    the one attempt and tells the application."""
    s = await ctx.server()
    s.refuse_all = UNAUTHORIZED
    c = await ctx.client(s, token=new_token("only"), tokens=[])
    await s.next_attempt(0, 5.0)
    await refreshed(c, 3.0)
    await expect_stop(s, c, "a 401 with no new token is final")
    check(len(s.attempts) == 1, "%d handshakes after a 401 with no new token" % len(s.attempts))


@scenario("CLI-094")
async def unauthorized_without_token(ctx):
    """A client given no token and no refresh callback, refused 401: it
    stops after the one attempt and tells the application."""
    s = await ctx.server()
    s.refuse_all = UNAUTHORIZED
    c = await ctx.client(s)
    await s.next_attempt(0, 5.0)
    await expect_stop(s, c, "a 401 without a token to present is final")
