//! One connection's outbound side: a queue bounded in frames and in bytes,
//! written to the socket by whoever finds it idle.
//!
//! Anyone holding a [`ConnHandle`] (the fan-out, the connection's own
//! handlers, the HTTP API's terminate) queues frames without waiting: a
//! queue over either bound marks the connection a slow consumer and closes
//! it with 4100 rather than buffering without bound or slowing the sender.
//!
//! Writing: the queue has one writer at a time (`Writer`). A sender that
//! finds the queue idle becomes its writer and writes straight into the
//! socket with non-blocking `writev`s, from its own thread: at a realistic
//! event rate a frame costs one system call and no task wake-up. A sender
//! that finds a writer at work only appends; the writer takes every frame
//! queued before it stops, so a busy connection gets batches of frames per
//! system call. When the socket is full the writing is handed to the
//! connection's writer task ([`write_loop`]), which waits for the socket
//! to drain. The fan-out queues under the registry's lock and the channel's
//! order lock (the order) and writes after them ([`Fanout`]), splitting
//! large fan-outs across worker threads.
//!
//! A TLS connection ([`Socket::Tls`]) is written by its writer task alone:
//! frames go through rustls, which encrypts them into its own buffer, so a
//! sender only queues and wakes the task.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use sealcast_core::protocol::codes;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;
use crate::ws::frame::{PONG, TEXT, frame_header};

mod batch;
mod fanout;
mod writer;

use batch::{Batch, Via};
pub use fanout::Fanout;
pub use writer::{shutdown_write, write_all, write_loop};

/// Where a connection's frames are written.
#[derive(Debug)]
pub enum Socket {
    /// Plain TCP: senders write into it from their own threads.
    Tcp(OwnedWriteHalf),
    /// TLS: the writer task writes through rustls (locked by it alone, and
    /// at the close).
    Tls(tokio::sync::Mutex<TlsWriter>),
}

/// The write half of a TLS connection.
pub type TlsWriter = tokio::io::WriteHalf<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

/// A request to close a connection: WebSocket close code and reason.
pub type CloseRequest = Option<(u16, &'static str)>;

/// What the connection sends.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A text frame (a Pusher protocol message).
    Text(Bytes),
    /// A WebSocket pong answering a ping, with its payload.
    Pong(Bytes),
}

impl Outbound {
    fn payload(&self) -> &Bytes {
        match self {
            Outbound::Text(bytes) | Outbound::Pong(bytes) => bytes,
        }
    }

    fn opcode(&self) -> u8 {
        match self {
            Outbound::Text(_) => TEXT,
            Outbound::Pong(_) => PONG,
        }
    }

    /// The frame's header (RFC 6455 §5.2) and its length.
    fn header(&self) -> ([u8; 10], usize) {
        frame_header(self.opcode(), self.payload().len())
    }

    /// Header and payload bytes on the wire.
    fn wire_len(&self) -> usize {
        self.header().1 + self.payload().len()
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

/// Who writes the queue to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Nobody: the next sender becomes the writer.
    Idle,
    /// A sender, on its own thread, until the queue is empty or the socket
    /// is full.
    Sender,
    /// The connection's writer task (the socket was full, or the
    /// connection is closing).
    Task,
    /// Nobody ever again: the socket failed.
    Failed,
}

#[derive(Debug)]
struct Queue {
    frames: VecDeque<Outbound>,
    /// Payload bytes of `frames`.
    bytes: usize,
    /// Wire bytes of the front frame the socket already took.
    front_written: usize,
    writer: Writer,
    /// The writer task is closing the connection: senders only queue.
    closing: bool,
}

impl Queue {
    /// Nothing left to write: the next sender becomes the writer, and the
    /// slots a burst needed are freed.
    fn idle(&mut self) {
        self.writer = Writer::Idle;
        if self.frames.capacity() > KEEP_SLOTS {
            self.frames.shrink_to(KEEP_SLOTS);
        }
    }
}

/// In declaration order (`repr(C)`): what every delivery touches first, so
/// a fan-out over cold connections misses as few cache lines as it can.
#[derive(Debug)]
#[repr(C)]
struct Shared {
    queue: Mutex<Queue>,
    limits: QueueLimits,
    /// The socket's descriptor, for [`Via::System`] (kept here: reading it
    /// through `socket` costs more cache misses).
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    /// None for a handle without a socket (tests): frames stay queued.
    socket: Option<Socket>,
    /// Wakes the writer task when the writing is handed to it.
    handoff: Notify,
    close: watch::Sender<CloseRequest>,
}

/// A handle to one connection's outbound side.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    /// The connection's socket id.
    pub socket_id: Arc<str>,
    shared: Arc<Shared>,
}

/// What [`ConnHandle::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
enum Enqueued {
    /// Not queued (over a bound, or the socket failed).
    Refused,
    /// Queued; someone else writes it.
    Queued,
    /// Queued, and the caller is now the writer: it must call
    /// [`ConnHandle::write_now`].
    Write,
    /// Queued, and the writer task is now the writer: the caller must
    /// wake it.
    Wake,
}

/// Largest batch of frames written with one `writev`.
const MAX_BATCH_FRAMES: usize = 16;
/// Bytes of payload a batch takes at most (it takes at least one frame).
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Bytes one `writev` offers at most.
const MAX_WRITE_BYTES: usize = 64 * 1024;
/// Bytes one writing turn writes before it lets other work run: a
/// connection being sent large answers must not hold a worker thread (and
/// the other tenants' connections on it) for a whole megabyte's copy.
const MAX_TURN_BYTES: usize = 256 * 1024;
/// How long the last frames and the close frame may take to write.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// A drained queue keeps at most this many slots (a burst's are freed).
const KEEP_SLOTS: usize = 16;

/// How a writing turn ended.
#[derive(Debug, PartialEq, Eq)]
enum Turn {
    /// The queue is empty; the writer is idle again.
    Drained,
    /// The socket is full; the caller is still the writer.
    Blocked,
    /// The turn wrote [`MAX_TURN_BYTES`]; the caller is still the writer
    /// and lets other work run before it goes on.
    Yield,
    /// The writer task closes the connection; the caller is no longer the writer.
    Closing,
    /// The socket failed; nobody writes again.
    Failed,
}

impl ConnHandle {
    /// A handle writing to `socket`, and the receiver of a close request
    /// (the reader's and the writer task's).
    pub fn new(
        socket_id: Arc<str>,
        socket: Option<Socket>,
        limits: QueueLimits,
    ) -> (ConnHandle, watch::Receiver<CloseRequest>) {
        let (close, close_rx) = watch::channel(None);
        let queue = Queue {
            frames: VecDeque::new(),
            bytes: 0,
            front_written: 0,
            writer: Writer::Idle,
            closing: false,
        };
        #[cfg(unix)]
        let fd = match &socket {
            Some(Socket::Tcp(socket)) => {
                use std::os::fd::AsRawFd;
                AsRef::<tokio::net::TcpStream>::as_ref(socket).as_raw_fd()
            }
            Some(Socket::Tls(_)) | None => -1,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            limits,
            #[cfg(unix)]
            fd,
            socket,
            handoff: Notify::new(),
            close,
        });
        (ConnHandle { socket_id, shared }, close_rx)
    }

    /// Sends a text frame now; see [`ConnHandle::queue`].
    pub fn send(&self, frame: Bytes, metrics: &Metrics) -> bool {
        self.queue(Outbound::Text(frame), metrics)
    }

    /// Queues an entry and, if the connection was idle, writes it from this
    /// thread. Over the queue's frame or byte bound the connection is closed
    /// as a slow consumer (4100). False when it was not queued.
    pub fn queue(&self, entry: Outbound, metrics: &Metrics) -> bool {
        match self.enqueue(entry, metrics) {
            Enqueued::Refused => false,
            Enqueued::Queued => true,
            Enqueued::Write => {
                self.write_now();
                true
            }
            Enqueued::Wake => {
                self.wake_writer_task();
                true
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every critical section leaves the queue consistent.
        self.shared.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enqueue(&self, entry: Outbound, metrics: &Metrics) -> Enqueued {
        let len = entry.payload().len();
        let mut queue = self.lock();
        if queue.writer == Writer::Failed {
            return Enqueued::Refused;
        }
        let limits = self.shared.limits;
        let over = if queue.bytes + len > limits.bytes {
            Some("slow consumer: outbound bytes over the limit")
        } else if queue.frames.len() >= limits.frames {
            Some("slow consumer: outbound queue full")
        } else {
            None
        };
        if let Some(reason) = over {
            drop(queue);
            self.slow_consumer(metrics, reason);
            return Enqueued::Refused;
        }
        queue.frames.push_back(entry);
        queue.bytes += len;
        if queue.writer == Writer::Idle && !queue.closing {
            match self.shared.socket {
                Some(Socket::Tcp(_)) => {
                    queue.writer = Writer::Sender;
                    return Enqueued::Write;
                }
                Some(Socket::Tls(_)) => {
                    queue.writer = Writer::Task;
                    return Enqueued::Wake;
                }
                None => {}
            }
        }
        Enqueued::Queued
    }

    /// Writes as a sender that became the writer: until the queue is empty;
    /// when the socket is full or the turn's byte budget is spent, the
    /// writer task takes over.
    fn write_now(&self) {
        if matches!(self.write_turn(Via::System), Turn::Blocked | Turn::Yield) {
            self.hand_to_task();
        }
    }

    fn wake_writer_task(&self) {
        self.shared.handoff.notify_one();
    }

    fn hand_to_task(&self) {
        let mut queue = self.lock();
        if queue.writer != Writer::Failed {
            queue.writer = Writer::Task;
        }
        drop(queue);
        self.shared.handoff.notify_one();
    }

    /// Writes batches with non-blocking `writev`s while frames are queued;
    /// the caller is the writer.
    fn write_turn(&self, via: Via) -> Turn {
        let Some(Socket::Tcp(socket)) = &self.shared.socket else { return Turn::Blocked };
        let mut queue = self.lock();
        let mut turn_bytes = 0;
        loop {
            if queue.closing && queue.writer == Writer::Sender {
                // The writer task waits for the writing to close.
                queue.writer = Writer::Task;
                drop(queue);
                self.shared.handoff.notify_one();
                return Turn::Closing;
            }
            if queue.frames.is_empty() {
                queue.idle();
                return Turn::Drained;
            }
            let mut batch = Batch::default();
            batch.take(&queue);
            drop(queue);
            let mut slices = [IoSlice::new(&[]); 2 * MAX_BATCH_FRAMES];
            let count = batch.slices(&mut slices);
            let result = via.writev(&self.shared, socket, &slices[..count]);
            queue = self.lock();
            match result {
                Ok(written) => {
                    batch.written(&mut queue, written);
                    turn_bytes += written;
                    if turn_bytes >= MAX_TURN_BYTES && !queue.frames.is_empty() {
                        return Turn::Yield;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Turn::Blocked,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    drop(queue);
                    self.fail();
                    return Turn::Failed;
                }
            }
        }
    }

    fn fail(&self) {
        let mut queue = self.lock();
        queue.writer = Writer::Failed;
        queue.frames.clear();
        queue.bytes = 0;
        drop(queue);
        // The writer task ends; the reader notices the socket's end itself.
        self.close(1006, "");
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

    /// Payload bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Forgets what a connection without a socket has queued, keeping the
    /// queue's slots as a drained queue does: for the benchmark of the
    /// queueing alone (`server/examples/fanout_lock.rs`).
    #[doc(hidden)]
    pub fn discard_queued(&self) {
        let mut queue = self.lock();
        debug_assert!(self.shared.socket.is_none(), "a socket's queue is drained by writing it");
        queue.frames.clear();
        queue.bytes = 0;
        queue.front_written = 0;
    }

    /// The payloads queued, oldest first.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> Vec<Bytes> {
        self.lock().frames.iter().map(|entry| entry.payload().clone()).collect()
    }
}

#[cfg(test)]
mod tests;
