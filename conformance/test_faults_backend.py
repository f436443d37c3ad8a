"""Profile faults, backend part: what any implementation must survive when
its Redis stalls or its worker crashes, driven through the harness hooks of
spec/testing.md (TST-018..025):

- `--redis-pause-cmd` / `--redis-resume-cmd` (TST-019): Redis answers
  nothing for replyTimeoutSeconds + 2 s, connections kept. A request sent
  meanwhile gets `error` `unavailable` (retryable) within the reply timeout,
  not after the stall; the connection is not closed with a terminal code
  (a client that keeps pinging at a rate under the limit included);
  /healthz stops saying 200; once Redis goes on, everything works again.
- `--worker-kill-cmd` / `--worker-start-cmd` (TST-023): the worker is
  killed (no cleanup) while matches are forming, tickets are enqueued while
  it is down, it is started again: every acknowledged ticket gets its
  `match.assigned`, once, on the connection that enqueued it, within the
  bound of TST-025.

- `--redis-proxy` (TST-030, TST-032): conformance/resp_proxy.py between the
  --url gateway and its Redis drops or holds one chosen command: an
  enqueue whose reply is lost after its create ran (retried: one ticket;
  not retried: ended by grace, never matched), the connection dropped at a
  watch's read (the assignment still arrives), the subscriber dropped and
  its SUBSCRIBE held while a match is published (re-read on resubscribe).

The hooks are always undone (TST-024), the proxy's rules always released
(TST-033). The HTTP pipelining and slowloris tests of this profile are in
test_faults_edge.py.

Requirement ids: the backend timeout and stall requirements (MSG-125,
MSG-127, MSG-128, CHN-104, CHN-105, CHN-107) and the atomic commit+publish (CHN-062)
written for issue 11; without them the closest older ids are CHN-101 (the
stall tests) and CHN-020 / CHN-083 (the worker crash). The proxy tests:
MSG-135, MSG-026, CHN-074, CHN-101, CHN-102, CHN-032, CHN-023 (issue 17).
"""

import subprocess
import time

import pytest

import ijson
from conftest import hook
from mwclient import Closed, WaitTimeout, check_envelope, http, uniq, wait_until

pytestmark = pytest.mark.profile("faults")

TERMINAL = (1000, 1002, 1003, 1007, 1008, 1009, 1010)
HOOK_TIMEOUT = 30
LEASE = 10.0          # CHN-082: the worker lease's time to live
LEASE_RETRY = 3.0     # CHN-082: how often a waiting worker retries


def http_base(url):
    return url.replace("ws://", "http://").rsplit("/", 1)[0]


def bases(testee):
    out = [http_base(testee.url)]
    if testee.url2:
        out.append(http_base(testee.url2))
    return out


def run_hook(cmd):
    """TST-024: a hook that exits non-zero or runs over 30 s fails its test."""
    r = subprocess.run(cmd, shell=True, timeout=HOOK_TIMEOUT)
    assert r.returncode == 0, "hook %r exited %d" % (cmd, r.returncode)


def service(keep, seconds=0.0):
    """Reads what arrives on the connections in `keep` for `seconds` (at
    least one pass), so that the server's WebSocket pings get their pongs
    while a test waits (the declared idle timeout may be 2 s); messages are
    kept for the test."""
    end = time.monotonic() + seconds
    while True:
        for w in keep:
            try:
                _op, data = w.recv_message(timeout=0.02)   # the socket, not w.pending
                w.pending.append(check_envelope(data))
            except WaitTimeout:
                pass
        if time.monotonic() >= end:
            return


def wait_healthy(testee, keep=()):
    """TST-024: both gateways answer /healthz 200 again (at most 30 s)."""
    for b in bases(testee):
        wait_until(lambda b=b: service(keep) or _status(testee, b) == 200, HOOK_TIMEOUT,
                   "%s/healthz 200 after the fault" % b)


def _status(testee, base, timeout=None):
    try:
        return http(testee, "GET", "/healthz", base=base, timeout=timeout).status
    except OSError:
        return None


def unavailable(r):
    return r["type"] == "error" and r["data"]["code"] == "unavailable" and r["data"]["retryable"] is True


class Paused:
    """Redis paused for the block; always resumed (TST-024)."""

    def __init__(self, testee, config, keep=()):
        self.testee, self.keep = testee, keep
        self.pause = hook(config, "--redis-pause-cmd", "a way to stall the testee's Redis, connections kept")
        self.resume = hook(config, "--redis-resume-cmd", "a way to resume the stalled Redis")

    def __enter__(self):
        run_hook(self.pause)
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        run_hook(self.resume)
        wait_healthy(self.testee, self.keep)
        return False


@pytest.mark.req("MSG-125", "CHN-104", "MSG-100", "TST-018", "TST-019", "TST-024", "TST-025")
def test_redis_stall_requests_unavailable_in_time(testee, conns, queue, pytestconfig):
    """A request that needs a stalled Redis is answered `unavailable`
    (retryable) within the reply timeout, on either gateway, and the
    connection stays usable."""
    bound = testee.timeout
    stall = bound + 2.0
    a = conns()
    b = conns(url=testee.url2) if testee.url2 else conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    with Paused(testee, pytestconfig, keep=(a, b)) as p:
        t = time.monotonic()
        r = a.enqueue(queue, player=uniq("stall"), key=uniq("k"), timeout=bound)
        took = time.monotonic() - t
        assert unavailable(r), "enqueue during a Redis stall: %s" % ijson.dumps(r)
        t = time.monotonic()
        r = b.request("watch", {"ticketId": ta}, timeout=bound)
        took = max(took, time.monotonic() - t)
        assert unavailable(r), "watch during a Redis stall: %s" % ijson.dumps(r)
        service((a, b), max(0.0, stall - (time.monotonic() - p.t0)))
    # After the stall: same connections, everything works again.
    assert a.ping()["type"] == "pong" and b.ping()["type"] == "pong"
    a.enqueue_ok(queue)     # (ta itself may have expired meanwhile: declared TTLs can be 3 s)
    assert took <= bound


@pytest.mark.req("MSG-128", "CHN-107", "CHN-105", "MSG-113", "TST-018", "TST-019", "TST-024")
def test_redis_stall_healthz_not_ok(testee, conns, queue, pytestconfig):
    """While Redis answers nothing, each gateway's /healthz keeps answering
    at once and stops saying 200 within the reply timeout of the stall's
    start (a gateway with nothing in flight finds the stall by probing its
    quiet connections, CHN-105)."""
    bound = testee.timeout
    a = conns()
    with Paused(testee, pytestconfig) as p:
        # One request makes the stall visible to a server that only notices
        # it through a command's bound.
        a.send_env("enqueue", {"queue": queue, "playerId": uniq("p")}, id=a.next_id())
        for base in bases(testee):
            while True:
                t = time.monotonic()
                st = _status(testee, base, timeout=bound)
                assert st is not None and time.monotonic() - t < 1.5, \
                    "%s/healthz did not answer within 1.5 s during a Redis stall" % base
                if st != 200:
                    break
                assert time.monotonic() - p.t0 < bound, \
                    "%s/healthz still said 200 %.0f s into a Redis stall" % (base, bound)
                time.sleep(0.1)


@pytest.mark.req("MSG-127", "MSG-010", "TST-018", "TST-019", "TST-024", "TST-025")
def test_redis_stall_no_terminal_close(testee, conns, queue, pytestconfig):
    """A client with a request waiting on a stalled Redis that keeps
    pinging at a modest rate (20/s, under the rate limit) gets one reply for
    each request and is never closed with a terminal code (a backend stall
    is not a client bug)."""
    bound = testee.timeout
    stall = bound + 2.0
    a = conns()
    ids = []
    with Paused(testee, pytestconfig) as p:
        try:
            i = a.next_id()
            a.send_env("enqueue", {"queue": queue, "playerId": uniq("p"), "idempotencyKey": uniq("k")}, id=i)
            ids.append(("enqueue", i))
            while time.monotonic() - p.t0 < stall:
                i = a.next_id()
                a.send_env("ping", {}, id=i)
                ids.append(("ping", i))
                time.sleep(0.05)
        except (Closed, OSError) as e:
            closed_by_stall(a, e)
            return
    # Every request gets exactly one reply (MSG-010), in order (MSG-013).
    ok = {"enqueue": ("enqueued",), "ping": ("pong",)}
    try:
        for kind, i in ids:
            r = a.reply(i, timeout=bound + stall)
            assert r["type"] in ok[kind] or unavailable(r), "%s: %s" % (kind, ijson.dumps(r))
        assert a.ping()["type"] == "pong"
    except (Closed, OSError) as e:
        closed_by_stall(a, e)


def closed_by_stall(ws, e):
    """A connection closed during or after a stall: only a retryable close
    that says "the server is short" is acceptable (MSG-127: 1013 when the
    requests queued behind a waiting one reach their bound; 1011); a
    terminal code, or a plain drop, fails."""
    c = e
    if not isinstance(e, Closed):
        try:
            c = ws.expect_closed(timeout=1)
        except (WaitTimeout, OSError):
            pass
    code = getattr(c, "code", None)
    assert code not in TERMINAL, "closed with terminal code %s (%r) by a Redis stall" % (code, c.reason)
    assert code in (1011, 1013), "connection lost during a Redis stall: %s" % c


@pytest.mark.req("CHN-062", "CHN-083", "CHN-020", "TST-018", "TST-023", "TST-024", "TST-025")
def test_worker_crash_loses_no_acknowledged_ticket(testee, conns, queue, pytestconfig):
    """The worker is killed while matches form, more tickets arrive while
    it is down, it is started again: every acknowledged ticket gets its
    match.assigned on its connection, once."""
    kill = hook(pytestconfig, "--worker-kill-cmd", "a way to kill the testee's worker abruptly")
    start = hook(pytestconfig, "--worker-start-cmd", "a way to start the testee's worker again")
    urls = [testee.url, testee.url2 or testee.url]
    ws = [conns(url=urls[i % 2]) for i in range(8)]
    acked = []   # (conn, ticketId)

    def round_of_enqueues(tag):
        for i, w in enumerate(ws):
            for k in range(2):
                d = w.enqueue_ok(queue, player="%s-%d-%d" % (tag, i, k), key=uniq("k"))
                acked.append((w, d["ticketId"]))

    round_of_enqueues("before")
    try:
        run_hook(kill)      # while the 8 matches of round one form
        round_of_enqueues("down")
        time.sleep(0.5)
    finally:
        run_hook(start)     # also when the kill or an enqueue failed (TST-024)
    wait_healthy(testee)
    bound = LEASE + LEASE_RETRY + 2 * testee.timeout
    # With a ticket TTL under the bound, a ticket may expire while the worker
    # is away: ticket.expired is then its end notice. An assignment it never
    # hears of is a loss either way.
    may_expire = testee.decl["ticketTtlSeconds"] <= bound
    want = {tid: w for w, tid in acked}
    got = {}
    dups = []
    deadline = time.monotonic() + bound
    while len(got) < len(want) and time.monotonic() < deadline:
        for w in ws:    # read every connection, so that pings get their pongs
            try:
                m = w.recv(timeout=0.05)
            except WaitTimeout:
                continue
            tid = m["data"].get("ticketId")
            if m["type"] in ("match.assigned", "ticket.expired", "ticket.cancelled") and want.get(tid) is w:
                if tid in got:
                    dups.append(m)
                got[tid] = m["type"]
    assert not dups, "a second push for one ticket on its connection: %s" % ijson.dumps(dups[0])
    missing = [tid for tid in want if tid not in got]
    if missing:
        # Tell a lost push (assigned, never delivered: CHN-020 / CHN-062..064)
        # from a ticket never assigned (CHN-083).
        probe = conns()
        states = {}
        for tid in missing:
            r = probe.request("watch", {"ticketId": tid})
            k = r["data"].get("state", r["data"].get("code"))
            states[k] = states.get(k, 0) + 1
        pytest.fail("%d of %d acknowledged tickets got neither match.assigned nor an end notice within %.0f s "
                    "of the worker's restart; their state now: %s" % (len(missing), len(acked), bound, states))
    ended = [t for t, k in got.items() if k != "match.assigned"]
    assert may_expire or not ended, "%d tickets ended without assignment: %s" % (
        len(ended), sorted(set(got[t] for t in ended)))


# ---------------------------------------------------------------------------
# Drops and holds at a chosen Redis command (spec/testing.md TST-032: the
# suite's RESP proxy gives the faults profile its faults at one command).
#
# The harness puts conformance/resp_proxy.py between the --url gateway and
# its Redis and passes its control port as --redis-proxy (as TST-030 does for
# the channel profile). The rules match what the spec's data layout fixes,
# not how an implementation sends it (one script, a function, MULTI/EXEC or
# plain commands): the idempotency key's name `mw:idem:<n>:<playerId>:<key>`
# (channel.md §4) carries the client's key, the ticket's keys carry its id,
# and the subscriber sends SUBSCRIBE naming `<prefix>matchmaking:assigned`.
# ---------------------------------------------------------------------------

SUBSCRIBE_CMDS = ["SUBSCRIBE", "SSUBSCRIBE", "PSUBSCRIBE"]


@pytest.fixture
def proxy(pytestconfig, testee):
    import resp_proxy
    addr = hook(pytestconfig, "--redis-proxy",
                "the control port of conformance/resp_proxy.py between the --url gateway and its Redis "
                "(TST-030, TST-032)")
    c = resp_proxy.Control(addr)
    c.clear()
    yield c
    c.close()   # releases whatever is still held (TST-033)
    wait_healthy(testee)   # the gateway has reconnected before the next test (TST-024)


def players_of(m):
    return sorted(p["playerId"] for p in m["data"]["assignment"]["players"])


def enqueue_until_ok(ws, queue, player, key, bound):
    """Retries an `unavailable` enqueue with the same key and player (the
    client's duty of MSG-135) until it is answered `enqueued`."""
    deadline = time.monotonic() + bound
    while True:
        r = ws.enqueue(queue, player=player, key=key)
        if r["type"] == "enqueued":
            return r["data"]
        assert unavailable(r), "retried enqueue answered %s" % ijson.dumps(r)
        assert time.monotonic() < deadline, "enqueue still unavailable %.0f s after the fault" % bound
        service((ws,), 0.2)


def lose_enqueue_reply(testee, ws, proxy, queue, player, key):
    """Sends an enqueue whose Redis reply the proxy keeps (the command ran in
    Redis; the gateway never hears back): the gateway's command timeout
    (CHN-104) must answer it `unavailable` within the reply timeout
    (MSG-125). Returns that reply."""
    rule = proxy.rule("hold_reply", arg=key)
    i = ws.next_id()
    t = time.monotonic()
    ws.send_env("enqueue", {"queue": queue, "playerId": player, "idempotencyKey": key}, id=i)
    try:
        assert proxy.wait(rule, testee.timeout), (
            "no Redis command carrying the idempotency key (its key mw:idem:<n>:<playerId>:<key>, channel.md "
            "section 4) reached the proxy within %.1f s of the enqueue: is the --url gateway's Redis "
            "connection going through --redis-proxy?" % testee.timeout)
        r = ws.reply(i, timeout=testee.timeout + 1)
        took = time.monotonic() - t
    finally:
        proxy.release(rule)
    assert unavailable(r), "an enqueue whose Redis reply never came was answered %s" % ijson.dumps(r)
    assert took <= testee.timeout, "unavailable after %.1f s, over the reply timeout" % took
    return r


@pytest.mark.req("MSG-135", "MSG-026", "MSG-125", "CHN-104", "MSG-072", "TST-032", "TST-033")
def test_enqueue_reply_lost_retry_gives_one_ticket(testee, conns, queue, proxy):
    """The create runs in Redis but its reply is lost (held at the proxy
    past the gateway's command timeout): the enqueue is answered
    `unavailable`; the client retries with the same idempotencyKey, on the
    same gateway and on the other one: both get the same ticket, and the
    queue holds that one ticket only (a second ticket of the same player
    would be matched with it at once, or with the next player)."""
    a = conns()
    b = conns(url=testee.url2) if testee.url2 else conns()
    player, key = uniq("lost"), uniq("k")
    lose_enqueue_reply(testee, a, proxy, queue, player, key)
    t1 = enqueue_until_ok(a, queue, player, key, 3 * testee.timeout)
    t2 = enqueue_until_ok(b, queue, player, key, testee.timeout)
    assert t1["ticketId"] == t2["ticketId"], "two retries of one key gave two tickets: %s, %s" % (
        t1["ticketId"], t2["ticketId"])
    assert t1["state"] == "queued", "the retried ticket is %s before any partner came" % t1["state"]
    tid = t1["ticketId"]
    # No phantom twin: nothing matches the ticket before a partner comes.
    early = [m for m in a.quiet(1.0) + b.quiet(0.1) if m["type"] == "match.assigned"]
    assert not early, "matched with no partner enqueued (a second ticket of the lost create?): %s" % (
        ijson.dumps(early[0]))
    c = conns(url=testee.url2) if testee.url2 else conns()
    partner = uniq("partner")
    tp = c.enqueue_ok(queue, player=partner, key=uniq("k"))["ticketId"]
    ma = a.wait_push("match.assigned", tid)
    mc = c.wait_push("match.assigned", tp)
    assert players_of(ma) == sorted([player, partner]), "the retried ticket's match: %s" % players_of(ma)
    assert players_of(mc) == sorted([player, partner]), "the partner's match: %s" % players_of(mc)
    assert ma["data"]["assignment"]["matchId"] == mc["data"]["assignment"]["matchId"]
    dup = [m for m in a.quiet(0.5) if m["type"] == "match.assigned"]
    assert not dup, "match.assigned twice on the enqueuing connection (MSG-072): %s" % ijson.dumps(dup[0])


@pytest.mark.req("MSG-135", "CHN-074", "MSG-074", "CHN-104", "TST-032", "TST-033")
def test_enqueue_reply_lost_no_phantom_ticket(testee, conns, queue, proxy):
    """The create runs in Redis, its reply is lost, and the client does not
    retry: the ticket it never learned of has no watcher once Redis answers
    again, so the grace rule ends it (MSG-135, CHN-074). Two players who come
    after the grace period are matched with each other, never with the
    phantom (its player never hears of the match)."""
    grace, ttl = testee.decl["graceSeconds"], testee.decl["ticketTtlSeconds"]
    a = conns()
    ghost = uniq("ghost")
    t0 = time.monotonic()
    lose_enqueue_reply(testee, a, proxy, queue, ghost, uniq("k"))
    t_unavail = time.monotonic()
    # Redis is back for the gateway once it answers a request again; the
    # grace period runs from then (plus one second for the sweep).
    assert a.ping()["type"] == "pong"
    wait_until(lambda: service((a,)) or _status(testee, http_base(testee.url)) == 200, 2 * testee.timeout,
               "/healthz 200 after the lost reply")
    end = max(time.monotonic(), t_unavail) + grace + 1.0
    if end - t0 >= ttl - 0.3:
        pytest.fail("cannot tell the grace rule from the ticket TTL: the declared ticketTtlSeconds (%s) must "
                    "exceed the command timeout + graceSeconds + 1.3 s" % ttl)
    service((a,), end - time.monotonic())
    b = conns(url=testee.url2) if testee.url2 else conns()
    c = conns()
    pb, pc = uniq("pb"), uniq("pc")
    tb = b.enqueue_ok(queue, player=pb, key=uniq("k"))["ticketId"]
    tc = c.enqueue_ok(queue, player=pc, key=uniq("k"))["ticketId"]
    mb = b.wait_push("match.assigned", tb)
    assert players_of(mb) == sorted([pb, pc]), (
        "matched with %s: the lost create's ticket (player %s) outlived the grace period" % (players_of(mb), ghost))
    mc = c.wait_push("match.assigned", tc)
    assert players_of(mc) == sorted([pb, pc]), "matched with %s" % players_of(mc)
    pushed = [m for m in a.quiet(0.3) if m["type"] == "match.assigned"]
    assert not pushed, "the client that never learned of its ticket got %s" % ijson.dumps(pushed[0])


@pytest.mark.req("CHN-101", "CHN-102", "MSG-041", "CHN-020", "TST-032", "TST-033")
def test_watch_read_dropped_then_assignment_delivered(testee, conns, queue, proxy):
    """The gateway's Redis connection is dropped at the watch's first
    command naming the ticket: the watch is answered `unavailable`
    (retryable; or `watching` if the gateway retried it itself), never lost;
    the client watches again once the gateway has reconnected, and gets the
    ticket's match.assigned, once."""
    owner = conns(url=testee.url2) if testee.url2 else conns()
    tid = owner.enqueue_ok(queue, player=uniq("p"), key=uniq("k"))["ticketId"]
    w = conns()
    rule = proxy.rule("drop", arg=tid)
    r = w.request("watch", {"ticketId": tid}, timeout=testee.timeout)
    assert proxy.wait(rule, 0.1), "no Redis command naming the ticket reached the proxy: is the --url " \
                                  "gateway's Redis connection going through --redis-proxy?"
    deadline = time.monotonic() + 3 * testee.timeout
    while r["type"] != "watching":
        assert unavailable(r), "watch over a dropped Redis connection answered %s" % ijson.dumps(r)
        assert time.monotonic() < deadline, "watch still unavailable %.0f s after the drop" % (3 * testee.timeout)
        service((w, owner), 0.2)
        r = w.request("watch", {"ticketId": tid}, timeout=testee.timeout)
    assert r["data"]["state"] == "queued", ijson.dumps(r)
    partner = conns(url=testee.url2) if testee.url2 else conns()
    partner.enqueue_ok(queue, player=uniq("p"), key=uniq("k"))
    m = w.wait_push("match.assigned", tid)
    assert m["data"]["ticketId"] == tid
    dup = [x for x in w.quiet(0.5) if x["type"] == "match.assigned"]
    assert not dup, "match.assigned twice (MSG-072): %s" % ijson.dumps(dup[0])


@pytest.mark.req("CHN-032", "CHN-023", "CHN-102", "CHN-033", "TST-032", "TST-033")
def test_subscription_dropped_assignment_delivered_after_resubscribe(testee, conns, queue, proxy, rds):
    """The --url gateway's subscriber connection is dropped (Redis closes
    every pub/sub connection: CLIENT KILL TYPE pubsub), its first
    SUBSCRIBE to `matchmaking:assigned` after the reconnect is dropped too,
    and the next one is held while a partner's enqueue on the other gateway
    commits and publishes the match: the notice goes out while the gateway
    has no subscription. Once the SUBSCRIBE is let through, the gateway
    re-reads its watched tickets (CHN-032, CHN-023): the client gets its
    match.assigned, once."""
    chan = testee.decl["redisPrefix"] + "matchmaking:assigned"
    a = conns()
    player = uniq("sub")
    tid = a.enqueue_ok(queue, player=player, key=uniq("k"))["ticketId"]
    drop = proxy.rule("drop", cmd=SUBSCRIBE_CMDS, arg=chan)
    hold = proxy.rule("hold", cmd=SUBSCRIBE_CMDS, arg=chan)
    try:
        killed = rds.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed >= 1, "Redis had no pub/sub connection to close"
        assert proxy.wait(drop, 2 * testee.timeout), (
            "the --url gateway did not send SUBSCRIBE %s through --redis-proxy within %.0f s of losing its "
            "subscriber connection (CHN-102)" % (chan, 2 * testee.timeout))
        assert proxy.wait(hold, 2 * testee.timeout), (
            "the --url gateway did not subscribe again within %.0f s of a dropped SUBSCRIBE" % (2 * testee.timeout))
        # The subscription is down; the match is committed and published now.
        b = conns(url=testee.url2) if testee.url2 else conns()
        partner = uniq("partner")
        tb = b.enqueue_ok(queue, player=partner, key=uniq("k"))["ticketId"]
        mb = b.wait_push("match.assigned", tb)
        assert players_of(mb) == sorted([player, partner]), players_of(mb)
    finally:
        proxy.release(hold)
    m = a.wait_push("match.assigned", tid, timeout=3 * testee.timeout)
    assert players_of(m) == sorted([player, partner])
    dup = [x for x in a.quiet(0.5) if x["type"] == "match.assigned"]
    assert not dup, "match.assigned twice (MSG-072, CHN-022): %s" % ijson.dumps(dup[0])
    wait_healthy(testee, (a,))
