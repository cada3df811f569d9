//! The connection's writer task, and writing or shutting down a socket
//! outside the queue.

use std::io::{self, IoSlice};

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::watch;

use super::batch::{Batch, Via};
use super::{
    CLOSE_WRITE_TIMEOUT, CloseRequest, ConnHandle, MAX_BATCH_BYTES, MAX_BATCH_FRAMES, Socket, TlsWriter,
    Turn, Writer,
};
use crate::ws::frame::{encode_close, encode_frame};

/// The connection's writer task: writes when a sender found the socket
/// full (on TLS: whenever frames are queued), and closes the connection
/// when asked: what is queued goes first (up to one batch: typically the
/// error that explains the close), then the close frame, then the write
/// side is shut down (FIN; on TLS after close_notify). A peer that does
/// not read gets [`CLOSE_WRITE_TIMEOUT`], not forever.
pub async fn write_loop(handle: ConnHandle, mut close: watch::Receiver<CloseRequest>) {
    let Some(socket) = &handle.shared.socket else { return };
    let served = match socket {
        Socket::Tcp(tcp) => serve_tcp(&handle, tcp, &mut close).await,
        Socket::Tls(tls) => serve_tls(&handle, &mut *tls.lock().await, &mut close).await,
    };
    if served.is_err() {
        return;
    }
    let (code, reason) = close.borrow().unwrap_or((1000, ""));
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, close_socket(&handle, socket, code, reason)).await;
    shutdown_write(socket).await;
}

/// The socket failed: nobody writes again.
struct Failed;

/// Writes what senders hand over until a close is asked for.
async fn serve_tcp(
    handle: &ConnHandle,
    socket: &OwnedWriteHalf,
    close: &mut watch::Receiver<CloseRequest>,
) -> Result<(), Failed> {
    loop {
        tokio::select! {
            biased;
            _ = close.changed() => return Ok(()),
            () = handle.shared.handoff.notified() => {
                if handle.lock().writer != Writer::Task {
                    continue;
                }
                loop {
                    match handle.write_turn(Via::Tokio) {
                        Turn::Drained => break,
                        Turn::Failed => return Err(Failed),
                        Turn::Closing => return Ok(()),
                        Turn::Yield => tokio::task::yield_now().await,
                        Turn::Blocked => tokio::select! {
                            biased;
                            _ = close.changed() => return Ok(()),
                            ready = socket.writable() => if ready.is_err() {
                                handle.fail();
                                return Err(Failed);
                            },
                        },
                    }
                }
            }
        }
    }
}

/// Writes every queued frame through rustls until a close is asked for.
/// A write rustls accepts part of is counted as written (it is in rustls's
/// buffer, in order), so a write cut short by a close loses no byte and
/// repeats none.
async fn serve_tls(
    handle: &ConnHandle,
    stream: &mut TlsWriter,
    close: &mut watch::Receiver<CloseRequest>,
) -> Result<(), Failed> {
    loop {
        tokio::select! {
            biased;
            _ = close.changed() => return Ok(()),
            () = handle.shared.handoff.notified() => {}
        }
        while let Some(batch) = next_batch(handle) {
            let mut slices = [IoSlice::new(&[]); 2 * MAX_BATCH_FRAMES];
            let count = batch.slices(&mut slices);
            let written = tokio::select! {
                biased;
                _ = close.changed() => return Ok(()),
                written = stream.write_vectored(&slices[..count]) => written,
            };
            match written {
                Ok(written) if written > 0 => batch.written(&mut handle.lock(), written),
                _ => {
                    handle.fail();
                    return Err(Failed);
                }
            }
        }
        // Out of rustls's buffer onto the wire before waiting for more.
        let flushed = tokio::select! {
            biased;
            _ = close.changed() => return Ok(()),
            flushed = stream.flush() => flushed,
        };
        if flushed.is_err() {
            handle.fail();
            return Err(Failed);
        }
    }
}

/// The next frames to write as the writer task, or `None` (the writer is
/// idle again) when the queue is empty.
fn next_batch(handle: &ConnHandle) -> Option<Batch> {
    let mut queue = handle.lock();
    if queue.writer != Writer::Task {
        return None;
    }
    if queue.frames.is_empty() {
        queue.idle();
        return None;
    }
    let mut batch = Batch::default();
    batch.take(&queue);
    Some(batch)
}

/// Becomes the writer for good, then writes the rest of a cut frame, up to
/// one batch of queued frames, and the close frame.
async fn close_socket(handle: &ConnHandle, socket: &Socket, code: u16, reason: &str) {
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

/// Writes all of `bytes`, waiting for the socket to take them (outside
/// the queue: the writer task is done, or never started).
pub async fn write_all(socket: &Socket, bytes: &[u8]) -> io::Result<()> {
    match socket {
        Socket::Tcp(tcp) => write_all_tcp(tcp, bytes).await,
        Socket::Tls(tls) => {
            let mut stream = tls.lock().await;
            stream.write_all(bytes).await?;
            stream.flush().await
        }
    }
}

async fn write_all_tcp(socket: &OwnedWriteHalf, mut bytes: &[u8]) -> io::Result<()> {
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

/// Sends FIN (on TLS after close_notify): the peer reads everything
/// written, then the end of the stream, while the socket stays open for
/// its own close.
pub async fn shutdown_write(socket: &Socket) {
    let socket = match socket {
        Socket::Tcp(tcp) => tcp,
        Socket::Tls(tls) => {
            let mut stream = tls.lock().await;
            let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, stream.shutdown()).await;
            return;
        }
    };
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let stream: &tokio::net::TcpStream = socket.as_ref();
        // SAFETY: the descriptor is owned by `stream`, alive for this call.
        unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
    }
}
