//! Cluster mode against a real Redis (its own `redis-server` on a free
//! loopback port, never a shared one) and three `sealcast serve` nodes:
//! fan-out across nodes (no loss, no duplicates, per-publisher order),
//! presence across nodes including a node killed with SIGKILL, and a Redis
//! restart with recovery. Skipped (with a message) when `redis-server` is
//! not installed; `scripts/test.sh` installs it.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Seen, Server, TempDir, free_port, http, pump_doc};
use sealcast_core::crypto::{Key, KeyRing};
use sealcast_core::doc::{DocClient, DocConfig};
use sealcast_core::ot::Delta;
use serde_json::{Value, json};

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start_on(port: u16) -> Option<Redis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis { child, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis() -> Option<Redis> {
    if Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("redis-server is not installed: skipping (scripts/test.sh installs it)");
        return None;
    }
    Redis::start_on(free_port())
}

/// A node of the cluster, with its own data directory.
fn node(redis: &Redis, dir: &TempDir, name: &str) -> Server {
    let root = dir.0.join(name);
    std::fs::create_dir_all(&root).unwrap();
    let app = "client_events_per_second = 10000\ndoc_ops_per_second = 10000";
    Server::start_in(&root, &format!("cluster = \"{}\"", redis.url()), app, &[("RUST_LOG", "info")])
}

/// Frames until one matching `want`, within `wait`.
async fn expect(client: &mut Client, wait: Duration, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_within(left).await {
            Some(Seen::Frame(frame)) if want(&frame) => return frame,
            Some(Seen::Frame(_)) => {}
            other => panic!("waiting for a frame: {other:?}"),
        }
    }
}

/// Every frame for `wait` (nothing more is expected after it).
async fn drain(client: &mut Client, wait: Duration) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(Seen::Frame(frame)) = client.next_within(wait).await {
        frames.push(frame);
    }
    frames
}

fn presence(user: &str) -> String {
    json!({"user_id": user, "user_info": {"name": user}}).to_string()
}

fn event_name(frame: &Value) -> &str {
    frame["event"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_every_node_once_and_in_order() {
    let Some(redis) = redis() else { return };
    let dir = TempDir::new("cluster-fanout");
    let (a, b, c) = (node(&redis, &dir, "a"), node(&redis, &dir, "b"), node(&redis, &dir, "c"));

    // Subscribers on A and B; the publisher talks to C.
    let mut subscribers = Vec::new();
    for server in [&a, &a, &b] {
        let mut client = server.client().await;
        client.join("news", None).await;
        subscribers.push(client);
    }
    let mut private_a = a.client().await;
    private_a.join("private-room", None).await;
    let mut private_c = c.client().await;
    private_c.join("private-room", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The HTTP API on C counts the subscribers on A and B.
    let (status, body) = c.api(
        "GET",
        &format!("/apps/{}/channels/news", common::APP_ID),
        &[("info", "subscription_count")],
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"occupied": true, "subscription_count": 3})
    );
    let (_, body) = c.api("GET", &format!("/apps/{}/channels", common::APP_ID), &[], "");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert!(
        listed["channels"]["news"].is_object() && listed["channels"]["private-room"].is_object(),
        "{listed}"
    );

    for n in 0..200 {
        assert_eq!(c.publish("news", "tick", &n.to_string()).0, 200);
    }
    for subscriber in &mut subscribers {
        let mut seen = Vec::new();
        while seen.len() < 200 {
            let frame = expect(subscriber, Duration::from_secs(10), |f| event_name(f) == "tick").await;
            seen.push(frame["data"].as_str().unwrap().parse::<u32>().unwrap());
        }
        assert_eq!(seen, (0..200).collect::<Vec<_>>(), "every event once, in publish order");
        let extra = drain(subscriber, Duration::from_millis(300)).await;
        assert!(extra.iter().all(|f| event_name(f) != "tick"), "duplicates: {extra:?}");
    }

    // A client event sent on C reaches the subscriber on A (and not its author).
    private_c.send(json!({"event": "client-hi", "channel": "private-room", "data": {"n": 1}})).await;
    let got = expect(&mut private_a, Duration::from_secs(5), |f| event_name(f) == "client-hi").await;
    assert_eq!(got["data"], json!({"n": 1}));
    assert!(
        drain(&mut private_c, Duration::from_millis(300)).await.iter().all(|f| event_name(f) != "client-hi")
    );
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_cluster_wide_and_a_dead_node_leaves() {
    let Some(redis) = redis() else { return };
    let dir = TempDir::new("cluster-presence");
    let (a, b) = (node(&redis, &dir, "a"), node(&redis, &dir, "b"));
    let mut c = node(&redis, &dir, "c");
    let channel = "presence-room";

    let mut ann = a.client().await;
    ann.join(channel, Some(&presence("ann"))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bob = b.client().await;
    let roster = bob.join(channel, Some(&presence("bob"))).await;
    let data: Value = serde_json::from_str(roster["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["presence"]["count"], 2, "bob's roster on B includes ann from A: {data}");
    expect(&mut ann, Duration::from_secs(5), |f| event_name(f) == "pusher_internal:member_added").await;

    // cy on C, then a second connection of ann on C: one member_added each
    // for cy, none for ann's second connection.
    let mut cy = c.client().await;
    cy.join(channel, Some(&presence("cy"))).await;
    let mut ann2 = c.client().await;
    ann2.join(channel, Some(&presence("ann"))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for client in [&mut ann, &mut bob] {
        let added: Vec<String> = drain(client, Duration::from_millis(300))
            .await
            .iter()
            .filter(|f| event_name(f) == "pusher_internal:member_added")
            .map(|f| {
                serde_json::from_str::<Value>(f["data"].as_str().unwrap()).unwrap()["user_id"].to_string()
            })
            .collect();
        assert_eq!(added, vec!["\"cy\"".to_owned()], "member_added once per user cluster-wide");
    }
    let (status, users) =
        a.api("GET", &format!("/apps/{}/channels/{channel}/users", common::APP_ID), &[], "");
    assert_eq!(status, 200);
    let mut ids: Vec<String> = serde_json::from_str::<Value>(&users).unwrap()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["ann", "bob", "cy"]);
    let info = [("info", "subscription_count,user_count")];
    let (_, body) = b.api("GET", &format!("/apps/{}/channels/{channel}", common::APP_ID), &info, "");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"occupied": true, "subscription_count": 4, "user_count": 3})
    );

    // Node C dies: cy leaves within the node TTL + a reap period; ann stays
    // (her other connection is on A).
    c.child.kill().unwrap();
    c.child.wait().unwrap();
    let started = Instant::now();
    for client in [&mut ann, &mut bob] {
        let removed =
            expect(client, Duration::from_secs(20), |f| event_name(f) == "pusher_internal:member_removed")
                .await;
        let data: Value = serde_json::from_str(removed["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["user_id"], "cy");
    }
    let took = started.elapsed();
    eprintln!("members of the killed node removed after {took:?}");
    assert!(took <= Duration::from_secs(14), "took {took:?}");
    let (_, body) = a.api("GET", &format!("/apps/{}/channels/{channel}", common::APP_ID), &info, "");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"occupied": true, "subscription_count": 2, "user_count": 2}),
        "the dead node's subscriptions no longer count"
    );
    for client in [&mut ann, &mut bob] {
        let more = drain(client, Duration::from_secs(3)).await;
        assert!(more.iter().all(|f| event_name(f) != "pusher_internal:member_removed"), "{more:?}");
    }

    // terminate_connections through node B closes ann's connection on A.
    let path = format!("/apps/{}/users/ann/terminate_connections", common::APP_ID);
    assert_eq!(b.api("POST", &path, &[], "{}").0, 200);
    assert_eq!(ann.expect_close().await, Some(4009));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_survived() {
    let Some(mut redis) = redis() else { return };
    let dir = TempDir::new("cluster-redis-restart");
    let (a, c) = (node(&redis, &dir, "a"), node(&redis, &dir, "c"));
    let mut sub = a.client().await;
    sub.join("news", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.publish("news", "before", "1").0, 200);
    expect(&mut sub, Duration::from_secs(5), |f| event_name(f) == "before").await;

    // Redis goes away: the nodes report not ready and refuse publishes,
    // but keep their connections.
    let port = redis.port;
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    while http(c.port, "GET", "/ready", "").0 != 503 {
        assert!(Instant::now() < deadline, "node C still ready without Redis");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = c.publish("news", "during", "2");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cluster broker unreachable"), "{body}");

    // Redis is back on the same port: both recover without a restart.
    let _redis = Redis::start_on(port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(a.port, "GET", "/ready", "").0 != 200 || http(c.port, "GET", "/ready", "").0 != 200 {
        assert!(Instant::now() < deadline, "nodes did not recover");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert_eq!(c.publish("news", "after", "3").0, 200);
        if let Some(Seen::Frame(frame)) = sub.next_within(Duration::from_millis(500)).await
            && event_name(&frame) == "after"
        {
            break;
        }
        assert!(Instant::now() < deadline, "events do not cross nodes after the restart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_edited_through_three_nodes_converges() {
    let Some(redis) = redis() else { return };
    let dir = TempDir::new("cluster-docs");
    let nodes = [node(&redis, &dir, "a"), node(&redis, &dir, "b"), node(&redis, &dir, "c")];
    let channel = "private-doc-shared";
    let ring = || KeyRing::single("k", 1, Key::from_bytes(&[4; 32])).unwrap();
    let mut peers = Vec::new();
    for (i, server) in nodes.iter().enumerate() {
        let mut client = server.client().await;
        client.join(channel, None).await;
        let config = DocConfig { snapshot_every: 25, digest_every: 5 };
        let mut doc = DocClient::new("shared", false, ring(), "k", None, &format!("n{i}"), config).unwrap();
        doc.join();
        pump_doc(&mut doc, &mut client, Duration::from_millis(300), None).await;
        assert!(doc.is_ready());
        peers.push((client, doc));
    }
    // 60 rounds: every client types at once, then they exchange.
    for round in 0..60 {
        for (i, (_, doc)) in peers.iter_mut().enumerate() {
            let mut edit = Delta::new();
            let len = doc.view().unwrap().len();
            edit.retain((round * 7 + i * 3) % (len + 1), None).insert_text(&format!("{i}"), None);
            doc.local_edit(edit).unwrap();
        }
        for (client, doc) in peers.iter_mut() {
            pump_doc(doc, client, Duration::from_millis(15), None).await;
        }
    }
    // Settle: nothing pending, everyone at the same sequence.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (client, doc) in peers.iter_mut() {
            pump_doc(doc, client, Duration::from_millis(100), None).await;
        }
        let seqs: Vec<u64> = peers.iter().map(|(_, d)| d.seq()).collect();
        if peers.iter().all(|(_, d)| !d.has_pending() && d.is_ready()) && seqs.iter().all(|s| *s == seqs[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "no convergence: {seqs:?}");
    }
    let first = peers[0].1.canonical().unwrap().clone();
    assert_eq!(first.len(), 180, "every typed character is in the document");
    for (_, doc) in &peers {
        assert_eq!(doc.canonical(), Some(&first));
    }
}
