//! The machine's outputs as JSON for the TypeScript layer: one object per
//! event or transmit, tagged by `type` (the shapes are the `.d.ts` types
//! `MachineEvent` and `MachineTransmit` in `bindings/js/src/types.ts`).

use std::time::Duration;

use sealcast_core::client::{
    CatchUpOutcome, ConnectionState, Event, HistoryRead, KeyRequest, Member, Transmit,
};
use sealcast_core::doc::DocClientEvent;
use sealcast_core::ot::Delta;
use sealcast_core::protocol::history::HistoryError;
use serde_json::{Value, json};

pub(crate) fn transmit(transmit: Transmit) -> Value {
    match transmit {
        Transmit::Subscribe(channel) => json!({"type": "subscribe", "channel": channel}),
        Transmit::Unsubscribe(channel) => json!({"type": "unsubscribe", "channel": channel}),
        Transmit::Trigger { channel, event, data } => {
            json!({"type": "trigger", "channel": channel, "event": event, "data": data})
        }
        // The own-link transmits never come from an external machine.
        Transmit::Connect | Transmit::Frame(_) | Transmit::Close => json!({"type": "none"}),
    }
}

pub(crate) fn key_request(request: &KeyRequest) -> Value {
    json!({
        "kid": request.kid,
        "kv": request.kv,
        "docId": request.doc_id,
        "keyHint": request.key_hint,
    })
}

fn member(member: Member) -> Value {
    json!({"userId": member.user_id, "userInfo": member.user_info})
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn state(state: ConnectionState) -> Value {
    match state {
        ConnectionState::Initialized => json!({"state": "initialized"}),
        ConnectionState::Connecting => json!({"state": "connecting"}),
        ConnectionState::Connected { socket_id } => json!({"state": "connected", "socketId": socket_id}),
        ConnectionState::Unavailable { attempt, retry_in } => {
            json!({"state": "unavailable", "attempt": attempt, "retryInMs": millis(retry_in)})
        }
        ConnectionState::Failed { code, reason } => {
            json!({"state": "failed", "code": code, "reason": reason})
        }
        ConnectionState::Disconnected => json!({"state": "disconnected"}),
    }
}

pub(crate) fn event(event: Event) -> Value {
    match event {
        Event::State(s) => json!({"type": "state", "state": state(s)}),
        Event::Subscribed { channel } => json!({"type": "subscribed", "channel": channel}),
        Event::SubscriptionFailed { channel, status, message } => {
            json!({"type": "subscriptionFailed", "channel": channel, "status": status, "message": message})
        }
        Event::Message { channel, event, data, user_id, scope } => json!({
            "type": "message",
            "channel": channel,
            "event": event,
            "data": data,
            "userId": user_id,
            "scope": scope.map(|s| s.to_string()),
        }),
        Event::Undecryptable { channel, event, user_id, error } => json!({
            "type": "undecryptable",
            "channel": channel,
            "event": event,
            "userId": user_id,
            "code": error.code(),
            "message": error.to_string(),
        }),
        Event::MemberAdded { channel, member: m } => {
            json!({"type": "memberAdded", "channel": channel, "member": member(m)})
        }
        Event::MemberRemoved { channel, member: m } => {
            json!({"type": "memberRemoved", "channel": channel, "member": member(m)})
        }
        Event::Error { code, message } => json!({"type": "error", "code": code, "message": message}),
        // Local failures reach the app's `onError` without a Pusher code.
        Event::KeyRefused { .. } | Event::NotSent { .. } | Event::BadDocumentFrame { .. } => {
            json!({"type": "error", "code": null, "message": event.local_failure()})
        }
        Event::Document { doc_id, event } => {
            json!({"type": "document", "docId": doc_id, "event": document(event)})
        }
        Event::CatchUp { channel, outcome } => {
            json!({"type": "catchUp", "channel": channel, "outcome": catch_up(outcome)})
        }
        Event::History { channel, request_id, result } => {
            json!({"type": "history", "channel": channel, "requestId": request_id, "result": history(result)})
        }
        Event::NeedAuthorization { socket_id, channel } => {
            json!({"type": "needAuthorization", "socketId": socket_id, "channel": channel})
        }
        Event::NeedKey(request) => json!({"type": "needKey", "request": key_request(&request)}),
    }
}

fn history(result: Result<HistoryRead, HistoryError>) -> Value {
    match result {
        Err(error) => json!({"type": "refused", "code": error.code.as_str(), "message": error.message}),
        Ok(read) => {
            let events: Vec<Value> = read
                .items
                .into_iter()
                .map(|item| {
                    let mut value = json!({"offset": item.offset, "event": item.event, "userId": item.user_id, "timeMs": item.time_ms});
                    match item.content {
                        Ok((data, scope)) => {
                            value["data"] = data;
                            value["scope"] = json!(scope.map(|s| s.to_string()));
                        }
                        Err(error) => value["undecryptable"] = json!({"code": error.code(), "message": error.to_string()}),
                    }
                    value
                })
                .collect();
            json!({"type": "page", "events": events, "more": read.more})
        }
    }
}

fn catch_up(outcome: CatchUpOutcome) -> Value {
    match outcome {
        CatchUpOutcome::Complete { events } => json!({"type": "complete", "events": events}),
        CatchUpOutcome::Gap { gap, events } => json!({"type": "gap", "gap": gap.as_str(), "events": events}),
        CatchUpOutcome::Failed { reason, events } => {
            json!({"type": "failed", "code": reason.code(), "message": reason.to_string(), "events": events})
        }
    }
}

fn delta(delta: &Delta) -> Value {
    delta.to_json()
}

fn document(event: DocClientEvent) -> Value {
    match event {
        DocClientEvent::Ready { view, seq, unsent, version } => json!({
            "type": "ready", "view": delta(&view), "seq": seq, "unsent": unsent.as_ref().map(delta), "version": version,
        }),
        DocClientEvent::RemoteChange { change, base, version } => {
            json!({"type": "remoteChange", "change": delta(&change), "base": base, "version": version})
        }
        DocClientEvent::Skipped { seq, op_id, user_id, reason } => {
            json!({"type": "skipped", "seq": seq, "opId": op_id, "userId": user_id, "reason": reason.to_string(), "code": reason.code()})
        }
        DocClientEvent::Cursor { user_id, index, length } => {
            json!({"type": "cursor", "userId": user_id, "index": index, "length": length})
        }
        DocClientEvent::CursorError { user_id, error } => {
            json!({"type": "cursorError", "userId": user_id, "message": error})
        }
        DocClientEvent::KeyNeeded { kid, kv, key_hint } => {
            json!({"type": "keyNeeded", "kid": kid, "kv": kv, "keyHint": key_hint})
        }
        DocClientEvent::Diverged { seq, reason, unsent } => {
            let reason = reason.to_string();
            json!({"type": "diverged", "seq": seq, "reason": reason, "unsent": unsent.as_ref().map(delta)})
        }
        DocClientEvent::Refused { code, message, retry_in } => json!({
            "type": "refused", "code": code.as_str(), "message": message, "retryInMs": retry_in.map(millis),
        }),
    }
}
