// The JavaScript client against the reference server (node --test): two
// clients are matched together; with authentication on, a refused token is
// refreshed after the 401, and a token that expires mid-connection (close
// 4003) is refreshed and the client reconnects; over wss:// (when the server
// has --tls-cert) with a throwaway CA (conformance/testcert.py). The server binary comes from
// MATCHWIRE_SERVER (default: build/reference/matchwire-server); without one
// the tests are skipped, saying why.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WS from "ws";
import { MatchwireClient } from "../matchwire.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const SERVER = process.env.MATCHWIRE_SERVER || path.join(ROOT, "build/reference/matchwire-server");
const skip = existsSync(SERVER) ? false : "no server binary at " + SERVER + " (set MATCHWIRE_SERVER)";
const serverHelp = skip ? "" : spawnSync(SERVER, ["--help"], { encoding: "utf8" }).stdout + "";
const skipTls = skip || (serverHelp.includes("--tls-cert") ? false : "this server has no --tls-cert");

class NodeWS extends WS {
  constructor(url, protocols) {
    super(url, protocols, { perMessageDeflate: false });
  }
}

// Starts a server on a free loopback port; resolves { url, stop }.
function startServer(args = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(SERVER, ["--listen", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => reject(new Error("server did not start: " + out)), 10000);
    const onData = (b) => {
      out += b;
      const m = /(wss?):\/\/(127\.0\.0\.1:\d+)\/realtime/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1] + "://" + m[2] + "/realtime",
          stop: () => new Promise((r) => (p.exitCode !== null ? r() : (p.once("exit", r), p.kill("SIGTERM")))),
        });
      }
    };
    p.stdout.on("data", onData);
    p.stderr.on("data", onData);
    p.once("exit", (code) => reject(new Error("server exited " + code + ": " + out)));
  });
}

const b64u = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
function mint(secret, sub, ttl) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64u({ alg: "HS256", typ: "JWT" }) + "." + b64u({ sub, exp: now + ttl, iat: now });
  return head + "." + createHmac("sha256", secret).update(head).digest("base64url");
}

function client(url, opts = {}) {
  const events = [];
  const c = new MatchwireClient({ url, WebSocket: NodeWS, ...opts });
  c.on("*", (e) => events.push(e));
  const wait = (name, ms = 10000, pred = () => true) =>
    new Promise((resolve, reject) => {
      const hit = events.find((e) => e.event === name && pred(e));
      if (hit) return resolve(hit);
      const t = setTimeout(() => reject(new Error("no " + name + " in " + JSON.stringify(events))), ms);
      c.on(name, (e) => {
        if (pred(e)) {
          clearTimeout(t);
          resolve(e);
        }
      });
    });
  return { c, events, wait };
}

test("two clients are matched together (same matchId, one assignment each)", { skip }, async () => {
  const srv = await startServer();
  try {
    const a = client(srv.url);
    const b = client(srv.url);
    a.c.connect();
    b.c.connect();
    a.c.enqueue({ queue: "demo", playerId: "alice" });
    b.c.enqueue({ queue: "demo", playerId: "bob" });
    const [ea, eb] = await Promise.all([a.wait("assigned"), b.wait("assigned")]);
    assert.equal(ea.matchId, eb.matchId);
    assert.notEqual(ea.ticketId, eb.ticketId);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(a.events.filter((e) => e.event === "assigned").length, 1);
    await Promise.all([a.c.close(), b.c.close()]);
  } finally {
    await srv.stop();
  }
});

test("auth: a 401 is refreshed once; an expiring token (4003) is refreshed and the client reconnects", { skip }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "mw-js-"));
  const secret = randomBytes(32).toString("hex");
  writeFileSync(path.join(dir, "secret"), secret);
  const srv = await startServer(["--auth-hs256-secret-file", path.join(dir, "secret"), "--auth-leeway", "0"]);
  try {
    // A bad token: the handshake is refused 401, the callback's token works.
    const tokens = [mint(secret, "alice", 3600)];
    const a = client(srv.url, { token: "not.a.token", refreshToken: async () => tokens.shift() ?? null });
    a.c.connect();
    await a.wait("open");
    assert.equal(a.events.filter((e) => e.event === "tokenRefresh").length, 1);

    // A bad token and a callback with only bad tokens: 401, refresh, 401: stop.
    const b = client(srv.url, { token: "x.y.z", refreshToken: async () => "still.not.valid" });
    b.c.connect();
    const closed = await b.wait("closed");
    assert.deepEqual(closed, { event: "closed", code: null, reconnect: false, status: 401 });
    assert.equal(b.events.filter((e) => e.event === "tokenRefresh").length, 1);

    // A token that expires in 2 s: 4003, refresh, reconnect with the new one.
    const c = client(srv.url, {
      token: mint(secret, "carol", 2),
      refreshToken: async () => mint(secret, "carol", 3600),
    });
    c.c.connect();
    await c.wait("open");
    const ended = await c.wait("closed", 8000);
    assert.deepEqual(ended, { event: "closed", code: 4003, reconnect: true });
    const end = Date.now() + 8000;
    while (c.events.filter((e) => e.event === "open").length < 2) {
      assert.ok(Date.now() < end, "no second open: " + JSON.stringify(c.events));
      await new Promise((r) => setTimeout(r, 20));
    }
    await Promise.all([a.c.close(), c.c.close()]);
  } finally {
    await srv.stop();
  }
});

test("wss://: the client trusts a CA it is given; verification stays on", { skip: skipTls }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "mw-js-tls-"));
  const made = spawnSync("/usr/bin/python3", [path.join(ROOT, "conformance/testcert.py"), dir], { encoding: "utf8" });
  assert.equal(made.status, 0, made.stderr);
  const srv = await startServer(["--tls-cert", path.join(dir, "server.pem"), "--tls-key", path.join(dir, "server.key")]);
  try {
    assert.match(srv.url, /^wss:/);
    const url = srv.url.replace("127.0.0.1", "localhost");
    const ca = readFileSync(path.join(dir, "ca.pem"));
    const withCa = (opts) =>
      class extends WS {
        constructor(u, p) {
          super(u, p, { perMessageDeflate: false, ...opts });
        }
      };
    const a = client(url, { WebSocket: withCa({ ca }) });
    const b = client(url, { WebSocket: withCa({ ca }) });
    a.c.connect();
    b.c.connect();
    a.c.enqueue({ queue: "demo", playerId: "alice" });
    b.c.enqueue({ queue: "demo", playerId: "bob" });
    const [ea, eb] = await Promise.all([a.wait("assigned"), b.wait("assigned")]);
    assert.equal(ea.matchId, eb.matchId);
    await Promise.all([a.c.close(), b.c.close()]);

    // Without the CA the certificate is not trusted: no connection opens,
    // and the client (which sees why on Node) stops with 1015 (CLI-004).
    const c = client(url, { WebSocket: withCa({}) });
    c.c.connect();
    assert.deepEqual(await c.wait("closed"), { event: "closed", code: 1015, reconnect: false });
    assert.equal(c.events.filter((e) => e.event === "open").length, 0);
    // Trusted CA, but a host name the certificate does not name (checked
    // against `servername`, as for a host that resolves here): the same.
    const d = client(url, { WebSocket: withCa({ ca, servername: "otherhost.invalid" }) });
    d.c.connect();
    assert.deepEqual(await d.wait("closed"), { event: "closed", code: 1015, reconnect: false });
    assert.match(d.events.find((e) => e.event === "protocolError").detail, /ALTNAME/);
  } finally {
    await srv.stop();
  }
});
