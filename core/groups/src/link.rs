//! A channel group over the relay, sans-IO: the group log carried on the
//! document sequencer (one document per group: `private-doc-mls-{channel}`,
//! each entry an op whose payload is the entry's bytes as base64url), key
//! packages through the key directory (docs/protocol.md, "Key
//! directory"). The driver subscribes to [`GroupLink::log_channel`] (the
//! app authorizes it like any private channel), passes every frame of
//! that channel and every key directory frame to [`GroupLink::handle`],
//! sends what [`GroupLink::poll_frame`] gives, and calls
//! [`GroupLink::handle_timeout`] at [`GroupLink::poll_timeout`].
//!
//! Log position = document sequence number − 1 (documents count from 1).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sealcast_core::protocol::directory::{self, Fetch, Package, Publish};
use sealcast_core::protocol::doc::{self, DocReply, DocRequest, Join, Submit};
use sealcast_core::time::Instant;
use serde_json::Value;

use crate::{ChannelGroup, Device, GroupError, GroupEvent, SignedRoster};

/// The first wait before a refused submission is sent again (doubling).
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two tries.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What the app hears from the link besides the group's events.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// What the group did (epochs, skips, …).
    Group(GroupEvent),
    /// The relay refused an entry for good (`too_large`, `invalid`,
    /// `quota`, …): the group did not change; the code says why.
    Refused {
        /// The refusal's code.
        code: String,
    },
    /// The key directory answered a publish: packages stored for this device.
    PackagesStored {
        /// How many (besides the last-resort one).
        count: usize,
    },
}

/// A submitted entry, until its ack.
struct Submission {
    entry: Vec<u8>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// One device's view of one channel's group, over the relay.
pub struct GroupLink {
    group: ChannelGroup,
    log_channel: String,
    /// The highest document sequence number seen.
    head: u64,
    out: VecDeque<String>,
    events: VecDeque<LinkEvent>,
    submitted: BTreeMap<String, Submission>,
    /// Key packages asked for (request id → user, device) and the answers.
    asked: HashMap<String, (String, String)>,
    fetched: HashMap<(String, String), Option<Vec<u8>>>,
    commit_wanted: bool,
    counter: u64,
    nonce: String,
}

impl GroupLink {
    /// The link of `channel`'s group (nothing sent until [`Self::join`]).
    pub fn new(channel: &str) -> Result<GroupLink, GroupError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| GroupError::Mls("no randomness".into()))?;
        Ok(GroupLink {
            group: ChannelGroup::new(channel),
            log_channel: doc::channel_for(&format!("mls-{channel}"), false),
            head: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            submitted: BTreeMap::new(),
            asked: HashMap::new(),
            fetched: HashMap::new(),
            commit_wanted: false,
            counter: 0,
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        })
    }

    /// The document channel of the group log, to subscribe to.
    pub fn log_channel(&self) -> &str {
        &self.log_channel
    }

    /// The group.
    pub fn group(&self) -> &ChannelGroup {
        &self.group
    }

    /// Reads the log from where this device is (call once subscribed, and
    /// after every reconnection).
    pub fn join(&mut self) {
        self.join_since(self.group.next_seq());
    }

    fn join_since(&mut self, since: u64) {
        let join = Join { since: Some(since), ..Join::default() };
        self.out.push_back(DocRequest::Join(join).encode(&self.log_channel));
    }

    /// Publishes `count` key packages and a last-resort one for this device.
    pub fn publish_key_packages(&mut self, device: &Device, count: usize) -> Result<(), GroupError> {
        let packages = (0..count).map(|_| device.key_package()).collect::<Result<Vec<_>, _>>()?;
        let publish = Publish {
            request_id: None,
            device: device.certificate().device().to_owned(),
            packages: packages.iter().map(|p| URL_SAFE_NO_PAD.encode(p)).collect(),
            last_resort: Some(URL_SAFE_NO_PAD.encode(device.last_resort_key_package()?)),
        };
        self.out.push_back(frame(directory::PUBLISH, &publish));
        Ok(())
    }

    /// Starts a new generation of the group on `roster` with this device
    /// alone (then [`Self::offer_roster`] brings the others in).
    pub fn start(&mut self, device: &Device, roster: SignedRoster) -> Result<(), GroupError> {
        let entry = self.group.start(device, roster)?;
        self.submit(entry);
        // Once the genesis is back, bring in the roster's other devices.
        self.commit_wanted = true;
        Ok(())
    }

    /// Takes a newer roster from the app and commits what it changes, once
    /// the key packages of the devices to add are fetched.
    pub fn offer_roster(&mut self, device: &Device, roster: SignedRoster) -> Result<(), GroupError> {
        self.group.offer_roster(device, roster)?;
        self.commit_wanted = true;
        self.try_commit(device);
        Ok(())
    }

    /// Commits pending changes when every missing device's package is here.
    fn try_commit(&mut self, device: &Device) {
        if !self.commit_wanted || !self.group.is_member() {
            return;
        }
        let mut waiting = false;
        for (user, device_id) in self.group.missing() {
            let pair = (user.clone(), device_id.clone());
            if self.fetched.contains_key(&pair) {
                continue;
            }
            waiting = true;
            if !self.asked.values().any(|asked| *asked == pair) {
                let request_id = self.next_id();
                let fetch = Fetch { request_id: Some(request_id.clone()), user, device: device_id };
                self.out.push_back(frame(directory::FETCH, &fetch));
                self.asked.insert(request_id, pair);
            }
        }
        if waiting {
            return;
        }
        let fetched = &mut self.fetched;
        match self
            .group
            .commit(device, |user, device| fetched.remove(&(user.into(), device.into())).flatten())
        {
            Ok(Some(entry)) => {
                self.commit_wanted = false;
                self.fetched.clear();
                self.submit(entry);
            }
            Ok(None) => self.commit_wanted = false,
            // Ours is in flight: commit again if it loses.
            Err(GroupError::CommitInFlight) => {}
            Err(error) => {
                self.commit_wanted = false;
                self.events.push_back(LinkEvent::Refused { code: error.to_string() });
            }
        }
    }

    fn submit(&mut self, entry: Vec<u8>) {
        let op_id = self.next_id();
        self.send_submission(&op_id, &entry);
        self.submitted.insert(op_id, Submission { entry, retry_at: None, backoff: RETRY_FIRST });
    }

    fn send_submission(&mut self, op_id: &str, entry: &[u8]) {
        let submit =
            Submit { base: self.head, op_id: op_id.to_owned(), payload: URL_SAFE_NO_PAD.encode(entry) };
        self.out.push_back(DocRequest::Submit(submit).encode(&self.log_channel));
    }

    fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("{}-{}", self.nonce, self.counter)
    }

    /// A frame from the relay: the log channel's document events, or a key
    /// directory answer. Others are ignored.
    pub fn handle(&mut self, device: &Device, event: &str, data: &Value, now: Instant) {
        if DocReply::is_reply_event(event) {
            if let Ok(reply) = DocReply::parse(event, data) {
                self.doc_reply(device, reply, now);
            }
        } else if event == directory::PACKAGE {
            if let Ok(package) = serde_json::from_value::<Package>(data.clone()) {
                let pair = (package.user, package.device);
                let asked = package.request_id.and_then(|id| self.asked.remove(&id));
                if asked.as_ref() == Some(&pair) {
                    let bytes = package.package.and_then(|p| URL_SAFE_NO_PAD.decode(p).ok());
                    self.fetched.insert(pair, bytes);
                }
            }
        } else if event == directory::STORED {
            if let Some(count) = data.get("count").and_then(Value::as_u64) {
                self.events.push_back(LinkEvent::PackagesStored { count: count as usize });
            }
        } else if event == directory::ERROR {
            let code = data.get("code").and_then(Value::as_str).unwrap_or("unknown").to_owned();
            self.events.push_back(LinkEvent::Refused { code });
        }
        self.try_commit(device);
    }

    fn doc_reply(&mut self, device: &Device, reply: DocReply, now: Instant) {
        match reply {
            DocReply::State(state) => {
                let last = state.ops.last().map(|op| op.seq);
                for op in state.ops {
                    self.feed(device, op.seq, &op.payload);
                }
                // A page ends before the head: read on.
                if let Some(last) = last
                    && last < state.head
                {
                    self.join_since(last);
                }
                self.head = self.head.max(state.head);
            }
            DocReply::Op(op) => self.feed(device, op.seq, &op.payload),
            DocReply::Ack(ack) => {
                if let Some(submission) = self.submitted.remove(&ack.op_id) {
                    let payload = URL_SAFE_NO_PAD.encode(&submission.entry);
                    self.feed(device, ack.seq, &payload);
                }
            }
            DocReply::Error(error) => {
                let Some(op_id) = error.op_id.clone() else { return };
                if error.code.is_transient() {
                    if let Some(submission) = self.submitted.get_mut(&op_id) {
                        submission.retry_at = Some(now + submission.backoff);
                        submission.backoff = (submission.backoff * 2).min(RETRY_MAX);
                    }
                } else if self.submitted.remove(&op_id).is_some() {
                    self.events.push_back(LinkEvent::Refused { code: error.code.as_str().to_owned() });
                }
            }
            DocReply::Digest(_) | DocReply::SnapshotStored(_) => {}
        }
    }

    /// Applies the entry at document sequence number `seq`.
    fn feed(&mut self, device: &Device, seq: u64, payload: &str) {
        self.head = self.head.max(seq);
        let Some(position) = seq.checked_sub(1) else { return };
        let bytes = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
        for event in self.group.handle_entry(device, position, &bytes) {
            match event {
                GroupEvent::Publish(entry) => self.submit(entry),
                // Position `from` is sequence number from + 1: ops after `from`.
                GroupEvent::Reread { from } => self.join_since(from),
                GroupEvent::CommitLost => {
                    self.commit_wanted = true;
                    self.events.push_back(LinkEvent::Group(GroupEvent::CommitLost));
                }
                other => self.events.push_back(LinkEvent::Group(other)),
            }
        }
    }

    /// Sends again what the relay refused for a passing reason.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<(String, Vec<u8>)> = self
            .submitted
            .iter_mut()
            .filter(|(_, s)| s.retry_at.is_some_and(|at| at <= now))
            .map(|(id, s)| {
                s.retry_at = None;
                (id.clone(), s.entry.clone())
            })
            .collect();
        for (op_id, entry) in due {
            self.send_submission(&op_id, &entry);
        }
    }

    /// When [`Self::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.submitted.values().filter_map(|s| s.retry_at).min()
    }

    /// The next frame to send.
    pub fn poll_frame(&mut self) -> Option<String> {
        self.out.pop_front()
    }

    /// The next event for the app.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }
}

fn frame<T: serde::Serialize>(event: &str, data: &T) -> String {
    serde_json::json!({"event": event, "data": data}).to_string()
}
