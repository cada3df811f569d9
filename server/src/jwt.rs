//! Asymmetric channel authorization: JWTs signed by the app server with
//! Ed25519 (`EdDSA`) or P-256 (`ES256`), verified here with public keys only.
//!
//! An app that registers public keys lets its clients subscribe with a token
//! instead of an HMAC signature, so the relay holds no secret that could
//! mint access. Claims (normative list in `docs/auth.md`): `aud` = app id,
//! `exp` (required), `nbf`, `sub` (user id; required on presence channels),
//! `channels` (exact names) and/or `channel_prefix`, `user_info` (presence),
//! `socket_id` (optional binding to one connection).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Verifier as _;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Largest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// A public key as configured (JWK-style members, base64url).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// Key id, matched against the token header's `kid` when present.
    pub kid: String,
    /// `EdDSA` (Ed25519) or `ES256` (P-256).
    pub alg: String,
    /// Ed25519: the 32-byte public key. P-256: the x coordinate (32 bytes).
    pub x: String,
    /// P-256: the y coordinate (32 bytes).
    #[serde(default)]
    pub y: Option<String>,
}

/// Why a token was refused. Messages go back to the client: they name the
/// check that failed, never key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts with JSON header and claims, or too big.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` other than EdDSA or ES256 (in particular `none` and HMAC).
    #[error("unsupported token algorithm")]
    UnsupportedAlgorithm,
    /// No registered key matches the token's `kid` and `alg`.
    #[error("no registered public key for this token")]
    UnknownKey,
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` is not this app's id.
    #[error("token is for another app")]
    WrongAudience,
    /// Neither `channels` nor `channel_prefix` allows this channel.
    #[error("token does not grant this channel")]
    ChannelNotGranted,
    /// The token is bound to another connection.
    #[error("token is bound to another socket_id")]
    WrongSocket,
    /// A presence channel needs `sub`.
    #[error("presence channels need a `sub` claim")]
    MissingSubject,
    /// `sub` is longer than a user id may be (the HMAC path's 128 bytes).
    #[error("the `sub` claim is over 128 bytes")]
    SubjectTooLong,
}

/// What a verified token grants.
#[derive(Debug)]
pub struct Grant {
    /// `sub`.
    pub user_id: Option<String>,
    /// `user_info`.
    pub user_info: Option<Box<RawValue>>,
}

#[derive(Debug, Clone)]
enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

/// The public keys of one app.
#[derive(Debug, Clone, Default)]
pub struct TokenVerifier {
    keys: Vec<(String, PublicKey)>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    aud: Audience,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    channel_prefix: Option<String>,
    #[serde(default)]
    user_info: Option<Box<RawValue>>,
    #[serde(default)]
    socket_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Why a configured JWT key was rejected (caused by: the operator's
/// config; reported at start-up and on reload).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtKeyError {
    /// `x` or `y` is not 32 bytes of unpadded base64url.
    #[error("jwt key {kid:?}: {coordinate} must be 32 bytes of unpadded base64url")]
    BadCoordinate {
        /// The key's id.
        kid: String,
        /// `x` or `y`.
        coordinate: &'static str,
    },
    /// `x` is not a point of Ed25519.
    #[error("jwt key {kid:?}: not an Ed25519 point")]
    NotEd25519Point {
        /// The key's id.
        kid: String,
    },
    /// An ES256 key without `y`.
    #[error("jwt key {kid:?}: ES256 needs y")]
    MissingY {
        /// The key's id.
        kid: String,
    },
    /// `x`, `y` is not a point of P-256.
    #[error("jwt key {kid:?}: not a P-256 point")]
    NotP256Point {
        /// The key's id.
        kid: String,
    },
    /// Neither EdDSA nor ES256.
    #[error("jwt key {kid:?}: alg {alg:?} is not EdDSA or ES256")]
    UnsupportedAlgorithm {
        /// The key's id.
        kid: String,
        /// The configured algorithm.
        alg: String,
    },
}

impl TokenVerifier {
    /// Parses configured keys; the error names the bad key.
    pub fn from_config(keys: &[JwtKeyConfig]) -> Result<TokenVerifier, JwtKeyError> {
        let mut parsed = Vec::with_capacity(keys.len());
        for key in keys {
            let kid = || key.kid.clone();
            let decode32 = |text: &str, coordinate: &'static str| -> Result<[u8; 32], JwtKeyError> {
                URL_SAFE_NO_PAD
                    .decode(text)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| JwtKeyError::BadCoordinate { kid: kid(), coordinate })
            };
            let public = match key.alg.as_str() {
                "EdDSA" => {
                    let x = decode32(&key.x, "x")?;
                    PublicKey::Ed25519(
                        ed25519_dalek::VerifyingKey::from_bytes(&x)
                            .map_err(|_| JwtKeyError::NotEd25519Point { kid: kid() })?,
                    )
                }
                "ES256" => {
                    let x = decode32(&key.x, "x")?;
                    let y =
                        decode32(key.y.as_deref().ok_or_else(|| JwtKeyError::MissingY { kid: kid() })?, "y")?;
                    let mut sec1 = [0u8; 65];
                    sec1[0] = 4;
                    sec1[1..33].copy_from_slice(&x);
                    sec1[33..].copy_from_slice(&y);
                    PublicKey::P256(
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                            .map_err(|_| JwtKeyError::NotP256Point { kid: kid() })?,
                    )
                }
                other => return Err(JwtKeyError::UnsupportedAlgorithm { kid: kid(), alg: other.to_owned() }),
            };
            parsed.push((key.kid.clone(), public));
        }
        Ok(TokenVerifier { keys: parsed })
    }

    /// True when the app registered at least one key.
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Verifies `token` for a subscription of `socket_id` to `channel` of
    /// app `app_id`, at `now` (seconds since the Unix epoch).
    pub fn verify(
        &self,
        token: &str,
        app_id: &str,
        socket_id: &str,
        channel: &str,
        presence: bool,
        now: u64,
    ) -> Result<Grant, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed("token too large"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected header.claims.signature"));
        };
        let decode = |part: &str, what| URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed(what));
        let header: Header = serde_json::from_slice(&decode(header_b64, "header is not base64url")?)
            .map_err(|_| TokenError::Malformed("header is not a JSON object with `alg`"))?;
        let signature = decode(signature_b64, "signature is not base64url")?;
        let signed = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];

        // The algorithm comes from the key, never from the token alone: a
        // token can only pick among keys the app registered for that alg.
        let candidates = self.keys.iter().filter(|(kid, key)| {
            let alg_matches = matches!(
                (header.alg.as_str(), key),
                ("EdDSA", PublicKey::Ed25519(_)) | ("ES256", PublicKey::P256(_))
            );
            alg_matches && header.kid.as_deref().is_none_or(|wanted| wanted == kid)
        });
        if !matches!(header.alg.as_str(), "EdDSA" | "ES256") {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let mut any_key = false;
        let mut verified = false;
        for (_, key) in candidates {
            any_key = true;
            verified = match key {
                PublicKey::Ed25519(key) => <[u8; 64]>::try_from(signature.as_slice()).is_ok_and(|sig| {
                    key.verify_strict(signed, &ed25519_dalek::Signature::from_bytes(&sig)).is_ok()
                }),
                PublicKey::P256(key) => p256::ecdsa::Signature::from_slice(&signature)
                    .is_ok_and(|sig| key.verify(signed, &sig).is_ok()),
            };
            if verified {
                break;
            }
        }
        if !any_key {
            return Err(TokenError::UnknownKey);
        }
        if !verified {
            return Err(TokenError::BadSignature);
        }

        let claims: Claims = serde_json::from_slice(&decode(claims_b64, "claims are not base64url")?)
            .map_err(|_| TokenError::Malformed("claims need `aud` and `exp` of the right types"))?;
        let audience_ok = match &claims.aud {
            Audience::One(aud) => aud == app_id,
            Audience::Many(auds) => auds.iter().any(|a| a == app_id),
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        if now > claims.exp.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now.saturating_add(LEEWAY_SECS) < nbf) {
            return Err(TokenError::NotYetValid);
        }
        if claims.socket_id.as_deref().is_some_and(|bound| bound != socket_id) {
            return Err(TokenError::WrongSocket);
        }
        let granted = claims.channels.iter().any(|c| c == channel)
            || claims
                .channel_prefix
                .as_deref()
                .is_some_and(|prefix| !prefix.is_empty() && channel.starts_with(prefix));
        if !granted {
            return Err(TokenError::ChannelNotGranted);
        }
        if presence && claims.sub.as_deref().is_none_or(str::is_empty) {
            return Err(TokenError::MissingSubject);
        }
        // The same bound as a presence `user_id` signed with HMAC.
        if claims.sub.as_deref().is_some_and(|sub| sub.len() > sealcast_core::protocol::MAX_USER_ID_BYTES) {
            return Err(TokenError::SubjectTooLong);
        }
        Ok(Grant { user_id: claims.sub, user_info: claims.user_info })
    }
}

/// True when an `auth` value is shaped like a JWT rather than `key:signature`.
pub fn looks_like_jwt(auth: &str) -> bool {
    auth.bytes().filter(|b| *b == b'.').count() == 2 && !auth.contains(':')
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Signer as _;
    use serde_json::json;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ed_key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
    }

    fn p256_key() -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap()
    }

    fn verifier() -> TokenVerifier {
        let point = p256_key().verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        TokenVerifier::from_config(&[
            JwtKeyConfig {
                kid: "ed".into(),
                alg: "EdDSA".into(),
                x: b64(ed_key().verifying_key().as_bytes()),
                y: None,
            },
            JwtKeyConfig {
                kid: "ec".into(),
                alg: "ES256".into(),
                x: b64(&bytes[1..33]),
                y: Some(b64(&bytes[33..65])),
            },
        ])
        .unwrap()
    }

    fn token(alg: &str, kid: &str, claims: serde_json::Value) -> String {
        let header = b64(json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string().as_bytes());
        let body = b64(claims.to_string().as_bytes());
        let signed = format!("{header}.{body}");
        let signature = match alg {
            "EdDSA" => ed_key().sign(signed.as_bytes()).to_bytes().to_vec(),
            _ => {
                let sig: p256::ecdsa::Signature = p256_key().sign(signed.as_bytes());
                sig.to_bytes().to_vec()
            }
        };
        format!("{signed}.{}", b64(&signature))
    }

    const NOW: u64 = 1_800_000_000;

    fn claims() -> serde_json::Value {
        json!({"aud": "app1", "exp": NOW + 60, "sub": "u1", "channels": ["private-a"], "channel_prefix": "presence-team-", "user_info": {"name": "U"}})
    }

    #[test]
    fn valid_tokens_with_both_algorithms() {
        for alg in ["EdDSA", "ES256"] {
            let kid = if alg == "EdDSA" { "ed" } else { "ec" };
            let grant = verifier()
                .verify(&token(alg, kid, claims()), "app1", "1.1", "private-a", false, NOW)
                .unwrap();
            assert_eq!(grant.user_id.as_deref(), Some("u1"));
            let grant = verifier()
                .verify(&token(alg, kid, claims()), "app1", "1.1", "presence-team-x", true, NOW)
                .unwrap();
            assert_eq!(grant.user_info.unwrap().get(), r#"{"name":"U"}"#);
        }
    }

    #[test]
    fn every_check_refuses() {
        let v = verifier();
        let check = |token: &str, channel: &str| {
            v.verify(token, "app1", "1.1", channel, channel.starts_with("presence-"), NOW)
        };
        let good = token("EdDSA", "ed", claims());
        assert_eq!(check(&good, "private-b").unwrap_err(), TokenError::ChannelNotGranted);
        assert_eq!(
            v.verify(&good, "app2", "1.1", "private-a", false, NOW).unwrap_err(),
            TokenError::WrongAudience
        );
        let mut expired = claims();
        expired["exp"] = json!(NOW - LEEWAY_SECS - 1);
        assert_eq!(check(&token("EdDSA", "ed", expired), "private-a").unwrap_err(), TokenError::Expired);
        let mut early = claims();
        early["nbf"] = json!(NOW + LEEWAY_SECS + 5);
        assert_eq!(check(&token("EdDSA", "ed", early), "private-a").unwrap_err(), TokenError::NotYetValid);
        let mut bound = claims();
        bound["socket_id"] = json!("9.9");
        assert_eq!(check(&token("EdDSA", "ed", bound), "private-a").unwrap_err(), TokenError::WrongSocket);
        let mut anonymous = claims();
        anonymous.as_object_mut().unwrap().remove("sub");
        assert_eq!(
            check(&token("EdDSA", "ed", anonymous), "presence-team-1").unwrap_err(),
            TokenError::MissingSubject
        );
        assert_eq!(
            check(&token("EdDSA", "nope", claims()), "private-a").unwrap_err(),
            TokenError::UnknownKey
        );
        // Issue 10, item 9: a 4,000-byte `sub` was accepted as a user id.
        let mut long = claims();
        long["sub"] = json!("u".repeat(4000));
        assert_eq!(
            check(&token("EdDSA", "ed", long), "presence-team-1").unwrap_err(),
            TokenError::SubjectTooLong
        );

        // Tampered claims, alg confusion, none, garbage.
        let parts: Vec<&str> = good.split('.').collect();
        let mut other = claims();
        other["channels"] = json!(["private-b"]);
        let forged = format!("{}.{}.{}", parts[0], b64(other.to_string().as_bytes()), parts[2]);
        assert_eq!(check(&forged, "private-b").unwrap_err(), TokenError::BadSignature);
        let es_header_on_ed_sig =
            format!("{}.{}.{}", b64(br#"{"alg":"ES256","kid":"ed"}"#), parts[1], parts[2]);
        assert_eq!(check(&es_header_on_ed_sig, "private-a").unwrap_err(), TokenError::UnknownKey);
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(check(&none, "private-a").unwrap_err(), TokenError::UnsupportedAlgorithm);
        let hs = format!("{}.{}.{}", b64(br#"{"alg":"HS256"}"#), parts[1], parts[2]);
        assert_eq!(check(&hs, "private-a").unwrap_err(), TokenError::UnsupportedAlgorithm);
        for bad in ["", "a.b", "a.b.c.d", "!.!.!", &"a".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(matches!(check(bad, "private-a").unwrap_err(), TokenError::Malformed(_)), "{bad:.20}");
        }
    }

    #[test]
    fn bad_key_config_is_reported() {
        let bad = |alg: &str, x: &str, y: Option<&str>| {
            TokenVerifier::from_config(&[JwtKeyConfig {
                kid: "k".into(),
                alg: alg.into(),
                x: x.into(),
                y: y.map(Into::into),
            }])
        };
        let kid = || "k".to_owned();
        assert_eq!(
            bad("RS256", &b64(&[1; 32]), None).unwrap_err(),
            JwtKeyError::UnsupportedAlgorithm { kid: kid(), alg: "RS256".into() }
        );
        assert_eq!(
            bad("EdDSA", "short", None).unwrap_err(),
            JwtKeyError::BadCoordinate { kid: kid(), coordinate: "x" }
        );
        assert_eq!(bad("ES256", &b64(&[1; 32]), None).unwrap_err(), JwtKeyError::MissingY { kid: kid() });
        assert_eq!(
            bad("ES256", &b64(&[1; 32]), Some(&b64(&[1; 32]))).unwrap_err(),
            JwtKeyError::NotP256Point { kid: kid() }
        );
        assert!(bad("RS256", "x", None).unwrap_err().to_string().contains("not EdDSA or ES256"));
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("key:abc"));
        assert!(!looks_like_jwt("a.b"));
    }
}
