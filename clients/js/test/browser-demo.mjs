#!/usr/bin/env node
// The demo page in a real browser: headless Chromium (Debian's /usr/bin/chromium)
// driven over the DevTools protocol.
//
//   1. Two tabs open the page served by the reference server; "Find match" is
//      pressed in each; both must show the same matchId.
//   2. Redis deployment: a third tab queues, the server is stopped mid-queue
//      and started again on the same port (the tickets live in a redis-server
//      this script starts on a free loopback port and stops); the tab must show
//      the client reconnecting, re-watch its ticket and get the match it forms
//      with a player that arrives after the restart.
//
// Screenshots go to OUT_DIR (never the repository).
//   node clients/js/test/browser-demo.mjs SERVER_BINARY OUT_DIR
// Exit 0 when both parts pass; 1 with the reason otherwise.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import WS from "ws";
import { MatchwireClient } from "../matchwire.js";

const [SERVER, OUT] = process.argv.slice(2);
if (!SERVER || !OUT) {
  console.error("usage: browser-demo.mjs SERVER_BINARY OUT_DIR");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(OUT, { recursive: true });
const children = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log("browser-demo:", ...a);

function fail(msg) {
  throw new Error(msg);
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Starts a child and resolves the first match of `re` in its output.
function start(cmd, args, re, what) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    children.push(p);
    let out = "";
    const timer = setTimeout(() => reject(new Error(what + " did not start: " + out.slice(-2000))), 20000);
    const on = (b) => {
      out += b;
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ p, m });
      }
    };
    p.stdout.on("data", on);
    p.stderr.on("data", on);
    p.once("exit", (code) => reject(new Error(what + " exited " + code + ": " + out.slice(-2000))));
  });
}

function stop(p) {
  return new Promise((r) => {
    if (p.exitCode !== null || p.signalCode !== null) return r();
    p.once("exit", r);
    p.kill("SIGTERM");
  });
}

function startServer(listen, extra = []) {
  return start(SERVER, ["--listen", listen, ...extra], /http:\/\/(127\.0\.0\.1:\d+)\//, "matchwire-server").then(
    ({ p, m }) => ({ p, host: m[1] }),
  );
}

// ---- a minimal DevTools protocol client -------------------------------------

class CDP {
  static async launch(profile) {
    const { p, m } = await start(
      CHROMIUM,
      [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--mute-audio",
        // Background tabs must not be throttled: each tab runs its timers.
        "--disable-background-timer-throttling",
        "--disable-backgrounding-occluded-windows",
        "--disable-renderer-backgrounding",
        "--disable-features=IntensiveWakeUpThrottling,CalculateNativeWinOcclusion",
        "--remote-debugging-port=0",
        "--user-data-dir=" + profile,
        "--window-size=1000,900",
        "about:blank",
      ],
      /DevTools listening on (ws:\/\/\S+)/,
      "chromium",
    );
    const cdp = new CDP(p);
    await cdp.open(m[1]);
    return cdp;
  }

  constructor(proc) {
    this.proc = proc;
    this.seq = 0;
    this.pending = new Map();
  }

  open(url) {
    return new Promise((resolve, reject) => {
      this.ws = new WS(url, { perMessageDeflate: false, maxPayload: 256 << 20 });
      this.ws.on("open", resolve);
      this.ws.on("error", reject);
      this.ws.on("message", (data) => {
        const msg = JSON.parse(data);
        const w = msg.id !== undefined && this.pending.get(msg.id);
        if (!w) return;
        this.pending.delete(msg.id);
        if (msg.error) w.reject(new Error(w.method + ": " + msg.error.message));
        else w.resolve(msg.result);
      });
    });
  }

  send(method, params = {}, sessionId) {
    const id = ++this.seq;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.ws.send(JSON.stringify(msg));
    });
  }

  async tab(url) {
    const { targetId } = await this.send("Target.createTarget", { url });
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    const tab = {
      eval: async (expr) => {
        const r = await this.send("Runtime.evaluate", { expression: expr, returnByValue: true }, sessionId);
        if (r.exceptionDetails) fail("page exception: " + JSON.stringify(r.exceptionDetails).slice(0, 500));
        return r.result.value;
      },
      screenshot: async (name) => {
        const { data } = await this.send("Page.captureScreenshot", { format: "png" }, sessionId);
        writeFileSync(path.join(OUT, name), Buffer.from(data, "base64"));
        log("screenshot", path.join(OUT, name));
      },
      text: (id) => tab.eval("document.getElementById(" + JSON.stringify(id) + ").textContent"),
      waitFor: async (expr, what, ms = 20000) => {
        const end = Date.now() + ms;
        for (;;) {
          let v;
          try {
            v = await tab.eval(expr);
          } catch (e) {
            v = null; // the page is still loading
          }
          if (v) return v;
          if (Date.now() > end) {
            const st = await tab.text("status").catch(() => "?");
            fail("timed out waiting for " + what + " (status: " + st + ")");
          }
          await sleep(100);
        }
      },
    };
    await tab.waitFor("document.readyState === 'complete' && !!document.getElementById('find')", "the page");
    return tab;
  }
}

// ---- the two parts -------------------------------------------------------------

const clickFind = "document.getElementById('find').click(), true";
const matchOf = "document.getElementById('match').textContent";
const logHas = (ev) => `[...document.querySelectorAll('#log pre')].some(p => p.textContent.includes('"event": "${ev}"'))`;

async function twoTabs(cdp) {
  const srv = await startServer("127.0.0.1:0");
  try {
    const page = "http://" + srv.host + "/";
    const a = await cdp.tab(page);
    const b = await cdp.tab(page);
    await a.eval(clickFind);
    await b.eval(clickFind);
    const ma = await a.waitFor(matchOf, "tab 1's match");
    const mb = await b.waitFor(matchOf, "tab 2's match");
    await a.screenshot("tab1-matched.png");
    await b.screenshot("tab2-matched.png");
    if (ma !== mb) fail("the two tabs show different matches: " + ma + " and " + mb);
    log("part 1: both tabs show matchId", ma);
  } finally {
    await stop(srv.p);
  }
}

async function restartMidQueue(cdp) {
  const redisPort = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), "mw-redis-"));
  await start(
    "redis-server",
    ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    /Ready to accept connections/,
    "redis-server",
  );
  const redis = ["--channel", "redis", "--store", "redis", "--redis", "redis://127.0.0.1:" + redisPort + "/0"];
  let srv = await startServer("127.0.0.1:0", redis);
  const host = srv.host;
  try {
    const c = await cdp.tab("http://" + host + "/");
    await c.eval(clickFind);
    await c.waitFor(logHas("enqueued"), "tab 3's ticket");
    await stop(srv.p); // mid-queue: the ticket stays in Redis
    await c.waitFor(logHas("reconnecting"), "tab 3 reconnecting");
    await c.screenshot("tab3-reconnecting.png");
    srv = await startServer(host, redis); // the same address: the page's URL
    await c.waitFor(`document.querySelectorAll('#log pre').length && ${logHas("open")} &&
      [...document.querySelectorAll('#log pre')].filter(p => p.textContent.includes('"event": "open"')).length >= 2`,
    "tab 3 connected again");
    // A second player after the restart: the match needs tab 3's old ticket.
    const other = new MatchwireClient({
      url: "ws://" + host + "/realtime",
      WebSocket: class extends WS {
        constructor(u, p) {
          super(u, p, { perMessageDeflate: false });
        }
      },
    });
    const got = new Promise((resolve) => other.on("assigned", resolve));
    other.connect();
    other.enqueue({ queue: "demo", playerId: "after-restart" });
    const mc = await c.waitFor(matchOf, "tab 3's match after the restart", 30000);
    const ev = await Promise.race([got, sleep(10000).then(() => null)]);
    await c.screenshot("tab3-matched-after-restart.png");
    await other.close();
    if (!ev) fail("the player after the restart got no assignment");
    if (ev.matchId !== mc) fail("tab 3 shows " + mc + ", the other player " + ev.matchId);
    const events = await c.eval(`[...document.querySelectorAll('#log pre')].map(p => JSON.parse(p.textContent))`);
    const enq = events.filter((e) => e.event === "enqueued");
    const asg = events.filter((e) => e.event === "assigned");
    if (asg.length !== 1) fail("tab 3 applied " + asg.length + " assignments");
    if (enq.length !== 1 || enq[0].ticketId !== asg[0].ticketId)
      fail("tab 3's match is not for the ticket it had before the restart: " + JSON.stringify({ enq, asg }));
    log("part 2: tab 3 reconnected and got matchId", mc, "(shared with the player who came after the restart)");
  } finally {
    await stop(srv.p);
    rmSync(dir, { recursive: true, force: true });
  }
}

const profile = mkdtempSync(path.join(tmpdir(), "mw-chromium-"));
let code = 0;
try {
  const cdp = await CDP.launch(profile);
  await twoTabs(cdp);
  await restartMidQueue(cdp);
  await cdp.send("Browser.close").catch(() => {});
} catch (e) {
  console.error("browser-demo: FAIL:", e.message);
  code = 1;
} finally {
  for (const p of children) await stop(p);
  rmSync(profile, { recursive: true, force: true });
}
if (code === 0) log("PASS");
process.exit(code);
