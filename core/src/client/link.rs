//! The machine's link to the server, in one of two modes: its own Pusher
//! connection ([`ClientSession`]: the machine speaks the wire protocol), or
//! an external one that another library owns (pusher-js in a browser,
//! Laravel Echo): the app tells the machine which channels that library
//! has subscribed and feeds it their events; the machine asks it to
//! subscribe and to trigger.

use std::collections::BTreeMap;

use serde_json::Value;

use super::session::{Action, ClientError, ClientSession, check_client_event};
use crate::protocol::ChannelName;

/// What the transport must do: the own link emits `Connect`, `Frame` and
/// `Close`; an external transport emits `Subscribe`, `Unsubscribe` and
/// `Trigger`.
#[derive(Debug, Clone, PartialEq)]
pub enum Transmit {
    /// Own link: open a WebSocket to the server, then call `handle_open`
    /// (or `handle_closed` if it failed).
    Connect,
    /// Own link: send this text frame.
    Frame(String),
    /// Own link: close the socket, then call `handle_closed`.
    Close,
    /// External: subscribe to this channel with the app's library, then
    /// call `handle_subscribed` when it succeeds.
    Subscribe(String),
    /// External: unsubscribe from this channel.
    Unsubscribe(String),
    /// External: trigger this client event with the app's library
    /// (`channel.trigger(event, data)` in pusher-js).
    Trigger {
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// Its data.
        data: Value,
    },
}

/// The channels an external transport has subscribed, as the app reports.
#[derive(Debug, Default)]
pub(crate) struct ExternalLink {
    /// Channel → subscribed now (false: asked for, not confirmed yet).
    channels: BTreeMap<String, bool>,
    transmits: std::collections::VecDeque<Transmit>,
}

/// The link to the server.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per client, never moved in a hot path
pub(crate) enum Link {
    Own(ClientSession),
    External(ExternalLink),
}

impl Link {
    /// Subscribes to `channel` (again after every reconnect, for the own
    /// link; an external library resubscribes by itself).
    pub(crate) fn subscribe(&mut self, channel: &str) -> Result<(), ClientError> {
        match self {
            Link::Own(session) => session.subscribe(channel),
            Link::External(link) => {
                ChannelName::parse(channel).map_err(|e| ClientError::Invalid(e.to_string()))?;
                if !link.channels.contains_key(channel) {
                    link.channels.insert(channel.to_owned(), false);
                    link.transmits.push_back(Transmit::Subscribe(channel.to_owned()));
                }
                Ok(())
            }
        }
    }

    pub(crate) fn unsubscribe(&mut self, channel: &str) {
        match self {
            Link::Own(session) => session.unsubscribe(channel),
            Link::External(link) => {
                if link.channels.remove(channel).is_some() {
                    link.transmits.push_back(Transmit::Unsubscribe(channel.to_owned()));
                }
            }
        }
    }

    pub(crate) fn is_subscribed(&self, channel: &str) -> bool {
        match self {
            Link::Own(session) => session.is_subscribed(channel),
            Link::External(link) => link.channels.get(channel) == Some(&true),
        }
    }

    /// Checks what the server would refuse before anything is sealed: a
    /// `client-` name, a private or presence channel (not
    /// `private-encrypted-`), subscribed and connected.
    pub(crate) fn check_client_event(&self, channel: &str, event: &str) -> Result<(), ClientError> {
        check_client_event(channel, event)?;
        self.check_sendable(channel)
    }

    /// Whether an event can go out on `channel` now.
    pub(crate) fn check_sendable(&self, channel: &str) -> Result<(), ClientError> {
        if let Link::Own(session) = self
            && session.socket_id().is_none()
        {
            return Err(ClientError::NotConnected);
        }
        if !self.is_subscribed(channel) {
            return Err(ClientError::NotSubscribed(channel.to_owned()));
        }
        Ok(())
    }

    /// Sends an event on a subscribed channel (checked by the caller).
    pub(crate) fn send(&mut self, channel: &str, event: &str, data: Value) -> Result<(), ClientError> {
        match self {
            Link::Own(session) => session.send_on_channel(channel, event, data),
            Link::External(link) => {
                if link.channels.get(channel) != Some(&true) {
                    return Err(ClientError::NotSubscribed(channel.to_owned()));
                }
                let (channel, event) = (channel.to_owned(), event.to_owned());
                link.transmits.push_back(Transmit::Trigger { channel, event, data });
                Ok(())
            }
        }
    }

    /// External: the library confirmed `channel`; false when it is not one
    /// the machine asked for or it was already subscribed.
    pub(crate) fn external_subscribed(&mut self, channel: &str) -> bool {
        match self {
            Link::External(link) => match link.channels.get_mut(channel) {
                Some(subscribed) if !*subscribed => {
                    *subscribed = true;
                    true
                }
                Some(_) => false,
                // A channel the app subscribed by itself: track it too, so
                // sealed triggers on it are allowed.
                None => {
                    link.channels.insert(channel.to_owned(), true);
                    true
                }
            },
            Link::Own(_) => false,
        }
    }

    /// External: the library lost `channel` (`None`: every channel, the
    /// connection dropped); it resubscribes by itself.
    pub(crate) fn external_unsubscribed(&mut self, channel: Option<&str>) {
        if let Link::External(link) = self {
            for (name, subscribed) in &mut link.channels {
                if channel.is_none_or(|c| c == name) {
                    *subscribed = false;
                }
            }
        }
    }

    /// The next thing the transport must do, or a request of the own
    /// session (an authorization), which the machine turns into an event.
    pub(crate) fn poll(&mut self) -> Option<Result<Transmit, (String, String)>> {
        match self {
            Link::Own(session) => session.poll_action().map(|action| match action {
                Action::Connect => Ok(Transmit::Connect),
                Action::Send(text) => Ok(Transmit::Frame(text)),
                Action::Close => Ok(Transmit::Close),
                Action::Authorize { socket_id, channel } => Err((socket_id, channel)),
            }),
            Link::External(link) => link.transmits.pop_front().map(Ok),
        }
    }
}
