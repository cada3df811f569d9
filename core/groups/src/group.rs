//! One channel's group, as one device sees it: the log in, the same epoch
//! as every other member out.
//!
//! The rules every member applies to the log, in log order:
//! - the **latest valid genesis** starts the current generation (a device
//!   that lost its state, or the first device, starts one; members of an
//!   older generation wait for a welcome);
//! - a **commit** counts when it is for the current generation and epoch,
//!   passes MLS validation and is authorized by the app: every added device
//!   has a certificate the app signed and is listed in the roster, every
//!   removed one is not, the committer is listed, only adds and removes
//!   (plus the committer's own path) are proposed, and a roster it carries
//!   is the app's, for this channel, and not older than the group's. The
//!   first such commit for an epoch wins; later ones for the same epoch are
//!   stale and skipped, like anything invalid. No member can be made to
//!   fork or stall by one message.
//! - a **welcome** is published by the committer once its commit won, so a
//!   device that finds its welcome knows it joins the winning epoch; it
//!   then reads the log again from just after that commit.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use sealcast_core::crypto::{Key, SignerId, SignerKeys};

use crate::device::Device;
use crate::entry::{
    Entry, certificate_of, commit_aad, genesis_signed_bytes, read_commit_aad, verify_device_signature,
    welcome_signed_bytes,
};
use crate::identity::{DeviceCertificate, SignedRoster};
use crate::{GroupError, Skip};

/// Entries kept that arrived ahead of the next expected position; beyond
/// this the driver is asked to read the log again.
pub const MAX_EARLY_ENTRIES: usize = 4096;

/// Bytes of entries kept that arrived ahead (a relay sending large entries
/// out of order cannot make a device hold more).
pub const MAX_EARLY_BYTES: usize = 16 << 20;

/// The MLS exporter label of the envelope key.
const ENVELOPE_LABEL: &str = "sealcast/v1/envelope";

/// Key ids of this mode's envelope keys start with this; their envelopes
/// must be signed (core refuses unsigned ones under it everywhere).
pub const KID_PREFIX: &str = sealcast_core::crypto::SIGNED_KID_PREFIX;

/// Generations whose members are remembered for checking envelope
/// signatures (the current one and the ones before it).
const GENERATIONS_KEPT: usize = 4;

/// What the driver does after an entry or a call.
#[derive(Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// The group is at a new epoch: seal with this key from now on, and
    /// open envelopes naming it (`kid` names the group, `kv` the epoch).
    Epoch {
        /// The key id: the group (one per generation).
        kid: String,
        /// The key version: the epoch.
        kv: u32,
        /// The envelope key, from the epoch's MLS exporter (boxed: a key
        /// carries its cipher state).
        key: Box<Key>,
    },
    /// Append this entry to the log (a welcome: this device's commit won).
    Publish(Vec<u8>),
    /// Feed the log again from position `from` (this device just joined at
    /// an earlier point, or could not keep everything that came early).
    Reread {
        /// The first position to feed.
        from: u64,
    },
    /// This device's commit lost to another one; commit again if changes
    /// remain.
    CommitLost,
    /// This device is not in the group's current generation (it was
    /// removed, or a new genesis started a group it is not in yet): it opens
    /// nothing sealed from now on until a welcome brings it back.
    Outside,
    /// An entry that changed nothing (every member skips it the same way).
    Skipped {
        /// Its log position.
        seq: u64,
        /// Why.
        why: Skip,
    },
}

/// A welcome's signature and who made it.
struct Signed<'a> {
    committer: &'a [u8],
    signature: &'a [u8],
}

/// The generation of the group: the genesis that started it.
struct Generation {
    seq: u64,
    group_id: Vec<u8>,
}

enum State {
    Outside,
    Member(Box<MlsGroup>),
}

/// This device's commit, on its way through the log.
struct InFlight {
    commit: Vec<u8>,
    welcome: Option<Vec<u8>>,
    roster: Option<SignedRoster>,
}

/// A channel's MLS group as one device sees it.
pub struct ChannelGroup {
    channel: String,
    next_seq: u64,
    early: BTreeMap<u64, Vec<u8>>,
    early_bytes: usize,
    generation: Option<Generation>,
    state: State,
    roster: Option<SignedRoster>,
    wanted: Option<SignedRoster>,
    in_flight: Option<InFlight>,
    starting: Option<(Vec<u8>, Box<MlsGroup>)>,
    senders: Senders,
    /// Group ids of every valid genesis seen: a copy of one is skipped.
    geneses: BTreeSet<Vec<u8>>,
    /// The highest serial of any app-signed roster for this channel seen
    /// anywhere in the log (geneses, commits' cleartext authenticated
    /// data, welcomes) — the same for every reader, member or not.
    newest_serial: u64,
    /// Commits of the current generation seen while outside: position →
    /// epoch, so a welcome can be checked against the commit it names.
    outside_commits: BTreeMap<u64, u64>,
}

/// Commits remembered while outside (the newest).
const OUTSIDE_COMMITS_KEPT: usize = 4096;

/// Who was a member in which epochs, per generation (kid): what an
/// envelope's sender signature is checked against.
#[derive(Default)]
struct Senders {
    generations: VecDeque<(String, HashMap<SignerId, EnvelopeSender>)>,
}

/// One signing key and the epochs (inclusive ranges) its device was a member.
struct EnvelopeSender {
    key: [u8; 32],
    epochs: Vec<(u32, u32)>,
}

impl Senders {
    /// Records the members of epoch `kv` of generation `kid`.
    fn record(&mut self, kid: &str, kv: u32, members: impl Iterator<Item = [u8; 32]>) {
        if self.generations.back().is_none_or(|(k, _)| k != kid) {
            self.generations.push_back((kid.to_owned(), HashMap::new()));
            if self.generations.len() > GENERATIONS_KEPT {
                self.generations.pop_front();
            }
        }
        let Some((_, senders)) = self.generations.back_mut() else { return };
        for key in members {
            let sender =
                senders.entry(SignerId::of(&key)).or_insert(EnvelopeSender { key, epochs: Vec::new() });
            match sender.epochs.last_mut() {
                Some((_, to)) if to.checked_add(1) == Some(kv) => *to = kv,
                Some((_, to)) if *to == kv => {}
                _ => sender.epochs.push((kv, kv)),
            }
        }
    }

    fn key(&self, kid: &str, kv: u32, signer: &SignerId) -> Option<[u8; 32]> {
        let (_, senders) = self.generations.iter().find(|(k, _)| k == kid)?;
        let sender = senders.get(signer)?;
        sender.epochs.iter().any(|(from, to)| (*from..=*to).contains(&kv)).then_some(sender.key)
    }
}

impl SignerKeys for ChannelGroup {
    /// A member's key, if it was a member in epoch `kv` of the generation
    /// `kid` names.
    fn signer_key(&self, kid: &str, kv: u32, signer: &SignerId) -> Option<[u8; 32]> {
        self.senders.key(kid, kv, signer)
    }

    /// Envelopes under this mode's keys must be signed.
    fn requires_signature(&self, kid: &str) -> bool {
        kid.starts_with(KID_PREFIX)
    }
}

fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(crate::CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .build()
}

impl ChannelGroup {
    /// The group of `channel`, before reading its log (from position 0).
    pub fn new(channel: &str) -> Self {
        Self {
            channel: channel.to_owned(),
            next_seq: 0,
            early: BTreeMap::new(),
            early_bytes: 0,
            generation: None,
            state: State::Outside,
            roster: None,
            wanted: None,
            in_flight: None,
            starting: None,
            senders: Senders::default(),
            geneses: BTreeSet::new(),
            newest_serial: 0,
            outside_commits: BTreeMap::new(),
        }
    }

    /// Whether this device is in the current generation.
    pub fn is_member(&self) -> bool {
        matches!(self.state, State::Member(_))
    }

    /// The current epoch, when a member.
    pub fn epoch(&self) -> Option<u64> {
        match &self.state {
            State::Member(group) => Some(group.epoch().as_u64()),
            State::Outside => None,
        }
    }

    /// The roster the group is on.
    pub fn roster(&self) -> Option<&SignedRoster> {
        self.roster.as_ref()
    }

    /// The next log position this device expects.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The (user, device) of every member, when a member.
    pub fn members(&self) -> Vec<(String, String)> {
        let State::Member(group) = &self.state else { return Vec::new() };
        group
            .members()
            .filter_map(|m| DeviceCertificate::decode(m.credential.serialized_content()).ok())
            .map(|c| (c.user().to_owned(), c.device().to_owned()))
            .collect()
    }

    /// The devices the roster (the offered one if any) lists that are not
    /// in the group yet: whose key packages a commit needs.
    pub fn missing(&self) -> Vec<(String, String)> {
        let Some(target) = self.wanted.as_ref().or(self.roster.as_ref()) else { return Vec::new() };
        let present: BTreeSet<(String, String)> = self.members().into_iter().collect();
        target
            .roster()
            .iter()
            .map(|(u, d)| (u.to_owned(), d.to_owned()))
            .filter(|pair| self.is_member() && !present.contains(pair))
            .collect()
    }

    /// A genesis entry starting a new generation of the group with this
    /// device alone in it (epoch 0), on `roster`; publish it, then add the
    /// roster's other devices with [`Self::commit`] once it is back.
    pub fn start(&mut self, device: &Device, roster: SignedRoster) -> Result<Vec<u8>, GroupError> {
        if self.is_member() {
            return Err(GroupError::AlreadyStarted);
        }
        self.check_roster(device, &roster)?;
        if !roster.roster().lists(device.cert.user(), device.cert.device()) {
            return Err(GroupError::Roster("this device is not listed"));
        }
        let group_id = device.provider.rand().random_vec(16).map_err(GroupError::mls)?;
        let group = MlsGroup::new_with_group_id(
            &device.provider,
            &device.signer,
            &create_config(),
            GroupId::from_slice(&group_id),
            device.credential(),
        )
        .map_err(GroupError::mls)?;
        if let Some((_, mut old)) = self.starting.take() {
            let _ = old.delete(device.provider.storage());
        }
        let roster = roster.encode();
        let signature = device.sign(&genesis_signed_bytes(&self.channel, &group_id, &roster))?;
        let entry =
            Entry::Genesis { group_id: group_id.clone(), creator: device.cert.encode(), roster, signature };
        self.starting = Some((group_id, Box::new(group)));
        Ok(entry.encode())
    }

    /// Takes a newer roster from the app; the next [`Self::commit`] moves
    /// the group to it.
    pub fn offer_roster(&mut self, device: &Device, roster: SignedRoster) -> Result<(), GroupError> {
        self.check_roster(device, &roster)?;
        let newest = self.wanted.as_ref().or(self.roster.as_ref());
        match newest {
            Some(current) if roster.roster().serial <= current.roster().serial => Ok(()),
            _ => {
                self.wanted = Some(roster);
                Ok(())
            }
        }
    }

    /// Fails unless `roster` is the app's, for this channel, and not older
    /// than the group's.
    fn check_roster(&self, device: &Device, roster: &SignedRoster) -> Result<(), GroupError> {
        roster.verify(&device.app)?;
        if roster.roster().channel != self.channel {
            return Err(GroupError::Roster("for another channel"));
        }
        if let Some(current) = &self.roster {
            let (old, new) = (current.roster(), roster.roster());
            if new.serial < old.serial || (new.serial == old.serial && new != old) {
                return Err(GroupError::Roster("older than the group's"));
            }
        }
        Ok(())
    }

    /// What the group must change to match the roster (the offered one if
    /// any): a commit entry to publish, or `None` when nothing is to do.
    /// `key_package(user, device)` fetches (and consumes) one of that
    /// device's key packages from the key directory; a device without one,
    /// or whose key package does not check out, is left for a later commit.
    pub fn commit(
        &mut self,
        device: &Device,
        mut key_package: impl FnMut(&str, &str) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, GroupError> {
        let State::Member(group) = &mut self.state else { return Err(GroupError::NotMember) };
        if self.in_flight.is_some() {
            return Err(GroupError::CommitInFlight);
        }
        let target = self.wanted.as_ref().or(self.roster.as_ref()).ok_or(GroupError::NotMember)?.roster();
        let own = group.own_leaf_index();
        let mut present = BTreeSet::new();
        let mut removals = Vec::new();
        for member in group.members() {
            let Ok(cert) = DeviceCertificate::decode(member.credential.serialized_content()) else {
                continue;
            };
            if target.lists(cert.user(), cert.device()) || member.index == own {
                present.insert((cert.user().to_owned(), cert.device().to_owned()));
            } else {
                removals.push(member.index);
            }
        }
        let mut adds = Vec::new();
        for (user, device_id) in target.iter() {
            if present.contains(&(user.to_owned(), device_id.to_owned())) {
                continue;
            }
            let Some(bytes) = key_package(user, device_id) else { continue };
            let Ok(package) = KeyPackageIn::tls_deserialize_exact(&bytes) else { continue };
            let Ok(package) = package.validate(device.provider.crypto(), ProtocolVersion::Mls10) else {
                continue;
            };
            let leaf = package.leaf_node();
            match certificate_of(leaf.credential(), leaf.signature_key().as_slice(), &device.app) {
                Ok(cert) if cert.user() == user && cert.device() == device_id => adds.push(package),
                _ => continue,
            }
        }
        if adds.is_empty() && removals.is_empty() && self.wanted.is_none() {
            return Ok(None);
        }
        let roster = self.wanted.clone();
        self.stage(device, adds, removals, roster).map(Some)
    }

    /// Gives up this device's commit or genesis in flight (the relay
    /// refused it for good): the next [`Self::commit`] can build another.
    pub fn abandon(&mut self, device: &Device) {
        if self.in_flight.take().is_some()
            && let State::Member(group) = &mut self.state
        {
            let _ = group.clear_pending_commit(device.provider.storage());
        }
        if let Some((_, mut group)) = self.starting.take() {
            let _ = group.delete(device.provider.storage());
        }
    }

    /// A commit that changes no membership but gives the group a fresh
    /// epoch from this device's new path secrets (post-compromise
    /// security: rotate on a schedule and after a suspected compromise).
    pub fn rotate(&mut self, device: &Device) -> Result<Vec<u8>, GroupError> {
        if !self.is_member() {
            return Err(GroupError::NotMember);
        }
        if self.in_flight.is_some() {
            return Err(GroupError::CommitInFlight);
        }
        self.stage(device, Vec::new(), Vec::new(), None)
    }

    /// Builds a commit of exactly these changes (no roster check: members
    /// check when it arrives) and keeps it in flight.
    fn stage(
        &mut self,
        device: &Device,
        adds: Vec<KeyPackage>,
        removals: Vec<LeafNodeIndex>,
        roster: Option<SignedRoster>,
    ) -> Result<Vec<u8>, GroupError> {
        let State::Member(group) = &mut self.state else { return Err(GroupError::NotMember) };
        group.set_aad(commit_aad(roster.as_ref()));
        let bundle = group
            .commit_builder()
            .propose_adds(adds)
            .propose_removals(removals)
            .load_psks(device.provider.storage())
            .map_err(GroupError::mls)?
            .build(device.provider.rand(), device.provider.crypto(), &device.signer, |_| true)
            .map_err(GroupError::mls)?
            .stage_commit(&device.provider)
            .map_err(GroupError::mls)?;
        let (commit, welcome, _) = bundle.into_messages();
        let commit = commit.to_bytes().map_err(GroupError::mls)?;
        let welcome = welcome.map(|w| w.to_bytes()).transpose().map_err(GroupError::mls)?;
        self.in_flight = Some(InFlight { commit: commit.clone(), welcome, roster });
        Ok(Entry::Commit(commit).encode())
    }

    /// A commit adding these key packages whatever the roster says: what a
    /// rogue member could send (for tests of the members' checks).
    #[cfg(test)]
    pub(crate) fn commit_unchecked(
        &mut self,
        device: &Device,
        packages: Vec<Vec<u8>>,
        roster: Option<SignedRoster>,
    ) -> Result<Vec<u8>, GroupError> {
        let adds = packages
            .iter()
            .map(|bytes| {
                KeyPackageIn::tls_deserialize_exact(bytes)
                    .map_err(GroupError::mls)?
                    .validate(device.provider.crypto(), ProtocolVersion::Mls10)
                    .map_err(GroupError::mls)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.stage(device, adds, Vec::new(), roster)
    }

    /// Feeds the log entry at position `seq` (entries may come twice or out
    /// of order; each is applied once, in order).
    pub fn handle_entry(&mut self, device: &Device, seq: u64, bytes: &[u8]) -> Vec<GroupEvent> {
        let mut events = Vec::new();
        if seq < self.next_seq {
            return events;
        }
        if seq > self.next_seq {
            let room =
                self.early.len() < MAX_EARLY_ENTRIES && self.early_bytes + bytes.len() <= MAX_EARLY_BYTES;
            if self.early.contains_key(&seq) {
                // A copy of an entry already kept.
            } else if room {
                self.early_bytes += bytes.len();
                self.early.insert(seq, bytes.to_vec());
            } else {
                events.push(GroupEvent::Reread { from: self.next_seq });
            }
            return events;
        }
        self.next_seq = seq + 1;
        self.apply(device, seq, bytes, &mut events);
        while let Some(bytes) = self.early.remove(&self.next_seq) {
            self.early_bytes -= bytes.len();
            let seq = self.next_seq;
            self.next_seq = seq + 1;
            self.apply(device, seq, &bytes, &mut events);
        }
        events
    }

    fn apply(&mut self, device: &Device, seq: u64, bytes: &[u8], events: &mut Vec<GroupEvent>) {
        let outcome = match Entry::decode(bytes) {
            Err(_) => Err(Skip::Malformed),
            Ok(Entry::Genesis { group_id, creator, roster, signature }) => {
                self.genesis(device, seq, group_id, &creator, &roster, &signature, events)
            }
            Ok(Entry::Commit(message)) => self.commit_entry(device, seq, &message, events),
            Ok(Entry::Welcome { commit_seq, welcome, roster, committer, signature }) => {
                let signed = Signed { committer: &committer, signature: &signature };
                self.welcome(device, seq, commit_seq, &welcome, &roster, signed, events)
            }
        };
        if let Err(why) = outcome {
            events.push(GroupEvent::Skipped { seq, why });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn genesis(
        &mut self,
        device: &Device,
        seq: u64,
        group_id: Vec<u8>,
        creator: &[u8],
        roster: &[u8],
        signature: &[u8],
        events: &mut Vec<GroupEvent>,
    ) -> Result<(), Skip> {
        if self.geneses.contains(&group_id) {
            return Err(Skip::Replayed);
        }
        let roster = self
            .check_genesis(device, &group_id, creator, roster, signature)
            .map_err(|_| Skip::BadGenesis)?;
        self.geneses.insert(group_id.clone());
        self.newest_serial = self.newest_serial.max(roster.roster().serial);
        self.outside_commits.clear();
        self.generation = Some(Generation { seq, group_id: group_id.clone() });
        self.roster = Some(roster);
        self.drop_older_wanted();
        self.in_flight = None;
        if let State::Member(mut old) = std::mem::replace(&mut self.state, State::Outside) {
            let _ = old.delete(device.provider.storage());
        }
        match self.starting.take() {
            Some((id, group)) if id == group_id => {
                self.state = State::Member(group);
                self.push_epoch(device, events);
            }
            other => {
                if let Some((_, mut group)) = other {
                    let _ = group.delete(device.provider.storage());
                }
                events.push(GroupEvent::Outside);
            }
        }
        Ok(())
    }

    fn check_genesis(
        &self,
        device: &Device,
        group_id: &[u8],
        creator: &[u8],
        roster: &[u8],
        signature: &[u8],
    ) -> Result<SignedRoster, GroupError> {
        if group_id.len() != 16 {
            return Err(GroupError::Malformed("group id"));
        }
        let cert = DeviceCertificate::decode(creator)?;
        cert.verify(&device.app)?;
        let roster_bytes = roster;
        let roster = SignedRoster::decode(roster)?;
        roster.verify(&device.app)?;
        if roster.roster().channel != self.channel {
            return Err(GroupError::Roster("for another channel"));
        }
        // Against what every reader of the log knows, not this device's
        // own state: members and outsiders judge a genesis alike.
        if roster.roster().serial < self.newest_serial {
            return Err(GroupError::Roster("older than a roster already in the log"));
        }
        if !roster.roster().lists(cert.user(), cert.device()) {
            return Err(GroupError::Roster("the creator is not listed"));
        }
        verify_device_signature(
            cert.key(),
            &genesis_signed_bytes(&self.channel, group_id, roster_bytes),
            signature,
        )?;
        Ok(roster)
    }

    fn commit_entry(
        &mut self,
        device: &Device,
        seq: u64,
        message: &[u8],
        events: &mut Vec<GroupEvent>,
    ) -> Result<(), Skip> {
        let (protocol, cleartext_aad) =
            match MlsMessageIn::tls_deserialize_exact(message).map_err(|_| Skip::Malformed)?.extract() {
                MlsMessageBodyIn::PrivateMessage(m) => {
                    let aad = m.aad().to_vec();
                    (ProtocolMessage::from(m), Some(aad))
                }
                MlsMessageBodyIn::PublicMessage(m) => (ProtocolMessage::from(m), None),
                _ => return Err(Skip::Malformed),
            };
        let Some(generation) = &self.generation else { return Err(Skip::Unexpected) };
        if protocol.group_id().as_slice() != generation.group_id {
            return Err(Skip::OtherGroup);
        }
        if protocol.content_type() != ContentType::Commit {
            return Err(Skip::Malformed);
        }
        // Every reader counts an app-signed roster in a commit's cleartext
        // authenticated data, valid commit or not (a genesis must not be
        // older than any roster in the log).
        if let Some(Ok(Some(roster))) = cleartext_aad.as_deref().map(read_commit_aad)
            && roster.verify(&device.app).is_ok()
            && roster.roster().channel == self.channel
        {
            self.newest_serial = self.newest_serial.max(roster.roster().serial);
        }
        let State::Member(group) = &mut self.state else {
            // Outside: remember the commit's epoch for a welcome naming it.
            self.outside_commits.insert(seq, protocol.epoch().as_u64());
            while self.outside_commits.len() > OUTSIDE_COMMITS_KEPT {
                self.outside_commits.pop_first();
            }
            return Err(Skip::Unexpected);
        };
        if protocol.epoch() != group.epoch() {
            return Err(Skip::StaleEpoch);
        }
        if self.in_flight.as_ref().is_some_and(|f| f.commit == message) {
            return self.won(device, seq, events);
        }
        let processed = match group.process_message(&device.provider, protocol) {
            Ok(processed) => processed,
            // The commit is a member's (it decrypted and verified) but its
            // path cannot be followed by this device: a committer who
            // encrypted garbage to some members. Skipping would leave this
            // device on another epoch than the others (a silent fork), so
            // it leaves the generation instead and says so.
            Err(ProcessMessageError::InvalidCommit(StageCommitError::UpdatePathError(
                ApplyUpdatePathError::UnableToDecrypt
                | ApplyUpdatePathError::PathMismatch
                | ApplyUpdatePathError::MissingCiphertext,
            ))) => {
                if let State::Member(mut group) = std::mem::replace(&mut self.state, State::Outside) {
                    let _ = group.delete(device.provider.storage());
                }
                self.in_flight = None;
                events.push(GroupEvent::Skipped { seq, why: Skip::CannotFollow });
                events.push(GroupEvent::Outside);
                return Ok(());
            }
            Err(_) => return Err(Skip::Invalid),
        };
        let aad = processed.aad().to_vec();
        let sender = processed.sender().clone();
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            // Our own commit that we no longer track (a copy of an old one).
            return Err(Skip::Unexpected);
        };
        let roster = self.authorize(device, &staged, &aad, &sender).map_err(|_| Skip::Unauthorized)?;
        let State::Member(group) = &mut self.state else { return Err(Skip::Unexpected) };
        if self.in_flight.take().is_some() {
            let _ = group.clear_pending_commit(device.provider.storage());
            events.push(GroupEvent::CommitLost);
        }
        let removed = staged.self_removed();
        group.merge_staged_commit(&device.provider, *staged).map_err(|_| Skip::Invalid)?;
        if let Some(roster) = roster {
            self.roster = Some(roster);
            self.drop_older_wanted();
        }
        if removed {
            if let State::Member(mut group) = std::mem::replace(&mut self.state, State::Outside) {
                let _ = group.delete(device.provider.storage());
            }
            events.push(GroupEvent::Outside);
        } else {
            self.push_epoch(device, events);
        }
        Ok(())
    }

    /// This device's commit came back first for its epoch: merge it, and
    /// publish the welcome for the devices it added.
    fn won(&mut self, device: &Device, seq: u64, events: &mut Vec<GroupEvent>) -> Result<(), Skip> {
        let State::Member(group) = &mut self.state else { return Err(Skip::Unexpected) };
        let Some(flight) = self.in_flight.take() else { return Err(Skip::Unexpected) };
        group.merge_pending_commit(&device.provider).map_err(|_| Skip::Invalid)?;
        if let Some(roster) = flight.roster {
            self.roster = Some(roster);
            self.drop_older_wanted();
        }
        if let (Some(welcome), Some(roster), Some(generation)) =
            (flight.welcome, &self.roster, &self.generation)
        {
            let roster = roster.encode();
            let signed = welcome_signed_bytes(&self.channel, &generation.group_id, seq, &welcome, &roster);
            // Signing only fails if the device's key is unusable; then the
            // devices it added wait for another member's commit.
            if let Ok(signature) = device.sign(&signed) {
                let committer = device.cert.encode();
                let entry = Entry::Welcome { commit_seq: seq, welcome, roster, committer, signature };
                events.push(GroupEvent::Publish(entry.encode()));
            }
        }
        self.push_epoch(device, events);
        Ok(())
    }

    /// Whether the app authorized a staged commit; the roster it moves the
    /// group to, if any.
    fn authorize(
        &self,
        device: &Device,
        staged: &StagedCommit,
        aad: &[u8],
        sender: &Sender,
    ) -> Result<Option<SignedRoster>, GroupError> {
        let State::Member(group) = &self.state else { return Err(GroupError::NotMember) };
        let current = self.roster.as_ref().ok_or(GroupError::NotMember)?;
        let carried = read_commit_aad(aad)?;
        if let Some(roster) = &carried {
            self.check_roster(device, roster)?;
        }
        let target = carried.as_ref().unwrap_or(current).roster();
        let Sender::Member(committer) = sender else {
            return Err(GroupError::Roster("not committed by a member"));
        };
        let committer = group.member_at(*committer).ok_or(GroupError::NotMember)?;
        let committer = certificate_of(&committer.credential, &committer.signature_key, &device.app)?;
        if !current.roster().lists(committer.user(), committer.device()) {
            return Err(GroupError::Roster("the committer is not listed"));
        }
        for proposal in staged.queued_proposals() {
            if !matches!(proposal.proposal(), Proposal::Add(_) | Proposal::Remove(_)) {
                return Err(GroupError::Roster("a proposal other than add or remove"));
            }
        }
        let mut present: BTreeSet<(String, String)> = group
            .members()
            .filter_map(|m| DeviceCertificate::decode(m.credential.serialized_content()).ok())
            .map(|c| (c.user().to_owned(), c.device().to_owned()))
            .collect();
        for add in staged.add_proposals() {
            let leaf = add.add_proposal().key_package().leaf_node();
            let cert = certificate_of(leaf.credential(), leaf.signature_key().as_slice(), &device.app)?;
            if !target.lists(cert.user(), cert.device()) {
                return Err(GroupError::Roster("adds a device the roster does not list"));
            }
            if !present.insert((cert.user().to_owned(), cert.device().to_owned())) {
                return Err(GroupError::Roster("adds a device already in the group"));
            }
        }
        for remove in staged.remove_proposals() {
            let member = group.member_at(remove.remove_proposal().removed()).ok_or(GroupError::NotMember)?;
            let cert = DeviceCertificate::decode(member.credential.serialized_content())?;
            if target.lists(cert.user(), cert.device()) {
                return Err(GroupError::Roster("removes a device the roster lists"));
            }
        }
        if let Some(leaf) = staged.update_path_leaf_node() {
            let cert = certificate_of(leaf.credential(), leaf.signature_key().as_slice(), &device.app)?;
            if cert != committer {
                return Err(GroupError::Roster("the committer changed its certificate"));
            }
        }
        Ok(carried)
    }

    #[allow(clippy::too_many_arguments)]
    fn welcome(
        &mut self,
        device: &Device,
        seq: u64,
        commit_seq: u64,
        welcome_bytes: &[u8],
        roster_bytes: &[u8],
        signed: Signed<'_>,
        events: &mut Vec<GroupEvent>,
    ) -> Result<(), Skip> {
        if self.is_member() {
            return Err(Skip::NotForUs);
        }
        let Some(generation) = &self.generation else { return Err(Skip::Unexpected) };
        if commit_seq <= generation.seq || commit_seq >= seq {
            return Err(Skip::Malformed);
        }
        // The commit it names must be one this device saw, of this
        // generation; the welcome must join the epoch after it.
        let Some(&commit_epoch) = self.outside_commits.get(&commit_seq) else { return Err(Skip::Unexpected) };
        let roster = SignedRoster::decode(roster_bytes).map_err(|_| Skip::Malformed)?;
        self.check_roster(device, &roster).map_err(|_| Skip::Unauthorized)?;
        if !roster.roster().lists(device.cert.user(), device.cert.device()) {
            return Err(Skip::NotForUs);
        }
        // Signed by a device the app certified, over what the relay could
        // otherwise change (the commit's position, the roster) — checked
        // before the welcome is opened, which uses up the key package.
        let committer = DeviceCertificate::decode(signed.committer).map_err(|_| Skip::Malformed)?;
        committer.verify(&device.app).map_err(|_| Skip::Unauthorized)?;
        let message = welcome_signed_bytes(
            &self.channel,
            &generation.group_id,
            commit_seq,
            welcome_bytes,
            roster_bytes,
        );
        verify_device_signature(committer.key(), &message, signed.signature)
            .map_err(|_| Skip::Unauthorized)?;
        let MlsMessageBodyIn::Welcome(welcome) =
            MlsMessageIn::tls_deserialize_exact(welcome_bytes).map_err(|_| Skip::Malformed)?.extract()
        else {
            return Err(Skip::Malformed);
        };
        let staged = match StagedWelcome::new_from_welcome(&device.provider, &join_config(), welcome, None) {
            Ok(staged) => staged,
            Err(WelcomeError::NoMatchingKeyPackage) => return Err(Skip::NotForUs),
            Err(_) => return Err(Skip::Invalid),
        };
        if staged.group_context().group_id().as_slice() != generation.group_id {
            return Err(Skip::OtherGroup);
        }
        if commit_epoch.checked_add(1) != Some(staged.group_context().epoch().as_u64()) {
            return Err(Skip::Invalid);
        }
        // The signer is the member that sent the welcome.
        let sender = staged.welcome_sender().map_err(|_| Skip::Invalid)?;
        let sender = certificate_of(sender.credential(), sender.signature_key().as_slice(), &device.app)
            .map_err(|_| Skip::Unauthorized)?;
        if sender != committer {
            return Err(Skip::Unauthorized);
        }
        for member in staged.members() {
            certificate_of(&member.credential, &member.signature_key, &device.app)
                .map_err(|_| Skip::Unauthorized)?;
        }
        let group = staged.into_group(&device.provider).map_err(|_| Skip::Invalid)?;
        self.state = State::Member(Box::new(group));
        self.roster = Some(roster);
        self.drop_older_wanted();
        self.push_epoch(device, events);
        // Commits after the one that added us were skipped while outside.
        self.next_seq = commit_seq + 1;
        events.push(GroupEvent::Reread { from: commit_seq + 1 });
        Ok(())
    }

    fn drop_older_wanted(&mut self) {
        if let (Some(wanted), Some(current)) = (&self.wanted, &self.roster)
            && wanted.roster().serial <= current.roster().serial
        {
            self.wanted = None;
        }
    }

    fn push_epoch(&mut self, device: &Device, events: &mut Vec<GroupEvent>) {
        let (State::Member(group), Some(generation)) = (&self.state, &self.generation) else { return };
        let Ok(kv) = u32::try_from(group.epoch().as_u64()) else { return };
        let Ok(secret) =
            group.export_secret(device.provider.crypto(), ENVELOPE_LABEL, self.channel.as_bytes(), 32)
        else {
            return;
        };
        let Ok(key) = Key::from_slice(&secret) else { return };
        let kid = format!("{KID_PREFIX}{}", URL_SAFE_NO_PAD.encode(&generation.group_id));
        let members = group.members().filter_map(|m| <[u8; 32]>::try_from(m.signature_key.as_slice()).ok());
        self.senders.record(&kid, kv, members);
        events.push(GroupEvent::Epoch { kid, kv, key: Box::new(key) });
    }
}
