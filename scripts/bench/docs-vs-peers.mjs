#!/usr/bin/env node
// sealcast's documents side by side with the unencrypted peers (issue 27):
// ShareDB 7 (rich-text, in-memory) and Yjs 13 (stock y-websocket server),
// pinned in scripts/bench/peers/package.json. The same Node process drives
// the same workload against each, rounds interleaved: WRITERS clients each
// insert a short token at the start of one shared document RATE times a
// second while READERS clients only read, for SECONDS. Per system: the
// latency from a writer's edit to each reader seeing it (p50, p99), the
// client CPU (this process) per edit received, the server process's CPU
// per edit, and whether every client ended with the same text. Then the
// ratios sealcast ÷ peer. Results go in docs/benchmarks.md; not a test.
//
//   (cd scripts/bench/peers && npm ci)
//   cargo build --release -p sealcast-server --bin sealcast && cargo build -p sealcast-examples --example auth_server
//   scripts/build-web.sh
//   node scripts/bench/docs-vs-peers.mjs [ROUNDS] [SECONDS] [WRITERS] [READERS] [RATE]
// SYSTEMS=sealcast (comma-separated) runs only those (e.g. under
// `node --cpu-prof`); the ratios need all three.
import { spawn } from "node:child_process";
import net from "node:net";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, "..", "..");
const [rounds, seconds, writers, readers, rate] = [3, 10, 4, 4, 10].map((d, i) => Number(process.argv[2 + i] || d));
process.env.SEALCAST_BIN ||= path.join(root, "target", "release", "sealcast");

const support = await import(path.join(root, "bindings", "js", "test", "support.mjs"));
const { loadSealcast, SealcastClient, channelAuthorizer } = await import(path.join(root, "bindings", "js", "dist", "index.js"));
const interop = createRequire(path.join(root, "tests", "interop", "package.json"));
const harness = interop("./harness.js");
const Pusher = interop("pusher-js");
const peers = createRequire(path.join(here, "peers", "package.json"));
const WebSocket = peers("ws");
const ShareDB = peers("sharedb/lib/client");
const richText = peers("rich-text");
const Y = peers("yjs");
const { WebsocketProvider } = peers("y-websocket");
ShareDB.types.register(richText.type);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, clock ticks
};

/** A child process printing its port after `ready`; resolves to { child, port }. */
function startChild(command, args, ready, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
    child.stdout.on("data", (chunk) => {
      const m = String(chunk).match(ready);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on("exit", (code) => reject(new Error(`${command} exited with ${code}`)));
  });
}

// ---- the three systems: connect N clients to one document ----

await loadSealcast(readFileSync(support.wasmFile));
// On tmpfs, as the peers keep their documents in memory (sealcast still
// commits every op before it is acknowledged).
const dataDir = mkdtempSync(path.join("/dev/shm", "sealcast-peers-"));
const sealcastServer = await startChild(process.env.SEALCAST_BIN, ["serve", "--port", "0", "--data-dir", dataDir],
  /sealcast listening on [^:\s]+:(\d+)/,
  { SEALCAST_APP_ID: harness.APP.id, SEALCAST_APP_KEY: harness.APP.key, SEALCAST_APP_SECRET: harness.APP.secret, RUST_LOG: "warn" });
const auth = await support.startAuthServer(harness.APP);
const keyProvider = support.keyProvider(auth);
const sharedbServer = await startChild("node", [path.join(here, "peers", "sharedb-server.js")], /listening (\d+)/);
// The stock y-websocket server prints the port it was given: give it a free one.
const yjsPort = await new Promise((resolve) => {
  const probe = net.createServer().listen(0, "127.0.0.1", () => { const { port } = probe.address(); probe.close(() => resolve(port)); });
});
const yjsServer = await startChild("node", [path.join(here, "peers", "node_modules", "y-websocket", "bin", "server.js")],
  /on port (\d+)/, { HOST: "127.0.0.1", PORT: String(yjsPort) });

const systems = {
  async sealcast(docId, count) {
    const clients = [];
    for (let i = 0; i < count; i++) {
      const pusher = new Pusher(harness.APP.key, {
        wsHost: "127.0.0.1", wsPort: sealcastServer.port, forceTLS: false, enabledTransports: ["ws"], disableStats: true, cluster: "local",
        channelAuthorization: channelAuthorizer(async (socketId, channel) => {
          const form = new URLSearchParams({ socket_id: socketId, channel_name: channel, user_id: `u${i}` });
          return (await fetch(`${auth}/auth`, { method: "POST", body: form })).json();
        }),
      });
      await harness.connected(pusher);
      const client = new SealcastClient(pusher, { keyProvider });
      const doc = client.openDocument(docId, { kid: `doc-${docId}` });
      const c = { version: undefined, onInsert: () => {} };
      doc.on("ready", (e) => { c.version = e.version; });
      doc.on("remoteChange", (e) => {
        c.version = e.version;
        for (const op of e.change.ops) if (typeof op.insert === "string") c.onInsert(op.insert);
      });
      c.insert = (text) => { c.version = doc.edit(c.version, { ops: [{ insert: text }] }); };
      c.text = () => doc.view().view.ops.map((op) => op.insert).join("");
      c.close = () => { client.close(); pusher.disconnect(); };
      clients.push(c);
    }
    await support.until(() => clients.every((c) => c.version !== undefined), 20000, "sealcast documents ready");
    return { clients, serverPid: sealcastServer.child.pid };
  },

  async sharedb(docId, count) {
    const clients = [];
    for (let i = 0; i < count; i++) {
      const socket = new WebSocket(`ws://127.0.0.1:${sharedbServer.port}`);
      const connection = new ShareDB.Connection(socket);
      const doc = connection.get("docs", docId);
      await new Promise((resolve, reject) => doc.subscribe((err) => (err ? reject(err) : resolve())));
      if (!doc.type) {
        await new Promise((resolve) => doc.create([], "rich-text", () => resolve()));
      }
      const c = { onInsert: () => {} };
      doc.on("op", (op, source) => {
        if (source) return;
        for (const part of op.ops ?? op) if (typeof part.insert === "string") c.onInsert(part.insert);
      });
      c.insert = (text) => doc.submitOp([{ insert: text }]);
      c.text = () => doc.data.ops.map((op) => op.insert).join("");
      c.close = () => connection.close();
      clients.push(c);
    }
    return { clients, serverPid: sharedbServer.child.pid };
  },

  async yjs(docId, count) {
    const clients = [];
    for (let i = 0; i < count; i++) {
      const ydoc = new Y.Doc();
      const provider = new WebsocketProvider(`ws://127.0.0.1:${yjsServer.port}`, docId, ydoc, { WebSocketPolyfill: WebSocket });
      await new Promise((resolve) => provider.on("sync", (synced) => synced && resolve()));
      const text = ydoc.getText("t");
      const c = { onInsert: () => {} };
      text.observe((event) => {
        if (event.transaction.local) return;
        for (const part of event.delta) if (typeof part.insert === "string") c.onInsert(part.insert);
      });
      c.insert = (token) => text.insert(0, token);
      c.text = () => text.toString();
      c.close = () => { provider.destroy(); ydoc.destroy(); };
      clients.push(c);
    }
    return { clients, serverPid: yjsServer.child.pid };
  },
};

// ---- the workload ----

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];

async function run(name, round) {
  const docId = `bench-${round}-${name}-${process.pid}`;
  const { clients, serverPid } = await systems[name](docId, writers + readers);
  const sentAt = new Map();
  const latencies = [];
  let received = 0;
  for (const c of clients.slice(writers)) {
    c.onInsert = (text) => {
      for (const token of text.match(/\[\d+:\d+\]/g) ?? []) {
        received += 1;
        latencies.push(performance.now() - sentAt.get(token));
      }
    };
  }
  await sleep(500);
  const [cpu0, server0] = [process.cpuUsage(), cpuSeconds(serverPid)];
  const total = Math.floor(seconds * rate);
  let sent = 0;
  const loops = clients.slice(0, writers).map(async (c, w) => {
    await sleep((1000 / rate / writers) * w); // spread the writers over a tick
    for (let n = 0; n < total; n++) {
      const token = `[${w}:${n}]`;
      sentAt.set(token, performance.now());
      c.insert(token);
      sent += 1;
      await sleep(1000 / rate);
    }
  });
  await Promise.all(loops);
  await support.until(() => received >= sent * readers, 20000, `${name}: every edit seen by every reader`);
  const cpu = process.cpuUsage(cpu0);
  const serverCpu = cpuSeconds(serverPid) - server0;
  // Converged: every client the same text, every token in it once.
  let texts = [];
  for (let i = 0; i < 200; i++) {
    texts = clients.map((c) => c.text());
    if (texts.every((t) => t === texts[0])) break;
    await sleep(50);
  }
  const converged = texts.every((t) => t === texts[0]) && (texts[0].match(/\[\d+:\d+\]/g) ?? []).length === sent;
  for (const c of clients) c.close();
  latencies.sort((a, b) => a - b);
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    clientUs: ((cpu.user + cpu.system) / received), // µs per edit received
    serverUs: (serverCpu * 1e6) / sent,
    converged,
  };
}

const fmt = (x, digits = 2) => x.toFixed(digits);
for (let round = 1; round <= rounds; round++) {
  const results = {};
  const names = (process.env.SYSTEMS || "sealcast,sharedb,yjs").split(",");
  for (const name of names) {
    results[name] = await run(name, round);
    const r = results[name];
    console.log(`round ${round} ${name.padEnd(8)}: latency p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms; client CPU ${fmt(r.clientUs, 0)} µs/edit received; server CPU ${fmt(r.serverUs, 0)} µs/edit; converged ${r.converged}`);
    await sleep(500);
  }
  for (const peer of ["sharedb", "yjs"].filter((p) => results[p] && results.sealcast)) {
    const [s, p] = [results.sealcast, results[peer]];
    console.log(`round ${round} sealcast ÷ ${peer}: latency p50 ${fmt(s.p50 / p.p50)}, p99 ${fmt(s.p99 / p.p99)}; client CPU ${fmt(s.clientUs / p.clientUs)}; server CPU ${fmt(s.serverUs / p.serverUs)}`);
  }
}
for (const child of [sealcastServer.child, sharedbServer.child, yjsServer.child]) child.kill();
support.stopAll();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
