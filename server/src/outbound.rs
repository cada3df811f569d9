//! One connection's outbound side: a queue bounded in frames and in bytes,
//! and the writer task that drains it to the socket.
//!
//! Anyone holding a [`ConnHandle`] (the fan-out, the connection's own
//! handlers, the HTTP API's terminate) queues frames without waiting: a
//! queue over either bound marks the connection a slow consumer and closes
//! it with 4100 rather than buffering without bound or slowing the sender.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use sealcast_core::protocol::codes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;

/// A request to close a connection: WebSocket close code and reason.
pub type CloseRequest = Option<(u16, &'static str)>;

/// What the writer sends.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A text frame (a Pusher protocol message).
    Text(Bytes),
    /// A WebSocket pong answering a ping, with its payload.
    Pong(Bytes),
}

impl Outbound {
    fn len(&self) -> usize {
        match self {
            Outbound::Text(bytes) | Outbound::Pong(bytes) => bytes.len(),
        }
    }
}

/// The bounds of one connection's queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Frames queued at most.
    pub frames: usize,
    /// Payload bytes queued at most.
    pub bytes: usize,
}

#[derive(Debug)]
struct Shared {
    close: watch::Sender<CloseRequest>,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
}

/// A handle to one connection's outbound side.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    /// The connection's socket id.
    pub socket_id: Arc<str>,
    tx: mpsc::Sender<Outbound>,
    shared: Arc<Shared>,
}

/// The writer's ends of a connection's queue.
#[derive(Debug)]
pub struct QueueReceiver {
    rx: mpsc::Receiver<Outbound>,
    shared: Arc<Shared>,
}

impl ConnHandle {
    /// A handle, the receiving end of its queue, and the receiver of a
    /// close request.
    pub fn new(
        socket_id: Arc<str>,
        limits: QueueLimits,
    ) -> (ConnHandle, QueueReceiver, watch::Receiver<CloseRequest>) {
        let (tx, rx) = mpsc::channel(limits.frames.max(1));
        let (close, close_rx) = watch::channel(None);
        let shared = Arc::new(Shared { close, queued_bytes: AtomicUsize::new(0), max_bytes: limits.bytes });
        (ConnHandle { socket_id, tx, shared: shared.clone() }, QueueReceiver { rx, shared }, close_rx)
    }

    /// Queues a text frame; see [`ConnHandle::queue`].
    pub fn send(&self, frame: Bytes, metrics: &Metrics) -> bool {
        self.queue(Outbound::Text(frame), metrics)
    }

    /// Queues an entry; over the queue's frame or byte bound the connection
    /// is closed as a slow consumer (4100). False when it was not queued.
    pub fn queue(&self, entry: Outbound, metrics: &Metrics) -> bool {
        let len = entry.len();
        let before = self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > self.shared.max_bytes {
            self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.slow_consumer(metrics, "slow consumer: outbound bytes over the limit");
            return false;
        }
        match self.tx.try_send(entry) {
            Ok(()) => true,
            Err(err) => {
                self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                if matches!(err, mpsc::error::TrySendError::Full(_)) {
                    self.slow_consumer(metrics, "slow consumer: outbound queue full");
                }
                false
            }
        }
    }

    fn slow_consumer(&self, metrics: &Metrics, reason: &'static str) {
        if self.close(codes::OVER_CAPACITY, reason) {
            metrics.slow_consumers.inc();
        }
    }

    /// Asks the connection to close with `code` (first request wins; true
    /// for the first).
    pub fn close(&self, code: u16, reason: &'static str) -> bool {
        self.shared.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some((code, reason));
                true
            } else {
                false
            }
        })
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed)
    }
}

/// How long the last frames and the close frame may take to write.
const CLOSE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Largest batch of frames written with one `write` call.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Drains the queue into `write` until a close is requested or the socket
/// fails.
///
/// Frames already queued are coalesced into one buffer and written with a
/// single system call: under fan-out load a connection typically has
/// several frames waiting, and one write per frame would dominate the CPU
/// time. The buffer starts empty and is released after bursts, so idle
/// connections hold no write buffer.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut queue: QueueReceiver,
    mut close: watch::Receiver<CloseRequest>,
) {
    let mut batch: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            biased;
            changed = close.changed() => {
                let request = *close.borrow();
                if let (Ok(()), Some((code, reason))) = (changed, request) {
                    // What was already queued goes first (up to one batch:
                    // typically the error that explains the close), then
                    // the close frame; a peer that does not read gets
                    // [`CLOSE_WRITE_TIMEOUT`], not forever.
                    while batch.len() < MAX_BATCH_BYTES {
                        match queue.rx.try_recv() {
                            Ok(entry) => encode(&mut batch, &entry),
                            Err(_) => break,
                        }
                    }
                    encode_close(&mut batch, code, reason);
                    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write.write_all(&batch)).await;
                }
                let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write.shutdown()).await;
                return;
            }
            entry = queue.rx.recv() => {
                let Some(entry) = entry else { return };
                let mut taken = entry.len();
                encode(&mut batch, &entry);
                while batch.len() < MAX_BATCH_BYTES {
                    match queue.rx.try_recv() {
                        Ok(entry) => {
                            taken += entry.len();
                            encode(&mut batch, &entry);
                        }
                        Err(_) => break,
                    }
                }
                // Counted as written once in the batch: the batch is bounded
                // by MAX_BATCH_BYTES plus one frame.
                queue.shared.queued_bytes.fetch_sub(taken, Ordering::Relaxed);
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

fn encode(out: &mut Vec<u8>, entry: &Outbound) {
    match entry {
        Outbound::Text(payload) => encode_frame(out, TEXT, payload),
        Outbound::Pong(payload) => encode_frame(out, PONG, payload),
    }
}

const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PONG: u8 = 0xA;

/// Appends one unmasked, unfragmented server frame (RFC 6455 §5.2).
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends a text frame.
pub fn encode_text(out: &mut Vec<u8>, payload: &[u8]) {
    encode_frame(out, TEXT, payload);
}

/// Appends a close frame with `code` and `reason` (truncated to fit the
/// 125-byte control frame limit).
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(out, CLOSE, &payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(frames: usize, bytes: usize) -> (ConnHandle, QueueReceiver, watch::Receiver<CloseRequest>) {
        ConnHandle::new("1.1".into(), QueueLimits { frames, bytes })
    }

    #[test]
    fn over_the_byte_bound_closes_as_slow_consumer() {
        let metrics = Metrics::default();
        let (conn, _rx, close) = handle(100, 1000);
        assert!(conn.send(Bytes::from(vec![b'x'; 600]), &metrics));
        assert!(!conn.send(Bytes::from(vec![b'x'; 600]), &metrics));
        assert_eq!(
            *close.borrow(),
            Some((codes::OVER_CAPACITY, "slow consumer: outbound bytes over the limit"))
        );
        assert_eq!(conn.queued_bytes(), 600);
        assert_eq!(metrics.slow_consumers.get(), 1);
    }

    #[test]
    fn over_the_frame_bound_closes_as_slow_consumer() {
        let metrics = Metrics::default();
        let (conn, _rx, close) = handle(2, 1 << 20);
        for _ in 0..2 {
            assert!(conn.send(Bytes::from_static(b"{}"), &metrics));
        }
        assert!(!conn.send(Bytes::from_static(b"{}"), &metrics));
        assert_eq!(close.borrow().map(|c| c.0), Some(codes::OVER_CAPACITY));
        assert_eq!(conn.queued_bytes(), 4);
    }

    #[tokio::test]
    async fn the_writer_returns_the_bytes_it_wrote() {
        let metrics = Metrics::default();
        let (conn, rx, close) = handle(10, 1000);
        conn.send(Bytes::from_static(b"{\"a\":1}"), &metrics);
        conn.queue(Outbound::Pong(Bytes::from_static(b"p")), &metrics);
        let (client, mut server) = tokio::io::duplex(1024);
        let writer = tokio::spawn(write_loop(client, rx, close));
        let mut got = [0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut got).await.unwrap();
        assert_eq!(&got, b"\x81\x07{\"a\":1}\x8a\x01p");
        assert_eq!(conn.queued_bytes(), 0);
        conn.close(1000, "");
        writer.await.unwrap();
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let mut out = Vec::new();
        encode_close(&mut out, 4100, &"é".repeat(100));
        assert!(out.len() <= 2 + 125 && out[1] as usize == out.len() - 2);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }
}
