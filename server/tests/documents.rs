//! The blind document sequencer against a real server: ordering, acks,
//! idempotent resubmission, join/resync, snapshots, and durability across a
//! `kill -9`.

mod common;

use common::{Client, Server, TempDir};
use sealcast_core::crypto::{Key, KeyRing};
use sealcast_core::doc::{DocClient, DocConfig};
use sealcast_core::ot::Delta;
use serde_json::{Value, json};

async fn submit(client: &mut Client, channel: &str, base: u64, op_id: &str, payload: &str) {
    client.send(json!({"event": "sealcast:doc-submit", "channel": channel, "data": {"base": base, "op_id": op_id, "payload": payload}})).await;
}

async fn data_of(client: &mut Client, event: &str) -> Value {
    client.expect_event(event).await["data"].clone()
}

#[tokio::test]
async fn ops_are_sequenced_acked_and_broadcast_in_order() {
    let server = Server::start("", "");
    let channel = "private-doc-d1";
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.join(channel, None).await;
    b.join(channel, None).await;

    submit(&mut a, channel, 0, "a-1", "CIPHERTEXT-1").await;
    assert_eq!(
        data_of(&mut a, "sealcast_internal:doc-ack").await,
        json!({"op_id": "a-1", "seq": 1, "duplicate": false})
    );
    assert_eq!(
        data_of(&mut b, "sealcast_internal:doc-op").await,
        json!({"seq": 1, "base": 0, "op_id": "a-1", "payload": "CIPHERTEXT-1", "user_id": null})
    );
    submit(&mut b, channel, 1, "b-1", "CIPHERTEXT-2").await;
    assert_eq!(data_of(&mut b, "sealcast_internal:doc-ack").await["seq"], 2);
    assert_eq!(data_of(&mut a, "sealcast_internal:doc-op").await["seq"], 2);

    // A resubmission is acknowledged with its original number and not rebroadcast.
    submit(&mut a, channel, 0, "a-1", "CIPHERTEXT-1").await;
    assert_eq!(
        data_of(&mut a, "sealcast_internal:doc-ack").await,
        json!({"op_id": "a-1", "seq": 1, "duplicate": true})
    );
    assert!(b.next_within(std::time::Duration::from_millis(200)).await.is_none());

    // A base from the future must resync.
    submit(&mut a, channel, 99, "a-2", "x").await;
    let error = data_of(&mut a, "sealcast_internal:doc-error").await;
    assert_eq!((error["code"].as_str(), error["op_id"].as_str()), (Some("resync"), Some("a-2")));
}

/// Issue 11, items 6 and 7: a user cannot take another user's op id (the
/// victim's op used to be acknowledged `duplicate` and never stored), a
/// user's own resubmission from a new connection is still a duplicate, and
/// `private-doc-x` and `presence-doc-x` are separate documents.
#[tokio::test]
async fn an_op_id_belongs_to_its_author_and_channel_kinds_are_separate_documents() {
    let server = Server::start("", "");
    let channel = "presence-doc-ids";
    let mut ann = server.client().await;
    ann.join(channel, Some(r#"{"user_id":"ann"}"#)).await;
    let mut mallory = server.client().await;
    mallory.join(channel, Some(r#"{"user_id":"mallory"}"#)).await;

    submit(&mut ann, channel, 0, "ann-1", "first").await;
    assert_eq!(data_of(&mut ann, "sealcast_internal:doc-ack").await["seq"], 1);
    let op = data_of(&mut mallory, "sealcast_internal:doc-op").await;
    assert_eq!(op["user_id"], "ann", "ops name their author");
    // Mallory submits under the op id Ann will use next.
    submit(&mut mallory, channel, 1, "ann-2", "stolen").await;
    assert_eq!(data_of(&mut mallory, "sealcast_internal:doc-ack").await["seq"], 2);
    submit(&mut ann, channel, 1, "ann-2", "real").await;
    let error = data_of(&mut ann, "sealcast_internal:doc-error").await;
    assert_eq!((error["code"].as_str(), error["op_id"].as_str()), (Some("conflict"), Some("ann-2")));

    // Ann again from a new connection, resealed with a newer base: still hers.
    let mut ann2 = server.client().await;
    ann2.join(channel, Some(r#"{"user_id":"ann"}"#)).await;
    submit(&mut ann2, channel, 2, "ann-1", "first-resealed").await;
    assert_eq!(
        data_of(&mut ann2, "sealcast_internal:doc-ack").await,
        json!({"op_id": "ann-1", "seq": 1, "duplicate": true})
    );

    // The private channel of the same name is another, empty document.
    let mut other = server.client().await;
    other.join("private-doc-ids", None).await;
    other.send(json!({"event": "sealcast:doc-join", "channel": "private-doc-ids", "data": {}})).await;
    let state = data_of(&mut other, "sealcast_internal:doc-state").await;
    assert_eq!((state["head"].as_u64(), state["ops"].as_array().map(Vec::len)), (Some(0), Some(0)));
}

#[tokio::test]
async fn many_concurrent_submitters_see_one_order() {
    let server = Server::start("", "doc_ops_per_second = 1000");
    let channel = "presence-doc-shared";
    let mut clients = Vec::new();
    for i in 0..4 {
        let mut c = server.client().await;
        c.join(channel, Some(&format!(r#"{{"user_id":"u{i}"}}"#))).await;
        clients.push(c);
    }
    for round in 0..25 {
        for (i, c) in clients.iter_mut().enumerate() {
            submit(c, channel, 0, &format!("c{i}-{round}"), "p").await;
        }
    }
    // Every client sees sequence numbers 1..=100 exactly once, in order,
    // as acks for its own ops and ops for the others'.
    for c in &mut clients {
        let mut seen = Vec::new();
        while seen.len() < 100 {
            let frame = c.expect_event_any(&["sealcast_internal:doc-ack", "sealcast_internal:doc-op"]).await;
            seen.push(frame["data"]["seq"].as_u64().unwrap());
        }
        assert_eq!(seen, (1..=100).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn join_snapshot_and_refusals() {
    let server = Server::start("", "");
    let channel = "private-doc-d2";
    let mut a = server.client().await;
    a.send(json!({"event": "sealcast:doc-join", "channel": channel, "data": {}})).await;
    assert_eq!(data_of(&mut a, "sealcast_internal:doc-error").await["code"], "not_subscribed");
    a.join("private-plain", None).await;
    a.send(json!({"event": "sealcast:doc-join", "channel": "private-plain", "data": {}})).await;
    assert_eq!(data_of(&mut a, "sealcast_internal:doc-error").await["code"], "invalid");

    a.join(channel, None).await;
    for (i, base) in [0u64, 1, 2].iter().enumerate() {
        submit(&mut a, channel, *base, &format!("op-{i}"), &format!("P{i}")).await;
        a.expect_event("sealcast_internal:doc-ack").await;
    }
    a.send(json!({"event": "sealcast:doc-join", "channel": channel, "data": {"since": 1}})).await;
    let state = data_of(&mut a, "sealcast_internal:doc-state").await;
    assert_eq!(state["head"], 3);
    assert_eq!(
        state["ops"].as_array().unwrap().iter().map(|o| o["seq"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![2, 3]
    );

    a.send(json!({"event": "sealcast:doc-snapshot", "channel": channel, "data": {"seq": 2, "payload": "SNAP", "key_hint": "salt-7"}}))
        .await;
    assert_eq!(data_of(&mut a, "sealcast_internal:doc-snapshot-stored").await["seq"], 2);
    a.send(json!({"event": "sealcast:doc-join", "channel": channel, "data": {}})).await;
    let state = data_of(&mut a, "sealcast_internal:doc-state").await;
    assert_eq!(state["snapshot"], json!({"seq": 2, "payload": "SNAP", "key_hint": "salt-7"}));
    assert_eq!(state["ops"].as_array().unwrap().len(), 1, "only ops after the snapshot");
}

#[tokio::test]
async fn the_first_session_key_hint_claimed_is_recorded_and_named_in_every_join() {
    // Two documents at most: a claim creates a document like a first op.
    let server = Server::start("[documents]\nmax_documents_per_app = 2", "");
    let join =
        |channel: &str, data: Value| json!({"event": "sealcast:doc-join", "channel": channel, "data": data});
    let (mut a, mut b) = (server.client().await, server.client().await);
    let channel = "private-doc-sessions";
    a.join(channel, None).await;
    b.join(channel, None).await;
    a.send(join(channel, json!({}))).await;
    assert_eq!(
        data_of(&mut a, "sealcast_internal:doc-state").await["key_hint"],
        Value::Null,
        "nothing recorded"
    );
    a.send(join(channel, json!({"key_hint": "salt-a"}))).await;
    b.send(join(channel, json!({"key_hint": "salt-b"}))).await;
    // Whichever claim came first is the answer to both.
    let recorded = data_of(&mut a, "sealcast_internal:doc-state").await["key_hint"].clone();
    assert!(recorded == "salt-a" || recorded == "salt-b", "{recorded}");
    assert_eq!(data_of(&mut b, "sealcast_internal:doc-state").await["key_hint"], recorded, "one claim wins");
    submit(&mut b, channel, 0, "b-1", "P").await;
    b.expect_event("sealcast_internal:doc-ack").await;
    b.send(join(channel, json!({"since": 1, "key_hint": "late"}))).await;
    assert_eq!(data_of(&mut b, "sealcast_internal:doc-state").await["key_hint"], recorded, "never changed");

    // A hint over 256 bytes is refused; a claim beyond the quota too.
    a.send(join(channel, json!({"key_hint": "h".repeat(257)}))).await;
    let refused = data_of(&mut a, "sealcast_internal:doc-error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["request"].as_str()),
        (Some("invalid"), Some("sealcast:doc-join"))
    );
    for (i, code) in [(2, None), (3, Some("quota"))] {
        let other = format!("private-doc-more-{i}");
        a.join(&other, None).await;
        a.send(join(&other, json!({"key_hint": "x"}))).await;
        match code {
            None => assert_eq!(data_of(&mut a, "sealcast_internal:doc-state").await["key_hint"], "x"),
            Some(code) => assert_eq!(data_of(&mut a, "sealcast_internal:doc-error").await["code"], code),
        }
    }
}

#[tokio::test]
async fn acknowledged_ops_survive_kill_9() {
    let root = TempDir::new("docs-crash");
    let channel = "private-doc-durable";
    {
        let mut server = Server::start_in(&root.0, "", "", &[]);
        let mut a = server.client().await;
        a.join(channel, None).await;
        for i in 0..20u64 {
            submit(&mut a, channel, i, &format!("op-{i}"), &format!("P{i}")).await;
            assert_eq!(data_of(&mut a, "sealcast_internal:doc-ack").await["seq"], i + 1);
        }
        // No graceful shutdown: SIGKILL right after the last ack.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }
    let server = Server::start_in(&root.0, "", "", &[]);
    let mut a = server.client().await;
    a.join(channel, None).await;
    a.send(json!({"event": "sealcast:doc-join", "channel": channel, "data": {"since": 0}})).await;
    let state = data_of(&mut a, "sealcast_internal:doc-state").await;
    assert_eq!(state["head"], 20);
    assert_eq!(state["ops"].as_array().unwrap().len(), 20);
    // The sequence continues where it stopped, and old op ids are still known.
    submit(&mut a, channel, 20, "op-0", "P0").await;
    assert_eq!(
        data_of(&mut a, "sealcast_internal:doc-ack").await,
        json!({"op_id": "op-0", "seq": 1, "duplicate": true})
    );
    submit(&mut a, channel, 20, "after-restart", "P").await;
    assert_eq!(data_of(&mut a, "sealcast_internal:doc-ack").await["seq"], 21);
}

/// Drives `doc` until `done(doc)` (10 s at most), recording the frames the
/// server sent in `wire`.
async fn drive(
    doc: &mut DocClient,
    client: &mut Client,
    wire: &mut String,
    done: impl Fn(&DocClient) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        common::pump_doc(doc, client, std::time::Duration::ZERO, Some(wire)).await;
        if done(doc) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "document client did not settle");
        common::pump_doc(doc, client, std::time::Duration::from_millis(50), Some(wire)).await;
    }
}

/// Issue 11, item 2: 200 one-character edits 3 ms apart against a low op
/// rate limit. Refused ops used to stall until a reconnect (the other
/// client held 59 of 200 characters after 30 s); now the client resubmits
/// them itself and every character arrives.
#[tokio::test]
async fn rate_limited_edits_all_arrive_without_a_reconnect() {
    let server = Server::start("", "doc_ops_per_second = 5");
    let channel = "private-doc-rate";
    let key = || KeyRing::single("k", 1, Key::from_bytes(&[4; 32])).unwrap();
    let mut wire = String::new();
    let mut peers = Vec::new();
    for name in ["a", "b"] {
        let mut client = server.client().await;
        client.join(channel, None).await;
        let mut doc = DocClient::new("rate", false, key(), "k", None, name, DocConfig::default()).unwrap();
        doc.join();
        drive(&mut doc, &mut client, &mut wire, DocClient::is_ready).await;
        peers.push((client, doc));
    }
    let (a_client, a) = &mut peers[0];
    let mut refusals = 0;
    for i in 0..200 {
        let mut edit = Delta::new();
        edit.retain(i, None).insert_text("x", None);
        a.local_edit(edit).unwrap();
        refusals += common::pump_doc(a, a_client, std::time::Duration::from_millis(3), None).await;
    }
    let started = std::time::Instant::now();
    while a.has_pending() {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "edits stalled");
        refusals += common::pump_doc(a, a_client, std::time::Duration::from_millis(50), None).await;
    }
    assert!(refusals > 0, "the rate limit was never reached");
    let head = a.seq();
    let (b_client, b) = &mut peers[1];
    while b.seq() < head {
        assert!(started.elapsed() < std::time::Duration::from_secs(40), "b did not catch up");
        common::pump_doc(b, b_client, std::time::Duration::from_millis(50), None).await;
    }
    assert_eq!(b.view().unwrap().len(), 200);
    eprintln!(
        "{refusals} refusals retried; 200 characters in {head} ops, {:?} after typing",
        started.elapsed()
    );
}

/// Issue 11, item 5: a co-subscriber without the document key uploads
/// garbage as a snapshot at the head. It used to become the only join
/// point (the history before it compacted away); now it is one kept
/// snapshot among others, compaction stays behind the oldest, and a joiner
/// that cannot open it falls back to Ann's and her ops.
#[tokio::test]
async fn a_garbage_snapshot_does_not_destroy_history() {
    let server = Server::start("", "doc_ops_per_second = 10000");
    let channel = "presence-doc-snapshots";
    let key = || KeyRing::single("k", 1, Key::from_bytes(&[6; 32])).unwrap();
    let config = DocConfig { snapshot_every: 50, digest_every: 10, ..DocConfig::default() };
    let mut wire = String::new();
    let mut ann_client = server.client().await;
    ann_client.join(channel, Some(r#"{"user_id":"ann"}"#)).await;
    let mut ann = DocClient::new("snapshots", true, key(), "k", None, "ann", config).unwrap();
    ann.join();
    drive(&mut ann, &mut ann_client, &mut wire, DocClient::is_ready).await;
    let type_chars = |ann: &mut DocClient, from: usize, n: usize| {
        for i in from..from + n {
            let mut edit = Delta::new();
            edit.retain(i, None).insert_text("a", None);
            ann.local_edit(edit).unwrap();
        }
    };
    for i in 0..120 {
        type_chars(&mut ann, i, 1);
        drive(&mut ann, &mut ann_client, &mut wire, |d| !d.has_pending()).await;
    }
    let head = ann.seq();
    let mut mallory = server.client().await;
    mallory.join(channel, Some(r#"{"user_id":"mallory"}"#)).await;
    mallory
        .send(json!({"event": "sealcast:doc-snapshot", "channel": channel,
            "data": {"seq": head, "payload": "garbage-without-the-key"}}))
        .await;
    data_of(&mut mallory, "sealcast_internal:doc-snapshot-stored").await;
    let joiner = |name: &'static str| {
        let server = &server;
        async move {
            let mut client = server.client().await;
            client.join(channel, Some(&format!(r#"{{"user_id":"{name}"}}"#))).await;
            let mut doc = DocClient::new("snapshots", true, key(), "k", None, name, config).unwrap();
            doc.join();
            (client, doc)
        }
    };
    // Mallory's garbage is the newest snapshot (Ann's newest is at 100):
    // Carl cannot open it and falls back to Ann's plus the ops after it.
    let (mut carl_client, mut carl) = joiner("carl").await;
    drive(&mut carl, &mut carl_client, &mut wire, DocClient::is_ready).await;
    assert_eq!(carl.view().unwrap(), ann.view().unwrap());
    for i in 120..200 {
        type_chars(&mut ann, i, 1);
        drive(&mut ann, &mut ann_client, &mut wire, |d| !d.has_pending()).await;
    }
    // Ann's newer snapshots replace her own, never Mallory's slot (nor the
    // other way round). Her last one (at 200) follows her last ack.
    let started = std::time::Instant::now();
    loop {
        common::pump_doc(&mut ann, &mut ann_client, std::time::Duration::from_millis(50), None).await;
        mallory.send(json!({"event": "sealcast:doc-join", "channel": channel, "data": {}})).await;
        let state = data_of(&mut mallory, "sealcast_internal:doc-state").await;
        let kept: Vec<u64> =
            state["snapshots"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
        if kept == vec![200, head] {
            break;
        }
        assert!(kept.contains(&head), "Mallory's slot is kept: {kept:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "kept snapshots {kept:?}");
    }
    let (mut dave_client, mut dave) = joiner("dave").await;
    drive(&mut dave, &mut dave_client, &mut wire, DocClient::is_ready).await;
    assert_eq!(dave.view().unwrap(), ann.view().unwrap());
    assert_eq!(dave.view().unwrap().len(), 200);
}

#[tokio::test]
async fn document_plaintext_never_reaches_the_server() {
    let canary = "CANARY-doc-5e1d0b";
    let root = TempDir::new("docs-canary");
    let server = Server::start_in(&root.0, "", "", &[("RUST_LOG", "trace")]);
    let channel = "presence-doc-secret";
    let key = || KeyRing::single("k", 1, Key::from_bytes(&[9; 32])).unwrap();
    let config = DocConfig { snapshot_every: 3, digest_every: 2, ..DocConfig::default() };
    let mut wire = String::new();
    let mut clients = Vec::new();
    for user in ["ann", "bob"] {
        let mut client = server.client().await;
        client.join(channel, Some(&format!(r#"{{"user_id":"{user}"}}"#))).await;
        let mut doc = DocClient::new("secret", true, key(), "k", Some("hint".into()), user, config).unwrap();
        doc.join();
        drive(&mut doc, &mut client, &mut wire, DocClient::is_ready).await;
        clients.push((client, doc));
    }
    // Ann types the canary (and more, so snapshots and digests happen),
    // shares her cursor; Bob follows.
    let (ann_client, ann) = &mut clients[0];
    let mut edit = Delta::new();
    edit.insert_text(canary, None);
    ann.local_edit(edit).unwrap();
    for i in 0..8 {
        let mut edit = Delta::new();
        edit.retain(canary.len() + i, None).insert_text("!", None);
        ann.local_edit(edit).unwrap();
        drive(ann, ann_client, &mut wire, |d| !d.has_pending()).await;
    }
    ann.cursor(3, 4).unwrap();
    drive(ann, ann_client, &mut wire, |d| !d.has_pending()).await;
    let seq = ann.seq();
    let (bob_client, bob) = &mut clients[1];
    drive(bob, bob_client, &mut wire, |d| d.seq() == seq).await;
    assert_eq!(bob.view().unwrap(), clients[0].1.view().unwrap());
    assert!(wire.contains("sealcast_internal:doc-snapshot-stored"), "a snapshot was uploaded");
    assert!(wire.contains("sealcast_internal:doc-digest"), "digests were relayed");

    // A late joiner starts from the snapshot and sees the canary.
    let mut carl_client = server.client().await;
    carl_client.join(channel, Some(r#"{"user_id":"carl"}"#)).await;
    let mut carl = DocClient::new("secret", true, key(), "k", None, "carl", config).unwrap();
    carl.join();
    drive(&mut carl, &mut carl_client, &mut wire, DocClient::is_ready).await;
    assert_eq!(carl.view().unwrap(), clients[0].1.view().unwrap());

    assert!(!wire.contains(canary), "plaintext in a frame the server sent");
    let logs = server.stderr();
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "verbose logging was on");
    assert!(!logs.contains(canary), "plaintext in the server logs");
    for entry in std::fs::read_dir(root.0.join("data")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(canary.len()).any(|w| w == canary.as_bytes()), "plaintext in {path:?}");
    }
}

/// Issue 27: a late joiner's page names each op's author, as the live
/// broadcast did (stored ops were served with `user_id: null`); an op
/// submitted anonymously has none in both.
#[tokio::test]
async fn a_late_joiner_sees_the_author_the_broadcast_named() {
    let server = Server::start("", "");
    let channel = "presence-doc-authors";
    let mut ann = server.client().await;
    ann.join(channel, Some(r#"{"user_id":"ann"}"#)).await;
    let mut bob = server.client().await;
    bob.join(channel, Some(r#"{"user_id":"bob"}"#)).await;
    submit(&mut ann, channel, 0, "ann-1", "CIPHERTEXT-1").await;
    assert_eq!(data_of(&mut bob, "sealcast_internal:doc-op").await["user_id"], "ann");
    let anonymous = "private-doc-authors";
    let mut anon = server.client().await;
    anon.join(anonymous, None).await;
    submit(&mut anon, anonymous, 0, "x-1", "CIPHERTEXT-2").await;
    data_of(&mut anon, "sealcast_internal:doc-ack").await;

    let mut carl = server.client().await;
    carl.join(channel, Some(r#"{"user_id":"carl"}"#)).await;
    carl.send(json!({"event": "sealcast:doc-join", "channel": channel, "data": {}})).await;
    let state = data_of(&mut carl, "sealcast_internal:doc-state").await;
    assert_eq!(state["ops"][0]["user_id"], "ann", "{state}");
    carl.join(anonymous, None).await;
    carl.send(json!({"event": "sealcast:doc-join", "channel": anonymous, "data": {}})).await;
    let state = data_of(&mut carl, "sealcast_internal:doc-state").await;
    assert_eq!(state["ops"][0]["user_id"], Value::Null, "{state}");
}
