// Starts a real `sealcast serve` on a free loopback port and builds real
// pusher-js clients and a real `pusher` server-library client against it.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Pusher = require('pusher-js');
const PusherServer = require('pusher');

// Numeric, as Pusher's are: the Python library refuses any other app id.
const APP = { id: '4242', key: 'interop-key', secret: 'interop-secret' };
const BIN = process.env.SEALCAST_BIN || path.join(__dirname, '..', '..', 'target', 'debug', 'sealcast');
// SEALCAST_INTEROP_TLS=DIR (from scripts/test-ca.sh DIR): the server serves
// wss:// and https:// with DIR's certificate, pusher-js connects with
// forceTLS and the `pusher` library with useTLS; Node trusts the test CA
// through NODE_EXTRA_CA_CERTS=DIR/ca.pem (set by the caller: Node reads it
// at start).
const TLS_DIR = process.env.SEALCAST_INTEROP_TLS;
const TLS_ENV = TLS_DIR
  ? { SEALCAST_TLS_CERT: path.join(TLS_DIR, 'server.pem'), SEALCAST_TLS_KEY: path.join(TLS_DIR, 'server.key') }
  : {};

/** Starts one node; resolves to { port, stop() } once it listens. */
function startNode(extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealcast-interop-'));
    const child = spawn(BIN, ['serve', '--port', '0', '--data-dir', dataDir], {
      env: {
        ...process.env,
        SEALCAST_APP_ID: APP.id,
        SEALCAST_APP_KEY: APP.key,
        SEALCAST_APP_SECRET: APP.secret,
        RUST_LOG: process.env.RUST_LOG || 'warn',
        ...TLS_ENV,
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const timer = setTimeout(() => reject(new Error('server did not start within 10 s')), 10000);
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/sealcast listening on [^:\s]+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({
          port: Number(m[1]),
          child,
          stop: () => new Promise((done) => {
            const cleanup = () => { fs.rmSync(dataDir, { recursive: true, force: true }); done(); };
            if (child.exitCode !== null) return cleanup();
            child.once('exit', cleanup);
            child.kill('SIGTERM');
          }),
        });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited early with ${code}`)));
  });
}

/** A free loopback port. */
function freePort() {
  return new Promise((resolve) => {
    const srv = require('node:net').createServer();
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

/** A throwaway redis-server on a free port; resolves to { url, stop() }. */
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  for (let i = 0; i < 200; i += 1) {
    const up = await new Promise((resolve) => {
      const s = require('node:net').connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  return { url: `redis://127.0.0.1:${port}/0`, stop: () => { child.kill('SIGKILL'); } };
}

/**
 * The server under test: one node, or with SEALCAST_INTEROP_CLUSTER=1 two
 * nodes sharing a throwaway Redis. Resolves to { port, ports, clustered,
 * stop() }: clients spread over `ports`, the HTTP API talks to the last.
 */
async function startServer(extraEnv = {}) {
  if (process.env.SEALCAST_INTEROP_CLUSTER !== '1') {
    const node = await startNode(extraEnv);
    return { port: node.port, ports: [node.port], clustered: false, stop: node.stop };
  }
  const redis = await startRedis();
  const env = { ...extraEnv, SEALCAST_CLUSTER: redis.url };
  const nodes = [await startNode(env), await startNode(env)];
  return {
    port: nodes[1].port,
    ports: nodes.map((n) => n.port),
    clustered: true,
    stop: async () => { await Promise.all(nodes.map((n) => n.stop())); redis.stop(); },
  };
}

/** A `pusher` server library instance pointed at the local server. */
function serverLib(port, secret = APP.secret, extra = {}) {
  return new PusherServer({ appId: APP.id, key: APP.key, secret, host: '127.0.0.1', port: String(port), useTLS: Boolean(TLS_DIR), ...extra });
}

/**
 * `send_to_user` through the Python `pusher` library (pip), as an app
 * server written in Python calls it; returns its answer (throws on an
 * HTTP error). Over TLS it trusts the test CA.
 */
function pythonSendToUser(port, user, event, data) {
  const script = [
    'import json, sys, pusher',
    'p = pusher.Pusher(app_id=sys.argv[1], key=sys.argv[2], secret=sys.argv[3], host="127.0.0.1",',
    '                  port=int(sys.argv[4]), ssl=sys.argv[5] == "1")',
    // The library pins its own CA bundle for https; an app trusting a
    // private CA points it at that CA the same way.
    'if p._pusher_client.ssl: p._pusher_client.http.options["verify"] = sys.argv[9]',
    'print(json.dumps(p.send_to_user(sys.argv[6], sys.argv[7], json.loads(sys.argv[8]))))',
  ].join('\n');
  const ca = TLS_DIR ? path.join(TLS_DIR, 'ca.pem') : '';
  const args = [APP.id, APP.key, APP.secret, String(port), TLS_DIR ? '1' : '0', user, event, JSON.stringify(data), ca];
  const run = spawnSync('python3', ['-c', script, ...args], { encoding: 'utf8', timeout: 30000 });
  if (run.status !== 0) throw new Error(`python pusher library: ${run.stderr || run.error}`);
  return JSON.parse(run.stdout);
}

/**
 * A pusher-js client whose channel authorizer and user authenticator
 * (`signin()`, as `userFor().user_id`) sign with `lib`, as an app's auth
 * endpoints would.
 */
function client(port, lib, userFor) {
  return new Pusher(APP.key, {
    wsHost: '127.0.0.1',
    wsPort: port,
    wssPort: port,
    forceTLS: Boolean(TLS_DIR),
    enabledTransports: ['ws'],
    disableStats: true,
    cluster: 'local',
    userAuthentication: {
      customHandler: ({ socketId }, callback) => {
        try {
          callback(null, lib.authenticateUser(socketId, { id: userFor().user_id }));
        } catch (err) {
          callback(err, null);
        }
      },
    },
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const presence = channelName.startsWith('presence-') ? userFor() : undefined;
          callback(null, lib.authorizeChannel(socketId, channelName, presence));
        } catch (err) {
          callback(err, null);
        }
      },
    },
  });
}

/** Resolves when `emitter` fires `event` (bind-style), rejects after `ms`. */
function once(target, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), ms);
    const handler = (data, meta) => {
      clearTimeout(timer);
      target.unbind(event, handler);
      resolve({ data, meta });
    };
    target.bind(event, handler);
  });
}

function connected(pusher) {
  return new Promise((resolve, reject) => {
    if (pusher.connection.state === 'connected') return resolve();
    const timer = setTimeout(() => reject(new Error('not connected within 5 s')), 5000);
    pusher.connection.bind('connected', () => { clearTimeout(timer); resolve(); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { APP, startServer, serverLib, pythonSendToUser, client, once, connected, sleep };

