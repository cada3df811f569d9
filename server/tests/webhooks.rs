//! Webhooks against a real server and a real HTTP receiver: lifecycle
//! events, signatures, and retries after a failing endpoint.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::{APP_KEY, APP_SECRET, Server};
use sealcast_core::protocol::auth;
use serde_json::{Value, json};

/// A receiver that answers `failures` requests with 500, then 200, and
/// forwards each (signature header, body) it accepted.
fn receiver(failures: usize) -> (u16, mpsc::Receiver<(String, String, String)>) {
    slow_receiver(failures, Duration::ZERO)
}

/// [`receiver`] taking `delay` to answer each request.
fn slow_receiver(failures: usize, delay: Duration) -> (u16, mpsc::Receiver<(String, String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, serve_receiver(listener, failures, delay))
}

/// Serves webhook requests on `listener` from a thread (see [`receiver`]).
fn serve_receiver(
    listener: TcpListener,
    failures: usize,
    delay: Duration,
) -> mpsc::Receiver<(String, String, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            // Read headers, then Content-Length bytes of body.
            let (head, body) = loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_owned(), body[..len].to_owned());
                    }
                }
            };
            seen += 1;
            std::thread::sleep(delay);
            let status = if seen <= failures { "500 Internal Server Error" } else { "200 OK" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if seen > failures {
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        l.split_once(':')
                            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.trim().to_owned())
                    })
                };
                let _ = tx.send((
                    header("X-Pusher-Key").unwrap_or_default(),
                    header("X-Pusher-Signature").unwrap_or_default(),
                    body,
                ));
            }
        }
    });
    rx
}

fn collect(
    server: &Server,
    rx: &mpsc::Receiver<(String, String, String)>,
    until: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    while !until(&events) {
        let Ok((key, signature, body)) = rx.recv_timeout(Duration::from_secs(30)) else {
            panic!("webhook did not arrive within 30 s; server log:\n{}", server.stderr());
        };
        assert_eq!(key, APP_KEY);
        assert!(
            auth::signatures_equal(&signature, &auth::hmac_hex(APP_SECRET, body.as_bytes())),
            "bad signature"
        );
        let batch: Value = serde_json::from_str(&body).unwrap();
        assert!(batch["time_ms"].as_u64().unwrap() > 0);
        events.extend(batch["events"].as_array().unwrap().iter().cloned());
    }
    events
}

#[tokio::test]
async fn lifecycle_and_client_events_are_delivered_signed() {
    let (port, rx) = receiver(0);
    let server = Server::start(
        "",
        &format!(
            "[[apps.webhooks]]\nurl = \"http://127.0.0.1:{port}/hooks\"\nevent_types = [\"channel_occupied\", \"channel_vacated\", \"member_added\", \"member_removed\", \"client_event\"]\n"
        ),
    );
    let mut a = server.client().await;
    a.join("presence-w", Some(r#"{"user_id":"ann"}"#)).await;
    let mut b = server.client().await;
    b.join("presence-w", Some(r#"{"user_id":"ben"}"#)).await;
    a.send(json!({"event": "client-note", "channel": "presence-w", "data": {"n": 1}})).await;
    b.expect_event("client-note").await;
    drop(a);
    drop(b);
    // member_removed is held for a few seconds (churn coalescing), so it
    // arrives after channel_vacated.
    let events = collect(&server, &rx, |e| e.iter().filter(|e| e["name"] == "member_removed").count() == 2);
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"channel_occupied"), "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "member_added").count(), 2, "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "member_removed").count(), 2, "{names:?}");
    let client = events.iter().find(|e| e["name"] == "client_event").expect("client_event hook");
    assert_eq!((client["event"].as_str(), client["user_id"].as_str()), (Some("client-note"), Some("ann")));
    assert_eq!(client["data"], r#"{"n":1}"#);
}

#[tokio::test]
async fn failed_deliveries_are_retried() {
    let (port, rx) = receiver(2);
    let server = Server::start("", &format!("[[apps.webhooks]]\nurl = \"http://127.0.0.1:{port}/\"\n"));
    let mut a = server.client().await;
    a.join("retried", None).await;
    let events = collect(&server, &rx, |e| !e.is_empty());
    assert_eq!(events[0], json!({"name": "channel_occupied", "channel": "retried"}));
}

/// Item 6: presence churn through a slow endpoint neither starves real
/// members' events nor fills the queue: a leave followed by a join of the
/// same user within the hold is no event at all, only wanted types are
/// queued, and drops would be counted in /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_churn_does_not_starve_real_members() {
    let (port, rx) = slow_receiver(0, Duration::from_millis(100));
    let hook = format!(
        "[[apps.webhooks]]\nurl = \"http://127.0.0.1:{port}/hooks\"\nevent_types = [\"member_added\", \"member_removed\"]\n"
    );
    let server = Server::start("", &hook);
    let channel = "presence-busy";
    let member = r#"{"user_id":"churner"}"#;
    let mut churners = Vec::new();
    for _ in 0..5 {
        let mut client = server.client().await;
        churners.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < deadline {
                let auth = auth::channel_auth(APP_KEY, APP_SECRET, &client.socket_id, channel, Some(member));
                let join = json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth, "channel_data": member}});
                let leave = json!({"event": "pusher:unsubscribe", "data": {"channel": channel}});
                if !client.try_send_raw(&join.to_string()).await || !client.try_send_raw(&leave.to_string()).await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                while let Some(common::Seen::Frame(_)) = client.next_within(Duration::ZERO).await {}
            }
        }));
    }
    let mut users = Vec::new();
    for n in 0..10 {
        let mut user = server.client().await;
        user.join(channel, Some(&format!(r#"{{"user_id":"real-{n}"}}"#))).await;
        users.push(user);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for churner in churners {
        churner.await.unwrap();
    }
    let real_added = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["name"] == "member_added" && e["user_id"].as_str().unwrap().starts_with("real-"))
            .count()
    };
    let events = collect(&server, &rx, |e| real_added(e) == 10);
    let churn = events.iter().filter(|e| e["user_id"] == "churner").count();
    println!("webhooks: 10 real member_added delivered; {churn} churner events for ~750 joins and leaves");
    assert!(churn <= 20, "churn was not coalesced: {churn} events");
    let metrics = common::http(server.port, "GET", "/metrics", "").1;
    assert!(metrics.contains("sealcast_webhooks_dropped_total 0"), "{metrics}");
}

/// The bodies a receiver accepted, until `count` events arrived.
fn bodies(server: &Server, rx: &mpsc::Receiver<(String, String, String)>, count: usize) -> Vec<Vec<Value>> {
    let mut bodies = Vec::new();
    while bodies.iter().map(Vec::len).sum::<usize>() < count {
        let Ok((_, _, body)) = rx.recv_timeout(Duration::from_secs(30)) else {
            panic!("webhook did not arrive within 30 s; server log:\n{}", server.stderr());
        };
        let batch: Value = serde_json::from_str(&body).unwrap();
        bodies.push(batch["events"].as_array().unwrap().clone());
    }
    bodies
}

/// As in Pusher, one event per request unless the app asks for batches.
#[tokio::test]
async fn one_event_per_request_unless_batching_is_on() {
    let (port, rx) = receiver(0);
    let server = Server::start("", &format!("[[apps.webhooks]]\nurl = \"http://127.0.0.1:{port}/\"\n"));
    let mut a = server.client().await;
    for channel in ["one", "two", "three"] {
        a.join(channel, None).await;
    }
    let bodies = bodies(&server, &rx, 3);
    assert!(bodies.iter().all(|events| events.len() == 1), "{bodies:?}");
    let names: Vec<&str> = bodies.iter().map(|events| events[0]["channel"].as_str().unwrap()).collect();
    assert_eq!(names, ["one", "two", "three"], "in order");
}

/// A receiver that is down (a deploy, a restart) gets everything once it
/// is back, in order: requests are retried for `webhook_retry_secs`.
#[tokio::test]
async fn a_receiver_down_for_a_while_receives_everything_when_it_is_back() {
    let port = common::free_port();
    let hook = format!("[[apps.webhooks]]\nurl = \"http://127.0.0.1:{port}/\"\n");
    let server = Server::start("", &hook);
    let mut a = server.client().await;
    for channel in ["early-1", "early-2"] {
        a.join(channel, None).await;
    }
    // Nothing listens for 30 s (a deploy) — the 7.5 s of retries before
    // issue 26 dropped the batch: connection refused, retried.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let rx = receiver_on(port);
    let bodies = bodies(&server, &rx, 2);
    let channels: Vec<&str> = bodies.iter().flatten().map(|e| e["channel"].as_str().unwrap()).collect();
    assert_eq!(channels, ["early-1", "early-2"]);
    let metrics = common::http(server.port, "GET", "/metrics", "").1;
    assert!(metrics.contains("sealcast_webhooks_dropped_total 0"), "{metrics}");
}

/// A receiver on `port` (bound now), answering 200; the thread stops with
/// the process.
fn receiver_on(port: u16) -> mpsc::Receiver<(String, String, String)> {
    serve_receiver(TcpListener::bind(("127.0.0.1", port)).unwrap(), 0, Duration::ZERO)
}

/// `https://` endpoints: TLS with the webpki roots plus the app's
/// `webhook_ca_file` (here the receiver's self-signed certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_receivers_are_reached_through_tls_with_the_apps_ca() {
    use base64::Engine;
    let (plain, rx) = receiver(0);
    let (port, cert) = common::tls_front(plain).await;
    let dir = common::TempDir::new("webhook-ca");
    let pem = base64::engine::general_purpose::STANDARD.encode(&cert);
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, format!("-----BEGIN CERTIFICATE-----\n{pem}\n-----END CERTIFICATE-----\n")).unwrap();
    let app = format!(
        "webhook_ca_file = {:?}\n[[apps.webhooks]]\nurl = \"https://localhost:{port}/hooks\"\n",
        ca.display().to_string()
    );
    let server = Server::start("", &app);
    let mut a = server.client().await;
    a.join("over-tls", None).await;
    let events = collect(&server, &rx, |e| !e.is_empty());
    assert_eq!(events[0], json!({"name": "channel_occupied", "channel": "over-tls"}));

    // A CA file without a certificate is refused at start, naming it.
    std::fs::write(&ca, "not a certificate").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .args(["serve", "--port", "0", "--config"])
        .arg({
            let config = dir.0.join("bad.toml");
            std::fs::write(&config, format!("[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s\"\n{app}"))
                .unwrap();
            config
        })
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("webhook_ca_file"), "{output:?}");
}

/// Pusher's `cache_miss` webhook: a cache channel had nothing for a new
/// subscriber (the app may publish the state then).
#[tokio::test]
async fn a_cache_miss_is_a_webhook() {
    let (port, rx) = receiver(0);
    let hook =
        format!("[[apps.webhooks]]\nurl = \"http://127.0.0.1:{port}/\"\nevent_types = [\"cache_miss\"]\n");
    let server = Server::start("", &hook);
    let mut a = server.client().await;
    a.join("cache-weather", None).await;
    let events = collect(&server, &rx, |e| !e.is_empty());
    assert_eq!(events, [json!({"name": "cache_miss", "channel": "cache-weather"})]);
}

/// What a receiver got within `quiet` after the last event: its events'
/// names with their channel and user.
fn names_until_quiet(rx: &mpsc::Receiver<(String, String, String)>, quiet: Duration) -> Vec<String> {
    let mut names = Vec::new();
    while let Ok((_, _, body)) = rx.recv_timeout(quiet) {
        let batch: Value = serde_json::from_str(&body).unwrap();
        for event in batch["events"].as_array().unwrap() {
            let user = event["user_id"].as_str().map(|u| format!(" {u}")).unwrap_or_default();
            names.push(format!(
                "{} {}{user}",
                event["name"].as_str().unwrap(),
                event["channel"].as_str().unwrap()
            ));
        }
    }
    names.sort();
    names
}

/// Two nodes, one receiver: each lifecycle webhook comes once, from the
/// node whose change made the channel or the user appear or vanish in the
/// cluster (Redis claims, docs/scaling.md); a killed node's channel and
/// member are reported by the survivor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_each_lifecycle_webhook_is_sent_by_one_node() {
    let Some(redis) = common::redis() else { return };
    let (port, rx) = receiver(0);
    let hook = format!(
        "[[apps.webhooks]]\nurl = \"http://127.0.0.1:{port}/\"\nevent_types = [\"channel_occupied\", \"channel_vacated\", \"member_added\", \"member_removed\"]\n"
    );
    let dir = common::TempDir::new("cluster-hooks");
    let a = common::cluster_node(&redis, &dir, "a", "", &hook);
    let mut b = common::cluster_node(&redis, &dir, "b", "", &hook);

    // ann on both nodes (two tabs), bob on b; then everyone leaves.
    let mut ann_a = a.client().await;
    ann_a.join("presence-w", Some(r#"{"user_id":"ann"}"#)).await;
    let mut ann_b = b.client().await;
    ann_b.join("presence-w", Some(r#"{"user_id":"ann"}"#)).await;
    let mut bob_b = b.client().await;
    bob_b.join("presence-w", Some(r#"{"user_id":"bob"}"#)).await;
    drop((ann_a, ann_b, bob_b));
    // member_removed is held 3 s on each node (churn); then 3 s of quiet.
    let names = names_until_quiet(&rx, Duration::from_secs(6));
    assert_eq!(
        names,
        [
            "channel_occupied presence-w",
            "channel_vacated presence-w",
            "member_added presence-w ann",
            "member_added presence-w bob",
            "member_removed presence-w ann",
            "member_removed presence-w bob",
        ],
        "server logs:\n{}\n{}",
        a.stderr(),
        b.stderr()
    );

    // carl only on b, which dies: a reports what b cannot.
    let mut carl = b.client().await;
    carl.join("presence-d", Some(r#"{"user_id":"carl"}"#)).await;
    let joined = names_until_quiet(&rx, Duration::from_secs(2));
    assert_eq!(joined, ["channel_occupied presence-d", "member_added presence-d carl"]);
    for _ in 0..100 {
        let users = a.api("GET", &format!("/apps/{}/channels/presence-d/users", common::APP_ID), &[], "").1;
        if users.contains("carl") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.child.kill().unwrap();
    // The heartbeat expires after 10 s; the reaper looks every 2 s.
    let mut gone = Vec::new();
    while gone.len() < 2 {
        let Ok((_, _, body)) = rx.recv_timeout(Duration::from_secs(30)) else {
            panic!("no webhook for the dead node's channel; log of a:\n{}", a.stderr());
        };
        let batch: Value = serde_json::from_str(&body).unwrap();
        gone.extend(
            batch["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()),
        );
    }
    gone.sort();
    assert_eq!(gone, ["channel_vacated", "member_removed"]);
}

/// A receiver that is down while the app sends more than its webhook
/// queue may hold: what is over `webhook_max_queue_bytes` is refused and
/// counted (memory stays bounded), what was queued arrives in order once
/// the receiver is back, and the freed budget takes new events.
#[tokio::test]
async fn the_webhook_queue_is_bounded_in_bytes() {
    let port = common::free_port();
    let hook = format!(
        "client_events_per_second = 1000\nwebhook_max_queue_bytes = 16384\n[[apps.webhooks]]\nurl = \"http://127.0.0.1:{port}/\"\nevent_types = [\"client_event\"]\n"
    );
    let server = Server::start("", &hook);
    let mut a = server.client().await;
    a.join("private-q", None).await;
    let filler = "x".repeat(2000);
    for n in 0..20 {
        a.send(json!({"event": "client-n", "channel": "private-q", "data": {"n": n, "filler": filler}}))
            .await;
    }
    let dropped = || -> u64 {
        let metrics = common::http(server.port, "GET", "/metrics", "").1;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("sealcast_webhooks_dropped_total ")?.parse().ok())
            .unwrap()
    };
    // The connection's frames are handled in order: once the pong is
    // back, each of the 20 was queued or refused.
    a.send(json!({"event": "pusher:ping", "data": {}})).await;
    a.expect_event("pusher:pong").await;
    let refused = dropped();
    assert!((10..20).contains(&refused), "{refused} of 20 refused");

    let rx = receiver_on(port);
    let queued = 20 - refused as usize;
    let delivered = bodies(&server, &rx, queued);
    let numbers: Vec<u64> = delivered
        .iter()
        .flatten()
        .map(|e| serde_json::from_str::<Value>(e["data"].as_str().unwrap()).unwrap()["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..queued as u64).collect::<Vec<_>>(), "the first ones, in order");
    a.send(json!({"event": "client-n", "channel": "private-q", "data": {"n": 99}})).await;
    let after = bodies(&server, &rx, 1);
    assert!(after[0][0]["data"].as_str().unwrap().contains("99"));
    assert_eq!(dropped(), refused);
}
