//! Server → client Pusher events as a client reads them; the server's
//! encoders of the same events are [`super::server`] (round-trip tested
//! here). Document replies are [`super::doc::DocReply`].

use serde_json::Value;

use super::WireError;
use super::history::Position;

/// `pusher:connection_established`.
pub const ESTABLISHED: &str = "pusher:connection_established";
/// `pusher:error`.
pub const ERROR: &str = "pusher:error";
/// `pusher_internal:subscription_succeeded`.
pub const SUBSCRIPTION_SUCCEEDED: &str = "pusher_internal:subscription_succeeded";
/// `pusher:subscription_error`.
pub const SUBSCRIPTION_ERROR: &str = "pusher:subscription_error";
/// `pusher_internal:member_added`.
pub const MEMBER_ADDED: &str = "pusher_internal:member_added";
/// `pusher_internal:member_removed`.
pub const MEMBER_REMOVED: &str = "pusher_internal:member_removed";
/// `pusher:signin_success`.
pub const SIGNIN_SUCCESS: &str = "pusher:signin_success";

/// A server → client event.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The connection is up.
    Established {
        /// This connection's socket id (signed into channel authorizations).
        socket_id: String,
        /// Seconds of silence after which the server pings.
        activity_timeout: Option<u64>,
    },
    /// A refusal or notice, with its Pusher code.
    Error {
        /// The code (4000–4399), if any.
        code: Option<u16>,
        /// The message.
        message: String,
    },
    /// The server checks the client is alive.
    Ping,
    /// The answer to the client's ping.
    Pong,
    /// A subscription was accepted; `data` is the presence roster
    /// (`{presence: {ids, hash, count}}`) on presence channels.
    SubscriptionSucceeded {
        /// The channel.
        channel: String,
        /// Its data, parsed.
        data: Value,
        /// Where the channel's stream stands, on a channel with history
        /// (docs/history.md).
        position: Option<Position>,
    },
    /// A subscription was refused.
    SubscriptionError {
        /// The channel.
        channel: String,
        /// An HTTP-like status (401, 403, …), if given.
        status: Option<u16>,
        /// The reason.
        message: String,
    },
    /// A member joined a presence channel (`data`: `{user_id, user_info}`).
    MemberAdded {
        /// The channel.
        channel: String,
        /// The member, parsed.
        data: Value,
    },
    /// A member left a presence channel.
    MemberRemoved {
        /// The channel.
        channel: String,
        /// Their user id.
        user_id: String,
    },
    /// Any other event: a published or client event, `signin_success`, or
    /// a document reply (see [`super::doc::DocReply`]).
    Message {
        /// The event name.
        event: String,
        /// The channel, if any.
        channel: Option<String>,
        /// The data, parsed when it is a string holding JSON (Pusher's way).
        data: Value,
        /// The sender's user id (client events on presence channels).
        user_id: Option<String>,
        /// Its place in the channel's stream, on a channel with history.
        position: Option<Position>,
    },
}

/// A cheap view of a server frame for hot loops (a load generator reading
/// millions of deliveries): the event name and the raw `data` string,
/// borrowed when they have no escapes. [`ServerEvent::parse`] is the full
/// reading.
#[derive(Debug, serde::Deserialize)]
pub struct FrameView<'a> {
    /// The event name.
    #[serde(borrow)]
    pub event: &'a str,
    /// `data` when it is a string (borrowed unless it has escapes).
    #[serde(borrow, default)]
    pub data: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> FrameView<'a> {
    /// The view of `bytes` (a frame whose `data`, if any, is a string).
    pub fn parse(bytes: &'a [u8]) -> Result<FrameView<'a>, WireError> {
        serde_json::from_slice(bytes).map_err(|_| WireError::Malformed("a server frame that is not JSON"))
    }
}

/// A frame's `data`, taken out of the parsed frame: Pusher sends JSON as
/// a string (parsed here); a relayed client event's object is used as is.
pub fn parse_data(data: Option<Value>) -> Value {
    match data {
        Some(Value::String(text)) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        Some(other) => other,
        None => Value::Null,
    }
}

/// A frame's stream position (`offset` and `epoch`), if it has one.
fn position_of(frame: &Value) -> Option<Position> {
    let offset = frame.get("offset")?.as_u64()?;
    let epoch = frame.get("epoch")?.as_str()?;
    Some(Position { offset, epoch: epoch.to_owned() })
}

impl ServerEvent {
    /// The event in a server frame.
    pub fn parse(text: &str) -> Result<ServerEvent, WireError> {
        let mut frame: Value = serde_json::from_str(text)
            .map_err(|_| WireError::Malformed("the server sent a frame that is not JSON"))?;
        let event = match frame.get_mut("event").map(Value::take) {
            Some(Value::String(event)) => event,
            _ => return Err(WireError::Malformed("a server frame without a string `event`")),
        };
        let channel = frame.get("channel").and_then(Value::as_str).map(str::to_owned);
        let data = parse_data(frame.get_mut("data").map(Value::take));
        let text_of = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
        let number = |name: &str| data.get(name).and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok());
        let needs_channel = || WireError::Malformed("this server event needs a `channel`");
        Ok(match event.as_str() {
            ESTABLISHED => ServerEvent::Established {
                socket_id: text_of("socket_id")
                    .ok_or(WireError::Malformed("connection_established without a socket_id"))?,
                activity_timeout: data.get("activity_timeout").and_then(Value::as_u64),
            },
            ERROR => {
                ServerEvent::Error { code: number("code"), message: text_of("message").unwrap_or_default() }
            }
            super::client::PING => ServerEvent::Ping,
            super::client::PONG => ServerEvent::Pong,
            SUBSCRIPTION_SUCCEEDED => ServerEvent::SubscriptionSucceeded {
                channel: channel.ok_or_else(needs_channel)?,
                data,
                position: position_of(&frame),
            },
            SUBSCRIPTION_ERROR => ServerEvent::SubscriptionError {
                channel: channel.ok_or_else(needs_channel)?,
                status: number("status"),
                message: text_of("error").unwrap_or_else(|| "refused".into()),
            },
            MEMBER_ADDED => ServerEvent::MemberAdded { channel: channel.ok_or_else(needs_channel)?, data },
            MEMBER_REMOVED => ServerEvent::MemberRemoved {
                channel: channel.ok_or_else(needs_channel)?,
                user_id: text_of("user_id").unwrap_or_default(),
            },
            _ => {
                let user_id = frame.get("user_id").and_then(Value::as_str).map(str::to_owned);
                ServerEvent::Message { event, channel, data, user_id, position: position_of(&frame) }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::server as encode;
    use super::*;

    #[test]
    fn what_the_server_encodes_the_client_parses() {
        let parse = |text: String| ServerEvent::parse(&text).unwrap();
        assert_eq!(
            parse(encode::connection_established("1.2", 120)),
            ServerEvent::Established { socket_id: "1.2".into(), activity_timeout: Some(120) }
        );
        assert_eq!(
            parse(encode::error(Some(4301), "slow")),
            ServerEvent::Error { code: Some(4301), message: "slow".into() }
        );
        assert_eq!(parse(encode::ping()), ServerEvent::Ping);
        assert_eq!(parse(encode::pong()), ServerEvent::Pong);
        assert_eq!(
            parse(encode::subscription_succeeded("news")),
            ServerEvent::SubscriptionSucceeded {
                channel: "news".into(),
                data: serde_json::json!({}),
                position: None
            }
        );
        assert_eq!(
            parse(encode::subscription_error("private-a", "AuthError", "bad", 401)),
            ServerEvent::SubscriptionError {
                channel: "private-a".into(),
                status: Some(401),
                message: "bad".into()
            }
        );
        let added = parse(encode::member_added("presence-a", "ann", None));
        assert!(
            matches!(&added, ServerEvent::MemberAdded { channel, data } if channel == "presence-a" && data["user_id"] == "ann")
        );
        assert_eq!(
            parse(encode::member_removed("presence-a", "ann")),
            ServerEvent::MemberRemoved { channel: "presence-a".into(), user_id: "ann".into() }
        );
        let data = serde_json::value::RawValue::from_string(r#"{"x":1}"#.into()).unwrap();
        assert_eq!(
            parse(encode::channel_event("client-x", "presence-a", Some(&data), Some("ann"))),
            ServerEvent::Message {
                event: "client-x".into(),
                channel: Some("presence-a".into()),
                data: serde_json::json!({"x": 1}),
                user_id: Some("ann".into()),
                position: None,
            }
        );
        let at = Position { offset: 3, epoch: "e".into() };
        let kept = parse(encode::channel_event_at("m", "c", None, None, Some(&at)));
        assert!(matches!(kept, ServerEvent::Message { position: Some(p), .. } if p == at));
        let subscribed = parse(encode::with_position(encode::subscription_succeeded("c"), &at));
        assert!(
            matches!(subscribed, ServerEvent::SubscriptionSucceeded { position: Some(p), .. } if p == at)
        );
        assert!(ServerEvent::parse("[1]").is_err());
        assert!(ServerEvent::parse(r#"{"event":"pusher:connection_established","data":"{}"}"#).is_err());
    }
}
