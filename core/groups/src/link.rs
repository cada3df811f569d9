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
use sealcast_core::protocol::directory::{self, DirectoryError, Fetch, Package, Publish, Request, Stored};
use sealcast_core::protocol::doc::{self, DocReply, DocRequest, Join, Submit};
use sealcast_core::time::Instant;
use serde::Deserialize as _;
use serde_json::Value;

use crate::{ChannelGroup, Device, GroupError, GroupEvent, SignedRoster};

/// The first wait before a refused submission is sent again (doubling).
const RETRY_FIRST: Duration = Duration::from_millis(200);
/// The longest wait between two tries.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Key package requests out at once (the directory's request rate is 10
/// per second per connection by default).
const FETCHES_OUT: usize = 4;
/// How long before devices that had no key package are asked for again.
const MISSING_RETRY: Duration = Duration::from_secs(10);

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

/// A key package publish until its answer: its request id and frame.
struct Publishing {
    request_id: String,
    frame: String,
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
    /// No fetches before this (a refused fetch's backoff).
    fetch_after: Option<Instant>,
    fetch_backoff: Duration,
    /// When to try again to add devices that had no key package.
    missing_retry_at: Option<Instant>,
    commit_wanted: bool,
    /// A key package publish not yet answered (sent again on join).
    publishing: Option<Publishing>,
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
            log_channel: doc::channel_for(&format!("{}{channel}", doc::GROUP_LOG_PREFIX), false),
            head: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            submitted: BTreeMap::new(),
            asked: HashMap::new(),
            fetched: HashMap::new(),
            fetch_after: None,
            fetch_backoff: RETRY_FIRST,
            missing_retry_at: None,
            commit_wanted: false,
            publishing: None,
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

    /// Reads the log from where this device is, and sends again what was
    /// not acknowledged (under the same op ids: the relay answers a copy
    /// with its original sequence number). Call once subscribed, and after
    /// every reconnection.
    pub fn join(&mut self) {
        self.join_since(self.group.next_seq());
        let pending: Vec<(String, Vec<u8>)> =
            self.submitted.iter().map(|(id, s)| (id.clone(), s.entry.clone())).collect();
        for (op_id, entry) in pending {
            self.send_submission(&op_id, &entry);
        }
        // Answers to questions asked on a lost connection never come.
        self.asked.clear();
        if let Some(publishing) = &self.publishing {
            self.out.push_back(publishing.frame.clone());
        }
    }

    fn join_since(&mut self, since: u64) {
        let join = Join { since: Some(since), ..Join::default() };
        self.out.push_back(DocRequest::Join(join).encode(&self.log_channel));
    }

    /// Publishes `count` key packages and a last-resort one for this device.
    pub fn publish_key_packages(&mut self, device: &Device, count: usize) -> Result<(), GroupError> {
        let packages = (0..count).map(|_| device.key_package()).collect::<Result<Vec<_>, _>>()?;
        let request_id = self.next_id();
        let frame = Request::Publish(Publish {
            request_id: Some(request_id.clone()),
            device: device.certificate().device().to_owned(),
            packages: packages.iter().map(|p| URL_SAFE_NO_PAD.encode(p)).collect(),
            last_resort: Some(URL_SAFE_NO_PAD.encode(device.last_resort_key_package()?)),
        })
        .encode();
        self.out.push_back(frame.clone());
        // Kept until answered: a connection lost meanwhile sends it again.
        self.publishing = Some(Publishing { request_id, frame });
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
    pub fn offer_roster(
        &mut self,
        device: &Device,
        roster: SignedRoster,
        now: Instant,
    ) -> Result<(), GroupError> {
        self.group.offer_roster(device, roster)?;
        self.commit_wanted = true;
        self.try_commit(device, now);
        Ok(())
    }

    /// Commits pending changes when every missing device's package is
    /// here (or known to be unavailable), asking for a few at a time.
    fn try_commit(&mut self, device: &Device, now: Instant) {
        if !self.commit_wanted || !self.group.is_member() {
            return;
        }
        let mut waiting = false;
        let may_fetch = self.fetch_after.is_none_or(|after| after <= now);
        for (user, device_id) in self.group.missing() {
            let pair = (user.clone(), device_id.clone());
            if self.fetched.contains_key(&pair) {
                continue;
            }
            waiting = true;
            let asked = self.asked.values().any(|asked| *asked == pair);
            if !asked && may_fetch && self.asked.len() < FETCHES_OUT {
                let request_id = self.next_id();
                let fetch = Fetch { request_id: Some(request_id.clone()), user, device: device_id };
                self.out.push_back(Request::Fetch(fetch).encode());
                self.asked.insert(request_id, pair);
            }
        }
        if waiting {
            return;
        }
        let unavailable = self.fetched.values().any(Option::is_none);
        let fetched = &mut self.fetched;
        let result =
            self.group.commit(device, |user, device| fetched.remove(&(user.into(), device.into())).flatten());
        match result {
            Ok(entry) => {
                self.commit_wanted = false;
                self.fetched.clear();
                if let Some(entry) = entry {
                    self.submit(entry);
                }
                // Devices without a key package are asked for again later.
                if unavailable {
                    self.missing_retry_at = Some(now + MISSING_RETRY);
                }
            }
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

    /// Whether `request_id` is this link's publish in flight.
    fn is_publishing(&self, request_id: Option<&str>) -> bool {
        request_id.is_some() && request_id == self.publishing.as_ref().map(|p| p.request_id.as_str())
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
            if let Ok(package) = Package::deserialize(data) {
                let pair = (package.user, package.device);
                let asked = package.request_id.and_then(|id| self.asked.remove(&id));
                if asked.as_ref() == Some(&pair) {
                    let bytes = package.package.and_then(|p| URL_SAFE_NO_PAD.decode(p).ok());
                    self.fetched.insert(pair, bytes);
                    self.fetch_backoff = RETRY_FIRST;
                }
            }
        } else if event == directory::STORED {
            // Only the answer to this link's publish (several links may
            // share a connection).
            if let Ok(stored) = Stored::deserialize(data)
                && self.is_publishing(stored.request_id.as_deref())
            {
                self.publishing = None;
                self.events.push_back(LinkEvent::PackagesStored { count: stored.count });
            }
        } else if event == directory::ERROR {
            self.directory_error(data, now);
        }
        self.try_commit(device, now);
    }

    /// A refused fetch is asked again after a backoff when the refusal
    /// passes (`rate_limited`, `storage`), else that device is left for a
    /// later commit; a refused publish is the app's to hear.
    fn directory_error(&mut self, data: &Value, now: Instant) {
        let Ok(error) = DirectoryError::deserialize(data) else { return };
        let pair = error.request_id.as_ref().and_then(|id| self.asked.remove(id));
        match pair {
            Some(_) if error.code.is_transient() => {
                self.fetch_after = Some(now + self.fetch_backoff);
                self.fetch_backoff = (self.fetch_backoff * 2).min(RETRY_MAX);
            }
            Some(pair) => {
                self.fetched.insert(pair, None);
            }
            None => {
                if self.is_publishing(error.request_id.as_deref()) {
                    self.publishing = None;
                    self.events.push_back(LinkEvent::Refused { code: error.code.as_str().to_owned() });
                }
            }
        }
    }

    fn doc_reply(&mut self, device: &Device, reply: DocReply, now: Instant) {
        if let DocReply::Error(error) = &reply
            && !error.code.is_transient()
            && let Some(op_id) = &error.op_id
            && let Some(submission) = self.submitted.remove(op_id)
        {
            // A genesis or commit the relay will never take: give it up so
            // another can be built (a welcome refused leaves its devices to
            // a later commit of the roster).
            if matches!(submission.entry.first(), Some(1 | 2)) {
                self.group.abandon(device);
                self.commit_wanted = true;
            }
            self.events.push_back(LinkEvent::Refused { code: error.code.as_str().to_owned() });
            return;
        }
        match reply {
            DocReply::State(state) => {
                let last = state.ops.last().map(|op| op.seq);
                for op in state.ops {
                    self.feed_payload(device, op.seq, &op.payload);
                }
                // A page ends before the head: read on.
                if let Some(last) = last
                    && last < state.head
                {
                    self.join_since(last);
                }
                self.head = self.head.max(state.head);
            }
            DocReply::Op(op) => self.feed_payload(device, op.seq, &op.payload),
            DocReply::Ack(ack) => {
                if let Some(submission) = self.submitted.remove(&ack.op_id) {
                    self.feed(device, ack.seq, &submission.entry);
                }
            }
            // A passing refusal (final ones were handled above): again later.
            DocReply::Error(error) => {
                if let Some(submission) = error.op_id.as_ref().and_then(|id| self.submitted.get_mut(id)) {
                    submission.retry_at = Some(now + submission.backoff);
                    submission.backoff = (submission.backoff * 2).min(RETRY_MAX);
                }
            }
            DocReply::Digest(_) | DocReply::SnapshotStored(_) => {}
        }
    }

    /// Applies the op payload at document sequence number `seq` (one that
    /// is not base64url is an empty, malformed entry: skipped by all).
    fn feed_payload(&mut self, device: &Device, seq: u64, payload: &str) {
        let bytes = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
        self.feed(device, seq, &bytes);
    }

    /// Applies the entry at document sequence number `seq`.
    fn feed(&mut self, device: &Device, seq: u64, bytes: &[u8]) {
        self.head = self.head.max(seq);
        let Some(position) = seq.checked_sub(1) else { return };
        for event in self.group.handle_entry(device, position, bytes) {
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

    /// Sends again what the relay refused for a passing reason, and asks
    /// again for devices that had no key package.
    pub fn handle_timeout(&mut self, device: &Device, now: Instant) {
        if self.missing_retry_at.is_some_and(|at| at <= now) {
            self.missing_retry_at = None;
            self.commit_wanted = true;
        }
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
        self.try_commit(device, now);
    }

    /// When [`Self::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let fetch_after = self.fetch_after.filter(|_| self.commit_wanted);
        let waits = [fetch_after, self.missing_retry_at].into_iter().flatten();
        self.submitted.values().filter_map(|s| s.retry_at).chain(waits).min()
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{AppSigner, Roster};

    fn device(app: &AppSigner, user: &str) -> Device {
        let key = Device::generate_key().unwrap();
        let cert = app.certify(user, "phone", key.public()).unwrap();
        Device::new(key, cert, app.identity()).unwrap()
    }

    /// The frames the link wants sent, parsed.
    fn sent(link: &mut GroupLink) -> Vec<Value> {
        std::iter::from_fn(|| link.poll_frame()).map(|f| serde_json::from_str(&f).unwrap()).collect()
    }

    fn data_of(frame: &Value) -> Value {
        match &frame["data"] {
            Value::String(text) => serde_json::from_str(text).unwrap(),
            data => data.clone(),
        }
    }

    fn only(frames: &[Value], event: &str) -> Value {
        let found: Vec<&Value> = frames.iter().filter(|f| f["event"] == event).collect();
        assert_eq!(found.len(), 1, "{event} in {frames:?}");
        data_of(found[0])
    }

    /// A started group whose genesis the relay acknowledged; the link now
    /// asks for bob's key package. Returns the fetch's data.
    fn started(app: &AppSigner, alice: &Device, link: &mut GroupLink, now: Instant) -> Value {
        let roster =
            app.sign_roster(Roster::new("private-r", 1).with("alice", "phone").with("bob", "phone")).unwrap();
        link.start(alice, roster).unwrap();
        let submit = only(&sent(link), doc::SUBMIT);
        link.handle(alice, doc::ACK, &json!({"op_id": submit["op_id"], "seq": 1}), now);
        assert!(link.group().is_member());
        assert!(matches!(link.poll_event(), Some(LinkEvent::Group(GroupEvent::Epoch { kv: 0, .. }))));
        only(&sent(link), directory::FETCH)
    }

    #[test]
    fn refused_key_package_requests_are_retried_then_given_up_and_asked_again_later() {
        let app = AppSigner::from_seed(&[4; 32]);
        let (alice, bob) = (device(&app, "alice"), device(&app, "bob"));
        let mut link = GroupLink::new("private-r").unwrap();
        let t0 = Instant::now();
        let fetch = started(&app, &alice, &mut link, t0);
        assert_eq!((fetch["user"].as_str(), fetch["device"].as_str()), (Some("bob"), Some("phone")));

        // Rate limited: nothing is asked again before the backoff.
        let error = json!({"request_id": fetch["request_id"], "request": directory::FETCH, "code": "rate_limited", "message": ""});
        link.handle(&alice, directory::ERROR, &error, t0);
        assert!(sent(&mut link).is_empty());
        let at = link.poll_timeout().expect("a retry is due");
        assert!(at > t0 && at <= t0 + RETRY_FIRST);
        link.handle_timeout(&alice, at);
        let fetch = only(&sent(&mut link), directory::FETCH);

        // Refused for good: the commit goes ahead without bob (nothing to
        // do), and bob is asked for again after MISSING_RETRY.
        let error = json!({"request_id": fetch["request_id"], "request": directory::FETCH, "code": "invalid", "message": ""});
        link.handle(&alice, directory::ERROR, &error, at);
        assert!(sent(&mut link).is_empty());
        assert_eq!(link.poll_timeout(), Some(at + MISSING_RETRY));
        link.handle_timeout(&alice, at + MISSING_RETRY);
        let fetch = only(&sent(&mut link), directory::FETCH);

        // This time bob has a package: the commit is submitted.
        let package = URL_SAFE_NO_PAD.encode(bob.key_package().unwrap());
        let answer = json!({"request_id": fetch["request_id"], "user": "bob", "device": "phone", "package": package, "last_resort": false});
        link.handle(&alice, directory::PACKAGE, &answer, at + MISSING_RETRY);
        let submit = only(&sent(&mut link), doc::SUBMIT);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(submit["payload"].as_str().unwrap()).unwrap()[0],
            2,
            "a commit entry"
        );
    }

    #[test]
    fn a_commit_the_relay_refuses_for_good_is_abandoned_and_built_again() {
        let app = AppSigner::from_seed(&[4; 32]);
        let (alice, bob) = (device(&app, "alice"), device(&app, "bob"));
        let mut link = GroupLink::new("private-r").unwrap();
        let now = Instant::now();
        let fetch = started(&app, &alice, &mut link, now);
        let package = URL_SAFE_NO_PAD.encode(bob.last_resort_key_package().unwrap());
        let answer = json!({"request_id": fetch["request_id"], "user": "bob", "device": "phone", "package": package, "last_resort": true});
        link.handle(&alice, directory::PACKAGE, &answer, now);
        let submit = only(&sent(&mut link), doc::SUBMIT);
        // A passing refusal: the same op again after the backoff.
        let busy =
            json!({"code": "rate_limited", "message": "", "op_id": submit["op_id"], "request": doc::SUBMIT});
        link.handle(&alice, doc::ERROR, &busy, now);
        assert!(sent(&mut link).is_empty());
        link.handle_timeout(&alice, now + RETRY_FIRST);
        assert_eq!(only(&sent(&mut link), doc::SUBMIT)["op_id"], submit["op_id"]);
        // A final refusal: reported, abandoned, and asked for again.
        let refused =
            json!({"code": "too_large", "message": "", "op_id": submit["op_id"], "request": doc::SUBMIT});
        link.handle(&alice, doc::ERROR, &refused, now);
        assert_eq!(link.poll_event(), Some(LinkEvent::Refused { code: "too_large".into() }));
        let fetch = only(&sent(&mut link), directory::FETCH);
        let answer = json!({"request_id": fetch["request_id"], "user": "bob", "device": "phone", "package": package, "last_resort": true});
        link.handle(&alice, directory::PACKAGE, &answer, now);
        assert_ne!(only(&sent(&mut link), doc::SUBMIT)["op_id"], submit["op_id"], "a new commit");
        // After a reconnection, what is not acknowledged goes again: the
        // entry under its op id, the key package publish.
        link.publish_key_packages(&alice, 1).unwrap();
        let publish = only(&sent(&mut link), directory::PUBLISH);
        link.join();
        let frames = sent(&mut link);
        assert!(frames.iter().any(|f| f["event"] == doc::JOIN));
        assert_eq!(frames.iter().filter(|f| f["event"] == doc::SUBMIT).count(), 1);
        assert_eq!(only(&frames, directory::PUBLISH)["request_id"], publish["request_id"]);
        // Another link's answer is not this one's; its own is.
        let stored =
            |id: &Value| json!({"request_id": id, "device": "phone", "count": 1, "last_resort": true});
        link.handle(&alice, directory::STORED, &stored(&json!("someone-else")), now);
        assert_eq!(link.poll_event(), None);
        link.handle(&alice, directory::STORED, &stored(&publish["request_id"]), now);
        assert_eq!(link.poll_event(), Some(LinkEvent::PackagesStored { count: 1 }));
        link.join();
        assert!(sent(&mut link).iter().all(|f| f["event"] != directory::PUBLISH));
    }
}
