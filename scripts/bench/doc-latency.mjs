#!/usr/bin/env node
// Edit latency of a sealed document between two browser-package clients
// (Node, pusher-js 8, the core in WebAssembly) through a local server:
// a writer types one character every 50 ms (slower than the SDK's 25 ms
// pacing, so each keystroke is one op); the time from its `edit()` to the
// reader's `remoteChange`. Rounds
// alternate the SDK's requests sent straight on pusher-js's WebSocket
// (`directSend`, the default) and through pusher-js's `send_event` (its
// zero-delay timer per frame). Results go in docs/benchmarks.md.
//
//   cargo build -p sealcast-server -p sealcast-examples --example auth_server && scripts/build-web.sh
//   node scripts/bench/doc-latency.mjs [ROUNDS] [EDITS] [SERVER_BIN]
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, "..", "..");
const support = await import(path.join(root, "bindings", "js", "test", "support.mjs"));
const { loadSealcast, SealcastClient, channelAuthorizer } = await import(path.join(root, "bindings", "js", "dist", "index.js"));
const require = createRequire(import.meta.url);
const harness = require(path.join(root, "tests", "interop", "harness.js"));
const Pusher = require(path.join(root, "tests", "interop", "node_modules", "pusher-js"));

const rounds = Number(process.argv[2] || 3);
const edits = Number(process.argv[3] || 100);
if (process.argv[4]) process.env.SEALCAST_BIN = process.argv[4];

await loadSealcast(readFileSync(support.wasmFile));
const server = await harness.startServer();
const auth = await support.startAuthServer(harness.APP);
const keyProvider = support.keyProvider(auth);

async function user(name, directSend) {
  const pusher = new Pusher(harness.APP.key, {
    wsHost: "127.0.0.1", wsPort: server.port, forceTLS: false, enabledTransports: ["ws"], disableStats: true, cluster: "local",
    channelAuthorization: channelAuthorizer(async (socketId, channel) => {
      const form = new URLSearchParams({ socket_id: socketId, channel_name: channel, user_id: name });
      return (await fetch(`${auth}/auth`, { method: "POST", body: form })).json();
    }),
  });
  await harness.connected(pusher);
  return { pusher, client: new SealcastClient(pusher, { keyProvider, directSend }) };
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];

async function run(label, directSend, round) {
  const docId = `latency-${round}-${label}-${process.pid}`;
  const [writer, reader] = [await user("writer", directSend), await user("reader", directSend)];
  const open = (u) => {
    const doc = u.client.openDocument(docId, { kid: `doc-${docId}` });
    const state = { doc, version: undefined };
    doc.on("ready", (e) => { state.version = e.version; });
    doc.on("remoteChange", (e) => { state.version = e.version; });
    return state;
  };
  const w = open(writer);
  const r = open(reader);
  await support.until(() => w.version !== undefined && r.version !== undefined, 10000, "documents ready");
  const sentAt = [];
  const seen = [];
  r.doc.on("remoteChange", () => seen.push(performance.now()));
  let length = 0;
  for (let i = 0; i < edits; i++) {
    sentAt.push(performance.now());
    w.version = w.doc.edit(w.version, { ops: length ? [{ retain: length }, { insert: "x" }] : [{ insert: "x" }] });
    length += 1;
    await new Promise((res) => setTimeout(res, 50));
  }
  await support.until(() => seen.length >= edits, 10000, "every edit seen");
  const delivery = seen.slice(0, edits).map((t, i) => t - sentAt[i]).sort((a, b) => a - b);
  for (const u of [writer, reader]) {
    u.client.close();
    u.pusher.disconnect();
  }
  return delivery;
}

const fmt = (ms) => ms.toFixed(2);
const results = { direct: [], pusher: [] };
for (let round = 1; round <= rounds; round++) {
  for (const [label, directSend] of [["pusher", false], ["direct", true]]) {
    const delivery = await run(label, directSend, round);
    results[label].push(delivery);
    console.log(`round ${round} ${label.padEnd(6)}: writer → reader p50 ${fmt(percentile(delivery, 50))} ms, p99 ${fmt(percentile(delivery, 99))} ms`);
  }
  const [a, b] = [results.pusher[round - 1], results.direct[round - 1]];
  console.log(`round ${round} ratio direct ÷ pusher-js: p50 ${fmt(percentile(b, 50) / percentile(a, 50))}, p99 ${fmt(percentile(b, 99) / percentile(a, 99))}`);
}
support.stopAll();
await server.stop();
