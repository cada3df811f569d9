//! A small pool of low-priority threads for bulk document work (reading
//! and encoding join pages, storing snapshots): a megabyte join answer
//! costs milliseconds of CPU, and on a busy machine it must not delay
//! other connections' latency-sensitive work (op acks, event fan-out) on
//! the runtime and blocking threads. The threads run at a lower scheduling
//! priority (`nice` 10, Linux), so the kernel prefers everything else.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// The pool.
#[derive(Debug, Clone)]
pub struct BulkPool {
    jobs: mpsc::Sender<Job>,
}

/// Nice value of the pool's threads.
const NICE: i32 = 10;

impl BulkPool {
    /// Starts `threads` threads.
    pub fn new(threads: usize) -> BulkPool {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("sealcast-bulk-{n}")).spawn(move || {
                lower_priority();
                loop {
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        // A panicking job drops its answer (the caller gets
                        // `None`); the thread serves on.
                        Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                        Err(_) => return,
                    }
                }
            });
            if let Err(err) = spawned {
                tracing::warn!(error = %err, "could not start a bulk document thread");
            }
        }
        BulkPool { jobs }
    }

    /// Runs `work` on the pool; its result, or `None` if it panicked (or
    /// the pool has no thread).
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority on the calling thread (tid) only changes its
    // scheduling priority; no memory is involved.
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
    };
    if result != 0 {
        tracing::debug!("could not lower the bulk thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_survives_a_panic() {
        let pool = BulkPool::new(1);
        assert_eq!(pool.run(|| 2 + 2).await, Some(4));
        assert_eq!(pool.run(|| -> u32 { panic!("boom") }).await, None);
        assert_eq!(pool.run(|| 5).await, Some(5), "the thread lives on");
    }
}
