"""Load for the fault suite: N asyncio clients (python3-websockets 10.x) on
their own event loop in a thread, each doing one ticket at a time:

  enqueue (with an idempotencyKey) -> `enqueued` (acknowledged) -> wait for
  match.assigned (or ticket.cancelled / ticket.expired) -> next ticket.

`unavailable` (and the other retryable errors) are retried with the same key
and backoff; a dropped connection (1001 included) is reconnected (to the
other gateway after a 1001 or a failed connect) and the client replays its
enqueue (not acknowledged yet) or re-watches its ticket (acknowledged). Every
match.assigned is recorded with the connection it came on, so the checks can
tell a duplicate on one connection (same ticket and version twice), two
different assignments for one ticket, and one player (= one ticket: player
ids are unique per ticket) in two matches.

With auth on (Load(auth=...), faults/auth.py) each client is one player,
`<tag>-c<N>`, for all its tickets: on every (re)connect it mints a fresh
HS256 token with that player as `sub` and sends it as `Authorization:
Bearer`, and it enqueues with playerId = sub (AUTH-061). A handshake refused
401 is counted (Load.unauthorized; the run fails on any). Then a player is
in one match per ticket, so "one player in two matches" becomes: a player in
a match their client never received, beyond their acknowledged tickets
that were never delivered (each already counted as lost).

The main thread drives it through start() / stop_enqueue() / drain() /
close() and reads figures after close().
"""

import asyncio
import collections
import json
import threading
import time

import websockets
import websockets.exceptions

TERMINAL_CLOSES = {1002, 1003, 1007, 1008, 1009, 1010}
RETRYABLE = {"unavailable", "internal", "rate_limited"}


class ConnLost(Exception):
    pass


class Ticket:
    __slots__ = ("client", "seq", "player", "key", "id", "acked_at", "final", "final_at", "match_id",
                 "version")

    def __init__(self, client, seq, player, key):
        self.client, self.seq, self.player, self.key = client, seq, player, key
        self.id = None
        self.acked_at = None
        self.final = None       # assigned | cancelled | expired | not_found
        self.final_at = None
        self.match_id = None
        self.version = None


class Conn:
    n = 0

    def __init__(self, load, ws, gw, client):
        Conn.n += 1
        self.id = Conn.n
        self.load, self.ws, self.gw, self.client = load, ws, gw, client
        self.pending = {}
        self.seen = set()
        self.closed = asyncio.Event()
        self.close_code = None
        self.next_id = 0
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        code = None
        try:
            async for raw in self.ws:
                self.load.on_message(self, raw)
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd is not None else 1006
        except Exception as e:  # noqa: BLE001 - anything else ends the connection
            self.load.log("conn %d reader error %r" % (self.id, e))
            code = 1006
        if code is None:
            code = self.ws.close_code if self.ws.close_code is not None else 1006
        self.close_code = code
        self.closed.set()
        if code == 1001 and not self.load.closing:
            # requests still unanswered when the 1001 close arrived, with
            # their age: the server should answer what it read before its
            # close (issue 11, #7; judged in scenarios.classify)
            now = time.monotonic()
            for rid in self.pending:
                t0 = self.load.inflight_t.get((self.id, rid))
                if t0 is not None:
                    self.load.unanswered_1001.append((self.id, rid, round(now - t0, 3), t0, now))
        for f in self.pending.values():
            if not f.done():
                f.set_exception(ConnLost())
                f.exception()   # retrieved: its request may never await it
        self.pending.clear()
        self.client.wake.set()
        self.load.on_close(self, code)

    async def request(self, type_, data, timeout):
        if self.closed.is_set():
            raise ConnLost()
        self.next_id += 1
        rid = "r%d" % self.next_id
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        text = json.dumps({"type": type_, "v": 1, "id": rid, "data": data}, separators=(",", ":"))
        t0 = time.monotonic()
        key = (self.id, rid)
        self.load.inflight_t[key] = t0
        try:
            return await self._request(text, rid, fut, t0, type_, timeout)
        finally:
            self.load.inflight_t.pop(key, None)

    async def _request(self, text, rid, fut, t0, type_, timeout):
        try:
            await self.ws.send(text)
        except websockets.ConnectionClosed:
            self.pending.pop(rid, None)
            raise ConnLost()
        self.load.log("conn %d send %s" % (self.id, text))
        try:
            r = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            self.pending.pop(rid, None)
            self.load.latencies.append((t0, None, type_, "timeout"))
            raise
        except ConnLost:
            self.load.latencies.append((t0, time.monotonic() - t0, type_, "lost"))
            raise
        res = r["type"] if r["type"] != "error" else "error:" + r["data"].get("code", "?")
        self.load.latencies.append((t0, time.monotonic() - t0, type_, res))
        return r


class Client:
    def __init__(self, load, idx):
        self.load, self.idx = load, idx
        self.gw = idx % len(load.urls)
        self.conn = None
        # auth on: one player for all of this client's tickets (the token's sub)
        self.player = "%s-c%d" % (load.tag, idx) if load.auth is not None else None
        self.seq = 0
        self.wake = asyncio.Event()   # set when its ticket ends or its connection closes

    async def connection(self):
        load = self.load
        if self.conn is not None and not self.conn.closed.is_set():
            if not self.conn.ws.closed:
                return self.conn
            # closing: let the reader take the close frame (its code decides
            # where to reconnect) before reconnecting
            try:
                await asyncio.wait_for(self.conn.closed.wait(), 3)
            except asyncio.TimeoutError:
                pass
        if self.conn is not None and self.conn.close_code == 1001:
            self.gw = (self.conn.gw + 1) % len(load.urls)
        self.conn = None
        backoff = 0.05
        while not load.closing:
            url = load.urls[self.gw]
            headers = {}
            if load.auth is not None:   # a fresh token on every (re)connect (AUTH-013)
                headers["Authorization"] = load.auth.bearer(self.player)
                load.tokens += 1
            try:
                ws = await websockets.connect(url, subprotocols=["matchwire.v1"], open_timeout=5,
                                              ping_interval=None, close_timeout=1, max_size=2 ** 20,
                                              max_queue=None, extra_headers=headers)
            except Exception as e:  # noqa: BLE001 - refused, 503, timeout: try the other gateway
                load.connect_failures += 1
                if isinstance(e, websockets.exceptions.InvalidStatusCode) and e.status_code == 401:
                    load.unauthorized += 1
                load.log("client %d connect %s failed: %r" % (self.idx, url, e))
                self.gw = (self.gw + 1) % len(load.urls)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            self.conn = Conn(load, ws, self.gw, self)
            load.connects += 1
            load.log("client %d conn %d open %s" % (self.idx, self.conn.id, url))
            return self.conn
        return None

    async def run(self):
        load = self.load
        while not load.stopping and not load.closing:
            await load.pace()
            if load.stopping or load.closing:
                break
            self.seq += 1
            p = self.player or "%s-c%d-%d" % (load.tag, self.idx, self.seq)
            t = Ticket(self, self.seq, p, "k%d-%d" % (self.idx, self.seq))
            load.started += 1
            if await self.enqueue(t):
                await self.await_final(t)

    async def enqueue(self, t):
        load = self.load
        backoff = 0.05
        data = {"queue": load.queue, "playerId": t.player, "idempotencyKey": t.key}
        while not load.closing:
            conn = await self.connection()
            if conn is None:
                return False
            try:
                r = await conn.request("enqueue", data, load.reply_timeout)
            except ConnLost:
                load.replays += 1
                await asyncio.sleep(0.01)
                continue
            except asyncio.TimeoutError:
                load.reply_timeouts += 1
                load.log("client %d enqueue reply timeout on conn %d" % (self.idx, conn.id))
                await conn.ws.close()
                continue
            if r["type"] == "enqueued":
                load.on_acked(t, r["data"])
                return True
            if r["type"] == "error" and r["data"].get("code") in RETRYABLE:
                load.retries[r["data"]["code"]] += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            load.bad_replies.append(("enqueue", r))
            return False
        return False

    async def watch(self, conn, t):
        """Re-watch after a reconnect; False when the connection was lost."""
        load = self.load
        backoff = 0.05
        while not load.closing and not t.final:
            try:
                r = await conn.request("watch", {"ticketId": t.id}, load.reply_timeout)
            except ConnLost:
                await asyncio.sleep(0.01)
                return False
            except asyncio.TimeoutError:
                load.reply_timeouts += 1
                await conn.ws.close()
                return False
            if r["type"] == "watching":
                st = r["data"]["state"]
                if st in ("cancelled", "expired"):
                    load.on_end(t, st)
                return True
            code = r["data"].get("code") if r["type"] == "error" else None
            if code in RETRYABLE:
                load.retries[code] += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if code == "not_found":
                load.on_end(t, "not_found")
                return True
            load.bad_replies.append(("watch", r))
            return True
        return True

    async def await_final(self, t):
        load = self.load
        conn = self.conn
        while not t.final and not load.closing:
            if conn is None or conn.closed.is_set():
                conn = await self.connection()
                if conn is None:
                    return
                load.rewatches += 1
                if not await self.watch(conn, t):
                    continue
            self.wake.clear()
            if t.final or conn.closed.is_set():
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), 0.5)
            except asyncio.TimeoutError:
                pass


class Load:
    def __init__(self, urls, clients, rate, queue, tag, events_path, reply_timeout=30.0, auth=None):
        self.urls, self.nclients, self.rate, self.queue, self.tag = urls, clients, rate, queue, tag
        self.auth = auth             # auth.Auth: auth on (one player per client, a token per connect)
        self.reply_timeout = reply_timeout
        self.events = open(events_path, "a", buffering=1 << 16)
        self.stopping = False
        self.closing = False
        self.loop = None
        self.thread = None
        self.clients = []
        self.tasks = []
        self.next_slot = 0.0
        # figures
        self.started = 0
        self.tickets = {}            # ticketId -> Ticket (acknowledged)
        self.acked_list = []
        self.early = collections.defaultdict(list)
        self.assign_times = []       # monotonic time of each match.assigned received
        self.ticket_assigns = collections.defaultdict(set)   # ticketId -> {matchId}
        self.player_matches = collections.defaultdict(set)   # playerId -> {matchId}
        self.client_matches = collections.defaultdict(set)   # client idx -> {matchId} it received
        self.dup_same_conn = []
        self.closes = collections.Counter()
        self.terminal_closes = []
        self.retries = collections.Counter()
        self.bad_replies = []
        self.latencies = []
        self.inflight_t = {}
        self.unanswered_1001 = []   # (conn, request id, age, sent, closed)
        self.sigterms = []          # monotonic times a gateway was sent SIGTERM
        self.connects = 0
        self.connect_failures = 0
        self.unauthorized = 0        # handshakes answered 401 (auth on: never expected)
        self.tokens = 0              # tokens minted (auth on: one per connect attempt)
        self.reply_timeouts = 0
        self.replays = 0
        self.rewatches = 0
        self.unknown_pushes = 0

    # -- thread plumbing ------------------------------------------------
    def log(self, s):
        self.events.write("%.3f %s\n" % (time.monotonic(), s))

    def start(self):
        ready = threading.Event()

        def main():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            ready.set()
            self.loop.run_forever()
            self.loop.close()
        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait(5)
        self.call(self._spawn(), 10)

    def call(self, coro, timeout):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _spawn(self):
        self.next_slot = time.monotonic()
        for i in range(self.nclients):
            c = Client(self, i)
            self.clients.append(c)
            self.tasks.append(asyncio.ensure_future(c.run()))

    async def pace(self):
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + 1.0 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)

    def stop_enqueue(self):
        self.stopping = True

    def drain(self, timeout, quiet=4.0):
        """After stop_enqueue(): wait until every acknowledged ticket is final,
        or nothing became final for `quiet` s, at most `timeout` s."""
        t0 = time.monotonic()
        last_n, last_t = -1, t0
        while time.monotonic() - t0 < timeout:
            out = self.outstanding()
            running = sum(1 for t in self.tasks if not t.done())
            if not out and running == 0:
                return True
            n = len(out) + running * 1000
            if n != last_n:
                last_n, last_t = n, time.monotonic()
            elif time.monotonic() - last_t > quiet:
                return False
            time.sleep(0.2)
        return False

    def close(self):
        self.closing = True
        self.stopping = True

        async def shut():
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for c in self.clients:
                if c.conn is not None:
                    try:
                        await asyncio.wait_for(c.conn.ws.close(), 2)
                    except Exception:  # noqa: BLE001
                        pass
            await asyncio.sleep(0)
        try:
            self.call(shut(), 30)
        except Exception:  # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.events.close()

    # -- events (loop thread) -------------------------------------------
    def on_acked(self, t, d):
        first = t.id is None
        t.id = d["ticketId"]
        if first:
            t.acked_at = time.monotonic()
            self.tickets[t.id] = t
            self.acked_list.append(t)
            for kind, args in self.early.pop(t.id, []):
                if kind == "assigned":
                    self._assigned(t, *args)
                else:
                    self.on_end(t, args[0])
        self.log("acked %s %s v%s %s" % (t.player, t.id, d.get("version"), d.get("state")))

    def on_end(self, t, state):
        if t.final is None:
            t.final, t.final_at = state, time.monotonic()
            t.client.wake.set()
        self.log("end %s %s" % (t.id, state))

    def _assigned(self, t, version, mid):
        if t.final is None:
            t.final, t.final_at, t.match_id, t.version = "assigned", time.monotonic(), mid, version
            t.client.wake.set()

    def on_message(self, conn, raw):
        if isinstance(raw, bytes):
            self.bad_replies.append(("binary", raw[:100]))
            return
        try:
            m = json.loads(raw)
        except ValueError:
            self.bad_replies.append(("json", raw[:200]))
            return
        typ = m.get("type")
        rid = m.get("id")
        if rid is not None:
            f = conn.pending.pop(rid, None)
            if f is not None and not f.done():
                f.set_result(m)
            self.log("conn %d recv %s" % (conn.id, raw[:300]))
            return
        self.log("conn %d push %s" % (conn.id, raw[:400]))
        d = m.get("data", {})
        tid = d.get("ticketId")
        if typ == "match.assigned":
            ver = d.get("version")
            a = d.get("assignment", {})
            mid = a.get("matchId")
            key = (tid, ver)
            if key in conn.seen:
                self.dup_same_conn.append((conn.id, tid, ver))
            conn.seen.add(key)
            self.assign_times.append(time.monotonic())
            self.ticket_assigns[tid].add(mid)
            self.client_matches[conn.client.idx].add(mid)
            for p in a.get("players", []):
                self.player_matches[p.get("playerId")].add(mid)
            t = self.tickets.get(tid)
            if t is None:
                self.early[tid].append(("assigned", (ver, mid)))
            else:
                self._assigned(t, ver, mid)
        elif typ in ("ticket.cancelled", "ticket.expired"):
            st = typ.split(".")[1]
            t = self.tickets.get(tid)
            if t is None:
                self.early[tid].append(("end", (st,)))
            else:
                self.on_end(t, st)
        else:
            self.unknown_pushes += 1

    def on_close(self, conn, code):
        self.closes[code] += 1
        self.log("conn %d closed %s" % (conn.id, code))
        if code in TERMINAL_CLOSES and not self.closing:
            self.terminal_closes.append((time.monotonic(), conn.id, code))

    # -- figures (main thread, after drain) -----------------------------
    def outstanding(self):
        return [t for t in list(self.acked_list) if t.final is None]

    def first_assign_after(self, t0):
        for x in self.assign_times:   # appended in order
            if x >= t0:
                return x - t0
        return None

    def conflicts(self):
        """Tickets with two different matchIds, players in two matches.

        Auth on, a player (= client) has one ticket after another, so it is
        rightly in one match per ticket; instead: the matches that name the
        player but never reached its client, more of them than the client's
        acknowledged tickets that were never delivered (each such ticket
        may be in one match and is counted as lost already). An extra one
        is a ticket in a second match, or a phantom ticket matched."""
        two = [tid for tid, ms in self.ticket_assigns.items() if len(ms) > 1]
        if self.auth is None:
            multi = [p for p, ms in self.player_matches.items() if len(ms) > 1]
            return two, multi
        undelivered = collections.Counter(t.client.idx for t in list(self.acked_list) if t.final != "assigned")
        multi = []
        for c in self.clients:
            unexplained = self.player_matches.get(c.player, set()) - self.client_matches.get(c.idx, set())
            if len(unexplained) > undelivered[c.idx]:
                multi.append(c.player)
        return two, multi

    def max_latency(self, t_from, t_to):
        """Longest time one request waited inside [t_from, t_to] (a request
        never answered counts as answered never)."""
        worst = 0.0
        now = time.monotonic()
        for t0, lat, _typ, _res in list(self.latencies) + [(t0, None, "", "pending") for t0 in self.inflight()]:
            t1 = t0 + lat if lat is not None else now
            w = min(t1, t_to) - max(t0, t_from)
            worst = max(worst, w)
        return worst

    def inflight(self):
        return list(self.inflight_t.values())
