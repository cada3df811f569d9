//! Unpadded base64url (RFC 4648 §5), the only binary-to-text encoding in
//! envelopes and exported keys. Decoding is strict: padding, whitespace and
//! non-zero trailing bits are rejected, so every byte string has exactly one
//! encoding and a changed character can never decode to the same bytes.

use base64::Engine;

use super::CryptoError;

/// The base64url engine: AVX2 (x86_64) or NEON (aarch64) when the CPU has
/// it, detected once; the scalar engine otherwise (and on every other
/// target, WebAssembly included). Same strict rules either way.
#[cfg(any(target_arch = "x86_64", all(target_arch = "aarch64", target_feature = "neon")))]
static URL_SAFE_NO_PAD: std::sync::LazyLock<base64::engine::Simd> =
    std::sync::LazyLock::new(|| base64::engine::Simd::url_safe(base64::engine::general_purpose::NO_PAD));
#[cfg(not(any(target_arch = "x86_64", all(target_arch = "aarch64", target_feature = "neon"))))]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn decode(text: &str, field: &'static str) -> Result<Vec<u8>, CryptoError> {
    URL_SAFE_NO_PAD.decode(text).map_err(|_| CryptoError::InvalidBase64 { field })
}

/// Decodes into a fixed-size array, rejecting any other length.
pub(crate) fn decode_array<const N: usize>(
    text: &str,
    field: &'static str,
    wrong_length: CryptoError,
) -> Result<[u8; N], CryptoError> {
    // N bytes always encode to exactly ceil(4N/3) characters unpadded;
    // checking first keeps a hostile multi-megabyte field from being decoded.
    if text.len() != (N * 4).div_ceil(3) {
        return Err(wrong_length);
    }
    let bytes = decode(text, field)?;
    bytes.try_into().map_err(|_| wrong_length)
}
