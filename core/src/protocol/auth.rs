//! Pusher's HMAC-SHA256 authentication signatures.
//!
//! - Channels: `auth = "{app_key}:{hex(HMAC-SHA256(secret, socket_id ":" channel [":" channel_data]))}"`
//!   (`channel_data` only for presence channels).
//! - User sign-in: the same over `socket_id "::user::" user_data`.
//!
//! Verification compares in constant time. The app server signs (it holds
//! the secret); the relay verifies.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::WireError;

/// The hex HMAC-SHA256 signature for a channel subscription.
pub fn channel_signature(secret: &str, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    let mut mac = mac(secret);
    mac.update(socket_id.as_bytes());
    mac.update(b":");
    mac.update(channel.as_bytes());
    if let Some(data) = channel_data {
        mac.update(b":");
        mac.update(data.as_bytes());
    }
    hex(&mac.finalize().into_bytes())
}

/// The `auth` value an app server returns for a channel subscription.
pub fn channel_auth(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    format!("{app_key}:{}", channel_signature(secret, socket_id, channel, channel_data))
}

/// The hex HMAC-SHA256 signature for a user sign-in.
pub fn user_signature(secret: &str, socket_id: &str, user_data: &str) -> String {
    let mut mac = mac(secret);
    mac.update(socket_id.as_bytes());
    mac.update(b"::user::");
    mac.update(user_data.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Checks a channel `auth` value (`key:hexsig`).
pub fn verify_channel_auth(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> Result<(), WireError> {
    verify(app_key, auth, &channel_signature(secret, socket_id, channel, channel_data))
}

/// Checks a user sign-in `auth` value (`key:hexsig`).
pub fn verify_user_auth(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
    auth: &str,
) -> Result<(), WireError> {
    verify(app_key, auth, &user_signature(secret, socket_id, user_data))
}

/// HMAC-SHA256 of `message` under `secret`, lowercase hex (the HTTP API
/// request signature uses it too).
pub fn hmac_hex(secret: &str, message: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(message);
    hex(&mac.finalize().into_bytes())
}

/// Constant-time comparison of two signature strings.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// True when `socket_id` has Pusher's form: digits, a dot, digits.
pub fn is_valid_socket_id(socket_id: &str) -> bool {
    let Some((a, b)) = socket_id.split_once('.') else { return false };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit());
    digits(a) && digits(b)
}

fn verify(app_key: &str, auth: &str, expected: &str) -> Result<(), WireError> {
    let (key, signature) =
        auth.split_once(':').ok_or(WireError::Unauthorized("auth must be `key:signature`"))?;
    if key != app_key {
        return Err(WireError::Unauthorized("auth names another app key"));
    }
    if !signatures_equal(signature, expected) {
        return Err(WireError::Unauthorized("signature does not match"));
    }
    Ok(())
}

fn mac(secret: &str) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length")
}

/// Lowercase hex of `bytes` (the encoding of every Pusher signature).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xF)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Pusher's authentication docs: key
    /// `278d425bdf160c739803`, secret `7ad3773142a6692b25b8`, socket
    /// `1234.1234`, channel `private-foobar`.
    #[test]
    fn pusher_documented_example() {
        assert_eq!(
            channel_auth("278d425bdf160c739803", "7ad3773142a6692b25b8", "1234.1234", "private-foobar", None),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_signature() {
        let auth = channel_auth("key", "secret", "1.2", "presence-r", Some(r#"{"user_id":"u"}"#));
        verify_channel_auth("key", "secret", "1.2", "presence-r", Some(r#"{"user_id":"u"}"#), &auth).unwrap();
        assert!(
            verify_channel_auth("key", "secret", "1.3", "presence-r", Some(r#"{"user_id":"u"}"#), &auth)
                .is_err()
        );
        assert!(
            verify_channel_auth("key", "secret", "1.2", "presence-r", Some(r#"{"user_id":"v"}"#), &auth)
                .is_err()
        );
        assert!(
            verify_channel_auth("other", "secret", "1.2", "presence-r", Some(r#"{"user_id":"u"}"#), &auth)
                .is_err()
        );
        assert!(verify_channel_auth("key", "secret", "1.2", "presence-r", None, "nocolon").is_err());
        let user = format!("key:{}", user_signature("secret", "1.2", r#"{"id":"u"}"#));
        verify_user_auth("key", "secret", "1.2", r#"{"id":"u"}"#, &user).unwrap();
    }

    #[test]
    fn socket_ids() {
        assert!(is_valid_socket_id("123.456"));
        for bad in ["", "1", "1.", ".1", "a.1", "1.2.3", "1 .2"] {
            assert!(!is_valid_socket_id(bad), "{bad}");
        }
    }
}
