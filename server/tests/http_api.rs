//! The HTTP API's signing, limits and answers against a real server.

mod common;

use common::{APP_ID, APP_SECRET, Server, http, now};
use serde_json::{Value, json};

#[tokio::test]
async fn signing_is_enforced() {
    let server = Server::start("", "");
    let path = format!("/apps/{APP_ID}/channels");
    assert_eq!(server.api("GET", &path, &[], "").0, 200);
    assert_eq!(server.api_signed("GET", &path, &[], "", "wrong-secret", now()).0, 401);
    assert_eq!(server.api_signed("GET", &path, &[], "", APP_SECRET, now() - 3600).0, 401, "stale timestamp");
    assert_eq!(http(server.port, "GET", &path, "").0, 401, "unsigned");
    assert_eq!(server.api("GET", "/apps/nope/channels", &[], "").0, 404);
    // A body that does not match body_md5.
    let body = json!({"name": "e", "channel": "c", "data": "x"}).to_string();
    let query = common::signed_query(
        "POST",
        &format!("/apps/{APP_ID}/events"),
        &[],
        body.as_bytes(),
        APP_SECRET,
        now(),
    );
    let (status, _) =
        http(server.port, "POST", &format!("/apps/{APP_ID}/events?{query}"), &body.replace('x', "y"));
    assert_eq!(status, 401);
}

#[tokio::test]
async fn event_limits_and_errors() {
    let server = Server::start("", "max_event_payload_bytes = 100\nmax_batch_size = 2");
    let events = format!("/apps/{APP_ID}/events");
    assert_eq!(server.publish("c", "e", &"x".repeat(90)).0, 200);
    assert_eq!(server.publish("c", "e", &"x".repeat(200)).0, 413);
    assert_eq!(server.publish("bad channel!", "e", "x").0, 400);
    assert_eq!(server.api("POST", &events, &[], "{not json").0, 400);
    assert_eq!(server.api("POST", &events, &[], r#"{"name":"e","data":"x"}"#).0, 400, "no channel");
    let batch = |n: usize| json!({"batch": (0..n).map(|i| json!({"channel": "c", "name": format!("e{i}"), "data": "x"})).collect::<Vec<_>>()});
    assert_eq!(
        server.api("POST", &format!("/apps/{APP_ID}/batch_events"), &[], &batch(2).to_string()).0,
        200
    );
    assert_eq!(
        server.api("POST", &format!("/apps/{APP_ID}/batch_events"), &[], &batch(3).to_string()).0,
        400
    );
}

#[tokio::test]
async fn published_data_reaches_subscribers_verbatim() {
    let server = Server::start("", "");
    let mut client = server.client().await;
    client.join("news", None).await;
    let data = r#"{"text":"héllo \"quoted\" 👋"}"#;
    assert_eq!(server.publish("news", "update", data).0, 200);
    let got = client.expect_event("update").await;
    assert_eq!(got["channel"], "news");
    assert_eq!(got["data"], data);
}

#[tokio::test]
async fn terminate_connections_closes_the_users_sockets() {
    let server = Server::start("", "");
    let mut doomed = server.client().await;
    doomed.join("presence-t", Some(r#"{"user_id":"mallory"}"#)).await;
    let mut other = server.client().await;
    other.join("presence-t", Some(r#"{"user_id":"alice"}"#)).await;
    let (status, body) =
        server.api("POST", &format!("/apps/{APP_ID}/users/mallory/terminate_connections"), &[], "{}");
    assert_eq!((status, body.trim()), (200, r#"{"connections_closed":1}"#));
    assert_eq!(doomed.expect_close().await, Some(4009));
    let removed = other.expect_event("pusher_internal:member_removed").await;
    assert_eq!(
        serde_json::from_str::<Value>(removed["data"].as_str().unwrap()).unwrap()["user_id"],
        "mallory"
    );
}

/// Issue 10, item 8: user ids that need percent-encoding used to answer
/// 200 `{}` and close nothing (the path segment was compared undecoded).
#[tokio::test]
async fn terminate_connections_decodes_the_user_id() {
    let server = Server::start("", "");
    for (user, encoded) in [("alice smith", "alice%20smith"), ("josé", "jos%C3%A9"), ("a/b", "a%2Fb")] {
        let mut doomed = server.client().await;
        let data = json!({"user_id": user}).to_string();
        doomed.join("presence-decode", Some(&data)).await;
        let path = format!("/apps/{APP_ID}/users/{encoded}/terminate_connections");
        let (status, body) = server.api("POST", &path, &[], "{}");
        assert_eq!((status, body.trim()), (200, r#"{"connections_closed":1}"#), "{user}");
        assert_eq!(doomed.expect_close().await, Some(4009), "{user}");
    }
    let bad = format!("/apps/{APP_ID}/users/%ZZ/terminate_connections");
    assert_eq!(server.api("POST", &bad, &[], "{}").0, 400, "a bad escape");
}

/// Issue 10, item 9: parameter names are signed lower-cased, so they are
/// looked up that way (`FILTER_BY_PREFIX` used to verify and be ignored),
/// and a name given twice is refused.
#[tokio::test]
async fn query_parameters_are_read_as_signed() {
    let server = Server::start("", "");
    let mut client = server.client().await;
    client.join("news-1", None).await;
    client.join("other", None).await;
    let path = format!("/apps/{APP_ID}/channels");
    let (status, body) = server.api("GET", &path, &[("FILTER_BY_PREFIX", "news-")], "");
    assert_eq!(status, 200);
    let channels = serde_json::from_str::<Value>(&body).unwrap()["channels"].clone();
    assert_eq!(
        channels.as_object().map(|c| c.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["news-1".to_owned()])
    );
    let twice = [("filter_by_prefix", "news-"), ("FILTER_BY_PREFIX", "")];
    assert_eq!(server.api("GET", &path, &twice, "").0, 400);
}

#[tokio::test]
async fn apps_are_isolated() {
    let server =
        Server::start("", "[[apps]]\nid = \"other-app\"\nkey = \"other-key\"\nsecret = \"other-secret\"\n");
    let mut mine = server.client().await;
    mine.join("news", None).await;
    let mut theirs = common::Client::connect(&server.ws_url("other-key", "protocol=7")).await;
    theirs.expect_event("pusher:connection_established").await;
    theirs.send(json!({"event": "pusher:subscribe", "data": {"channel": "news"}})).await;
    theirs.expect_event("pusher_internal:subscription_succeeded").await;

    assert_eq!(server.publish("news", "only-mine", "x").0, 200);
    mine.expect_event("only-mine").await;
    assert!(theirs.next_within(std::time::Duration::from_millis(300)).await.is_none(), "event crossed apps");

    // The other app's API does not accept this app's credentials.
    let path = "/apps/other-app/channels";
    let query = common::signed_query("GET", path, &[], b"", APP_SECRET, now());
    assert_eq!(http(server.port, "GET", &format!("{path}?{query}"), "").0, 401);
    // And this app's channel list does not show the other app's subscribers.
    let (_, body) =
        server.api("GET", &format!("/apps/{APP_ID}/channels/news"), &[("info", "subscription_count")], "");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["subscription_count"], 1);
}
