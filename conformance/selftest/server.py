#!/usr/bin/python3
"""selftest: a second, small Matchwire server written from spec/ alone.

In-memory, one asyncio process: WebSocket /realtime and the HTTP API on one
port (spec/messages.md), the envelope rules (spec/envelope.md), tickets,
matching, limits. It exists to prove the spec is implementable from its text
and to prove the conformance suite catches faults: every --fault NAME
switches on one deliberate deviation (FAULTS below lists them).

The HTTP and WebSocket layers are written here on asyncio.Protocol rather
than websockets.serve(): websockets 10.4's server accepts only GET requests
(POST/DELETE /v1/tickets are part of the spec) and hides the outbound queue
that MSG-096 bounds. Strict I-JSON comes from conformance/ijson.py.

Usage: server.py [--host H] [--port P (0: any; the chosen port is printed as
"LISTENING <port>")] [--match-size N] [--queue-size q=N] [--ticket-ttl S]
[--grace S] [--assigned-ttl S] [--idle-timeout S] [--max-connections N]
[--rate R] [--rate-burst B] [--outbound-max-messages N]
[--outbound-max-bytes N] [--fault NAME]... [--redis redis://:PW@H:P/DB
[--redis-prefix P]] (channel mode: subscribes to P + matchmaking:assigned and
validates, counts and pushes payloads as spec/channel.md §1-2 says; the
store stays in memory)
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import signal
import socket
import struct
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import ijson  # noqa: E402

FAULTS = {
    "accept_duplicate_keys": "parse JSON with Python's json module (duplicates, NaN accepted)",
    "accept_leading_zeros": "accept numbers with leading zeros (v: 01)",
    "drop_late_watch_assignment": "watch of an already assigned ticket sends no match.assigned",
    "versions_out_of_order": "watch of an assigned ticket replies with version 1",
    "version_skip": "cancel raises the version by 2",
    "forget_id_echo": "error replies never carry the request id",
    "push_wrong_ticket": "match.assigned names the match's first ticket for every player",
    "accept_oversized": "messages over 65,536 bytes are processed (no 1009)",
    "unknown_type_silent": "unknown message types get no reply",
    "never_close_slow_consumer": "the outbound queue is unbounded (no 4001)",
    "no_1003_on_binary": "binary messages are ignored",
    "double_push": "match.assigned is sent twice",
    "leak_other_ticket_id": "players entries carry their ticketId",
    "region_mix": "attributes.region is ignored by matching",
    "no_idempotency": "idempotencyKey is ignored",
    "wrong_retryable": "rate_limited says retryable: false",
    "no_subprotocol_echo": "matchwire.v1 is accepted but not echoed",
    "accept_unknown_subprotocol": "an offer without matchwire.v1 is upgraded",
    "lifo": "tickets are matched last in, first out",
    "no_expiry": "queued tickets never expire",
    "no_grace_cancel": "tickets without watchers are never grace-cancelled",
    "no_rate_limit": "no message rate limit",
    "no_error_close": "never closes after consecutive errors",
    "accept_bad_utf8": "invalid UTF-8 text is decoded with replacement (no 1007)",
    "upgrade_any_path": "WebSocket upgrades on any path",
    "no_ticket_limit": "no per-connection ticket limit",
    "http_200_on_create": "POST /v1/tickets answers 200 instead of 201",
    "no_retention": "final tickets are forgotten at once",
    "cancel_push_to_self": "the cancelling connection also gets ticket.cancelled",
    "timestamp_no_millis": "timestamps without milliseconds",
    "no_bad_message_check": "enqueue data is not validated (queue syntax)",
    "reply_without_id_gets_id": "replies to requests without id carry id \"\"",
    "shutdown_close_1000": "shutting down closes connections with 1000, not 1001",
    # issue 17: the classes the suite used to miss (each caught by its test).
    "grace_from_creation": "the grace period is counted from the ticket's creation, not from its last watcher leaving",
    "grace_from_first_leave": "the grace period is counted from the first departure of a watcher",
    "ttl_slides_on_watch": "a watch (or idempotent enqueue) restarts the ticket's time to live",
    "ttl_from_retention": "a queued ticket's time to live is the retention setting",
    "retention_from_creation": "retention is counted from the ticket's creation, not from when it became final",
    "connection_limit_plus_one": "the connection limit admits one connection too many",
    "connection_limit_minus_one": "the connection limit refuses the N-th connection",
    "region_len_chars": "region length counted in characters, not bytes",
    "attr_len_chars": "attribute string length counted in characters, not bytes",
    "key_len_chars": "idempotencyKey length counted in characters, not bytes",
    "region_case_insensitive": "regions compared case-insensitively",
    "region_prefix_match": "a region matches another it is a prefix of",
    "queue_prefix_match": "a queue shares the pool of another queue it is a prefix of",
    "queue_size_prefix": "a queue takes the match size of a declared queue that is its prefix",
    # Channel mode (--redis) only: caught by the channel profile's test_channel.py.
    "channel_reason_lumped": "channel: a payload naming another ticket is counted as not_match_assigned",
    "channel_push_with_id": "channel: a foreign envelope carrying an id is pushed as is",
    "channel_size_off_by_one": "channel: a payload of exactly 65,536 bytes is dropped as too_large",
}
CHANNEL_FAULTS = ("channel_reason_lumped", "channel_push_with_id", "channel_size_off_by_one")
DROP_REASONS = ("too_large", "bad_json", "bad_payload", "bad_envelope", "not_match_assigned", "ticket_mismatch")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?[Zz]$")

CLIENT_TYPES = ("enqueue", "cancel", "watch", "ping")
KNOWN_TYPES = CLIENT_TYPES + ("enqueued", "cancelled", "watching", "pong", "error",
                              "match.assigned", "ticket.expired", "ticket.cancelled")
RETRYABLE = {
    "bad_json": False, "bad_envelope": False, "too_large": False, "too_deep": False,
    "unknown_type": False, "unsupported_version": False, "bad_message": False,
    "not_found": False, "already_assigned": False, "too_many_tickets": False,
    "rate_limited": True, "unavailable": True, "internal": True,
}
COUNTED = ("bad_json", "too_deep", "bad_envelope", "unknown_type", "unsupported_version",
           "bad_message", "rate_limited")
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
QUEUE_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MAX_MSG = 65536
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def now_ms():
    return int(time.time() * 1000)


class BadRequest(Exception):
    def __init__(self, code, message, offset=None, id=None):
        super().__init__(message)
        self.code, self.message, self.offset, self.id = code, message, offset, id


class Ticket:
    def __init__(self, tid, queue, player, region, attrs, key, created, expires, watched):
        self.id, self.queue, self.player, self.region = tid, queue, player, region
        self.attrs, self.key = attrs, key
        self.state, self.version = "queued", 1
        self.created, self.expires = created, expires
        self.assignment = None
        self.watchers = set()
        self.had_watcher = watched
        self.timers = []


class Server:
    def __init__(self, cfg):
        self.cfg = cfg
        self.f = set(cfg.fault or [])
        self.tickets = {}
        self.idem = {}
        self.pools = {}
        self.sizes = dict(q.split("=", 1) for q in (cfg.queue_size or []))
        self.conns = set()
        self.loop = asyncio.get_event_loop()
        self.game = 0
        self.metrics = {"messages_in": 0, "matches": 0}

    # -- timestamps -----------------------------------------------------
    def ts(self, ms):
        t = time.gmtime(ms / 1000)
        if "timestamp_no_millis" in self.f:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", t)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000)

    # -- store ----------------------------------------------------------
    def get(self, tid):
        return self.tickets.get(tid) if isinstance(tid, str) else None

    def create(self, req, watcher):
        key = req.get("idempotencyKey")
        if key is not None and "no_idempotency" not in self.f:
            t = self.get(self.idem.get((req["playerId"], key)))
            if t is not None:
                return t, False
        now = now_ms()
        attrs = req.get("attributes")
        ttl = self.cfg.assigned_ttl if "ttl_from_retention" in self.f else self.cfg.ticket_ttl
        t = Ticket(str(uuid.uuid4()), req["queue"], req["playerId"],
                   (attrs or {}).get("region"), attrs, key, now,
                   now + int(ttl * 1000), watcher is not None)
        self.tickets[t.id] = t
        if key is not None:
            self.idem[(t.player, key)] = t.id
        if "no_expiry" not in self.f:
            t.expiry = self.loop.call_later(ttl, self.expire, t)
            t.timers.append(t.expiry)
        if watcher is not None:
            t.watchers.add(watcher)
            watcher.watched.add(t.id)
        self.add_to_pool(t)
        return t, True

    def pool_key(self, t):
        queue, region = t.queue, None if "region_mix" in self.f else t.region
        if "region_case_insensitive" in self.f and region is not None:
            region = region.lower()
        for q, r in self.pools:
            if "queue_prefix_match" in self.f and q != queue and r == region and (
                    q.startswith(queue) or queue.startswith(q)):
                queue = q
            if "region_prefix_match" in self.f and q == queue and None not in (r, region) and r != region \
                    and (r.startswith(region) or region.startswith(r)):
                region = r
        return queue, region

    def size_of(self, queue):
        if "queue_size_prefix" in self.f:
            for q, n in self.sizes.items():
                if queue.startswith(q):
                    return int(n)
        return int(self.sizes.get(queue, self.cfg.match_size))

    def add_to_pool(self, t):
        t.pool = self.pool_key(t)
        queue, region = t.pool
        pool = self.pools.setdefault((queue, region), [])
        pool.append(t.id)
        size = self.size_of(t.queue)
        # Formed on the next loop turn so a reply is sent before its pushes.
        self.loop.call_soon(self.form, queue, region, size)

    def form(self, queue, region, size):
        pool = self.pools.get((queue, region), [])
        while len(pool) >= size:
            if "lifo" in self.f:
                group = pool[-size:]
                del pool[-size:]
                group.reverse()
            else:
                group = pool[:size]
                del pool[:size]
            self.assign([self.tickets[i] for i in group])

    def assign(self, group):
        self.game += 1
        match = {
            "matchId": str(uuid.uuid4()),
            "connection": "127.0.0.1:%d" % (7000 + self.game % 10),
            "players": [{"playerId": t.player} for t in group],
            "assignedAt": self.ts(now_ms()),
        }
        if "leak_other_ticket_id" in self.f:
            for p, t in zip(match["players"], group):
                p["ticketId"] = t.id
        self.metrics["matches"] += 1
        for t in group:
            t.state, t.version = "assigned", t.version + 1
            t.assignment = match
            self.finalize(t)
        for t in group:
            env = self.assigned_env(t, group[0] if "push_wrong_ticket" in self.f else t)
            for c in list(t.watchers):
                c.push_version(t, env)
                if "double_push" in self.f:
                    c.send(env)

    def assigned_env(self, t, named):
        return {"type": "match.assigned", "v": 1,
                "data": {"ticketId": named.id, "version": t.version, "assignment": t.assignment}}

    def finalize(self, t):
        for h in t.timers:
            h.cancel()
        t.timers = []
        pool = self.pools.get(getattr(t, "pool", None))
        if pool and t.id in pool:
            pool.remove(t.id)
        ret = 0 if "no_retention" in self.f else self.cfg.assigned_ttl
        if "retention_from_creation" in self.f:
            ret = max(0.0, (t.created - now_ms()) / 1000 + ret)
        t.timers.append(self.loop.call_later(ret, self.forget, t))
        for c in t.watchers:
            c.ticket_final(t)

    def forget(self, t):
        self.tickets.pop(t.id, None)
        if t.key is not None and self.idem.get((t.player, t.key)) == t.id:
            del self.idem[(t.player, t.key)]

    def end(self, t, state, by=None):
        t.state, t.version = state, t.version + (2 if "version_skip" in self.f else 1)
        self.finalize(t)
        env = {"type": "ticket." + state, "v": 1, "data": {"ticketId": t.id, "version": t.version}}
        for c in list(t.watchers):
            if c is by and "cancel_push_to_self" not in self.f:
                c.sent[t.id] = t.version
                continue
            c.push_version(t, env)

    def expire(self, t):
        if t.state == "queued":
            self.end(t, "expired")

    def detach(self, t, conn):
        t.watchers.discard(conn)
        if t.state == "queued" and not t.watchers and t.had_watcher and "no_grace_cancel" not in self.f:
            delay = self.cfg.grace
            if "grace_from_creation" in self.f:
                delay = max(0.0, (t.created - now_ms()) / 1000 + delay)
            if "grace_from_first_leave" in self.f:
                t.first_leave = getattr(t, "first_leave", None) or time.monotonic()
                delay = max(0.0, t.first_leave + delay - time.monotonic())
            t.grace_token = token = object()  # only the latest departure's timer counts
            t.timers.append(self.loop.call_later(delay, self.grace_end, t, token))

    def slide_ttl(self, t):
        """Fault ttl_slides_on_watch: a watch restarts the time to live."""
        if "ttl_slides_on_watch" in self.f and t.state == "queued" and getattr(t, "expiry", None):
            t.expiry.cancel()
            t.expires = now_ms() + int(self.cfg.ticket_ttl * 1000)
            t.expiry = self.loop.call_later(self.cfg.ticket_ttl, self.expire, t)
            t.timers.append(t.expiry)

    def grace_end(self, t, token=None):
        if t.state == "queued" and not t.watchers and getattr(t, "grace_token", None) is token:
            self.end(t, "cancelled")

    def resource(self, t):
        r = {"ticketId": t.id, "queue": t.queue, "playerId": t.player, "state": t.state,
             "version": t.version, "createdAt": self.ts(t.created), "expiresAt": self.ts(t.expires)}
        if t.state == "assigned":
            r["assignment"] = t.assignment
        return r


# ---------------------------------------------------------------------------
# Decoding (envelope.md, then messages.md)
# ---------------------------------------------------------------------------

def _plain_text_id(env):
    i = env.get("id") if isinstance(env, dict) else None
    if isinstance(i, str) and 1 <= len(i.encode()) <= 64 and all(0x20 <= ord(c) <= 0x7E for c in i):
        return i
    return None


def decode(srv, raw):
    """Returns (type, data, id) or raises BadRequest."""
    if len(raw) > MAX_MSG:
        raise BadRequest("too_large", "message over 65536 bytes", MAX_MSG)
    if "accept_duplicate_keys" in srv.f:
        try:
            env = json.loads(raw.decode("utf-8", "surrogatepass"))
            offs = {}
        except ValueError as e:
            raise BadRequest("bad_json", str(e))
    else:
        text = raw
        if "accept_leading_zeros" in srv.f:
            text = re.sub(rb'(?<=[:\[,\s])0+(\d)', rb"\1", raw)
        try:
            env, offs = ijson.loads_tracked(text)
        except ijson.Fault as f:
            raise BadRequest(f.code, f.message, f.offset)
    if not isinstance(env, dict):
        raise BadRequest("bad_envelope", "top level is not an object",
                         len(raw) - len(raw.lstrip(b" \t\r\n")))
    id = _plain_text_id(env)
    t = env.get("type")
    if "type" not in env:
        raise BadRequest("bad_envelope", "missing member \"type\"", None, id)
    if not (isinstance(t, str) and 1 <= len(t.encode()) <= 64 and TYPE_RE.match(t)):
        raise BadRequest("bad_envelope", "bad \"type\"", offs.get("type"), id)
    if "v" not in env:
        raise BadRequest("bad_envelope", "missing member \"v\"", None, id)
    v = env["v"]
    if not (type(v) is int and 1 <= v <= 2 ** 31 - 1):
        raise BadRequest("bad_envelope", "\"v\" must be an integer 1 to 2147483647", offs.get("v"), id)
    if "id" in env and id is None:
        raise BadRequest("bad_envelope", "bad \"id\"", offs.get("id"))
    if "data" not in env:
        raise BadRequest("bad_envelope", "missing member \"data\"", None, id)
    d = env["data"]
    if not isinstance(d, dict):
        raise BadRequest("bad_envelope", "\"data\" is not an object", offs.get("data"), id)
    if t not in CLIENT_TYPES:
        raise BadRequest("unknown_type", "unknown type %s" % t, None, id)
    if v != 1:
        raise BadRequest("unsupported_version", "%s v%d is not supported" % (t, v), None, id)
    if t == "enqueue":
        check_enqueue(srv, d, id)
    elif t in ("cancel", "watch"):
        if not isinstance(d.get("ticketId"), str):
            raise BadRequest("bad_message", "ticketId must be a string", None, id)
    return t, d, id


def check_enqueue(srv, d, id=None):
    def bad(msg):
        raise BadRequest("bad_message", msg, None, id)
    q = d.get("queue")
    if not isinstance(q, str) or not (QUEUE_RE.match(q) or "no_bad_message_check" in srv.f):
        bad("queue must be 1..64 bytes of [a-z0-9_-]")
    p = d.get("playerId")
    if not isinstance(p, str) or not 1 <= len(p.encode()) <= 128:
        bad("playerId must be 1..128 bytes")
    if "attributes" in d:
        a = d["attributes"]
        if not isinstance(a, dict) or len(a) > 16:
            bad("attributes must be an object of at most 16 members")
        for k, v in a.items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                bad("attribute values are strings or numbers")
            if isinstance(v, str) and len(v if "attr_len_chars" in srv.f else v.encode()) > 256:
                bad("attribute string over 256 bytes")
        if "region" in a and not (isinstance(a["region"], str) and 1 <= len(
                a["region"] if "region_len_chars" in srv.f else a["region"].encode()) <= 64):
            bad("region must be a string of 1..64 bytes")
    if "idempotencyKey" in d:
        k = d["idempotencyKey"]
        if not isinstance(k, str) or not 1 <= len(k if "key_len_chars" in srv.f else k.encode()) <= 64:
            bad("idempotencyKey must be 1..64 bytes")


# ---------------------------------------------------------------------------
# One TCP connection: HTTP request, then maybe a WebSocket
# ---------------------------------------------------------------------------

def ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


class Conn(asyncio.Protocol):
    def __init__(self, srv):
        self.srv = srv
        self.f = srv.f
        self.cfg = srv.cfg
        self.buf = bytearray()
        self.ws = False
        self.closing = False
        self.paused = False
        self.outq = []
        self.outbytes = 0
        self.frags = None
        self.frag_op = 0
        self.watched = set()
        self.sent = {}
        self.errors = 0
        self.tokens = float(self.cfg.rate_burst)
        self.tok_t = time.monotonic()
        self.last_rx = time.monotonic()
        self.idle_task = None
        self.ping_sent = None

    # -- transport ------------------------------------------------------
    def connection_made(self, transport):
        self.t = transport
        # What a slow reader can make us hold is bounded (MSG-096): the
        # kernel send buffer fixed at 64 KiB as the reference does (Linux
        # would grow it to megabytes), asyncio's buffer at 16 KiB, then the
        # counted queue (outq).
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        transport.set_write_buffer_limits(high=16384, low=4096)

    def connection_lost(self, exc):
        if self.ws:
            self.srv.conns.discard(self)
            for tid in list(self.watched):
                t = self.srv.get(tid)
                if t is not None:
                    self.srv.detach(t, self)
            self.watched.clear()
        if self.idle_task:
            self.idle_task.cancel()
        self.outq = []

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        while self.outq and not self.paused:
            data = self.outq.pop(0)
            self.outbytes -= len(data)
            self.t.write(data)

    def data_received(self, data):
        self.last_rx = time.monotonic()
        self.buf += data
        try:
            if not self.ws:
                self.http_in()
            if self.ws:
                self.ws_in()
        except Exception as e:  # a bug here must not take the server down
            print("selftest: connection error %r" % e, file=sys.stderr)
            self.t.abort()

    # -- HTTP -----------------------------------------------------------
    def http_in(self):
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > 16384:
                self.t.abort()
            return
        head = self.buf[:end].decode("latin-1").split("\r\n")
        method, path, _ = (head[0].split(" ") + ["", "", ""])[:3]
        hdr = {}
        for ln in head[1:]:
            k, _, v = ln.partition(":")
            hdr.setdefault(k.strip().lower(), []).append(v.strip())
        n = int(hdr.get("content-length", ["0"])[0] or 0)
        if n > MAX_MSG:
            del self.buf[:end + 4]
            return self.respond(413, self.err_body("too_large", "body over 65536 bytes"))
        if len(self.buf) < end + 4 + n:
            return
        body = bytes(self.buf[end + 4:end + 4 + n])
        del self.buf[:end + 4 + n]
        if "websocket" in ",".join(hdr.get("upgrade", [])).lower():
            return self.upgrade(path, hdr)
        self.route(method, path, body)

    def respond(self, status, body, ctype="application/json", extra=()):
        reason = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 409: "Conflict",
                  413: "Payload Too Large", 503: "Service Unavailable", 405: "Method Not Allowed"}
        if isinstance(body, (dict, list)):
            body = ijson.dumps(body).encode()
        lines = ["HTTP/1.1 %d %s" % (status, reason.get(status, "X")), "Content-Type: " + ctype,
                 "Content-Length: %d" % len(body), "Connection: close"] + list(extra)
        self.t.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.t.close()

    @staticmethod
    def err_body(code, message):
        return {"code": code, "message": message, "retryable": RETRYABLE[code]}

    def route(self, method, path, body):
        srv = self.srv
        if path == "/healthz" and method == "GET":
            return self.respond(200, {"status": "ok"})
        if path == "/metrics" and method == "GET":
            text = "".join("selftest_%s %d\n" % kv for kv in srv.metrics.items())
            if srv.cfg.redis:
                text += "".join('matchwire_channel_drops_total{reason="%s"} %d\n' % (r, srv.drops.get(r, 0))
                                for r in DROP_REASONS)
            return self.respond(200, text.encode(), "text/plain; version=0.0.4")
        if path == "/v1/tickets" and method == "POST":
            try:
                d = ijson.loads(body)
            except ijson.Fault as f:
                return self.respond(400, self.err_body(f.code, f.message))
            try:
                if not isinstance(d, dict):
                    raise BadRequest("bad_message", "body must be an object")
                check_enqueue(srv, d)
            except BadRequest as e:
                return self.respond(400, self.err_body(e.code, e.message))
            t, new = srv.create(d, None)
            status = 201 if new and "http_200_on_create" not in self.f else 200
            return self.respond(status, srv.resource(t))
        m = re.match(r"^/v1/tickets/([^/?]+)$", path)
        if m:
            t = srv.get(m.group(1))
            if t is None:
                return self.respond(404, self.err_body("not_found", "no such ticket"))
            if method == "GET":
                return self.respond(200, srv.resource(t))
            if method == "DELETE":
                if t.state == "assigned":
                    return self.respond(409, self.err_body("already_assigned", "ticket is assigned"))
                if t.state != "queued":
                    return self.respond(404, self.err_body("not_found", "ticket ended"))
                srv.end(t, "cancelled")
                return self.respond(200, {"ticketId": t.id, "version": t.version})
            return self.respond(405, self.err_body("bad_message", "method not allowed"))
        return self.respond(404, self.err_body("not_found", "no such resource"))

    def upgrade(self, path, hdr):
        srv = self.srv
        if path != "/realtime" and "upgrade_any_path" not in self.f:
            return self.respond(404, self.err_body("not_found", "WebSocket lives at /realtime"))
        offered = [p.strip() for v in hdr.get("sec-websocket-protocol", []) for p in v.split(",")]
        offered = [p for p in offered if p]
        if offered and "matchwire.v1" not in offered and "accept_unknown_subprotocol" not in self.f:
            return self.respond(400, self.err_body("bad_message", "subprotocol matchwire.v1 required"))
        key = (hdr.get("sec-websocket-key") or [""])[0]
        if not key or (hdr.get("sec-websocket-version") or [""])[0] != "13":
            return self.respond(400, self.err_body("bad_message", "bad WebSocket handshake"))
        mc = self.cfg.max_connections
        limit = mc + (1 if "connection_limit_plus_one" in self.f else 0) - (
            1 if "connection_limit_minus_one" in self.f else 0)
        if mc and len(srv.conns) >= limit:
            return self.respond(503, self.err_body("unavailable", "connection limit reached"))
        acc = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Accept: " + acc]
        if "matchwire.v1" in offered and "no_subprotocol_echo" not in self.f:
            lines.append("Sec-WebSocket-Protocol: matchwire.v1")
        self.t.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.ws = True
        srv.conns.add(self)
        if self.cfg.idle_timeout > 0:
            self.idle_task = srv.loop.create_task(self.idle())

    # -- WebSocket in ---------------------------------------------------
    def close(self, code, reason=""):
        if self.closing:
            return
        self.closing = True
        self.outq, self.outbytes = [], 0
        self.t.write(ws_frame(0x8, struct.pack("!H", code) + reason.encode()[:100]))
        # Wait for the client's close frame, then drop TCP regardless.
        self.srv.loop.call_later(5, self.t.abort)

    def ws_in(self):
        while not self.closing and len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            fin, op, masked, n = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
            off = 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n = struct.unpack("!H", self.buf[2:4])[0]
                off = 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n = struct.unpack("!Q", self.buf[2:10])[0]
                off = 10
            if not masked or b0 & 0x70:
                return self.close(1002, "protocol error")
            if op == 0x2 and "no_1003_on_binary" not in self.f:
                return self.close(1003, "binary messages are not supported")
            if op in (0x0, 0x1, 0x2) and "accept_oversized" not in self.f:
                have = sum(len(x) for x in self.frags) if self.frags is not None else 0
                if have + n > MAX_MSG:
                    return self.close(1009, "message too big")
            if op >= 0x8 and (n > 125 or not fin):
                return self.close(1002, "bad control frame")
            if len(self.buf) < off + 4 + n:
                return
            key = self.buf[off:off + 4]
            p = bytes(self.buf[off + 4:off + 4 + n])
            del self.buf[:off + 4 + n]
            if n:
                k = (bytes(key) * (n // 4 + 1))[:n]
                p = (int.from_bytes(p, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")
            if op == 0x8:
                self.closing = True
                self.t.write(ws_frame(0x8, p[:2]))
                self.t.close()
                return
            if op == 0x9:
                self.t.write(ws_frame(0xA, p))
                continue
            if op == 0xA:
                self.ping_sent = None
                continue
            if op == 0x0:
                if self.frags is None:
                    return self.close(1002, "continuation without start")
                self.frags.append(p)
            else:
                if self.frags is not None:
                    return self.close(1002, "new message inside a fragmented one")
                self.frags, self.frag_op = [p], op
            if not fin:
                continue
            msg, op0 = b"".join(self.frags), self.frag_op
            self.frags = None
            if op0 == 0x2:
                if "no_1003_on_binary" in self.f:
                    continue
                return self.close(1003, "binary messages are not supported")
            if not ijson.valid_utf8(msg):
                if "accept_bad_utf8" not in self.f:
                    return self.close(1007, "invalid UTF-8")
                msg = msg.decode("utf-8", "replace").encode()
            self.on_text(msg)

    # -- WebSocket out --------------------------------------------------
    def send(self, env):
        if self.closing or self.t.is_closing():
            return
        data = ws_frame(0x1, ijson.dumps(env).encode())
        if not self.paused:
            self.t.write(data)
            return
        self.outq.append(data)
        self.outbytes += len(data)
        if "never_close_slow_consumer" in self.f:
            return
        if len(self.outq) > self.cfg.outbound_max_messages or self.outbytes > self.cfg.outbound_max_bytes:
            self.close(4001, "slow consumer")

    def push_version(self, t, env):
        """Sends a push unless this connection already has that version (MSG-072)."""
        if self.sent.get(t.id, 0) >= env["data"]["version"]:
            return
        self.sent[t.id] = env["data"]["version"]
        self.send(env)

    def ticket_final(self, t):
        pass  # final tickets stop counting (live_count reads states)

    def live_count(self):
        n = 0
        for tid in list(self.watched):
            t = self.srv.get(tid)
            if t is not None and t.state == "queued":
                n += 1
        return n

    def reply(self, id, type_, data):
        env = {"type": type_, "v": 1, "data": data}
        if id is not None:
            env["id"] = id
        elif "reply_without_id_gets_id" in self.f:
            env["id"] = ""
        self.send(env)

    def error(self, code, message, id=None, offset=None):
        if code in COUNTED:
            self.errors += 1
        else:
            self.errors = 0
        if code == "unknown_type" and "unknown_type_silent" in self.f:
            return
        d = {"code": code, "message": message, "retryable": RETRYABLE[code]}
        if code == "rate_limited" and "wrong_retryable" in self.f:
            d["retryable"] = False
        if offset is not None:
            d["offset"] = offset
        self.reply(None if "forget_id_echo" in self.f else id, "error", d)
        if self.errors >= self.cfg.max_errors and "no_error_close" not in self.f:
            self.close(1008, "too many consecutive errors")

    def take_token(self):
        if "no_rate_limit" in self.f:
            return True
        now = time.monotonic()
        self.tokens = min(float(self.cfg.rate_burst), self.tokens + (now - self.tok_t) * self.cfg.rate)
        self.tok_t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def on_text(self, raw):
        srv = self.srv
        srv.metrics["messages_in"] += 1
        if not self.take_token():
            id = None
            try:
                id = _plain_text_id(ijson.loads(raw))
            except ijson.Fault:
                pass
            return self.error("rate_limited", "over 50 messages per second", id)
        try:
            t, d, id = decode(srv, raw)
        except BadRequest as e:
            return self.error(e.code, e.message, e.id, e.offset)
        getattr(self, "m_" + t)(d, id)

    def ok(self, id, type_, data):
        self.errors = 0
        self.reply(id, type_, data)

    def m_ping(self, d, id):
        self.ok(id, "pong", {})

    def m_enqueue(self, d, id):
        srv = self.srv
        if self.live_count() >= self.cfg.max_tickets and "no_ticket_limit" not in self.f:
            return self.error("too_many_tickets", "at most %d live tickets" % self.cfg.max_tickets, id)
        t, new = srv.create(d, self)
        if not new:
            srv.slide_ttl(t)
            t.watchers.add(self)
            t.had_watcher = True
            self.watched.add(t.id)
        self.ok(id, "enqueued", {"ticketId": t.id, "queue": t.queue, "state": t.state,
                                 "version": t.version, "expiresAt": srv.ts(t.expires)})
        if t.state == "assigned" and "drop_late_watch_assignment" not in self.f:
            if self.sent.get(t.id, 0) < t.version:
                self.sent[t.id] = t.version
                self.send(srv.assigned_env(t, t))
        elif t.state != "assigned":
            self.sent[t.id] = max(self.sent.get(t.id, 0), t.version)

    def m_cancel(self, d, id):
        srv = self.srv
        t = srv.get(d["ticketId"])
        if t is None or t.state in ("cancelled", "expired"):
            return self.error("not_found", "no such live ticket", id)
        if t.state == "assigned":
            return self.error("already_assigned", "the ticket is already assigned", id)
        srv.end(t, "cancelled", by=self)
        self.ok(id, "cancelled", {"ticketId": t.id, "version": t.version})

    def m_watch(self, d, id):
        srv = self.srv
        t = srv.get(d["ticketId"])
        if t is None:
            return self.error("not_found", "no such ticket", id)
        if t.id not in self.watched and t.state == "queued" and self.live_count() >= self.cfg.max_tickets \
                and "no_ticket_limit" not in self.f:
            return self.error("too_many_tickets", "at most %d live tickets" % self.cfg.max_tickets, id)
        # Register, then read (single-threaded here, so trivially in order).
        srv.slide_ttl(t)
        t.watchers.add(self)
        t.had_watcher = True
        self.watched.add(t.id)
        version = t.version
        if "versions_out_of_order" in self.f and t.state == "assigned":
            version = 1
        self.ok(id, "watching", {"ticketId": t.id, "state": t.state, "version": version})
        if t.state == "assigned" and "drop_late_watch_assignment" not in self.f:
            if self.sent.get(t.id, 0) < t.version:
                self.sent[t.id] = t.version
                self.send(srv.assigned_env(t, t))
        elif t.state != "assigned":
            self.sent[t.id] = max(self.sent.get(t.id, 0), t.version)

    # -- idle -----------------------------------------------------------
    async def idle(self):
        idle = self.cfg.idle_timeout
        while not self.closing and not self.t.is_closing():
            await asyncio.sleep(min(idle / 4, 0.5))
            quiet = time.monotonic() - self.last_rx
            if self.ping_sent is not None:
                if time.monotonic() - self.ping_sent > idle:
                    self.close(4002, "idle timeout")
                    return
            elif quiet >= idle:
                self.ping_sent = time.monotonic()
                self.t.write(ws_frame(0x9, b"mw"))


# ---------------------------------------------------------------------------
# Channel mode (spec/channel.md §1-2): the consumer side only
# ---------------------------------------------------------------------------

def channel_reason(srv, raw):
    """The drop reason of CHN-010 for one payload, or None when valid."""
    f = srv.f
    if len(raw) > (MAX_MSG - 1 if "channel_size_off_by_one" in f else MAX_MSG):
        return "too_large", None
    try:
        p = ijson.loads(raw)
    except ijson.Fault:
        return "bad_json", None
    tid = p.get("ticketId") if isinstance(p, dict) else None
    if not (isinstance(tid, str) and 1 <= len(tid.encode()) <= 64 and all(0x21 <= ord(c) <= 0x7E for c in tid)) \
            or not isinstance(p.get("envelope"), dict):
        return "bad_payload", None
    env = p["envelope"]
    t, v = env.get("type"), env.get("v")
    if not (isinstance(t, str) and 1 <= len(t) <= 64 and TYPE_RE.match(t)) or not (
            type(v) is int and 1 <= v <= 2 ** 31 - 1) or not isinstance(env.get("data"), dict) or (
            "id" in env and _plain_text_id(env) is None):
        return "bad_envelope", None
    d = env["data"]
    a = d.get("assignment")

    def b(x, lo, hi):
        return isinstance(x, str) and lo <= len(x.encode()) <= hi

    def conn_ok(c):
        if not isinstance(c, str) or ":" not in c:
            return False
        host, _, port = c.rpartition(":")
        return 1 <= len(host) <= 255 and all(0x21 <= ord(ch) <= 0x7E for ch in host) and port.isdigit() \
            and 1 <= int(port) <= 65535 and port == str(int(port))
    ok = (t == "match.assigned" and v == 1 and ("id" not in env or "channel_push_with_id" in f)
          and isinstance(d.get("ticketId"), str) and type(d.get("version")) is int and d["version"] >= 1
          and isinstance(a, dict) and b(a.get("matchId"), 1, 128) and conn_ok(a.get("connection"))
          and isinstance(a.get("players"), list) and 1 <= len(a["players"]) <= 16
          and all(isinstance(x, dict) and b(x.get("playerId"), 1, 128) for x in a["players"])
          and isinstance(a.get("assignedAt"), str) and RFC3339_RE.match(a["assignedAt"]))
    if not ok:
        return "not_match_assigned", None
    if d["ticketId"] != tid:
        return ("not_match_assigned" if "channel_reason_lumped" in f else "ticket_mismatch"), None
    return None, env


def channel_message(srv, raw):
    reason, env = channel_reason(srv, raw)
    if reason:
        srv.drops[reason] = srv.drops.get(reason, 0) + 1
        return
    t = srv.get(env["data"]["ticketId"])
    if t is None:
        return
    for c in list(t.watchers):
        c.push_version(t, env)


async def channel_subscribe(srv):
    """AUTH, SELECT, SUBSCRIBE over a minimal RESP2 client (no dependency)."""
    import urllib.parse
    u = urllib.parse.urlsplit(srv.cfg.redis)
    reader, writer = await asyncio.open_connection(u.hostname, u.port or 6379)

    def cmd(*args):
        out = b"*%d\r\n" % len(args)
        for x in args:
            x = x.encode() if isinstance(x, str) else x
            out += b"$%d\r\n%s\r\n" % (len(x), x)
        writer.write(out)

    async def read_reply():
        line = await reader.readline()
        if line[:1] == b"*":
            return [await read_reply() for _ in range(int(line[1:]))]
        if line[:1] == b"$":
            n = int(line[1:])
            return None if n < 0 else (await reader.readexactly(n + 2))[:-2]
        if line[:1] == b"-":
            raise RuntimeError("redis: %r" % line)
        return line[1:].strip()
    if u.password:
        cmd("AUTH", urllib.parse.unquote(u.password))
        await read_reply()
    db = (u.path or "/0").lstrip("/") or "0"
    cmd("SELECT", db)
    await read_reply()
    cmd("SUBSCRIBE", srv.cfg.redis_prefix + "matchmaking:assigned")
    await read_reply()

    async def pump():
        while True:
            m = await read_reply()
            if isinstance(m, list) and len(m) == 3 and m[0] == b"message":
                channel_message(srv, m[2])
    srv.channel_task = asyncio.get_event_loop().create_task(pump())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--match-size", type=int, default=2)
    ap.add_argument("--queue-size", action="append")
    ap.add_argument("--ticket-ttl", type=float, default=600)
    ap.add_argument("--grace", type=float, default=30)
    ap.add_argument("--assigned-ttl", type=float, default=600)
    ap.add_argument("--idle-timeout", type=float, default=60)
    ap.add_argument("--max-connections", type=int, default=19000)
    ap.add_argument("--max-tickets", type=int, default=8)
    ap.add_argument("--max-errors", type=int, default=10)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--rate-burst", type=float, default=100)
    ap.add_argument("--outbound-max-messages", type=int, default=256)
    ap.add_argument("--outbound-max-bytes", type=int, default=1 << 20)
    ap.add_argument("--fault", action="append", choices=sorted(FAULTS))
    ap.add_argument("--redis", default=None, help="redis://:PW@H:P/DB: subscribe to the channel (CHN-010..014)")
    ap.add_argument("--redis-prefix", default="")
    ap.add_argument("--list-faults", action="store_true")
    cfg = ap.parse_args()
    if cfg.list_faults:
        for k in sorted(FAULTS):
            print("%s\t%s" % (k, FAULTS[k]))
        return 0
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    srv = Server(cfg)
    srv.drops = {}
    if cfg.redis:
        loop.run_until_complete(channel_subscribe(srv))
    server = loop.run_until_complete(loop.create_server(lambda: Conn(srv), cfg.host, cfg.port))
    port = server.sockets[0].getsockname()[1]
    print("LISTENING %d" % port, flush=True)
    stop = asyncio.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    loop.run_until_complete(stop.wait())
    for c in list(srv.conns):
        c.close(1000 if "shutdown_close_1000" in srv.f else 1001, "shutting down")
    server.close()
    loop.run_until_complete(asyncio.sleep(0.1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
