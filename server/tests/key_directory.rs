//! The key directory against the real binary (docs/protocol.md, "Key
//! directory"): packages stored under the signed-in user, handed out once,
//! oldest first, then the last-resort one; every budget refusing with its
//! code and storing nothing; the request rate; two cluster nodes sharing
//! one directory through Redis; nothing of a package in the log.

mod common;

use common::{Client, Seen, Server, TempDir, cluster_node, redis};
use serde_json::{Value, json};

const BUDGETS: &str = "[apps.key_directory]\nmax_packages_per_device = 4\nmax_devices_per_user = 2\n\
                       max_package_bytes = 2048\nmax_bytes = 12000\nrequests_per_second = 1000\n";

async fn request(client: &mut Client, event: &str, data: Value) -> Value {
    client.send(json!({"event": event, "data": data})).await;
    client
        .expect_event_any(&[
            "sealcast_internal:kp-stored",
            "sealcast_internal:kp-package",
            "sealcast_internal:kp-error",
        ])
        .await
}

async fn publish(client: &mut Client, device: &str, packages: &[&str], last: Option<&str>) -> Value {
    let mut data = json!({"device": device, "packages": packages});
    if let Some(last) = last {
        data["last_resort"] = json!(last);
    }
    request(client, "sealcast:kp-publish", data).await
}

async fn fetch(client: &mut Client, user: &str, device: &str) -> Value {
    request(client, "sealcast:kp-fetch", json!({"user": user, "device": device})).await
}

fn error_code(answer: &Value) -> &str {
    assert_eq!(answer["event"], "sealcast_internal:kp-error", "{answer}");
    answer["data"]["code"].as_str().unwrap()
}

#[tokio::test]
async fn packages_are_handed_out_once_and_every_budget_refuses_with_its_code() {
    let server = Server::start("", BUDGETS);
    let mut alice = server.client().await;
    let mut bob = server.client().await;

    // Before signing in: refused, typed.
    assert_eq!(error_code(&publish(&mut alice, "phone", &["p"], None).await), "not_signed_in");
    assert_eq!(error_code(&fetch(&mut bob, "alice", "phone").await), "not_signed_in");
    alice.sign_in("alice").await;
    bob.sign_in("bob").await;

    let stored =
        publish(&mut alice, "phone", &["CANARY-kp-1", "CANARY-kp-2", "CANARY-kp-3"], Some("CANARY-kp-last"))
            .await;
    assert_eq!(stored["data"], json!({"device": "phone", "count": 3, "last_resort": true}));
    for expected in ["CANARY-kp-1", "CANARY-kp-2", "CANARY-kp-3", "CANARY-kp-last", "CANARY-kp-last"] {
        let answer = fetch(&mut bob, "alice", "phone").await;
        assert_eq!(answer["data"]["package"], expected, "{answer}");
        assert_eq!(answer["data"]["last_resort"], expected.ends_with("last"));
    }
    let none = fetch(&mut bob, "alice", "laptop").await;
    assert_eq!(none["data"]["package"], Value::Null);

    // Over the packages kept per device: refused whole, nothing stored.
    publish(&mut alice, "phone", &["a", "b", "c"], None).await;
    assert_eq!(error_code(&publish(&mut alice, "phone", &["d", "e"], None).await), "too_many");
    assert_eq!(publish(&mut alice, "phone", &[], None).await["data"]["count"], 3);
    // Over the devices kept per user.
    publish(&mut alice, "laptop", &["l"], None).await;
    assert_eq!(error_code(&publish(&mut alice, "tablet", &["t"], None).await), "too_many");
    // A package over max_package_bytes, malformed data.
    let big = "x".repeat(2049);
    assert_eq!(error_code(&publish(&mut alice, "phone", &[&big], None).await), "too_large");
    assert_eq!(
        error_code(&request(&mut alice, "sealcast:kp-publish", json!({"packages": ["a"]})).await),
        "invalid"
    );
    assert_eq!(error_code(&request(&mut bob, "sealcast:kp-fetch", json!({"device": "d"})).await), "invalid");
    // The app's bytes: 2,000-byte packages fill 12,000 bytes after five.
    let full = "f".repeat(2000);
    let mut codes = Vec::new();
    for user in ["u1", "u2", "u3", "u4", "u5", "u6"] {
        let mut client = server.client().await;
        client.sign_in(user).await;
        let answer = publish(&mut client, "d", &[&full, &full], None).await;
        codes.push(answer["data"]["code"].as_str().unwrap_or("stored").to_owned());
    }
    assert_eq!(codes.iter().filter(|c| *c == "quota").count(), 4, "{codes:?}");
    // Clearing gives the room back.
    let cleared = request(&mut alice, "sealcast:kp-clear", json!({"device": "phone"})).await;
    assert_eq!(cleared["data"]["count"], 0);
    assert_eq!(fetch(&mut bob, "alice", "phone").await["data"]["package"], Value::Null);

    // Nothing of a package reached the log.
    assert!(!server.stderr().contains("CANARY-kp"), "a package was logged");
}

#[tokio::test]
async fn a_client_over_the_request_rate_is_refused_then_closed() {
    let server = Server::start("", "[apps.key_directory]\nrequests_per_second = 2\n");
    let mut client = server.client().await;
    client.sign_in("mallory").await;
    for _ in 0..60 {
        if !client
            .try_send_raw(r#"{"event":"sealcast:kp-fetch","data":{"user":"alice","device":"phone"}}"#)
            .await
        {
            break;
        }
    }
    let (mut answered, mut limited, mut closed) = (0, 0, false);
    while let Some(seen) = client.next_within(std::time::Duration::from_secs(5)).await {
        match seen {
            Seen::Frame(frame) if frame["event"] == "sealcast_internal:kp-package" => answered += 1,
            Seen::Frame(frame) if frame["data"]["code"] == "rate_limited" => limited += 1,
            Seen::Frame(_) => {}
            Seen::Closed(code) => {
                assert_eq!(code, Some(4301));
                closed = true;
                break;
            }
        }
    }
    assert!(answered < 60 && limited > 0, "answered {answered}, rate limited {limited}");
    assert!(closed, "a client that keeps going after rate_limited is closed");
}

#[tokio::test]
async fn two_cluster_nodes_share_one_directory() {
    let Some(redis) = redis() else { return };
    let dir = TempDir::new("kd-cluster");
    let a = cluster_node(&redis, &dir, "a", "", BUDGETS);
    let b = cluster_node(&redis, &dir, "b", "", BUDGETS);
    let mut alice = a.client().await;
    let mut bob = b.client().await;
    alice.sign_in("alice").await;
    bob.sign_in("bob").await;
    publish(&mut alice, "phone", &["k1", "k2"], Some("k-last")).await;
    // Handed out once across the nodes, then the last resort from both.
    let mut alice_too = b.client().await;
    alice_too.sign_in("carol").await;
    assert_eq!(fetch(&mut bob, "alice", "phone").await["data"]["package"], "k1");
    assert_eq!(fetch(&mut alice_too, "alice", "phone").await["data"]["package"], "k2");
    assert_eq!(fetch(&mut bob, "alice", "phone").await["data"]["package"], "k-last");
    // The budgets hold in the script: a publish over the device's count
    // on the other node is refused whole.
    publish(&mut alice, "phone", &["x", "y", "z"], None).await;
    let mut alice_b = b.client().await;
    alice_b.sign_in("alice").await;
    assert_eq!(error_code(&publish(&mut alice_b, "phone", &["w", "v"], None).await), "too_many");
    assert_eq!(publish(&mut alice_b, "phone", &["w"], None).await["data"]["count"], 4);
    let cleared = request(&mut alice_b, "sealcast:kp-clear", json!({"device": "phone"})).await;
    assert_eq!(cleared["data"]["count"], 0);
    assert_eq!(fetch(&mut bob, "alice", "phone").await["data"]["package"], Value::Null);
}

/// Another app on the same server keeps its own directory and budget: one
/// app's directory full to its quota (and a client of it closed for its
/// rate) leaves the other's working.
#[tokio::test]
async fn one_apps_full_directory_leaves_another_apps_working() {
    let other = "[[apps]]\nid = \"other\"\nkey = \"other-key\"\nsecret = \"other-secret\"\n";
    let budgets =
        "[apps.key_directory]\nmax_package_bytes = 2048\nmax_bytes = 3000\nrequests_per_second = 2\n";
    let server = Server::start("", &format!("{budgets}{other}"));
    let mut full = server.client().await;
    full.sign_in("alice").await;
    let package = "p".repeat(2000);
    publish(&mut full, "phone", &[&package], None).await;
    assert_eq!(error_code(&publish(&mut full, "laptop", &[&package], None).await), "quota");
    for _ in 0..60 {
        if !full.try_send_raw(r#"{"event":"sealcast:kp-fetch","data":{"user":"a","device":"b"}}"#).await {
            break;
        }
    }

    let mut theirs = Client::connect(&server.ws_url("other-key", "protocol=7")).await;
    let established = theirs.expect_event("pusher:connection_established").await;
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    let socket_id = data["socket_id"].as_str().unwrap().to_owned();
    let user_data = json!({"id": "alice"}).to_string();
    let signature = sealcast_core::protocol::auth::user_signature("other-secret", &socket_id, &user_data);
    let auth = format!("other-key:{signature}");
    theirs.send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})).await;
    theirs.expect_event("pusher:signin_success").await;
    // The same user and device ids, another app: stored, and only its own.
    let own = "q".repeat(2000);
    let stored = publish(&mut theirs, "phone", &[&own, &own], None).await;
    assert_eq!(stored["data"]["count"], 2, "{stored}");
    let taken = fetch(&mut theirs, "alice", "phone").await;
    assert_eq!(taken["data"]["package"], own.as_str());
    assert_eq!(fetch(&mut theirs, "alice", "phone").await["data"]["last_resort"], false);
    assert_eq!(fetch(&mut theirs, "alice", "phone").await["data"]["package"], Value::Null);
}
