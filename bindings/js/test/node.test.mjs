// @sealcast/client in Node: the real pusher-js 8 (its Node build) against a
// real `sealcast serve`, interoperating with the Rust client (the `chat` and
// `doc_peer` examples) on one channel and one document. Keys come
// from the example auth server (examples/src/auth_server.rs), as in an app.
//
// Needs: scripts/build-web.sh (bindings/js/dist), target/debug/sealcast and
// target/debug/examples/{auth_server,chat,doc_peer}, tests/interop/node_modules.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { channelAuthorizer, loadSealcast, SealcastClient, SealcastError } from "../dist/index.js";
import { examples, keyProvider as keysFrom, root, seededRandom, start, startAuthServer, stopAll, until, wasmFile } from "./support.mjs";

const require = createRequire(import.meta.url);
const harness = require(path.join(root, "tests", "interop", "harness.js"));

let server;
let auth; // http://127.0.0.1:PORT
let keyProvider;
const keyRequests = []; // every request the JS clients made
const clients = [];

const Pusher = require(path.join(root, "tests", "interop", "node_modules", "pusher-js"));

/** A pusher-js client authorized by the app's auth endpoint, with sealcast on it. */
async function sealcastUser(name) {
  const pusher = new Pusher(harness.APP.key, {
    wsHost: "127.0.0.1",
    wsPort: server.port,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    cluster: "local",
    channelAuthorization: channelAuthorizer(async (socketId, channel) => {
      const form = new URLSearchParams({ socket_id: socketId, channel_name: channel, user_id: name });
      const answer = await fetch(`${auth}/auth`, { method: "POST", body: form });
      if (!answer.ok) throw new Error(`auth endpoint: ${answer.status}`);
      return answer.json();
    }),
  });
  await harness.connected(pusher);
  const client = new SealcastClient(pusher, { keyProvider });
  clients.push({ pusher, client });
  return { pusher, client };
}

before(async () => {
  await loadSealcast(readFileSync(wasmFile));
  // Channels named private-history-* keep history (docs/history.md).
  server = await harness.startServer({ SEALCAST_APP_HISTORY: "private-history-*" });
  auth = await startAuthServer(harness.APP);
  const provider = keysFrom(auth);
  keyProvider = (request) => {
    keyRequests.push(request);
    return provider(request);
  };
});

after(async () => {
  for (const { client, pusher } of clients) {
    client.close();
    pusher.disconnect();
  }
  stopAll();
  await server.stop();
});

test("chat: sealed end to end between pusher-js + wasm and the Rust client; a raw pusher-js client sees only envelopes", async () => {
  const room = `room-${process.pid}`;
  const channelName = `presence-chat-${room}`;
  const canary = `canary-${Math.random().toString(36).slice(2)}`;

  // The Rust client (examples/chat.rs): prints "USER: BODY" for each message.
  const rust = await start(
    path.join(examples, "chat"),
    ["--key", harness.APP.key, "--user", "rusty", "--room", room, "--url", `ws://127.0.0.1:${server.port}`, "--auth", auth],
    /joined presence-chat-/,
    { stdin: "pipe" },
  );

  const ann = await sealcastUser("ann");
  const got = [];
  const channel = ann.client.channel(channelName);
  channel.bind("client-chat", (data, meta) => got.push({ data, meta }));
  let subscribed = false;
  channel.bindSubscribed(() => (subscribed = true));

  // An observer with plain pusher-js on the same channel: only envelopes.
  const spy = harness.client(server.port, harness.serverLib(server.port), () => ({ user_id: "spy" }));
  clients.push({ pusher: spy, client: { close() {} } });
  const raw = [];
  spy.subscribe(channelName).bind("client-chat", (data) => raw.push(data));
  await harness.connected(spy);
  await until(() => subscribed && spy.channel(channelName)?.subscribed, 5000, "subscriptions");
  await harness.sleep(200);

  channel.sendChat(room, "ann-1", { body: `hello from the browser ${canary} 👋`, id: "ann-1" });
  await until(() => rust.lines.some((l) => l.includes(canary)), 10000, "the Rust client printing ann's message");
  assert.ok(rust.lines.some((l) => l === `ann: hello from the browser ${canary} 👋`), rust.lines.join("\n"));

  rust.child.stdin.write(`from rust ${canary} é\n`);
  await until(() => got.some((m) => m.meta.userId === "rusty"), 10000, "ann receiving the Rust message");
  const fromRust = got.find((m) => m.meta.userId === "rusty");
  assert.equal(fromRust.data.body, `from rust ${canary} é`);
  assert.equal(fromRust.meta.scope, `chat:${room}:rusty-0`);

  await until(() => raw.length >= 2, 5000, "the spy seeing both messages");
  for (const data of raw) {
    const text = JSON.stringify(data);
    assert.ok(!text.includes(canary), `plaintext reached a plain subscriber: ${text}`);
    assert.equal(typeof data.body, "object", "the body is an envelope");
  }
  rust.child.stdin.end();
});

test("sealed events wait for their key and a refused key is an undecryptable event, never ciphertext", async () => {
  const channelName = `private-sealed-${process.pid}`;
  const bob = await sealcastUser("bob");
  const cat = await sealcastUser("cat");
  const received = [];
  const failed = [];
  const bobChannel = bob.client.channel(channelName);
  const catChannel = cat.client.channel(channelName);
  catChannel.bind("client-note", (data, meta) => received.push({ data, meta }));
  catChannel.bindUndecryptable((error) => failed.push(error));
  let ready = 0;
  bobChannel.bindSubscribed(() => ready++);
  catChannel.bindSubscribed(() => ready++);
  await until(() => ready >= 2, 5000, "both subscribed");

  // Sent before bob has the key: it waits for the provider, then goes out.
  bobChannel.triggerSealed("client-note", { text: "sealed 🔐", n: 1 }, { paths: ["/text"], kid: "notes", scope: "custom:notes:1:client-note" });
  await until(() => received.length === 1, 10000, "cat receiving the note");
  assert.equal(received[0].data.text, "sealed 🔐");
  assert.equal(received[0].data.n, 1);
  assert.equal(received[0].meta.scope, "custom:notes:1:client-note");

  // Bob seals with a key version the backend never issued (ghost v9): cat's
  // provider fails, so the event arrives as undecryptable, with a code.
  bob.client.addKey("ghost", 9, (await keyProvider({ kid: "ghost", kv: null })).key);
  bobChannel.triggerSealed("client-note", { text: "from a key cat cannot get" }, { paths: ["/text"], kid: "ghost", scope: "custom:notes:2:client-note" });
  await until(() => failed.length === 1, 10000, "cat reporting the undecryptable note");
  assert.equal(failed[0].event, "client-note");
  assert.match(failed[0].code, /unknown_key|key/);
  assert.equal(received.length, 1);

  // Refusals the server would give are refused locally, typed.
  assert.throws(() => bob.client.channel(`public-${process.pid}`).trigger("client-x", {}), (err) => err instanceof SealcastError);
});

test("documents: three JS clients and the Rust client type concurrently (emoji, deletions, formatting) and converge", async () => {
  const docId = `doc-${process.pid}`;
  // The three JS clients open the new document at once: each gets a new
  // session key from /doc-key and claims it; the server records the first
  // claim and the others switch to it (docs/keys.md).
  const users = [await sealcastUser("d1"), await sealcastUser("d2"), await sealcastUser("d3")];
  const editors = users.map(({ client }) => {
    const doc = client.openDocument(docId, { kid: `doc-${docId}`, presence: true });
    const editor = { doc, version: undefined, text: [], diverged: null };
    doc.on("ready", (e) => {
      editor.view = e.view;
      editor.version = e.version;
    });
    doc.on("diverged", (e) => (editor.diverged = e));
    return editor;
  });
  await until(() => editors.every((e) => e.version !== undefined), 10000, "all documents ready");
  const asked = keyRequests.filter((r) => r.docId === docId);
  console.log(`document key requests: ${JSON.stringify(asked.map((r) => r.keyHint))}`);
  assert.ok(asked.some((r) => r.keyHint === null), "a new session key was issued");
  // The Rust client (examples/doc_peer.rs) on the same document, told the
  // recorded session by the server.
  const rust = await start(
    path.join(examples, "doc_peer"),
    ["--key", harness.APP.key, "--user", "rusty", "--doc", docId, "--url", `ws://127.0.0.1:${server.port}`, "--auth", auth],
    /^READY$/,
    { stdin: "pipe" },
  );

  const pieces = ["a", "é", "👋", "🇫🇷", "中", " "];
  const seed = Number(process.env.WEB_DOC_SEED || Date.now() % 100000);
  console.log(`WEB_DOC_SEED=${seed}`);
  const random = seededRandom(seed);
  const refusals = [];
  for (let round = 0; round < 60; round++) {
    for (const editor of editors) {
      const { view, version } = editor.doc.view();
      // Positions count UTF-16 units, as Quill does; pick code-point boundaries.
      const text = view.ops.map((op) => (typeof op.insert === "string" ? op.insert : "\u{fffc}")).join("");
      const points = [...text];
      const at = Math.floor(random() * (points.length + 1));
      const offset = points.slice(0, at).join("").length;
      const retain = offset > 0 ? [{ retain: offset }] : [];
      const width = at < points.length ? points[at].length : 0;
      const r = random();
      let change;
      if (r < 0.6 || width === 0) change = { ops: [...retain, { insert: pieces[Math.floor(random() * pieces.length)] }] };
      else if (r < 0.85) change = { ops: [...retain, { delete: width }] };
      else change = { ops: [...retain, { retain: width, attributes: { bold: true } }] };
      try {
        editor.doc.edit(version, change);
      } catch (err) {
        refusals.push(err);
      }
    }
    if (round % 3 === 0) rust.child.stdin.write(`insert 0 🦀${round}\n`);
    await harness.sleep(5);
  }
  // The Rust client's last edit comes after the JS editors stopped, so no
  // random insert can land inside it (one split "🦀57" as "🦀5a7").
  rust.child.stdin.write("insert 0 🦀done\n");
  // Every edit is against the version its editor shows, so none is refused.
  assert.deepEqual(refusals.map(String), []);
  await until(() => editors.every((e) => !e.doc.hasPending), 20000, "every edit acknowledged");
  // The Rust client's last edits may still be on their way: poll its view.
  const rustView = async () => {
    const seen = rust.lines.length;
    rust.child.stdin.write("view\n");
    const line = await until(() => rust.lines.slice(seen).find((l) => l.startsWith("VIEW ")), 5000, "the Rust view");
    return JSON.stringify(JSON.parse(line.slice(5)).view);
  };
  let views = [];
  await until(async () => {
    views = [...editors.map((e) => JSON.stringify(e.doc.view().view)), await rustView()];
    return views.every((v) => v === views[0]) && views[0].includes("🦀done");
  }, 10000, "all four clients showing the same document").catch(() => {});
  assert.equal(editors.filter((e) => e.diverged).length, 0, JSON.stringify(editors.map((e) => e.diverged)));
  for (const [i, view] of views.entries()) assert.equal(view, views[0], `client ${i} (3 is the Rust one)`);
  assert.ok(views[0].includes("🦀done"), "the Rust client's edits are in the document");
  assert.ok(!rust.lines.some((l) => l.startsWith("DIVERGED") || l.startsWith("ERROR")), rust.lines.join("\n"));
  assert.ok(views[0].length > 10, views[0]);

  // A late joiner sees the same document.
  const late = await sealcastUser("d4");
  const lateDoc = late.client.openDocument(docId, { kid: `doc-${docId}`, presence: true });
  let lateReady = false;
  lateDoc.on("ready", () => (lateReady = true));
  await until(() => lateReady, 10000, "the late joiner ready");
  assert.equal(JSON.stringify(lateDoc.view().view), views[0]);
});

test("history: a pusher-js + wasm client that drops gets the events it missed (sealed client events and HTTP publishes) once, in order, then a catch-up report", async () => {
  const name = `private-history-${process.pid}`;
  const room = `history-${process.pid}`;
  const ann = await sealcastUser("ann");
  const bob = await sealcastUser("bob");
  const seen = [];
  const outcomes = [];
  const annChannel = ann.client.channel(name);
  annChannel.bind("news", (data) => seen.push(data.n));
  annChannel.bind("client-chat", (data) => seen.push(data.n));
  annChannel.bindUndecryptable((e) => seen.push(`undecryptable ${e.code}`));
  annChannel.bindCatchUp((outcome) => outcomes.push(outcome));
  let annSubscribed = 0;
  annChannel.bindSubscribed(() => annSubscribed++);
  const bobChannel = bob.client.channel(name);
  let bobSubscribed = false;
  bobChannel.bindSubscribed(() => (bobSubscribed = true));
  await until(() => annSubscribed === 1 && bobSubscribed, 5000, "both subscribed");
  const lib = harness.serverLib(server.port);
  await lib.trigger(name, "news", { n: 0 });
  await until(() => seen.length === 1, 5000, "the first event");

  ann.pusher.disconnect();
  await until(() => ann.pusher.connection.state === "disconnected", 5000, "ann disconnected");
  for (let n = 1; n <= 10; n++) {
    if (n % 2 === 0) await lib.trigger(name, "news", { n });
    else bobChannel.sendChat(room, `m${n}`, { body: `sealed ${n}`, n });
    await harness.sleep(30); // one a time: the stream's order is the order sent
  }
  const page = async () => {
    const res = await lib.get({ path: `/channels/${name}/history`, params: { since: 1, limit: 100 } });
    return res.json();
  };
  await until(async () => (await page()).head === 11, 5000, "every event kept");
  const order = (await page()).events.map((e) => (typeof e.data === "string" ? JSON.parse(e.data) : e.data).n);

  ann.pusher.connect();
  await until(() => outcomes.length === 1, 10000, "the catch-up report");
  assert.deepEqual(outcomes[0], { type: "complete", events: 10 });
  assert.deepEqual(seen, [0, ...order], "missed events once, in the stream's order, opened");
  assert.deepEqual([...order].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  // Live again: the next event arrives once.
  await lib.trigger(name, "news", { n: 11 });
  await until(() => seen.length === 12, 5000, "the next live event");
  await harness.sleep(100);
  assert.deepEqual(seen.slice(-1), [11]);

  // Scrolling back: the newest three, opened (the sealed ones too), then
  // the page before them; a channel without history is refused.
  const newest = await annChannel.history({ limit: 3 });
  assert.deepEqual(newest.events.map((e) => e.data.n), [...order.slice(-2), 11]);
  assert.equal(newest.more, true);
  const before = await annChannel.history({ before: newest.events[0].offset, limit: 100 });
  assert.deepEqual(before.events.map((e) => e.data.n), [0, ...order.slice(0, -2)]);
  assert.ok(before.events.every((e) => e.undecryptable === undefined));
  assert.equal(before.more, false);
  const plain = ann.client.channel(`private-plain-${process.pid}`);
  let plainSubscribed = false;
  plain.bindSubscribed(() => (plainSubscribed = true));
  await until(() => plainSubscribed, 5000, "a channel without history");
  await assert.rejects(plain.history(), (err) => err.code === "history_off");
});
