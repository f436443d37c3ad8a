#!/usr/bin/env python3
"""What TLS costs the reference server, plain vs TLS, on this machine: the
figures of reference/README.md ("TLS: cost"). A measurement, not a test (it
asserts nothing but that the connections work).

For each mode it starts its own server (a fresh process, so the RSS delta is
the connections' own), then:

- handshakes: N sequential connections, each TCP connect (+ TLS handshake)
  + WebSocket upgrade + close; the client's wall time per handshake (p50,
  p90) and the server's CPU time per handshake (utime + stime of
  /proc/PID/stat over the run, divided by N: what the server spends, the
  Python client's own cost excluded);
- memory: M idle WebSockets held open; the server's RSS (VmRSS) before and
  after, per connection (after a ping on each, so every connection has
  read and written once).

Usage: tls_measure.py SERVER [--handshakes N] [--idle M]
The test certificate comes from conformance/testcert.py (EC P-256, as a
modern deployment would use)."""
import argparse
import base64
import os
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "conformance"))
import testcert  # noqa: E402
from mwtest import free_port, start_server  # noqa: E402

UPGRADE = ("GET /realtime HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: matchwire.v1\r\n\r\n")
PING = b'{"type":"ping","v":1,"id":"m","data":{}}'


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def masked(payload):
    key = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def connect(port, ctx):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
    s.sendall((UPGRADE % base64.b64encode(os.urandom(16)).decode()).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        buf += chunk
    if not buf.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("handshake answered %r" % buf[:40])
    return s


def measure(binary, mode, certs, n_hs, n_idle):
    port = free_port()
    tls = ["--tls-cert", certs["cert"], "--tls-key", certs["key"]] if mode == "tls" else []
    proc = start_server(binary, port, "--max-connections", str(n_idle + 100), "--idle-timeout", "3600",
                        "--log-level", "1", *tls)
    ctx = ssl.create_default_context(cafile=certs["ca"]) if mode == "tls" else None
    try:
        connect(port, ctx).close()  # warm up (first TLS context use)
        times = []
        c0 = cpu_s(proc.pid)
        for _ in range(n_hs):
            t0 = time.perf_counter()
            s = connect(port, ctx)
            times.append(time.perf_counter() - t0)
            s.close()
        cpu = cpu_s(proc.pid) - c0
        time.sleep(0.5)
        r0 = rss_kb(proc.pid)
        held = []
        for _ in range(n_idle):
            s = connect(port, ctx)
            s.sendall(masked(PING))
            held.append(s)
        for s in held:
            got = b""
            while b"pong" not in got:
                got += s.recv(4096)
        time.sleep(0.5)
        r1 = rss_kb(proc.pid)
        for s in held:
            s.close()
        times.sort()
        return {"mode": mode, "hs_p50_ms": 1000 * statistics.median(times),
                "hs_p90_ms": 1000 * times[int(0.9 * len(times))],
                "server_cpu_ms_per_hs": 1000 * cpu / n_hs,
                "rss_before_kb": r0, "rss_after_kb": r1, "kb_per_conn": (r1 - r0) / n_idle}
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("--handshakes", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=2000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mw-tls-measure-")
    try:
        certs = testcert.make(tmp)
        with open("/proc/loadavg") as f:
            print("load average before: %s" % f.read().split()[:3])
        for mode in ("plain", "tls"):
            r = measure(a.server, mode, certs, a.handshakes, a.idle)
            print("%-5s handshake p50 %.2f ms p90 %.2f ms (client wall, %d sequential); server CPU "
                  "%.3f ms per handshake; RSS %d -> %d KB with %d idle WebSockets: %.1f KB each" % (
                      mode, r["hs_p50_ms"], r["hs_p90_ms"], a.handshakes, r["server_cpu_ms_per_hs"],
                      r["rss_before_kb"], r["rss_after_kb"], a.idle, r["kb_per_conn"]))
        with open("/proc/loadavg") as f:
            print("load average after: %s" % f.read().split()[:3])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
