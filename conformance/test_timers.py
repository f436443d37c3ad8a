"""messages.md §5: every ticket timer checked on both sides of its deadline,
counted from its defined starting event (issue 17, class 1).

- time to live (MSG-075): from the ticket's creation; a watch does not
  extend it; its setting is the ticket TTL, not the retention;
- grace (MSG-074): from the moment the last watcher left, not from the
  ticket's creation nor from an earlier departure;
- retention (MSG-076): from the moment the ticket became final, not from
  its creation.

Each check on the early side asks the testee a margin before the deadline
(the deadline is counted from the last moment the starting event can have
happened, the margin covers the request's own latency); the late side waits
until the deadline plus the reply timeout. A declaration where ticket TTL
and retention differ (the reference's: 5 s and 3 s) makes a server that
takes one for the other fail the early side."""

import calendar
import time

import pytest

from conftest import needs_timer
from mwclient import http, pump, uniq, wait_until

pytestmark = pytest.mark.profile("core")

MARGIN = 0.75  # seconds before a deadline at which the early side is checked


def get(testee, tid):
    return http(testee, "GET", "/v1/tickets/" + tid)


def state(testee, tid):
    g = get(testee, tid)
    return g.json["state"] if g.status == 200 else g.status


def ts_ms(s):
    """RFC 3339 UTC with milliseconds (MSG-083) -> epoch milliseconds."""
    base, frac = s.rstrip("Zz").replace("t", "T").split(".") if "." in s else (s.rstrip("Zz"), "0")
    sec = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return sec * 1000 + int((frac + "000")[:3])


def sleep_until(t, wss=()):
    """Waits until monotonic time t, reading the open connections meanwhile
    (answering the server's idle pings: MSG-097; messages are kept)."""
    pump(wss, t)


def timers(testee, *names):
    for n in names:
        needs_timer(testee, n, testee.decl[n])
    return [float(testee.decl[n]) for n in names]


def early(testee, tid, deadline, want, what, wss=()):
    """Early side: at deadline - MARGIN the ticket is still in state `want`."""
    sleep_until(deadline - MARGIN, wss)
    s = state(testee, tid)
    assert s == want, "%s: %.2fs before its deadline the ticket is %s, expected %s" % (
        what, MARGIN, s, want)


def late(testee, tid, deadline, want, what):
    """Late side: by deadline + reply timeout the ticket is in state `want`
    (a state name, or 404 for forgotten)."""
    left = max(0.0, deadline - time.monotonic())
    wait_until(lambda: state(testee, tid) == want, left + testee.timeout,
               "%s: state %s within %.1fs after its deadline" % (what, want, testee.timeout))


# -- time to live (MSG-075) --------------------------------------------------

@pytest.mark.req("MSG-075", "MSG-025")
def test_ttl_expiresat_is_creation_plus_ttl(testee, ws, queue):
    """The declared ticket TTL, counted from creation: expiresAt - createdAt
    is the TTL (not the retention, not the grace)."""
    ttl, = timers(testee, "ticketTtlSeconds")
    r = ws.enqueue_ok(queue)
    g = get(testee, r["ticketId"]).json
    assert g["expiresAt"] == r["expiresAt"], "GET expiresAt %s differs from enqueued's %s" % (
        g["expiresAt"], r["expiresAt"])
    d = ts_ms(g["expiresAt"]) - ts_ms(g["createdAt"])
    assert abs(d - ttl * 1000) <= 1000, "expiresAt - createdAt = %d ms, declared ticket TTL %d ms" % (
        d, ttl * 1000)


@pytest.mark.req("MSG-075", "MSG-070")
def test_ttl_both_sides(testee, conns, queue):
    """Queued until its TTL (from creation), expired after it."""
    ttl, = timers(testee, "ticketTtlSeconds")
    a = conns()
    t_sent = time.monotonic()
    tid = a.enqueue_ok(queue)["ticketId"]
    t_reply = time.monotonic()
    early(testee, tid, t_sent + ttl, "queued", "time to live", [a])
    p = a.wait_push("ticket.expired", tid, timeout=max(0.0, t_reply + ttl - time.monotonic()) + testee.timeout)
    assert p["data"]["version"] == 2
    assert time.monotonic() - t_sent >= ttl - 0.25, "expired %.2fs after creation, TTL %.1fs" % (
        time.monotonic() - t_sent, ttl)
    assert state(testee, tid) == "expired"


@pytest.mark.req("MSG-075", "MSG-043")
def test_ttl_not_extended_by_watch(testee, conns, queue):
    """A watch (and an idempotent enqueue replay) late in the ticket's life
    does not move its expiry: it expires at creation + TTL."""
    ttl, = timers(testee, "ticketTtlSeconds")
    a, w = conns(), conns()
    key = uniq("k")
    player = uniq("p")
    t_sent = time.monotonic()
    r = a.enqueue_ok(queue, player=player, key=key)
    tid = r["ticketId"]
    t_reply = time.monotonic()
    sleep_until(t_sent + max(ttl - 1.0, ttl / 2), [a, w])
    assert w.request("watch", {"ticketId": tid})["data"]["state"] == "queued"
    again = w.enqueue_ok(queue, player=player, key=key)
    assert again["ticketId"] == tid
    assert again["expiresAt"] == r["expiresAt"], "replayed enqueue moved expiresAt %s -> %s" % (
        r["expiresAt"], again["expiresAt"])
    g = get(testee, tid).json
    assert g["expiresAt"] == r["expiresAt"], "a watch moved expiresAt %s -> %s" % (r["expiresAt"], g["expiresAt"])
    # The late side with a bound tighter than a slid expiry (watch + TTL).
    slack = min(testee.timeout, max(0.5, ttl - 1.5))
    p = w.wait_push("ticket.expired", tid, timeout=max(0.0, t_reply + ttl + slack - time.monotonic()))
    assert p["data"]["version"] == 2


# -- grace (MSG-074) -------------------------------------------------------------

@pytest.mark.req("MSG-074")
def test_grace_counted_from_last_watcher_leaving(testee, conns, queue):
    """A ticket older than the grace period whose only watcher leaves: it is
    still queued until grace after the departure, then cancelled."""
    grace, ttl = timers(testee, "graceSeconds", "ticketTtlSeconds")
    # Cancelled about 2 x grace + 0.2 s after creation: the TTL must be later.
    if ttl < grace * 2 + 0.6:
        pytest.skip("needs ticketTtlSeconds >= 2 x graceSeconds + 0.6 to tell grace from expiry")
    a = conns()
    tid = a.enqueue_ok(queue)["ticketId"]
    sleep_until(time.monotonic() + grace + 0.2, [a])  # older than the grace period, still watched
    assert state(testee, tid) == "queued", "cancelled while its watcher was connected"
    a.close()
    t_left = time.monotonic()
    early(testee, tid, t_left + grace, "queued", "grace after the last watcher left")
    late(testee, tid, t_left + grace, "cancelled", "grace after the last watcher left")
    assert get(testee, tid).json["version"] == 2


@pytest.mark.req("MSG-074", "MSG-043")
def test_grace_restarts_when_last_watcher_leaves_again(testee, conns, queue):
    """The grace period restarts at each departure of the last watcher: a
    ticket re-watched within grace, held past the first period, then left
    again, survives grace from the second departure."""
    grace, ttl = timers(testee, "graceSeconds", "ticketTtlSeconds")
    # Cancelled about 2.3 x grace + 0.2 s after creation: the TTL must be later.
    if ttl < grace * 2.3 + 0.5:
        pytest.skip("needs ticketTtlSeconds >= 2.3 x graceSeconds + 0.5 to tell grace from expiry")
    a = conns()
    tid = a.enqueue_ok(queue)["ticketId"]
    a.close()
    sleep_until(time.monotonic() + grace * 0.3)
    w = conns()
    assert w.request("watch", {"ticketId": tid})["data"]["state"] == "queued"
    sleep_until(time.monotonic() + grace + 0.2, [w])  # past the first departure's deadline
    assert state(testee, tid) == "queued", "grace-cancelled while watched again"
    w.close()
    t_left = time.monotonic()
    early(testee, tid, t_left + grace, "queued", "grace after the second departure")
    late(testee, tid, t_left + grace, "cancelled", "grace after the second departure")


# -- retention (MSG-076) ---------------------------------------------------------

@pytest.mark.req("MSG-076", "MSG-075")
def test_retention_counted_from_expiry(testee, conns, queue):
    """An expired ticket stays readable for the retention period counted
    from its expiry (not from its creation), then is forgotten."""
    ttl, ret = timers(testee, "ticketTtlSeconds", "assignedTtlSeconds")
    a = conns()
    tid = a.enqueue_ok(queue)["ticketId"]
    a.wait_push("ticket.expired", tid, timeout=ttl + testee.timeout)
    t_final = time.monotonic()
    early(testee, tid, t_final + ret, "expired", "retention after expiry", [a])
    late(testee, tid, t_final + ret, 404, "retention after expiry")


@pytest.mark.req("MSG-076", "MSG-026")
def test_retention_counted_from_assignment(testee, conns, queue):
    """A ticket assigned late in its life stays readable (GET, watch,
    idempotent enqueue) for the retention period from its assignment."""
    ttl, ret = timers(testee, "ticketTtlSeconds", "assignedTtlSeconds")
    a, b, w = conns(), conns(), conns()
    key, player = uniq("k"), uniq("p")
    tid = a.enqueue_ok(queue, player=player, key=key)["ticketId"]
    # Older than the retention period, if the TTL allows.
    sleep_until(time.monotonic() + max(0.0, min(ret + 0.3, ttl - 1.0)), [a, b, w])
    b.enqueue_ok(queue)
    a.wait_push("match.assigned", tid)
    t_final = time.monotonic()
    sleep_until(t_final + ret - MARGIN, [a, b, w])
    assert w.request("watch", {"ticketId": tid})["data"]["state"] == "assigned", \
        "forgotten before the retention period after assignment"
    assert w.enqueue_ok(queue, player=player, key=key)["ticketId"] == tid, \
        "idempotency key forgotten before the retention period"
    late(testee, tid, t_final + ret, 404, "retention after assignment")
