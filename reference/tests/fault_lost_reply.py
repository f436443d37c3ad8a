#!/usr/bin/env python3
"""No phantom watchers (spec/channel.md CHN-074): a watcher count in Redis
that no connection holds would keep a ticket from the grace rule, so it
would be matched with real players while nobody waits for it.

Starts its own redis-server and, between it and one api gateway, a small TCP
proxy this test controls. Two cases:

1. The reply of a watched create is lost: the proxy forwards the create to
   Redis but swallows every reply, then cuts the connections. The create ran
   (the ticket is in Redis with watchers 1) and its client got `unavailable`.
   Once the gateway is connected again it must give that watcher back:
   watchers 0 and a grace deadline.
2. A detach that cannot be sent: a client holds a ticket; the proxy cuts the
   connections and refuses new ones; the client disconnects meanwhile. Once
   the proxy lets the gateway in again, the detach must reach Redis.
3. Shutdown: a client that never reads holds a ticket when the gateway gets
   SIGTERM; its connection is still open when the gateway tears down, and
   the detach written then must reach Redis before the process exits.

Clients that got `unavailable` for an enqueue do not know whether it ran
(MSG-135): cases 1 shows why a gateway must give such a watcher back.

Usage: fault_lost_reply.py PATH/TO/matchwire-server
"""
import asyncio
import json
import socket
import subprocess
import sys
import time

import websockets

from mwtest import Procs, free_port, healthz, start_redis

TIMEOUT = 5.0


class Proxy:
    """TCP proxy to Redis: `swallow` drops what Redis sends, `cut()` closes
    every connection, `down` refuses new ones."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.swallow = False
        self.down = False
        self.writers = set()

    async def start(self):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader, writer, from_redis):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if from_redis and self.swallow:
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _accept(self, creader, cwriter):
        if self.down:
            cwriter.close()
            return
        try:
            rreader, rwriter = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cwriter.close()
            return
        self.writers.update((cwriter, rwriter))
        await asyncio.gather(self._pipe(creader, rwriter, False), self._pipe(rreader, cwriter, True))
        self.writers.difference_update((cwriter, rwriter))

    def cut(self):
        for w in list(self.writers):
            w.close()


async def wait_for(pred, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        v = await asyncio.to_thread(pred)
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        await asyncio.sleep(0.05)


def healthy(port):
    return healthz(port) == 200


async def recv_type(ws, *types):
    while True:
        env = json.loads(await asyncio.wait_for(ws.recv(), 2 * TIMEOUT))
        if env["type"] in types:
            return env


async def run(binary, rport, r):
    proxy = Proxy(rport)
    pport = await proxy.start()
    gport = free_port()
    gw = subprocess.Popen([binary, "--listen", f"127.0.0.1:{gport}", "--role", "api",
                           "--channel", "redis", "--redis", f"redis://127.0.0.1:{pport}",
                           "--grace", "30", "--log-level", "1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_for(lambda: healthy(gport), "the gateway to be ready")
        url = f"ws://127.0.0.1:{gport}/realtime"

        # 1. The create runs in Redis; its reply never comes back.
        async with websockets.connect(url, subprotocols=["matchwire.v1"]) as ws:
            proxy.swallow = True
            await ws.send(json.dumps({"type": "enqueue", "v": 1, "id": "c1",
                                      "data": {"queue": "lost", "playerId": "alice"}}))
            ids = await wait_for(lambda: r.zrange("mw:queue", 0, -1), "the create to run in Redis")
            tid = ids[0].decode()
            assert r.hget("mw:ticket:" + tid, "watchers") == b"1"
            proxy.cut()
            proxy.swallow = False
            reply = await recv_type(ws, "error", "enqueued")
            assert reply["type"] == "error" and reply["data"]["code"] == "unavailable", reply
            await wait_for(lambda: r.hget("mw:ticket:" + tid, "watchers") == b"0",
                           "the lost create's watcher to be given back (watchers 0)")
            grace_at = int(r.hget("mw:ticket:" + tid, "graceAt"))
            assert grace_at > 0, "no grace deadline"
            print(f"case 1: create {tid} ran, reply lost; watcher given back, graceAt {grace_at}")

        # 2. A detach while Redis cannot be reached.
        await wait_for(lambda: healthy(gport), "the gateway to be ready again")
        ws = await websockets.connect(url, subprotocols=["matchwire.v1"])
        await ws.send(json.dumps({"type": "enqueue", "v": 1, "id": "c2",
                                  "data": {"queue": "lost2", "playerId": "bob"}}))
        tid2 = (await recv_type(ws, "enqueued"))["data"]["ticketId"]
        assert r.hget("mw:ticket:" + tid2, "watchers") == b"1"
        proxy.down = True
        proxy.cut()
        await wait_for(lambda: not healthy(gport), "the gateway to see Redis gone")
        await ws.close()
        await asyncio.sleep(0.3)  # the gateway handles the close while Redis is away
        assert r.hget("mw:ticket:" + tid2, "watchers") == b"1"
        proxy.down = False
        await wait_for(lambda: r.hget("mw:ticket:" + tid2, "watchers") == b"0",
                       "the owed detach to reach Redis (watchers 0)")
        print(f"case 2: detach of {tid2} sent once Redis was reachable again")

        # 3. SIGTERM while a client that never reads holds a ticket.
        await wait_for(lambda: healthy(gport), "the gateway to be ready again")
        raw = socket.create_connection(("127.0.0.1", gport), timeout=TIMEOUT)
        raw.sendall(b"GET /realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: matchwire.v1\r\n\r\n")
        body = json.dumps({"type": "enqueue", "v": 1, "data": {"queue": "lost3", "playerId": "carol"}})
        payload = body.encode()
        mask = b"\x01\x02\x03\x04"
        raw.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
                    bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        def carols():
            return [i.decode() for i in r.zrange("mw:queue", 0, -1)
                    if r.hget("mw:ticket:" + i.decode(), "playerId") == b"carol"]
        tid3 = await wait_for(carols, "the third create")
        assert r.hget("mw:ticket:" + tid3[0], "watchers") == b"1"
        gw.terminate()
        rc = await asyncio.to_thread(gw.wait, 10)
        assert rc == 0, f"gateway exit status {rc}"
        watchers = r.hget("mw:ticket:" + tid3[0], "watchers")
        raw.close()
        assert watchers == b"0", f"watchers {watchers} after the gateway exited"
        print(f"case 3: the detach of {tid3[0]} was written before exit")
    finally:
        gw.kill()
        gw.wait()
        proxy.server.close()


def main():
    binary = sys.argv[1]
    with Procs() as procs:
        rport = free_port()
        rds, r = start_redis(rport, procs.tmp, "--appendonly", "no")
        procs.add(rds)
        asyncio.run(asyncio.wait_for(run(binary, rport, r), 60))


if __name__ == "__main__":
    main()
