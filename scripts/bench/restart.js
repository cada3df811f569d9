// How long pusher-js is offline across a restart of a single `sealcast serve`
// (issue 26, item 4): a subscribed pusher-js client; SIGTERM the server (it
// stops listening, then closes every connection with 4200, "reconnect at
// once") and time from the signal until pusher-js is connected and
// subscribed again. Two ways to restart:
//   restart:  start the new process once the old one has exited (a plain
//             process manager);
//   handover: start the new process first, on the same port
//             (SEALCAST_REUSE_PORT=1), then SIGTERM the old one.
//   node scripts/bench/restart.js MODE [ROUNDS] [BIN_A] [BIN_B]
// Needs tests/interop's node_modules (npm ci there). BIN defaults to
// target/release/sealcast; with two binaries the rounds alternate A, B.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const interop = path.join(__dirname, '..', '..', 'tests', 'interop');
const Pusher = require(path.join(interop, 'node_modules', 'pusher-js'));

const APP = { id: 'restart-app', key: 'restart-key', secret: 'restart-secret' };
const mode = process.argv[2] || 'restart';
if (!['restart', 'handover'].includes(mode)) throw new Error(`mode ${mode}: restart or handover`);
const rounds = Number(process.argv[3] || 3);
const bins = process.argv.slice(4);
if (bins.length === 0) bins.push(path.join(__dirname, '..', '..', 'target', 'release', 'sealcast'));

function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

function serve(bin, port, dataDir) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['serve', '--port', String(port), '--data-dir', dataDir], {
      env: {
        ...process.env,
        SEALCAST_APP_ID: APP.id,
        SEALCAST_APP_KEY: APP.key,
        SEALCAST_APP_SECRET: APP.secret,
        SEALCAST_REUSE_PORT: mode === 'handover' ? '1' : '0',
        RUST_LOG: 'warn',
      },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const timer = setTimeout(() => reject(new Error('server did not start within 10 s')), 10000);
    child.stdout.on('data', (chunk) => {
      if (String(chunk).includes('sealcast listening on')) { clearTimeout(timer); resolve(child); }
    });
    child.on('error', reject);
  });
}

function until(check, ms) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      if (check()) { clearInterval(timer); resolve(); }
      else if (Date.now() - started > ms) { clearInterval(timer); reject(new Error('timed out')); }
    }, 5);
  });
}

async function round(bin) {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealcast-restart-'));
  let server = await serve(bin, port, dataDir);
  const client = new Pusher(APP.key, {
    wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], disableStats: true, cluster: 'local',
  });
  const channel = client.subscribe('news');
  await until(() => channel.subscribed, 5000);
  let resubscribed = false;
  channel.bind('pusher:subscription_succeeded', () => { resubscribed = true; });
  const next = mode === 'handover' ? await serve(bin, port, dataDir) : null;
  const started = Date.now();
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  await exited;
  const down = Date.now() - started;
  server = next || (await serve(bin, port, dataDir));
  await until(() => client.connection.state === 'connected' && resubscribed, 60000);
  const back = Date.now() - started;
  client.disconnect();
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  fs.rmSync(dataDir, { recursive: true, force: true });
  return { down, back };
}

(async () => {
  for (let r = 1; r <= rounds; r += 1) {
    for (const [i, bin] of bins.entries()) {
      const { down, back } = await round(bin);
      const tag = bins.length > 1 ? ` ${'AB'[i]}` : '';
      console.log(`round ${r}${tag}: old process exited after ${down} ms; pusher-js connected and resubscribed after ${back} ms`);
    }
  }
})().catch((err) => { console.error(err); process.exit(1); });
