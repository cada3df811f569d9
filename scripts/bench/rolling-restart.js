// A rolling restart of a 2-node cluster under load (issue 26): pusher-js
// clients spread over both nodes, a publisher sending numbered events on a
// channel with history through both nodes' HTTP APIs the whole time, then
// each node in turn handed over to a new process on its port
// (SEALCAST_REUSE_PORT=1: the new one listens, the old one gets SIGTERM,
// stops listening and closes its connections with 4200).
//
// Reports, per node restarted, how long its clients were offline (SIGTERM
// to connected and resubscribed: median and worst), how many events the
// clients missed live, and whether every missed event was then found in
// the channel's history (GET /apps/{id}/channels/{name}/history, what
// the SDKs' catch-up reads) — "lost" counts events neither delivered nor
// kept.
//   node scripts/bench/rolling-restart.js [CLIENTS] [BIN]
// Needs redis-server and tests/interop's node_modules. BIN defaults to
// target/release/sealcast.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const interop = path.join(__dirname, '..', '..', 'tests', 'interop');
const Pusher = require(path.join(interop, 'node_modules', 'pusher-js'));
const PusherServer = require(path.join(interop, 'node_modules', 'pusher'));

const APP = { id: 'rolling-app', key: 'rolling-key', secret: 'rolling-secret' };
const CHANNEL = 'news';
const clients = Number(process.argv[2] || 20);
const bin = process.argv[3] || path.join(__dirname, '..', '..', 'target', 'release', 'sealcast');
const PUBLISH_EVERY_MS = 20;

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function until(check, ms) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      if (check()) { clearInterval(timer); resolve(); }
      else if (Date.now() - started > ms) { clearInterval(timer); reject(new Error('timed out')); }
    }, 5);
  });
}

// The channel keeps every event of the run (the default rule keeps 100).
const CONFIG = `[[apps]]
id = "${APP.id}"
key = "${APP.key}"
secret = "${APP.secret}"
[[apps.history]]
channels = ["${CHANNEL}"]
max_events = 100000
max_bytes = 67108864
`;

function serve(port, redisUrl, dataDir) {
  const config = path.join(dataDir, 'sealcast.toml');
  fs.writeFileSync(config, CONFIG);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['serve', '--port', String(port), '--data-dir', dataDir, '--cluster', redisUrl, '--config', config], {
      env: { ...process.env, SEALCAST_REUSE_PORT: '1', RUST_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const timer = setTimeout(() => reject(new Error('server did not start within 10 s')), 10000);
    child.stdout.on('data', (chunk) => {
      if (String(chunk).includes('sealcast listening on')) { clearTimeout(timer); resolve(child); }
    });
    child.on('error', reject);
  });
}

async function main() {
  const redisPort = await freePort();
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  await sleep(300);
  const redisUrl = `redis://127.0.0.1:${redisPort}/0`;
  const ports = [await freePort(), await freePort()];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealcast-rolling-'));
  const nodes = [await serve(ports[0], redisUrl, dataDir), await serve(ports[1], redisUrl, dataDir)];

  // Clients alternate nodes; each records the numbers it receives live.
  const subscribers = [];
  for (let i = 0; i < clients; i += 1) {
    const port = ports[i % 2];
    const client = new Pusher(APP.key, {
      wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], disableStats: true, cluster: 'local',
    });
    const channel = client.subscribe(CHANNEL);
    const seen = new Set();
    const state = { client, channel, node: i % 2, seen, resubscribedAt: 0 };
    channel.bind('tick', (data) => seen.add(data.n));
    channel.bind('pusher:subscription_succeeded', () => { state.resubscribedAt = Date.now(); });
    subscribers.push(state);
  }
  await until(() => subscribers.every((s) => s.channel.subscribed), 10000);

  // The publisher alternates the two nodes' HTTP APIs.
  const libs = ports.map((port) => new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(port), useTLS: false }));
  let next = 0;
  let refused = 0;
  const accepted = new Set();
  let publishing = true;
  const publisher = (async () => {
    while (publishing) {
      const n = next;
      next += 1;
      try {
        const response = await libs[n % 2].trigger(CHANNEL, 'tick', { n });
        if (response.status === 200) accepted.add(n);
      } catch {
        refused += 1; // a node restarting: not acknowledged, so not expected anywhere
      }
      await sleep(PUBLISH_EVERY_MS);
    }
  })();
  await sleep(1000);

  for (const index of [0, 1]) {
    const replacement = await serve(ports[index], redisUrl, dataDir);
    const mine = subscribers.filter((s) => s.node === index);
    const started = Date.now();
    for (const s of mine) s.resubscribedAt = 0;
    const exited = new Promise((resolve) => nodes[index].once('exit', resolve));
    nodes[index].kill('SIGTERM');
    await until(() => mine.every((s) => s.resubscribedAt > 0 && s.client.connection.state === 'connected'), 60000);
    const offline = mine.map((s) => s.resubscribedAt - started).sort((a, b) => a - b);
    await exited;
    nodes[index] = replacement;
    console.log(`node ${'AB'[index]} restarted: its ${mine.length} clients back after median ${offline[offline.length >> 1]} ms, worst ${offline[offline.length - 1]} ms`);
    await sleep(1000);
  }
  publishing = false;
  await publisher;
  await sleep(500);

  // What each client missed live, and whether history has it.
  const history = await (async () => {
    const kept = new Set();
    let before;
    for (;;) {
      const params = before === undefined ? { limit: 1000 } : { limit: 1000, before };
      const response = await libs[0].get({ path: `/channels/${CHANNEL}/history`, params });
      const page = await response.json();
      for (const event of page.events) kept.add(JSON.parse(event.data).n);
      if (!page.more || page.events.length === 0) break;
      before = page.events[0].offset;
    }
    return kept;
  })();
  let missedLive = 0;
  let lost = 0;
  for (const s of subscribers) {
    for (const n of accepted) {
      if (!s.seen.has(n)) {
        missedLive += 1;
        if (!history.has(n)) lost += 1;
      }
    }
  }
  console.log(`${accepted.size} events acknowledged (${refused} refused while a node stopped), ${clients} clients:`
    + ` ${missedLive} deliveries (event × client) missed live, ${lost} of them not in history (lost)`);
  for (const s of subscribers) s.client.disconnect();
  for (const node of nodes) node.kill('SIGTERM');
  await Promise.all(nodes.map((node) => new Promise((resolve) => node.once('exit', resolve))));
  redis.kill('SIGKILL');
  fs.rmSync(dataDir, { recursive: true, force: true });
  if (lost > 0) process.exit(1);
}

main().catch((err) => { console.error(err); process.exit(1); });
