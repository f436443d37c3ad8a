#!/usr/bin/python3
"""resp_proxy: the suite's RESP-aware fault-injection TCP proxy (spec/testing.md
TST-030..TST-033). Python 3 standard library only (asyncio).

It sits between a testee and its Redis: the harness starts it before the
testee and points the testee's Redis URL at --listen (the password and the
database in the URL pass through unchanged: the proxy forwards AUTH and
SELECT like any command). It parses the commands each client sends (RESP
arrays of bulk strings, and inline commands) and the replies Redis sends
back (RESP2 and RESP3 types), so it can act on one chosen command:

  hold_reply  forward the command; keep its reply (and everything after it
              on that connection) until released: the command has run in
              Redis, the testee has not seen its result. This opens the
              window between a gateway's read and what it does next.
  hold        keep the command itself (not yet sent to Redis) until released.
  delay       like hold, released by itself after `seconds`.
  drop        close both sides of the connection at that command.

A rule matches a command by its name (`cmd`: list, case-insensitive) and
optionally a byte string that one of its arguments contains (`arg`); it
applies to the first `count` matching commands (default 1), then is spent.
Connections in subscribe mode (after SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE) are
passed through unparsed on the reply side (pushes are not replies).

Control: one JSON object per line on --control (TCP), one JSON reply line:
  {"op": "rule", "action": "hold_reply", "cmd": ["EVALSHA", "EVAL"], "arg": "<ticket id>"}
      -> {"ok": true, "rule": N}
  {"op": "wait", "rule": N, "timeout": 5}  -> {"ok": true, "matched": bool}
      (true once the rule has caught a command: for hold_reply, once the
      held reply has arrived from Redis)
  {"op": "release", "rule": N}           -> {"ok": true}   (also removes it)
  {"op": "clear"}                        -> {"ok": true}   (releases all)
  {"op": "stats"}                        -> {"ok": true, "connections": n, "commands": n}

  resp_proxy.py --listen 127.0.0.1:P --upstream 127.0.0.1:REDISPORT --control 127.0.0.1:C
prints "RESP-PROXY <listen port> <control port>" once both listen. In the
suite, conformance.resp_proxy.Control(addr) is the client of --control.
"""

import argparse
import asyncio
import json
import socket
import sys


# ---------------------------------------------------------------------------
# RESP framing
# ---------------------------------------------------------------------------

class Incomplete(Exception):
    pass


def _line(buf, pos):
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    return bytes(buf[pos:end]), end + 2


def parse_command(buf):
    """One client command at the start of buf: (args list of bytes, length)."""
    if not buf:
        raise Incomplete
    if buf[0:1] != b"*":  # inline command
        line, end = _line(buf, 0)
        return line.split(), end
    head, pos = _line(buf, 0)
    n = int(head[1:])
    args = []
    for _ in range(max(0, n)):
        h, pos = _line(buf, pos)
        if h[0:1] != b"$":
            raise ValueError("bad bulk header %r" % h)
        ln = int(h[1:])
        if len(buf) < pos + ln + 2:
            raise Incomplete
        args.append(bytes(buf[pos:pos + ln]))
        pos += ln + 2
    return args, pos


def reply_length(buf, pos=0):
    """Length of one complete reply (RESP2/RESP3) starting at pos."""
    if len(buf) <= pos:
        raise Incomplete
    t = buf[pos:pos + 1]
    head, nxt = _line(buf, pos)
    if t in (b"+", b"-", b":", b",", b"#", b"_", b"("):
        return nxt - pos
    if t in (b"$", b"=", b"!"):
        n = int(head[1:])
        if n < 0:
            return nxt - pos
        if len(buf) < nxt + n + 2:
            raise Incomplete
        return nxt + n + 2 - pos
    if t in (b"*", b"~", b">", b"%", b"|"):
        n = int(head[1:])
        if n < 0:
            return nxt - pos
        if t in (b"%", b"|"):
            n *= 2
        p = nxt
        for _ in range(n):
            p += reply_length(buf, p)
        return p - pos
    raise ValueError("unknown RESP type %r" % t)


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------

class Rule:
    def __init__(self, rid, action, cmd=None, arg=None, count=1, seconds=0.0):
        self.id, self.action = rid, action
        self.cmd = [c.upper().encode() for c in (cmd or [])]
        self.arg = arg.encode() if isinstance(arg, str) else arg
        self.left = int(count)
        self.seconds = float(seconds)
        self.matched = asyncio.Event()
        self.released = asyncio.Event()

    def matches(self, args):
        if self.left <= 0 or not args:
            return False
        if self.cmd and args[0].upper() not in self.cmd:
            return False
        if self.arg is not None and not any(self.arg in a for a in args[1:]):
            return False
        return True


class Proxy:
    def __init__(self, upstream):
        self.upstream = upstream
        self.rules = {}
        self.next_rule = 1
        self.conns = 0
        self.commands = 0

    def rule_for(self, args):
        for r in self.rules.values():
            if r.matches(args):
                r.left -= 1
                return r
        return None

    async def client(self, creader, cwriter):
        try:
            ureader, uwriter = await asyncio.open_connection(*self.upstream)
        except OSError:
            cwriter.close()
            return
        self.conns += 1
        pending = asyncio.Queue()  # per command sent: its hold_reply rule or None
        subscribed = [False]

        async def c2u():
            buf = bytearray()
            try:
                while True:
                    data = await creader.read(65536)
                    if not data:
                        break
                    buf += data
                    while buf:
                        if subscribed[0]:
                            uwriter.write(bytes(buf))
                            buf.clear()
                            break
                        try:
                            args, n = parse_command(buf)
                        except Incomplete:
                            break
                        raw = bytes(buf[:n])
                        del buf[:n]
                        self.commands += 1
                        rule = self.rule_for(args)
                        if rule is not None and rule.action in ("hold", "delay"):
                            rule.matched.set()
                            if rule.action == "hold":
                                await rule.released.wait()
                            else:
                                try:
                                    await asyncio.wait_for(rule.released.wait(), rule.seconds)
                                except asyncio.TimeoutError:
                                    pass
                        elif rule is not None and rule.action == "drop":
                            rule.matched.set()
                            return
                        name = args[0].upper() if args else b""
                        if name in (b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"):
                            subscribed[0] = True
                        await pending.put(rule if rule is not None and rule.action == "hold_reply" else None)
                        uwriter.write(raw)
                    await uwriter.drain()
            except (OSError, ValueError):
                pass
            finally:
                uwriter.close()

        async def u2c():
            buf = bytearray()
            try:
                while True:
                    data = await ureader.read(65536)
                    if not data:
                        break
                    buf += data
                    while buf:
                        if subscribed[0] and pending.empty():
                            cwriter.write(bytes(buf))
                            buf.clear()
                            break
                        try:
                            n = reply_length(buf)
                        except Incomplete:
                            break
                        raw = bytes(buf[:n])
                        del buf[:n]
                        rule = None
                        if not pending.empty():
                            rule = pending.get_nowait()
                        if rule is not None:
                            rule.matched.set()
                            await rule.released.wait()
                        cwriter.write(raw)
                    await cwriter.drain()
            except (OSError, ValueError):
                pass
            finally:
                cwriter.close()

        try:
            await asyncio.gather(c2u(), u2c())
        finally:
            self.conns -= 1

    async def control(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    req = json.loads(line)
                    rep = await self.op(req)
                except Exception as e:  # a bad request is answered, never fatal
                    rep = {"ok": False, "error": repr(e)}
                writer.write((json.dumps(rep) + "\n").encode())
                await writer.drain()
        finally:
            writer.close()

    async def op(self, req):
        op = req.get("op")
        if op == "rule":
            rid = self.next_rule
            self.next_rule += 1
            self.rules[rid] = Rule(rid, req["action"], req.get("cmd"), req.get("arg"), req.get("count", 1),
                                   req.get("seconds", 0))
            return {"ok": True, "rule": rid}
        if op == "wait":
            r = self.rules.get(req["rule"])
            if r is None:
                return {"ok": False, "error": "no such rule"}
            try:
                await asyncio.wait_for(r.matched.wait(), float(req.get("timeout", 5)))
            except asyncio.TimeoutError:
                pass
            return {"ok": True, "matched": r.matched.is_set()}
        if op == "release":
            r = self.rules.pop(req["rule"], None)
            if r is not None:
                r.released.set()
            return {"ok": True}
        if op == "clear":
            for r in self.rules.values():
                r.released.set()
            self.rules.clear()
            return {"ok": True}
        if op == "stats":
            return {"ok": True, "connections": self.conns, "commands": self.commands}
        return {"ok": False, "error": "unknown op %r" % op}


def hostport(s):
    h, _, p = s.rpartition(":")
    return h or "127.0.0.1", int(p)


# ---------------------------------------------------------------------------
# The suite's client of --control
# ---------------------------------------------------------------------------

class Control:
    """Synchronous client of a proxy's control port (used by the tests)."""

    def __init__(self, addr, timeout=30):
        self.sock = socket.create_connection(hostport(addr), timeout=timeout)
        self.f = self.sock.makefile("rwb")

    def call(self, **req):
        self.f.write((json.dumps(req) + "\n").encode())
        self.f.flush()
        line = self.f.readline()
        if not line:
            raise ConnectionError("resp_proxy control connection closed")
        rep = json.loads(line)
        if not rep.get("ok"):
            raise RuntimeError("resp_proxy: %s" % rep.get("error"))
        return rep

    def rule(self, action, cmd=None, arg=None, count=1, seconds=0):
        return self.call(op="rule", action=action, cmd=cmd, arg=arg, count=count, seconds=seconds)["rule"]

    def wait(self, rule, timeout):
        return self.call(op="wait", rule=rule, timeout=timeout)["matched"]

    def release(self, rule):
        self.call(op="release", rule=rule)

    def clear(self):
        self.call(op="clear")

    def close(self):
        try:
            self.clear()
        finally:
            self.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT the testee connects to (port 0: any)")
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the real Redis")
    ap.add_argument("--control", default="127.0.0.1:0", help="HOST:PORT of the control port")
    a = ap.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    p = Proxy(hostport(a.upstream))
    srv = loop.run_until_complete(asyncio.start_server(p.client, *hostport(a.listen)))
    ctl = loop.run_until_complete(asyncio.start_server(p.control, *hostport(a.control)))
    print("RESP-PROXY %d %d" % (srv.sockets[0].getsockname()[1], ctl.sockets[0].getsockname()[1]), flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
