//! [`DocClient`]: one document driven on its own, without a
//! [`crate::client::ClientMachine`] — a [`DocSync`] with its own key owner
//! ([`Keys`]) whose questions come out as [`DocClientEvent::KeyNeeded`].
//! For tools, benchmarks, fuzzing and tests that drive a raw document
//! channel; apps use the machine, which answers key questions through the
//! app's key provider.
//!
//! The transport subscribes to the channel, then feeds every frame on it to
//! [`DocClient::handle_event`] and sends whatever [`DocClient::poll_transmit`]
//! returns; the app reads [`DocClient::poll_event`] and answers `KeyNeeded`
//! with [`DocClient::add_key`] or [`DocClient::key_refused`].

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;

use super::events::{DocClientError, DocClientEvent, DocConfig};
use super::sync::DocSync;
use crate::crypto::{ClientRng, Key, KeyRing};
use crate::keys::{DocKeys, KeyPolicy, KeyRequest, Keys};
use crate::ot::Delta;
use crate::protocol::doc::DocMessage;
use crate::time::Instant;

/// A standalone document's key policy: nothing expires on its own (the
/// app answers every `KeyNeeded`, or asks again with
/// [`DocClient::ask_again`]); refusals stand until a restart.
const STANDALONE_KEYS: KeyPolicy =
    KeyPolicy { max_asked: usize::MAX, timeout: Duration::MAX, retry_after: Duration::MAX };

/// One document with its own keys (module docs).
#[derive(Debug)]
pub struct DocClient {
    doc_id: String,
    sync: DocSync,
    keys: Keys,
    events: VecDeque<DocClientEvent>,
}

impl DocClient {
    /// A client for document `doc_id` on `private-doc-{doc_id}` (or
    /// `presence-doc-{doc_id}` when `presence`), sealing with the current
    /// version of `kid` in `ring`. A ring without `kid` is fine: the join
    /// learns the document's session key hint and `KeyNeeded` asks for the
    /// key. `key_hint` is the hint of the key in `ring`, when the app knows
    /// it: claimed for a new document, and a different recorded hint
    /// replaces that key (docs/keys.md). `op_id_prefix` should be unique
    /// per client session (e.g. random); op ids are `{prefix}-{n}`.
    pub fn new(
        doc_id: &str,
        presence: bool,
        ring: KeyRing,
        kid: &str,
        key_hint: Option<String>,
        op_id_prefix: &str,
        config: DocConfig,
    ) -> Result<DocClient, DocClientError> {
        let mut secret = [0u8; 32];
        crate::crypto::rng::fill(&mut crate::crypto::rng::OsRng, &mut secret)?;
        let sync = DocSync::new(doc_id, presence, kid, key_hint, op_id_prefix, secret, config)?;
        let mut keys = Keys::new(STANDALONE_KEYS, ClientRng::Os);
        keys.open_doc(doc_id, ring);
        Ok(DocClient { doc_id: doc_id.to_owned(), sync, keys, events: VecDeque::new() })
    }

    /// The channel to subscribe to.
    pub fn channel(&self) -> &str {
        self.sync.channel()
    }

    /// True once joined and not diverged.
    pub fn is_ready(&self) -> bool {
        self.sync.is_ready()
    }

    /// The last sequence number integrated (0 before joining).
    pub fn seq(&self) -> u64 {
        self.sync.seq()
    }

    /// The document as the user sees it.
    pub fn view(&self) -> Result<Delta, DocClientError> {
        self.sync.view()
    }

    /// The version of the view ([`DocSync::version`]).
    pub fn version(&self) -> u64 {
        self.sync.version()
    }

    /// The view and its version ([`DocSync::versioned_view`]).
    pub fn versioned_view(&self) -> Result<(Delta, u64), DocClientError> {
        self.sync.versioned_view()
    }

    /// The canonical document at [`DocClient::seq`].
    pub fn canonical(&self) -> Option<&Delta> {
        self.sync.canonical()
    }

    /// True while local edits await acknowledgement.
    pub fn has_pending(&self) -> bool {
        self.sync.has_pending()
    }

    /// Joins or rejoins ([`DocSync::join`]).
    pub fn join(&mut self) {
        self.drive(|sync, keys| sync.join(keys));
    }

    /// Reloads after divergence ([`DocSync::restart`]); the document's key
    /// refusals are forgotten (a refusal may have been a passing failure).
    pub fn restart(&mut self) {
        self.drive(|sync, keys| {
            keys.forget_refusals();
            sync.restart(keys);
        });
    }

    /// A change to the current view ([`DocSync::local_edit`]).
    pub fn local_edit(&mut self, change: Delta) -> Result<u64, DocClientError> {
        self.drive(|sync, keys| sync.local_edit(keys, change))
    }

    /// A change to the view at `version` ([`DocSync::edit_at`]).
    pub fn edit_at(&mut self, version: u64, change: Delta) -> Result<u64, DocClientError> {
        self.drive(|sync, keys| sync.edit_at(keys, version, change))
    }

    /// Undoes the user's newest change ([`DocSync::undo`]).
    pub fn undo(&mut self) -> Result<bool, DocClientError> {
        self.drive(|sync, keys| sync.undo(keys))
    }

    /// Redoes the newest undone change ([`DocSync::redo`]).
    pub fn redo(&mut self) -> Result<bool, DocClientError> {
        self.drive(|sync, keys| sync.redo(keys))
    }

    /// Sends the in-flight op (or a refused join) again now.
    pub fn resubmit(&mut self) {
        self.drive(|sync, keys| sync.resubmit(keys));
    }

    /// When [`DocClient::handle_timeout`] wants to run next. A driver must
    /// call it then: refused ops are resubmitted, and edits held by pacing
    /// ([`DocConfig::submit_interval`]) are sent, only from there.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sync.poll_timeout()
    }

    /// Time passed: resubmits a refused op whose wait is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.keys.tick(now);
        self.drive(|sync, keys| sync.handle_timeout(keys, now));
    }

    /// A frame sharing this user's selection, as a presence client event.
    pub fn cursor(&mut self, index: usize, length: usize) -> Result<(), DocClientError> {
        self.drive(|sync, keys| sync.cursor(keys, index, length))
    }

    /// Forgets that `(kid, kv)` was asked for (`kv` `None`: the session
    /// key) because the app never answered: if processing still stops at
    /// it, `KeyNeeded` comes again.
    pub fn ask_again(&mut self, kid: &str, kv: Option<u32>) {
        if self.keys.forget_question(&self.doc_id, kid, kv) {
            self.drive(|sync, keys| sync.keys_changed(keys));
        }
    }

    /// The app refused key version `kv` of `kid` (after `KeyNeeded`): the
    /// op waiting for it is skipped, as every client of the app is refused
    /// the same key (docs/ot.md, "Ops that do not apply"); a snapshot under
    /// it is passed over. Processing resumes. An op naming a made-up key
    /// version so cannot stop the document.
    pub fn key_refused(&mut self, kid: &str, kv: u32) {
        self.keys.refuse_for_doc(&self.doc_id, kid, kv);
        self.drive(|sync, keys| sync.keys_changed(keys));
    }

    /// Adds a key the app fetched after `KeyNeeded`; processing resumes
    /// ([`DocSync::add_key`]).
    pub fn add_key(
        &mut self,
        kid: &str,
        kv: u32,
        key: Key,
        key_hint: Option<String>,
    ) -> Result<(), DocClientError> {
        self.keys.forget_question(&self.doc_id, kid, Some(kv));
        self.keys.forget_question(&self.doc_id, kid, None);
        self.drive(|sync, keys| sync.add_key(keys, kid, kv, key, key_hint))
    }

    /// A server frame on [`DocClient::channel`] ([`DocSync::handle_event`]).
    pub fn handle_event(
        &mut self,
        event: &str,
        data: &Value,
        user_id: Option<&str>,
        now: Instant,
    ) -> Result<(), DocClientError> {
        self.keys.tick(now);
        self.drive(|sync, keys| sync.handle_event(keys, event, data, user_id, now))
    }

    /// The next message to send on [`DocClient::channel`].
    pub fn poll_transmit(&mut self) -> Option<DocMessage> {
        self.sync.poll_transmit()
    }

    /// The next event for the app, `KeyNeeded` among them.
    pub fn poll_event(&mut self) -> Option<DocClientEvent> {
        self.events.pop_front()
    }

    /// Runs `call` on the document with its keys, then queues what it
    /// reported and the questions it asked, in that order (the order a
    /// caller of the machine sees them).
    fn drive<R>(&mut self, call: impl FnOnce(&mut DocSync, &mut DocKeys<'_>) -> R) -> R {
        let result = call(&mut self.sync, &mut self.keys.for_doc(&self.doc_id));
        while let Some(event) = self.sync.poll_event() {
            self.events.push_back(event);
        }
        while let Some(question) = self.keys.poll_question() {
            let KeyRequest { kid, kv, key_hint, .. } = question;
            self.events.push_back(DocClientEvent::KeyNeeded { kid, kv, key_hint });
        }
        result
    }
}
