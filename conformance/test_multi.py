"""Profile multi: two gateways (--url, --url2) sharing one Redis and a
worker. Clients on different gateways are matched together; a Redis restart
(--redis-restart-cmd, run by scripts/conformance.sh) is survived."""

import subprocess

import pytest

from mwclient import http, uniq, wait_until

pytestmark = pytest.mark.profile("multi")


@pytest.fixture
def gw2(testee, conns):
    if not testee.url2:
        pytest.skip("profile multi needs --url2")

    def make(**kw):
        return conns(url=testee.url2, **kw)
    return make


@pytest.mark.req("CHN-001", "CHN-090", "MSG-082")
def test_match_across_gateways(testee, conns, gw2, queue):
    a, b = conns(), gw2()
    ta = a.enqueue_ok(queue, player="on-1")["ticketId"]
    tb = b.enqueue_ok(queue, player="on-2")["ticketId"]
    ma = a.wait_push("match.assigned", ta)["data"]["assignment"]
    mb = b.wait_push("match.assigned", tb)["data"]["assignment"]
    assert ma == mb and [p["playerId"] for p in ma["players"]] == ["on-1", "on-2"]


@pytest.mark.req("CHN-021", "MSG-040", "MSG-041")
def test_watch_on_other_gateway(testee, conns, gw2, queue):
    a, w, b = conns(), gw2(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    assert w.request("watch", {"ticketId": ta})["data"]["state"] == "queued"
    b.enqueue_ok(queue)
    assert w.wait_push("match.assigned", ta)["data"]["ticketId"] == ta
    late = gw2()
    r = late.request("watch", {"ticketId": ta})
    assert r["data"]["state"] == "assigned"
    assert late.recv()["type"] == "match.assigned"


@pytest.mark.req("MSG-026")
def test_idempotency_across_instances(testee, conns, gw2, queue):
    key = uniq("k")
    t1 = conns().enqueue_ok(queue, player="al", key=key)["ticketId"]
    t2 = gw2().enqueue_ok(queue, player="al", key=key)["ticketId"]
    assert t1 == t2, "the same key made a ticket on each instance"


@pytest.mark.req("CHN-031", "MSG-062")
def test_cancel_from_other_gateway(testee, conns, gw2, queue):
    a, c = conns(), gw2()
    ta = a.enqueue_ok(queue)["ticketId"]
    assert c.request("cancel", {"ticketId": ta})["type"] == "cancelled"
    assert a.wait_push("ticket.cancelled", ta)["data"]["version"] == 2


@pytest.mark.req("CHN-102", "CHN-023")
def test_redis_restart(testee, conns, gw2, queue, pytestconfig):
    cmd = pytestconfig.getoption("--redis-restart-cmd")
    if not cmd:
        pytest.skip("no --redis-restart-cmd: the harness must provide a way to restart Redis")
    a = conns()
    ta = a.enqueue_ok(queue, player="before")["ticketId"]
    subprocess.run(cmd, shell=True, check=True, timeout=30)
    wait_until(lambda: http(testee, "GET", "/healthz").status == 200, 30, "gateway 1 healthy again")
    wait_until(lambda: http(testee, "GET", "/healthz", base=testee.url2.replace("ws://", "http://")
                            .rsplit("/", 1)[0]).status == 200, 30, "gateway 2 healthy again")
    b = gw2()
    b.enqueue_ok(queue, player="after")
    m = a.wait_push("match.assigned", ta, timeout=testee.timeout * 3)
    assert [p["playerId"] for p in m["data"]["assignment"]["players"]] == ["before", "after"]
