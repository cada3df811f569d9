//! The blind document sequencer against a real server: ordering, acks,
//! idempotent resubmission, join/resync, snapshots, and durability across a
//! `kill -9`.

mod common;

use common::{Client, Server, TempDir};
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
        json!({"seq": 1, "base": 0, "op_id": "a-1", "payload": "CIPHERTEXT-1"})
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
