//! Recovery through the Rust SDK against the real binary: a reader behind
//! a TCP proxy that is cut while 500 sealed events are published on its
//! channel (half through the HTTP API, half as another client's client
//! events) gets all 500 after it reconnects, exactly once, in stream
//! order, opened; and is told the catch-up was complete (docs/history.md).
//! Also: a key version rotated in during the gap, a gap longer than what is
//! kept, and a server restart with each store.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{APP_ID, APP_KEY, APP_SECRET, Proxy, Server};
use sealcast_core::client::sealed::seal_event;
use sealcast_core::client::{CatchUpOutcome, ChannelAuth};
use sealcast_core::crypto::{Key, KeyRing, Scope};
use sealcast_core::protocol::auth;
use sealcast_net::{
    AuthRefusal, Authorizer, Client, ClientConfig, Event, KeyGrant, KeyProvider, KeyRefusal, KeyRequest,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

const CHANNEL: &str = "private-chat-1";
const KEY: [u8; 32] = [7; 32];

struct Hmac;

impl Authorizer for Hmac {
    fn authorize(&self, socket_id: &str, channel: &str) -> Result<ChannelAuth, AuthRefusal> {
        Ok(ChannelAuth {
            auth: auth::channel_auth(APP_KEY, APP_SECRET, socket_id, channel, None),
            channel_data: None,
        })
    }
}

/// `room` v1 (the newest unless `rotated`) and v2; records what it was
/// asked.
#[derive(Default)]
struct OneKey {
    asked: Mutex<Vec<Option<u32>>>,
}

const KEY_V2: [u8; 32] = [8; 32];

impl KeyProvider for OneKey {
    fn key(&self, request: &KeyRequest) -> Result<KeyGrant, KeyRefusal> {
        self.asked.lock().unwrap().push(request.kv);
        match (request.kid.as_str(), request.kv) {
            ("room", None | Some(1)) => Ok(KeyGrant::new(1, Key::from_bytes(&KEY))),
            ("room", Some(2)) => Ok(KeyGrant::new(2, Key::from_bytes(&KEY_V2))),
            _ => Err(KeyRefusal::Refused("no such key".into())),
        }
    }
}

fn start(port: u16) -> (Client, UnboundedReceiver<Event>) {
    start_with(port, Arc::new(OneKey::default()))
}

fn start_with(port: u16, keys: Arc<OneKey>) -> (Client, UnboundedReceiver<Event>) {
    let config = ClientConfig::new(&format!("ws://127.0.0.1:{port}"), APP_KEY);
    Client::start(config, Arc::new(Hmac), keys, &tokio::runtime::Handle::current()).unwrap()
}

async fn until<T>(
    rx: &mut UnboundedReceiver<Event>,
    what: &str,
    mut want: impl FnMut(Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("client stopped");
        if let Some(found) = want(event) {
            return found;
        }
    }
}

async fn subscribed(client: &Client, rx: &mut UnboundedReceiver<Event>) {
    client.with_machine(|m| m.subscribe(CHANNEL)).unwrap();
    until(rx, "subscribed", |e| matches!(e, Event::Subscribed { .. }).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_cut_off_while_500_sealed_events_are_published_gets_all_of_them_once_in_order() {
    // The writer sends its 250 client events in bursts: rates above them.
    let app = "client_events_per_second = 1000\nframes_per_second = 2000\n";
    let rule = "[[apps.history]]\nchannels = [\"private-chat-*\"]\nmax_events = 1000\n";
    let server = Server::start("[history]\nmax_page_bytes = 1048576\n", &format!("{app}{rule}"));
    let proxy = Proxy::start(server.port).await;
    let (reader, mut reader_rx) = start(proxy.port);
    let (writer, mut writer_rx) = start(server.port);
    subscribed(&reader, &mut reader_rx).await;
    subscribed(&writer, &mut writer_rx).await;
    // One event before the cut: the reader is following the stream.
    assert_eq!(server.publish(CHANNEL, "chat", &json!({"n": -1}).to_string()).0, 200);
    until(&mut reader_rx, "the first event", |e| matches!(e, Event::Message { .. }).then_some(())).await;

    proxy.cut();
    until(&mut reader_rx, "the drop", |e| {
        matches!(e, Event::State(ref s) if !matches!(s, sealcast_core::client::ConnectionState::Connected { .. }))
            .then_some(())
    })
    .await;
    let mut ring = KeyRing::new();
    ring.insert("room", 1, Key::from_bytes(&KEY)).unwrap();
    for n in 0..250 {
        let scope = Scope::chat("chat-1", format!("h{n}")).unwrap();
        let mut data = json!({"n": n * 2, "body": format!("over http {n}")});
        seal_event(&mut data, &["/body"], &mut ring, "room", &scope).unwrap();
        assert_eq!(server.publish(CHANNEL, "chat", &data.to_string()).0, 200);
        let scope = Scope::chat("chat-1", format!("c{n}")).unwrap();
        let data = json!({"n": n * 2 + 1, "body": format!("from a client {n}")});
        writer
            .with_machine(|m| m.trigger_sealed(CHANNEL, "client-chat", data, &["/body"], "room", &scope))
            .unwrap();
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await; // let the writer's frames out
        }
    }
    // Every event is kept before the reader is back (the writer's are
    // sent by its own task).
    let started = Instant::now();
    loop {
        let (_, body) =
            server.api("GET", &format!("/apps/{APP_ID}/channels/{CHANNEL}/history"), &[("limit", "1")], "");
        let head = serde_json::from_str::<Value>(&body).unwrap()["head"].as_u64().unwrap();
        if head == 501 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the writer's events did not all arrive: head {head}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxy.restore();
    reader.with_machine(|m| m.network_changed(tokio::time::Instant::now().into_std()));
    let (seen, outcome) = catch_up(&mut reader_rx).await;
    assert_eq!(outcome, CatchUpOutcome::Complete { events: 500 });
    // Stream order is the order the server took them in: the HTTP and
    // client events interleave as they arrived, each exactly once.
    let (_, body) = server.api(
        "GET",
        &format!("/apps/{APP_ID}/channels/{CHANNEL}/history"),
        &[("since", "1"), ("limit", "1000")],
        "",
    );
    let page: Value = serde_json::from_str(&body).unwrap();
    let mut order = Vec::new();
    for event in page["events"].as_array().unwrap() {
        let data: Value = match &event["data"] {
            Value::String(text) => serde_json::from_str(text).unwrap(),
            other => other.clone(),
        };
        order.push(data["n"].as_i64().unwrap());
    }
    if page["more"] == true {
        panic!("the page bound cut the check short: raise the limit");
    }
    assert_eq!(seen.len(), 500);
    assert_eq!(seen, order);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, (0..500).collect::<Vec<i64>>());
    reader.close();
    writer.close();
}

/// An HTTP publish of `{"n": n, "body": …}` with the body sealed under
/// `room` version `kv`.
fn publish_sealed(server: &Server, kv: u32, n: i64) {
    let mut ring = KeyRing::new();
    ring.insert("room", kv, Key::from_bytes(if kv == 1 { &KEY } else { &KEY_V2 })).unwrap();
    let scope = Scope::chat("chat-1", format!("m{n}")).unwrap();
    let mut data = json!({"n": n, "body": format!("message {n}")});
    seal_event(&mut data, &["/body"], &mut ring, "room", &scope).unwrap();
    assert_eq!(server.publish(CHANNEL, "chat", &data.to_string()).0, 200);
}

/// Messages until the catch-up outcome: their `n`s, and the outcome.
async fn catch_up(rx: &mut UnboundedReceiver<Event>) -> (Vec<i64>, CatchUpOutcome) {
    let mut seen = Vec::new();
    let outcome = until(rx, "the catch-up", |event| match event {
        Event::Message { data, .. } => {
            assert!(data["body"].is_string(), "opened: {data}");
            seen.push(data["n"].as_i64().unwrap());
            None
        }
        Event::Undecryptable { error, .. } => panic!("undecryptable: {error}"),
        Event::CatchUp { outcome, .. } => Some(outcome),
        _ => None,
    })
    .await;
    (seen, outcome)
}

async fn dropped(rx: &mut UnboundedReceiver<Event>) {
    until(rx, "the drop", |e| {
        matches!(e, Event::State(ref s) if !matches!(s, sealcast_core::client::ConnectionState::Connected { .. }))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_during_the_gap_is_asked_for_and_a_gap_longer_than_what_is_kept_is_said() {
    let rule = "[[apps.history]]\nchannels = [\"private-chat-*\"]\nmax_events = 20\n";
    let server = Server::start("", rule);
    let proxy = Proxy::start(server.port).await;
    let keys = Arc::new(OneKey::default());
    let (reader, mut rx) = start_with(proxy.port, keys.clone());
    subscribed(&reader, &mut rx).await;
    publish_sealed(&server, 1, 0);
    assert_eq!(catch_up_or_live(&mut rx).await, 0);

    // The app rotates to v2 while the reader is away.
    proxy.cut();
    dropped(&mut rx).await;
    for n in 1..=10 {
        publish_sealed(&server, 2, n);
    }
    proxy.restore();
    reader.with_machine(|m| m.network_changed(tokio::time::Instant::now().into_std()));
    let (seen, outcome) = catch_up(&mut rx).await;
    assert_eq!((seen, outcome), ((1..=10).collect(), CatchUpOutcome::Complete { events: 10 }));
    assert_eq!(*keys.asked.lock().unwrap(), [Some(1), Some(2)], "each version asked once");

    // Away for 30 events where 20 are kept: the 20 arrive and the gap is said.
    proxy.cut();
    dropped(&mut rx).await;
    for n in 11..=40 {
        publish_sealed(&server, 2, n);
    }
    proxy.restore();
    reader.with_machine(|m| m.network_changed(tokio::time::Instant::now().into_std()));
    let (seen, outcome) = catch_up(&mut rx).await;
    let gap = CatchUpOutcome::Gap { gap: sealcast_core::protocol::history::Gap::PositionExpired, events: 20 };
    assert_eq!((seen, outcome), ((21..=40).collect(), gap));
    reader.close();
}

/// The first message's `n`.
async fn catch_up_or_live(rx: &mut UnboundedReceiver<Event>) -> i64 {
    until(rx, "a message", |event| match event {
        Event::Message { data, .. } => data["n"].as_i64(),
        _ => None,
    })
    .await
}

/// A reader cut off while the server restarts on its data directory and
/// five events are published: what the reader is told.
async fn across_a_restart(store: &str) -> (Vec<i64>, CatchUpOutcome) {
    let root = common::TempDir::new("history-sdk-restart");
    let port = common::free_port();
    let top = format!("[history]\nstore = \"{store}\"\n");
    let rule = "[[apps.history]]\nchannels = [\"private-chat-*\"]\n";
    let mut server = Server::start_in_on(&root.0, port, &top, rule, &[]);
    let proxy = Proxy::start(port).await;
    let (reader, mut rx) = start(proxy.port);
    subscribed(&reader, &mut rx).await;
    publish_sealed(&server, 1, 0);
    assert_eq!(catch_up_or_live(&mut rx).await, 0);
    proxy.cut();
    dropped(&mut rx).await;
    server.child.kill().unwrap();
    let _ = server.child.wait();
    let server = Server::start_in_on(&root.0, port, &top, rule, &[]);
    for n in 1..=5 {
        publish_sealed(&server, 1, n);
    }
    proxy.restore();
    reader.with_machine(|m| m.network_changed(tokio::time::Instant::now().into_std()));
    let result = catch_up(&mut rx).await;
    reader.close();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_a_server_restart_sqlite_recovers_and_memory_says_the_epoch_changed() {
    assert_eq!(across_a_restart("sqlite").await, ((1..=5).collect(), CatchUpOutcome::Complete { events: 5 }));
    let changed = CatchUpOutcome::Gap { gap: sealcast_core::protocol::history::Gap::EpochChanged, events: 5 };
    assert_eq!(across_a_restart("memory").await, ((1..=5).collect(), changed));
}

/// In cluster mode: a reader cut off from node A comes back on node B
/// (the proxy now points there) and catches up from the one stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_comes_back_on_another_node_catches_up_from_the_one_stream() {
    let Some(redis) = common::redis() else { return };
    let dir = common::TempDir::new("history-cluster");
    let rule = "[[apps.history]]\nchannels = [\"private-chat-*\"]\n";
    let (a, b) = (
        common::cluster_node(&redis, &dir, "a", "", rule),
        common::cluster_node(&redis, &dir, "b", "", rule),
    );
    let proxy = Proxy::start(a.port).await;
    let (reader, mut rx) = start(proxy.port);
    subscribed(&reader, &mut rx).await;
    publish_sealed(&a, 1, 0);
    assert_eq!(catch_up_or_live(&mut rx).await, 0);
    proxy.cut();
    dropped(&mut rx).await;
    for n in 1..=20 {
        publish_sealed(if n % 2 == 0 { &a } else { &b }, 1, n);
    }
    proxy.restore_to(b.port);
    reader.with_machine(|m| m.network_changed(tokio::time::Instant::now().into_std()));
    let (seen, outcome) = catch_up(&mut rx).await;
    assert_eq!((seen, outcome), ((1..=20).collect(), CatchUpOutcome::Complete { events: 20 }));
    reader.close();
}
