"""messages.md §1 Transport: MSG-001..006."""

import pytest

from mwclient import SUBPROTOCOL, WS, WaitTimeout, encode_frame, handshake

pytestmark = pytest.mark.profile("core")


@pytest.mark.req("MSG-001")
def test_upgrade_at_realtime(testee):
    hs = handshake(testee, [SUBPROTOCOL])
    hs.sock.close()
    assert hs.status == 101, "upgrade at %s answered HTTP %d" % (testee.path, hs.status)


@pytest.mark.req("MSG-001")
@pytest.mark.parametrize("path", ["/", "/realtime/x", "/realtimex", "/v1/tickets", "/other"])
def test_no_upgrade_elsewhere(testee, path):
    hs = handshake(testee, [SUBPROTOCOL], path=path)
    hs.sock.close()
    assert hs.status != 101, "path %s was upgraded to a WebSocket" % path


@pytest.mark.req("MSG-002", "ENV-011")
def test_fragmented_message_is_reassembled(conns):
    ws = conns()
    ws.send_fragments(b'{"type":"ping","v":1,"id":"frag","data":{"pad":"' + b"x" * 300 + b'"}}', 4)
    r = ws.reply("frag")
    assert r["type"] == "pong", "fragmented ping answered %r" % r


@pytest.mark.req("MSG-003")
@pytest.mark.parametrize("offer", [[SUBPROTOCOL], ["x-other", SUBPROTOCOL], [SUBPROTOCOL, "x-other"]])
def test_subprotocol_selected_and_echoed(testee, offer):
    hs = handshake(testee, offer)
    hs.sock.close()
    assert hs.status == 101
    assert hs.headers.get("sec-websocket-protocol") == [SUBPROTOCOL], \
        "Sec-WebSocket-Protocol in the response: %r" % hs.headers.get("sec-websocket-protocol")


@pytest.mark.req("MSG-004")
def test_no_subprotocol_header_accepted_without_echo(testee):
    ws = WS(testee, subprotocols=None)
    try:
        assert "sec-websocket-protocol" not in ws.hs.headers, \
            "server sent Sec-WebSocket-Protocol %r to a client that offered none" % ws.hs.headers[
                "sec-websocket-protocol"]
        assert ws.ping()["type"] == "pong"
    finally:
        ws.close()


@pytest.mark.req("MSG-005")
@pytest.mark.parametrize("offer", [["x-other"], ["matchwire.v2"], ["MATCHWIRE.V1"], ["chat", "superchat"]])
def test_unknown_subprotocols_refused(testee, offer):
    hs = handshake(testee, offer)
    hs.sock.close()
    assert hs.status != 101, "offer %r was upgraded (must be refused)" % offer


@pytest.mark.req("MSG-141")
@pytest.mark.parametrize("before", [0, 300, 65536], ids=["after-ping", "after-16bit-length", "after-64bit-length"])
@pytest.mark.parametrize("kind", ["text", "ping", "close"])
def test_unmasked_client_frame_closes_1002(conns, kind, before):
    """A client frame without the mask bit closes the connection 1002,
    whatever its opcode: any server, auth or not (the auth and tls profiles
    repeat it; before, the core profile did not check it). Also after a
    message whose frame has a 16-bit or a 64-bit extended length (a server
    that tracks frames must skip those payloads exactly)."""
    ws = conns()
    if before:   # a ping of exactly `before` bytes
        head = '{"type":"ping","v":1,"id":"big","data":{"pad":"'
        ws.send_text(head + "x" * (before - len(head) - 3) + '"}}')
        assert ws.reply("big")["type"] == "pong"
    else:
        assert ws.ping()["type"] == "pong"
    payload = {"text": b'{"type":"ping","v":1,"id":"unmasked","data":{}}', "ping": b"mw",
               "close": b"\x03\xe8"}[kind]
    op = {"text": 0x1, "ping": 0x9, "close": 0x8}[kind]
    ws.send_raw_frame(encode_frame(op, payload, mask=False), "unmasked " + kind)
    try:
        c = ws.expect_closed(timeout=5)
    except WaitTimeout:
        pytest.fail("an unmasked %s frame: the connection stayed open" % kind)
    assert c.code == 1002, "an unmasked %s frame: closed with %r (%s), not 1002" % (kind, c.code, c.reason)
