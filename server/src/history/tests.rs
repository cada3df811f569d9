//! The stores' shared contract, run against each of them.

use std::time::Duration;

use sealcast_core::protocol::history::{Gap, Read};
use serde_json::value::RawValue;

use super::*;

fn limits(max_events: usize) -> StreamLimits {
    StreamLimits { max_events, max_bytes: 1 << 20, ttl: Duration::from_secs(60), app_max_bytes: 1 << 30 }
}

const BOUNDS: PageBounds = PageBounds { events: 100, bytes: 1 << 20 };

fn push(store: &dyn HistoryStore, channel: &str, n: u64, limits: &StreamLimits, now: u64) -> Position {
    let data = RawValue::from_string(format!("\"{n}\"")).unwrap();
    let event = NewEvent { event: "m", data: Some(&data), user_id: None };
    store.append("app", channel, event, limits, now).unwrap()
}

fn offsets(page: &HistoryPage) -> Vec<u64> {
    page.events.iter().map(|e| e.offset).collect()
}

fn since(offset: u64, epoch: &str) -> Read {
    Read { since: Some(offset), epoch: Some(epoch.into()), ..Read::default() }
}

/// What a store needs kept alive while it is tested.
enum Guard {
    None,
    Dir(#[allow(dead_code)] sealcast_tests::TempDir),
    Redis(std::process::Child),
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Redis(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A throwaway redis-server (`None` when none is installed; scripts/test.sh
/// installs it).
fn redis_server() -> Option<(String, Guard)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|_| eprintln!("redis-server is not installed: the Redis store is skipped"))
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((format!("redis://127.0.0.1:{port}/0"), Guard::Redis(child)))
}

/// Every store, each with what keeps it alive.
fn stores() -> Vec<(Box<dyn HistoryStore>, Guard)> {
    let dir = sealcast_tests::TempDir::new("history");
    let sqlite = SqliteHistory::open(&dir.0.join("h.sqlite3")).unwrap();
    let mut stores: Vec<(Box<dyn HistoryStore>, Guard)> =
        vec![(Box::new(MemoryHistory::default()), Guard::None), (Box::new(sqlite), Guard::Dir(dir))];
    if let Some((url, guard)) = redis_server() {
        stores.push((Box::new(RedisHistory::open(&url).unwrap()), guard));
    }
    stores
}

#[test]
fn offsets_are_consecutive_and_reads_continue_from_a_position() {
    for (store, _dir) in stores() {
        let store = store.as_ref();
        let l = limits(100);
        let first = push(store, "c", 0, &l, 1000);
        assert_eq!(first.offset, 1);
        for n in 1..10 {
            let position = push(store, "c", n, &l, 1000);
            assert_eq!(position, Position { offset: n + 1, epoch: first.epoch.clone() });
        }
        let other = push(store, "d", 0, &l, 1000);
        assert_eq!(other.offset, 1, "each channel is its own stream");
        let page = store.read("app", "c", &since(4, &first.epoch), &l, BOUNDS, 1000).unwrap();
        assert_eq!((offsets(&page), page.head, page.gap, page.more), ((5..=10).collect(), 10, None, false));
        assert_eq!(page.events[0].data.get(), "\"4\"");
        let small = PageBounds { events: 4, ..BOUNDS };
        let page = store.read("app", "c", &since(4, &first.epoch), &l, small, 1000).unwrap();
        assert_eq!((offsets(&page), page.more), (vec![5, 6, 7, 8], true));
        // Scrolling back: the newest first page, then before its first.
        let page = store.read("app", "c", &Read::default(), &l, small, 1000).unwrap();
        assert_eq!((offsets(&page), page.more), (vec![7, 8, 9, 10], true));
        let back = Read { before: Some(7), ..Read::default() };
        let page = store.read("app", "c", &back, &l, small, 1000).unwrap();
        assert_eq!((offsets(&page), page.more), (vec![3, 4, 5, 6], true));
        let back = Read { before: Some(3), ..Read::default() };
        let page = store.read("app", "c", &back, &l, small, 1000).unwrap();
        assert_eq!((offsets(&page), page.more), (vec![1, 2], false));
        // Bytes bound a page too, but one event always fits.
        let tiny = PageBounds { events: 100, bytes: 1 };
        assert_eq!(
            offsets(&store.read("app", "c", &since(0, &first.epoch), &l, tiny, 1000).unwrap()),
            vec![1]
        );
    }
}

#[test]
fn what_was_trimmed_or_another_epoch_is_a_named_gap() {
    for (store, _dir) in stores() {
        let store = store.as_ref();
        let l = limits(5);
        let epoch = (0..12).map(|n| push(store, "c", n, &l, 1000)).last().unwrap().epoch;
        let page = store.read("app", "c", &since(3, &epoch), &l, BOUNDS, 1000).unwrap();
        assert_eq!((offsets(&page), page.gap), ((8..=12).collect(), Some(Gap::PositionExpired)));
        let page = store.read("app", "c", &since(7, &epoch), &l, BOUNDS, 1000).unwrap();
        assert_eq!((offsets(&page), page.gap), ((8..=12).collect(), None));
        let page = store.read("app", "c", &since(7, "another"), &l, BOUNDS, 1000).unwrap();
        assert_eq!((offsets(&page), page.gap), ((8..=12).collect(), Some(Gap::EpochChanged)));
        assert_eq!(
            store.read("app", "c", &since(13, &epoch), &l, BOUNDS, 1000),
            Err(HistoryStoreError::PastHead)
        );
        let page = store.read("app", "nothing", &since(3, &epoch), &l, BOUNDS, 1000).unwrap();
        assert_eq!((page.events.len(), page.gap), (0, Some(Gap::EpochChanged)));
    }
}

#[test]
fn events_older_than_the_ttl_are_gone() {
    for (store, _dir) in stores() {
        let store = store.as_ref();
        let l = limits(100); // ttl 60 s
        let epoch = push(store, "c", 1, &l, 1_000).epoch;
        push(store, "c", 2, &l, 30_000);
        let page = store.read("app", "c", &since(0, &epoch), &l, BOUNDS, 61_500).unwrap();
        assert_eq!((offsets(&page), page.gap), (vec![2], Some(Gap::PositionExpired)));
        let page = store.read("app", "c", &since(0, &epoch), &l, BOUNDS, 95_000).unwrap();
        assert_eq!((offsets(&page), page.gap, page.head), (vec![], Some(Gap::PositionExpired), 2));
        assert_eq!(push(store, "c", 3, &l, 95_000), Position { offset: 3, epoch });
    }
}

#[test]
fn the_app_cap_drops_the_apps_oldest_events_first() {
    for (store, _dir) in stores() {
        let store = store.as_ref();
        let one = NewEvent {
            event: "m",
            data: Some(&RawValue::from_string("\"0\"".into()).unwrap()),
            user_id: None,
        }
        .cost();
        let l = StreamLimits { app_max_bytes: 10 * one, ..limits(100) };
        for n in 0..6 {
            push(store, "a", n, &l, 1000);
            push(store, "b", n, &l, 1000);
        }
        assert_eq!(store.app_bytes("app"), 10 * one);
        let read = Read::default();
        assert_eq!(offsets(&store.read("app", "a", &read, &l, BOUNDS, 1000).unwrap()), vec![2, 3, 4, 5, 6]);
        assert_eq!(offsets(&store.read("app", "b", &read, &l, BOUNDS, 1000).unwrap()), vec![2, 3, 4, 5, 6]);
        assert_eq!(store.app_bytes("other"), 0);
    }
}

#[test]
fn sqlite_keeps_streams_across_a_restart_and_renews_epochs_after_a_reboot() {
    let dir = sealcast_tests::TempDir::new("history-restart");
    let path = dir.0.join("h.sqlite3");
    let l = limits(100);
    let epoch = {
        let store = SqliteHistory::open(&path).unwrap();
        (0..3).map(|n| push(&store, "c", n, &l, 1000)).last().unwrap().epoch
    };
    let store = SqliteHistory::open(&path).unwrap();
    assert_eq!(
        store.app_bytes("app"),
        3 * NewEvent {
            event: "m",
            data: Some(&RawValue::from_string("\"0\"".into()).unwrap()),
            user_id: None
        }
        .cost()
    );
    let page = store.read("app", "c", &since(1, &epoch), &l, BOUNDS, 1000).unwrap();
    assert_eq!((offsets(&page), page.gap), (vec![2, 3], None));
    assert_eq!(push(&store, "c", 3, &l, 1000), Position { offset: 4, epoch: epoch.clone() });
    drop(store);
    // Another boot of the machine: the last commits may be lost.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE meta SET value = 'an earlier boot' WHERE key = 'boot_id'", []).unwrap();
    drop(conn);
    let store = SqliteHistory::open(&path).unwrap();
    let page = store.read("app", "c", &since(4, &epoch), &l, BOUNDS, 1000).unwrap();
    assert_eq!(page.gap, Some(Gap::EpochChanged));
    assert_ne!(page.epoch, epoch);
}

#[test]
fn history_appends_deliver_in_offset_order_across_threads() {
    let history =
        Arc::new(History::with_store(HistorySettings::default(), Arc::new(MemoryHistory::default())));
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (history, delivered) = (history.clone(), delivered.clone());
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let event = NewEvent { event: "m", data: None, user_id: None };
                    history
                        .append_then("app", "c", event, &limits(10), |p| {
                            delivered.lock().unwrap().push(p.offset)
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(*delivered.lock().unwrap(), (1..=2000).collect::<Vec<u64>>());
}
