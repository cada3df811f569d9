//! Operational behaviour against a real server: slow consumers, dead
//! connections, rate limits, graceful shutdown, metrics, and that payloads
//! never reach the logs.

mod common;

use std::time::Duration;

use common::{APP_ID, Server, http};
use serde_json::{Value, json};

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
/// level, whether they come from clients or the HTTP API, in either log
/// format.
#[tokio::test]
async fn payloads_never_reach_the_logs() {
    for format in ["text", "json"] {
        let server =
            Server::start_with_env("", "", &[("RUST_LOG", "trace"), ("SEALCAST_LOG_FORMAT", format)]);
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
        a.send_raw(&format!("{{\"event\": \"client-x\", \"channel\": \"private-p\", \"data\": {canary}}}"))
            .await;
        a.expect_event("pusher:error").await;
        let (status, _) =
            server.api("POST", &format!("/apps/{APP_ID}/events"), &[], &format!("{{\"name\":\"{canary}\"")); // invalid JSON
        assert_eq!(status, 400);
        let logs = common::logged(&server, "subscribed", 1).await;
        assert!(!logs.contains(canary), "payload leaked into the {format} logs:\n{logs}");
    }
}

#[tokio::test]
async fn logs_to_a_pipe_have_no_colour_and_json_logs_are_one_object_a_line() {
    let text = Server::start_with_env("", "", &[("RUST_LOG", "info")]);
    let logs = common::logged(&text, "serving", 1).await;
    assert!(!logs.contains('\u{1b}'), "ANSI escapes in a piped log:\n{logs}");

    let json = Server::start_with_env("", "", &[("RUST_LOG", "debug"), ("SEALCAST_LOG_FORMAT", "json")]);
    let mut client = json.client().await;
    client.join("news", None).await;
    let logs = common::logged(&json, "subscribed", 1).await;
    let lines: Vec<Value> = logs
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let serving = lines.iter().find(|l| l["message"] == "serving").expect("the serving line");
    assert_eq!(serving["level"], "INFO");
    assert!(serving["apps"].is_number() && serving["time"].is_string(), "{serving}");
    // A connection's lines carry its span (app and socket id).
    let subscribed = lines.iter().find(|l| l["message"] == "subscribed").expect("a subscribed line");
    assert!(subscribed["spans"][0].as_str().is_some_and(|s| s.contains(&client.socket_id)), "{subscribed}");

    // A format that does not exist is refused at start, in one line.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .args(["serve", "--port", "0", "--log-format", "yaml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("yaml"));
}

/// On SIGTERM the listener closes before the drain: a client told to
/// reconnect at once is refused at once (and tries again, or another
/// node), instead of waiting in the backlog of a process about to exit.
#[tokio::test]
async fn shutdown_stops_listening_before_it_drains() {
    // A client that never answers the close keeps its connection lingering
    // `close_linger_ms` (8 s here, inside the drain's 10 s bound), so
    // "still draining" lasts far longer than the refusal takes to show.
    let mut server = Server::start("close_linger_ms = 8000", "");
    let lingering = server.client().await;
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let port = server.port;
    let refused = tokio::task::spawn_blocking(move || {
        for _ in 0..250 {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => return true,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(refused, "the port still accepted connections 5 s after SIGTERM");
    // (Against the build before this fix the port is refused only once the
    // process has exited, 8 s later: this fails.)
    assert!(server.child.try_wait().unwrap().is_none(), "refused only because the process had exited");
    drop(lingering);
}

/// `reuse_port`: a new process can listen on the port of one still
/// running (start the new, then SIGTERM the old: clients told 4200 land on
/// the new one at once); without it a second server on a port fails to
/// start, as a mistaken double start should.
#[tokio::test]
async fn with_reuse_port_a_second_process_takes_the_port_while_the_first_runs() {
    let port = common::free_port();
    let (first_dir, second_dir) = (common::TempDir::new("reuse-a"), common::TempDir::new("reuse-b"));
    let mut first = Server::start_in_on(&first_dir.0, port, "reuse_port = true", "", &[]);
    let mut second = Server::start_in_on(&second_dir.0, port, "reuse_port = true", "", &[]);
    assert_eq!((first.port, second.port), (port, port));
    // The old one goes (SIGTERM); the new one serves on the same port.
    let pid = first.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || first.child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status}");
    let mut client = second.client().await;
    client.join("news", None).await;

    // Without it, the port is taken.
    let third_dir = common::TempDir::new("reuse-c");
    std::fs::write(third_dir.0.join("sealcast.toml"), "[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"s\"\n")
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .args(["serve", "--port", &port.to_string(), "--config"])
        .arg(third_dir.0.join("sealcast.toml"))
        .arg("--data-dir")
        .arg(third_dir.0.join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success(), "a second server without reuse_port started");
    second.child.kill().unwrap();
}
