//! The client's one owner of keys ([`Keys`]): the rings (the app's, for
//! sealed events, and one per open document session), what was asked of
//! the app and when, and what it refused. Sealed events, documents and,
//! next, history and group keys ask through it, so there is one policy:
//! a key is asked for once while the question is out; an unanswered
//! question expires after [`KeyPolicy::timeout`] (and may be asked
//! again); a refused version is not asked again within
//! [`KeyPolicy::retry_after`].
//!
//! The owner also holds the randomness sealing draws from ([`ClientRng`]:
//! the OS's, or seeded so a test run reproduces every byte).
//!
//! A document sees its part through [`DocKeys`], a view lent per call by
//! whoever owns the `Keys` (the [`crate::client::ClientMachine`], or a
//! standalone [`crate::doc::DocClient`]).

mod request;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

pub use request::{KeyGrant, KeyRefusal, KeyRequest};

use crate::crypto::{ClientRng, CryptoError, Key, KeyRing};
use crate::time::Instant;

/// Refused versions remembered at most (so a stream of envelopes naming
/// made-up versions costs the provider one call per version, not per
/// envelope, and memory stays bounded).
pub const REFUSED_KEPT: usize = 256;

/// How the owner treats questions to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Most questions about the app's keys (not documents') out at once:
    /// envelopes naming ever new keys cannot make the provider run
    /// without bound. A document asks for one key at a time.
    pub max_asked: usize,
    /// How long a question may stay unanswered; then it is dropped (what
    /// waited for it gives up or asks again).
    pub timeout: Duration,
    /// How long a refusal stands: within it the version is not asked for
    /// again.
    pub retry_after: Duration,
}

/// What [`Keys::ask`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// The question is out (now or already): wait for the answer.
    Waiting,
    /// The app refused this version within `retry_after`: do not wait.
    Refused,
    /// Too many questions are out: do not wait.
    Full,
}

/// A refusal, remembered until `retry_after` has passed.
#[derive(Debug)]
struct Refusal {
    doc_id: Option<String>,
    kid: String,
    kv: u32,
    /// `None`: before the owner knew the time; stands until forgotten.
    at: Option<Instant>,
}

/// The keys a client holds and the questions about them (module docs).
#[derive(Debug)]
pub struct Keys {
    policy: KeyPolicy,
    /// Keys for sealed events.
    app: KeyRing,
    /// Each open document's keys: its session key and the versions its
    /// ops named. Apart from the app's ring because a document session's
    /// key is named by its key hint, not only by `kid`/`kv`.
    docs: HashMap<String, KeyRing>,
    /// Questions out, and since when (`None`: before the owner knew the
    /// time; they never expire). Ordered, so what expires together is
    /// handled in one order on every run.
    asked: BTreeMap<KeyRequest, Option<Instant>>,
    refused: VecDeque<Refusal>,
    /// The latest time the owner was told ([`Keys::tick`]); a state
    /// machine never reads a clock.
    now: Option<Instant>,
    /// Questions not yet handed to the app.
    questions: VecDeque<KeyRequest>,
    /// What sealing draws nonces from.
    rng: ClientRng,
}

impl Keys {
    /// No keys, no questions; sealing with `rng`.
    pub fn new(policy: KeyPolicy, rng: ClientRng) -> Keys {
        Keys {
            rng,
            policy,
            app: KeyRing::new(),
            docs: HashMap::new(),
            asked: BTreeMap::new(),
            refused: VecDeque::new(),
            now: None,
            questions: VecDeque::new(),
        }
    }

    /// The time is `now` (what expires, expires against it).
    pub fn tick(&mut self, now: Instant) {
        self.now = Some(now);
    }

    /// The ring of sealed events.
    pub fn app_ring(&self) -> &KeyRing {
        &self.app
    }

    /// The ring of sealed events, to add to.
    pub fn app_ring_mut(&mut self) -> &mut KeyRing {
        &mut self.app
    }

    /// The ring of sealed events and the randomness to seal with.
    pub fn app_sealing(&mut self) -> (&mut KeyRing, &mut ClientRng) {
        (&mut self.app, &mut self.rng)
    }

    /// The randomness the client draws from (ids, seeds).
    pub fn rng(&mut self) -> &mut ClientRng {
        &mut self.rng
    }

    /// Starts (or restarts) document `doc_id`'s keys with `ring`, and
    /// forgets its earlier questions and refusals.
    pub fn open_doc(&mut self, doc_id: &str, ring: KeyRing) {
        self.close_doc(doc_id);
        self.docs.insert(doc_id.to_owned(), ring);
    }

    /// A document ring holding the app ring's current key of `kid`, if it
    /// has one (the document asks for its session key otherwise).
    pub fn doc_ring_from_app(&self, kid: &str) -> Result<KeyRing, CryptoError> {
        let current = self.app.current_version(kid).and_then(|kv| Some((kv, self.app.get(kid, kv)?)));
        match current {
            Some((kv, key)) => KeyRing::single(kid, kv, Key::from_bytes(key.expose_secret())),
            None => Ok(KeyRing::new()),
        }
    }

    /// Drops document `doc_id`'s keys, questions and refusals.
    pub fn close_doc(&mut self, doc_id: &str) {
        self.docs.remove(doc_id);
        self.asked.retain(|request, _| request.doc_id.as_deref() != Some(doc_id));
        self.questions.retain(|request| request.doc_id.as_deref() != Some(doc_id));
        self.forget_refusals(doc_id);
    }

    /// Forgets document `doc_id`'s refusals (a restart asks again: a
    /// refusal may have been a passing failure).
    pub fn forget_refusals(&mut self, doc_id: &str) {
        self.refused.retain(|refusal| refusal.doc_id.as_deref() != Some(doc_id));
    }

    /// Document `doc_id`'s part.
    pub fn for_doc(&mut self, doc_id: &str) -> DocKeys<'_> {
        DocKeys { keys: self, doc_id: doc_id.to_owned() }
    }

    /// Asks the app for `request` unless it is out already, refused
    /// within `retry_after`, or (for the app's keys) `max_asked`
    /// questions are out.
    pub fn ask(&mut self, request: KeyRequest) -> Asked {
        if self.asked.contains_key(&request) {
            return Asked::Waiting;
        }
        if let Some(kv) = request.kv
            && self.is_refused(request.doc_id.as_deref(), &request.kid, kv)
        {
            return Asked::Refused;
        }
        // (Counted when needed: asking is rare, and at most `max_asked` of
        // the app's questions plus one per open document are out.)
        let apps_out = || self.asked.keys().filter(|r| r.doc_id.is_none()).count();
        if request.doc_id.is_none() && apps_out() >= self.policy.max_asked {
            return Asked::Full;
        }
        self.asked.insert(request.clone(), self.now);
        self.questions.push_back(request);
        Asked::Waiting
    }

    /// The next question for the app.
    pub fn poll_question(&mut self) -> Option<KeyRequest> {
        self.questions.pop_front()
    }

    /// The app answered `request` (a grant or a final refusal): it is no
    /// longer out.
    pub fn answered(&mut self, request: &KeyRequest) {
        self.asked.remove(request);
    }

    /// Stores a granted key in the ring `request` is for (the app's, or
    /// its document's when that is open; a closed document's is dropped).
    pub fn grant(&mut self, request: &KeyRequest, kv: u32, key: Key) -> Result<(), CryptoError> {
        self.answered(request);
        let ring = match &request.doc_id {
            None => &mut self.app,
            Some(doc_id) => match self.docs.get_mut(doc_id) {
                Some(ring) => ring,
                None => return Ok(()),
            },
        };
        ring.insert(&request.kid, kv, key)
    }

    /// The app refused version `kv` of `request`'s key: not asked again
    /// within `retry_after`.
    pub fn refuse(&mut self, request: &KeyRequest, kv: u32) {
        self.answered(request);
        self.remember_refusal(request.doc_id.clone(), &request.kid, kv);
    }

    fn remember_refusal(&mut self, doc_id: Option<String>, kid: &str, kv: u32) {
        if self.is_refused(doc_id.as_deref(), kid, kv) {
            return;
        }
        if self.refused.len() >= REFUSED_KEPT {
            self.refused.pop_front();
        }
        self.refused.push_back(Refusal { doc_id, kid: kid.to_owned(), kv, at: self.now });
    }

    /// True when the app refused version `kv` of `kid` (for `doc_id`, or
    /// for the app's keys) less than `retry_after` ago.
    pub fn is_refused(&self, doc_id: Option<&str>, kid: &str, kv: u32) -> bool {
        self.refused.iter().any(|refusal| {
            refusal.doc_id.as_deref() == doc_id
                && refusal.kid == kid
                && refusal.kv == kv
                && !expired(refusal.at, self.policy.retry_after, self.now)
        })
    }

    /// Drops the questions unanswered for `timeout` and returns them (what
    /// waits for them gives up or asks again).
    pub fn expire(&mut self) -> Vec<KeyRequest> {
        let (timeout, now) = (self.policy.timeout, self.now);
        let mut expired_questions = Vec::new();
        self.asked.retain(|request, since| {
            let over = expired(*since, timeout, now);
            if over {
                expired_questions.push(request.clone());
            }
            !over
        });
        expired_questions
    }

    /// When the oldest question expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.asked.values().flatten().filter_map(|since| since.checked_add(self.policy.timeout)).min()
    }

    /// Forgets the questions out for `doc_id` about `kid` version `kv`
    /// (`None`: its session key), whatever hint they carried; true if
    /// there was one.
    pub fn forget_question(&mut self, doc_id: &str, kid: &str, kv: Option<u32>) -> bool {
        let before = self.asked.len();
        self.asked.retain(|r, _| !(r.doc_id.as_deref() == Some(doc_id) && r.kid == kid && r.kv == kv));
        self.asked.len() != before
    }

    /// Records that the app refused version `kv` of `kid` for `doc_id`.
    pub fn refuse_for_doc(&mut self, doc_id: &str, kid: &str, kv: u32) {
        self.forget_question(doc_id, kid, Some(kv));
        self.remember_refusal(Some(doc_id.to_owned()), kid, kv);
    }
}

/// True when something that happened `at` is `after` old at `now` (never
/// without both times, or past the end of time).
fn expired(at: Option<Instant>, after: Duration, now: Option<Instant>) -> bool {
    match (at, now) {
        (Some(at), Some(now)) => at.checked_add(after).is_some_and(|until| until <= now),
        _ => false,
    }
}

/// Document `doc_id`'s part of the [`Keys`]: its ring, and its questions
/// to the app (asked through the owner, so one policy holds).
#[derive(Debug)]
pub struct DocKeys<'a> {
    keys: &'a mut Keys,
    doc_id: String,
}

/// A ring for a document whose keys are not open (never seen: the owner
/// opens a document's keys before its first use).
static NO_KEYS: std::sync::LazyLock<KeyRing> = std::sync::LazyLock::new(KeyRing::new);

impl DocKeys<'_> {
    /// The document's ring.
    pub fn ring(&self) -> &KeyRing {
        self.keys.docs.get(&self.doc_id).unwrap_or(&NO_KEYS)
    }

    /// The document's ring, to add to or drop a replaced session key.
    pub fn ring_mut(&mut self) -> &mut KeyRing {
        self.keys.docs.entry(self.doc_id.clone()).or_default()
    }

    /// The document's ring and the randomness to seal with.
    pub fn sealing(&mut self) -> (&mut KeyRing, &mut ClientRng) {
        let ring = self.keys.docs.entry(self.doc_id.clone()).or_default();
        (ring, &mut self.keys.rng)
    }

    /// True when the app refused version `kv` of `kid` for this document.
    pub fn is_refused(&self, kid: &str, kv: u32) -> bool {
        self.keys.is_refused(Some(&self.doc_id), kid, kv)
    }

    /// Asks the app for version `kv` of `kid` (`None`: the session key
    /// named by `key_hint`) unless the question is out already.
    pub fn ask(&mut self, kid: &str, kv: Option<u32>, key_hint: Option<String>) -> Asked {
        let request = KeyRequest { kid: kid.to_owned(), kv, doc_id: Some(self.doc_id.clone()), key_hint };
        self.keys.ask(request)
    }

    /// Forgets the app's refusals for this document (a restart asks
    /// again: a refusal may have been a passing failure).
    pub fn forget_refusals(&mut self) {
        self.keys.forget_refusals(&self.doc_id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const POLICY: KeyPolicy =
        KeyPolicy { max_asked: 2, timeout: Duration::from_secs(30), retry_after: Duration::from_secs(10) };

    fn app(kid: &str, kv: Option<u32>) -> KeyRequest {
        KeyRequest { kid: kid.into(), kv, doc_id: None, key_hint: None }
    }

    fn questions(keys: &mut Keys) -> Vec<KeyRequest> {
        std::iter::from_fn(|| keys.poll_question()).collect()
    }

    #[test]
    fn a_question_is_asked_once_while_it_is_out_and_again_after_it_expired() {
        let start = Instant::now();
        let mut keys = Keys::new(POLICY, ClientRng::Os);
        keys.tick(start);
        assert_eq!(keys.ask(app("k", Some(2))), Asked::Waiting);
        assert_eq!(keys.ask(app("k", Some(2))), Asked::Waiting);
        assert_eq!(questions(&mut keys), vec![app("k", Some(2))]);
        assert_eq!(keys.next_expiry(), Some(start + POLICY.timeout));
        keys.tick(start + POLICY.timeout - Duration::from_millis(1));
        assert!(keys.expire().is_empty());
        keys.tick(start + POLICY.timeout);
        assert_eq!(keys.expire(), vec![app("k", Some(2))]);
        assert_eq!(keys.ask(app("k", Some(2))), Asked::Waiting);
        assert_eq!(questions(&mut keys).len(), 1, "asked again once expired");
    }

    #[test]
    fn a_refusal_stands_for_retry_after_and_only_where_it_was_given() {
        let start = Instant::now();
        let mut keys = Keys::new(POLICY, ClientRng::Os);
        keys.tick(start);
        keys.ask(app("k", Some(3)));
        keys.refuse(&app("k", Some(3)), 3);
        assert_eq!(keys.ask(app("k", Some(3))), Asked::Refused);
        // A document's keys are its own: the app's refusal does not count.
        assert_eq!(keys.for_doc("d").ask("k", Some(3), None), Asked::Waiting);
        keys.tick(start + POLICY.retry_after);
        assert_eq!(keys.ask(app("k", Some(3))), Asked::Waiting, "asked again after retry_after");
    }

    #[test]
    fn only_questions_about_the_apps_keys_are_capped() {
        let mut keys = Keys::new(POLICY, ClientRng::Os);
        keys.tick(Instant::now());
        assert_eq!(keys.ask(app("a", Some(1))), Asked::Waiting);
        assert_eq!(keys.ask(app("b", Some(1))), Asked::Waiting);
        assert_eq!(keys.ask(app("c", Some(1))), Asked::Full);
        assert_eq!(keys.for_doc("d").ask("c", None, Some("hint".into())), Asked::Waiting);
        // A document's questions do not use up the app's.
        let mut keys = Keys::new(POLICY, ClientRng::Os);
        keys.for_doc("d").ask("k", Some(1), None);
        keys.for_doc("e").ask("k", Some(1), None);
        assert_eq!(keys.ask(app("a", Some(1))), Asked::Waiting);
        assert_eq!(keys.ask(app("b", Some(1))), Asked::Waiting);
    }

    #[test]
    fn a_grant_lands_in_the_ring_it_was_asked_for_and_closing_a_document_forgets_it() {
        let mut keys = Keys::new(POLICY, ClientRng::Os);
        keys.open_doc("d", KeyRing::new());
        let for_doc = KeyRequest { kid: "k".into(), kv: None, doc_id: Some("d".into()), key_hint: None };
        keys.ask(for_doc.clone());
        keys.grant(&for_doc, 1, Key::from_bytes(&[1; 32])).unwrap();
        assert!(keys.app_ring().current_version("k").is_none());
        assert_eq!(keys.for_doc("d").ring().current_version("k"), Some(1));
        assert_eq!(keys.next_expiry(), None, "answered");
        keys.for_doc("d").ask("k", Some(2), None);
        keys.refuse_for_doc("d", "k", 5);
        keys.close_doc("d");
        assert!(keys.for_doc("d").ring().current_version("k").is_none());
        assert!(!keys.for_doc("d").is_refused("k", 5));
        assert_eq!(keys.next_expiry(), None);
        // A grant for a document closed meanwhile is dropped.
        keys.grant(&for_doc, 1, Key::from_bytes(&[1; 32])).unwrap();
        assert!(keys.for_doc("d").ring().current_version("k").is_none());
    }

    #[test]
    fn without_a_clock_nothing_expires() {
        let mut keys = Keys::new(POLICY, ClientRng::Os);
        keys.for_doc("d").ask("k", Some(2), None);
        keys.refuse_for_doc("d", "k", 2);
        assert!(keys.expire().is_empty());
        assert!(keys.for_doc("d").is_refused("k", 2));
    }
}
