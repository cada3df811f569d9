// The web demo in headless Chromium (Debian's package, driven by
// playwright-core; no browser is downloaded): chat sealed end to end
// between two pages with a plain pusher-js client watching, and three
// pages typing into one Quill document (emoji, deletions, formatting), one
// reloading mid-way and a fourth joining late, all ending identical. A
// canary typed in the pages never reaches the server's trace log or its
// data directory.
//
// Needs what node.test.mjs needs, plus target/web-site (scripts/web-site.sh)
// and /usr/bin/chromium (CHROMIUM overrides).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

import { root, seededRandom, sleep, start, startAuthServer, stopAll, target, until } from "./support.mjs";

const require = createRequire(import.meta.url);
const Pusher = require(path.join(root, "tests", "interop", "node_modules", "pusher-js"));

const APP = { id: "web-test", key: "web-test-key", secret: "web-test-secret" };
const CANARY = `canary${Math.random().toString(36).slice(2, 10)}`;
const site = process.env.WEB_SITE_DIR || path.join(target, "web-site");

let browser;
let base; // the pages' origin
let wsPort;
let dataDir;
let logFile;
const spies = [];

before(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sealcast-web-"));
  logFile = path.join(dataDir, "..", `${path.basename(dataDir)}.log`);
  const log = fs.createWriteStream(logFile);
  const server = await start(
    path.join(target, "debug", "sealcast"),
    ["serve", "--port", "0", "--data-dir", dataDir],
    /listening on [^:\s]+:(\d+)/,
    {
      stderr: log,
      env: {
        SEALCAST_APP_ID: APP.id,
        SEALCAST_APP_KEY: APP.key,
        SEALCAST_APP_SECRET: APP.secret,
        SEALCAST_APP_HISTORY: "presence-chat-*",
        RUST_LOG: "trace",
      },
    },
  );
  wsPort = Number(server.match[1]);
  base = await startAuthServer(APP, {
    dir: site,
    config: { appKey: APP.key, wsHost: "127.0.0.1", wsPort },
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  for (const spy of spies) spy.disconnect();
  stopAll();
  fs.rmSync(dataDir, { recursive: true, force: true });
  // KEEP_LOG=1 keeps the server's log (trace) for a failure's post-mortem.
  if (!process.env.KEEP_LOG) fs.rmSync(logFile, { force: true });
});

/** A page of the demo; browser console errors fail the test. */
async function open(pathAndQuery) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (err) => page.errors.push(String(err)));
  page.logs = [];
  page.on("console", (msg) => {
    page.logs.push(msg.text());
    if (msg.type() === "error") page.errors.push(msg.text());
  });
  await page.goto(`${base}${pathAndQuery}`);
  return page;
}

/** A plain pusher-js client (no sealcast) on `channel`, recording what it is sent. */
function spy(channel, event) {
  const pusher = new Pusher(APP.key, {
    wsHost: "127.0.0.1",
    wsPort,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    cluster: "local",
    channelAuthorization: { endpoint: `${base}/auth`, transport: "ajax", params: { user_id: "spy" } },
  });
  spies.push(pusher);
  const seen = [];
  const ch = pusher.subscribe(channel);
  ch.bind(event, (data) => seen.push(data));
  return { seen, ready: () => ch.subscribed };
}

/** Everything under `dir` and the log, searched for `needle`. */
function leaks(needle) {
  const found = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (fs.readFileSync(file).includes(needle)) found.push(file);
    }
  };
  walk(dataDir);
  if (fs.readFileSync(logFile).includes(needle)) found.push(logFile);
  return found;
}

/** A document page's editor is `ready`. */
const ready = (page) => page.locator('#status[data-state="ready"]').waitFor({ timeout: 20000 });

/** Opens document `docId` as each of `users` (in order), once ready. */
async function openDoc(docId, ...users) {
  const pages = [];
  for (const user of users) pages.push(await open(`/doc.html?doc=${docId}&user=${user}`));
  for (const page of pages) await ready(page);
  return pages;
}

test("chat: two pages, sealed end to end; a plain pusher-js client sees only envelopes", async () => {
  const room = `r${process.pid}`;
  const watcher = spy(`presence-chat-${room}`, "client-chat");
  const ann = await open(`/chat.html?room=${room}&user=ann`);
  const bob = await open(`/chat.html?room=${room}&user=bob`);
  for (const page of [ann, bob]) await page.locator("#message:not([disabled])").waitFor({ timeout: 15000 });
  await until(() => watcher.ready(), 10000, "the plain client subscribed");
  await sleep(300);

  const lines = [`hello bob ${CANARY} 👋`, "second line, é and 中文"];
  for (const line of lines) {
    await ann.fill("#message", line);
    await ann.press("#message", "Enter");
  }
  await bob.fill("#message", `hi ann ${CANARY} 🎉`);
  await bob.press("#message", "Enter");

  const texts = (page) => page.$$eval("#messages li", (items) => items.map((li) => li.textContent));
  await until(async () => (await texts(bob)).length >= 3 && (await texts(ann)).length >= 3, 10000, "messages on both pages");
  assert.deepEqual(await texts(bob), [...lines, `hi ann ${CANARY} 🎉`]);
  assert.deepEqual(await texts(ann), [...lines, `hi ann ${CANARY} 🎉`]);

  await until(() => watcher.seen.length >= 3, 5000, "the plain client seeing the messages");
  for (const data of watcher.seen) {
    assert.equal(typeof data.body, "object", "the body travels as an envelope");
    assert.ok(!JSON.stringify(data).includes(CANARY), "no plaintext on the wire");
  }
  for (const page of [ann, bob]) assert.deepEqual(page.errors, []);
});

test("chat: a page whose connection drops (a laptop lid, a tunnel) shows every message sent meanwhile once it is back, once each, in order", async () => {
  const room = `away${process.pid}`;
  const ann = await open(`/chat.html?room=${room}&user=ann`);
  const bob = await open(`/chat.html?room=${room}&user=bob`);
  const carl = await open(`/chat.html?room=${room}&user=carl`); // sees what the server relayed
  for (const page of [ann, bob, carl]) await page.locator("#message:not([disabled])").waitFor({ timeout: 15000 });
  const texts = (page) => page.$$eval("#messages li", (items) => items.map((li) => li.textContent));
  await bob.fill("#message", "before");
  await bob.press("#message", "Enter");
  await until(async () => (await texts(ann)).length === 1, 10000, "ann seeing the first message");

  await ann.evaluate(() => globalThis.Pusher.instances[0].disconnect());
  const missed = ["while you were away 1", "while you were away 2 é", "while you were away 3 🎉"];
  for (const line of missed) {
    await bob.fill("#message", line);
    await bob.press("#message", "Enter");
  }
  // Relayed (so kept) before ann is back.
  await until(async () => (await texts(carl)).length === 4, 10000, "carl seeing bob's messages");
  await ann.evaluate(() => globalThis.Pusher.instances[0].connect());
  await until(async () => (await texts(ann)).length === 5, 15000, "ann's page catching up").catch(async (err) => {
    throw new Error(`${err.message}; ann's page shows ${JSON.stringify(await texts(ann))}, console ${JSON.stringify(ann.logs)}`);
  });
  assert.deepEqual(await texts(ann), ["before", ...missed, "caught up: 3 message(s) sent while you were away"]);
  for (const page of [ann, bob, carl]) assert.deepEqual(page.errors, []);
});

test("documents: three pages type concurrently, one reloads, a fourth joins late; all editors end identical", async () => {
  const docId = `d${process.pid}`;
  const pages = await openDoc(docId, "ann", "bob", "cat");

  const seed = Number(process.env.WEB_DOC_SEED || Date.now() % 1000000);
  console.log(`WEB_DOC_SEED=${seed}`);
  const random = seededRandom(seed);
  const pieces = ["abc ", "é", "👋", "🇫🇷", "中文", "xyz"];

  /** One user action: type, delete, toggle bold at a random spot, or undo. */
  async function act(page) {
    await page.click(".ql-editor");
    // A caret lands between characters, never inside an emoji's UTF-16 pair
    // (Quill counts UTF-16 units; a browser never puts the caret there).
    // Chosen and set in one step, so a remote change cannot move the text
    // under it meanwhile.
    const [pick, span] = [random(), random() < 0.5 ? 1 : 2];
    const bold = random() < 0.1;
    await page.evaluate(([pick, span, bold]) => {
      const offsets = [0];
      for (const ch of window.quill.getText()) offsets.push(offsets[offsets.length - 1] + ch.length);
      const k = Math.floor(pick * (offsets.length - 1));
      const from = bold ? offsets[Math.max(0, k - span)] : offsets[k];
      window.quill.setSelection(from, offsets[k] - from, "user");
    }, [pick, span, bold]);
    if (bold) return page.keyboard.press("Control+b");
    const r = random();
    if (r < 0.05) return page.keyboard.press("Control+z"); // the user's own newest change
    if (r < 0.6) {
      await page.keyboard.insertText(pieces[Math.floor(random() * pieces.length)]);
    } else if (r < 0.8) {
      await page.keyboard.press("Backspace");
    } else {
      await page.keyboard.press("Enter");
    }
  }

  for (const page of pages.slice(0, 2)) {
    await page.click(".ql-editor");
    await page.keyboard.insertText(`${CANARY} `);
  }
  for (let round = 0; round < 25; round++) {
    await Promise.all(pages.map((page) => act(page)));
    if (round === 12) {
      // Cat reloads mid-way: a new session from the server's history.
      await pages[2].reload();
      await ready(pages[2]);
    }
  }
  const [late] = await openDoc(docId, "dan");
  const all = [...pages, late];

  const contents = (page) => page.evaluate(() => JSON.stringify(window.quill.getContents()));
  const same = async () => {
    const views = await Promise.all(all.map(contents));
    return views.every((v) => v === views[0]);
  };
  await until(same, 20000, "every editor showing the same document").catch(() => {});
  const views = await Promise.all(all.map(contents));
  const sdk = await Promise.all(all.map((page) => page.evaluate(() => window.sealcastDocView?.())));
  for (const [i, view] of views.entries()) {
    assert.equal(view, views[0], `editor ${i} differs (SDK views: ${JSON.stringify(sdk)})`);
  }
  const final = JSON.parse(await contents(pages[0]));
  assert.ok(JSON.stringify(final).length > 100, JSON.stringify(final)); // (later edits may split the canary)
  for (const page of all) {
    const status = await page.locator("#status").textContent();
    assert.equal(await page.locator("#status").getAttribute("data-state"), "ready", status);
    assert.deepEqual(page.errors, []);
  }
});

test("documents: the editor's own last line — Enter at the end and a list on the last line look the same in every editor", async () => {
  // Quill always ends with a newline and a new document is empty, so each
  // editor shows the document plus a final line of Quill's own. An editor
  // that loaded the document (setContents) and one that watched it being
  // typed (updateContents) used to disagree about a final newline; a list
  // on the last line was refused as reaching past the document's end.
  const docId = `lastline${process.pid}`;
  const [ann, bob] = await openDoc(docId, "ann", "bob");
  await ann.click(".ql-editor");
  await ann.keyboard.insertText("one");
  await ann.keyboard.press("Enter");
  await ann.keyboard.press("Enter");
  const contents = (page) => page.evaluate(() => JSON.stringify(window.quill.getContents()));
  const view = async (page) => JSON.parse(await page.evaluate(() => window.sealcastDocView())).view;
  const [late] = await openDoc(docId, "cat"); // loads "one\n\n" from the server
  await until(async () => (await contents(bob)) === (await contents(ann)), 10000, "bob showing ann's newlines");
  assert.equal(await contents(late), await contents(ann), "an editor that loaded the document shows what one that watched it shows");

  // A bullet on the last line (Quill's own): it becomes the document's last line.
  await ann.evaluate(() => window.quill.formatLine(window.quill.getLength() - 1, 0, "list", "bullet", "user"));
  await ann.keyboard.insertText("two");
  const all = [ann, bob, late];
  const same = async () => new Set(await Promise.all(all.map(contents))).size === 1;
  await until(same, 10000, "every editor showing the list").catch(() => {});
  const shown = await Promise.all(all.map(contents));
  for (const [i, c] of shown.entries()) assert.equal(c, shown[0], `editor ${i} differs`);
  assert.deepEqual(JSON.parse(shown[0]).ops, [
    { insert: "one\n\ntwo" },
    { attributes: { list: "bullet" }, insert: "\n" },
    { insert: "\n" },
  ]);
  for (const page of all) {
    assert.deepEqual(await view(page), { ops: JSON.parse(shown[0]).ops.slice(0, -1) }, "the document is the editor minus its own last line");
    assert.equal(await page.locator("#status").getAttribute("data-state"), "ready", await page.locator("#status").textContent());
    assert.deepEqual(page.errors, []);
  }
});

test("documents: undo in one editor takes back that user's change, not another's", async () => {
  // Quill's history records every change by default, others' included, so
  // Ctrl+Z reverted the newest change in the editor whoever made it.
  const [ann, bob] = await openDoc(`undo${process.pid}`, "ann", "bob");
  const text = (page) => page.evaluate(() => window.quill.getText());
  const typeAtEnd = async (page, words) => {
    await page.click(".ql-editor");
    await page.evaluate(() => window.quill.setSelection(window.quill.getLength() - 1, 0, "user"));
    await page.keyboard.insertText(words);
  };
  await typeAtEnd(ann, "ann ");
  await until(async () => (await text(bob)) === "ann \n", 10000, "bob seeing ann's words");
  await sleep(1200); // past Quill's history grouping delay (1 s)
  await typeAtEnd(bob, "bob ");
  await until(async () => (await text(ann)) === "ann bob \n", 10000, "ann seeing bob's words");
  await ann.click(".ql-editor");
  await ann.keyboard.press("Control+z");
  for (const page of [ann, bob]) {
    await until(async () => (await text(page)) === "bob \n", 10000, "ann's words undone, bob's kept").catch(() => {});
    assert.equal(await text(page), "bob \n");
  }
  await ann.keyboard.press("Control+Shift+z");
  for (const page of [ann, bob]) {
    await until(async () => (await text(page)) === "ann bob \n", 10000, "ann's words redone").catch(() => {});
    assert.equal(await text(page), "ann bob \n");
    assert.equal(await page.locator("#status").getAttribute("data-state"), "ready");
    assert.deepEqual(page.errors, []);
  }
});

test("documents: undoing a list on the editor's last line takes the list's line back out; redo puts it back", async () => {
  // The binding turns that format into a new formatted line ending the
  // document. Its fix-up used to cancel the change in Quill's history, so
  // Ctrl+Z undid the change before it (the typed words) instead.
  const [ann, bob] = await openDoc(`lastlineundo${process.pid}`, "ann", "bob");
  const contents = (page) => page.evaluate(() => JSON.stringify(window.quill.getContents().ops));
  const bothShow = async (ops, what) => {
    const want = JSON.stringify(ops);
    for (const page of [ann, bob]) {
      await until(async () => (await contents(page)) === want, 10000, what).catch(() => {});
      assert.equal(await contents(page), want, what);
    }
  };
  await ann.click(".ql-editor");
  await ann.keyboard.insertText("one");
  await bothShow([{ insert: "one\n" }], "the words");
  await sleep(1200); // past Quill's history grouping delay (1 s)
  await ann.evaluate(() => window.quill.formatLine(window.quill.getLength() - 1, 0, "list", "bullet", "user"));
  const listed = [{ insert: "one" }, { attributes: { list: "bullet" }, insert: "\n" }, { insert: "\n" }];
  await bothShow(listed, "the list");
  await ann.keyboard.press("Control+z");
  await bothShow([{ insert: "one\n" }], "the list undone, the words kept");
  await ann.keyboard.press("Control+Shift+z");
  await bothShow(listed, "the list redone");
  for (const page of [ann, bob]) {
    assert.equal(await page.locator("#status").getAttribute("data-state"), "ready");
    assert.deepEqual(page.errors, []);
  }
});

test("the canary typed in the pages never reached the server's log or data directory", async () => {
  // The server logs at trace level and stored the documents' sealed ops.
  assert.ok(fs.statSync(logFile).size > 0, "the server wrote a log");
  assert.deepEqual(leaks(CANARY), []);
});
