//! Randomness. Core never reaches for a global RNG on its own: functions that
//! need random bytes take one (`*_with_rng`), and the convenience forms pass
//! [`OsRng`].

use rand_core::TryCryptoRng;

use super::CryptoError;

/// The operating system's CSPRNG (`getrandom`).
pub use getrandom::SysRng as OsRng;

/// Fills `buf` from `rng`, mapping any RNG failure to
/// [`CryptoError::RandomnessUnavailable`].
pub(crate) fn fill<R: TryCryptoRng + ?Sized>(rng: &mut R, buf: &mut [u8]) -> Result<(), CryptoError> {
    rng.try_fill_bytes(buf).map_err(|_| CryptoError::RandomnessUnavailable)
}

/// A deterministic generator: HMAC-SHA256 of a counter under a key derived
/// from a seed. Its output is as unpredictable as the seed is secret; with
/// a known seed (tests) it repeats exactly, run after run. **Never seed it
/// from a constant in an app**: the same seed under the same key repeats
/// nonces, which breaks AES-GCM.
#[derive(Debug, Clone)]
pub struct SeededRng {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> SeededRng {
        use hmac::Mac;
        let mut mac = super::keyed_mac(b"sealcast seeded rng, tests only.");
        mac.update(&seed.to_le_bytes());
        let key = mac.finalize().into_bytes().into();
        SeededRng { key, counter: 0, block: [0; 32], used: 32 }
    }

    fn next_block(&mut self) {
        use hmac::Mac;
        let mut mac = super::keyed_mac(&self.key);
        mac.update(&self.counter.to_le_bytes());
        self.block = mac.finalize().into_bytes().into();
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl rand_core::TryRng for SeededRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            if self.used == self.block.len() {
                self.next_block();
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for SeededRng {}

/// The randomness a client machine seals with and draws its ids from: the
/// OS's, or (`MachineConfig::test_rng_seed`) a [`SeededRng`] so a test run
/// reproduces every byte.
#[derive(Debug, Clone)]
pub enum ClientRng {
    /// The operating system's CSPRNG.
    Os,
    /// Deterministic (tests).
    Seeded(SeededRng),
}

impl ClientRng {
    /// The OS's randomness, or a seeded generator for `seed`.
    pub fn new(seed: Option<u64>) -> ClientRng {
        seed.map_or(ClientRng::Os, |seed| ClientRng::Seeded(SeededRng::new(seed)))
    }

    /// A random `u64`.
    pub fn u64(&mut self) -> Result<u64, CryptoError> {
        let mut bytes = [0u8; 8];
        fill(self, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// 32 random bytes.
    pub fn bytes32(&mut self) -> Result<[u8; 32], CryptoError> {
        let mut bytes = [0u8; 32];
        fill(self, &mut bytes)?;
        Ok(bytes)
    }
}

impl rand_core::TryRng for ClientRng {
    type Error = CryptoError;

    fn try_next_u32(&mut self) -> Result<u32, CryptoError> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, CryptoError> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), CryptoError> {
        match self {
            ClientRng::Os => fill(&mut OsRng, dst),
            ClientRng::Seeded(rng) => {
                let Ok(()) = rng.try_fill_bytes(dst);
                Ok(())
            }
        }
    }
}

impl TryCryptoRng for ClientRng {}

#[cfg(test)]
mod tests {
    use rand_core::TryRng;

    use super::*;

    #[test]
    fn a_seeded_generator_repeats_for_its_seed_only_and_does_not_repeat_itself() {
        let draw = |seed| {
            let mut rng = SeededRng::new(seed);
            let mut bytes = [0u8; 100];
            let Ok(()) = rng.try_fill_bytes(&mut bytes);
            bytes
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let bytes = draw(7);
        assert_ne!(bytes[..32], bytes[32..64], "consecutive blocks differ");
        // Byte by byte or in one call: the same stream.
        let mut rng = SeededRng::new(7);
        let one_by_one: Vec<u8> = (0..100)
            .map(|_| {
                let mut b = [0u8; 1];
                let Ok(()) = rng.try_fill_bytes(&mut b);
                b[0]
            })
            .collect();
        assert_eq!(one_by_one, bytes);
    }
}
