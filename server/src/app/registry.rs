//! [`Registry`]: one app's connections, channels and presence rosters on
//! this node, and its replica of the other nodes' — data, no effects.
//!
//! Every change returns the [`Transition`]s it caused (a channel occupied,
//! the first connection of a user here, a member added cluster-wide, …);
//! the app ([`crate::app::App`]) turns them into effects: frames to
//! subscribers, webhooks, bus messages. The one effect done here is
//! fan-out ([`Registry::deliver`]), which only walks the subscribers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sealcast_core::protocol::{ChannelKind, ChannelName, PresenceMember, server as frames};
use serde_json::value::RawValue;

use super::replica::{LocalMember, NodeCount, NodeEntries, NodeMember, Replica};
use crate::config::AppConfig;
use crate::metrics::Metrics;
use crate::ws::outbound::{ConnHandle, Fanout};

/// What a change did, for the app to act on (in order).
#[derive(Debug, Clone)]
pub enum Transition {
    /// A connection subscribed (one more subscription).
    Subscribed,
    /// A subscription ended (one fewer).
    Unsubscribed,
    /// The channel got its first subscriber on this node.
    Occupied { channel: String },
    /// The channel lost its last subscriber on this node.
    Vacated { channel: String },
    /// This node's subscription count of the channel changed.
    Occupancy { channel: String, subscriptions: usize },
    /// The first connection of the user on this node joined the channel.
    JoinedHere { channel: String, user_id: String, info: Option<String> },
    /// The last connection of the user on this node left the channel.
    LeftHere { channel: String, user_id: String },
    /// The user is now in the channel and was nowhere in the cluster: tell
    /// this node's subscribers (except `except`). `here`: it happened on
    /// this node. (Webhooks follow `JoinedHere`/`LeftHere`: in a cluster the
    /// webhook claims pick the one node that sends them.)
    MemberAdded {
        channel: String,
        user_id: String,
        info: Option<Box<RawValue>>,
        except: Option<Arc<str>>,
        here: bool,
    },
    /// The user left the channel and is nowhere else in the cluster.
    MemberRemoved { channel: String, user_id: String, here: bool },
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

/// Who does not get a frame, and what it gets instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct Except<'a> {
    /// The socket not to deliver to (a client event's sender, or the HTTP
    /// API's `socket_id`).
    pub socket_id: Option<&'a str>,
    /// On a channel with history, what that socket gets instead: the
    /// position it skips (`pusher_internal:sealcast_excluded`), so its
    /// client sees no gap in the stream.
    pub notice: Option<&'a Bytes>,
}

impl<'a> Except<'a> {
    /// Everyone but `socket_id`, with no notice.
    pub fn socket(socket_id: Option<&'a str>) -> Except<'a> {
        Except { socket_id, notice: None }
    }
}

/// A subscription made: what it caused, and the reply for the subscriber.
#[derive(Debug)]
pub struct Subscribed {
    /// In order.
    pub transitions: Vec<Transition>,
    /// The subscriber.
    pub handle: ConnHandle,
    /// `pusher_internal:subscription_succeeded` (with the roster on a
    /// presence channel); `None` when it was subscribed already.
    pub reply: Option<String>,
}

/// Channel occupancy for the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Connections subscribed.
    pub subscription_count: usize,
    /// Distinct presence users (presence channels only).
    pub user_count: Option<usize>,
}

/// The limits the registry enforces (from the app's config).
#[derive(Debug, Clone, Copy)]
struct Limits {
    connections: usize,
    subscriptions_per_connection: usize,
    channels: usize,
    presence_members: usize,
}

impl Limits {
    fn of(config: &AppConfig) -> Limits {
        Limits {
            connections: config.max_connections,
            subscriptions_per_connection: config.max_subscriptions_per_connection,
            channels: config.max_channels,
            presence_members: config.max_presence_members,
        }
    }
}

/// One app's registry (kept behind the app's read-write lock: fan-out
/// reads, every change writes).
#[derive(Debug)]
pub struct Registry {
    limits: Limits,
    connections: HashMap<Arc<str>, Connection>,
    channels: HashMap<String, Channel>,
    /// What the other nodes have.
    replica: Replica,
}

#[derive(Debug)]
struct Connection {
    handle: ConnHandle,
    channels: HashSet<String>,
    user_id: Option<String>,
}

#[derive(Debug, Default)]
struct Channel {
    /// Held while a fan-out queues one frame for this channel's
    /// subscribers. Fan-outs run under the app's *read* lock, so two
    /// publishers on one channel would otherwise interleave in the
    /// subscribers' queues; with it every subscriber sees one channel's
    /// events in one order, while different channels proceed in parallel.
    order: Mutex<()>,
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

impl Registry {
    /// An empty registry with `config`'s limits.
    pub fn new(config: &AppConfig) -> Registry {
        Registry {
            limits: Limits::of(config),
            connections: HashMap::new(),
            channels: HashMap::new(),
            replica: Replica::default(),
        }
    }

    /// Enforces `config`'s limits from now on (what is already over a
    /// lowered limit stays; only what comes next is refused).
    pub fn set_limits(&mut self, config: &AppConfig) {
        self.limits = Limits::of(config);
    }

    /// Registers a connection; false when the app is at its connection limit.
    pub fn connect(&mut self, handle: ConnHandle) -> bool {
        if self.limits.connections > 0 && self.connections.len() >= self.limits.connections {
            return false;
        }
        let connection = Connection { handle: handle.clone(), channels: HashSet::new(), user_id: None };
        self.connections.insert(handle.socket_id, connection);
        true
    }

    /// Removes a connection from every channel.
    pub fn disconnect(&mut self, socket_id: &str) -> Vec<Transition> {
        let mut transitions = Vec::new();
        if let Some(conn) = self.connections.remove(socket_id) {
            for channel in conn.channels {
                self.remove_subscriber(&channel, socket_id, &mut transitions);
            }
        }
        transitions
    }

    /// Subscribes a connection; `member` is required on presence channels.
    /// Subscribing twice changes nothing (and gets no second reply).
    pub fn subscribe(
        &mut self,
        socket_id: &str,
        channel: &ChannelName,
        member: Option<PresenceMember>,
    ) -> Result<Subscribed, SubscribeError> {
        let name = channel.as_str();
        let replica = &self.replica;
        let conn = self.connections.get_mut(socket_id).ok_or(SubscribeError::NotConnected)?;
        let handle = conn.handle.clone();
        if conn.channels.contains(name) {
            return Ok(Subscribed { transitions: Vec::new(), handle, reply: None });
        }
        if conn.channels.len() >= self.limits.subscriptions_per_connection {
            return Err(SubscribeError::TooManySubscriptions);
        }
        let existing = self.channels.get(name);
        if existing.is_none() && self.channels.len() >= self.limits.channels {
            return Err(SubscribeError::TooManyChannels);
        }
        if let Some(member) = &member {
            let members = existing.map(|c| &c.members);
            let known = members.is_some_and(|m| m.contains_key(&member.user_id))
                || replica.has_member(name, &member.user_id);
            // Members on this node plus those only on other nodes.
            let here = members.map_or(0, HashMap::len);
            let elsewhere =
                replica.members(name).filter(|(id, _)| !members.is_some_and(|m| m.contains_key(*id))).count();
            if !known && here + elsewhere >= self.limits.presence_members {
                return Err(SubscribeError::PresenceFull);
            }
        }
        let mut transitions = vec![Transition::Subscribed];
        let entry = self.channels.entry(name.to_owned()).or_default();
        // Order follows causality: the channel is occupied before anyone
        // is added to it.
        if entry.subscribers.is_empty() {
            transitions.push(Transition::Occupied { channel: name.to_owned() });
        }
        let user_id = member.as_ref().map(|m| m.user_id.clone());
        if let Some(member) = member {
            let slot = entry
                .members
                .entry(member.user_id.clone())
                .or_insert(Member { info: member.user_info, connections: 0 });
            slot.connections += 1;
            if slot.connections == 1 {
                transitions.push(Transition::JoinedHere {
                    channel: name.to_owned(),
                    user_id: member.user_id.clone(),
                    info: slot.info.as_ref().map(|i| i.get().to_owned()),
                });
                if !replica.has_member(name, &member.user_id) {
                    transitions.push(Transition::MemberAdded {
                        channel: name.to_owned(),
                        user_id: member.user_id,
                        info: slot.info.clone(),
                        except: Some(handle.socket_id.clone()),
                        here: true,
                    });
                }
            }
        }
        conn.channels.insert(name.to_owned());
        entry.subscribers.insert(handle.socket_id.clone(), (handle.clone(), user_id));
        transitions
            .push(Transition::Occupancy { channel: name.to_owned(), subscriptions: entry.subscribers.len() });
        let reply = if channel.kind() == ChannelKind::Presence {
            // This node's members, then those only on other nodes.
            let local = entry.members.iter().map(|(id, m)| (id.as_str(), m.info.as_deref()));
            let remote = replica.members(name).filter(|(id, _)| !entry.members.contains_key(*id));
            frames::presence_subscription_succeeded(name, local.chain(remote).collect::<Vec<_>>().into_iter())
        } else {
            frames::subscription_succeeded(name)
        };
        Ok(Subscribed { transitions, handle, reply: Some(reply) })
    }

    /// Unsubscribes a connection from a channel.
    pub fn unsubscribe(&mut self, socket_id: &str, channel: &str) -> Vec<Transition> {
        let mut transitions = Vec::new();
        if self.connections.get_mut(socket_id).is_some_and(|c| c.channels.remove(channel)) {
            self.remove_subscriber(channel, socket_id, &mut transitions);
        }
        transitions
    }

    fn remove_subscriber(&mut self, channel: &str, socket_id: &str, transitions: &mut Vec<Transition>) {
        let Some(entry) = self.channels.get(channel) else { return };
        let Some((_, user_id)) = entry.subscribers.get(socket_id).cloned() else { return };
        let elsewhere = user_id.as_deref().is_some_and(|u| self.replica.has_member(channel, u));
        let Some(entry) = self.channels.get_mut(channel) else { return };
        entry.subscribers.remove(socket_id);
        transitions.push(Transition::Unsubscribed);
        if let Some(user_id) = user_id
            && let Some(member) = entry.members.get_mut(&user_id)
        {
            member.connections -= 1;
            if member.connections == 0 {
                entry.members.remove(&user_id);
                transitions
                    .push(Transition::LeftHere { channel: channel.to_owned(), user_id: user_id.clone() });
                if !elsewhere {
                    transitions.push(Transition::MemberRemoved {
                        channel: channel.to_owned(),
                        user_id,
                        here: true,
                    });
                }
            }
        }
        let subscriptions = entry.subscribers.len();
        transitions.push(Transition::Occupancy { channel: channel.to_owned(), subscriptions });
        if subscriptions == 0 {
            self.channels.remove(channel);
            transitions.push(Transition::Vacated { channel: channel.to_owned() });
        }
    }

    /// The connection's subscription to `channel`: `Some(presence user id)`
    /// when subscribed.
    pub fn subscription(&self, socket_id: &str, channel: &str) -> Option<Option<String>> {
        self.channels.get(channel)?.subscribers.get(socket_id).map(|(_, user)| user.clone())
    }

    /// Queues `frame` for this node's subscribers of `channel` except
    /// `except` (written by `fanout` once the app's lock is released); how
    /// many it was queued for. Needs only `&self`, so fan-outs run under
    /// the app's read lock; the channel's order lock serializes one
    /// channel's fan-outs.
    pub fn deliver(
        &self,
        channel: &str,
        frame: &Bytes,
        except: Except<'_>,
        fanout: &mut Fanout,
        metrics: &Metrics,
    ) -> usize {
        let Some(entry) = self.channels.get(channel) else { return 0 };
        // A panic while queueing would be a bug; the queues stay consistent.
        let _order = entry.order.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut sent = 0;
        for (socket_id, (handle, _)) in &entry.subscribers {
            if Some(&**socket_id) == except.socket_id {
                if let Some(notice) = except.notice {
                    fanout.push(handle, notice.clone(), metrics);
                }
            } else if fanout.push(handle, frame.clone(), metrics) {
                sent += 1;
            }
        }
        metrics.messages_out.add(sent as u64);
        metrics.bytes_out.add((sent * frame.len()) as u64);
        sent
    }

    /// Occupied channels whose name starts with `prefix`, cluster-wide.
    pub fn channels(&self, prefix: &str) -> Vec<(String, ChannelInfo)> {
        let names: HashSet<&String> = self.channels.keys().chain(self.replica.channels()).collect();
        let mut list: Vec<_> = names
            .into_iter()
            .filter(|name| name.starts_with(prefix))
            .filter_map(|name| self.channel(name).map(|info| (name.clone(), info)))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// A channel's subscriptions on this node and the others, and its
    /// distinct presence users; `None` when it has no subscriber anywhere.
    pub fn channel(&self, name: &str) -> Option<ChannelInfo> {
        let local = self.channels.get(name);
        let remote = self.replica.subscriptions(name);
        let subscription_count = local.map_or(0, |c| c.subscribers.len()) + remote;
        if subscription_count == 0 {
            return None;
        }
        let user_count = ChannelKind::of(name).is_presence().then(|| self.users(name).len());
        Some(ChannelInfo { subscription_count, user_count })
    }

    /// User ids in a presence channel, cluster-wide, sorted.
    pub fn users(&self, name: &str) -> Vec<String> {
        let local = self.channels.get(name).into_iter().flat_map(|c| c.members.keys());
        let local = local.map(String::as_str);
        let remote = self.replica.members(name).map(|(id, _)| id);
        let mut users: Vec<String> =
            local.chain(remote).collect::<HashSet<_>>().into_iter().map(str::to_owned).collect();
        users.sort();
        users
    }

    /// The user a connection signed in as (`pusher:signin`), if any.
    pub fn signed_in_user(&self, socket_id: &str) -> Option<String> {
        self.connections.get(socket_id)?.user_id.clone()
    }

    /// Records the user a connection signed in as.
    pub fn sign_in(&mut self, socket_id: &str, user_id: String) {
        if let Some(conn) = self.connections.get_mut(socket_id) {
            conn.user_id = Some(user_id);
        }
    }

    /// The connections of `user_id`: signed in as them, or present as them
    /// in a presence channel.
    pub fn connections_of(&self, user_id: &str) -> Vec<ConnHandle> {
        let present = |conn: &Connection| {
            conn.channels.iter().any(|name| {
                self.channels
                    .get(name)
                    .and_then(|c| c.subscribers.get(&conn.handle.socket_id))
                    .is_some_and(|(_, user)| user.as_deref() == Some(user_id))
            })
        };
        self.connections
            .values()
            .filter(|conn| conn.user_id.as_deref() == Some(user_id) || present(conn))
            .map(|conn| conn.handle.clone())
            .collect()
    }

    /// Every connection.
    pub fn handles(&self) -> impl Iterator<Item = &ConnHandle> {
        self.connections.values().map(|conn| &conn.handle)
    }

    /// This node's presence members and subscription counts (channel,
    /// count), for the resync.
    pub fn local_entries(&self) -> (Vec<LocalMember>, Vec<(String, usize)>) {
        let mut members = Vec::new();
        let mut occupancy = Vec::new();
        for (name, channel) in &self.channels {
            occupancy.push((name.clone(), channel.subscribers.len()));
            for (user, member) in &channel.members {
                members.push(LocalMember {
                    channel: name.clone(),
                    user_id: user.clone(),
                    info: member.info.as_ref().map(|i| i.get().to_owned()),
                });
            }
        }
        (members, occupancy)
    }

    /// `node` has a connection of `user_id` in `channel` (its first).
    pub fn remote_joined(
        &mut self,
        node: &str,
        channel: &str,
        user_id: &str,
        info: Option<Box<RawValue>>,
    ) -> Option<Transition> {
        let local = self.channels.get(channel).is_some_and(|c| c.members.contains_key(user_id));
        let info = self.replica.joined(node, channel, user_id, info)?;
        // The webhook is the origin node's to send (`here: false`).
        (!local).then(|| Transition::MemberAdded {
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
            info,
            except: None,
            here: false,
        })
    }

    /// `node` no longer has a connection of `user_id` in `channel`.
    pub fn remote_left(&mut self, node: &str, channel: &str, user_id: &str) -> Option<Transition> {
        if !self.replica.left(node, channel, user_id) {
            return None;
        }
        let local = self.channels.get(channel).is_some_and(|c| c.members.contains_key(user_id));
        let subscribed_here = self.channels.contains_key(channel);
        (!local && subscribed_here).then(|| Transition::MemberRemoved {
            channel: channel.to_owned(),
            user_id: user_id.to_owned(),
            here: false,
        })
    }

    /// `node` has `subscriptions` subscriptions to `channel` (0: none).
    pub fn remote_occupancy(&mut self, node: &str, channel: &str, subscriptions: usize) {
        self.replica.set_count(node, channel, subscriptions);
    }

    /// Other nodes this app has presence or subscriptions from.
    pub fn remote_nodes(&self) -> HashSet<String> {
        self.replica.nodes()
    }

    /// `node` died: its members leave and its subscriptions stop counting.
    /// Returns what it left behind, and the transitions.
    pub fn node_gone(&mut self, node: &str) -> (NodeEntries, Vec<Transition>) {
        let entries = self.replica.forget_counts_of(node);
        let transitions = entries
            .members
            .iter()
            .filter_map(|(channel, user)| self.remote_left(node, channel, user))
            .collect();
        (entries, transitions)
    }

    /// Compares the replica of the other nodes with what Redis holds and
    /// corrects what differed at the previous call too. Returns the
    /// transitions and how many entries were corrected.
    pub fn reconcile(&mut self, members: &[NodeMember], counts: &[NodeCount]) -> (Vec<Transition>, usize) {
        let corrections = self.replica.compare(members, counts);
        let fixed = corrections.len();
        let mut transitions = Vec::new();
        for ghost in corrections.ghosts {
            transitions.extend(self.remote_left(&ghost.node, &ghost.channel, &ghost.user_id));
        }
        for missing in corrections.missing {
            let info = missing.info.and_then(|i| RawValue::from_string(i).ok());
            transitions.extend(self.remote_joined(&missing.node, &missing.channel, &missing.user_id, info));
        }
        for count in &corrections.recounts {
            self.remote_occupancy(&count.node, &count.channel, count.subscriptions);
        }
        (transitions, fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::outbound::QueueLimits;

    fn names(transitions: &[Transition]) -> Vec<&'static str> {
        transitions
            .iter()
            .map(|t| match t {
                Transition::Subscribed => "subscribed",
                Transition::Unsubscribed => "unsubscribed",
                Transition::Occupied { .. } => "occupied",
                Transition::Vacated { .. } => "vacated",
                Transition::Occupancy { .. } => "occupancy",
                Transition::JoinedHere { .. } => "joined here",
                Transition::LeftHere { .. } => "left here",
                Transition::MemberAdded { here: true, .. } => "member added here",
                Transition::MemberAdded { here: false, .. } => "member added elsewhere",
                Transition::MemberRemoved { here: true, .. } => "member removed here",
                Transition::MemberRemoved { here: false, .. } => "member removed elsewhere",
            })
            .collect()
    }

    fn registry(edit: impl FnOnce(&mut AppConfig)) -> Registry {
        let mut config = AppConfig::new("a", "k", "s");
        edit(&mut config);
        Registry::new(&config)
    }

    fn connect(registry: &mut Registry, socket_id: &str) {
        let limits = QueueLimits { frames: 16, bytes: 1 << 20 };
        let (handle, _close) = ConnHandle::new(socket_id.into(), None, limits);
        assert!(registry.connect(handle));
    }

    fn member(user: &str) -> Option<PresenceMember> {
        Some(PresenceMember { user_id: user.into(), user_info: None })
    }

    fn presence(name: &str) -> ChannelName {
        ChannelName::parse(name).unwrap()
    }

    #[test]
    fn a_users_first_and_last_connection_are_the_member_transitions() {
        let mut reg = registry(|_| {});
        let room = presence("presence-room");
        for socket in ["1.1", "1.2"] {
            connect(&mut reg, socket);
        }
        let first = reg.subscribe("1.1", &room, member("ann")).unwrap();
        assert_eq!(
            names(&first.transitions),
            ["subscribed", "occupied", "joined here", "member added here", "occupancy"]
        );
        assert!(first.reply.unwrap().contains("ann"));
        let second = reg.subscribe("1.2", &room, member("ann")).unwrap();
        assert_eq!(names(&second.transitions), ["subscribed", "occupancy"]);
        assert!(reg.subscribe("1.2", &room, member("ann")).unwrap().reply.is_none(), "twice is a no-op");
        assert_eq!(names(&reg.unsubscribe("1.1", "presence-room")), ["unsubscribed", "occupancy"]);
        assert_eq!(
            names(&reg.disconnect("1.2")),
            ["unsubscribed", "left here", "member removed here", "occupancy", "vacated"]
        );
        assert!(reg.channel("presence-room").is_none());
    }

    #[test]
    fn a_member_on_another_node_is_added_and_removed_once() {
        let mut reg = registry(|_| {});
        let room = presence("presence-room");
        connect(&mut reg, "1.1");
        reg.subscribe("1.1", &room, member("ann")).unwrap();
        // Bob joins on node B: our subscriber hears of it.
        let added = reg.remote_joined("node-b", "presence-room", "bob", None);
        assert_eq!(names(&added.into_iter().collect::<Vec<_>>()), ["member added elsewhere"]);
        // Ann on node B too: she is here already, nobody is told.
        assert!(reg.remote_joined("node-b", "presence-room", "ann", None).is_none());
        assert!(reg.remote_left("node-b", "presence-room", "ann").is_none());
        // Bob connects here as well, then leaves here: he is still on B.
        connect(&mut reg, "1.2");
        let bob_here = reg.subscribe("1.2", &room, member("bob")).unwrap();
        assert_eq!(names(&bob_here.transitions), ["subscribed", "joined here", "occupancy"]);
        assert_eq!(names(&reg.disconnect("1.2")), ["unsubscribed", "left here", "occupancy"]);
        assert_eq!(reg.users("presence-room"), ["ann", "bob"]);
        let (entries, transitions) = reg.node_gone("node-b");
        assert_eq!(entries.members, [("presence-room".to_owned(), "bob".to_owned())]);
        assert_eq!(names(&transitions), ["member removed elsewhere"]);
    }

    #[test]
    fn caps_refuse_subscriptions() {
        let mut reg = registry(|c| {
            (c.max_subscriptions_per_connection, c.max_channels, c.max_presence_members) = (2, 3, 2);
        });
        connect(&mut reg, "1.1");
        connect(&mut reg, "1.2");
        for name in ["a", "b"] {
            reg.subscribe("1.1", &presence(name), None).unwrap();
        }
        assert_eq!(
            reg.subscribe("1.1", &presence("c"), None).unwrap_err(),
            SubscribeError::TooManySubscriptions
        );
        reg.subscribe("1.2", &presence("presence-p"), member("ann")).unwrap();
        assert_eq!(reg.subscribe("1.2", &presence("d"), None).unwrap_err(), SubscribeError::TooManyChannels);
        // The presence cap counts the members other nodes have.
        reg.remote_joined("node-b", "presence-p", "bob", None);
        connect(&mut reg, "1.3");
        let refused = reg.subscribe("1.3", &presence("presence-p"), member("cy")).unwrap_err();
        assert_eq!(refused, SubscribeError::PresenceFull);
        // A known member is let in whatever the count.
        assert!(reg.subscribe("1.3", &presence("presence-p"), member("bob")).is_ok());
    }

    #[test]
    fn reconcile_corrects_what_two_passes_see() {
        let mut reg = registry(|_| {});
        connect(&mut reg, "1.1");
        reg.subscribe("1.1", &presence("presence-room"), member("ann")).unwrap();
        reg.remote_joined("node-b", "presence-room", "ghost", None);
        let redis = [NodeMember {
            channel: "presence-room".into(),
            node: "node-b".into(),
            user_id: "cy".into(),
            info: None,
        }];
        let counts = [NodeCount { channel: "presence-room".into(), node: "node-b".into(), subscriptions: 1 }];
        // First pass: only suspicions.
        let (transitions, fixed) = reg.reconcile(&redis, &counts);
        assert_eq!((transitions.len(), fixed), (0, 0));
        // Second: the ghost leaves, cy arrives, the count is taken.
        let (transitions, fixed) = reg.reconcile(&redis, &counts);
        assert_eq!(names(&transitions), ["member removed elsewhere", "member added elsewhere"]);
        assert_eq!(fixed, 3);
        assert_eq!(reg.users("presence-room"), ["ann", "cy"]);
        assert_eq!(reg.channel("presence-room").unwrap().subscription_count, 2);
        // Agreement: nothing to do.
        assert_eq!(reg.reconcile(&redis, &counts).1, 0);
    }
}
