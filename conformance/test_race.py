"""The race Matchwire exists to close, made observable (spec/testing.md
TST-030..TST-034, messages.md MSG-041, channel.md CHN-020).

The harness starts conformance/resp_proxy.py between the --url gateway and
its Redis and gives the suite its control port (--redis-proxy). The suite
arms a rule that holds the reply of the first Redis command naming the
ticket, sends `watch`, and, once the watch's store read has run in Redis
(ticket still queued) but before the gateway has its result, commits an
assignment as a foreign worker and publishes its payload, then releases
the reply. A gateway that registered its route before the read (MSG-041)
receives the payload, or reads the assignment; one that registers only
after the read has returned misses both and never pushes `match.assigned`.
The same for `enqueue`: the rule holds the reply of the create (the first
command naming the player), and the assignment lands between the create
and the gateway's having its result."""

import json
import time

import pytest

import resp_proxy
from conftest import hook
from mwclient import http, uniq
from test_redis_binding import foreign_assign, idem_key

pytestmark = pytest.mark.profile("channel")


@pytest.fixture
def proxy(pytestconfig):
    addr = hook(pytestconfig, "--redis-proxy",
                "the control port of conformance/resp_proxy.py between the --url gateway and its Redis (TST-030)")
    c = resp_proxy.Control(addr)
    c.clear()
    yield c
    c.close()  # releases whatever is still held (TST-033)


def _channel(testee):
    return testee.decl["redisPrefix"] + "matchmaking:assigned"


@pytest.mark.req("MSG-041", "CHN-020", "CHN-014", "MSG-072", "TST-030", "TST-033", "TST-034")
@pytest.mark.parametrize("action", ["hold_reply", "hold"], ids=["after-the-read", "before-the-read"])
def test_assignment_in_the_gap_of_a_watch(testee, rds, conns, proxy, action):
    """An assignment committed and published while the watch's store read is
    on its way back (hold_reply: the read said queued, only the push can
    deliver it), or before the read runs (hold: the read and the push both
    carry it, delivered once): the watcher gets exactly one match.assigned."""
    ws = conns()
    r = http(testee, "POST", "/v1/tickets", {"queue": uniq("race"), "playerId": uniq("p")})
    assert r.status == 201, r.body
    tid = r.json["ticketId"]
    rule = proxy.rule(action, arg=tid)
    try:
        ws.send_env("watch", {"ticketId": tid}, id="race")
        assert proxy.wait(rule, testee.timeout), (
            "no Redis command naming the ticket reached the proxy within %.1fs of the watch: "
            "is the --url gateway's Redis connection going through --redis-proxy?" % testee.timeout)
        # The read has run in Redis (queued); the gateway has not seen it yet.
        res, envs, _, _ = foreign_assign(rds, testee, [tid], ["solo"])
        assert res == -1, "the foreign assignment did not commit (ticket no longer queued?)"
        n = rds.publish(_channel(testee), json.dumps({"ticketId": tid, "envelope": envs[tid]}))
        assert n >= 1, "no subscriber on %s" % _channel(testee)
        time.sleep(0.3)  # the payload reaches the gateway's subscriber while the read is held
    finally:
        proxy.release(rule)
    w = ws.reply("race")
    assert w["type"] == "watching", "watch answered %s" % json.dumps(w)
    if action == "hold_reply":
        assert w["data"]["state"] == "queued", "the held read ran after the commit: the gap was not opened"
    m = ws.wait_push("match.assigned", tid)
    assert m == envs[tid], "pushed %s, committed %s" % (json.dumps(m)[:300], json.dumps(envs[tid])[:300])
    assert ws.ping()["type"] == "pong"
    dup = [x for x in ws.pending if x["type"] == "match.assigned"]
    assert not dup, "match.assigned delivered twice (MSG-072)"


@pytest.mark.req("MSG-027", "CHN-021", "CHN-020", "MSG-072", "TST-030", "TST-033", "TST-034")
def test_assignment_in_the_gap_of_an_enqueue(testee, rds, conns, proxy):
    """The same gap for `enqueue`: the create has run in Redis (the ticket is
    queued) but its result is held on its way back; meanwhile the ticket is
    assigned and its payload published. The enqueuer gets `enqueued`
    (queued, as created) and then exactly one match.assigned. A gateway that
    registers its route only when it has the create's result misses the
    push, and delivers only if it reads the ticket again after that."""
    ws = conns()
    player, k = uniq("race-p"), uniq("k")
    rule = proxy.rule("hold_reply", arg=player)
    try:
        ws.send_env("enqueue", {"queue": uniq("race"), "playerId": player, "idempotencyKey": k}, id="race")
        assert proxy.wait(rule, testee.timeout), (
            "no Redis command naming the player reached the proxy within %.1fs of the enqueue: "
            "is the --url gateway's Redis connection going through --redis-proxy?" % testee.timeout)
        # The create has run in Redis; the gateway has not seen its result.
        raw = rds.get(idem_key(testee, player, k))
        assert raw, "the held command did not create the ticket (no idempotency key %s)" % idem_key(testee, player, k)
        tid = raw.decode()
        res, envs, _, _ = foreign_assign(rds, testee, [tid], ["solo"])
        assert res == -1, "the foreign assignment did not commit (ticket no longer queued?)"
        n = rds.publish(_channel(testee), json.dumps({"ticketId": tid, "envelope": envs[tid]}))
        assert n >= 1, "no subscriber on %s" % _channel(testee)
        time.sleep(0.3)  # the payload reaches the gateway's subscriber while the result is held
    finally:
        proxy.release(rule)
    r = ws.reply("race")
    assert r["type"] == "enqueued", "enqueue answered %s" % json.dumps(r)
    assert r["data"]["ticketId"] == tid and r["data"]["state"] == "queued", (
        "the held create ran after the commit: the gap was not opened (%s)" % json.dumps(r))
    m = ws.wait_push("match.assigned", tid)
    assert m == envs[tid], "pushed %s, committed %s" % (json.dumps(m)[:300], json.dumps(envs[tid])[:300])
    assert ws.ping()["type"] == "pong"
    dup = [x for x in ws.pending if x["type"] == "match.assigned"]
    assert not dup, "match.assigned delivered twice (MSG-072)"
