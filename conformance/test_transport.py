"""messages.md §1 Transport: MSG-001..006."""

import pytest

from mwclient import SUBPROTOCOL, WS, handshake

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
