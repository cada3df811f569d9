//! Sending: plaintext and sealed `client-` events, in order per channel;
//! a sealed one waits (asking for the key) while the app ring lacks its
//! key, and is reported as not sent when the key is refused or late.

use std::collections::HashSet;

use serde_json::Value;

use super::{CHAT_EVENT, ClientMachine, CommandError, Event, PRESENCE_STATE_EVENT};
use crate::client::NotSentReason;
use crate::client::held::{PendingSend, Seal};
use crate::client::sealed::{check_sealable, seal_event_with_rng};
use crate::crypto::Scope;
use crate::keys::{Asked, KeyRequest};

/// What [`ClientMachine::send_signal`] seals, when present.
const SIGNAL_PATHS: [&str; 2] = ["/sdp", "/candidate"];

impl ClientMachine {
    /// Sends a plaintext `client-` event (after the sealed ones sent
    /// before it on the channel, if they wait for a key).
    pub fn trigger(&mut self, channel: &str, event: &str, data: Value) -> Result<(), CommandError> {
        self.link.check_client_event(channel, event)?;
        let send = PendingSend { channel: channel.to_owned(), event: event.to_owned(), data, seal: None };
        self.send_or_wait(send)
    }

    /// Seals `paths` of `data` for `scope` with the current version of
    /// `kid` and sends it as a `client-` event. When the ring lacks `kid`
    /// the event waits (the machine asks with `NeedKey`) and goes out when
    /// the key arrives; a failure then is reported as an `Error` event.
    pub fn trigger_sealed(
        &mut self,
        channel: &str,
        event: &str,
        data: Value,
        paths: &[&str],
        kid: &str,
        scope: &Scope,
    ) -> Result<(), CommandError> {
        self.link.check_client_event(channel, event)?;
        check_sealable(&data, scope)?;
        let seal = Seal {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            kid: kid.to_owned(),
            scope: scope.clone(),
        };
        let send =
            PendingSend { channel: channel.to_owned(), event: event.to_owned(), data, seal: Some(seal) };
        self.send_or_wait(send)
    }

    /// Sends now, or queues behind what waits on the channel (asking for
    /// the key a sealed send lacks).
    pub(super) fn send_or_wait(&mut self, send: PendingSend) -> Result<(), CommandError> {
        let behind = self.sends.iter().any(|waiting| waiting.channel == send.channel);
        let lacks_key =
            send.seal.as_ref().is_some_and(|seal| self.keys.app_ring().current_version(&seal.kid).is_none());
        if !behind && !lacks_key {
            return self.seal_and_send(send);
        }
        if self.sends.is_full() {
            return Err(CommandError::Busy(self.sends.len()));
        }
        if let Some(seal) = send.seal.as_ref().filter(|_| lacks_key) {
            let request = KeyRequest { kid: seal.kid.clone(), kv: None, doc_id: None, key_hint: None };
            if self.keys.ask(request) != Asked::Waiting {
                return Err(CommandError::Busy(self.config.max_held));
            }
        }
        self.sends.push(self.now, send);
        Ok(())
    }

    /// Shares this user's presence state (typing, cursor, location…) on a
    /// presence channel: `state` travels sealed as `/state` of a
    /// `client-presence-state` event, scope
    /// `custom:presence-state:CHANNEL:client-presence-state` (receivers get
    /// it as a `Message` with that scope and the sender's `user_id`).
    pub fn send_presence_state(
        &mut self,
        channel: &str,
        kid: &str,
        state: Value,
    ) -> Result<(), CommandError> {
        let scope = Scope::custom("presence-state", channel, PRESENCE_STATE_EVENT)?;
        let data = serde_json::json!({ "state": state });
        self.trigger_sealed(channel, PRESENCE_STATE_EVENT, data, &["/state"], kid, &scope)
    }

    /// Sends a sealed chat message: `/body` of `data` sealed for
    /// `chat:ROOM:MESSAGE_ID` with key id `room`, as `client-chat`.
    pub fn send_chat(
        &mut self,
        channel: &str,
        room: &str,
        message_id: &str,
        data: Value,
    ) -> Result<(), CommandError> {
        let scope = Scope::chat(room, message_id)?;
        self.trigger_sealed(channel, CHAT_EVENT, data, &["/body"], room, &scope)
    }

    /// Sends a call-signaling event (`client-offer`, `client-answer`,
    /// `client-ice`…) with `/sdp` and `/candidate` sealed (those present)
    /// for `call:CALL_ID:EVENT` with key id `call_id`.
    pub fn send_signal(
        &mut self,
        channel: &str,
        call_id: &str,
        event: &str,
        data: Value,
    ) -> Result<(), CommandError> {
        let paths: Vec<&str> = SIGNAL_PATHS.into_iter().filter(|p| data.pointer(p).is_some()).collect();
        let scope = Scope::call(call_id, event)?;
        self.trigger_sealed(channel, event, data, &paths, call_id, &scope)
    }

    /// Sends the waiting events that can go now (in order per channel).
    pub(super) fn flush_sends(&mut self) {
        let mut waiting: HashSet<String> = HashSet::new();
        for (at, send) in self.sends.take_all() {
            let lacks_key = send
                .seal
                .as_ref()
                .is_some_and(|seal| self.keys.app_ring().current_version(&seal.kid).is_none());
            if waiting.contains(&send.channel) || lacks_key {
                waiting.insert(send.channel.clone());
                self.sends.put_back(at, send);
            } else {
                let (channel, event) = (send.channel.clone(), send.event.clone());
                if let Err(err) = self.seal_and_send(send) {
                    let reason = NotSentReason::Refused(err);
                    self.events.push_back(Event::NotSent { channel, event, reason });
                }
            }
        }
    }

    pub(super) fn seal_and_send(&mut self, mut send: PendingSend) -> Result<(), CommandError> {
        self.link.check_client_event(&send.channel, &send.event)?;
        if let Some(seal) = &send.seal {
            let paths: Vec<&str> = seal.paths.iter().map(String::as_str).collect();
            let (ring, rng) = self.keys.app_sealing();
            seal_event_with_rng(&mut send.data, &paths, ring, &seal.kid, &seal.scope, rng)?;
        }
        self.streams.sent(&send.channel, &send.event, &send.data);
        Ok(self.link.send(&send.channel, &send.event, send.data)?)
    }

    pub(super) fn not_sent(&mut self, send: PendingSend, reason: NotSentReason) {
        let PendingSend { channel, event, .. } = send;
        self.events.push_back(Event::NotSent { channel, event, reason });
    }
}
