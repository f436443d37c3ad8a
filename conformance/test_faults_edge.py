"""messages.md §7, §9: what the edge of any server must survive (MSG-116,
MSG-117, MSG-120..MSG-122): HTTP requests pipelined in one TCP write, connections that never
finish their headers (slowloris), and many unfinished fragmented messages.
The drain of in-flight requests at shutdown (MSG-123) needs a store stall
hook and is checked by the reference's own tests (coverage_elsewhere.json).
"""

import select
import socket
import time

import pytest

import ijson
import mwclient
from mwclient import Closed, encode_frame, handshake

pytestmark = pytest.mark.profile("faults")

SLOW = 1000          # slowloris connections (MSG-120)
WITHIN = 1.0         # seconds a new client may wait meanwhile (MSG-120)


# ---- HTTP on a raw socket ---------------------------------------------------

class Raw:
    """One TCP connection reading HTTP/1.1 responses (Content-Length bodies)."""

    def __init__(self, testee, timeout=None):
        self.timeout = timeout or testee.timeout
        self.sock = mwclient.connect(testee, timeout=self.timeout)
        self.buf = b""
        self.eof = False

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        pending = getattr(self.sock, "pending", lambda: 0)()  # TLS: already decrypted
        r = pending or select.select([self.sock], [], [], max(0.0, left))[0]
        if not r:
            raise AssertionError("no response within %.1f s (the server stopped serving?)" % self.timeout)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise EOFError
        self.buf += chunk

    def response(self):
        """(status, headers, body); EOFError when the server closed first."""
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill(deadline)
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closes(self):
        """True when the server closes the connection within the timeout."""
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                self._fill(deadline)
        except EOFError:
            return True

    def close(self):
        self.sock.close()


def get(path="/healthz"):
    return ("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode()


def post(queue, player):
    body = ijson.dumps({"queue": queue, "playerId": player}).encode()
    return (b"POST /v1/tickets HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


def delete():
    return b"DELETE /v1/tickets/0b3c1f0e-8f64-4d3a-9a53-6f0a3c1d2e4f HTTP/1.1\r\nHost: t\r\n\r\n"


WANT = {"g": 200, "p": 201, "d": 404}


def healthz_in_time(testee, within=WITHIN):
    """A new connection gets /healthz answered within `within` seconds."""
    t0 = time.monotonic()
    c = Raw(testee, timeout=within)
    try:
        c.sock.sendall(get())
        status, _, body = c.response()
    finally:
        c.close()
    took = time.monotonic() - t0
    assert status in (200, 503) and took < within, "GET /healthz: %s after %.2f s" % (status, took)
    return took


def check_pipeline(testee, queue, pattern, chunks=None):
    """Sends the requests of `pattern` (g: GET /healthz, p: POST /v1/tickets,
    d: DELETE of an unknown ticket) in one write, or split at the byte
    offsets in `chunks`, and checks each answer (MSG-116, MSG-117)."""
    reqs = []
    for i, k in enumerate(pattern):
        reqs.append(get() if k == "g" else delete() if k == "d" else post(queue, "p%d" % i))
    data = b"".join(reqs)
    c = Raw(testee)
    try:
        if chunks:
            prev = 0
            for at in list(chunks) + [len(data)]:
                c.sock.sendall(data[prev:at])
                prev = at
                healthz_in_time(testee)  # the server serves others meanwhile
        else:
            c.sock.sendall(data)
        got = []
        for k in pattern:
            try:
                status, headers, body = c.response()
            except EOFError:
                raise AssertionError("MSG-116: connection closed without an answer after %s "
                                     "(pattern %s)" % (got, pattern))
            got.append(status)
            if status == 503 and headers.get("connection", "").lower() == "close":
                # MSG-117: refused, retryable, then the connection goes.
                err = ijson.loads(body)
                assert err.get("code") == "unavailable" and err.get("retryable") is True, body
                assert c.closes(), "MSG-117: connection not closed after Connection: close"
                break
            assert status == WANT[k], "pattern %s: answers %s, want %d for %r" % (
                pattern, got, WANT[k], k)
        return got
    finally:
        c.close()


@pytest.mark.req("MSG-116", "MSG-117")
@pytest.mark.parametrize("pattern", ["gp", "pp", "gg", "pg", "ggg", "gpg", "gd", "dg", "pdg", "gdp",
                                     "pgpg"])
def test_pipelined_requests_answered_in_order(testee, queue, pattern):
    check_pipeline(testee, queue, pattern)
    # Never a spin: a new client is served at once.
    healthz_in_time(testee)


@pytest.mark.req("MSG-116", "MSG-117")
def test_pipelined_body_split_across_writes(testee, queue):
    one = len(get())
    # GET + the POST's first bytes, the rest of its headers, then its body.
    check_pipeline(testee, queue, "gpg", chunks=[one + 20, one + 60])
    healthz_in_time(testee)


@pytest.mark.req("MSG-116")
def test_keep_alive_sequential_requests_served(testee, queue):
    """Not pipelined: each request after the previous answer, on one
    connection: every one is served."""
    c = Raw(testee)
    try:
        for i, k in enumerate("pgpdpg"):
            c.sock.sendall(get() if k == "g" else delete() if k == "d" else post(queue, "k%d" % i))
            status, _, body = c.response()
            assert status == WANT[k], (i, k, status, body[:200])
    finally:
        c.close()


# ---- Slowloris --------------------------------------------------------------

@pytest.mark.req("MSG-120")
def test_slowloris_does_not_lock_out_new_clients(testee):
    socks = []
    try:
        for i in range(SLOW):
            s = mwclient.connect(testee)
            if i % 3 == 1:
                s.sendall(b"GET /realtime HTTP/1.1\r\nHost: t\r\n")  # never finished
            socks.append(s)
        trickle = [s for i, s in enumerate(socks) if i % 3 == 2]
        for k in range(3):
            for s in trickle:  # one more header byte each round
                try:
                    s.sendall(b"GET /realtime HTTP/1.1\r\nX: "[k:k + 1])
                except OSError:
                    pass  # dropped by the server (MSG-121)
            t0 = time.monotonic()
            hs = handshake(testee, ["matchwire.v1"], timeout=WITHIN)
            took = time.monotonic() - t0
            hs.sock.close()
            assert hs.status == 101, hs.status
            assert took < WITHIN, "MSG-120: handshake took %.2f s with %d slow connections" % (took, SLOW)
            healthz_in_time(testee)
    finally:
        for s in socks:
            s.close()


@pytest.mark.req("MSG-121")
def test_unfinished_headers_are_dropped(testee):
    t0 = time.monotonic()
    silent = mwclient.connect(testee)
    partial = mwclient.connect(testee)
    try:
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        for s in (silent, partial):
            s.settimeout(max(0.1, t0 + 10.0 - time.monotonic()))
            try:
                gone = s.recv(1) == b""
            except ConnectionResetError:
                gone = True
            except socket.timeout:
                gone = False
            assert gone, "MSG-121: a connection without complete headers still open after %.1f s" % (
                time.monotonic() - t0)
    finally:
        silent.close()
        partial.close()


# ---- Unfinished fragmented messages -----------------------------------------

@pytest.mark.req("MSG-122")
def test_unfinished_fragments_bounded(testee, conns):
    """Many connections each hold the start of a large fragmented message:
    each stays open (and gets its reply once the message ends) or is closed
    1013; other clients are served throughout."""
    n = min(20, max(1, int(testee.decl["maxConnections"]) - 10))
    held = []
    for _ in range(n):
        ws = conns()
        ws.send_raw_frame(encode_frame(0x1, b"x" * 60000, fin=False), "fragment")
        held.append(ws)
    other = conns()
    assert other.ping()["type"] == "pong"
    healthz_in_time(testee)
    refused = 0
    for ws in held:
        try:
            ws.send_raw_frame(encode_frame(0x0, b"", fin=True), "last fragment")
        except OSError:
            pass
    for ws in held:
        try:
            r = ws.recv()
            assert r["type"] == "error" and r["data"]["code"] == "bad_json", r
        except Closed as c:
            assert c.code == 1013, "MSG-122: closed with %s, want 1013" % c
            refused += 1
    budget = testee.decl.get("reassemblyBudgetBytes")
    if budget and n * 65536 > int(budget):
        assert refused, "MSG-122: %d x 60,000 bytes over a %s-byte budget, none closed 1013" % (n, budget)
    assert other.ping()["type"] == "pong"
