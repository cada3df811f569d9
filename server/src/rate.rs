//! Token buckets: the one rate rule of every budget (a connection's
//! frames, an app's history reads).

use std::time::Instant;

/// A token bucket: `rate` per second, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: f64, burst: f64) -> TokenBucket {
        let burst = burst.max(1.0);
        TokenBucket { rate: per_second.max(f64::MIN_POSITIVE), burst, tokens: burst, last: None }
    }

    /// Takes a token if one is left.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_bursts_then_refills() {
        let mut bucket = TokenBucket::new(3.0, 3.0);
        let t0 = Instant::now();
        assert!(bucket.allow(t0) && bucket.allow(t0) && bucket.allow(t0));
        assert!(!bucket.allow(t0));
        assert!(bucket.allow(t0 + Duration::from_millis(340)));
        assert!(!bucket.allow(t0 + Duration::from_millis(341)));
    }
}
