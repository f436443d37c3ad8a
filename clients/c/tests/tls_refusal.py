#!/usr/bin/python3
"""The C client refuses a server certificate that does not verify (spec/client.md
CLI-004) and then stops as for 1015 (client.md 5.1), over its kit adapter:

- a certificate from another CA than the one the client trusts;
- a certificate from the trusted CA for another host name.

For each, a TLS server (Python's ssl) accepts TCP connections and counts them
and any application byte that arrives. Passes when the adapter prints
`closed` with code 1015 and `reconnect: false`, never `open`, no byte of
application data reaches the server, and no second connection is made within
3 s (a native client does not retry a certificate failure).

Usage: tls_refusal.py MWC_KIT_ADAPTER"""
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "conformance"))
import testcert  # noqa: E402


class Server:
    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.app_bytes = 0
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stop:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            conn, _ = self.sock.accept()
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        conn.settimeout(5)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
            data = tls.recv(4096)
            self.app_bytes += len(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


def check(adapter, trusted_ca, cert, key, what):
    srv = Server(cert, key)
    p = subprocess.Popen([adapter], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = "wss://localhost:%d/realtime" % srv.port
    p.stdin.write(json.dumps({"cmd": "connect", "url": url, "ca": trusted_ca}) + "\n")
    p.stdin.write(json.dumps({"cmd": "enqueue", "ref": "r1", "queue": "q", "playerId": "p1"}) + "\n")
    p.stdin.flush()
    events = []
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.1)
        if r:
            line = p.stdout.readline()
            if not line:
                break
            events.append(json.loads(line))
    srv.stop = True
    p.kill()
    p.wait()
    closed = [e for e in events if e.get("event") == "closed"]
    problems = []
    if any(e.get("event") in ("open", "enqueued", "assigned") for e in events):
        problems.append("the client reported a session over a refused certificate")
    if srv.app_bytes:
        problems.append("%d bytes of application data reached the server" % srv.app_bytes)
    if srv.connections != 1:
        problems.append("%d TCP connections in 4 s (want 1: no retry)" % srv.connections)
    if not closed or closed[0].get("code") != 1015 or closed[0].get("reconnect") is not False:
        problems.append("want closed 1015 reconnect false, got %r" % closed)
    print("%s %s: events %s" % ("ok" if not problems else "FAIL", what, events))
    for m in problems:
        print("  " + m)
    return not problems


def main():
    adapter = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        good = testcert.make(os.path.join(d, "good"))
        other = testcert.make(os.path.join(d, "other"))
        wrong = testcert.make(os.path.join(d, "good"), names=["DNS:otherhost.invalid"],
                              server="wronghost")
        ok = check(adapter, good["ca"], other["cert"], other["key"], "untrusted CA")
        ok &= check(adapter, good["ca"], wrong["cert"], wrong["key"], "wrong host name")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
