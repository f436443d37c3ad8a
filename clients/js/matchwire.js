// Matchwire JavaScript client: one ES module, no dependencies. It speaks
// spec/envelope.md and spec/messages.md and does what spec/client.md asks of
// a client (requirement ids CLI-nnn in the comments). In a browser it uses the
// platform WebSocket; on Node (no global WebSocket before 22) pass one, for
// example the `ws` package's: new MatchwireClient({ url, WebSocket: WS }).
//
//   const mw = new MatchwireClient({ url: "wss://host/realtime", token });
//   mw.on("assigned", (e) => join(e.connection, e.matchId));
//   mw.connect();
//   mw.enqueue({ queue: "ranked", playerId: "alice" });
//
// Events (one object each, `event` names it; the client kit's adapter shape):
// open, enqueued, assigned, ended, error, closed, lost, protocolError,
// watching, reconnecting, tokenRefresh. See clients/js/README.md.

export const SUBPROTOCOL = "matchwire.v1";

// Timing and limits of spec/client.md, in milliseconds.
export const DEFAULTS = Object.freeze({
  floor: 250, // CLI-043
  cap: 10000, // CLI-045
  stableAfter: 5000, // CLI-047: attempts reset after a connection stayed open 5 s
  rate: 10, // CLI-060: tokens per second
  burst: 20, // CLI-060
  rateLimitedPause: 1000, // CLI-061
  idleBeforePing: 10000, // CLI-071
  pongTimeout: 10000, // CLI-071
  connectTimeout: 10000,
  retryAfterMax: 60000, // CLI-046
  requestRetries: 12, // CLI-012: the bound after which a retryable error is reported
  appliedRetention: 900000, // CLI-030: remember applied assignments 15 min (server keeps 10)
});

const TERMINAL_CLOSE = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010, 1015]); // CLI-041
const RETRY_STATUS = new Set([408, 429]); // plus every 5xx (CLI-042)
// Node's codes for a server certificate that fails verification (CLI-004).
const CERT_ERROR_RE = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|HOSTNAME_MISMATCH/;
const FINAL = new Set(["assigned", "cancelled", "expired"]);
const ENDED = new Set(["cancelled", "expired"]);
const PRUNE_AT = 2000; // remembered tickets and assignments before old ones are pruned
const MAX_EARLY = 64; // bound on pushes held for an unanswered enqueue (CLI-027)

// ---- strict decoding (envelope.md sections 1 to 3) -------------------------

const MAX_BYTES = 65536; // ENV-030
const MAX_DEPTH = 32; // ENV-031
const TYPE_RE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/; // ENV-022
const V_RE = /^[1-9][0-9]*$/; // ENV-023
const ID_RE = /^[\x20-\x7e]{1,64}$/; // ENV-025
const PLAIN_RE = /[^"\\\x00-\x1f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]*/y;
const NUM_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

export class DecodeError extends Error {
  constructor(code, detail) {
    super(code + ": " + detail);
    this.code = code;
  }
}

function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function badCodePoint(cp) {
  // ENV-005 (noncharacters) and ENV-006 (U+0000).
  return cp === 0 || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe;
}

// Parses one strict I-JSON text (ENV-001..ENV-010, ENV-031). Returns
// { value, rawV } where rawV is the literal text of a top-level `v` number.
function strictParse(text) {
  let i = 0;
  let rawV;
  const fail = (what) => {
    throw new DecodeError("bad_json", what + " at " + i);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const hex4 = () => {
    const h = text.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail("bad \\u escape");
    i += 4;
    return parseInt(h, 16);
  };
  const str = () => {
    i++; // opening quote
    let out = "";
    let run = i; // start of the current run of plain characters
    for (;;) {
      PLAIN_RE.lastIndex = i; // skip a run of characters that need no check
      PLAIN_RE.test(text);
      i = PLAIN_RE.lastIndex;
      if (i >= text.length) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(run, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c === 0x5c) {
        out += text.slice(run, i);
        const e = text[i + 1];
        i += 2;
        const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }[e];
        if (simple !== undefined) out += simple;
        else {
          if (e !== "u") fail("bad escape");
          let cp = hex4();
          if (cp >= 0xdc00 && cp <= 0xdfff) fail("unpaired surrogate"); // ENV-004
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (text[i] !== "\\" || text[i + 1] !== "u") fail("unpaired surrogate");
            i += 2;
            const lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          if (badCodePoint(cp)) fail("forbidden code point"); // ENV-005, ENV-006
          out += String.fromCodePoint(cp);
        }
        run = i;
        continue;
      }
      // 0xd800 and above: surrogate pairs and the last noncharacters.
      let cp = c;
      if (c >= 0xd800 && c <= 0xdbff) {
        const lo = text.charCodeAt(i + 1);
        if (!(lo >= 0xdc00 && lo <= 0xdfff)) fail("unpaired surrogate");
        cp = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      } else if (c >= 0xdc00 && c <= 0xdfff) fail("unpaired surrogate");
      if (badCodePoint(cp)) fail("forbidden code point");
      i++;
    }
  };
  const value = (depth, topKey) => {
    ws();
    const c = text[i];
    if (c === "{" || c === "[") {
      if (depth + 1 > MAX_DEPTH) throw new DecodeError("too_deep", "nesting over " + MAX_DEPTH);
      i++;
      ws();
      if (c === "[") {
        const arr = [];
        if (text[i] === "]") {
          i++;
          return arr;
        }
        for (;;) {
          arr.push(value(depth + 1));
          ws();
          if (text[i] === ",") i++;
          else if (text[i] === "]") {
            i++;
            return arr;
          } else fail("expected , or ]");
        }
      }
      const obj = {};
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a member name");
        const k = str();
        if (Object.prototype.hasOwnProperty.call(obj, k)) fail("duplicate member " + JSON.stringify(k)); // ENV-007
        ws();
        if (text[i] !== ":") fail("expected :");
        i++;
        const v = value(depth + 1, depth === 0 ? k : undefined);
        if (k !== "__proto__") obj[k] = v;
        else Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return obj;
        } else fail("expected , or }");
      }
    }
    if (c === '"') return str();
    if (text.startsWith("true", i)) {
      i += 4;
      return true;
    }
    if (text.startsWith("false", i)) {
      i += 5;
      return false;
    }
    if (text.startsWith("null", i)) {
      i += 4;
      return null;
    }
    NUM_RE.lastIndex = i;
    const m = NUM_RE.exec(text);
    if (!m) fail("unexpected character");
    const n = Number(m[0]);
    if (!Number.isFinite(n)) fail("number out of range"); // ENV-008
    if (topKey === "v") rawV = m[0];
    i += m[0].length;
    return n;
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("bytes after the value");
  return { value: v, rawV };
}

function checkedParse(text) {
  if (text.length > MAX_BYTES || (text.length * 3 > MAX_BYTES && utf8Length(text) > MAX_BYTES))
    throw new DecodeError("too_large", "over " + MAX_BYTES + " bytes"); // ENV-030
  if (text.charCodeAt(0) === 0xfeff) throw new DecodeError("bad_json", "byte order mark"); // ENV-002
  return strictParse(text);
}

// Parses a strict I-JSON text (envelope.md section 1 and the limits of
// section 3); throws DecodeError with code bad_json, too_deep or too_large.
export function parseStrictJSON(text) {
  return checkedParse(text).value;
}

// Decodes one text message into an envelope; throws DecodeError with
// bad_json, too_deep, too_large or bad_envelope (envelope.md sections 1-3).
export function decodeEnvelope(text) {
  const { value: m, rawV } = checkedParse(text);
  const bad = (d) => {
    throw new DecodeError("bad_envelope", d);
  };
  if (m === null || typeof m !== "object" || Array.isArray(m)) bad("not an object");
  if (typeof m.type !== "string" || utf8Length(m.type) > 64 || !TYPE_RE.test(m.type)) bad("type");
  if (rawV === undefined || !V_RE.test(rawV) || m.v > 2147483647) bad("v");
  if (m.data === null || typeof m.data !== "object" || Array.isArray(m.data)) bad("data");
  if (m.id !== undefined && (typeof m.id !== "string" || !ID_RE.test(m.id))) bad("id");
  return m;
}

// ---- local validation of requests (CLI-003: messages.md MSG-020..MSG-023) --

const QUEUE_RE = /^[a-z0-9_-]{1,64}$/;

export function validateEnqueue(queue, playerId, attributes, key) {
  if (typeof queue !== "string" || !QUEUE_RE.test(queue)) return "queue must be 1 to 64 bytes of a-z 0-9 _ - (MSG-020)";
  if (typeof playerId !== "string" || playerId.length === 0 || utf8Length(playerId) > 128)
    return "playerId must be 1 to 128 bytes (MSG-021)";
  if (attributes !== undefined && attributes !== null) {
    if (typeof attributes !== "object" || Array.isArray(attributes) || Object.keys(attributes).length > 16)
      return "attributes: an object of at most 16 members (MSG-022)";
    for (const [k, v] of Object.entries(attributes)) {
      if (typeof v === "number" ? !Number.isFinite(v) : typeof v !== "string")
        return "attribute " + k + ": a string or a finite number (MSG-022)";
      if (typeof v === "string" && utf8Length(v) > 256) return "attribute " + k + ": at most 256 bytes (MSG-022)";
    }
    const r = attributes.region;
    if (r !== undefined && !(typeof r === "string" && r.length > 0 && utf8Length(r) <= 64))
      return "region: 1 to 64 bytes (MSG-022)";
  }
  if (key !== undefined && (typeof key !== "string" || key.length === 0 || utf8Length(key) > 64))
    return "idempotencyKey: 1 to 64 bytes (MSG-023)";
  return null;
}

// ---- what the client needs of each known message (CLI-020) -----------------

const isId = (x) => typeof x === "string" && x.length > 0; // CLI-028: opaque, any non-empty string
const isVersion = (x) => Number.isSafeInteger(x) && x >= 0;
const isObj = (x) => x !== null && typeof x === "object" && !Array.isArray(x);
const NEEDS = {
  enqueued: (d) => isId(d.ticketId) && typeof d.state === "string" && isVersion(d.version),
  watching: (d) => isId(d.ticketId) && typeof d.state === "string" && isVersion(d.version),
  cancelled: (d) => isId(d.ticketId) && isVersion(d.version),
  "match.assigned": (d) =>
    isId(d.ticketId) &&
    isVersion(d.version) &&
    isObj(d.assignment) &&
    typeof d.assignment.matchId === "string" &&
    typeof d.assignment.connection === "string",
  "ticket.expired": (d) => isId(d.ticketId) && isVersion(d.version),
  "ticket.cancelled": (d) => isId(d.ticketId) && isVersion(d.version),
  pong: () => true,
  error: (d) => typeof d.code === "string" && typeof d.retryable === "boolean",
};

function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}

const monotonic = () => globalThis.performance.now();

// ---- the client ------------------------------------------------------------

export class MatchwireClient {
  /**
   * options: url (ws:// or wss://, path /realtime), WebSocket (a constructor
   * with the browser API; default globalThis.WebSocket), token (a player
   * token, sent as access_token), refreshToken (async () => new token or
   * null; called after close 4003 or a 401 refusal), and timing overrides
   * (DEFAULTS) for tests.
   */
  constructor(options = {}) {
    this.url = options.url;
    this.token = options.token ?? null;
    this.refreshToken = options.refreshToken ?? null;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== "function")
      throw new TypeError("no WebSocket: pass options.WebSocket (on Node, the ws package's)");
    this.cfg = { ...DEFAULTS, ...(options.timing || {}) };
    this._handlers = new Map();
    this._sock = null; // the current socket, connecting or open
    this._open = false;
    this._running = false; // between connect() and a stop
    this._closing = false; // the application closed: never reconnect (CLI-080)
    this._attempt = 0; // consecutive failed attempts (section 5.2)
    this._unauthorized = 0; // consecutive 401 refusals (section 9)
    this._timers = new Set();
    this.tickets = new Map(); // ticketId -> { state, version } (CLI-031)
    this._applied = new Map(); // ticketId -> { version, at } (CLI-030, across connections)
    this._unacked = new Map(); // ref -> enqueue data without a reply (CLI-011)
    this._inflight = new Map(); // request id -> { kind, key, type, data, tries }
    this._early = new Map(); // ticketId -> match.assigned data before its enqueued (CLI-027)
    this._pendingCancel = new Set(); // cancels asked for while disconnected
    this._outbox = []; // paced frames waiting for a token (CLI-060)
    this._seq = 0;
    this._refSeq = 0;
    this._bucket = this.cfg.burst;
    this._bucketAt = monotonic();
    this._pausedUntil = 0;
  }

  // ---- application API -----------------------------------------------------

  /** Subscribes fn to an event name, or "*" for every event. Returns this. */
  on(name, fn) {
    if (!this._handlers.has(name)) this._handlers.set(name, new Set());
    this._handlers.get(name).add(fn);
    return this;
  }

  off(name, fn) {
    this._handlers.get(name)?.delete(fn);
    return this;
  }

  /** Opens the connection; the client reconnects by itself (section 5). */
  connect() {
    if (this._running || this._closing) return;
    this._running = true; // until it stops by itself (then connect() starts it again)
    this._attempt = 0;
    this._unauthorized = 0;
    this._dial();
  }

  /**
   * Asks for a ticket. {queue, playerId, attributes?, idempotencyKey?, ref?}.
   * Returns the ref that names the request in the events about it. A request
   * that breaks MSG-020..023 is refused locally (an `error` event, code
   * bad_message) and never sent (CLI-003).
   */
  enqueue({ queue, playerId, attributes, idempotencyKey, ref } = {}) {
    ref = ref ?? "e" + ++this._refSeq;
    const key = idempotencyKey ?? randomHex(16); // CLI-010: a new 128-bit key per ticket asked for
    const problem = validateEnqueue(queue, playerId, attributes, key);
    if (problem) {
      this._emit({ event: "error", ref, code: "bad_message", retryable: false, local: true, detail: problem });
      return ref;
    }
    const data = { queue, playerId };
    if (attributes !== undefined && attributes !== null) data.attributes = attributes;
    data.idempotencyKey = key;
    this._unacked.set(ref, data);
    if (this._open) this._request("enqueue", data, "enqueue", ref);
    return ref;
  }

  /** Watches a ticket (MSG-040); it is re-watched after every reconnect. */
  watch(ticketId) {
    if (!this.tickets.has(ticketId)) this.tickets.set(ticketId, { state: "queued", version: 0 });
    if (this._open) this._request("watch", { ticketId }, "watch", ticketId);
  }

  /** Cancels a ticket (sent on the next connection when not connected). */
  cancel(ticketId) {
    if (this._open) this._request("cancel", { ticketId }, "cancel", ticketId);
    else this._pendingCancel.add(ticketId);
  }

  /**
   * Closes with 1000 and never reconnects (CLI-080). Returns a promise that
   * resolves when the socket has closed (at most 2 s).
   */
  close() {
    if (this._closing) return Promise.resolve();
    this._closing = true;
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    const s = this._sock;
    this._sock = null;
    this._open = false;
    let done = Promise.resolve();
    if (s) {
      done = new Promise((resolve) => {
        s.addEventListener("close", () => resolve());
        setTimeout(resolve, 2000).unref?.();
      });
      try {
        s.close(1000);
      } catch (e) {
        /* already closing */
      }
    }
    this._emit({ event: "closed", code: 1000, reconnect: false });
    return done;
  }

  // ---- events ----------------------------------------------------------------

  _emit(ev) {
    for (const name of [ev.event, "*"]) {
      for (const fn of this._handlers.get(name) || []) {
        try {
          fn(ev);
        } catch (e) {
          (globalThis.reportError || console.error)(e);
        }
      }
    }
  }

  _protocolError(detail) {
    this._emit({ event: "protocolError", detail: String(detail).slice(0, 300) });
  }

  _later(ms, fn) {
    const t = setTimeout(() => {
      this._timers.delete(t);
      fn();
    }, ms);
    this._timers.add(t);
    return t;
  }

  _cancelTimer(t) {
    if (t !== undefined && t !== null) {
      clearTimeout(t);
      this._timers.delete(t);
    }
  }

  // ---- connecting (section 5) --------------------------------------------------

  _socketUrl() {
    if (!this.token) return this.url;
    return this.url + (this.url.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(this.token);
  }

  _dial() {
    const h = { status: 0, retryAfter: 0, wrongProtocol: false, done: false, openedAt: 0 };
    let s;
    try {
      s = new this.WebSocket(this._socketUrl(), [SUBPROTOCOL]); // CLI-001
    } catch (e) {
      this._protocolError("cannot open a WebSocket: " + e.message);
      this._stop(null, null);
      return;
    }
    this._sock = s;
    this._h = h;
    s.binaryType = "arraybuffer";
    const mine = () => this._sock === s && !h.done;
    if (typeof s.on === "function") {
      // Node's ws: the HTTP status of a refused handshake and the selected
      // subprotocol are visible (a browser shows neither: both look like 1006).
      s.on("unexpected-response", (req, res) => {
        h.status = res.statusCode;
        const ra = res.headers?.["retry-after"];
        if (typeof ra === "string" && /^\s*\d+\s*$/.test(ra))
          h.retryAfter = Math.min(Number(ra) * 1000, this.cfg.retryAfterMax); // CLI-046
        res.resume?.();
        s.terminate();
      });
      s.on("upgrade", (res) => {
        if (res.headers?.["sec-websocket-protocol"] !== SUBPROTOCOL) h.wrongProtocol = true;
      });
      s.on("ping", () => this._alive());
      s.on("pong", () => this._alive());
    }
    h.timer = this._later(this.cfg.connectTimeout, () => {
      if (mine() && !this._open) this._abandon(s, h, "handshake timeout");
    });
    s.addEventListener("open", () => {
      if (!mine()) return;
      this._cancelTimer(h.timer);
      if (s.protocol !== SUBPROTOCOL) {
        h.wrongProtocol = true; // CLI-001: fail the connection, never retry
        this._abandon(s, h, "server selected subprotocol " + JSON.stringify(s.protocol));
        return;
      }
      h.openedAt = monotonic();
      this._startSession(s);
    });
    s.addEventListener("message", (ev) => {
      if (mine() && this._open) this._receive(ev.data);
    });
    s.addEventListener("error", (ev) => {
      // Node's ws passes the cause: a certificate that fails verification
      // is close code 1015 to a client that can see it, and stops (CLI-004).
      const code = ev?.error?.code;
      if (typeof code === "string" && CERT_ERROR_RE.test(code)) h.certError = code;
    }); // a close event follows
    s.addEventListener("close", (ev) => {
      if (!mine()) return;
      this._ended(s, h, this._open ? ev.code : null);
    });
  }

  // Gives a socket up without waiting for its close handshake (liveness,
  // wrong subprotocol, handshake timeout), then goes on as after its close.
  _abandon(s, h, why) {
    if (why) this._protocolError(why);
    this._ended(s, h, this._open ? 1006 : null); // first: the socket's own close event is then ignored
    try {
      if (typeof s.terminate === "function") s.terminate();
      else s.close();
    } catch (e) {
      /* nothing to do */
    }
  }

  // A connection ended (code: its close code) or an attempt failed (code null).
  _ended(s, h, code) {
    if (h.done) return;
    h.done = true;
    this._cancelTimer(h.timer);
    this._stopSession();
    if (this._sock === s) this._sock = null;
    if (this._closing) return;
    if (h.openedAt && monotonic() - h.openedAt >= this.cfg.stableAfter) this._attempt = 0; // CLI-047
    if (h.openedAt) this._unauthorized = 0;
    if (code !== null) {
      if (code === 4003) return this._refreshThenRetry(code, 0); // section 9: token expired
      if (TERMINAL_CLOSE.has(code)) return this._stop(code, null); // CLI-041
      this._emit({ event: "closed", code, reconnect: true }); // CLI-040: every other code
      return this._retry(0);
    }
    if (h.wrongProtocol) return this._stop(null, null); // CLI-001
    if (h.certError) {
      this._protocolError("server certificate refused: " + h.certError);
      return this._stop(1015, null); // CLI-004, CLI-041
    }
    const st = h.status;
    if (st !== 401) this._unauthorized = 0;
    if (st === 401) {
      // section 9: refresh and retry once; a second 401 in a row stops.
      if (++this._unauthorized >= 2) return this._stop(null, 401);
      return this._refreshThenRetry(null, h.retryAfter, 401);
    }
    if (st && !(RETRY_STATUS.has(st) || (st >= 500 && st <= 599))) return this._stop(null, st); // CLI-042
    this._retry(h.retryAfter); // a retryable status, TCP refused, DNS, timeout
  }

  _stop(code, status) {
    this._running = false;
    const ev = { event: "closed", code, reconnect: false };
    if (status) ev.status = status;
    this._emit(ev);
  }

  async _refreshThenRetry(code, retryAfter, status) {
    let t = null;
    if (typeof this.refreshToken === "function") {
      this._emit({ event: "tokenRefresh" });
      try {
        t = await this.refreshToken();
      } catch (e) {
        t = null;
      }
    }
    if (this._closing) return;
    if (typeof t !== "string" || t === "") return this._stop(code, status ?? null);
    this.token = t;
    if (code !== null) this._emit({ event: "closed", code, reconnect: true });
    this._retry(retryAfter);
  }

  // Full jitter in [floor, min(cap, floor * 2^n)] (CLI-043..045).
  _delay(n) {
    const hi = Math.min(this.cfg.cap, this.cfg.floor * 2 ** Math.min(n, 30));
    return this.cfg.floor + Math.random() * (hi - this.cfg.floor);
  }

  _retry(retryAfter) {
    this._attempt++;
    const delay = Math.max(this._delay(this._attempt), retryAfter);
    this._emit({ event: "reconnecting", attempt: this._attempt, delayMs: Math.round(delay) });
    this._later(delay, () => {
      if (!this._closing && !this._sock) this._dial();
    });
  }

  // ---- a session -------------------------------------------------------------

  _startSession(s) {
    this._open = true;
    this._gen = (this._gen || 0) + 1;
    this._inflight.clear();
    this._outbox = [];
    this._emit({ event: "open" });
    this._alive();
    // CLI-050: re-watch every live ticket first, then replay the enqueues
    // that got no reply (CLI-011), then cancels asked for while away.
    for (const [tid, t] of this.tickets) {
      if (!FINAL.has(t.state)) this._request("watch", { ticketId: tid }, "rewatch", tid);
    }
    for (const [ref, data] of this._unacked) this._request("enqueue", data, "enqueue", ref);
    for (const tid of this._pendingCancel) this._request("cancel", { ticketId: tid }, "cancel", tid);
    this._pendingCancel.clear();
  }

  _stopSession() {
    this._open = false;
    this._cancelTimer(this._idleTimer);
    this._cancelTimer(this._pongTimer);
    this._cancelTimer(this._pumpTimer);
    this._idleTimer = this._pongTimer = this._pumpTimer = null;
    // Cancels that were asked for but not answered are sent again next time.
    for (const r of this._inflight.values()) if (r.kind === "cancel") this._pendingCancel.add(r.key);
    for (const f of this._outbox) if (f.kind === "cancel") this._pendingCancel.add(f.key);
    this._inflight.clear();
    this._outbox = [];
  }

  // Liveness (CLI-071): something arrived; after 10 s of silence send a ping
  // (a WebSocket ping where the implementation has one, else a `ping`
  // message), and give the connection up when 10 s more pass in silence.
  _alive() {
    this._cancelTimer(this._pongTimer);
    this._pongTimer = null;
    this._cancelTimer(this._idleTimer);
    const s = this._sock;
    this._idleTimer = this._later(this.cfg.idleBeforePing, () => {
      if (this._sock !== s || !this._open) return;
      if (typeof s.ping === "function") {
        try {
          s.ping();
        } catch (e) {
          /* the close event follows */
        }
      } else {
        this._request("ping", {}, "ping", null);
      }
      this._pongTimer = this._later(this.cfg.pongTimeout, () => {
        if (this._sock === s && this._open) {
          this._protocolError("no answer for " + (this.cfg.idleBeforePing + this.cfg.pongTimeout) + " ms");
          this._abandon(s, this._h, null);
        }
      });
    });
  }

  // ---- sending (CLI-002, CLI-060, CLI-061) -------------------------------------

  _request(type, data, kind, key, tries = 0) {
    const id = "r" + ++this._seq; // CLI-002: unique per connection
    this._outbox.push({ id, type, data, kind, key, tries });
    this._pump();
  }

  _pump() {
    if (this._pumpTimer || !this._open) return;
    while (this._outbox.length) {
      const t = monotonic();
      if (t < this._pausedUntil) {
        this._pumpLater(this._pausedUntil - t);
        return;
      }
      this._bucket = Math.min(this.cfg.burst, this._bucket + ((t - this._bucketAt) / 1000) * this.cfg.rate);
      this._bucketAt = t;
      if (this._bucket < 1) {
        this._pumpLater(((1 - this._bucket) / this.cfg.rate) * 1000);
        return;
      }
      this._bucket -= 1;
      const f = this._outbox.shift();
      this._inflight.set(f.id, f);
      try {
        this._sock.send(JSON.stringify({ type: f.type, v: 1, id: f.id, data: f.data }));
      } catch (e) {
        return; // the close event follows; unacked enqueues are replayed
      }
    }
  }

  _pumpLater(ms) {
    this._pumpTimer = this._later(Math.max(1, Math.ceil(ms)), () => {
      this._pumpTimer = null;
      this._pump();
    });
  }

  // ---- receiving (CLI-020..CLI-029) --------------------------------------------

  _receive(raw) {
    this._alive();
    if (typeof raw !== "string") {
      this._protocolError("binary message ignored (CLI-026)");
      return;
    }
    let m;
    try {
      m = decodeEnvelope(raw);
    } catch (e) {
      this._protocolError("malformed message ignored: " + e.message);
      return;
    }
    const check = NEEDS[m.type];
    if (!check) return; // CLI-022: unknown type, ignored
    if (m.v !== 1) return; // CLI-023: a version this client does not know
    if (!check(m.data)) {
      this._protocolError(m.type + " lacks members it needs");
      return;
    }
    const req = typeof m.id === "string" ? this._inflight.get(m.id) : undefined;
    if (req) this._inflight.delete(m.id);
    const d = m.data;
    switch (m.type) {
      case "enqueued":
        return this._onEnqueued(req, d);
      case "watching":
        return this._onWatching(req, d);
      case "cancelled":
        return this._onCancelled(d);
      case "match.assigned":
        return this._onAssigned(d);
      case "ticket.expired":
        return this._onEnded(d, "expired");
      case "ticket.cancelled":
        return this._onEnded(d, "cancelled");
      case "error":
        return this._onError(req, d);
      default:
        return; // pong: only liveness
    }
  }

  _onEnqueued(req, d) {
    if (!req || req.kind !== "enqueue") return;
    const ref = req.key;
    const tid = d.ticketId;
    if (!this._unacked.has(ref)) return; // already answered on another connection
    this._unacked.delete(ref);
    const fresh = !this.tickets.has(tid);
    if (fresh) this.tickets.set(tid, { state: d.state, version: d.version });
    const t = this.tickets.get(tid);
    if (d.version > t.version) Object.assign(t, { state: d.state, version: d.version });
    if (fresh) this._emit({ event: "enqueued", ref, ticketId: tid, state: d.state, version: d.version });
    const early = this._early.get(tid);
    if (early) {
      this._early.delete(tid);
      this._apply(early);
    }
  }

  _onWatching(req, d) {
    const tid = d.ticketId;
    if (!req || (req.kind !== "watch" && req.kind !== "rewatch") || req.key !== tid) return;
    if (!this.tickets.has(tid)) this.tickets.set(tid, { state: "queued", version: 0 });
    const t = this.tickets.get(tid);
    if (d.version > t.version) {
      if (ENDED.has(d.state) && !FINAL.has(t.state))
        this._emit({ event: "ended", ticketId: tid, state: d.state, version: d.version }); // CLI-052
      // An assignment itself comes as the push that follows (MSG-041).
      if (d.state !== "assigned") Object.assign(t, { state: d.state, version: d.version });
    }
    if (req.kind === "watch") this._emit({ event: "watching", ticketId: tid, state: d.state, version: d.version });
  }

  _onCancelled(d) {
    const tid = d.ticketId;
    const t = this.tickets.get(tid);
    if (t && (d.version <= t.version || FINAL.has(t.state))) return; // CLI-031
    this._prune(monotonic());
    this.tickets.set(tid, { state: "cancelled", version: d.version, at: monotonic() });
    this._emit({ event: "ended", ticketId: tid, state: "cancelled", version: d.version });
  }

  _onAssigned(d) {
    const tid = d.ticketId;
    if (!this.tickets.has(tid)) {
      const waiting = [...this._inflight.values(), ...this._outbox].some((r) => r.kind === "enqueue");
      if (waiting && this._early.size < MAX_EARLY) this._early.set(tid, d); // CLI-027
      return;
    }
    this._apply(d);
  }

  // Bounds what a long-lived client remembers: once it holds more than
  // PRUNE_AT entries, tickets that ended and applied assignments older than
  // the retention (15 min, above the server's 10, CLI-030) are forgotten.
  _prune(now) {
    if (this.tickets.size + this._applied.size < PRUNE_AT) return;
    const old = now - this.cfg.appliedRetention;
    for (const [k, a] of this._applied) if (a.at < old) this._applied.delete(k);
    for (const [k, t] of this.tickets) {
      if (FINAL.has(t.state) && (t.at ?? 0) < old && !this._applied.has(k)) this.tickets.delete(k);
    }
  }

  // At most once per ticket, across connections (CLI-030, CLI-031).
  _apply(d) {
    const tid = d.ticketId;
    const seen = this._applied.get(tid);
    if (seen && seen.version >= d.version) return;
    const t = this.tickets.get(tid) || { state: "queued", version: 0 };
    if (ENDED.has(t.state) && t.version >= d.version) return; // ended first: no going back
    const now = monotonic();
    this._prune(now);
    this._applied.set(tid, { version: d.version, at: now });
    this.tickets.set(tid, { state: "assigned", version: Math.max(d.version, t.version), at: now });
    const a = d.assignment;
    this._emit({
      event: "assigned",
      ticketId: tid,
      version: d.version,
      matchId: a.matchId,
      connection: a.connection,
      assignment: a,
    });
  }

  _onEnded(d, state) {
    const t = this.tickets.get(d.ticketId);
    if (!t || t.version >= d.version || FINAL.has(t.state)) return; // CLI-031: never back
    this._prune(monotonic());
    Object.assign(t, { state, version: d.version, at: monotonic() });
    this._emit({ event: "ended", ticketId: d.ticketId, state, version: d.version }); // CLI-032
  }

  _onError(req, d) {
    if (!req) return; // an error about no request of ours (or of an earlier connection)
    const { code, retryable } = d; // CLI-024: by `retryable`, whatever the code
    if (req.kind === "rewatch" && code === "not_found") {
      // CLI-051: the ticket is gone; tell the application, never watch it again.
      if (this.tickets.delete(req.key)) this._emit({ event: "lost", ticketId: req.key });
      return;
    }
    if (req.kind === "ping") return;
    if (code === "rate_limited") this._pausedUntil = monotonic() + this.cfg.rateLimitedPause; // CLI-061
    if (retryable && req.tries < this.cfg.requestRetries) {
      // CLI-012: the same request (same idempotencyKey) after a backoff delay.
      let delay = this._delay(req.tries + 1);
      if (code === "rate_limited") delay = Math.max(delay, this.cfg.rateLimitedPause);
      const gen = this._gen;
      this._later(delay, () => {
        if (!this._open || this._gen !== gen) return; // the next connection replays it
        if (req.kind === "enqueue" && !this._unacked.has(req.key)) return;
        this._request(req.type, req.data, req.kind, req.key, req.tries + 1);
      });
      return;
    }
    // CLI-025: reported, never resent.
    if (req.kind === "enqueue") {
      this._unacked.delete(req.key);
      this._emit({ event: "error", ref: req.key, code, retryable });
    } else {
      this._emit({ event: "error", ticketId: req.key, code, retryable });
    }
  }
}

export default MatchwireClient;
