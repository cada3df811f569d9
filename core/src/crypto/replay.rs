//! [`ReplayWindow`]: rejects an envelope seen before in the same stream.
//!
//! A stream is the conversation a scope lives in: a chat room, a call, a
//! custom scope + id, a document. The window remembers the nonces (`iv`s) of
//! the most recent `per_stream` envelopes opened in each of at most
//! `max_streams` streams. A random 96-bit nonce identifies an envelope (two
//! honest envelopes sharing one is a 2^-96 event per pair), so a repeated
//! nonce in a stream is a replay. Bounds, not guarantees: an envelope older
//! than the last `per_stream` of its stream, or in a stream evicted because
//! more than `max_streams` were active (oldest-created first), is no longer
//! recognised. Memory is at most about `max_streams × per_stream × 40` bytes
//! (≈ 10 MiB at the defaults). Apps needing exact, durable dedupe keep their
//! own message-id store; documents get it from sequence numbers.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{CryptoError, Scope};

/// Default number of streams tracked.
pub const DEFAULT_MAX_STREAMS: usize = 256;
/// Default number of nonces remembered per stream.
pub const DEFAULT_PER_STREAM: usize = 1024;

type Nonce = [u8; 12];

/// Bounded memory of recently opened envelopes, per stream.
#[derive(Debug)]
pub struct ReplayWindow {
    max_streams: usize,
    per_stream: usize,
    streams: HashMap<Vec<u8>, Seen>,
    // Stream keys in creation order, for eviction.
    created: VecDeque<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Seen {
    set: HashSet<Nonce>,
    order: VecDeque<Nonce>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl ReplayWindow {
    /// A window with the default bounds.
    pub fn new() -> ReplayWindow {
        ReplayWindow::with_bounds(DEFAULT_MAX_STREAMS, DEFAULT_PER_STREAM)
    }

    /// A window tracking up to `max_streams` streams of `per_stream` nonces
    /// each (both at least 1).
    pub fn with_bounds(max_streams: usize, per_stream: usize) -> ReplayWindow {
        ReplayWindow {
            max_streams: max_streams.max(1),
            per_stream: per_stream.max(1),
            streams: HashMap::new(),
            created: VecDeque::new(),
        }
    }

    /// Fails with [`CryptoError::Replayed`] if any of `ivs` was seen in
    /// `scope`'s stream or repeats within `ivs`; otherwise records them all.
    pub fn check_and_record(&mut self, scope: &Scope, ivs: &[Nonce]) -> Result<(), CryptoError> {
        let stream = scope.replay_stream();
        let seen = self.streams.get(&stream);
        for (i, iv) in ivs.iter().enumerate() {
            if ivs[..i].contains(iv) || seen.is_some_and(|s| s.set.contains(iv)) {
                return Err(CryptoError::Replayed);
            }
        }
        if !self.streams.contains_key(&stream) {
            while self.streams.len() >= self.max_streams {
                let Some(oldest) = self.created.pop_front() else {
                    break;
                };
                self.streams.remove(&oldest);
            }
            self.created.push_back(stream.clone());
        }
        let seen = self.streams.entry(stream).or_default();
        for iv in ivs {
            if seen.order.len() >= self.per_stream
                && let Some(old) = seen.order.pop_front()
            {
                seen.set.remove(&old);
            }
            seen.set.insert(*iv);
            seen.order.push_back(*iv);
        }
        Ok(())
    }

    /// Number of streams currently tracked.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(message: &str) -> Scope {
        Scope::chat("room", message).unwrap()
    }

    #[test]
    fn rejects_a_repeat_in_the_same_room_even_for_another_message() {
        let mut window = ReplayWindow::new();
        window.check_and_record(&chat("m1"), &[[1; 12]]).unwrap();
        assert!(matches!(window.check_and_record(&chat("m1"), &[[1; 12]]), Err(CryptoError::Replayed)));
        assert!(matches!(window.check_and_record(&chat("m2"), &[[1; 12]]), Err(CryptoError::Replayed)));
        // Another room is another stream.
        window.check_and_record(&Scope::chat("other", "m1").unwrap(), &[[1; 12]]).unwrap();
    }

    #[test]
    fn all_or_nothing() {
        let mut window = ReplayWindow::new();
        window.check_and_record(&chat("m"), &[[1; 12]]).unwrap();
        assert!(window.check_and_record(&chat("m"), &[[2; 12], [1; 12]]).is_err());
        // [2] was not recorded by the failed call.
        window.check_and_record(&chat("m"), &[[2; 12]]).unwrap();
        assert!(window.check_and_record(&chat("m"), &[[3; 12], [3; 12]]).is_err());
    }

    #[test]
    fn bounded_per_stream_and_in_streams() {
        let mut window = ReplayWindow::with_bounds(2, 3);
        for i in 0..4u8 {
            window.check_and_record(&chat("m"), &[[i; 12]]).unwrap();
        }
        // Nonce 0 fell out of the 3-entry window; 1..3 are remembered.
        window.check_and_record(&chat("m"), &[[0; 12]]).unwrap();
        assert!(window.check_and_record(&chat("m"), &[[3; 12]]).is_err());
        for room in ["a", "b", "c"] {
            window.check_and_record(&Scope::chat(room, "m").unwrap(), &[[9; 12]]).unwrap();
        }
        assert_eq!(window.streams(), 2);
    }
}
