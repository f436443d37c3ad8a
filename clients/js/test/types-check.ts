// Compiled by tsc (scripts/client-js.sh) against ../matchwire.d.ts: what a
// TypeScript user writes type-checks, and misuses (the @ts-expect-error
// lines) are rejected: tsc fails if any of them stops being an error.
import { MatchwireClient, decodeEnvelope, type MatchwireEvent } from "../matchwire.js";

const mw = new MatchwireClient({
  url: "wss://example.test/realtime",
  token: "t",
  refreshToken: async () => null,
});
mw.on("assigned", (e) => {
  const where: string = e.connection;
  const id: string = e.matchId;
  const v: number = e.version;
  void [where, id, v];
});
mw.on("closed", (e) => {
  const again: boolean = e.reconnect;
  const code: number | null = e.code;
  void [again, code];
});
mw.on("*", (e: MatchwireEvent) => {
  if (e.event === "lost") {
    const t: string = e.ticketId;
    void t;
  }
});
mw.connect();
const ref: string = mw.enqueue({ queue: "ranked", playerId: "alice", attributes: { region: "eu", mmr: 1500 } });
mw.watch("t1");
mw.cancel("t1");
const done: Promise<void> = mw.close();
const env = decodeEnvelope('{"type":"pong","v":1,"data":{}}');
const type: string = env.type;
void [ref, done, type];

// @ts-expect-error: url is required
new MatchwireClient({});
// @ts-expect-error: attributes are strings or numbers
mw.enqueue({ queue: "q", playerId: "p", attributes: { vip: true } });
// @ts-expect-error: no such event
mw.on("matched", () => {});
// @ts-expect-error: an assigned event has no state
mw.on("assigned", (e) => e.state);
