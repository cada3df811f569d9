//! [`Machine`]: the core client machine in external-transport mode, for
//! pusher-js. Every method takes the time itself (`performance.now()`),
//! so JS never handles `Instant`s; outputs are drained with the `poll*`
//! methods after each call (the calling order of `ClientMachine`).

use std::time::Duration;

use sealcast_core::client::{
    ClientMachine, DocOptions, Document, KeyGrant, KeyRefusal, KeyRequest, MachineConfig,
};
use sealcast_core::crypto::{Key, Scope};
use sealcast_core::doc::{DocClientError, DocConfig};
use sealcast_core::ot::Delta;
use sealcast_core::protocol::history::Position;
use sealcast_core::time::Instant;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::error::{self, invalid, parse};
use crate::events;

/// The whole sealcast client (sealing, opening, keys, held events and
/// documents) over the app's pusher-js connection.
#[wasm_bindgen]
pub struct Machine {
    inner: ClientMachine,
}

fn field_u64(options: &Value, name: &str) -> Result<Option<u64>, JsError> {
    match options.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            value.as_u64().map(Some).ok_or_else(|| invalid(format!("{name} must be a whole number")))
        }
    }
}

fn field_str(options: &Value, name: &str) -> Result<Option<String>, JsError> {
    match options.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("{name} must be a string"))),
    }
}

fn delta(json: &str) -> Result<Delta, JsError> {
    Delta::from_json_str(json).map_err(error::ot)
}

/// A version or position from JS (a number): whole and non-negative.
fn whole(value: f64, what: &str) -> Result<u64, JsError> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 9_007_199_254_740_991.0 {
        Ok(value as u64)
    } else {
        Err(invalid(format!("{what} must be a whole number, got {value}")))
    }
}

#[wasm_bindgen]
impl Machine {
    /// A machine; `config_json` (optional): `{"maxHeld", "keyTimeoutMs",
    /// "keyRetryAfterMs"}` (defaults 1000, 30000, 10000).
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: Option<String>) -> Result<Machine, JsError> {
        let mut config = MachineConfig::default();
        if let Some(text) = config_json {
            let options = parse(&text)?;
            if let Some(n) = field_u64(&options, "maxHeld")? {
                config.max_held = usize::try_from(n).map_err(invalid)?.max(1);
            }
            if let Some(ms) = field_u64(&options, "keyTimeoutMs")? {
                config.key_timeout = Duration::from_millis(ms);
            }
            if let Some(ms) = field_u64(&options, "keyRetryAfterMs")? {
                config.key_retry_after = Duration::from_millis(ms);
            }
        }
        Ok(Machine { inner: ClientMachine::external(config, Instant::now()) })
    }

    // ---- input from pusher-js ----

    /// pusher-js subscribed `channel` (`pusher:subscription_succeeded`);
    /// `offset` and `epoch`: the frame's stream position, on a channel with
    /// history.
    #[wasm_bindgen(js_name = handleSubscribed)]
    pub fn handle_subscribed(&mut self, channel: &str, offset: Option<f64>, epoch: Option<String>) {
        self.inner.handle_subscribed_at(Instant::now(), channel, position(offset, epoch));
    }

    /// pusher-js lost `channel`, or every channel (`undefined`: the
    /// connection dropped; pusher-js resubscribes by itself).
    #[wasm_bindgen(js_name = handleUnsubscribed)]
    pub fn handle_unsubscribed(&mut self, channel: Option<String>) {
        self.inner.handle_unsubscribed(Instant::now(), channel.as_deref());
    }

    /// An event pusher-js delivered on `channel`: `data_json` is its data
    /// as JSON text (`JSON.stringify` of what pusher-js parsed), `user_id`
    /// the sender on presence channels, `offset` and `epoch` its stream
    /// position on a channel with history.
    #[wasm_bindgen(js_name = handleChannelEvent)]
    pub fn handle_channel_event(
        &mut self,
        channel: &str,
        event: &str,
        data_json: &str,
        user_id: Option<String>,
        offset: Option<f64>,
        epoch: Option<String>,
    ) {
        // Data that is not JSON text is passed on as a string, as the wire
        // carried it.
        let data = serde_json::from_str(data_json).unwrap_or_else(|_| Value::String(data_json.to_owned()));
        let position = position(offset, epoch);
        self.inner.handle_channel_event_at(Instant::now(), channel, event, data, user_id, position);
    }

    /// Time passed: call when the delay from [`Machine::poll_timeout`] is over.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self) {
        self.inner.handle_timeout(Instant::now());
    }

    /// The key provider's answer to a `needKey` event: `request_json` is
    /// its `request`, `key` the key in base64url, `key_hint` the hint of a
    /// new document session key (asked for without `keyHint`).
    #[wasm_bindgen(js_name = handleKey)]
    pub fn handle_key(
        &mut self,
        request_json: &str,
        kv: u32,
        key: &str,
        key_hint: Option<String>,
    ) -> Result<(), JsError> {
        let request = key_request(request_json)?;
        let result = Key::from_base64url(key)
            .map(|key| KeyGrant { kv, key, key_hint })
            .map_err(|e| KeyRefusal::Refused(e.to_string()));
        self.inner.handle_key(Instant::now(), &request, result);
        Ok(())
    }

    /// The key provider refused a `needKey` request: what waited for the
    /// key is reported (undecryptable, not sent, `keyNeeded`, the op
    /// skipped).
    #[wasm_bindgen(js_name = handleKeyError)]
    pub fn handle_key_error(&mut self, request_json: &str, message: &str) -> Result<(), JsError> {
        let request = key_request(request_json)?;
        self.inner.handle_key(Instant::now(), &request, Err(KeyRefusal::Refused(message.to_owned())));
        Ok(())
    }

    /// The key provider cannot answer a `needKey` request now (offline,
    /// its server down): no answer yet, so what waits goes on waiting
    /// until `keyTimeout` and no op is skipped.
    #[wasm_bindgen(js_name = handleKeyUnavailable)]
    pub fn handle_key_unavailable(&mut self, request_json: &str, message: &str) -> Result<(), JsError> {
        let request = key_request(request_json)?;
        self.inner.handle_key(Instant::now(), &request, Err(KeyRefusal::Unavailable(message.to_owned())));
        Ok(())
    }

    // ---- commands ----

    /// Asks for `channel` (a `subscribe` transmit follows).
    pub fn subscribe(&mut self, channel: &str) -> Result<(), JsError> {
        self.inner.subscribe(channel).map_err(error::command)
    }

    /// Leaves `channel`.
    pub fn unsubscribe(&mut self, channel: &str) {
        self.inner.unsubscribe(channel);
    }

    /// A plaintext `client-` event.
    pub fn trigger(&mut self, channel: &str, event: &str, data_json: &str) -> Result<(), JsError> {
        self.inner.trigger(channel, event, parse(data_json)?).map_err(error::command)
    }

    /// A `client-` event with `paths` (JSON pointers) of `data_json` sealed
    /// for `scope` (`chat:ROOM:MSG`, `call:CALL:EVENT`,
    /// `custom:SCOPE:ID:EVENT`) under the current version of `kid`.
    #[wasm_bindgen(js_name = triggerSealed)]
    pub fn trigger_sealed(
        &mut self,
        channel: &str,
        event: &str,
        data_json: &str,
        paths: Vec<String>,
        kid: &str,
        scope: &str,
    ) -> Result<(), JsError> {
        let scope: Scope = scope.parse().map_err(error::crypto)?;
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        self.inner
            .trigger_sealed(channel, event, parse(data_json)?, &paths, kid, &scope)
            .map_err(error::command)
    }

    /// A chat message with `/body` sealed for `chat:ROOM:MESSAGE_ID` under
    /// key id `room`, as `client-chat`.
    #[wasm_bindgen(js_name = sendChat)]
    pub fn send_chat(
        &mut self,
        channel: &str,
        room: &str,
        message_id: &str,
        data_json: &str,
    ) -> Result<(), JsError> {
        self.inner.send_chat(channel, room, message_id, parse(data_json)?).map_err(error::command)
    }

    /// A call-signaling event with `/sdp` and `/candidate` sealed.
    #[wasm_bindgen(js_name = sendSignal)]
    pub fn send_signal(
        &mut self,
        channel: &str,
        call_id: &str,
        event: &str,
        data_json: &str,
    ) -> Result<(), JsError> {
        self.inner.send_signal(channel, call_id, event, parse(data_json)?).map_err(error::command)
    }

    /// This user's presence state, sealed under `kid`, as
    /// `client-presence-state`.
    #[wasm_bindgen(js_name = sendPresenceState)]
    pub fn send_presence_state(&mut self, channel: &str, kid: &str, state_json: &str) -> Result<(), JsError> {
        self.inner.send_presence_state(channel, kid, parse(state_json)?).map_err(error::command)
    }

    /// Asks for a page of `channel`'s history, scrolling back: the newest
    /// `limit` events before offset `before` (none: the newest). Returns
    /// the request id its `history` event carries.
    #[wasm_bindgen(js_name = readHistory)]
    pub fn read_history(
        &mut self,
        channel: &str,
        before: Option<f64>,
        limit: u32,
    ) -> Result<String, JsError> {
        let before = before.filter(|b| *b >= 0.0 && b.fract() == 0.0).map(|b| b as u64);
        self.inner.read_history(channel, before, limit).map_err(error::command)
    }

    /// Adds a key version (base64url); held events it opens are delivered.
    #[wasm_bindgen(js_name = addKey)]
    pub fn add_key(&mut self, kid: &str, kv: u32, key: &str) -> Result<(), JsError> {
        let key = Key::from_base64url(key).map_err(error::crypto)?;
        self.inner.add_key(kid, kv, key).map_err(error::command)
    }

    /// Opens document `doc_id`; `options_json`: `{"kid", "presence"?,
    /// "keyHint"?, "snapshotEvery"?, "digestEvery"?}`.
    #[wasm_bindgen(js_name = openDocument)]
    pub fn open_document(&mut self, doc_id: &str, options_json: &str) -> Result<(), JsError> {
        let options = parse(options_json)?;
        let kid = field_str(&options, "kid")?.ok_or_else(|| invalid("kid is required"))?;
        let defaults = DocConfig::default();
        let config = DocConfig {
            snapshot_every: field_u64(&options, "snapshotEvery")?.unwrap_or(defaults.snapshot_every),
            digest_every: field_u64(&options, "digestEvery")?.unwrap_or(defaults.digest_every),
            ..defaults
        };
        let presence = match options.get("presence") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(presence)) => *presence,
            Some(_) => return Err(invalid("presence must be a boolean")),
        };
        let key_hint = field_str(&options, "keyHint")?;
        let options = DocOptions { presence, kid, key_hint, config };
        self.inner.open_document(doc_id, options).map_err(error::command)
    }

    /// Closes a document and leaves its channel.
    #[wasm_bindgen(js_name = closeDocument)]
    pub fn close_document(&mut self, doc_id: &str) {
        self.inner.close_document(doc_id);
    }

    /// The user changed the view at `version` (the version of the last
    /// `ready`/`remoteChange` the editor applied) by `delta_json` (a Quill
    /// delta); returns the version the editor is at now.
    #[wasm_bindgen(js_name = editDocument)]
    pub fn edit_document(&mut self, doc_id: &str, version: f64, delta_json: &str) -> Result<f64, JsError> {
        let (version, change) = (whole(version, "version")?, delta(delta_json)?);
        self.with_document(doc_id, |mut doc| doc.edit_at(version, change)).map(|v| v as f64)
    }

    /// Undoes the user's newest change; false when there is none.
    #[wasm_bindgen(js_name = undoDocument)]
    pub fn undo_document(&mut self, doc_id: &str) -> Result<bool, JsError> {
        self.with_document(doc_id, |mut doc| doc.undo())
    }

    /// Redoes the newest undone change; false when there is none.
    #[wasm_bindgen(js_name = redoDocument)]
    pub fn redo_document(&mut self, doc_id: &str) -> Result<bool, JsError> {
        self.with_document(doc_id, |mut doc| doc.redo())
    }

    /// Shares this user's selection (sealed).
    #[wasm_bindgen(js_name = documentCursor)]
    pub fn document_cursor(&mut self, doc_id: &str, index: f64, length: f64) -> Result<(), JsError> {
        let index = usize::try_from(whole(index, "index")?).map_err(invalid)?;
        let length = usize::try_from(whole(length, "length")?).map_err(invalid)?;
        self.with_document(doc_id, |mut doc| doc.cursor(index, length))
    }

    /// The document as this user sees it, and its version:
    /// `{"view": delta, "version": n}` as JSON text.
    #[wasm_bindgen(js_name = documentView)]
    pub fn document_view(&mut self, doc_id: &str) -> Result<String, JsError> {
        let (view, version) = self.with_document(doc_id, |doc| doc.versioned_view())?;
        Ok(serde_json::json!({"view": view.to_json(), "version": version}).to_string())
    }

    /// True once the document is joined and not diverged.
    #[wasm_bindgen(js_name = documentReady)]
    pub fn document_ready(&mut self, doc_id: &str) -> Result<bool, JsError> {
        self.with_document(doc_id, |doc| Ok(doc.is_ready()))
    }

    /// True while the user's edits await the server's acknowledgement.
    #[wasm_bindgen(js_name = documentHasPending)]
    pub fn document_has_pending(&mut self, doc_id: &str) -> Result<bool, JsError> {
        self.with_document(doc_id, |doc| Ok(doc.has_pending()))
    }

    /// After `diverged`: reloads the document from the server.
    #[wasm_bindgen(js_name = restartDocument)]
    pub fn restart_document(&mut self, doc_id: &str) -> Result<(), JsError> {
        self.with_document(doc_id, |mut doc| {
            doc.restart();
            Ok(())
        })
    }

    // ---- output ----

    /// The next thing pusher-js must do, as JSON text (`subscribe`,
    /// `unsubscribe`, `trigger`), or `undefined`.
    #[wasm_bindgen(js_name = pollTransmit)]
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.inner.poll_transmit().map(|t| events::transmit(t).to_string())
    }

    /// The next event for the app, as JSON text, or `undefined`.
    #[wasm_bindgen(js_name = pollEvent)]
    pub fn poll_event(&mut self) -> Option<String> {
        self.inner.poll_event().map(|e| events::event(e).to_string())
    }

    /// Milliseconds until `handleTimeout` should run, or `undefined`.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&mut self) -> Option<f64> {
        let at = self.inner.poll_timeout()?;
        Some(at.saturating_duration_since(Instant::now()).as_secs_f64() * 1000.0)
    }
}

impl Machine {
    fn with_document<T>(
        &mut self,
        doc_id: &str,
        f: impl FnOnce(Document<'_>) -> Result<T, DocClientError>,
    ) -> Result<T, JsError> {
        // The time first: an edit is paced from now (DocConfig::submit_interval).
        self.inner.handle_timeout(Instant::now());
        let doc = self.inner.document(doc_id).map_err(error::command)?;
        f(doc).map_err(error::document)
    }
}

fn key_request(json: &str) -> Result<KeyRequest, JsError> {
    let value = parse(json)?;
    let kid = field_str(&value, "kid")?.ok_or_else(|| invalid("a key request has a kid"))?;
    let kv = field_u64(&value, "kv")?.map(u32::try_from).transpose().map_err(invalid)?;
    let request =
        KeyRequest { kid, kv, doc_id: field_str(&value, "docId")?, key_hint: field_str(&value, "keyHint")? };
    Ok(request)
}

/// A stream position from JavaScript (offsets are exact up to 2^53).
fn position(offset: Option<f64>, epoch: Option<String>) -> Option<Position> {
    match (offset, epoch) {
        (Some(offset), Some(epoch)) if offset >= 0.0 && offset.fract() == 0.0 && offset < 9.0e15 => {
            Some(Position { offset: offset as u64, epoch })
        }
        _ => None,
    }
}
