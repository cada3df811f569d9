//! Reconnect benchmark: N client sessions (default 1,000) on one machine,
//! each subscribed to its own private channel; the server is killed
//! (SIGKILL) and restarted on the same port; measures the time from the
//! restarted server accepting connections to every session subscribed
//! again (re-authorized through its authorizer).
//!
//! ```sh
//! cargo build --release -p sealcast-server -p sealcast-examples --examples
//! target/release/examples/reconnect_bench --server-bin target/release/sealcast [--clients 1000] [--rounds 3]
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcast_examples::BenchAuthorizer;
use sealcast_net::{Client, ClientConfig, Event, KeyGrant, KeyProvider, KeyRefusal, KeyRequest};
use tokio::sync::mpsc;

struct NoKeys;

impl KeyProvider for NoKeys {
    fn key(&self, _: &KeyRequest) -> Result<KeyGrant, KeyRefusal> {
        Err(KeyRefusal::Refused("no keys in this benchmark".into()))
    }
}

/// Waits until `count` distinct sessions report `Subscribed`.
async fn all_subscribed(rx: &mut mpsc::UnboundedReceiver<usize>, count: usize) -> Duration {
    let started = Instant::now();
    let mut seen = HashSet::new();
    while seen.len() < count {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some(index)) => {
                seen.insert(index);
            }
            _ => panic!("only {} of {count} sessions subscribed within 120 s", seen.len()),
        }
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let args = sealcast_examples::args();
    let bin = args.get("server-bin").cloned().unwrap_or_else(|| "target/release/sealcast".into());
    let clients: usize = args.get("clients").and_then(|n| n.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.get("rounds").and_then(|n| n.parse().ok()).unwrap_or(3);
    let dir = std::env::temp_dir().join(format!("sealcast-reconnect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bench.toml"),
        "[[apps]]\nid = \"bench\"\nkey = \"bench-key\"\nsecret = \"bench-secret\"\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = sealcast_examples::start_server(&bin, port, &dir);

    let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel();
    let mut sessions = Vec::new();
    let started = Instant::now();
    for index in 0..clients {
        let config = ClientConfig::new(&format!("ws://127.0.0.1:{port}"), "bench-key");
        let (client, mut events) = Client::start(
            config,
            Arc::new(BenchAuthorizer),
            Arc::new(NoKeys),
            &tokio::runtime::Handle::current(),
        )
        .unwrap();
        client.with_machine(|m| m.subscribe(&format!("private-session-{index}"))).unwrap();
        let tx = subscribed_tx.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if matches!(event, Event::Subscribed { .. }) {
                    let _ = tx.send(index);
                }
            }
        });
        sessions.push(client);
    }
    let initial = all_subscribed(&mut subscribed, clients).await;
    println!("{clients} sessions connected and subscribed in {:.2} s", (started.elapsed()).as_secs_f64());
    let _ = initial;

    for round in 1..=rounds {
        server.kill().unwrap();
        server.wait().unwrap();
        let down = Instant::now();
        server = sealcast_examples::start_server(&bin, port, &dir);
        let restart = down.elapsed();
        let restored = all_subscribed(&mut subscribed, clients).await;
        println!(
            "round {round}: server back after {:.0} ms; all {clients} subscriptions restored {:.2} s after that",
            restart.as_secs_f64() * 1e3,
            restored.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(sessions);
    let _ = server.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
