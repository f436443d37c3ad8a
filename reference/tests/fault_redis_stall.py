#!/usr/bin/env python3
"""A frozen Redis is a bounded, retryable fault (issue 11 item 3; spec
messages.md MSG-125 backend timeout, MSG-126 ping order, MSG-127 1013 not
1008, MSG-128 /healthz; channel.md CHN-104 command timeout, CHN-105 probes,
CHN-107 readiness).

Starts its own redis-server, one api gateway and one worker (default
--redis-timeout, 2,000 ms), then freezes Redis with SIGSTOP for 5 s while:
  - a POST /v1/tickets sent during the freeze is answered 503 `unavailable`
    within the timeout plus slack (it used to wait out the whole freeze);
  - /healthz of both instances turns 503 within the timeout plus slack and
    200 again soon after SIGCONT (it said ok throughout);
  - two WebSocket clients each send an `enqueue` that waits on the frozen
    store and then `ping` at 20/s and at 40/s (both under the 50/s rate
    limit): neither is ever closed (the 40/s one used to be closed 1008,
    "too many pending requests", a terminal code, once 128 pings queued
    behind the enqueue), every ping gets its pong in order (MSG-013), the
    enqueue gets `error` `unavailable` (retryable), and no pong waits longer
    than the timeout plus slack.
Prints the figures (time to 503, time to ready after SIGCONT, worst pong).

Usage: fault_redis_stall.py PATH/TO/matchwire-server
"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import redis
import websockets

from mwtest import free_port, healthz, start_server, wait_status

TIMEOUT_MS = 2000  # the server's default --redis-timeout
SLACK = 1.5  # s: watchdog tick, loop turn, a loaded machine (the freeze is 5 s)
FREEZE = 5.0  # s










def post_ticket(port, player):
    body = json.dumps({"queue": "stall", "playerId": player}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/tickets", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=FREEZE + 5) as res:
            return res.status, json.loads(res.read()), time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), time.monotonic() - t0


async def pinger(url, rate, duration, report):
    """Enqueue (waits on the frozen store), then ping at `rate` per second."""
    async with websockets.connect(url, subprotocols=["matchwire.v1"]) as ws:
        await ws.send(json.dumps({"type": "enqueue", "v": 1, "id": "e",
                                  "data": {"queue": "stall-ws", "playerId": f"pinger{rate}"}}))
        sent = {}
        replies = []
        close = None

        async def reader():
            nonlocal close
            try:
                async for raw in ws:
                    env = json.loads(raw)
                    if "id" in env:
                        replies.append((env, time.monotonic()))
            except websockets.ConnectionClosed as e:
                close = (e.code, e.reason)

        rt = asyncio.create_task(reader())
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < duration and close is None:
            n += 1
            sent[f"p{n}"] = time.monotonic()
            try:
                await ws.send(json.dumps({"type": "ping", "v": 1, "id": f"p{n}", "data": {}}))
            except websockets.ConnectionClosed:
                break
            await asyncio.sleep(1.0 / rate)
        # Every ping answered (the store is back by now), then close.
        deadline = time.monotonic() + TIMEOUT_MS / 1000 + 5
        while len(replies) < n + 1 and close is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if close is None and ws.close_code is not None:
            close = (ws.close_code, ws.close_reason)
        report[rate] = {"sent": n, "replies": replies, "sent_at": sent, "close": close}
        rt.cancel()


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="mw-fault-stall-")
    rport, gport, wport = free_port(), free_port(), free_port()
    procs = []
    rds = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", tmp],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(rds)
    frozen = False
    try:
        r = redis.Redis(port=rport, socket_timeout=5)
        deadline = time.monotonic() + 5
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
        worker = start_server(binary, wport, "--role", "worker", *common)
        procs.append(worker)
        wait_status(gport, 200, 5)
        wait_status(wport, 200, 5)
        url = f"ws://127.0.0.1:{gport}/realtime"

        report = {}
        post = {}
        first_503 = {}

        def poll_health(port):
            t0 = time.monotonic()
            while time.monotonic() - t0 < FREEZE:
                if healthz(port, timeout=0.5) == 503 and port not in first_503:
                    first_503[port] = time.monotonic() - t_stop
                time.sleep(0.05)

        async def scenario():
            loop = asyncio.get_running_loop()
            tasks = [asyncio.create_task(pinger(url, rate, FREEZE, report)) for rate in (20, 40)]
            await asyncio.sleep(0.2)  # both enqueues are waiting on the frozen store
            post_f = loop.run_in_executor(None, lambda: post.update(r=post_ticket(gport, "h1")))
            hz = [loop.run_in_executor(None, poll_health, p) for p in (gport, wport)]
            await asyncio.gather(post_f, *hz)
            await asyncio.gather(*tasks)

        async def freeze_then_thaw():
            nonlocal frozen
            await asyncio.sleep(FREEZE)
            os.kill(rds.pid, signal.SIGCONT)
            frozen = False

        async def run_all():
            await asyncio.gather(scenario(), freeze_then_thaw())

        os.kill(rds.pid, signal.SIGSTOP)
        frozen = True
        t_stop = time.monotonic()
        asyncio.run(run_all())
        t_cont = t_stop + FREEZE
        for p in (gport, wport):
            wait_status(p, 200, 10)
        ready_after = time.monotonic() - t_cont

        failures = []
        bound = TIMEOUT_MS / 1000 + SLACK
        status, body, took = post["r"]
        print(f"POST during the freeze: {status} {body.get('code')} after {took * 1000:.0f} ms")
        if status != 503 or body.get("code") != "unavailable" or body.get("retryable") is not True:
            failures.append(f"POST answered {status} {body}, expected 503 unavailable")
        if took > bound:
            failures.append(f"POST took {took:.2f} s, bound {bound:.1f} s")
        for name, p in (("api", gport), ("worker", wport)):
            t = first_503.get(p)
            print(f"/healthz {name}: first 503 {t * 1000:.0f} ms after SIGSTOP" if t is not None
                  else f"/healthz {name}: never 503 during the freeze")
            if t is None or t > bound + 1.0:  # idle connections: probed at half the timeout
                failures.append(f"/healthz {name} not 503 in time ({t})")
        print(f"/healthz 200 on both {ready_after * 1000:.0f} ms after SIGCONT")
        for rate, rep in sorted(report.items()):
            ids = [e.get("id") for e, _ in rep["replies"]]
            want = ["e"] + [f"p{i}" for i in range(1, rep["sent"] + 1)]
            enq = next((e for e, _ in rep["replies"] if e.get("id") == "e"), None)
            worst = max((t - rep["sent_at"][e["id"]] for e, t in rep["replies"]
                         if e.get("id", "").startswith("p")), default=0.0)
            print(f"pinger {rate}/s: {rep['sent']} pings, {len(ids) - 1} pongs, close "
                  f"{rep['close']}, enqueue -> {enq and enq['type']}"
                  f" {enq and enq.get('data', {}).get('code')}, worst pong {worst * 1000:.0f} ms")
            if rep["close"] is not None:
                failures.append(f"pinger {rate}/s closed {rep['close']}")
            if ids != want[:len(ids)] or len(ids) != len(want):
                failures.append(f"pinger {rate}/s: replies {len(ids)} of {len(want)}, in order: "
                                f"{ids == want[:len(ids)]}")
            if not enq or enq["type"] != "error" or enq["data"].get("code") != "unavailable":
                failures.append(f"pinger {rate}/s: enqueue answered {enq}")
            if worst > bound:
                failures.append(f"pinger {rate}/s: a pong took {worst:.2f} s, bound {bound:.1f} s")
        for p in (gw, worker):
            if p.poll() is not None:
                failures.append(f"a server exited: {p.returncode}")
        if failures:
            print("FAILED:\n  " + "\n  ".join(failures))
            sys.exit(1)
        print("ok")
    finally:
        if frozen:
            os.kill(rds.pid, signal.SIGCONT)
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
