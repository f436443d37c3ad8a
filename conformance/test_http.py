"""messages.md §9: HTTP on the same port (MSG-110..115)."""

import json
import time

import pytest

import mwclient
from mwclient import TS_RE, http, uniq

pytestmark = pytest.mark.profile("core")
RES = ("ticketId", "queue", "playerId", "state", "version", "createdAt", "expiresAt")


def err_body(r, status, code):
    assert r.status == status, "HTTP %d (want %d): %r" % (r.status, status, r.body[:200])
    b = r.json
    assert b.get("code") == code and isinstance(b.get("message"), str) and isinstance(b.get("retryable"), bool), b


def resource(b, state=None):
    for k in RES:
        assert k in b, "ticket resource lacks %s: %r" % (k, b)
    assert TS_RE.match(b["createdAt"]) and TS_RE.match(b["expiresAt"])
    if state:
        assert b["state"] == state
    assert ("assignment" in b) == (b["state"] == "assigned"), "assignment only when assigned"


@pytest.mark.req("MSG-110")
def test_post_creates(testee, queue):
    r = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": "h1", "attributes": {"region": "eu"}})
    assert r.status == 201, r.body
    assert r.headers.get("content-type", "").startswith("application/json")
    resource(r.json, "queued")
    assert r.json["version"] == 1 and r.json["queue"] == queue and r.json["playerId"] == "h1"


@pytest.mark.req("MSG-110", "MSG-026")
def test_post_idempotent_200(testee, queue):
    body = {"queue": queue, "playerId": "h1", "idempotencyKey": uniq("k")}
    a = http(testee, "POST", "/v1/tickets", body)
    b = http(testee, "POST", "/v1/tickets", body)
    assert a.status == 201 and b.status == 200, (a.status, b.status)
    assert a.json["ticketId"] == b.json["ticketId"]


@pytest.mark.req("MSG-110")
@pytest.mark.parametrize("body,code", [
    ("{", "bad_json"), ('{"queue":"q","queue":"q","playerId":"p"}', "bad_json"),
    ('{"queue":"q","playerId":"p","attributes":' + "[" * 40 + "]" * 40 + "}", "too_deep"),
    ('{"queue":"Q","playerId":"p"}', "bad_message"), ('{"playerId":"p"}', "bad_message"),
    ("[]", "bad_message"),
])
def test_post_400(testee, body, code):
    err_body(http(testee, "POST", "/v1/tickets", body, {"Content-Type": "application/json"}), 400, code)


@pytest.mark.req("MSG-110")
def test_post_413(testee):
    body = '{"queue":"q","playerId":"p","attributes":{"a":"' + "x" * 70000 + '"}}'
    err_body(http(testee, "POST", "/v1/tickets", body, {"Content-Type": "application/json"}), 413, "too_large")


@pytest.mark.req("MSG-111", "MSG-115")
def test_get(testee, conns, queue):
    r = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": "h1"})
    t = r.json["ticketId"]
    g = http(testee, "GET", "/v1/tickets/" + t)
    assert g.status == 200
    resource(g.json, "queued")
    b = conns()
    tb = b.enqueue_ok(queue)["ticketId"]
    mb = b.wait_push("match.assigned", tb)
    g = http(testee, "GET", "/v1/tickets/" + t)
    resource(g.json, "assigned")
    assert g.json["version"] == 2
    assert g.json["assignment"] == mb["data"]["assignment"], "the same assignment object as match.assigned"


@pytest.mark.req("MSG-111")
@pytest.mark.parametrize("tid", ["00000000-0000-4000-8000-000000000000", "nope"])
def test_get_404(testee, tid):
    err_body(http(testee, "GET", "/v1/tickets/" + tid), 404, "not_found")


@pytest.mark.req("MSG-112", "MSG-062", "MSG-115")
def test_delete(testee, conns, queue):
    w = conns()
    t = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": "h1"}).json["ticketId"]
    assert w.request("watch", {"ticketId": t})["data"]["state"] == "queued"
    d = http(testee, "DELETE", "/v1/tickets/" + t)
    assert d.status == 200 and d.json["ticketId"] == t and d.json["version"] == 2, d.body
    p = w.wait_push("ticket.cancelled", t)
    assert p["data"]["version"] == 2
    err_body(http(testee, "DELETE", "/v1/tickets/" + t), 404, "not_found")
    err_body(http(testee, "DELETE", "/v1/tickets/00000000-0000-4000-8000-000000000000"), 404, "not_found")


@pytest.mark.req("MSG-112")
def test_delete_assigned_409(testee, queue):
    a = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": "h1"}).json["ticketId"]
    http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": "h2"})
    from mwclient import wait_until
    wait_until(lambda: http(testee, "GET", "/v1/tickets/" + a).json["state"] == "assigned",
               testee.timeout, "the HTTP tickets to be matched")
    err_body(http(testee, "DELETE", "/v1/tickets/" + a), 409, "already_assigned")


@pytest.mark.req("MSG-113")
def test_healthz(testee):
    r = http(testee, "GET", "/healthz")
    assert r.status == 200 and r.json.get("status") == "ok", r.body


@pytest.mark.req("MSG-114")
def test_metrics(testee):
    r = http(testee, "GET", "/metrics")
    assert r.status == 200
    assert r.headers.get("content-type", "").startswith("text/plain")
    lines = [ln for ln in r.body.decode().split("\n") if ln and not ln.startswith("#")]
    assert lines, "no samples"
    for ln in lines:
        name, _, value = ln.rpartition(" ")
        float(value)
        assert name, ln


@pytest.mark.req("MSG-115", "MSG-074")
def test_http_ticket_no_grace(testee, conns, queue):
    """An HTTP ticket has no watcher, so the grace rule never cancels it."""
    g = testee.decl["graceSeconds"]
    from conftest import needs_timer
    needs_timer(testee, "graceSeconds", g)
    t = http(testee, "POST", "/v1/tickets", {"queue": queue, "playerId": "h1"}).json["ticketId"]
    w = conns()
    w.quiet(g + 1)
    assert http(testee, "GET", "/v1/tickets/" + t).json["state"] == "queued"
    b = conns()
    b.enqueue_ok(queue)
    assert http(testee, "GET", "/v1/tickets/" + t).status == 200


@pytest.mark.req("MSG-110", "MSG-020", "MSG-021", "MSG-022", "MSG-023", "MSG-024")
@pytest.mark.parametrize("member,ok,bad", [
    ("playerId", "\u00e9" * 64, "\u20ac" * 43),
    ("region", "\u00e9" * 32, "\u00e9" * 32 + "x"),
    ("attr", "\u20ac" * 85 + "x", "\u20ac" * 86),
    ("idempotencyKey", "\U0001F600" * 16, "\U0001F600" * 16 + "x"),
])
def test_post_byte_lengths(testee, queue, member, ok, bad):
    """POST /v1/tickets bounds strings in bytes of UTF-8 as the WebSocket
    enqueue does: at the limit in multi-byte characters 201, one byte over
    (fewer characters than the limit) 400 bad_message."""
    def body(v):
        b = {"queue": queue, "playerId": uniq("h")}
        if member == "playerId":
            b["playerId"] = v
        elif member == "region":
            b["attributes"] = {"region": v}
        elif member == "attr":
            b["attributes"] = {"note": v}
        else:
            b["idempotencyKey"] = v
        return b
    r = http(testee, "POST", "/v1/tickets", body(ok))
    assert r.status == 201, "%s of %d bytes (%d characters) refused: %r" % (
        member, len(ok.encode()), len(ok), r.body[:200])
    http(testee, "DELETE", "/v1/tickets/" + r.json["ticketId"])
    err_body(http(testee, "POST", "/v1/tickets", body(bad)), 400, "bad_message")


@pytest.mark.req("MSG-110")
@pytest.mark.parametrize("size", [65536, 65537, 1048576], ids=["64KiB", "64KiB+1", "1MiB"])
def test_post_body_limit_both_sides(testee, queue, size):
    """The body limit on both sides: a body of exactly 65,536 bytes is
    served, one byte more is 413 `too_large`, and so is a body of 1 MiB sent
    whole (a declared 1 GiB body: test_post_huge_declared_body_answered)."""
    head = '{"queue":"%s","playerId":"p"' % queue
    body = head + " " * (size - len(head) - 1) + "}"
    assert len(body.encode()) == size
    if size > 2 * 65536:
        # The server may answer 413 before it has read the whole body and
        # then close (MSG-110): a write that fails then is not a failure,
        # the answer is what counts.
        s = mwclient.connect(testee)
        try:
            try:
                s.sendall(("POST /v1/tickets HTTP/1.1\r\nHost: t\r\nContent-Type: "
                           "application/json\r\nContent-Length: %d\r\n\r\n" % size).encode()
                          + body.encode())
            except (BrokenPipeError, ConnectionResetError):
                pass
            buf = mwclient._recv_until(s, b"\r\n\r\n", 65536, time.monotonic() + testee.timeout)
            status, hdrs, rest = mwclient.parse_http_head(buf)
            assert status == 413, "a 1 MiB body: HTTP %d %r" % (status, buf[:300])
            n = int(hdrs.get("content-length", ["0"])[0])
            while len(rest) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
            assert json.loads(rest[:n]).get("code") == "too_large", rest[:300]
        finally:
            s.close()
        return
    r = http(testee, "POST", "/v1/tickets", body, {"Content-Type": "application/json"})
    if size <= 65536:
        assert r.status == 201, "a body of exactly 65,536 bytes: HTTP %d %r" % (r.status, r.body[:200])
    else:
        err_body(r, 413, "too_large")


@pytest.mark.req("MSG-110")
def test_post_huge_declared_body_answered(testee):
    """A POST that declares a 1 GiB body is answered 413 `too_large` (the
    server need not read the body first; it may close afterwards), never
    dropped unanswered."""
    s = mwclient.connect(testee)
    try:
        s.sendall(("POST /v1/tickets HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                   "Content-Length: 1073741824\r\n\r\n{\"queue\":\"q\"").encode())
        buf = mwclient._recv_until(s, b"\r\n\r\n", 65536, time.monotonic() + testee.timeout)
        status, hdrs, rest = mwclient.parse_http_head(buf)
        assert status == 413, "a declared 1 GiB body: HTTP %d %r" % (status, buf[:300])
        n = int(hdrs.get("content-length", ["0"])[0])
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = json.loads(rest[:n])
        assert body.get("code") == "too_large", body
    finally:
        s.close()
