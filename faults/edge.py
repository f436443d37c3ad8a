"""Edge scenarios of the fault suite, over raw sockets: pipelined HTTP
against every role, slowloris, and a fragment flood.

  pipelining   each pattern (GET/POST/DELETE in one write, bodies split
               across writes, keep-alive) against an `all` (memory), an `api`
               and a `worker` instance (Redis): afterwards, with the
               connection still open, /healthz answers 200 within 1 s and
               the process's CPU over 1 s is < 50 %. A process that fails is
               killed and restarted, so each pattern is judged on its own.
  slowloris    1,000 connections: half send a partial request header and
               then one more header line every 2 s, half send nothing. Meanwhile
               a new WebSocket client completes its handshake (101) and gets
               its `pong` within 1 s, and /healthz answers within 1 s.
  fragments    N WebSockets each send the first fragment (60,000 bytes, FIN
               clear) of a text message and then nothing: the server's RSS
               may grow by at most the stated bound over the same N idle
               WebSockets; a new client still works.

Auth on (run.py --auth): every server gets the secret and service token
files; the HTTP API requests of the pipelining patterns carry the service
token (`/healthz` none), plus one pattern whose first request has none (401,
then closed); every WebSocket these scenarios open (probes, the fragment
flood) carries a fresh player token, and a probe also checks that a
handshake without one is refused 401. Rows are named `<scenario>/auth`.
"""

import select
import socket
import struct
import threading
import time

from harness import (Proc, Redis, RunDir, Sampler, cpu_percent, free_port, handshake_status, rss_mb, server_argv,
                     upgrade_request)
from scenarios import Result, finish

BODY = b'{"queue":"q","playerId":"a1"}'
assert len(BODY) == 29
GET = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def patterns(auth=None):
    """name -> list of writes; None between writes means "wait for a
    response first". With auth (an auth.Auth), the HTTP API requests carry
    the service token (AUTH-070), and one more pattern sends a POST without
    it first (401, AUTH-072: the server closes without reading the body)."""
    cred = auth.service_header() if auth is not None else b""
    post = (b"POST /v1/tickets HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cred + b"Content-Type: application/json\r\n"
            b"Content-Length: 29\r\n\r\n" + BODY)
    post_head = post[:-29]
    gett = b"GET /v1/tickets/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cred + b"\r\n"
    delete = (b"DELETE /v1/tickets/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cred
              + b"\r\n")
    p = {
        "GET+POST": [GET + post],
        "POST+POST": [post + post],
        "POST+DELETE": [post + delete],
        "POST+GET": [post + GET],
        "DELETE+POST": [delete + post],
        "GET+GET+GET": [GET + gett + GET],
        "body-split": [post_head + BODY[:10], BODY[10:] + GET + post[:40], post[40:]],
        "head-body-split": [post_head, BODY + post + GET],
        "keep-alive": [GET, None, post, None, delete, None, post + GET],
    }
    if auth is not None:
        p["unauth-POST+POST"] = [post.replace(cred, b"") + post]
    return p


PATTERNS = patterns()
SHORT_PATTERNS = ["GET+POST", "POST+POST", "DELETE+POST", "head-body-split", "keep-alive"]
AUTH_PATTERNS = ["unauth-POST+POST"]    # added with auth on, in both suites

PING = b'{"type":"ping","v":1,"id":"p","data":{}}'


def frame(payload, opcode=1, fin=True):
    """A client frame, masked with the key 0 (so the payload goes as is)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


def readable(s, seconds):
    """poll(), not select(): the flood scenarios hold descriptors past 1,024."""
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(p.poll(max(0, int(seconds * 1000))))


def read_some(s, seconds, until=None):
    """Whatever s sends within `seconds` (or until `until` is in it)."""
    buf = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not readable(s, end - time.monotonic()):
            break
        try:
            d = s.recv(65536)
        except OSError:
            break
        if not d:
            break
        buf += d
        if until is not None and until in buf:
            break
    return buf


PROBES = [0]


def ws_probe(port, timeout=3.0, auth=None):
    """Seconds for a new WebSocket client: connect, handshake (101), ping ->
    pong. (None, why) when it did not complete within timeout. With auth (an
    auth.Auth) the client presents a fresh player token, and first a
    handshake without one must be refused 401 within 1 s (not counted in
    the seconds)."""
    if auth is not None:
        st = handshake_status(port, None, 1.0)
        if st != 401:
            return None, "a handshake without a token answered %s within 1 s (want 401)" % st
    PROBES[0] += 1
    token = auth.token("probe-%d" % PROBES[0]) if auth is not None else None
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return None, "connect: %s" % e
    try:
        s.sendall(upgrade_request(token))
        head = read_some(s, timeout, b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            return None, "handshake: %r" % head[:60]
        hs = time.monotonic() - t0
        s.sendall(frame(PING))
        rest = head.split(b"\r\n\r\n", 1)[1]
        left = timeout - (time.monotonic() - t0)
        rest += read_some(s, max(0.0, left), b'"pong"')
        if b'"pong"' not in rest:
            return None, "no pong within %.0f s (handshake %.2f s)" % (timeout, hs)
        return time.monotonic() - t0, "handshake %.3f s" % hs
    finally:
        s.close()


# ---------------------------------------------------------------------------
# Pipelining
# ---------------------------------------------------------------------------

def send_pattern(port, writes):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    got = b""
    for w in writes:
        if w is None:
            got += read_some(s, 1.0, b"\r\n\r\n")
            continue
        try:
            s.sendall(w)
        except OSError:
            break
        time.sleep(0.05)
    got += read_some(s, 1.0)
    return s, got


def pipelining(ctx):
    auth = ctx.auth_for(False)
    sfx = "/auth" if auth is not None else ""
    pats = patterns(auth)
    names = list(ctx.patterns) + (AUTH_PATTERNS if auth is not None else [])
    rd = RunDir(ctx.root, "pipelining" + sfx.replace("/", "-"))
    sampler = Sampler()
    redis = None
    procs = {}
    results = []
    try:
        redis = Redis(rd.path, "everysec")
        url = redis.url()
        for role, channel in (("all", "memory"), ("api", "redis"), ("worker", "redis")):
            port = free_port()
            procs[role] = Proc(role, server_argv(ctx.server, port, role, channel, url if channel == "redis" else None,
                                                 auth=auth), rd.file("%s.log" % role), port)
            sampler.watch(procs[role])
        sampler.start()
        for p in procs.values():
            if p.wait_healthy(15) is None:
                raise RuntimeError("%s not healthy at start" % p.name)
        for i, name in enumerate(names):
            res = Result("pipelining:" + name + sfx, 1)
            worst = 0.0
            for role, p in procs.items():
                s, got = send_pattern(p.port, pats[name])
                try:
                    st, body, secs = p.healthz(1.0)
                    cpu = cpu_percent(p.pid, 1.0) if p.alive() else None
                    res.max_cpu = max(res.max_cpu, cpu or 0.0)
                    res.max_rss = max(res.max_rss, rss_mb(p.pid) or 0.0)
                    bad = []
                    if st != 200:
                        bad.append("/healthz %s within 1 s" % st)
                    else:
                        worst = max(worst, secs)
                    if cpu is not None and cpu >= 50:
                        bad.append("%.0f%% CPU over 1 s" % cpu)
                    if not got.startswith(b"HTTP/1."):
                        bad.append("no response to the first request")
                finally:
                    s.close()
                if not bad:
                    st2, _, _ = p.healthz(1.0)
                    if st2 != 200:
                        bad.append("/healthz %s after the connection closed" % st2)
                if bad:
                    res.fail("%s: %s" % (role, ", ".join(bad)))
                    with open(rd.file("%s.log" % role), "ab") as f:
                        f.write(("=== pattern %s failed: %s; got %r\n" % (name, bad, got[:300])).encode())
                    p.kill9()   # judged stuck already; SIGTERM is checked at the end
                    p.start()
                    if p.wait_healthy(15) is None:
                        res.fail("%s: not healthy after restart" % role)
            results.append(res)
        end = Result("pipelining:SIGTERM" + sfx, 1)
        for role, p in procs.items():
            if p.sigterm(3.0) is None:
                end.fail("%s ignored SIGTERM for 3 s" % role)
        results.append(end)
    except Exception as e:  # noqa: BLE001
        r = Result("pipelining" + sfx, 0)
        r.fail("harness error: %r" % e)
        results.append(r)
    finally:
        for p in procs.values():
            p.kill9()
        if redis is not None:
            redis.kill9()
        sampler.stop()
        agg = Result("pipelining" + sfx, 0)
        agg.notes = [n for r in results for n in r.notes]
        finish(rd, agg)
        for r in results:
            if r.notes:
                r.logdir = agg.logdir
    return results


# ---------------------------------------------------------------------------
# Slowloris
# ---------------------------------------------------------------------------

def open_many(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    # wait until connected (writable)
    end = time.monotonic() + 10
    pending = {s.fileno(): s for s in socks}
    p = select.poll()
    for fd in pending:
        p.register(fd, select.POLLOUT)
    while pending and time.monotonic() < end:
        for fd, _ev in p.poll(500):
            if fd in pending:
                p.unregister(fd)
                del pending[fd]
    return socks


def slowloris(ctx):
    n, hold = ctx.p("slowloris_conns"), ctx.p("slowloris_hold")
    auth = ctx.auth_for(False)
    sfx = "/auth" if auth is not None else ""
    res = Result("slowloris-%d%s" % (n, sfx), 1)
    rd = RunDir(ctx.root, "slowloris" + sfx.replace("/", "-"))
    port = free_port()
    p = Proc("all", server_argv(ctx.server, port, "all", "memory", auth=auth), rd.file("server.log"), port)
    socks = []
    stop = threading.Event()
    try:
        if p.wait_healthy(15) is None:
            raise RuntimeError("server not healthy at start")
        socks = open_many(port, n)
        half = socks[: n // 2]
        for s in half:
            try:
                s.send(b"GET /realtime HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                pass

        reopened = [0]

        def drip():
            # One more header line every 2 s on the trickling half; a
            # connection the server dropped (MSG-121 allows it) is replaced,
            # so that 1,000 stay open.
            k = 0
            while not stop.wait(2.0):
                k += 1
                for i, s in enumerate(socks):
                    trickle = i < n // 2
                    if not _still_open(s):
                        s.close()
                        try:
                            s = socks[i] = socket.create_connection(("127.0.0.1", port), timeout=2)
                            s.setblocking(False)
                            reopened[0] += 1
                            if trickle:
                                s.send(b"GET /realtime HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                        except OSError:
                            continue
                    if trickle:
                        try:
                            s.send(b"X-Slow-%d: a\r\n" % k)
                        except OSError:
                            pass
        th = threading.Thread(target=drip, daemon=True)
        th.start()
        time.sleep(0.5)
        worst_ws = worst_hz = 0.0
        probes = 0
        t_end = time.monotonic() + hold
        while time.monotonic() < t_end:
            secs, why = ws_probe(port, 3.0, auth)
            probes += 1
            if secs is None:
                res.fail("probe %d: new WebSocket client: %s" % (probes, why))
                worst_ws = float("inf")
            else:
                worst_ws = max(worst_ws, secs)
            st, _, hz = p.healthz(3.0)
            if st != 200:
                res.fail("probe %d: /healthz %s" % (probes, st))
                worst_hz = float("inf")
            else:
                worst_hz = max(worst_hz, hz)
            c = cpu_percent(p.pid, 0.5)
            res.max_cpu = max(res.max_cpu, c or 0.0)
            res.max_rss = max(res.max_rss, rss_mb(p.pid) or 0.0)
        if worst_ws > 1.0 and worst_ws != float("inf"):
            res.fail("a new WebSocket client took %.2f s (bound 1 s) with %d slowloris connections" % (worst_ws, n))
        if worst_hz > 1.0 and worst_hz != float("inf"):
            res.fail("/healthz took %.2f s (bound 1 s)" % worst_hz)
        res.recovery = None if worst_ws == float("inf") else worst_ws
        alive = sum(1 for s in socks if _still_open(s))
        res.info.append("%d probes; slowest handshake+pong %.3f s, /healthz %.3f s; %d of %d slow connections "
                        "open after %.0f s (%d dropped by the server and replaced)"
                        % (probes, worst_ws, worst_hz, alive, n, hold, reopened[0]))
        if p.sigterm(3.0) is None:
            res.fail("ignored SIGTERM for 3 s")
    except Exception as e:  # noqa: BLE001
        res.fail("harness error: %r" % e)
    finally:
        stop.set()
        for s in socks:
            s.close()
        p.kill9()
        finish(rd, res)
    return [res]


def _still_open(s):
    try:
        if readable(s, 0):
            return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        return True
    except BlockingIOError:
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# Fragment flood
# ---------------------------------------------------------------------------

def ws_many(port, n, batch=50, auth=None):
    """n WebSockets by raw handshakes, in batches; returns the open sockets.
    With auth, each presents a fresh token of its own player."""
    out = []
    for i in range(0, n, batch):
        socks = []
        for j in range(min(batch, n - i)):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(upgrade_request(auth.token("frag-%d" % (i + j)) if auth is not None else None))
            socks.append(s)
        for s in socks:
            head = read_some(s, 5.0, b"\r\n\r\n")
            if head.startswith(b"HTTP/1.1 101"):
                out.append(s)
            else:
                s.close()
    return out


def fragments(ctx):
    n, bound = ctx.p("fragment_conns"), ctx.frag_bound
    auth = ctx.auth_for(False)
    sfx = "/auth" if auth is not None else ""
    res = Result("fragments-%d%s" % (n, sfx), 1)
    rd = RunDir(ctx.root, "fragments" + sfx.replace("/", "-"))
    port = free_port()
    p = Proc("all", server_argv(ctx.server, port, "all", "memory", auth=auth), rd.file("server.log"), port)
    socks = []
    try:
        if p.wait_healthy(15) is None:
            raise RuntimeError("server not healthy at start")
        base = rss_mb(p.pid)
        socks = ws_many(port, n, auth=auth)
        if len(socks) < n:
            res.fail("only %d of %d WebSockets opened" % (len(socks), n))
        time.sleep(1.0)
        idle = rss_mb(p.pid)
        chunk = frame(b"a" * 60000, opcode=1, fin=False)
        sent = 0
        for s in socks:
            try:
                s.setblocking(True)
                s.settimeout(5)
                s.sendall(chunk)
                sent += 1
            except OSError:
                pass
        peak = idle
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            peak = max(peak, rss_mb(p.pid) or 0.0)
            time.sleep(0.1)
        grew = peak - idle
        res.max_rss = peak
        res.info.append("RSS %.1f MB at start, %.1f MB with %d idle WebSockets, %.1f MB with %d fragments "
                        "(%.1f MB of text held by clients); growth %.1f MB, bound %.0f MB"
                        % (base, idle, len(socks), peak, sent, sent * 60000 / 1048576.0, grew, bound))
        if grew > bound:
            res.fail("unfinished fragments grew RSS by %.1f MB over %d idle connections (bound %.0f MB)"
                     % (grew, len(socks), bound))
        secs, why = ws_probe(port, 3.0, auth)
        if secs is None or secs > 1.0:
            res.fail("new client during the flood: %s" % why)
        res.recovery = secs
        st, _, _ = p.healthz(1.0)
        if st != 200:
            res.fail("/healthz %s during the flood" % st)
        res.max_cpu = cpu_percent(p.pid, 1.0) or 0.0
        if res.max_cpu >= 50:
            res.fail("%.0f%% CPU over 1 s while holding fragments" % res.max_cpu)
        if p.sigterm(3.0) is None:
            res.fail("ignored SIGTERM for 3 s")
    except Exception as e:  # noqa: BLE001
        res.fail("harness error: %r" % e)
    finally:
        for s in socks:
            s.close()
        p.kill9()
        finish(rd, res)
    return [res]
