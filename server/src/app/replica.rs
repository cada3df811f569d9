//! [`Replica`]: one app's copy of what the other nodes have — presence
//! members (on which nodes) and subscription counts — as this node last
//! heard it on the bus, corrected against Redis by the periodic resync.
//! Data only: the [`Registry`](super::registry::Registry) decides what a
//! change means for this node's subscribers.

use std::collections::{HashMap, HashSet};

use serde_json::value::RawValue;

/// A presence member on this node (what the resync writes to Redis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMember {
    /// Channel name.
    pub channel: String,
    /// The user.
    pub user_id: String,
    /// Their `user_info` as JSON text.
    pub info: Option<String>,
}

/// A presence member as Redis records it: on which node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMember {
    /// Channel name.
    pub channel: String,
    /// The node the user is connected to.
    pub node: String,
    /// The user.
    pub user_id: String,
    /// Their `user_info` as JSON text.
    pub info: Option<String>,
}

/// A node's subscription count for a channel, as Redis records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCount {
    /// Channel name.
    pub channel: String,
    /// The node.
    pub node: String,
    /// Its subscriptions to the channel.
    pub subscriptions: usize,
}

/// What a dead node left behind in one app: its presence (channel, user)
/// entries and the channels it had subscribers in.
#[derive(Debug, Default)]
pub struct NodeEntries {
    /// (channel, user) presence entries.
    pub members: Vec<(String, String)>,
    /// Channels with a subscription count.
    pub channels: Vec<String>,
}

/// What a resync found wrong twice in a row, to correct.
#[derive(Debug, Default)]
pub struct Corrections {
    /// In the replica, not in Redis: they leave.
    pub ghosts: Vec<NodeMember>,
    /// In Redis, not in the replica: they join.
    pub missing: Vec<NodeMember>,
    /// Counts that differ: Redis's is taken.
    pub recounts: Vec<NodeCount>,
}

impl Corrections {
    /// How many entries are corrected.
    pub fn len(&self) -> usize {
        self.ghosts.len() + self.missing.len() + self.recounts.len()
    }

    /// True when nothing is corrected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A user present on other nodes.
#[derive(Debug)]
struct RemoteMember {
    info: Option<Box<RawValue>>,
    nodes: HashSet<String>,
}

/// A difference between the replica and Redis seen at one resync.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Suspect {
    /// (channel, node, user) in the replica, not in Redis.
    Ghost(String, String, String),
    /// (channel, node, user) in Redis, not in the replica.
    Missing(String, String, String),
    /// (channel, node): the counts differ.
    Count(String, String),
}

/// The other nodes' presence and subscriptions (module docs).
#[derive(Debug, Default)]
pub struct Replica {
    /// channel → user → (info, nodes with them).
    members: HashMap<String, HashMap<String, RemoteMember>>,
    /// channel → node → subscriptions.
    counts: HashMap<String, HashMap<String, usize>>,
    /// Differences seen at the last resync: corrected if the next one
    /// sees them too (a message in flight explains a difference once).
    suspects: HashSet<Suspect>,
}

impl Replica {
    /// True when `user_id` is in `channel` on another node.
    pub fn has_member(&self, channel: &str, user_id: &str) -> bool {
        self.members.get(channel).is_some_and(|users| users.contains_key(user_id))
    }

    /// The members of `channel` on other nodes, with their info.
    pub fn members(&self, channel: &str) -> impl Iterator<Item = (&str, Option<&RawValue>)> {
        self.members.get(channel).into_iter().flatten().map(|(id, m)| (id.as_str(), m.info.as_deref()))
    }

    /// Subscriptions to `channel` on other nodes.
    pub fn subscriptions(&self, channel: &str) -> usize {
        self.counts.get(channel).map_or(0, |nodes| nodes.values().sum())
    }

    /// Channels with subscriptions on other nodes.
    pub fn channels(&self) -> impl Iterator<Item = &String> {
        self.counts.keys()
    }

    /// `node` has a connection of `user_id` in `channel`. Returns the
    /// member's info when the user is new to the replica.
    pub fn joined(
        &mut self,
        node: &str,
        channel: &str,
        user_id: &str,
        info: Option<Box<RawValue>>,
    ) -> Option<Option<Box<RawValue>>> {
        let users = self.members.entry(channel.to_owned()).or_default();
        let new = !users.contains_key(user_id);
        let member = users.entry(user_id.to_owned()).or_insert(RemoteMember { info, nodes: HashSet::new() });
        member.nodes.insert(node.to_owned());
        new.then(|| member.info.clone())
    }

    /// `node` no longer has a connection of `user_id` in `channel`. True
    /// when no other node has one either (the user left the replica).
    pub fn left(&mut self, node: &str, channel: &str, user_id: &str) -> bool {
        let Some(users) = self.members.get_mut(channel) else { return false };
        let Some(member) = users.get_mut(user_id) else { return false };
        member.nodes.remove(node);
        if !member.nodes.is_empty() {
            return false;
        }
        users.remove(user_id);
        if users.is_empty() {
            self.members.remove(channel);
        }
        true
    }

    /// `node` has `subscriptions` subscriptions to `channel` (0: none).
    pub fn set_count(&mut self, node: &str, channel: &str, subscriptions: usize) {
        if subscriptions == 0 {
            if let Some(nodes) = self.counts.get_mut(channel) {
                nodes.remove(node);
                if nodes.is_empty() {
                    self.counts.remove(channel);
                }
            }
        } else {
            self.counts.entry(channel.to_owned()).or_default().insert(node.to_owned(), subscriptions);
        }
    }

    /// Other nodes this app has presence or subscriptions from.
    pub fn nodes(&self) -> HashSet<String> {
        let presence = self.members.values().flat_map(|users| users.values().flat_map(|m| m.nodes.iter()));
        let counts = self.counts.values().flat_map(|nodes| nodes.keys());
        presence.chain(counts).cloned().collect()
    }

    /// Drops `node`'s counts and returns what it left behind (its members
    /// are still in the replica: the caller makes them leave, one by one,
    /// for the transitions).
    pub fn forget_counts_of(&mut self, node: &str) -> NodeEntries {
        let mut channels = Vec::new();
        self.counts.retain(|channel, nodes| {
            if nodes.remove(node).is_some() {
                channels.push(channel.clone());
            }
            !nodes.is_empty()
        });
        let members = self
            .members
            .iter()
            .flat_map(|(channel, users)| {
                users
                    .iter()
                    .filter(|(_, m)| m.nodes.contains(node))
                    .map(|(user, _)| (channel.clone(), user.clone()))
            })
            .collect();
        NodeEntries { members, channels }
    }

    /// Compares the replica with what Redis holds and returns what
    /// differed at the previous call too (to correct: one resync's
    /// difference may be a message still in flight).
    pub fn compare(&mut self, members: &[NodeMember], counts: &[NodeCount]) -> Corrections {
        let mut seen = HashSet::new();
        let mut corrections = Corrections::default();
        let suspect = |suspect: Suspect, seen: &mut HashSet<Suspect>| {
            let again = self.suspects.contains(&suspect);
            if !again {
                seen.insert(suspect);
            }
            again
        };
        let in_redis: HashSet<(&str, &str, &str)> =
            members.iter().map(|m| (m.channel.as_str(), m.node.as_str(), m.user_id.as_str())).collect();
        for (channel, users) in &self.members {
            for (user, member) in users {
                for node in &member.nodes {
                    if !in_redis.contains(&(channel.as_str(), node.as_str(), user.as_str()))
                        && suspect(Suspect::Ghost(channel.clone(), node.clone(), user.clone()), &mut seen)
                    {
                        corrections.ghosts.push(NodeMember {
                            channel: channel.clone(),
                            node: node.clone(),
                            user_id: user.clone(),
                            info: None,
                        });
                    }
                }
            }
        }
        for member in members {
            let known = self
                .members
                .get(&member.channel)
                .and_then(|users| users.get(&member.user_id))
                .is_some_and(|m| m.nodes.contains(&member.node));
            if !known
                && suspect(
                    Suspect::Missing(member.channel.clone(), member.node.clone(), member.user_id.clone()),
                    &mut seen,
                )
            {
                corrections.missing.push(member.clone());
            }
        }
        let truth: HashMap<(&str, &str), usize> =
            counts.iter().map(|c| ((c.channel.as_str(), c.node.as_str()), c.subscriptions)).collect();
        let mut keys: HashSet<(String, String)> = self
            .counts
            .iter()
            .flat_map(|(channel, nodes)| nodes.keys().map(move |node| (channel.clone(), node.clone())))
            .collect();
        keys.extend(counts.iter().map(|c| (c.channel.clone(), c.node.clone())));
        for (channel, node) in keys {
            let replica = self.counts.get(&channel).and_then(|n| n.get(&node)).copied().unwrap_or(0);
            let subscriptions = truth.get(&(channel.as_str(), node.as_str())).copied().unwrap_or(0);
            if replica != subscriptions && suspect(Suspect::Count(channel.clone(), node.clone()), &mut seen) {
                corrections.recounts.push(NodeCount { channel, node, subscriptions });
            }
        }
        self.suspects = seen;
        corrections
    }
}
