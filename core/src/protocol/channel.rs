//! [`ChannelName`]: a validated channel name and its kind.

use core::fmt;

use super::WireError;

/// Longest channel name, in bytes (Pusher's limit).
pub const MAX_CHANNEL_NAME_LEN: usize = 200;

/// The prefix of a user's own channel (Pusher's user authentication): after
/// `pusher:signin` a client subscribes to `#server-to-user-{user_id}`, and
/// the server libraries' `sendToUser` publishes there.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// What a channel name's prefix makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// No prefix: anyone with the app key may subscribe.
    Public,
    /// `private-`: subscription needs an auth signature; client events allowed.
    Private,
    /// `private-encrypted-`: like private, payloads encrypted with a key the
    /// app server hands to clients; no client events.
    PrivateEncrypted,
    /// `presence-`: private plus a roster of members; client events allowed.
    Presence,
    /// `#server-to-user-{user_id}`: a signed-in user's own channel; only a
    /// connection signed in as that user may subscribe (no signature); no
    /// client events.
    ServerToUser,
}

/// Whether `name` is a cache channel's (see [`ChannelName::is_cache`]).
pub fn is_cache(name: &str) -> bool {
    ["cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

impl ChannelKind {
    /// The kind a channel name's prefix gives it (the name itself is not
    /// validated: see [`ChannelName::parse`]).
    pub fn of(name: &str) -> ChannelKind {
        if name.starts_with(SERVER_TO_USER_PREFIX) {
            ChannelKind::ServerToUser
        } else if name.starts_with("private-encrypted-") {
            ChannelKind::PrivateEncrypted
        } else if name.starts_with("private-") {
            ChannelKind::Private
        } else if name.starts_with("presence-") {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
    }

    /// True when subscribing needs an auth signature (a user's own
    /// channel needs a sign-in instead).
    pub fn requires_auth(self) -> bool {
        matches!(self, ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence)
    }

    /// True for presence channels (members, user ids on events).
    pub fn is_presence(self) -> bool {
        self == ChannelKind::Presence
    }
}

/// A channel name that passed validation: 1–200 bytes of
/// `A-Z a-z 0-9 _ - = @ , . ;`, or [`SERVER_TO_USER_PREFIX`] followed by a
/// user id of those characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);

impl ChannelName {
    /// Validates `name`.
    pub fn parse(name: &str) -> Result<ChannelName, WireError> {
        if name.is_empty() || name.len() > MAX_CHANNEL_NAME_LEN {
            return Err(WireError::InvalidChannel("channel names are 1 to 200 characters"));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b);
        let rest = name.strip_prefix(SERVER_TO_USER_PREFIX).unwrap_or(name);
        if rest.is_empty() {
            return Err(WireError::InvalidChannel("a user channel names its user"));
        }
        if !rest.bytes().all(allowed) {
            return Err(WireError::InvalidChannel("channel names use only A-Z a-z 0-9 _ - = @ , . ;"));
        }
        Ok(ChannelName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The channel's kind, from its prefix.
    pub fn kind(&self) -> ChannelKind {
        ChannelKind::of(&self.0)
    }

    /// True when subscribing needs an auth signature.
    pub fn requires_auth(&self) -> bool {
        self.kind().requires_auth()
    }

    /// The user of a user's own channel (`#server-to-user-{user_id}`).
    pub fn user_id(&self) -> Option<&str> {
        self.0.strip_prefix(SERVER_TO_USER_PREFIX)
    }

    /// True for Pusher's cache channels (`cache-`, `private-cache-`,
    /// `private-encrypted-cache-`, `presence-cache-`): a new subscriber gets
    /// the last event, or `pusher:cache_miss`.
    pub fn is_cache(&self) -> bool {
        is_cache(&self.0)
    }

    /// True when clients may publish `client-` events on it.
    pub fn allows_client_events(&self) -> bool {
        matches!(self.kind(), ChannelKind::Private | ChannelKind::Presence)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let kind = |n| ChannelName::parse(n).unwrap().kind();
        assert_eq!(kind("news"), ChannelKind::Public);
        assert_eq!(kind("private-chat"), ChannelKind::Private);
        assert_eq!(kind("private-encrypted-chat"), ChannelKind::PrivateEncrypted);
        assert_eq!(kind("presence-room"), ChannelKind::Presence);
        assert!(!ChannelName::parse("private-encrypted-x").unwrap().allows_client_events());
        assert!(ChannelName::parse("presence-x").unwrap().allows_client_events());
        assert!(!ChannelName::parse("news").unwrap().allows_client_events());
        let user = ChannelName::parse("#server-to-user-ann.b@x").unwrap();
        assert_eq!(user.kind(), ChannelKind::ServerToUser);
        assert_eq!(user.user_id(), Some("ann.b@x"));
        assert!(!user.requires_auth() && !user.allows_client_events());
        assert_eq!(ChannelName::parse("private-x").unwrap().user_id(), None);
    }

    #[test]
    fn validation() {
        for bad in
            ["", "a b", "ü", "x/y", &"a".repeat(201), "a\"b", "#x", "#server-to-user-", "#server-to-user-a#b"]
        {
            assert!(ChannelName::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "private-a_b-c=d@e,f.g;h", &"a".repeat(200)] {
            assert!(ChannelName::parse(good).is_ok(), "{good:?}");
        }
    }
}
