//! The document protocol (a sealcast extension to Pusher; docs/protocol.md,
//! "Documents"): its event names, message shapes, limits and the
//! doc-channel rule, in one place for the server, the client, the load
//! generator and the fuzz targets. Every message both parses and encodes.
//!
//! Payloads (ops, snapshots) are opaque strings here: sealed envelopes the
//! server stores and relays without reading.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ClientFrame;

mod code;

pub use code::DocErrorCode;

/// Client → server: join (or page through) a document.
pub const JOIN: &str = "sealcast:doc-join";
/// Client → server: submit an op.
pub const SUBMIT: &str = "sealcast:doc-submit";
/// Client → server: upload a snapshot.
pub const SNAPSHOT: &str = "sealcast:doc-snapshot";
/// Client → server: a digest of the canonical document (relayed).
pub const DIGEST: &str = "sealcast:doc-digest";
/// Server → client: the answer to a join.
pub const STATE: &str = "sealcast_internal:doc-state";
/// Server → client: a sequenced op (to every subscriber but its author).
pub const OP: &str = "sealcast_internal:doc-op";
/// Server → client: the author's acknowledgement.
pub const ACK: &str = "sealcast_internal:doc-ack";
/// Server → client: another client's digest, as relayed.
pub const DIGEST_RELAYED: &str = "sealcast_internal:doc-digest";
/// Server → client: a snapshot was stored.
pub const SNAPSHOT_STORED: &str = "sealcast_internal:doc-snapshot-stored";
/// Server → client: a refused request.
pub const ERROR: &str = "sealcast_internal:doc-error";
/// Client event carrying a sealed cursor (an ordinary `client-` event).
pub const CURSOR: &str = "client-sealcast-cursor";

/// Most ops in one join answer (the server also bounds it in bytes).
pub const JOIN_PAGE_OPS: usize = 1000;
/// Longest op id, bytes.
pub const MAX_OP_ID_BYTES: usize = 128;
/// Longest digest, bytes.
pub const MAX_DIGEST_BYTES: usize = 128;
/// Longest key hint (a session's or a snapshot's), bytes.
pub const MAX_KEY_HINT_BYTES: usize = 256;

const PRIVATE_PREFIX: &str = "private-doc-";
const PRESENCE_PREFIX: &str = "presence-doc-";

/// Document ids with this prefix are reserved for the group logs of the
/// device-keys mode (`private-doc-mls-{channel}`, docs/keys.md): a
/// document opened under one would mix its ops into a group's log.
pub const GROUP_LOG_PREFIX: &str = "mls-";

/// The document id of a document channel: `x` for `private-doc-x` or
/// `presence-doc-x`; `None` for any other channel.
pub fn doc_id_of(channel: &str) -> Option<&str> {
    channel.strip_prefix(PRIVATE_PREFIX).or_else(|| channel.strip_prefix(PRESENCE_PREFIX))
}

/// The channel of document `doc_id`: `presence-doc-{id}` when `presence`
/// (members and cursors with user ids), else `private-doc-{id}`.
pub fn channel_for(doc_id: &str, presence: bool) -> String {
    let prefix = if presence { PRESENCE_PREFIX } else { PRIVATE_PREFIX };
    format!("{prefix}{doc_id}")
}

/// Why a document message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocProtocolError {
    /// The data does not have the shape the event needs; the message says
    /// which.
    #[error("{0}")]
    Shape(&'static str),
    /// Not a document event.
    #[error("not a document event")]
    NotDocument,
}

/// `sealcast:doc-join` data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// Ops after this sequence number (default: after the snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// An op id whose sequence number the client wants to know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_id: Option<String>,
    /// The kept snapshot to start from (default: the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<u64>,
    /// A claim: the key hint of the session key this client seals with,
    /// recorded as the document's session hint if the document has none
    /// and no ops yet (the first claim wins; docs/keys.md). The answer's
    /// `key_hint` is the recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hint: Option<String>,
}

/// `sealcast:doc-submit` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submit {
    /// The last sequence number the author had integrated.
    pub base: u64,
    /// The client's op id (idempotency key).
    pub op_id: String,
    /// The sealed op.
    pub payload: String,
}

/// `sealcast:doc-digest` data, and its relayed form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The sequence number it is the digest at.
    pub seq: u64,
    /// The key version it was computed with.
    pub kv: u32,
    /// The digest.
    pub digest: String,
}

/// `sealcast:doc-snapshot` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUpload {
    /// The sequence number the snapshot is at.
    pub seq: u64,
    /// The sealed snapshot.
    pub payload: String,
    /// An opaque hint where to find the key (e.g. a salt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hint: Option<String>,
}

/// A client → server document request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocRequest {
    /// `sealcast:doc-join`.
    Join(Join),
    /// `sealcast:doc-submit`.
    Submit(Submit),
    /// `sealcast:doc-digest`.
    Digest(Digest),
    /// `sealcast:doc-snapshot`.
    Snapshot(SnapshotUpload),
}

/// A key hint within [`MAX_KEY_HINT_BYTES`].
pub fn check_key_hint(hint: Option<&str>) -> Result<(), DocProtocolError> {
    match hint {
        Some(hint) if hint.len() > MAX_KEY_HINT_BYTES => {
            Err(DocProtocolError::Shape("key_hint longer than 256 bytes"))
        }
        _ => Ok(()),
    }
}

fn shape<T: for<'de> Deserialize<'de>>(
    frame: &ClientFrame,
    message: &'static str,
) -> Result<T, DocProtocolError> {
    frame.data_as().map_err(|_| DocProtocolError::Shape(message))
}

impl DocRequest {
    /// Its event name.
    pub fn event(&self) -> &'static str {
        match self {
            DocRequest::Join(_) => JOIN,
            DocRequest::Submit(_) => SUBMIT,
            DocRequest::Digest(_) => DIGEST,
            DocRequest::Snapshot(_) => SNAPSHOT,
        }
    }

    /// The request a client frame carries (its `data` as an object or as a
    /// string holding one), checked against the protocol's limits.
    pub fn parse(frame: &ClientFrame) -> Result<DocRequest, DocProtocolError> {
        match frame.event.as_str() {
            JOIN => {
                let join: Join = shape(frame, "doc-join data is {since?, op_id?, snapshot?, key_hint?}")?;
                check_key_hint(join.key_hint.as_deref())?;
                Ok(DocRequest::Join(join))
            }
            SUBMIT => {
                let submit: Submit = shape(frame, "doc-submit data is {base, op_id, payload}")?;
                if submit.op_id.is_empty() || submit.op_id.len() > MAX_OP_ID_BYTES {
                    return Err(DocProtocolError::Shape("op_id must be 1 to 128 bytes"));
                }
                Ok(DocRequest::Submit(submit))
            }
            DIGEST => {
                let digest: Digest = shape(frame, "doc-digest data is {seq, kv, digest}")?;
                if digest.digest.is_empty() || digest.digest.len() > MAX_DIGEST_BYTES {
                    return Err(DocProtocolError::Shape("digest must be 1 to 128 bytes"));
                }
                Ok(DocRequest::Digest(digest))
            }
            SNAPSHOT => {
                let snap: SnapshotUpload = shape(frame, "doc-snapshot data is {seq, payload, key_hint?}")?;
                check_key_hint(snap.key_hint.as_deref())?;
                Ok(DocRequest::Snapshot(snap))
            }
            _ => Err(DocProtocolError::NotDocument),
        }
    }

    /// The event name and data (what a client sends on the channel, over
    /// its own link or another library's).
    pub fn message(&self) -> DocMessage {
        let data = match self {
            DocRequest::Join(join) => serde_json::to_value(join),
            DocRequest::Submit(submit) => serde_json::to_value(submit),
            DocRequest::Digest(digest) => serde_json::to_value(digest),
            DocRequest::Snapshot(snap) => serde_json::to_value(snap),
        };
        DocMessage { event: self.event(), data: data.unwrap_or(Value::Null) }
    }

    /// The frame for `channel`.
    pub fn encode(&self, channel: &str) -> String {
        self.message().encode(channel)
    }
}

/// A document message as event name and data: what a client sends on its
/// channel (a request or a cursor), or a server reply.
#[derive(Debug, Clone, PartialEq)]
pub struct DocMessage {
    /// The event name.
    pub event: &'static str,
    /// Its data.
    pub data: Value,
}

impl DocMessage {
    /// The frame for `channel`.
    pub fn encode(&self, channel: &str) -> String {
        frame(self.event, channel, self.data.clone())
    }
}

/// [`CURSOR`] data: a sealed selection at a sequence number (a client
/// event: the server relays it like any other and never parses it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorUpdate {
    /// The sequence number the selection refers to.
    pub seq: u64,
    /// The sealed selection.
    pub cursor: Value,
}

impl CursorUpdate {
    /// Its data.
    pub fn parse(data: &Value) -> Result<CursorUpdate, DocProtocolError> {
        from_value(data, "cursor data is {seq, cursor}")
    }

    /// The message.
    pub fn message(&self) -> DocMessage {
        DocMessage { event: CURSOR, data: serde_json::to_value(self).unwrap_or(Value::Null) }
    }
}

/// A snapshot in a join answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// Its sequence number.
    pub seq: u64,
    /// The sealed snapshot.
    pub payload: String,
    /// The uploader's key hint.
    pub key_hint: Option<String>,
}

/// `sealcast_internal:doc-state`: the answer to a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinState {
    /// The last sequence number assigned.
    pub head: u64,
    /// The newest snapshot, or the kept one asked for.
    pub snapshot: Option<StateSnapshot>,
    /// Every kept snapshot's sequence number, newest first.
    #[serde(default)]
    pub snapshots: Vec<u64>,
    /// Ops after `since` (or the snapshot); a page ending before `head` is
    /// continued with `since` = its last op's seq. (`user_id` is not sent
    /// with these.)
    pub ops: Vec<SequencedOp>,
    /// The sequence number the asked op id got, if it was sequenced.
    #[serde(default)]
    pub op_seq: Option<u64>,
    /// The document's session key hint, as recorded by the first claim
    /// ([`Join::key_hint`]); `None` while nobody has claimed one (a new
    /// document) and for documents from before hints were recorded.
    #[serde(default)]
    pub key_hint: Option<String>,
}

/// `sealcast_internal:doc-op`: a sequenced op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencedOp {
    /// Its place in the document's total order.
    pub seq: u64,
    /// Its author's base.
    pub base: u64,
    /// Its op id.
    pub op_id: String,
    /// The sealed op.
    pub payload: String,
    /// The author, when the server knows one (presence or signed-in user).
    #[serde(default)]
    pub user_id: Option<String>,
}

/// `sealcast_internal:doc-ack`: the author's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The op id.
    pub op_id: String,
    /// The sequence number it got.
    pub seq: u64,
    /// The op id had been sequenced already (a resubmission).
    #[serde(default)]
    pub duplicate: bool,
}

/// `sealcast_internal:doc-snapshot-stored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStored {
    /// The stored snapshot's sequence number.
    pub seq: u64,
}

/// `sealcast_internal:doc-error`: a refused request ([`DocErrorCode`];
/// docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocError {
    /// Why.
    pub code: DocErrorCode,
    /// A message for people.
    #[serde(default)]
    pub message: String,
    /// The refused op's id, for a refused submit.
    #[serde(default)]
    pub op_id: Option<String>,
    /// The refused request's event name (`sealcast:doc-join`, …; absent
    /// from servers before it was added).
    #[serde(default)]
    pub request: Option<String>,
}

/// A server → client document message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocReply {
    /// `sealcast_internal:doc-state`.
    State(JoinState),
    /// `sealcast_internal:doc-op`.
    Op(SequencedOp),
    /// `sealcast_internal:doc-ack`.
    Ack(Ack),
    /// `sealcast_internal:doc-digest`.
    Digest(Digest),
    /// `sealcast_internal:doc-snapshot-stored`.
    SnapshotStored(SnapshotStored),
    /// `sealcast_internal:doc-error`.
    Error(DocError),
}

fn from_value<T: for<'de> Deserialize<'de>>(
    data: &Value,
    message: &'static str,
) -> Result<T, DocProtocolError> {
    T::deserialize(data).map_err(|_| DocProtocolError::Shape(message))
}

impl DocReply {
    /// Its event name.
    pub fn event(&self) -> &'static str {
        match self {
            DocReply::State(_) => STATE,
            DocReply::Op(_) => OP,
            DocReply::Ack(_) => ACK,
            DocReply::Digest(_) => DIGEST_RELAYED,
            DocReply::SnapshotStored(_) => SNAPSHOT_STORED,
            DocReply::Error(_) => ERROR,
        }
    }

    /// True for the event names of server → client document messages.
    pub fn is_reply_event(event: &str) -> bool {
        matches!(event, STATE | OP | ACK | DIGEST_RELAYED | SNAPSHOT_STORED | ERROR)
    }

    /// The message `event` carries in `data` (parsed JSON).
    pub fn parse(event: &str, data: &Value) -> Result<DocReply, DocProtocolError> {
        Ok(match event {
            STATE => DocReply::State(from_value(data, "doc-state data is {head, snapshot, ops, …}")?),
            OP => DocReply::Op(from_value(data, "doc-op data is {seq, base, op_id, payload, user_id}")?),
            ACK => DocReply::Ack(from_value(data, "doc-ack data is {op_id, seq, duplicate}")?),
            DIGEST_RELAYED => DocReply::Digest(from_value(data, "doc-digest data is {seq, kv, digest}")?),
            SNAPSHOT_STORED => {
                DocReply::SnapshotStored(from_value(data, "doc-snapshot-stored data is {seq}")?)
            }
            ERROR => DocReply::Error(from_value(data, "doc-error data is {code, message, op_id}")?),
            _ => return Err(DocProtocolError::NotDocument),
        })
    }

    /// The frame for `channel`.
    pub fn encode(&self, channel: &str) -> String {
        self.message().encode(channel)
    }

    /// The event name and data.
    pub fn message(&self) -> DocMessage {
        let data = match self {
            DocReply::State(state) => serde_json::to_value(state),
            DocReply::Op(op) => serde_json::to_value(op),
            DocReply::Ack(ack) => serde_json::to_value(ack),
            DocReply::Digest(digest) => serde_json::to_value(digest),
            DocReply::SnapshotStored(stored) => serde_json::to_value(stored),
            DocReply::Error(error) => serde_json::to_value(error),
        };
        DocMessage { event: self.event(), data: data.unwrap_or(Value::Null) }
    }
}

fn frame(event: &str, channel: &str, data: Value) -> String {
    serde_json::json!({"event": event, "channel": channel, "data": data}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_of(frame: &str) -> (String, Value) {
        let value: Value = serde_json::from_str(frame).unwrap();
        (value["event"].as_str().unwrap().to_owned(), value["data"].clone())
    }

    #[test]
    fn requests_round_trip_and_are_checked() {
        let requests = [
            DocRequest::Join(Join {
                since: Some(3),
                op_id: None,
                snapshot: None,
                key_hint: Some("h".into()),
            }),
            DocRequest::Submit(Submit { base: 2, op_id: "o-1".into(), payload: "p".into() }),
            DocRequest::Digest(Digest { seq: 9, kv: 1, digest: "d".into() }),
            DocRequest::Snapshot(SnapshotUpload { seq: 9, payload: "s".into(), key_hint: Some("h".into()) }),
        ];
        let parse = |text: &str| DocRequest::parse(&ClientFrame::parse(text.as_bytes()).unwrap());
        for request in requests {
            assert_eq!(parse(&request.encode("private-doc-x")).unwrap(), request);
        }
        let long = "x".repeat(129);
        let bad = serde_json::json!({"event": SUBMIT, "data": {"base": 0, "op_id": long, "payload": "p"}});
        assert_eq!(parse(&bad.to_string()), Err(DocProtocolError::Shape("op_id must be 1 to 128 bytes")));
        let claim = serde_json::json!({"event": JOIN, "data": {"key_hint": "h".repeat(257)}});
        assert_eq!(parse(&claim.to_string()), Err(DocProtocolError::Shape("key_hint longer than 256 bytes")));
        // Data as a string holding the object, as Pusher clients may send.
        let wrapped = serde_json::json!({"event": JOIN, "data": "{\"since\": 4}"});
        assert_eq!(
            parse(&wrapped.to_string()),
            Ok(DocRequest::Join(Join { since: Some(4), ..Join::default() }))
        );
        assert!(matches!(
            parse(r#"{"event":"sealcast:doc-join","data":7}"#),
            Err(DocProtocolError::Shape(_))
        ));
        assert_eq!(parse(r#"{"event":"pusher:ping"}"#), Err(DocProtocolError::NotDocument));
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            DocReply::State(JoinState {
                head: 2,
                snapshot: Some(StateSnapshot { seq: 1, payload: "s".into(), key_hint: None }),
                snapshots: vec![1],
                ops: vec![SequencedOp {
                    seq: 2,
                    base: 1,
                    op_id: "o".into(),
                    payload: "p".into(),
                    user_id: None,
                }],
                op_seq: None,
                key_hint: Some("salt".into()),
            }),
            DocReply::Op(SequencedOp {
                seq: 3,
                base: 2,
                op_id: "o".into(),
                payload: "p".into(),
                user_id: None,
            }),
            DocReply::Ack(Ack { op_id: "o".into(), seq: 3, duplicate: true }),
            DocReply::Digest(Digest { seq: 3, kv: 2, digest: "d".into() }),
            DocReply::SnapshotStored(SnapshotStored { seq: 3 }),
            DocReply::Error(DocError {
                code: DocErrorCode::RateLimited,
                message: "m".into(),
                op_id: Some("o".into()),
                request: Some(SUBMIT.into()),
            }),
        ];
        for reply in replies {
            let (event, data) = data_of(&reply.encode("presence-doc-x"));
            assert!(DocReply::is_reply_event(&event));
            assert_eq!(DocReply::parse(&event, &data).unwrap(), reply);
        }
    }

    #[test]
    fn doc_channels() {
        assert_eq!(doc_id_of("private-doc-a-b"), Some("a-b"));
        assert_eq!(doc_id_of("presence-doc-x"), Some("x"));
        assert_eq!(doc_id_of("private-x"), None);
        assert_eq!(doc_id_of(&channel_for("d", true)), Some("d"));
        assert_eq!(channel_for("d", false), "private-doc-d");
    }
}
