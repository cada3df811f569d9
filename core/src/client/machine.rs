//! [`ClientMachine`]: the whole sealcast client — link, key ring, sealed
//! events, held messages and documents — as one sans-IO state machine
//! that every platform drives (the tokio driver in [`crate::net`], the
//! uniffi bindings through it, a browser over pusher-js).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::time::Instant;

use serde_json::Value;

use super::answers::{AuthRefusal, KeyError, KeyGrant, KeyRefusal, KeyRequest, NotSentReason};
use super::held::{Held, Inbound, PendingSend, Seal};
use super::link::{ExternalLink, Link, Transmit};
use super::presence::Member;
use super::sealed::{check_sealable, open_event, seal_event};
use super::session::{ChannelAuth, ClientError, ClientEvent, ClientSession, ConnectionState, SessionConfig};
use crate::crypto::{CryptoError, Key, KeyRing, Scope};
use crate::doc::{DocClient, DocClientError, DocClientEvent, DocConfig};
use crate::ot::Delta;
use crate::protocol::doc::{self, DocReply};

/// The event carrying sealed presence state
/// ([`ClientMachine::send_presence_state`]) and the event of
/// [`ClientMachine::send_chat`] (their home is the protocol).
pub use crate::protocol::client::{CHAT_EVENT, PRESENCE_STATE_EVENT};

/// What [`ClientMachine::send_signal`] seals, when present.
const SIGNAL_PATHS: [&str; 2] = ["/sdp", "/candidate"];

/// Keys refused by the app remembered at most (so a stream of events
/// naming unknown keys costs the provider one call per key, not per event).
const REFUSED_KEPT: usize = 256;

/// Tuning of a [`ClientMachine`].
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// The own link's pings, timeouts and backoff.
    pub session: SessionConfig,
    /// Most received events held waiting for keys, and most sealed events
    /// waiting for a key to seal with (each; default 1,000). Past it the
    /// oldest received one is delivered as undecryptable and a new sealed
    /// send is refused.
    pub max_held: usize,
    /// Longest wait for the app's answer to a `NeedKey` (default 30 s);
    /// then held events are delivered as undecryptable and waiting sends
    /// reported as not sent.
    pub key_timeout: Duration,
    /// After the app refused a key, events naming it within this time are
    /// undecryptable at once, without asking again (default 10 s).
    pub key_retry_after: Duration,
}

impl Default for MachineConfig {
    fn default() -> MachineConfig {
        MachineConfig {
            session: SessionConfig::default(),
            max_held: 1000,
            key_timeout: Duration::from_secs(30),
            key_retry_after: Duration::from_secs(10),
        }
    }
}

/// Something for the app: what happened, or a request it must answer.
///
/// Not `#[non_exhaustive]`, on purpose: every binding matches each variant,
/// so a new one is a compile error on every platform (Kotlin, Swift,
/// Python, the browser) rather than an event silently dropped.
#[derive(Debug)]
pub enum Event {
    /// The own link's connection state changed.
    State(ConnectionState),
    /// Subscribed (again after every reconnect).
    Subscribed {
        /// The channel.
        channel: String,
    },
    /// A subscription was refused.
    SubscriptionFailed {
        /// The channel.
        channel: String,
        /// The server's HTTP-style status, if any.
        status: Option<u16>,
        /// Why.
        message: String,
    },
    /// An event; sealed fields are already opened (`scope` says they were).
    Message {
        /// The channel.
        channel: Option<String>,
        /// Event name.
        event: String,
        /// Data, plaintext.
        data: Value,
        /// Sender, on presence channels.
        user_id: Option<String>,
        /// The scope its sealed fields were bound to, if it had any.
        scope: Option<Scope>,
    },
    /// An event whose sealed fields could not be opened: delivered as an
    /// error, never as ciphertext or a silently dropped event.
    Undecryptable {
        /// The channel.
        channel: Option<String>,
        /// Event name.
        event: String,
        /// Sender, on presence channels.
        user_id: Option<String>,
        /// Why.
        error: CryptoError,
    },
    /// A member joined a presence channel.
    MemberAdded {
        /// The channel.
        channel: String,
        /// The member.
        member: Member,
    },
    /// A member left a presence channel.
    MemberRemoved {
        /// The channel.
        channel: String,
        /// The member.
        member: Member,
    },
    /// A `pusher:error` from the server, or a server frame the link could
    /// not read.
    Error {
        /// Pusher error code, if any.
        code: Option<u16>,
        /// Message.
        message: String,
    },
    /// A key request ended without a usable key: the provider refused it,
    /// or its grant could not be used. What waited for it was reported or
    /// skipped on its own terms (undecryptable, [`Event::NotSent`], the
    /// document's `Skipped` or closing).
    KeyRefused {
        /// The request.
        request: KeyRequest,
        /// Why.
        error: KeyError,
    },
    /// A sealed event that waited for its key was not sent.
    NotSent {
        /// Its channel.
        channel: String,
        /// Its event name.
        event: String,
        /// Why.
        reason: NotSentReason,
    },
    /// A frame on a document's channel could not be read (caused by: the
    /// server or a co-subscriber); it was dropped.
    BadDocumentFrame {
        /// The document.
        doc_id: String,
        /// Why.
        error: DocClientError,
    },
    /// Something happened to an open document.
    Document {
        /// The document.
        doc_id: String,
        /// What.
        event: DocClientEvent,
    },
    /// Request: sign `channel` for `socket_id` (the app calls its auth
    /// endpoint), then call [`ClientMachine::handle_authorization`].
    NeedAuthorization {
        /// The connection to sign.
        socket_id: String,
        /// The channel.
        channel: String,
    },
    /// Request: fetch this key, then call [`ClientMachine::handle_key`].
    /// What needs it waits (bounded by [`MachineConfig`]).
    NeedKey(KeyRequest),
}

impl Event {
    /// One line for a local failure ([`Event::KeyRefused`],
    /// [`Event::NotSent`], [`Event::BadDocumentFrame`]), for platforms that
    /// receive them through an error callback; `None` for other events.
    pub fn local_failure(&self) -> Option<String> {
        match self {
            Event::KeyRefused { request, error } => {
                Some(format!("key {} (v{:?}): {error}", request.kid, request.kv))
            }
            Event::NotSent { channel, event, reason } => {
                Some(format!("{event} on {channel} was not sent: {reason}"))
            }
            Event::BadDocumentFrame { doc_id, error } => {
                Some(format!("document {doc_id}: bad frame: {error}"))
            }
            _ => None,
        }
    }
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The link refused it (not connected, not subscribed, bad name, a
    /// client event the server would refuse).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Sealing failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The document refused it.
    #[error(transparent)]
    Document(#[from] DocClientError),
    /// No such open document.
    #[error("document {0} is not open")]
    NoDocument(String),
    /// Too many sealed events or key requests already wait for keys
    /// ([`MachineConfig::max_held`]).
    #[error("{0} sealed events or key requests already wait for keys")]
    Busy(usize),
}

/// How to open a document.
#[derive(Debug, Clone)]
pub struct DocOptions {
    /// On `presence-doc-…` (a roster, user ids on cursors) instead of
    /// `private-doc-…`.
    pub presence: bool,
    /// The key id to seal with. When the ring lacks it, the key is asked
    /// for with the document id and the session's key hint once the join
    /// has learnt it.
    pub kid: String,
    /// The hint of the ring's key for `kid`, when the app knows it: claimed
    /// for a new document; a different recorded hint makes the document
    /// ask for the recorded session's key instead. `None` with a key in the
    /// ring: the key is used as it is (a fixed key per document).
    pub key_hint: Option<String>,
    /// Snapshot and digest intervals.
    pub config: DocConfig,
}

/// The whole client as one state machine, sans-IO: no callback ever runs
/// inside it, no call blocks, time is passed in.
///
/// Calling order (quinn-proto's `Connection` is the model):
///
/// 1. Create it: [`ClientMachine::new`] for its own Pusher link (then
///    [`ClientMachine::connect`]), or [`ClientMachine::external`] when
///    another library owns the WebSocket.
/// 2. Getters at any time: [`state`](ClientMachine::state),
///    [`members`](ClientMachine::members),
///    [`is_subscribed`](ClientMachine::is_subscribed),
///    [`document`](ClientMachine::document) (a handle to edit and read an
///    open document).
/// 3. Feed what happened, with the time: own link —
///    [`handle_open`](ClientMachine::handle_open),
///    [`handle_frame`](ClientMachine::handle_frame),
///    [`handle_closed`](ClientMachine::handle_closed); external —
///    [`handle_subscribed`](ClientMachine::handle_subscribed),
///    [`handle_unsubscribed`](ClientMachine::handle_unsubscribed),
///    [`handle_channel_event`](ClientMachine::handle_channel_event); both —
///    [`handle_timeout`](ClientMachine::handle_timeout) when the time from
///    `poll_timeout` has come, and the answers to its requests,
///    [`handle_authorization`](ClientMachine::handle_authorization) and
///    [`handle_key`](ClientMachine::handle_key), in any order.
/// 4. Commands: subscribe, trigger, trigger sealed, presence state, keys,
///    open/close a document (edits go through the document handle).
/// 5. After any of 3 or 4, drain the outputs:
///    [`poll_transmit`](ClientMachine::poll_transmit) until `None` (carry
///    each out), [`poll_event`](ClientMachine::poll_event) until `None`
///    (deliver each; answer the requests among them), then
///    [`poll_timeout`](ClientMachine::poll_timeout) (when to call
///    `handle_timeout` next).
#[derive(Debug)]
pub struct ClientMachine {
    config: MachineConfig,
    link: Link,
    ring: KeyRing,
    /// Open documents by document id.
    docs: BTreeMap<String, Box<DocClient>>,
    /// Received events waiting for a key (in order per channel).
    inbound: Held<Inbound>,
    /// Sealed events waiting for the key to seal with.
    sends: Held<PendingSend>,
    /// Key requests out with the app, and since when.
    asked: HashMap<KeyRequest, Instant>,
    /// Keys the app refused recently: (kid, kv, when).
    refused: VecDeque<(String, u32, Instant)>,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    /// The newest time passed in.
    now: Instant,
}

impl ClientMachine {
    /// A machine with its own Pusher link (not connecting until
    /// [`ClientMachine::connect`]).
    pub fn new(config: MachineConfig, now: Instant) -> ClientMachine {
        let link = Link::Own(ClientSession::new(config.session.clone()));
        ClientMachine::with_link(config, link, now)
    }

    /// A machine over an external Pusher transport: the app's library owns
    /// the connection, subscriptions and authorization. The app reports
    /// channels subscribed and lost, feeds their events, and carries out
    /// `Subscribe`, `Unsubscribe` and `Trigger` transmits.
    pub fn external(config: MachineConfig, now: Instant) -> ClientMachine {
        ClientMachine::with_link(config, Link::External(ExternalLink::default()), now)
    }

    fn with_link(config: MachineConfig, link: Link, now: Instant) -> ClientMachine {
        ClientMachine {
            inbound: Held::new(config.max_held),
            sends: Held::new(config.max_held),
            config,
            link,
            ring: KeyRing::new(),
            docs: BTreeMap::new(),
            asked: HashMap::new(),
            refused: VecDeque::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            now,
        }
    }

    // ---- getters ----

    /// The own link's connection state (`Initialized` over an external
    /// transport, whose library reports its own).
    pub fn state(&self) -> ConnectionState {
        match &self.link {
            Link::Own(session) => session.state().clone(),
            Link::External(_) => ConnectionState::Initialized,
        }
    }

    /// The members of a subscribed presence channel (own link; an external
    /// library keeps its own roster).
    pub fn members(&self, channel: &str) -> Vec<Member> {
        match &self.link {
            Link::Own(session) => session.members(channel),
            Link::External(_) => Vec::new(),
        }
    }

    /// Whether `channel` is subscribed now.
    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.link.is_subscribed(channel)
    }

    /// The open document `doc_id`, to edit and read.
    pub fn document(&mut self, doc_id: &str) -> Result<Document<'_>, CommandError> {
        match self.docs.get_mut(doc_id) {
            Some(doc) => Ok(Document { doc }),
            None => Err(CommandError::NoDocument(doc_id.to_owned())),
        }
    }

    // ---- input: the own link ----

    /// The socket opened (after `Transmit::Connect`).
    pub fn handle_open(&mut self, now: Instant) {
        self.now = now;
        if let Link::Own(session) = &mut self.link {
            session.handle_open(now);
        }
    }

    /// A text frame from the server.
    pub fn handle_frame(&mut self, now: Instant, text: &str) {
        self.now = now;
        if let Link::Own(session) = &mut self.link {
            session.handle_frame(text, now);
        }
    }

    /// The socket closed, or failed to open (`code`: its close code).
    pub fn handle_closed(&mut self, now: Instant, code: Option<u16>, reason: &str) {
        self.now = now;
        if let Link::Own(session) = &mut self.link {
            session.handle_closed(code, reason, now);
        }
    }

    // ---- input: an external transport ----

    /// The app's library subscribed `channel` (pusher-js:
    /// `pusher:subscription_succeeded`).
    pub fn handle_subscribed(&mut self, now: Instant, channel: &str) {
        self.now = now;
        if self.link.external_subscribed(channel) {
            self.on_subscribed(channel.to_owned());
        }
    }

    /// The app's library lost `channel`, or every channel (`None`: the
    /// connection dropped; it resubscribes by itself).
    pub fn handle_unsubscribed(&mut self, now: Instant, channel: Option<&str>) {
        self.now = now;
        self.link.external_unsubscribed(channel);
    }

    /// An event the app's library received on `channel` (its data parsed;
    /// `user_id`: the sender on presence channels).
    pub fn handle_channel_event(
        &mut self,
        now: Instant,
        channel: &str,
        event: &str,
        data: Value,
        user_id: Option<String>,
    ) {
        self.now = now;
        if let Link::External(_) = self.link {
            let message =
                Inbound { channel: Some(channel.to_owned()), event: event.to_owned(), data, user_id };
            self.on_inbound(message);
        }
    }

    // ---- input: both ----

    /// Time passed (call at `poll_timeout`): pings, reconnects, document
    /// retries, and the end of waits for keys.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if let Link::Own(session) = &mut self.link {
            session.handle_timeout(now);
        }
        for doc in self.docs.values_mut() {
            doc.handle_timeout(now);
        }
        let timeout = self.config.key_timeout;
        // A document's request the app did not answer in time: the
        // document asks again (it cannot go on without an answer).
        let mut again: Vec<(String, String, Option<u32>)> = Vec::new();
        self.asked.retain(|request, since| {
            let expired = *since + timeout <= now;
            if expired && let Some(doc_id) = &request.doc_id {
                again.push((doc_id.clone(), request.kid.clone(), request.kv));
            }
            !expired
        });
        for (doc_id, kid, kv) in again {
            if let Some(doc) = self.docs.get_mut(&doc_id) {
                doc.ask_again(&kid, kv);
            }
        }
        if let Some(expired) = now.checked_sub(timeout) {
            self.release(Some(expired));
            while self.sends.oldest().is_some_and(|at| at <= expired) {
                if let Some(send) = self.sends.pop_oldest() {
                    let kid = send.seal.as_ref().map_or("", |seal| seal.kid.as_str()).to_owned();
                    self.not_sent(send, NotSentReason::KeyTimedOut { kid, after: timeout });
                }
            }
            self.flush_sends();
        }
    }

    /// The app's answer to `NeedAuthorization`.
    pub fn handle_authorization(
        &mut self,
        socket_id: &str,
        channel: &str,
        result: Result<ChannelAuth, AuthRefusal>,
    ) {
        if let Link::Own(session) = &mut self.link {
            session.authorized(channel, socket_id, result);
        }
    }

    /// The app's answer to `NeedKey(request)`: what waited for it proceeds,
    /// or on a [`KeyRefusal::Refused`] is reported (undecryptable, not
    /// sent, the document's `KeyNeeded` and closing for its session key, or
    /// `Skipped` for the op that named a refused version) after an
    /// [`Event::KeyRefused`]. [`KeyRefusal::Unavailable`] counts as no
    /// answer yet: what waits goes on waiting until `key_timeout`.
    pub fn handle_key(&mut self, now: Instant, request: &KeyRequest, result: Result<KeyGrant, KeyRefusal>) {
        self.now = now;
        if let Err(KeyRefusal::Unavailable(_)) = result {
            return;
        }
        self.asked.remove(request);
        // An answer for another version than asked cannot satisfy the
        // request: keep the key, count the request as refused (so a
        // confused provider is not asked in a loop).
        match (result, request.kv) {
            (Ok(grant), Some(kv)) if grant.kv != kv => {
                let error = KeyError::WrongVersion { asked: kv, got: grant.kv };
                self.insert_key(request, grant);
                self.key_refused(request, error);
            }
            (Ok(grant), _) => self.insert_key(request, grant),
            (Err(refusal), _) => self.key_refused(request, KeyError::Provider(refusal)),
        }
    }

    // ---- commands ----

    /// Starts connecting the own link (again, after `disconnect` or a
    /// fatal close).
    pub fn connect(&mut self) {
        if let Link::Own(session) = &mut self.link {
            session.connect();
        }
    }

    /// Closes the own link and stops reconnecting (subscriptions are kept).
    pub fn disconnect(&mut self) {
        if let Link::Own(session) = &mut self.link {
            session.disconnect();
        }
    }

    /// Connectivity changed: reconnect now with the backoff reset, or check
    /// a live connection.
    pub fn network_changed(&mut self, now: Instant) {
        self.now = now;
        if let Link::Own(session) = &mut self.link {
            session.network_changed(now);
        }
    }

    /// Subscribes to a channel (private and presence ones through
    /// `NeedAuthorization`).
    pub fn subscribe(&mut self, channel: &str) -> Result<(), CommandError> {
        Ok(self.link.subscribe(channel)?)
    }

    /// Leaves a channel.
    pub fn unsubscribe(&mut self, channel: &str) {
        self.link.unsubscribe(channel);
    }

    /// Sends a plaintext `client-` event (after the sealed ones sent
    /// before it on the channel, if they wait for a key).
    pub fn trigger(&mut self, channel: &str, event: &str, data: Value) -> Result<(), CommandError> {
        self.link.check_client_event(channel, event)?;
        let send = PendingSend { channel: channel.to_owned(), event: event.to_owned(), data, seal: None };
        self.send_or_wait(send)
    }

    /// Seals `paths` of `data` for `scope` with the current version of
    /// `kid` and sends it as a `client-` event. When the ring lacks `kid`
    /// the event waits (the machine asks with `NeedKey`) and goes out when
    /// the key arrives; a failure then is reported as an `Error` event.
    pub fn trigger_sealed(
        &mut self,
        channel: &str,
        event: &str,
        data: Value,
        paths: &[&str],
        kid: &str,
        scope: &Scope,
    ) -> Result<(), CommandError> {
        self.link.check_client_event(channel, event)?;
        check_sealable(&data, scope)?;
        let seal = Seal {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            kid: kid.to_owned(),
            scope: scope.clone(),
        };
        let send =
            PendingSend { channel: channel.to_owned(), event: event.to_owned(), data, seal: Some(seal) };
        self.send_or_wait(send)
    }

    /// Sends now, or queues behind what waits on the channel (asking for
    /// the key a sealed send lacks).
    fn send_or_wait(&mut self, send: PendingSend) -> Result<(), CommandError> {
        let behind = self.sends.iter().any(|waiting| waiting.channel == send.channel);
        let lacks_key = send.seal.as_ref().is_some_and(|seal| self.ring.current_version(&seal.kid).is_none());
        if !behind && !lacks_key {
            return self.seal_and_send(send);
        }
        if self.sends.is_full() {
            return Err(CommandError::Busy(self.sends.len()));
        }
        if let Some(seal) = send.seal.as_ref().filter(|_| lacks_key)
            && !self.ask(KeyRequest { kid: seal.kid.clone(), kv: None, doc_id: None, key_hint: None })
        {
            return Err(CommandError::Busy(self.asked.len()));
        }
        self.sends.push(self.now, send);
        Ok(())
    }

    /// Shares this user's presence state (typing, cursor, location…) on a
    /// presence channel: `state` travels sealed as `/state` of a
    /// `client-presence-state` event, scope
    /// `custom:presence-state:CHANNEL:client-presence-state` (receivers get
    /// it as a `Message` with that scope and the sender's `user_id`).
    pub fn send_presence_state(
        &mut self,
        channel: &str,
        kid: &str,
        state: Value,
    ) -> Result<(), CommandError> {
        let scope = Scope::custom("presence-state", channel, PRESENCE_STATE_EVENT)?;
        let data = serde_json::json!({ "state": state });
        self.trigger_sealed(channel, PRESENCE_STATE_EVENT, data, &["/state"], kid, &scope)
    }

    /// Sends a sealed chat message: `/body` of `data` sealed for
    /// `chat:ROOM:MESSAGE_ID` with key id `room`, as `client-chat`.
    pub fn send_chat(
        &mut self,
        channel: &str,
        room: &str,
        message_id: &str,
        data: Value,
    ) -> Result<(), CommandError> {
        let scope = Scope::chat(room, message_id)?;
        self.trigger_sealed(channel, CHAT_EVENT, data, &["/body"], room, &scope)
    }

    /// Sends a call-signaling event (`client-offer`, `client-answer`,
    /// `client-ice`…) with `/sdp` and `/candidate` sealed (those present)
    /// for `call:CALL_ID:EVENT` with key id `call_id`.
    pub fn send_signal(
        &mut self,
        channel: &str,
        call_id: &str,
        event: &str,
        data: Value,
    ) -> Result<(), CommandError> {
        let paths: Vec<&str> = SIGNAL_PATHS.into_iter().filter(|p| data.pointer(p).is_some()).collect();
        let scope = Scope::call(call_id, event)?;
        self.trigger_sealed(channel, event, data, &paths, call_id, &scope)
    }

    /// Adds a key version (e.g. after the app rotated `kid`); sealing uses
    /// the newest version. Held events it opens are delivered.
    pub fn add_key(&mut self, kid: &str, kv: u32, key: Key) -> Result<(), CommandError> {
        self.ring.insert(kid, kv, key)?;
        self.release(None);
        self.flush_sends();
        Ok(())
    }

    /// Opens document `doc_id` on `private-doc-{doc_id}` (or
    /// `presence-doc-…`), sealing with `options.kid`: the ring's key, or
    /// (when the ring lacks it) the document session's key, asked for with
    /// `NeedKey` once the join has learnt the session's key hint. Its
    /// events arrive as [`Event::Document`]. Opening it again restarts it.
    pub fn open_document(&mut self, doc_id: &str, options: DocOptions) -> Result<(), CommandError> {
        let channel = doc::channel_for(doc_id, options.presence);
        self.close_document(doc_id);
        let doc = self.start_document(doc_id, &options)?;
        self.link.subscribe(&channel)?;
        self.docs.insert(doc_id.to_owned(), doc);
        Ok(())
    }

    /// Closes a document and leaves its channel.
    pub fn close_document(&mut self, doc_id: &str) {
        if let Some(doc) = self.docs.remove(doc_id) {
            self.link.unsubscribe(doc.channel());
        }
    }

    // ---- output ----

    /// The next thing the transport must do.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.pump();
        self.transmits.pop_front()
    }

    /// The next event for the app (requests among them).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.pump();
        self.events.pop_front()
    }

    /// When to call [`ClientMachine::handle_timeout`] next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pump();
        let link = match &self.link {
            Link::Own(session) => session.poll_timeout(),
            Link::External(_) => None,
        };
        let docs = self.docs.values().filter_map(|doc| doc.poll_timeout());
        let timeout = self.config.key_timeout;
        let held = [self.inbound.oldest(), self.sends.oldest()].into_iter().flatten().map(|at| at + timeout);
        let doc_asks =
            self.asked.iter().filter(|(r, _)| r.doc_id.is_some()).map(|(_, since)| *since + timeout);
        link.into_iter().chain(docs).chain(held).chain(doc_asks).min()
    }

    // ---- inside ----

    /// Moves what the sub-machines produced to the machine's queues: link
    /// events (routing channel events to documents or opening them),
    /// documents' messages and events, then the link's transmits.
    fn pump(&mut self) {
        while let Some(event) = match &mut self.link {
            Link::Own(session) => session.poll_event(),
            Link::External(_) => None,
        } {
            self.on_link_event(event);
        }
        let Self { docs, link, events, asked, now, .. } = self;
        for (doc_id, doc) in docs.iter_mut() {
            while let Some(message) = doc.poll_transmit() {
                // Unsubscribed: dropped; the rejoin after resubscribing
                // resubmits what matters.
                if link.is_subscribed(doc.channel()) {
                    let _ = link.send(doc.channel(), message.event, message.data);
                }
            }
            while let Some(event) = doc.poll_event() {
                match event {
                    DocClientEvent::KeyNeeded { kid, kv, key_hint } => {
                        let request = KeyRequest { kid, kv, doc_id: Some(doc_id.clone()), key_hint };
                        if !asked.contains_key(&request) {
                            asked.insert(request.clone(), *now);
                            events.push_back(Event::NeedKey(request));
                        }
                    }
                    event => events.push_back(Event::Document { doc_id: doc_id.clone(), event }),
                }
            }
        }
        while let Some(output) = self.link.poll() {
            match output {
                Ok(transmit) => self.transmits.push_back(transmit),
                Err((socket_id, channel)) => {
                    self.events.push_back(Event::NeedAuthorization { socket_id, channel })
                }
            }
        }
    }

    fn on_link_event(&mut self, event: ClientEvent) {
        let event = match event {
            ClientEvent::Subscribed { channel } => return self.on_subscribed(channel),
            ClientEvent::Message { channel, event, data, user_id } => {
                return self.on_inbound(Inbound { channel, event, data, user_id });
            }
            ClientEvent::State(state) => Event::State(state),
            ClientEvent::SubscriptionFailed { channel, status, message } => {
                Event::SubscriptionFailed { channel, status, message }
            }
            ClientEvent::MemberAdded { channel, member } => Event::MemberAdded { channel, member },
            ClientEvent::MemberRemoved { channel, member } => Event::MemberRemoved { channel, member },
            ClientEvent::Error { code, message } => Event::Error { code, message },
        };
        self.events.push_back(event);
    }

    fn on_subscribed(&mut self, channel: String) {
        if let Some(doc) = self.doc_on(&channel) {
            doc.join();
        }
        self.events.push_back(Event::Subscribed { channel });
    }

    /// The document open on a document channel, if any.
    fn doc_on(&mut self, channel: &str) -> Option<&mut DocClient> {
        let doc = self.docs.get_mut(doc::doc_id_of(channel)?)?;
        (doc.channel() == channel).then_some(doc)
    }

    fn on_inbound(&mut self, message: Inbound) {
        let is_doc_event = DocReply::is_reply_event(&message.event) || message.event == doc::CURSOR;
        if is_doc_event && let Some(channel) = message.channel.clone() {
            let now = self.now;
            if let Some(doc) = self.doc_on(&channel) {
                let user_id = message.user_id.as_deref();
                if let Err(error) = doc.handle_event(&message.event, &message.data, user_id, now) {
                    let doc_id = doc::doc_id_of(&channel).unwrap_or_default().to_owned();
                    self.events.push_back(Event::BadDocumentFrame { doc_id, error });
                }
                return;
            }
        }
        // Behind a held event of the same channel: wait too (order).
        if self.inbound.iter().any(|held| held.channel == message.channel) {
            return self.hold(message);
        }
        if let Some(message) = self.try_open(message, false) {
            self.hold(message);
        }
    }

    fn hold(&mut self, message: Inbound) {
        if self.inbound.is_full()
            && let Some(oldest) = self.inbound.pop_oldest()
        {
            self.try_open(oldest, true);
        }
        self.inbound.push(self.now, message);
    }

    /// Opens and delivers `message`, or gives it back when it needs a key
    /// the app may still supply (asking for it). `give_up`: deliver it as
    /// undecryptable rather than wait.
    fn try_open(&mut self, mut message: Inbound, give_up: bool) -> Option<Inbound> {
        let event = match open_event(&mut message.data, &self.ring) {
            Ok(scope) => {
                let Inbound { channel, event, data, user_id } = message;
                Event::Message { channel, event, data, user_id, scope }
            }
            Err(error) => {
                if let CryptoError::UnknownKey { kid, kv } = error.root()
                    && !give_up
                    && !self.recently_refused(kid, *kv)
                    && self.ask(KeyRequest { kid: kid.clone(), kv: Some(*kv), doc_id: None, key_hint: None })
                {
                    return Some(message);
                }
                let Inbound { channel, event, user_id, .. } = message;
                Event::Undecryptable { channel, event, user_id, error }
            }
        };
        self.events.push_back(event);
        None
    }

    /// Delivers the held events that can go now, in order per channel;
    /// those that arrived at or before `give_up_before` are given up.
    fn release(&mut self, give_up_before: Option<Instant>) {
        let mut waiting: HashSet<Option<String>> = HashSet::new();
        for (at, message) in self.inbound.take_all() {
            if waiting.contains(&message.channel) {
                self.inbound.put_back(at, message);
                continue;
            }
            let give_up = give_up_before.is_some_and(|before| at <= before);
            if let Some(message) = self.try_open(message, give_up) {
                waiting.insert(message.channel.clone());
                self.inbound.put_back(at, message);
            }
        }
    }

    /// Asks the app for a key (once while it is out); false when
    /// `max_held` requests are out already, so events naming ever new keys
    /// cannot make the app's provider run without bound.
    fn ask(&mut self, request: KeyRequest) -> bool {
        if self.asked.contains_key(&request) {
            return true;
        }
        if self.asked.len() >= self.config.max_held {
            return false;
        }
        self.asked.insert(request.clone(), self.now);
        self.events.push_back(Event::NeedKey(request));
        true
    }

    fn recently_refused(&self, kid: &str, kv: u32) -> bool {
        let retry_after = self.config.key_retry_after;
        self.refused.iter().any(|(k, v, at)| k == kid && *v == kv && *at + retry_after > self.now)
    }

    fn insert_key(&mut self, request: &KeyRequest, grant: KeyGrant) {
        let Some(doc_id) = &request.doc_id else {
            if let Err(err) = self.ring.insert(&request.kid, grant.kv, grant.key) {
                let error = KeyError::Rejected(err);
                self.events.push_back(Event::KeyRefused { request: request.clone(), error });
            }
            self.release(None);
            return self.flush_sends();
        };
        // Closed meanwhile: nothing to do.
        let Some(doc) = self.docs.get_mut(doc_id) else { return };
        // The grant's hint counts only for a new session key.
        let key_hint = grant.key_hint.filter(|_| request.key_hint.is_none());
        if let Err(err) = doc.add_key(&request.kid, grant.kv, grant.key, key_hint) {
            let error = KeyError::DocumentRejected(err);
            self.events.push_back(Event::KeyRefused { request: request.clone(), error });
        }
    }

    fn key_refused(&mut self, request: &KeyRequest, error: KeyError) {
        let refusal = match &error {
            KeyError::Provider(refusal) => refusal.clone(),
            other => KeyRefusal::Refused(other.to_string()),
        };
        self.events.push_back(Event::KeyRefused { request: request.clone(), error });
        if let Some(doc_id) = &request.doc_id {
            match request.kv {
                // Without its session key a document can never be edited:
                // it is closed, after its `KeyNeeded` says which key did not
                // come (an editor showing "loading" would wait for ever).
                None => {
                    if self.docs.contains_key(doc_id) {
                        let event = DocClientEvent::KeyNeeded {
                            kid: request.kid.clone(),
                            kv: None,
                            key_hint: request.key_hint.clone(),
                        };
                        self.events.push_back(Event::Document { doc_id: doc_id.clone(), event });
                    }
                    self.close_document(doc_id);
                }
                // The op (or snapshot) that named a refused version is
                // skipped (`Skipped`) or passed over; the document goes on.
                Some(kv) => {
                    if let Some(doc) = self.docs.get_mut(doc_id) {
                        doc.key_refused(&request.kid, kv);
                    }
                }
            }
            return;
        }
        match request.kv {
            Some(kv) => {
                if self.refused.len() >= REFUSED_KEPT {
                    self.refused.pop_front();
                }
                self.refused.push_back((request.kid.clone(), kv, self.now));
                self.release(None);
            }
            None => {
                for (at, send) in self.sends.take_all() {
                    if send.seal.as_ref().is_some_and(|seal| seal.kid == request.kid) {
                        self.not_sent(send, NotSentReason::KeyRefused(refusal.clone()));
                    } else {
                        self.sends.put_back(at, send);
                    }
                }
                self.flush_sends();
            }
        }
    }

    /// Sends the waiting events that can go now (in order per channel).
    fn flush_sends(&mut self) {
        let mut waiting: HashSet<String> = HashSet::new();
        for (at, send) in self.sends.take_all() {
            let lacks_key =
                send.seal.as_ref().is_some_and(|seal| self.ring.current_version(&seal.kid).is_none());
            if waiting.contains(&send.channel) || lacks_key {
                waiting.insert(send.channel.clone());
                self.sends.put_back(at, send);
            } else {
                let (channel, event) = (send.channel.clone(), send.event.clone());
                if let Err(err) = self.seal_and_send(send) {
                    let reason = NotSentReason::Refused(err);
                    self.events.push_back(Event::NotSent { channel, event, reason });
                }
            }
        }
    }

    fn seal_and_send(&mut self, mut send: PendingSend) -> Result<(), CommandError> {
        self.link.check_client_event(&send.channel, &send.event)?;
        if let Some(seal) = &send.seal {
            let paths: Vec<&str> = seal.paths.iter().map(String::as_str).collect();
            seal_event(&mut send.data, &paths, &mut self.ring, &seal.kid, &seal.scope)?;
        }
        Ok(self.link.send(&send.channel, &send.event, send.data)?)
    }

    fn not_sent(&mut self, send: PendingSend, reason: NotSentReason) {
        let PendingSend { channel, event, .. } = send;
        self.events.push_back(Event::NotSent { channel, event, reason });
    }

    /// A document client sealing with the ring's current version of
    /// `options.kid`, or, when the ring lacks it, with the session key it
    /// will ask for.
    fn start_document(&self, doc_id: &str, options: &DocOptions) -> Result<Box<DocClient>, CommandError> {
        let kv = self.ring.current_version(&options.kid);
        let ring = match kv.and_then(|kv| Some((kv, self.ring.get(&options.kid, kv)?))) {
            Some((kv, key)) => KeyRing::single(&options.kid, kv, Key::from_bytes(key.expose_secret()))?,
            None => KeyRing::new(),
        };
        // 128 random bits: nobody can predict (and so take) our op ids.
        let prefix =
            format!("{:016x}{:016x}", crate::crypto::rng::random_u64()?, crate::crypto::rng::random_u64()?);
        let doc = DocClient::new(
            doc_id,
            options.presence,
            ring,
            &options.kid,
            options.key_hint.clone(),
            &prefix,
            options.config,
        )?;
        Ok(Box::new(doc))
    }
}

/// An open document ([`ClientMachine::document`]): edits and reads. What
/// an edit produces goes out at the machine's next `poll_*`.
#[derive(Debug)]
pub struct Document<'a> {
    doc: &'a mut DocClient,
}

impl Document<'_> {
    /// True once joined and not diverged.
    pub fn is_ready(&self) -> bool {
        self.doc.is_ready()
    }

    /// The last sequence number integrated.
    pub fn seq(&self) -> u64 {
        self.doc.seq()
    }

    /// The document as this user sees it.
    pub fn view(&self) -> Result<Delta, DocClientError> {
        self.doc.view()
    }

    /// The view and its version (to edit at with [`Document::edit_at`]).
    pub fn versioned_view(&self) -> Result<(Delta, u64), DocClientError> {
        self.doc.versioned_view()
    }

    /// The canonical document at [`Document::seq`].
    pub fn canonical(&self) -> Option<&Delta> {
        self.doc.canonical()
    }

    /// True while local edits await acknowledgement.
    pub fn has_pending(&self) -> bool {
        self.doc.has_pending()
    }

    /// A local change to the current view; returns the view's version
    /// after it (see [`DocClient::local_edit`]).
    pub fn edit(&mut self, change: Delta) -> Result<u64, DocClientError> {
        self.doc.local_edit(change)
    }

    /// A local change to the view at `version` (see [`DocClient::edit_at`]).
    pub fn edit_at(&mut self, version: u64, change: Delta) -> Result<u64, DocClientError> {
        self.doc.edit_at(version, change)
    }

    /// Undoes this user's newest change (it arrives as a `RemoteChange`).
    pub fn undo(&mut self) -> Result<bool, DocClientError> {
        self.doc.undo()
    }

    /// Redoes the newest undone change.
    pub fn redo(&mut self) -> Result<bool, DocClientError> {
        self.doc.redo()
    }

    /// Resubmits the in-flight op now.
    pub fn resubmit(&mut self) {
        self.doc.resubmit();
    }

    /// Shares this user's selection.
    pub fn cursor(&mut self, index: usize, length: usize) -> Result<(), DocClientError> {
        self.doc.cursor(index, length)
    }

    /// After `Diverged`: reloads the document from the server.
    pub fn restart(&mut self) {
        self.doc.restart();
    }
}

#[cfg(test)]
mod tests;
