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
import sys

import websockets

from mwtest import Procs, free_port, start_redis, start_server, wait_status

TIMEOUT = 5.0


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
    with Procs() as procs:
        rport, gport, wport = free_port(), free_port(), free_port()
        rds, r = start_redis(rport, procs.tmp, "--appendonly", "no")
        procs.add(rds)
        common = ["--channel", "redis", "--redis", f"redis://127.0.0.1:{rport}",
                  "--log-level", "1"]
        gw = procs.add(start_server(binary, gport, "--role", "api", *common))
        env = dict(os.environ, MW_FAILPOINTS="worker_after_commit")
        worker = procs.add(start_server(binary, wport, "--role", "worker", *common, env=env))
        wait_status(gport, 200, TIMEOUT, gw)
        wait_status(wport, 200, TIMEOUT, worker)

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


if __name__ == "__main__":
    main()
