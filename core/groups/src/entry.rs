//! The entries of a channel group's log, as the sequencer stores them
//! (opaque to it): a genesis that starts a generation of the group, a
//! commit (an MLS message, ciphertext), and a welcome published by a
//! committer once its commit won.

use crate::GroupError;
use crate::identity::{DeviceCertificate, SignedRoster};
use crate::wire::{MAX_FIELD_BYTES, Reader, Writer};

const GENESIS: u8 = 1;
const COMMIT: u8 = 2;
const WELCOME: u8 = 3;

/// The domain of a genesis signature.
pub(crate) const GENESIS_DOMAIN: &[u8] = b"sealcast/genesis/v1";

/// One entry of a group log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// "Device `creator` holds epoch 0 of group `group_id` for this channel":
    /// the latest valid genesis in the log is the group's current generation.
    Genesis {
        /// The MLS group id (random, 16 bytes).
        group_id: Vec<u8>,
        /// The creator's certificate (encoded).
        creator: Vec<u8>,
        /// The roster the group starts from (encoded, app-signed).
        roster: Vec<u8>,
        /// The creator's signature over the domain, channel and group id.
        signature: Vec<u8>,
    },
    /// An MLS commit (`MLSMessage`, a PrivateMessage).
    Commit(Vec<u8>),
    /// An MLS welcome for the devices the commit at `commit_seq` added,
    /// with the roster that commit left the group on, signed by the
    /// committer (the welcome's sender).
    Welcome {
        /// The log position of the commit that added them.
        commit_seq: u64,
        /// The `MLSMessage` holding the Welcome.
        welcome: Vec<u8>,
        /// The group's roster after that commit (encoded, app-signed).
        roster: Vec<u8>,
        /// The committer's certificate (encoded).
        committer: Vec<u8>,
        /// The committer's signature over the channel, group id,
        /// `commit_seq`, welcome and roster.
        signature: Vec<u8>,
    },
}

impl Entry {
    /// The entry as bytes for the log.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Entry::Genesis { group_id, creator, roster, signature } => {
                w.u8(GENESIS).bytes(group_id).bytes(creator).bytes(roster).bytes(signature)
            }
            Entry::Commit(message) => w.u8(COMMIT).bytes(message),
            Entry::Welcome { commit_seq, welcome, roster, committer, signature } => {
                w.u8(WELCOME).u64(*commit_seq).bytes(welcome).bytes(roster).bytes(committer).bytes(signature)
            }
        };
        w.finish()
    }

    /// Reads an entry (its contents are checked by whoever uses them).
    pub fn decode(bytes: &[u8]) -> Result<Self, GroupError> {
        let mut r = Reader::new(bytes, "group log entry");
        let entry = match r.u8()? {
            GENESIS => Entry::Genesis {
                group_id: r.bytes(32)?.to_vec(),
                creator: r.bytes(1024)?.to_vec(),
                roster: r.bytes(MAX_FIELD_BYTES)?.to_vec(),
                signature: r.bytes(64)?.to_vec(),
            },
            COMMIT => Entry::Commit(r.bytes(MAX_FIELD_BYTES)?.to_vec()),
            WELCOME => Entry::Welcome {
                commit_seq: r.u64()?,
                welcome: r.bytes(MAX_FIELD_BYTES)?.to_vec(),
                roster: r.bytes(MAX_FIELD_BYTES)?.to_vec(),
                committer: r.bytes(1024)?.to_vec(),
                signature: r.bytes(64)?.to_vec(),
            },
            _ => return Err(GroupError::Malformed("group log entry")),
        };
        r.end()?;
        Ok(entry)
    }
}

/// The bytes a genesis signature covers: the channel, the group id and
/// the roster it starts from.
pub(crate) fn genesis_signed_bytes(channel: &str, group_id: &[u8], roster: &[u8]) -> Vec<u8> {
    Writer::new().bytes(GENESIS_DOMAIN).bytes(channel.as_bytes()).bytes(group_id).bytes(roster).finish()
}

/// The domain of a welcome signature.
const WELCOME_DOMAIN: &[u8] = b"sealcast/welcome/v1";

/// The bytes a welcome signature covers: the channel, the group id, the
/// position of the commit it follows, the welcome and the roster.
pub(crate) fn welcome_signed_bytes(
    channel: &str,
    group_id: &[u8],
    commit_seq: u64,
    welcome: &[u8],
    roster: &[u8],
) -> Vec<u8> {
    Writer::new()
        .bytes(WELCOME_DOMAIN)
        .bytes(channel.as_bytes())
        .bytes(group_id)
        .u64(commit_seq)
        .bytes(welcome)
        .bytes(roster)
        .finish()
}

/// Fails unless `signature` is the Ed25519 signature of `message` by the
/// device key `key` (a certificate's key).
pub(crate) fn verify_device_signature(
    key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), GroupError> {
    let key: [u8; 32] = key.try_into().map_err(|_| GroupError::WrongKey)?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| GroupError::WrongKey)?;
    let signature: [u8; 64] =
        signature.try_into().map_err(|_| GroupError::BadSignature("device signature"))?;
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| GroupError::BadSignature("device signature"))
}

/// A commit's authenticated data: the roster it moves the group to, if any.
pub(crate) fn commit_aad(roster: Option<&SignedRoster>) -> Vec<u8> {
    match roster {
        None => vec![0],
        Some(roster) => {
            let mut aad = vec![1];
            aad.extend_from_slice(&roster.encode());
            aad
        }
    }
}

/// Reads a commit's authenticated data.
pub(crate) fn read_commit_aad(aad: &[u8]) -> Result<Option<SignedRoster>, GroupError> {
    match aad.split_first() {
        Some((0, [])) => Ok(None),
        Some((1, roster)) => SignedRoster::decode(roster).map(Some),
        _ => Err(GroupError::Malformed("commit authenticated data")),
    }
}

/// The certificate in an MLS credential, checked against the app and the
/// leaf's signature key.
pub(crate) fn certificate_of(
    credential: &openmls::prelude::Credential,
    signature_key: &[u8],
    app: &crate::AppIdentity,
) -> Result<DeviceCertificate, GroupError> {
    let cert = DeviceCertificate::decode(credential.serialized_content())?;
    cert.verify(app)?;
    if cert.key() != signature_key {
        return Err(GroupError::WrongKey);
    }
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_garbage_is_malformed() {
        let entries = [
            Entry::Genesis {
                group_id: vec![1; 16],
                creator: vec![2; 40],
                roster: vec![3; 10],
                signature: vec![4; 64],
            },
            Entry::Commit(vec![5; 100]),
            Entry::Welcome {
                commit_seq: 7,
                welcome: vec![6; 50],
                roster: vec![7; 9],
                committer: vec![9; 30],
                signature: vec![8; 64],
            },
        ];
        for entry in entries {
            let bytes = entry.encode();
            assert_eq!(Entry::decode(&bytes).unwrap(), entry);
            for cut in 0..bytes.len() {
                assert!(Entry::decode(&bytes[..cut]).is_err());
            }
        }
        assert!(Entry::decode(&[9, 0, 0, 0, 0]).is_err());
        assert_eq!(read_commit_aad(&commit_aad(None)).unwrap(), None);
        assert!(read_commit_aad(&[0, 1]).is_err());
        assert!(read_commit_aad(&[]).is_err());
    }
}
