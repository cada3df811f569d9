use std::time::Duration;

use crate::time::Instant;

use serde_json::{Value, json};

use super::*;

fn established(socket_id: &str, timeout: u64) -> String {
    let data = json!({"socket_id": socket_id, "activity_timeout": timeout}).to_string();
    json!({"event": "pusher:connection_established", "data": data}).to_string()
}

fn actions(s: &mut ClientSession) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn events(s: &mut ClientSession) -> Vec<ClientEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn sent(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(text) => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

fn connected(now: Instant) -> ClientSession {
    let mut s = ClientSession::new(SessionConfig::default());
    s.connect();
    assert_eq!(actions(&mut s), vec![Action::Connect]);
    s.handle_open(now);
    s.handle_frame(&established("1.1", 120), now);
    assert_eq!(s.state(), &ConnectionState::Connected { socket_id: "1.1".into() });
    events(&mut s);
    s
}

#[test]
fn private_channels_are_authorized_and_resubscribed_after_reconnect() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    s.subscribe("public-news").unwrap();
    s.subscribe("private-room").unwrap();
    let out = actions(&mut s);
    assert_eq!(sent(&out)[0]["data"], json!({"channel": "public-news"}));
    assert!(out.contains(&Action::Authorize { socket_id: "1.1".into(), channel: "private-room".into() }));
    s.authorized("private-room", "1.1", Ok(ChannelAuth { auth: "k:sig".into(), channel_data: None }));
    assert_eq!(sent(&actions(&mut s))[0]["data"], json!({"channel": "private-room", "auth": "k:sig"}));
    s.handle_frame(
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-room","data":"{}"}"#,
        t0,
    );
    assert!(s.is_subscribed("private-room"));

    // The server restarts (4200 class: reconnect at once); a new socket id
    // means new authorizations.
    s.handle_closed(Some(4200), "restarting", t0);
    assert!(!s.is_subscribed("private-room"));
    assert_eq!(actions(&mut s), vec![Action::Connect]);
    s.handle_open(t0);
    s.handle_frame(&established("2.2", 120), t0);
    let out = actions(&mut s);
    assert!(out.contains(&Action::Authorize { socket_id: "2.2".into(), channel: "private-room".into() }));
    // A late answer for the old socket is ignored.
    s.authorized("private-room", "1.1", Ok(ChannelAuth { auth: "old".into(), channel_data: None }));
    assert!(actions(&mut s).is_empty());
}

#[test]
fn close_codes_decide_between_failing_backing_off_and_retrying() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    s.handle_closed(Some(4100), "over capacity", t0);
    let ConnectionState::Unavailable { attempt: 1, retry_in } = s.state().clone() else {
        panic!("{:?}", s.state())
    };
    assert!(actions(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(t0 + retry_in));
    s.handle_timeout(t0 + retry_in - Duration::from_millis(1));
    assert!(actions(&mut s).is_empty());
    s.handle_timeout(t0 + retry_in);
    assert_eq!(actions(&mut s), vec![Action::Connect]);
    // The socket fails to open: attempt 2 waits longer (on average).
    s.handle_closed(None, "refused", t0);
    assert!(matches!(s.state(), ConnectionState::Unavailable { attempt: 2, .. }));
    // network_changed: retry now, backoff reset.
    s.network_changed(t0);
    assert_eq!(actions(&mut s), vec![Action::Connect]);
    s.handle_closed(None, "refused", t0);
    assert!(matches!(s.state(), ConnectionState::Unavailable { attempt: 1, .. }));

    let mut s = connected(t0);
    s.handle_closed(Some(4001), "app does not exist", t0);
    assert_eq!(s.state(), &ConnectionState::Failed { code: Some(4001), reason: "app does not exist".into() });
    assert!(actions(&mut s).is_empty());
    s.handle_timeout(t0 + Duration::from_secs(3600));
    assert!(actions(&mut s).is_empty(), "4000-4099 never reconnect");
}

#[test]
fn silence_brings_a_ping_and_a_missing_pong_a_reconnect() {
    let t0 = Instant::now();
    let mut s = ClientSession::new(SessionConfig::default());
    s.connect();
    s.handle_open(t0);
    s.handle_frame(&established("1.1", 30), t0); // the server asks for 30 s
    actions(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    s.handle_timeout(t0 + Duration::from_secs(30));
    assert_eq!(sent(&actions(&mut s))[0]["event"], "pusher:ping");
    // A pong resets; a second silence pings again; no answer closes.
    s.handle_frame(r#"{"event":"pusher:pong","data":{}}"#, t0 + Duration::from_secs(31));
    s.handle_timeout(t0 + Duration::from_secs(61));
    assert_eq!(sent(&actions(&mut s))[0]["event"], "pusher:ping");
    s.handle_timeout(t0 + Duration::from_secs(91));
    assert_eq!(actions(&mut s), vec![Action::Close]);
    assert!(matches!(s.state(), ConnectionState::Unavailable { .. }));
    // The server's pings are answered.
    let mut s = connected(t0);
    s.handle_frame(r#"{"event":"pusher:ping","data":{}}"#, t0);
    assert_eq!(sent(&actions(&mut s))[0]["event"], "pusher:pong");
}

#[test]
fn presence_rosters_and_events_reach_the_app() {
    let t0 = Instant::now();
    let mut s = connected(t0);
    s.subscribe("presence-team").unwrap();
    actions(&mut s);
    let me = r#"{"user_id":"ann","user_info":{"name":"Ann"}}"#;
    s.authorized(
        "presence-team",
        "1.1",
        Ok(ChannelAuth { auth: "k:s".into(), channel_data: Some(me.into()) }),
    );
    let subscribe = sent(&actions(&mut s)).remove(0);
    assert_eq!(subscribe["data"]["channel_data"], me);
    let roster =
        json!({"presence": {"ids": ["ann", "bob"], "hash": {"ann": {"name": "Ann"}, "bob": {}}, "count": 2}});
    let frame = json!({"event": "pusher_internal:subscription_succeeded", "channel": "presence-team", "data": roster.to_string()});
    s.handle_frame(&frame.to_string(), t0);
    assert_eq!(s.members("presence-team").len(), 2);
    assert_eq!(s.my_id("presence-team"), Some("ann"));
    s.handle_frame(
        r#"{"event":"pusher_internal:member_added","channel":"presence-team","data":"{\"user_id\":\"cy\"}"}"#,
        t0,
    );
    s.handle_frame(r#"{"event":"pusher_internal:member_removed","channel":"presence-team","data":"{\"user_id\":\"bob\"}"}"#, t0);
    s.handle_frame(
        r#"{"event":"client-typing","channel":"presence-team","data":{"on":true},"user_id":"cy"}"#,
        t0,
    );
    let got = events(&mut s);
    assert!(matches!(&got[0], ClientEvent::Subscribed { channel, .. } if channel == "presence-team"));
    assert!(matches!(&got[1], ClientEvent::MemberAdded { member, .. } if member.user_id == "cy"));
    assert!(matches!(&got[2], ClientEvent::MemberRemoved { member, .. } if member.user_id == "bob"));
    assert_eq!(
        got[3],
        ClientEvent::Message {
            channel: Some("presence-team".into()),
            event: "client-typing".into(),
            data: json!({"on": true}),
            user_id: Some("cy".into()),
            position: None,
        }
    );
    assert_eq!(
        s.members("presence-team").iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(),
        ["ann", "cy"]
    );
}

#[test]
fn refusals_and_misuse_are_typed() {
    let t0 = Instant::now();
    let mut s = ClientSession::new(SessionConfig::default());
    assert!(matches!(s.subscribe("bad channel!"), Err(ClientError::Invalid(_))));
    assert_eq!(s.trigger("private-x", "client-a", json!({})), Err(ClientError::NotConnected));
    let mut s = connected(t0);
    assert!(matches!(s.trigger("private-x", "oops", json!({})), Err(ClientError::Invalid(_))));
    assert!(matches!(s.trigger("public", "client-a", json!({})), Err(ClientError::Invalid(_))));
    // The server refuses client events on encrypted channels: so does the client.
    assert!(matches!(s.trigger("private-encrypted-x", "client-a", json!({})), Err(ClientError::Invalid(_))));
    assert_eq!(
        s.trigger("private-x", "client-a", json!({})),
        Err(ClientError::NotSubscribed("private-x".into()))
    );
    s.subscribe("private-x").unwrap();
    s.authorized("private-x", "1.1", Err(AuthRefusal::new("backend down")));
    s.subscribe("private-y").unwrap();
    s.handle_frame(r#"{"event":"pusher:subscription_error","channel":"private-y","data":{"type":"AuthError","error":"bad signature","status":401}}"#, t0);
    s.handle_frame("not json", t0);
    s.handle_frame(r#"{"event":"pusher:error","data":{"code":4301,"message":"slow down"}}"#, t0);
    let got = events(&mut s);
    assert!(
        matches!(&got[0], ClientEvent::SubscriptionFailed { message, .. } if message.contains("backend down"))
    );
    assert!(matches!(&got[1], ClientEvent::SubscriptionFailed { status: Some(401), .. }));
    assert!(matches!(&got[2], ClientEvent::Error { code: None, .. }));
    assert!(matches!(&got[3], ClientEvent::Error { code: Some(4301), .. }));
}
