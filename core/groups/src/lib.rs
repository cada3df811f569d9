//! sealcast's device-keys mode: keys that never leave users' devices.
//!
//! Each device holds its own signature key; the app vouches for it with a
//! [`DeviceCertificate`] and says which devices may be in a channel with a
//! signed [`Roster`]. Each device-keys channel has one MLS group (RFC 9420,
//! openmls) whose handshake messages travel as one ordered log through the
//! blind sequencer. [`ChannelGroup`] turns that log into the same epoch on
//! every member: the first valid commit for an epoch, in log order, wins;
//! anything else is skipped the same way by everyone, so there is no fork
//! and no single message can stop the group. Each epoch gives the channel's
//! envelope key (`kid` = the channel's group, `kv` = the epoch).
//!
//! Sans-IO like the rest of the client: the driver feeds log entries in,
//! publishes what comes out, and fetches key packages from the relay's key
//! directory. docs/keys.md ("Device keys") describes the mode.

mod device;
mod entry;
mod error;
mod group;
mod identity;
mod link;
mod wire;

#[cfg(any(test, fuzzing))]
pub mod fuzzing;

#[cfg(test)]
mod harness_tests;

pub use device::{Device, DeviceKey};
pub use entry::Entry;
pub use error::{GroupError, Skip};
pub use group::{ChannelGroup, GroupEvent};
pub use identity::{AppIdentity, AppSigner, DeviceCertificate, Roster, SignedRoster};
pub use link::{GroupLink, LinkEvent};

/// The longest user, device or channel id, in bytes (the relay's limit
/// for user and device ids in the key directory).
pub const MAX_ID_BYTES: usize = 128;

/// The most devices a roster may list (and so a group may hold).
pub const MAX_ROSTER_DEVICES: usize = 10_000;

/// The MLS ciphersuite of every group: X25519, AES-128-GCM, SHA-256, Ed25519.
pub const CIPHERSUITE: openmls::prelude::Ciphersuite =
    openmls::prelude::Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
