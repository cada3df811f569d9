//! The connection: channels, sealed client events and presence, with the
//! app's [`Authorizer`], [`KeyProvider`] and [`ClientListener`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use sealcast_core::client::{
    CatchUpOutcome, ChannelAuth, ClientMachine, ConnectionState as CoreState, HistoryRead, Member,
};
use sealcast_core::crypto::Scope;
use sealcast_core::protocol::history::HistoryError;
use sealcast_net::{self as net, ClientConfig, Event};
use serde_json::Value;

use crate::crypto::key_from;
use crate::document_event::{DocumentEvent, document_event};
use crate::{CallbackError, SealcastError, runtime};

/// What an authorizer returns: the Pusher auth string (`key:signature`) or
/// a JWT, and for presence channels with HMAC auth the member data.
#[derive(uniffi::Record)]
pub struct ChannelAuthorization {
    /// `key:signature`, or a JWT.
    pub auth: String,
    /// Presence member JSON (`{"user_id", "user_info"}`), HMAC only.
    pub channel_data: Option<String>,
}

/// Signs channel access; the app calls its own backend. Called on an SDK
/// thread; may block.
#[uniffi::export(with_foreign)]
pub trait Authorizer: Send + Sync {
    /// The authorization for `channel` on connection `socket_id`.
    fn authorize(&self, socket_id: String, channel: String) -> Result<ChannelAuthorization, CallbackError>;
}

/// A key the SDK needs.
#[derive(uniffi::Record)]
pub struct KeyRequest {
    /// Key id.
    pub kid: String,
    /// The version an envelope names; none: the current one, to seal with.
    pub kv: Option<u32>,
    /// The document, for document keys.
    pub doc_id: Option<String>,
    /// The document session's key hint as the server recorded it (none: a
    /// new document; issue a new session key and return its hint).
    pub key_hint: Option<String>,
}

/// A key the provider hands out.
#[derive(uniffi::Record)]
pub struct KeyGrant {
    /// Its version.
    pub kv: u32,
    /// 32 bytes.
    pub key: Vec<u8>,
    /// For a new document session key (asked for without hint): its hint,
    /// which the server records so every other client gets the same key.
    #[uniffi(default = None)]
    pub key_hint: Option<String>,
}

/// Hands out keys; each (kid, kv) is asked for once and cached.
#[uniffi::export(with_foreign)]
pub trait KeyProvider: Send + Sync {
    /// The key for `request`.
    fn key(&self, request: KeyRequest) -> Result<KeyGrant, CallbackError>;
}

/// The connection state.
#[derive(uniffi::Enum, Debug, Clone, PartialEq)]
pub enum ConnectionState {
    /// Not started.
    Initialized,
    /// Connecting.
    Connecting,
    /// Connected.
    Connected {
        /// The server's socket id.
        socket_id: String,
    },
    /// Lost; retrying.
    Unavailable {
        /// Attempt number.
        attempt: u32,
        /// Delay before it, milliseconds.
        retry_in_ms: u64,
    },
    /// Refused for good (close codes 4000–4099).
    Failed {
        /// Close code.
        code: Option<u16>,
        /// Reason.
        reason: String,
    },
    /// Closed by the app.
    Disconnected,
}

impl From<CoreState> for ConnectionState {
    fn from(state: CoreState) -> ConnectionState {
        match state {
            CoreState::Initialized => ConnectionState::Initialized,
            CoreState::Connecting => ConnectionState::Connecting,
            CoreState::Connected { socket_id } => ConnectionState::Connected { socket_id },
            CoreState::Unavailable { attempt, retry_in } => {
                ConnectionState::Unavailable { attempt, retry_in_ms: retry_in.as_millis() as u64 }
            }
            CoreState::Failed { code, reason } => ConnectionState::Failed { code, reason },
            CoreState::Disconnected => ConnectionState::Disconnected,
        }
    }
}

/// A presence channel member.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct PresenceMember {
    /// User id.
    pub user_id: String,
    /// The app's public info about the user, as JSON.
    pub user_info_json: String,
}

impl From<Member> for PresenceMember {
    fn from(member: Member) -> PresenceMember {
        PresenceMember { user_id: member.user_id, user_info_json: member.user_info.to_string() }
    }
}

/// Receives the connection's and its documents' events, in order, on one
/// SDK thread.
#[uniffi::export(with_foreign)]
pub trait ClientListener: Send + Sync {
    /// The connection state changed.
    fn on_state(&self, state: ConnectionState);
    /// A subscription succeeded (again after each reconnect).
    fn on_subscribed(&self, channel: String);
    /// A subscription was refused.
    fn on_subscription_failed(&self, channel: String, status: Option<u16>, message: String);
    /// An event; sealed fields are already opened (`scope` names their
    /// scope when there were any).
    fn on_message(
        &self,
        channel: Option<String>,
        event: String,
        data_json: String,
        user_id: Option<String>,
        scope: Option<String>,
    );
    /// An event whose sealed fields did not open (wrong or missing key,
    /// tampering): never delivered as ciphertext.
    fn on_undecryptable(
        &self,
        channel: Option<String>,
        event: String,
        user_id: Option<String>,
        code: String,
        message: String,
    );
    /// A member joined a presence channel.
    fn on_member_added(&self, channel: String, member: PresenceMember);
    /// A member left a presence channel.
    fn on_member_removed(&self, channel: String, member: PresenceMember);
    /// A server or SDK error.
    fn on_error(&self, code: Option<u16>, message: String);
    /// Something happened to open document `doc_id`.
    fn on_document(&self, doc_id: String, event: DocumentEvent);
    /// A channel with history caught up after a reconnect or a gap
    /// (docs/history.md): the missed events were delivered before this,
    /// once and in order, or the outcome says what was lost.
    fn on_catch_up(&self, channel: String, outcome: CatchUp);
    /// The answer to `read_history` (`request_id` as it returned).
    fn on_history(&self, channel: String, request_id: String, result: HistoryResult);
}

/// One event of a history page: opened (`data_json`, `scope`) or, when its
/// sealed fields did not open, `error_code` and `error_message` — never
/// ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// Its offset in the stream (read `before` the first one for the page before).
    pub offset: u64,
    /// Event name.
    pub event: String,
    /// The sender, where there was one.
    pub user_id: Option<String>,
    /// When the server took it, ms since the Unix epoch.
    pub time_ms: u64,
    /// Its data, opened, as JSON text.
    pub data_json: Option<String>,
    /// The scope its sealed fields were bound to.
    pub scope: Option<String>,
    /// Why it did not open.
    pub error_code: Option<String>,
    /// Why it did not open, for people.
    pub error_message: Option<String>,
}

/// A history page, or the server's refusal (`code`: `rate_limited`,
/// `history_off`, `not_subscribed`, …).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum HistoryResult {
    /// Events, oldest first; `more`: older ones are kept.
    Page {
        /// The events.
        entries: Vec<HistoryEntry>,
        /// Older events are kept.
        more: bool,
    },
    /// No page.
    Refused {
        /// Why, as a code.
        code: String,
        /// Why, for people.
        message: String,
    },
}

impl From<Result<HistoryRead, HistoryError>> for HistoryResult {
    fn from(result: Result<HistoryRead, HistoryError>) -> HistoryResult {
        match result {
            Err(error) => {
                HistoryResult::Refused { code: error.code.as_str().to_owned(), message: error.message }
            }
            Ok(read) => HistoryResult::Page {
                entries: read
                    .items
                    .into_iter()
                    .map(|item| {
                        let (data_json, scope, error_code, error_message) = match item.content {
                            Ok((data, scope)) => {
                                (Some(data.to_string()), scope.map(|s| s.to_string()), None, None)
                            }
                            Err(error) => {
                                (None, None, Some(error.code().to_owned()), Some(error.to_string()))
                            }
                        };
                        HistoryEntry {
                            offset: item.offset,
                            event: item.event,
                            user_id: item.user_id,
                            time_ms: item.time_ms,
                            data_json,
                            scope,
                            error_code,
                            error_message,
                        }
                    })
                    .collect(),
                more: read.more,
            },
        }
    }
}

/// How a channel with history caught up.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum CatchUp {
    /// Every missed event was delivered, in order, once.
    Complete {
        /// How many.
        events: u64,
    },
    /// Events were lost to this client (`gap`: `position_expired` or
    /// `epoch_changed`); reload the channel's state from your source. The
    /// kept events after the gap were delivered.
    Gap {
        /// Why.
        gap: String,
        /// How many kept events were delivered.
        events: u64,
    },
    /// The missed events could not be read (`code`: the server's refusal,
    /// `no_answer` or `too_many_held`); reload from your source.
    Failed {
        /// Why, as a code.
        code: String,
        /// Why, for people.
        message: String,
        /// How many missed events were delivered before it failed.
        events: u64,
    },
}

impl From<CatchUpOutcome> for CatchUp {
    fn from(outcome: CatchUpOutcome) -> CatchUp {
        match outcome {
            CatchUpOutcome::Complete { events } => CatchUp::Complete { events: events as u64 },
            CatchUpOutcome::Gap { gap, events } => {
                CatchUp::Gap { gap: gap.as_str().to_owned(), events: events as u64 }
            }
            CatchUpOutcome::Failed { reason, events } => CatchUp::Failed {
                code: reason.code().to_owned(),
                message: reason.to_string(),
                events: events as u64,
            },
        }
    }
}

struct AuthorizerAdapter(Arc<dyn Authorizer>);

impl net::Authorizer for AuthorizerAdapter {
    fn authorize(&self, socket_id: &str, channel: &str) -> Result<ChannelAuth, net::AuthRefusal> {
        let auth = self
            .0
            .authorize(socket_id.to_owned(), channel.to_owned())
            .map_err(|e| net::AuthRefusal::new(e.to_string()))?;
        Ok(ChannelAuth { auth: auth.auth, channel_data: auth.channel_data })
    }
}

struct KeyProviderAdapter(Arc<dyn KeyProvider>);

impl net::KeyProvider for KeyProviderAdapter {
    fn key(&self, request: &net::KeyRequest) -> Result<net::KeyGrant, net::KeyRefusal> {
        let grant = self
            .0
            .key(KeyRequest {
                kid: request.kid.clone(),
                kv: request.kv,
                doc_id: request.doc_id.clone(),
                key_hint: request.key_hint.clone(),
            })
            .map_err(|error| match error {
                CallbackError::Failed { detail } => net::KeyRefusal::Refused(detail),
                CallbackError::Unavailable { detail } => net::KeyRefusal::Unavailable(detail),
            })?;
        let key = key_from(&grant.key).map_err(|e| net::KeyRefusal::Refused(e.to_string()))?;
        Ok(net::KeyGrant { kv: grant.kv, key, key_hint: grant.key_hint })
    }
}

/// A connection to a sealcast (or any Pusher-protocol) server. It connects
/// when created and reconnects by itself. `shutdown()` stops it for good and
/// returns once no SDK thread will call the app's listeners again; call it
/// before the process exits (the Python package does so at exit by itself).
#[derive(uniffi::Object)]
pub struct SealcastClient {
    pub(crate) client: net::Client,
    /// The thread delivering events to the listeners, until `close`.
    events_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for SealcastClient {
    /// Dropping (Python's `del`, Kotlin's `destroy`, Swift's release) closes
    /// too, so a process exiting right after never has an SDK thread calling
    /// into its finalizing runtime.
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn parse_json(text: &str) -> Result<Value, SealcastError> {
    serde_json::from_str(text).map_err(SealcastError::invalid)
}

#[uniffi::export]
impl SealcastClient {
    /// Connects to `url` (`ws://HOST:PORT` or `wss://HOST`) as app `app_key`.
    #[uniffi::constructor]
    pub fn new(
        url: String,
        app_key: String,
        authorizer: Arc<dyn Authorizer>,
        key_provider: Arc<dyn KeyProvider>,
        listener: Arc<dyn ClientListener>,
    ) -> Result<Arc<SealcastClient>, SealcastError> {
        let (client, mut events) = net::Client::start(
            ClientConfig::new(&url, &app_key),
            Arc::new(AuthorizerAdapter(authorizer)),
            Arc::new(KeyProviderAdapter(key_provider)),
            &runtime::handle(),
        )?;
        // One thread per client delivers events in order; it ends when the
        // client is closed or dropped.
        let events_thread = std::thread::Builder::new()
            .name("sealcast-events".into())
            .spawn(move || {
                while let Some(event) = events.blocking_recv() {
                    deliver(&*listener, event);
                }
            })
            .map_err(|e| SealcastError::Config { detail: format!("cannot start the event thread: {e}") })?;
        Ok(Arc::new(SealcastClient { client, events_thread: Mutex::new(Some(events_thread)) }))
    }

    /// Stops the client for good and waits until it has: the connection is
    /// closed, the SDK's tasks have ended, queued events have been delivered
    /// and the delivery thread has exited, so no SDK thread calls a
    /// listener again. Safe to call twice, and from a listener (it then does
    /// not wait for its own thread). Dropping the client does the same
    /// (Kotlin: `close()`/`destroy()`; Swift: the last reference going;
    /// Python: `close()`, an alias, or `del`).
    pub fn shutdown(&self) {
        self.client.close();
        let thread = self.events_thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }

    /// Subscribes to a channel (private and presence ones through the authorizer).
    pub fn subscribe(&self, channel: String) -> Result<(), SealcastError> {
        Ok(self.client.with_machine(|m| m.subscribe(&channel))?)
    }

    /// Leaves a channel.
    pub fn unsubscribe(&self, channel: String) {
        self.client.with_machine(|m| m.unsubscribe(&channel));
    }

    /// Sends a plaintext `client-` event (`data_json`: any JSON).
    pub fn trigger(&self, channel: String, event: String, data_json: String) -> Result<(), SealcastError> {
        let data = parse_json(&data_json)?;
        Ok(self.client.with_machine(|m| m.trigger(&channel, &event, data))?)
    }

    /// Sends a `client-` event with `paths` (JSON pointers into the object
    /// `data_json`) sealed for `scope` (`chat:ROOM:MSG`, `call:CALL:EVENT`,
    /// `custom:SCOPE:ID:EVENT`) under the current version of `kid`.
    pub fn trigger_sealed(
        &self,
        channel: String,
        event: String,
        data_json: String,
        paths: Vec<String>,
        kid: String,
        scope: String,
    ) -> Result<(), SealcastError> {
        let scope: Scope = scope.parse()?;
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let data = parse_json(&data_json)?;
        Ok(self.client.with_machine(|m| m.trigger_sealed(&channel, &event, data, &paths, &kid, &scope))?)
    }

    /// Sends a sealed chat message: `/body` of `data_json` sealed for
    /// `chat:ROOM:MESSAGE_ID` with key id `room`.
    pub fn send_chat(
        &self,
        channel: String,
        room: String,
        message_id: String,
        data_json: String,
    ) -> Result<(), SealcastError> {
        let data = parse_json(&data_json)?;
        Ok(self.client.with_machine(|m| m.send_chat(&channel, &room, &message_id, data))?)
    }

    /// Sends a call-signaling event (`client-offer`, `client-answer`,
    /// `client-ice`…) with `/sdp` and `/candidate` sealed (those present)
    /// for `call:CALL_ID:EVENT` with key id `call_id`.
    pub fn send_signal(
        &self,
        channel: String,
        call_id: String,
        event: String,
        data_json: String,
    ) -> Result<(), SealcastError> {
        let data = parse_json(&data_json)?;
        Ok(self.client.with_machine(|m| m.send_signal(&channel, &call_id, &event, data))?)
    }

    /// Shares this user's presence state (typing, cursor, location…) on a
    /// presence channel, sealed under `kid`; others receive it through
    /// `on_message` as event `client-presence-state` with `{"state": …}`.
    pub fn send_presence_state(
        &self,
        channel: String,
        kid: String,
        state_json: String,
    ) -> Result<(), SealcastError> {
        let state = parse_json(&state_json)?;
        Ok(self.client.with_machine(|m| m.send_presence_state(&channel, &kid, state))?)
    }

    /// Asks for a page of `channel`'s history, scrolling back (docs/history.md):
    /// the newest `limit` events (1–1,000) before offset `before` (none:
    /// the newest). The answer arrives at `on_history` with the returned
    /// request id.
    pub fn read_history(
        &self,
        channel: String,
        before: Option<u64>,
        limit: u32,
    ) -> Result<String, SealcastError> {
        Ok(self.client.with_machine(|m| m.read_history(&channel, before, limit))?)
    }

    /// The members of a subscribed presence channel.
    pub fn members(&self, channel: String) -> Vec<PresenceMember> {
        self.client.with_machine(|m| m.members(&channel)).into_iter().map(PresenceMember::from).collect()
    }

    /// Adds a key version (after rotating `kid`): sealing uses the newest.
    pub fn add_key(&self, kid: String, kv: u32, key: Vec<u8>) -> Result<(), SealcastError> {
        let key = key_from(&key)?;
        Ok(self.client.with_machine(|m| m.add_key(&kid, kv, key))?)
    }

    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        self.client.with_machine(|m| m.state()).into()
    }

    /// Call when the device's connectivity changed: reconnects now with the
    /// backoff reset, or checks a live connection.
    pub fn network_changed(&self) {
        self.client.with_machine(|m| m.network_changed(Instant::now()));
    }

    /// Connects again after `disconnect`.
    pub fn connect(&self) {
        self.client.with_machine(ClientMachine::connect);
    }

    /// Closes the connection; subscriptions are kept for `connect`.
    pub fn disconnect(&self) {
        self.client.with_machine(ClientMachine::disconnect);
    }
}

fn deliver(listener: &dyn ClientListener, event: Event) {
    match event {
        Event::State(state) => listener.on_state(state.into()),
        Event::Subscribed { channel } => listener.on_subscribed(channel),
        Event::SubscriptionFailed { channel, status, message } => {
            listener.on_subscription_failed(channel, status, message)
        }
        Event::Message { channel, event, data, user_id, scope } => {
            listener.on_message(channel, event, data.to_string(), user_id, scope.map(|s| s.to_string()))
        }
        Event::Undecryptable { channel, event, user_id, error } => {
            listener.on_undecryptable(channel, event, user_id, error.code().to_owned(), error.to_string())
        }
        Event::MemberAdded { channel, member } => listener.on_member_added(channel, member.into()),
        Event::MemberRemoved { channel, member } => listener.on_member_removed(channel, member.into()),
        Event::Error { code, message } => listener.on_error(code, message),
        // Local failures reach the foreign listener as errors without a
        // Pusher code (each with its own text).
        Event::KeyRefused { .. } | Event::NotSent { .. } | Event::BadDocumentFrame { .. } => {
            if let Some(message) = event.local_failure() {
                listener.on_error(None, message);
            }
        }
        Event::Document { doc_id, event } => listener.on_document(doc_id, document_event(event)),
        Event::CatchUp { channel, outcome } => listener.on_catch_up(channel, outcome.into()),
        Event::History { channel, request_id, result } => {
            listener.on_history(channel, request_id, result.into())
        }
        // Requests: the driver (sealcast_net::Client) answers them through
        // the app's Authorizer and KeyProvider and never passes them on.
        Event::NeedAuthorization { .. } | Event::NeedKey(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider that fails with `error`'s kind.
    struct Failing(fn(String) -> CallbackError);

    impl KeyProvider for Failing {
        fn key(&self, request: KeyRequest) -> Result<KeyGrant, CallbackError> {
            Err((self.0)(format!("no {}", request.kid)))
        }
    }

    fn ask(provider: Failing) -> net::KeyRefusal {
        let request = net::KeyRequest { kid: "room".into(), kv: Some(2), doc_id: None, key_hint: None };
        match net::KeyProvider::key(&KeyProviderAdapter(Arc::new(provider)), &request) {
            Ok(_) => panic!("a failing provider granted a key"),
            Err(refusal) => refusal,
        }
    }

    #[test]
    fn a_foreign_providers_unavailable_is_no_answer_yet_and_failed_is_a_refusal() {
        let unavailable = ask(Failing(|detail| CallbackError::Unavailable { detail }));
        assert_eq!(unavailable, net::KeyRefusal::Unavailable("no room".into()));
        let failed = ask(Failing(|detail| CallbackError::Failed { detail }));
        assert_eq!(failed, net::KeyRefusal::Refused("no room".into()));
    }
}
