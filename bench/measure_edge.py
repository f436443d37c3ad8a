#!/usr/bin/env python3
"""Edge measurements for reference/README.md (not a pass/fail test).

  measure_edge.py SERVER latency [RUNS]   connect+enqueue -> match.assigned for
                                          2 clients, RUNS times (20): median, p90, max
  measure_edge.py SERVER idle [N]         server VmRSS before and with N (1000)
                                          idle WebSocket connections

Starts its own server (in memory) on a free port and stops it with SIGTERM.
"""
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference",
                                "tests"))
from mwtest import free_port  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def one_player(url, queue, player):
    async with websockets.connect(url, subprotocols=["matchwire.v1"]) as ws:
        await ws.send(json.dumps({"type": "enqueue", "v": 1,
                                  "data": {"queue": queue, "playerId": player}}))
        while True:
            env = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if env["type"] == "match.assigned":
                return
            if env["type"] == "error":
                raise RuntimeError(env)


async def latency(url, runs):
    out = []
    for i in range(runs):
        t0 = time.perf_counter()
        await asyncio.gather(one_player(url, f"lat{i}", "a"), one_player(url, f"lat{i}", "b"))
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    print(f"connect+enqueue+assigned, 2 clients, {runs} runs: "
          f"median {statistics.median(out):.2f} ms, p90 {out[int(0.9 * (runs - 1))]:.2f} ms, "
          f"max {out[-1]:.2f} ms")


async def idle(url, n, pid):
    before = rss_kib(pid)
    conns = []
    for i in range(0, n, 100):
        conns += await asyncio.gather(*[websockets.connect(url, subprotocols=["matchwire.v1"],
                                                           ping_interval=None)
                                        for _ in range(min(100, n - i))])
    await asyncio.sleep(1.0)
    during = rss_kib(pid)
    print(f"server VmRSS: {before} KiB before, {during} KiB with {len(conns)} idle WebSockets "
          f"({(during - before) * 1024 / max(1, len(conns)):.0f} bytes per connection)")
    await asyncio.gather(*[c.close() for c in conns])


def main():
    binary, mode = sys.argv[1], sys.argv[2]
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else (20 if mode == "latency" else 1000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))
    port = free_port()
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    proc.stdout.readline()
    url = f"ws://127.0.0.1:{port}/realtime"
    try:
        if mode == "latency":
            asyncio.run(latency(url, arg))
        else:
            asyncio.run(idle(url, arg, proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)


if __name__ == "__main__":
    main()
