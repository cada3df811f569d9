//! Channels with history: the machine carries out what the streams ask
//! (deliveries through the key-aware inbound path, reads on the link,
//! outcomes to the app) and routes the server's history replies to them.

use super::scroll_back::is_app_read;
use super::{ClientMachine, Event};
use crate::client::held::Inbound;
use crate::client::streams::StreamOutput;
use crate::protocol::history::{self, HistoryError, HistoryPage};

impl ClientMachine {
    /// A `sealcast_internal:history` page or refusal.
    pub(super) fn on_history_reply(&mut self, message: Inbound) {
        let Some(channel) = message.channel else { return };
        let now = self.now;
        // The app's own reads (scrolling back) and the catch-ups' have
        // their own request ids.
        let parsed = if message.event == history::PAGE {
            serde_json::from_value::<HistoryPage>(message.data).map(|page| {
                if is_app_read(page.request_id.as_deref()) {
                    self.on_app_page(channel.clone(), Ok(page));
                } else {
                    self.streams.page(&channel, page, now);
                }
            })
        } else {
            serde_json::from_value::<HistoryError>(message.data).map(|error| {
                if is_app_read(error.request_id.as_deref()) {
                    self.on_app_page(channel.clone(), Err(error));
                } else {
                    self.streams.refused(&channel, error, now);
                }
            })
        };
        if parsed.is_err() {
            let message = format!("a history reply on {channel} that does not parse");
            self.events.push_back(Event::Error { code: None, message });
        }
    }

    /// Tells the app the catch-ups whose channels hold no event waiting
    /// for a key: an outcome follows the events it is about.
    pub(super) fn flush_outcomes(&mut self) {
        let Self { outcomes, inbound, events, .. } = self;
        outcomes.retain(|(channel, outcome)| {
            if inbound.iter().any(|held| held.channel.as_deref() == Some(channel.as_str())) {
                return true;
            }
            events.push_back(Event::CatchUp { channel: channel.clone(), outcome: outcome.clone() });
            false
        });
    }

    /// Carries out what the streams produced, in order.
    pub(super) fn drive_streams(&mut self) {
        while let Some(output) = self.streams.poll() {
            match output {
                StreamOutput::Deliver(message) => self.deliver(message),
                StreamOutput::Read { channel, read } => {
                    // Not subscribed (dropped meanwhile): the
                    // resubscription starts the catch-up again.
                    if self.link.is_subscribed(&channel)
                        && let Ok(data) = serde_json::to_value(&read)
                    {
                        let _ = self.link.send(&channel, history::READ, data);
                    }
                }
                StreamOutput::Outcome { channel, outcome } => {
                    self.outcomes.push((channel, outcome));
                    self.flush_outcomes();
                }
            }
        }
    }
}
