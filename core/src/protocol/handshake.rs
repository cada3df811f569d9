//! The WebSocket handshake's request path: `/app/{key}?protocol=7&client=…&version=…`,
//! built by every client here (the Rust driver, the load generator) and read
//! by the server, in one place.

use std::ops::RangeInclusive;

/// Where a WebSocket connection's path starts; the app key follows.
pub const PATH_PREFIX: &str = "/app/";

/// The protocol version sealcast's own clients speak.
pub const PROTOCOL_VERSION: u32 = 7;

/// The protocol versions the server accepts (Pusher clients still send 5
/// and 6; the frames sealcast uses are the same).
pub const SUPPORTED_VERSIONS: RangeInclusive<u32> = 5..=7;

/// The request path and query of a connection to app `key`, announcing
/// `client` at `version` (Pusher's `client`/`version` query parameters).
pub fn path(key: &str, client: &str, version: &str) -> String {
    format!("{PATH_PREFIX}{key}?protocol={PROTOCOL_VERSION}&client={client}&version={version}")
}

/// The app key of a WebSocket path (`/app/{key}`), if the path is one.
pub fn app_key_of(path: &str) -> Option<&str> {
    path.strip_prefix(PATH_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_round_trips() {
        let built = path("app-key", "sealcast-rust", "0.1.0");
        assert_eq!(built, "/app/app-key?protocol=7&client=sealcast-rust&version=0.1.0");
        assert_eq!(app_key_of(built.split('?').next().unwrap()), Some("app-key"));
        assert_eq!(app_key_of("/apps/1/events"), None);
        assert!(SUPPORTED_VERSIONS.contains(&PROTOCOL_VERSION));
    }
}
