//! Catch-up benchmark: how long a Rust SDK client that was away takes to
//! get N missed sealed events (docs/history.md) — from `connect()` to the
//! last one delivered, opened, and to its `CatchUp` report.
//!
//! ```sh
//! cargo build --release -p sealcast-server -p sealcast-examples --examples
//! target/release/examples/catch_up_bench --server-bin target/release/sealcast [--missed 1000] [--rounds 3] [--store memory|sqlite]
//! ```
//!
//! Each round: the reader disconnects; a writer sends N sealed chat
//! messages (client events) on the channel; a witness counts them (so all
//! are kept); the reader connects again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcast_core::client::CatchUpOutcome;
use sealcast_core::crypto::{Key, Scope};
use sealcast_examples::BenchAuthorizer;
use sealcast_net::{Client, ClientConfig, Event, KeyGrant, KeyProvider, KeyRefusal, KeyRequest};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

const CHANNEL: &str = "private-history-bench";

struct OneKey;

impl KeyProvider for OneKey {
    fn key(&self, request: &KeyRequest) -> Result<KeyGrant, KeyRefusal> {
        match request.kv {
            None | Some(1) => Ok(KeyGrant::new(1, Key::from_bytes(&[7; 32]))),
            Some(_) => Err(KeyRefusal::Refused("one version".into())),
        }
    }
}

fn client(port: u16) -> (Client, UnboundedReceiver<Event>) {
    let config = ClientConfig::new(&format!("ws://127.0.0.1:{port}"), "bench-key");
    Client::start(config, Arc::new(BenchAuthorizer), Arc::new(OneKey), &tokio::runtime::Handle::current())
        .expect("client")
}

/// Waits for `count` messages on `rx` (60 s at most).
async fn messages(rx: &mut UnboundedReceiver<Event>, count: usize) {
    let mut seen = 0;
    while seen < count {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(Event::Message { .. })) => seen += 1,
            Ok(Some(Event::Undecryptable { error, .. })) => panic!("undecryptable: {error}"),
            Ok(Some(_)) => {}
            _ => panic!("only {seen} of {count} messages within 60 s"),
        }
    }
}

async fn subscribed(client: &Client, rx: &mut UnboundedReceiver<Event>) {
    client.with_machine(|m| m.subscribe(CHANNEL)).expect("subscribe");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Event::Subscribed { .. })) => return,
            Ok(Some(_)) => {}
            _ => panic!("not subscribed within 10 s"),
        }
    }
}

#[tokio::main]
async fn main() {
    let args = sealcast_examples::args();
    let bin = args.get("server-bin").cloned().unwrap_or_else(|| "target/release/sealcast".into());
    let missed: usize = args.get("missed").and_then(|n| n.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.get("rounds").and_then(|n| n.parse().ok()).unwrap_or(3);
    let store = args.get("store").cloned().unwrap_or_else(|| "memory".into());
    let dir = std::env::temp_dir().join(format!("sealcast-catch-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("bench.toml"),
        format!(
            "[history]\nstore = \"{store}\"\nmax_page_bytes = 1048576\n\n[[apps]]\nid = \"bench\"\nkey = \"bench-key\"\nsecret = \"bench-secret\"\n\
             client_events_per_second = 100000\nframes_per_second = 100000\n\
             [[apps.history]]\nchannels = [\"private-history-*\"]\nmax_events = {}\nmax_bytes = 67108864\n",
            missed * 2
        ),
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("port").port();
    let mut server = sealcast_examples::start_server(&bin, port, &dir);
    let (reader, mut reader_rx) = client(port);
    let (writer, mut writer_rx) = client(port);
    let (witness, mut witness_rx) = client(port);
    for (c, rx) in [(&reader, &mut reader_rx), (&writer, &mut writer_rx), (&witness, &mut witness_rx)] {
        subscribed(c, rx).await;
    }
    println!("{missed} missed sealed events (~330 B each), store {store}, {rounds} rounds");
    for round in 1..=rounds {
        reader.with_machine(|m| m.disconnect());
        tokio::time::sleep(Duration::from_millis(100)).await;
        for n in 0..missed {
            let scope = Scope::chat("bench", format!("r{round}-{n}")).expect("scope");
            let data = json!({"body": format!("{n:0>200}"), "n": n});
            writer
                .with_machine(|m| m.trigger_sealed(CHANNEL, "client-chat", data, &["/body"], "room", &scope))
                .expect("send");
            if n % 200 == 199 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        messages(&mut witness_rx, missed).await;
        while reader_rx.try_recv().is_ok() {}
        let started = Instant::now();
        reader.with_machine(|m| m.connect());
        let (mut delivered, mut last) = (0, Duration::ZERO);
        let outcome = loop {
            match tokio::time::timeout(Duration::from_secs(60), reader_rx.recv()).await {
                Ok(Some(Event::Message { .. })) => {
                    delivered += 1;
                    last = started.elapsed();
                }
                Ok(Some(Event::CatchUp { outcome, .. })) => break outcome,
                Ok(Some(_)) => {}
                _ => panic!("no catch-up within 60 s ({delivered} delivered)"),
            }
        };
        let reported = started.elapsed();
        assert_eq!(outcome, CatchUpOutcome::Complete { events: missed }, "round {round}");
        println!(
            "round {round}: {delivered} delivered; last {:.1} ms after connect(), CatchUp {:.1} ms",
            last.as_secs_f64() * 1e3,
            reported.as_secs_f64() * 1e3
        );
    }
    reader.close();
    writer.close();
    witness.close();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
