"""Randomized document convergence through the Python binding, against a
real `sealcast serve` (issue 11): three clients, two edit threads each,
typing emoji and other astral text, deleting and formatting into an
"editor" that applies the SDK's changes late (so edits are made from stale
views, with `edit_document_at`); the server's default op rate limit refuses
some submissions (resubmitted by the SDK); one client goes offline and back;
a fourth joins late. At the end every editor equals its client's document
view and all views are equal.

Usage: python3 doc_convergence.py BINDINGS_DIR PORT [SEED]
(scripts/bindings.sh runs it). The seed is printed; rerun with it.
"""

import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import sealcast as s  # noqa: E402

URL = f"ws://127.0.0.1:{int(sys.argv[2])}"
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else random.randrange(1 << 32)
APP_KEY, APP_SECRET = "test-key", "test-secret"
DOC = f"py-conv-{SEED}-{int(time.time() * 1000)}"
KEY = bytes([7] * 32)
TEXTS = ["a", "bc", "é", "日本", "😀", "👩‍💻", "𝄞x", " "]
EDITS_PER_THREAD = 120
print(f"doc convergence (python binding): SEED={SEED}", flush=True)


class Auth(s.Authorizer):
    def __init__(self, user):
        self.user = user

    def authorize(self, socket_id, channel):
        data = json.dumps({"user_id": self.user, "user_info": {}}) if channel.startswith("presence-") else None
        return s.ChannelAuthorization(auth=s.sign_channel_auth(APP_KEY, APP_SECRET, socket_id, channel, data), channel_data=data)


class Keys(s.KeyProvider):
    """The app server's provider: room keys fixed; document keys per session
    (docs/keys.md): asked without hint, a new session key and its hint,
    which the realtime server records for everyone; with a hint, that
    session's key. The clients open the new document at once, so they race
    for the session."""

    sessions = {}
    lock = threading.Lock()

    def key(self, request):
        if request.doc_id is None:
            return s.KeyGrant(kv=1, key=KEY)
        with Keys.lock:
            if request.key_hint is None:
                hint = f"session-{len(Keys.sessions) + 1}"
                Keys.sessions[hint] = os.urandom(32)
                return s.KeyGrant(kv=1, key=Keys.sessions[hint], key_hint=hint)
            return s.KeyGrant(kv=1, key=Keys.sessions[request.key_hint])


def units(text):
    """Length in UTF-16 code units (what deltas count)."""
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


def boundaries(content):
    """Every UTF-16 offset of the document that is a character boundary."""
    cuts, at = [0], 0
    for op in json.loads(content)["ops"]:
        insert = op["insert"]
        if isinstance(insert, str):
            for c in insert:
                at += 2 if ord(c) > 0xFFFF else 1
                cuts.append(at)
        else:
            at += 1
            cuts.append(at)
    return cuts


class Editor(s.ClientListener):
    """An editor: its content and version, changed by its own typing and by
    the SDK's events, which it applies late (from a queue)."""

    def __init__(self, name, rng):
        self.name, self.rng = name, rng
        self.lock = threading.Lock()
        self.content, self.version = '{"ops":[]}', None
        self.queue = []
        self.counts = {"edits": 0, "stale": 0, "rate_limited": 0, "skipped": 0, "ignored": 0}
        self.failure = None

    # ClientListener (connection events are not needed here)
    def on_state(self, state): pass
    def on_subscribed(self, channel): pass
    def on_subscription_failed(self, channel, status, message): self.failure = f"subscription failed: {message}"
    def on_message(self, channel, event, data_json, user_id, scope): pass
    def on_undecryptable(self, channel, event, user_id, code, message): pass
    def on_member_added(self, channel, member): pass
    def on_member_removed(self, channel, member): pass
    def on_error(self, code, message): pass
    def on_catch_up(self, channel, outcome): pass
    def on_history(self, channel, request_id, result): pass

    # documents
    def on_document(self, doc_id, event):
        with self.lock:
            if event.is_diverged():
                self.failure = f"{self.name} diverged: {event.reason}"
            elif event.is_refused():
                if event.code == "rate_limited" and event.retry_in_ms is not None:
                    self.counts["rate_limited"] += 1
                else:
                    self.failure = f"{self.name} refused: {event.code} {event.message}"
            elif event.is_skipped():
                self.counts["skipped"] += 1
            self.queue.append(event)

    def apply_queued(self, n):
        """Applies up to n queued events (caller holds the lock)."""
        for _ in range(min(n, len(self.queue))):
            event = self.queue.pop(0)
            if event.is_ready():
                self.content, self.version = event.view_json, event.version
            elif event.is_remote_change():
                if event.base == self.version:
                    self.content = s.delta_apply(self.content, event.delta_json)
                    self.version = event.version
                else:
                    self.counts["ignored"] += 1

    def random_edit(self):
        cuts = boundaries(self.content)
        length = cuts[-1]
        at = self.rng.choice(cuts)
        roll = self.rng.random()
        if roll < 0.6 or length == 0:
            return {"ops": [{"retain": at}, {"insert": self.rng.choice(TEXTS)}] if at else [{"insert": self.rng.choice(TEXTS)}]}
        later = [c for c in cuts if c > at]
        if not later:
            return {"ops": [{"insert": "z"}]}
        end = self.rng.choice(later[:4])
        ops = [{"retain": at}] if at else []
        if roll < 0.85:
            ops.append({"delete": end - at})
        else:
            ops.append({"retain": end - at, "attributes": {"bold": True}})
        return {"ops": ops}

    def type_once(self, client):
        with self.lock:
            self.apply_queued(self.rng.choice([0, 1, 2, 100]))
            if self.version is None:
                return
            edit = json.dumps(self.random_edit())
            try:
                stale = client.document_versioned_view(DOC).version != self.version
                new_version = client.edit_document_at(DOC, self.version, edit)
            except s.SealcastError.Document:
                # Behind a Ready (a rejoin): catch up first, like an editor
                # showing the new content.
                self.apply_queued(len(self.queue))
                return
            self.content = s.delta_apply(self.content, edit)
            self.version = new_version
            self.counts["edits"] += 1
            self.counts["stale"] += int(stale)


OPTIONS = s.DocumentOptions(presence=True, kid="doc", key_hint=None, snapshot_every=50, digest_every=10)


def open_client(name, rng):
    editor = Editor(name, rng)
    client = s.SealcastClient(URL, APP_KEY, Auth(name), Keys(), editor)
    client.open_document(DOC, OPTIONS)
    return client, editor


def emoji_splits_are_refused():
    """Edits that cut an emoji in two are refused with a typed error and
    change nothing (on a document nobody else edits, so nothing races)."""
    editor = Editor("probe", random.Random(SEED))
    client = s.SealcastClient(URL, APP_KEY, Auth("probe"), Keys(), editor)
    probe = DOC + "-probe"
    client.open_document(probe, OPTIONS)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.edit_document(probe, json.dumps({"ops": [{"insert": "😀a👩‍💻"}]}))
            break
        except s.SealcastError.Document:
            assert time.monotonic() < deadline, "the probe document did not become ready"
            time.sleep(0.02)
    before = client.document_view(probe)
    refused = 0
    for split in ([{"retain": 1}, {"insert": "x"}], [{"delete": 1}], [{"retain": 4}, {"delete": 2}],
                  [{"retain": 1}, {"retain": 1, "attributes": {"bold": True}}]):
        try:
            client.edit_document(probe, json.dumps({"ops": split}))
        except s.SealcastError.Document as err:
            assert "surrogate" in err.detail, err.detail
            refused += 1
    assert refused == 4 and client.document_view(probe) == before, (refused, before)
    client.close()


def main():
    emoji_splits_are_refused()
    master = random.Random(SEED)
    peers = [open_client(name, random.Random(master.randrange(1 << 32))) for name in ("ann", "bob", "cat")]
    deadline = time.monotonic() + 15
    while any(e.version is None for _, e in peers):
        for _, e in peers:
            with e.lock:
                e.apply_queued(100)
        assert time.monotonic() < deadline, "documents did not become ready"
        time.sleep(0.02)

    def typist(client, editor, rng):
        for i in range(EDITS_PER_THREAD):
            editor.type_once(client)
            time.sleep(rng.uniform(0.0, 0.01))

    threads = []
    for client, editor in peers:
        for _ in range(2):
            rng = random.Random(master.randrange(1 << 32))
            threads.append(threading.Thread(target=typist, args=(client, editor, rng)))
    for t in threads:
        t.start()
    # Bob goes offline for a while and comes back (edits meanwhile are kept).
    time.sleep(0.5)
    peers[1][0].disconnect()
    time.sleep(0.7)
    peers[1][0].connect()
    # A late joiner.
    time.sleep(0.5)
    late = open_client("dan", random.Random(master.randrange(1 << 32)))
    peers.append(late)
    for t in threads:
        t.join()

    # Settle: every editor catches up; all views equal.
    deadline = time.monotonic() + 60
    while True:
        for _, e in peers:
            assert e.failure is None, e.failure
            with e.lock:
                e.apply_queued(len(e.queue))
        try:
            views = [json.loads(c.document_view(DOC)) for c, _ in peers]
        except s.SealcastError.Document:
            views = None  # a client still (re)joining
        editors = [json.loads(e.content) for _, e in peers]
        if views and all(v == views[0] for v in views) and editors == views:
            break
        assert time.monotonic() < deadline, f"no convergence (SEED={SEED}): {views} / {editors}"
        time.sleep(0.1)
    text = "".join(op["insert"] for op in views[0]["ops"] if isinstance(op["insert"], str))
    for name, (_, e) in zip(("ann", "bob", "cat", "dan"), peers):
        print(f"  {name}: {e.counts}")
    total = {k: sum(e.counts[k] for _, e in peers) for k in peers[0][1].counts}
    assert total["stale"] > 0, "no edit was made from a stale view"
    # Ops sealed under a losing session key would be skipped by the others.
    assert total["skipped"] == 0, f"ops skipped (SEED={SEED}): {total}"
    print(f"document session keys issued: {sorted(Keys.sessions)} (the first claim is recorded)")
    print(f"converged: {units(text)} units, {sum(1 for c in text if ord(c) > 0xFFFF)} astral characters; {total}")
    for client, _ in peers:
        client.close()


main()
