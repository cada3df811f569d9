// Shared by the package's tests: starting the real programs and waiting.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.join(here, "..", "..", "..");
export const target = process.env.CARGO_TARGET_DIR || path.join(root, "target");
export const examples = path.join(target, "debug", "examples");
export const wasmFile = path.join(here, "..", "dist", "wasm", "sealcast_wasm_bg.wasm");

const children = [];

/**
 * Starts `program`; resolves with { child, lines, match } at the first stdout
 * line matching `ready`. `stdin: "pipe"` keeps its input open; `stderr` a
 * writable stream or "inherit"; `env` extra environment.
 */
export function start(program, args, ready, { stdin = "ignore", stderr = "inherit", env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      stdio: [stdin, "pipe", stderr === "inherit" ? "inherit" : "pipe"],
      env: { ...process.env, ...env },
    });
    if (stderr !== "inherit") child.stderr.pipe(stderr);
    children.push(child);
    const lines = [];
    let buffer = "";
    const timer = setTimeout(() => reject(new Error(`${path.basename(program)} not ready within 15 s`)), 15000);
    child.stdout.on("data", (chunk) => {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        lines.push(line);
        const m = line.match(ready);
        if (m) {
          clearTimeout(timer);
          resolve({ child, lines, match: m });
        }
      }
    });
    child.on("exit", (code) => reject(new Error(`${path.basename(program)} exited early (${code})`)));
  });
}

/** Kills every program started here. */
export function stopAll() {
  for (const child of children.splice(0)) child.kill("SIGKILL");
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 20 ms until it is truthy, for at most `ms`. */
export async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(20);
  }
}

/** Starts the example auth server (auth + keys, and the site when given); resolves to its base URL. */
export async function startAuthServer(app, site) {
  const args = ["--app-id", app.id, "--app-key", app.key, "--app-secret", app.secret, "--port", "0"];
  if (site) args.push("--site", site.dir, "--site-config", JSON.stringify(site.config));
  const started = await start(path.join(examples, "auth_server"), args, /listening on (http:\/\/\S+)/);
  return started.match[1];
}

/** A key provider asking the auth server at `auth`: keys by key id, document keys per session. */
export function keyProvider(auth) {
  const getJson = async (path) => {
    const answer = await fetch(`${auth}${path}`);
    if (!answer.ok) throw new Error(`key server: ${answer.status}`);
    return answer.json();
  };
  return async (request) => {
    // Document keys per session, as the web demo's provider
    // (examples/web/common.js): a new one when no session is recorded.
    if (request.docId != null) {
      const hint = request.keyHint == null ? "" : `&key_hint=${encodeURIComponent(request.keyHint)}`;
      const answer = await getJson(`/doc-key?doc_id=${encodeURIComponent(request.docId)}${hint}`);
      return { kv: answer.kv, key: answer.key, keyHint: answer.key_hint };
    }
    const kv = request.kv == null ? "" : `&kv=${request.kv}`;
    return getJson(`/keys?kid=${encodeURIComponent(request.kid)}${kv}`);
  };
}

/**
 * A seeded generator of numbers in [0, 1) (mulberry32, in 32-bit integer
 * arithmetic): the same seed, the same run. (A floating-point LCG these
 * tests used multiplied past 2^53 and fell into short cycles for some
 * seeds.)
 */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
