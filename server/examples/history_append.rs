//! Appends and catch-up reads of channel history, per store, in process:
//! the cost the history adds to each published event (docs/history.md),
//! and the cost of reading 1,000 missed events back.
//!
//! ```sh
//! cargo run --release -p sealcast-server --example history_append -- [EVENTS] [ROUNDS] [REDIS_URL]
//! ```
//!
//! Each round, interleaved: EVENTS appends of a 300-byte event (a sealed
//! chat message's size) over 100 channels, then catch-up reads of 1,000
//! events (pages of up to 1,000 events / 256 KiB), per store: memory,
//! SQLite (on the data directory's file system: run it on tmpfs and on
//! disk), and Redis when a URL is given (a local redis-server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcast_core::protocol::history::Read;
use sealcast_server::history::{
    History, HistorySettings, HistoryStore, MemoryHistory, NewEvent, RedisHistory, SqliteHistory,
    StreamLimits,
};
use serde_json::value::RawValue;

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(20_000, |a| a.parse().expect("EVENTS"));
    let rounds: usize = args.next().map_or(3, |a| a.parse().expect("ROUNDS"));
    let redis = args.next();
    let dir = std::env::temp_dir().join(format!("sealcast-history-bench-{}", std::process::id()));
    let limits = StreamLimits {
        max_events: 2000,
        max_bytes: 8 << 20,
        ttl: Duration::from_secs(3600),
        app_max_bytes: 1 << 30,
    };
    let data = RawValue::from_string(format!("\"{}\"", "x".repeat(300))).expect("JSON");
    println!("{events} appends over 100 channels, then reads of 1,000 missed events; {rounds} rounds");
    for round in 1..=rounds {
        let mut stores: Vec<(&str, Arc<dyn HistoryStore>)> = vec![
            ("memory", Arc::new(MemoryHistory::default())),
            (
                "sqlite",
                Arc::new(SqliteHistory::open(&dir.join(format!("r{round}.sqlite3"))).expect("sqlite")),
            ),
        ];
        if let Some(url) = &redis {
            stores.push(("redis", Arc::new(RedisHistory::open(url).expect("redis"))));
        }
        for (name, store) in stores {
            let history = History::with_store(HistorySettings::default(), store);
            let app = format!("bench-{round}-{name}");
            let event = NewEvent { event: "client-chat", data: Some(&data), user_id: Some("ann") };
            let started = Instant::now();
            for n in 0..events {
                let channel = format!("private-chat-{}", n % 100);
                history.append_then(&app, &channel, event, &limits, |_| ()).expect("append");
            }
            let append = started.elapsed().as_secs_f64() * 1e6 / events as f64;
            // A reader 1,000 events behind on one channel.
            for _ in 0..1000 {
                history.append_then(&app, "private-chat-behind", event, &limits, |_| ()).expect("append");
            }
            let started = Instant::now();
            let (mut since, mut read) = (0, 0);
            loop {
                let ask = Read { since: Some(since), limit: Some(1000), ..Read::default() };
                let page = history.read(&app, "private-chat-behind", &ask, &limits).expect("read");
                read += page.events.len();
                since = page.events.last().map_or(since, |e| e.offset);
                if !page.more {
                    break;
                }
            }
            assert_eq!(read, 1000);
            let catch_up = started.elapsed().as_secs_f64() * 1e3;
            println!(
                "round {round} {name:>6}: append {append:6.2} µs per event; 1,000 missed events read in {catch_up:6.2} ms"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
