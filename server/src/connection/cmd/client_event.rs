//! `client-*` events: relayed byte for byte to the channel's other
//! subscribers (and the app's webhook, when it asks for them).

use std::time::Instant;

use sealcast_core::protocol::ClientFrame;

use super::super::{ServerError, Session};
use crate::app::{ChannelEvent, NotTo, PublishError};
use crate::webhooks::HookEvent;

/// Longest client event name (Pusher's limit).
const MAX_EVENT_NAME: usize = 200;

impl Session {
    pub(in crate::connection) fn client_event(&mut self, frame: &ClientFrame) {
        let started = Instant::now();
        let channel = match frame.channel_name() {
            Ok(channel) => channel,
            Err(err) => return self.error(&ServerError::ClientEventChannel(err.to_string())),
        };
        let rejected = |message| ServerError::ClientEventRejected(message);
        let config = self.app.config();
        if !config.enable_client_messages {
            return self.error(&rejected("client events are disabled for this app"));
        }
        if !channel.allows_client_events() {
            return self.error(&rejected("client events are only allowed on private and presence channels"));
        }
        if frame.event.len() > MAX_EVENT_NAME {
            return self.error(&rejected("event name longer than 200 characters"));
        }
        let size = frame.data.as_ref().map_or(0, |d| d.get().len());
        if size > config.max_event_payload_bytes {
            return self.error(&rejected("event data over the payload limit"));
        }
        let Some(user_id) = self.app.subscription(&self.handle.socket_id, channel.as_str()) else {
            return self.error(&rejected("not subscribed to this channel"));
        };
        let event = ChannelEvent {
            channel: channel.as_str(),
            event: &frame.event,
            data: frame.data.as_deref(),
            user_id: user_id.as_deref(),
        };
        match self.app.publish_event(event, Some(NotTo::Sender(&self.handle.socket_id)), &self.state.metrics)
        {
            Ok(_) => {}
            Err(PublishError::Bus(_)) => {
                return self
                    .error(&rejected("cluster broker unreachable or busy: the event was not sent; retry"));
            }
            Err(PublishError::History(err)) => {
                tracing::error!(error = %err, "history store failed: a client event was refused");
                return self.error(&rejected("history store unavailable: the event was not sent; retry"));
            }
        }
        self.state.metrics.fanout_latency.observe(started.elapsed());
        let webhooks = self.app.webhooks();
        if webhooks.wants(crate::webhooks::EventType::ClientEvent) {
            let event = HookEvent::ClientEvent {
                channel: channel.as_str().to_owned(),
                event: frame.event.clone(),
                data: frame.data.as_ref().map_or_else(String::new, |d| d.get().to_owned()),
                socket_id: self.handle.socket_id.to_string(),
                user_id,
            };
            webhooks.emit(event);
        }
    }
}
