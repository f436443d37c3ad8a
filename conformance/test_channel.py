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
