//! Shared state of one app: connections, channels, presence rosters, and
//! fan-out.
//!
//! One mutex per app guards its channels; every operation under it is short
//! and never awaits. Fan-out encodes a frame once ([`Bytes`], reference
//! counted) and `try_send`s it to each subscriber's bounded queue: a full
//! queue marks that connection a slow consumer and closes it (4100) instead
//! of buffering without bound or slowing the publisher.
//!
//! In cluster mode every publish and presence change is also forwarded
//! through the [`Broker`]; what other nodes forward arrives in
//! [`App::on_bus`]. Presence rosters are the union of this node's members
//! and the replica of the other nodes' (`remote`), so `member_added` /
//! `member_removed` fire when a user appears or disappears cluster-wide;
//! [`App::reconcile_remote`] repairs the replica from Redis when a message
//! was lost. Publishes are refused (`BusBusy`) before any local delivery
//! when the bus cannot take them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sealcast_core::protocol::{ChannelKind, ChannelName, PresenceMember, codes, server as frames};
use serde_json::value::RawValue;

use crate::cluster::{Broker, BusBusy, BusMessage, NodeEntries};
use crate::config::AppConfig;
use crate::jwt::TokenVerifier;
use crate::metrics::Metrics;
use crate::webhooks::{HookEvent, Webhooks};

pub use crate::outbound::{CloseRequest, ConnHandle};

/// One app's state.
#[derive(Debug)]
pub struct App {
    /// Its configuration.
    pub config: AppConfig,
    /// Its JWT public keys (empty when it uses HMAC auth only).
    pub tokens: TokenVerifier,
    /// Its webhook queue.
    pub webhooks: Webhooks,
    bus: Arc<dyn Broker>,
    state: Mutex<AppState>,
}

#[derive(Debug, Default)]
struct AppState {
    connections: HashMap<Arc<str>, Connection>,
    channels: HashMap<String, Channel>,
    /// Presence on other nodes: channel → user → (info, nodes with them).
    remote: HashMap<String, HashMap<String, RemoteMember>>,
    /// Subscriptions on other nodes: channel → node → count.
    remote_occupancy: HashMap<String, HashMap<String, usize>>,
    /// Differences between the replica and Redis seen at the last resync:
    /// corrected if the next one sees them too.
    suspects: HashSet<Suspect>,
}

/// A difference between this node's replica of the others and Redis.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Suspect {
    /// (channel, node, user) in the replica, not in Redis.
    Ghost(String, String, String),
    /// (channel, node, user) in Redis, not in the replica.
    Missing(String, String, String),
    /// (channel, node): the counts differ.
    Count(String, String),
}

#[derive(Debug)]
struct RemoteMember {
    info: Option<Box<RawValue>>,
    nodes: HashSet<String>,
}

impl AppState {
    fn remotely_present(&self, channel: &str, user_id: &str) -> bool {
        self.remote.get(channel).is_some_and(|users| users.contains_key(user_id))
    }
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
    /// The presence channel is full (members counted cluster-wide).
    PresenceFull,
    /// The connection is at `max_subscriptions_per_connection`.
    TooManySubscriptions,
    /// The app is at `max_channels` occupied channels on this node.
    TooManyChannels,
    /// The connection is gone.
    NotConnected,
}

/// A presence member on this node: (channel, user id, `user_info` JSON).
pub type LocalMember = (String, String, Option<String>);

/// One frame for one channel's subscribers (see [`App::publish_all`]).
#[derive(Debug, Clone)]
pub struct Publish {
    /// The channel.
    pub channel: String,
    /// The encoded frame.
    pub frame: Bytes,
    /// A socket id not to deliver to.
    pub except: Option<String>,
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
    pub fn new(config: AppConfig, bus: Arc<dyn Broker>) -> App {
        let tokens = TokenVerifier::from_config(&config.jwt_keys)
            .expect("jwt keys were validated when the config loaded");
        let webhooks = Webhooks::start(
            config.id.clone(),
            config.key.clone(),
            config.secret.clone(),
            config.webhooks.clone(),
        );
        App { config, tokens, webhooks, bus, state: Mutex::new(AppState::default()) }
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
            self.remove_subscriber(&mut state, &channel, socket_id, metrics);
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
        let remote_users = state.remote.get(channel.as_str());
        let conn = state.connections.get_mut(socket_id).ok_or(SubscribeError::NotConnected)?;
        if conn.channels.contains(channel.as_str()) {
            return Ok(());
        }
        if conn.channels.len() >= self.config.max_subscriptions_per_connection {
            return Err(SubscribeError::TooManySubscriptions);
        }
        let handle = conn.handle.clone();
        let channel_count = state.channels.len();
        if channel_count >= self.config.max_channels && !state.channels.contains_key(channel.as_str()) {
            return Err(SubscribeError::TooManyChannels);
        }
        let entry = state.channels.entry(channel.as_str().to_owned()).or_default();
        if let Some(member) = &member
            && !entry.members.contains_key(&member.user_id)
            && !remote_users.is_some_and(|users| users.contains_key(&member.user_id))
        {
            // Members on this node plus those only on other nodes.
            let remote_only = remote_users
                .map_or(0, |users| users.keys().filter(|id| !entry.members.contains_key(*id)).count());
            if entry.members.len() + remote_only >= self.config.max_presence_members {
                if entry.subscribers.is_empty() {
                    state.channels.remove(channel.as_str());
                }
                return Err(SubscribeError::PresenceFull);
            }
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
            if slot.connections == 1 && self.bus.is_clustered() {
                let message = BusMessage::MemberJoined {
                    channel: channel.as_str().to_owned(),
                    user_id: member.user_id.clone(),
                    info: slot.info.as_ref().map(|i| i.get().to_owned()),
                };
                self.tell_cluster(message, metrics);
            }
            let already_elsewhere = remote_users.is_some_and(|users| users.contains_key(&member.user_id));
            if slot.connections == 1 && !already_elsewhere {
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
        if self.bus.is_clustered() {
            let message = BusMessage::Occupancy {
                channel: channel.as_str().to_owned(),
                subscriptions: entry.subscribers.len(),
            };
            self.tell_cluster(message, metrics);
        }
        let succeeded = if channel.kind() == ChannelKind::Presence {
            // This node's members, then those only on other nodes.
            let local = entry.members.iter().map(|(id, m)| (id.as_str(), m.info.as_deref()));
            let remote = remote_users
                .into_iter()
                .flatten()
                .filter(|(id, _)| !entry.members.contains_key(*id))
                .map(|(id, m)| (id.as_str(), m.info.as_deref()));
            frames::presence_subscription_succeeded(
                channel.as_str(),
                local.chain(remote).collect::<Vec<_>>().into_iter(),
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
            self.remove_subscriber(&mut state, channel, socket_id, metrics);
        }
    }

    /// True when the connection is subscribed to `channel`; its presence
    /// user id if any.
    pub fn subscription(&self, socket_id: &str, channel: &str) -> Option<Option<String>> {
        let state = self.lock();
        state.channels.get(channel)?.subscribers.get(socket_id).map(|(_, user)| user.clone())
    }

    /// Sends `frame` to every subscriber of `channel` except `except`, on
    /// this node and (in cluster mode) every other. Returns the number of
    /// connections on this node it was queued for; refused (nothing sent
    /// anywhere) when the cluster bus cannot take it.
    pub fn publish(
        &self,
        channel: &str,
        frame: &Bytes,
        except: Option<&str>,
        metrics: &Metrics,
    ) -> Result<usize, BusBusy> {
        if self.bus.is_clustered() {
            let frame = String::from_utf8_lossy(frame).into_owned();
            let message =
                BusMessage::Event { channel: channel.to_owned(), frame, except: except.map(str::to_owned) };
            self.bus.forward(&self.config.id, vec![message])?;
        }
        Ok(self.deliver(channel, frame, except, metrics))
    }

    /// Publishes several frames: all of them or, when the cluster bus
    /// cannot take them all, none.
    pub fn publish_all(&self, publishes: Vec<Publish>, metrics: &Metrics) -> Result<(), BusBusy> {
        if self.bus.is_clustered() {
            let messages = publishes
                .iter()
                .map(|p| BusMessage::Event {
                    channel: p.channel.clone(),
                    frame: String::from_utf8_lossy(&p.frame).into_owned(),
                    except: p.except.clone(),
                })
                .collect();
            self.bus.forward(&self.config.id, messages)?;
        }
        for publish in &publishes {
            self.deliver(&publish.channel, &publish.frame, publish.except.as_deref(), metrics);
        }
        Ok(())
    }

    /// False while a clustered node cannot reach the others: publishes
    /// would reach only this node's subscribers, so they are refused.
    pub fn can_publish(&self) -> bool {
        self.bus.is_healthy()
    }

    /// Forwards presence, occupancy or terminate news to the other nodes.
    /// If the bus cannot take it, the periodic resync (docs/scaling.md)
    /// repairs the other nodes' view; the loss is counted.
    fn tell_cluster(&self, message: BusMessage, metrics: &Metrics) {
        if self.bus.forward(&self.config.id, vec![message]).is_err() {
            metrics.cluster_deferred.inc();
        }
    }

    /// Sends `frame` to this node's subscribers of `channel` except `except`.
    fn deliver(&self, channel: &str, frame: &Bytes, except: Option<&str>, metrics: &Metrics) -> usize {
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
    /// Occupied channels whose name starts with `prefix`, cluster-wide.
    pub fn channels(&self, prefix: &str) -> Vec<(String, ChannelInfo)> {
        let state = self.lock();
        let names: HashSet<&String> = state.channels.keys().chain(state.remote_occupancy.keys()).collect();
        let mut list: Vec<_> = names
            .into_iter()
            .filter(|name| name.starts_with(prefix))
            .filter_map(|name| info_of(&state, name).map(|info| (name.clone(), info)))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Occupancy of one channel, cluster-wide (`None` when nobody is subscribed).
    pub fn channel(&self, name: &str) -> Option<ChannelInfo> {
        info_of(&self.lock(), name)
    }

    /// User ids in a presence channel.
    pub fn users(&self, name: &str) -> Vec<String> {
        let state = self.lock();
        let local = state.channels.get(name).into_iter().flat_map(|c| c.members.keys());
        let remote = state.remote.get(name).into_iter().flat_map(|users| users.keys());
        let mut users: Vec<String> =
            local.chain(remote).cloned().collect::<HashSet<_>>().into_iter().collect();
        users.sort();
        users
    }

    /// The user a connection signed in as (`pusher:signin`), if any.
    pub fn signed_in_user(&self, socket_id: &str) -> Option<String> {
        self.lock().connections.get(socket_id)?.user_id.clone()
    }

    /// Records the user a connection signed in as.
    pub fn sign_in(&self, socket_id: &str, user_id: String) {
        if let Some(conn) = self.lock().connections.get_mut(socket_id) {
            conn.user_id = Some(user_id);
        }
    }

    /// Closes every connection of `user_id` (signed in, or present in a
    /// presence channel). Returns how many.
    pub fn terminate_user(&self, user_id: &str, metrics: &Metrics) -> usize {
        if self.bus.is_clustered() {
            self.tell_cluster(BusMessage::Terminate { user_id: user_id.to_owned() }, metrics);
        }
        self.terminate_local(user_id)
    }

    fn terminate_local(&self, user_id: &str) -> usize {
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

/// A channel's subscriptions on this node and the others, and its
/// distinct presence users; `None` when it has no subscriber anywhere.
fn info_of(state: &AppState, name: &str) -> Option<ChannelInfo> {
    let local = state.channels.get(name);
    let remote: usize = state.remote_occupancy.get(name).map_or(0, |nodes| nodes.values().sum());
    let subscription_count = local.map_or(0, |c| c.subscribers.len()) + remote;
    if subscription_count == 0 {
        return None;
    }
    let user_count = name.starts_with("presence-").then(|| {
        let local_users = local.into_iter().flat_map(|c| c.members.keys());
        let remote_users = state.remote.get(name).into_iter().flat_map(|users| users.keys());
        local_users.chain(remote_users).collect::<HashSet<_>>().len()
    });
    Some(ChannelInfo { subscription_count, user_count })
}

impl App {
    fn remove_subscriber(&self, state: &mut AppState, channel: &str, socket_id: &str, metrics: &Metrics) {
        let elsewhere = |state: &AppState, user_id: &str| state.remotely_present(channel, user_id);
        let Some(entry) = state.channels.get(channel) else { return };
        let Some((_, user_id)) = entry.subscribers.get(socket_id).cloned() else { return };
        let remote = user_id.as_deref().is_some_and(|u| elsewhere(state, u));
        let entry = state.channels.get_mut(channel).expect("found above");
        entry.subscribers.remove(socket_id);
        metrics.subscriptions.dec();
        if let Some(user_id) = user_id
            && let Some(member) = entry.members.get_mut(&user_id)
        {
            member.connections -= 1;
            if member.connections == 0 {
                entry.members.remove(&user_id);
                if self.bus.is_clustered() {
                    let message =
                        BusMessage::MemberLeft { channel: channel.to_owned(), user_id: user_id.clone() };
                    self.tell_cluster(message, metrics);
                }
                if !remote {
                    self.member_removed(entry, channel, &user_id, metrics);
                }
            }
        }
        if self.bus.is_clustered() {
            let message =
                BusMessage::Occupancy { channel: channel.to_owned(), subscriptions: entry.subscribers.len() };
            self.tell_cluster(message, metrics);
        }
        if entry.subscribers.is_empty() {
            state.channels.remove(channel);
            tracing::debug!(channel, "channel vacated");
            self.webhooks.emit(HookEvent::ChannelVacated { channel: channel.to_owned() }, metrics);
        }
    }

    /// Tells a channel's subscribers (and the webhooks) that `user_id` left
    /// this node and is on no other.
    fn member_removed(&self, entry: &Channel, channel: &str, user_id: &str, metrics: &Metrics) {
        self.webhooks.emit(
            HookEvent::MemberRemoved { channel: channel.to_owned(), user_id: user_id.to_owned() },
            metrics,
        );
        self.tell_member_removed(entry, channel, user_id, metrics);
    }

    /// Sends `member_removed` to this node's subscribers of `channel`.
    fn tell_member_removed(&self, entry: &Channel, channel: &str, user_id: &str, metrics: &Metrics) {
        let removed = Bytes::from(frames::member_removed(channel, user_id));
        for (peer, _) in entry.subscribers.values() {
            peer.send(removed.clone(), metrics);
        }
    }

    /// A message another node forwarded.
    pub fn on_bus(&self, node: &str, message: BusMessage, metrics: &Metrics) {
        match message {
            BusMessage::Event { channel, frame, except } => {
                self.deliver(&channel, &Bytes::from(frame), except.as_deref(), metrics);
            }
            BusMessage::MemberJoined { channel, user_id, info } => {
                let info = info.and_then(|i| RawValue::from_string(i).ok());
                let mut state = self.lock();
                let local = state.channels.get(&channel).is_some_and(|c| c.members.contains_key(&user_id));
                let users = state.remote.entry(channel.clone()).or_default();
                let new = !users.contains_key(&user_id);
                let member =
                    users.entry(user_id.clone()).or_insert(RemoteMember { info, nodes: HashSet::new() });
                member.nodes.insert(node.to_owned());
                // The webhook is the origin node's to send; only tell our
                // subscribers.
                if new && !local {
                    let info = member.info.clone();
                    if let Some(entry) = state.channels.get(&channel) {
                        let added = Bytes::from(frames::member_added(&channel, &user_id, info.as_deref()));
                        for (peer, _) in entry.subscribers.values() {
                            peer.send(added.clone(), metrics);
                        }
                    }
                }
            }
            BusMessage::MemberLeft { channel, user_id } => {
                self.remote_member_left(&mut self.lock(), &channel, &user_id, node, metrics);
            }
            BusMessage::Occupancy { channel, subscriptions } => {
                let mut state = self.lock();
                let nodes = state.remote_occupancy.entry(channel.clone()).or_default();
                if subscriptions == 0 {
                    nodes.remove(node);
                    if nodes.is_empty() {
                        state.remote_occupancy.remove(&channel);
                    }
                } else {
                    nodes.insert(node.to_owned(), subscriptions);
                }
            }
            BusMessage::Terminate { user_id } => {
                self.terminate_local(&user_id);
            }
        }
    }

    fn remote_member_left(
        &self,
        state: &mut AppState,
        channel: &str,
        user_id: &str,
        node: &str,
        metrics: &Metrics,
    ) {
        let Some(users) = state.remote.get_mut(channel) else { return };
        let Some(member) = users.get_mut(user_id) else { return };
        member.nodes.remove(node);
        if !member.nodes.is_empty() {
            return;
        }
        users.remove(user_id);
        if users.is_empty() {
            state.remote.remove(channel);
        }
        let local = state.channels.get(channel).is_some_and(|c| c.members.contains_key(user_id));
        if !local && let Some(entry) = state.channels.get(channel) {
            self.tell_member_removed(entry, channel, user_id, metrics);
        }
    }

    /// This node's presence members (channel, user, info JSON) and
    /// subscription counts (channel, count), for the resync.
    pub fn local_entries(&self) -> (Vec<LocalMember>, Vec<(String, usize)>) {
        let state = self.lock();
        let mut members = Vec::new();
        let mut occupancy = Vec::new();
        for (name, channel) in &state.channels {
            occupancy.push((name.clone(), channel.subscribers.len()));
            for (user, member) in &channel.members {
                members.push((name.clone(), user.clone(), member.info.as_ref().map(|i| i.get().to_owned())));
            }
        }
        (members, occupancy)
    }

    /// Compares the replica of the other nodes with what Redis holds
    /// (`members`: channel, node, user, info; `counts`: channel, node,
    /// subscriptions) and corrects what differed at the previous call too,
    /// with the events a live message would have caused. Returns how many
    /// entries it corrected.
    pub fn reconcile_remote(
        &self,
        members: Vec<(String, String, String, Option<String>)>,
        counts: Vec<(String, String, usize)>,
        metrics: &Metrics,
    ) -> usize {
        let mut fixes = Vec::new();
        {
            let mut state = self.lock();
            let mut seen = HashSet::new();
            let in_redis: HashSet<(&str, &str, &str)> =
                members.iter().map(|(c, n, u, _)| (c.as_str(), n.as_str(), u.as_str())).collect();
            for (channel, users) in &state.remote {
                for (user, member) in users {
                    for node in &member.nodes {
                        if !in_redis.contains(&(channel.as_str(), node.as_str(), user.as_str())) {
                            let suspect = Suspect::Ghost(channel.clone(), node.clone(), user.clone());
                            if state.suspects.contains(&suspect) {
                                let message = BusMessage::MemberLeft {
                                    channel: channel.clone(),
                                    user_id: user.clone(),
                                };
                                fixes.push((node.clone(), message));
                            } else {
                                seen.insert(suspect);
                            }
                        }
                    }
                }
            }
            for (channel, node, user, info) in &members {
                let known = state
                    .remote
                    .get(channel)
                    .and_then(|users| users.get(user))
                    .is_some_and(|m| m.nodes.contains(node));
                if !known {
                    let suspect = Suspect::Missing(channel.clone(), node.clone(), user.clone());
                    if state.suspects.contains(&suspect) {
                        let message = BusMessage::MemberJoined {
                            channel: channel.clone(),
                            user_id: user.clone(),
                            info: info.clone(),
                        };
                        fixes.push((node.clone(), message));
                    } else {
                        seen.insert(suspect);
                    }
                }
            }
            let mut redis_counts: HashMap<(&str, &str), usize> = HashMap::new();
            for (channel, node, n) in &counts {
                redis_counts.insert((channel.as_str(), node.as_str()), *n);
            }
            let replica_keys: Vec<(String, String)> = state
                .remote_occupancy
                .iter()
                .flat_map(|(c, nodes)| nodes.keys().map(move |n| (c.clone(), n.clone())))
                .collect();
            let mut keys: HashSet<(String, String)> = replica_keys.into_iter().collect();
            keys.extend(counts.iter().map(|(c, n, _)| (c.clone(), n.clone())));
            for (channel, node) in keys {
                let replica =
                    state.remote_occupancy.get(&channel).and_then(|n| n.get(&node)).copied().unwrap_or(0);
                let truth = redis_counts.get(&(channel.as_str(), node.as_str())).copied().unwrap_or(0);
                if replica != truth {
                    let suspect = Suspect::Count(channel.clone(), node.clone());
                    if state.suspects.contains(&suspect) {
                        fixes.push((node, BusMessage::Occupancy { channel, subscriptions: truth }));
                    } else {
                        seen.insert(suspect);
                    }
                }
            }
            state.suspects = seen;
        }
        let fixed = fixes.len();
        for (node, message) in fixes {
            self.on_bus(&node, message, metrics);
        }
        fixed
    }

    /// Records presence another node had before this one started (no
    /// events: nobody here has seen a roster yet).
    pub fn load_remote_member(&self, channel: &str, node: &str, user_id: &str, info: Option<Box<RawValue>>) {
        let mut state = self.lock();
        let member = state
            .remote
            .entry(channel.to_owned())
            .or_default()
            .entry(user_id.to_owned())
            .or_insert(RemoteMember { info, nodes: HashSet::new() });
        member.nodes.insert(node.to_owned());
    }

    /// Other nodes this app has presence or subscriptions from.
    pub fn remote_nodes(&self) -> HashSet<String> {
        let state = self.lock();
        let presence = state.remote.values().flat_map(|users| users.values().flat_map(|m| m.nodes.iter()));
        let occupancy = state.remote_occupancy.values().flat_map(|nodes| nodes.keys());
        presence.chain(occupancy).cloned().collect()
    }

    /// `node` died: its members leave (with `member_removed` where they
    /// were nowhere else) and its subscriptions stop counting. Returns what
    /// it left behind.
    pub fn node_gone(&self, node: &str, metrics: &Metrics) -> NodeEntries {
        let mut state = self.lock();
        let mut channels = Vec::new();
        state.remote_occupancy.retain(|channel, nodes| {
            if nodes.remove(node).is_some() {
                channels.push(channel.clone());
            }
            !nodes.is_empty()
        });
        let members: Vec<(String, String)> = state
            .remote
            .iter()
            .flat_map(|(channel, users)| {
                users
                    .iter()
                    .filter(|(_, m)| m.nodes.contains(node))
                    .map(|(user, _)| (channel.clone(), user.clone()))
            })
            .collect();
        for (channel, user) in &members {
            self.remote_member_left(&mut state, channel, user, node, metrics);
        }
        NodeEntries { members, channels }
    }
}
