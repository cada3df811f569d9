//! Repeated warnings, aggregated: a warning that a client can trigger at
//! will (a malformed frame, a refused subscription) is logged at most once
//! per [`WINDOW`] per call site, with the count of those suppressed since,
//! so a flood of bad frames costs the log a line per window, not a line
//! per frame.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often one call site may log.
pub const WINDOW: Duration = Duration::from_secs(10);

/// One call site's budget (a `static`).
#[derive(Debug)]
pub struct Throttle {
    /// Milliseconds since the process epoch of the last line, plus one
    /// (0: never logged).
    last: AtomicU64,
    suppressed: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Throttle {
    /// A budget that has not logged yet.
    pub const fn new() -> Throttle {
        Throttle { last: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// `Some(suppressed since the last line)` when this occurrence should be
    /// logged, `None` when it is only counted.
    pub fn check(&self) -> Option<u64> {
        self.check_at(u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(1))
    }

    fn check_at(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        let window = WINDOW.as_millis() as u64;
        if last != 0 && now.saturating_sub(last) < window {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

/// `warn!` through a per-call-site [`Throttle`]: the first occurrence per
/// window is logged with `suppressed = N` (how many were not).
#[macro_export]
macro_rules! warn_throttled {
    ($($arg:tt)+) => {{
        static THROTTLE: $crate::log_throttle::Throttle = $crate::log_throttle::Throttle::new();
        if let Some(suppressed) = THROTTLE.check() {
            tracing::warn!(suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_with_the_count() {
        let throttle = Throttle::new();
        assert_eq!(throttle.check_at(1), Some(0));
        for ms in 0..1000 {
            assert_eq!(throttle.check_at(2 + ms), None);
        }
        assert_eq!(throttle.check_at(1 + 9_999), None);
        assert_eq!(throttle.check_at(1 + 10_000), Some(1001));
        assert_eq!(throttle.check_at(1 + 10_001), None);
    }
}
