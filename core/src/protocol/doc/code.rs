//! [`DocErrorCode`]: the `code` of a `sealcast_internal:doc-error`, one
//! vocabulary for the server's refusals, the stores (including the Redis
//! script's answers), the client's retry policy and the bindings
//! (docs/protocol.md, "Documents").

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why the server refused a document request. Unknown codes (from a newer
/// server) parse as [`DocErrorCode::Other`], so a client never fails on
/// one; it treats them as permanent refusals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DocErrorCode {
    /// The op's base is outside the retained history: catch up, resubmit.
    Resync,
    /// A payload or the document's history is over its size limit.
    TooLarge,
    /// A malformed request (or a snapshot past the head).
    Invalid,
    /// A snapshot a later op is based before: upload a newer one.
    StaleSnapshot,
    /// The op id belongs to another author's op.
    Conflict,
    /// The app has its most documents.
    Quota,
    /// The store failed: retry later.
    Storage,
    /// Over a rate or concurrency limit: retry later.
    RateLimited,
    /// The sequencer is unavailable (shutting down, cluster store away):
    /// retry later.
    Unavailable,
    /// The connection is not subscribed to the document's channel.
    NotSubscribed,
    /// A code this version does not know.
    Other(String),
}

impl DocErrorCode {
    /// The wire form (`resync`, `too_large`, …).
    pub fn as_str(&self) -> &str {
        match self {
            DocErrorCode::Resync => "resync",
            DocErrorCode::TooLarge => "too_large",
            DocErrorCode::Invalid => "invalid",
            DocErrorCode::StaleSnapshot => "stale_snapshot",
            DocErrorCode::Conflict => "conflict",
            DocErrorCode::Quota => "quota",
            DocErrorCode::Storage => "storage",
            DocErrorCode::RateLimited => "rate_limited",
            DocErrorCode::Unavailable => "unavailable",
            DocErrorCode::NotSubscribed => "not_subscribed",
            DocErrorCode::Other(code) => code,
        }
    }

    /// Reads a wire code; never fails (unknown: [`DocErrorCode::Other`]).
    pub fn parse(code: &str) -> DocErrorCode {
        match code {
            "resync" => DocErrorCode::Resync,
            "too_large" => DocErrorCode::TooLarge,
            "invalid" => DocErrorCode::Invalid,
            "stale_snapshot" => DocErrorCode::StaleSnapshot,
            "conflict" => DocErrorCode::Conflict,
            "quota" => DocErrorCode::Quota,
            "storage" => DocErrorCode::Storage,
            "rate_limited" => DocErrorCode::RateLimited,
            "unavailable" => DocErrorCode::Unavailable,
            "not_subscribed" => DocErrorCode::NotSubscribed,
            other => DocErrorCode::Other(other.to_owned()),
        }
    }

    /// A refusal for now: the same request may succeed after a wait
    /// (`rate_limited`, `storage`, `unavailable`).
    pub fn is_transient(&self) -> bool {
        matches!(self, DocErrorCode::RateLimited | DocErrorCode::Storage | DocErrorCode::Unavailable)
    }
}

impl fmt::Display for DocErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DocErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DocErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DocErrorCode, D::Error> {
        let code = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(DocErrorCode::parse(&code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_unknown_ones_are_kept() {
        let known = [
            DocErrorCode::Resync,
            DocErrorCode::TooLarge,
            DocErrorCode::Invalid,
            DocErrorCode::StaleSnapshot,
            DocErrorCode::Conflict,
            DocErrorCode::Quota,
            DocErrorCode::Storage,
            DocErrorCode::RateLimited,
            DocErrorCode::Unavailable,
            DocErrorCode::NotSubscribed,
        ];
        for code in known {
            assert_eq!(DocErrorCode::parse(code.as_str()), code);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<DocErrorCode>(&json).unwrap(), code);
        }
        let newer = DocErrorCode::parse("frozen");
        assert_eq!(newer, DocErrorCode::Other("frozen".into()));
        assert_eq!(newer.as_str(), "frozen");
        assert!(!newer.is_transient());
    }
}
