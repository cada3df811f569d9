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

/// A random `u64` from the OS (the client's op id prefixes).
pub(crate) fn random_u64() -> Result<u64, CryptoError> {
    let mut bytes = [0u8; 8];
    fill(&mut OsRng, &mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}
