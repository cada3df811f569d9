#!/usr/bin/env node
// In-browser cost of the core compiled to WebAssembly, next to quill-delta
// in the same Chromium and to the same workload native, as ratios from one
// run (rounds interleaved: browser, native, browser, native…), and the
// bundle sizes gzipped. Results go in docs/benchmarks.md.
//
//   scripts/build-web.sh && scripts/web-site.sh
//   cargo build --release -p sealcast-wasm --example native_bench
//   cargo build -p sealcast-examples --example auth_server
//   node scripts/bench/web.mjs [ROUNDS]
import { execFileSync, spawn } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(path.join(root, "bindings", "js", "package.json"));
const { chromium } = require("playwright-core");
const rounds = Number(process.argv[2] || 3);
const site = path.join(root, "target", "web-site");

function gz(files) {
  return files.reduce((n, f) => n + zlib.gzipSync(fs.readFileSync(path.join(site, f)), { level: 9 }).length, 0);
}

const auth = spawn(path.join(root, "target", "debug", "examples", "auth_server"), [
  "--app-id", "b", "--app-key", "b", "--app-secret", "b", "--port", "0", "--site", site, "--site-config", "{}",
], { stdio: ["ignore", "pipe", "inherit"] });
const base = await new Promise((resolve) => {
  auth.stdout.on("data", (chunk) => {
    const m = String(chunk).match(/listening on (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const rows = [];
try {
  const page = await browser.newPage();
  await page.goto(`${base}/bench.html`);
  await page.waitForFunction(() => typeof window.runBench === "function");
  for (let round = 1; round <= rounds; round++) {
    const web = await page.evaluate(() => window.runBench());
    const native = JSON.parse(execFileSync(path.join(root, "target", "release", "examples", "native_bench")).toString());
    rows.push({ round, ...web, native });
    console.log(JSON.stringify(rows[rows.length - 1]));
  }
} finally {
  await browser.close();
  auth.kill();
}

const us = (ns) => (ns / 1000).toFixed(1);
const ratio = (a, b) => (a / b).toFixed(2);
console.log("\n| round | seal+open chat event: wasm / native (µs) | ratio | compose: wasm / quill-delta / native (µs) | wasm÷quill | wasm÷native | transform: wasm / quill-delta / native (µs) | wasm÷quill | wasm÷native |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.round} | ${us(r.sealOpenChat)} / ${us(r.native.sealOpenChat)} | ${ratio(r.sealOpenChat, r.native.sealOpenChat)} ` +
    `| ${us(r.wasmCompose)} / ${us(r.quillCompose)} / ${us(r.native.nativeCompose)} | ${ratio(r.wasmCompose, r.quillCompose)} | ${ratio(r.wasmCompose, r.native.nativeCompose)} ` +
    `| ${us(r.wasmTransform)} / ${us(r.quillTransform)} / ${us(r.native.nativeTransform)} | ${ratio(r.wasmTransform, r.quillTransform)} | ${ratio(r.wasmTransform, r.native.nativeTransform)} |`);
}
const chat = ["chat.html", "chat.js", "common.js", "sealcast/index.js", "sealcast/types.js", "sealcast/wasm/sealcast_wasm.js", "sealcast/wasm/sealcast_wasm_bg.wasm", "vendor/pusher.min.js"];
const docExtra = ["doc.js", "sealcast/quill.js", "vendor/quill.js", "vendor/quill-cursors.js", "vendor/quill.snow.css"];
console.log(`\nbundle, gzipped -9: wasm ${gz(["sealcast/wasm/sealcast_wasm_bg.wasm"])} B; sealcast JS ${gz(["sealcast/index.js", "sealcast/types.js", "sealcast/quill.js", "sealcast/wasm/sealcast_wasm.js"])} B; ` +
  `chat page total ${gz(chat)} B (with pusher-js); document page adds ${gz(docExtra)} B (Quill, quill-cursors, binding)`);
