//! One client connection: the Pusher protocol from the server's side, over
//! the WebSocket transport ([`crate::ws`]).
//!
//! Two tasks per connection. The reader ([`MessageReader`], budgeted in
//! bytes) turns the socket into messages; each is rate checked
//! ([`FrameLimits`], one bucket per [`FrameKind`]) and handed to the handler
//! of its command, one file each in `cmd/` (subscribe, signin, client
//! event, document), each owning its checks. The connection's queue,
//! bounded in frames and bytes, is written by whoever finds it idle; the
//! writer task ([`crate::ws::outbound::write_loop`]) takes over when the socket
//! is full, and sends the close frame. Either side can end the connection: the reader on
//! EOF, a protocol error, repeated abuse or a silent client; anyone holding
//! the [`ConnHandle`] by asking it to close (slow consumer, terminate,
//! shutdown). Event data is never parsed or logged here: client events are
//! forwarded byte for byte.

mod cmd;
mod error;
pub mod limits;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use hyper_util::rt::TokioIo;
use sealcast_core::protocol::{ClientFrame, client, codes, server as frames};
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{Instrument, debug, info_span};

pub use self::error::ServerError;
use self::limits::{FrameKind, FrameLimits, Verdict};
use crate::app::{App, ConnectRefused};
use crate::state::ServerState;
use crate::warn_throttled;
use crate::ws::frame;
use crate::ws::outbound::{self, CloseRequest, ConnHandle, Outbound, QueueLimits, Socket};
use crate::ws::reader::{Message, MessageReader, ReadError};

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
    // The library did the handshake; reading and writing frames are ours
    // (`reader`, `outbound`), so the budgets hold across fragments, and on
    // the TCP socket itself, so the fan-out can write into it directly (on
    // TLS, through rustls: `outbound::Socket`).
    let upgraded = ws.into_inner().into_inner();
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_split();
            return serve(state, app, read, Socket::Tcp(write), &parts.read_buf).await;
        }
        Err(upgraded) => upgraded,
    };
    match upgraded.downcast::<TokioIo<tokio_rustls::server::TlsStream<TcpStream>>>() {
        Ok(parts) => {
            let (read, write) = tokio::io::split(parts.io.into_inner());
            let write = Socket::Tls(tokio::sync::Mutex::new(write));
            serve(state, app, read, write, &parts.read_buf).await
        }
        Err(_) => tracing::error!("upgraded connection is neither TCP nor TLS over TCP"),
    }
}

/// Serves an upgraded connection: `read` its input, `write_stream` where
/// its frames go, `early` what the client sent right after its upgrade
/// request.
async fn serve<R: AsyncRead + Unpin>(
    state: Arc<ServerState>,
    app: Result<Arc<App>, Refusal>,
    mut read_stream: R,
    write_stream: Socket,
    early: &[u8],
) {
    let mut reader = MessageReader::new(state.config.max_frame_bytes);
    // Copied: the HTTP read buffer they sit in is freed with the upgrade.
    reader.push(early);
    let app = match app {
        Ok(app) => app,
        Err(refusal) => {
            state.metrics.error(refusal.code);
            refuse(&write_stream, refusal).await;
            return;
        }
    };
    let socket_id: Arc<str> = state.next_socket_id().into();
    let span = info_span!("conn", app = %app.id, socket_id = %socket_id);
    async move {
        let limits =
            QueueLimits { frames: state.config.max_outbound_queue, bytes: state.config.max_outbound_bytes };
        let (handle, close_rx) = ConnHandle::new(socket_id.clone(), Some(write_stream), limits);
        if let Err(refused) = app.connect(handle.clone()) {
            let (code, message) = match refused {
                ConnectRefused::OverQuota => (codes::OVER_CONNECTION_QUOTA, "over connection quota"),
                ConnectRefused::AppRemoved => (codes::APP_DOES_NOT_EXIST, "app does not exist"),
            };
            state.metrics.error(code);
            handle.send(Bytes::from(frames::error(Some(code), message)), &state.metrics);
            handle.close(code, message);
            outbound::write_loop(handle, close_rx).await;
            return;
        }
        state.metrics.connections.inc();
        state.metrics.connections_total.inc();
        debug!("connected");
        let activity = state.config.activity_timeout.as_secs();
        handle.send(Bytes::from(frames::connection_established(&socket_id, activity)), &state.metrics);

        let writer = tokio::spawn(outbound::write_loop(handle.clone(), close_rx.clone()));
        let mut session = Session {
            limits: FrameLimits::new(&app.config()),
            state: state.clone(),
            app: app.clone(),
            handle: handle.clone(),
        };
        session.read_loop(&mut reader, &mut read_stream, close_rx).await;

        app.disconnect(&socket_id, &state.metrics);
        handle.close(1000, "");
        let _ = writer.await;
        // The close frame and FIN are out; what the client still sends is
        // read and dropped until it closes too (bounded): closing a socket
        // with unread input sends a reset, and a reset can make the
        // client's TCP stack discard the close frame and its code.
        linger(&mut read_stream, state.config.close_linger, state.config.close_linger_bytes).await;
        state.metrics.connections.dec();
        debug!("disconnected");
    }
    .instrument(span)
    .await;
}

/// Sends `pusher:error` and a close frame with the refusal's code.
async fn refuse(write: &Socket, refusal: Refusal) {
    let mut out = Vec::new();
    frame::encode_text(&mut out, frames::error(Some(refusal.code), refusal.message).as_bytes());
    frame::encode_close(&mut out, refusal.code, refusal.message);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, outbound::write_all(write, &out)).await;
    outbound::shutdown_write(write).await;
}

/// How long a refusal may take to write.
const REFUSAL_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and drops input until the client closes, for at most `time` and
/// `bytes` (`close_linger_ms`, `close_linger_bytes`).
async fn linger<R: AsyncRead + Unpin>(read: &mut R, time: std::time::Duration, bytes: usize) {
    use tokio::io::AsyncReadExt;
    // On the heap, and only now: a buffer in the future itself would make
    // every connection's task that much larger for its whole life.
    let mut sink = vec![0u8; 4096];
    let mut left = bytes;
    let _ = tokio::time::timeout(time, async {
        while left > 0 {
            match read.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// What the reader does after a message.
enum Flow {
    Continue,
    Close(u16, &'static str),
}

/// Closes a connection that kept sending after its refusals.
const ABUSE: Flow = Flow::Close(codes::CLIENT_EVENT_RATE_LIMIT, "rate limits exceeded repeatedly");

/// One connection's protocol state, shared by the command handlers.
struct Session {
    state: Arc<ServerState>,
    app: Arc<App>,
    handle: ConnHandle,
    limits: FrameLimits,
}

impl Session {
    async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut MessageReader,
        read: &mut R,
        mut close: watch::Receiver<CloseRequest>,
    ) {
        let (activity_timeout, pong_timeout) =
            (self.state.config.activity_timeout, self.state.config.pong_timeout);
        let mut pinged = false;
        // Authorized connections: signed in by then, or closed with 4009.
        let mut signin_deadline = Some(self.app.config().require_signin_secs)
            .filter(|secs| *secs > 0)
            .map(|secs| tokio::time::Instant::now() + std::time::Duration::from_secs(secs));
        loop {
            let wait = if pinged { pong_timeout } else { activity_timeout };
            let message = tokio::select! {
                _ = close.changed() => return,
                // (The read is cancellation safe: what it received stays
                // in the reader's buffer.)
                () = crate::time::sleep_until(signin_deadline) => {
                    signin_deadline = None;
                    if self.app.signed_in_user(&self.handle.socket_id).is_none() {
                        self.handle.close(codes::UNAUTHORIZED, "connection not authorized within timeout");
                        return;
                    }
                    continue;
                }
                message = tokio::time::timeout(wait, reader.read(read)) => message,
            };
            let message = match message {
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
                Ok(Ok(None)) => return,
                Ok(Err(err)) => {
                    self.protocol_violation(err);
                    return;
                }
                Ok(Ok(Some(message))) => message,
            };
            pinged = false;
            if message == Message::Close {
                self.handle.close(1000, "");
                return;
            }
            let now = Instant::now();
            let flow = match self.limits.frame(now) {
                Verdict::Allow => self.handle_message(message, now).await,
                Verdict::Refuse => {
                    self.state.metrics.rate_limited.inc();
                    self.error(&ServerError::FrameRateLimited);
                    Flow::Continue
                }
                Verdict::Close => ABUSE,
            };
            if let Flow::Close(code, reason) = flow {
                self.handle.close(code, reason);
                return;
            }
        }
    }

    fn protocol_violation(&self, err: ReadError) {
        self.state.metrics.protocol_errors.inc();
        warn_throttled!(error = %err, "closing a connection that broke the WebSocket protocol");
        self.handle.close(err.close_code(), err.close_reason());
    }

    async fn handle_message(&mut self, message: Message, now: Instant) -> Flow {
        match message {
            Message::Text(bytes) => {
                self.state.metrics.messages_in.inc();
                self.state.metrics.bytes_in.add(bytes.len() as u64);
                self.handle_text(&bytes, now).await
            }
            Message::Ping(payload) => self.rated(FrameKind::Ping, now, |session| {
                session.handle.queue(Outbound::Pong(payload), &session.state.metrics);
            }),
            Message::Binary => self.rated(FrameKind::Other, now, |session| {
                session.error(&ServerError::Binary);
            }),
            Message::Pong => self.rated(FrameKind::Other, now, |_| {}),
            // Handled before the rate check (a close is never refused).
            Message::Close => Flow::Close(1000, ""),
        }
    }

    /// Runs `handle` if `kind`'s bucket has a token; refuses otherwise.
    fn rated(&mut self, kind: FrameKind, now: Instant, handle: impl FnOnce(&mut Session)) -> Flow {
        match self.limits.kind(kind, now) {
            Verdict::Allow => handle(self),
            Verdict::Refuse => {
                self.state.metrics.rate_limited.inc();
                self.error(&ServerError::RateLimited(kind));
            }
            Verdict::Close => return ABUSE,
        }
        Flow::Continue
    }

    async fn handle_text(&mut self, bytes: &[u8], now: Instant) -> Flow {
        let frame = match ClientFrame::parse(bytes) {
            Ok(frame) => frame,
            Err(err) => {
                warn_throttled!(error = %err, "malformed frame");
                return self.rated(FrameKind::Other, now, |session| {
                    session.error(&ServerError::Malformed);
                });
            }
        };
        let kind = FrameKind::of_event(&frame.event);
        match self.limits.kind(kind, now) {
            Verdict::Allow => {}
            Verdict::Refuse => {
                self.rate_limited(kind, &frame);
                return Flow::Continue;
            }
            Verdict::Close => return ABUSE,
        }
        match kind {
            FrameKind::Ping if frame.event == client::PING => self.send(frames::pong()),
            FrameKind::Subscribe if frame.event == client::SUBSCRIBE => return self.subscribe(&frame, now),
            FrameKind::Subscribe => return self.unsubscribe(&frame, now),
            FrameKind::Signin => return self.signin(&frame, now),
            FrameKind::ClientEvent => self.client_event(&frame),
            FrameKind::DocSubmit | FrameKind::DocJoin | FrameKind::DocDigest | FrameKind::DocSnapshot => {
                self.document(&frame).await
            }
            FrameKind::History => self.history(&frame),
            FrameKind::KeyDirectory => self.key_directory(&frame),
            FrameKind::Ping | FrameKind::Other => {
                if frame.event != client::PONG {
                    debug!(event = %frame.event, "ignoring unknown event");
                }
            }
        }
        Flow::Continue
    }

    /// Tells the client a frame of `kind` was refused for its rate, in the
    /// reply shape the frame's protocol expects.
    fn rate_limited(&mut self, kind: FrameKind, frame: &ClientFrame) {
        self.state.metrics.rate_limited.inc();
        if matches!(
            kind,
            FrameKind::DocSubmit | FrameKind::DocJoin | FrameKind::DocDigest | FrameKind::DocSnapshot
        ) {
            return self.doc_rate_limited(frame, kind);
        }
        if kind == FrameKind::History {
            return self.history_rate_limited(frame);
        }
        if kind == FrameKind::KeyDirectory {
            return self.key_directory_rate_limited(frame);
        }
        self.error(&ServerError::RateLimited(kind));
    }

    /// A failed authorization costs a strike (forged tokens are expensive
    /// to check); `Flow::Close` once they are used up.
    fn strike(&mut self, now: Instant) -> Flow {
        if self.limits.strike(now) { Flow::Continue } else { ABUSE }
    }

    /// The frame's `data` as a `T`; `None` after telling the client it
    /// does not have that shape.
    fn data_or_refuse<T: for<'de> serde::Deserialize<'de>>(&self, frame: &ClientFrame) -> Option<T> {
        match frame.data_as() {
            Ok(data) => Some(data),
            Err(err) => {
                self.error(&ServerError::BadData(err.to_string()));
                None
            }
        }
    }

    fn error(&self, error: &ServerError) {
        if let Some(code) = error.code() {
            self.state.metrics.error(code);
        }
        self.send(frames::error(error.code(), &error.to_string()));
    }

    fn send(&self, frame: String) {
        self.handle.send(Bytes::from(frame), &self.state.metrics);
    }
}
