//! [`ClientSession`]: a Pusher-protocol client connection as a state
//! machine, sans-IO. The transport tells it what happened (socket opened,
//! frame received, socket closed, time passed) and carries out the
//! [`Action`]s it returns; the app reads [`ClientEvent`]s. Time is passed
//! in, never read, so every behaviour (pings, pong timeouts, backoff) is
//! testable without sleeping.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::time::Instant;

use serde_json::Value;

use super::auth::{AuthRefusal, ChannelAuth};
use super::backoff::{Backoff, CloseClass};
use super::presence::{Member, Roster};
use crate::protocol::client::{CLIENT_EVENT_PREFIX, Command};
use crate::protocol::event::ServerEvent;
use crate::protocol::history::Position;
use crate::protocol::{ChannelKind, ChannelName, SubscribeData, UnsubscribeData};

/// Tuning of a [`ClientSession`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Longest silence before the client pings; the server's own
    /// `activity_timeout` wins when shorter.
    pub activity_timeout: Duration,
    /// How long to wait for a pong before giving the connection up.
    pub pong_timeout: Duration,
    /// Reconnect delays. A `ClientMachine` replaces the seed with one drawn
    /// from its own randomness, so many clients reconnecting at once
    /// spread out.
    pub backoff: Backoff,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            activity_timeout: Duration::from_secs(120),
            pong_timeout: Duration::from_secs(30),
            backoff: Backoff::default(),
        }
    }
}

/// The connection's state, as the app sees it (pusher-js's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not started.
    Initialized,
    /// Opening a socket, or waiting for `connection_established`.
    Connecting,
    /// Connected with this socket id.
    Connected {
        /// The server-assigned socket id.
        socket_id: String,
    },
    /// Lost; retrying after `retry_in` (attempt `attempt`).
    Unavailable {
        /// Reconnect attempt number (1-based).
        attempt: u32,
        /// Delay before it.
        retry_in: Duration,
    },
    /// The server refused the client for good (close codes 4000–4099).
    Failed {
        /// The close code.
        code: Option<u16>,
        /// The server's reason.
        reason: String,
    },
    /// Closed by the app.
    Disconnected,
}

/// What the transport must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a WebSocket to the server (then call `handle_open` or `handle_closed`).
    Connect,
    /// Send this text frame.
    Send(String),
    /// Close the socket (then call `handle_closed`).
    Close,
    /// Ask the app's authorizer for `channel` on `socket_id`, then call
    /// [`ClientSession::authorized`].
    Authorize {
        /// The socket id to sign.
        socket_id: String,
        /// The channel.
        channel: String,
    },
}

/// Something for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The connection state changed.
    State(ConnectionState),
    /// A subscription succeeded (again, after each reconnect).
    Subscribed {
        /// The channel.
        channel: String,
        /// Where the channel's stream stands, on a channel with history.
        position: Option<Position>,
    },
    /// A subscription was refused (authorizer error or server refusal).
    SubscriptionFailed {
        /// The channel.
        channel: String,
        /// HTTP-style status the server gave, if any.
        status: Option<u16>,
        /// Why.
        message: String,
    },
    /// An event on a channel (or a connection-level one).
    Message {
        /// The channel, if any.
        channel: Option<String>,
        /// Event name.
        event: String,
        /// Its data: parsed when the wire carried JSON text.
        data: Value,
        /// The sender, for client events on presence channels.
        user_id: Option<String>,
        /// Its place in the channel's stream, on a channel with history.
        position: Option<Position>,
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
        /// The member as last known.
        member: Member,
    },
    /// A `pusher:error` from the server.
    Error {
        /// Its code.
        code: Option<u16>,
        /// Its message.
        message: String,
    },
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Not connected (caused by: caller timing).
    #[error("not connected")]
    NotConnected,
    /// Not subscribed to the channel (caused by: caller).
    #[error("not subscribed to {0}")]
    NotSubscribed(String),
    /// Invalid channel or event name (caused by: caller).
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubState {
    /// Waiting for a connection.
    Pending,
    /// Waiting for the app's authorizer.
    Authorizing,
    /// `pusher:subscribe` sent.
    Subscribing,
    Subscribed,
}

/// The link's phase, owning what only that phase has.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    Idle,
    /// `Connect` issued; socket not open yet.
    Opening,
    /// Socket open; waiting for `connection_established`.
    Handshaking(Liveness),
    /// Established with this socket id.
    Connected {
        socket_id: String,
        liveness: Liveness,
    },
    /// Waiting to reconnect.
    Waiting {
        reconnect_at: Instant,
    },
    Stopped,
}

/// When an open socket last heard from the server, and the ping awaiting
/// its pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Liveness {
    last_received: Instant,
    ping_sent: Option<Instant>,
}

impl Liveness {
    fn new(now: Instant) -> Liveness {
        Liveness { last_received: now, ping_sent: None }
    }
}

/// One client connection's state.
#[derive(Debug)]
pub struct ClientSession {
    config: SessionConfig,
    link: Link,
    state: ConnectionState,
    activity_timeout: Duration,
    attempt: u32,
    subscriptions: BTreeMap<String, SubState>,
    rosters: BTreeMap<String, Roster>,
    /// Our own presence user id per channel (from the authorizer's data).
    me: BTreeMap<String, String>,
    actions: VecDeque<Action>,
    events: VecDeque<ClientEvent>,
}

impl ClientSession {
    /// A session that has not connected yet.
    pub fn new(config: SessionConfig) -> ClientSession {
        let activity_timeout = config.activity_timeout;
        ClientSession {
            config,
            link: Link::Idle,
            state: ConnectionState::Initialized,
            activity_timeout,
            attempt: 0,
            subscriptions: BTreeMap::new(),
            rosters: BTreeMap::new(),
            me: BTreeMap::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> &ConnectionState {
        &self.state
    }

    /// The socket id while connected.
    pub fn socket_id(&self) -> Option<&str> {
        match &self.link {
            Link::Connected { socket_id, .. } => Some(socket_id),
            _ => None,
        }
    }

    fn is_connected(&self) -> bool {
        matches!(self.link, Link::Connected { .. })
    }

    /// The open socket's liveness.
    fn liveness(&mut self) -> Option<&mut Liveness> {
        match &mut self.link {
            Link::Handshaking(liveness) | Link::Connected { liveness, .. } => Some(liveness),
            _ => None,
        }
    }

    /// Starts connecting (again, after `disconnect` or failure).
    pub fn connect(&mut self) {
        if matches!(self.link, Link::Idle | Link::Stopped | Link::Waiting { .. }) {
            self.open();
        }
    }

    /// Closes the connection and stops reconnecting; subscriptions are kept
    /// for a later `connect`.
    pub fn disconnect(&mut self) {
        if matches!(self.link, Link::Opening | Link::Handshaking(_) | Link::Connected { .. }) {
            self.actions.push_back(Action::Close);
        }
        self.link = Link::Stopped;
        self.reset_link();
        self.set_state(ConnectionState::Disconnected);
    }

    /// The app says connectivity changed (e.g. the phone found a network):
    /// a waiting reconnect happens now with the backoff reset, and a live
    /// connection is checked with a ping.
    pub fn network_changed(&mut self, now: Instant) {
        self.attempt = 0;
        match &self.link {
            Link::Waiting { .. } => self.open(),
            Link::Connected { liveness, .. } if liveness.ping_sent.is_none() => self.ping(now),
            _ => {}
        }
    }

    /// The socket opened.
    pub fn handle_open(&mut self, now: Instant) {
        if self.link == Link::Opening {
            self.link = Link::Handshaking(Liveness::new(now));
        }
    }

    /// The socket closed or failed to open (`code`: its close code).
    pub fn handle_closed(&mut self, code: Option<u16>, reason: &str, now: Instant) {
        if matches!(self.link, Link::Stopped | Link::Idle | Link::Waiting { .. }) {
            return;
        }
        self.reset_link();
        match CloseClass::of(code) {
            CloseClass::Fatal => {
                self.link = Link::Stopped;
                self.set_state(ConnectionState::Failed { code, reason: reason.to_owned() });
            }
            CloseClass::Immediate => self.open(),
            CloseClass::Backoff => {
                self.attempt += 1;
                let retry_in = self.config.backoff.delay(self.attempt);
                self.link = Link::Waiting { reconnect_at: now + retry_in };
                self.set_state(ConnectionState::Unavailable { attempt: self.attempt, retry_in });
            }
        }
    }

    /// Time passed: pings, pong timeouts and reconnects happen here.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.link {
            Link::Waiting { reconnect_at } if now >= *reconnect_at => self.open(),
            Link::Handshaking(liveness) | Link::Connected { liveness, .. } => match liveness.ping_sent {
                Some(sent) if now >= sent + self.config.pong_timeout => {
                    // The link is dead: drop it and reconnect.
                    self.actions.push_back(Action::Close);
                    self.handle_closed(None, "pong timeout", now);
                }
                None if now >= liveness.last_received + self.activity_timeout => self.ping(now),
                _ => {}
            },
            _ => {}
        }
    }

    /// When [`ClientSession::handle_timeout`] next needs to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.link {
            Link::Waiting { reconnect_at } => Some(*reconnect_at),
            Link::Handshaking(liveness) | Link::Connected { liveness, .. } => {
                Some(match liveness.ping_sent {
                    Some(sent) => sent + self.config.pong_timeout,
                    None => liveness.last_received + self.activity_timeout,
                })
            }
            _ => None,
        }
    }

    /// A text frame from the server.
    pub fn handle_frame(&mut self, text: &str, now: Instant) {
        if let Some(liveness) = self.liveness() {
            *liveness = Liveness::new(now);
        }
        let event = match ServerEvent::parse(text) {
            Ok(event) => event,
            Err(err) => {
                return self.events.push_back(ClientEvent::Error { code: None, message: err.to_string() });
            }
        };
        match event {
            ServerEvent::Established { socket_id, activity_timeout } => {
                self.established(socket_id, activity_timeout, now)
            }
            ServerEvent::Ping => self.send(Command::Pong),
            ServerEvent::Pong => {}
            ServerEvent::Error { code, message } => {
                self.events.push_back(ClientEvent::Error { code, message })
            }
            ServerEvent::SubscriptionSucceeded { channel, data, position } => {
                self.subscribed(channel, &data, position)
            }
            ServerEvent::SubscriptionError { channel, status, message } => {
                self.subscriptions.remove(&channel);
                self.events.push_back(ClientEvent::SubscriptionFailed { channel, status, message });
            }
            ServerEvent::MemberAdded { channel, data } => {
                if let Some(member) = Member::from_json(&data)
                    && let Some(roster) = self.rosters.get_mut(&channel)
                    && roster.add(member.clone())
                {
                    self.events.push_back(ClientEvent::MemberAdded { channel, member });
                }
            }
            ServerEvent::MemberRemoved { channel, user_id } => {
                if let Some(member) = self.rosters.get_mut(&channel).and_then(|r| r.remove(&user_id)) {
                    self.events.push_back(ClientEvent::MemberRemoved { channel, member });
                }
            }
            ServerEvent::Message { event, channel, data, user_id, position } => {
                self.events.push_back(ClientEvent::Message { channel, event, data, user_id, position });
            }
        }
    }

    /// Subscribes to `channel` (now, or once connected; again after every
    /// reconnect). Private and presence channels go through the authorizer.
    pub fn subscribe(&mut self, channel: &str) -> Result<(), ClientError> {
        ChannelName::parse(channel).map_err(|e| ClientError::Invalid(e.to_string()))?;
        if !self.subscriptions.contains_key(channel) {
            self.subscriptions.insert(channel.to_owned(), SubState::Pending);
            if self.is_connected() {
                self.start_subscription(channel.to_owned());
            }
        }
        Ok(())
    }

    /// Leaves `channel`.
    pub fn unsubscribe(&mut self, channel: &str) {
        if self.subscriptions.remove(channel).is_some() && self.is_connected() {
            self.send(Command::Unsubscribe(UnsubscribeData { channel: channel.to_owned() }));
        }
        self.rosters.remove(channel);
    }

    /// The authorizer's answer for `channel`, requested for `socket_id`.
    pub fn authorized(&mut self, channel: &str, socket_id: &str, result: Result<ChannelAuth, AuthRefusal>) {
        if self.socket_id() != Some(socket_id)
            || self.subscriptions.get(channel) != Some(&SubState::Authorizing)
        {
            return; // reconnected meanwhile (a new request is out) or unsubscribed
        }
        match result {
            Ok(auth) => {
                if let Some(user_id) = auth
                    .channel_data
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    .and_then(|d| Member::from_json(&d))
                    .map(|m| m.user_id)
                {
                    self.me.insert(channel.to_owned(), user_id);
                }
                let data = SubscribeData {
                    channel: channel.to_owned(),
                    auth: Some(auth.auth),
                    channel_data: auth.channel_data,
                };
                self.subscriptions.insert(channel.to_owned(), SubState::Subscribing);
                self.send(Command::Subscribe(data));
            }
            Err(refusal) => {
                self.subscriptions.remove(channel);
                self.events.push_back(ClientEvent::SubscriptionFailed {
                    channel: channel.to_owned(),
                    status: None,
                    message: refusal.to_string(),
                });
            }
        }
    }

    /// Sends a `client-` event on a subscribed private or presence channel.
    pub fn trigger(&mut self, channel: &str, event: &str, data: Value) -> Result<(), ClientError> {
        check_client_event(channel, event)?;
        self.send_on_channel(channel, event, data)
    }

    /// Sends any event on a subscribed channel (used for the document
    /// protocol's `sealcast:doc-*` events).
    pub fn send_on_channel(&mut self, channel: &str, event: &str, data: Value) -> Result<(), ClientError> {
        if !self.is_connected() {
            return Err(ClientError::NotConnected);
        }
        if self.subscriptions.get(channel) != Some(&SubState::Subscribed) {
            return Err(ClientError::NotSubscribed(channel.to_owned()));
        }
        let command = Command::ClientEvent { event: event.to_owned(), channel: channel.to_owned(), data };
        self.actions.push_back(Action::Send(command.encode()));
        Ok(())
    }

    /// Sends a frame already encoded by a channel's owner (the document
    /// client), if connected.
    pub fn send_frame(&mut self, frame: String) -> Result<(), ClientError> {
        if !self.is_connected() {
            return Err(ClientError::NotConnected);
        }
        self.actions.push_back(Action::Send(frame));
        Ok(())
    }

    /// Whether `channel` is subscribed now.
    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.subscriptions.get(channel) == Some(&SubState::Subscribed)
    }

    /// The members of a subscribed presence channel.
    pub fn members(&self, channel: &str) -> Vec<Member> {
        self.rosters.get(channel).map(Roster::members).unwrap_or_default()
    }

    /// This client's own member id on a presence channel.
    pub fn my_id(&self, channel: &str) -> Option<&str> {
        self.rosters.get(channel).and_then(Roster::me)
    }

    /// The next thing the transport must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the app.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn open(&mut self) {
        self.link = Link::Opening;
        self.actions.push_back(Action::Connect);
        self.set_state(ConnectionState::Connecting);
    }

    fn established(&mut self, socket_id: String, activity_timeout: Option<u64>, now: Instant) {
        if !matches!(self.link, Link::Handshaking(_) | Link::Connected { .. }) {
            return; // no socket is open: a stray frame
        }
        let server_timeout = activity_timeout.map(Duration::from_secs);
        self.activity_timeout =
            server_timeout.map_or(self.config.activity_timeout, |t| t.min(self.config.activity_timeout));
        self.link = Link::Connected { socket_id: socket_id.clone(), liveness: Liveness::new(now) };
        self.attempt = 0;
        self.set_state(ConnectionState::Connected { socket_id });
        let channels: Vec<String> = self.subscriptions.keys().cloned().collect();
        for channel in channels {
            self.start_subscription(channel);
        }
    }

    fn start_subscription(&mut self, channel: String) {
        if ChannelKind::of(&channel).requires_auth() {
            let socket_id = self.socket_id().unwrap_or_default().to_owned();
            self.subscriptions.insert(channel.clone(), SubState::Authorizing);
            self.actions.push_back(Action::Authorize { socket_id, channel });
        } else {
            self.subscriptions.insert(channel.clone(), SubState::Subscribing);
            self.send(Command::Subscribe(SubscribeData { channel, auth: None, channel_data: None }));
        }
    }

    fn subscribed(&mut self, channel: String, data: &Value, position: Option<Position>) {
        if !self.subscriptions.contains_key(&channel) {
            return;
        }
        self.subscriptions.insert(channel.clone(), SubState::Subscribed);
        if ChannelKind::of(&channel).is_presence() {
            let mut roster = Roster::from_subscription(data);
            if let Some(me) = self.me.get(&channel) {
                roster.set_me(me.clone());
            }
            self.rosters.insert(channel.clone(), roster);
        }
        self.events.push_back(ClientEvent::Subscribed { channel, position });
    }

    fn ping(&mut self, now: Instant) {
        if let Some(liveness) = self.liveness() {
            liveness.ping_sent = Some(now);
        }
        self.send(Command::Ping);
    }

    fn send(&mut self, command: Command) {
        self.actions.push_back(Action::Send(command.encode()));
    }

    /// Forgets everything tied to the lost socket.
    fn reset_link(&mut self) {
        for state in self.subscriptions.values_mut() {
            *state = SubState::Pending;
        }
        self.rosters.clear();
    }

    fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            self.state = state.clone();
            self.events.push_back(ClientEvent::State(state));
        }
    }
}

/// The server's rule for client events (it would refuse others): a
/// `client-` name, on a private or presence channel, not on a
/// `private-encrypted-` one.
pub(crate) fn check_client_event(channel: &str, event: &str) -> Result<(), ClientError> {
    if !event.starts_with(CLIENT_EVENT_PREFIX) {
        return Err(ClientError::Invalid(format!("client event names start with client-: {event}")));
    }
    let allowed = ChannelName::parse(channel).is_ok_and(|name| name.allows_client_events());
    if !allowed {
        return Err(ClientError::Invalid(format!(
            "client events are only allowed on private and presence channels (not {channel})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
