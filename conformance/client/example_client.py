"""A Matchwire client written from spec/client.md: the example the client
conformance kit is proven on, with switchable faults (FAULTS) that each
break one client requirement.

    client = Client(emit=print_event, faults={"no_jitter"})
    await client.connect("ws://127.0.0.1:8080/realtime")
    await client.enqueue("e1", "ranked", "alice", {"region": "eu"})

    # wss:// trusting a CA file, with a player token and a refresh callback
    # (client.md section 9: called on 4003 and 401, returns a token or None)
    await client.connect("wss://localhost:8443/realtime", ca="ca.pem", token=tok, refresh=fetch_token)

Events go to `emit(dict)` in the adapter contract's shape (spec/testing.md
TST-060..079). Python 3 with Debian's python3-websockets (10.x).
"""

import asyncio
import inspect
import json
import random
import re
import ssl
import time
import urllib.parse
import uuid

import websockets

SUBPROTOCOL = "matchwire.v1"
FLOOR, CAP = 0.25, 10.0          # CLI-043, CLI-045
STABLE_AFTER = 5.0               # CLI-047: attempts reset after 5 s open
RATE, BURST = 10.0, 20           # CLI-060
RATE_LIMITED_PAUSE = 1.0         # CLI-061
PING_INTERVAL, PING_TIMEOUT = 10.0, 10.0   # CLI-071

# Close codes (CLI-040, CLI-041) and handshake statuses (CLI-042).
TERMINAL_CLOSE = {1000, 1002, 1003, 1007, 1008, 1009, 1010, 1015}
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
FINAL = ("assigned", "cancelled", "expired")
QUEUE_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STRICT_TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
KNOWN_CODES = {"bad_json", "bad_envelope", "too_large", "too_deep", "unknown_type", "unsupported_version",
               "bad_message", "not_found", "already_assigned", "too_many_tickets", "rate_limited",
               "unavailable", "internal"}
SCHEMA_MEMBERS = {
    "enqueued": {"ticketId", "queue", "state", "version", "expiresAt"},
    "watching": {"ticketId", "state", "version"}, "cancelled": {"ticketId", "version"},
    "match.assigned": {"ticketId", "version", "assignment"}, "pong": set(),
    "ticket.expired": {"ticketId", "version"}, "ticket.cancelled": {"ticketId", "version"},
    "error": {"code", "message", "retryable", "offset"},
}

# name -> (what it breaks, the kit scenario(s) that must catch it)
FAULTS = {
    "no_subprotocol": ("does not offer matchwire.v1", ["handshake"]),
    "no_local_validation": ("sends requests that break MSG-020..023", ["local_validation"]),
    "no_idempotency_key": ("enqueue without an idempotencyKey", ["idempotency_key"]),
    "constant_key": ("the same idempotencyKey for every new enqueue", ["idempotency_key"]),
    "drop_key_on_replay": ("replays an unacknowledged enqueue without its key", ["replay_unacked_enqueue"]),
    "no_replay": ("forgets an unacknowledged enqueue when the connection drops", ["replay_unacked_enqueue"]),
    "unavailable_fatal": ("gives up on an enqueue answered unavailable", ["enqueue_unavailable"]),
    "retry_non_retryable": ("resends a request answered with a non-retryable error", ["non_retryable_error"]),
    "unknown_code_fatal": ("an error code it does not know closes the connection", ["unknown_error_code"]),
    "crash_on_malformed": ("crashes on a malformed server message", ["malformed_message"]),
    "strict_members": ("rejects messages with members it does not know", ["unknown_members"]),
    "crash_on_unknown_type": ("crashes on a message type it does not know", ["unknown_type"]),
    "ignore_version": ("reads a v2 message as v1", ["v2_message"]),
    "parse_binary": ("parses a binary frame as an envelope", ["binary_frame"]),
    "drop_early_push": ("drops a push that arrives before the reply naming its ticket", ["push_before_reply"]),
    "uuid_ticket_ids": ("rejects ticket ids that are not UUID v4", ["opaque_ids"]),
    "strict_timestamps": ("rejects an assignedAt without milliseconds", ["timestamps_liberal"]),
    "no_dedup_across_reconnect": ("deduplicates assignments per connection only", ["dedup_across_reconnect"]),
    "duplicate_names_accepted": ("its JSON decoder takes the last of duplicate member names (ENV-010)",
                                 ["malformed_message"]),
    "accept_stale_version": ("applies a push older than what it holds", ["stale_version"]),
    "rewatch_final": ("re-watches tickets that already ended", ["ended_push"]),
    "terminal_on_1012": ("treats 1012 (service restart) as terminal", ["close_retry_1012"]),
    "reconnect_after_1008": ("reconnects after a terminal 1008", ["close_terminal_1008"]),
    "retry_400_forever": ("retries a handshake refused with 400", ["handshake_stop_400"]),
    "no_backoff": ("reconnects at once", ["backoff_floor"]),
    "no_jitter": ("deterministic exponential delays", ["backoff_jitter"]),
    "no_cap": ("delays grow without a cap", ["backoff_cap"]),
    "reset_on_open": ("resets its backoff on every successful handshake", ["backoff_reset"]),
    "ignore_retry_after": ("ignores Retry-After on a 503", ["retry_after"]),
    "no_rewatch": ("does not re-watch its tickets after a reconnect", ["rewatch"]),
    "ignore_lost": ("not_found on a re-watch is not reported as lost", ["rewatch_not_found"]),
    "no_pacing": ("sends requests as fast as the application asks", ["pacing"]),
    "rate_limited_hot_loop": ("resends at once after rate_limited", ["rate_limited"]),
    "no_pong": ("does not answer WebSocket pings", ["server_ping"]),
    "no_liveness": ("never notices a silent, stalled connection", ["stall"]),
    "token_first_only": ("presents its token on the first handshake only, not on reconnects",
                         ["token_every_handshake"]),
    "token_stale_after_refresh": ("after one handshake with a refreshed token, goes back to the first token",
                                  ["token_expired_refresh"]),
    "no_refresh_on_4003": ("reconnects after 4003 with the expired token, without calling the refresh callback",
                           ["token_expired_refresh"]),
    "no_backoff_after_4003": ("reconnects at once after 4003", ["token_expired_refresh"]),
    "reconnect_after_4003_without_token": ("reconnects with the expired token when the refresh callback gives none",
                                           ["token_expired_no_token"]),
    "silent_stop_on_4003": ("stops after 4003 with no new token without telling the application",
                            ["token_expired_no_token"]),
    "no_backoff_after_401": ("retries a 401 at once with the new token", ["unauthorized_refresh_retry"]),
    "no_retry_on_401": ("stops on 401 without refreshing its token and retrying once",
                        ["unauthorized_refresh_retry"]),
    "retry_401_forever": ("retries a handshake refused 401 again and again", ["unauthorized_twice_stop"]),
    "count_401s_forever": ("stops at the second 401 ever, even after a successful handshake in between",
                           ["unauthorized_after_success"]),
    "retry_401_without_token": ("retries a 401 with the refused token when the callback gives none",
                                ["unauthorized_no_token_stop"]),
    "no_cert_verify": ("wss:// without certificate verification (any certificate, any host name)",
                       ["tls_untrusted_ca", "tls_wrong_host"]),
    "no_host_check": ("wss:// verifies the certificate chain but not the host name", ["tls_wrong_host"]),
}


class Crash(Exception):
    pass


def valid_enqueue(queue, player, attributes, key):
    """Local validation before sending (CLI-003): MSG-020..023."""
    if not isinstance(queue, str) or not QUEUE_RE.match(queue):
        return "queue must be 1 to 64 bytes of a-z 0-9 _ - (MSG-020)"
    if not isinstance(player, str) or not 1 <= len(player.encode()) <= 128:
        return "playerId must be 1 to 128 bytes (MSG-021)"
    if attributes is not None:
        if not isinstance(attributes, dict) or len(attributes) > 16:
            return "attributes: an object of at most 16 members (MSG-022)"
        for k, v in attributes.items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                return "attribute %s: a string or a number (MSG-022)" % k
            if isinstance(v, str) and len(v.encode()) > 256:
                return "attribute %s: at most 256 bytes (MSG-022)" % k
        r = attributes.get("region")
        if r is not None and not (isinstance(r, str) and 1 <= len(r.encode()) <= 64):
            return "region: 1 to 64 bytes (MSG-022)"
    if key is not None and not 1 <= len(key.encode()) <= 64:
        return "idempotencyKey: 1 to 64 bytes (MSG-023)"
    return None


def strict_loads(text, lax_names=False):
    """Strict decode (envelope.md): duplicate names, NaN/Infinity refused."""
    def pairs(ps):
        d = {}
        for k, v in ps:
            if k in d and not lax_names:
                raise ValueError("duplicate member %r" % k)
            d[k] = v
        return d

    def bad_const(c):
        raise ValueError("not JSON: %s" % c)
    if len(text.encode("utf-8", "surrogatepass")) > 65536:
        raise ValueError("too_large")
    return json.loads(text, object_pairs_hook=pairs, parse_constant=bad_const)


class Client:
    def __init__(self, emit, faults=(), token_form="header", tls_failure="stop"):
        self.emit, self.faults = emit, set(faults)
        self.token_form = token_form   # "header" (Authorization: Bearer) or "query" (access_token)
        # A server certificate that fails verification (CLI-004): "stop" as
        # a native client does (close code 1015, CLI-041), or "retry" as a
        # browser does (it sees only 1006, CLI-040). Both are conformant.
        self.tls_failure = tls_failure
        self.url = None
        self.ca = None
        self.token = None      # the token presented at every handshake (CLI-090)
        self.first_token = None
        self.refresh = None    # the application's refresh callback: () -> token or None
        self.handshakes = 0
        self.uses_of_token = 0
        self.refused_401 = False   # the previous attempt was refused 401 (CLI-093, CLI-094)
        self.ws = None
        self.closing = False
        self.attempt = 0
        self.tickets = {}      # ticketId -> {"state", "version"}: what this client holds
        self.applied = {}      # ticketId -> version of the assignment applied (CLI-030)
        self.conn_applied = {}  # per-connection copy (used by the no_dedup fault)
        self.unacked = {}      # ref -> enqueue data not yet answered (CLI-011)
        self.inflight = {}     # request id -> (kind, ref or ticketId, data)
        self.early = {}        # ticketId -> match.assigned data before its enqueued (CLI-027)
        self.rewatching = set()
        self.sent_refs = set()
        self.seq = 0
        self.tokens, self.tokens_t = float(BURST), time.monotonic()
        self.paused_until = 0.0
        self.task = None
        self.open_evt = asyncio.Event()
        self.send_lock = asyncio.Lock()

    # ---- application API ----------------------------------------------------

    async def connect(self, url, ca=None, token=None, refresh=None):
        """url: ws:// or wss:// (trusting the CA file ca, or the system's);
        token: the player token; refresh: called when the server refuses the
        token (4003, 401), returns a new token or None (may be async)."""
        self.url, self.ca = url, ca
        self.token = self.first_token = token
        self.refresh = refresh
        self.task = asyncio.ensure_future(self._run())

    async def enqueue(self, ref, queue, player, attributes=None):
        key = None
        if "constant_key" in self.faults:
            key = "key-1"
        elif "no_idempotency_key" not in self.faults:
            key = uuid.uuid4().hex          # CLI-010: a fresh key per intended ticket
        problem = valid_enqueue(queue, player, attributes, key)
        if problem and "no_local_validation" not in self.faults:
            self.emit({"event": "error", "ref": ref, "code": "bad_message", "retryable": False,
                       "local": True, "detail": problem})
            return
        data = {"queue": queue, "playerId": player}
        if attributes is not None:
            data["attributes"] = attributes
        if key is not None:
            data["idempotencyKey"] = key
        self.unacked[ref] = data
        if self.ws is not None:
            await self._send_enqueue(ref, data)

    async def watch(self, ticket_id):
        self.tickets.setdefault(ticket_id, {"state": "queued", "version": 0})
        if self.ws is not None:
            await self._request("watch", {"ticketId": ticket_id}, ("watch", ticket_id))

    async def cancel(self, ticket_id):
        if self.ws is not None:
            await self._request("cancel", {"ticketId": ticket_id}, ("cancel", ticket_id))

    async def close(self):
        self.closing = True
        if self.ws is not None:
            await self.ws.close(1000)
        if self.task:
            try:
                await asyncio.wait_for(self.task, 3)
            except Exception:
                self.task.cancel()
        self.emit({"event": "closed", "code": 1000, "reconnect": False})

    # ---- sending -------------------------------------------------------------

    async def _pace(self):
        """Token bucket, RATE per second with BURST (CLI-060); a pause after
        rate_limited (CLI-061)."""
        if "no_pacing" in self.faults:
            return
        while True:
            t = time.monotonic()
            if t < self.paused_until:
                await asyncio.sleep(self.paused_until - t)
                continue
            self.tokens = min(BURST, self.tokens + (t - self.tokens_t) * RATE)
            self.tokens_t = t
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / RATE)

    async def _request(self, type_, data, what):
        self.seq += 1
        rid = "r%d" % self.seq
        self.inflight[rid] = what + (data,)
        async with self.send_lock:
            await self._pace()
            ws = self.ws
            if ws is None:
                return
            try:
                await ws.send(json.dumps({"type": type_, "v": 1, "id": rid, "data": data},
                                         separators=(",", ":"), ensure_ascii=False))
            except websockets.ConnectionClosed:
                pass

    async def _send_enqueue(self, ref, data):
        self.sent_refs.add(ref)
        await self._request("enqueue", data, ("enqueue", ref))

    def _replay_data(self, data):
        if "drop_key_on_replay" in self.faults:
            data = {k: v for k, v in data.items() if k != "idempotencyKey"}
        return data

    async def _retry_later(self, ref, delay):
        await asyncio.sleep(delay)
        if ref in self.unacked and self.ws is not None:
            await self._send_enqueue(ref, self._replay_data(self.unacked[ref]))

    # ---- tokens (client.md section 9) -----------------------------------------

    def _handshake_auth(self):
        """The URL and headers of the next handshake: the token it holds, in
        the Authorization header or the access_token parameter (CLI-090)."""
        self.handshakes += 1
        tok = self.token
        if tok is not None and "token_stale_after_refresh" in self.faults and self.uses_of_token >= 1:
            tok = self.first_token
        self.uses_of_token += 1
        if tok is None or ("token_first_only" in self.faults and self.handshakes > 1):
            return self.url, []
        if self.token_form == "query":
            sep = "&" if "?" in self.url else "?"
            return self.url + sep + "access_token=" + urllib.parse.quote(tok, safe=""), []
        return self.url, [("Authorization", "Bearer " + tok)]

    async def _refresh(self):
        """A new token from the application, or None (no callback, or it has
        none). The next handshake presents it."""
        if self.refresh is None:
            return None
        new = self.refresh()
        if inspect.isawaitable(new):
            new = await new
        if new:
            self.token = new
            self.uses_of_token = 0
        return new or None

    # ---- connection loop -------------------------------------------------------

    def _delay(self):
        """Full jitter between FLOOR and min(CAP, FLOOR * 2^n) (CLI-043..045)."""
        n = self.attempt
        if "no_backoff" in self.faults:
            return 0.0
        if "no_jitter" in self.faults:
            return min(CAP, FLOOR * 2 ** (n - 1))
        hi = FLOOR * 2 ** min(n, 30)
        if "no_cap" not in self.faults:
            hi = min(CAP, hi)
        return random.uniform(FLOOR, hi)

    async def _run(self):
        tls = None
        if self.url.startswith("wss://"):
            # chain and host-name verification on (CLI-004); trust only the given CA
            tls = ssl.create_default_context(cafile=self.ca) if self.ca else ssl.create_default_context()
            if {"no_cert_verify", "no_host_check"} & self.faults:
                tls.check_hostname = False
            if "no_cert_verify" in self.faults:
                tls.verify_mode = ssl.CERT_NONE
        while not self.closing:
            retry_after = 0.0
            no_wait = False
            # was the previous attempt refused 401? (any other outcome ends a row)
            prev_401 = self.refused_401
            if "count_401s_forever" not in self.faults:
                self.refused_401 = False
            try:
                kw = {} if "no_subprotocol" in self.faults else {"subprotocols": [SUBPROTOCOL]}
                if tls is not None:
                    kw["ssl"] = tls
                url, headers = self._handshake_auth()
                ws = await websockets.connect(
                    url, open_timeout=10, close_timeout=2, max_size=65536 + 16, compression=None,
                    ping_interval=None if "no_liveness" in self.faults else PING_INTERVAL,
                    ping_timeout=PING_TIMEOUT, extra_headers=headers, **kw)
            except websockets.InvalidStatusCode as e:
                status = e.status_code
                if status == 401:
                    if not await self._on_401(prev_401):
                        self.emit({"event": "closed", "code": None, "status": 401, "reconnect": False})
                        return
                    no_wait = "no_backoff_after_401" in self.faults
                elif status not in RETRY_STATUS and not (500 <= status <= 599) \
                        and "retry_400_forever" not in self.faults:
                    self.emit({"event": "closed", "code": None, "status": status, "reconnect": False})
                    return                      # CLI-042: a refusal to stop on
                ra = (getattr(e, "headers", None) or {}).get("Retry-After")
                if ra and ra.strip().isdigit() and "ignore_retry_after" not in self.faults:
                    retry_after = min(float(ra), 60.0)   # CLI-046
            except websockets.InvalidHandshake as e:
                self.emit({"event": "protocolError", "detail": "handshake: %s" % e})
                self.emit({"event": "closed", "code": None, "reconnect": False})
                return
            except ssl.SSLCertVerificationError as e:
                # CLI-004: nothing was sent over it. A native client can see
                # why: 1015, stop (CLI-041); a browser would see 1006.
                if self.tls_failure == "stop":
                    self.emit({"event": "closed", "code": 1015, "reconnect": False,
                               "detail": "server certificate: %s" % e.verify_message})
                    return
                self.emit({"event": "closed", "code": 1006, "reconnect": True})
            except (OSError, asyncio.TimeoutError):
                pass
            else:
                code = await self._session(ws)
                if self.closing:
                    return
                if code == 4003 and "no_refresh_on_4003" not in self.faults:
                    # CLI-091, CLI-092: a new token before the next attempt, or stop
                    new = await self._refresh()
                    if new is None and "reconnect_after_4003_without_token" not in self.faults:
                        if "silent_stop_on_4003" not in self.faults:
                            self.emit({"event": "closed", "code": code, "reconnect": False})
                        return
                    no_wait = "no_backoff_after_4003" in self.faults
                if code in TERMINAL_CLOSE or (code == 1012 and "terminal_on_1012" in self.faults):
                    if not (code == 1008 and "reconnect_after_1008" in self.faults):
                        self.emit({"event": "closed", "code": code, "reconnect": False})
                        return
                self.emit({"event": "closed", "code": code, "reconnect": True})
            if self.closing:
                return
            self.attempt += 1
            delay = 0.0 if no_wait else max(self._delay(), retry_after)
            self.emit({"event": "reconnecting", "attempt": self.attempt, "delayMs": int(delay * 1000)})
            await asyncio.sleep(delay)

    async def _on_401(self, prev_401):
        """A handshake refused 401: True to retry (once, with a new token,
        CLI-093), False to stop (CLI-094)."""
        self.refused_401 = True
        if "no_retry_on_401" in self.faults:
            return False
        if prev_401 and "retry_401_forever" not in self.faults:
            return False                  # a second 401 in a row
        new = await self._refresh()
        if new is None and not ({"retry_401_forever", "retry_401_without_token"} & self.faults):
            return False
        return True

    async def _session(self, ws):
        opened = time.monotonic()
        if "no_pong" in self.faults:
            async def no_pong(data=b""):
                return None
            ws.pong = no_pong
        if "reset_on_open" in self.faults:
            self.attempt = 0
        self.ws = ws
        self.conn_applied = {}
        self.inflight = {}
        self.rewatching = set()
        self.emit({"event": "open"})
        asyncio.ensure_future(self._resume())
        code = 1006
        try:
            async for data in ws:
                await self._receive(data)
        except websockets.ConnectionClosed:
            pass
        except Crash as e:
            self.emit({"event": "protocolError", "detail": "client crashed: %s" % e})
            raise SystemExit(3)
        finally:
            self.ws = None
            if "no_replay" in self.faults:
                self.unacked.clear()
        # Our own view of how it ended: no close frame from the server is 1006.
        if ws.close_rcvd is not None:
            code = ws.close_rcvd.code
        if time.monotonic() - opened >= STABLE_AFTER and "reset_on_open" not in self.faults:
            self.attempt = 0                      # CLI-047
        return code

    async def _resume(self):
        """After (re)connecting: re-watch every live ticket (CLI-050), then
        replay every unacknowledged enqueue with its key (CLI-011)."""
        if "no_rewatch" not in self.faults:
            for tid, t in list(self.tickets.items()):
                if t["state"] in FINAL and "rewatch_final" not in self.faults:
                    continue
                self.rewatching.add(tid)
                await self._request("watch", {"ticketId": tid}, ("rewatch", tid))
        for ref, data in list(self.unacked.items()):
            replay = ref in self.sent_refs
            await self._send_enqueue(ref, self._replay_data(data) if replay else data)

    # ---- receiving (CLI-020..CLI-027) ------------------------------------------

    def _protocol_error(self, detail):
        self.emit({"event": "protocolError", "detail": detail[:300]})

    async def _receive(self, data):
        if isinstance(data, bytes):
            if "parse_binary" not in self.faults:
                self._protocol_error("binary frame ignored (CLI-026)")
                return
            data = data.decode("utf-8", "replace")
        try:
            m = strict_loads(data, lax_names="duplicate_names_accepted" in self.faults)
            if not isinstance(m, dict) or not isinstance(m.get("type"), str) \
                    or not isinstance(m.get("data"), dict) or type(m.get("v")) is not int:
                raise ValueError("not an envelope")
        except ValueError as e:
            if "crash_on_malformed" in self.faults:
                raise Crash("malformed message: %s" % e)
            self._protocol_error("malformed message ignored: %s" % e)
            return
        t, d = m["type"], m["data"]
        if "uuid_ticket_ids" in self.faults and "ticketId" in d and not UUID4_RE.match(str(d["ticketId"])):
            self._protocol_error("ticketId is not a UUID v4")
            return
        if t not in SCHEMA_MEMBERS:
            if "crash_on_unknown_type" in self.faults:
                raise Crash("unknown type %s" % t)
            return                                   # CLI-022: ignored
        if m["v"] != 1 and "ignore_version" not in self.faults:
            return                                   # CLI-023: ignored
        if "strict_members" in self.faults:
            extra = set(m) - {"type", "v", "id", "data"} or set(d) - SCHEMA_MEMBERS[t]
            if extra:
                self._protocol_error("unknown members %s" % sorted(extra))
                return
        try:
            await getattr(self, "_on_" + t.replace(".", "_"))(m, d)
        except (KeyError, TypeError, AttributeError) as e:
            self._protocol_error("%s does not match its schema: %s" % (t, e))

    def _take(self, m):
        rid = m.get("id")
        return self.inflight.pop(rid, None) if isinstance(rid, str) else None

    async def _on_enqueued(self, m, d):
        req = self._take(m)
        if not req or req[0] != "enqueue":
            return
        ref, tid = req[1], d["ticketId"]
        if not isinstance(tid, str) or not tid:
            raise TypeError("ticketId")
        self.unacked.pop(ref, None)
        fresh = tid not in self.tickets
        t = self.tickets.setdefault(tid, {"state": d["state"], "version": d["version"]})
        if d["version"] > t["version"]:
            t.update(state=d["state"], version=d["version"])
        if fresh:
            self.emit({"event": "enqueued", "ref": ref, "ticketId": tid, "state": d["state"],
                       "version": d["version"]})
        early = self.early.pop(tid, None)
        if early is not None:
            await self._apply(early)

    async def _on_watching(self, m, d):
        req = self._take(m)
        tid = d["ticketId"]
        t = self.tickets.setdefault(tid, {"state": "queued", "version": 0})
        self.rewatching.discard(tid)
        if d["version"] > t["version"]:
            if d["state"] in ("cancelled", "expired") and t["state"] not in FINAL:
                self.emit({"event": "ended", "ticketId": tid, "state": d["state"], "version": d["version"]})
            if d["state"] != "assigned":     # the assignment itself comes as a push (MSG-041)
                t.update(state=d["state"], version=d["version"])
        if req and req[0] == "watch":
            self.emit({"event": "watching", "ticketId": tid, "state": d["state"], "version": d["version"]})

    async def _on_cancelled(self, m, d):
        self._take(m)
        tid = d["ticketId"]
        t = self.tickets.setdefault(tid, {"state": "queued", "version": 0})
        if d["version"] > t["version"]:
            t.update(state="cancelled", version=d["version"])
            self.emit({"event": "ended", "ticketId": tid, "state": "cancelled", "version": d["version"]})

    async def _on_pong(self, m, d):
        self._take(m)

    async def _on_match_assigned(self, m, d):
        tid = d["ticketId"]
        if not isinstance(tid, str) or type(d["version"]) is not int:
            raise TypeError("ticketId/version")
        if tid not in self.tickets:
            pending_enqueue = any(r[0] == "enqueue" for r in self.inflight.values())
            if pending_enqueue and "drop_early_push" not in self.faults:
                self.early[tid] = d                  # CLI-027: held until the reply
            return
        await self._apply(d)

    async def _apply(self, d):
        """At most once per ticket, across connections (CLI-030, CLI-031)."""
        tid, version = d["ticketId"], d["version"]
        seen = self.conn_applied if "no_dedup_across_reconnect" in self.faults else self.applied
        if seen.get(tid, 0) >= version:
            return
        t = self.tickets.setdefault(tid, {"state": "queued", "version": 0})
        if t["state"] in ("cancelled", "expired") and t["version"] >= version \
                and "accept_stale_version" not in self.faults:
            return
        a = d["assignment"]
        if "strict_timestamps" in self.faults and not STRICT_TS_RE.match(str(a.get("assignedAt"))):
            self._protocol_error("assignedAt is not YYYY-MM-DDTHH:MM:SS.sssZ")
            return
        seen[tid] = version
        self.applied.setdefault(tid, version)
        t.update(state="assigned", version=max(version, t["version"]))
        self.emit({"event": "assigned", "ticketId": tid, "version": version, "matchId": a["matchId"],
                   "connection": a["connection"]})

    async def _on_ticket_expired(self, m, d):
        await self._ended(d, "expired")

    async def _on_ticket_cancelled(self, m, d):
        await self._ended(d, "cancelled")

    async def _ended(self, d, state):
        tid, version = d["ticketId"], d["version"]
        t = self.tickets.get(tid)
        if t is None:
            return
        if (t["version"] >= version or t["state"] in FINAL) and "accept_stale_version" not in self.faults:
            return                                   # CLI-031: never go back
        t.update(state=state, version=version)
        self.emit({"event": "ended", "ticketId": tid, "state": state, "version": version})

    async def _on_error(self, m, d):
        req = self._take(m)
        code, retryable = d["code"], d["retryable"]
        if not isinstance(code, str) or not isinstance(retryable, bool):
            raise TypeError("code/retryable")
        if code not in KNOWN_CODES and "unknown_code_fatal" in self.faults:
            self._protocol_error("unknown error code %s" % code)
            if req is not None and req[0] == "enqueue":
                self.emit({"event": "error", "ref": req[1], "code": code, "retryable": retryable})
            self.closing = True
            await self.ws.close(1000)
            self.emit({"event": "closed", "code": 1000, "reconnect": False})
            return
        if req is None:
            return
        kind, what, data = req
        if kind == "rewatch" and code == "not_found":
            self.rewatching.discard(what)        # CLI-051: the ticket is gone
            if self.tickets.pop(what, None) is not None and "ignore_lost" not in self.faults:
                self.emit({"event": "lost", "ticketId": what})
            return
        if kind == "enqueue":
            if code == "rate_limited":
                self.paused_until = time.monotonic() + RATE_LIMITED_PAUSE
            if retryable and not (code == "unavailable" and "unavailable_fatal" in self.faults):
                delay = max(random.uniform(FLOOR, 2 * FLOOR),
                            RATE_LIMITED_PAUSE if code == "rate_limited" else 0)
                if "rate_limited_hot_loop" in self.faults:
                    delay = 0
                    self.paused_until = 0
                asyncio.ensure_future(self._retry_later(what, delay))
                return
            if "retry_non_retryable" in self.faults:
                asyncio.ensure_future(self._retry_later(what, 0.05))
            else:
                self.unacked.pop(what, None)
            self.emit({"event": "error", "ref": what, "code": code, "retryable": retryable})
            return
        ev = {"event": "error", "code": code, "retryable": retryable}
        ev["ticketId"] = what
        self.emit(ev)
