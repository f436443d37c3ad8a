#!/usr/bin/env python3
"""Edge faults of the reference server, each a regression test that fails on
the code before its fix (issue 11; spec/messages.md MSG-116, MSG-117, MSG-120..MSG-123):

  pipelining   HTTP requests pipelined in one TCP write (GET/POST/DELETE in
               any order, a body split across writes, keep-alive): each
               bodyless request answered in order; a pipelined request with
               a body answered 503 `unavailable` with Connection: close, then
               EOF (MSG-116, MSG-117); never a spin: /healthz answers on a
               new connection and the process stays idle; SIGTERM honoured.
  slowloris    1,000 connections that send nothing or trickle a partial
               header: a new WebSocket handshake completes within 1 s and
               /healthz answers within 1 s; a silent connection is dropped
               after the 5 s header timeout (MSG-120, MSG-121).
  reassembly   --reassembly-budget 1 MiB: 40 connections each holding a
               60,000-byte unfinished message: those beyond the budget are
               closed 1013, counted in /metrics; the others stay open, a
               new client is served; once they are gone the budget is free
               again (MSG-122).
  drain        Redis stopped (SIGSTOP) while an enqueue waits on it, then
               SIGTERM: the enqueue is answered before the 1001 close
               (MSG-123). Needs redis-server (skipped, exit 77, without).

Usage: edge_faults.py PATH/TO/matchwire-server CASE
"""
import base64
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

from mwtest import Procs, cpu_seconds, free_port, start_redis, start_server, wait_status

TIMEOUT = 5.0
SKIP = 77


def start(binary, port, *extra):
    return start_server(binary, port, "--log-level", "1", *extra)


def stop(proc, within=2.0):
    """SIGTERM; the server must exit 0 within `within` seconds (MSG-099)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=TIMEOUT)
        raise AssertionError(f"SIGTERM not honoured within {within} s")
    assert rc == 0, f"exit status {rc}"
    return time.monotonic() - t0


def assert_idle(proc, seconds=0.5):
    """The server does not spin: it burns under 20 % of a core."""
    c0 = cpu_seconds(proc.pid)
    time.sleep(seconds)  # measuring a rate: the interval is the measurement
    used = cpu_seconds(proc.pid) - c0
    assert used < 0.2 * seconds, f"server busy: {used:.2f} s CPU in {seconds} s"


# ---- HTTP ------------------------------------------------------------------

class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def response(self):
        """(status, headers, body) of the next response; EOFError at EOF."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in
                   (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def expect_eof(self):
        while True:
            try:
                self._fill()
            except (EOFError, ConnectionResetError):
                return
            assert not self.buf.strip(), f"bytes after the last response: {self.buf[:80]!r}"

    def close(self):
        self.sock.close()


def req_get(path="/healthz"):
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def req_post(player):
    body = ('{"queue":"q","playerId":"%s"}' % player).encode()
    return (f"POST /v1/tickets HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def req_delete():
    return b"DELETE /v1/tickets/6f1c1a62-3a43-4f4e-9d49-2f3c6c1a9b10 HTTP/1.1\r\nHost: t\r\n\r\n"


EXPECT = {"g": 200, "p": 201, "d": 404}


def healthz_fresh(port, within=1.0):
    """/healthz on a new connection answers 200 within `within` seconds."""
    t0 = time.monotonic()
    c = Conn(port)
    c.sock.settimeout(within)
    try:
        c.send(req_get())
        status, _, _ = c.response()
    finally:
        c.close()
    dt = time.monotonic() - t0
    assert status == 200 and dt < within, (status, dt)
    return dt


def case_pipelining(binary):
    port = free_port()
    proc = start(binary, port)
    n = 0
    try:
        for pattern in ["gp", "pp", "gg", "pg", "ggg", "gpg", "dg", "gd", "pdg", "gdp", "pgpg"]:
            n += 1
            reqs = [{"g": req_get, "d": req_delete}[k]() if k != "p" else req_post(f"pl{n}-{i}")
                    for i, k in enumerate(pattern)]
            c = Conn(port)
            c.send(b"".join(reqs))  # one TCP write
            got = []
            for i, k in enumerate(pattern):
                status, headers, body = c.response()
                got.append(status)
                if k == "p" and i > 0:
                    # MSG-117: a pipelined request with a body (lws 4.1.6
                    # cannot read it) is refused, retryable, and the
                    # connection closes after it.
                    assert status == 503 and headers.get("connection") == "close", (pattern, got)
                    assert b'"retryable":true' in body, body
                    c.expect_eof()
                    break
                assert status == EXPECT[k], (pattern, got, body[:200])
            else:
                c.sock.settimeout(0.3)
                try:
                    extra = c.sock.recv(1)
                except socket.timeout:
                    extra = None
                assert extra is None, (pattern, "unexpected bytes", extra)
            c.close()
            healthz_fresh(port)
            print(f"pipelined {pattern}: {got}")
        # Keep-alive, one request at a time (not pipelined): all served.
        c = Conn(port)
        for i, r in enumerate([req_post("ka1"), req_get(), req_post("ka2"), req_delete(),
                               req_post("ka3")]):
            c.send(r)
            status, _, _ = c.response()
            assert status == [201, 200, 201, 404, 201][i], (i, status)
        # A pipelined POST whose headers end in a later write, then its body
        # in a third: served (lws read it from the socket, MSG-116).
        p = req_post("split")
        c.send(req_get() + p[:25])
        assert c.response()[0] == 200
        healthz_fresh(port)  # (the server is free meanwhile)
        c.send(p[25:-10])
        healthz_fresh(port)
        c.send(p[-10:])
        assert c.response()[0] == 201
        # A first POST whose body comes in three writes: served.
        c2 = Conn(port)
        p = req_post("trickle")
        for part in (p[:-20], p[-20:-10], p[-10:]):
            c2.send(part)
            healthz_fresh(port)
        assert c2.response()[0] == 201
        c.close()
        c2.close()
        print("keep-alive and split writes: served")
        assert_idle(proc)
        healthz_fresh(port)
    finally:
        if proc.poll() is None:
            print(f"SIGTERM: exit 0 in {stop(proc):.2f} s")


# ---- WebSocket ---------------------------------------------------------------

def ws_frame(opcode, payload, fin=True):
    key = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WS:
    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /realtime HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: matchwire.v1\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("no handshake response")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head[:80]

    def send_text(self, text, fin=True, opcode=0x1):
        self.sock.sendall(ws_frame(opcode, text.encode() if isinstance(text, str) else text, fin))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def frame(self):
        """(opcode, payload) of the next frame; EOFError at EOF."""
        self._need(2)
        op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return op, payload

    def close_code(self):
        """Reads until the server's close frame; returns its code (1006: EOF)."""
        try:
            while True:
                op, payload = self.frame()
                if op == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        except (EOFError, ConnectionResetError):
            return 1006

    def ping_ok(self):
        self.send_text('{"type":"ping","v":1,"id":"p","data":{}}')
        op, payload = self.frame()
        assert op == 0x1 and b'"pong"' in payload, payload[:200]


def metric(port, name):
    c = Conn(port)
    c.send(req_get("/metrics"))
    _, _, body = c.response()
    c.close()
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\d+)", body, re.M)
    return int(m.group(1)) if m else None


def dropped_within(socks, t0, limit):
    """Each socket is closed by the server before t0 + limit."""
    for s in socks:
        s.settimeout(max(0.1, t0 + limit - time.monotonic()))
        try:
            gone = s.recv(1) == b""
        except ConnectionResetError:
            gone = True
        except socket.timeout:
            gone = False
        assert gone, f"a connection without complete headers still open after {time.monotonic() - t0:.1f} s"
    return time.monotonic() - t0


def case_slowloris(binary):
    port = free_port()
    proc = start(binary, port, "--max-connections", "19000")
    socks = []
    try:
        # MSG-121 on a quiet server: one silent connection, one with a
        # partial header, nothing else happening (lws's timer used to fire
        # only with its own 30 s check: GW_LWS_TICK_US).
        t0 = time.monotonic()
        quiet = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(2)]
        quiet[1].sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        took = dropped_within(quiet, t0, 7.0)
        for s in quiet:
            s.close()
        print(f"quiet server: silent and partial connections dropped after {took:.1f} s")
        for i in range(1000):
            s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            if i % 3 == 1:
                s.sendall(b"GET /realtime HTTP/1.1\r\nHost: t\r\n")  # never finished
            socks.append(s)
        t_open = time.monotonic()
        trickle = [s for i, s in enumerate(socks) if i % 3 == 2]
        for k in range(3):
            for s in trickle:  # one more header byte each round
                s.sendall(b"GET /realtime HTTP/1.1\r\nX: "[k:k + 1])
            t0 = time.monotonic()
            ws = WS(port, timeout=1.0)
            hs = time.monotonic() - t0
            ws.ping_ok()
            ws.sock.close()
            hz = healthz_fresh(port)
            assert hs < 1.0, hs
            print(f"1,000 slowloris open: handshake {hs * 1000:.1f} ms, /healthz {hz * 1000:.1f} ms")
        # MSG-121: a connection without complete headers goes after 5 s.
        waited = dropped_within(socks[:3], t_open, 9.0)
        print(f"slowloris connections dropped after {waited:.1f} s")
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            stop(proc)


def case_reassembly(binary):
    port = free_port()
    budget = 1 << 20
    proc = start(binary, port, "--reassembly-budget", str(budget))
    held = []
    try:
        for _ in range(40):
            ws = WS(port)
            ws.send_text("x" * 60000, fin=False)  # an unfinished message
            held.append(ws)
        other = WS(port)
        other.ping_ok()  # control frames and other clients still served
        # Each connection's first fragment is answered by nothing; a
        # refused one gets a close frame. Find which were refused: a
        # finished message on a kept one gets its reply.
        codes = []
        for ws in held:
            try:
                ws.send_text(',', fin=True, opcode=0x0)  # ends "xxx...x," (not JSON)
            except OSError:
                pass  # already closed by the server: its close frame is read below
        for ws in held:
            try:
                op, payload = ws.frame()
            except (EOFError, ConnectionResetError):
                codes.append(1006)
                continue
            if op == 0x8:
                codes.append(struct.unpack("!H", payload[:2])[0])
            else:
                assert op == 0x1 and b'"bad_json"' in payload, payload[:120]
                codes.append("reply")
        refused = [c for c in codes if c != "reply"]
        kept = codes.count("reply")
        print(f"40 unfinished 60,000-byte messages, budget {budget}: {kept} kept, "
              f"{len(refused)} closed {sorted(set(refused))}")
        assert refused and set(refused) == {1013}, codes
        assert kept >= budget // 65537 - 1, kept
        n = metric(port, "matchwire_reassembly_refused_total")
        assert n == len(refused), (n, len(refused))
        assert (metric(port, 'matchwire_closes_total{code="1013"}') or 0) >= len(refused)
        for ws in held:
            ws.sock.close()
        # The budget is free again: a large fragmented message goes through.
        ws = WS(port)
        body = '{"type":"ping","v":1,"id":"big","data":{"pad":"' + "y" * 60000 + '"}}'
        ws.send_text(body[:30000], fin=False)
        ws.send_text(body[30000:], fin=True, opcode=0x0)
        op, payload = ws.frame()
        assert op == 0x1 and b'"pong"' in payload, payload[:120]
        other.ping_ok()
        print("after the holders left: a 60 KB fragmented message is served")
    finally:
        if proc.poll() is None:
            stop(proc)


def case_drain(binary):
    if not shutil.which("redis-server"):
        print("redis-server not found: skipped")
        sys.exit(SKIP)
    rport, port = free_port(), free_port()
    with Procs() as procs:
        rproc, _ = start_redis(rport, procs.tmp)
        procs.add(rproc)
        proc = procs.add(start(binary, port, "--channel", "redis", "--redis",
                               f"redis://127.0.0.1:{rport}"))
        wait_status(port, 200, TIMEOUT, proc)  # subscribed, store ready
        ws = WS(port)
        ws.ping_ok()
        rproc.send_signal(signal.SIGSTOP)  # the enqueue will wait on the store
        try:
            ws.send_text('{"type":"enqueue","v":1,"id":"e1","data":{"queue":"dr","playerId":"d1"}}')
            time.sleep(0.1)  # let it reach the frozen store (nothing to await)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)  # the gateway is draining meanwhile
        finally:
            rproc.send_signal(signal.SIGCONT)
        seen = []
        try:
            while True:
                op, payload = ws.frame()
                if op == 0x8:
                    seen.append(("close", struct.unpack("!H", payload[:2])[0]))
                    break
                seen.append(("text", payload[:80]))
        except (EOFError, ConnectionResetError):
            seen.append(("eof", None))
        print(f"in-flight enqueue at SIGTERM: {seen}")
        assert seen[-1] == ("close", 1001), seen
        assert any(k == "text" and b'"id":"e1"' in p for k, p in seen), seen
        assert proc.wait(timeout=2.0) == 0


CASES = {"pipelining": case_pipelining, "slowloris": case_slowloris,
         "reassembly": case_reassembly, "drain": case_drain}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        raise SystemExit(__doc__)
    CASES[sys.argv[2]](sys.argv[1])
    print("ok")
