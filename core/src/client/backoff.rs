//! Reconnect policy: what a close code means, and how long to wait.

use std::time::Duration;

/// What to do after the connection closed with a given code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseClass {
    /// 4000–4099: the server refused us for good (bad app key, over quota,
    /// unsupported protocol): do not reconnect; tell the app.
    Fatal,
    /// 4200–4299: reconnect at once (server restarting, closed for load).
    Immediate,
    /// 4100–4199, network failures and anything else: back off.
    Backoff,
}

impl CloseClass {
    /// The class of a close code (`None`: the socket failed without one).
    pub fn of(code: Option<u16>) -> CloseClass {
        match code {
            Some(4000..=4099) => CloseClass::Fatal,
            Some(4200..=4299) => CloseClass::Immediate,
            _ => CloseClass::Backoff,
        }
    }
}

/// Exponential backoff with full jitter: attempt `n` (1-based) waits a
/// uniformly random time in `[initial·2^(n-1) / 2, initial·2^(n-1)]`,
/// capped at `max`. The randomness is a seeded generator, so the policy is
/// a pure function of its seed and the attempt number.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    state: u64,
}

impl Backoff {
    /// A policy; `seed` should be random per client so that many clients
    /// reconnecting at once spread out.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff { initial, max, state: seed | 1 }
    }

    /// The same policy with another seed (a [`crate::client::ClientMachine`]
    /// seeds its link's from its own randomness, so clients spread out).
    pub fn with_seed(self, seed: u64) -> Backoff {
        Backoff { state: seed | 1, ..self }
    }

    /// The wait before reconnect attempt `attempt` (1 = first retry).
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let ceiling = exp.min(self.max);
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let random = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.5 + 0.5 * fraction)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30), 0x9E37_79B9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_fall_into_pusher_classes() {
        assert_eq!(CloseClass::of(Some(4001)), CloseClass::Fatal);
        assert_eq!(CloseClass::of(Some(4099)), CloseClass::Fatal);
        assert_eq!(CloseClass::of(Some(4100)), CloseClass::Backoff);
        assert_eq!(CloseClass::of(Some(4201)), CloseClass::Immediate);
        assert_eq!(CloseClass::of(Some(1006)), CloseClass::Backoff);
        assert_eq!(CloseClass::of(None), CloseClass::Backoff);
    }

    #[test]
    fn delays_grow_jittered_and_capped() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10), 42);
        for attempt in 1..=12u32 {
            let d = b.delay(attempt);
            let ceiling = Duration::from_secs(1 << (attempt - 1).min(20)).min(Duration::from_secs(10));
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
        // Different seeds spread out.
        let a = Backoff::new(Duration::from_secs(1), Duration::from_secs(10), 1).delay(3);
        let c = Backoff::new(Duration::from_secs(1), Duration::from_secs(10), 2).delay(3);
        assert_ne!(a, c);
    }
}
