// pusher-js (the real browser/Node client, and Laravel Echo over it) and `pusher` (the real Node
// server library) against a real `sealcast serve`.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, serverLib, pythonSendToUser, client, once, connected, sleep } = require('./harness');

let server;
let lib;
const clients = [];
// Clients alternate between the nodes (one node unless
// SEALCAST_INTEROP_CLUSTER=1); the HTTP API goes to `server.port`.
function newClient(userFor = () => ({ user_id: 'anon' })) {
  const c = client(server.ports[clients.length % server.ports.length], lib, userFor);
  clients.push(c);
  return c;
}
// In a cluster, give a subscription a moment to reach the other node
// before asking that node about it.
const settle = () => (server.clustered ? sleep(150) : Promise.resolve());
// Polls `check` every 20 ms until it is true, for at most `ms`.
async function until(check, ms) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms`);
    await sleep(20);
  }
}

before(async () => {
  server = await startServer();
  lib = serverLib(server.port);
});

after(async () => {
  clients.forEach((c) => c.disconnect());
  await sleep(100);
  await server.stop();
});

test('public channel receives an event triggered through the HTTP API', async () => {
  const c = newClient();
  const channel = c.subscribe('news');
  await once(channel, 'pusher:subscription_succeeded');
  await settle();
  const got = once(channel, 'headline');
  const res = await lib.trigger('news', 'headline', { title: 'hello' });
  assert.equal(res.status, 200);
  assert.deepEqual((await got).data, { title: 'hello' });
});

test('private channel: signature from the pusher library is accepted, a bad one is rejected with 4009/401', async () => {
  const c = newClient();
  const ok = c.subscribe('private-room');
  await once(ok, 'pusher:subscription_succeeded');

  const badLib = serverLib(server.port, 'wrong-secret');
  const bad = client(server.port, badLib, () => ({ user_id: 'x' }));
  clients.push(bad);
  const denied = bad.subscribe('private-room');
  const { data } = await once(denied, 'pusher:subscription_error');
  assert.equal(data.status, 401);
  assert.equal(data.type, 'AuthError');
});

test('presence: roster, member_added and member_removed once per user', async () => {
  const alice = newClient(() => ({ user_id: 'alice', user_info: { name: 'Alice' } }));
  const a = alice.subscribe('presence-lobby');
  await once(a, 'pusher:subscription_succeeded');
  assert.equal(a.members.count, 1);
  await settle();

  const added = once(a, 'pusher:member_added');
  const bob = newClient(() => ({ user_id: 'bob', user_info: { name: 'Bob' } }));
  const b = bob.subscribe('presence-lobby');
  const { data: roster } = await once(b, 'pusher:subscription_succeeded');
  assert.equal(roster.count, 2);
  assert.equal(b.members.get('alice').info.name, 'Alice');
  const { data: member } = await added;
  assert.equal(member.id, 'bob');
  assert.equal(member.info.name, 'Bob');

  // A second connection of bob adds no member.
  let extraAdds = 0;
  a.bind('pusher:member_added', () => { extraAdds += 1; });
  const bob2 = newClient(() => ({ user_id: 'bob', user_info: { name: 'Bob' } }));
  await once(bob2.subscribe('presence-lobby'), 'pusher:subscription_succeeded');
  await sleep(200);
  assert.equal(extraAdds, 0);

  const removed = once(a, 'pusher:member_removed');
  bob.disconnect();
  bob2.disconnect();
  assert.equal((await removed).data.id, 'bob');
  assert.equal(a.members.count, 1);
});

test('client events reach the other subscriber, not the sender', async () => {
  const c1 = newClient();
  const c2 = newClient();
  const ch1 = c1.subscribe('private-chat');
  const ch2 = c2.subscribe('private-chat');
  await Promise.all([once(ch1, 'pusher:subscription_succeeded'), once(ch2, 'pusher:subscription_succeeded')]);
  await settle();
  let echoed = false;
  ch1.bind('client-typing', () => { echoed = true; });
  const got = once(ch2, 'client-typing');
  assert.ok(ch1.trigger('client-typing', { who: 'c1' }));
  assert.deepEqual((await got).data, { who: 'c1' });
  await sleep(200);
  assert.equal(echoed, false);
});

test('batch events', async () => {
  const c = newClient();
  const ch = c.subscribe('batch-channel');
  await once(ch, 'pusher:subscription_succeeded');
  await settle();
  const first = once(ch, 'first');
  const second = once(ch, 'second');
  const res = await lib.triggerBatch([
    { channel: 'batch-channel', name: 'first', data: { n: 1 } },
    { channel: 'batch-channel', name: 'second', data: { n: 2 } },
  ]);
  assert.equal(res.status, 200);
  assert.deepEqual((await first).data, { n: 1 });
  assert.deepEqual((await second).data, { n: 2 });
});

test('channel info and users endpoints', async () => {
  const c = newClient(() => ({ user_id: 'carol' }));
  const ch = c.subscribe('presence-info');
  await once(ch, 'pusher:subscription_succeeded');
  await settle();

  const list = await (await lib.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json();
  assert.deepEqual(list.channels['presence-info'], { user_count: 1 });

  const info = await (await lib.get({ path: '/channels/presence-info', params: { info: 'user_count,subscription_count' } })).json();
  assert.deepEqual(info, { occupied: true, user_count: 1, subscription_count: 1 });

  const empty = await (await lib.get({ path: '/channels/nobody-here', params: {} })).json();
  assert.equal(empty.occupied, false);

  const users = await (await lib.get({ path: '/channels/presence-info/users' })).json();
  assert.deepEqual(users, { users: [{ id: 'carol' }] });
});

test('socket_id exclusion', async () => {
  const c1 = newClient();
  const c2 = newClient();
  const ch1 = c1.subscribe('excl');
  const ch2 = c2.subscribe('excl');
  await Promise.all([once(ch1, 'pusher:subscription_succeeded'), once(ch2, 'pusher:subscription_succeeded')]);
  await settle();
  let excludedGot = false;
  ch1.bind('ping', () => { excludedGot = true; });
  const got = once(ch2, 'ping');
  await lib.trigger('excl', 'ping', { x: 1 }, { socket_id: c1.connection.socket_id });
  await got;
  await sleep(200);
  assert.equal(excludedGot, false);
});

test('a request signed with the wrong secret is refused with 401', async () => {
  const wrong = serverLib(server.port, 'wrong-secret');
  await assert.rejects(wrong.trigger('news', 'x', {}), (err) => err.status === 401);
});

test('user channels: sendToUser from the Node and the Python pusher libraries reaches every signed-in connection of that user, only theirs', async () => {
  const user = `ann-${process.pid}`;
  const tabs = [newClient(() => ({ user_id: user })), newClient(() => ({ user_id: user }))];
  const other = newClient(() => ({ user_id: `bob-${process.pid}` }));
  const signedIn = (c) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('not signed in within 5 s')), 5000);
      c.bind('pusher:signin_success', () => { clearTimeout(timer); resolve(); });
    });
  for (const c of [...tabs, other]) {
    await connected(c);
    const done = signedIn(c);
    c.signin();
    await done;
  }
  // pusher-js subscribes to #server-to-user-{id} by itself after signing in.
  for (let i = 0; i < 100 && ![...tabs, other].every((c) => c.user.serverToUserChannel?.subscribed); i++) {
    await sleep(50);
  }
  assert.ok([...tabs, other].every((c) => c.user.serverToUserChannel?.subscribed), 'user channels subscribed');
  await settle();
  let otherGot = false;
  other.user.bind('note', () => { otherGot = true; });
  // The Node library (POST /users/{id}/events) and the Python one (an
  // event on #server-to-user-{id}); in a cluster the two tabs are on two nodes.
  const senders = [
    ['node', async (data) => assert.equal((await lib.sendToUser(user, 'note', data)).status, 200)],
    ['python', async (data) => pythonSendToUser(server.port, user, 'note', data)],
  ];
  for (const [name, send] of senders) {
    const got = tabs.map((c) => once(c.user, 'note'));
    await send({ text: `for ann from ${name}` });
    for (const { data } of await Promise.all(got)) assert.deepEqual(data, { text: `for ann from ${name}` });
  }
  await sleep(200);
  assert.equal(otherGot, false);
});

test('cache channels: pusher-js gets pusher:cache_miss, then a late subscriber the last event; history through the pusher library', async () => {
  for (const name of ['cache-score', 'private-cache-score', 'presence-cache-score']) {
    const first = newClient(() => ({ user_id: 'first' }));
    const miss = first.subscribe(name);
    await once(miss, 'pusher:cache_miss');
    await settle();
    assert.equal((await lib.trigger(name, 'score', { home: 1 })).status, 200);
    assert.equal((await lib.trigger(name, 'score', { home: 2 })).status, 200);
    const late = newClient(() => ({ user_id: 'late' }));
    const channel = late.subscribe(name);
    const subscribed = once(channel, 'pusher:subscription_succeeded');
    const { data } = await once(channel, 'score');
    await subscribed;
    assert.deepEqual(data, { home: 2 }, `${name}: the last event, not the first`);
  }
  // The unchanged server library's generic GET reads the kept event.
  const res = await lib.get({ path: '/channels/cache-score/history', params: { limit: 10 } });
  assert.equal(res.status, 200);
  const page = await res.json();
  // The last event (a cache channel keeps one; a history rule naming it, more).
  assert.deepEqual(JSON.parse(page.events.at(-1).data), { home: 2 });
  assert.equal(page.head, 2);
});

test('Laravel Echo over pusher-js: events carrying stream positions reach its listeners unchanged (cache channel, private cache channel, whispers)', async () => {
  const { default: Echo } = await import('laravel-echo'); // ESM only in practice
  const echoFor = (user) => new Echo({ broadcaster: 'pusher', key: 'unused', client: newClient(() => ({ user_id: user })) });
  const first = echoFor('echo-a');
  // Echo's own names: `.name` for an event published as is, `private()` adds `private-`.
  const got = [];
  const publicChannel = first.channel('cache-echo-news');
  publicChannel.listen('.headline', (data) => got.push(data));
  const privateChannel = first.private('cache-echo-room');
  const whispers = [];
  privateChannel.listenForWhisper('typing', (data) => whispers.push(data));
  await until(() => first.connector.pusher.channel('private-cache-echo-room')?.subscribed
    && first.connector.pusher.channel('cache-echo-news')?.subscribed, 5000);
  await settle();
  assert.equal((await lib.trigger('cache-echo-news', 'headline', { title: 'kept' })).status, 200);
  await until(() => got.length === 1, 5000);
  assert.deepEqual(got, [{ title: 'kept' }]);
  // A late Echo subscriber gets the cached event, its data unchanged.
  const late = echoFor('echo-b');
  const lateGot = [];
  late.channel('cache-echo-news').listen('.headline', (data) => lateGot.push(data));
  await until(() => lateGot.length === 1, 5000);
  assert.deepEqual(lateGot, [{ title: 'kept' }]);
  // A whisper (client event) on a channel that keeps it: the sender gets
  // nothing of its own back, the other Echo client the data as sent.
  const other = late.private('cache-echo-room');
  const otherWhispers = [];
  other.listenForWhisper('typing', (data) => otherWhispers.push(data));
  await until(() => late.connector.pusher.channel('private-cache-echo-room')?.subscribed, 5000);
  await settle();
  privateChannel.whisper('typing', { name: 'a' });
  await until(() => otherWhispers.length === 1, 5000);
  await sleep(200);
  assert.deepEqual(otherWhispers, [{ name: 'a' }]);
  assert.deepEqual(whispers, [], 'no echo of its own whisper, nor the position notice');
});

test("cache channels, Pusher's encrypted variant: the late subscriber's pusher-js decrypts the cached event (end-to-end encrypted by the pusher library)", async () => {
  const masterKey = Buffer.alloc(32, 7).toString('base64');
  const encLib = serverLib(server.port, undefined, { encryptionMasterKeyBase64: masterKey });
  const name = 'private-encrypted-cache-vault';
  const first = client(server.ports[0], encLib, () => ({ user_id: 'enc-a' }));
  clients.push(first);
  await once(first.subscribe(name), 'pusher:cache_miss');
  await settle();
  assert.equal((await encLib.trigger(name, 'secret', { code: 42 })).status, 200);
  const late = client(server.ports[server.ports.length - 1], encLib, () => ({ user_id: 'enc-b' }));
  clients.push(late);
  const { data } = await once(late.subscribe(name), 'secret');
  assert.deepEqual(data, { code: 42 });
  // What the relay kept is the library's ciphertext.
  const res = await lib.get({ path: `/channels/${name}/history`, params: { limit: 1 } });
  const kept = (await res.json()).events[0].data;
  assert.ok(JSON.parse(kept).ciphertext && JSON.parse(kept).nonce && !kept.includes('code'), `kept: ${kept}`);
});
