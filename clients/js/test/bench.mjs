#!/usr/bin/env node
// What the client costs (README "Costs"): module size, the strict decoder's
// time per message against JSON.parse, and the memory of clients holding
// tickets. Not part of make test; run: node --expose-gc clients/js/test/bench.mjs
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { MatchwireClient, decodeEnvelope } from "../matchwire.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const src = readFileSync(path.join(here, "../matchwire.js"));
console.log("module: %d bytes, %d gzipped, %d lines", src.length, gzipSync(src).length, src.toString().split("\n").length);

const msgs = {
  "match.assigned (typical, 245 B)":
    '{"type":"match.assigned","v":1,"data":{"ticketId":"2b7e9bd4-8f44-4d61-9a55-53c4b0d2b1a7","version":2,"assignment":{"matchId":"m_7f3a","connection":"10.0.0.5:7777","players":[{"playerId":"alice"},{"playerId":"bob"}],"assignedAt":"2026-11-27T11:40:48.123Z"}}}',
  "enqueued reply (150 B)":
    '{"type":"enqueued","v":1,"id":"r12","data":{"ticketId":"2b7e9bd4-8f44-4d61-9a55-53c4b0d2b1a7","queue":"ranked","state":"queued","version":1,"expiresAt":"2026-11-27T11:50:48.123Z"}}',
};
msgs["a 60 kB message"] = JSON.stringify({ type: "x.y", v: 1, data: { pad: "a".repeat(60000) } });

function rate(fn, text) {
  const n = text.length > 10000 ? 2000 : 200000;
  for (let i = 0; i < n / 10; i++) fn(text);
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(text);
  return Number(process.hrtime.bigint() - t) / n / 1000; // microseconds
}
for (const [name, text] of Object.entries(msgs)) {
  const ours = rate(decodeEnvelope, text);
  const native = rate(JSON.parse, text);
  console.log("decode %s: %s us (JSON.parse %s us)", name, ours.toFixed(2), native.toFixed(2));
}

class NoSocket {
  constructor() {
    this.protocol = "";
  }
  addEventListener() {}
  send() {}
  close() {}
}
const gc = globalThis.gc || (() => {});
gc();
const before = process.memoryUsage().heapUsed;
const clients = [];
for (let i = 0; i < 1000; i++) {
  const c = new MatchwireClient({ url: "ws://h/realtime", WebSocket: NoSocket });
  for (let k = 0; k < 8; k++) c.tickets.set("ticket-" + i + "-" + k, { state: "queued", version: 1 });
  clients.push(c);
}
gc();
const per = (process.memoryUsage().heapUsed - before) / clients.length;
console.log("heap per client holding 8 tickets (not connected): %d bytes%s", Math.round(per), globalThis.gc ? "" : " (run with --expose-gc)");
