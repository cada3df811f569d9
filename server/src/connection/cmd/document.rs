//! Document requests on `private-doc-*` / `presence-doc-*` channels the
//! connection is subscribed to (docs/protocol.md, "Documents"): join,
//! submit, digest, snapshot. Payloads are opaque strings, never read.

use bytes::Bytes;
use sealcast_core::protocol::ClientFrame;
use serde::Deserialize;

use super::super::Session;
use super::super::limits::FrameKind;
use crate::docs::{AppendOutcome, DocId, Snapshot, StoreError, frames as doc_frames};

/// Longest client op id.
const MAX_OP_ID: usize = 128;
/// Longest digest.
const MAX_DIGEST: usize = 128;
/// Longest snapshot key hint.
const MAX_KEY_HINT: usize = 256;

/// A parsed document request.
pub(crate) enum DocRequest {
    Join(Join),
    Submit(Submit),
    Digest(Digest),
    Snapshot(Snap),
}

impl DocRequest {
    /// The request of `kind` in `frame`'s data, or the `invalid` message
    /// telling the client the expected shape.
    pub(crate) fn parse(kind: FrameKind, frame: &ClientFrame) -> Result<DocRequest, &'static str> {
        match kind {
            FrameKind::DocJoin => frame
                .data_as()
                .map(DocRequest::Join)
                .map_err(|_| "doc-join data is {since?, op_id?, snapshot?}"),
            FrameKind::DocSubmit => {
                let submit: Submit =
                    frame.data_as().map_err(|_| "doc-submit data is {base, op_id, payload}")?;
                if submit.op_id.is_empty() || submit.op_id.len() > MAX_OP_ID {
                    return Err("op_id must be 1 to 128 bytes");
                }
                Ok(DocRequest::Submit(submit))
            }
            FrameKind::DocDigest => {
                let digest: Digest = frame.data_as().map_err(|_| "doc-digest data is {seq, kv, digest}")?;
                if digest.digest.is_empty() || digest.digest.len() > MAX_DIGEST {
                    return Err("digest must be 1 to 128 bytes");
                }
                Ok(DocRequest::Digest(digest))
            }
            _ => {
                let snap: Snap =
                    frame.data_as().map_err(|_| "doc-snapshot data is {seq, payload, key_hint?}")?;
                if snap.key_hint.as_ref().is_some_and(|h| h.len() > MAX_KEY_HINT) {
                    return Err("key_hint longer than 256 bytes");
                }
                Ok(DocRequest::Snapshot(snap))
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Join {
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    op_id: Option<String>,
    #[serde(default)]
    snapshot: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct Submit {
    base: u64,
    op_id: String,
    payload: String,
}

#[derive(Deserialize)]
pub(crate) struct Digest {
    seq: u64,
    kv: u32,
    digest: String,
}

#[derive(Deserialize)]
pub(crate) struct Snap {
    seq: u64,
    payload: String,
    #[serde(default)]
    key_hint: Option<String>,
}

/// The op id of a `doc-submit`, if the frame has one (for refusals).
#[derive(Deserialize)]
struct OpIdOnly {
    op_id: String,
}

impl Session {
    pub(in crate::connection) async fn document(&mut self, frame: &ClientFrame, kind: FrameKind) {
        let channel = match frame.channel_name() {
            Ok(channel) => channel,
            Err(err) => return self.doc_error("", "invalid", &err.to_string(), None),
        };
        let name = channel.as_str().to_owned();
        if !(name.starts_with("private-doc-") || name.starts_with("presence-doc-")) {
            let message = "document events need a private-doc- or presence-doc- channel";
            return self.doc_error(&name, "invalid", message, None);
        };
        let Some(presence_user) = self.app.subscription(&self.handle.socket_id, &name) else {
            return self.doc_error(&name, "not_subscribed", "subscribe to the document channel first", None);
        };
        // The whole channel name is the document: `private-doc-x` and
        // `presence-doc-x` are two documents, each behind its own channel
        // authorization (docs/protocol.md).
        let id = DocId::new(self.app.config.id.clone(), name.as_str());
        let author = presence_user.or_else(|| self.app.signed_in_user(&self.handle.socket_id));
        match DocRequest::parse(kind, frame) {
            Err(message) => self.doc_error(&name, "invalid", message, None),
            Ok(DocRequest::Join(join)) => self.doc_join(join, &name, id).await,
            Ok(DocRequest::Submit(submit)) => self.doc_submit(submit, &name, id, author).await,
            Ok(DocRequest::Digest(digest)) => self.doc_digest(digest, &name),
            Ok(DocRequest::Snapshot(snap)) => self.doc_snapshot(snap, &name, id, author).await,
        }
    }

    async fn doc_join(&mut self, join: Join, name: &str, id: DocId) {
        let state = match self.state.sequencer.join(id, join.since, join.op_id, join.snapshot).await {
            Ok(state) => state,
            Err(err) => return self.doc_store_error(name, &err, None),
        };
        // A page is up to a megabyte of JSON: encoded on the blocking pool,
        // not on a runtime worker other connections are waiting for.
        let channel = name.to_owned();
        match tokio::task::spawn_blocking(move || doc_frames::state(&channel, &state)).await {
            Ok(frame) => self.send(frame),
            Err(err) => {
                self.doc_error(name, "storage", &format!("encoding the join answer failed: {err}"), None)
            }
        }
    }

    async fn doc_submit(&mut self, submit: Submit, name: &str, id: DocId, author: Option<String>) {
        if !self.app.can_publish() {
            let message = "cluster broker unreachable: the op was not sequenced; retry";
            return self.doc_error(name, "unavailable", message, Some(&submit.op_id));
        }
        let (app, metrics, handle) = (self.app.clone(), &self.state.metrics, &self.handle);
        // The ack is queued under the document lock, like the broadcast:
        // the author must see it before any later op.
        let user_id = author.clone();
        let broadcast = |seq| {
            let op =
                doc_frames::op(name, seq, submit.base, &submit.op_id, &submit.payload, user_id.as_deref());
            // Sequenced and stored: delivered to this node whatever the bus
            // says (a busy bus is healed by the others' catch-up joins).
            let _ = app.publish(name, &Bytes::from(op), Some(&handle.socket_id), metrics);
            handle.send(Bytes::from(doc_frames::ack(name, &submit.op_id, seq, false)), metrics);
        };
        let (base, op_id, payload) = (submit.base, submit.op_id.clone(), submit.payload.clone());
        match self.state.sequencer.submit(id, base, op_id, payload, author, broadcast).await {
            Ok(AppendOutcome::Appended(_)) => {}
            Ok(AppendOutcome::Duplicate(seq)) => self.send(doc_frames::ack(name, &submit.op_id, seq, true)),
            Err(err) => self.doc_store_error(name, &err, Some(&submit.op_id)),
        }
    }

    fn doc_digest(&mut self, digest: Digest, name: &str) {
        // Relayed, not stored: every client compares it with its own
        // digest at that sequence (the server cannot compute one).
        let relay = doc_frames::digest(name, digest.seq, digest.kv, &digest.digest);
        let sent =
            self.app.publish(name, &Bytes::from(relay), Some(&self.handle.socket_id), &self.state.metrics);
        if sent.is_err() {
            self.doc_error(name, "unavailable", "cluster broker busy: the digest was not relayed", None);
        }
    }

    async fn doc_snapshot(&mut self, snap: Snap, name: &str, id: DocId, author: Option<String>) {
        let seq = snap.seq;
        let snapshot = Snapshot { seq, payload: snap.payload, key_hint: snap.key_hint };
        // Snapshots are kept per uploader: the user when known, else this
        // connection (docs/protocol.md).
        let uploader = match &author {
            Some(user) => format!("user:{user}"),
            None => format!("socket:{}", self.handle.socket_id),
        };
        match self.state.sequencer.snapshot(id, snapshot, uploader).await {
            Ok(()) => self.send(doc_frames::snapshot_stored(name, seq)),
            Err(err) => self.doc_store_error(name, &err, None),
        }
    }

    /// A document request over its rate: `rate_limited`, with the op id of
    /// a submit so its author retries it (docs/protocol.md).
    pub(in crate::connection) fn doc_rate_limited(&mut self, frame: &ClientFrame, kind: FrameKind) {
        let channel = frame.channel.as_deref().unwrap_or_default();
        let op_id = (kind == FrameKind::DocSubmit).then(|| frame.data_as::<OpIdOnly>().ok()).flatten();
        let message = format!("{} rate limit exceeded", kind.name());
        self.doc_error(channel, "rate_limited", &message, op_id.as_ref().map(|o| o.op_id.as_str()));
    }

    fn doc_store_error(&mut self, channel: &str, err: &StoreError, op_id: Option<&str>) {
        let code = match err {
            StoreError::Resync { .. } => "resync",
            StoreError::TooLarge(_) => "too_large",
            StoreError::SnapshotAhead { .. } | StoreError::Invalid(_) => "invalid",
            StoreError::SnapshotStale { .. } => "stale_snapshot",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Quota(_) => "quota",
            _ => {
                tracing::error!(channel, error = %err, "document store failed");
                "storage"
            }
        };
        self.doc_error(channel, code, &err.to_string(), op_id);
    }

    fn doc_error(&mut self, channel: &str, code: &str, message: &str, op_id: Option<&str>) {
        self.send(doc_frames::error(channel, code, message, op_id));
    }
}
