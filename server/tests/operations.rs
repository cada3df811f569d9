//! Operational behaviour against a real server: slow consumers, dead
//! connections, rate limits, graceful shutdown, metrics, and that payloads
//! never reach the logs.

mod common;

use std::time::Duration;

use common::{APP_ID, Server, http};
use serde_json::json;

#[tokio::test]
async fn slow_consumer_is_disconnected_with_4100() {
    let server = Server::start("max_outbound_queue = 16", "");
    let mut slow = server.client().await;
    slow.join("firehose", None).await;
    // The client stops reading; the kernel buffers fill, then the queue.
    let payload = "x".repeat(9000);
    let mut refused_after = None;
    for i in 0..3000 {
        server.publish("firehose", "e", &payload);
        let metrics = http(server.port, "GET", "/metrics", "").1;
        if metrics.contains("sealcast_slow_consumers_total 1") {
            refused_after = Some(i);
            break;
        }
    }
    assert!(refused_after.is_some(), "queue never filled");
    assert_eq!(slow.expect_close().await, Some(4100));
}

#[tokio::test]
async fn silent_clients_are_pinged_then_closed_with_4201() {
    let server = Server::start("activity_timeout = 1\npong_timeout = 1", "");
    let mut client = server.client().await;
    // The server pings after a second of silence…
    let ping = client.expect_event("pusher:ping").await;
    assert_eq!(ping["event"], "pusher:ping");
    // …and an answer keeps the connection open.
    client.send(json!({"event": "pusher:pong", "data": {}})).await;
    client.expect_event("pusher:ping").await;
    // Without an answer it is closed.
    assert_eq!(client.expect_close().await, Some(4201));
}

#[tokio::test]
async fn client_event_rate_limit_gives_4301() {
    let server = Server::start("", "client_events_per_second = 3");
    let mut a = server.client().await;
    a.join("private-r", None).await;
    for _ in 0..5 {
        a.send(json!({"event": "client-x", "channel": "private-r", "data": {}})).await;
    }
    let error = a.expect_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4301);
}

#[tokio::test]
async fn shutdown_sends_4200_and_exits_cleanly() {
    let mut server = Server::start("", "");
    let mut client = server.client().await;
    client.join("news", None).await;
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(client.expect_close().await, Some(4200));
    let status = tokio::task::spawn_blocking(move || server.child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let server = Server::start("", "");
    assert_eq!(http(server.port, "GET", "/health", "").0, 200);
    assert_eq!(http(server.port, "GET", "/ready", "").0, 200);
    let mut client = server.client().await;
    client.join("news", None).await;
    let metrics = http(server.port, "GET", "/metrics", "").1;
    for name in [
        "sealcast_connections 1",
        "sealcast_subscriptions 1",
        "sealcast_fanout_seconds_bucket",
        "sealcast_messages_in_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
}

/// The server stays blind: payloads never appear in its logs, even at trace
/// level, whether they come from clients or the HTTP API.
#[tokio::test]
async fn payloads_never_reach_the_logs() {
    let server = Server::start_with_env("", "", &[("RUST_LOG", "trace")]);
    let canary = "CANARY-7f3a9c-plaintext";
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.join("private-p", None).await;
    b.join("private-p", None).await;
    a.send(json!({"event": "client-msg", "channel": "private-p", "data": {"body": canary}})).await;
    assert_eq!(b.expect_event("client-msg").await["data"]["body"], canary);
    assert_eq!(server.publish("private-p", "api-msg", &json!({"body": canary}).to_string()).0, 200);
    b.expect_event("api-msg").await;
    // Malformed input containing the canary is reported without echoing it.
    a.send_raw(&format!("{{\"event\": \"client-x\", \"channel\": \"private-p\", \"data\": {canary}}}")).await;
    a.expect_event("pusher:error").await;
    let (status, _) =
        server.api("POST", &format!("/apps/{APP_ID}/events"), &[], &format!("{{\"name\":\"{canary}\"")); // invalid JSON
    assert_eq!(status, 400);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.stderr();
    assert!(logs.contains("subscribed"), "trace logging is on: {logs}");
    assert!(!logs.contains(canary), "payload leaked into the logs:\n{logs}");
}
