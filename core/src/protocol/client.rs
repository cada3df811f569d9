//! Client → server Pusher commands, typed: what a client encodes and the
//! server parses, one definition for both sides (the document requests are
//! [`super::doc::DocRequest`]).

use serde_json::Value;
use serde_json::value::RawValue;

use super::{ClientFrame, SigninData, SubscribeData, UnsubscribeData, WireError};

/// `pusher:subscribe`.
pub const SUBSCRIBE: &str = "pusher:subscribe";
/// `pusher:unsubscribe`.
pub const UNSUBSCRIBE: &str = "pusher:unsubscribe";
/// `pusher:signin`.
pub const SIGNIN: &str = "pusher:signin";
/// `pusher:ping` (either side may send it).
pub const PING: &str = "pusher:ping";
/// `pusher:pong` (the answer to a ping).
pub const PONG: &str = "pusher:pong";
/// The prefix of client events.
pub const CLIENT_EVENT_PREFIX: &str = "client-";
/// sealcast's sealed chat message (`/body` sealed for `chat:ROOM:MESSAGE_ID`).
pub const CHAT_EVENT: &str = "client-chat";
/// sealcast's sealed presence state (`/state` sealed for
/// `custom:presence-state:CHANNEL:client-presence-state`).
pub const PRESENCE_STATE_EVENT: &str = "client-presence-state";

/// A client → server command (other than the document requests).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Join a channel (with its authorization for private/presence ones).
    Subscribe(SubscribeData),
    /// Leave a channel.
    Unsubscribe(UnsubscribeData),
    /// Authenticate the user.
    Signin(SigninData),
    /// Liveness check; answered with a pong.
    Ping,
    /// The answer to a server ping.
    Pong,
    /// A `client-` event relayed to the channel's other subscribers.
    ClientEvent {
        /// The event name (starts with `client-`).
        event: String,
        /// The channel.
        channel: String,
        /// The data, relayed as is.
        data: Value,
    },
}

impl Command {
    /// The command in a parsed client frame; `Ok(None)` for event names
    /// that are not commands (document requests, unknown events).
    pub fn parse(frame: &ClientFrame) -> Result<Option<Command>, WireError> {
        Ok(Some(match frame.event.as_str() {
            SUBSCRIBE => Command::Subscribe(frame.data_as()?),
            UNSUBSCRIBE => Command::Unsubscribe(frame.data_as()?),
            SIGNIN => Command::Signin(frame.data_as()?),
            PING => Command::Ping,
            PONG => Command::Pong,
            event if event.starts_with(CLIENT_EVENT_PREFIX) => Command::ClientEvent {
                event: event.to_owned(),
                channel: frame.channel_name()?.as_str().to_owned(),
                data: frame
                    .data
                    .as_deref()
                    .map_or(Ok(Value::Null), |d| serde_json::from_str(RawValue::get(d)))
                    .map_err(|_| WireError::Malformed("client event data is not JSON"))?,
            },
            _ => return Ok(None),
        }))
    }

    /// The frame.
    pub fn encode(&self) -> String {
        let (event, channel, data) = match self {
            Command::Subscribe(data) => (SUBSCRIBE, None, serde_json::to_value(data)),
            Command::Unsubscribe(data) => (UNSUBSCRIBE, None, serde_json::to_value(data)),
            Command::Signin(data) => (SIGNIN, None, serde_json::to_value(data)),
            Command::Ping => (PING, None, Ok(Value::Object(Default::default()))),
            Command::Pong => (PONG, None, Ok(Value::Object(Default::default()))),
            Command::ClientEvent { event, channel, data } => {
                (event.as_str(), Some(channel), Ok(data.clone()))
            }
        };
        let mut frame = serde_json::json!({"event": event, "data": data.unwrap_or(Value::Null)});
        if let Some(channel) = channel {
            frame["channel"] = Value::String(channel.clone());
        }
        frame.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let commands = [
            Command::Subscribe(SubscribeData {
                channel: "presence-a".into(),
                auth: Some("k:sig".into()),
                channel_data: Some(r#"{"user_id":"u"}"#.into()),
            }),
            Command::Subscribe(SubscribeData { channel: "news".into(), auth: None, channel_data: None }),
            Command::Unsubscribe(UnsubscribeData { channel: "news".into() }),
            Command::Signin(SigninData { auth: "k:s".into(), user_data: r#"{"id":"u"}"#.into() }),
            Command::Ping,
            Command::Pong,
            Command::ClientEvent {
                event: "client-typing".into(),
                channel: "private-a".into(),
                data: serde_json::json!({"on": true}),
            },
        ];
        for command in commands {
            let frame = ClientFrame::parse(command.encode().as_bytes()).unwrap();
            assert_eq!(Command::parse(&frame).unwrap(), Some(command));
        }
        let doc = ClientFrame::parse(br#"{"event":"sealcast:doc-join","channel":"private-doc-x","data":{}}"#);
        assert_eq!(Command::parse(&doc.unwrap()).unwrap(), None);
        let bad = ClientFrame::parse(br#"{"event":"pusher:subscribe","data":{"nope":1}}"#).unwrap();
        assert!(Command::parse(&bad).is_err());
    }
}
