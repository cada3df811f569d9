//! The client over a real WebSocket (feature `net`): [`Client`] drives a
//! [`ClientSession`] with tokio and fastwebsockets (`wss://` through
//! rustls with the webpki roots, plus any private roots the app adds),
//! opens sealed events before the app sees them, and runs encrypted
//! documents ([`DocClient`]) on their channels.
//!
//! Every method returns at once; results and incoming traffic arrive as
//! [`Event`]s on the receiver [`Client::start`] returns. The app supplies
//! an [`Authorizer`] (it calls its own backend to sign channel access) and
//! a [`KeyProvider`] (it hands out keys by id, version and key hint). Both
//! are called on tokio's blocking pool, except when sealing needs a key
//! the ring lacks: then the provider runs on the calling thread.

mod socket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, mpsc};

pub use socket::Endpoint;
use socket::{Incoming, Writer};

use crate::client::sealed::{open_event, seal_event};
use crate::client::{
    ChannelAuth, ClientError, ClientEvent, ClientSession, ConnectionState, Member, SessionConfig,
};
use crate::crypto::{CryptoError, Key, KeyRing, Scope};
use crate::doc::{CURSOR_EVENT, DocClient, DocClientError, DocClientEvent, DocConfig};
use crate::ot::Delta;
use crate::protocol::doc::{DocReply, doc_id_of};

/// The event carrying sealed presence state ([`Client::send_presence_state`]).
pub const PRESENCE_STATE_EVENT: &str = "client-presence-state";

/// Signs channel access: the app calls its own auth endpoint.
pub trait Authorizer: Send + Sync {
    /// The authorization for `channel` on the connection `socket_id`.
    fn authorize(&self, socket_id: &str, channel: &str) -> Result<ChannelAuth, String>;
}

/// What the client asks the app's key provider for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    /// Key id.
    pub kid: String,
    /// The version an envelope names; `None` asks for the current one (to
    /// seal with).
    pub kv: Option<u32>,
    /// The document, for document keys.
    pub doc_id: Option<String>,
    /// The document's key hint: `None` for a document without a snapshot
    /// (the provider should issue a new key), else the hint stored with it.
    pub key_hint: Option<String>,
}

/// A key the provider hands out.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    /// Its version.
    pub kv: u32,
    /// The key.
    pub key: Key,
}

/// Hands out keys; results are cached in the client's key ring, so the
/// provider is asked once per (kid, kv).
pub trait KeyProvider: Send + Sync {
    /// The key for `request`.
    fn key(&self, request: &KeyRequest) -> Result<KeyGrant, String>;
}

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://HOST:PORT` or `wss://HOST[:PORT]`.
    pub url: String,
    /// The app key.
    pub app_key: String,
    /// Pings, timeouts, backoff.
    pub session: SessionConfig,
    /// Extra trusted root certificates (DER) for `wss://`.
    pub extra_roots: Vec<Vec<u8>>,
    /// Longest time to open a socket.
    pub connect_timeout: Duration,
}

impl ClientConfig {
    /// Defaults for `url` and `app_key`.
    pub fn new(url: &str, app_key: &str) -> ClientConfig {
        ClientConfig {
            url: url.to_owned(),
            app_key: app_key.to_owned(),
            session: SessionConfig::default(),
            extra_roots: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Something for the app.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The connection state changed.
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
    /// A `pusher:error`, or a problem the client hit (key provider failed…).
    Error {
        /// Pusher error code, if any.
        code: Option<u16>,
        /// Message.
        message: String,
    },
    /// Something happened to an open document.
    Document {
        /// The document.
        doc_id: String,
        /// What.
        event: DocClientEvent,
    },
}

/// Why a call was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The session refused it (not connected, not subscribed, bad name).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Sealing failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The document refused it.
    #[error(transparent)]
    Document(#[from] DocClientError),
    /// The key provider failed.
    #[error("key provider: {0}")]
    KeyProvider(String),
    /// No such open document.
    #[error("document {0} is not open")]
    NoDocument(String),
    /// Bad configuration (URL, certificates).
    #[error("{0}")]
    Config(String),
}

struct Inner {
    session: ClientSession,
    ring: KeyRing,
    /// Open documents by channel name.
    docs: HashMap<String, DocClient>,
    stopped: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Notify,
    authorizer: Arc<dyn Authorizer>,
    keys: Arc<dyn KeyProvider>,
    /// Taken by [`Client::close`], which ends the app's event stream.
    events: Mutex<Option<mpsc::UnboundedSender<Event>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: Event) {
        if let Some(events) = &*self.events.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = events.send(event); // the app dropped its receiver: fine
        }
    }
}

/// A connection to a Pusher-protocol server. Dropping it disconnects;
/// [`Client::close`] also waits until the driver has stopped.
pub struct Client {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Client {
    /// Starts a client on `runtime` (it connects at once). Events arrive on
    /// the returned receiver.
    pub fn start(
        config: ClientConfig,
        authorizer: Arc<dyn Authorizer>,
        keys: Arc<dyn KeyProvider>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(Client, mpsc::UnboundedReceiver<Event>), NetError> {
        let endpoint = Endpoint::parse(&config.url).map_err(NetError::Config)?;
        let tls = socket::tls_config(&config.extra_roots).map_err(NetError::Config)?;
        let (events, receiver) = mpsc::unbounded_channel();
        let mut session = ClientSession::new(config.session.clone());
        session.connect();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner { session, ring: KeyRing::new(), docs: HashMap::new(), stopped: false }),
            wake: Notify::new(),
            authorizer,
            keys,
            events: Mutex::new(Some(events)),
        });
        let driver = Driver {
            shared: shared.clone(),
            endpoint,
            app_key: config.app_key,
            tls,
            connect_timeout: config.connect_timeout,
            writer: None,
            reader: None,
        };
        let driver = runtime.spawn(driver.run());
        Ok((Client { shared, runtime: runtime.clone(), driver: Mutex::new(Some(driver)) }, receiver))
    }

    fn with_session<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let result = f(&mut self.shared.lock());
        self.shared.wake.notify_one();
        result
    }

    /// Stops for good: closes the connection, waits (up to 5 s) until the
    /// driver task has ended, and ends the event stream (the receiver
    /// yields what was queued, then `None`). Afterwards no task or thread of
    /// this client runs or calls the app's authorizer or key provider
    /// (except one already inside such a call). Call it from outside the
    /// runtime; inside it, it only signals the stop. Idempotent.
    pub fn close(&self) {
        self.stop();
        let driver = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(driver) = driver
            && tokio::runtime::Handle::try_current().is_err()
        {
            let _ =
                self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), driver).await });
        }
        self.shared.events.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn stop(&self) {
        let mut inner = self.shared.lock();
        inner.stopped = true;
        inner.session.disconnect();
        drop(inner);
        self.shared.wake.notify_one();
    }

    /// Connects again after `disconnect` or a fatal close.
    pub fn connect(&self) {
        self.with_session(|inner| inner.session.connect());
    }

    /// Closes the connection (subscriptions are kept for `connect`).
    pub fn disconnect(&self) {
        self.with_session(|inner| inner.session.disconnect());
    }

    /// Connectivity changed (call it when the device regains a network):
    /// reconnects now with the backoff reset, or checks a live connection.
    pub fn network_changed(&self) {
        self.with_session(|inner| inner.session.network_changed(Instant::now()));
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.shared.lock().session.state().clone()
    }

    /// Subscribes to a channel (private and presence ones through the authorizer).
    pub fn subscribe(&self, channel: &str) -> Result<(), NetError> {
        Ok(self.with_session(|inner| inner.session.subscribe(channel))?)
    }

    /// Leaves a channel.
    pub fn unsubscribe(&self, channel: &str) {
        self.with_session(|inner| inner.session.unsubscribe(channel));
    }

    /// The members of a presence channel.
    pub fn members(&self, channel: &str) -> Vec<Member> {
        self.shared.lock().session.members(channel)
    }

    /// Sends a plaintext `client-` event.
    pub fn trigger(&self, channel: &str, event: &str, data: Value) -> Result<(), NetError> {
        Ok(self.with_session(|inner| inner.session.trigger(channel, event, data))?)
    }

    /// Seals `paths` of `data` for `scope` with the current version of
    /// `kid` and sends it as a `client-` event.
    pub fn trigger_sealed(
        &self,
        channel: &str,
        event: &str,
        mut data: Value,
        paths: &[&str],
        kid: &str,
        scope: &Scope,
    ) -> Result<(), NetError> {
        self.ensure_key(kid, None, None)?;
        self.with_session(|inner| {
            seal_event(&mut data, paths, &mut inner.ring, kid, scope)?;
            Ok(inner.session.trigger(channel, event, data)?)
        })
    }

    /// Shares this user's presence state (typing, cursor, location…) on a
    /// presence channel: `state` travels sealed as `/state` of a
    /// `client-presence-state` event, scope
    /// `custom:presence-state:CHANNEL:client-presence-state` (receivers get
    /// it as a `Message` with that scope and the sender's `user_id`, which
    /// the server attaches on presence channels).
    pub fn send_presence_state(&self, channel: &str, kid: &str, state: Value) -> Result<(), NetError> {
        let scope = Scope::custom("presence-state", channel, PRESENCE_STATE_EVENT)?;
        let data = serde_json::json!({ "state": state });
        self.trigger_sealed(channel, PRESENCE_STATE_EVENT, data, &["/state"], kid, &scope)
    }

    /// Adds a key version (e.g. after the app rotated `kid`); sealing uses
    /// the newest version.
    pub fn add_key(&self, kid: &str, kv: u32, key: Key) -> Result<(), NetError> {
        Ok(self.shared.lock().ring.insert(kid, kv, key)?)
    }

    /// Opens document `doc_id` on `private-doc-{doc_id}` (or
    /// `presence-doc-…`), sealing with `kid` (asked from the key provider
    /// with the document id if the ring lacks it). Events arrive as
    /// [`Event::Document`].
    pub fn open_document(
        &self,
        doc_id: &str,
        presence: bool,
        kid: &str,
        key_hint: Option<String>,
        config: DocConfig,
    ) -> Result<(), NetError> {
        self.ensure_key(kid, Some(doc_id), key_hint.clone())?;
        self.with_session(|inner| {
            let (kv, key) =
                current_key(&inner.ring, kid).ok_or_else(|| NetError::KeyProvider("no key".into()))?;
            let ring = KeyRing::single(kid, kv, key)?;
            // 128 random bits: nobody can predict (and so take) our op ids.
            let prefix = format!(
                "{:016x}{:016x}",
                crate::crypto::rng::random_u64()?,
                crate::crypto::rng::random_u64()?
            );
            let mut doc = DocClient::new(doc_id, presence, ring, kid, key_hint, &prefix, config)?;
            let channel = doc.channel().to_owned();
            inner.session.subscribe(&channel)?;
            if inner.session.is_subscribed(&channel) {
                doc.join();
            }
            inner.docs.insert(channel.clone(), doc);
            flush_doc(inner, &channel);
            Ok(())
        })
    }

    /// Closes a document and leaves its channel.
    pub fn close_document(&self, doc_id: &str) {
        self.with_session(|inner| {
            let channel = inner.docs.keys().find(|c| doc_id_of(c) == Some(doc_id)).cloned();
            if let Some(channel) = channel {
                inner.docs.remove(&channel);
                inner.session.unsubscribe(&channel);
            }
        });
    }

    /// Applies `f` to an open document, then sends what it produced.
    fn with_doc<T>(
        &self,
        doc_id: &str,
        f: impl FnOnce(&mut DocClient) -> Result<T, DocClientError>,
    ) -> Result<T, NetError> {
        self.with_session(|inner| {
            let channel = inner
                .docs
                .keys()
                .find(|c| doc_id_of(c) == Some(doc_id))
                .cloned()
                .ok_or_else(|| NetError::NoDocument(doc_id.to_owned()))?;
            let doc = inner.docs.get_mut(&channel).expect("found above");
            let result = f(doc)?;
            flush_doc(inner, &channel);
            Ok(result)
        })
    }

    /// A local change to the document's current view; returns the view's
    /// version after it. See [`Client::edit_document_at`] for editors that
    /// apply events asynchronously.
    pub fn edit_document(&self, doc_id: &str, change: Delta) -> Result<u64, NetError> {
        self.with_doc(doc_id, |doc| doc.local_edit(change))
    }

    /// A local change to the view at `version` (the last `Ready` or
    /// `RemoteChange` the editor applied): see [`DocClient::edit_at`].
    /// Returns the version the editor is at after its own change.
    pub fn edit_document_at(&self, doc_id: &str, version: u64, change: Delta) -> Result<u64, NetError> {
        self.with_doc(doc_id, |doc| doc.edit_at(version, change))
    }

    /// Undoes this user's newest change; the change for the editor arrives
    /// as a `RemoteChange`. False when there is nothing to undo.
    pub fn undo_document(&self, doc_id: &str) -> Result<bool, NetError> {
        self.with_doc(doc_id, DocClient::undo)
    }

    /// Redoes the newest undone change, like [`Client::undo_document`].
    pub fn redo_document(&self, doc_id: &str) -> Result<bool, NetError> {
        self.with_doc(doc_id, DocClient::redo)
    }

    /// Resubmits the document's in-flight op now (refused ops are
    /// resubmitted automatically after a wait; this skips it).
    pub fn resubmit_document(&self, doc_id: &str) -> Result<(), NetError> {
        self.with_doc(doc_id, |doc| {
            doc.resubmit();
            Ok(())
        })
    }

    /// Shares this user's cursor.
    pub fn document_cursor(&self, doc_id: &str, index: usize, length: usize) -> Result<(), NetError> {
        self.with_doc(doc_id, |doc| doc.cursor(index, length))
    }

    /// The document as this user sees it.
    pub fn document_view(&self, doc_id: &str) -> Result<Delta, NetError> {
        self.with_doc(doc_id, |doc| doc.view())
    }

    /// The document as this user sees it, with its version (to edit at
    /// with [`Client::edit_document_at`]).
    pub fn document_versioned_view(&self, doc_id: &str) -> Result<(Delta, u64), NetError> {
        self.with_doc(doc_id, |doc| doc.versioned_view())
    }

    /// After `Diverged`: reloads the document from the server.
    pub fn restart_document(&self, doc_id: &str) -> Result<(), NetError> {
        self.with_doc(doc_id, |doc| {
            doc.restart();
            Ok(())
        })
    }

    /// Makes sure the ring holds `kid` (current version, or asks the provider).
    fn ensure_key(&self, kid: &str, doc_id: Option<&str>, key_hint: Option<String>) -> Result<(), NetError> {
        if self.shared.lock().ring.current_version(kid).is_some() {
            return Ok(());
        }
        let request =
            KeyRequest { kid: kid.to_owned(), kv: None, doc_id: doc_id.map(str::to_owned), key_hint };
        let grant = self.shared.keys.key(&request).map_err(NetError::KeyProvider)?;
        Ok(self.shared.lock().ring.insert(kid, grant.kv, grant.key)?)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The newest version of `kid` in `ring`, copied.
fn current_key(ring: &KeyRing, kid: &str) -> Option<(u32, Key)> {
    let kv = ring.current_version(kid)?;
    Some((kv, Key::from_bytes(ring.get(kid, kv)?.expose_secret())))
}

/// Sends a document's frames while its channel is subscribed; otherwise
/// drops them (the rejoin after resubscribing resubmits what matters).
fn flush_doc(inner: &mut Inner, channel: &str) {
    let Some(doc) = inner.docs.get_mut(channel) else { return };
    let subscribed = inner.session.is_subscribed(channel);
    while let Some(frame) = doc.poll_frame() {
        if subscribed {
            let _ = inner.session.send_frame(frame);
        }
    }
}

/// The task that owns the socket.
struct Driver {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    app_key: String,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    writer: Option<Writer>,
    reader: Option<mpsc::UnboundedReceiver<Incoming>>,
}

/// An authorizer's answer: (channel, socket id, result).
type AuthAnswer = (String, String, Result<ChannelAuth, String>);

impl Driver {
    async fn run(mut self) {
        let (auth_tx, mut auth_rx) = mpsc::unbounded_channel::<AuthAnswer>();
        loop {
            // Do what the session asked; deliver what it reported.
            let (actions, events, stopped) = {
                let mut inner = self.shared.lock();
                let actions: Vec<_> = std::iter::from_fn(|| inner.session.poll_action()).collect();
                let events: Vec<_> = std::iter::from_fn(|| inner.session.poll_event()).collect();
                (actions, events, inner.stopped)
            };
            // Dispatching and acting can produce more of both.
            let had_work = !actions.is_empty() || !events.is_empty();
            for event in events {
                self.dispatch(event).await;
            }
            // App calls (edits, undo) and timers queue document events too.
            self.drain_documents().await;
            for action in actions {
                self.perform(action, &auth_tx).await;
            }
            if stopped {
                if let Some(mut writer) = self.writer.take() {
                    writer.close().await;
                }
                return;
            }
            if had_work {
                continue;
            }
            let deadline = {
                let inner = self.shared.lock();
                let docs = inner.docs.values().filter_map(DocClient::poll_timeout);
                inner.session.next_deadline().into_iter().chain(docs).min()
            };
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let incoming = async {
                match &mut self.reader {
                    Some(reader) => reader.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.shared.wake.notified() => {}
                message = incoming => self.on_incoming(message).await,
                Some((channel, socket_id, result)) = auth_rx.recv() => {
                    self.shared.lock().session.authorized(&channel, &socket_id, result);
                }
                () = sleep => {
                    let now = Instant::now();
                    let mut inner = self.shared.lock();
                    inner.session.on_timer(now);
                    let channels: Vec<String> = inner.docs.keys().cloned().collect();
                    for channel in channels {
                        if let Some(doc) = inner.docs.get_mut(&channel) {
                            doc.handle_timeout(now);
                        }
                        flush_doc(&mut inner, &channel);
                    }
                }
            }
        }
    }

    async fn on_incoming(&mut self, message: Option<Incoming>) {
        match message {
            Some(Incoming::Text(text)) => self.shared.lock().session.on_frame(&text, Instant::now()),
            Some(Incoming::Ping(payload)) => {
                if let Some(writer) = &mut self.writer
                    && writer.pong(payload).await.is_err()
                {
                    self.lost(None, "write failed");
                }
            }
            Some(Incoming::Closed(code, reason)) => self.lost(code, &reason),
            None => self.lost(None, "reader stopped"),
        }
    }

    fn lost(&mut self, code: Option<u16>, reason: &str) {
        self.writer = None;
        self.reader = None;
        self.shared.lock().session.on_closed(code, reason, Instant::now());
    }

    async fn perform(&mut self, action: crate::client::Action, auth_tx: &mpsc::UnboundedSender<AuthAnswer>) {
        use crate::client::Action;
        match action {
            Action::Connect => {
                self.writer = None;
                let (tx, rx) = mpsc::unbounded_channel();
                match socket::open(&self.endpoint, &self.app_key, &self.tls, tx, self.connect_timeout).await {
                    Ok(writer) => {
                        self.writer = Some(writer);
                        self.reader = Some(rx);
                        self.shared.lock().session.on_open(Instant::now());
                    }
                    Err(reason) => {
                        tracing::debug!(%reason, "connect failed");
                        self.lost(None, &reason);
                    }
                }
            }
            Action::Send(text) => {
                if let Some(writer) = &mut self.writer
                    && writer.text(&text).await.is_err()
                {
                    self.lost(None, "write failed");
                }
            }
            Action::Close => {
                if let Some(mut writer) = self.writer.take() {
                    writer.close().await;
                }
                self.reader = None;
            }
            Action::Authorize { socket_id, channel } => {
                let authorizer = self.shared.authorizer.clone();
                let answers = auth_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let result = authorizer.authorize(&socket_id, &channel);
                    let _ = answers.send((channel, socket_id, result));
                });
            }
        }
    }

    /// Turns a session event into app events (opening sealed fields and
    /// routing document traffic).
    async fn dispatch(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::State(state) => self.shared.emit(Event::State(state)),
            ClientEvent::Subscribed { channel } => {
                {
                    let mut inner = self.shared.lock();
                    if let Some(doc) = inner.docs.get_mut(&channel) {
                        doc.join();
                        flush_doc(&mut inner, &channel);
                    }
                }
                self.shared.emit(Event::Subscribed { channel });
            }
            ClientEvent::SubscriptionFailed { channel, status, message } => {
                self.shared.emit(Event::SubscriptionFailed { channel, status, message })
            }
            ClientEvent::MemberAdded { channel, member } => {
                self.shared.emit(Event::MemberAdded { channel, member })
            }
            ClientEvent::MemberRemoved { channel, member } => {
                self.shared.emit(Event::MemberRemoved { channel, member })
            }
            ClientEvent::Error { code, message } => self.shared.emit(Event::Error { code, message }),
            ClientEvent::Message { channel, event, data, user_id } => {
                let is_doc = channel.as_ref().is_some_and(|c| self.shared.lock().docs.contains_key(c))
                    && (DocReply::is_reply_event(&event) || event == CURSOR_EVENT);
                if is_doc {
                    let channel = channel.expect("checked above");
                    self.document_event(&channel, &event, &data, user_id.as_deref()).await;
                } else {
                    self.message(channel, event, data, user_id).await;
                }
            }
        }
    }

    async fn message(
        &mut self,
        channel: Option<String>,
        event: String,
        mut data: Value,
        user_id: Option<String>,
    ) {
        let mut asked = false;
        loop {
            let opened = open_event(&mut data, &self.shared.lock().ring);
            let missing = match &opened {
                Err(error) => match error.root() {
                    CryptoError::UnknownKey { kid, kv } => Some((kid.clone(), *kv)),
                    _ => None,
                },
                Ok(_) => None,
            };
            match (opened, missing) {
                (Ok(scope), _) => {
                    return self.shared.emit(Event::Message { channel, event, data, user_id, scope });
                }
                (Err(_), Some((kid, kv))) if !asked => {
                    asked = true;
                    let request = KeyRequest { kid: kid.clone(), kv: Some(kv), doc_id: None, key_hint: None };
                    if let Err(message) = fetch_key(self.shared.clone(), request, |inner, grant| {
                        inner.ring.insert(&kid, grant.kv, grant.key).map_err(|e| e.to_string())
                    })
                    .await
                    {
                        self.shared
                            .emit(Event::Error { code: None, message: format!("key provider: {message}") });
                    }
                }
                (Err(error), _) => {
                    return self.shared.emit(Event::Undecryptable { channel, event, user_id, error });
                }
            }
        }
    }

    async fn document_event(&mut self, channel: &str, event: &str, data: &Value, user_id: Option<&str>) {
        let result = {
            let mut inner = self.shared.lock();
            let Some(doc) = inner.docs.get_mut(channel) else { return };
            doc.handle_event(event, data, user_id, Instant::now())
        };
        if let Err(err) = result {
            self.shared.emit(Event::Error { code: None, message: format!("document frame: {err}") });
        }
        self.drain_document(channel).await;
    }

    /// Delivers every open document's queued events.
    async fn drain_documents(&mut self) {
        let channels: Vec<String> = self.shared.lock().docs.keys().cloned().collect();
        for channel in channels {
            self.drain_document(&channel).await;
        }
    }

    /// Delivers a document's events, answering key requests on the way.
    async fn drain_document(&mut self, channel: &str) {
        let doc_id = doc_id_of(channel).unwrap_or_default().to_owned();
        loop {
            let next = {
                let mut inner = self.shared.lock();
                flush_doc(&mut inner, channel);
                inner.docs.get_mut(channel).and_then(DocClient::poll_event)
            };
            let Some(event) = next else { return };
            if let DocClientEvent::KeyNeeded { kid, kv, key_hint } = &event {
                let request = KeyRequest {
                    kid: kid.clone(),
                    kv: Some(*kv),
                    doc_id: Some(doc_id.clone()),
                    key_hint: key_hint.clone(),
                };
                let (kid, channel_name) = (kid.clone(), channel.to_owned());
                let fetched = fetch_key(self.shared.clone(), request, move |inner, grant| {
                    match inner.docs.get_mut(&channel_name) {
                        Some(doc) => doc.add_key(&kid, grant.kv, grant.key).map_err(|e| e.to_string()),
                        None => Ok(()),
                    }
                })
                .await;
                if let Err(message) = fetched {
                    self.shared
                        .emit(Event::Error { code: None, message: format!("key provider: {message}") });
                    self.shared.emit(Event::Document { doc_id: doc_id.clone(), event });
                }
                continue;
            }
            self.shared.emit(Event::Document { doc_id: doc_id.clone(), event });
        }
    }
}

/// Asks the provider on the blocking pool, then stores the grant.
async fn fetch_key(
    shared: Arc<Shared>,
    request: KeyRequest,
    store: impl FnOnce(&mut Inner, KeyGrant) -> Result<(), String>,
) -> Result<(), String> {
    let keys = shared.keys.clone();
    let grant = tokio::task::spawn_blocking(move || keys.key(&request))
        .await
        .map_err(|e| format!("key provider panicked: {e}"))??;
    store(&mut shared.lock(), grant)
}
