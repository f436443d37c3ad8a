"""messages.md §1.1 TLS: MSG-150..MSG-156, and the transport protections
that must hold inside TLS (MSG-116/117 pipelining, MSG-120 stalls, MSG-141
unmasked frames).

Profile `tls`: run against a wss:// testee with --ca (the operator's trust
anchor: chain and host name are verified) together with `core`, which then
runs every core test inside TLS. With --insecure the tests that need a
verified certificate skip (a failure of a requested MUST profile, TST-012:
an unverified run shows nothing about the certificate).
"""

import socket
import ssl
import struct
import time
import warnings

import pytest

import ijson
import mwclient
from mwclient import SUBPROTOCOL, Closed, encode_frame, handshake

pytestmark = pytest.mark.profile("tls")

STALLS = 1000        # connections stalled in the TLS handshake (MSG-153)
WITHIN = 1.0         # seconds a new client may wait meanwhile (MSG-153)
DROP_WITHIN = 12.0   # seconds a stalled handshake may stay open (MSG-154: reference 5 s)


@pytest.fixture(autouse=True)
def _tls_testee(testee):
    if not testee.tls:
        pytest.skip("profile tls needs a wss:// --url (this testee is %s)" % testee.url)


def _verified(testee):
    if testee.insecure:
        pytest.skip("--insecure: the certificate is not verified (give --ca FILE)")


def client_hello():
    """The bytes of a real TLS ClientHello (what a client sends first)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, "could not build a ClientHello"
    return hello


def tcp(testee, timeout=None):
    return mwclient.connect(testee, timeout=timeout, tls=False)


def closed_by_server(sock, deadline):
    """Reads until the server closes (EOF or reset) or the deadline; returns
    (closed, bytes received)."""
    got = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, got
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True, got
        except socket.timeout:
            return False, got
        if not chunk:
            return True, got
        got += chunk


# ---- MSG-150, MSG-151, MSG-156: the TLS session itself ---------------------

@pytest.mark.req("MSG-150", "MSG-151")
def test_certificate_chain_verifies_for_the_host(testee):
    """The chain the server presents verifies against the declared trust
    anchor, for the host name of the URL, with TLS 1.2 or later."""
    _verified(testee)
    s = mwclient.connect(testee)  # verify_mode CERT_REQUIRED, check_hostname on
    try:
        assert s.s.version() in ("TLSv1.2", "TLSv1.3"), "negotiated %s" % s.s.version()
        cert = s.s.getpeercert()
        assert cert, "no peer certificate"
        sans = [v for k, v in cert.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
        assert sans, "the certificate names no subjectAltName (RFC 6125: CN alone is obsolete)"
    finally:
        s.close()


@pytest.mark.req("MSG-151")
def test_certificate_refused_under_another_name(testee):
    """Host name checks are on: the same certificate for a name it does not
    carry is refused (so the passing test above really checked the name)."""
    _verified(testee)
    raw = tcp(testee)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            testee.ssl_context.wrap_socket(raw, server_hostname="not-this-host.invalid")
    finally:
        raw.close()


@pytest.mark.req("MSG-150")
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_tls_versions_refused(testee, version):
    """A client that offers only TLS 1.0 or 1.1 gets no session."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the point of the test
            ctx.minimum_version = getattr(ssl.TLSVersion, version)
            ctx.maximum_version = getattr(ssl.TLSVersion, version)
    except (ValueError, ssl.SSLError) as e:
        pytest.skip("this client's OpenSSL cannot offer %s: %s" % (version, e))
    raw = tcp(testee)
    try:
        with pytest.raises(ssl.SSLError) as ei:
            ctx.wrap_socket(raw, server_hostname=testee.host)
        reason = (getattr(ei.value, "reason", "") or str(ei.value)).upper()
        if "NO_PROTOCOLS_AVAILABLE" in reason or "NO_CIPHERS_AVAILABLE" in reason:
            pytest.skip("this client's OpenSSL refused to offer %s itself (%s)" % (version, reason))
    finally:
        raw.close()


@pytest.mark.req("MSG-156")
def test_alpn_http11(testee):
    """Offered h2 and http/1.1, the server selects http/1.1 (or no ALPN)."""
    ctx = mwclient.tls_context(testee.ca, testee.insecure)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    raw = tcp(testee)
    try:
        s = ctx.wrap_socket(raw, server_hostname=testee.host)
        assert s.selected_alpn_protocol() in (None, "http/1.1"), \
            "ALPN selected %r" % s.selected_alpn_protocol()
        s.close()
    finally:
        raw.close()


@pytest.mark.req("MSG-150")
def test_same_protocol_inside_tls(testee, conns, queue):
    """Two players matched over wss://, the ticket read back over https://."""
    a, b = conns(), conns()
    assert isinstance(a.sock, mwclient.TLSSocket)
    ta = a.enqueue_ok(queue)["ticketId"]
    tb = b.enqueue_ok(queue)["ticketId"]
    pa = a.wait_push("match.assigned", ta)
    pb = b.wait_push("match.assigned", tb)
    assert pa["data"]["assignment"]["matchId"] == pb["data"]["assignment"]["matchId"]
    r = mwclient.http(testee, "GET", "/v1/tickets/" + ta)
    assert testee.http.startswith("https://")
    assert r.status == 200 and r.json["state"] == "assigned", (r.status, r.body[:200])


# ---- MSG-152: plaintext on the TLS port --------------------------------------

@pytest.mark.req("MSG-152")
@pytest.mark.parametrize("kind", ["ws", "http"])
def test_plaintext_refused_on_tls_port(testee, conns, kind):
    """A plain ws:// upgrade or HTTP request to the TLS port is never
    upgraded or served: the connection is closed (or answered with an HTTP
    error) in bounded time, and wss clients keep being served."""
    if kind == "ws":
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: %s\r\n\r\n" % (testee.path, testee.host, testee.port, SUBPROTOCOL))
    else:
        req = "GET /healthz HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (testee.host, testee.port)
    s = tcp(testee)
    try:
        s.sendall(req.encode())
        closed, got = closed_by_server(s, time.monotonic() + DROP_WITHIN)
    finally:
        s.close()
    assert closed, "MSG-152: a plaintext %s request left open for %.0f s" % (kind, DROP_WITHIN)
    if got.startswith(b"HTTP/"):
        status = int(got.split(b" ", 2)[1])
        assert status >= 400, "MSG-152: plaintext request answered %d" % status
    else:
        # No HTTP at all: nothing (a close), or a TLS alert record.
        assert got == b"" or got[:1] == b"\x15", "MSG-152: plaintext request answered %r" % got[:80]
    assert conns().ping()["type"] == "pong"


# ---- MSG-153, MSG-154: stalled TLS handshakes --------------------------------

def _stall(testee, n):
    """n connections stalled in the TLS handshake: a third silent, a third
    with half a ClientHello, a third with all but its last byte."""
    hello = client_hello()
    socks = []
    try:
        for i in range(n):
            s = tcp(testee)
            if i % 3 == 1:
                s.sendall(hello[:len(hello) // 2])
            elif i % 3 == 2:
                s.sendall(hello[:-1])
            socks.append(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _new_client_in_time(testee):
    t0 = time.monotonic()
    hs = handshake(testee, [SUBPROTOCOL], timeout=max(WITHIN, 0.2))
    took = time.monotonic() - t0
    hs.sock.close()
    assert hs.status == 101, "handshake answered %d" % hs.status
    assert took < WITHIN, "MSG-153: TLS + WebSocket handshake took %.2f s" % took
    t0 = time.monotonic()
    r = mwclient.http(testee, "GET", "/healthz", timeout=WITHIN)
    took = time.monotonic() - t0
    assert r.status in (200, 503) and took < WITHIN, "MSG-153: GET /healthz %d after %.2f s" % (
        r.status, took)


@pytest.mark.req("MSG-153", "MSG-120")
def test_tls_handshake_stalls_do_not_lock_out(testee):
    socks = _stall(testee, STALLS)
    try:
        for _ in range(3):
            _new_client_in_time(testee)
    finally:
        for s in socks:
            s.close()


@pytest.mark.req("MSG-154", "MSG-121")
def test_stalled_tls_handshakes_dropped(testee):
    """Silent, half a ClientHello, all of it but one byte: each is dropped by
    the server within a bounded time (reference: 5 s)."""
    t0 = time.monotonic()
    socks = _stall(testee, 3)
    try:
        for i, s in enumerate(socks):
            closed, got = closed_by_server(s, t0 + DROP_WITHIN)
            assert closed, "MSG-154: %s still open after %.1f s" % (
                ("silent connection", "half a ClientHello", "ClientHello minus 1 byte")[i],
                time.monotonic() - t0)
    finally:
        for s in socks:
            s.close()


# ---- MSG-155 / MSG-141: unmasked frames inside TLS ---------------------------

@pytest.mark.req("MSG-155", "MSG-141")
@pytest.mark.parametrize("opcode", [0x1, 0x9, 0x8])
def test_unmasked_frame_inside_tls_closes_1002(conns, opcode):
    """An unmasked text, ping or close frame sent inside TLS closes 1002, and
    an unmasked request is never answered."""
    ws = conns()
    assert ws.ping()["type"] == "pong"
    payload = {0x1: b'{"type":"ping","v":1,"id":"unmasked","data":{}}', 0x9: b"mw",
               0x8: struct.pack("!H", 1000)}[opcode]
    ws.send_raw_frame(encode_frame(opcode, payload, mask=False), "unmasked op%d" % opcode)
    got = []
    try:
        while True:
            op, data = ws.recv_message()
            got.append((op, data))
    except Closed as c:
        assert c.code == 1002, "MSG-155: unmasked op %d inside TLS: closed %s (eof=%s)" % (
            opcode, c.code, c.eof)
    assert not any(b'"unmasked"' in d for _, d in got), "MSG-155: the unmasked request was answered"


@pytest.mark.req("MSG-155")
def test_masked_frames_inside_tls_accepted(conns):
    """The same frames masked are served (the check is not a blanket close)."""
    ws = conns()
    ws.send_raw_frame(encode_frame(0x9, b"mw"), "masked ping")
    assert ws.ping()["type"] == "pong"
    ws.send_fragments(b'{"type":"ping","v":1,"id":"frag","data":{"pad":"' + b"x" * 3000 + b'"}}', 3)
    assert ws.reply("frag")["type"] == "pong"


# ---- MSG-116/117 inside TLS: pipelined HTTPS requests ------------------------

def _responses(sock, n, timeout):
    """Up to n HTTP responses (status, headers, body) read from sock; stops
    early at EOF."""
    buf, out = b"", []
    deadline = time.monotonic() + timeout
    eof = False

    def fill():
        nonlocal buf, eof
        left = deadline - time.monotonic()
        if left <= 0 or not mwclient.readable(sock, left):
            raise AssertionError("no response within %.1f s (the server stopped serving?)" % timeout)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BlockingIOError):
            chunk = b""
        if not chunk:
            eof = True
        buf += chunk
    while len(out) < n and not eof:
        while b"\r\n\r\n" not in buf and not eof:
            fill()
        if b"\r\n\r\n" not in buf:
            break
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        clen = int(headers.get("content-length", "0"))
        while len(buf) < clen and not eof:
            fill()
        out.append((int(lines[0].split(" ")[1]), headers, buf[:clen]))
        buf = buf[clen:]
    return out


@pytest.mark.req("MSG-150", "MSG-116", "MSG-117")
@pytest.mark.parametrize("pattern", ["ggg", "gpg", "pgp"])
def test_pipelined_https_requests(testee, queue, pattern):
    """Requests pipelined in one TLS write are answered in order (or a
    pipelined one with a body refused 503 + close, MSG-117), and the server
    keeps serving others."""
    reqs = []
    for i, k in enumerate(pattern):
        if k == "g":
            reqs.append(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        else:
            body = ijson.dumps({"queue": queue, "playerId": "tls-p%d" % i}).encode()
            reqs.append(b"POST /v1/tickets HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body) + body)
    s = mwclient.connect(testee)
    try:
        s.sendall(b"".join(reqs))
        got = _responses(s, len(pattern), testee.timeout)
    finally:
        s.close()
    assert got, "MSG-116: no answer to %s pipelined inside TLS" % pattern
    for k, (status, headers, body) in zip(pattern, got):
        if status == 503 and headers.get("connection", "").lower() == "close":
            err = ijson.loads(body)
            assert err.get("code") == "unavailable" and err.get("retryable") is True, body
            break
        assert status == {"g": 200, "p": 201}[k], "pattern %s: answers %s" % (
            pattern, [g[0] for g in got])
    else:
        assert len(got) == len(pattern), "MSG-116: %d of %d answered, no refusal" % (
            len(got), len(pattern))
    t0 = time.monotonic()
    r = mwclient.http(testee, "GET", "/healthz", timeout=WITHIN)
    assert r.status == 200 and time.monotonic() - t0 < WITHIN
