#!/usr/bin/env python3
"""Server smoke test: starts the built matchwire-server on a free port (in
memory), then checks the one thing everything else builds on: two WebSocket
clients enqueue in the same queue and both get the same match.assigned. Also
checks the HTTP view of the ticket and that a SIGTERM closes an open client
with 1001 (MSG-099) and exits 0 within 2 s.

Usage: smoke_server.py PATH/TO/matchwire-server
"""
import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import websockets

TIMEOUT = 5.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, port):
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()  # the "listening on" banner: the port is bound
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc


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
    print("smoke: ok")


if __name__ == "__main__":
    main()
