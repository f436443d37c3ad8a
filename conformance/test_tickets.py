"""messages.md §5-6: ticket states, versions, ids, grace, expiry,
retention, matching (MSG-070..083), and the late-watch race."""

import math
import time

import pytest

import ijson
from conftest import needs_timer
from mwclient import UUID4_RE, TS_RE, WaitTimeout, http, pump, uniq, wait_until

pytestmark = pytest.mark.profile("core")


def get(testee, tid):
    return http(testee, "GET", "/v1/tickets/" + tid)


@pytest.mark.req("MSG-070", "MSG-071")
def test_states_and_versions(testee, conns, queue):
    a, b, w = conns(), conns(), conns()
    t1 = a.enqueue_ok(queue)["ticketId"]
    assert a.request("cancel", {"ticketId": t1})["data"]["version"] == 2
    # A cancelled ticket is final: it is never matched afterwards.
    t2 = a.enqueue_ok(queue)["ticketId"]
    t3 = b.enqueue_ok(queue)["ticketId"]
    m = a.wait_push("match.assigned", t2)
    assert m["data"]["version"] == 2
    assert t1 not in ijson.dumps(m)
    r = w.request("watch", {"ticketId": t1})
    assert r["data"]["state"] == "cancelled" and r["data"]["version"] == 2
    r = w.request("watch", {"ticketId": t3})
    assert r["data"]["state"] == "assigned" and r["data"]["version"] == 2
    g = get(testee, t3)
    assert g.status == 200 and g.json["version"] == 2 and g.json["state"] == "assigned"


@pytest.mark.req("MSG-072", "MSG-041")
def test_reconnect_and_rewatch_no_duplicates(testee, conns, queue):
    a = conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    w = conns()
    w.request("watch", {"ticketId": ta})
    conns().enqueue_ok(queue)
    m = w.wait_push("match.assigned", ta)
    for _ in range(3):
        r = w.request("watch", {"ticketId": ta})
        assert r["data"]["version"] >= m["data"]["version"], "watching version went down (MSG-072)"
    w.ping()
    assert not [x for x in w.pending if x["type"] == "match.assigned"], "match.assigned received twice"


@pytest.mark.req("MSG-073")
def test_ticket_ids_unguessable(testee, ws, queue):
    ids = []
    for _ in range(40):
        t = ws.enqueue_ok(queue + "-x%d" % len(ids))["ticketId"]
        ids.append(t)
        ws.request("cancel", {"ticketId": t})
    assert len(set(ids)) == len(ids), "duplicate ticket ids"
    if all(UUID4_RE.match(i) for i in ids):
        return  # UUID v4: 122 random bits
    alphabet = set("".join(ids))
    bits = min(len(i) for i in ids) * math.log2(max(2, len(alphabet)))
    assert bits >= 122, "ticket ids carry at most %.0f bits (need 122)" % bits
    # Sequential ids are guessable whatever their length.
    assert len(set(i[:-4] for i in ids)) > 1


@pytest.mark.req("MSG-073")
def test_unissued_id_gives_no_access(testee, ws):
    import uuid
    forged = str(uuid.uuid4())
    assert ws.request("watch", {"ticketId": forged})["data"]["code"] == "not_found"
    assert ws.request("cancel", {"ticketId": forged})["data"]["code"] == "not_found"
    assert get(testee, forged).status == 404


@pytest.mark.req("MSG-074")
def test_grace_reconnect_within(testee, conns, queue):
    needs_timer(testee, "graceSeconds", testee.decl["graceSeconds"])
    a = conns()
    t = a.enqueue_ok(queue)["ticketId"]
    a.close()
    w = conns()
    r = w.request("watch", {"ticketId": t})
    assert r["data"]["state"] == "queued", "ticket did not survive its watcher's disconnect"
    # Watched again: it outlives the grace period.
    b = conns()
    deadline = time.monotonic() + testee.decl["graceSeconds"] + 1
    w.quiet(max(0.0, deadline - time.monotonic()))
    b.enqueue_ok(queue)
    w.wait_push("match.assigned", t)


@pytest.mark.req("MSG-074")
def test_grace_expires_into_cancelled(testee, conns, queue):
    g = testee.decl["graceSeconds"]
    needs_timer(testee, "graceSeconds", g)
    a = conns()
    t = a.enqueue_ok(queue)["ticketId"]
    a.close()
    r = wait_until(lambda: (lambda x: x if x.status == 200 and x.json["state"] != "queued" else None)(get(testee, t)),
                   g + testee.timeout + 2, "the grace rule to cancel the ticket")
    assert r.json["state"] == "cancelled" and r.json["version"] == 2


@pytest.mark.req("MSG-075", "MSG-062")
def test_expiry_push(testee, conns, queue):
    ttl = testee.decl["ticketTtlSeconds"]
    needs_timer(testee, "ticketTtlSeconds", ttl)
    a, w = conns(), conns()
    t0 = time.monotonic()
    t = a.enqueue_ok(queue)["ticketId"]
    w.request("watch", {"ticketId": t})
    pump([a, w], t0 + ttl - 0.5)  # both read meanwhile: a TTL may exceed twice the idle timeout
    p = a.wait_push("ticket.expired", t, timeout=ttl + testee.timeout)
    assert p["data"]["version"] == 2
    assert time.monotonic() - t0 >= ttl - 1, "expired before its time to live"
    assert w.wait_push("ticket.expired", t)["data"]["version"] == 2
    g = get(testee, t)
    assert g.status == 200 and g.json["state"] == "expired"


@pytest.mark.req("MSG-076")
def test_retention_then_forgotten(testee, conns, queue):
    ret = testee.decl["assignedTtlSeconds"]
    needs_timer(testee, "assignedTtlSeconds", ret)
    a, b, w = conns(), conns(), conns()
    key = uniq("k")
    ta = a.enqueue_ok(queue, player="pa", key=key)["ticketId"]
    b.enqueue_ok(queue)
    a.wait_push("match.assigned", ta)
    t_final = time.monotonic()
    assert w.request("watch", {"ticketId": ta})["data"]["state"] == "assigned"
    assert get(testee, ta).status == 200
    wait_until(lambda: get(testee, ta).status == 404, ret + testee.timeout + 2, "the ticket to be forgotten")
    assert time.monotonic() - t_final >= ret - 1, "forgotten before the retention period"
    r = w.request("watch", {"ticketId": ta})
    assert r["type"] == "error" and r["data"]["code"] == "not_found"
    # The idempotency key is forgotten with it: a new ticket.
    r = w.enqueue_ok(queue, player="pa", key=key)
    assert r["ticketId"] != ta


@pytest.mark.req("MSG-077", "MSG-082")
def test_many_matches_disjoint(testee, conns, queue):
    n = 8
    cs = [conns() for _ in range(n)]
    tids = [c.enqueue_ok(queue, player="p%d" % i)["ticketId"] for i, c in enumerate(cs)]
    ms = [c.wait_push("match.assigned", t)["data"]["assignment"] for c, t in zip(cs, tids)]
    by = {}
    for i, m in enumerate(ms):
        by.setdefault(m["matchId"], []).append(i)
    size = testee.size_of(queue)
    assert all(len(v) == size for v in by.values()), "matches %r are not of size %d" % (by, size)
    for mid, idx in by.items():
        assert all(ms[i] == ms[idx[0]] for i in idx), "players of one match got different assignments"
        assert [p["playerId"] for p in ms[idx[0]]["players"]] == ["p%d" % i for i in idx]


@pytest.mark.req("MSG-080")
def test_fifo(testee, conns, queue):
    size = testee.size_of(queue)
    cs = [conns() for _ in range(size * 2 + 1)]
    tids = [c.enqueue_ok(queue, player="p%d" % i)["ticketId"] for i, c in enumerate(cs)]
    first = cs[0].wait_push("match.assigned", tids[0])["data"]["assignment"]
    assert [p["playerId"] for p in first["players"]] == ["p%d" % i for i in range(size)]
    second = cs[size].wait_push("match.assigned", tids[size])["data"]["assignment"]
    assert [p["playerId"] for p in second["players"]] == ["p%d" % i for i in range(size, 2 * size)]
    r = cs[-1].request("watch", {"ticketId": tids[-1]})
    assert r["data"]["state"] == "queued", "the last ticket jumped the queue"


@pytest.mark.req("MSG-080", "MSG-082")
def test_declared_queue_sizes(testee, conns):
    sizes = testee.decl["queueSizes"]
    other = {q: s for q, s in sizes.items() if int(s) != int(testee.decl["matchSize"])}
    if not other:
        pytest.skip("testee declares no queue with another match size (queueSizes)")
    q, size = sorted(other.items())[0]
    size = int(size)
    region = uniq("r")
    cs = [conns() for _ in range(size)]
    tids = []
    for i, c in enumerate(cs):
        tids.append(c.enqueue_ok(q, player="p%d" % i, region=region)["ticketId"])
        if i < size - 1:
            r = c.request("watch", {"ticketId": tids[-1]})
            assert r["data"]["state"] == "queued", "matched before %d players waited" % size
    ms = [c.wait_push("match.assigned", t)["data"]["assignment"] for c, t in zip(cs, tids)]
    assert len({m["matchId"] for m in ms}) == 1
    assert [p["playerId"] for p in ms[0]["players"]] == ["p%d" % i for i in range(size)]


@pytest.mark.req("MSG-081")
def test_regions_never_mixed(testee, conns, queue):
    a, b, c, d, e = (conns() for _ in range(5))
    ta = a.enqueue_ok(queue, player="eu1", region="eu")["ticketId"]
    tb = b.enqueue_ok(queue, player="us1", region="us")["ticketId"]
    tc = c.enqueue_ok(queue, player="none1")["ticketId"]
    td = d.enqueue_ok(queue, player="none2")["ticketId"]
    te = e.enqueue_ok(queue, player="eu2", region="eu")["ticketId"]
    m1 = a.wait_push("match.assigned", ta)["data"]["assignment"]
    assert [p["playerId"] for p in m1["players"]] == ["eu1", "eu2"]
    m2 = c.wait_push("match.assigned", tc)["data"]["assignment"]
    assert [p["playerId"] for p in m2["players"]] == ["none1", "none2"]
    e.wait_push("match.assigned", te)
    d.wait_push("match.assigned", td)
    r = b.request("watch", {"ticketId": tb})
    assert r["data"]["state"] == "queued", "the only us ticket was matched"


@pytest.mark.req("MSG-083")
def test_timestamps(testee, conns, queue):
    a, b = conns(), conns()
    r = a.enqueue_ok(queue)
    assert TS_RE.match(r["expiresAt"])
    b.enqueue_ok(queue)
    m = a.wait_push("match.assigned", r["ticketId"])
    assert TS_RE.match(m["data"]["assignment"]["assignedAt"])
    g = get(testee, r["ticketId"]).json
    for k in ("createdAt", "expiresAt"):
        assert TS_RE.match(g[k]), "%s %r" % (k, g[k])


@pytest.mark.req("MSG-041", "MSG-072", "MSG-077", "MSG-115", "TST-035")
def test_late_watch_race(testee, conns, queue):
    """Tickets assigned in the same moment their watch arrives: each watcher
    receives exactly one match.assigned (the seed system lost these)."""
    pairs = 24
    watchers = [conns(name="race%d" % i) for i in range(6)]
    expected = {}
    for i in range(pairs):
        w = watchers[i % len(watchers)]
        r1 = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": "a%d" % i})
        assert r1.status == 201, r1.body
        t1 = r1.json["ticketId"]
        # The watch and the ticket that completes the match race each other.
        w.send_env("watch", {"ticketId": t1}, id="w%d" % i)
        r2 = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": "b%d" % i})
        assert r2.status == 201, r2.body
        expected.setdefault(w.name, set()).add(t1)
    for w in watchers:
        want = expected.get(w.name, set())
        got = {}
        deadline = time.monotonic() + testee.timeout * 2
        while set(got) != want or any(v < 1 for v in got.values()):
            m = w.recv(max(0.1, deadline - time.monotonic()))
            if m["type"] == "watching":
                assert m["data"]["state"] in ("queued", "assigned")
                got.setdefault(m["data"]["ticketId"], 0)
            elif m["type"] == "match.assigned":
                t = m["data"]["ticketId"]
                assert t in want, "push for a ticket %s this connection never watched" % t
                got[t] = got.get(t, 0) + 1
                assert got[t] == 1, "ticket %s delivered twice" % t
            elif m["type"] == "error":
                raise AssertionError("watch failed: %s" % ijson.dumps(m))
        r = w.ping()
        assert r["type"] == "pong"
        dup = [m for m in w.pending if m["type"] == "match.assigned"]
        assert not dup, "duplicate match.assigned after all were delivered: %s" % dup[:1]


# -- matching keys compared exactly (issue 17, class 4) ------------------------

def _states(testee, tids):
    return [get(testee, t).json["state"] for t in tids]


@pytest.mark.req("MSG-081")
def test_regions_compared_exactly(testee, conns, queue):
    """Regions are compared byte for byte: another case, a longer name it is
    a prefix of, or a shorter one that is its prefix never match; the same
    region does (also in upper case)."""
    size = testee.size_of(queue)
    r = uniq("r")
    others = [r.upper(), r + "x", r[:-1], r + " ", "x" + r]
    first = [conns() for _ in range(size - 1)]
    tf = [c.enqueue_ok(queue, region=r)["ticketId"] for c in first]
    oc = [conns() for _ in others]
    to = [c.enqueue_ok(queue, region=o)["ticketId"] for c, o in zip(oc, others)]
    # Enough for a match of each other region with the first group, if compared loosely.
    last = conns()
    tl = last.enqueue_ok(queue, region=r)["ticketId"]
    m = last.wait_push("match.assigned", tl)["data"]["assignment"]
    for c, t in zip(first, tf):
        assert c.wait_push("match.assigned", t)["data"]["assignment"]["matchId"] == m["matchId"]
    st = _states(testee, to)
    assert st == ["queued"] * len(others), "tickets of regions %r matched with region %r: %r" % (
        others, r, list(zip(others, st)))
    # Positive: the same upper-case region matches itself.
    up = [conns() for _ in range(size - 1)]
    for c in up:
        c.enqueue_ok(queue, region=r.upper())
    oc[0].wait_push("match.assigned", to[0])


@pytest.mark.req("MSG-080", "MSG-082")
def test_queues_compared_exactly(testee, conns, queue):
    """Queue names are compared exactly: a queue never shares tickets with a
    queue whose name is its prefix or extends it."""
    size = testee.size_of(queue)
    others = [queue + "x", queue[:-1], queue + "-", "x" + queue]
    oc = [conns() for _ in others]
    to = [c.enqueue_ok(o)["ticketId"] for c, o in zip(oc, others)]
    cs = [conns() for _ in range(size)]
    ts = [c.enqueue_ok(queue)["ticketId"] for c in cs]
    ms = [c.wait_push("match.assigned", t)["data"]["assignment"]["matchId"] for c, t in zip(cs, ts)]
    assert len(set(ms)) == 1
    st = _states(testee, to)
    assert st == ["queued"] * len(others), "tickets of queues %r matched with queue %r: %r" % (
        others, queue, list(zip(others, st)))
    for c, t in zip(oc, to):
        c.request("cancel", {"ticketId": t})


@pytest.mark.req("MSG-082", "MSG-080")
def test_queue_size_applies_to_exact_queue_only(testee, conns):
    """A declared per-queue match size applies to that queue only: queues
    whose names extend it or are its prefix use the default size (each
    isolated by a fresh region)."""
    sizes = testee.decl["queueSizes"]
    default = int(testee.decl["matchSize"])
    other = {q: int(s) for q, s in sizes.items() if int(s) != default}
    if not other:
        pytest.skip("testee declares no queue with another match size (queueSizes)")
    q = sorted(other)[0]
    names = [q + "x", q + "-" + uniq("s")[-4:]] + ([q[:-1]] if len(q) > 1 else [])
    names = [n for n in names if n not in sizes]
    for name in names:
        region = uniq("r")
        cs = [conns() for _ in range(default)]
        ts = [c.enqueue_ok(name, region=region)["ticketId"] for c in cs]
        try:
            ms = [c.wait_push("match.assigned", t)["data"]["assignment"] for c, t in zip(cs, ts)]
        except WaitTimeout:
            raise AssertionError("queue %r (declared: %r of size %d) did not match %d tickets (default size)"
                                 % (name, q, other[q], default))
        assert len(ms[0]["players"]) == default, "queue %r formed a match of %d" % (name, len(ms[0]["players"]))
