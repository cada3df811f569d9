//! Channel history (a sealcast extension to Pusher; docs/history.md and
//! docs/protocol.md, "History"): stream positions, the read request, its
//! answer and its refusals, in one place for the server, the HTTP API, the
//! client machine and the fuzz targets.
//!
//! A channel with history is a stream: every event published on it gets
//! the next `offset` (1, 2, 3, … consecutive) within the stream's `epoch`
//! (an id of the stream's lifetime: it changes when the store may have
//! lost events, so a position from another epoch proves nothing). Live
//! events carry their position as two additive frame fields, `offset` and
//! `epoch`, which Pusher clients ignore. Event data is carried as the
//! relay saw it, raw JSON text, never read.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::ClientFrame;

/// Client → server: read a channel's history.
pub const READ: &str = "sealcast:history";
/// Server → client: a page of history.
pub const PAGE: &str = "sealcast_internal:history";
/// Server → client: a refused read.
pub const ERROR: &str = "sealcast_internal:history-error";

/// Most events in one page (the server also bounds a page in bytes).
pub const MAX_PAGE_EVENTS: u32 = 1000;
/// Events in a page when the request names no limit.
pub const DEFAULT_PAGE_EVENTS: u32 = 100;
/// Longest request id, bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 64;
/// Longest epoch, bytes (the server makes 16 hex digits).
pub const MAX_EPOCH_BYTES: usize = 64;

/// Where an event sits in its channel's stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Its offset: 1 for the stream's first event, consecutive.
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: String,
}

/// What to read (`sealcast:history` data; the HTTP API's query parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    /// Echoed in the answer, so a client can match answers to requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Events after this offset, oldest first (catching up). 0: from the
    /// oldest kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// The epoch `since` belongs to: when the stream's epoch is another,
    /// the answer starts at the oldest kept event and says `epoch_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The newest events before this offset (scrolling back); with
    /// neither `since` nor `before`, the newest events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// Most events in the page (default [`DEFAULT_PAGE_EVENTS`], at most
    /// [`MAX_PAGE_EVENTS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl Read {
    /// Checks the request against the protocol's limits.
    pub fn check(&self) -> Result<(), HistoryProtocolError> {
        let shape = HistoryProtocolError::Shape;
        if self.since.is_some() && self.before.is_some() {
            return Err(shape("give `since` (catching up) or `before` (scrolling back), not both"));
        }
        if self.epoch.is_some() && self.since.is_none() {
            return Err(shape("`epoch` goes with `since`"));
        }
        if self.limit.is_some_and(|limit| limit == 0 || limit > MAX_PAGE_EVENTS) {
            return Err(shape("`limit` is 1 to 1000"));
        }
        if self.request_id.as_ref().is_some_and(|id| id.len() > MAX_REQUEST_ID_BYTES) {
            return Err(shape("`request_id` is at most 64 bytes"));
        }
        if self.epoch.as_ref().is_some_and(|epoch| epoch.len() > MAX_EPOCH_BYTES) {
            return Err(shape("`epoch` is at most 64 bytes"));
        }
        Ok(())
    }

    /// The page size asked for.
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_PAGE_EVENTS).min(MAX_PAGE_EVENTS)
    }

    /// The request a `sealcast:history` frame carries (its `data` an object
    /// or a string holding one), checked.
    pub fn parse(frame: &ClientFrame) -> Result<Read, HistoryProtocolError> {
        let read: Read = frame.data_as().map_err(|_| {
            HistoryProtocolError::Shape("history data is {request_id?, since?, epoch?, before?, limit?}")
        })?;
        read.check()?;
        Ok(read)
    }
}

/// Why an answer does not continue from the asked position: events
/// between it and the page's first were lost to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gap {
    /// The asked offset is older than what is kept (trimmed by count,
    /// size or age): the page starts at the oldest kept event.
    PositionExpired,
    /// The stream is another one than the asked epoch's (the store
    /// restarted without its events, or was emptied): the page starts at
    /// the oldest kept event of the current epoch.
    EpochChanged,
}

impl Gap {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Gap::PositionExpired => "position_expired",
            Gap::EpochChanged => "epoch_changed",
        }
    }
}

/// One kept event, as relayed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Its offset in the stream.
    pub offset: u64,
    /// The event name.
    pub event: String,
    /// Its `data` as the relay sent it (a JSON string for HTTP API
    /// publishes, the sender's JSON for client events).
    pub data: Box<RawValue>,
    /// The sender's user id, where there was one (presence client events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When the server took it, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

impl PartialEq for HistoryEvent {
    fn eq(&self, other: &HistoryEvent) -> bool {
        self.offset == other.offset
            && self.event == other.event
            && self.data.get() == other.data.get()
            && self.user_id == other.user_id
            && self.time_ms == other.time_ms
    }
}

/// A page of history (`sealcast_internal:history` data; the HTTP API's
/// answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The request's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The stream's epoch.
    pub epoch: String,
    /// The stream's newest offset (0: nothing was ever published in this
    /// epoch).
    pub head: u64,
    /// Events, oldest first.
    pub events: Vec<HistoryEvent>,
    /// More events follow in the asked direction: ask again with `since`
    /// = the last event's offset (catching up) or `before` = the first's
    /// (scrolling back).
    pub more: bool,
    /// Set when the page does not continue from `since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
}

/// Why a history read was refused (`sealcast_internal:history-error`
/// `code`). Unknown codes (from a newer server) parse as
/// [`HistoryErrorCode::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HistoryErrorCode {
    /// The channel keeps no history (no rule of the app matches it).
    HistoryOff,
    /// The connection is not subscribed to the channel.
    NotSubscribed,
    /// A malformed request.
    Invalid,
    /// Over the connection's or the app's read rate: retry later.
    RateLimited,
    /// The store failed: retry later.
    Unavailable,
    /// A code this version does not know.
    #[serde(untagged)]
    Other(String),
}

impl HistoryErrorCode {
    /// The wire form (`history_off`, `rate_limited`, …).
    pub fn as_str(&self) -> &str {
        match self {
            HistoryErrorCode::HistoryOff => "history_off",
            HistoryErrorCode::NotSubscribed => "not_subscribed",
            HistoryErrorCode::Invalid => "invalid",
            HistoryErrorCode::RateLimited => "rate_limited",
            HistoryErrorCode::Unavailable => "unavailable",
            HistoryErrorCode::Other(code) => code,
        }
    }

    /// Reads a wire code; never fails (unknown: [`HistoryErrorCode::Other`]).
    pub fn parse(code: &str) -> HistoryErrorCode {
        serde_json::from_value(serde_json::Value::String(code.to_owned()))
            .unwrap_or_else(|_| HistoryErrorCode::Other(code.to_owned()))
    }

    /// A refusal for now: the same read may succeed after a wait.
    pub fn is_transient(&self) -> bool {
        matches!(self, HistoryErrorCode::RateLimited | HistoryErrorCode::Unavailable)
    }
}

/// A refused read (`sealcast_internal:history-error` data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryError {
    /// The request's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Why.
    pub code: HistoryErrorCode,
    /// For people.
    pub message: String,
}

/// Why a history request was malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryProtocolError {
    /// The data does not have the shape a read needs; the message says how.
    #[error("{0}")]
    Shape(&'static str),
}

/// A server → client history frame, encoded.
pub fn encode_page(channel: &str, page: &HistoryPage) -> String {
    encode(PAGE, channel, page)
}

/// A refusal frame, encoded.
pub fn encode_error(channel: &str, error: &HistoryError) -> String {
    encode(ERROR, channel, error)
}

fn encode<T: Serialize>(event: &str, channel: &str, data: &T) -> String {
    #[derive(Serialize)]
    struct Frame<'a, T> {
        event: &'a str,
        channel: &'a str,
        data: &'a T,
    }
    serde_json::to_string(&Frame { event, channel, data }).expect("history frames are plain data")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &str) -> ClientFrame {
        let text = format!(r#"{{"event":"sealcast:history","channel":"private-a","data":{data}}}"#);
        ClientFrame::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn reads_parse_and_are_checked() {
        let read = Read::parse(&frame(r#"{"request_id":"r1","since":4,"epoch":"e","limit":10}"#)).unwrap();
        assert_eq!((read.since, read.epoch.as_deref(), read.limit()), (Some(4), Some("e"), 10));
        assert_eq!(Read::parse(&frame("{}")).unwrap().limit(), DEFAULT_PAGE_EVENTS);
        // A string holding the object, as pusher-js sends data.
        assert_eq!(Read::parse(&frame(r#""{\"before\":9}""#)).unwrap().before, Some(9));
        for bad in [
            r#"{"since":1,"before":2}"#,
            r#"{"epoch":"e"}"#,
            r#"{"limit":0}"#,
            r#"{"limit":1001}"#,
            r#"{"since":-1}"#,
            r#"[1]"#,
        ] {
            assert!(Read::parse(&frame(bad)).is_err(), "{bad} was accepted");
        }
        let long = format!(r#"{{"request_id":"{}"}}"#, "x".repeat(65));
        assert!(Read::parse(&frame(&long)).is_err());
    }

    #[test]
    fn pages_and_errors_round_trip() {
        let page = HistoryPage {
            request_id: Some("r".into()),
            epoch: "e1".into(),
            head: 3,
            events: vec![HistoryEvent {
                offset: 3,
                event: "m".into(),
                data: RawValue::from_string(r#""{\"x\":1}""#.into()).unwrap(),
                user_id: None,
                time_ms: 5,
            }],
            more: false,
            gap: Some(Gap::PositionExpired),
        };
        let text = encode_page("private-a", &page);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["data"]["gap"], "position_expired");
        assert_eq!(serde_json::from_value::<HistoryPage>(value["data"].clone()).unwrap(), page);
        let error = HistoryError {
            request_id: None,
            code: HistoryErrorCode::parse("rate_limited"),
            message: "slow".into(),
        };
        let value: serde_json::Value = serde_json::from_str(&encode_error("private-a", &error)).unwrap();
        assert_eq!(value["data"]["code"], "rate_limited");
        assert_eq!(serde_json::from_value::<HistoryError>(value["data"].clone()).unwrap(), error);
        assert_eq!(HistoryErrorCode::parse("new_thing"), HistoryErrorCode::Other("new_thing".into()));
    }
}
