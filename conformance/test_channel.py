"""Profile channel (spec/channel.md): the testee is a gateway subscribed to
its Redis channel (--redis). The suite publishes as a foreign worker would
(the seed's NestJS publisher sent JSON.stringify({ticketId, envelope})):
well-formed payloads reach the watcher, malformed ones are dropped and the
server stays healthy."""

import json
import re

import pytest

import ijson
from mwclient import http, uniq

pytestmark = pytest.mark.profile("channel")


def chan(testee, name="matchmaking:assigned"):
    return testee.decl["redisPrefix"] + name


def assigned_env(tid, version=2, players=("p1", "p2")):
    return {"type": "match.assigned", "v": 1, "data": {"ticketId": tid, "version": version, "assignment": {
        "matchId": "m-" + uniq("x"), "connection": "10.0.0.7:7777",
        "players": [{"playerId": p} for p in players], "assignedAt": "2026-11-27T12:00:00.000Z"}}}


def publish(rds, testee, payload):
    if not isinstance(payload, (bytes, str)):
        payload = json.dumps(payload)  # what JSON.stringify produces for these values
    n = rds.publish(chan(testee), payload)
    assert n >= 1, "no subscriber on %s: is the testee using this Redis?" % chan(testee)


def watched_ticket(conns, queue):
    ws = conns()
    t = ws.enqueue_ok(queue)["ticketId"]
    return ws, t


@pytest.mark.req("CHN-001", "CHN-004", "CHN-006", "CHN-014", "CHN-030")
def test_seed_payload_reaches_watcher(testee, rds, conns, queue):
    ws, t = watched_ticket(conns, queue)
    env = assigned_env(t)
    publish(rds, testee, {"ticketId": t, "envelope": env})
    m = ws.wait_push("match.assigned", t)
    assert m == env, "pushed %s, published %s" % (ijson.dumps(m), ijson.dumps(env))


@pytest.mark.req("CHN-002", "CHN-014")
def test_fanout_to_every_watcher_of_a_gateway(testee, rds, conns, queue):
    """The seed kept only the last registered handler, so of several sockets
    on one instance only the last heard anything: every watcher of the
    gateway gets its push, whichever connection subscribed last."""
    a, b = conns(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    assert b.request("watch", {"ticketId": ta})["type"] == "watching"
    c, tc = watched_ticket(conns, uniq("cf"))
    d, td = watched_ticket(conns, uniq("cf"))  # the last to subscribe; not published to
    env_a, env_c = assigned_env(ta), assigned_env(tc)
    publish(rds, testee, {"ticketId": ta, "envelope": env_a})
    publish(rds, testee, {"ticketId": tc, "envelope": env_c})
    assert a.wait_push("match.assigned", ta) == env_a
    assert b.wait_push("match.assigned", ta) == env_a
    assert c.wait_push("match.assigned", tc) == env_c
    assert d.ping()["type"] == "pong" and not d.pending, "a push reached a connection not watching it"


@pytest.mark.req("CHN-004")
def test_other_members_ignored(testee, rds, conns, queue):
    ws, t = watched_ticket(conns, queue)
    publish(rds, testee, {"ticketId": t, "envelope": assigned_env(t), "publishedBy": "nest-worker-3"})
    ws.wait_push("match.assigned", t)


def bad_payloads(t, other):
    env = assigned_env(t)
    big = dict(env)
    big["data"] = dict(env["data"], pad="x" * 70000)
    no_assignment = assigned_env(t)
    del no_assignment["data"]["assignment"]
    return [
        ("too_large", json.dumps({"ticketId": t, "envelope": big})),
        ("bad_json", '{"ticketId":"%s","envelope":' % t),
        ("bad_json", '{"ticketId":"%s","ticketId":"%s","envelope":%s}' % (t, t, json.dumps(env))),
        ("bad_json", '{"ticketId":"%s","envelope":{"type":"match.assigned","v":1,"data":{"x":NaN}}}' % t),
        ("bad_payload", json.dumps({"ticketId": 5, "envelope": env})),
        ("bad_payload", json.dumps({"ticketId": t, "envelope": "x"})),
        ("bad_payload", json.dumps([t, env])),
        ("bad_envelope", json.dumps({"ticketId": t, "envelope": dict(env, v="1")})),
        ("bad_envelope", json.dumps({"ticketId": t, "envelope": {"type": "match.assigned", "v": 1}})),
        ("not_match_assigned", json.dumps({"ticketId": t, "envelope": dict(env, type="ticket.expired")})),
        ("not_match_assigned", json.dumps({"ticketId": t, "envelope": no_assignment})),
        ("ticket_mismatch", json.dumps({"ticketId": t, "envelope": assigned_env(other)})),
    ]


@pytest.mark.req("CHN-010", "CHN-011")
def test_malformed_payloads_dropped(testee, rds, conns, queue):
    ws, t = watched_ticket(conns, queue)
    other_ws, other = watched_ticket(conns, uniq("cf"))
    for reason, p in bad_payloads(t, other):
        publish(rds, testee, p)
    good = assigned_env(t, players=("after", "drops"))
    publish(rds, testee, {"ticketId": t, "envelope": good})
    m = ws.recv()
    assert m == good, "a dropped payload was pushed: %s" % ijson.dumps(m)[:300]
    assert ws.ping()["type"] == "pong"
    assert other_ws.ping()["type"] == "pong"
    assert not other_ws.pending, "the mismatched ticket's watcher got a push"
    h = http(testee, "GET", "/healthz")
    assert h.status == 200, "unhealthy after malformed payloads"


@pytest.mark.req("CHN-012")
def test_drops_counted_by_reason(testee, rds, conns, queue):
    def counts():
        r = http(testee, "GET", "/metrics")
        out = {}
        for m in re.finditer(r'^matchwire_channel_drops_total\{reason="([a-z_]+)"\}\s+(\d+)', r.body.decode(), re.M):
            out[m.group(1)] = int(m.group(2))
        return out
    before = counts()
    if not before:
        pytest.skip("no matchwire_channel_drops_total in /metrics: drop counts are observable only there")
    ws, t = watched_ticket(conns, queue)
    want = {}
    for reason, p in bad_payloads(t, t + "x"):
        if reason == "ticket_mismatch":
            continue
        publish(rds, testee, p)
        want[reason] = want.get(reason, 0) + 1
    publish(rds, testee, {"ticketId": t, "envelope": assigned_env(t)})
    ws.wait_push("match.assigned", t)  # every earlier payload has been consumed
    after = counts()
    for reason, n in want.items():
        assert after.get(reason, 0) - before.get(reason, 0) == n, \
            "drops{reason=%s} rose by %d, expected %d" % (reason, after.get(reason, 0) - before.get(reason, 0), n)


@pytest.mark.req("CHN-014", "CHN-022", "MSG-072")
def test_dedupe_by_version(testee, rds, conns, queue):
    ws, t = watched_ticket(conns, queue)
    env = assigned_env(t, version=2)
    publish(rds, testee, {"ticketId": t, "envelope": env})
    publish(rds, testee, {"ticketId": t, "envelope": env})
    publish(rds, testee, {"ticketId": t, "envelope": assigned_env(t, version=2, players=("z",))})
    ws.wait_push("match.assigned", t)
    assert ws.ping()["type"] == "pong"
    assert not [m for m in ws.pending if m["type"] == "match.assigned"], "version 2 delivered twice"


@pytest.mark.req("CHN-031", "MSG-062")
def test_ended_notice(testee, rds, conns, queue):
    ws, t = watched_ticket(conns, queue)
    n = rds.publish(chan(testee, "matchmaking:ended"), json.dumps({"ticketId": t, "state": "cancelled", "version": 2}))
    assert n >= 1, "no subscriber on %s" % chan(testee, "matchmaking:ended")
    p = ws.wait_push("ticket.cancelled", t)
    assert p["data"] == {"ticketId": t, "version": 2}
    # Malformed notices are dropped.
    for bad in ("{", json.dumps({"ticketId": t, "state": "assigned", "version": 3}),
                json.dumps({"ticketId": "nope", "state": "expired", "version": 3})):
        rds.publish(chan(testee, "matchmaking:ended"), bad)
    assert ws.ping()["type"] == "pong"
    assert not ws.pending, "a malformed ended notice was pushed: %s" % list(ws.pending)


@pytest.mark.req("CHN-020", "CHN-040")
def test_store_holds_assignment(testee, rds, conns, queue):
    """The store is the truth: after a match, the ticket hash holds state
    assigned, its version and the exact envelope its watchers received."""
    a, b = conns(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    b.enqueue_ok(queue)
    m = a.wait_push("match.assigned", ta)
    h = rds.hgetall(testee.decl["redisPrefix"] + "mw:ticket:" + ta)
    h = {k.decode(): v.decode() for k, v in h.items()}
    assert h.get("state") == "assigned" and h.get("version") == "2", h
    assert ijson.loads(h["envelope"]) == m, "stored envelope differs from the pushed one"
    for f in ("id", "queue", "playerId", "region", "createdAt", "expiresAt", "endedAt", "watchers", "graceAt", "matchId"):
        assert f in h, "ticket hash lacks %s" % f


# -- every payload rule on both sides, each drop under its own label -----------
# (issue 17, class 5)

def drop_counts(testee):
    r = http(testee, "GET", "/metrics")
    out = {}
    for m in re.finditer(r'^matchwire_channel_drops_total\{reason="([a-z_]+)"\}\s+(\d+)', r.body.decode(), re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def sized(t, env, total):
    """A payload of exactly `total` bytes: padded with an ignored member (CHN-004)."""
    base = json.dumps({"ticketId": t, "envelope": env, "pad": ""})
    return base[:-2] + "x" * (total - len(base)) + base[-2:]


def _with(env, **data_or_assignment):
    e = json.loads(json.dumps(env))
    for k, v in data_or_assignment.items():
        if k in ("matchId", "connection", "players", "assignedAt"):
            e["data"]["assignment"][k] = v
        elif k == "top":
            e.update(v)
        else:
            e["data"][k] = v
    return e


def payload_cases():
    """(name, build(t, other) -> payload text, expected drop reason or None
    when the payload is valid and must be pushed as its envelope)."""
    j = json.dumps
    return [
        # CHN-004/CHN-010 too_large: exactly 65,536 bytes is valid, one byte over is dropped.
        ("size-65536", lambda t, o: sized(t, assigned_env(t), 65536), None),
        ("size-65537", lambda t, o: sized(t, assigned_env(t), 65537), "too_large"),
        # bad_payload: ticketId 1..64 printable ASCII bytes, envelope an object.
        ("ticketid-64", lambda t, o: j({"ticketId": "t" * 64, "envelope": assigned_env("t" * 64)}), "unknown"),
        ("ticketid-65", lambda t, o: j({"ticketId": "t" * 65, "envelope": assigned_env("t" * 65)}), "bad_payload"),
        ("ticketid-empty", lambda t, o: j({"ticketId": "", "envelope": assigned_env(t)}), "bad_payload"),
        ("ticketid-non-ascii", lambda t, o: j({"ticketId": "t\u00e9", "envelope": assigned_env("t\u00e9")},
                                               ensure_ascii=False), "bad_payload"),
        ("no-envelope", lambda t, o: j({"ticketId": t}), "bad_payload"),
        ("envelope-array", lambda t, o: j({"ticketId": t, "envelope": [assigned_env(t)]}), "bad_payload"),
        # bad_envelope (ENV rules) vs not_match_assigned (MSG-060 and its schema).
        ("env-no-data", lambda t, o: j({"ticketId": t, "envelope": {"type": "match.assigned", "v": 1}}),
         "bad_envelope"),
        ("env-bad-type", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), top={"type": "Match"})}),
         "bad_envelope"),
        ("env-v2", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), top={"v": 2})}),
         "not_match_assigned"),
        # A push never carries an id (MSG-010): a foreign envelope with one is not pushed as is.
        ("env-with-id", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), top={"id": "w-1"})}),
         "not_match_assigned"),
        ("players-16", lambda t, o: j({"ticketId": t, "envelope": assigned_env(t, players=["p%d" % i for i in range(16)])}),
         None),
        ("players-17", lambda t, o: j({"ticketId": t, "envelope": assigned_env(t, players=["p%d" % i for i in range(17)])}),
         "not_match_assigned"),
        ("players-0", lambda t, o: j({"ticketId": t, "envelope": assigned_env(t, players=[])}), "not_match_assigned"),
        ("matchid-128", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), matchId="m" * 128)}), None),
        ("matchid-129", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), matchId="m" * 129)}),
         "not_match_assigned"),
        ("matchid-128-bytes-multibyte", lambda t, o: j({"ticketId": t, "envelope": _with(
            assigned_env(t), matchId="\u00e9" * 64)}, ensure_ascii=False), None),
        ("matchid-129-bytes-multibyte", lambda t, o: j({"ticketId": t, "envelope": _with(
            assigned_env(t), matchId="\u00e9" * 64 + "m")}, ensure_ascii=False), "not_match_assigned"),
        ("playerid-128-bytes", lambda t, o: j({"ticketId": t, "envelope": assigned_env(t, players=["\u00e9" * 64])},
                                              ensure_ascii=False), None),
        ("playerid-129-bytes", lambda t, o: j({"ticketId": t, "envelope": assigned_env(t, players=["\u20ac" * 43])},
                                              ensure_ascii=False), "not_match_assigned"),
        ("port-65535", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), connection="h:65535")}), None),
        ("port-65536", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), connection="h:65536")}),
         "not_match_assigned"),
        ("port-0", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), connection="h:0")}),
         "not_match_assigned"),
        ("host-255", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), connection="h" * 255 + ":1")}),
         None),
        ("host-256", lambda t, o: j({"ticketId": t, "envelope": _with(assigned_env(t), connection="h" * 256 + ":1")}),
         "not_match_assigned"),
        ("assignedat-not-utc", lambda t, o: j({"ticketId": t, "envelope": _with(
            assigned_env(t), assignedAt="2026-11-27T12:00:00+01:00")}), "not_match_assigned"),
        ("version-0", lambda t, o: j({"ticketId": t, "envelope": assigned_env(t, version=0)}), "not_match_assigned"),
        # Another ticket named in the envelope vs a payload that is not a match.assigned.
        ("ticket-mismatch", lambda t, o: j({"ticketId": t, "envelope": assigned_env(o)}), "ticket_mismatch"),
        ("not-match-assigned", lambda t, o: j({"ticketId": t, "envelope": {
            "type": "ticket.expired", "v": 1, "data": {"ticketId": t, "version": 2}}}), "not_match_assigned"),
    ]


@pytest.mark.req("CHN-004", "CHN-010", "CHN-011", "CHN-012", "CHN-014", "MSG-060", "MSG-010")
@pytest.mark.parametrize("name,build,reason", payload_cases(), ids=[c[0] for c in payload_cases()])
def test_payload_rule_both_sides(testee, rds, conns, queue, name, build, reason):
    """One payload: a valid one is pushed to its watcher as its envelope and
    counts no drop; an invalid one is pushed to nobody and counts exactly one
    drop under its own reason (no other label moves)."""
    before = drop_counts(testee)
    if not before:
        pytest.fail("no matchwire_channel_drops_total in /metrics: CHN-012 drop counts are not observable")
    ws, t = watched_ticket(conns, queue)
    other_ws, other = watched_ticket(conns, uniq("cf"))
    payload = build(t, other)
    publish(rds, testee, payload)
    # A sentinel after it: once it arrives, the payload above was consumed.
    sws, st = watched_ticket(conns, uniq("cf"))
    publish(rds, testee, {"ticketId": st, "envelope": assigned_env(st)})
    sws.wait_push("match.assigned", st)
    after = drop_counts(testee)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    delta = {k: v for k, v in delta.items() if v}
    if reason in (None, "unknown"):
        assert delta == {}, "valid payload %s counted as drops %r" % (name, delta)
        if reason is None:
            m = ws.wait_push("match.assigned", t)
            env = json.loads(payload)["envelope"]
            assert m == env, "pushed %s, published %s" % (ijson.dumps(m)[:300], ijson.dumps(env)[:300])
    else:
        assert delta == {reason: 1}, "payload %s: drops rose by %r, expected {%r: 1}" % (name, delta, reason)
        assert ws.ping()["type"] == "pong"
        assert not [m for m in ws.pending if m["type"] == "match.assigned"], "dropped payload %s was pushed" % name
    assert other_ws.ping()["type"] == "pong"
    assert not other_ws.pending, "a payload for %s reached the watcher of another ticket" % t
