//! The WebSocket side of the Pusher protocol against a real server: the
//! handshake refusals and their codes, pings, malformed input, channels,
//! presence and client events.

mod common;

use std::time::Duration;

use common::{APP_KEY, APP_SECRET, Client, Seen, Server};
use sealcast_core::protocol::auth;
use serde_json::{Value, json};

async fn refused_with(server: &Server, key: &str, query: &str) -> (u16, Option<u16>) {
    let mut client = Client::connect(&server.ws_url(key, query)).await;
    let error = client.expect_event("pusher:error").await;
    let code = error["data"]["code"].as_u64().unwrap() as u16;
    (code, client.expect_close().await)
}

#[tokio::test]
async fn handshake_refusals_carry_pusher_codes() {
    let server = Server::start("", "");
    assert_eq!(refused_with(&server, "no-such-key", "protocol=7").await, (4001, Some(4001)));
    assert_eq!(refused_with(&server, APP_KEY, "client=x").await, (4008, Some(4008)));
    assert_eq!(refused_with(&server, APP_KEY, "protocol=seven").await, (4006, Some(4006)));
    assert_eq!(refused_with(&server, APP_KEY, "protocol=3").await, (4007, Some(4007)));
}

#[tokio::test]
async fn connection_established_and_ping() {
    let server = Server::start("activity_timeout = 42", "");
    let mut client = Client::connect(&server.ws_url(APP_KEY, "protocol=7")).await;
    let established = client.expect_event("pusher:connection_established").await;
    let data: Value = serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    assert!(auth::is_valid_socket_id(data["socket_id"].as_str().unwrap()), "{data}");
    assert_eq!(data["activity_timeout"], 42);
    client.send(json!({"event": "pusher:ping", "data": {}})).await;
    client.expect_event("pusher:pong").await;
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_connection_survives() {
    let server = Server::start("", "");
    let mut client = server.client().await;
    for bad in ["not json", "[]", r#"{"event": 5}"#, r#"{"event":"pusher:subscribe","data":{"nochannel":1}}"#]
    {
        client.send_raw(bad).await;
        let error = client.expect_event("pusher:error").await;
        assert!(error["data"]["message"].as_str().unwrap().contains("malformed"), "{error}");
    }
    client.subscribe("bad channel name!", None, None).await;
    let error = client.expect_event("pusher:subscription_error").await;
    assert_eq!(error["data"]["status"], 400);
    client.send(json!({"event": "pusher:ping"})).await;
    client.expect_event("pusher:pong").await;
}

#[tokio::test]
async fn private_channels_need_a_valid_signature() {
    let server = Server::start("", "");
    let mut client = server.client().await;
    client.subscribe("private-a", None, None).await;
    let error = client.expect_event("pusher:subscription_error").await;
    assert_eq!((error["channel"].as_str(), error["data"]["status"].as_u64()), (Some("private-a"), Some(401)));

    // Signed for another socket, another channel, or with another secret.
    for auth in [
        auth::channel_auth(APP_KEY, APP_SECRET, "1.1", "private-a", None),
        auth::channel_auth(APP_KEY, APP_SECRET, &client.socket_id, "private-b", None),
        auth::channel_auth(APP_KEY, "wrong", &client.socket_id, "private-a", None),
        format!("other-key:{}", auth::channel_signature(APP_SECRET, &client.socket_id, "private-a", None)),
    ] {
        client.subscribe("private-a", Some(&auth), None).await;
        let error = client.expect_event("pusher:subscription_error").await;
        assert_eq!(error["data"]["type"], "AuthError");
    }
    let ok = client.join("private-a", None).await;
    assert_eq!(ok["channel"], "private-a");
}

#[tokio::test]
async fn presence_roster_and_member_events_once_per_user() {
    let server = Server::start("", "");
    let mut alice = server.client().await;
    let roster = alice.join("presence-r", Some(r#"{"user_id":"alice","user_info":{"n":1}}"#)).await;
    let data: Value = serde_json::from_str(roster["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["presence"]["count"], 1);

    let mut bob1 = server.client().await;
    let roster = bob1.join("presence-r", Some(r#"{"user_id":"bob"}"#)).await;
    let data: Value = serde_json::from_str(roster["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["presence"]["ids"].as_array().unwrap().len(), 2);
    assert_eq!(data["presence"]["hash"]["alice"], json!({"n": 1}));
    let added = alice.expect_event("pusher_internal:member_added").await;
    assert_eq!(serde_json::from_str::<Value>(added["data"].as_str().unwrap()).unwrap()["user_id"], "bob");

    let mut bob2 = server.client().await;
    bob2.join("presence-r", Some(r#"{"user_id":"bob"}"#)).await;
    drop(bob1);
    // bob still has a connection: no member_removed yet, and no second member_added.
    assert!(alice.next_within(std::time::Duration::from_millis(300)).await.is_none());
    drop(bob2);
    let removed = alice.expect_event("pusher_internal:member_removed").await;
    assert_eq!(serde_json::from_str::<Value>(removed["data"].as_str().unwrap()).unwrap()["user_id"], "bob");

    // Channel data that is not a member is refused.
    let mut carol = server.client().await;
    let bad = r#"{"name":"no user id"}"#;
    let auth = auth::channel_auth(APP_KEY, APP_SECRET, &carol.socket_id, "presence-r", Some(bad));
    carol.subscribe("presence-r", Some(&auth), Some(bad)).await;
    assert_eq!(carol.expect_event("pusher:subscription_error").await["data"]["status"], 400);
}

#[tokio::test]
async fn client_events_only_where_allowed() {
    let server = Server::start("", "");
    let mut a = server.client().await;
    let mut b = server.client().await;
    for channel in ["private-c", "presence-c", "public-c", "private-encrypted-c"] {
        let data = channel.starts_with("presence-").then_some(r#"{"user_id":"a"}"#);
        a.join(channel, data).await;
        let data = channel.starts_with("presence-").then_some(r#"{"user_id":"b"}"#);
        b.join(channel, data).await;
    }
    while a.next_within(std::time::Duration::from_millis(100)).await.is_some() {}

    a.send(json!({"event": "client-hi", "channel": "private-c", "data": {"x": 1}})).await;
    let got = b.expect_event("client-hi").await;
    assert_eq!(got["data"], json!({"x": 1}));
    assert!(got.get("user_id").is_none());

    a.send(json!({"event": "client-hi", "channel": "presence-c", "data": "text"})).await;
    let got = b.expect_event("client-hi").await;
    assert_eq!((got["data"].as_str(), got["user_id"].as_str()), (Some("text"), Some("a")));

    for channel in ["public-c", "private-encrypted-c", "private-not-joined"] {
        a.send(json!({"event": "client-hi", "channel": channel, "data": {}})).await;
        let error = a.expect_event("pusher:error").await;
        assert_eq!(error["data"]["code"], 4300, "{channel}");
    }
    // Nothing was echoed to the sender, nothing leaked to b.
    assert!(b.next_within(std::time::Duration::from_millis(200)).await.is_none());
    while let Some(Seen::Frame(frame)) = a.next_within(std::time::Duration::from_millis(100)).await {
        assert_ne!(frame["event"], "client-hi");
    }
}

/// Pusher's user channels: after `pusher:signin` a connection may join its
/// own `#server-to-user-{id}` (no signature: the sign-in is the
/// authorization) and the HTTP API's events reach every connection of that
/// user (what the server libraries' `sendToUser` sends); another user's,
/// or one without a sign-in, is refused.
#[tokio::test]
async fn a_signed_in_user_receives_events_sent_to_them_on_every_connection() {
    let server = Server::start("", "");
    let mut tabs = [server.client().await, server.client().await];
    for tab in &mut tabs {
        tab.sign_in("ann").await;
        tab.send(json!({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-ann"}})).await;
        tab.expect_event("pusher_internal:subscription_succeeded").await;
    }
    let mut bob = server.client().await;
    bob.sign_in("bob").await;
    bob.send(json!({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-ann"}})).await;
    let refused = bob.expect_event("pusher:subscription_error").await;
    assert_eq!(refused["data"]["status"], 401);
    let mut anonymous = server.client().await;
    anonymous.send(json!({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-ann"}})).await;
    anonymous.expect_event("pusher:subscription_error").await;

    let (status, body) = server.publish("#server-to-user-ann", "hello", r#"{"n":1}"#);
    assert_eq!(status, 200, "{body}");
    for tab in &mut tabs {
        let got = tab.expect_event("hello").await;
        assert_eq!(
            (got["channel"].as_str(), got["data"].as_str()),
            (Some("#server-to-user-ann"), Some(r#"{"n":1}"#))
        );
    }
    // Nobody else hears it; client events there are refused.
    assert!(bob.next_within(Duration::from_millis(200)).await.is_none());
    tabs[0].send(json!({"event": "client-x", "channel": "#server-to-user-ann", "data": {}})).await;
    tabs[0].expect_event("pusher:error").await;
}

/// Pusher's "authorized connections": with `require_signin_secs`, a
/// connection that has not signed in by then is closed with 4009; one that
/// did stays.
#[tokio::test]
async fn with_required_sign_in_an_anonymous_connection_is_closed_with_4009() {
    let server = Server::start("", "require_signin_secs = 2");
    let mut signed = server.client().await;
    signed.sign_in("ann").await;
    let mut anonymous = server.client().await;
    assert_eq!(anonymous.expect_close().await, Some(4009));
    // The signed-in connection is still served.
    signed.send(json!({"event": "pusher:ping", "data": {}})).await;
    signed.expect_event("pusher:pong").await;
}
