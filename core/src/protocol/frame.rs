//! Client → server frames: `{"event": …, "channel": …, "data": …}`.
//!
//! `data` stays raw JSON text ([`RawValue`]): the relay forwards client
//! events byte for byte and only the `pusher:` control events it must act on
//! are parsed further.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::ChannelName;

/// Longest user id, in bytes (presence `user_id`, JWT `sub`).
pub const MAX_USER_ID_BYTES: usize = 128;
/// Errors in frames from a peer (caused by: peer).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Not a JSON object with a string `event`, or a field of the wrong type.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// A channel name that breaks the naming rules.
    #[error("invalid channel name: {0}")]
    InvalidChannel(&'static str),
    /// Presence `channel_data` that is not `{"user_id": …, "user_info": …}`.
    #[error("invalid presence channel_data: {0}")]
    InvalidPresenceData(&'static str),
    /// An auth signature or token that does not verify.
    #[error("invalid signature: {0}")]
    Unauthorized(&'static str),
}

/// One frame from a client.
#[derive(Debug, Deserialize)]
pub struct ClientFrame {
    /// Event name: `pusher:subscribe`, `pusher:ping`, `client-…`, …
    pub event: String,
    /// Channel, for channel-scoped events.
    #[serde(default)]
    pub channel: Option<String>,
    /// Event data, untouched.
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
}

impl ClientFrame {
    /// Parses one text frame.
    pub fn parse(bytes: &[u8]) -> Result<ClientFrame, WireError> {
        let frame: ClientFrame = serde_json::from_slice(bytes)
            .map_err(|_| WireError::Malformed("expected a JSON object with a string `event`"))?;
        if frame.event.is_empty() {
            return Err(WireError::Malformed("empty event name"));
        }
        Ok(frame)
    }

    /// The frame's `channel`, validated.
    pub fn channel_name(&self) -> Result<ChannelName, WireError> {
        ChannelName::parse(self.channel.as_deref().ok_or(WireError::Malformed("missing `channel`"))?)
    }

    /// `data` parsed as a `T`. Clients send control data either as an object
    /// or as a string holding the object's JSON; both are accepted.
    pub fn data_as<T: for<'de> Deserialize<'de>>(&self) -> Result<T, WireError> {
        let raw = self.data.as_deref().map_or("{}", RawValue::get);
        let malformed = || WireError::Malformed("`data` does not have the fields this event needs");
        if raw.starts_with('"') {
            let inner: String = serde_json::from_str(raw).map_err(|_| malformed())?;
            serde_json::from_str(&inner).map_err(|_| malformed())
        } else {
            serde_json::from_str(raw).map_err(|_| malformed())
        }
    }
}

/// `pusher:subscribe` data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SubscribeData {
    /// Channel to join.
    pub channel: String,
    /// `key:signature` for private and presence channels, or a JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Presence member data, a JSON string, signed along with the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
}

/// `pusher:unsubscribe` data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct UnsubscribeData {
    /// Channel to leave.
    pub channel: String,
}

/// `pusher:signin` data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SigninData {
    /// `key:signature` over `socket_id::user::user_data`.
    pub auth: String,
    /// The user, a JSON string with at least an `id`.
    pub user_data: String,
}

/// A presence member from `channel_data`.
#[derive(Debug, Clone)]
pub struct PresenceMember {
    /// User id (numbers are accepted and turned into their decimal text).
    pub user_id: String,
    /// `user_info`, raw JSON, or `None`.
    pub user_info: Option<Box<RawValue>>,
}

impl PresenceMember {
    /// Parses presence `channel_data`.
    pub fn parse(channel_data: &str) -> Result<PresenceMember, WireError> {
        #[derive(Deserialize)]
        struct Raw {
            user_id: Box<RawValue>,
            #[serde(default)]
            user_info: Option<Box<RawValue>>,
        }
        let invalid = WireError::InvalidPresenceData("expected a JSON object with `user_id`");
        // serde would also read a struct from an array; only objects are valid.
        if !channel_data.trim_start().starts_with('{') {
            return Err(invalid);
        }
        let raw: Raw = serde_json::from_str(channel_data).map_err(|_| invalid)?;
        let text = raw.user_id.get();
        let user_id = if text.starts_with('"') {
            serde_json::from_str::<String>(text)
                .map_err(|_| WireError::InvalidPresenceData("bad `user_id`"))?
        } else if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            text.to_owned()
        } else {
            return Err(WireError::InvalidPresenceData("`user_id` must be a string or an integer"));
        };
        if user_id.is_empty() || user_id.len() > MAX_USER_ID_BYTES {
            return Err(WireError::InvalidPresenceData("`user_id` must be 1 to 128 bytes"));
        }
        Ok(PresenceMember { user_id, user_info: raw.user_info })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subscribe_in_both_data_forms() {
        let object = ClientFrame::parse(
            br#"{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"k:s"}}"#,
        )
        .unwrap();
        let string = ClientFrame::parse(
            br#"{"event":"pusher:subscribe","data":"{\"channel\":\"private-a\",\"auth\":\"k:s\"}"}"#,
        )
        .unwrap();
        for frame in [object, string] {
            let data: SubscribeData = frame.data_as().unwrap();
            assert_eq!(data.channel, "private-a");
            assert_eq!(data.auth.as_deref(), Some("k:s"));
        }
    }

    #[test]
    fn keeps_client_event_data_verbatim() {
        let text = br#"{"event":"client-x","channel":"private-a","data":{"b":1,  "a":[2.50]}}"#;
        let frame = ClientFrame::parse(text).unwrap();
        assert_eq!(frame.data.unwrap().get(), r#"{"b":1,  "a":[2.50]}"#);
        assert_eq!(ClientFrame::parse(text).unwrap().channel_name().unwrap().as_str(), "private-a");
    }

    #[test]
    fn rejects_malformed_frames() {
        for bad in [
            &b""[..],
            b"[]",
            b"{}",
            br#"{"event":1}"#,
            br#"{"event":""}"#,
            b"\xff",
            br#"{"event":"x","channel":5}"#,
        ] {
            assert!(ClientFrame::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn presence_member() {
        let m = PresenceMember::parse(r#"{"user_id":"u1","user_info":{"name":"A"}}"#).unwrap();
        assert_eq!((m.user_id.as_str(), m.user_info.unwrap().get()), ("u1", r#"{"name":"A"}"#));
        assert_eq!(PresenceMember::parse(r#"{"user_id":42}"#).unwrap().user_id, "42");
        for bad in ["", "{}", r#"{"user_id":""}"#, r#"{"user_id":1.5}"#, r#"{"user_id":{}}"#, "[1]"] {
            assert!(PresenceMember::parse(bad).is_err(), "{bad}");
        }
    }
}
