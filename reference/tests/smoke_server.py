#!/usr/bin/env python3
"""Server smoke test: starts the built matchwire-server on a free port (in
memory), then checks the one thing everything else builds on: two WebSocket
clients enqueue in the same queue and both get the same match.assigned. Also
checks the HTTP view of the ticket and that a SIGTERM closes an open client
with 1001 (MSG-099) and exits 0 within 2 s. Then, on a second instance with
a large outbound bound, a client that stops reading for 1 s while its
replies pile up (more than the socket holds: lws keeps the rest of a frame
and the server stops reading that client meanwhile) and pings meanwhile:
once it reads again every reply arrives whole and in order, the pong as a
frame of its own, nothing dropped, the connection not dropped as stalled.

Usage: smoke_server.py PATH/TO/matchwire-server
"""
import asyncio
import json
import signal
import socket
import sys
import threading
import time
import urllib.request

import websockets

from mwtest import free_port
from mwtest import start_server as start

TIMEOUT = 5.0






async def enqueue_and_wait(url, player):
    async with websockets.connect(url, subprotocols=["matchwire.v1"]) as ws:
        assert ws.subprotocol == "matchwire.v1", ws.subprotocol
        await ws.send(json.dumps({"type": "enqueue", "v": 1, "id": "e1",
                                  "data": {"queue": "smoke", "playerId": player}}))
        seen = []
        while True:
            env = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            seen.append(env)
            if env["type"] == "error":
                raise AssertionError(f"{player}: error {env}")
            if env["type"] == "match.assigned":
                return seen


def http_json(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
        return r.status, json.loads(r.read())


async def run(port, proc):
    url = f"ws://127.0.0.1:{port}/realtime"
    a, b = await asyncio.gather(enqueue_and_wait(url, "alice"), enqueue_and_wait(url, "bob"))
    for seen, me in ((a, "alice"), (b, "bob")):
        assert seen[0]["type"] == "enqueued" and seen[0]["id"] == "e1", seen
        assigned = seen[-1]
        assert assigned["data"]["ticketId"] == seen[0]["data"]["ticketId"], assigned
        players = [p["playerId"] for p in assigned["data"]["assignment"]["players"]]
        assert sorted(players) == ["alice", "bob"], players
    ma, mb = (s[-1]["data"]["assignment"]["matchId"] for s in (a, b))
    assert ma == mb, (ma, mb)
    print(f"match {ma}: both clients got match.assigned")

    tid = a[0]["data"]["ticketId"]
    status, res = http_json(f"http://127.0.0.1:{port}/v1/tickets/{tid}")
    assert status == 200 and res["state"] == "assigned", res
    # Every message counted once (issue 13, bug 2: the session and the
    # gateway both counted them, so three pings read as six).
    async with websockets.connect(url, subprotocols=["matchwire.v1"]) as ws:
        in0 = metric(port, "matchwire_messages_in_total")
        out0 = metric(port, "matchwire_messages_out_total")
        for i in range(3):
            await ws.send(json.dumps({"type": "ping", "v": 1, "id": f"p{i}", "data": {}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "pong"
        din = metric(port, "matchwire_messages_in_total") - in0
        dout = metric(port, "matchwire_messages_out_total") - out0
        assert (din, dout) == (3, 3), f"3 pings counted as {din} in, {dout} out"
    status, health = http_json(f"http://127.0.0.1:{port}/healthz")
    assert status == 200 and health["status"] == "ok", health

    # Shutdown (MSG-099): an open client sees 1001, the process exits 0
    # within 2 s. The conformance suite checks 1001 for any implementation
    # through its --shutdown-url/--shutdown-cmd hook (spec/testing.md TST-016).
    async with websockets.connect(url, subprotocols=["matchwire.v1"]) as ws:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            raise AssertionError("expected a close")
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
        assert code == 1001, code
    rc = proc.wait(timeout=TIMEOUT)
    took = time.monotonic() - t0
    assert rc == 0, rc
    assert took < 2.0, took
    print(f"shutdown: close 1001, exit 0 after {took:.3f} s")


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    raise AssertionError(f"no {name} in /metrics")


def raw_ws(port, rcvbuf):
    """A plain-socket WebSocket with a tiny receive buffer (set before
    connect, so the window stays small)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(("GET /realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: matchwire.v1\r\n\r\n")
                 .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "handshake: connection closed"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def client_frame(text):
    """A masked client text frame (mask 0: the payload goes as is)."""
    data = text.encode()
    n = len(data)
    hdr = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126, n >> 8, n & 0xFF])
    return hdr + b"\0\0\0\0" + data


def paused_reader(binary):
    count = 3000  # ~400 KB of replies: far more than the 64 KiB send buffer and a 2 KiB window
    port = free_port()
    proc = start(binary, port, "--outbound-max-messages", "4096",
                 "--outbound-max-bytes", "4194304", "--rate", "100000",
                 "--rate-burst", "100000", "--log-level", "1")
    try:
        sock = raw_ws(port, 2048)
        ids = [f"r{i:05d}" + "x" * 58 for i in range(count)]
        data = b"".join(client_frame(json.dumps({"type": "ping", "v": 1, "id": i, "data": {}}))
                        for i in ids)
        # A ping behind the requests: its pong (lws answers it) must come as a
        # frame of its own, never inside a text frame lws holds part of.
        data += bytes([0x89, 0x82]) + b"\0\0\0\0" + b"pp"
        # The server stops reading us while its socket is full, so sending
        # blocks until we read: send from a thread.
        sender = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
        sender.start()
        time.sleep(1.0)  # not reading (less than the gateway's 3 s stall limit)
        waited = metric(port, "matchwire_outbound_partial_writes_total") + \
            metric(port, "matchwire_outbound_queued_total")
        assert waited > 0, "the socket never filled: the paused reader tested nothing"
        buf, got, pongs = bytearray(), [], []
        while len(got) < count or not pongs:
            chunk = sock.recv(1 << 16)
            assert chunk, f"closed after {len(got)} replies"
            buf += chunk
            while len(buf) >= 2:
                assert buf[0] in (0x81, 0x8A), f"reply {len(got)}: not a text or pong frame: {bytes(buf[:8])!r}"
                n, off = buf[1] & 0x7F, 2
                assert not buf[1] & 0x80, "server frames are not masked"
                if n == 126:
                    if len(buf) < 4:
                        break
                    n, off = buf[2] << 8 | buf[3], 4
                if len(buf) < off + n:
                    break
                payload = bytes(buf[off:off + n])
                opcode = buf[0] & 0x0F
                del buf[:off + n]
                if opcode == 0xA:
                    pongs.append(payload)
                    continue
                env = json.loads(payload)
                assert env["type"] == "pong", env
                got.append(env["id"])
        sender.join(TIMEOUT)
        assert got == ids, "replies out of order or altered"
        assert pongs == [b"pp"], pongs
        assert not buf, f"{len(buf)} unexpected bytes after the replies"
        assert metric(port, "matchwire_outbound_drops_total") == 0
        assert metric(port, "matchwire_outbound_stalled_total") == 0
        queued = metric(port, "matchwire_outbound_queued_total")
        partial = metric(port, "matchwire_outbound_partial_writes_total")
        sock.close()
        print(f"paused reader: {count} replies whole and in order, pong apart; {partial} partial"
              f" writes, {queued} messages waited in the queue")
    finally:
        proc.kill()
        proc.wait()


def main():
    binary = sys.argv[1]
    port = free_port()
    proc = start(binary, port)
    try:
        asyncio.run(run(port, proc))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    paused_reader(binary)
    print("smoke: ok")


if __name__ == "__main__":
    main()
