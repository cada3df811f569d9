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
