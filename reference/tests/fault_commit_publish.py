#!/usr/bin/env python3
"""A worker killed between commit and publish loses no push (spec/channel.md
CHN-020, CHN-062).

Starts its own redis-server, one api gateway and one worker built with
failpoints (matchwire-server-failpoints) armed with `worker_after_commit`:
the worker kills itself with SIGKILL as soon as its first match is committed
in Redis, before it does anything else. Two clients on the gateway enqueue in
one queue; with the commit and the notice one atomic step, both still get
match.assigned, with no worker running and no re-watch. (When the worker
published in a step of its own, the notices were lost: the gateway's
subscription never dropped, so nothing made it re-read.)

Usage: fault_commit_publish.py PATH/TO/matchwire-server-failpoints
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import redis
import websockets

TIMEOUT = 5.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, port, *extra, env=None):
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    line = proc.stdout.readline()  # the "listening on" banner: the port is bound
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc


def wait_ready(port, proc):
    """Waits until the instance answers /healthz 200 (Redis connected)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as res:
                if res.status == 200:
                    return
        except Exception:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"instance on {port} exited: {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"instance on {port} never became ready")


async def enqueue_and_wait(url, player, queue):
    async with websockets.connect(url, subprotocols=["matchwire.v1"]) as ws:
        await ws.send(json.dumps({"type": "enqueue", "v": 1, "id": "e1",
                                  "data": {"queue": queue, "playerId": player,
                                           "idempotencyKey": "k-" + player}}))
        ticket = None
        while True:
            env = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if env["type"] == "error":
                raise AssertionError(f"{player}: error {env}")
            if env["type"] == "enqueued":
                ticket = env["data"]["ticketId"]
            if env["type"] == "match.assigned":
                assert env["data"]["ticketId"] == ticket, env
                return env


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="mw-fault-cp-")
    rport, gport, wport = free_port(), free_port(), free_port()
    procs = []
    rds = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", tmp],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(rds)
    try:
        r = redis.Redis(port=rport, socket_timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        common = ["--channel", "redis", "--redis", f"redis://127.0.0.1:{rport}",
                  "--log-level", "1"]
        gw = start_server(binary, gport, "--role", "api", *common)
        procs.append(gw)
        env = dict(os.environ, MW_FAILPOINTS="worker_after_commit")
        worker = start_server(binary, wport, "--role", "worker", *common, env=env)
        procs.append(worker)
        wait_ready(gport, gw)
        wait_ready(wport, worker)

        url = f"ws://127.0.0.1:{gport}/realtime"
        queue = "fp%d" % os.getpid()
        async def both():
            return await asyncio.wait_for(asyncio.gather(
                enqueue_and_wait(url, "alice", queue), enqueue_and_wait(url, "bob", queue)),
                3 * TIMEOUT)
        a, b = asyncio.run(both())
        # The worker really died at the failpoint, after the commit.
        rc = worker.wait(timeout=TIMEOUT)
        assert rc == -signal.SIGKILL, f"worker exit status {rc}, expected SIGKILL"
        ma, mb = (e["data"]["assignment"]["matchId"] for e in (a, b))
        assert ma == mb, (ma, mb)
        for e in (a, b):
            state = r.hget("mw:ticket:" + e["data"]["ticketId"], "state")
            assert state == b"assigned", state
        print(f"worker killed after commit (status {rc}); both clients got match {ma}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
