//! Fan-out: frames queued under the registry's lock, written after it.

use bytes::Bytes;

use super::{ConnHandle, Enqueued, Outbound};
use crate::metrics::Metrics;

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
pub(super) const FANOUT_CHUNK: usize = 64;

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
            Enqueued::Wake => {
                handle.wake_writer_task();
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
