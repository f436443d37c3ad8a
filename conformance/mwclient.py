"""Matchwire wire client for the conformance suite.

One small synchronous client that talks to the testee only over the wire:
a WebSocket client on plain sockets (so a test can send anything, including
what a well-behaved library refuses to send: invalid UTF-8, binary frames,
oversized or fragmented messages, or never read at all), an HTTP helper, and
the checks every server message goes through (envelope rules, ENV; message
shapes, MSG-064). Every frame sent and received is appended to the current
test's wire log, which the reports show for failures.

Over TLS (a wss:// --url, spec/messages.md §1.1) every connection is a
TLS connection with the same interface (TLSSocket): the tests send the same
bytes inside TLS. The suite verifies the certificate against --ca (host name
checked) or the system's trust store, or not at all with --insecure.

Every wait takes a timeout; nothing sleeps where an event can be awaited.
"""

import base64
import collections
import hashlib
import http.client as httpclient
import json
import os
import re
import select
import socket
import ssl
import struct
import time
import urllib.parse

import ijson

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBPROTOCOL = "matchwire.v1"
MAX_MESSAGE = 65536
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CONN_RE = re.compile(r"^[^\s:]+(:\d{1,5})$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$")
STATES = ("queued", "assigned", "cancelled", "expired")
RETRYABLE = {
    "bad_json": False, "bad_envelope": False, "too_large": False, "too_deep": False,
    "unknown_type": False, "unsupported_version": False, "bad_message": False,
    "not_found": False, "already_assigned": False, "too_many_tickets": False,
    "rate_limited": True, "unavailable": True, "internal": True,
    "unauthorized": False, "forbidden": False,  # auth.md AUTH-041, AUTH-061
}
PUSH_TYPES = ("match.assigned", "ticket.expired", "ticket.cancelled")

# ---------------------------------------------------------------------------
# Wire log: the conftest points WIRE at a fresh deque for each test.
# ---------------------------------------------------------------------------

WIRE = {"log": collections.deque(maxlen=60), "t0": time.monotonic()}
TRUNC = 400


def wire(conn, direction, kind, payload):
    if isinstance(payload, (bytes, bytearray)):
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            text = "hex:" + bytes(payload[:TRUNC // 2]).hex()
    else:
        text = str(payload)
    size = len(payload)
    if len(text) > TRUNC:
        text = text[:TRUNC] + "...(%d bytes)" % size
    WIRE["log"].append({
        "t": round(time.monotonic() - WIRE["t0"], 4), "conn": conn, "dir": direction,
        "kind": kind, "size": size, "text": text,
    })


class Closed(Exception):
    """The WebSocket was closed: code is the close frame's code (None when
    the frame had no code), or eof=True when TCP ended without a close frame."""

    def __init__(self, code=None, reason="", eof=False):
        super().__init__("closed code=%s reason=%r eof=%s" % (code, reason, eof))
        self.code = code
        self.reason = reason
        self.eof = eof


class WaitTimeout(AssertionError):
    pass


class ProtocolViolation(AssertionError):
    """A server message broke an ENV/MSG rule (reported with the rule id)."""


# ---------------------------------------------------------------------------
# Testee declaration (spec/testing.md)
# ---------------------------------------------------------------------------

DEFAULTS = {
    "matchSize": 2,
    "queueSizes": {},
    "ticketTtlSeconds": 600,
    "graceSeconds": 30,
    "assignedTtlSeconds": 600,
    "idleTimeoutSeconds": 60,
    "maxConnections": None,
    "maxTickets": 8,
    "maxConsecutiveErrors": 10,
    "rate": 50,
    "rateBurst": 100,
    "outboundMaxMessages": 256,
    "outboundMaxBytes": 1048576,
    "replyTimeoutSeconds": 5,
    "redisPrefix": "",
    "channel": "matchmaking:assigned",
}
LONGEST_WAIT = 10  # seconds: tests needing a longer declared timer skip (TST)


def tls_context(ca=None, insecure=False):
    """The client TLS context of a wss:// testee: the CA file's certificates
    as the only trust anchors (host name checked), or no verification at all
    (insecure), or the system's trust store. TLS 1.2 at least (MSG-150)."""
    if insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class TLSSocket:
    """A TLS connection with the socket interface the tests use (recv, send,
    sendall, select on it, settimeout, setblocking, setsockopt, close).

    Non-blocking reads and writes that TLS cannot complete raise
    BlockingIOError, as a plain socket does. A socket that select() found
    readable may hold only part of a TLS record (or a TLS message that is
    not data: TLS 1.3 session tickets): recv() then waits up to 1 s for the
    rest, so "readable" still means "has data" to a test written for plain
    sockets. pending() says whether data already decrypted waits (select()
    cannot see it)."""

    def __init__(self, raw, ctx, server_hostname, timeout):
        self.raw = raw
        raw.settimeout(timeout)
        self.s = ctx.wrap_socket(raw, server_hostname=server_hostname)

    def __getattr__(self, k):
        return getattr(self.s, k)

    def pending(self):
        return self.s.pending()

    def recv(self, n, flags=0):
        deadline = None
        while True:
            try:
                return self.s.recv(n)
            except ssl.SSLWantReadError:
                if self.s.gettimeout() is not None and self.s.gettimeout() > 0:
                    raise socket.timeout("timed out")
                deadline = deadline or time.monotonic() + 1.0
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.s], [], [], left)[0]:
                    raise BlockingIOError("TLS: no complete record yet")
            except ssl.SSLWantWriteError:
                raise BlockingIOError("TLS: cannot write")

    def send(self, data, flags=0):
        try:
            return self.s.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            raise BlockingIOError("TLS: cannot write now")

    def sendall(self, data, flags=0):
        if self.s.gettimeout() == 0.0:
            # Non-blocking: as a plain socket, BlockingIOError when full.
            view = memoryview(bytes(data))
            while view:
                n = self.send(view)
                view = view[n:]
            return
        try:
            self.s.sendall(data)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError, ConnectionResetError) as e:
            # The server closed while TLS was still writing record after
            # record (a plain sendall() hands the kernel all the bytes at once
            # and returns first: e.g. a 65,537-byte message closed 1009 on its
            # first record). What the server sent before it closed is still
            # readable: the close is seen by the next read, as on a plain socket.
            wire("tls", "info", "send", "peer closed during a TLS write: %s" % type(e).__name__)

    def close(self):
        try:
            self.s.close()
        finally:
            self.raw.close()


def readable(sock, timeout):
    """select() for reading that also sees data a TLSSocket holds."""
    if isinstance(sock, TLSSocket) and sock.pending():
        return True
    return bool(select.select([sock], [], [], timeout)[0])


def connect(testee, host=None, port=None, timeout=None, tls=None, rcvbuf=None, mss=None):
    """A new connection to the testee (host and port of --url unless
    given): a plain socket, or for a wss:// testee a TLSSocket whose TLS
    handshake is done. rcvbuf/mss are set before connecting."""
    host = host or testee.host
    port = port or testee.port
    timeout = timeout or testee.timeout
    tls = testee.tls if tls is None else tls
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if mss:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            return TLSSocket(sock, testee.ssl_context, host, timeout)
    except BaseException:
        sock.close()
        raise
    return sock


class Testee:
    def __init__(self, url, http=None, redis=None, url2=None, decl=None, ca=None, insecure=False):
        self.url = url
        u = urllib.parse.urlsplit(url)
        self.tls = u.scheme == "wss"
        self.path = u.path or "/"
        self.host = u.hostname
        self.port = u.port or (443 if self.tls else 80)
        self.http = (http or "%s://%s:%d" % ("https" if self.tls else "http", self.host,
                                             self.port)).rstrip("/")
        self.ca = ca
        self.insecure = insecure
        self.ssl_context = tls_context(ca, insecure) if (
            self.tls or self.http.startswith("https:")) else None
        self.redis = redis
        self.url2 = url2
        self.decl = dict(DEFAULTS)
        self.decl.update(decl or {})

    def __getattr__(self, k):
        d = self.__dict__.get("decl", {})
        if k in d:
            return d[k]
        raise AttributeError(k)

    @property
    def timeout(self):
        return float(self.decl["replyTimeoutSeconds"])

    def size_of(self, queue):
        return int(self.decl["queueSizes"].get(queue, self.decl["matchSize"]))


def uniq(prefix="cf"):
    return "%s-%s" % (prefix, os.urandom(5).hex())


# ---------------------------------------------------------------------------
# Server message checks
# ---------------------------------------------------------------------------

def _need(cond, rule, what):
    if not cond:
        raise ProtocolViolation("%s: %s" % (rule, what))


def _ts(v, rule="MSG-083"):
    _need(isinstance(v, str) and TS_RE.match(v) is not None, rule,
          "timestamp %r is not YYYY-MM-DDTHH:MM:SS.sssZ" % (v,))


def _ticket_id(v):
    _need(isinstance(v, str) and 1 <= len(v) <= 64, "MSG-064", "ticketId %r" % (v,))


def _version(v):
    _need(type(v) is int and v >= 1, "MSG-071", "version %r is not an integer >= 1" % (v,))


def check_envelope(raw):
    """Parses one server text message and checks the envelope rules.
    Returns the dict."""
    f = ijson.check(raw)
    _need(f is None, "MSG-064", "server message is not strict I-JSON (%s)" % f)
    env = ijson.loads(raw)
    _need(isinstance(env, dict), "MSG-064", "server message is not an object")
    t = env.get("type")
    _need(isinstance(t, str) and 1 <= len(t.encode()) <= 64 and TYPE_RE.match(t), "MSG-064",
          "bad type %r" % (t,))
    _need(type(env.get("v")) is int and env["v"] == 1, "MSG-064", "v must be 1, got %r" % (env.get("v"),))
    _need(isinstance(env.get("data"), dict), "MSG-064", "data must be an object")
    if "id" in env:
        i = env["id"]
        _need(isinstance(i, str) and 1 <= len(i) <= 64 and all(0x20 <= ord(c) <= 0x7E for c in i),
              "MSG-064", "bad id %r" % (i,))
    check_message(env)
    return env


def check_assignment(a):
    _need(isinstance(a, dict), "MSG-060", "assignment is not an object")
    _need(isinstance(a.get("matchId"), str) and a["matchId"], "MSG-060", "matchId")
    _need(isinstance(a.get("connection"), str) and CONN_RE.match(a["connection"]) is not None,
          "MSG-060", "connection %r is not host:port" % (a.get("connection"),))
    pl = a.get("players")
    _need(isinstance(pl, list) and len(pl) >= 1, "MSG-060", "players must be a non-empty array")
    for p in pl:
        _need(isinstance(p, dict) and isinstance(p.get("playerId"), str), "MSG-060",
              "player %r" % (p,))
    _ts(a.get("assignedAt"))


def check_message(env):
    """Shape of each server message (messages.md §3, §4)."""
    t, d = env["type"], env["data"]
    if t in PUSH_TYPES:
        _need("id" not in env, "MSG-010", "push %s carries an id" % t)
    if t == "enqueued":
        _ticket_id(d.get("ticketId"))
        _need(isinstance(d.get("queue"), str), "MSG-025", "queue")
        _need(d.get("state") in STATES, "MSG-025", "state %r" % (d.get("state"),))
        _version(d.get("version"))
        _ts(d.get("expiresAt"))
    elif t in ("cancelled", "ticket.expired", "ticket.cancelled"):
        _ticket_id(d.get("ticketId"))
        _version(d.get("version"))
    elif t == "watching":
        _ticket_id(d.get("ticketId"))
        _need(d.get("state") in STATES, "MSG-040", "state %r" % (d.get("state"),))
        _version(d.get("version"))
    elif t == "pong":
        pass
    elif t == "error":
        c = d.get("code")
        _need(c in RETRYABLE, "MSG-063", "error code %r not in the registry" % (c,))
        _need(isinstance(d.get("message"), str), "MSG-063", "message must be a string")
        _need(d.get("retryable") is RETRYABLE[c], "MSG-100",
              "retryable for %s must be %s, got %r" % (c, RETRYABLE[c], d.get("retryable")))
        if "offset" in d:
            _need(type(d["offset"]) is int and d["offset"] >= 0, "MSG-063", "offset %r" % (d["offset"],))
    elif t == "match.assigned":
        _ticket_id(d.get("ticketId"))
        _version(d.get("version"))
        check_assignment(d.get("assignment"))
    else:
        raise ProtocolViolation("MSG-064: unknown server message type %r" % t)


# ---------------------------------------------------------------------------
# WebSocket client on a plain socket
# ---------------------------------------------------------------------------

def _recv_until(sock, marker, limit, deadline):
    buf = b""
    while marker not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout("no complete HTTP response head within the timeout")
        if not readable(sock, left):
            continue
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            break
    return buf


def parse_http_head(buf):
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return status, headers, rest


class Handshake:
    def __init__(self, status, headers, sock, rest):
        self.status = status
        self.headers = headers
        self.sock = sock
        self.rest = rest

    def header(self, name):
        v = self.headers.get(name.lower())
        return None if v is None else ", ".join(v)


def handshake(testee, subprotocols=None, path=None, raw_protocol_header=None, url=None,
              rcvbuf=None, timeout=None, mss=None):
    """Sends an upgrade request and reads the response head. Returns a
    Handshake (sock left open: the caller wraps or closes it)."""
    u = urllib.parse.urlsplit(url or testee.url)
    tls = u.scheme == "wss"
    host, port = u.hostname, u.port or (443 if tls else 80)
    path = path if path is not None else (u.path or "/")
    timeout = timeout or testee.timeout
    # A small MSS and receive buffer keep the peer's send buffer small too
    # (Linux sizes it from the MSS), so a test that never reads reaches the
    # server's own outbound bound quickly (MSG-096).
    sock = connect(testee, host, port, timeout, tls=tls, rcvbuf=rcvbuf, mss=mss)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
    if raw_protocol_header is not None:
        lines.append("Sec-WebSocket-Protocol: %s" % raw_protocol_header)
    elif subprotocols:
        lines.append("Sec-WebSocket-Protocol: %s" % ", ".join(subprotocols))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = _recv_until(sock, b"\r\n\r\n", 65536, time.monotonic() + timeout)
    status, headers, rest = parse_http_head(buf)
    if status == 101:
        acc = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        got = ", ".join(headers.get("sec-websocket-accept", []))
        if got != acc:
            sock.close()
            raise ProtocolViolation("MSG-001: bad Sec-WebSocket-Accept %r" % got)
    return Handshake(status, headers, sock, rest)


def encode_frame(opcode, payload, fin=True, mask=True, rsv=0):
    payload = bytes(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    if n:
        # XOR in one big-int operation: fast enough for 64 KiB payloads.
        k = (key * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")
    else:
        masked = b""
    return head + key + masked


class Pacer:
    """Client-side token bucket: keeps a test under the testee's declared
    message rate (MSG-095) unless the test is about the rate itself."""

    def __init__(self, rate, burst):
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.t = self.burst, time.monotonic()

    def take(self):
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            time.sleep((1 - self.tokens) / self.rate)


class WS:
    """One WebSocket connection. recv() returns checked envelopes (dicts)."""

    n = 0

    def __init__(self, testee, subprotocols=(SUBPROTOCOL,), url=None, name=None, rcvbuf=None,
                 check=True, auto_pong=True, pace=True):
        WS.n += 1
        self.name = name or "ws%d" % WS.n
        self.testee = testee
        self.timeout = testee.timeout
        self.hs = handshake(testee, list(subprotocols) if subprotocols else None, url=url,
                            rcvbuf=rcvbuf)
        if self.hs.status != 101:
            self.hs.sock.close()
            raise ProtocolViolation("MSG-001: upgrade refused with HTTP %d" % self.hs.status)
        self.sock = self.hs.sock
        self.buf = bytearray(self.hs.rest)
        self.check = check
        self.auto_pong = auto_pong
        self.closed = None
        self.pings = []
        self.pending = collections.deque()
        self.seq = 0
        self.pacer = Pacer(0.8 * testee.decl["rate"], max(1.0, 0.8 * testee.decl["rateBurst"])) if pace else None
        wire(self.name, "info", "open", "connected %s" % (url or testee.url))

    # -- sending ----------------------------------------------------------
    def send_raw_frame(self, data, log_kind="frame"):
        wire(self.name, "send", log_kind, data)
        self.sock.sendall(data)

    def send_text(self, text):
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if self.pacer:
            self.pacer.take()
        wire(self.name, "send", "text", data)
        self.sock.sendall(encode_frame(0x1, data))

    def send_binary(self, data):
        wire(self.name, "send", "binary", data)
        self.sock.sendall(encode_frame(0x2, data))

    def send_fragments(self, data, parts):
        """One text message in `parts` frames (continuations)."""
        wire(self.name, "send", "text(fragmented x%d)" % parts, data)
        step = max(1, len(data) // parts)
        chunks = [data[i:i + step] for i in range(0, len(data), step)]
        for i, c in enumerate(chunks):
            op = 0x1 if i == 0 else 0x0
            self.sock.sendall(encode_frame(op, c, fin=(i == len(chunks) - 1)))

    def send_env(self, type_, data=None, id=None, v=1, **extra):
        env = {"type": type_, "v": v}
        if id is not None:
            env["id"] = id
        env["data"] = {} if data is None else data
        env.update(extra)
        self.send_text(ijson.dumps(env))

    def next_id(self):
        self.seq += 1
        return "%s-%d" % (self.name, self.seq)

    def close(self, code=1000):
        if self.closed is None:
            try:
                self.sock.sendall(encode_frame(0x8, struct.pack("!H", code)))
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving --------------------------------------------------------
    def _fill(self, deadline):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout("%s: nothing received within the timeout" % self.name)
            if not readable(self.sock, left):
                continue
            try:
                chunk = self.sock.recv(262144)
            except socket.timeout:
                continue  # TLS: readable, but no whole record within the timeout
            except (ConnectionResetError, OSError) as e:
                wire(self.name, "recv", "eof", "TCP error %s" % e)
                self.closed = Closed(eof=True)
                raise self.closed
            if not chunk:
                wire(self.name, "recv", "eof", "TCP closed")
                self.closed = Closed(eof=True)
                raise self.closed
            self.buf += chunk
            return

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def recv_frame(self, timeout=None):
        """Returns (fin, opcode, payload)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise ProtocolViolation("MSG-002: server frame is masked (RFC 6455 5.1)")
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n, deadline)
        payload = bytes(self.buf[off:off + n])
        del self.buf[:off + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout=None):
        """Returns (opcode, payload) of the next data message; answers pings;
        raises Closed on a close frame or EOF."""
        if self.closed is not None:
            raise self.closed
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        parts, op0 = [], None
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op == 0x9:
                wire(self.name, "recv", "ping", payload)
                self.pings.append(time.monotonic())
                if self.auto_pong:
                    self.sock.sendall(encode_frame(0xA, payload))
                continue
            if op == 0xA:
                wire(self.name, "recv", "pong", payload)
                continue
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                wire(self.name, "recv", "close", "code=%s reason=%r" % (code, reason))
                self.closed = Closed(code, reason)
                try:
                    self.sock.sendall(encode_frame(0x8, payload[:2]))
                except OSError:
                    pass
                raise self.closed
            if op0 is None:
                op0 = op
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                wire(self.name, "recv", "text" if op0 == 1 else "op%d" % op0, data)
                return op0, data

    def recv(self, timeout=None):
        """Next server envelope (dict), checked against ENV/MSG rules."""
        if self.pending:
            return self.pending.popleft()
        op, data = self.recv_message(timeout)
        if op != 0x1:
            raise ProtocolViolation("MSG-002: server sent opcode %d, not a text message" % op)
        if len(data) > MAX_MESSAGE:
            raise ProtocolViolation("MSG-064: server message of %d bytes" % len(data))
        if not self.check:
            return ijson.loads(data)
        return check_envelope(data)

    def expect_closed(self, timeout=None):
        """Reads (discarding messages) until the connection closes; returns Closed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self.recv_message(max(0.0, deadline - time.monotonic()))
            except Closed as c:
                return c
            except WaitTimeout:
                raise WaitTimeout("%s: connection not closed within the timeout" % self.name)

    def request(self, type_, data=None, id=True, timeout=None, v=1, **extra):
        """Sends a request and returns its reply; pushes received meanwhile
        are kept for later recv()/wait_push(). MSG-013 makes the first
        non-push the reply."""
        if id is True:
            id = self.next_id()
        self.send_env(type_, data, id=id, v=v, **extra)
        return self.reply(id, timeout)

    def reply(self, id, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        kept = []
        try:
            while True:
                op, data = self.recv_message(max(0.0, deadline - time.monotonic()))
                if op != 0x1:
                    raise ProtocolViolation("MSG-002: server sent opcode %d" % op)
                env = check_envelope(data) if self.check else ijson.loads(data)
                if env["type"] in PUSH_TYPES:
                    kept.append(env)
                    continue
                if id is None:
                    _need("id" not in env, "MSG-011", "reply to a request without id carries id %r"
                          % (env.get("id"),))
                else:
                    _need(env.get("id") == id, "MSG-011",
                          "reply id %r does not echo request id %r" % (env.get("id"), id))
                return env
        finally:
            self.pending.extend(kept)

    def wait_push(self, type_=None, ticket=None, timeout=None):
        """Next push (optionally of a type / for a ticket); other messages
        before it are kept, in order."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        for i, env in enumerate(self.pending):
            if (type_ is None or env["type"] == type_) and (
                    ticket is None or env["data"].get("ticketId") == ticket):
                del self.pending[i]
                return env
        kept = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout("%s: no %s push%s within %.1fs" % (
                        self.name, type_ or "", " for " + ticket if ticket else "",
                        (self.timeout if timeout is None else timeout)))
                op, data = self.recv_message(left)
                env = check_envelope(data) if self.check else ijson.loads(data)
                if (type_ is None or env["type"] == type_) and (
                        ticket is None or env["data"].get("ticketId") == ticket):
                    return env
                kept.append(env)
        finally:
            self.pending.extend(kept)

    def quiet(self, seconds):
        """Asserts nothing arrives for `seconds` (used only where the spec
        says nothing may follow). Returns the list of what did arrive."""
        got = list(self.pending)
        self.pending.clear()
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            try:
                got.append(self.recv(left))
            except WaitTimeout:
                return got

    # -- helpers ----------------------------------------------------------
    def enqueue(self, queue, player=None, region=None, key=None, attributes=None, **kw):
        data = {"queue": queue, "playerId": player or uniq("p")}
        attrs = dict(attributes or {})
        if region is not None:
            attrs["region"] = region
        if attrs:
            data["attributes"] = attrs
        if key is not None:
            data["idempotencyKey"] = key
        r = self.request("enqueue", data, **kw)
        return r

    def enqueue_ok(self, queue, **kw):
        r = self.enqueue(queue, **kw)
        _need(r["type"] == "enqueued", "MSG-025", "enqueue failed: %s" % ijson.dumps(r))
        return r["data"]

    def ping(self, **kw):
        return self.request("ping", {}, **kw)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class HttpReply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self._json = None

    @property
    def json(self):
        if self._json is None:
            f = ijson.check(self.body)
            _need(f is None, "MSG-110", "HTTP body is not strict I-JSON: %s: %r" % (f, self.body[:200]))
            self._json = ijson.loads(self.body)
        return self._json


def http(testee, method, path, body=None, headers=None, base=None, timeout=None):
    u = urllib.parse.urlsplit(base or testee.http)
    if u.scheme == "https":
        conn = httpclient.HTTPSConnection(u.hostname, u.port or 443, timeout=timeout or testee.timeout,
                                          context=testee.ssl_context or tls_context())
    else:
        conn = httpclient.HTTPConnection(u.hostname, u.port or 80, timeout=timeout or testee.timeout)
    h = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = ijson.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    wire("http", "send", method, "%s %s %s" % (method, path, (body or b"")[:300].decode("utf-8", "replace")))
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        wire("http", "recv", str(r.status), data)
        return HttpReply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


# Keep the module name usable as a function above without shadowing http.client.
http_request = http


def match_players(ws_list, tickets, timeout=None):
    """Waits for one match.assigned per (ws, ticketId); returns the pushes."""
    return [ws.wait_push("match.assigned", t, timeout) for ws, t in zip(ws_list, tickets)]


def wait_until(pred, timeout, what, interval=0.05):
    """Polls pred() (for state only observable by asking, e.g. HTTP GET)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise WaitTimeout("timed out waiting for %s" % what)
        time.sleep(interval)


def json_text(v):
    return json.dumps(v)


def pump(wss, until):
    """Reads the open connections of wss until monotonic time `until`,
    answering the server's idle pings (MSG-097) and keeping every message
    for later recv()/wait_push(): for waits longer than the idle timeout."""
    wss = [w for w in wss if w.closed is None]
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return
        if not wss:
            time.sleep(left)
            return
        for w in list(wss):
            try:
                op, data = w.recv_message(min(0.05, max(0.0, until - time.monotonic())))
                w.pending.append(ijson.loads(data))
            except WaitTimeout:
                pass
            except Closed:
                wss.remove(w)
