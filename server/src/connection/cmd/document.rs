//! Document requests on `private-doc-*` / `presence-doc-*` channels the
//! connection is subscribed to (docs/protocol.md, "Documents"): join,
//! submit, digest, snapshot. Payloads are opaque strings, never read. The
//! messages' names and shapes are `sealcast_core::protocol::doc`'s.

use bytes::Bytes;
use sealcast_core::protocol::ClientFrame;
use sealcast_core::protocol::doc::{
    self, Ack, DocError, DocErrorCode, DocReply, DocRequest, Join, SequencedOp, SnapshotStored,
    SnapshotUpload, Submit,
};

use super::super::Session;
use super::super::limits::FrameKind;
use crate::docs::{AppendOutcome, DocId, JoinState, Snapshot, StoreError};

impl Session {
    pub(in crate::connection) async fn document(&mut self, frame: &ClientFrame) {
        let channel = match frame.channel_name() {
            Ok(channel) => channel,
            Err(err) => {
                return self.doc_error("", &frame.event, DocErrorCode::Invalid, &err.to_string(), None);
            }
        };
        let name = channel.as_str().to_owned();
        if doc::doc_id_of(&name).is_none() {
            let message = "document events need a private-doc- or presence-doc- channel";
            return self.doc_error(&name, &frame.event, DocErrorCode::Invalid, message, None);
        };
        let Some(presence_user) = self.app.subscription(&self.handle.socket_id, &name) else {
            let message = "subscribe to the document channel first";
            return self.doc_error(&name, &frame.event, DocErrorCode::NotSubscribed, message, None);
        };
        // The whole channel name is the document: `private-doc-x` and
        // `presence-doc-x` are two documents, each behind its own channel
        // authorization (docs/protocol.md).
        let id = DocId::new(self.app.id.clone(), name.as_str());
        let author = presence_user.or_else(|| self.app.signed_in_user(&self.handle.socket_id));
        match DocRequest::parse(frame) {
            Err(err) => self.doc_error(&name, &frame.event, DocErrorCode::Invalid, &err.to_string(), None),
            Ok(DocRequest::Join(join)) => self.doc_join(join, &name, id),
            Ok(DocRequest::Submit(submit)) => self.doc_submit(submit, &name, id, author).await,
            Ok(DocRequest::Digest(digest)) => {
                // Relayed, not stored: every client compares it with its own
                // digest at that sequence (the server cannot compute one).
                let relay = Bytes::from(DocReply::Digest(digest).encode(&name));
                let sent = self.app.publish(&name, &relay, Some(&self.handle.socket_id), &self.state.metrics);
                if sent.is_err() {
                    self.doc_error(
                        &name,
                        doc::DIGEST,
                        DocErrorCode::Unavailable,
                        "cluster broker busy: the digest was not relayed",
                        None,
                    );
                }
            }
            Ok(DocRequest::Snapshot(snap)) => self.doc_snapshot(snap, &name, id, author).await,
        }
    }

    /// Answered by a task of its own: the join may wait in the app's line
    /// (docs::slots), and this connection's other frames — its ops, acks,
    /// pings — go on meanwhile. Its answer is queued like any frame.
    fn doc_join(&mut self, join: Join, name: &str, id: DocId) {
        use tracing::Instrument;
        let (state, handle, channel) = (self.state.clone(), self.handle.clone(), name.to_owned());
        let task = async move {
            let encoding = channel.clone();
            let encode = move |joined: JoinState| DocReply::State(joined.into_wire()).encode(&encoding);
            let frame = match state.sequencer.join(id, &handle.socket_id, join, encode).await {
                Ok(frame) => frame,
                Err(err) => store_error_frame(&channel, doc::JOIN, &err, None),
            };
            handle.send(Bytes::from(frame), &state.metrics);
        };
        tokio::spawn(task.instrument(tracing::Span::current()));
    }

    async fn doc_submit(&mut self, submit: Submit, name: &str, id: DocId, author: Option<String>) {
        if !self.app.can_publish() {
            let message = "cluster broker unreachable: the op was not sequenced; retry";
            return self.doc_error(
                name,
                doc::SUBMIT,
                DocErrorCode::Unavailable,
                message,
                Some(&submit.op_id),
            );
        }
        let (app, metrics, handle) = (self.app.clone(), &self.state.metrics, &self.handle);
        let ack =
            |seq, duplicate| DocReply::Ack(Ack { op_id: submit.op_id.clone(), seq, duplicate }).encode(name);
        // The ack is queued under the document lock, like the broadcast:
        // the author must see it before any later op.
        let broadcast = |seq| {
            let op = DocReply::Op(SequencedOp {
                seq,
                base: submit.base,
                op_id: submit.op_id.clone(),
                payload: submit.payload.clone(),
                user_id: author.clone(),
            });
            // Sequenced and stored: delivered to this node whatever the bus
            // says (a busy bus is healed by the others' catch-up joins).
            let _ = app.publish(name, &Bytes::from(op.encode(name)), Some(&handle.socket_id), metrics);
            handle.send(Bytes::from(ack(seq, false)), metrics);
        };
        let (base, op_id, payload) = (submit.base, submit.op_id.clone(), submit.payload.clone());
        match self.state.sequencer.submit(id, base, op_id, payload, author.clone(), broadcast).await {
            Ok(AppendOutcome::Appended(_)) => {}
            Ok(AppendOutcome::Duplicate(seq)) => self.send(ack(seq, true)),
            Err(err) => self.doc_store_error(name, doc::SUBMIT, &err, Some(&submit.op_id)),
        }
    }

    async fn doc_snapshot(&mut self, snap: SnapshotUpload, name: &str, id: DocId, author: Option<String>) {
        let seq = snap.seq;
        let snapshot = Snapshot { seq, payload: snap.payload, key_hint: snap.key_hint };
        // Snapshots are kept per uploader: the user when known, else this
        // connection (docs/protocol.md).
        let uploader = match &author {
            Some(user) => format!("user:{user}"),
            None => format!("socket:{}", self.handle.socket_id),
        };
        match self.state.sequencer.snapshot(id, snapshot, uploader).await {
            Ok(()) => self.send(DocReply::SnapshotStored(SnapshotStored { seq }).encode(name)),
            Err(err) => self.doc_store_error(name, doc::SNAPSHOT, &err, None),
        }
    }

    /// A document request over its rate: `rate_limited`, with the op id of
    /// a submit so its author retries it (docs/protocol.md).
    pub(in crate::connection) fn doc_rate_limited(&mut self, frame: &ClientFrame, kind: FrameKind) {
        let channel = frame.channel.as_deref().unwrap_or_default();
        let op_id = match DocRequest::parse(frame) {
            Ok(DocRequest::Submit(submit)) => Some(submit.op_id),
            _ => None,
        };
        let message = format!("{} rate limit exceeded", kind.name());
        self.doc_error(channel, &frame.event, DocErrorCode::RateLimited, &message, op_id.as_deref());
    }

    fn doc_store_error(&mut self, channel: &str, request: &str, err: &StoreError, op_id: Option<&str>) {
        self.send(store_error_frame(channel, request, err, op_id));
    }

    /// Refuses `request` (its event name) with `code`.
    fn doc_error(
        &mut self,
        channel: &str,
        request: &str,
        code: DocErrorCode,
        message: &str,
        op_id: Option<&str>,
    ) {
        self.send(error_frame(channel, request, code, message, op_id));
    }
}

/// The refusal of `request` (its event name) with `code`.
fn error_frame(
    channel: &str,
    request: &str,
    code: DocErrorCode,
    message: &str,
    op_id: Option<&str>,
) -> String {
    let error = DocError {
        code,
        message: message.to_owned(),
        op_id: op_id.map(str::to_owned),
        request: Some(request.to_owned()),
    };
    DocReply::Error(error).encode(channel)
}

/// The refusal for a store failure (logged when the store itself failed).
fn store_error_frame(channel: &str, request: &str, err: &StoreError, op_id: Option<&str>) -> String {
    if let StoreError::Backend(_) = err {
        tracing::error!(channel, error = %err, "document store failed");
    }
    error_frame(channel, request, err.code(), &err.to_string(), op_id)
}
