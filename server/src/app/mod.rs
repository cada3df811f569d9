//! One app: its registry behind one read-write lock, and the effects of
//! what happens in it.
//!
//! The [`Registry`] keeps the data (connections, channels, presence, the
//! replica of the other nodes) and returns [`Transition`]s; [`App`] turns
//! them into effects under the write lock, so they stay in order: frames
//! to subscribers (`member_added` / `member_removed`), webhooks, and in
//! cluster mode messages to the other nodes through the [`Broker`]. Every
//! operation under the lock is short and never awaits.
//!
//! Fan-out encodes a frame once ([`Bytes`], reference counted) and queues
//! it for each subscriber under the *read* lock and the channel's own
//! order lock (see [`Registry::deliver`]): one channel's events reach
//! every subscriber in one order, fan-outs on different channels of one
//! app run in parallel, and a subscribe or disconnect (write lock) falls
//! between two events, never inside one. The writing happens after the
//! lock ([`Fanout`], see [`crate::ws::outbound`]). A queue
//! over its bound closes that connection as a slow consumer (4100) instead
//! of buffering without bound or slowing the publisher. Publishes are refused ([`BusBusy`]) before any local
//! delivery when the cluster bus cannot take them.

pub mod bus;
pub mod registry;
pub mod replica;

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use sealcast_core::protocol::history::{HistoryErrorCode, HistoryEvent, HistoryPage, Position, Read};
use sealcast_core::protocol::{ChannelName, PresenceMember, codes, is_cache, server as frames};
use serde_json::value::RawValue;

use crate::app::bus::{Broker, BusBusy, BusMessage};
pub use crate::app::registry::{ChannelInfo, SubscribeError};
use crate::app::registry::{Except, Registry, Transition};
pub use crate::app::replica::{LocalMember, NodeCount, NodeEntries, NodeMember};
use crate::config::AppConfig;
use crate::history::{Broadcast, History, HistoryStoreError, NewEvent, StreamLimits};
use crate::jwt::TokenVerifier;
use crate::metrics::Metrics;
use crate::rate::TokenBucket;
use crate::webhooks::{self, EventType, HookEvent, Webhooks};
use crate::ws::outbound::Fanout;
pub use crate::ws::outbound::{CloseRequest, ConnHandle};

/// One app's state.
#[derive(Debug)]
pub struct App {
    /// Its id (fixed: an app whose id changes is another app).
    pub id: String,
    /// What its configuration sets up, swapped whole by [`App::reconfigure`].
    settings: RwLock<Settings>,
    bus: Arc<dyn Broker>,
    registry: RwLock<Registry>,
    /// Kept events of the channels the app's history rules name.
    history: Arc<History>,
    /// The app's history reads, WebSocket and HTTP together.
    history_reads: Mutex<TokenBucket>,
    /// Cluster mode: the bus channel the history store publishes kept
    /// events on (`None`: a single node).
    kept_bus: Option<String>,
    /// Removed from the configuration: connections are refused.
    retired: std::sync::atomic::AtomicBool,
}

/// Why a connection was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefused {
    /// The app is at its `max_connections`.
    OverQuota,
    /// The app was removed from the configuration meanwhile.
    AppRemoved,
}

/// An event on a channel, before it is encoded.
#[derive(Debug, Clone, Copy)]
pub struct ChannelEvent<'a> {
    /// The channel.
    pub channel: &'a str,
    /// The event name.
    pub event: &'a str,
    /// Its data, raw JSON text (a JSON string for HTTP API publishes).
    pub data: Option<&'a RawValue>,
    /// The sender's user id (presence client events).
    pub user_id: Option<&'a str>,
}

impl ChannelEvent<'_> {
    /// Its frame, with its stream position where the channel keeps history.
    fn frame(&self, position: Option<&Position>) -> Bytes {
        Bytes::from(self.text(position))
    }

    fn text(&self, position: Option<&Position>) -> String {
        frames::channel_event_at(self.event, self.channel, self.data, self.user_id, position)
    }
}

/// Who an event is not sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotTo<'a> {
    /// The connection that sent it (a client event).
    Sender(&'a str),
    /// A socket the publisher excluded (the HTTP API's `socket_id`).
    Socket(&'a str),
}

impl<'a> NotTo<'a> {
    /// The socket id.
    pub fn socket_id(self) -> &'a str {
        match self {
            NotTo::Sender(socket_id) | NotTo::Socket(socket_id) => socket_id,
        }
    }
}

/// One event for one channel's subscribers (see [`App::publish_all`]).
#[derive(Debug, Clone)]
pub struct Publish {
    /// The channel.
    pub channel: String,
    /// The event name.
    pub event: String,
    /// Its data, raw JSON text.
    pub data: Box<RawValue>,
    /// A socket id not to deliver to.
    pub except: Option<String>,
}

impl Publish {
    fn event(&self) -> ChannelEvent<'_> {
        ChannelEvent { channel: &self.channel, event: &self.event, data: Some(&self.data), user_id: None }
    }
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The cluster bus could not take it: nothing was sent.
    #[error(transparent)]
    Bus(#[from] BusBusy),
    /// The history store could not keep it: it was not sent (a kept
    /// channel's subscribers would otherwise see a gap in its offsets).
    #[error(transparent)]
    History(#[from] HistoryStoreError),
}

/// Why a history read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryReadError {
    /// No history rule of the app names the channel.
    #[error("this channel keeps no history (no history rule of the app names it)")]
    Off,
    /// The app is over its read rate.
    #[error("the app's history read rate is exceeded; retry")]
    RateLimited,
    /// The store failed, or the read is past the stream's head.
    #[error(transparent)]
    Store(#[from] HistoryStoreError),
}

impl HistoryReadError {
    /// Its wire code (`sealcast_internal:history-error`; the HTTP API maps
    /// it to a status).
    pub fn code(&self) -> HistoryErrorCode {
        match self {
            HistoryReadError::Off => HistoryErrorCode::HistoryOff,
            HistoryReadError::RateLimited => HistoryErrorCode::RateLimited,
            HistoryReadError::Store(HistoryStoreError::PastHead) => HistoryErrorCode::Invalid,
            HistoryReadError::Store(HistoryStoreError::Backend(_)) => HistoryErrorCode::Unavailable,
        }
    }
}

/// An app's configuration and what is built from it.
#[derive(Debug, Clone)]
struct Settings {
    config: Arc<AppConfig>,
    tokens: Arc<TokenVerifier>,
    webhooks: Arc<Webhooks>,
}

impl Settings {
    /// `config` must have passed [`crate::config::ServerConfig::load`]'s
    /// validation. Webhooks are started anew only when their settings
    /// changed from `previous` (a queue being retried is not cut short).
    fn new(config: AppConfig, previous: Option<&Settings>, bus: &dyn Broker, metrics: &Metrics) -> Settings {
        let tokens = match previous {
            Some(previous) if previous.config.jwt_keys == config.jwt_keys => previous.tokens.clone(),
            // Validated when the config loaded (a key that does not parse
            // is refused there); should it fail here, JWTs are refused.
            _ => Arc::new(TokenVerifier::from_config(&config.jwt_keys).unwrap_or_else(|err| {
                tracing::error!(app = %config.id, error = %err, "jwt keys unusable: JWT auth refused");
                TokenVerifier::default()
            })),
        };
        let webhooks = match previous {
            Some(previous) if webhooks_unchanged(&previous.config, &config) => previous.webhooks.clone(),
            _ => Arc::new(start_webhooks(&config, bus.hook_claims(), metrics)),
        };
        Settings { config: Arc::new(config), tokens, webhooks }
    }
}

/// True when `old` and `new` deliver webhooks alike.
fn webhooks_unchanged(old: &AppConfig, new: &AppConfig) -> bool {
    let delivery = |c: &AppConfig| {
        let settings = (c.webhook_batching, c.webhook_retry_secs, c.webhook_max_queue_bytes);
        (c.key.clone(), c.secret.clone(), c.webhooks.clone(), c.webhook_ca_file.clone(), settings)
    };
    delivery(old) == delivery(new)
}

fn start_webhooks(
    config: &AppConfig,
    claims: Option<Arc<dyn webhooks::HookClaims>>,
    metrics: &Metrics,
) -> Webhooks {
    let sender = webhooks::Sender {
        app_id: config.id.clone(),
        key: config.key.clone(),
        secret: config.secret.clone(),
    };
    let delivery = webhooks::Delivery {
            batching: config.webhook_batching,
            retry_for: std::time::Duration::from_secs(config.webhook_retry_secs),
            // Validated when the config loaded; should the file have gone
            // since, https receivers are trusted by the public roots only
            // (their deliveries then fail, are logged and counted).
            tls: webhooks::tls_config(config.webhook_ca_file.as_deref())
                .or_else(|err| {
                    tracing::error!(app = %config.id, error = %err, "webhook CA file unusable: public roots only");
                    webhooks::tls_config(None)
                })
                .ok(),
            claims,
            max_queue_bytes: config.webhook_max_queue_bytes,
        };
    Webhooks::start(sender, &config.webhooks, delivery, metrics.webhooks_dropped.clone())
}

impl App {
    /// An app with no connections. `config` must have passed
    /// [`crate::config::ServerConfig::load`]'s validation.
    /// `metrics` counts its dropped webhooks.
    pub fn new(config: AppConfig, bus: Arc<dyn Broker>, history: Arc<History>, metrics: &Metrics) -> App {
        let registry = RwLock::new(Registry::new(&config));
        let reads = f64::from(config.app_history_reads_per_second);
        let history_reads = Mutex::new(TokenBucket::new(reads, reads));
        let kept_bus = bus.bus_channel(&config.id);
        let id = config.id.clone();
        let settings = RwLock::new(Settings::new(config, None, bus.as_ref(), metrics));
        App { id, settings, bus, registry, history, history_reads, kept_bus, retired: Default::default() }
    }

    /// Its configuration as it is now (a reload may swap it: read what
    /// one decision needs from one copy).
    pub fn config(&self) -> Arc<AppConfig> {
        self.settings().config.clone()
    }

    /// Its JWT public keys (none when it uses HMAC auth only).
    pub fn tokens(&self) -> Arc<TokenVerifier> {
        self.settings().tokens.clone()
    }

    /// Its webhook queue.
    pub fn webhooks(&self) -> Arc<Webhooks> {
        self.settings().webhooks.clone()
    }

    fn settings(&self) -> std::sync::RwLockReadGuard<'_, Settings> {
        self.settings.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies a changed configuration of this app (a config reload):
    /// keys, secret, JWT keys, webhooks and history rules at once; the
    /// registry's limits for what comes next (connections and channels
    /// over a lowered limit stay); connections opened from now on get the
    /// new per-connection rates. `config.id` must be this app's.
    pub fn reconfigure(&self, config: AppConfig, metrics: &Metrics) {
        debug_assert_eq!(config.id, self.id);
        self.write().set_limits(&config);
        let reads = f64::from(config.app_history_reads_per_second);
        *self.history_reads.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            TokenBucket::new(reads, reads);
        let mut settings = self.settings.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *settings = Settings::new(config, Some(&settings), self.bus.as_ref(), metrics);
    }

    // A panic while holding the lock would be a bug; the registry stays
    // consistent per operation, so keep serving.
    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Turns transitions into effects, in order (the registry is still
    /// locked, so no other change interleaves).
    fn apply(
        &self,
        registry: &Registry,
        transitions: Vec<Transition>,
        fanout: &mut Fanout,
        metrics: &Metrics,
    ) {
        let clustered = self.bus.is_clustered();
        let webhooks = self.webhooks();
        for transition in transitions {
            match transition {
                Transition::Subscribed => metrics.subscriptions.inc(),
                Transition::Unsubscribed => metrics.subscriptions.dec(),
                Transition::Occupied { channel } => {
                    tracing::debug!(%channel, "channel occupied");
                    webhooks.emit(HookEvent::ChannelOccupied { channel });
                }
                Transition::Vacated { channel } => {
                    tracing::debug!(%channel, "channel vacated");
                    webhooks.emit(HookEvent::ChannelVacated { channel });
                }
                Transition::Occupancy { channel, subscriptions } if clustered => {
                    self.tell_cluster(BusMessage::Occupancy { channel, subscriptions }, metrics);
                }
                Transition::Occupancy { .. } => {}
                // Member webhooks follow this node's members; in a cluster
                // the webhook claims pick the node whose change made the
                // user appear or vanish cluster-wide (webhooks::HookClaims).
                Transition::JoinedHere { channel, user_id, info } => {
                    if webhooks.wants(EventType::MemberAdded) {
                        webhooks.emit(HookEvent::MemberAdded {
                            channel: channel.clone(),
                            user_id: user_id.clone(),
                        });
                    }
                    if clustered {
                        self.tell_cluster(BusMessage::MemberJoined { channel, user_id, info }, metrics);
                    }
                }
                Transition::LeftHere { channel, user_id } => {
                    if webhooks.wants(EventType::MemberRemoved) {
                        webhooks.emit(HookEvent::MemberRemoved {
                            channel: channel.clone(),
                            user_id: user_id.clone(),
                        });
                    }
                    if clustered {
                        self.tell_cluster(BusMessage::MemberLeft { channel, user_id }, metrics);
                    }
                }
                Transition::MemberAdded { channel, user_id, info, except, .. } => {
                    let frame = Bytes::from(frames::member_added(&channel, &user_id, info.as_deref()));
                    registry.deliver(&channel, &frame, Except::socket(except.as_deref()), fanout, metrics);
                }
                Transition::MemberRemoved { channel, user_id, .. } => {
                    let frame = Bytes::from(frames::member_removed(&channel, &user_id));
                    registry.deliver(&channel, &frame, Except::default(), fanout, metrics);
                }
            }
        }
    }

    /// Runs `change` on the write-locked registry and turns the transitions
    /// it returns into effects; the frames queued meanwhile are written
    /// once the lock is released.
    fn change<T>(
        &self,
        metrics: &Metrics,
        change: impl FnOnce(&mut Registry, &mut Fanout) -> (Vec<Transition>, T),
    ) -> T {
        let mut fanout = Fanout::default();
        let mut registry = self.write();
        let (transitions, outcome) = change(&mut registry, &mut fanout);
        self.apply(&registry, transitions, &mut fanout, metrics);
        drop(registry);
        fanout.write();
        outcome
    }

    /// Queues `frame` for this node's subscribers of `channel` (except
    /// `except`) under the read lock, then writes; how many it was queued for.
    fn deliver(&self, channel: &str, frame: &Bytes, except: Except<'_>, metrics: &Metrics) -> usize {
        let mut fanout = Fanout::default();
        let sent = self.read().deliver(channel, frame, except, &mut fanout, metrics);
        fanout.write();
        sent
    }

    /// Registers a connection.
    pub fn connect(&self, handle: ConnHandle) -> Result<(), ConnectRefused> {
        let mut registry = self.write();
        // Checked under the lock [`App::retire`] closes connections under:
        // a connection is either refused here or closed there.
        if self.retired.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ConnectRefused::AppRemoved);
        }
        registry.connect(handle).then_some(()).ok_or(ConnectRefused::OverQuota)
    }

    /// Stops serving the app (removed from the configuration): closes its
    /// connections with 4001 and refuses new ones.
    pub fn retire(&self) {
        self.retired.store(true, std::sync::atomic::Ordering::SeqCst);
        self.close_all(codes::APP_DOES_NOT_EXIST, "app removed from the server's configuration");
    }

    /// Removes a connection from every channel (sending member_removed where
    /// it was a user's last connection).
    pub fn disconnect(&self, socket_id: &str, metrics: &Metrics) {
        self.change(metrics, |registry, _| (registry.disconnect(socket_id), ()));
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
        let name = channel.as_str();
        let Some(limits) = self.history_limits(name) else {
            return self.subscribe_at(socket_id, channel, member, None, metrics);
        };
        // Under the stream's order: the subscriber joins between two kept
        // events, so the position it is told (and a cache channel's last
        // event) is exactly where its live events continue.
        self.history.ordered(&self.id, name, || {
            let newest = self
                .history
                .newest(&self.id, name, &limits)
                .map_err(|err| tracing::error!(error = %err, "history store failed: subscribed without a position"))
                .ok();
            self.subscribe_at(socket_id, channel, member, newest, metrics)
        })
    }

    /// Subscribes, telling the subscriber where the channel's stream
    /// stands (`newest`: its head and newest event, on a channel with
    /// history) and, on a cache channel, sending that event or
    /// `pusher:cache_miss` right after `subscription_succeeded`.
    fn subscribe_at(
        &self,
        socket_id: &str,
        channel: &ChannelName,
        member: Option<PresenceMember>,
        newest: Option<(Position, Option<HistoryEvent>)>,
        metrics: &Metrics,
    ) -> Result<(), SubscribeError> {
        let name = channel.as_str();
        let cache = channel.is_cache();
        let missed =
            self.change(metrics, |registry, fanout| match registry.subscribe(socket_id, channel, member) {
                Err(err) => (Vec::new(), Err(err)),
                Ok(subscribed) => {
                    let Some(reply) = subscribed.reply else { return (subscribed.transitions, Ok(false)) };
                    let Some((head, event)) = newest else {
                        fanout.push(&subscribed.handle, Bytes::from(reply), metrics);
                        return (subscribed.transitions, Ok(false));
                    };
                    let cached = event.filter(|_| cache);
                    // A cache channel's subscriber stands just before the event
                    // it is sent, so its client takes that event as the next.
                    let at = match &cached {
                        Some(event) => {
                            Position { offset: event.offset.saturating_sub(1), epoch: head.epoch.clone() }
                        }
                        None => head.clone(),
                    };
                    fanout.push(&subscribed.handle, Bytes::from(frames::with_position(reply, &at)), metrics);
                    if !cache {
                        return (subscribed.transitions, Ok(false));
                    }
                    let frame = match &cached {
                        Some(event) => {
                            let position = Position { offset: event.offset, epoch: head.epoch };
                            let user_id = event.user_id.as_deref();
                            frames::channel_event_at(
                                &event.event,
                                name,
                                Some(&event.data),
                                user_id,
                                Some(&position),
                            )
                        }
                        None => frames::cache_miss(name),
                    };
                    fanout.push(&subscribed.handle, Bytes::from(frame), metrics);
                    (subscribed.transitions, Ok(cached.is_none()))
                }
            })?;
        if missed {
            self.webhooks().emit(HookEvent::CacheMiss { channel: name.to_owned() });
        }
        Ok(())
    }

    /// Unsubscribes a connection from a channel.
    pub fn unsubscribe(&self, socket_id: &str, channel: &str, metrics: &Metrics) {
        self.change(metrics, |registry, _| (registry.unsubscribe(socket_id, channel), ()));
    }

    /// The connection's subscription to `channel`: `Some(presence user id)`
    /// when subscribed.
    pub fn subscription(&self, socket_id: &str, channel: &str) -> Option<Option<String>> {
        self.read().subscription(socket_id, channel)
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
        self.publish_except(channel, frame, Except::socket(except), metrics)
    }

    /// [`App::publish`] with what the excepted socket gets instead.
    fn publish_except(
        &self,
        channel: &str,
        frame: &Bytes,
        except: Except<'_>,
        metrics: &Metrics,
    ) -> Result<usize, BusBusy> {
        if self.bus.is_clustered() {
            let message = BusMessage::Event {
                channel: channel.to_owned(),
                frame: String::from_utf8_lossy(frame).into_owned(),
                except: except.socket_id.map(str::to_owned),
                notice: except.notice.map(|notice| String::from_utf8_lossy(notice).into_owned()),
            };
            self.bus.forward(&self.id, vec![message])?;
        }
        Ok(self.deliver(channel, frame, except, metrics))
    }

    /// Publishes an event on its channel (keeping it first where the
    /// channel has history: see [`App::publish_event`]'s order), to every
    /// subscriber except `except`, on every node. Returns the number of
    /// connections on this node it was queued for.
    pub fn publish_event(
        &self,
        event: ChannelEvent<'_>,
        not_to: Option<NotTo<'_>>,
        metrics: &Metrics,
    ) -> Result<usize, PublishError> {
        let except = not_to.map(NotTo::socket_id);
        let Some(limits) = self.history_limits(event.channel) else {
            return Ok(self.publish(event.channel, &event.frame(None), except, metrics)?);
        };
        // Kept events must reach the other nodes: refuse before keeping
        // one they would not get.
        if !self.can_publish() {
            return Err(PublishError::Bus(BusBusy::Unreachable));
        }
        let kept = NewEvent { event: event.event, data: event.data, user_id: event.user_id };
        // The excepted socket (the sender, or the publisher's `socket_id`)
        // is told the position it skips.
        let own = matches!(not_to, Some(NotTo::Sender(_)));
        if let Some(bus_channel) = &self.kept_bus {
            // Cluster mode: the shared store keeps the event and publishes
            // it on the bus in the order kept; every node, this one too,
            // delivers it from there, so every subscriber sees one order.
            let notice = except.map(|socket| (socket, frames::excluded(event.channel, own)));
            let broadcast = Broadcast {
                bus_channel,
                node: self.bus.node_id(),
                app: &self.id,
                frame: &event.text(None),
                except: notice.as_ref().map(|(socket, notice)| (*socket, notice.as_str())),
            };
            self.history.append_broadcast(&self.id, event.channel, kept, &limits, &broadcast)?;
            return Ok(0);
        }
        // One node: delivered under the stream's order lock, so its
        // subscribers see offsets in increasing order.
        let sent = self.history.append_then(&self.id, event.channel, kept, &limits, |position| {
            let notice = except.map(|_| Bytes::from(frames::excluded_at(event.channel, position, own)));
            let except = Except { socket_id: except, notice: notice.as_ref() };
            self.publish_except(event.channel, &event.frame(Some(position)), except, metrics)
        })?;
        Ok(sent?)
    }

    /// Publishes several events: all of them or, when the cluster bus
    /// cannot take them all, none. Events on channels with history are
    /// kept and sent one by one, so a failing store (or a busy bus) stops
    /// the batch at that event.
    pub fn publish_all(&self, publishes: Vec<Publish>, metrics: &Metrics) -> Result<(), PublishError> {
        if publishes.iter().any(|p| self.history_limits(&p.channel).is_some()) {
            for publish in &publishes {
                self.publish_event(publish.event(), publish.except.as_deref().map(NotTo::Socket), metrics)?;
            }
            return Ok(());
        }
        let frames: Vec<Bytes> = publishes.iter().map(|p| p.event().frame(None)).collect();
        if self.bus.is_clustered() {
            let messages = publishes
                .iter()
                .zip(&frames)
                .map(|(p, frame)| BusMessage::Event {
                    channel: p.channel.clone(),
                    frame: String::from_utf8_lossy(frame).into_owned(),
                    except: p.except.clone(),
                    notice: None,
                })
                .collect();
            self.bus.forward(&self.id, messages)?;
        }
        for (publish, frame) in publishes.iter().zip(&frames) {
            self.deliver(&publish.channel, frame, Except::socket(publish.except.as_deref()), metrics);
        }
        Ok(())
    }

    /// The bounds of `channel`'s stream, when a history rule names it or
    /// it is a cache channel (its last event).
    pub fn history_limits(&self, channel: &str) -> Option<StreamLimits> {
        let config = self.config();
        let app_max = config.history_max_bytes;
        match config.history.iter().find(|rule| rule.matches(channel)) {
            Some(rule) => Some(StreamLimits::of(rule, app_max)),
            None if is_cache(channel) => Some(StreamLimits::cache(config.max_event_payload_bytes, app_max)),
            None => None,
        }
    }

    /// Reads `channel`'s history, within the app's read rate (the caller
    /// checked the reader may see the channel).
    pub fn read_history(&self, channel: &str, read: &Read) -> Result<HistoryPage, HistoryReadError> {
        let limits = self.history_limits(channel).ok_or(HistoryReadError::Off)?;
        let allowed = self
            .history_reads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .allow(std::time::Instant::now());
        if !allowed {
            return Err(HistoryReadError::RateLimited);
        }
        Ok(self.history.read(&self.id, channel, read, &limits)?)
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
        if self.bus.forward(&self.id, vec![message]).is_err() {
            metrics.cluster_deferred.inc();
        }
    }

    /// Occupied channels whose name starts with `prefix`, cluster-wide.
    pub fn channels(&self, prefix: &str) -> Vec<(String, ChannelInfo)> {
        self.read().channels(prefix)
    }

    /// Occupancy of one channel, cluster-wide (`None` when nobody is subscribed).
    pub fn channel(&self, name: &str) -> Option<ChannelInfo> {
        self.read().channel(name)
    }

    /// User ids in a presence channel, cluster-wide.
    pub fn users(&self, name: &str) -> Vec<String> {
        self.read().users(name)
    }

    /// The user a connection signed in as (`pusher:signin`), if any.
    pub fn signed_in_user(&self, socket_id: &str) -> Option<String> {
        self.read().signed_in_user(socket_id)
    }

    /// Records the user a connection signed in as.
    pub fn sign_in(&self, socket_id: &str, user_id: String) {
        self.write().sign_in(socket_id, user_id);
    }

    /// Closes every connection of `user_id` (signed in, or present in a
    /// presence channel), on every node. Returns how many on this one.
    pub fn terminate_user(&self, user_id: &str, metrics: &Metrics) -> usize {
        if self.bus.is_clustered() {
            self.tell_cluster(BusMessage::Terminate { user_id: user_id.to_owned() }, metrics);
        }
        self.terminate_local(user_id)
    }

    fn terminate_local(&self, user_id: &str) -> usize {
        let handles = self.read().connections_of(user_id);
        for handle in &handles {
            handle.close(codes::UNAUTHORIZED, "connection terminated by the app");
        }
        handles.len()
    }

    /// Closes every connection with `code` (graceful shutdown).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for handle in self.read().handles() {
            handle.close(code, reason);
        }
    }

    /// A message another node forwarded.
    pub fn on_bus(&self, node: &str, message: BusMessage, metrics: &Metrics) {
        match message {
            BusMessage::Terminate { user_id } => {
                self.terminate_local(&user_id);
                return;
            }
            BusMessage::Event { channel, frame, except, notice }
            | BusMessage::Kept { channel, frame, except, notice } => {
                let notice = notice.map(Bytes::from);
                let except = Except { socket_id: except.as_deref(), notice: notice.as_ref() };
                self.deliver(&channel, &Bytes::from(frame), except, metrics);
                return;
            }
            _ => {}
        }
        self.change(metrics, |registry, _| {
            let transition = match message {
                BusMessage::MemberJoined { channel, user_id, info } => {
                    let info = info.and_then(|i| RawValue::from_string(i).ok());
                    registry.remote_joined(node, &channel, &user_id, info)
                }
                BusMessage::MemberLeft { channel, user_id } => registry.remote_left(node, &channel, &user_id),
                BusMessage::Occupancy { channel, subscriptions } => {
                    registry.remote_occupancy(node, &channel, subscriptions);
                    None
                }
                BusMessage::Terminate { .. } | BusMessage::Event { .. } | BusMessage::Kept { .. } => None,
            };
            (transition.into_iter().collect(), ())
        });
    }

    /// Records presence another node had before this one started (no
    /// events: nobody here has seen a roster yet).
    pub fn load_remote_member(&self, channel: &str, node: &str, user_id: &str, info: Option<Box<RawValue>>) {
        let _ = self.write().remote_joined(node, channel, user_id, info);
    }

    /// This node's presence members and subscription counts, for the resync.
    pub fn local_entries(&self) -> (Vec<LocalMember>, Vec<(String, usize)>) {
        self.read().local_entries()
    }

    /// Corrects the replica of the other nodes from what Redis holds (see
    /// [`Registry::reconcile`]), with the events a live message would have
    /// caused. Returns how many entries it corrected.
    pub fn reconcile_remote(&self, members: &[NodeMember], counts: &[NodeCount], metrics: &Metrics) -> usize {
        self.change(metrics, |registry, _| registry.reconcile(members, counts))
    }

    /// Other nodes this app has presence or subscriptions from.
    pub fn remote_nodes(&self) -> std::collections::HashSet<String> {
        self.read().remote_nodes()
    }

    /// `node` died: its members leave (with `member_removed` where they
    /// were nowhere else) and its subscriptions stop counting. Returns what
    /// it left behind.
    pub fn node_gone(&self, node: &str, metrics: &Metrics) -> NodeEntries {
        self.change(metrics, |registry, _| {
            let (entries, transitions) = registry.node_gone(node);
            (transitions, entries)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::bus::LocalBroker;
    use crate::ws::outbound::QueueLimits;

    /// An app with `subscribers` socketless connections on each of `channels`.
    fn app_with(channels: &[&str], subscribers: usize, frames: usize) -> (Arc<App>, Vec<ConnHandle>) {
        let app = Arc::new(App::new(
            AppConfig::new("a", "k", "s"),
            Arc::new(LocalBroker::new()),
            Arc::new(History::in_memory()),
            &Metrics::default(),
        ));
        let metrics = Metrics::default();
        let mut handles = Vec::new();
        for channel in channels {
            let name = ChannelName::parse(channel).unwrap();
            for s in 0..subscribers {
                let socket_id: Arc<str> = format!("{channel}.{s}").into();
                let (handle, _) =
                    ConnHandle::new(socket_id.clone(), None, QueueLimits { frames, bytes: 1 << 30 });
                assert!(app.connect(handle.clone()).is_ok());
                app.subscribe(&socket_id, &name, None, &metrics).unwrap();
                handle.discard_queued(); // subscription_succeeded
                handles.push(handle);
            }
        }
        (app, handles)
    }

    /// Each `(channel, tag)` publisher on its own thread, at once: frames
    /// `{tag}0`, `{tag}1`, … `events` of them, each reaching `subscribers`.
    fn publish_concurrently(
        app: &Arc<App>,
        publishers: [(&'static str, &'static str); 2],
        events: usize,
        subscribers: usize,
    ) {
        let threads: Vec<_> = publishers
            .into_iter()
            .map(|(channel, tag)| {
                let app = app.clone();
                std::thread::spawn(move || {
                    let metrics = Metrics::default();
                    for n in 0..events {
                        let frame = Bytes::from(format!("{tag}{n}"));
                        assert_eq!(app.publish(channel, &frame, None, &metrics), Ok(subscribers));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    }

    #[test]
    fn concurrent_publishers_on_one_channel_reach_every_subscriber_in_one_order() {
        // Fan-outs run under the read lock; the channel's order lock keeps
        // two publishers from interleaving differently per subscriber.
        let (app, handles) = app_with(&["room"], 50, 4001);
        publish_concurrently(&app, [("room", "a"), ("room", "b")], 2000, 50);
        let first = handles[0].queued();
        assert_eq!(first.len(), 4000);
        for handle in &handles[1..] {
            assert!(
                handle.queued() == first,
                "{} saw another order than {}",
                handle.socket_id,
                handles[0].socket_id
            );
        }
    }

    #[test]
    fn publishers_on_different_channels_do_not_mix_their_subscribers() {
        let (app, handles) = app_with(&["left", "right"], 20, 1001);
        publish_concurrently(&app, [("left", "left"), ("right", "right")], 1000, 20);
        for handle in &handles {
            let channel = handle.socket_id.split('.').next().unwrap();
            let expected: Vec<Bytes> = (0..1000).map(|n| Bytes::from(format!("{channel}{n}"))).collect();
            assert!(
                handle.queued() == expected,
                "{} got another channel's frames or order",
                handle.socket_id
            );
        }
    }
}
