#!/usr/bin/env python3
"""Redis killed while matches are being written: the worker backs off,
recovers and leaves no ticket stuck (issue 11 item 2; spec/channel.md
CHN-106 backoff and retry, CHN-107 readiness).

Starts its own redis-server (AOF, appendfsync always, so acknowledged
tickets survive kill -9), one api gateway and one worker, and creates
tickets over HTTP from 8 threads as fast as the server answers (one queue,
pairs). Then, CYCLES times: Redis is frozen for 50 ms (so the commits in
flight stay in flight) and killed with SIGKILL, stays down for 1 s, and is
restarted on the same port and directory. Asserted each cycle:
  - while Redis is down the worker answers /healthz (503) and uses little
    CPU (it used to spin at 100 % in `unpark`, deaf to /healthz and SIGTERM);
  - after the restart both instances are ready again and the queue drains:
    at most one ticket (the odd one out) is left queued, within a bound;
and at the end: every acknowledged (201) ticket is assigned (or is that odd
one), no ticket is in two matches, and the worker exits 0 on SIGTERM within
2 s. Prints the figures (worker CPU while down, recovery time).

Usage: fault_redis_kill.py PATH/TO/matchwire-server
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time


from mwtest import cpu_seconds, free_port, healthz, start_redis, start_server, wait_status

CYCLES = 2
DOWN = 1.0  # s Redis stays dead
RECOVERY_BOUND = 8.0  # s from restart to a drained queue
CPU_BOUND = 0.25  # fraction of one core while Redis is down (the spin: ~100 %)
THREADS = 8














REDIS_ARGS = ("--appendonly", "yes", "--appendfsync", "always")


class Load:
    """Creates tickets over HTTP from THREADS threads until stopped."""

    def __init__(self, port):
        self.port = port
        self.acked = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(THREADS)]

    def run(self, k):
        conn = None
        n = 0
        while not self.stop.is_set():
            n += 1
            body = json.dumps({"queue": "kill", "playerId": f"t{k}-{n}"})
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("POST", "/v1/tickets", body, {"Content-Type": "application/json"})
                res = conn.getresponse()
                data = res.read()
                if res.status == 201:
                    with self.lock:
                        self.acked.append(json.loads(data)["ticketId"])
                elif res.status == 503:
                    time.sleep(0.02)
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.02)
        if conn is not None:
            conn.close()

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def queued(r):
    return r.zcard("mw:queue")


def main():
    binary = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="mw-fault-kill-")
    rport, gport, wport = free_port(), free_port(), free_port()
    procs = []
    rds, r = start_redis(rport, tmp, *REDIS_ARGS)
    load = None
    failures = []
    try:
        common = ["--channel", "redis", "--redis", f"redis://127.0.0.1:{rport}",
                  "--log-level", "0"]
        gw = start_server(binary, gport, "--role", "api", *common)
        procs.append(gw)
        worker = start_server(binary, wport, "--role", "worker", *common)
        procs.append(worker)
        wait_status(gport, 200, 5)
        wait_status(wport, 200, 5)
        load = Load(gport)
        load.start()
        for cycle in range(1, CYCLES + 1):
            time.sleep(1.5)  # under load
            before = len(load.acked)
            os.kill(rds.pid, signal.SIGSTOP)
            time.sleep(0.05)
            os.kill(rds.pid, signal.SIGKILL)
            rds.wait()
            t_kill = time.monotonic()
            time.sleep(0.3)  # the worker has seen the loss
            c0 = cpu_seconds(worker.pid)
            w0 = time.monotonic()
            answered = healthz(wport, timeout=1.0)
            time.sleep(max(0.0, DOWN - (time.monotonic() - t_kill)))
            cpu = (cpu_seconds(worker.pid) - c0) / (time.monotonic() - w0)
            print(f"cycle {cycle}: {before} acknowledged before the kill; worker while Redis "
                  f"was down: /healthz {answered}, CPU {cpu * 100:.0f} %")
            if answered != 503:
                failures.append(f"cycle {cycle}: worker /healthz answered {answered} while down")
            if cpu > CPU_BOUND:
                failures.append(f"cycle {cycle}: worker CPU {cpu * 100:.0f} % while down")
            rds, r = start_redis(rport, tmp, *REDIS_ARGS)
            t_up = time.monotonic()
            try:
                wait_status(wport, 200, RECOVERY_BOUND)
                wait_status(gport, 200, RECOVERY_BOUND)
            except AssertionError as e:
                failures.append(f"cycle {cycle}: {e}")
                break
            ready = time.monotonic() - t_up
            print(f"cycle {cycle}: both ready {ready * 1000:.0f} ms after the restart")
        load.finish()
        # The queue drains: at most the odd one out is left.
        t0 = time.monotonic()
        while queued(r) > 1 and time.monotonic() - t0 < RECOVERY_BOUND:
            time.sleep(0.05)
        left = queued(r)
        print(f"after the load: {len(load.acked)} acknowledged, {left} left queued "
              f"({(time.monotonic() - t0) * 1000:.0f} ms to drain)")
        if left > 1:
            failures.append(f"{left} tickets stuck in the queue")
        # Every acknowledged ticket: assigned (or the one left queued), in one match.
        pipe = r.pipeline()
        for tid in load.acked:
            pipe.hmget("mw:ticket:" + tid, "state", "matchId")
        states = {}
        matches = {}
        for tid, (state, mid) in zip(load.acked, pipe.execute()):
            state = (state or b"missing").decode()
            states[state] = states.get(state, 0) + 1
            if state == "assigned":
                matches.setdefault(mid, []).append(tid)
        print(f"acknowledged tickets by state: {states}")
        bad = {k: v for k, v in states.items() if k not in ("assigned", "queued")}
        if bad or states.get("queued", 0) > 1:
            failures.append(f"acknowledged tickets not assigned: {states}")
        over = [m for m, ts in matches.items() if len(ts) > 2]
        if over:
            failures.append(f"{len(over)} matches with more than 2 tickets")
        # SIGTERM honoured.
        worker.send_signal(signal.SIGTERM)
        try:
            rc = worker.wait(timeout=2.0)
            if rc != 0:
                failures.append(f"worker exit status {rc} after SIGTERM")
        except subprocess.TimeoutExpired:
            failures.append("worker ignored SIGTERM for 2 s")
        if failures:
            print("FAILED:\n  " + "\n  ".join(failures))
            sys.exit(1)
        print("ok")
    finally:
        if load is not None:
            load.finish()
        for p in procs + [rds]:
            if p.poll() is None:
                p.kill()
            p.wait()
        for f in os.listdir(tmp):
            path = os.path.join(tmp, f)
            if os.path.isdir(path):
                for g in os.listdir(path):
                    os.unlink(os.path.join(path, g))
                os.rmdir(path)
            else:
                os.unlink(path)
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
