"""The client conformance kit's machinery: a scripted, adversarial Matchwire
server (one per scenario, on an ephemeral loopback port), the adapter
driver (spec/testing.md TST-060..TST-079), verdicts and reports.

Scenarios live in scenarios.py; `run` and `run-faults` are the entry points.
Python 3 with Debian's python3-websockets (10.x) only.

Where spec/testing.md section 6 is implemented:
- TST-060 (adapter started per scenario, JSON lines): Adapter.start, _read.
- TST-061 (commands) and TST-062 (events, contract breaches): Adapter.send,
  Adapter._read, Ctx.contract; example_adapter.py is the worked example.
- TST-063 (an adapter that exits fails; close and process-group kill):
  Adapter.expect, Adapter.stop.
- TST-064 (a fresh server per scenario, attempts recorded, every client
  frame checked): Server, Conn.recv, check_client_frame.
- TST-065 (timing at the server, tolerances): FLOOR_SLACK, LATE_SLACK,
  Server.gaps and the backoff scenarios.
- TST-066 (verdicts, exit status, matrix, reports with the wire log):
  run_one, write_reports, and `run`.
- TST-067 (every client.md MUST has a scenario): `run --matrix` and the
  server suite's test_traceability.py.
- TST-068 (the example client's faults, `client faults caught: N/M`):
  `run-faults`.
- TST-069 (TLS mode: wss:// with a throwaway CA, `ca` in `connect`,
  scenarios excluded over TLS or run over TLS only, the `core` tag; the
  certificate checks of client.md CLI-004): Tls, Server.start, TlsProbe,
  Ctx.client, Ctx.probe, Scenario.excluded, run_one.
- TST-070 (tokens: `token`, `tokens`, `tokenRefresh`; the token read from
  the handshake as auth.md AUTH-010..012 say): handshake_token, Ctx.client,
  and the scenarios of client.md section 9.
- TST-071 (a client's run for the project's tests: every scenario plain,
  then the core set over TLS, reports per client): scripts/client-kit.sh
  adapter NAME "CMD".
"""

import asyncio
import html
import http
import json
import os
import re
import shutil
import signal
import ssl
import sys
import tempfile
import time
import urllib.parse
import uuid

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.dirname(HERE)
sys.path.insert(0, SUITE)
import ijson  # noqa: E402  (strict I-JSON, shared with the server suite)
import reqs as reqmod  # noqa: E402
import testcert  # noqa: E402  (the throwaway test CA, shared with the server suite)

SUBPROTOCOL = "matchwire.v1"
FLOOR = 0.25          # client.md CLI-043
CAP = 10.0            # client.md CLI-045
# Timing tolerances (loaded 2-core machine): measured gaps only ever add
# latency to the client's chosen delay, so the floor check is one-sided
# with a small clock slack; upper bounds get generous slack.
FLOOR_SLACK = 0.02
LATE_SLACK = 2.5
WIRE_MAX = 60          # the last frames per scenario (report.schema.json)


class Failure(Exception):
    """The client did not do what the requirement asks."""


class CannotRun(Exception):
    """The scenario could not run (adapter missing a capability...)."""


def now():
    return time.monotonic()


def new_ticket_id():
    return str(uuid.uuid4())


def ts(offset_s=600.0):
    t = time.time() + offset_s
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def env(type_, data, id_=None, v=1, **extra):
    e = {"type": type_, "v": v}
    if id_ is not None:
        e["id"] = id_
    e["data"] = data
    e.update(extra)
    return e


def assignment(match_id=None, players=("p1", "p2")):
    return {"matchId": match_id or "m-" + uuid.uuid4().hex[:12], "connection": "10.0.0.5:7777",
            "players": [{"playerId": p} for p in players], "assignedAt": ts(0)}


# ---------------------------------------------------------------------------
# What a client sends: checked on every frame (client.md CLI-002, CLI-003)
# ---------------------------------------------------------------------------

def check_client_frame(is_text, payload):
    """Returns (message or None, problem or None) for one frame from the
    client: a text message holding a strict I-JSON envelope (envelope.md)
    whose data satisfies its schema (messages.md section 3)."""
    if not is_text:
        return None, "binary frame from the client (CLI-002)"
    raw = payload.encode("utf-8", "surrogatepass")
    if len(raw) > 65536:
        return None, "message over 65,536 bytes"
    try:
        m = ijson.loads(raw)
    except ijson.Fault as f:
        return None, "not strict I-JSON: %s" % f
    if not isinstance(m, dict) or not isinstance(m.get("type"), str) or not isinstance(m.get("data"), dict):
        return None, "not an envelope"
    if m.get("v") != 1 or isinstance(m.get("v"), bool):
        return m, "v is not 1"
    if "id" in m and not (isinstance(m["id"], str) and 1 <= len(m["id"]) <= 64
                          and all(0x20 <= ord(c) <= 0x7E for c in m["id"])):
        return m, "invalid id"
    d, t = m["data"], m["type"]
    if t == "enqueue":
        q, p = d.get("queue"), d.get("playerId")
        if not (isinstance(q, str) and 1 <= len(q) <= 64 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789_-" for c in q)):
            return m, "enqueue.queue violates MSG-020"
        if not (isinstance(p, str) and 1 <= len(p.encode()) <= 128):
            return m, "enqueue.playerId violates MSG-021"
        a = d.get("attributes")
        if a is not None:
            if not isinstance(a, dict) or len(a) > 16:
                return m, "enqueue.attributes violates MSG-022"
            for k, val in a.items():
                if isinstance(val, bool) or not isinstance(val, (str, int, float)) or \
                        (isinstance(val, str) and len(val.encode()) > 256):
                    return m, "enqueue.attributes.%s violates MSG-022" % k
        k = d.get("idempotencyKey")
        if k is not None and not (isinstance(k, str) and 1 <= len(k.encode()) <= 64):
            return m, "enqueue.idempotencyKey violates MSG-023"
    elif t in ("watch", "cancel"):
        if not isinstance(d.get("ticketId"), str) or not d["ticketId"]:
            return m, "%s.ticketId missing" % t
    elif t != "ping":
        return m, "not a client message type: %r" % t
    return m, None


# ---------------------------------------------------------------------------
# Tokens at the handshake (auth.md AUTH-010..AUTH-012; client.md CLI-090)
# ---------------------------------------------------------------------------

BEARER_RE = re.compile(r"^[Bb][Ee][Aa][Rr][Ee][Rr] +(\S(?:.*\S)?)\s*$")


def handshake_token(path, headers):
    """(token or None, form, problem or None) of one handshake request, read
    as a Matchwire server reads it: the `Authorization: Bearer` header wins;
    otherwise the `access_token` query parameter, percent-decoded (not `+`
    as a space). Two headers, two parameters or another scheme are a
    problem (the server refuses them, AUTH-012), and so are both forms with
    different tokens (CLI-090)."""
    auth = headers.get_all("Authorization")
    query = urllib.parse.urlsplit(path).query
    params = [kv.split("=", 1) for kv in query.split("&") if kv]
    qtok = [urllib.parse.unquote(kv[1]) if len(kv) == 2 else "" for kv in params if kv[0] == "access_token"]
    if len(auth) > 1:
        return None, "header", "%d Authorization headers" % len(auth)
    if auth:
        m = BEARER_RE.match(auth[0])
        if not m:
            return None, "header", "Authorization is not 'Bearer <token>': %r" % auth[0][:80]
        if qtok and qtok != [m.group(1)]:
            return m.group(1), "header", "the Authorization header and access_token carry different tokens"
        return m.group(1), "header", None
    if len(qtok) > 1:
        return None, "query", "%d access_token parameters" % len(qtok)
    if qtok:
        return qtok[0], "query", None
    return None, None, None


def selfcheck_handshake_token():
    """The kit's own check of handshake_token (run by run-faults): returns
    the list of cases it gets wrong."""
    from websockets.datastructures import Headers
    cases = [
        ("/realtime", [], (None, None, None)),
        ("/realtime?access_token=a.b.c", [], ("a.b.c", "query", None)),
        ("/realtime?x=1&access_token=a%2Eb.c-_", [], ("a.b.c-_", "query", None)),
        ("/realtime?access_token=a+b", [], ("a+b", "query", None)),
        ("/realtime", [("Authorization", "bearer   x.y.z")], ("x.y.z", "header", None)),
        ("/realtime?access_token=h", [("Authorization", "Bearer h")], ("h", "header", None)),
        ("/realtime", [("Authorization", "Basic eDp5")], (None, "header", "x")),
        ("/realtime", [("Authorization", "Bearer")], (None, "header", "x")),
        ("/realtime", [("Authorization", "Bearer a"), ("Authorization", "Bearer a")], (None, "header", "x")),
        ("/realtime?access_token=a&access_token=a", [], (None, "query", "x")),
        ("/realtime?access_token=q", [("Authorization", "Bearer h")], ("h", "header", "x")),
    ]
    wrong = []
    for path, hdrs, want in cases:
        got = handshake_token(path, Headers(hdrs))
        if got[:2] != want[:2] or (got[2] is None) != (want[2] is None):
            wrong.append("%s %s: got %r, want %r" % (path, hdrs, got, want))
    return wrong


def new_token(label="t"):
    """A token-shaped string (three base64url segments); the kit never
    verifies it, it only compares what the client presents."""
    return "eyJhbGciOiJIUzI1NiJ9.%s.%s" % (label + uuid.uuid4().hex[:12], uuid.uuid4().hex[:22])


# ---------------------------------------------------------------------------
# TLS mode (spec/testing.md TST-069)
# ---------------------------------------------------------------------------

TLS_HOST = "localhost"    # the test certificate's DNS name (also 127.0.0.1 and ::1)
WRONG_HOST = "otherhost.invalid"   # the only name of the wrong-host certificate (CLI-004)


class Tls:
    """The run's TLS material: a throwaway CA and server certificate made
    once per run by conformance/testcert.py in a temporary directory, and
    the server-side ssl context every scripted server uses."""

    def __init__(self, directory=None):
        self.own = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="mw-client-kit-tls-")
        paths = testcert.make(self.dir)
        self.ca, self.cert, self.key = paths["ca"], paths["cert"], paths["key"]
        self.context = self._server_context(paths)
        # For the verification scenarios (client.md CLI-004): a certificate
        # for the right names from another CA (made by testcert.py in its own
        # directory: another key, the same subject name as the run's CA), and
        # one from the run's CA for another host name only.
        self.bad = {
            "untrusted_ca": self._server_context(testcert.make(os.path.join(self.dir, "other-ca"))),
            "wrong_host": self._server_context(testcert.make(self.dir, names=["DNS:" + WRONG_HOST],
                                                             server="otherhost")),
        }

    @staticmethod
    def _server_context(paths):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(paths["cert"], paths["key"])
        return context

    def cleanup(self):
        if self.own:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# The adversarial server
# ---------------------------------------------------------------------------

class Conn:
    """One accepted WebSocket connection, driven by the scenario."""

    def __init__(self, server, ws, n):
        self.server, self.ws, self.n = server, ws, n
        self.ctx = server.ctx
        self.name = "%s#%d" % (server.name, n)
        self.opened = now()
        self.closed_at = None
        self.pending = []

    async def recv(self, timeout=5.0, what="a message"):
        """The next client message (a dict). Fails on timeout or close."""
        if self.pending:
            return self.pending.pop(0)
        try:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise Failure("%s: no %s from the client within %.1fs" % (self.name, what, timeout))
        except websockets.ConnectionClosed as e:
            self.closed_at = self.closed_at or now()
            raise Failure("%s: connection closed (%s) while waiting for %s" % (self.name, e.code, what))
        is_text = isinstance(data, str)
        self.ctx.log(self.name, "recv", "text" if is_text else "binary",
                     data if is_text else data[:200].hex())
        m, problem = check_client_frame(is_text, data if is_text else "")
        if problem:
            self.ctx.violations.append("%s: %s: %s" % (self.name, problem, (data if is_text else "")[:200]))
        if m is None:
            raise Failure("%s: client sent an invalid frame: %s" % (self.name, problem))
        return m

    async def recv_type(self, type_, timeout=5.0):
        m = await self.recv(timeout, "'%s'" % type_)
        if m.get("type") != type_:
            raise Failure("%s: expected '%s' from the client, got %s" % (self.name, type_, json.dumps(m)[:200]))
        return m

    async def maybe_recv(self, timeout):
        """The next client message, or None when none came within timeout
        (or the connection closed)."""
        try:
            return await self.recv(timeout)
        except Failure:
            return None

    async def send(self, obj):
        text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        self.ctx.log(self.name, "send", "text", text)
        await self.ws.send(text)

    async def send_binary(self, data):
        self.ctx.log(self.name, "send", "binary", data[:200].hex())
        await self.ws.send(data)

    async def reply(self, req, type_, data):
        await self.send(env(type_, data, req.get("id")))

    async def error(self, req, code, retryable, message="scripted error"):
        await self.send(env("error", {"code": code, "message": message, "retryable": retryable}, req.get("id")))

    async def enqueued(self, req, ticket_id=None, state="queued", version=1):
        tid = ticket_id or new_ticket_id()
        await self.reply(req, "enqueued", {"ticketId": tid, "queue": req["data"].get("queue", "q"),
                                           "state": state, "version": version, "expiresAt": ts()})
        return tid

    async def assigned(self, ticket_id, version=2, match_id=None, **extra):
        data = {"ticketId": ticket_id, "version": version, "assignment": assignment(match_id)}
        data.update(extra)
        await self.send(env("match.assigned", data))
        return data["assignment"]["matchId"]

    async def close(self, code, reason=""):
        # Over TLS (TST-069) ws.transport is the TLS transport: the raw close
        # frame below is encrypted like any frame, and abort() drops the TCP
        # connection without a TLS close_notify (the client sees 1006).
        self.ctx.log(self.name, "send", "close", "%d %s" % (code, reason))
        self.closed_at = now()
        if code == 1005:   # a close frame without a status code
            self.ws.transport.write(b"\x88\x00")
            await asyncio.sleep(0.3)
            self._drop()
            return
        if code == 1006:   # no close frame at all: drop TCP
            self._drop()
            return
        try:
            await asyncio.wait_for(self.ws.close(code, reason), 2)
        except Exception:
            self._drop()

    def _drop(self):
        try:
            self.ws.transport.abort()
        except AttributeError:
            # a TLS transport whose connection is already lost (the client
            # closed it first, e.g. after the close frame without a status)
            # has no SSL protocol left to abort: nothing to drop
            pass

    def abort(self):
        """Drops TCP without a close frame (the client sees 1006)."""
        self.ctx.log(self.name, "send", "abort", "TCP dropped, no close frame")
        self.closed_at = now()
        self._drop()

    def stall(self):
        """Stops reading: no pong, no reply, no close."""
        self.ctx.log(self.name, "send", "stall", "server stops reading")
        self.ws.transport.pause_reading()

    async def ping(self, timeout):
        """Sends a WebSocket ping; True when the pong came within timeout."""
        self.ctx.log(self.name, "send", "ping", "")
        waiter = await self.ws.ping(b"mw")
        try:
            await asyncio.wait_for(waiter, timeout)
            self.ctx.log(self.name, "recv", "pong", "")
            return True
        except asyncio.TimeoutError:
            return False

    async def serve(self, seconds):
        """Answers like a well-behaved server for a while: enqueue ->
        enqueued, watch -> watching queued, cancel -> not_found, ping ->
        pong. Returns the messages received."""
        got, end = [], now() + seconds
        while True:
            left = end - now()
            if left <= 0:
                return got
            m = await self.maybe_recv(left)
            if m is None:
                return got
            got.append(m)
            await self.answer(m)

    async def answer(self, m):
        t = m.get("type")
        if t == "enqueue":
            await self.enqueued(m)
        elif t == "watch":
            await self.reply(m, "watching", {"ticketId": m["data"]["ticketId"], "state": "queued", "version": 1})
        elif t == "cancel":
            await self.error(m, "not_found", False)
        elif t == "ping":
            await self.reply(m, "pong", {})


class Server:
    """One scripted server. Handshake attempts are recorded with their time
    (the kit measures reconnect delays here, on the wire); `refuse` holds
    HTTP statuses (or (status, headers)) for the next attempts."""

    def __init__(self, ctx, name):
        self.ctx, self.name = ctx, name
        self.tls = ctx.tls
        self.srv6 = None
        self.attempts = []
        self.refuse = []
        self.refuse_all = None
        self.on_open = None
        self.select = None     # a subprotocol to select whatever is offered
        self.conns = asyncio.Queue()
        self.all_conns = []
        self.srv = None
        self.url = None

    async def start(self):
        kw = dict(process_request=self._process_request, subprotocols=[SUBPROTOCOL], ping_interval=None,
                  close_timeout=1, max_size=1 << 20, compression=None, select_subprotocol=self._select)
        if self.tls:
            kw["ssl"] = self.tls.context
        self.srv = await websockets.serve(self._handler, "127.0.0.1", 0, **kw)
        port = self.srv.sockets[0].getsockname()[1]
        if self.tls:
            # wss://localhost: the host name the certificate names. Also on
            # ::1 (same port, when free) for a client that resolves
            # localhost to ::1 first.
            try:
                self.srv6 = await websockets.serve(self._handler, "::1", port, **kw)
            except OSError:
                self.srv6 = None
            self.url = "wss://%s:%d/realtime" % (TLS_HOST, port)
        else:
            self.url = "ws://127.0.0.1:%d/realtime" % port
        return self

    def _select(self, offered, supported):
        if self.select:
            self.ctx.log(self.name, "send", "handshake", "101 selecting subprotocol %s" % self.select)
            return self.select
        return SUBPROTOCOL if SUBPROTOCOL in offered else None

    async def _process_request(self, path, headers):
        offered = ",".join(headers.get_all("Sec-WebSocket-Protocol"))
        token, form, problem = handshake_token(path, headers)
        self.attempts.append({"t": now(), "path": path, "protocols": offered, "token": token,
                              "token_form": form, "token_problem": problem})
        shown = "" if form is None else " token(%s): %s" % (form, problem or token)
        self.ctx.log(self.name, "recv", "handshake", "GET %s Sec-WebSocket-Protocol: %s%s" % (
            path, offered or "-", shown))
        refusal = self.refuse.pop(0) if self.refuse else self.refuse_all
        if refusal is None:
            return None
        if not isinstance(refusal, tuple):
            refusal = (refusal,)
        status, hdrs, body = (tuple(refusal) + ([], b"refused by the client kit\n"))[:3]
        self.ctx.log(self.name, "send", "refuse", "HTTP %d %s" % (status, hdrs))
        return http.HTTPStatus(status), list(hdrs), body

    async def _handler(self, ws, path):
        c = Conn(self, ws, len(self.all_conns) + 1)
        self.all_conns.append(c)
        await self.conns.put(c)
        try:
            await ws.wait_closed()
        finally:
            c.closed_at = c.closed_at or now()

    async def accept(self, timeout=5.0, what="a connection"):
        try:
            return await asyncio.wait_for(self.conns.get(), timeout)
        except asyncio.TimeoutError:
            raise Failure("%s: the client made no %s within %.1fs" % (self.name, what, timeout))

    async def next_attempt(self, after_n, timeout):
        """Waits until more than after_n handshake attempts were seen; returns
        the new attempt or None."""
        end = now() + timeout
        while len(self.attempts) <= after_n:
            if now() >= end:
                return None
            await asyncio.sleep(0.01)
        return self.attempts[after_n]

    def gaps(self, since=None):
        ts_ = [a["t"] for a in self.attempts]
        return [b - a for a, b in zip(ts_, ts_[1:])]

    async def stop(self):
        if self.srv6:
            self.srv6.close()
        if self.srv:
            self.srv.close()
            for c in self.all_conns:
                try:
                    c.ws.transport.abort()
                except Exception:
                    pass
            try:
                await asyncio.wait_for(self.srv.wait_closed(), 2)
            except Exception:
                pass


class TlsProbe:
    """A server whose certificate the client must refuse (client.md
    CLI-004, TST-069): it presents `context`'s certificate on
    wss://localhost:PORT (127.0.0.1, and ::1 when that port is free) and
    records, per TCP connection, the outcome of the TLS handshake and every
    byte the client sends after it (an HTTP upgrade, or anything else). It
    never answers: a client that completes the handshake and sends
    application data has already failed."""

    def __init__(self, ctx, name, context):
        self.ctx, self.name, self.context = ctx, name, context
        self.conns = []          # {"t", "n", "tls", "data"}
        self.transports = []
        self.srvs = []
        self.url = None

    async def start(self):
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(lambda: _ProbeProtocol(self), "127.0.0.1", 0)
        self.srvs.append(srv)
        port = srv.sockets[0].getsockname()[1]
        try:
            self.srvs.append(await loop.create_server(lambda: _ProbeProtocol(self), "::1", port))
        except OSError:
            pass
        self.url = "wss://%s:%d/realtime" % (TLS_HOST, port)
        return self

    def _accepted(self, transport):
        rec = {"t": now(), "n": len(self.conns) + 1, "tls": "pending", "data": b""}
        self.conns.append(rec)
        self.transports.append(transport)
        peer = transport.get_extra_info("peername")
        self.ctx.log("%s#%d" % (self.name, rec["n"]), "recv", "tcp", "TCP connection from %s" % (peer,))
        asyncio.ensure_future(self._handshake(transport, rec))

    async def _handshake(self, transport, rec):
        name = "%s#%d" % (self.name, rec["n"])
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, _ProbeData(self, rec), self.context, server_side=True, ssl_handshake_timeout=10)
        except (OSError, ConnectionError, asyncio.TimeoutError, ssl.SSLError) as e:
            rec["tls"] = "failed: %s" % (str(e) or type(e).__name__)
            self.ctx.log(name, "recv", "tls", "TLS handshake did not complete (the client refused?): %s" %
                         rec["tls"][8:])
            transport.abort()
            return
        except Exception as e:  # a closed loop at the end of the scenario
            rec["tls"] = "failed: %s: %s" % (type(e).__name__, e)
            return
        rec["tls"] = "completed"
        self.transports.append(tls)
        self.ctx.log(name, "recv", "tls", "TLS handshake completed (the client may still refuse the "
                     "certificate and close without sending)")

    def received(self):
        """The connections on which the client sent application data."""
        return [c for c in self.conns if c["data"]]

    def describe(self):
        return "; ".join("#%d TLS %s%s" % (c["n"], c["tls"], ", %d bytes of data" % len(c["data"]) if c["data"] else "")
                         for c in self.conns) or "no TCP connection"

    async def stop(self):
        for srv in self.srvs:
            srv.close()
        for t in self.transports:
            try:
                t.abort()
            except Exception:
                pass
        for srv in self.srvs:
            try:
                await asyncio.wait_for(srv.wait_closed(), 2)
            except Exception:
                pass


class _ProbeProtocol(asyncio.Protocol):
    """The TCP side of a TlsProbe connection: reading stays paused until
    start_tls takes the connection (no ClientHello byte is lost)."""

    def __init__(self, probe):
        self.probe = probe

    def connection_made(self, transport):
        transport.pause_reading()
        self.probe._accepted(transport)

    def data_received(self, data):   # not reached: start_tls replaces this protocol
        pass


class _ProbeData(asyncio.Protocol):
    """The application side of a TlsProbe connection: the bytes the client
    sends over TLS (it should send none)."""

    def __init__(self, probe, rec):
        self.probe, self.rec = probe, rec

    def data_received(self, data):
        first = not self.rec["data"]
        self.rec["data"] += data
        if first:
            self.probe.ctx.log("%s#%d" % (self.probe.name, self.rec["n"]), "recv", "data",
                               data[:400].decode("latin-1"))


# ---------------------------------------------------------------------------
# The adapter (spec/testing.md TST-060..TST-079)
# ---------------------------------------------------------------------------

class Adapter:
    def __init__(self, ctx, cmd, name):
        self.ctx, self.cmd, self.name = ctx, cmd, name
        self.events = []
        self.proc = None
        self.stderr_tail = []
        self._new = asyncio.Event()

    async def start(self):
        self.proc = await asyncio.create_subprocess_shell(
            self.cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=1 << 20)
        self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._err())]

    async def _read(self):
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                ev = json.loads(text)
                if not isinstance(ev, dict) or not isinstance(ev.get("event"), str):
                    raise ValueError
            except ValueError:
                self.ctx.contract.append("%s: stdout line is not an event (TST-062): %s" % (self.name, text[:200]))
                continue
            ev["_t"] = now()
            ev["_used"] = False
            self.events.append(ev)
            self.ctx.log(self.name, "recv", "event", json.dumps({k: v for k, v in ev.items()
                                                                  if not k.startswith("_")})[:400])
            self._new.set()
        self._new.set()

    async def _err(self):
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                break
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())
            del self.stderr_tail[:-20]

    async def send(self, **cmd):
        self.ctx.log(self.name, "send", "cmd", json.dumps(cmd)[:400])
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise Failure("%s: the adapter exited (status %s)%s" % (self.name, self.proc.returncode, self._stderr()))

    def _stderr(self):
        return ("; stderr: " + " | ".join(self.stderr_tail[-3:])) if self.stderr_tail else ""

    def _match(self, ev, kind, match):
        return ev["event"] == kind and all(ev.get(k) == v for k, v in match.items())

    def find(self, kind, **match):
        return [e for e in self.events if self._match(e, kind, match)]

    async def expect(self, kind, timeout=5.0, **match):
        """The first not yet consumed event of this kind matching match."""
        end = now() + timeout
        while True:
            for e in self.events:
                if not e["_used"] and self._match(e, kind, match):
                    e["_used"] = True
                    return e
            left = end - now()
            if left <= 0:
                dead = ""
                if self.proc.returncode is not None:
                    dead = " (the adapter exited with status %s%s)" % (self.proc.returncode, self._stderr())
                raise Failure("%s: no '%s' event %s within %.1fs%s" % (
                    self.name, kind, json.dumps(match) if match else "", timeout, dead))
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), min(left, 0.2))
            except asyncio.TimeoutError:
                pass

    def alive(self):
        return self.proc.returncode is None

    async def stop(self):
        if self.proc is None:
            return
        if self.proc.returncode is None:
            try:
                self.proc.stdin.write(b'{"cmd":"close"}\n')
                self.proc.stdin.close()
            except Exception:
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), 1.5)
            except asyncio.TimeoutError:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await self.proc.wait()
        for t in self._tasks:
            t.cancel()


# ---------------------------------------------------------------------------
# Scenarios and their context
# ---------------------------------------------------------------------------

class Ctx:
    def __init__(self, scenario, client_cmd, tls=None):
        self.scenario, self.client_cmd, self.tls = scenario, client_cmd, tls
        self.t0 = now()
        self.wire = []
        self.violations = []   # invalid client frames (CLI-002/003)
        self.contract = []     # adapter contract breaches (TST-06x)
        self.servers, self.adapters = [], []

    def log(self, conn, dir_, kind, text):
        text = text if isinstance(text, str) else repr(text)
        self.wire.append({"t": round(now() - self.t0, 3), "conn": conn, "dir": dir_, "kind": kind,
                          "size": len(text), "text": text[:400]})
        del self.wire[:-WIRE_MAX]

    async def server(self, name="srv"):
        s = await Server(self, name).start()
        self.servers.append(s)
        return s

    async def probe(self, kind, name="probe"):
        """A TlsProbe presenting one of the run's bad certificates
        (Tls.bad: untrusted_ca, wrong_host); TLS mode only."""
        if not self.tls:
            raise CannotRun("a certificate check needs TLS mode (--tls)")
        p = await TlsProbe(self, name, self.tls.bad[kind]).start()
        self.servers.append(p)
        return p

    async def client(self, server=None, name="client", connect=True, token=None, tokens=None):
        """Starts an adapter; with a server, tells it to connect (with `ca`
        in TLS mode, and `token` / `tokens` when given: TST-061)."""
        a = Adapter(self, self.client_cmd, name)
        self.adapters.append(a)
        await a.start()
        if connect and server is not None:
            cmd = {"url": server.url}
            if self.tls:
                cmd["ca"] = self.tls.ca
            if token is not None:
                cmd["token"] = token
            if tokens is not None:
                cmd["tokens"] = list(tokens)
            await a.send(cmd="connect", **cmd)
        return a

    async def setup(self, name="srv", token=None, tokens=None):
        """A server, a client connected to it, and the first connection."""
        s = await self.server(name)
        c = await self.client(s, token=token, tokens=tokens)
        conn = await s.accept(10.0, "first connection")
        await c.expect("open", 5.0)
        return s, c, conn

    async def close_all(self):
        for a in self.adapters:
            await a.stop()
        for s in self.servers:
            await s.stop()


class Scenario:
    def __init__(self, name, reqs, fn, timeout, tags=(), no_tls=None, tls_only=None):
        self.name, self.reqs, self.fn, self.timeout = name, list(reqs), fn, timeout
        self.tags = list(tags)
        self.no_tls = no_tls      # None, or why the scenario does not run over TLS
        self.tls_only = tls_only  # None, or why the scenario runs over TLS only

    def excluded(self, tls):
        """Why the scenario is not run in this mode (None: it runs)."""
        if tls and self.no_tls:
            return "not run over TLS: " + self.no_tls
        if not tls and self.tls_only:
            return "run over TLS only (--tls): " + self.tls_only
        return None

    @property
    def doc(self):
        # read late: generated scenarios set their __doc__ after decoration
        return " ".join((self.fn.__doc__ or "").split())

    def label(self):
        """The tags shown by --list: `core` (in the TLS core set), `no-tls`
        (excluded from TLS mode) and `tls-only` (excluded from plain mode),
        each with its reason."""
        out = list(self.tags)
        if self.no_tls:
            out.append("no-tls")
        if self.tls_only:
            out.append("tls-only")
        return " ".join(out) or "-"


SCENARIOS = {}
TAGS = ("core",)


def scenario(*reqs, name=None, timeout=30.0, tags="", no_tls=None, tls_only=None):
    """Registers a scenario. tags: a space-separated string (`core`: part of
    the set run over TLS by `--tls --only core`); no_tls: why the scenario
    cannot mean the same over TLS (it is then skipped in TLS mode); tls_only:
    why it means something over TLS only (it is then skipped in plain mode).
    Skipped scenarios are reported `not-requested` with the reason."""
    def deco(fn):
        n = name or fn.__name__
        assert n not in SCENARIOS, n
        assert not (no_tls and tls_only), n
        t = tags.split()
        assert set(t) <= set(TAGS), t
        SCENARIOS[n] = Scenario(n, reqs, fn, timeout, t, no_tls, tls_only)
        return fn
    return deco


def select(names):
    """Scenarios chosen by name, by CLI id or by tag (`core`, `no-tls`,
    `tls-only`); all when names is empty."""
    return [sc for sc in SCENARIOS.values()
            if not names or sc.name in names or set(sc.reqs) & set(names) or set(sc.label().split()) & set(names)]


def level_of(spec, ids):
    levels = [spec[i].level for i in ids if i in spec]
    for lvl in reqmod.LEVELS:
        if lvl in levels:
            return lvl
    return "MUST"


async def run_one(sc, client_cmd, spec, strict, sem, tls=None):
    async with sem:
        ctx = Ctx(sc, client_cmd, tls)
        t0 = now()
        outcome, reason = "passed", ""
        why_not = sc.excluded(tls)    # TST-069: not-requested in this mode, with the reason
        excluded = why_not is not None
        try:
            if excluded:
                raise CannotRun(why_not)
            await asyncio.wait_for(sc.fn(ctx), sc.timeout)
            if ctx.contract:
                raise Failure("adapter contract: " + "; ".join(ctx.contract[:3]))
        except Failure as e:
            outcome, reason = "failed", str(e)
        except CannotRun as e:
            outcome, reason = "skipped", str(e)
        except asyncio.TimeoutError:
            outcome, reason = "failed", "scenario did not finish within %.0fs" % sc.timeout
        except Exception as e:  # a kit bug must not read as a pass
            outcome, reason = "failed", "kit error: %s: %s" % (type(e).__name__, e)
        finally:
            try:
                await asyncio.wait_for(ctx.close_all(), 10)
            except Exception:
                pass
        level = level_of(spec, sc.reqs)
        return {"nodeid": ("client-tls::" if tls else "client::") + sc.name, "name": sc.name,
                "module": "scenarios.py", "transport": "wss" if tls else "ws",
                "requirements": sorted(sc.reqs), "level": level,
                "verdict": reqmod.verdict(level, outcome, strict, excluded), "phase": "call",
                "reason": reason[:1000],
                "duration": round(now() - t0, 3), "wire": ctx.wire}


async def run_many(jobs_list, jobs=10):
    """jobs_list: [(scenario, client_cmd, spec, strict[, tls])] -> results in
    order; tls is a Tls (the scenario runs over wss://) or None."""
    sem = asyncio.Semaphore(jobs)
    # The long scenarios (backoff growth to the cap, jitter, stall) start
    # first: the run then lasts about as long as the longest of them.
    order = sorted(range(len(jobs_list)), key=lambda i: -jobs_list[i][0].timeout)
    tasks = {}
    for i in order:
        j = jobs_list[i]
        tasks[i] = asyncio.ensure_future(run_one(j[0], j[1], j[2], j[3], sem, j[4] if len(j) > 4 else None))
    await asyncio.gather(*tasks.values())
    return [tasks[i].result() for i in range(len(jobs_list))]


# ---------------------------------------------------------------------------
# Reports (same shapes as the server suite: spec/testing.md TST-050)
# ---------------------------------------------------------------------------

VERDICTS = ("pass", "fail", "warn", "info", "skip", "not-requested")


def summary(results):
    out = {k: 0 for k in VERDICTS}
    for r in results:
        out[r["verdict"]] = out.get(r["verdict"], 0) + 1
    return out


def write_reports(d, results, client_cmd, strict, transport="ws"):
    os.makedirs(d, exist_ok=True)
    s = summary(results)
    idx = {"schema": "matchwire-conformance-report/1", "kind": "client",
           "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "testee": {"url": None, "url2": None, "redis": None, "clientCmd": client_cmd,
                      "transport": transport},
           "profiles": ["client"], "strict": bool(strict), "seed": 0, "summary": s,
           "verdict": "fail" if s["fail"] else "pass", "tests": results}
    with open(os.path.join(d, "report.json"), "w", encoding="utf-8") as f:
        json.dump(idx, f, indent=1)
    with open(os.path.join(d, "report.html"), "w", encoding="utf-8") as f:
        f.write(render_html(idx))
    with open(os.path.join(d, "report.xml"), "w", encoding="utf-8") as f:
        f.write(render_junit(idx))


def render_junit(idx):
    e = lambda s: html.escape(str(s), quote=True)  # noqa: E731
    tests = idx["tests"]
    fails = sum(1 for t in tests if t["verdict"] == "fail")
    skips = sum(1 for t in tests if t["verdict"] in ("warn", "info", "skip"))
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<testsuites><testsuite name="matchwire-client" tests="%d" failures="%d" skipped="%d" time="%.3f">'
           % (len(tests), fails, skips, sum(t["duration"] for t in tests))]
    for t in tests:
        out.append('<testcase classname="client.scenarios" name="%s" time="%.3f">' % (e(t["name"]), t["duration"]))
        wire = "\n".join("%8.3f %-10s %-5s %-9s %s" % (w["t"], w["conn"], w["dir"], w["kind"], w["text"])
                         for w in t["wire"])
        if t["verdict"] == "fail":
            out.append('<failure message="%s">%s</failure>' % (e(t["reason"][:300]), e(wire)))
        elif t["verdict"] in ("warn", "info", "skip"):
            out.append('<skipped message="%s %s: %s"/>' % (t["level"], t["verdict"], e(t["reason"][:300])))
        out.append('<properties><property name="requirements" value="%s"/><property name="level" value="%s"/>'
                   '</properties></testcase>' % (" ".join(t["requirements"]), t["level"]))
    out.append("</testsuite></testsuites>\n")
    return "\n".join(out)


def render_html(idx):
    e = html.escape
    color = {"pass": "#cfc", "fail": "#f99", "warn": "#fd8", "info": "#def", "skip": "#eee"}
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>Matchwire client conformance</title>",
           "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}"
           "td,th{border:1px solid #aaa;padding:3px 6px;vertical-align:top}"
           "pre{background:#f6f6f6;padding:6px;white-space:pre-wrap;font-size:12px}</style></head><body>",
           "<h1>Matchwire client conformance: %s</h1>" % e(idx["verdict"].upper()),
           "<p>client %s; transport %s; strict %s; generated %s</p>" % (
               e(str(idx["testee"]["clientCmd"])), e(idx["testee"].get("transport", "ws")), idx["strict"],
               e(idx["generated"])),
           "<table><tr>" + "".join("<th>%s</th>" % k for k in idx["summary"]) + "</tr><tr>" +
           "".join("<td>%d</td>" % v for v in idx["summary"].values()) + "</tr></table>",
           "<h2>Scenarios</h2><table><tr><th>scenario</th><th>requirements</th><th>level</th>"
           "<th>verdict</th><th>seconds</th><th>reason</th></tr>"]
    for i, t in enumerate(idx["tests"]):
        name = "<a href='#t%d'>%s</a>" % (i, e(t["name"])) if t["verdict"] != "pass" else e(t["name"])
        out.append("<tr style='background:%s'><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.2f</td>"
                   "<td>%s</td></tr>" % (color.get(t["verdict"], "#fff"), name, e(" ".join(t["requirements"])),
                                         t["level"], t["verdict"], t["duration"], e(t["reason"][:300])))
    out.append("</table><h2>Failures and warnings: wire logs</h2>")
    for i, t in enumerate(idx["tests"]):
        if t["verdict"] == "pass":
            continue
        out.append("<h3 id='t%d'>%s (%s, %s)</h3><p>%s</p><pre>" % (i, e(t["name"]), t["level"], t["verdict"],
                                                                   e(t["reason"])))
        for w in t["wire"]:
            out.append(e("%8.3f %-10s %-5s %-9s %s\n" % (w["t"], w["conn"], w["dir"], w["kind"], w["text"])))
        out.append("</pre>")
    out.append("</body></html>")
    return "".join(out)


def client_requirements(spec):
    return {i: r for i, r in spec.items() if i.startswith("CLI-")}


def coverage():
    """{requirement id: [scenario names]} (the matrix, and the server
    suite's traceability check through reqs.py)."""
    out = {}
    for sc in SCENARIOS.values():
        for i in sc.reqs:
            out.setdefault(i, []).append(sc.name)
    return out
