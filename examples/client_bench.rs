//! Client-side cost of sealed chat events, the Rust baseline for
//! `scripts/bench/client-ffi.sh` (which runs the same receiver in Python
//! and Kotlin through the bindings).
//!
//! - `--role sender --port P --count N --rate R`: sends N sealed
//!   `client-chat` events (200-byte body) on `private-bench` at R per second.
//! - `--role receiver --port P --count N`: prints `ready` once subscribed,
//!   receives N events (opened and dispatched to the app) and prints the
//!   process CPU time per event after the first 1,000 (warm-up); then times
//!   5,000 `trigger_sealed` calls (seal + queue, wall clock per call).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcast_core::client::ChannelAuth;
use sealcast_core::crypto::{Key, Scope};
use sealcast_core::protocol::auth::channel_auth;
use sealcast_net::{
    AuthRefusal, Authorizer, Client, ClientConfig, Event, KeyGrant, KeyProvider, KeyRefusal, KeyRequest,
};
use serde_json::json;

pub const CHANNEL: &str = "private-bench";

struct Fixed;

impl Authorizer for Fixed {
    fn authorize(&self, socket_id: &str, channel: &str) -> Result<ChannelAuth, AuthRefusal> {
        Ok(ChannelAuth {
            auth: channel_auth("bench-key", "bench-secret", socket_id, channel, None),
            channel_data: None,
        })
    }
}

impl KeyProvider for Fixed {
    fn key(&self, _: &KeyRequest) -> Result<KeyGrant, KeyRefusal> {
        Ok(KeyGrant::new(1, Key::from_bytes(&[1; 32])))
    }
}

/// This process's CPU time (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ = 100 on Linux
}

#[tokio::main]
async fn main() {
    let args = sealcast_examples::args();
    let port = args.get("port").expect("--port");
    let count: usize = args.get("count").and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let config = ClientConfig::new(&format!("ws://127.0.0.1:{port}"), "bench-key");
    let (client, mut events) =
        Client::start(config, Arc::new(Fixed), Arc::new(Fixed), &tokio::runtime::Handle::current()).unwrap();
    client.with_machine(|m| m.subscribe(CHANNEL)).unwrap();
    while !matches!(events.recv().await, Some(Event::Subscribed { .. })) {}
    let body = "x".repeat(200);
    match args.get("role").map(String::as_str) {
        Some("sender") => {
            let rate: u64 = args.get("rate").and_then(|n| n.parse().ok()).unwrap_or(5_000);
            let started = Instant::now();
            for n in 0..count {
                let due = started + Duration::from_micros(n as u64 * 1_000_000 / rate);
                tokio::time::sleep_until(due.into()).await;
                let scope = Scope::chat("room", format!("m-{n}")).unwrap();
                let data = json!({"body": body});
                client
                    .with_machine(|m| {
                        m.trigger_sealed(CHANNEL, "client-chat", data, &["/body"], "room", &scope)
                    })
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        _ => {
            println!("ready");
            let (mut received, mut cpu_start) = (0usize, Duration::ZERO);
            while received < count {
                match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
                    Ok(Some(Event::Message { event, data, .. })) if event == "client-chat" => {
                        assert_eq!(data["body"].as_str().map(str::len), Some(200));
                        received += 1;
                        if received == 1000 {
                            cpu_start = cpu_time();
                        }
                    }
                    Ok(Some(_)) => {}
                    _ => panic!("received only {received} of {count}"),
                }
            }
            let per_event = (cpu_time() - cpu_start).as_secs_f64() * 1e6 / (count - 1000) as f64;
            let calls = 5000;
            let started = Instant::now();
            for n in 0..calls {
                let scope = Scope::chat("room", format!("s-{n}")).unwrap();
                let data = json!({"body": body});
                client
                    .with_machine(|m| {
                        m.trigger_sealed(CHANNEL, "client-chat", data, &["/body"], "room", &scope)
                    })
                    .unwrap();
            }
            let per_call = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
            println!("rust: receive {per_event:.1} us cpu/event, send {per_call:.1} us/call");
        }
    }
}
