//! Server → client frames, encoded once as text.
//!
//! Pusher quirks kept for compatibility: `connection_established`,
//! `subscription_succeeded` and `member_*` carry their `data` as a JSON
//! *string* holding JSON; `pusher:error` carries an object; events published
//! through the HTTP API carry the app's data string as given; client events
//! carry the sender's `data` verbatim.

use serde::Serialize;
use serde_json::value::RawValue;

use super::history::Position;

/// `pusher:connection_established`.
pub fn connection_established(socket_id: &str, activity_timeout_secs: u64) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        socket_id: &'a str,
        activity_timeout: u64,
    }
    let data = to_json(&Data { socket_id, activity_timeout: activity_timeout_secs });
    event_with_string_data("pusher:connection_established", None, &data)
}

/// `pusher:error` with a code (or none) and a message.
pub fn error(code: Option<u16>, message: &str) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        code: Option<u16>,
        message: &'a str,
    }
    #[derive(Serialize)]
    struct Frame<'a> {
        event: &'static str,
        data: Data<'a>,
    }
    to_json(&Frame { event: "pusher:error", data: Data { code, message } })
}

/// `pusher:pong`, the answer to a client's `pusher:ping`.
pub fn pong() -> String {
    r#"{"event":"pusher:pong","data":{}}"#.to_owned()
}

/// `pusher:ping`, sent when a client has been quiet for the activity timeout.
pub fn ping() -> String {
    r#"{"event":"pusher:ping","data":{}}"#.to_owned()
}

/// `pusher_internal:subscription_succeeded` for a non-presence channel.
pub fn subscription_succeeded(channel: &str) -> String {
    event_with_string_data("pusher_internal:subscription_succeeded", Some(channel), "{}")
}

/// `pusher_internal:subscription_succeeded` for a presence channel:
/// `members` is `(user_id, user_info)` for every member.
pub fn presence_subscription_succeeded<'a>(
    channel: &str,
    members: impl ExactSizeIterator<Item = (&'a str, Option<&'a RawValue>)> + Clone,
) -> String {
    let count = members.len();
    let mut ids = Vec::with_capacity(count);
    let mut hash = serde_json::Map::with_capacity(count);
    for (id, info) in members {
        ids.push(id);
        let info =
            info.map_or(serde_json::Value::Null, |raw| serde_json::from_str(raw.get()).unwrap_or_default());
        hash.insert(id.to_owned(), info);
    }
    let data = serde_json::json!({"presence": {"ids": ids, "hash": hash, "count": count}});
    event_with_string_data("pusher_internal:subscription_succeeded", Some(channel), &data.to_string())
}

/// `pusher:subscription_error`: authorization for `channel` failed.
pub fn subscription_error(channel: &str, error_type: &str, message: &str, status: u16) -> String {
    serde_json::json!({
        "event": "pusher:subscription_error",
        "channel": channel,
        "data": {"type": error_type, "error": message, "status": status},
    })
    .to_string()
}

/// `pusher_internal:member_added`.
pub fn member_added(channel: &str, user_id: &str, user_info: Option<&RawValue>) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_info: Option<&'a RawValue>,
    }
    let data = to_json(&Data { user_id, user_info });
    event_with_string_data("pusher_internal:member_added", Some(channel), &data)
}

/// `pusher_internal:member_removed`.
pub fn member_removed(channel: &str, user_id: &str) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a str,
    }
    event_with_string_data("pusher_internal:member_removed", Some(channel), &to_json(&Data { user_id }))
}

/// `pusher_internal:sealcast_excluded`: on a channel with history, the
/// position of an event this connection was not sent — its own client
/// event (`own`: data `{"own":true}`), or a publish that excluded its
/// socket id — so its client sees no gap in the stream (docs/history.md).
/// pusher-js passes no `pusher_internal:` event on to the app.
pub fn excluded_at(channel: &str, position: &Position, own: bool) -> String {
    with_position(excluded(channel, own), position)
}

/// [`excluded_at`] before its position is known.
pub fn excluded(channel: &str, own: bool) -> String {
    let data = if own { r#"{"own":true}"# } else { "{}" };
    event_with_string_data(EXCLUDED, Some(channel), data)
}

/// The event name of [`excluded_at`].
pub const EXCLUDED: &str = "pusher_internal:sealcast_excluded";

/// `pusher:cache_miss`: a cache channel had no event for its new
/// subscriber.
pub fn cache_miss(channel: &str) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        event: &'static str,
        channel: &'a str,
    }
    to_json(&Frame { event: "pusher:cache_miss", channel })
}

/// `pusher:signin_success`.
pub fn signin_success(user_data: &str) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        user_data: &'a str,
    }
    #[derive(Serialize)]
    struct Frame<'a> {
        event: &'static str,
        data: Data<'a>,
    }
    to_json(&Frame { event: "pusher:signin_success", data: Data { user_data } })
}

/// An app event whose `data` is a string (HTTP API publishes).
pub fn event_with_string_data(event: &str, channel: Option<&str>, data: &str) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        event: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        channel: Option<&'a str>,
        data: &'a str,
    }
    to_json(&Frame { event, channel, data })
}

/// A channel event: a client event relayed to the other subscribers
/// (`data` verbatim, plus the sender's `user_id` on presence channels), or
/// an HTTP API publish (`data` a JSON string literal, as given).
pub fn channel_event(event: &str, channel: &str, data: Option<&RawValue>, user_id: Option<&str>) -> String {
    channel_event_at(event, channel, data, user_id, None)
}

/// A channel event on a channel with history: [`channel_event`] plus its
/// stream position as two additive fields, `offset` and `epoch`
/// (docs/history.md), which Pusher clients ignore.
pub fn channel_event_at(
    event: &str,
    channel: &str,
    data: Option<&RawValue>,
    user_id: Option<&str>,
    position: Option<&Position>,
) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        event: &'a str,
        channel: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a str>,
    }
    let (offset, epoch) = match position {
        Some(position) => (Some(position.offset), Some(position.epoch.as_str())),
        None => (None, None),
    };
    to_json(&Frame { event, channel, data, user_id, offset, epoch })
}

/// `frame` (a JSON object, e.g. `subscription_succeeded`) with a stream
/// position added as `offset` and `epoch` (docs/history.md: a subscriber
/// of a channel with history learns where the stream stands).
pub fn with_position(mut frame: String, position: &Position) -> String {
    if frame.ends_with('}') {
        frame.pop();
        frame.push_str(&format!(",\"offset\":{},\"epoch\":{}}}", position.offset, to_json(&position.epoch)));
    }
    frame
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("frames are plain structs of strings and numbers")
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn connection_established_data_is_a_json_string() {
        let frame: Value = serde_json::from_str(&connection_established("1.2", 120)).unwrap();
        assert_eq!(frame["event"], "pusher:connection_established");
        let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        assert_eq!(data, serde_json::json!({"socket_id": "1.2", "activity_timeout": 120}));
    }

    #[test]
    fn presence_roster() {
        let info = RawValue::from_string(r#"{"name":"A"}"#.into()).unwrap();
        let members = vec![("u1", Some(info.as_ref())), ("u2", None)];
        let frame: Value =
            serde_json::from_str(&presence_subscription_succeeded("presence-r", members.into_iter()))
                .unwrap();
        let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["presence"]["count"], 2);
        assert_eq!(data["presence"]["ids"], serde_json::json!(["u1", "u2"]));
        assert_eq!(data["presence"]["hash"]["u1"]["name"], "A");
    }

    #[test]
    fn positions_are_additive_fields() {
        let position = Position { offset: 7, epoch: "ab".into() };
        let frame: Value =
            serde_json::from_str(&with_position(subscription_succeeded("c"), &position)).unwrap();
        assert_eq!((frame["offset"].clone(), frame["epoch"].clone()), (7.into(), "ab".into()));
        assert_eq!(frame["data"], "{}");
        let frame = channel_event_at("e", "c", None, None, Some(&position));
        assert_eq!(frame, r#"{"event":"e","channel":"c","offset":7,"epoch":"ab"}"#);
    }

    #[test]
    fn client_event_keeps_data_bytes() {
        let data = RawValue::from_string(r#"{"b" : 1}"#.into()).unwrap();
        let frame = channel_event("client-x", "presence-r", Some(&data), Some("u1"));
        assert_eq!(frame, r#"{"event":"client-x","channel":"presence-r","data":{"b" : 1},"user_id":"u1"}"#);
    }
}
