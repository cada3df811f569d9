//! Batching for `writev`: up to [`MAX_BATCH_FRAMES`] frames from the
//! front of a queue as slices, and how the call reaches the socket.

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::net::tcp::OwnedWriteHalf;

use super::{MAX_BATCH_BYTES, MAX_BATCH_FRAMES, MAX_WRITE_BYTES, Queue, Shared};

/// How a `writev` reaches the socket.
#[derive(Debug, Clone, Copy)]
pub(super) enum Via {
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
    pub(super) fn writev(
        self,
        shared: &Shared,
        socket: &OwnedWriteHalf,
        slices: &[IoSlice<'_>],
    ) -> io::Result<usize> {
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
pub(super) struct Batch {
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
    pub(super) fn take(&mut self, queue: &Queue) {
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
    pub(super) fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>; 2 * MAX_BATCH_FRAMES]) -> usize {
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
    pub(super) fn written(&self, queue: &mut Queue, mut written: usize) {
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
