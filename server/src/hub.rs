//! Shared state of one app: connections, channels, presence rosters, and
//! fan-out.
//!
//! One mutex per app guards its channels; every operation under it is short
//! and never awaits. Fan-out encodes a frame once ([`Bytes`], reference
//! counted) and `try_send`s it to each subscriber's bounded queue: a full
//! queue marks that connection a slow consumer and closes it (4100) instead
//! of buffering without bound or slowing the publisher.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sealcast_core::protocol::{ChannelKind, ChannelName, PresenceMember, codes, server as frames};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};

use crate::config::AppConfig;
use crate::jwt::TokenVerifier;
use crate::metrics::Metrics;
use crate::webhooks::{HookEvent, Webhooks};

/// A request to close a connection: WebSocket close code and reason.
pub type CloseRequest = Option<(u16, &'static str)>;

/// A handle to one connection's outbound side.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    /// The connection's socket id.
    pub socket_id: Arc<str>,
    tx: mpsc::Sender<Bytes>,
    close: Arc<watch::Sender<CloseRequest>>,
}

impl ConnHandle {
    /// A handle, its outbound queue of `capacity` frames, and the receiver
    /// of a close request.
    pub fn new(
        socket_id: Arc<str>,
        capacity: usize,
    ) -> (ConnHandle, mpsc::Receiver<Bytes>, watch::Receiver<CloseRequest>) {
        let (tx, rx) = mpsc::channel(capacity);
        let (close, close_rx) = watch::channel(None);
        (ConnHandle { socket_id, tx, close: Arc::new(close) }, rx, close_rx)
    }

    /// Queues a frame; a full queue closes the connection as a slow consumer.
    /// Returns false when the frame was not queued.
    pub fn send(&self, frame: Bytes, metrics: &Metrics) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.slow_consumers.inc();
                self.close(codes::OVER_CAPACITY, "slow consumer: outbound queue full");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection to close with `code` (first request wins).
    pub fn close(&self, code: u16, reason: &'static str) {
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some((code, reason));
                true
            } else {
                false
            }
        });
    }
}

/// One app's state.
#[derive(Debug)]
pub struct App {
    /// Its configuration.
    pub config: AppConfig,
    /// Its JWT public keys (empty when it uses HMAC auth only).
    pub tokens: TokenVerifier,
    /// Its webhook queue.
    pub webhooks: Webhooks,
    state: Mutex<AppState>,
}

#[derive(Debug, Default)]
struct AppState {
    connections: HashMap<Arc<str>, Connection>,
    channels: HashMap<String, Channel>,
}

#[derive(Debug)]
struct Connection {
    handle: ConnHandle,
    channels: HashSet<String>,
    user_id: Option<String>,
}

#[derive(Debug, Default)]
struct Channel {
    /// socket id → presence user id (None on non-presence channels).
    subscribers: HashMap<Arc<str>, (ConnHandle, Option<String>)>,
    /// Presence: user id → member.
    members: HashMap<String, Member>,
}

#[derive(Debug)]
struct Member {
    info: Option<Box<RawValue>>,
    /// Connections of this user in the channel: member_added/removed fire
    /// on the first and last, not per connection.
    connections: usize,
}

/// Why a subscription was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// The presence channel is full.
    PresenceFull,
    /// The connection is gone.
    NotConnected,
}

/// Channel occupancy for the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Connections subscribed.
    pub subscription_count: usize,
    /// Distinct presence users (presence channels only).
    pub user_count: Option<usize>,
}

impl App {
    /// An app with no connections. `config` must have passed
    /// [`crate::config::ServerConfig::load`]'s validation.
    pub fn new(config: AppConfig) -> App {
        let tokens = TokenVerifier::from_config(&config.jwt_keys)
            .expect("jwt keys were validated when the config loaded");
        let webhooks = Webhooks::start(
            config.id.clone(),
            config.key.clone(),
            config.secret.clone(),
            config.webhooks.clone(),
        );
        App { config, tokens, webhooks, state: Mutex::new(AppState::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, AppState> {
        // A panic while holding the lock would be a bug in this module; the
        // state stays consistent per operation, so keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a connection; false when the app is at its connection limit.
    pub fn connect(&self, handle: ConnHandle) -> bool {
        let mut state = self.lock();
        if self.config.max_connections > 0 && state.connections.len() >= self.config.max_connections {
            return false;
        }
        state
            .connections
            .insert(handle.socket_id.clone(), Connection { handle, channels: HashSet::new(), user_id: None });
        true
    }

    /// Removes a connection from every channel (sending member_removed where
    /// it was a user's last connection).
    pub fn disconnect(&self, socket_id: &str, metrics: &Metrics) {
        let mut state = self.lock();
        let Some(conn) = state.connections.remove(socket_id) else { return };
        for channel in conn.channels {
            remove_subscriber(&mut state, &channel, socket_id, &self.webhooks, metrics);
        }
    }

    /// Subscribes a connection; `member` is required on presence channels.
    /// Sends `subscription_succeeded` to the subscriber and `member_added` to
    /// the others. Subscribing twice is a no-op success.
    pub fn subscribe(
        &self,
        socket_id: &str,
        channel: &ChannelName,
        member: Option<PresenceMember>,
        metrics: &Metrics,
    ) -> Result<(), SubscribeError> {
        let mut state = self.lock();
        let state = &mut *state;
        let conn = state.connections.get_mut(socket_id).ok_or(SubscribeError::NotConnected)?;
        let handle = conn.handle.clone();
        let entry = state.channels.entry(channel.as_str().to_owned()).or_default();
        if entry.subscribers.contains_key(socket_id) {
            return Ok(());
        }
        if let Some(member) = &member
            && !entry.members.contains_key(&member.user_id)
            && entry.members.len() >= self.config.max_presence_members
        {
            return Err(SubscribeError::PresenceFull);
        }
        // Webhook order follows causality: the channel is occupied before
        // anyone is added to it.
        if entry.subscribers.is_empty() {
            tracing::debug!(channel = %channel, "channel occupied");
            self.webhooks.emit(HookEvent::ChannelOccupied { channel: channel.as_str().to_owned() }, metrics);
        }
        let user_id = member.as_ref().map(|m| m.user_id.clone());
        if let Some(member) = member {
            let slot = entry
                .members
                .entry(member.user_id.clone())
                .or_insert(Member { info: member.user_info, connections: 0 });
            slot.connections += 1;
            if slot.connections == 1 {
                let event = HookEvent::MemberAdded {
                    channel: channel.as_str().to_owned(),
                    user_id: member.user_id.clone(),
                };
                self.webhooks.emit(event, metrics);
                let added = Bytes::from(frames::member_added(
                    channel.as_str(),
                    &member.user_id,
                    slot.info.as_deref(),
                ));
                for (other, (peer, _)) in &entry.subscribers {
                    if **other != *socket_id {
                        peer.send(added.clone(), metrics);
                    }
                }
            }
        }
        conn.channels.insert(channel.as_str().to_owned());
        entry.subscribers.insert(handle.socket_id.clone(), (handle.clone(), user_id));
        let succeeded = if channel.kind() == ChannelKind::Presence {
            frames::presence_subscription_succeeded(
                channel.as_str(),
                entry
                    .members
                    .iter()
                    .map(|(id, m)| (id.as_str(), m.info.as_deref()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        } else {
            frames::subscription_succeeded(channel.as_str())
        };
        handle.send(Bytes::from(succeeded), metrics);
        metrics.subscriptions.inc();
        Ok(())
    }

    /// Unsubscribes a connection from a channel.
    pub fn unsubscribe(&self, socket_id: &str, channel: &str, metrics: &Metrics) {
        let mut state = self.lock();
        let was_subscribed = state.connections.get_mut(socket_id).is_some_and(|c| c.channels.remove(channel));
        if was_subscribed {
            remove_subscriber(&mut state, channel, socket_id, &self.webhooks, metrics);
        }
    }

    /// True when the connection is subscribed to `channel`; its presence
    /// user id if any.
    pub fn subscription(&self, socket_id: &str, channel: &str) -> Option<Option<String>> {
        let state = self.lock();
        state.channels.get(channel)?.subscribers.get(socket_id).map(|(_, user)| user.clone())
    }

    /// Sends `frame` to every subscriber of `channel` except `except`.
    /// Returns the number of connections it was queued for.
    pub fn publish(&self, channel: &str, frame: &Bytes, except: Option<&str>, metrics: &Metrics) -> usize {
        let state = self.lock();
        let Some(entry) = state.channels.get(channel) else { return 0 };
        let mut sent = 0;
        for (socket_id, (handle, _)) in &entry.subscribers {
            if Some(&**socket_id) != except && handle.send(frame.clone(), metrics) {
                sent += 1;
            }
        }
        metrics.messages_out.add(sent as u64);
        metrics.bytes_out.add((sent * frame.len()) as u64);
        sent
    }

    /// Occupied channels whose name starts with `prefix`.
    pub fn channels(&self, prefix: &str) -> Vec<(String, ChannelInfo)> {
        let state = self.lock();
        let mut list: Vec<_> = state
            .channels
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, channel)| (name.clone(), info_of(name, channel)))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Occupancy of one channel (`None` when nobody is subscribed).
    pub fn channel(&self, name: &str) -> Option<ChannelInfo> {
        let state = self.lock();
        state.channels.get(name).map(|channel| info_of(name, channel))
    }

    /// User ids in a presence channel.
    pub fn users(&self, name: &str) -> Vec<String> {
        let state = self.lock();
        let mut users: Vec<_> =
            state.channels.get(name).map(|c| c.members.keys().cloned().collect()).unwrap_or_default();
        users.sort();
        users
    }

    /// Records the user a connection signed in as.
    pub fn sign_in(&self, socket_id: &str, user_id: String) {
        if let Some(conn) = self.lock().connections.get_mut(socket_id) {
            conn.user_id = Some(user_id);
        }
    }

    /// Closes every connection of `user_id` (signed in, or present in a
    /// presence channel). Returns how many.
    pub fn terminate_user(&self, user_id: &str) -> usize {
        let state = self.lock();
        let mut closed = 0;
        for conn in state.connections.values() {
            let present = conn.channels.iter().any(|name| {
                state
                    .channels
                    .get(name)
                    .and_then(|c| c.subscribers.get(&conn.handle.socket_id))
                    .is_some_and(|(_, user)| user.as_deref() == Some(user_id))
            });
            if conn.user_id.as_deref() == Some(user_id) || present {
                conn.handle.close(codes::UNAUTHORIZED, "connection terminated by the app");
                closed += 1;
            }
        }
        closed
    }

    /// Closes every connection with `code` (graceful shutdown).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for conn in self.lock().connections.values() {
            conn.handle.close(code, reason);
        }
    }
}

fn info_of(name: &str, channel: &Channel) -> ChannelInfo {
    let presence = name.starts_with("presence-");
    ChannelInfo {
        subscription_count: channel.subscribers.len(),
        user_count: presence.then_some(channel.members.len()),
    }
}

fn remove_subscriber(
    state: &mut AppState,
    channel: &str,
    socket_id: &str,
    webhooks: &Webhooks,
    metrics: &Metrics,
) {
    let Some(entry) = state.channels.get_mut(channel) else { return };
    let Some((_, user_id)) = entry.subscribers.remove(socket_id) else { return };
    metrics.subscriptions.dec();
    if let Some(user_id) = user_id
        && let Some(member) = entry.members.get_mut(&user_id)
    {
        member.connections -= 1;
        if member.connections == 0 {
            entry.members.remove(&user_id);
            webhooks.emit(
                HookEvent::MemberRemoved { channel: channel.to_owned(), user_id: user_id.clone() },
                metrics,
            );
            let removed = Bytes::from(frames::member_removed(channel, &user_id));
            for (peer, _) in entry.subscribers.values() {
                peer.send(removed.clone(), metrics);
            }
        }
    }
    if entry.subscribers.is_empty() {
        state.channels.remove(channel);
        tracing::debug!(channel, "channel vacated");
        webhooks.emit(HookEvent::ChannelVacated { channel: channel.to_owned() }, metrics);
    }
}
