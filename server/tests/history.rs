//! Channel history against the real binary: positions on delivered
//! events, reads over the WebSocket and the HTTP API, named gaps, restarts
//! with each store, and the read budgets (docs/history.md).

mod common;

use common::*;
use serde_json::{Value, json};

const RULE: &str =
    "[[apps.history]]\nchannels = [\"private-chat-*\", \"presence-room-*\"]\nmax_events = 50\n";

async fn read(client: &mut Client, channel: &str, data: Value) -> Value {
    client.send(json!({"event": "sealcast:history", "channel": channel, "data": data})).await;
    client.expect_event_any(&["sealcast_internal:history", "sealcast_internal:history-error"]).await
}

fn offsets(page: &Value) -> Vec<u64> {
    page["events"].as_array().unwrap().iter().map(|e| e["offset"].as_u64().unwrap()).collect()
}

fn history_url(channel: &str) -> String {
    format!("/apps/{APP_ID}/channels/{channel}/history")
}

#[tokio::test]
async fn kept_events_carry_positions_and_read_back_over_both_apis() {
    let server = Server::start("", &format!("history_reads_per_second = 100\n{RULE}"));
    let mut reader = server.client().await;
    let mut writer = server.client().await;
    reader.join("private-chat-1", None).await;
    writer.join("private-chat-1", None).await;
    reader.join("private-other", None).await;
    for n in 0..3 {
        assert_eq!(server.publish("private-chat-1", "msg", &format!("{{\"n\":{n}}}")).0, 200);
    }
    for n in 3..5 {
        writer.send(json!({"event": "client-msg", "channel": "private-chat-1", "data": {"n": n}})).await;
    }
    let mut epoch = None;
    for expected in 1..=5u64 {
        let frame = reader.expect_event_any(&["msg", "client-msg"]).await;
        assert_eq!(frame["offset"], expected, "{frame}");
        let this = frame["epoch"].as_str().unwrap().to_owned();
        assert_eq!(epoch.get_or_insert(this.clone()), &this, "one epoch per stream");
    }
    let epoch = epoch.unwrap();
    // A channel no rule names: no position, and no history.
    assert_eq!(server.publish("private-other", "msg", "{}").0, 200);
    let frame = reader.expect_event("msg").await;
    assert!(frame.get("offset").is_none() && frame.get("epoch").is_none(), "{frame}");

    let page =
        read(&mut reader, "private-chat-1", json!({"request_id": "r1", "since": 2, "epoch": epoch})).await;
    assert_eq!(page["event"], "sealcast_internal:history", "{page}");
    let data = &page["data"];
    assert_eq!(
        (offsets(data), data["request_id"].clone(), data["head"].clone()),
        (vec![3, 4, 5], json!("r1"), json!(5))
    );
    assert_eq!(data["events"][0]["data"], "{\"n\":2}", "HTTP data is kept as the string it was");
    assert_eq!(data["events"][1]["data"], json!({"n": 3}), "client event data is kept as sent");
    assert!(data.get("gap").is_none() && data["more"] == false);

    // Scrolling back through the HTTP API, signed like every other call.
    let (status, body) = server.api("GET", &history_url("private-chat-1"), &[("limit", "2")], "");
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (offsets(&body), body["more"].clone(), body["epoch"].clone()),
        (vec![4, 5], json!(true), json!(epoch))
    );
    let (_, body) = server.api("GET", &history_url("private-chat-1"), &[("before", "4")], "");
    assert_eq!(offsets(&serde_json::from_str(&body).unwrap()), vec![1, 2, 3]);

    // Refusals are typed and keep the connection.
    let error = read(&mut reader, "private-other", json!({"request_id": "r2"})).await;
    assert_eq!(
        (error["data"]["code"].clone(), error["data"]["request_id"].clone()),
        (json!("history_off"), json!("r2"))
    );
    let error = read(&mut reader, "private-chat-2", json!({})).await;
    assert_eq!(error["data"]["code"], "not_subscribed");
    let error = read(&mut reader, "private-chat-1", json!({"since": 1, "before": 3})).await;
    assert_eq!(error["data"]["code"], "invalid");
    let error = read(&mut reader, "private-chat-1", json!({"since": 9, "epoch": epoch})).await;
    assert_eq!(error["data"]["code"], "invalid", "past the head");
    assert_eq!(server.api("GET", &history_url("private-other"), &[], "").0, 404);
    assert_eq!(server.api("GET", &history_url("private-chat-1"), &[("limit", "x")], "").0, 400);
    assert_eq!(server.api("GET", &history_url("private-chat-1"), &[("limit", "1001")], "").0, 400);
    let page = read(&mut reader, "private-chat-1", json!({"since": 4, "epoch": epoch})).await;
    assert_eq!(offsets(&page["data"]), vec![5], "still connected and served");
}

#[tokio::test]
async fn a_position_older_than_what_is_kept_or_from_another_epoch_is_a_named_gap() {
    let rule = "[[apps.history]]\nchannels = [\"private-chat-*\"]\nmax_events = 5\n";
    let server = Server::start("", rule);
    let mut client = server.client().await;
    client.join("private-chat-1", None).await;
    for n in 0..12 {
        assert_eq!(server.publish("private-chat-1", "msg", &n.to_string()).0, 200);
    }
    let mut epoch = String::new();
    for _ in 0..12 {
        epoch = client.expect_event("msg").await["epoch"].as_str().unwrap().to_owned();
    }
    let page = read(&mut client, "private-chat-1", json!({"since": 3, "epoch": epoch})).await;
    assert_eq!(
        (offsets(&page["data"]), page["data"]["gap"].clone()),
        ((8..=12).collect(), json!("position_expired"))
    );
    let page = read(&mut client, "private-chat-1", json!({"since": 9, "epoch": "0000000000000000"})).await;
    assert_eq!(
        (offsets(&page["data"]), page["data"]["gap"].clone()),
        ((8..=12).collect(), json!("epoch_changed"))
    );
}

/// Publishes three events, reads the epoch, restarts the server on the
/// same data directory and reads since 1 in that epoch.
async fn read_across_a_restart(store: &str) -> Value {
    let root = TempDir::new("history-restart");
    let top = format!("[history]\nstore = \"{store}\"\n");
    let mut server = Server::start_in(&root.0, &top, RULE, &[]);
    let mut client = server.client().await;
    client.join("private-chat-1", None).await;
    for n in 0..3 {
        assert_eq!(server.publish("private-chat-1", "msg", &n.to_string()).0, 200);
    }
    let epoch = client.expect_event("msg").await["epoch"].clone();
    server.child.kill().unwrap();
    let _ = server.child.wait();
    let server = Server::start_in(&root.0, &top, RULE, &[]);
    let params = [("since", "1"), ("epoch", epoch.as_str().unwrap())];
    let (status, body) = server.api("GET", &history_url("private-chat-1"), &params, "");
    assert_eq!(status, 200, "{body}");
    let mut page: Value = serde_json::from_str(&body).unwrap();
    page["asked_epoch"] = epoch;
    page
}

#[tokio::test]
async fn sqlite_history_survives_kill_9_in_the_same_epoch_and_memory_says_epoch_changed() {
    let page = read_across_a_restart("sqlite").await;
    assert_eq!((offsets(&page), page.get("gap").cloned()), (vec![2, 3], None), "{page}");
    assert_eq!(page["epoch"], page["asked_epoch"]);
    let page = read_across_a_restart("memory").await;
    assert_eq!((offsets(&page), page["gap"].clone()), (vec![], json!("epoch_changed")), "{page}");
}

#[tokio::test]
async fn history_reads_over_the_connection_or_app_rate_are_refused_with_a_code() {
    let app = format!("history_reads_per_second = 2\napp_history_reads_per_second = 5\n{RULE}");
    let server = Server::start("", &app);
    let mut abuser = server.client().await;
    abuser.join("private-chat-1", None).await;
    for n in 0..10 {
        abuser.send(json!({"event": "sealcast:history", "channel": "private-chat-1", "data": {"request_id": n.to_string()}})).await;
    }
    let mut codes = Vec::new();
    for _ in 0..10 {
        let answer =
            abuser.expect_event_any(&["sealcast_internal:history", "sealcast_internal:history-error"]).await;
        codes.push(answer["data"]["code"].as_str().unwrap_or("page").to_owned());
    }
    let served = codes.iter().filter(|c| *c == "page").count();
    // The bucket holds 2 and refills 2 a second: most of a burst of 10 is
    // refused however slowly the machine runs it.
    assert!((2..10).contains(&served), "{codes:?}");
    assert!(codes.iter().all(|c| c == "page" || c == "rate_limited"), "{codes:?}");
    // The app's bucket (5) is shared with the HTTP API: it runs dry too.
    let statuses: Vec<u16> =
        (0..10).map(|_| server.api("GET", &history_url("private-chat-1"), &[], "").0).collect();
    assert!(statuses.contains(&429) && statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    // Refused, not disconnected: a well-behaved subscriber is still served.
    let mut other = server.client().await;
    other.join("private-chat-1", None).await;
    assert_eq!(server.publish("private-chat-1", "msg", "1").0, 200);
    assert_eq!(other.expect_event("msg").await["offset"], 1);
}

#[tokio::test]
async fn kept_history_holds_envelopes_never_plaintext() {
    use sealcast_core::client::sealed::seal_event;
    use sealcast_core::crypto::{Key, KeyRing, Scope};
    let canary = "CANARY-history-7c41e2";
    let root = TempDir::new("history-canary");
    let server = Server::start_in(&root.0, "[history]\nstore = \"sqlite\"\n", RULE, &[("RUST_LOG", "debug")]);
    let mut ring = KeyRing::new();
    ring.insert("room", 1, Key::from_bytes(&[3; 32])).unwrap();
    let mut data = json!({"body": canary});
    seal_event(&mut data, &["/body"], &mut ring, "room", &Scope::chat("c", "m1").unwrap()).unwrap();
    let mut client = server.client().await;
    client.join("private-chat-1", None).await;
    assert_eq!(server.publish("private-chat-1", "kept-event-name", &data.to_string()).0, 200);
    let mut sealed = json!({"body": canary});
    seal_event(&mut sealed, &["/body"], &mut ring, "room", &Scope::chat("c", "m2").unwrap()).unwrap();
    client.send(json!({"event": "client-kept", "channel": "private-chat-1", "data": sealed})).await;
    let page = read(&mut client, "private-chat-1", json!({})).await;
    assert_eq!(offsets(&page["data"]), vec![1, 2]);
    assert!(!page.to_string().contains(canary), "plaintext in a history page");
    // The log is read by another thread: wait (bounded) until it has the
    // verbose lines of this test's requests.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.stderr().contains("DEBUG") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let logs = server.stderr();
    assert!(logs.contains("DEBUG"), "verbose logging was on");
    assert!(!logs.contains(canary), "plaintext in the server logs");
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(root.0.join("data")).unwrap() {
        stored.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let has = |needle: &str| stored.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("kept-event-name"), "the history store's files were read");
    assert!(!has(canary), "plaintext in the history store's files");
}

#[tokio::test]
async fn a_cache_channel_sends_its_last_event_or_cache_miss_right_after_subscribing() {
    let server = Server::start("", "");
    let mut first = server.client().await;
    first.send(json!({"event": "pusher:subscribe", "data": {"channel": "cache-score"}})).await;
    let succeeded = first.expect_event("pusher_internal:subscription_succeeded").await;
    assert_eq!(
        (succeeded["offset"].clone(), succeeded["epoch"].clone()),
        (json!(0), json!("")),
        "an empty stream"
    );
    let miss = first.next().await;
    assert!(
        matches!(&miss, Seen::Frame(f) if f["event"] == "pusher:cache_miss" && f["channel"] == "cache-score"),
        "{miss:?}"
    );
    for n in 1..=3 {
        assert_eq!(server.publish("cache-score", "score", &n.to_string()).0, 200);
    }
    let mut late = server.client().await;
    late.send(json!({"event": "pusher:subscribe", "data": {"channel": "cache-score"}})).await;
    let succeeded = late.expect_event("pusher_internal:subscription_succeeded").await;
    // The subscriber stands just before the event it is sent.
    assert_eq!(succeeded["offset"], 2);
    let Seen::Frame(cached) = late.next().await else { panic!("closed") };
    assert_eq!(
        (cached["event"].clone(), cached["data"].clone(), cached["offset"].clone()),
        (json!("score"), json!("3"), json!(3))
    );
    assert_eq!(cached["epoch"], succeeded["epoch"]);
    // A private cache channel keeps client events too.
    let mut a = server.client().await;
    a.join("private-cache-room", None).await;
    assert!(matches!(a.next().await, Seen::Frame(f) if f["event"] == "pusher:cache_miss"));
    a.send(json!({"event": "client-move", "channel": "private-cache-room", "data": {"x": 1}})).await;
    let mut b = server.client().await;
    b.join("private-cache-room", None).await;
    let moved = b.expect_event("client-move").await;
    assert_eq!(moved["data"], json!({"x": 1}));
}

#[tokio::test]
async fn a_connection_is_told_the_positions_it_is_not_sent() {
    let server = Server::start("", RULE);
    let mut sender = server.client().await;
    let mut other = server.client().await;
    sender.join("private-chat-1", None).await;
    other.join("private-chat-1", None).await;
    sender.send(json!({"event": "client-msg", "channel": "private-chat-1", "data": {"n": 1}})).await;
    let notice = sender.expect_event("pusher_internal:sealcast_excluded").await;
    let relayed = other.expect_event("client-msg").await;
    assert_eq!(
        (notice["offset"].clone(), notice["epoch"].clone()),
        (relayed["offset"].clone(), relayed["epoch"].clone())
    );
    assert_eq!(notice["data"], r#"{"own":true}"#, "its own client event");
    // An HTTP publish excluding a socket (Laravel Echo's `toOthers()`).
    let body =
        json!({"name": "msg", "channel": "private-chat-1", "data": "{}", "socket_id": other.socket_id})
            .to_string();
    assert_eq!(server.api("POST", &format!("/apps/{APP_ID}/events"), &[], &body).0, 200);
    let excluded = other.expect_event("pusher_internal:sealcast_excluded").await;
    assert_eq!((excluded["offset"].clone(), excluded["data"].clone()), (json!(2), json!("{}")));
    assert_eq!(sender.expect_event("msg").await["offset"], 2);
    // Channels without history get no notice.
    sender.join("private-other", None).await;
    other.join("private-other", None).await;
    sender.send(json!({"event": "client-msg", "channel": "private-other", "data": {}})).await;
    other.expect_event("client-msg").await;
    assert!(
        sender.next_within(std::time::Duration::from_millis(300)).await.is_none(),
        "nothing for the sender"
    );
}
