#!/usr/bin/python3
"""redis_steps: what each step of the Redis layout (spec/channel.md section 5)
costs redis-server, in instructions (callgrind: deterministic, so it can be
measured on a busy machine), per ticket.

One redis-server runs under `valgrind --tool=callgrind --instr-atstart=no`;
a client (redis-py, pipelines of 32) sends each variant N times after 16
warm-up calls, with the counters zeroed before and dumped after each variant
(callgrind_control -z / -d). Variants: the create and assign scripts of this
tree (reference/src/lua/), one per call and batched, the same create as a
Redis 7 function (FCALL), the create's writes as MULTI/EXEC and as plain
pipelined commands, the hand-off read with and without NOACK, and single
commands for scale. With --old-lua DIR, the scripts of another tree (e.g. a
`git worktree` of an older commit) are measured too, labelled "old".

  bench/redis_steps.py [-n 800] [--old-lua /tmp/mw-before/reference/src/lua]

Needs redis-server, valgrind (callgrind_control) and redis-py. Prints one
line per variant. Every process it starts is stopped before it exits.
"""

import argparse
import glob
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "..", "reference", "src", "lua")
COMMON = ["t:", "1000000", "600000", "origin0"]  # prefix, maxlen, retention, origin
ENV = json.dumps({"type": "match.assigned", "v": 1, "data": {
    "ticketId": "x" * 36, "version": 2, "assignment": {
        "matchId": "m" * 36, "connection": "10.0.0.9:7777",
        "players": [{"playerId": "b1-123-4567"}, {"playerId": "b1-124-4568"}],
        "assignedAt": "2026-12-03T15:00:00.000Z"}}})


def script(d, name):
    """A script's text as the server sends it: the prelude in front when the
    script asks for it (lua/embed.cmake)."""
    body = open(os.path.join(d, name + ".lua")).read()
    if body.startswith("-- @prelude"):
        return open(os.path.join(d, "prelude.lua")).read() + "\n" + body
    return body


def now():
    return str(int(time.time() * 1000))


def ids(n):
    return [str(uuid.uuid4()) for _ in range(n)]


class Bench:
    def __init__(self, n):
        self.n = n
        self.tmp = tempfile.mkdtemp(prefix="redis-steps.")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.out = os.path.join(self.tmp, "cg")
        self.p = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + self.out + ".%p",
             "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.r = redis.Redis(port=port)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.r.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.p.poll() is not None:
                    self.p.kill()
                    self.p.wait()
                    raise SystemExit("redis-steps: redis-server under callgrind did not start")
                time.sleep(0.1)
        self.raw = redis.Redis(port=port)
        self.raw.response_callbacks = {}  # replies as sent (QUEUED inside MULTI, ...)
        self.ctl("-i", "on")

    def ctl(self, *a):
        subprocess.run(["callgrind_control"] + list(a) + [str(self.p.pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)

    def total(self):
        time.sleep(0.5)
        fs = sorted(glob.glob("%s.%d.*" % (self.out, self.p.pid)), key=lambda f: int(f.rsplit(".", 1)[1]))
        m = re.search(r"^totals: (\d+)", open(fs[-1]).read(), re.M)
        return int(m.group(1))

    def measure(self, label, ops, per):
        """ops: callables that queue one call on a pipeline; per: tickets per call."""
        pl = self.raw.pipeline(transaction=False)
        for o in ops[:16]:
            o(pl)
        pl.execute()
        self.ctl("-z")
        pl = self.raw.pipeline(transaction=False)
        for i, o in enumerate(ops[16:]):
            o(pl)
            if i % 32 == 31:
                pl.execute()
        pl.execute()
        self.ctl("-d")
        n = (len(ops) - 16) * per
        print("%-58s %8.0f instructions per ticket (%d)" % (label, self.total() / n, n), flush=True)

    def close(self):
        self.p.terminate()
        self.p.wait()
        for f in glob.glob(os.path.join(self.tmp, "*")):
            os.unlink(f)
        os.rmdir(self.tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=800, help="calls per variant (default 800, at least 400)")
    ap.add_argument("--old-lua", help="the lua/ directory of another tree, measured as \"old\"")
    a = ap.parse_args()
    if a.n < 400:
        ap.error("-n must be at least 400 (the 16-per-call variants need 16 warm-up calls and more)")
    b = Bench(a.n)
    try:
        return run(a, b)
    finally:
        b.close()


def run(a, b):
    n, r, raw = a.n, b.r, b.raw
    trees = [("new", LUA)] + ([("old", a.old_lua)] if a.old_lua else [])
    sha = {}
    for tag, d in trees:
        for s in ("create", "assign"):
            sha[tag, s] = r.script_load(script(d, s))
    sha["empty"] = r.script_load("return 1")
    sha["prelude"] = r.script_load(open(os.path.join(LUA, "prelude.lua")).read() + "\nreturn 1")

    def new_args(i):
        t = now()
        return [i, "q", "pl-" + i[:8], "", "0", "", t, str(int(t) + 600000), "0", "", "1"]

    def create(batch, fcall=False):
        args = [x for i in batch for x in new_args(i)]
        head = ["FCALL", "mwsteps_create"] if fcall else ["EVALSHA", sha["new", "create"]]
        return lambda pl: pl.execute_command(*head, 0, *COMMON, now(), "1200000", "1000000", str(len(batch)),
                                             *args)

    def create_old(i):
        t = now()
        return lambda pl: pl.execute_command("EVALSHA", sha["old", "create"], 0, *COMMON, t, i, "q",
                                             "pl-" + i[:8], "", "0", "", str(int(t) + 600000), "0", "", "1",
                                             "1200000", "1000000")

    def writes(i, multi):
        x, k = new_args(i), "t:mw:ticket:" + i

        def f(pl):
            if multi:
                pl.execute_command("MULTI")
            pl.execute_command("HSET", k, "id", i, "queue", "q", "playerId", x[2], "region", "", "state", "queued",
                               "version", "1", "createdAt", x[6], "expiresAt", x[7], "endedAt", "0", "watchers",
                               "1", "graceAt", "0")
            pl.execute_command("PEXPIRE", k, "1200000")
            pl.execute_command("ZADD", "t:mw:queue", x[6], i)
            pl.execute_command("ZADD", "t:mw:deadlines", x[7], i)
            pl.execute_command("XADD", "t:mw:tickets", "MAXLEN", "~", "1000000", "*", "op", "queued", "id", i,
                               "state", "queued", "queue", "q", "playerId", x[2], "region", "", "version", "1",
                               "createdAt", x[6], "expiresAt", x[7])
            if multi:
                pl.execute_command("EXEC")
        return f

    def queued(k):
        out = ids(k)
        pl = raw.pipeline(transaction=False)
        for j in range(0, k, 16):
            create(out[j:j + 16])(pl)
        pl.execute()
        return out

    def assign(tag, pairs):
        def f(pl):
            args = [str(len(pairs))]
            for x, y in pairs:
                args += ["2", str(uuid.uuid4()), now(), x, "2", ENV, y, "2", ENV]
            pl.execute_command("EVALSHA", sha[tag, "assign"], 0, *COMMON, now(), *args)
        return f

    b.measure('EVALSHA "return 1", 20 arguments', [lambda pl: pl.execute_command(
        "EVALSHA", sha["empty"], 0, *(["x" * 10] * 20)) for _ in range(n)], 1)
    b.measure("EVALSHA prelude + return 1, 20 arguments", [lambda pl: pl.execute_command(
        "EVALSHA", sha["prelude"], 0, *COMMON, now(), *(["x" * 10] * 15)) for _ in range(n)], 1)
    if a.old_lua:
        b.measure("create: old script, 1 per call", [create_old(i) for i in ids(n)], 1)
    b.measure("create: 1 per call", [create([i]) for i in ids(n)], 1)
    b.measure("create: 4 per call", [create(ids(4)) for _ in range(n // 4)], 4)
    b.measure("create: 16 per call", [create(ids(16)) for _ in range(n // 16)], 16)
    lib = ("#!lua name=mwsteps\nlocal function create(KEYS, ARGV)\nlocal unpack = unpack or table.unpack\n"
           + script(LUA, "create") + "\nend\nredis.register_function('mwsteps_create', create)\n")
    try:
        r.function_load(lib, replace=True)
        b.measure("create as a Redis 7 function (FCALL), 1 per call", [create([i], True) for i in ids(n)], 1)
        b.measure("create as a Redis 7 function (FCALL), 16 per call",
                  [create(ids(16), True) for _ in range(n // 16)], 16)
    except redis.exceptions.ResponseError as e:
        print("FCALL not measured: %s" % e)
    b.measure("create's 5 writes as MULTI/EXEC (no checks)", [writes(i, True) for i in ids(n)], 1)
    b.measure("create's 5 writes pipelined (no checks)", [writes(i, False) for i in ids(n)], 1)
    for tag, per in [(t, p) for t, _ in trees for p in (1, 8)]:
        t = queued(2 * n + 64)
        pairs = [(t[j], t[j + 1]) for j in range(0, len(t), 2)]
        ops = [assign(tag, pairs[j:j + per]) for j in range(0, len(pairs) - per + 1, per)][:n // per + 16]
        b.measure("assign: %s%d match%s per call, per ticket" % ("old script, " if tag == "old" else "", per,
                                                                "es" if per > 1 else ""), ops, 2 * per)
    for g in ("g1", "g2", "g3"):
        r.xgroup_create("t:mw:tickets", g, "0")

    def read(g, count, noack):
        extra = ["NOACK"] if noack else []
        return lambda pl: pl.execute_command("XREADGROUP", "GROUP", g, "c", "COUNT", count, *extra,
                                             "STREAMS", "t:mw:tickets", ">")
    b.measure("hand-off read: XREADGROUP COUNT 1 (pending list kept)", [read("g1", 1, False)
                                                                        for _ in range(n)], 1)
    b.measure("hand-off read: XREADGROUP COUNT 1 NOACK", [read("g2", 1, True) for _ in range(n)], 1)
    b.measure("hand-off read: XREADGROUP COUNT 8 NOACK", [read("g3", 8, True) for _ in range(n // 8)], 8)
    b.measure("PING", [lambda pl: pl.execute_command("PING") for _ in range(n)], 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
