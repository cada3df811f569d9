//! The connection's writer task, and writing or shutting down a socket
//! outside the queue.

use std::io;

use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::watch;

use super::batch::Via;
use super::{CLOSE_WRITE_TIMEOUT, CloseRequest, ConnHandle, MAX_BATCH_BYTES, Turn, Writer};
use crate::ws::frame::{encode_close, encode_frame};

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
