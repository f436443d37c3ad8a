// Unit tests of the JavaScript client (node --test): the strict decoder
// against the spec's vectors, and the client's duties (spec/client.md) driven
// through a scripted in-process WebSocket, including the token rules of
// section 9 and the browser path (no ws extensions: liveness by `ping`
// messages). The wire-level duties are also proven by the client kit
// (scripts/client-js.sh).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { MatchwireClient, decodeEnvelope, parseStrictJSON, validateEnqueue } from "../matchwire.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

// ---- the decoder against spec/vectors/{envelope,json} ------------------------

function vectors(suite) {
  const dir = path.join(ROOT, "spec/vectors", suite);
  const ix = JSON.parse(readFileSync(path.join(dir, "index.json"), "utf8"));
  return ix.vectors.map((v) => ({ ...v, bytes: readFileSync(path.join(dir, v.file)) }));
}

// What a WebSocket hands the client: text, or nothing (invalid UTF-8 fails
// the connection with 1007 before any parser sees it, ENV-003).
function asText(bytes) {
  if (bytes.length > 65536) return new TextDecoder().decode(bytes); // the size is checked first (ENV-051)
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    return null;
  }
}

function outcome(fn, text) {
  if (text === null) return "bad_json"; // refused by the transport's UTF-8 check
  try {
    fn(text);
    return "ok";
  } catch (e) {
    if (!e.code) throw e;
    return e.code;
  }
}

for (const suite of ["envelope", "json"]) {
  test("decoder: every spec/vectors/" + suite + " vector", () => {
    const fn = suite === "envelope" ? decodeEnvelope : parseStrictJSON;
    const wrong = [];
    const all = vectors(suite);
    for (const v of all) {
      const want = v.expect === "ok" ? "ok" : v.code;
      const got = outcome(fn, asText(v.bytes));
      if (got !== want) wrong.push(v.id + ": " + got + ", want " + want);
    }
    assert.ok(all.length > 100, "vectors found: " + all.length);
    assert.deepEqual(wrong, []);
  });
}

test("decoder: the top-level v is checked on its spelling (ENV-023)", () => {
  for (const v of ["1.0", "1e0", "10E-1", "2147483648"]) {
    assert.throws(() => decodeEnvelope('{"type":"pong","v":' + v + ',"data":{}}'), { code: "bad_envelope" }, v);
  }
  assert.equal(decodeEnvelope('{"data":{"v":1.0},"v":1,"type":"pong"}').v, 1);
});

test("decoder: __proto__ is an ordinary member name", () => {
  const m = decodeEnvelope('{"type":"pong","v":1,"data":{"__proto__":{"x":1}}}');
  assert.deepEqual(Object.keys(m.data), ["__proto__"]);
  assert.equal(Object.getPrototypeOf(m.data), Object.prototype);
});

test("local validation of enqueue (CLI-003)", () => {
  assert.equal(validateEnqueue("ranked", "p1", { region: "eu", mmr: 1500 }, "k"), null);
  assert.match(validateEnqueue("Bad Queue!", "p1"), /MSG-020/);
  assert.match(validateEnqueue("q", ""), /MSG-021/);
  assert.match(validateEnqueue("q", "x".repeat(129)), /MSG-021/);
  assert.match(validateEnqueue("q", "p", { a: true }), /MSG-022/);
  assert.match(validateEnqueue("q", "p", { a: NaN }), /MSG-022/);
  assert.match(validateEnqueue("q", "p", { region: "" }), /MSG-022/);
  assert.match(validateEnqueue("q", "p", undefined, "k".repeat(65)), /MSG-023/);
});

// ---- a scripted WebSocket --------------------------------------------------

// Browser API (addEventListener, send, close, protocol); with `node: true`
// also ws's extensions (on: unexpected-response, upgrade; ping; terminate).
function fakeSocketClass({ node = false } = {}) {
  const made = [];
  class Fake {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      this.listeners = {};
      this.readyState = 0;
      this.protocol = "";
      this.closedWith = null;
      this.pings = 0;
      made.push(this);
      if (node) {
        this.emitter = {};
        this.on = (name, fn) => {
          this.emitter[name] = fn;
        };
        this.ping = () => {
          this.pings++;
        };
        this.terminate = () => this._fire("close", { code: 1006 });
      }
    }
    addEventListener(name, fn) {
      (this.listeners[name] ||= []).push(fn);
    }
    _fire(name, ev) {
      if (name === "close") {
        if (this.readyState === 3) return;
        this.readyState = 3;
      }
      for (const fn of this.listeners[name] || []) fn(ev);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code) {
      this.closedWith = code ?? null;
      this._fire("close", { code: code ?? 1005 });
    }
    // test side
    open(protocol = "matchwire.v1") {
      this.readyState = 1;
      this.protocol = protocol;
      this._fire("open", {});
    }
    push(obj) {
      this._fire("message", { data: typeof obj === "string" ? obj : JSON.stringify(obj) });
    }
    refuse(status, headers = {}) {
      this.emitter["unexpected-response"]({}, { statusCode: status, headers });
    }
    serverClose(code) {
      this._fire("close", { code });
    }
    take(type) {
      const i = this.sent.findIndex((m) => m.type === type);
      assert.ok(i >= 0, "no " + type + " sent; sent: " + JSON.stringify(this.sent));
      return this.sent.splice(i, 1)[0];
    }
  }
  return { Fake, made };
}

const FAST = { floor: 5, cap: 40, stableAfter: 50, idleBeforePing: 5000, pongTimeout: 5000, connectTimeout: 5000 };
const QUICK_LIVENESS = { idleBeforePing: 40, pongTimeout: 40 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(cond, what, ms = 2000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail("timed out waiting for " + what);
    await sleep(2);
  }
}

function setup(opts = {}) {
  const { Fake, made } = fakeSocketClass({ node: opts.node });
  const events = [];
  const timing = { ...FAST, ...opts.timing };
  const c = new MatchwireClient({ url: "ws://h/realtime", WebSocket: Fake, timing, ...opts.client });
  c.on("*", (e) => events.push(e));
  const find = (name, extra = {}) =>
    events.filter((e) => e.event === name && Object.entries(extra).every(([k, v]) => e[k] === v));
  return { c, made, events, find, last: () => made[made.length - 1] };
}

const env = (type, data, id) => (id ? { type, v: 1, id, data } : { type, v: 1, data });
const assignment = (mid) => ({ matchId: mid, connection: "10.0.0.5:7777", players: [], assignedAt: "2030-01-01T00:00:00Z" });

test("connect: /realtime, matchwire.v1, the token as access_token on every attempt", async () => {
  const t = setup({ client: { token: "a.b c" } });
  t.c.connect();
  assert.deepEqual(t.last().protocols, ["matchwire.v1"]);
  assert.equal(t.last().url, "ws://h/realtime?access_token=a.b%20c");
  t.last().open();
  t.last().serverClose(1012);
  await until(() => t.made.length === 2, "a reconnect");
  assert.equal(t.made[1].url, "ws://h/realtime?access_token=a.b%20c");
  t.c.close();
});

test("enqueue: a fresh key each, replayed unchanged after a reconnect, reported once (CLI-010, CLI-011)", async () => {
  const t = setup();
  t.c.connect();
  t.last().open();
  t.c.enqueue({ ref: "a", queue: "q", playerId: "p" });
  t.c.enqueue({ ref: "b", queue: "q", playerId: "p" });
  const a = t.last().take("enqueue");
  const b = t.last().take("enqueue");
  assert.match(a.data.idempotencyKey, /^[0-9a-f]{32}$/);
  assert.notEqual(a.data.idempotencyKey, b.data.idempotencyKey);
  t.last().serverClose(1006);
  await until(() => t.made.length === 2, "a reconnect");
  t.last().open();
  const a2 = t.last().take("enqueue");
  assert.deepEqual(a2.data, a.data);
  t.last().push(env("enqueued", { ticketId: "T", queue: "q", state: "queued", version: 1 }, a2.id));
  t.last().push(env("enqueued", { ticketId: "T", queue: "q", state: "queued", version: 1 }, a2.id));
  assert.equal(t.find("enqueued", { ref: "a" }).length, 1);
  t.c.close();
});

test("assignments: at most once per ticket across connections; stale pushes change nothing (CLI-030, CLI-031)", async () => {
  const t = setup();
  t.c.connect();
  t.last().open();
  t.c.enqueue({ ref: "a", queue: "q", playerId: "p" });
  const r = t.last().take("enqueue");
  t.last().push(env("enqueued", { ticketId: "T", queue: "q", state: "queued", version: 1 }, r.id));
  t.last().push(env("match.assigned", { ticketId: "T", version: 2, assignment: assignment("m1") }));
  t.last().serverClose(1001);
  await until(() => t.made.length === 2, "a reconnect");
  t.last().open();
  assert.equal(t.last().sent.filter((m) => m.type === "watch").length, 0, "an assigned ticket is not re-watched");
  t.last().push(env("match.assigned", { ticketId: "T", version: 2, assignment: assignment("m1") }));
  t.last().push(env("ticket.expired", { ticketId: "T", version: 3 }));
  assert.equal(t.find("assigned", { ticketId: "T" }).length, 1);
  assert.equal(t.find("ended").length, 0);
  t.c.close();
});

test("receive rules: malformed, binary, unknown type, v2 and missing members are skipped (CLI-020..CLI-026)", () => {
  const t = setup();
  t.c.connect();
  t.last().open();
  t.c.enqueue({ ref: "a", queue: "q", playerId: "p" });
  const r = t.last().take("enqueue");
  t.last().push(env("enqueued", { ticketId: "T", queue: "q", state: "queued", version: 1 }, r.id));
  t.last().push('{"type":"match.assigned","v":1,"v":1,"data":{}}');
  t.last()._fire("message", { data: new ArrayBuffer(4) });
  t.last().push(env("lobby.chat", {}));
  t.last().push({ type: "match.assigned", v: 2, data: { ticketId: "T", version: 2, assignment: assignment("v2") } });
  t.last().push(env("match.assigned", { ticketId: "T", version: 2 }));
  t.last().push(env("error", { code: "x", retryable: "no" }, "r999"));
  assert.equal(t.find("assigned").length, 0);
  assert.equal(t.find("protocolError").length, 4);
  t.last().push({ ...env("match.assigned", { ticketId: "T", version: 2, assignment: assignment("m"), more: 1 }), x: 1 });
  assert.equal(t.find("assigned", { matchId: "m" }).length, 1);
  assert.equal(t.last().closedWith, null, "the connection stays open");
  t.c.close();
});

test("re-watch after a reconnect; not_found is lost and never watched again (CLI-050, CLI-051)", async () => {
  const t = setup();
  t.c.connect();
  t.last().open();
  t.c.watch("T1");
  t.c.watch("T2");
  t.last().serverClose(1011);
  await until(() => t.made.length === 2, "a reconnect");
  t.last().open();
  const w1 = t.last().take("watch");
  const w2 = t.last().take("watch");
  assert.deepEqual([w1.data.ticketId, w2.data.ticketId].sort(), ["T1", "T2"]);
  t.last().push(env("error", { code: "not_found", message: "", retryable: false }, w1.id));
  t.last().push(env("watching", { ticketId: w2.data.ticketId, state: "expired", version: 3 }, w2.id));
  assert.deepEqual(t.find("lost").map((e) => e.ticketId), [w1.data.ticketId]);
  assert.equal(t.find("ended", { ticketId: w2.data.ticketId, state: "expired" }).length, 1);
  t.last().serverClose(1011);
  await until(() => t.made.length === 3, "a second reconnect");
  t.last().open();
  assert.equal(t.last().sent.filter((m) => m.type === "watch").length, 0);
  t.c.close();
});

test("close codes: terminal ones stop, others retry after at least the floor (CLI-040, CLI-041, CLI-043)", async () => {
  for (const [code, again] of [[1000, false], [1008, false], [1003, false], [1013, true], [4999, true], [1005, true]]) {
    const t = setup();
    t.c.connect();
    t.last().open();
    const at = performance.now();
    t.last().serverClose(code);
    await sleep(FAST.cap * 2);
    assert.equal(t.made.length, again ? 2 : 1, "close " + code);
    assert.deepEqual(t.find("closed")[0], { event: "closed", code, reconnect: again });
    if (again) assert.ok(t.find("reconnecting")[0].delayMs >= FAST.floor, "floor");
    assert.ok(performance.now() - at >= FAST.floor);
    t.c.close();
  }
});

test("after it stopped, connect() starts again; while running, connect() does nothing", async () => {
  const t = setup();
  t.c.connect();
  t.c.connect();
  assert.equal(t.made.length, 1);
  t.last().open();
  t.last().serverClose(1008);
  assert.equal(t.find("closed")[0].reconnect, false);
  t.c.connect();
  assert.equal(t.made.length, 2);
  t.c.close();
});

test("handshake refusals on Node: 5xx and 429 retry with Retry-After, 4xx stop, wrong subprotocol stops (CLI-042, CLI-046, CLI-001)", async () => {
  let t = setup({ node: true });
  t.c.connect();
  t.last().refuse(503, { "retry-after": "1" });
  assert.ok(t.find("reconnecting")[0].delayMs >= 1000, "Retry-After honoured");
  t.c.close();

  t = setup({ node: true });
  t.c.connect();
  t.last().refuse(429);
  await until(() => t.made.length === 2, "a retry after 429");
  t.last().refuse(404);
  await sleep(FAST.cap * 2);
  assert.equal(t.made.length, 2);
  assert.deepEqual(t.find("closed"), [{ event: "closed", code: null, reconnect: false, status: 404 }]);

  t = setup({ node: true });
  t.c.connect();
  t.last().emitter.upgrade({ headers: { "sec-websocket-protocol": "other.v9" } });
  t.last().serverClose(1006);
  await sleep(FAST.cap * 2);
  assert.equal(t.made.length, 1);
  assert.equal(t.find("closed")[0].reconnect, false);
});

test("a server certificate that fails verification: stop with 1015 on Node, retry in a browser (CLI-004)", async () => {
  let t = setup({ node: true });
  t.c.connect();
  t.last()._fire("error", { error: { code: "ERR_TLS_CERT_ALTNAME_INVALID" } });
  t.last().serverClose(1006);
  await sleep(FAST.cap * 2);
  assert.equal(t.made.length, 1);
  assert.deepEqual(t.find("closed"), [{ event: "closed", code: 1015, reconnect: false }]);

  t = setup();
  t.c.connect();
  t.last()._fire("error", {}); // a browser says nothing about the cause
  t.last().serverClose(1006);
  await until(() => t.made.length === 2, "a retry");
  t.c.close();
});

test("backoff: full jitter within [floor, min(cap, floor*2^n)], growing, capped (CLI-044, CLI-045)", () => {
  const c = new MatchwireClient({ url: "ws://h/realtime", WebSocket: class {} });
  for (let n = 1; n <= 12; n++) {
    const ds = Array.from({ length: 200 }, () => c._delay(n));
    const hi = Math.min(10000, 250 * 2 ** n);
    assert.ok(Math.min(...ds) >= 250 && Math.max(...ds) <= hi, "attempt " + n);
    assert.ok(new Set(ds).size > 150, "random");
    if (n >= 3) assert.ok(Math.max(...ds) > hi * 0.8, "the window reaches its top");
  }
});

test("a connection that ends within 5 s does not reset the attempt count (CLI-047)", async () => {
  const t = setup();
  t.c.connect();
  for (let i = 1; i <= 3; i++) {
    t.last().open();
    t.last().serverClose(1013);
    await until(() => t.made.length === i + 1, "attempt " + (i + 1));
  }
  assert.deepEqual(t.find("reconnecting").map((e) => e.attempt), [1, 2, 3]);
  t.last().open();
  await sleep(FAST.stableAfter + 10);
  t.last().serverClose(1013);
  assert.equal(t.find("reconnecting").at(-1).attempt, 1, "reset after a stable connection");
  t.c.close();
});

test("pacing: 20 at once, then 10 per second; 1 s pause after rate_limited (CLI-060, CLI-061)", async () => {
  const t = setup();
  t.c.connect();
  t.last().open();
  for (let i = 0; i < 25; i++) t.c.cancel("T" + i);
  assert.equal(t.last().sent.length, 20);
  await sleep(250);
  const n = t.last().sent.length;
  assert.ok(n >= 21 && n <= 24, "about 10/s after the burst: " + n);
  const first = t.last().sent[0];
  t.last().push(env("error", { code: "rate_limited", message: "", retryable: true }, first.id));
  const at = t.last().sent.length;
  await sleep(600);
  assert.equal(t.last().sent.length, at, "nothing sent during the pause");
  t.c.close();
});

test("retryable errors resend the same enqueue after a delay; non-retryable are reported once (CLI-012, CLI-025)", async () => {
  const t = setup();
  t.c.connect();
  t.last().open();
  t.c.enqueue({ ref: "a", queue: "q", playerId: "p" });
  const r1 = t.last().take("enqueue");
  t.last().push(env("error", { code: "unavailable", message: "", retryable: true }, r1.id));
  assert.equal(t.find("error").length, 0);
  await until(() => t.last().sent.some((m) => m.type === "enqueue"), "the resend");
  const r2 = t.last().take("enqueue");
  assert.equal(r2.data.idempotencyKey, r1.data.idempotencyKey);
  t.last().push(env("error", { code: "quota_exceeded", message: "", retryable: false }, r2.id));
  assert.deepEqual(t.find("error"), [{ event: "error", ref: "a", code: "quota_exceeded", retryable: false }]);
  await sleep(FAST.cap * 2);
  assert.equal(t.last().sent.length, 0);
  t.c.close();
});

test("a push before its enqueued reply is applied when the reply names the ticket (CLI-027)", () => {
  const t = setup();
  t.c.connect();
  t.last().open();
  t.c.enqueue({ ref: "a", queue: "q", playerId: "p" });
  const r = t.last().take("enqueue");
  t.last().push(env("match.assigned", { ticketId: "T", version: 2, assignment: assignment("m") }));
  assert.equal(t.find("assigned").length, 0);
  t.last().push(env("enqueued", { ticketId: "T", queue: "q", state: "queued", version: 1 }, r.id));
  assert.equal(t.find("assigned", { ticketId: "T", matchId: "m" }).length, 1);
  t.c.close();
});

test("liveness in a browser (no ws.ping): a ping message after silence, then drop and reconnect (CLI-071)", async () => {
  const t = setup({ timing: QUICK_LIVENESS });
  t.c.connect();
  t.last().open();
  await until(() => t.last().sent.some((m) => m.type === "ping"), "a ping message");
  await until(() => t.made.length === 2, "a reconnect after the silence", 1000);
  assert.equal(t.find("closed")[0].code, 1006);
  t.c.close();
});

test("liveness on Node: a WebSocket ping; any arrival counts as alive (CLI-071)", async () => {
  const t = setup({ node: true, timing: QUICK_LIVENESS });
  t.c.connect();
  t.last().open();
  await until(() => t.last().pings === 1, "a ws ping");
  t.last().push(env("pong", {}));
  await sleep(QUICK_LIVENESS.pongTimeout + 10);
  assert.equal(t.made.length, 1, "an answer keeps the connection");
  t.c.close();
});

test("close(): 1000, no reconnection (CLI-080)", async () => {
  const t = setup();
  t.c.connect();
  t.last().open();
  await t.c.close();
  assert.equal(t.last().closedWith, 1000);
  await sleep(FAST.cap * 2);
  assert.equal(t.made.length, 1);
  assert.deepEqual(t.find("closed"), [{ event: "closed", code: 1000, reconnect: false }]);
});

// ---- section 9: tokens ---------------------------------------------------------

function tokenSetup(answers, node = true) {
  const calls = [];
  const t = setup({
    node,
    client: {
      token: "t0",
      refreshToken:
        answers &&
        (async () => {
          calls.push(1);
          return answers.length ? answers.shift() : null;
        }),
    },
  });
  t.calls = calls;
  return t;
}

test("4003: refresh, then reconnect after the backoff with the new token", async () => {
  const t = tokenSetup(["t1"]);
  t.c.connect();
  t.last().open();
  t.last().serverClose(4003);
  await until(() => t.made.length === 2, "a reconnect");
  assert.equal(t.calls.length, 1);
  assert.equal(t.last().url, "ws://h/realtime?access_token=t1");
  assert.ok(t.find("reconnecting")[0].delayMs >= FAST.floor);
  assert.deepEqual(t.find("closed"), [{ event: "closed", code: 4003, reconnect: true }]);
  t.c.close();
});

test("4003: no token from the callback (or no callback) stops", async () => {
  for (const answers of [[], null]) {
    const t = tokenSetup(answers);
    t.c.connect();
    t.last().open();
    t.last().serverClose(4003);
    await sleep(FAST.cap * 2);
    assert.equal(t.made.length, 1);
    assert.deepEqual(t.find("closed"), [{ event: "closed", code: 4003, reconnect: false }]);
  }
});

test("401: refresh and retry once; a second 401 in a row stops", async () => {
  const t = tokenSetup(["t1", "t2"]);
  t.c.connect();
  t.last().refuse(401);
  await until(() => t.made.length === 2, "the retry");
  assert.equal(t.last().url, "ws://h/realtime?access_token=t1");
  t.last().refuse(401);
  await sleep(FAST.cap * 2);
  assert.equal(t.made.length, 2, "no third attempt");
  assert.equal(t.calls.length, 1, "the callback is not asked again after the second 401");
  assert.deepEqual(t.find("closed"), [{ event: "closed", code: null, reconnect: false, status: 401 }]);
});

test("401 with no callback, or a callback with no token, stops at once", async () => {
  for (const answers of [null, []]) {
    const t = tokenSetup(answers);
    t.c.connect();
    t.last().refuse(401);
    await sleep(FAST.cap * 2);
    assert.equal(t.made.length, 1);
    assert.equal(t.find("closed")[0].reconnect, false);
  }
});

test("401 then success resets: a later 401 is retried again", async () => {
  const t = tokenSetup(["t1", "t2"]);
  t.c.connect();
  t.last().refuse(401);
  await until(() => t.made.length === 2, "the retry");
  t.last().open();
  t.last().serverClose(1012);
  await until(() => t.made.length === 3, "a reconnect");
  t.last().refuse(401);
  await until(() => t.made.length === 4, "a retry after the new 401");
  assert.equal(t.last().url, "ws://h/realtime?access_token=t2");
  t.c.close();
});

test("memory is bounded: ended tickets and applied assignments past the retention are forgotten", () => {
  const t = setup({ timing: { appliedRetention: 0 } });
  t.c.connect();
  t.last().open();
  for (let i = 0; i < 1500; i++) {
    t.c.watch("T" + i);
    t.last().push(env("match.assigned", { ticketId: "T" + i, version: 2, assignment: assignment("m" + i) }));
  }
  assert.equal(t.find("assigned").length, 1500);
  assert.ok(t.c.tickets.size + t.c._applied.size < 2002, "held: " + (t.c.tickets.size + t.c._applied.size));
  t.c.close();
});
