"""The suite's RESP proxy checked on its own (spec/testing.md TST-031..TST-033):
against a fake Redis in this process, no testee needed."""

import asyncio
import socket
import subprocess
import sys
import os
import threading
import time

import pytest

import resp_proxy

pytestmark = pytest.mark.profile("core")
HERE = os.path.dirname(os.path.abspath(__file__))


class FakeRedis:
    """Answers each command with +<ARG1 or NAME>; records what it received."""

    def __init__(self):
        self.seen = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.srv = self.loop.run_until_complete(asyncio.start_server(self.client, "127.0.0.1", 0))
            self.port = self.srv.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()
        ready.wait(5)

    async def client(self, r, w):
        buf = bytearray()
        while True:
            data = await r.read(65536)
            if not data:
                break
            buf += data
            while True:
                try:
                    args, n = resp_proxy.parse_command(buf)
                except resp_proxy.Incomplete:
                    break
                del buf[:n]
                self.seen.append(args)
                w.write(b"+" + (args[1] if len(args) > 1 else args[0]) + b"\r\n")
        w.close()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def setup():
    fake = FakeRedis()
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "resp_proxy.py"), "--listen", "127.0.0.1:0",
                          "--upstream", "127.0.0.1:%d" % fake.port, "--control", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, text=True)
    _, lp, cp = p.stdout.readline().split()
    ctl = resp_proxy.Control("127.0.0.1:" + cp)
    yield fake, int(lp), ctl
    ctl.close()
    p.terminate()
    p.wait(5)
    fake.stop()


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_lines(s, n, timeout=2.0):
    s.settimeout(timeout)
    buf = b""
    while buf.count(b"\r\n") < n:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\r\n")[:n]


@pytest.mark.req("TST-031")
def test_transparent_pipelined_and_split(setup):
    fake, port, ctl = setup
    s = socket.create_connection(("127.0.0.1", port))
    data = cmd("SET", "a", "1") + cmd("GET", "b") + b"PING\r\n" + cmd("EVALSHA", "x" * 3000, "0")
    for i in range(0, len(data), 7):  # split at every 7 bytes
        s.sendall(data[i:i + 7])
    assert read_lines(s, 4) == [b"+a", b"+b", b"+PING", b"+" + b"x" * 3000]
    s.close()


@pytest.mark.req("TST-032", "TST-033")
def test_hold_reply_then_release(setup):
    fake, port, ctl = setup
    s = socket.create_connection(("127.0.0.1", port))
    rule = ctl.rule("hold_reply", cmd=["EVALSHA"], arg="tkt-1")
    s.sendall(cmd("EVALSHA", "sha", "1", "mw:ticket:tkt-1") + cmd("GET", "after"))
    assert ctl.wait(rule, 2), "the held reply never came back from upstream"
    time.sleep(0.1)
    assert [a[0] for a in fake.seen] == [b"EVALSHA", b"GET"], "the command did not run upstream"
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(10)  # nothing while held, the later reply included
    ctl.release(rule)
    assert read_lines(s, 2) == [b"+sha", b"+after"]
    s.close()


@pytest.mark.req("TST-032")
def test_hold_command_and_drop(setup):
    fake, port, ctl = setup
    s = socket.create_connection(("127.0.0.1", port))
    rule = ctl.rule("hold", arg="held")
    s.sendall(cmd("GET", "held"))
    assert ctl.wait(rule, 2)
    time.sleep(0.1)
    assert fake.seen == [], "a held command reached upstream"
    ctl.release(rule)
    assert read_lines(s, 1) == [b"+held"]
    # A rule is spent after `count` matches: the same command passes now.
    s.sendall(cmd("GET", "held"))
    assert read_lines(s, 1) == [b"+held"]
    d = ctl.rule("drop", cmd=["DEL"])
    s.sendall(cmd("DEL", "k"))
    assert ctl.wait(d, 2)
    s.settimeout(2)
    assert s.recv(10) == b"", "a dropped connection stayed open"
    s.close()


@pytest.mark.req("TST-032")
def test_delay(setup):
    fake, port, ctl = setup
    s = socket.create_connection(("127.0.0.1", port))
    ctl.rule("delay", cmd=["GET"], seconds=0.5)
    t0 = time.monotonic()
    s.sendall(cmd("GET", "x"))
    assert read_lines(s, 1) == [b"+x"]
    assert time.monotonic() - t0 >= 0.45
    s.close()


@pytest.mark.req("TST-031")
def test_reply_parser_resp3():
    for r in (b"+OK\r\n", b"-ERR x\r\n", b":5\r\n", b"$-1\r\n", b"$3\r\nabc\r\n", b"*-1\r\n",
              b"*2\r\n$1\r\na\r\n:1\r\n", b"%1\r\n+k\r\n*1\r\n_\r\n", b">2\r\n+m\r\n,1.5\r\n"):
        assert resp_proxy.reply_length(r + b"+next\r\n") == len(r)
        with pytest.raises(resp_proxy.Incomplete):
            resp_proxy.reply_length(r[:-1])
