#!/usr/bin/env node
// The client conformance kit's adapter for the JavaScript client
// (conformance/client/README.md, spec/testing.md TST-060..TST-079): JSON
// commands on stdin, the client's events as JSON lines on stdout. It adds no
// retries, deduplication, pacing or validation of its own (TST-063).
//
//   conformance/client/run --client-cmd "node clients/js/test/kit-adapter.mjs"
//
// connect members: url, ca (PEM file trusted for wss://), token, tokens (the
// answers of the refresh callback, in order; then "no token").
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import WS from "ws";
import { MatchwireClient } from "../matchwire.js";

function emit(ev) {
  process.stdout.write(JSON.stringify(ev) + "\n");
}

// A WebSocket constructor on `ws` with the browser's signature; `ca` adds a
// trusted CA (certificate and host-name checks stay on).
export function nodeWebSocket(ca) {
  const opts = { perMessageDeflate: false };
  if (ca) opts.ca = readFileSync(ca);
  return class extends WS {
    constructor(url, protocols) {
      super(url, protocols, opts);
    }
  };
}

let client = null;
const rl = createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let c;
  try {
    c = JSON.parse(line);
  } catch (e) {
    return;
  }
  switch (c.cmd) {
    case "connect": {
      const answers = Array.isArray(c.tokens) ? [...c.tokens] : null;
      client = new MatchwireClient({
        url: c.url,
        WebSocket: nodeWebSocket(c.ca),
        token: c.token,
        refreshToken: answers && (async () => (answers.length ? answers.shift() : null)),
      });
      client.on("*", emit);
      client.connect();
      break;
    }
    case "enqueue":
      client?.enqueue({ ref: c.ref, queue: c.queue, playerId: c.playerId, attributes: c.attributes });
      break;
    case "watch":
      client?.watch(c.ticketId);
      break;
    case "cancel":
      client?.cancel(c.ticketId);
      break;
    case "close":
      await client?.close();
      process.exit(0);
  }
});
rl.on("close", async () => {
  await client?.close();
  process.exit(0);
});
