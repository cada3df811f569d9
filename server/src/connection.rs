//! One WebSocket connection: the Pusher protocol from the server's side.
//!
//! Two tasks per connection. The reader parses client frames and acts on
//! them (subscribe, client events, pings); the writer drains the bounded
//! outbound queue to the socket. Either side can end the connection: the
//! reader on EOF, a protocol error or a silent client; anyone holding the
//! [`ConnHandle`] by asking it to close (slow consumer, terminate, shutdown).
//! Event data is never parsed or logged here: client events are forwarded
//! byte for byte.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use fastwebsockets::{FragmentCollectorRead, Frame, OpCode, Payload, Role, WebSocketError};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sealcast_core::protocol::{
    ChannelKind, ChannelName, ClientFrame, PresenceMember, SigninData, SubscribeData, auth, codes,
    server as frames,
};
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info_span, warn};

use crate::docs::{AppendOutcome, DocId, Snapshot, StoreError, frames as doc_frames};
use crate::hub::{App, CloseRequest, ConnHandle, SubscribeError};
use crate::jwt;
use crate::state::ServerState;
use crate::webhooks::HookEvent;

type Stream = TokioIo<Upgraded>;

/// Why the WebSocket is refused before any protocol exchange (sent as
/// `pusher:error` then a close with the same code).
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    /// Pusher code.
    pub code: u16,
    /// Message.
    pub message: &'static str,
}

/// Runs a connection to completion.
pub async fn run(state: Arc<ServerState>, app: Result<Arc<App>, Refusal>, upgrade: UpgradeFut) {
    let ws = match upgrade.await {
        Ok(ws) => ws,
        Err(err) => {
            debug!(error = %err, "websocket upgrade failed");
            return;
        }
    };
    // fastwebsockets reads; writes are ours (see `write_loop`), so the raw
    // stream is split and the library gets only the read half.
    let (read_stream, mut write_stream) = tokio::io::split(ws.into_inner());
    let (mut read_half, _) =
        fastwebsockets::after_handshake_split(read_stream, tokio::io::sink(), Role::Server);
    read_half.set_max_message_size(state.config.max_frame_bytes);
    // Pings and closes come back to us and are answered through the writer.
    read_half.set_auto_pong(false);
    read_half.set_auto_close(false);

    let app = match app {
        Ok(app) => app,
        Err(refusal) => {
            state.metrics.error(refusal.code);
            let _ = refuse(&mut write_stream, refusal).await;
            return;
        }
    };
    let socket_id: Arc<str> = state.next_socket_id().into();
    let span = info_span!("conn", app = %app.config.id, socket_id = %socket_id);
    async move {
        let (handle, out_rx, close_rx) = ConnHandle::new(socket_id.clone(), state.config.max_outbound_queue);
        if !app.connect(handle.clone()) {
            state.metrics.error(codes::OVER_CONNECTION_QUOTA);
            let refusal = Refusal { code: codes::OVER_CONNECTION_QUOTA, message: "over connection quota" };
            let _ = refuse(&mut write_stream, refusal).await;
            return;
        }
        state.metrics.connections.inc();
        state.metrics.connections_total.inc();
        debug!("connected");
        let activity = state.config.activity_timeout.as_secs();
        handle.send(Bytes::from(frames::connection_established(&socket_id, activity)), &state.metrics);

        let writer = tokio::spawn(write_loop(write_stream, out_rx, close_rx.clone()));
        let mut session = Session {
            state: state.clone(),
            app: app.clone(),
            handle: handle.clone(),
            rate: RateLimiter::new(app.config.client_events_per_second),
            doc_rate: RateLimiter::new(app.config.doc_ops_per_second),
        };
        session.read_loop(FragmentCollectorRead::new(read_half), close_rx).await;

        app.disconnect(&socket_id, &state.metrics);
        handle.close(1000, "");
        let _ = writer.await;
        state.metrics.connections.dec();
        debug!("disconnected");
    }
    .instrument(span)
    .await;
}

/// Sends `pusher:error` and a close frame with the refusal's code.
async fn refuse(write: &mut WriteHalf<Stream>, refusal: Refusal) -> std::io::Result<()> {
    let mut out = Vec::new();
    encode_frame(&mut out, OpCode::Text, frames::error(Some(refusal.code), refusal.message).as_bytes());
    encode_close(&mut out, refusal.code, refusal.message);
    write.write_all(&out).await
}

/// Largest batch of frames written with one `write` call.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Drains the outbound queue until a close is requested or the socket fails.
///
/// Frames already queued are coalesced into one buffer and written with a
/// single system call: under fan-out load a connection typically has
/// several frames waiting, and one write per frame would dominate the CPU
/// time. The buffer starts empty and is released after bursts, so idle
/// connections hold no write buffer.
async fn write_loop(
    mut write: WriteHalf<Stream>,
    mut queue: mpsc::Receiver<Bytes>,
    mut close: watch::Receiver<CloseRequest>,
) {
    let mut batch: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            biased;
            changed = close.changed() => {
                let request = *close.borrow();
                if let (Ok(()), Some((code, reason))) = (changed, request) {
                    encode_close(&mut batch, code, reason);
                    let _ = write.write_all(&batch).await;
                }
                let _ = write.shutdown().await;
                return;
            }
            frame = queue.recv() => {
                let Some(frame) = frame else { return };
                encode_queued(&mut batch, &frame);
                while batch.len() < MAX_BATCH_BYTES {
                    match queue.try_recv() {
                        Ok(frame) => encode_queued(&mut batch, &frame),
                        Err(_) => break,
                    }
                }
                if write.write_all(&batch).await.is_err() {
                    return;
                }
                batch.clear();
                if batch.capacity() > 2 * MAX_BATCH_BYTES {
                    batch = Vec::new();
                }
            }
        }
    }
}

/// Appends a queued entry: a text frame, or a pong (see [`PONG_MARKER`]).
fn encode_queued(out: &mut Vec<u8>, entry: &[u8]) {
    match entry.split_first() {
        Some((&PONG_MARKER, payload)) => encode_frame(out, OpCode::Pong, payload),
        _ => encode_frame(out, OpCode::Text, entry),
    }
}

/// Appends one unmasked, unfragmented server frame (RFC 6455 §5.2).
fn encode_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let mut frame = Frame::new(true, opcode, None, Payload::Borrowed(payload));
    let mut head = [0u8; MAX_HEAD_SIZE];
    let len = frame.fmt_head(&mut head);
    out.extend_from_slice(&head[..len]);
    out.extend_from_slice(payload);
}

fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    encode_frame(out, OpCode::Close, &payload);
}

/// A frame header is at most 14 bytes (2 + 8 length + 4 mask).
const MAX_HEAD_SIZE: usize = 14;

/// Queue entries are text frames, except WebSocket pongs, which are queued
/// with this first byte (a text frame is JSON and starts with `{`).
const PONG_MARKER: u8 = 0;

/// What the reader does after a frame.
enum Flow {
    Continue,
    Close(u16, &'static str),
}

struct Session {
    state: Arc<ServerState>,
    app: Arc<App>,
    handle: ConnHandle,
    rate: RateLimiter,
    doc_rate: RateLimiter,
}

impl Session {
    async fn read_loop(
        &mut self,
        mut read: FragmentCollectorRead<tokio::io::ReadHalf<Stream>>,
        mut close: watch::Receiver<CloseRequest>,
    ) {
        let (activity_timeout, pong_timeout) =
            (self.state.config.activity_timeout, self.state.config.pong_timeout);
        // Auto-pong and auto-close are off, so the reader never has frames
        // it must send itself.
        let mut no_obligated_sends = |_| async { Ok::<(), std::io::Error>(()) };
        let mut pinged = false;
        loop {
            let wait = if pinged { pong_timeout } else { activity_timeout };
            let frame = tokio::select! {
                _ = close.changed() => return,
                frame = tokio::time::timeout(wait, read.read_frame(&mut no_obligated_sends)) => frame,
            };
            let frame = match frame {
                Err(_elapsed) if pinged => {
                    self.handle.close(codes::PONG_NOT_RECEIVED, "pong not received");
                    return;
                }
                Err(_elapsed) => {
                    // Quiet for the activity timeout: ask the client to prove it is alive.
                    pinged = true;
                    self.send(frames::ping());
                    continue;
                }
                Ok(Err(err)) => {
                    debug!(error = %err, "read failed");
                    if matches!(err, WebSocketError::FrameTooLarge) {
                        self.handle.close(1009, "message too big");
                    }
                    return;
                }
                Ok(Ok(frame)) => frame,
            };
            pinged = false;
            let flow = match frame.opcode {
                OpCode::Text => {
                    self.state.metrics.messages_in.inc();
                    self.state.metrics.bytes_in.add(frame.payload.len() as u64);
                    self.handle_text(&frame.payload).await
                }
                OpCode::Close => Flow::Close(1000, ""),
                OpCode::Ping => {
                    let mut pong = Vec::with_capacity(frame.payload.len() + 1);
                    pong.push(PONG_MARKER);
                    pong.extend_from_slice(&frame.payload);
                    self.handle.send(Bytes::from(pong), &self.state.metrics);
                    Flow::Continue
                }
                OpCode::Binary => {
                    self.error(None, "binary frames are not part of the Pusher protocol");
                    Flow::Continue
                }
                OpCode::Pong | OpCode::Continuation => Flow::Continue,
            };
            if let Flow::Close(code, reason) = flow {
                self.handle.close(code, reason);
                return;
            }
        }
    }

    async fn handle_text(&mut self, bytes: &[u8]) -> Flow {
        let frame = match ClientFrame::parse(bytes) {
            Ok(frame) => frame,
            Err(err) => {
                warn!(error = %err, "malformed frame");
                self.error(None, "malformed frame: expected a JSON object with a string `event`");
                return Flow::Continue;
            }
        };
        match frame.event.as_str() {
            "pusher:ping" => self.send(frames::pong()),
            "pusher:pong" => {}
            "pusher:subscribe" => self.subscribe(&frame),
            "pusher:unsubscribe" => self.unsubscribe(&frame),
            "pusher:signin" => self.signin(&frame),
            "sealcast:doc-join" | "sealcast:doc-submit" | "sealcast:doc-snapshot" | "sealcast:doc-digest" => {
                self.document(&frame).await
            }
            event if event.starts_with("client-") => self.client_event(&frame),
            event => debug!(event, "ignoring unknown event"),
        }
        Flow::Continue
    }

    fn subscribe(&mut self, frame: &ClientFrame) {
        let data: SubscribeData = match frame.data_as() {
            Ok(data) => data,
            Err(err) => return self.error(None, &err.to_string()),
        };
        let channel = match ChannelName::parse(&data.channel) {
            Ok(channel) => channel,
            Err(err) => {
                return self.subscription_error(&data.channel, "InvalidChannel", &err.to_string(), 400);
            }
        };
        let socket_id = self.handle.socket_id.clone();
        let member = if channel.requires_auth() {
            let Some(auth_value) = data.auth.as_deref() else {
                return self.unauthorized(&channel, "missing `auth` for a private or presence channel");
            };
            let authorized = if jwt::looks_like_jwt(auth_value) && self.app.tokens.is_enabled() {
                self.authorize_token(&channel, auth_value)
            } else {
                self.authorize_signature(&channel, auth_value, data.channel_data.as_deref())
            };
            match authorized {
                Ok(member) => member,
                Err(refusal) => {
                    return match refusal {
                        AuthRefusal::Unauthorized(message) => self.unauthorized(&channel, &message),
                        AuthRefusal::BadPresenceData(message) => {
                            self.subscription_error(channel.as_str(), "InvalidPresenceData", &message, 400)
                        }
                    };
                }
            }
        } else {
            None
        };
        match self.app.subscribe(&socket_id, &channel, member, &self.state.metrics) {
            Ok(()) => debug!(channel = %channel, "subscribed"),
            Err(SubscribeError::PresenceFull) => {
                self.subscription_error(channel.as_str(), "LimitReached", "presence channel is full", 403)
            }
            Err(SubscribeError::NotConnected) => {}
        }
    }

    /// Pusher HMAC authorization; the presence member comes from `channel_data`.
    fn authorize_signature(
        &self,
        channel: &ChannelName,
        auth_value: &str,
        channel_data: Option<&str>,
    ) -> Result<Option<PresenceMember>, AuthRefusal> {
        let config = &self.app.config;
        let presence = channel.kind() == ChannelKind::Presence;
        let channel_data = presence.then(|| channel_data.unwrap_or(""));
        auth::verify_channel_auth(
            &config.key,
            &config.secret,
            &self.handle.socket_id,
            channel.as_str(),
            channel_data,
            auth_value,
        )
        .map_err(|err| AuthRefusal::Unauthorized(err.to_string()))?;
        let Some(channel_data) = channel_data else { return Ok(None) };
        if channel_data.len() > config.max_presence_data_bytes {
            return Err(AuthRefusal::BadPresenceData("channel_data too large".into()));
        }
        PresenceMember::parse(channel_data)
            .map(Some)
            .map_err(|err| AuthRefusal::BadPresenceData(err.to_string()))
    }

    /// JWT authorization; the presence member comes from the token's claims.
    fn authorize_token(
        &self,
        channel: &ChannelName,
        token: &str,
    ) -> Result<Option<PresenceMember>, AuthRefusal> {
        let presence = channel.kind() == ChannelKind::Presence;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let grant = self
            .app
            .tokens
            .verify(token, &self.app.config.id, &self.handle.socket_id, channel.as_str(), presence, now)
            .map_err(|err| AuthRefusal::Unauthorized(err.to_string()))?;
        match (presence, grant.user_id) {
            (true, Some(user_id)) => {
                let info_size = grant.user_info.as_ref().map_or(0, |i| i.get().len());
                if info_size > self.app.config.max_presence_data_bytes {
                    return Err(AuthRefusal::BadPresenceData("user_info too large".into()));
                }
                Ok(Some(PresenceMember { user_id, user_info: grant.user_info }))
            }
            _ => Ok(None),
        }
    }

    fn unsubscribe(&mut self, frame: &ClientFrame) {
        #[derive(serde::Deserialize)]
        struct Data {
            channel: String,
        }
        match frame.data_as::<Data>() {
            Ok(data) => self.app.unsubscribe(&self.handle.socket_id, &data.channel, &self.state.metrics),
            Err(err) => self.error(None, &err.to_string()),
        }
    }

    fn signin(&mut self, frame: &ClientFrame) {
        let data: SigninData = match frame.data_as() {
            Ok(data) => data,
            Err(err) => return self.error(None, &err.to_string()),
        };
        let config = &self.app.config;
        if auth::verify_user_auth(
            &config.key,
            &config.secret,
            &self.handle.socket_id,
            &data.user_data,
            &data.auth,
        )
        .is_err()
        {
            return self.error(Some(codes::UNAUTHORIZED), "user sign-in signature does not match");
        }
        #[derive(serde::Deserialize)]
        struct User {
            id: String,
        }
        match serde_json::from_str::<User>(&data.user_data) {
            Ok(user) if !user.id.is_empty() => {
                self.app.sign_in(&self.handle.socket_id, user.id);
                self.send(frames::signin_success(&data.user_data));
            }
            _ => self.error(
                Some(codes::UNAUTHORIZED),
                "user_data must be a JSON object with a non-empty string `id`",
            ),
        }
    }

    /// Document events on `private-doc-*` / `presence-doc-*` channels the
    /// connection is subscribed to. Payloads are opaque strings.
    async fn document(&mut self, frame: &ClientFrame) {
        let channel = match frame.channel_name() {
            Ok(channel) => channel,
            Err(err) => return self.error(None, &err.to_string()),
        };
        let name = channel.as_str().to_owned();
        if !(name.starts_with("private-doc-") || name.starts_with("presence-doc-")) {
            return self.doc_error(
                &name,
                "invalid",
                "document events need a private-doc- or presence-doc- channel",
                None,
            );
        };
        let Some(presence_user) = self.app.subscription(&self.handle.socket_id, &name) else {
            return self.doc_error(&name, "not_subscribed", "subscribe to the document channel first", None);
        };
        // The whole channel name is the document: `private-doc-x` and
        // `presence-doc-x` are two documents, each behind its own channel
        // authorization (docs/protocol.md).
        let id = DocId::new(self.app.config.id.clone(), name.as_str());
        let op_author = presence_user.or_else(|| self.app.signed_in_user(&self.handle.socket_id));
        match frame.event.as_str() {
            "sealcast:doc-join" => {
                #[derive(serde::Deserialize)]
                struct Join {
                    #[serde(default)]
                    since: Option<u64>,
                    #[serde(default)]
                    op_id: Option<String>,
                    #[serde(default)]
                    snapshot: Option<u64>,
                }
                let Ok(join) = frame.data_as::<Join>() else {
                    return self.doc_error(
                        &name,
                        "invalid",
                        "doc-join data is {since?, op_id?, snapshot?}",
                        None,
                    );
                };
                match self.state.sequencer.join(id, join.since, join.op_id, join.snapshot).await {
                    Ok(state) => self.send(doc_frames::state(&name, &state)),
                    Err(err) => self.doc_store_error(&name, &err, None),
                }
            }
            "sealcast:doc-submit" => {
                #[derive(serde::Deserialize)]
                struct Submit {
                    base: u64,
                    op_id: String,
                    payload: String,
                }
                let Ok(submit) = frame.data_as::<Submit>() else {
                    return self.doc_error(
                        &name,
                        "invalid",
                        "doc-submit data is {base, op_id, payload}",
                        None,
                    );
                };
                if submit.op_id.is_empty() || submit.op_id.len() > 128 {
                    return self.doc_error(&name, "invalid", "op_id must be 1 to 128 bytes", None);
                }
                if !self.doc_rate.allow(Instant::now()) {
                    return self.doc_error(
                        &name,
                        "rate_limited",
                        "document op rate limit exceeded",
                        Some(&submit.op_id),
                    );
                }
                let (app, metrics, author) = (self.app.clone(), &self.state.metrics, &self.handle);
                // The ack is queued under the document lock, like the
                // broadcast: the author must see it before any later op.
                let user_id = op_author.clone();
                let broadcast = |seq| {
                    let op = doc_frames::op(
                        &name,
                        seq,
                        submit.base,
                        &submit.op_id,
                        &submit.payload,
                        user_id.as_deref(),
                    );
                    app.publish(&name, &Bytes::from(op), Some(&author.socket_id), metrics);
                    author.send(Bytes::from(doc_frames::ack(&name, &submit.op_id, seq, false)), metrics);
                };
                let (base, op_id, payload) = (submit.base, submit.op_id.clone(), submit.payload.clone());
                match self.state.sequencer.submit(id, base, op_id, payload, op_author, broadcast).await {
                    Ok(AppendOutcome::Appended(_)) => {}
                    Ok(AppendOutcome::Duplicate(seq)) => {
                        self.send(doc_frames::ack(&name, &submit.op_id, seq, true))
                    }
                    Err(err) => self.doc_store_error(&name, &err, Some(&submit.op_id)),
                }
            }
            "sealcast:doc-digest" => {
                #[derive(serde::Deserialize)]
                struct Digest {
                    seq: u64,
                    kv: u32,
                    digest: String,
                }
                let Ok(digest) = frame.data_as::<Digest>() else {
                    return self.doc_error(&name, "invalid", "doc-digest data is {seq, kv, digest}", None);
                };
                if digest.digest.is_empty() || digest.digest.len() > 128 {
                    return self.doc_error(&name, "invalid", "digest must be 1 to 128 bytes", None);
                }
                // Relayed, not stored: every client compares it with its own
                // digest at that sequence (the server cannot compute one).
                let relay = doc_frames::digest(&name, digest.seq, digest.kv, &digest.digest);
                self.app.publish(
                    &name,
                    &Bytes::from(relay),
                    Some(&self.handle.socket_id),
                    &self.state.metrics,
                );
            }
            _ => {
                #[derive(serde::Deserialize)]
                struct Snap {
                    seq: u64,
                    payload: String,
                    #[serde(default)]
                    key_hint: Option<String>,
                }
                let Ok(snap) = frame.data_as::<Snap>() else {
                    return self.doc_error(
                        &name,
                        "invalid",
                        "doc-snapshot data is {seq, payload, key_hint?}",
                        None,
                    );
                };
                if snap.key_hint.as_ref().is_some_and(|h| h.len() > 256) {
                    return self.doc_error(&name, "invalid", "key_hint longer than 256 bytes", None);
                }
                let seq = snap.seq;
                let snapshot = Snapshot { seq, payload: snap.payload, key_hint: snap.key_hint };
                // Snapshots are kept per uploader: the user when known, else
                // this connection (docs/protocol.md).
                let uploader = match &op_author {
                    Some(user) => format!("user:{user}"),
                    None => format!("socket:{}", self.handle.socket_id),
                };
                match self.state.sequencer.snapshot(id, snapshot, uploader).await {
                    Ok(()) => self.send(doc_frames::snapshot_stored(&name, seq)),
                    Err(err) => self.doc_store_error(&name, &err, None),
                }
            }
        }
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

    fn client_event(&mut self, frame: &ClientFrame) {
        let started = Instant::now();
        let channel = match frame.channel_name() {
            Ok(channel) => channel,
            Err(err) => return self.error(Some(codes::CLIENT_EVENT_REJECTED), &err.to_string()),
        };
        if !self.app.config.enable_client_messages {
            return self.error(Some(codes::CLIENT_EVENT_REJECTED), "client events are disabled for this app");
        }
        if !channel.allows_client_events() {
            return self.error(
                Some(codes::CLIENT_EVENT_REJECTED),
                "client events are only allowed on private and presence channels",
            );
        }
        if frame.event.len() > 200 {
            return self.error(Some(codes::CLIENT_EVENT_REJECTED), "event name longer than 200 characters");
        }
        let size = frame.data.as_ref().map_or(0, |d| d.get().len());
        if size > self.app.config.max_event_payload_bytes {
            return self.error(Some(codes::CLIENT_EVENT_REJECTED), "event data over the payload limit");
        }
        let Some(user_id) = self.app.subscription(&self.handle.socket_id, channel.as_str()) else {
            return self.error(Some(codes::CLIENT_EVENT_REJECTED), "not subscribed to this channel");
        };
        if !self.rate.allow(Instant::now()) {
            return self.error(Some(codes::CLIENT_EVENT_RATE_LIMIT), "client event rate limit exceeded");
        }
        if !self.app.can_publish() {
            return self.error(
                Some(codes::CLIENT_EVENT_REJECTED),
                "cluster broker unreachable: the event was not sent; retry",
            );
        }
        let out =
            frames::channel_event(&frame.event, channel.as_str(), frame.data.as_deref(), user_id.as_deref());
        self.app.publish(
            channel.as_str(),
            &Bytes::from(out),
            Some(&self.handle.socket_id),
            &self.state.metrics,
        );
        self.state.metrics.fanout_latency.observe(started.elapsed());
        if self.app.webhooks.wants_client_events() {
            let event = HookEvent::ClientEvent {
                channel: channel.as_str().to_owned(),
                event: frame.event.clone(),
                data: frame.data.as_ref().map_or_else(String::new, |d| d.get().to_owned()),
                socket_id: self.handle.socket_id.to_string(),
                user_id,
            };
            self.app.webhooks.emit(event, &self.state.metrics);
        }
    }

    fn unauthorized(&mut self, channel: &ChannelName, message: &str) {
        warn!(channel = %channel, "subscription refused: {message}");
        self.state.metrics.error(codes::UNAUTHORIZED);
        self.send(frames::subscription_error(channel.as_str(), "AuthError", message, 401));
    }

    fn subscription_error(&mut self, channel: &str, kind: &str, message: &str, status: u16) {
        self.send(frames::subscription_error(channel, kind, message, status));
    }

    fn error(&mut self, code: Option<u16>, message: &str) {
        if let Some(code) = code {
            self.state.metrics.error(code);
        }
        self.send(frames::error(code, message));
    }

    fn send(&self, frame: String) {
        self.handle.send(Bytes::from(frame), &self.state.metrics);
    }
}

/// Why a subscription was not authorized.
enum AuthRefusal {
    /// Bad or missing signature or token (4009 / HTTP-style 401).
    Unauthorized(String),
    /// Authorized, but the presence member data is unusable (400).
    BadPresenceData(String),
}

/// A token bucket: `rate` client events per second, bursts up to `rate`.
struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimiter {
    fn new(per_second: u32) -> RateLimiter {
        let rate = f64::from(per_second.max(1));
        RateLimiter { rate, tokens: rate, last: None }
    }

    fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.rate);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rate_limiter_allows_bursts_then_refills() {
        let mut limiter = RateLimiter::new(3);
        let t0 = Instant::now();
        assert!(limiter.allow(t0) && limiter.allow(t0) && limiter.allow(t0));
        assert!(!limiter.allow(t0));
        assert!(limiter.allow(t0 + Duration::from_millis(340)));
        assert!(!limiter.allow(t0 + Duration::from_millis(341)));
    }
}
