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

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use sealcast_core::protocol::codes;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;

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
    socket: Option<OwnedWriteHalf>,
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
        socket: Option<OwnedWriteHalf>,
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
        let fd = socket.as_ref().map_or(-1, |socket| {
            use std::os::fd::AsRawFd;
            AsRef::<tokio::net::TcpStream>::as_ref(socket).as_raw_fd()
        });
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
        if queue.writer == Writer::Idle && !queue.closing && self.shared.socket.is_some() {
            queue.writer = Writer::Sender;
            return Enqueued::Write;
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
        let Some(socket) = &self.shared.socket else { return Turn::Blocked };
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
                queue.writer = Writer::Idle;
                if queue.frames.capacity() > KEEP_SLOTS {
                    queue.frames.shrink_to(KEEP_SLOTS);
                }
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

/// How a `writev` reaches the socket.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// Straight to the system call, on the descriptor: what senders do.
    /// tokio's readiness bookkeeping costs a cache miss or two per
    /// connection, which at fan-out sizes is a large part of a delivery's
    /// user-space time. The "writable" it then keeps may be stale; the
    /// writer task finds that out with one [`Via::Tokio`] attempt.
    System,
    /// Through tokio, which records a full socket so that `writable()`
    /// waits: what the writer task does.
    Tokio,
}

impl Via {
    fn writev(self, shared: &Shared, socket: &OwnedWriteHalf, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        #[cfg(unix)]
        if let Via::System = self {
            let count = slices.len().min(libc::c_int::MAX as usize) as libc::c_int;
            // SAFETY: IoSlice is ABI-compatible with iovec on unix; the
            // slices and the descriptor (owned by `socket`) outlive the call.
            let written = unsafe { libc::writev(shared.fd, slices.as_ptr().cast::<libc::iovec>(), count) };
            return usize::try_from(written).map_err(|_| io::Error::last_os_error());
        }
        socket.try_write_vectored(slices)
    }
}

/// Up to [`MAX_BATCH_FRAMES`] frames from the front of a queue as
/// `writev` slices: the payloads are reference counted, so taking them
/// copies no bytes and leaves the queue as it is until they are written.
struct Batch {
    frames: [Option<Bytes>; MAX_BATCH_FRAMES],
    headers: [([u8; 10], usize); MAX_BATCH_FRAMES],
    len: usize,
    /// Wire bytes of the first frame already written.
    skip: usize,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch { frames: Default::default(), headers: [([0; 10], 0); MAX_BATCH_FRAMES], len: 0, skip: 0 }
    }
}

impl Batch {
    fn take(&mut self, queue: &Queue) {
        self.skip = queue.front_written;
        let mut bytes = 0;
        for entry in queue.frames.iter().take(MAX_BATCH_FRAMES) {
            if self.len > 0 && bytes + entry.payload().len() > MAX_BATCH_BYTES {
                break;
            }
            bytes += entry.payload().len();
            self.headers[self.len] = entry.header();
            self.frames[self.len] = Some(entry.payload().clone());
            self.len += 1;
        }
    }

    /// Fills `slices` (header and payload of each frame, less what was
    /// written); how many.
    fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>; 2 * MAX_BATCH_FRAMES]) -> usize {
        let mut count = 0;
        let mut skip = self.skip;
        // One system call copies at most this much: a large frame (a join
        // page) goes out in several, with the turn budget checked between.
        let mut room = MAX_WRITE_BYTES;
        for i in 0..self.len {
            let (header, header_len) = &self.headers[i];
            let payload = self.frames[i].as_deref().unwrap_or_default();
            let header = &header[..*header_len];
            let from_header = skip.min(header.len());
            let from_payload = (skip - from_header).min(payload.len());
            for part in [&header[from_header..], &payload[from_payload..]] {
                let take = part.len().min(room);
                if take > 0 {
                    slices[count] = IoSlice::new(&part[..take]);
                    count += 1;
                    room -= take;
                }
            }
            if room == 0 {
                break;
            }
            skip = 0;
        }
        count
    }

    /// Removes what the socket took from the queue.
    fn written(&self, queue: &mut Queue, mut written: usize) {
        written += queue.front_written;
        for _ in 0..self.len {
            let Some(front) = queue.frames.front() else { break };
            let wire = front.wire_len();
            if written < wire {
                queue.front_written = written;
                return;
            }
            written -= wire;
            queue.bytes -= front.payload().len();
            queue.frames.pop_front();
        }
        queue.front_written = 0;
    }
}

/// The connections a fan-out queued frames for and now writes to, after
/// the registry's lock is released.
#[derive(Debug, Default)]
pub struct Fanout {
    writers: Vec<ConnHandle>,
}

/// A fan-out writing to at most this many connections does it on the
/// calling thread; larger ones are split into tasks of this size, so the
/// worker threads share them (and an HTTP publish is answered once the
/// frames are queued).
const FANOUT_CHUNK: usize = 64;

impl Fanout {
    /// Queues `frame` for `handle`; true when it was queued.
    pub fn push(&mut self, handle: &ConnHandle, frame: Bytes, metrics: &Metrics) -> bool {
        match handle.enqueue(Outbound::Text(frame), metrics) {
            Enqueued::Refused => false,
            Enqueued::Queued => true,
            Enqueued::Write => {
                self.writers.push(handle.clone());
                true
            }
        }
    }

    /// Writes to the connections this fan-out became the writer of.
    pub fn write(mut self) {
        self.write_all();
    }

    fn write_all(&mut self) {
        let writers = std::mem::take(&mut self.writers);
        if writers.len() <= FANOUT_CHUNK {
            return writers.iter().for_each(ConnHandle::write_now);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return writers.iter().for_each(ConnHandle::write_now);
        };
        let mut writers = writers.into_iter();
        loop {
            let chunk: Vec<ConnHandle> = writers.by_ref().take(FANOUT_CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            runtime.spawn(async move { chunk.iter().for_each(ConnHandle::write_now) });
        }
    }
}

impl Drop for Fanout {
    /// A fan-out dropped without [`Fanout::write`] still writes: a writer
    /// that never writes would stall its connection.
    fn drop(&mut self) {
        if !self.writers.is_empty() {
            self.write_all();
        }
    }
}

/// The connection's writer task: writes when a sender found the socket
/// full, and closes the connection when asked: what is queued goes first
/// (up to one batch: typically the error that explains the close), then
/// the close frame, then the write side is shut down (FIN). A peer that
/// does not read gets [`CLOSE_WRITE_TIMEOUT`], not forever.
pub async fn write_loop(handle: ConnHandle, mut close: watch::Receiver<CloseRequest>) {
    let Some(socket) = &handle.shared.socket else { return };
    'serve: loop {
        tokio::select! {
            biased;
            _ = close.changed() => break 'serve,
            () = handle.shared.handoff.notified() => {
                if handle.lock().writer != Writer::Task {
                    continue;
                }
                loop {
                    match handle.write_turn(Via::Tokio) {
                        Turn::Drained => break,
                        Turn::Failed => return,
                        Turn::Closing => break 'serve,
                        Turn::Yield => tokio::task::yield_now().await,
                        Turn::Blocked => tokio::select! {
                            biased;
                            _ = close.changed() => break 'serve,
                            ready = socket.writable() => if ready.is_err() {
                                handle.fail();
                                return;
                            },
                        },
                    }
                }
            }
        }
    }
    let (code, reason) = close.borrow().unwrap_or((1000, ""));
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, close_socket(&handle, socket, code, reason)).await;
    shutdown_write(socket);
}

/// Becomes the writer for good, then writes the rest of a cut frame, up to
/// one batch of queued frames, and the close frame.
async fn close_socket(handle: &ConnHandle, socket: &OwnedWriteHalf, code: u16, reason: &str) {
    loop {
        {
            let mut queue = handle.lock();
            queue.closing = true;
            match queue.writer {
                Writer::Failed => return,
                Writer::Idle | Writer::Task => {
                    queue.writer = Writer::Task;
                    break;
                }
                // A sender writing now stops at its next batch and hands over.
                Writer::Sender => {}
            }
        }
        handle.shared.handoff.notified().await;
    }
    let mut out = Vec::new();
    {
        let queue = handle.lock();
        let mut skip = queue.front_written;
        for entry in &queue.frames {
            if out.len() > MAX_BATCH_BYTES {
                break;
            }
            let mut frame = Vec::with_capacity(entry.wire_len());
            encode_frame(&mut frame, entry.opcode(), entry.payload());
            out.extend_from_slice(&frame[skip..]);
            skip = 0;
        }
    }
    encode_close(&mut out, code, reason);
    let _ = write_all(socket, &out).await;
}

/// Writes all of `bytes`, waiting for the socket to take them.
pub async fn write_all(socket: &OwnedWriteHalf, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Sends FIN: the peer reads everything written, then the end of the
/// stream, while the socket stays open for its own close.
pub fn shutdown_write(socket: &OwnedWriteHalf) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let stream: &tokio::net::TcpStream = socket.as_ref();
        // SAFETY: the descriptor is owned by `stream`, alive for this call.
        unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
    }
}

const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PONG: u8 = 0xA;

/// An unmasked, unfragmented server frame's header (RFC 6455 §5.2).
fn frame_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = 0x80 | opcode;
    match len {
        n if n < 126 => {
            header[1] = n as u8;
            (header, 2)
        }
        n if n <= usize::from(u16::MAX) => {
            header[1] = 126;
            header[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            (header, 4)
        }
        n => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            (header, 10)
        }
    }
}

/// Appends one unmasked, unfragmented server frame.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    let (header, len) = frame_header(opcode, payload.len());
    out.extend_from_slice(&header[..len]);
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
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    fn limits(frames: usize, bytes: usize) -> QueueLimits {
        QueueLimits { frames, bytes }
    }

    /// A handle writing into a loopback socket, and the socket's peer.
    async fn connected(limits: QueueLimits) -> (ConnHandle, watch::Receiver<CloseRequest>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_read, write) = server.into_split();
        let (handle, close) = ConnHandle::new("1.1".into(), Some(write), limits);
        (handle, close, peer)
    }

    /// Reads one server frame: (opcode, payload).
    async fn read_frame(peer: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        peer.read_exact(&mut head).await.unwrap();
        let len = match head[1] {
            126 => usize::from(peer.read_u16().await.unwrap()),
            127 => peer.read_u64().await.unwrap() as usize,
            n => usize::from(n),
        };
        let mut payload = vec![0; len];
        peer.read_exact(&mut payload).await.unwrap();
        (head[0] & 0x0f, payload)
    }

    #[test]
    fn over_the_byte_bound_closes_as_slow_consumer() {
        let metrics = Metrics::default();
        let (conn, close) = ConnHandle::new("1.1".into(), None, limits(100, 1000));
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
        let (conn, close) = ConnHandle::new("1.1".into(), None, limits(2, 1 << 20));
        for _ in 0..2 {
            assert!(conn.send(Bytes::from_static(b"{}"), &metrics));
        }
        assert!(!conn.send(Bytes::from_static(b"{}"), &metrics));
        assert_eq!(*close.borrow(), Some((codes::OVER_CAPACITY, "slow consumer: outbound queue full")));
        assert_eq!(conn.queued_bytes(), 4);
    }

    #[tokio::test]
    async fn an_idle_connection_is_written_by_the_sender_without_its_task() {
        let metrics = Metrics::default();
        let (conn, _close, mut peer) = connected(limits(10, 1000)).await;
        assert!(conn.send(Bytes::from_static(b"{\"a\":1}"), &metrics));
        assert!(conn.queue(Outbound::Pong(Bytes::from_static(b"p")), &metrics));
        // No writer task runs: the bytes came from the senders' calls.
        let mut got = [0u8; 12];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x81\x07{\"a\":1}\x8a\x01p");
        assert_eq!(conn.queued_bytes(), 0);
        assert_eq!(conn.lock().writer, Writer::Idle);
    }

    #[tokio::test]
    async fn a_full_socket_hands_the_rest_to_the_writer_task_in_order() {
        let metrics = Metrics::default();
        let (conn, close, mut peer) = connected(limits(100_000, 64 << 20)).await;
        // The peer reads nothing until the socket is full and frames are
        // cut and queued.
        let mut sent = 0u32;
        while conn.lock().writer != Writer::Task {
            let mut frame = format!("{sent}:").into_bytes();
            frame.resize(1000 + (sent as usize * 7) % 300, b'x');
            assert!(conn.send(Bytes::from(frame), &metrics));
            sent += 1;
            assert!(sent < 50_000, "the socket never filled");
        }
        let more = sent + 100;
        for n in sent..more {
            assert!(conn.send(Bytes::from(format!("{n}:")), &metrics));
        }
        assert!(conn.queued_bytes() > 0);
        let writer = tokio::spawn(write_loop(conn.clone(), close));
        for n in 0..more {
            let (opcode, payload) = read_frame(&mut peer).await;
            assert_eq!(opcode, TEXT);
            assert!(payload.starts_with(format!("{n}:").as_bytes()), "frame {n} out of order or cut");
        }
        conn.close(4009, "bye");
        let (opcode, payload) = read_frame(&mut peer).await;
        assert_eq!((opcode, &payload[..2]), (CLOSE, &4009u16.to_be_bytes()[..]));
        assert_eq!(&payload[2..], b"bye");
        writer.await.unwrap();
        // FIN after the close frame.
        assert_eq!(peer.read(&mut [0u8; 16]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_close_writes_what_is_queued_then_the_close_frame() {
        let metrics = Metrics::default();
        let (conn, close, mut peer) = connected(limits(10, 1000)).await;
        let writer = tokio::spawn(write_loop(conn.clone(), close));
        conn.send(Bytes::from_static(b"first"), &metrics);
        conn.close(4100, "slow");
        assert_eq!(read_frame(&mut peer).await, (TEXT, b"first".to_vec()));
        assert_eq!(read_frame(&mut peer).await.0, CLOSE);
        writer.await.unwrap();
        // After the close nobody writes: a frame only waits in the queue.
        assert!(conn.send(Bytes::from_static(b"late"), &metrics));
        assert_eq!(peer.read(&mut [0u8; 16]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_fanout_writes_after_it_is_done_queueing() {
        let metrics = Metrics::default();
        let mut peers = Vec::new();
        let mut fanout = Fanout::default();
        for _ in 0..(FANOUT_CHUNK * 2 + 3) {
            let (conn, _close, peer) = connected(limits(10, 1000)).await;
            assert!(fanout.push(&conn, Bytes::from_static(b"event"), &metrics));
            // Queued, not written yet.
            assert_eq!(conn.queued_bytes(), 5);
            peers.push((conn, peer));
        }
        fanout.write();
        for (_conn, peer) in &mut peers {
            assert_eq!(read_frame(peer).await, (TEXT, b"event".to_vec()));
        }
    }

    #[test]
    fn a_cut_frame_is_resumed_where_the_socket_stopped() {
        let (conn, _close) = ConnHandle::new("1.1".into(), None, limits(10, 1000));
        let metrics = Metrics::default();
        for payload in [&b"abc"[..], b"defgh"] {
            assert!(conn.send(Bytes::copy_from_slice(payload), &metrics));
        }
        let mut queue = conn.lock();
        let mut batch = Batch::default();
        batch.take(&queue);
        // The socket took the first frame (2 + 3 bytes) and 3 bytes of the
        // second: its 2-byte header and "d".
        batch.written(&mut queue, 5 + 3);
        assert_eq!((queue.frames.len(), queue.front_written, queue.bytes), (1, 3, 5));
        let mut rest = Batch::default();
        rest.take(&queue);
        let mut slices = [IoSlice::new(&[]); 2 * MAX_BATCH_FRAMES];
        let count = rest.slices(&mut slices);
        let bytes: Vec<u8> = slices[..count].iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(bytes, b"efgh");
    }

    #[test]
    fn one_writev_offers_at_most_max_write_bytes() {
        let (conn, _close) = ConnHandle::new("1.1".into(), None, limits(10, 1 << 20));
        let metrics = Metrics::default();
        assert!(conn.send(Bytes::from(vec![b'x'; 200 * 1024]), &metrics));
        let queue = conn.lock();
        let mut batch = Batch::default();
        batch.take(&queue);
        let mut slices = [IoSlice::new(&[]); 2 * MAX_BATCH_FRAMES];
        let count = batch.slices(&mut slices);
        assert_eq!(slices[..count].iter().map(|s| s.len()).sum::<usize>(), MAX_WRITE_BYTES);
    }

    #[tokio::test]
    async fn a_large_frame_arrives_whole_in_several_turns() {
        let metrics = Metrics::default();
        let (conn, close, mut peer) = connected(limits(10, 4 << 20)).await;
        let writer = tokio::spawn(write_loop(conn.clone(), close));
        let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
        assert!(conn.send(Bytes::from(big.clone()), &metrics));
        assert!(conn.send(Bytes::from_static(b"after"), &metrics));
        assert_eq!(read_frame(&mut peer).await, (TEXT, big));
        assert_eq!(read_frame(&mut peer).await, (TEXT, b"after".to_vec()));
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
