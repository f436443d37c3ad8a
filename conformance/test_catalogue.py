"""messages.md §2-4: requests, replies, correlation, the client and server
messages (MSG-010..064)."""

import time
import uuid

import pytest

import ijson
from mwclient import RETRYABLE, uniq

pytestmark = pytest.mark.profile("core")

FRESH_UUID = "00000000-0000-4000-8000-000000000000"


def err(r, code):
    assert r["type"] == "error" and r["data"]["code"] == code, \
        "expected error %s, got %s" % (code, ijson.dumps(r)[:300])


def barrier(ws):
    """A ping round trip: everything the server sent before the pong has
    arrived (MSG-013)."""
    assert ws.ping()["type"] == "pong"


# ---- §2 correlation --------------------------------------------------------

@pytest.mark.req("MSG-010", "MSG-013")
def test_one_reply_per_request_in_order(ws, queue):
    sent = []
    msgs = [("ping", {}), ("watch", {"ticketId": FRESH_UUID}), ("nosuch.type", {}),
            ("enqueue", {"queue": queue, "playerId": "a"}), ("ping", {"x": 1}),
            ("cancel", {"ticketId": "not-a-ticket"}), ("ping", {}), ("enqueue", {"queue": "BAD"})]
    for i, (t, d) in enumerate(msgs * 3):
        rid = "r%02d" % i
        ws.send_env(t, d, id=rid)
        sent.append(rid)
    got = []
    while len(got) < len(sent):
        r = ws.recv()
        if r["type"] in ("match.assigned", "ticket.expired", "ticket.cancelled"):
            assert "id" not in r
            continue
        got.append(r.get("id"))
    assert got == sent, "replies out of order or missing: %s" % got
    # No extra reply before the next request's reply.
    r = ws.request("ping", {}, id="after")
    assert r["type"] == "pong"


@pytest.mark.req("MSG-011")
@pytest.mark.parametrize("rid", ["a", " ", "x" * 64, 'q"uo\\te', "~!@#$%^&*()_+{}|:<>?`-=[];',./"])
def test_id_echoed_byte_for_byte(ws, rid):
    r = ws.request("ping", {}, id=rid)
    assert r["type"] == "pong" and r["id"] == rid


@pytest.mark.req("MSG-011")
def test_no_id_no_id_in_reply(ws, queue):
    for t, d in (("ping", {}), ("enqueue", {"queue": queue, "playerId": "p"}),
                 ("watch", {"ticketId": FRESH_UUID})):
        ws.send_env(t, d)
        r = ws.reply(None)
        assert "id" not in r, "reply to %s without id carries id %r" % (t, r.get("id"))


@pytest.mark.req("MSG-012")
@pytest.mark.parametrize("text,code", [
    ('{"type":"ping","v":1,"id":"k1"}', "bad_envelope"),
    ('{"v":1,"id":"k1","data":{}}', "bad_envelope"),
    ('{"type":"Ping","v":1,"id":"k1","data":{}}', "bad_envelope"),
    ('{"type":"ping","v":1.0,"id":"k1","data":{}}', "bad_envelope"),
    ('{"type":"ping","v":1,"id":"k1","data":[]}', "bad_envelope"),
    ('{"type":"nosuch","v":1,"id":"k1","data":{}}', "unknown_type"),
    ('{"type":"ping","v":7,"id":"k1","data":{}}', "unsupported_version"),
    ('{"type":"enqueue","v":1,"id":"k1","data":{"queue":5}}', "bad_message"),
])
def test_error_echoes_valid_id(ws, text, code):
    ws.send_text(text)
    r = ws.recv()
    err(r, code)
    assert r.get("id") == "k1", "error for %s must echo id k1, got %r" % (code, r.get("id"))


@pytest.mark.req("MSG-012")
@pytest.mark.parametrize("text,code", [
    ('{"type":"ping","v":1,"id":"k1","data":{}', "bad_json"),
    ('{"type":"ping","v":1,"id":"k1","id":"k2","data":{}}', "bad_json"),
    ('{"type":"ping","v":1,"id":"k1","data":' + "[" * 40 + "]" * 40 + "}", "too_deep"),
    ('{"type":"ping","v":1,"id":5,"data":{}}', "bad_envelope"),
    ('{"type":"ping","v":1,"id":"","data":{}}', "bad_envelope"),
    ('{"type":"ping","v":1,"id":"' + "x" * 65 + '","data":{}}', "bad_envelope"),
    ('{"type":"ping","v":1,"id":"tab\\there","data":{}}', "bad_envelope"),
])
def test_error_without_valid_id_has_none(ws, text, code):
    ws.send_text(text)
    r = ws.recv()
    err(r, code)
    assert "id" not in r, "error %s must not carry an id, got %r" % (code, r.get("id"))


@pytest.mark.req("MSG-014")
@pytest.mark.parametrize("t", ["nosuch", "enqueued", "pong", "error", "match.assigned", "ticket.expired",
                               "ticket.cancelled", "watching", "cancelled", "ping.v2", "a.b.c"])
def test_unknown_type(ws, t):
    err(ws.request(t, {}), "unknown_type")
    barrier(ws)


@pytest.mark.req("MSG-014")
@pytest.mark.parametrize("t", ["ping", "enqueue", "cancel", "watch"])
@pytest.mark.parametrize("v", [2, 99, 2147483647])
def test_unsupported_version(ws, t, v):
    err(ws.request(t, {}, v=v), "unsupported_version")
    barrier(ws)


@pytest.mark.req("MSG-015")
def test_unknown_data_members_ignored(ws, conns, queue):
    r = ws.request("ping", {"future": {"x": [1, 2]}, "n": 1})
    assert r["type"] == "pong"
    r = ws.request("enqueue", {"queue": queue, "playerId": "p1", "future": True, "skill": {"mu": 25}})
    assert r["type"] == "enqueued", ijson.dumps(r)
    tid = r["data"]["ticketId"]
    other = conns()
    r = other.request("watch", {"ticketId": tid, "since": 3})
    assert r["type"] == "watching"
    r = other.request("cancel", {"ticketId": tid, "reason": "x"})
    assert r["type"] == "cancelled"
    r = ws.request("ping", {}, extra_top="ignored")
    assert r["type"] == "pong"


# ---- §3.1 enqueue ------------------------------------------------------------

def enq(ws, data):
    return ws.request("enqueue", data)


@pytest.mark.req("MSG-020")
@pytest.mark.parametrize("q", ["a", "x" * 64, "a_b-9", "0", "-", "_"])
def test_queue_name_valid(ws, q):
    r = enq(ws, {"queue": q, "playerId": uniq("p")})
    assert r["type"] == "enqueued", "queue %r refused: %s" % (q, ijson.dumps(r))
    ws.request("cancel", {"ticketId": r["data"]["ticketId"]})


@pytest.mark.req("MSG-020", "MSG-024")
@pytest.mark.parametrize("q", ["", "x" * 65, "A", "a b", "caf\u00e9", "a.b", "a/b", 5, None, ["a"], {"a": 1}])
def test_queue_name_invalid(ws, q):
    err(enq(ws, {"queue": q, "playerId": "p"}), "bad_message")


@pytest.mark.req("MSG-021")
@pytest.mark.parametrize("p", ["x", "x" * 128, "\u00e9" * 64, "\U0001F600" * 32])
def test_player_id_valid(ws, queue, p):
    r = enq(ws, {"queue": queue, "playerId": p})
    assert r["type"] == "enqueued", "playerId of %d bytes refused" % len(p.encode())
    ws.request("cancel", {"ticketId": r["data"]["ticketId"]})


@pytest.mark.req("MSG-021", "MSG-024")
@pytest.mark.parametrize("p", ["", "x" * 129, "\u00e9" * 64 + "x", "\u20ac" * 43, 7, True, None])
def test_player_id_invalid(ws, queue, p):
    err(enq(ws, {"queue": queue, "playerId": p}), "bad_message")


@pytest.mark.req("MSG-022")
@pytest.mark.parametrize("attrs", [
    {}, {"region": "eu"}, {"region": "r" * 64}, {"a": "x" * 256, "b": 1.5, "c": -3},
    {"k%d" % i: i for i in range(16)},
    # Byte lengths with multi-byte UTF-8 at the boundary (bytes, not characters).
    {"region": "\u00e9" * 32}, {"region": "\U0001F600" * 16}, {"a": "\u20ac" * 85 + "x"},
    {"a": "\U0001F600" * 64},
])
def test_attributes_valid(ws, queue, attrs):
    r = enq(ws, {"queue": queue, "playerId": uniq("p"), "attributes": attrs})
    assert r["type"] == "enqueued", "attributes %r refused: %s" % (attrs, ijson.dumps(r)[:200])
    ws.request("cancel", {"ticketId": r["data"]["ticketId"]})


@pytest.mark.req("MSG-022", "MSG-024")
@pytest.mark.parametrize("attrs", [
    {"k%d" % i: i for i in range(17)}, {"a": True}, {"a": None}, {"a": {}}, {"a": []},
    {"a": "x" * 257}, {"region": ""}, {"region": "r" * 65}, {"region": 5}, "eu", [], 3,
    # 65 bytes in 33 characters, 258 bytes in 86, 257 bytes in 65: over in bytes only.
    {"region": "\u00e9" * 32 + "x"}, {"region": "\u20ac" * 22}, {"a": "\u20ac" * 86},
    {"a": "\U0001F600" * 64 + "x"},
])
def test_attributes_invalid(ws, queue, attrs):
    err(enq(ws, {"queue": queue, "playerId": "p", "attributes": attrs}), "bad_message")


@pytest.mark.req("MSG-023")
@pytest.mark.parametrize("k", ["k", "k" * 64, "\u00e9" * 32, "\U0001F600" * 16, "\u20ac" * 21 + "x"])
def test_idempotency_key_valid(ws, queue, k):
    r = enq(ws, {"queue": queue, "playerId": uniq("p"), "idempotencyKey": k})
    assert r["type"] == "enqueued"
    ws.request("cancel", {"ticketId": r["data"]["ticketId"]})


@pytest.mark.req("MSG-023", "MSG-024")
@pytest.mark.parametrize("k", ["", "k" * 65, 5, None, ["k"], "\u00e9" * 32 + "x", "\u20ac" * 22,
                               "\U0001F600" * 16 + "x"])
def test_idempotency_key_invalid(ws, queue, k):
    err(enq(ws, {"queue": queue, "playerId": "p", "idempotencyKey": k}), "bad_message")


@pytest.mark.req("MSG-024")
@pytest.mark.parametrize("data", [{}, {"queue": "q"}, {"playerId": "p"}])
def test_missing_members(ws, data):
    err(enq(ws, data), "bad_message")


@pytest.mark.req("MSG-024", "MSG-080")
def test_bad_enqueue_creates_no_ticket(conns, queue):
    """A refused enqueue must not leave a ticket behind: the next two valid
    tickets of the queue are matched with each other."""
    a, b, c = conns(), conns(), conns()
    err(a.request("enqueue", {"queue": queue, "playerId": "ghost", "attributes": {"x": True}}), "bad_message")
    err(a.request("enqueue", {"queue": queue, "playerId": "ghost2", "idempotencyKey": ""}), "bad_message")
    tb = b.enqueue_ok(queue, player="pb")["ticketId"]
    tc = c.enqueue_ok(queue, player="pc")["ticketId"]
    mb = b.wait_push("match.assigned", tb)
    mc = c.wait_push("match.assigned", tc)
    names = [p["playerId"] for p in mb["data"]["assignment"]["players"]]
    assert names == ["pb", "pc"], "match players %r: a refused enqueue created a ticket" % names
    assert mc["data"]["assignment"]["matchId"] == mb["data"]["assignment"]["matchId"]


@pytest.mark.req("MSG-025", "MSG-083")
def test_enqueued_reply(testee, ws, queue):
    before = time.time()
    r = ws.enqueue(queue, player="p1")
    assert r["type"] == "enqueued"
    d = r["data"]
    assert d["queue"] == queue and d["state"] == "queued" and d["version"] == 1
    exp = time.mktime(time.strptime(d["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    ttl = testee.decl["ticketTtlSeconds"]
    assert before + ttl - 30 <= exp + 1 and exp <= time.time() + ttl + 30, \
        "expiresAt %s is not creation + declared ticket TTL %ss" % (d["expiresAt"], ttl)


@pytest.mark.req("MSG-026")
def test_idempotency_same_connection_and_others(conns, queue):
    a, b = conns(), conns()
    key = uniq("k")
    t1 = a.enqueue_ok(queue, player="alice", key=key)
    t2 = a.enqueue_ok(queue, player="alice", key=key)
    t3 = b.enqueue_ok(queue, player="alice", key=key)
    assert t1["ticketId"] == t2["ticketId"] == t3["ticketId"], "the same key made several tickets"
    assert t3["state"] == "queued" and t3["version"] == 1
    # Another player's same key is another ticket, and it matches alice's.
    t4 = b.enqueue_ok(queue, player="bob", key=key)
    assert t4["ticketId"] != t1["ticketId"]
    m = a.wait_push("match.assigned", t1["ticketId"])
    assert [p["playerId"] for p in m["data"]["assignment"]["players"]] == ["alice", "bob"]


@pytest.mark.req("MSG-026", "MSG-028")
def test_idempotent_replay_after_assignment(conns, queue):
    a, b, c = conns(), conns(), conns()
    key = uniq("k")
    t1 = a.enqueue_ok(queue, player="alice", key=key)["ticketId"]
    b.enqueue_ok(queue, player="bob")
    a.wait_push("match.assigned", t1)
    r = c.enqueue(queue, player="alice", key=key)
    assert r["type"] == "enqueued" and r["data"]["ticketId"] == t1, ijson.dumps(r)
    assert r["data"]["state"] == "assigned" and r["data"]["version"] == 2, \
        "replay must report the state and version as they are now: %s" % ijson.dumps(r["data"])
    m = c.recv()
    assert m["type"] == "match.assigned" and m["data"]["ticketId"] == t1, \
        "the replaying connection watches the ticket: match.assigned right after the reply (MSG-028)"


@pytest.mark.req("MSG-027")
def test_enqueuer_watches_its_ticket(conns, queue):
    a, b = conns(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    tb = b.enqueue_ok(queue)["ticketId"]
    assert a.wait_push("match.assigned", ta)["data"]["ticketId"] == ta
    assert b.wait_push("match.assigned", tb)["data"]["ticketId"] == tb


# ---- §3.2 cancel -------------------------------------------------------------

@pytest.mark.req("MSG-030")
def test_cancel_queued(ws, queue):
    t = ws.enqueue_ok(queue)["ticketId"]
    r = ws.request("cancel", {"ticketId": t})
    assert r["type"] == "cancelled" and r["data"] == {"ticketId": t, "version": 2} or (
        r["type"] == "cancelled" and r["data"]["ticketId"] == t and r["data"]["version"] == 2), ijson.dumps(r)


@pytest.mark.req("MSG-031")
@pytest.mark.parametrize("tid", [FRESH_UUID, str(uuid.uuid4()), "not-a-ticket", "", "x" * 200])
def test_cancel_unknown(ws, tid):
    err(ws.request("cancel", {"ticketId": tid}), "not_found")


@pytest.mark.req("MSG-031")
def test_cancel_assigned_and_ended(conns, queue):
    a, b = conns(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    b.enqueue_ok(queue)
    a.wait_push("match.assigned", ta)
    err(a.request("cancel", {"ticketId": ta}), "already_assigned")
    t2 = a.enqueue_ok(uniq("cf"))["ticketId"]
    assert a.request("cancel", {"ticketId": t2})["type"] == "cancelled"
    err(a.request("cancel", {"ticketId": t2}), "not_found")
    r = b.request("watch", {"ticketId": ta})
    assert r["type"] == "watching" and r["data"]["state"] == "assigned", "the assignment stands"


# ---- §3.3 watch --------------------------------------------------------------

@pytest.mark.req("MSG-040")
def test_watch_from_another_connection(conns, queue):
    a, w, b = conns(), conns(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    r = w.request("watch", {"ticketId": ta})
    assert r["type"] == "watching" and r["data"] == {"ticketId": ta, "state": "queued", "version": 1} or (
        r["data"]["state"] == "queued" and r["data"]["version"] == 1), ijson.dumps(r)
    b.enqueue_ok(queue)
    m1 = a.wait_push("match.assigned", ta)
    m2 = w.wait_push("match.assigned", ta)
    assert m1["data"] == m2["data"], "both watchers get the same match.assigned"


@pytest.mark.req("MSG-041")
def test_watch_assigned_ticket_push_right_after_reply(conns, queue):
    a, b, w = conns(), conns(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    b.enqueue_ok(queue)
    a.wait_push("match.assigned", ta)
    w.send_env("watch", {"ticketId": ta}, id="w1")
    r = w.recv()
    assert r["type"] == "watching" and r.get("id") == "w1" and r["data"]["state"] == "assigned" \
        and r["data"]["version"] == 2, ijson.dumps(r)
    m = w.recv()
    assert m["type"] == "match.assigned" and m["data"]["ticketId"] == ta and m["data"]["version"] == 2, \
        "match.assigned must follow the watching reply, got %s" % ijson.dumps(m)[:200]


@pytest.mark.req("MSG-042")
@pytest.mark.parametrize("tid", [FRESH_UUID, "nope", ""])
def test_watch_unknown(ws, tid):
    err(ws.request("watch", {"ticketId": tid}), "not_found")


@pytest.mark.req("MSG-042")
def test_watch_cancelled_no_push(conns, queue):
    a, w = conns(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    a.request("cancel", {"ticketId": ta})
    r = w.request("watch", {"ticketId": ta})
    assert r["type"] == "watching" and r["data"]["state"] == "cancelled" and r["data"]["version"] == 2
    # Another ticket in the queue must not produce anything for w.
    b, c = conns(), conns()
    tb = b.enqueue_ok(queue)["ticketId"]
    c.enqueue_ok(queue)
    b.wait_push("match.assigned", tb)
    barrier(w)
    assert not w.pending, "push after watching a cancelled ticket: %s" % list(w.pending)


@pytest.mark.req("MSG-043", "MSG-072")
def test_watch_twice_single_delivery(conns, queue):
    a, w, b = conns(), conns(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    assert w.request("watch", {"ticketId": ta})["type"] == "watching"
    assert w.request("watch", {"ticketId": ta})["type"] == "watching"
    b.enqueue_ok(queue)
    w.wait_push("match.assigned", ta)
    r = w.request("watch", {"ticketId": ta})
    assert r["type"] == "watching" and r["data"]["state"] == "assigned"
    barrier(w)
    extra = [m for m in w.pending if m["type"] == "match.assigned"]
    assert not extra, "match.assigned delivered twice to one connection"


# ---- §3.4 ping ---------------------------------------------------------------

@pytest.mark.req("MSG-050")
def test_ping_pong(ws):
    r = ws.request("ping", {"anything": [1, {"b": None}]})
    assert r["type"] == "pong" and r["data"] == {}, ijson.dumps(r)
    ws.send_text('{"type":"ping","v":1,"id":"p","data":[]}')
    r = ws.recv()
    assert r["type"] == "error" and r["data"]["code"] in ("bad_envelope", "bad_message"), ijson.dumps(r)


# ---- §4 server to client -----------------------------------------------------

@pytest.mark.req("MSG-060", "MSG-082", "MSG-083")
def test_match_assigned_content(conns, queue):
    a, b = conns(), conns()
    ta = a.enqueue_ok(queue, player="first")["ticketId"]
    tb = b.enqueue_ok(queue, player="second")["ticketId"]
    ma = a.wait_push("match.assigned", ta)["data"]
    mb = b.wait_push("match.assigned", tb)["data"]
    assert ma["ticketId"] == ta and mb["ticketId"] == tb
    assert ma["version"] == 2 and mb["version"] == 2
    assert ma["assignment"] == mb["assignment"], "one match, one assignment for every player"
    assert [p["playerId"] for p in ma["assignment"]["players"]] == ["first", "second"]


@pytest.mark.req("MSG-061")
def test_assignment_reveals_no_other_ticket_id(conns, queue):
    a, b = conns(), conns()
    ta = a.enqueue_ok(queue, player="p-a")["ticketId"]
    tb = b.enqueue_ok(queue, player="p-b")["ticketId"]
    m = a.wait_push("match.assigned", ta)
    text = ijson.dumps(m)
    assert tb not in text, "match.assigned for %s reveals the other ticket id %s" % (ta, tb)
    rest = dict(m["data"])
    rest.pop("ticketId")
    assert ta not in ijson.dumps(rest), "a ticket id appears outside data.ticketId"


@pytest.mark.req("MSG-062")
def test_ticket_cancelled_push_to_other_watchers(conns, queue):
    a, w = conns(), conns()
    ta = a.enqueue_ok(queue)["ticketId"]
    w.request("watch", {"ticketId": ta})
    r = w.request("cancel", {"ticketId": ta})
    assert r["type"] == "cancelled" and r["data"]["version"] == 2
    p = a.wait_push("ticket.cancelled", ta)
    assert p["data"] == {"ticketId": ta, "version": 2} or p["data"]["version"] == 2
    barrier(w)
    assert not [m for m in w.pending if m["type"] == "ticket.cancelled"], \
        "the connection whose cancel ended the ticket got the push too"


@pytest.mark.req("MSG-063", "MSG-100")
@pytest.mark.parametrize("text,code", [
    ("{", "bad_json"), ('{"type":"ping","v":1,"data":{}} x', "bad_json"), ("[1]", "bad_envelope"),
    ('{"type":"zz","v":1,"data":{}}', "unknown_type"),
])
def test_error_shape(ws, text, code):
    ws.send_text(text)
    r = ws.recv()
    err(r, code)
    d = r["data"]
    assert isinstance(d["message"], str) and d["retryable"] is RETRYABLE[code]
    if "offset" in d:
        assert type(d["offset"]) is int and 0 <= d["offset"] <= len(text)


@pytest.mark.req("MSG-064")
def test_every_server_message_is_a_valid_envelope(conns, queue):
    """Every recv() validates the envelope and the message shape; this test
    walks through one of each server message type."""
    a, b, w = conns(), conns(), conns()
    seen = set()
    seen.add(a.ping()["type"])
    ta = a.enqueue(queue)
    seen.add(ta["type"])
    ta = ta["data"]["ticketId"]
    seen.add(w.request("watch", {"ticketId": ta})["type"])
    seen.add(w.request("nosuch", {})["type"])
    c = b.enqueue_ok(uniq("cf"))["ticketId"]
    w.request("watch", {"ticketId": c})
    seen.add(b.request("cancel", {"ticketId": c})["type"])
    seen.add(w.wait_push("ticket.cancelled", c)["type"])
    b.enqueue_ok(queue)
    seen.add(a.wait_push("match.assigned", ta)["type"])
    assert seen == {"pong", "enqueued", "watching", "error", "cancelled", "ticket.cancelled", "match.assigned"}
