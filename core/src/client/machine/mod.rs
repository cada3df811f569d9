//! [`ClientMachine`]: the whole sealcast client — link, keys, sealed
//! events, held messages and documents — as one sans-IO state machine
//! that every platform drives (the tokio driver in [`crate::net`], the
//! uniffi bindings through it, a browser over pusher-js).

mod documents;
mod event;
mod history;
mod inbound;
mod key_answers;
mod scroll_back;
mod sends;

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

pub use documents::Document;
pub use event::{CommandError, DocOptions, Event, KeyError, MachineConfig, NotSentReason};
pub use scroll_back::{HistoryItem, HistoryRead};

use super::auth::{AuthRefusal, ChannelAuth};
use super::held::{Held, Inbound, PendingSend};
use super::link::{ExternalLink, Link, Transmit};
use super::presence::Member;
use super::session::{ClientEvent, ClientSession, ConnectionState};
use super::streams::{CatchUpOutcome, Streams};
use crate::crypto::{ClientRng, Key};
use crate::doc::DocSync;
use crate::keys::{KeyGrant, KeyPolicy, KeyRefusal, KeyRequest, Keys};
use crate::protocol::history::Position;
use crate::time::Instant;

/// The event carrying sealed presence state
/// ([`ClientMachine::send_presence_state`]) and the event of
/// [`ClientMachine::send_chat`] (their home is the protocol).
pub use crate::protocol::client::{CHAT_EVENT, PRESENCE_STATE_EVENT};

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
    /// The one owner of keys: rings, questions to the app, refusals.
    keys: Keys,
    /// Open documents by document id.
    docs: BTreeMap<String, Box<DocSync>>,
    /// Received events waiting for a key (in order per channel).
    inbound: Held<Inbound>,
    /// Sealed events waiting for the key to seal with.
    sends: Held<PendingSend>,
    /// Channels with history: positions and catch-ups.
    streams: Streams,
    /// Catch-up outcomes waiting for their channel's held events.
    outcomes: Vec<(String, CatchUpOutcome)>,
    /// Pages the app asked for, waiting for keys.
    waiting_pages: VecDeque<scroll_back::WaitingPage>,
    /// The app's history reads so far (their request ids).
    history_reads: u64,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    /// The newest time passed in.
    now: Instant,
}

impl ClientMachine {
    /// A machine with its own Pusher link (not connecting until
    /// [`ClientMachine::connect`]).
    pub fn new(config: MachineConfig, now: Instant) -> ClientMachine {
        let mut rng = ClientRng::new(config.test_rng_seed);
        let mut session = config.session.clone();
        // Without the OS's randomness the configured seed stays: sealing
        // reports the failure when it matters.
        if let Ok(seed) = rng.u64() {
            session.backoff = session.backoff.with_seed(seed);
        }
        let link = Link::Own(ClientSession::new(session));
        ClientMachine::with_link(config, link, rng, now)
    }

    /// A machine over an external Pusher transport: the app's library owns
    /// the connection, subscriptions and authorization. The app reports
    /// channels subscribed and lost, feeds their events, and carries out
    /// `Subscribe`, `Unsubscribe` and `Trigger` transmits.
    pub fn external(config: MachineConfig, now: Instant) -> ClientMachine {
        let rng = ClientRng::new(config.test_rng_seed);
        ClientMachine::with_link(config, Link::External(ExternalLink::default()), rng, now)
    }

    fn with_link(config: MachineConfig, link: Link, rng: ClientRng, now: Instant) -> ClientMachine {
        let policy = KeyPolicy {
            max_asked: config.max_held,
            timeout: config.key_timeout,
            retry_after: config.key_retry_after,
        };
        let mut machine = ClientMachine {
            inbound: Held::new(config.max_held),
            sends: Held::new(config.max_held),
            streams: Streams::new(config.max_held, config.catch_up_timeout),
            outcomes: Vec::new(),
            waiting_pages: VecDeque::new(),
            history_reads: 0,
            config,
            link,
            keys: Keys::new(policy, rng),
            docs: BTreeMap::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            now,
        };
        machine.tick(now);
        machine
    }

    /// The time is `now`.
    fn tick(&mut self, now: Instant) {
        self.now = now;
        self.keys.tick(now);
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
            Some(doc) => Ok(Document { doc, keys: self.keys.for_doc(doc_id) }),
            None => Err(CommandError::NoDocument(doc_id.to_owned())),
        }
    }

    // ---- input: the own link ----

    /// The socket opened (after `Transmit::Connect`).
    pub fn handle_open(&mut self, now: Instant) {
        self.tick(now);
        if let Link::Own(session) = &mut self.link {
            session.handle_open(now);
        }
    }

    /// A text frame from the server.
    pub fn handle_frame(&mut self, now: Instant, text: &str) {
        self.tick(now);
        if let Link::Own(session) = &mut self.link {
            session.handle_frame(text, now);
        }
    }

    /// The socket closed, or failed to open (`code`: its close code).
    pub fn handle_closed(&mut self, now: Instant, code: Option<u16>, reason: &str) {
        self.tick(now);
        if let Link::Own(session) = &mut self.link {
            session.handle_closed(code, reason, now);
        }
    }

    // ---- input: an external transport ----

    /// The app's library subscribed `channel` (pusher-js:
    /// `pusher:subscription_succeeded`).
    pub fn handle_subscribed(&mut self, now: Instant, channel: &str) {
        self.handle_subscribed_at(now, channel, None);
    }

    /// [`ClientMachine::handle_subscribed`] with where the channel's stream
    /// stood (the `offset` and `epoch` of `subscription_succeeded`, on a
    /// channel with history: docs/history.md).
    pub fn handle_subscribed_at(&mut self, now: Instant, channel: &str, head: Option<Position>) {
        self.tick(now);
        if self.link.external_subscribed(channel) {
            self.on_subscribed(channel.to_owned(), head);
        }
    }

    /// The app's library lost `channel`, or every channel (`None`: the
    /// connection dropped; it resubscribes by itself).
    pub fn handle_unsubscribed(&mut self, now: Instant, channel: Option<&str>) {
        self.tick(now);
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
        self.handle_channel_event_at(now, channel, event, data, user_id, None);
    }

    /// [`ClientMachine::handle_channel_event`] with the event's stream
    /// position (its frame's `offset` and `epoch`, on a channel with
    /// history), so missed events are caught up (docs/history.md).
    pub fn handle_channel_event_at(
        &mut self,
        now: Instant,
        channel: &str,
        event: &str,
        data: Value,
        user_id: Option<String>,
        position: Option<Position>,
    ) {
        self.tick(now);
        if let Link::External(_) = self.link {
            let channel = Some(channel.to_owned());
            self.on_inbound(Inbound { channel, event: event.to_owned(), data, user_id, position });
        }
    }

    // ---- input: both ----

    /// Time passed (call at `poll_timeout`): pings, reconnects, document
    /// retries, and the end of waits for keys.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        if let Link::Own(session) = &mut self.link {
            session.handle_timeout(now);
        }
        self.streams.handle_timeout(now);
        let Self { docs, keys, .. } = self;
        for (doc_id, doc) in docs.iter_mut() {
            doc.handle_timeout(&mut keys.for_doc(doc_id), now);
        }
        // A question the app did not answer in time: a document asks
        // again (it cannot go on without an answer); held events and
        // waiting sends give up below, by their own age.
        for request in self.keys.expire() {
            if let Some(doc_id) = &request.doc_id
                && let Some(doc) = self.docs.get_mut(doc_id)
            {
                doc.keys_changed(&mut self.keys.for_doc(doc_id));
            }
        }
        let timeout = self.config.key_timeout;
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
        self.tick(now);
        if let Err(KeyRefusal::Unavailable(_)) = result {
            return;
        }
        self.keys.answered(request);
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
        self.tick(now);
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
        self.streams.unsubscribed(channel);
    }

    /// Adds a key version (e.g. after the app rotated `kid`); sealing uses
    /// the newest version. Held events it opens are delivered.
    pub fn add_key(&mut self, kid: &str, kv: u32, key: Key) -> Result<(), CommandError> {
        self.keys.app_ring_mut().insert(kid, kv, key)?;
        self.release(None);
        self.flush_sends();
        Ok(())
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
        let held = [self.inbound.oldest(), self.sends.oldest(), self.oldest_waiting_page()]
            .into_iter()
            .flatten()
            .map(|at| at + timeout);
        let questions = self.keys.next_expiry();
        let streams = self.streams.poll_timeout();
        link.into_iter().chain(docs).chain(held).chain(questions).chain(streams).min()
    }

    // ---- inside ----

    /// Moves what the sub-machines produced to the machine's queues: link
    /// events (routing channel events to documents or opening them),
    /// documents' messages and events, then the link's transmits.
    fn pump(&mut self) {
        self.drive_streams();
        while let Some(event) = match &mut self.link {
            Link::Own(session) => session.poll_event(),
            Link::External(_) => None,
        } {
            self.on_link_event(event);
            self.drive_streams();
        }
        let Self { docs, link, events, keys, .. } = self;
        for (doc_id, doc) in docs.iter_mut() {
            while let Some(message) = doc.poll_transmit() {
                // Unsubscribed: dropped; the rejoin after resubscribing
                // resubmits what matters.
                if link.is_subscribed(doc.channel()) {
                    let _ = link.send(doc.channel(), message.event, message.data);
                }
            }
            while let Some(event) = doc.poll_event() {
                events.push_back(Event::Document { doc_id: doc_id.clone(), event });
            }
        }
        while let Some(request) = keys.poll_question() {
            events.push_back(Event::NeedKey(request));
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
            ClientEvent::Subscribed { channel, position } => return self.on_subscribed(channel, position),
            ClientEvent::Message { channel, event, data, user_id, position } => {
                return self.on_inbound(Inbound { channel, event, data, user_id, position });
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

    fn on_subscribed(&mut self, channel: String, head: Option<Position>) {
        if let Some((doc, keys)) = self.doc_on(&channel) {
            doc.join(&keys);
        }
        self.events.push_back(Event::Subscribed { channel: channel.clone() });
        self.streams.subscribed(&channel, head, self.now);
    }
}

#[cfg(test)]
mod tests;
