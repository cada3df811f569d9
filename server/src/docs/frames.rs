//! Server → client document events (`sealcast_internal:doc-*`), additive to
//! the Pusher protocol: other clients ignore them.

use serde_json::{Value, json};

use super::JoinState;

fn frame(event: &str, channel: &str, data: Value) -> String {
    json!({"event": event, "channel": channel, "data": data}).to_string()
}

/// The reply to `sealcast:doc-join`.
pub fn state(channel: &str, state: &JoinState) -> String {
    let snapshot =
        state.snapshot.as_ref().map(|s| json!({"seq": s.seq, "payload": s.payload, "key_hint": s.key_hint}));
    let ops: Vec<Value> = state
        .ops
        .iter()
        .map(|op| json!({"seq": op.seq, "base": op.base, "op_id": op.op_id, "payload": op.payload}))
        .collect();
    frame(
        "sealcast_internal:doc-state",
        channel,
        json!({
            "head": state.head,
            "snapshot": snapshot,
            "snapshots": state.snapshots,
            "ops": ops,
            "op_seq": state.op_seq
        }),
    )
}

/// A newly sequenced op, to every subscriber but its author (`user_id`:
/// the author, when the server knows it, so clients can say who sent an op
/// that did not apply).
pub fn op(channel: &str, seq: u64, base: u64, op_id: &str, payload: &str, user_id: Option<&str>) -> String {
    frame(
        "sealcast_internal:doc-op",
        channel,
        json!({"seq": seq, "base": base, "op_id": op_id, "payload": payload, "user_id": user_id}),
    )
}

/// The author's acknowledgement (`duplicate`: the op id was already sequenced).
pub fn ack(channel: &str, op_id: &str, seq: u64, duplicate: bool) -> String {
    frame("sealcast_internal:doc-ack", channel, json!({"op_id": op_id, "seq": seq, "duplicate": duplicate}))
}

/// A snapshot was stored.
pub fn snapshot_stored(channel: &str, seq: u64) -> String {
    frame("sealcast_internal:doc-snapshot-stored", channel, json!({"seq": seq}))
}

/// A client's digest of the canonical document at `seq`, relayed as sent.
pub fn digest(channel: &str, seq: u64, kv: u32, digest: &str) -> String {
    frame("sealcast_internal:doc-digest", channel, json!({"seq": seq, "kv": kv, "digest": digest}))
}

/// A refused document event.
pub fn error(channel: &str, code: &str, message: &str, op_id: Option<&str>) -> String {
    frame("sealcast_internal:doc-error", channel, json!({"code": code, "message": message, "op_id": op_id}))
}
