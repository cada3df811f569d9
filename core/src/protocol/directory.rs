//! The key directory (a sealcast extension to Pusher; docs/protocol.md,
//! "Key directory"): signed-in devices publish MLS key packages, opaque to
//! the relay, and whoever adds a device to a group fetches one, consumed
//! once. Requests, answers and refusals are typed here once, for the
//! server, the client and the fuzz targets.
//!
//! A package is stored under the app, the connection's signed-in user and
//! the device id the request names; the relay never reads it. When a
//! device's packages run out, its *last-resort* package (kept, not
//! consumed) is handed out instead, so a drained directory slows no add.

use serde::{Deserialize, Serialize};

use super::ClientFrame;
use super::frame::MAX_USER_ID_BYTES;

/// Client → server: store key packages of this user's device (or, with
/// none, ask how many are stored).
pub const PUBLISH: &str = "sealcast:kp-publish";
/// Client → server: take one key package of a user's device.
pub const FETCH: &str = "sealcast:kp-fetch";
/// Client → server: forget every key package of this user's device.
pub const CLEAR: &str = "sealcast:kp-clear";
/// Server → client: what is stored for the device after a publish or clear.
pub const STORED: &str = "sealcast_internal:kp-stored";
/// Server → client: the package a fetch took.
pub const PACKAGE: &str = "sealcast_internal:kp-package";
/// Server → client: a refused request.
pub const ERROR: &str = "sealcast_internal:kp-error";

/// Longest device id, bytes.
pub const MAX_DEVICE_ID_BYTES: usize = 128;
/// Longest request id, bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 64;
/// Most packages one publish may carry (the app's per-device limit is
/// usually lower).
pub const MAX_PACKAGES_PER_REQUEST: usize = 64;

/// `sealcast:kp-publish` data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// Echoed in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The signed-in user's device the packages are of.
    pub device: String,
    /// Packages to add (after those stored); none asks for the count.
    #[serde(default)]
    pub packages: Vec<String>,
    /// The device's last-resort package, replacing any stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resort: Option<String>,
}

/// `sealcast:kp-fetch` data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fetch {
    /// Echoed in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The user whose device's package is wanted.
    pub user: String,
    /// The device.
    pub device: String,
}

/// `sealcast:kp-clear` data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clear {
    /// Echoed in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The signed-in user's device to forget.
    pub device: String,
}

/// A request, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Store packages.
    Publish(Publish),
    /// Take a package.
    Fetch(Fetch),
    /// Forget a device.
    Clear(Clear),
}

impl Request {
    /// The request a frame carries (its `data` an object or a string
    /// holding one), checked against the protocol's limits (the app's
    /// limits are the server's to check).
    pub fn parse(frame: &ClientFrame) -> Result<Request, DirectoryProtocolError> {
        let shape = DirectoryProtocolError::Shape;
        let request =
            match frame.event.as_str() {
                PUBLISH => Request::Publish(frame.data_as().map_err(|_| {
                    shape("kp-publish data is {device, packages?, last_resort?, request_id?}")
                })?),
                FETCH => Request::Fetch(
                    frame.data_as().map_err(|_| shape("kp-fetch data is {user, device, request_id?}"))?,
                ),
                CLEAR => Request::Clear(
                    frame.data_as().map_err(|_| shape("kp-clear data is {device, request_id?}"))?,
                ),
                _ => return Err(shape("not a key directory request")),
            };
        request.check()?;
        Ok(request)
    }

    fn check(&self) -> Result<(), DirectoryProtocolError> {
        let shape = DirectoryProtocolError::Shape;
        if self.request_id().is_some_and(|id| id.len() > MAX_REQUEST_ID_BYTES) {
            return Err(shape("`request_id` is at most 64 bytes"));
        }
        let device = match self {
            Request::Publish(p) => &p.device,
            Request::Fetch(f) => &f.device,
            Request::Clear(c) => &c.device,
        };
        if device.is_empty() || device.len() > MAX_DEVICE_ID_BYTES {
            return Err(shape("`device` is 1 to 128 bytes"));
        }
        match self {
            Request::Publish(p) => {
                if p.packages.len() > MAX_PACKAGES_PER_REQUEST {
                    return Err(shape("at most 64 `packages` per request"));
                }
                if p.packages.iter().chain(&p.last_resort).any(String::is_empty) {
                    return Err(shape("a package is a non-empty string"));
                }
            }
            Request::Fetch(f) if f.user.is_empty() || f.user.len() > MAX_USER_ID_BYTES => {
                return Err(shape("`user` is 1 to 128 bytes"));
            }
            _ => {}
        }
        Ok(())
    }

    /// The request's event name.
    pub fn event(&self) -> &'static str {
        match self {
            Request::Publish(_) => PUBLISH,
            Request::Fetch(_) => FETCH,
            Request::Clear(_) => CLEAR,
        }
    }

    /// The request as a client frame.
    pub fn encode(&self) -> String {
        match self {
            Request::Publish(publish) => encode(self.event(), publish),
            Request::Fetch(fetch) => encode(self.event(), fetch),
            Request::Clear(clear) => encode(self.event(), clear),
        }
    }

    /// The request's id, if it named one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Request::Publish(p) => p.request_id.as_deref(),
            Request::Fetch(f) => f.request_id.as_deref(),
            Request::Clear(c) => c.request_id.as_deref(),
        }
    }
}

/// `sealcast_internal:kp-stored` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The request's id, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The device.
    pub device: String,
    /// Packages stored for it now (not counting the last-resort one).
    pub count: usize,
    /// Whether it has a last-resort package.
    pub last_resort: bool,
}

/// `sealcast_internal:kp-package` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The request's id, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The user.
    pub user: String,
    /// The device.
    pub device: String,
    /// The package taken; `null` when the device has none (not even a
    /// last-resort one).
    pub package: Option<String>,
    /// Whether it is the device's last-resort package (not consumed).
    pub last_resort: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DirectoryErrorCode {
    /// Malformed data.
    Invalid,
    /// The connection has not signed in (`pusher:signin`): packages are
    /// stored under the signed-in user.
    NotSignedIn,
    /// A package over the app's `max_package_bytes`.
    TooLarge,
    /// More packages than the app keeps per device, or more devices than
    /// it keeps per user.
    TooMany,
    /// The app's directory is full (`max_bytes`).
    Quota,
    /// Over the connection's request rate: retry later.
    RateLimited,
    /// The server's store failed: retry later.
    Storage,
    /// A code this version does not know.
    #[serde(untagged)]
    Other(String),
}

impl DirectoryErrorCode {
    /// The wire form.
    pub fn as_str(&self) -> &str {
        match self {
            DirectoryErrorCode::Invalid => "invalid",
            DirectoryErrorCode::NotSignedIn => "not_signed_in",
            DirectoryErrorCode::TooLarge => "too_large",
            DirectoryErrorCode::TooMany => "too_many",
            DirectoryErrorCode::Quota => "quota",
            DirectoryErrorCode::RateLimited => "rate_limited",
            DirectoryErrorCode::Storage => "storage",
            DirectoryErrorCode::Other(code) => code,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DirectoryErrorCode::RateLimited | DirectoryErrorCode::Storage)
    }
}

/// `sealcast_internal:kp-error` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryError {
    /// The refused request's id, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The refused request's event name.
    pub request: String,
    /// Why.
    pub code: DirectoryErrorCode,
    /// For people.
    pub message: String,
}

/// A request that does not have the protocol's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryProtocolError {
    /// What was wrong.
    #[error("{0}")]
    Shape(&'static str),
}

/// `sealcast_internal:kp-stored`.
pub fn encode_stored(stored: &Stored) -> String {
    encode(STORED, stored)
}

/// `sealcast_internal:kp-package`.
pub fn encode_package(package: &Package) -> String {
    encode(PACKAGE, package)
}

/// `sealcast_internal:kp-error`.
pub fn encode_error(error: &DirectoryError) -> String {
    encode(ERROR, error)
}

fn encode<T: Serialize>(event: &str, data: &T) -> String {
    #[derive(Serialize)]
    struct Frame<'a, T> {
        event: &'a str,
        data: &'a T,
    }
    serde_json::to_string(&Frame { event, data }).expect("key directory frames are plain data")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(event: &str, data: &str) -> ClientFrame {
        ClientFrame::parse(format!(r#"{{"event":"{event}","data":{data}}}"#).as_bytes()).unwrap()
    }

    #[test]
    fn requests_parse_and_are_checked() {
        let publish =
            Request::parse(&frame(PUBLISH, r#"{"device":"phone","packages":["a","b"],"last_resort":"c"}"#));
        let Ok(Request::Publish(publish)) = publish else { panic!("{publish:?}") };
        assert_eq!((publish.packages.len(), publish.last_resort.as_deref()), (2, Some("c")));
        let fetch =
            Request::parse(&frame(FETCH, r#""{\"user\":\"bob\",\"device\":\"tab\",\"request_id\":\"7\"}""#));
        assert_eq!(fetch.unwrap().request_id(), Some("7"));
        assert!(matches!(Request::parse(&frame(CLEAR, r#"{"device":"d"}"#)), Ok(Request::Clear(_))));
        let many =
            format!(r#"{{"device":"d","packages":{}}}"#, serde_json::to_string(&vec!["p"; 65]).unwrap());
        let long = "x".repeat(129);
        for (event, bad) in [
            (PUBLISH, r#"{"packages":["a"]}"#.to_owned()),
            (PUBLISH, r#"{"device":""}"#.to_owned()),
            (PUBLISH, format!(r#"{{"device":"{long}"}}"#)),
            (PUBLISH, r#"{"device":"d","packages":[""]}"#.to_owned()),
            (PUBLISH, r#"{"device":"d","packages":[1]}"#.to_owned()),
            (PUBLISH, r#"{"device":"d","extra":1}"#.to_owned()),
            (PUBLISH, many),
            (FETCH, r#"{"device":"d"}"#.to_owned()),
            (FETCH, format!(r#"{{"user":"{long}","device":"d"}}"#)),
            (FETCH, format!(r#"{{"user":"u","device":"d","request_id":"{}"}}"#, "r".repeat(65))),
            (CLEAR, "[]".to_owned()),
            ("sealcast:other", r#"{"device":"d"}"#.to_owned()),
        ] {
            assert!(Request::parse(&frame(event, &bad)).is_err(), "{event} {bad} was accepted");
        }
    }

    #[test]
    fn requests_encode_to_what_parses_back() {
        let fetch =
            Request::Fetch(Fetch { request_id: Some("r".into()), user: "u".into(), device: "d".into() });
        let text = fetch.encode();
        assert_eq!(Request::parse(&ClientFrame::parse(text.as_bytes()).unwrap()).unwrap(), fetch);
        for code in
            [DirectoryErrorCode::NotSignedIn, DirectoryErrorCode::TooMany, DirectoryErrorCode::Storage]
        {
            assert_eq!(serde_json::to_value(&code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn answers_encode_as_documented() {
        let stored = Stored { request_id: None, device: "phone".into(), count: 3, last_resort: true };
        assert_eq!(
            encode_stored(&stored),
            r#"{"event":"sealcast_internal:kp-stored","data":{"device":"phone","count":3,"last_resort":true}}"#
        );
        let error = DirectoryError {
            request_id: Some("1".into()),
            request: FETCH.into(),
            code: DirectoryErrorCode::NotSignedIn,
            message: "sign in first".into(),
        };
        assert!(encode_error(&error).contains(r#""code":"not_signed_in""#));
        let parsed: DirectoryError =
            serde_json::from_str(r#"{"request":"x","code":"new_code","message":""}"#).unwrap();
        assert_eq!(parsed.code, DirectoryErrorCode::Other("new_code".into()));
    }
}
