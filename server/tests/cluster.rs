//! Cluster mode against a real Redis (its own `redis-server` on a free
//! loopback port, never a shared one) and three `sealcast serve` nodes:
//! fan-out across nodes (no loss, no duplicates, per-publisher order),
//! presence across nodes including a node killed with SIGKILL, and a Redis
//! restart with recovery. Skipped (with a message) when `redis-server` is
//! not installed; `scripts/test.sh` installs it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Client, Redis, Seen, Server, SessionKeys, TempDir, cluster_node, http, pump_doc, pump_doc_with, redis,
};
use sealcast_core::crypto::KeyRing;
use sealcast_core::doc::{DocClient, DocConfig};
use sealcast_core::ot::Delta;
use serde_json::{Value, json};

/// A node of the cluster, with its own data directory.
fn node(redis: &Redis, dir: &TempDir, name: &str) -> Server {
    cluster_node(redis, dir, name, "", "client_events_per_second = 10000\ndoc_ops_per_second = 10000")
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
    // Session keys from one app server: the three clients open the new
    // document at once through three nodes, each gets a new session key
    // and claims it; the claim recorded in Redis first wins everywhere.
    let keys = SessionKeys::default();
    let mut peers = Vec::new();
    for (i, server) in nodes.iter().enumerate() {
        let mut client = server.client().await;
        client.join(channel, None).await;
        let config = DocConfig { snapshot_every: 25, digest_every: 5, ..DocConfig::default() };
        let mut doc =
            DocClient::new("shared", false, KeyRing::new(), "k", None, &format!("n{i}"), config).unwrap();
        doc.join();
        peers.push((client, doc));
    }
    // Every join is answered "no session yet" before anyone claims one.
    for (client, doc) in peers.iter_mut() {
        while let Some(message) = doc.poll_transmit() {
            client.send_raw(&message.encode(doc.channel())).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        for (client, doc) in peers.iter_mut() {
            pump_doc_with(doc, client, Duration::from_millis(150), None, Some(&keys)).await;
        }
    }
    assert!(peers.iter().all(|(_, doc)| doc.is_ready()));
    eprintln!("session keys issued: {:?}", keys.issued());
    assert_eq!(keys.issued().len(), 3, "the three raced for the new document's session");
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

/// One Redis command over a fresh connection (RESP), for tests that play
/// a lost message by editing Redis directly.
fn redis_command(redis: &Redis, args: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(out.as_bytes()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut reply = [0u8; 256];
    let n = stream.read(&mut reply).unwrap();
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

/// A node with a second app (`other`) and a fast resync.
fn node_with_other_app(redis: &Redis, dir: &TempDir, name: &str) -> Server {
    // A small outbox per app, so a flood meets it.
    let top = "cluster_resync_interval = 1\ncluster_outbox_per_app = 20";
    let apps = "\n[[apps]]\nid = \"other\"\nkey = \"other-key\"\nsecret = \"other-secret\"\n";
    cluster_node(redis, dir, name, top, apps)
}

fn publish_other(server: &Server, channel: &str, n: usize) -> u16 {
    let body = json!({"name": "tick", "channel": channel, "data": n.to_string()}).to_string();
    let path = "/apps/other/events";
    let query = sealcast_server::http::api::signed_query(
        "other-key",
        "other-secret",
        "POST",
        path,
        &[],
        body.as_bytes(),
        common::now(),
    );
    http(server.port, "POST", &format!("{path}?{query}"), &body).0
}

/// Item 4: one app's subscription and presence churn on node A neither
/// loses another app's acknowledged events on the way to node B nor
/// leaves ghost members or stale occupancy behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_neither_drops_acknowledged_events_nor_leaves_ghosts() {
    let Some(redis) = redis() else { return };
    let dir = TempDir::new("cluster-churn");
    let (a, b) = (node_with_other_app(&redis, &dir, "a"), node_with_other_app(&redis, &dir, "b"));
    let url = b.ws_url("other-key", "protocol=7");
    let mut subscriber = Client::connect(&url).await;
    subscriber.expect_event("pusher:connection_established").await;
    subscriber.subscribe("news", None, None).await;
    subscriber.expect_event("pusher_internal:subscription_succeeded").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The attacker: 10 connections on A churning public and presence
    // subscriptions as fast as the server lets them, for 3 s.
    let mut churners = Vec::new();
    for i in 0..10 {
        let mut client = a.client().await;
        churners.push(tokio::spawn(async move {
            let member = presence(&format!("churner-{i}"));
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut n = 0;
            let mut closed = false;
            while Instant::now() < deadline && !closed {
                let channel = format!("c-{}", n % 50);
                let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": channel}});
                let unsubscribe = json!({"event": "pusher:unsubscribe", "data": {"channel": channel}});
                let mut frames = vec![subscribe, unsubscribe];
                if n % 10 == 0 {
                    let auth = sealcast_core::protocol::auth::channel_auth(
                        common::APP_KEY,
                        common::APP_SECRET,
                        &client.socket_id,
                        "presence-churn",
                        Some(&member),
                    );
                    let data = json!({"channel": "presence-churn", "auth": auth, "channel_data": member});
                    frames.push(json!({"event": "pusher:subscribe", "data": data}));
                    frames
                        .push(json!({"event": "pusher:unsubscribe", "data": {"channel": "presence-churn"}}));
                }
                for frame in frames {
                    // The server closes a churner that ignores its refusals (4301).
                    closed |= !client.try_send_raw(&frame.to_string()).await;
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
                loop {
                    match client.next_within(Duration::ZERO).await {
                        Some(Seen::Frame(_)) => {}
                        Some(Seen::Closed(_)) => {
                            closed = true;
                            break;
                        }
                        None => break,
                    }
                }
            }
            client
        }));
    }
    // And a flood of HTTP batches on the same app, meeting its outbox
    // quota: refused (503) or delivered, never acknowledged and lost.
    let mut flood_sub = b.client().await;
    flood_sub.join("flood", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let port = a.port;
    let flooders: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let (mut ok, mut busy) = (0, 0);
                let deadline = Instant::now() + Duration::from_secs(3);
                let path = format!("/apps/{}/batch_events", common::APP_ID);
                while Instant::now() < deadline {
                    let batch: Vec<Value> = (0..10)
                        .map(|i| json!({"name": "blast", "channel": "flood", "data": format!("{t}-{i}")}))
                        .collect();
                    let body = json!({"batch": batch}).to_string();
                    let query = common::signed_query(
                        "POST",
                        &path,
                        &[],
                        body.as_bytes(),
                        common::APP_SECRET,
                        common::now(),
                    );
                    match http(port, "POST", &format!("{path}?{query}"), &body).0 {
                        200 => ok += 1,
                        503 => busy += 1,
                        status => panic!("batch answered {status}"),
                    }
                }
                (ok, busy)
            })
        })
        .collect();
    // Read the flood as it arrives (an unread subscriber is closed with
    // 4100 once its queue and the kernel's buffers are full, which is the
    // outbound bound at work, not a lost event).
    let flood_reader = tokio::spawn(async move {
        let mut blasts = 0;
        while let Some(Seen::Frame(f)) = flood_sub.next_within(Duration::from_secs(2)).await {
            blasts += usize::from(f["event"] == "blast");
        }
        (blasts, flood_sub)
    });
    let mut accepted = Vec::new();
    let mut refused = 0;
    for n in 0..100 {
        match publish_other(&a, "news", n) {
            200 => accepted.push(n),
            503 => refused += 1,
            status => panic!("publish answered {status}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got = Vec::new();
    while got.len() < accepted.len() {
        match subscriber.next_within(Duration::from_secs(5)).await {
            Some(Seen::Frame(f)) if f["event"] == "tick" => {
                got.push(f["data"].as_str().unwrap().parse::<usize>().unwrap())
            }
            Some(Seen::Frame(_)) => {}
            other => {
                panic!("node B lost acknowledged events: got {} of {} ({other:?})", got.len(), accepted.len())
            }
        }
    }
    eprintln!("churn: {} events accepted and all delivered on B, {refused} refused with 503", accepted.len());
    assert_eq!(got, accepted);
    let (mut batches_ok, mut batches_busy) = (0, 0);
    for flooder in flooders {
        let (ok, busy) = flooder.join().unwrap();
        (batches_ok, batches_busy) = (batches_ok + ok, batches_busy + busy);
    }
    let (blasts, flood_sub) = flood_reader.await.unwrap();
    eprintln!(
        "flood: {batches_ok} batches accepted, {batches_busy} refused with 503; {blasts} events reached B"
    );
    assert_eq!(blasts, batches_ok * 10, "every accepted batch reached node B, whole");
    drop(flood_sub);
    let mut churn_clients = Vec::new();
    for churner in churners {
        churn_clients.push(churner.await.unwrap());
    }
    // Everyone has left; both nodes agree: no ghost, no stale channel.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let users = |s: &Server| {
            s.api("GET", &format!("/apps/{}/channels/presence-churn/users", common::APP_ID), &[], "").1
        };
        let channels = |s: &Server| s.api("GET", &format!("/apps/{}/channels", common::APP_ID), &[], "").1;
        let (users_a, users_b, channels_b) = (users(&a), users(&b), channels(&b));
        if users_a == users_b
            && users_b.contains("\"users\":[]")
            && channels_b == channels(&a)
            && channels_b.contains("\"channels\":{}")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ghosts remain: A {users_a}, B {users_b}, B channels {channels_b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(churn_clients);
    let logged = a.stderr().lines().filter(|l| l.contains("WARN")).count();
    eprintln!("churn: node A logged {logged} warning lines");
    assert!(logged < 50, "{logged} warning lines");
}

/// What Redis and a node's replica disagree on (a lost message) is
/// repaired by the resync: a member only Redis knows appears, then goes
/// when Redis no longer has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_repairs_a_lost_presence_message() {
    let Some(redis) = redis() else { return };
    let dir = TempDir::new("cluster-resync");
    let a = node_with_other_app(&redis, &dir, "a");
    let mut ann = a.client().await;
    ann.join("presence-x", Some(&presence("ann"))).await;
    // A node "lost" its MemberJoined: only its Redis entry exists (with a
    // live heartbeat, so it is not reaped).
    redis_command(&redis, &["SET", "sealcast:node:feedfacefeedface", "1", "EX", "60"]);
    let key = format!("sealcast:presence:{}:presence-x", common::APP_ID);
    redis_command(&redis, &["HSET", &key, "feedfacefeedface|ghost", "{\"name\":\"g\"}"]);
    let started = Instant::now();
    let added =
        expect(&mut ann, Duration::from_secs(10), |f| event_name(f) == "pusher_internal:member_added").await;
    assert!(added["data"].as_str().unwrap().contains("ghost"), "{added}");
    eprintln!("resync: the missing member appeared after {:?}", started.elapsed());
    redis_command(&redis, &["HDEL", &key, "feedfacefeedface|ghost"]);
    let removed =
        expect(&mut ann, Duration::from_secs(10), |f| event_name(f) == "pusher_internal:member_removed")
            .await;
    assert!(removed["data"].as_str().unwrap().contains("ghost"), "{removed}");
    // And the node's own entry, deleted behind its back, is written again.
    redis_command(&redis, &["DEL", &key]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis_command(&redis, &["HKEYS", &key]).contains("|ann") {
        assert!(Instant::now() < deadline, "the node did not rewrite its own presence");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Item 9: a Redis URL's password never reaches the log.
#[test]
fn the_redis_password_is_not_logged() {
    let dir = TempDir::new("cluster-password");
    let config = dir.0.join("sealcast.toml");
    std::fs::write(&config, "cluster = \"redis://user:hunter2@127.0.0.1:1/0\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .args(["serve", "--port", "0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.0.join("data"))
        .output()
        .unwrap();
    let all =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success());
    assert!(!all.contains("hunter2"), "{all}");
    assert!(all.contains("user:***@127.0.0.1:1"), "{all}");
}

/// Item 9: the presence cap counts members on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presence_cap_is_cluster_wide() {
    let Some(redis) = redis() else { return };
    let dir = TempDir::new("cluster-presence-cap");
    let start = |name: &str| {
        let root = dir.0.join(name);
        std::fs::create_dir_all(&root).unwrap();
        Server::start_in(
            &root,
            &format!("cluster = \"{}\"", redis.url()),
            "max_presence_members = 2",
            &[("RUST_LOG", "info")],
        )
    };
    let (a, b) = (start("a"), start("b"));
    let channel = "presence-capped";
    let mut ann = a.client().await;
    ann.join(channel, Some(&presence("ann"))).await;
    let mut bob = b.client().await;
    bob.join(channel, Some(&presence("bob"))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for server in [&a, &b] {
        let mut cy = server.client().await;
        let auth = sealcast_core::protocol::auth::channel_auth(
            common::APP_KEY,
            common::APP_SECRET,
            &cy.socket_id,
            channel,
            Some(&presence("cy")),
        );
        cy.subscribe(channel, Some(&auth), Some(&presence("cy"))).await;
        let reply = cy
            .expect_event_any(&["pusher_internal:subscription_succeeded", "pusher:subscription_error"])
            .await;
        assert_eq!(reply["event"], "pusher:subscription_error", "a third member was let in: {reply}");
        assert_eq!(reply["data"]["type"], "LimitReached");
    }
    // A second connection of a member already in counts as that member.
    let mut ann_again = b.client().await;
    ann_again.join(channel, Some(&presence("ann"))).await;
}

/// History in cluster mode lives in Redis: one stream per channel, one
/// epoch and one offset sequence whichever node publishes or reads, every
/// subscriber on every node in that order, and a client that comes back
/// on another node continues where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_one_stream_across_nodes() {
    let Some(redis) = redis() else { return };
    let dir = TempDir::new("cluster-history");
    let rule = "[[apps.history]]\nchannels = [\"private-chat-*\"]\nmax_events = 1000\n";
    let (a, b) = (cluster_node(&redis, &dir, "a", "", rule), cluster_node(&redis, &dir, "b", "", rule));
    let mut on_a = a.client().await;
    on_a.join("private-chat-1", None).await;
    let mut on_b = b.client().await;
    on_b.join("private-chat-1", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 0..30 {
        let node = if n % 2 == 0 { &a } else { &b };
        assert_eq!(node.publish("private-chat-1", "msg", &n.to_string()).0, 200);
    }
    let mut epochs = std::collections::HashSet::new();
    for client in [&mut on_a, &mut on_b] {
        let mut offsets = Vec::new();
        for _ in 0..30 {
            let frame = expect(client, Duration::from_secs(10), |f| f["event"] == "msg").await;
            offsets.push(frame["offset"].as_u64().unwrap());
            epochs.insert(frame["epoch"].as_str().unwrap().to_owned());
        }
        // Kept events reach every node from Redis in the order kept.
        assert_eq!(offsets, (1..=30).collect::<Vec<u64>>(), "one order, each once");
    }
    assert_eq!(epochs.len(), 1, "one epoch: {epochs:?}");
    let path = format!("/apps/{}/channels/private-chat-1/history", common::APP_ID);
    let page_of = |node: &Server| -> Value {
        let (status, body) = node.api("GET", &path, &[("since", "0"), ("limit", "1000")], "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let (from_a, from_b) = (page_of(&a), page_of(&b));
    assert_eq!(from_a, from_b, "both nodes read the same stream");
    let data: Vec<String> =
        from_a["events"].as_array().unwrap().iter().map(|e| e["data"].as_str().unwrap().to_owned()).collect();
    assert_eq!(data, (0..30).map(|n| n.to_string()).collect::<Vec<_>>(), "in the order they were published");
    let epoch = from_a["epoch"].as_str().unwrap().to_owned();

    // A client that saw everything on A is away while B takes 5 more, then
    // comes back on B: told where the stream stands, it reads what it missed.
    drop(on_a);
    for n in 30..35 {
        assert_eq!(b.publish("private-chat-1", "msg", &n.to_string()).0, 200);
    }
    let mut back = b.client().await;
    let succeeded = back.join("private-chat-1", None).await;
    assert_eq!((succeeded["offset"].clone(), succeeded["epoch"].clone()), (json!(35), json!(epoch)));
    back.send(json!({"event": "sealcast:history", "channel": "private-chat-1", "data": {"since": 30, "epoch": epoch}})).await;
    let page = expect(&mut back, Duration::from_secs(5), |f| f["event"] == "sealcast_internal:history").await;
    let offsets: Vec<u64> =
        page["data"]["events"].as_array().unwrap().iter().map(|e| e["offset"].as_u64().unwrap()).collect();
    assert_eq!((offsets, page["data"].get("gap").cloned()), ((31..=35).collect(), None));

    // The Redis keys hold envelopes, never a sealed field's plaintext.
    let canary = "CANARY-cluster-history-4b1f";
    let mut ring = KeyRing::single("room", 1, sealcast_core::crypto::Key::from_bytes(&[4; 32])).unwrap();
    let mut sealed = json!({"body": canary});
    let scope = sealcast_core::crypto::Scope::chat("c", "m").unwrap();
    sealcast_core::client::sealed::seal_event(&mut sealed, &["/body"], &mut ring, "room", &scope).unwrap();
    assert_eq!(a.publish("private-chat-1", "kept-canary-event", &sealed.to_string()).0, 200);
    let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("sealcast:hist:*").query(&mut conn).unwrap();
    let mut stored = String::new();
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut conn).unwrap();
        let values: Vec<String> = match kind.as_str() {
            "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(&mut conn).unwrap(),
            "hash" => redis::cmd("HGETALL").arg(key).query(&mut conn).unwrap(),
            "zset" => redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).query(&mut conn).unwrap(),
            other => panic!("unexpected {other} at {key}"),
        };
        stored.push_str(&values.join("\n"));
    }
    assert!(stored.contains("kept-canary-event"), "the history keys were read: {keys:?}");
    assert!(!stored.contains(canary), "plaintext in Redis");
    for node in [&a, &b] {
        assert!(!node.stderr().contains(canary), "plaintext in a node's log");
    }

    // Cache channels too: a subscriber on B gets what was published on A.
    assert_eq!(a.publish("cache-score", "score", "7").0, 200);
    let mut late = b.client().await;
    late.join("cache-score", None).await;
    let cached = expect(&mut late, Duration::from_secs(5), |f| f["event"] == "score").await;
    assert_eq!(cached["data"], "7");
}
