//! A deterministic in-memory world for [`ClientMachine`]s (quinn-proto's
//! `tests/util.rs` `Pair` is the model): machines ↔ an in-memory relay that
//! speaks the Pusher protocol and sequences documents, with controllable
//! time, per-connection latency (so frames reorder across connections,
//! never within one, as over TCP), link loss, and an app that answers the
//! machines' requests at once, late, or never. No sockets, no threads, no
//! sleeping: a whole editing session runs in milliseconds, the same way for
//! the same seed.
//!
//! The relay parses with the real protocol types ([`ClientFrame`],
//! [`Command`], [`DocRequest`]) and encodes with [`crate::protocol::server`]
//! and [`DocReply`]; it is a stand-in for `sealcast serve` (which the
//! end-to-end tests run for real), not a second server: no limits, no
//! compaction, one snapshot per document.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::time::Instant;

use serde_json::Value;
use serde_json::value::RawValue;

use super::{ChannelAuth, ClientMachine, Event, KeyGrant, KeyRefusal, KeyRequest, MachineConfig, Transmit};
use crate::crypto::Key;
// The sequencer crate links the non-test build of this crate: its types
// cross into the harness through primitives and the wire form only.
use crate::protocol::client::Command;
use crate::protocol::doc::{
    self, Ack, DocError, DocErrorCode, DocReply, DocRequest, SequencedOp, SnapshotStored,
};
use crate::protocol::{ChannelKind, ClientFrame, server};
use sealcast_sequencer::{
    AppendOutcome, DocId, DocLimits, DocStore, JoinQuery, MemoryStore, Snapshot, StoreError, read_join,
};

/// A small deterministic PRNG (xorshift64*), seeded per test and printed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How the app answers a client's `NeedKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyAnswers {
    /// At once.
    Now,
    /// After this long.
    After(Duration),
    /// Never (the request is dropped).
    Never,
}

/// One app: its machine, the keys its provider knows, what it received.
pub(crate) struct Node {
    pub(crate) machine: ClientMachine,
    pub(crate) user: String,
    /// The provider's keys by (kid, kv).
    pub(crate) keys: BTreeMap<(String, u32), [u8; 32]>,
    pub(crate) key_answers: KeyAnswers,
    /// Key answers scheduled for later.
    late_keys: Vec<(Instant, KeyRequest)>,
    /// Every event the app received (requests excluded), in order.
    pub(crate) events: Vec<Event>,
    /// The provider's calls.
    pub(crate) key_calls: Vec<KeyRequest>,
    /// The relay connection, while one is open.
    conn: Option<usize>,
    /// Frames to this node: (when, connection, text).
    inbox: VecDeque<(Instant, usize, String)>,
    /// One-way latency of this node's link.
    pub(crate) latency: Duration,
    /// External transport: the harness plays the app's Pusher library.
    external: Option<Library>,
}

/// The harness as pusher-js: its connection and the channels it keeps
/// subscribed (again after every reconnect).
#[derive(Debug, Default)]
struct Library {
    socket_id: Option<String>,
    channels: Vec<String>,
}

/// A relay connection.
#[derive(Debug, Default)]
struct Conn {
    node: usize,
    socket_id: String,
    open: bool,
    /// Channel → this connection's presence user id there.
    channels: BTreeMap<String, Option<String>>,
}

/// The world: nodes, the relay, and the clock.
pub(crate) struct World {
    pub(crate) now: Instant,
    pub(crate) nodes: Vec<Node>,
    conns: Vec<Conn>,
    /// The documents, in the reference store of the server's contract.
    pub(crate) store: MemoryStore,
    pub(crate) rng: Rng,
    /// Frames each node sent, as the relay saw them (a canary looks here).
    pub(crate) wire: Vec<String>,
    /// When set, the app's provider issues document session keys (shared
    /// by every node, as one app server): a document key request without
    /// hint mints a new session (hint and random key), one with a hint
    /// gets that session's key. Otherwise each node's `keys` answer.
    pub(crate) sessions: Option<BTreeMap<String, [u8; 32]>>,
}

const ACTIVITY_TIMEOUT_SECS: u64 = 120;

impl World {
    pub(crate) fn new(seed: u64) -> World {
        World {
            now: Instant::now(),
            nodes: Vec::new(),
            conns: Vec::new(),
            store: MemoryStore::new(DocLimits::default()),
            rng: Rng::new(seed),
            wire: Vec::new(),
            sessions: None,
        }
    }

    /// Adds a connected-to-be node with its own link; returns its index.
    pub(crate) fn add(&mut self, user: &str, keys: &[(&str, u32, u8)]) -> usize {
        self.add_with(user, keys, MachineConfig::default())
    }

    /// [`World::add`] with a configuration.
    pub(crate) fn add_with(&mut self, user: &str, keys: &[(&str, u32, u8)], config: MachineConfig) -> usize {
        let mut machine = ClientMachine::new(config, self.now);
        machine.connect();
        self.push_node(machine, user, keys, None)
    }

    /// Adds a node whose machine runs over an external transport (the
    /// harness plays the app's Pusher library).
    pub(crate) fn add_external(&mut self, user: &str, keys: &[(&str, u32, u8)]) -> usize {
        let machine = ClientMachine::external(MachineConfig::default(), self.now);
        let node = self.push_node(machine, user, keys, Some(Library::default()));
        self.open_conn(node);
        node
    }

    fn push_node(
        &mut self,
        machine: ClientMachine,
        user: &str,
        keys: &[(&str, u32, u8)],
        external: Option<Library>,
    ) -> usize {
        self.nodes.push(Node {
            machine,
            user: user.to_owned(),
            keys: keys.iter().map(|(kid, kv, byte)| (((*kid).to_owned(), *kv), [*byte; 32])).collect(),
            key_answers: KeyAnswers::Now,
            late_keys: Vec::new(),
            events: Vec::new(),
            key_calls: Vec::new(),
            conn: None,
            inbox: VecDeque::new(),
            latency: Duration::from_millis(20),
            external,
        });
        self.nodes.len() - 1
    }

    /// Runs until nothing is left to do before `now + span`, then sets the
    /// clock there.
    pub(crate) fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        for _ in 0..1_000_000 {
            self.settle();
            match self.next_wakeup().filter(|at| *at <= end) {
                Some(at) => {
                    self.now = self.now.max(at);
                    self.deliver_due();
                }
                None => break,
            }
        }
        self.now = end;
        self.deliver_due();
        self.settle();
    }

    /// Drains every node's outputs until quiet (no time passes).
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut busy = false;
            for node in 0..self.nodes.len() {
                busy |= self.drain(node);
            }
            if !busy {
                return;
            }
        }
        panic!("the world does not settle");
    }

    fn next_wakeup(&mut self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for node in &mut self.nodes {
            let candidates = [
                node.inbox.front().map(|(at, _, _)| *at),
                node.machine.poll_timeout(),
                node.late_keys.iter().map(|(at, _)| *at).min(),
            ];
            for at in candidates.into_iter().flatten() {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Delivers due frames, timeouts and late key answers.
    fn deliver_due(&mut self) {
        let now = self.now;
        for index in 0..self.nodes.len() {
            while self.nodes[index].inbox.front().is_some_and(|(at, _, _)| *at <= now) {
                let Some((_, conn, text)) = self.nodes[index].inbox.pop_front() else { break };
                if self.nodes[index].conn == Some(conn) {
                    self.receive(index, &text);
                }
            }
            let node = &mut self.nodes[index];
            if node.machine.poll_timeout().is_some_and(|at| at <= now) {
                node.machine.handle_timeout(now);
            }
            let due: Vec<KeyRequest> = {
                let (due, later) = node.late_keys.drain(..).partition(|(at, _)| *at <= now);
                node.late_keys = later;
                due.into_iter().map(|(_, request)| request).collect::<Vec<_>>()
            };
            for request in due {
                let result = self.answer_key(index, &request);
                self.nodes[index].machine.handle_key(now, &request, result);
            }
        }
    }

    /// A frame reaches node `index`: its own link takes it as is; an
    /// external transport (the harness as pusher-js) unwraps it first.
    fn receive(&mut self, index: usize, text: &str) {
        let now = self.now;
        let node = &mut self.nodes[index];
        let Some(library) = &mut node.external else {
            return node.machine.handle_frame(now, text);
        };
        let frame: Value = serde_json::from_str(text).unwrap_or_default();
        let event = frame["event"].as_str().unwrap_or_default();
        let channel = frame["channel"].as_str().unwrap_or_default();
        let data = match &frame["data"] {
            Value::String(inner) => serde_json::from_str(inner).unwrap_or(Value::String(inner.clone())),
            other => other.clone(),
        };
        match event {
            "pusher:connection_established" => {
                library.socket_id = data["socket_id"].as_str().map(str::to_owned);
                for channel in library.channels.clone() {
                    self.library_subscribe(index, channel);
                }
            }
            "pusher_internal:subscription_succeeded" => node.machine.handle_subscribed(now, channel),
            e if e.starts_with("pusher") => {}
            _ => {
                let user_id = frame["user_id"].as_str().map(str::to_owned);
                node.machine.handle_channel_event(now, channel, event, data, user_id);
            }
        }
    }

    /// Carries out one node's transmits and events; true if there were any.
    fn drain(&mut self, index: usize) -> bool {
        let mut busy = false;
        while let Some(transmit) = self.nodes[index].machine.poll_transmit() {
            busy = true;
            self.transmit(index, transmit);
        }
        while let Some(event) = self.nodes[index].machine.poll_event() {
            busy = true;
            self.event(index, event);
        }
        busy
    }

    fn transmit(&mut self, index: usize, transmit: Transmit) {
        match transmit {
            Transmit::Connect => self.open_conn(index),
            Transmit::Frame(text) => self.relay_frame(index, &text),
            Transmit::Close => self.close_conn(index, false),
            Transmit::Subscribe(channel) => {
                if let Some(library) = &mut self.nodes[index].external {
                    library.channels.push(channel.clone());
                    if library.socket_id.is_some() {
                        self.library_subscribe(index, channel);
                    }
                }
            }
            Transmit::Unsubscribe(channel) => {
                if let Some(library) = &mut self.nodes[index].external {
                    library.channels.retain(|c| *c != channel);
                }
                let command = Command::Unsubscribe(crate::protocol::UnsubscribeData { channel });
                self.relay_frame(index, &command.encode());
            }
            Transmit::Trigger { channel, event, data } => {
                self.relay_frame(index, &Command::ClientEvent { event, channel, data }.encode());
            }
        }
    }

    fn event(&mut self, index: usize, event: Event) {
        let now = self.now;
        match event {
            Event::NeedAuthorization { socket_id, channel } => {
                let auth = self.authorize(index, &socket_id, &channel);
                self.nodes[index].machine.handle_authorization(&socket_id, &channel, Ok(auth));
            }
            Event::NeedKey(request) => {
                let node = &mut self.nodes[index];
                node.key_calls.push(request.clone());
                match node.key_answers {
                    KeyAnswers::Now => {
                        let result = self.answer_key(index, &request);
                        self.nodes[index].machine.handle_key(now, &request, result);
                    }
                    KeyAnswers::After(wait) => node.late_keys.push((now + wait, request)),
                    KeyAnswers::Never => {}
                }
            }
            event => self.nodes[index].events.push(event),
        }
    }

    fn authorize(&self, index: usize, socket_id: &str, channel: &str) -> ChannelAuth {
        let user = &self.nodes[index].user;
        let channel_data = ChannelKind::of(channel)
            .is_presence()
            .then(|| serde_json::json!({"user_id": user, "user_info": {"name": user}}).to_string());
        let auth =
            crate::protocol::auth::channel_auth("key", "secret", socket_id, channel, channel_data.as_deref());
        ChannelAuth { auth, channel_data }
    }

    // ---- the link ----

    fn open_conn(&mut self, index: usize) {
        self.close_conn(index, false);
        let conn = self.conns.len();
        let socket_id = format!("{}.{}", conn + 1, index + 1);
        self.conns.push(Conn { node: index, socket_id: socket_id.clone(), open: true, ..Conn::default() });
        self.nodes[index].conn = Some(conn);
        if let Some(library) = &mut self.nodes[index].external {
            library.socket_id = None;
        } else {
            self.nodes[index].machine.handle_open(self.now);
        }
        self.queue_frame(conn, server::connection_established(&socket_id, ACTIVITY_TIMEOUT_SECS));
    }

    /// Cuts node `index`'s connection (frames in flight are lost). With
    /// `tell`, the node notices at once (a reset); otherwise it was asked
    /// to close.
    fn close_conn(&mut self, index: usize, tell: bool) {
        let Some(conn) = self.nodes[index].conn.take() else { return };
        self.conns[conn].open = false;
        let channels: Vec<(String, Option<String>)> =
            std::mem::take(&mut self.conns[conn].channels).into_iter().collect();
        for (channel, user) in channels {
            if let Some(user) = user {
                self.broadcast(&channel, conn, &server::member_removed(&channel, &user));
            }
        }
        if tell {
            let now = self.now;
            let node = &mut self.nodes[index];
            match node.external {
                Some(_) => {
                    node.machine.handle_unsubscribed(now, None);
                    // pusher-js reconnects and resubscribes by itself.
                    self.open_conn(index);
                }
                None => node.machine.handle_closed(now, None, "connection reset"),
            }
        }
    }

    /// Cuts node `index`'s link as a network failure would.
    pub(crate) fn cut(&mut self, index: usize) {
        self.close_conn(index, true);
    }

    /// The harness as pusher-js subscribes `channel` (authorizing it the
    /// way the app's auth endpoint would).
    fn library_subscribe(&mut self, index: usize, channel: String) {
        let Some(socket_id) = self.nodes[index].external.as_ref().and_then(|l| l.socket_id.clone()) else {
            return;
        };
        let auth = self.authorize(index, &socket_id, &channel);
        let data = crate::protocol::SubscribeData {
            channel,
            auth: Some(auth.auth),
            channel_data: auth.channel_data,
        };
        self.relay_frame(index, &Command::Subscribe(data).encode());
    }

    fn relay_frame(&mut self, index: usize, text: &str) {
        let Some(conn) = self.nodes[index].conn else { return };
        self.wire.push(text.to_owned());
        let Ok(frame) = ClientFrame::parse(text.as_bytes()) else { return };
        match Command::parse(&frame) {
            Ok(Some(command)) => self.command(conn, command),
            Ok(None) => self.doc_request(conn, &frame),
            Err(_) => {}
        }
    }

    fn command(&mut self, conn: usize, command: Command) {
        match command {
            Command::Subscribe(data) => {
                let user = data.channel_data.as_deref().and_then(|d| {
                    serde_json::from_str::<Value>(d).ok()?["user_id"].as_str().map(str::to_owned)
                });
                let channel = data.channel.clone();
                self.conns[conn].channels.insert(channel.clone(), user.clone());
                let reply = if ChannelKind::of(&channel).is_presence() {
                    let members: Vec<(String, String)> = self
                        .conns
                        .iter()
                        .filter(|c| c.open)
                        .filter_map(|c| c.channels.get(&channel).cloned().flatten())
                        .map(|u| {
                            let info = serde_json::json!({"name": u}).to_string();
                            (u, info)
                        })
                        .collect();
                    let raws: Vec<(String, Box<RawValue>)> = members
                        .into_iter()
                        .map(|(u, info)| (u, RawValue::from_string(info).unwrap_or_default()))
                        .collect();
                    let iter = raws.iter().map(|(u, info)| (u.as_str(), Some(info.as_ref())));
                    server::presence_subscription_succeeded(&channel, iter.collect::<Vec<_>>().into_iter())
                } else {
                    server::subscription_succeeded(&channel)
                };
                self.queue_frame(conn, reply);
                if let Some(user) = user {
                    let info = RawValue::from_string(serde_json::json!({"name": user}).to_string()).ok();
                    self.broadcast(&channel, conn, &server::member_added(&channel, &user, info.as_deref()));
                }
            }
            Command::Unsubscribe(data) => {
                if let Some(Some(user)) = self.conns[conn].channels.remove(&data.channel) {
                    self.broadcast(&data.channel, conn, &server::member_removed(&data.channel, &user));
                }
            }
            Command::Ping => self.queue_frame(conn, server::pong()),
            Command::Pong | Command::Signin(_) => {}
            Command::ClientEvent { event, channel, data } => {
                let Some(user) = self.conns[conn].channels.get(&channel).cloned() else { return };
                let raw = RawValue::from_string(data.to_string()).ok();
                let frame = server::channel_event(&event, &channel, raw.as_deref(), user.as_deref());
                self.broadcast(&channel, conn, &frame);
            }
        }
    }

    /// A document request, answered as the server's sequencer does, on the
    /// reference [`MemoryStore`].
    fn doc_request(&mut self, conn: usize, frame: &ClientFrame) {
        let Ok(request) = DocRequest::parse(frame) else { return };
        let Some(channel) = frame.channel.clone() else { return };
        let Some(doc_id) = doc::doc_id_of(&channel) else { return };
        let Some(user) = self.conns[conn].channels.get(&channel).cloned() else { return };
        let id = DocId::new("app", doc_id);
        let uploader = user.clone().unwrap_or_else(|| self.conns[conn].socket_id.clone());
        let refuse = |err: StoreError, op_id: Option<String>| {
            let request = Some(request.event().to_owned());
            DocReply::Error(DocError {
                code: DocErrorCode::parse(err.code().as_str()),
                message: err.to_string(),
                op_id,
                request,
            })
        };
        let reply = match &request {
            DocRequest::Join(join) => {
                let query = JoinQuery {
                    since: join.since,
                    op_id: join.op_id.as_deref(),
                    from_snapshot: join.snapshot,
                    claim: join.key_hint.as_deref(),
                };
                match read_join(&self.store, &id, query, usize::MAX) {
                    // Through its wire form, as the real server sends it.
                    Ok(state) => DocReply::State(
                        serde_json::to_value(state.into_wire())
                            .and_then(serde_json::from_value)
                            .expect("the store's join state has the wire's JSON form"),
                    ),
                    Err(err) => refuse(err, None),
                }
            }
            DocRequest::Submit(submit) => {
                match self.store.append(&id, submit.base, &submit.op_id, &submit.payload, user.as_deref()) {
                    Ok(AppendOutcome::Appended(seq)) => {
                        let op = SequencedOp {
                            seq,
                            base: submit.base,
                            op_id: submit.op_id.clone(),
                            payload: submit.payload.clone(),
                            user_id: user,
                        };
                        self.broadcast(&channel, conn, &DocReply::Op(op).encode(&channel));
                        DocReply::Ack(Ack { op_id: submit.op_id.clone(), seq, duplicate: false })
                    }
                    Ok(AppendOutcome::Duplicate(seq)) => {
                        DocReply::Ack(Ack { op_id: submit.op_id.clone(), seq, duplicate: true })
                    }
                    Err(err) => refuse(err, Some(submit.op_id.clone())),
                }
            }
            DocRequest::Digest(digest) => {
                return self.broadcast(&channel, conn, &DocReply::Digest(digest.clone()).encode(&channel));
            }
            DocRequest::Snapshot(upload) => {
                let snapshot = Snapshot {
                    seq: upload.seq,
                    payload: upload.payload.clone(),
                    key_hint: upload.key_hint.clone(),
                };
                match self.store.put_snapshot(&id, &snapshot, &uploader) {
                    Ok(()) => DocReply::SnapshotStored(SnapshotStored { seq: upload.seq }),
                    Err(err) => refuse(err, None),
                }
            }
        };
        self.queue_frame(conn, reply.encode(&channel));
    }

    /// Sends `frame` to every open connection on `channel` but `except`.
    fn broadcast(&mut self, channel: &str, except: usize, frame: &str) {
        let targets: Vec<usize> = (0..self.conns.len())
            .filter(|&c| c != except && self.conns[c].open && self.conns[c].channels.contains_key(channel))
            .collect();
        for conn in targets {
            self.queue_frame(conn, frame.to_owned());
        }
    }

    /// Queues `frame` on connection `conn`, after the node's latency (with
    /// jitter), never before a frame sent earlier on it.
    fn queue_frame(&mut self, conn: usize, frame: String) {
        let index = self.conns[conn].node;
        let jitter = Duration::from_millis(self.rng.below(10));
        let node = &mut self.nodes[index];
        let mut at = self.now + node.latency + jitter;
        if let Some((last, _, _)) = node.inbox.back() {
            at = at.max(*last);
        }
        node.inbox.push_back((at, conn, frame));
    }
}

impl World {
    /// The app's provider answering node `index` (see [`World::sessions`]).
    fn answer_key(&mut self, index: usize, request: &KeyRequest) -> Result<KeyGrant, KeyRefusal> {
        if request.doc_id.is_some()
            && let Some(sessions) = &mut self.sessions
        {
            return match &request.key_hint {
                Some(hint) => {
                    let key = sessions
                        .get(hint)
                        .ok_or_else(|| KeyRefusal::Refused(format!("no session {hint}")))?;
                    Ok(KeyGrant::new(1, Key::from_bytes(key)))
                }
                None => {
                    let hint = format!("session-{}", sessions.len() + 1);
                    let mut key = [0u8; 32];
                    for chunk in key.chunks_mut(8) {
                        chunk.copy_from_slice(&self.rng.next().to_le_bytes());
                    }
                    sessions.insert(hint.clone(), key);
                    Ok(KeyGrant { kv: 1, key: Key::from_bytes(&key), key_hint: Some(hint) })
                }
            };
        }
        node_key(&self.nodes[index].keys, request)
    }
}

fn node_key(keys: &BTreeMap<(String, u32), [u8; 32]>, request: &KeyRequest) -> Result<KeyGrant, KeyRefusal> {
    let kv = match request.kv {
        Some(kv) => kv,
        None => keys
            .keys()
            .filter(|(kid, _)| *kid == request.kid)
            .map(|(_, kv)| *kv)
            .max()
            .ok_or_else(|| KeyRefusal::Refused(format!("no key {}", request.kid)))?,
    };
    let bytes = keys
        .get(&(request.kid.clone(), kv))
        .ok_or_else(|| KeyRefusal::Refused(format!("no key {} v{kv}", request.kid)))?;
    Ok(KeyGrant::new(kv, Key::from_bytes(bytes)))
}
